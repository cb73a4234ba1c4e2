// SPDX-License-Identifier: GPL-2.0
/*
 * dma_test - device DMA through the container's IOMMU mappings.
 *
 * The edu device copies between IOVAs and its internal 4 KiB buffer. Every
 * test checks the bytes that arrived (or did not arrive) in process memory,
 * so a mapping that points at the wrong page, keeps the wrong permission or
 * survives its UNMAP_DMA makes the test fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"

/*
 * The full round trip at base:
 *   A = base (source, READ-only), B = base + 64 KiB (destination, READ|WRITE),
 *   C = base + 128 KiB (a second destination).
 * 1. A -> edu -> B moves a random pattern.
 * 2. B unmapped: a device write to B is dropped (B's poison survives).
 * 3. A unmapped: a device read from A yields zeros (seen through C).
 * 4. A and B mapped again (new pattern): the round trip works again.
 */
static void roundtrip_at(struct __test_metadata *_metadata, FIXTURE_DATA(edu) *self,
			 uint64_t base)
{
	struct edu *e = &self->dev;
	const uint64_t A = base, B = base + 0x10000, C = base + 0x20000;
	uint32_t seed = random_seed(), seed2 = random_seed();
	uint8_t *src = edu_buf(PAGE_4K, 0);
	uint8_t *dst = edu_buf(PAGE_4K, 0xa5);
	uint8_t *zdst = edu_buf(PAGE_4K, 0xc3);
	uint64_t n = 0;

	if (seed2 == seed)
		seed2 ^= 0x5a5a0000;
	TH_LOG("base iova %#llx", (unsigned long long)base);
	fill_pattern(src, PAGE_4K, seed);
	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, B, dst, PAGE_4K, RW));

	/* 1. round trip */
	ASSERT_EQ(0, edu_dma_to_dev(e, A, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(e, 0, B, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(dst, PAGE_4K, seed)) TH_LOG("destination differs from source");

	/* 2. unmapped destination: the write is dropped */
	ASSERT_EQ(0, vfio_unmap(self->c, B, PAGE_4K, 0, &n));
	ASSERT_EQ(PAGE_4K, n);
	memset(dst, 0x5a, PAGE_4K);
	ASSERT_EQ(0, edu_dma_to_ram(e, 0, B, PAGE_4K));
	EXPECT_EQ(-1, check_fill(dst, PAGE_4K, 0x5a)) TH_LOG("DMA to an unmapped IOVA reached memory");

	/* 3. unmapped source: the device reads zeros, not the old page */
	ASSERT_EQ(0, vfio_unmap(self->c, A, PAGE_4K, 0, &n));
	ASSERT_EQ(PAGE_4K, n);
	ASSERT_EQ(0, vfio_map(self->c, C, zdst, PAGE_4K, RW));
	ASSERT_EQ(0, edu_dma_to_dev(e, A, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(e, 0, C, PAGE_4K));
	EXPECT_EQ(-1, check_fill(zdst, PAGE_4K, 0))
		TH_LOG("DMA from an unmapped IOVA did not read zeros (first byte %#x, pattern %s)",
		       zdst[0], check_pattern(zdst, PAGE_4K, seed) == -1 ? "leaked" : "absent");

	/* 4. map again */
	fill_pattern(src, PAGE_4K, seed2);
	memset(dst, 0xa5, PAGE_4K);
	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, B, dst, PAGE_4K, RW));
	ASSERT_EQ(0, edu_dma_to_dev(e, A, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(e, 0, B, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(dst, PAGE_4K, seed2)) TH_LOG("round trip after re-map failed");

	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	ASSERT_EQ(3 * PAGE_4K, n);
}

TEST_F_TIMEOUT(edu, roundtrip_unmap_remap_low_iova, DMA_TEST_TIMEOUT)
{
	roundtrip_at(_metadata, self, SZ_1M);
}

TEST_F_TIMEOUT(edu, roundtrip_unmap_remap_iova_above_4g, DMA_TEST_TIMEOUT)
{
	roundtrip_at(_metadata, self, SZ_4G + 0x12340000ull);
}

/* The last 64 KiB of the highest valid IOVA range (top of the page table). */
TEST_F_TIMEOUT(edu, roundtrip_at_top_of_iova_space, DMA_TEST_TIMEOUT)
{
	struct vfio_iova_range *r = NULL;
	uint32_t seed = random_seed();
	uint8_t *src = edu_buf(PAGE_4K, 0), *dst = edu_buf(PAGE_4K, 0x3c);
	uint64_t top, A, B, n = 0;
	int nr;

	nr = vfio_iova_ranges(self->c, &r);
	ASSERT_GT(nr, 0) TH_LOG("no IOVA_RANGE capability (%d)", nr);
	top = r[nr - 1].end;
	free(r);
	ASSERT_GT(top, SZ_4G);
	A = (top + 1) - 0x10000;
	B = (top + 1) - PAGE_4K;
	TH_LOG("top of IOVA space %#llx", (unsigned long long)top);
	fill_pattern(src, PAGE_4K, seed);
	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, B, dst, PAGE_4K, RW));
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, A, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, B, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(dst, PAGE_4K, seed));
	/* One page past the top cannot be mapped. */
	if (top != UINT64_MAX)
		EXPECT_EQ(-EINVAL, vfio_map(self->c, top + 1, dst, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	ASSERT_EQ(2 * PAGE_4K, n);
}

/* A READ-only mapping lets the device read but drops its writes. */
TEST_F_TIMEOUT(edu, device_write_through_readonly_mapping_dropped, DMA_TEST_TIMEOUT)
{
	const uint64_t A = 0x2000000, B = 0x2010000, C = 0x2020000;
	uint32_t seed = random_seed();
	uint8_t *src = edu_buf(PAGE_4K, 0), *ro = edu_buf(PAGE_4K, 0x77);
	uint8_t *check = edu_buf(PAGE_4K, 0);

	fill_pattern(src, PAGE_4K, seed);
	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, B, ro, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, C, check, PAGE_4K, RW));
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, A, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, B, PAGE_4K));
	EXPECT_EQ(-1, check_fill(ro, PAGE_4K, 0x77)) TH_LOG("device wrote through a READ-only mapping");
	/* The edu buffer did hold the pattern: the write was refused, not empty. */
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, C, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(check, PAGE_4K, seed));
}

/*
 * A WRITE-only mapping takes device writes. (Device reads through it are not
 * checked: on this rig they return the memory even with upstream type1, whose
 * VT-d PTE has only the write bit, so that is the emulated IOMMU's doing.)
 */
TEST_F_TIMEOUT(edu, write_only_mapping_takes_device_writes, DMA_TEST_TIMEOUT)
{
	const uint64_t A = 0x3000000, W = 0x3010000;
	uint32_t seed = random_seed();
	uint8_t *src = edu_buf(PAGE_4K, 0), *wo = edu_buf(PAGE_4K, 0x99);
	uint64_t n = 0;

	fill_pattern(src, PAGE_4K, seed);
	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, W, wo, PAGE_4K, WO));
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, A, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, W, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(wo, PAGE_4K, seed)) TH_LOG("device write to WRITE-only mapping lost");
	ASSERT_EQ(0, vfio_unmap(self->c, W, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
}

/* UNMAP_DMA reports exactly the bytes it removed, whole mappings at a time. */
TEST_F(edu, unmap_reports_exact_size)
{
	uint8_t *p4 = edu_buf(PAGE_4K, 1), *p16 = edu_buf(4 * PAGE_4K, 2);
	uint8_t *p2m = edu_buf(SZ_2M, 3), *q4 = edu_buf(PAGE_4K, 4), *q8 = edu_buf(2 * PAGE_4K, 5);
	uint64_t n;

	ASSERT_EQ(0, vfio_map(self->c, 0x200000, p4, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, 0x300000, p16, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, 0x400000, p2m, SZ_2M, RW));
	ASSERT_EQ(0, vfio_map(self->c, 0x800000, q4, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, 0x810000, q8, 2 * PAGE_4K, RW));

	n = 1;
	ASSERT_EQ(0, vfio_unmap(self->c, 0x200000, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	n = 1;
	ASSERT_EQ(0, vfio_unmap(self->c, 0x300000, 4 * PAGE_4K, 0, &n));
	EXPECT_EQ(4 * PAGE_4K, n);
	n = 1;
	ASSERT_EQ(0, vfio_unmap(self->c, 0x400000, SZ_2M, 0, &n));
	EXPECT_EQ(SZ_2M, n);
	/* One range over two mappings with a hole between them: their sum. */
	n = 1;
	ASSERT_EQ(0, vfio_unmap(self->c, 0x800000, SZ_1M, 0, &n));
	EXPECT_EQ(3 * PAGE_4K, n);
	/* Everything is gone now: the same ranges unmap nothing. */
	n = 1;
	ASSERT_EQ(0, vfio_unmap(self->c, 0x200000, 0x800000, 0, &n));
	EXPECT_EQ(0, n);
	/* And can be mapped again (no EEXIST from leftovers). */
	ASSERT_EQ(0, vfio_map(self->c, 0x400000, p2m, SZ_2M, RW));
	ASSERT_EQ(0, vfio_map(self->c, 0x810000, q8, 2 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ(SZ_2M + 2 * PAGE_4K, n);
}

/* UNMAP_DMA with FLAG_ALL removes every mapping and reports the total. */
TEST_F_TIMEOUT(edu, unmap_all_removes_everything_and_reports_total, DMA_TEST_TIMEOUT)
{
	const uint64_t A = SZ_1M, B = SZ_4G + 0x10000, D = 0x30000000;
	uint32_t seed = random_seed();
	uint8_t *src = edu_buf(PAGE_4K, 0), *dst = edu_buf(16 * PAGE_4K, 0x42);
	uint8_t *d8 = edu_buf(2 * PAGE_4K, 0);
	uint64_t n = 0;

	fill_pattern(src, PAGE_4K, seed);
	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, B, dst, 16 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, D, d8, 2 * PAGE_4K, RW));
	/* Load the edu buffer with the pattern while A is mapped. */
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, A, 0, PAGE_4K));

	n = 0;
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ(19 * PAGE_4K, n);

	/* The device cannot write to what was B any more. */
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, B + 3 * PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_fill(dst, 16 * PAGE_4K, 0x42)) TH_LOG("DMA reached memory after UNMAP ALL");

	/* Nothing left: a second UNMAP ALL reports 0, and the IOVAs are free. */
	n = 1;
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ(0, n);
	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, B, dst, 16 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, D, d8, 2 * PAGE_4K, RW));
	n = 0;
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ(19 * PAGE_4K, n);
}

/*
 * DMA at offsets inside a 16-page mapping, including transfers that cross a
 * page boundary (consecutive IOVA pages must reach the right, possibly
 * discontiguous, physical pages). Bytes outside the target stay untouched.
 */
TEST_F_TIMEOUT(edu, dma_at_offsets_within_multipage_mapping, DMA_TEST_TIMEOUT)
{
	const uint64_t A = 0x5000000, M = 0x5100000, C = 0x5200000;
	const size_t big = 16 * PAGE_4K;
	uint32_t seed = random_seed(), seed2 = random_seed() ^ 0x1234;
	uint8_t *src = edu_buf(PAGE_4K, 0), *mem = edu_buf(big, 0xee);
	uint8_t *out = edu_buf(PAGE_4K, 0xdd), *expect = malloc(big);
	const size_t off1 = 5 * PAGE_4K + 256;		/* inside page 5 */
	const size_t off2 = 7 * PAGE_4K - 512;		/* across pages 6/7 */
	const size_t off3 = 12 * PAGE_4K - 300;		/* across pages 11/12, read */

	ASSERT_NE(NULL, expect);
	fill_pattern(src, PAGE_4K, seed);
	memset(expect, 0xee, big);
	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, M, mem, big, RW));
	ASSERT_EQ(0, vfio_map(self->c, C, out, PAGE_4K, RW));

	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, A, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, M + off1, 1024));
	memcpy(expect + off1, src, 1024);
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 1024, M + off2, 1024));
	memcpy(expect + off2, src + 1024, 1024);
	for (size_t i = 0; i < big; i++)
		if (mem[i] != expect[i]) {
			ASSERT_EQ(expect[i], mem[i])
				TH_LOG("byte %zu (page %zu) of the mapping is wrong", i, i / PAGE_4K);
		}

	/* Device reads from an offset spanning two pages. */
	fill_pattern(mem + off3, 1024, seed2);
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, M + off3, 2048, 1024));
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 2048, C, 1024));
	EXPECT_EQ(-1, check_pattern(out, 1024, seed2)) TH_LOG("read across a page boundary wrong");
	EXPECT_EQ(-1, check_fill(out + 1024, PAGE_4K - 1024, 0xdd));
	free(expect);
}

/*
 * A second group attached to a container that already has mappings sees
 * them; unmapping reaches both devices; after the second group leaves, the
 * first device still works.
 */
TEST_F_TIMEOUT(edu, second_group_sees_existing_mappings, DMA_TEST_TIMEOUT)
{
	const uint64_t A = 0x6000000, B = 0x6010000;
	uint32_t seed = random_seed(), seed2 = random_seed() ^ 0x77;
	uint8_t *src = edu_buf(PAGE_4K, 0), *dst = edu_buf(PAGE_4K, 0x10);
	struct edu e2;
	char err[256] = "";
	uint64_t n;

	if (edu_count() < 2)
		SKIP(return, "needs a second edu device in EDU_BDFS");
	fill_pattern(src, PAGE_4K, seed);
	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, B, dst, PAGE_4K, RW));

	/* Attach the second group to this container (IOMMU already set). */
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), self->c, 0, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, edu_dma_to_dev(&e2, A, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(&e2, 0, B, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(dst, PAGE_4K, seed)) TH_LOG("second device missed an existing mapping");

	/* Unmapping B stops the second device's writes too. */
	ASSERT_EQ(0, vfio_unmap(self->c, B, PAGE_4K, 0, &n));
	ASSERT_EQ(PAGE_4K, n);
	memset(dst, 0x20, PAGE_4K);
	ASSERT_EQ(0, edu_dma_to_ram(&e2, 0, B, PAGE_4K));
	EXPECT_EQ(-1, check_fill(dst, PAGE_4K, 0x20)) TH_LOG("second device wrote to an unmapped IOVA");
	edu_close(&e2);

	/* First device, after the second group left: a new mapping works. */
	fill_pattern(src, PAGE_4K, seed2);
	ASSERT_EQ(0, vfio_map(self->c, B, dst, PAGE_4K, RW));
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, A, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, B, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(dst, PAGE_4K, seed2));
}

/* Same round trip in a type1 (v1) container. */
TEST(type1v1_container_dma_roundtrip)
{
	const uint64_t A = SZ_1M, B = SZ_1M + 0x10000;
	uint32_t seed = random_seed();
	uint8_t *src, *dst;
	struct edu e;
	char err[256] = "";
	uint64_t n = 0;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	src = alloc_pages_4k(PAGE_4K, 0);
	dst = alloc_pages_4k(PAGE_4K, 0x81);
	ASSERT_NE(MAP_FAILED, src);
	ASSERT_NE(MAP_FAILED, dst);
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	fill_pattern(src, PAGE_4K, seed);
	ASSERT_EQ(0, vfio_map(e.container, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(e.container, B, dst, PAGE_4K, RW));
	ASSERT_EQ(0, edu_dma_to_dev(&e, A, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(&e, 0, B, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(dst, PAGE_4K, seed));
	ASSERT_EQ(0, vfio_unmap_all(e.container, &n));
	EXPECT_EQ(2 * PAGE_4K, n);
	edu_close(&e);
	munmap(src, PAGE_4K);
	munmap(dst, PAGE_4K);
}

/* Try to get one free 2 MiB hugetlb page; returns the old nr_hugepages or -1. */
static long reserve_hugepage(void)
{
	long nr = -1, free_pages = -1;
	FILE *f;

	f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &free_pages) != 1)
		free_pages = -1;
	fclose(f);
	f = fopen("/proc/sys/vm/nr_hugepages", "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &nr) != 1)
		nr = -1;
	fclose(f);
	if (nr < 0 || free_pages < 0)
		return -1;
	if (free_pages == 0) {
		f = fopen("/proc/sys/vm/nr_hugepages", "we");
		if (!f)
			return -1;
		fprintf(f, "%ld\n", nr + 1);
		fclose(f);
	}
	return nr;
}

static void restore_hugepages(long nr)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "we");

	if (f) {
		fprintf(f, "%ld\n", nr);
		fclose(f);
	}
}

/* A 2 MiB hugetlb page mapped as one IOVA range: DMA at an offset inside it. */
TEST_F_TIMEOUT(edu, hugetlb_page_mapping_dma_at_offset, DMA_TEST_TIMEOUT)
{
	const uint64_t A = 0x7000000, H = 0x40000000;	/* H 2 MiB aligned */
	const size_t off = 0x123000 + 0x80;
	uint32_t seed = random_seed();
	uint8_t *src = edu_buf(PAGE_4K, 0), *h;
	long old_nr, lck0, lck1;
	uint64_t n = 0;

	old_nr = reserve_hugepage();
	h = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (h == MAP_FAILED) {
		int err = errno;

		if (old_nr >= 0)
			restore_hugepages(old_nr);
		SKIP(return, "no 2 MiB hugetlb page available (mmap MAP_HUGETLB: %s)", strerror(err));
	}
	memset(h, 0x61, SZ_2M);
	fill_pattern(src, PAGE_4K, seed);

	lck0 = vmlck_kb();
	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, H, h, SZ_2M, RW));
	lck1 = vmlck_kb();
	EXPECT_EQ(lck0 + 4 + 2048, lck1) TH_LOG("VmLck %ld -> %ld kB", lck0, lck1);
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, A, 0, 512));
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, H + off, 512));
	EXPECT_EQ(-1, check_pattern(h + off, 512, seed));
	EXPECT_EQ(-1, check_fill(h, off, 0x61));
	EXPECT_EQ(-1, check_fill(h + off + 512, SZ_2M - off - 512, 0x61));
	ASSERT_EQ(0, vfio_unmap(self->c, H, SZ_2M, 0, &n));
	EXPECT_EQ(SZ_2M, n);
	EXPECT_EQ(lck0 + 4, vmlck_kb());
	munmap(h, SZ_2M);
	if (old_nr >= 0)
		restore_hugepages(old_nr);
}

TEST_HARNESS_MAIN

/* The pfn behind @va (root sees pfns in /proc/self/pagemap), 0 if none. */
static uint64_t pfn_of(int pm, const void *va)
{
	uint64_t e = 0;
	off_t off = (off_t)((uintptr_t)va / PAGE_4K) * sizeof(e);

	if (pread(pm, &e, sizeof(e), off) != sizeof(e) || !(e & (1ULL << 63)))
		return 0;
	return e & ((1ULL << 55) - 1);
}

/*
 * 36 MiB of 4 KiB pages of which no two neighbours are physically adjacent
 * (like the bench's 4k_frag memory): one run per page, so the mapping goes
 * through many scatterlist batches (256 runs each) and two locked_vm
 * charges (every 8192 pages). Device reads and writes at pages on both
 * sides of those boundaries must reach exactly their own page.
 */
TEST_F_TIMEOUT(edu, fragmented_memory_every_run_at_its_iova, DMA_TEST_TIMEOUT)
{
	const size_t size = 36 << 20, npages = size / PAGE_4K;
	const uint64_t A = 0x40000000, M = 0x41000000, C = 0x40010000;
	const size_t probe[] = { 0, 1, 254, 255, 256, 257, 511, 512, 4095, 4096,
				 8190, 8191, 8192, 8193, npages - 2, npages - 1 };
	uint8_t *src = edu_buf(PAGE_4K, 0), *out = edu_buf(PAGE_4K, 0);
	uint8_t *hold = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t adjacent = 0, absent = 0;
	uint64_t n = 0, prev = 0;
	cpu_set_t one, all;
	int pm;

	ASSERT_NE(MAP_FAILED, hold);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_EQ(0, madvise(hold, 2 * size, MADV_NOHUGEPAGE));
	ASSERT_EQ(0, madvise(mem, size, MADV_NOHUGEPAGE));
	/*
	 * Fault in 2x, free every other page, then fault the buffer in: it
	 * gets the freed pages, which are never neighbours. On one CPU: pages
	 * freed into one CPU's free list are not what another CPU allocates.
	 */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
	ASSERT_EQ(0, sched_getaffinity(0, sizeof(all), &all));
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(one), &one));
	memset(hold, 1, 2 * size);
	for (size_t off = PAGE_4K; off < 2 * size; off += 2 * PAGE_4K)
		ASSERT_EQ(0, madvise(hold + off, PAGE_4K, MADV_DONTNEED));
	memset(mem, 0xee, size);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(all), &all));

	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, pm);
	for (size_t i = 0; i < npages; i++) {
		uint64_t pfn = pfn_of(pm, mem + i * PAGE_4K);

		absent += !pfn;
		adjacent += pfn && prev && pfn == prev + 1;
		prev = pfn;
	}
	close(pm);
	ASSERT_EQ(0, absent) TH_LOG("pagemap shows no pfn (not root?)");
	TH_LOG("%zu pages, %zu physically adjacent pairs", npages, adjacent);
	if (adjacent > npages / 4)
		SKIP(goto out, "memory came out contiguous (%zu of %zu pairs adjacent): the "
			       "many-run path would not be exercised", adjacent, npages);

	ASSERT_EQ(0, vfio_map(self->c, A, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, C, out, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, M, mem, size, RW));
	for (size_t k = 0; k < sizeof(probe) / sizeof(probe[0]); k++) {
		size_t i = probe[k];
		uint8_t *page = mem + i * PAGE_4K;
		uint32_t seed = random_seed() ^ (uint32_t)i;

		/* Device reads page i. */
		fill_pattern(page, PAGE_4K, seed);
		ASSERT_EQ(0, edu_dma_to_dev(&self->dev, M + i * PAGE_4K, 0, PAGE_4K));
		ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, C, PAGE_4K));
		ASSERT_EQ(-1, check_pattern(out, PAGE_4K, seed))
			TH_LOG("device read of page %zu got other memory", i);
		/* Device writes page i; its neighbours keep their bytes. */
		fill_pattern(src, PAGE_4K, seed ^ 0x5a5a5a5a);
		memset(page, 0xee, PAGE_4K);
		ASSERT_EQ(0, edu_dma_to_dev(&self->dev, A, 0, PAGE_4K));
		ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, M + i * PAGE_4K, PAGE_4K));
		ASSERT_EQ(-1, check_pattern(page, PAGE_4K, seed ^ 0x5a5a5a5a))
			TH_LOG("device write to page %zu did not land there", i);
		if (i > 0)
			ASSERT_EQ(-1, check_fill(page - 64, 64, 0xee))
				TH_LOG("write to page %zu reached page %zu", i, i - 1);
		if (i + 1 < npages)
			ASSERT_EQ(-1, check_fill(page + PAGE_4K, 64, 0xee))
				TH_LOG("write to page %zu reached page %zu", i, i + 1);
		/* Back to the fill, for the neighbour checks of the next probes. */
		memset(page, 0xee, PAGE_4K);
	}
	ASSERT_EQ(0, vfio_unmap(self->c, M, size, 0, &n));
	EXPECT_EQ(size, n);
	/* Unmapped: a device read of the range yields nothing of it. */
	fill_pattern(mem, PAGE_4K, 0x1234);
	memset(out, 0xc3, PAGE_4K);
	edu_dma_to_dev(&self->dev, M, 0, PAGE_4K);
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, C, PAGE_4K));
	EXPECT_NE(-1, check_pattern(out, PAGE_4K, 0x1234));
out:
	munmap(mem, size);
	munmap(hold, 2 * size);
}
