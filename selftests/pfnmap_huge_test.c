// SPDX-License-Identifier: GPL-2.0
/*
 * pfnmap_huge_test - MAP_DMA of a large, physically contiguous BAR: the
 * 64 MiB BAR2 of an ivshmem-plain device (RAM behind it, so an edu can DMA
 * into it), mmap()ed through its vfio device fd at a 2 MiB-aligned address
 * and never touched before MAP_DMA.
 *
 * Checks, against both backends: the IOMMU page table holds 2 MiB leaves for
 * the whole range (not 16384 4 KiB PTEs), nothing is pinned or charged, and
 * edu #1 reads and writes the BAR through the IOVA (data checked through the
 * mmap). On rvfio, munmap() of the BAR then revokes the translation: DMA
 * reads zeros and RVFIO_IOMMU_DMA_QUERY reports the whole 64 MiB revoked.
 * scripts/vm.sh adds the ivshmem device; guest-init binds it to vfio-pci.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/rvfio.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"
#include "iommu_pt.h"

#define BAR_IOVA	0x80000000ull	/* 2 MiB aligned, below the MSI window */
#define RAM_IOVA	0x10000000ull
#define IVSHMEM_BAR	2		/* VFIO_PCI_BAR2_REGION_INDEX */
#define MAX_LEAVES	(64 * 512 + 8)

/* The first ivshmem-plain device (1af4:1110) in @bdf; 0 or -ENOENT. */
static int find_ivshmem(char *bdf, size_t len)
{
	struct dirent *d;
	DIR *dir = opendir("/sys/bus/pci/devices");
	int ret = -ENOENT;

	if (!dir)
		return -errno;
	while ((d = readdir(dir))) {
		char path[300], id[32] = "";
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", d->d_name);
		f = fopen(path, "re");
		if (!f || !fgets(id, sizeof(id), f) || strncmp(id, "0x1af4", 6)) {
			if (f)
				fclose(f);
			continue;
		}
		fclose(f);
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", d->d_name);
		f = fopen(path, "re");
		if (f && fgets(id, sizeof(id), f) && !strncmp(id, "0x1110", 6) &&
		    strlen(d->d_name) < len) {
			memcpy(bdf, d->d_name, strlen(d->d_name) + 1);
			ret = 0;
		}
		if (f)
			fclose(f);
		if (!ret)
			break;
	}
	closedir(dir);
	return ret;
}

static bool backend_is_rvfio(void)
{
	return access("/sys/module/rvfio", F_OK) == 0 &&
	       (!getenv("VFIO_BACKEND") || !strcmp(getenv("VFIO_BACKEND"), "rvfio"));
}

/* No state: the harness in 6.12 has timeouts only for fixture tests. */
FIXTURE(bar64m) {
	int unused;
};

FIXTURE_SETUP(bar64m)
{
	self->unused = 0;
}

FIXTURE_TEARDOWN(bar64m)
{
}

TEST_F_TIMEOUT(bar64m, untouched_2m_leaves_dma_and_revoke, 300)
{
	static struct iommu_leaf lv[MAX_LEAVES];
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = IVSHMEM_BAR };
	char bdf[64], why[300] = "";
	struct edu e = { .container = -1 };
	long long pins0;
	long lck0;
	uint64_t n, off_rd = 33 * SZ_1M + 0x3000, off_wr = 61 * SZ_1M + 0x5000;
	uint8_t *reserve, *bar, *ram;
	uint16_t cmd;
	uint32_t seed;
	int group, dev, cnt, i;

	if (access("/dev/vfio/vfio", F_OK))
		SKIP(return, "/dev/vfio/vfio does not exist: vfio is not loaded");
	if (find_ivshmem(bdf, sizeof(bdf)))
		SKIP(return, "no ivshmem-plain device (1af4:1110): scripts/vm.sh adds one");
	if (edu_count() < 1)
		SKIP(return, "no edu device");
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, why, sizeof(why)))
		TH_LOG("%s", why);
	group = vfio_group_attach(e.container, bdf, NULL);
	ASSERT_LE(0, group) TH_LOG("attach the group of %s: %s (bound to vfio-pci?)", bdf,
				   strerror(-group));
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	ASSERT_LE(0, dev) TH_LOG("device fd of %s: %s", bdf, strerror(errno));
	ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &reg));
	ASSERT_EQ(64 * SZ_1M, reg.size);
	ASSERT_NE(0, reg.flags & VFIO_REGION_INFO_FLAG_MMAP);
	ASSERT_EQ(0, vfio_pci_config_read(dev, PCI_COMMAND, &cmd, sizeof(cmd)));
	cmd |= PCI_COMMAND_MEMORY;
	ASSERT_EQ(0, vfio_pci_config_write(dev, PCI_COMMAND, &cmd, sizeof(cmd)));

	/* A 2 MiB-aligned mmap, so vfio-pci's huge_fault can use PMD leaves. */
	reserve = mmap(NULL, reg.size + SZ_2M, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, reserve);
	bar = (uint8_t *)(((uintptr_t)reserve + SZ_2M - 1) & ~(uintptr_t)(SZ_2M - 1));
	ASSERT_EQ(bar, mmap(bar, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, dev,
			    reg.offset));
	ram = alloc_pages_4k(PAGE_4K, 0xd1);
	ASSERT_NE(MAP_FAILED, ram);
	ASSERT_EQ(0, vfio_map(e.container, RAM_IOVA, ram, PAGE_4K, RW));

	/* Untouched BAR: MAP_DMA faults it in; nothing pinned or charged. */
	pins0 = foll_pins_outstanding();
	lck0 = vmlck_kb();
	ASSERT_EQ(0, vfio_map(e.container, BAR_IOVA, bar, reg.size, RW));
	ASSERT_PINS(pins0);
	EXPECT_EQ(lck0, vmlck_kb());

	cnt = iommu_read_leaves(e.bdf, BAR_IOVA, reg.size, lv, MAX_LEAVES, why, sizeof(why));
	ASSERT_LE(0, cnt) TH_LOG("%s", why);
	ASSERT_EQ(reg.size / SZ_2M, (uint64_t)cnt)
		TH_LOG("%d leaves for 64 MiB (first has %d levels): not 2 MiB pages", cnt,
		       cnt ? lv[0].nvals : 0);
	for (i = 0; i < cnt; i++) {
		ASSERT_EQ(4, lv[i].nvals) TH_LOG("leaf %d is not a PDE", i);
		ASSERT_NE(0, lv[i].val[3] & VTD_PS) TH_LOG("leaf %d: PDE without PS", i);
	}

	/* The device reads the BAR through the IOVA... */
	seed = random_seed();
	fill_pattern(bar + off_rd, PAGE_4K, seed);
	memset(ram, 0xd1, PAGE_4K);
	ASSERT_EQ(0, edu_copy(&e, BAR_IOVA + off_rd, RAM_IOVA, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(ram, PAGE_4K, seed)) TH_LOG("BAR -> RAM copy");
	/* ...and writes it. */
	seed = random_seed();
	fill_pattern(ram, PAGE_4K, seed);
	memset(bar + off_wr, 0, PAGE_4K);
	ASSERT_EQ(0, edu_copy(&e, RAM_IOVA, BAR_IOVA + off_wr, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(bar + off_wr, PAGE_4K, seed)) TH_LOG("RAM -> BAR copy");

	if (backend_is_rvfio()) {
		struct rvfio_dma_query q = { .argsz = sizeof(q), .iova = BAR_IOVA + off_rd };

		fill_pattern(bar + off_rd, PAGE_4K, seed);
		ASSERT_EQ(0, munmap(bar, reg.size));
		bar = NULL;
		memset(ram, 0xd1, PAGE_4K);
		ASSERT_EQ(0, edu_copy(&e, BAR_IOVA + off_rd, RAM_IOVA, PAGE_4K));
		EXPECT_EQ(-1, check_fill(ram, PAGE_4K, 0)) TH_LOG("DMA still reaches the BAR");
		ASSERT_EQ(0, ioctl(e.container, RVFIO_IOMMU_DMA_QUERY, &q));
		EXPECT_EQ(BAR_IOVA, q.iova);
		EXPECT_EQ(reg.size, q.size);
		EXPECT_EQ(RVFIO_DMA_QUERY_PFNMAP | RVFIO_DMA_QUERY_REVOKED, q.flags);
		EXPECT_EQ(reg.size, q.revoked_bytes);
		cnt = iommu_read_leaves(e.bdf, BAR_IOVA, reg.size, lv, MAX_LEAVES, why,
					sizeof(why));
		EXPECT_EQ(0, cnt) TH_LOG("%d leaves left after revocation", cnt);
	} else {
		TH_LOG("%s does not revoke: revocation part not run", getenv("VFIO_BACKEND"));
	}
	n = 0;
	ASSERT_EQ(0, vfio_unmap(e.container, BAR_IOVA, reg.size, 0, &n));
	EXPECT_EQ(reg.size, n);
	ASSERT_EQ(0, vfio_unmap(e.container, RAM_IOVA, PAGE_4K, 0, &n));
	if (bar)
		munmap(bar, reg.size);
	munmap(reserve, reg.size + SZ_2M);
	munmap(ram, PAGE_4K);
	close(dev);
	close(group);
	edu_close(&e);
}

TEST_HARNESS_MAIN
