// SPDX-License-Identifier: GPL-2.0
/* iommu_pt.c - see iommu_pt.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iommu_pt.h"

int iommu_read_leaves(const char *bdf, uint64_t iova, uint64_t len,
		      struct iommu_leaf *out, int max, char *why, size_t whylen)
{
	char path[256], line[512];
	int cnt = 0, header = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/debug/iommu/intel/%s/domain_translation_struct",
		 bdf);
	f = fopen(path, "re");
	if (!f) {
		int err = errno;

		snprintf(why, whylen, "%s: %s", path, strerror(err));
		return -err;
	}
	while (fgets(line, sizeof(line), f)) {
		struct iommu_leaf l = { 0 };
		char *p = line, *end;

		if (!strncmp(line, "Device ", 7) || !strncmp(line, "IOVA_PFN", 8)) {
			header++;
			continue;
		}
		if (strncmp(line, "0x", 2))
			continue;
		l.pfn = strtoull(p, &end, 16);
		p = strchr(end, '|');
		if (!p)
			continue;
		p++;
		while (l.nvals < 6) {
			uint64_t v = strtoull(p, &end, 16);

			if (end == p)
				break;
			l.val[l.nvals++] = v;
			p = end;
		}
		if (l.pfn < iova >> 12 || l.pfn >= (iova + len) >> 12)
			continue;
		if (cnt < max)
			out[cnt] = l;
		cnt++;
	}
	fclose(f);
	if (!header) {
		snprintf(why, whylen, "%s shows no page table (no header line)", path);
		return -ENODATA;
	}
	return cnt;
}
