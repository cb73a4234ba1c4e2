/* SPDX-License-Identifier: GPL-2.0 */
/*
 * iommu_pt.h - what the emulated VT-d's page table holds for a device:
 * the leaf lines of /sys/kernel/debug/iommu/intel/<bdf>/domain_translation_struct
 * (CONFIG_INTEL_IOMMU_DEBUGFS), so tests can show the page sizes an IOMMU
 * backend really mapped.
 */
#ifndef IOMMU_PT_H
#define IOMMU_PT_H

#include <stddef.h>
#include <stdint.h>

/* Page-size bit of a VT-d second-level PDE/PDPE: the entry is a leaf. */
#define VTD_PS			(1ull << 7)

/*
 * One leaf line: the IOVA pfn it starts at and the entries from the top
 * level down to the leaf (4 values: a 2 MiB PDE leaf; 3: a 1 GiB PDPE
 * leaf; 5: a 4 KiB PTE).
 */
struct iommu_leaf {
	uint64_t pfn;
	int nvals;
	uint64_t val[6];
};

/*
 * The leaves of @bdf's domain whose IOVA lies in [iova, iova + len).
 * Returns their number (up to @max stored in @out) or -errno, with a reason
 * in @why: -ENOENT when debugfs has no such file, -ENODATA when it shows no
 * page table.
 */
int iommu_read_leaves(const char *bdf, uint64_t iova, uint64_t len,
		      struct iommu_leaf *out, int max, char *why, size_t whylen);

#endif /* IOMMU_PT_H */
