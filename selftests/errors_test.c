// SPDX-License-Identifier: GPL-2.0
/*
 * errors_test - the errno of every rejected container ioctl, as upstream
 * vfio_iommu_type1 (6.12) gives it, and the container still working after
 * each rejection (a failed call must not leave partial state behind).
 * Also the GET_INFO argsz protocol and capability chain, CHECK_EXTENSION
 * answers, and type1 (v1) vs v2 UNMAP semantics.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"

#define GUARD		0xcc
#define MIN_INFO_ARGSZ	offsetofend(struct vfio_iommu_type1_info, iova_pgsizes)
#define MIN_MAP_ARGSZ	offsetofend(struct vfio_iommu_type1_dma_map, size)
#define MIN_UNMAP_ARGSZ	offsetofend(struct vfio_iommu_type1_dma_unmap, size)

#ifndef offsetofend
#define offsetofend(TYPE, MEMBER) (offsetof(TYPE, MEMBER) + sizeof(((TYPE *)0)->MEMBER))
#endif

/* Raw MAP_DMA with a caller-built struct, returning 0 or -errno. */
static int map_raw(int c, struct vfio_iommu_type1_dma_map *m)
{
	return ioctl(c, VFIO_IOMMU_MAP_DMA, m) ? -errno : 0;
}

static int unmap_raw(int c, struct vfio_iommu_type1_dma_unmap *u)
{
	return ioctl(c, VFIO_IOMMU_UNMAP_DMA, u) ? -errno : 0;
}

/*
 * Check that a mapping of len bytes of buf at iova is intact and still the
 * only one there: the device reads it (pattern arrives in out, mapped at
 * out_iova) and it unmaps with exactly its size.
 */
static void assert_mapping_intact(struct __test_metadata *_metadata, FIXTURE_DATA(edu) *self,
				  uint64_t iova, uint8_t *buf, uint64_t len, uint32_t seed)
{
	const uint64_t out_iova = 0x7fe00000ull;
	uint8_t *out = edu_buf(PAGE_4K, 0xd7);
	uint64_t n = 0;

	fill_pattern(buf, len, seed);
	ASSERT_EQ(0, vfio_map(self->c, out_iova, out, PAGE_4K, RW));
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, iova + len - PAGE_4K, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, out_iova, PAGE_4K));
	EXPECT_EQ(0, memcmp(out, buf + len - PAGE_4K, PAGE_4K))
		TH_LOG("the original mapping no longer reaches its memory");
	ASSERT_EQ(0, vfio_unmap(self->c, out_iova, PAGE_4K, 0, &n));
	ASSERT_EQ(0, vfio_unmap(self->c, iova, len, 0, &n));
	EXPECT_EQ(len, n);
}

TEST_F(edu, map_unaligned_iova_einval)
{
	uint8_t *buf = edu_buf(2 * PAGE_4K, 0);

	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M + 0x800, buf, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M + 1, buf, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_4G + 0xfff, buf, PAGE_4K, RW));
	ASSERT_CONTAINER_USABLE();
	/* Nothing was mapped at the aligned-down IOVA. */
	EXPECT_EQ(0, vfio_map(self->c, SZ_1M, buf, PAGE_4K, RW));
}

TEST_F(edu, map_unaligned_vaddr_einval)
{
	uint8_t *buf = edu_buf(2 * PAGE_4K, 0);

	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, buf + 0x200, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, buf + 1, PAGE_4K, RO));
	ASSERT_CONTAINER_USABLE();
	EXPECT_EQ(0, vfio_map(self->c, SZ_1M, buf, PAGE_4K, RW));
}

TEST_F(edu, map_unaligned_size_einval)
{
	uint8_t *buf = edu_buf(2 * PAGE_4K, 0);

	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, buf, PAGE_4K + 1, RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, buf, 0x800, RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, buf, 2 * PAGE_4K - 1, RW));
	ASSERT_CONTAINER_USABLE();
	EXPECT_EQ(0, vfio_map(self->c, SZ_1M, buf, 2 * PAGE_4K, RW));
}

TEST_F(edu, map_zero_size_einval)
{
	uint8_t *buf = edu_buf(PAGE_4K, 0);

	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, buf, 0, RW));
	ASSERT_CONTAINER_USABLE();
}

/* IOVA + size wrapping past 2^64, and vaddr + size wrapping. */
TEST_F(edu, map_wraparound_einval)
{
	uint8_t *buf = edu_buf(2 * PAGE_4K, 0);

	EXPECT_EQ(-EINVAL, vfio_map(self->c, 0xfffffffffffff000ull, buf, 2 * PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, (void *)0xfffffffffffff000ull,
				    2 * PAGE_4K, RW));
	ASSERT_CONTAINER_USABLE();
}

/* An IOVA beyond the last valid IOVA range (past the IOMMU's address width). */
TEST_F(edu, map_beyond_iova_aperture_einval)
{
	struct vfio_iova_range *r = NULL;
	uint8_t *buf = edu_buf(PAGE_4K, 0);
	uint64_t top;
	int nr = vfio_iova_ranges(self->c, &r);

	ASSERT_GT(nr, 0);
	top = r[nr - 1].end;
	free(r);
	if (top == UINT64_MAX)
		SKIP(return, "IOVA space reaches 2^64: nothing beyond it");
	EXPECT_EQ(-EINVAL, vfio_map(self->c, top + 1, buf, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, 1ull << 62, buf, PAGE_4K, RW));
	/* Straddling the top: the last page is fine, the one after is not. */
	EXPECT_EQ(-EINVAL, vfio_map(self->c, top + 1 - PAGE_4K, buf, 2 * PAGE_4K, RW));
	ASSERT_CONTAINER_USABLE();
}

/* Mapping the exact same range twice: EEXIST; the first mapping is untouched. */
TEST_F_TIMEOUT(edu, map_exact_duplicate_eexist, DMA_TEST_TIMEOUT)
{
	const uint64_t A = SZ_1M;
	uint8_t *buf = edu_buf(2 * PAGE_4K, 0), *other = edu_buf(2 * PAGE_4K, 0x44);

	ASSERT_EQ(0, vfio_map(self->c, A, buf, 2 * PAGE_4K, RW));
	EXPECT_EQ(-EEXIST, vfio_map(self->c, A, buf, 2 * PAGE_4K, RW));
	EXPECT_EQ(-EEXIST, vfio_map(self->c, A, other, 2 * PAGE_4K, RO));
	ASSERT_CONTAINER_USABLE();
	/* The mapping still points at buf, not at other. */
	assert_mapping_intact(_metadata, self, A, buf, 2 * PAGE_4K, random_seed());
}

/* Any overlap with an existing mapping: EEXIST, and no page of it is replaced. */
TEST_F_TIMEOUT(edu, map_partial_overlap_eexist, DMA_TEST_TIMEOUT)
{
	const uint64_t A = 0x1000000;		/* [A, A + 16K) */
	uint8_t *buf = edu_buf(4 * PAGE_4K, 0), *other = edu_buf(8 * PAGE_4K, 0x45);
	uint64_t n = 0;

	ASSERT_EQ(0, vfio_map(self->c, A, buf, 4 * PAGE_4K, RW));
	/* Overlapping the head, the tail, the middle, and covering it all. */
	EXPECT_EQ(-EEXIST, vfio_map(self->c, A - PAGE_4K, other, 2 * PAGE_4K, RW));
	EXPECT_EQ(-EEXIST, vfio_map(self->c, A + 3 * PAGE_4K, other, 2 * PAGE_4K, RW));
	EXPECT_EQ(-EEXIST, vfio_map(self->c, A + PAGE_4K, other, PAGE_4K, RW));
	EXPECT_EQ(-EEXIST, vfio_map(self->c, A - 2 * PAGE_4K, other, 8 * PAGE_4K, RW));
	/* Adjacent on both sides is not an overlap. */
	ASSERT_EQ(0, vfio_map(self->c, A - PAGE_4K, other, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, A + 4 * PAGE_4K, other + PAGE_4K, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_unmap(self->c, A - PAGE_4K, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	ASSERT_EQ(0, vfio_unmap(self->c, A + 4 * PAGE_4K, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	ASSERT_CONTAINER_USABLE();
	/* The tail page was the target of one overlap attempt: still buf's. */
	assert_mapping_intact(_metadata, self, A, buf, 4 * PAGE_4K, random_seed());
}

/* Reads /sys/kernel/iommu_groups/<id>/reserved_regions; returns count or -errno. */
struct resv { uint64_t start, end; char type[32]; };

static int read_resv_regions(int group_id, struct resv *out, int max)
{
	char path[128], line[256];
	unsigned long long s, e;
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%d/reserved_regions", group_id);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (n < max && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %llx %31s", &s, &e, out[n].type) == 3) {
			out[n].start = s;
			out[n].end = e;
			n++;
		}
	}
	fclose(f);
	return n;
}

/* The x86 MSI window is a hole in the IOVA ranges and MAP_DMA into it is EINVAL. */
TEST_F(edu, map_in_reserved_msi_window_einval)
{
	struct vfio_iova_range *r = NULL;
	uint8_t *buf = edu_buf(2 * PAGE_4K, 0);
	uint64_t n = 0;
	bool below = false;
	int nr, i;

	nr = vfio_iova_ranges(self->c, &r);
	ASSERT_GT(nr, 1) TH_LOG("expected the IOVA_RANGE capability with a hole (%d)", nr);
	for (i = 0; i < nr; i++) {
		EXPECT_FALSE(r[i].start <= X86_MSI_END && r[i].end >= X86_MSI_BASE)
			TH_LOG("range [%#llx, %#llx] covers the MSI window",
			       (unsigned long long)r[i].start, (unsigned long long)r[i].end);
		if (r[i].start <= X86_MSI_BASE - PAGE_4K && r[i].end >= X86_MSI_BASE - 1)
			below = true;
	}
	free(r);

	EXPECT_EQ(-EINVAL, vfio_map(self->c, X86_MSI_BASE, buf, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, X86_MSI_BASE + 0x80000, buf, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, X86_MSI_END + 1 - PAGE_4K, buf, PAGE_4K, RO));
	/* Straddling either edge of the window. */
	EXPECT_EQ(-EINVAL, vfio_map(self->c, X86_MSI_BASE - PAGE_4K, buf, 2 * PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, X86_MSI_END + 1 - PAGE_4K, buf, 2 * PAGE_4K, RW));
	/* Right next to it is valid (if the range list says so). */
	if (below) {
		ASSERT_EQ(0, vfio_map(self->c, X86_MSI_BASE - PAGE_4K, buf, PAGE_4K, RW));
		ASSERT_EQ(0, vfio_unmap(self->c, X86_MSI_BASE - PAGE_4K, PAGE_4K, 0, &n));
		EXPECT_EQ(PAGE_4K, n);
	}
	ASSERT_EQ(0, vfio_map(self->c, X86_MSI_END + 1, buf, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_unmap(self->c, X86_MSI_END + 1, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	ASSERT_CONTAINER_USABLE();
}

/* A vaddr with nothing mapped behind it: EFAULT, and nothing stays pinned. */
TEST_F(edu, map_unmapped_vaddr_efault)
{
	uint8_t *hole, *part;
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();

	hole = mmap(NULL, 4 * PAGE_4K, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	ASSERT_EQ(0, munmap(hole, 4 * PAGE_4K));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SZ_1M, hole, 4 * PAGE_4K, RW));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SZ_1M, hole, PAGE_4K, RO));

	/* First pages valid, then a hole: the whole call fails and is undone. */
	part = edu_buf(4 * PAGE_4K, 0x12);
	ASSERT_EQ(0, munmap(part + 2 * PAGE_4K, 2 * PAGE_4K));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SZ_1M, part, 4 * PAGE_4K, RW));
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(pins0, foll_pins_outstanding());
	ASSERT_CONTAINER_USABLE();
	/* The IOVA of the failed call is free. */
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, part, 2 * PAGE_4K, RW));
}

/*
 * Device-WRITE mapping of memory the process can only read: pinning with
 * FOLL_WRITE a VMA without VM_WRITE fails, so MAP_DMA gives EFAULT. A
 * READ-only mapping of the same memory is fine.
 */
TEST_F(edu, map_write_of_readonly_memory_efault)
{
	uint8_t *ro = edu_buf(2 * PAGE_4K, 0x3f);	/* populated, then made read-only */
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	uint64_t n = 0;

	ASSERT_EQ(0, mprotect(ro, 2 * PAGE_4K, PROT_READ));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SZ_1M, ro, 2 * PAGE_4K, RW));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SZ_1M, ro, 2 * PAGE_4K, WO));
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(pins0, foll_pins_outstanding());
	ASSERT_CONTAINER_USABLE();
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, ro, 2 * PAGE_4K, RO));
	ASSERT_EQ(0, vfio_unmap(self->c, SZ_1M, 2 * PAGE_4K, 0, &n));
	EXPECT_EQ(2 * PAGE_4K, n);
}

/* argsz below the fixed part of MAP_DMA, UNMAP_DMA or GET_INFO: EINVAL. */
TEST_F(edu, argsz_too_small_einval)
{
	uint8_t *buf = edu_buf(PAGE_4K, 0);
	struct vfio_iommu_type1_dma_map m = {
		.argsz = MIN_MAP_ARGSZ - 1, .flags = RW,
		.vaddr = (uintptr_t)buf, .iova = SZ_1M, .size = PAGE_4K,
	};
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = MIN_UNMAP_ARGSZ - 1, .iova = SZ_1M, .size = PAGE_4K,
	};
	union {
		struct vfio_iommu_type1_info info;
		uint8_t raw[64];
	} gi;

	EXPECT_EQ(-EINVAL, map_raw(self->c, &m));
	m.argsz = 0;
	EXPECT_EQ(-EINVAL, map_raw(self->c, &m));
	/* It really was not mapped: the same IOVA maps now. */
	m.argsz = MIN_MAP_ARGSZ;
	ASSERT_EQ(0, map_raw(self->c, &m));

	EXPECT_EQ(-EINVAL, unmap_raw(self->c, &u));
	u.argsz = 0;
	EXPECT_EQ(-EINVAL, unmap_raw(self->c, &u));
	/* Nothing was unmapped: the mapping is still there to remove. */
	u.argsz = MIN_UNMAP_ARGSZ;
	ASSERT_EQ(0, unmap_raw(self->c, &u));
	EXPECT_EQ(PAGE_4K, u.size);

	memset(&gi, GUARD, sizeof(gi));
	gi.info.argsz = MIN_INFO_ARGSZ - 1;
	EXPECT_EQ(-EINVAL, (int)vfio_ioctl(self->c, VFIO_IOMMU_GET_INFO, &gi));
	EXPECT_EQ(MIN_INFO_ARGSZ - 1, gi.info.argsz);
	EXPECT_EQ(-1, check_fill(gi.raw + 4, sizeof(gi) - 4, GUARD)) TH_LOG("GET_INFO wrote on EINVAL");
	ASSERT_CONTAINER_USABLE();
}

/* Flag bits MAP_DMA / UNMAP_DMA do not know, and invalid flag combinations: EINVAL. */
TEST_F(edu, unknown_or_invalid_flags_einval)
{
	uint8_t *buf = edu_buf(PAGE_4K, 0);
	uint64_t n;

	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, buf, PAGE_4K, RW | (1u << 3)));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, buf, PAGE_4K, RW | (1u << 31)));
	/* Neither READ nor WRITE (and not VADDR). */
	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, buf, PAGE_4K, 0));
	/* VADDR together with a protection bit. */
	EXPECT_EQ(-EINVAL, vfio_map(self->c, SZ_1M, buf, PAGE_4K, RW | VFIO_DMA_MAP_FLAG_VADDR));
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, PAGE_4K, RW));

	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, SZ_1M, PAGE_4K, 1u << 3, &n));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, SZ_1M, PAGE_4K, 1u << 31, &n));
	/* GET_DIRTY_BITMAP cannot go with ALL. */
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL |
				      VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, &n));
	/* ALL needs iova == size == 0. */
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, SZ_1M, 0, VFIO_DMA_UNMAP_FLAG_ALL, &n));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, 0, PAGE_4K, VFIO_DMA_UNMAP_FLAG_ALL, &n));
	/* None of those removed the mapping. */
	n = 0;
	ASSERT_EQ(0, vfio_unmap(self->c, SZ_1M, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	ASSERT_CONTAINER_USABLE();
}

/* UNMAP_DMA argument checks: unaligned iova/size, size 0, wrap: EINVAL. */
TEST_F(edu, unmap_bad_range_einval)
{
	uint8_t *buf = edu_buf(PAGE_4K, 0);
	uint64_t n;

	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, SZ_1M + 0x800, PAGE_4K, 0, &n));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, SZ_1M, PAGE_4K - 1, 0, &n));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, SZ_1M, 0, 0, &n));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, 0xfffffffffffff000ull, 2 * PAGE_4K, 0, &n));
	n = 0;
	ASSERT_EQ(0, vfio_unmap(self->c, SZ_1M, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	ASSERT_CONTAINER_USABLE();
}

/* v2: an UNMAP range with no mapping in it succeeds and reports size 0. */
TEST_F(edu, unmap_of_nothing_returns_zero_size)
{
	uint8_t *buf = edu_buf(PAGE_4K, 0);
	uint64_t n;

	n = 12345;
	ASSERT_EQ(0, vfio_unmap(self->c, SZ_1M, PAGE_4K, 0, &n));
	EXPECT_EQ(0, n);
	/* Also with a mapping elsewhere, and on both sides of it. */
	ASSERT_EQ(0, vfio_map(self->c, 2 * SZ_1M, buf, PAGE_4K, RW));
	n = 12345;
	ASSERT_EQ(0, vfio_unmap(self->c, SZ_1M, SZ_1M, 0, &n));
	EXPECT_EQ(0, n);
	n = 12345;
	ASSERT_EQ(0, vfio_unmap(self->c, 2 * SZ_1M + PAGE_4K, SZ_1M, 0, &n));
	EXPECT_EQ(0, n);
	n = 0;
	ASSERT_EQ(0, vfio_unmap(self->c, SZ_1M, 2 * SZ_1M, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	ASSERT_CONTAINER_USABLE();
}

/* v2: an UNMAP range that cuts a mapping (at either end) is EINVAL and unmaps nothing. */
TEST_F_TIMEOUT(edu, unmap_bisecting_mapping_einval_v2, DMA_TEST_TIMEOUT)
{
	const uint64_t A = 0x2000000, B = 0x2100000;
	uint8_t *buf = edu_buf(4 * PAGE_4K, 0), *b2 = edu_buf(PAGE_4K, 0);
	uint64_t n;

	ASSERT_EQ(0, vfio_map(self->c, A, buf, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, B, b2, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, A + PAGE_4K, PAGE_4K, 0, &n));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, A, PAGE_4K, 0, &n));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, A + PAGE_4K, 8 * PAGE_4K, 0, &n));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, A - PAGE_4K, 2 * PAGE_4K, 0, &n));
	/* Covering B fully but cutting A's tail: rejected, B stays too. */
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, A + 3 * PAGE_4K, B + PAGE_4K - (A + 3 * PAGE_4K),
				      0, &n));
	n = 0;
	ASSERT_EQ(0, vfio_unmap(self->c, B, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	ASSERT_CONTAINER_USABLE();
	assert_mapping_intact(_metadata, self, A, buf, 4 * PAGE_4K, random_seed());
}

/*
 * type1 (v1) legacy UNMAP: a range starting inside a mapping succeeds with
 * size 0 and leaves it; a range covering the mapping's first IOVA removes the
 * whole mapping, reporting its full size.
 */
TEST(type1v1_unmap_legacy_semantics)
{
	const uint64_t A = 0x1000000;
	uint8_t *buf;
	char err[256] = "";
	struct edu e;
	uint64_t n;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	buf = alloc_pages_4k(4 * PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(e.container, A, buf, 4 * PAGE_4K, RW));
	n = 123;
	EXPECT_EQ(0, vfio_unmap(e.container, A + PAGE_4K, PAGE_4K, 0, &n));
	EXPECT_EQ(0, n);
	n = 123;
	EXPECT_EQ(0, vfio_unmap(e.container, A + PAGE_4K, 8 * PAGE_4K, 0, &n));
	EXPECT_EQ(0, n);
	/* Still mapped: mapping its last page again collides. */
	EXPECT_EQ(-EEXIST, vfio_map(e.container, A + 3 * PAGE_4K, buf, PAGE_4K, RW));
	/* Covers the first IOVA but not the rest: the whole 16 KiB go. */
	n = 0;
	EXPECT_EQ(0, vfio_unmap(e.container, A - PAGE_4K, 2 * PAGE_4K, 0, &n));
	EXPECT_EQ(4 * PAGE_4K, n);
	EXPECT_EQ(0, vfio_map(e.container, A + 3 * PAGE_4K, buf, PAGE_4K, RW));
	n = 0;
	EXPECT_EQ(0, vfio_unmap_all(e.container, &n));
	EXPECT_EQ(PAGE_4K, n);
	edu_close(&e);
	munmap(buf, 4 * PAGE_4K);
}

/* GET_INFO with the minimum argsz (up to iova_pgsizes) works and writes nothing after it. */
TEST_F(edu, get_info_minimum_argsz_works)
{
	union {
		struct vfio_iommu_type1_info info;
		uint8_t raw[256];
	} gi;

	ASSERT_EQ(sizeof(struct vfio_iommu_type1_info) - 8, MIN_INFO_ARGSZ);
	memset(&gi, GUARD, sizeof(gi));
	gi.info.argsz = MIN_INFO_ARGSZ;
	ASSERT_EQ(0, vfio_ioctl(self->c, VFIO_IOMMU_GET_INFO, &gi));
	EXPECT_TRUE(gi.info.flags & VFIO_IOMMU_INFO_PGSIZES);
	EXPECT_TRUE(gi.info.iova_pgsizes & PAGE_4K) TH_LOG("pgsizes %#llx",
							(unsigned long long)gi.info.iova_pgsizes);
	EXPECT_EQ(0, gi.info.iova_pgsizes & (PAGE_4K - 1));
	/* The caps did not fit: argsz now says how much they need. */
	EXPECT_TRUE(gi.info.flags & VFIO_IOMMU_INFO_CAPS);
	EXPECT_GT(gi.info.argsz, sizeof(struct vfio_iommu_type1_info));
	EXPECT_EQ(-1, check_fill(gi.raw + MIN_INFO_ARGSZ, sizeof(gi) - MIN_INFO_ARGSZ, GUARD))
		TH_LOG("GET_INFO wrote past the caller's argsz");
	ASSERT_CONTAINER_USABLE();
}

/*
 * argsz too small for the capability chain: the needed argsz comes back,
 * cap_offset stays 0, and nothing beyond the caller's argsz is written.
 */
TEST_F(edu, get_info_small_argsz_reports_needed_size_writes_nothing_beyond)
{
	const size_t fixed = sizeof(struct vfio_iommu_type1_info);
	union {
		struct vfio_iommu_type1_info info;
		uint8_t raw[4096];
	} gi;
	uint32_t needed;

	memset(&gi, GUARD, sizeof(gi));
	gi.info.argsz = fixed;
	ASSERT_EQ(0, vfio_ioctl(self->c, VFIO_IOMMU_GET_INFO, &gi));
	needed = gi.info.argsz;
	EXPECT_GT(needed, fixed);
	EXPECT_TRUE(gi.info.flags & VFIO_IOMMU_INFO_CAPS);
	EXPECT_EQ(0, gi.info.cap_offset);
	EXPECT_EQ(-1, check_fill(gi.raw + fixed, sizeof(gi) - fixed, GUARD));
	ASSERT_LT(needed, sizeof(gi));

	/* One byte short of what it asked for: same answer, still no caps written. */
	memset(&gi, GUARD, sizeof(gi));
	gi.info.argsz = needed - 1;
	ASSERT_EQ(0, vfio_ioctl(self->c, VFIO_IOMMU_GET_INFO, &gi));
	EXPECT_EQ(needed, gi.info.argsz);
	EXPECT_EQ(0, gi.info.cap_offset);
	EXPECT_EQ(-1, check_fill(gi.raw + fixed, sizeof(gi) - fixed, GUARD));

	/* Exactly the needed size: caps written up to it, nothing after. */
	memset(&gi, GUARD, sizeof(gi));
	gi.info.argsz = needed;
	ASSERT_EQ(0, vfio_ioctl(self->c, VFIO_IOMMU_GET_INFO, &gi));
	EXPECT_EQ(needed, gi.info.argsz);
	EXPECT_EQ(fixed, gi.info.cap_offset);
	EXPECT_EQ(-1, check_fill(gi.raw + needed, sizeof(gi) - needed, GUARD));
}

/*
 * The capability chain: well formed; MIGRATION (pgsize 4 KiB, 256 MiB bitmap
 * limit), DMA_AVAIL (tracks MAP/UNMAP) and IOVA_RANGE (sorted, disjoint,
 * excluding the MSI window and every non-relaxable reserved region of the
 * group, with the holes exactly matching those regions).
 */
TEST_F(edu, get_info_cap_chain_well_formed_iova_ranges_exclude_reserved)
{
	const struct vfio_iommu_type1_info_cap_migration *mig;
	const struct vfio_iommu_type1_info_dma_avail *avail;
	const struct vfio_iommu_type1_info_cap_iova_range *cap;
	struct vfio_iommu_type1_info *info;
	struct resv resv[32];
	uint8_t *buf = edu_buf(PAGE_4K, 0);
	uint32_t avail0, off, last = 0;
	int nresv, seen = 0, i, j;
	long limit;

	info = vfio_get_info(self->c);
	ASSERT_NE(NULL, info) TH_LOG("GET_INFO: %s", strerror(errno));
	ASSERT_TRUE(info->flags & VFIO_IOMMU_INFO_CAPS);
	ASSERT_EQ(sizeof(*info), info->cap_offset);

	/* Walk: every header inside argsz, offsets strictly increasing, 8-byte aligned. */
	for (off = info->cap_offset; off; seen++) {
		const struct vfio_info_cap_header *h = (const void *)((uint8_t *)info + off);

		ASSERT_LT(seen, 16);
		ASSERT_LE(off + sizeof(*h), info->argsz);
		ASSERT_GT(off, last);
		ASSERT_EQ(0, off % 8);
		EXPECT_EQ(1, h->version) TH_LOG("cap %u version %u", h->id, h->version);
		last = off;
		off = h->next;
	}
	EXPECT_EQ(3, seen);

	mig = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
	ASSERT_NE(NULL, mig);
	EXPECT_EQ(0, mig->flags);
	EXPECT_EQ(PAGE_4K, mig->pgsize_bitmap);
	EXPECT_EQ(256ull << 20, mig->max_dirty_bitmap_size);

	avail = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	ASSERT_NE(NULL, avail);
	avail0 = avail->avail;
	if (getenv("VFIO_BACKEND") &&
	    !module_param_read(getenv("VFIO_BACKEND"), "dma_entry_limit", &limit))
		EXPECT_EQ((uint32_t)limit, avail0);
	EXPECT_GT(avail0, 0);

	cap = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
	ASSERT_NE(NULL, cap);
	ASSERT_LE((uint8_t *)&cap->iova_ranges[cap->nr_iovas], (uint8_t *)info + info->argsz);
	ASSERT_GE(cap->nr_iovas, 2);
	nresv = read_resv_regions(self->dev.group_id, resv, 32);
	ASSERT_GE(nresv, 1) TH_LOG("reserved_regions of group %d: %d", self->dev.group_id, nresv);
	for (i = 0; i < (int)cap->nr_iovas; i++) {
		const struct vfio_iova_range *r = &cap->iova_ranges[i];

		TH_LOG("iova range %d: [%#llx, %#llx]", i, (unsigned long long)r->start,
		       (unsigned long long)r->end);
		EXPECT_LE(r->start, r->end);
		EXPECT_EQ(0, r->start & (PAGE_4K - 1));
		EXPECT_EQ(PAGE_4K - 1, r->end & (PAGE_4K - 1));
		if (i)
			EXPECT_GT(r->start, cap->iova_ranges[i - 1].end + 1)
				TH_LOG("ranges %d and %d unsorted, overlapping or touching", i - 1, i);
		EXPECT_FALSE(r->start <= X86_MSI_END && r->end >= X86_MSI_BASE);
		for (j = 0; j < nresv; j++) {
			if (!strcmp(resv[j].type, "direct-relaxable"))
				continue;
			EXPECT_FALSE(r->start <= resv[j].end && r->end >= resv[j].start)
				TH_LOG("range %d overlaps reserved [%#llx, %#llx] %s", i,
				       (unsigned long long)resv[j].start,
				       (unsigned long long)resv[j].end, resv[j].type);
		}
	}
	/* Each hole begins and ends at a reserved region's boundary. */
	for (i = 1; i < (int)cap->nr_iovas; i++) {
		uint64_t hs = cap->iova_ranges[i - 1].end + 1, he = cap->iova_ranges[i].start - 1;
		bool s_ok = false, e_ok = false;

		for (j = 0; j < nresv; j++) {
			if (!strcmp(resv[j].type, "direct-relaxable"))
				continue;
			s_ok |= resv[j].start == hs;
			e_ok |= resv[j].end == he;
		}
		EXPECT_TRUE(s_ok && e_ok) TH_LOG("hole [%#llx, %#llx] is not a reserved region",
						 (unsigned long long)hs, (unsigned long long)he);
	}
	/* The IOVAs the other tests use are valid. */
	for (i = 0; i < 2; i++) {
		uint64_t want = i ? SZ_4G + 0x12360000ull : SZ_1M;
		bool in = false;

		for (j = 0; j < (int)cap->nr_iovas; j++)
			in |= cap->iova_ranges[j].start <= want && cap->iova_ranges[j].end >= want;
		EXPECT_TRUE(in) TH_LOG("IOVA %#llx not in any range", (unsigned long long)want);
	}
	free(info);

	/* DMA_AVAIL counts mappings. */
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, PAGE_4K, RW));
	info = vfio_get_info(self->c);
	ASSERT_NE(NULL, info);
	avail = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	ASSERT_NE(NULL, avail);
	EXPECT_EQ(avail0 - 1, avail->avail);
	free(info);
	ASSERT_EQ(0, vfio_unmap_all(self->c, NULL));
	info = vfio_get_info(self->c);
	ASSERT_NE(NULL, info);
	avail = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	ASSERT_NE(NULL, avail);
	EXPECT_EQ(avail0, avail->avail);
	free(info);
}

/*
 * The backend's dma_entry_limit parameter (read at SET_IOMMU) bounds the
 * number of mappings: one more gives ENOSPC; freeing one makes room again.
 */
TEST(map_beyond_dma_entry_limit_enospc)
{
	const char *be = getenv("VFIO_BACKEND");
	const struct vfio_iommu_type1_info_dma_avail *avail;
	struct vfio_iommu_type1_info *info;
	char err[256] = "";
	long old_limit;
	struct edu e;
	uint8_t *buf;
	uint64_t n;
	int ret, i;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	if (!be || module_param_read(be, "dma_entry_limit", &old_limit))
		SKIP(return, "no /sys/module/%s/parameters/dma_entry_limit", be ? be : "$VFIO_BACKEND");
	buf = alloc_pages_4k(4 * PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, module_param_write(be, "dma_entry_limit", 3));
	ret = edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err));
	/* Restore before anything can bail out. */
	ASSERT_EQ(0, module_param_write(be, "dma_entry_limit", old_limit));
	ASSERT_EQ(0, ret) TH_LOG("%s", err);

	info = vfio_get_info(e.container);
	ASSERT_NE(NULL, info);
	avail = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	ASSERT_NE(NULL, avail);
	EXPECT_EQ(3, avail->avail);
	free(info);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, vfio_map(e.container, SZ_1M + i * SZ_1M, buf + i * PAGE_4K, PAGE_4K, RW));
	EXPECT_EQ(-ENOSPC, vfio_map(e.container, 8 * SZ_1M, buf + 3 * PAGE_4K, PAGE_4K, RW));
	info = vfio_get_info(e.container);
	ASSERT_NE(NULL, info);
	avail = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	ASSERT_NE(NULL, avail);
	EXPECT_EQ(0, avail->avail);
	free(info);
	/* EEXIST is checked before the limit. */
	EXPECT_EQ(-EEXIST, vfio_map(e.container, SZ_1M, buf, PAGE_4K, RW));
	n = 0;
	ASSERT_EQ(0, vfio_unmap(e.container, SZ_1M, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	EXPECT_EQ(0, vfio_map(e.container, 8 * SZ_1M, buf + 3 * PAGE_4K, PAGE_4K, RW));
	n = 0;
	ASSERT_EQ(0, vfio_unmap_all(e.container, &n));
	EXPECT_EQ(3 * PAGE_4K, n);
	edu_close(&e);
	munmap(buf, 4 * PAGE_4K);
}

static long check_ext(int c, long ext)
{
	return vfio_ioctl(c, VFIO_CHECK_EXTENSION, (void *)ext);
}

/* CHECK_EXTENSION on a container without groups or IOMMU type. */
TEST(check_extension_on_fresh_container)
{
	int c = vfio_container_open();

	if (c == -ENOENT)
		SKIP(return, "/dev/vfio/vfio does not exist: vfio is not loaded");
	ASSERT_GE(c, 0);
	EXPECT_EQ(VFIO_API_VERSION, vfio_ioctl(c, VFIO_GET_API_VERSION, NULL));
	EXPECT_EQ(1, check_ext(c, VFIO_TYPE1_IOMMU));
	EXPECT_EQ(1, check_ext(c, VFIO_TYPE1v2_IOMMU));
	/*
	 * Both offer the nesting type: rvfio's nesting container, and 6.12's
	 * type1, although every attach of its nesting container fails on
	 * Intel (nesting_test checks both).
	 */
	EXPECT_EQ(1, check_ext(c, VFIO_TYPE1_NESTING_IOMMU));
	EXPECT_EQ(1, check_ext(c, VFIO_UNMAP_ALL));
	/* Need an IOMMU instance to answer: 0 before SET_IOMMU. */
	EXPECT_EQ(0, check_ext(c, VFIO_UPDATE_VADDR));
	EXPECT_EQ(0, check_ext(c, VFIO_DMA_CC_IOMMU));
	/* Not type1's. */
	EXPECT_EQ(0, check_ext(c, VFIO_SPAPR_TCE_IOMMU));
	EXPECT_EQ(0, check_ext(c, VFIO_SPAPR_TCE_v2_IOMMU));
	EXPECT_EQ(0, check_ext(c, VFIO_EEH));
	EXPECT_EQ(0, check_ext(c, 12345));
	close(c);
}

/*
 * Before SET_IOMMU the container has no backend: type1 ioctls are EINVAL
 * (container.c's default); SET_IOMMU needs a group, an IOMMU type some
 * backend supports (else ENODEV), and works once.
 */
TEST(ioctls_before_set_iommu)
{
	struct vfio_iommu_type1_info info = { .argsz = sizeof(info) };
	int c, g, group_id;
	uint8_t *buf;
	uint64_t n;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	buf = alloc_pages_4k(PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, buf);
	c = vfio_container_open();
	ASSERT_GE(c, 0);
	/* No group, no IOMMU. */
	EXPECT_EQ(-EINVAL, vfio_map(c, SZ_1M, buf, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_unmap(c, SZ_1M, PAGE_4K, 0, &n));
	EXPECT_EQ(-EINVAL, vfio_ioctl(c, VFIO_IOMMU_GET_INFO, &info));
	EXPECT_EQ(-EINVAL, vfio_ioctl(c, VFIO_IOMMU_ENABLE, NULL));
	EXPECT_EQ(-EINVAL, vfio_set_iommu(c, VFIO_TYPE1v2_IOMMU));

	g = vfio_group_attach(c, edu_bdf(0), &group_id);
	ASSERT_GE(g, 0) TH_LOG("attach: %s", strerror(-g));
	/* Group attached but no IOMMU type yet. */
	EXPECT_EQ(-EINVAL, vfio_map(c, SZ_1M, buf, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, vfio_ioctl(c, VFIO_IOMMU_GET_INFO, &info));
	EXPECT_EQ(-EINVAL, vfio_ioctl(g, VFIO_GROUP_GET_DEVICE_FD, (void *)edu_bdf(0)));
	/* Types nobody supports. */
	EXPECT_EQ(-ENODEV, vfio_set_iommu(c, VFIO_SPAPR_TCE_IOMMU));
	EXPECT_EQ(-ENODEV, vfio_set_iommu(c, 12345));
	/* A real one, once. */
	ASSERT_EQ(0, vfio_set_iommu(c, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(-EINVAL, vfio_set_iommu(c, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(-EINVAL, vfio_set_iommu(c, VFIO_TYPE1_IOMMU));
	/* Now the backend answers, and unknown ioctls are ENOTTY. */
	EXPECT_EQ(1, check_ext(c, VFIO_UPDATE_VADDR));
	EXPECT_EQ(1, check_ext(c, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(-ENOTTY, vfio_ioctl(c, VFIO_IOMMU_ENABLE, NULL));
	EXPECT_EQ(-ENOTTY, vfio_ioctl(c, VFIO_IOMMU_DISABLE, NULL));
	EXPECT_EQ(0, vfio_ioctl(c, VFIO_IOMMU_GET_INFO, &info));
	ASSERT_EQ(0, vfio_map(c, SZ_1M, buf, PAGE_4K, RW));
	n = 0;
	ASSERT_EQ(0, vfio_unmap(c, SZ_1M, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	close(g);
	close(c);
	munmap(buf, PAGE_4K);
}

TEST_HARNESS_MAIN
