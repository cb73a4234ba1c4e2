// SPDX-License-Identifier: GPL-2.0
/*
 * nesting_test - the nesting container: a guest's stage-1 page table bound
 * to a group (include/uapi/linux/rvfio.h, Documentation/uapi.rst).
 *
 * The test plays the guest: it builds an x86-64 (VT-d first-stage) table in
 * memory it maps with MAP_DMA, so that its tables sit at guest-physical
 * addresses (container IOVAs), binds it and has the edu device DMA to
 * stage-1 IOVAs. The bytes must land in exactly the stage-2 page the table
 * names, and a decoy page mapped in stage 2 at the stage-1 IOVA itself must
 * stay untouched. Every address used is inside edu's DMA window (the VM's edu
 * devices take a 64-bit DMA mask) and clear of the interrupt window
 * 0xfee00000-0xfeefffff.
 *
 * The layout (guest-physical = container IOVA):
 *   0x100000 PML4, 0x101000 PDPT, 0x102000 PD, 0x103000 PT: one mapping each
 *   0x800000 D, 0x801000 D2: data pages; 0x810000 SRC: a source page
 *   0x5000, 0x6000: decoys (stage-2 pages at the stage-1 IOVAs used)
 *   stage 1: 0x5000 -> D, 0x6000 -> D2, 0x10000 -> SRC (read-only)
 *
 * upstream's type1 has no stage-1 bind: on it only type1_nesting_as_upstream
 * runs, the rest skips with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/rvfio.h>

#include "kselftest_harness.h"
#include "vfio_edu.h"
#include "vfio_util.h"

#define RO	VFIO_DMA_MAP_FLAG_READ
#define RW	(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)

#define DMA_TEST_TIMEOUT	300

/* x86-64 paging entry bits. */
#define E_P	(1ull << 0)
#define E_RW	(1ull << 1)
#define E_US	(1ull << 2)
#define E_PS	(1ull << 7)
#define E_OK	(E_P | E_RW | E_US)

#define T_PML4	0x100000ull
#define T_PDPT	0x101000ull
#define T_PD	0x102000ull
#define T_PT	0x103000ull
#define D_GPA	0x800000ull
#define D2_GPA	0x801000ull
#define SRC_GPA	0x810000ull
#define S1_A	0x5000ull	/* -> D; also the first decoy's GPA */
#define S1_B	0x6000ull	/* -> D2; also the second decoy's GPA */
#define S1_SRC	0x10000ull	/* -> SRC */

#define SZ_1G	0x40000000ull
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB	(30 << 26)
#endif

#define FILL_D		0x77
#define FILL_DECOY	0xdc

#define SKIP_UNLESS_RVFIO() do { \
	if (!backend_is_rvfio()) \
		SKIP(return, "rvfio only: upstream 6.12 type1 has no stage-1 bind " \
		     "(its VFIO_TYPE1_NESTING_IOMMU attach fails on Intel; " \
		     "type1_nesting_as_upstream checks that)"); \
} while (0)

/* --- The fixture: a nesting container, the table and the pages. --- */

#define MAX_BUFS 16

FIXTURE(nest) {
	struct edu dev;
	int c, gid;
	uint64_t *pml4, *pdpt, *pd, *pt;	/* the table pages */
	uint8_t *d, *d2, *src, *decoy, *decoy2;
	struct { void *p; size_t len; } bufs[MAX_BUFS];
	int nbufs;
};

static void *fx_buf(struct __test_metadata *_metadata, FIXTURE_DATA(nest) *self,
		    size_t len, uint8_t fill)
{
	void *p;

	ASSERT_LT(self->nbufs, MAX_BUFS);
	p = alloc_pages_4k(len, fill);
	ASSERT_NE(MAP_FAILED, p);
	self->bufs[self->nbufs].p = p;
	self->bufs[self->nbufs].len = len;
	self->nbufs++;
	return p;
}
#define buf(len, fill) fx_buf(_metadata, self, (len), (fill))

/* Maps a fresh page (or len bytes) at @gpa and returns it. */
static void *fx_map(struct __test_metadata *_metadata, FIXTURE_DATA(nest) *self,
		    uint64_t gpa, size_t len, uint8_t fill, uint32_t prot)
{
	void *p = fx_buf(_metadata, self, len, fill);

	ASSERT_EQ(0, vfio_map(self->c, gpa, p, len, prot)) TH_LOG("map %#llx", (unsigned long long)gpa);
	return p;
}
#define map_at(gpa, len, fill, prot) fx_map(_metadata, self, (gpa), (len), (fill), (prot))

FIXTURE_SETUP(nest)
{
	char err[256] = "";
	int ret;

	self->nbufs = 0;
	self->dev.container = self->dev.group = self->dev.device = -1;
	self->dev.bar0 = NULL;
	if (access("/dev/vfio/vfio", F_OK))
		SKIP(return, "/dev/vfio/vfio does not exist: vfio is not loaded");
	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	SKIP_UNLESS_RVFIO();
	ret = edu_open(&self->dev, edu_bdf(0), -1, VFIO_TYPE1_NESTING_IOMMU, err, sizeof(err));
	ASSERT_EQ(0, ret) TH_LOG("setup: %s", err);
	self->c = self->dev.container;
	self->gid = self->dev.group_id;
	self->pml4 = map_at(T_PML4, PAGE_4K, 0, RW);
	self->pdpt = map_at(T_PDPT, PAGE_4K, 0, RW);
	self->pd = map_at(T_PD, PAGE_4K, 0, RW);
	self->pt = map_at(T_PT, PAGE_4K, 0, RW);
	self->d = map_at(D_GPA, PAGE_4K, FILL_D, RW);
	self->d2 = map_at(D2_GPA, PAGE_4K, FILL_D, RW);
	self->src = map_at(SRC_GPA, PAGE_4K, 0, RO);
	self->decoy = map_at(S1_A, PAGE_4K, FILL_DECOY, RW);
	self->decoy2 = map_at(S1_B, PAGE_4K, FILL_DECOY, RW);
	self->pml4[0] = T_PDPT | E_OK;
	self->pdpt[0] = T_PD | E_OK;
	self->pd[0] = T_PT | E_OK;
	self->pt[S1_A >> 12] = D_GPA | E_OK;
	self->pt[S1_B >> 12] = D2_GPA | E_OK;
	self->pt[S1_SRC >> 12] = SRC_GPA | E_P | E_US;	/* read-only */
}

FIXTURE_TEARDOWN(nest)
{
	edu_close(&self->dev);
	for (int i = 0; i < self->nbufs; i++)
		munmap(self->bufs[i].p, self->bufs[i].len);
	self->nbufs = 0;
}

/* The pages a stray DMA could reach are as they were filled. */
#define ASSERT_UNTOUCHED() do { \
	EXPECT_EQ(-1, check_fill(self->d, PAGE_4K, FILL_D)) TH_LOG("D changed"); \
	EXPECT_EQ(-1, check_fill(self->d2, PAGE_4K, FILL_D)) TH_LOG("D2 changed"); \
	EXPECT_EQ(-1, check_fill(self->decoy, PAGE_4K, FILL_DECOY)) TH_LOG("decoy changed"); \
	EXPECT_EQ(-1, check_fill(self->decoy2, PAGE_4K, FILL_DECOY)) TH_LOG("decoy 2 changed"); \
} while (0)

#define RESET_PAGES() do { \
	memset(self->d, FILL_D, PAGE_4K); \
	memset(self->d2, FILL_D, PAGE_4K); \
	memset(self->decoy, FILL_DECOY, PAGE_4K); \
	memset(self->decoy2, FILL_DECOY, PAGE_4K); \
} while (0)

/* Device copies a fresh pattern from SRC (through @src) to @dst; @mem is
 * where it must arrive. */
#define ASSERT_LANDS(src_iova, dst_iova, mem) do { \
	uint32_t __s = random_seed(); \
	fill_pattern(self->src, PAGE_4K, __s); \
	ASSERT_EQ(0, edu_copy(&self->dev, (src_iova), (dst_iova), PAGE_4K)); \
	EXPECT_EQ(-1, check_pattern((mem), PAGE_4K, __s)) \
		TH_LOG("copy %#llx -> %#llx did not land where expected", \
		       (unsigned long long)(src_iova), (unsigned long long)(dst_iova)); \
} while (0)

/* A device write to @dst_iova (a pattern read through stage-1 SRC) lands
 * nowhere the test can see. */
#define ASSERT_WRITE_DROPPED(dst_iova) do { \
	RESET_PAGES(); \
	fill_pattern(self->src, PAGE_4K, random_seed()); \
	ASSERT_EQ(0, edu_copy(&self->dev, S1_SRC, (dst_iova), PAGE_4K)); \
	ASSERT_UNTOUCHED(); \
} while (0)

/*
 * Bound: stage-1 IOVAs translate through the table, both directions; the
 * decoys at the same addresses in stage 2 are untouched. Unbound again: the
 * same IOVA is a guest-physical address.
 */
TEST_F_TIMEOUT(nest, bind_4k_leaves_both_directions_then_unbind, DMA_TEST_TIMEOUT)
{
	uint32_t flags = 0;
	uint32_t seed = random_seed();

	/* Not bound yet: 0x5000 is the decoy's guest-physical address. */
	ASSERT_LANDS(SRC_GPA, S1_A, self->decoy);
	RESET_PAGES();
	EXPECT_EQ(RVFIO_NESTING_GROUP_SOFTWARE,
		  nesting_group_flags(self->c, self->gid) & ~RVFIO_NESTING_GROUP_HW_CAPABLE);

	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, &flags));
	EXPECT_TRUE(flags & RVFIO_NESTING_GROUP_BOUND);
	EXPECT_TRUE(flags & RVFIO_NESTING_GROUP_SOFTWARE);
	EXPECT_TRUE(nesting_group_flags(self->c, self->gid) & RVFIO_NESTING_GROUP_BOUND);

	/* Device write through stage 1: lands in D only. */
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	EXPECT_EQ(-1, check_fill(self->decoy, PAGE_4K, FILL_DECOY));
	EXPECT_EQ(-1, check_fill(self->d2, PAGE_4K, FILL_D));
	/* Device read through stage 1: D2's bytes reach D. */
	fill_pattern(self->d2, PAGE_4K, seed);
	ASSERT_EQ(0, edu_copy(&self->dev, S1_B, S1_A, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(self->d, PAGE_4K, seed));
	EXPECT_EQ(-1, check_fill(self->decoy, PAGE_4K, FILL_DECOY));
	EXPECT_EQ(-1, check_fill(self->decoy2, PAGE_4K, FILL_DECOY));
	/* A guest-physical address that stage 1 does not map: a hole. */
	ASSERT_WRITE_DROPPED(SRC_GPA);

	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));
	EXPECT_FALSE(nesting_group_flags(self->c, self->gid) & RVFIO_NESTING_GROUP_BOUND);
	RESET_PAGES();
	ASSERT_LANDS(SRC_GPA, S1_A, self->decoy);
	EXPECT_EQ(-1, check_fill(self->d, PAGE_4K, FILL_D));
	/* And bound once more: stage 1 again. */
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	RESET_PAGES();
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	EXPECT_EQ(-1, check_fill(self->decoy, PAGE_4K, FILL_DECOY));
}

/* Read-only at the leaf or above: device writes are dropped, reads work. */
TEST_F_TIMEOUT(nest, read_only_entries_drop_writes, DMA_TEST_TIMEOUT)
{
	uint32_t seed = random_seed();

	self->pt[S1_A >> 12] = D_GPA | E_P | E_US;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_WRITE_DROPPED(S1_A);
	/* Reading through the read-only entry works: D's bytes reach D2. */
	fill_pattern(self->d, PAGE_4K, seed);
	ASSERT_EQ(0, edu_copy(&self->dev, S1_A, S1_B, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(self->d2, PAGE_4K, seed));
	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));

	/* R/W clear in the PD entry: every leaf below is read-only. */
	self->pt[S1_A >> 12] = D_GPA | E_OK;
	self->pd[0] = T_PT | E_P | E_US;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_WRITE_DROPPED(S1_A);
	ASSERT_WRITE_DROPPED(S1_B);
	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));

	/* Writable stage 1 over a read-only stage 2: read-only. */
	self->pd[0] = T_PT | E_OK;
	self->pt[S1_A >> 12] = SRC_GPA | E_OK;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	memset(self->src, 0x3e, PAGE_4K);
	ASSERT_EQ(0, edu_copy(&self->dev, S1_B, S1_A, PAGE_4K));
	EXPECT_EQ(-1, check_fill(self->src, PAGE_4K, 0x3e)) TH_LOG("wrote a read-only stage 2");
}

/* Not present, or supervisor-only (U/S clear): nothing lands, reads are 0. */
TEST_F_TIMEOUT(nest, not_present_and_supervisor_entries_are_holes, DMA_TEST_TIMEOUT)
{
	self->pt[S1_A >> 12] = D_GPA | E_RW | E_US;		/* P clear */
	self->pt[S1_B >> 12] = D2_GPA | E_P | E_RW;		/* U/S clear */
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_WRITE_DROPPED(S1_A);
	ASSERT_WRITE_DROPPED(S1_B);
	/* A read from the hole gives zeros (seen through a valid entry). */
	self->pt[0x7] = D_GPA | E_OK;
	ASSERT_EQ(0, nesting_invalidate(self->c, self->gid, 0x7000, 1, NULL));
	memset(self->d2, 0x44, PAGE_4K);
	ASSERT_EQ(0, edu_copy(&self->dev, S1_B, 0x7000, PAGE_4K));
	EXPECT_EQ(-1, check_fill(self->d, PAGE_4K, 0)) TH_LOG("read from a hole was not zeros");
}

/*
 * Caching mode: a changed entry is used only after an invalidation of its
 * range, from not present to present too. Other entries keep working.
 */
TEST_F_TIMEOUT(nest, changes_take_effect_after_invalidation, DMA_TEST_TIMEOUT)
{
	uint32_t done = 99;

	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	RESET_PAGES();

	/* Retarget 0x5000 to D2: still D until invalidated. */
	self->pt[S1_A >> 12] = D2_GPA | E_OK;
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	RESET_PAGES();
	ASSERT_EQ(0, nesting_invalidate(self->c, self->gid, S1_A, 1, &done));
	EXPECT_EQ(1, done);
	ASSERT_LANDS(S1_SRC, S1_A, self->d2);
	EXPECT_EQ(-1, check_fill(self->d, PAGE_4K, FILL_D));
	RESET_PAGES();

	/* Not present -> present: a hole until invalidated. */
	self->pt[0x20] = D_GPA | E_OK;
	ASSERT_WRITE_DROPPED(0x20000);
	/* An invalidation of another page does not make it appear... */
	ASSERT_EQ(0, nesting_invalidate(self->c, self->gid, 0x21000, 1, NULL));
	ASSERT_WRITE_DROPPED(0x20000);
	/* ...one of a 512-page range that holds it does. */
	ASSERT_EQ(0, nesting_invalidate(self->c, self->gid, 0, 512, NULL));
	ASSERT_LANDS(S1_SRC, 0x20000, self->d);
	RESET_PAGES();

	/* Present -> not present, invalidated with "everything". */
	self->pt[0x20] = 0;
	ASSERT_EQ(0, nesting_invalidate(self->c, self->gid, 0, UINT64_MAX, NULL));
	ASSERT_WRITE_DROPPED(0x20000);
	/* 0x6000 -> D2 was never touched and still translates. */
	ASSERT_LANDS(S1_SRC, S1_B, self->d2);
}

/* Maps a hugetlb page of @size (2 MiB or 1 GiB); MAP_FAILED if none. */
static void *hugetlb_page(size_t size)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB;

	if (size == SZ_1G)
		flags |= MAP_HUGE_1GB;
	return mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
}

/*
 * A 2 MiB stage-1 leaf over 4 KiB stage-2 pages, and over a 2 MiB hugetlb
 * page: bytes land at the offset inside the leaf, nowhere else.
 */
static void two_meg_leaf(struct __test_metadata *_metadata, FIXTURE_DATA(nest) *self,
			 uint8_t *target)
{
	const uint64_t base = 0x1000000, s1 = 0x200000, off = 0x123000;
	uint8_t *decoy = map_at(s1 + off, PAGE_4K, FILL_DECOY, RW);
	uint32_t seed = random_seed();

	memset(target, 0x61, SZ_2M);
	ASSERT_EQ(0, vfio_map(self->c, base, target, SZ_2M, RW));
	self->pd[1] = base | E_PS | E_OK;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_LANDS(S1_SRC, s1 + off, target + off);
	EXPECT_EQ(-1, check_fill(target, off, 0x61));
	EXPECT_EQ(-1, check_fill(target + off + PAGE_4K, SZ_2M - off - PAGE_4K, 0x61));
	EXPECT_EQ(-1, check_fill(decoy, PAGE_4K, FILL_DECOY));
	/* The leaf's last page, read into D. */
	fill_pattern(target + SZ_2M - PAGE_4K, PAGE_4K, seed);
	ASSERT_EQ(0, edu_copy(&self->dev, s1 + SZ_2M - PAGE_4K, S1_A, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(self->d, PAGE_4K, seed));
	/* A 4 KiB leaf into the middle of the same stage-2 memory. */
	self->pt[0x30] = (base + 0x5000) | E_OK;
	ASSERT_EQ(0, nesting_invalidate(self->c, self->gid, 0x30000, 1, NULL));
	ASSERT_LANDS(S1_SRC, 0x30000, target + 0x5000);
	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));
}

TEST_F_TIMEOUT(nest, leaf_2m_over_4k_stage2, DMA_TEST_TIMEOUT)
{
	two_meg_leaf(_metadata, self, buf(SZ_2M, 0));
}

TEST_F_TIMEOUT(nest, leaf_2m_over_hugetlb_stage2, DMA_TEST_TIMEOUT)
{
	uint8_t *h = hugetlb_page(SZ_2M);

	if (h == MAP_FAILED)
		SKIP(return, "no 2 MiB hugetlb page (mmap: %s); the VM reserves 64 at boot",
		     strerror(errno));
	two_meg_leaf(_metadata, self, h);
	edu_close(&self->dev);	/* unpin before the page goes */
	munmap(h, SZ_2M);
}

/* A 1 GiB stage-1 leaf over single 4 KiB stage-2 pages inside its range. */
TEST_F_TIMEOUT(nest, leaf_1g_over_4k_stage2, DMA_TEST_TIMEOUT)
{
	const uint64_t base = 0x80000000ull, s1 = SZ_1G, off = 0x2345000;
	uint8_t *p = map_at(base + off, PAGE_4K, 0, RW);
	uint8_t *last = map_at(base + SZ_1G - PAGE_4K, PAGE_4K, 0, RW);
	uint8_t *decoy = map_at(s1 + off, PAGE_4K, FILL_DECOY, RW);
	uint32_t seed = random_seed();

	self->pdpt[1] = base | E_PS | E_OK;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_LANDS(S1_SRC, s1 + off, p);
	EXPECT_EQ(-1, check_fill(decoy, PAGE_4K, FILL_DECOY));
	fill_pattern(last, PAGE_4K, seed);
	ASSERT_EQ(0, edu_copy(&self->dev, s1 + SZ_1G - PAGE_4K, S1_A, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(self->d, PAGE_4K, seed));
	/* Inside the leaf but not in stage 2: a hole. */
	ASSERT_WRITE_DROPPED(s1 + off + PAGE_4K);
}

/* A 1 GiB stage-1 leaf over a 1 GiB hugetlb page (one reserved at boot). */
TEST_F_TIMEOUT(nest, leaf_1g_over_hugetlb_1g_stage2, DMA_TEST_TIMEOUT)
{
	const uint64_t base = 4 * SZ_1G, s1 = SZ_1G, off = 0x2345000;
	uint8_t *h = hugetlb_page(SZ_1G);

	if (h == MAP_FAILED)
		SKIP(return, "no 1 GiB hugetlb page (mmap: %s); the VM reserves one at boot",
		     strerror(errno));
	memset(h + off - PAGE_4K, 0x61, 3 * PAGE_4K);
	ASSERT_EQ(0, vfio_map(self->c, base, h, SZ_1G, RW));
	self->pdpt[1] = base | E_PS | E_OK;
	/* And a 4 KiB leaf into the same hugetlb page. */
	self->pt[0x40] = (base + 0x7000) | E_OK;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_LANDS(S1_SRC, s1 + off, h + off);
	EXPECT_EQ(-1, check_fill(h + off - PAGE_4K, PAGE_4K, 0x61));
	EXPECT_EQ(-1, check_fill(h + off + PAGE_4K, PAGE_4K, 0x61));
	ASSERT_LANDS(S1_SRC, 0x40000, h + 0x7000);
	edu_close(&self->dev);
	munmap(h, SZ_1G);
}

/*
 * Stage-2 UNMAP of a leaf target while bound: the DMA no longer lands, the
 * page is unpinned at once; mapping it again makes the entry translate
 * again without an invalidation (hardware nesting would see it at once).
 */
TEST_F_TIMEOUT(nest, stage2_unmap_of_a_leaf_target_while_bound, DMA_TEST_TIMEOUT)
{
	long long pins;
	uint64_t n = 0;

	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	RESET_PAGES();
	pins = foll_pins_outstanding();
	ASSERT_NE(LLONG_MIN, pins);
	ASSERT_EQ(0, vfio_unmap(self->c, D_GPA, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	ASSERT_PINS(pins - 1);
	ASSERT_WRITE_DROPPED(S1_A);
	/* 0x6000 -> D2 is not affected. */
	ASSERT_LANDS(S1_SRC, S1_B, self->d2);
	RESET_PAGES();
	ASSERT_EQ(0, vfio_map(self->c, D_GPA, self->d, PAGE_4K, RW));
	ASSERT_PINS(pins);
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
}

/* Stage-2 UNMAP of a table page while bound, and mapping it back. */
TEST_F_TIMEOUT(nest, stage2_unmap_of_a_table_page_while_bound, DMA_TEST_TIMEOUT)
{
	uint64_t n = 0;

	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	RESET_PAGES();
	ASSERT_EQ(0, vfio_unmap(self->c, T_PT, PAGE_4K, 0, &n));
	ASSERT_WRITE_DROPPED(S1_A);
	ASSERT_EQ(0, vfio_map(self->c, T_PT, self->pt, PAGE_4K, RW));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	EXPECT_EQ(-1, check_fill(self->decoy, PAGE_4K, FILL_DECOY));
}

/*
 * Stage 2 keeps its type1v2 features while a group is bound: dirty tracking
 * reports what the bound device wrote (type1's scope: every page of a group
 * that never pinned), a vaddr update leaves the translation working, and
 * PFNMAP memory (another edu's BAR) works in stage 2 but a stage-1 leaf
 * pointing at it is a hole: rvfio's revocation does not reach shadows, so a
 * shadow never points at such memory (Documentation/rvfio.rst).
 */
TEST_F_TIMEOUT(nest, stage2_features_while_bound, DMA_TEST_TIMEOUT)
{
	struct {
		struct vfio_iommu_type1_dirty_bitmap db;
		struct vfio_iommu_type1_dirty_bitmap_get range;
	} get = {
		.db = { .argsz = sizeof(get), .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP },
		.range = { .iova = D_GPA, .size = PAGE_4K,
			   .bitmap = { .pgsize = PAGE_4K, .size = 8 } },
	};
	struct vfio_iommu_type1_dirty_bitmap ctl = { .argsz = sizeof(ctl) };
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint64_t word = 0, n = 0;
	struct edu other;
	char err[256] = "";
	uint32_t id = 0;
	void *bar;

	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	/* Dirty tracking. */
	ctl.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
	ASSERT_EQ(0, vfio_ioctl(self->c, VFIO_IOMMU_DIRTY_PAGES, &ctl));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	get.range.bitmap.data = (__u64 *)&word;
	ASSERT_EQ(0, vfio_ioctl(self->c, VFIO_IOMMU_DIRTY_PAGES, &get));
	EXPECT_EQ(1, word);
	ctl.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
	ASSERT_EQ(0, vfio_ioctl(self->c, VFIO_IOMMU_DIRTY_PAGES, &ctl));

	/* Vaddr update of D's mapping: the device keeps writing into D. */
	RESET_PAGES();
	EXPECT_EQ(0, vfio_unmap(self->c, D_GPA, PAGE_4K, VFIO_DMA_UNMAP_FLAG_VADDR, &n));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	ASSERT_EQ(0, vfio_map(self->c, D_GPA, self->d, PAGE_4K, VFIO_DMA_MAP_FLAG_VADDR));
	RESET_PAGES();
	ASSERT_LANDS(S1_SRC, S1_A, self->d);

	/* PFNMAP: the second edu's BAR0 at guest-physical 0x9000000. */
	if (edu_count() < 2)
		SKIP(return, "the PFNMAP part needs a second edu device");
	ASSERT_EQ(0, edu_open(&other, edu_bdf(1), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, ioctl(other.device, VFIO_DEVICE_GET_REGION_INFO, &ri));
	bar = mmap(NULL, PAGE_4K, PROT_READ | PROT_WRITE, MAP_SHARED, other.device, ri.offset);
	ASSERT_NE(MAP_FAILED, bar);
	ASSERT_EQ(0, vfio_map(self->c, 0x9000000, bar, PAGE_4K, RW));
	self->pt[8] = 0x9000000 | E_OK;
	ASSERT_EQ(0, nesting_invalidate(self->c, self->gid, 0x8000, 1, NULL));
	/* Through stage 1: a hole, the device reads zeros (not the ID). The
	 * edu answers 4-byte register reads only: move 4 bytes. */
	ASSERT_EQ(0, edu_copy(&self->dev, 0x8000, S1_A, 4));
	memcpy(&id, self->d, sizeof(id));
	EXPECT_EQ(0, id) TH_LOG("read %#x through a stage-1 leaf to PFNMAP memory", id);
	/* Unbound, stage 2 reaches the BAR: the edu ID register. */
	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));
	ASSERT_EQ(0, edu_copy(&self->dev, 0x9000000, S1_A, 4));
	memcpy(&id, self->decoy, sizeof(id));
	EXPECT_EQ(EDU_ID_VALUE, id);
	ASSERT_EQ(0, vfio_unmap(self->c, 0x9000000, PAGE_4K, 0, &n));
	munmap(bar, PAGE_4K);
	edu_close(&other);
}

/* --- Hostile tables: no oops, no hang, and DMA does not land. --- */

TEST_F_TIMEOUT(nest, hostile_reserved_bits, DMA_TEST_TIMEOUT)
{
	const uint64_t base = 0x1000000;
	uint8_t *big = map_at(base, SZ_2M, 0x61, RW);

	/* Address bit 48 (above a 48-bit width) in a PTE. */
	self->pt[S1_A >> 12] = (1ull << 48) | D_GPA | E_OK;
	/* Bit 13 in a 2 MiB leaf, bit 20 in a 1 GiB leaf. */
	self->pd[1] = base | (1ull << 13) | E_PS | E_OK;
	self->pdpt[1] = 0x80000000ull | (1ull << 20) | E_PS | E_OK;
	uint8_t *g = map_at(0x80000000ull, PAGE_4K, 0x61, RW);
	/* A table pointer with bit 50 set. */
	self->pd[2] = (1ull << 50) | T_PT | E_OK;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_WRITE_DROPPED(S1_A);
	ASSERT_WRITE_DROPPED(0x200000);
	EXPECT_EQ(-1, check_fill(big, SZ_2M, 0x61));
	ASSERT_WRITE_DROPPED(SZ_1G);
	EXPECT_EQ(-1, check_fill(g, PAGE_4K, 0x61));
	ASSERT_WRITE_DROPPED(0x400000 + S1_B);
	/* The well-formed entry beside them works. */
	ASSERT_LANDS(S1_SRC, S1_B, self->d2);
}

TEST_F_TIMEOUT(nest, hostile_ps_at_the_top_level, DMA_TEST_TIMEOUT)
{
	self->pml4[0] = T_PDPT | E_PS | E_OK;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	/* Everything below 512 GiB is a hole, SRC included (reads zeros). */
	ASSERT_WRITE_DROPPED(S1_A);
	ASSERT_WRITE_DROPPED(S1_B);
}

TEST_F_TIMEOUT(nest, hostile_self_pointing_tables, DMA_TEST_TIMEOUT)
{
	/*
	 * Every PML4 entry points at the PML4, and its entry 5 at D: hardware
	 * would follow the recursion to IOVA 0x5000 -> D. rvfio walks a table
	 * page once per walk: the second visit is a hole.
	 */
	for (int i = 0; i < 512; i++)
		self->pml4[i] = T_PML4 | E_OK;
	self->pml4[5] = D_GPA | E_OK;
	/* And the PT points at every table, itself included. */
	for (int i = 0; i < 512; i++)
		self->pt[i] = (i % 2 ? T_PT : T_PD) | E_OK;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_WRITE_DROPPED(S1_A);
	ASSERT_EQ(0, nesting_invalidate(self->c, self->gid, 0, UINT64_MAX, NULL));
	ASSERT_WRITE_DROPPED(S1_A);
	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));
	/* A PD entry pointing back at the PDPT. */
	for (int i = 0; i < 512; i++)
		self->pml4[i] = 0;
	self->pml4[0] = T_PDPT | E_OK;
	self->pd[0] = T_PDPT | E_OK;
	/* Followed as a PT, the PDPT's entry 5 would lead to D. */
	self->pdpt[5] = D_GPA | E_OK;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_WRITE_DROPPED(S1_A);
}

TEST_F_TIMEOUT(nest, hostile_table_pages_outside_stage2, DMA_TEST_TIMEOUT)
{
	const uint64_t pt2 = 0x9990000;
	uint64_t *p;

	/* The PD points at a PT that stage 2 does not map. */
	self->pd[0] = pt2 | E_OK;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_WRITE_DROPPED(S1_A);
	/* Mapping it makes the walk go through at once (no invalidation). */
	p = buf(PAGE_4K, 0);
	p[S1_A >> 12] = D_GPA | E_OK;
	p[S1_SRC >> 12] = SRC_GPA | E_P | E_US;
	ASSERT_EQ(0, vfio_map(self->c, pt2, p, PAGE_4K, RW));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
}

TEST_F_TIMEOUT(nest, hostile_five_level_table_bound_as_48_bit, DMA_TEST_TIMEOUT)
{
	uint64_t *pml5 = map_at(0x104000, PAGE_4K, 0, RW);

	/* A real 5-level table: PML5 -> the fixture's PML4 -> ... -> D. */
	pml5[0] = T_PML4 | E_OK;
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, 0x104000, 48, 0, NULL));
	ASSERT_WRITE_DROPPED(S1_A);
	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, 0x104000, 57, 0, NULL));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
}

/* --- Bad input: an errno, and nothing changes. --- */

/* The group is not bound and 0x5000 is still the decoy's address. */
#define ASSERT_NOTHING_CHANGED() do { \
	EXPECT_FALSE(nesting_group_flags(self->c, self->gid) & RVFIO_NESTING_GROUP_BOUND); \
	RESET_PAGES(); \
	ASSERT_LANDS(SRC_GPA, S1_A, self->decoy); \
	RESET_PAGES(); \
} while (0)

TEST_F_TIMEOUT(nest, bind_bad_input, DMA_TEST_TIMEOUT)
{
	struct iommu_hwpt_vtd_s1 s1 = { .pgtbl_addr = T_PML4, .addr_width = 48 };
	struct rvfio_nesting_bind b;
	uint8_t *two = mmap(NULL, 2 * PAGE_4K, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t payload[64];
	uint32_t *argsz;

#define BIND_INIT() (b = (struct rvfio_nesting_bind){ \
	.argsz = sizeof(b), .group_id = self->gid, \
	.data_type = IOMMU_HWPT_DATA_VTD_S1, .data_len = sizeof(s1), \
	.data_uptr = (uintptr_t)&s1 })
	ASSERT_NE(MAP_FAILED, two);
	ASSERT_EQ(0, munmap(two + PAGE_4K, PAGE_4K));

	/* argsz short, the struct at the end of a page, the next unmapped. */
	argsz = (uint32_t *)(two + PAGE_4K - 8);
	argsz[0] = 8;
	argsz[1] = 0;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, argsz));
	argsz = (uint32_t *)(two + PAGE_4K - 4);
	*argsz = 4;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_UNBIND, argsz));
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, argsz));
	BIND_INIT();
	b.argsz = sizeof(b) - 1;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));

	BIND_INIT();
	b.flags = 1;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	BIND_INIT();
	b.data_type = IOMMU_HWPT_DATA_NONE;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	BIND_INIT();
	b.data_type = 2;	/* IOMMU_HWPT_DATA_ARM_SMMUV3 in later kernels */
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	BIND_INIT();
	b.data_len = 16;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	BIND_INIT();
	b.data_len = 2 * PAGE_4K;
	EXPECT_EQ(-E2BIG, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	/* A longer payload: the bytes past the struct must be 0. */
	memset(payload, 0, sizeof(payload));
	memcpy(payload, &s1, sizeof(s1));
	payload[40] = 1;
	BIND_INIT();
	b.data_uptr = (uintptr_t)payload;
	b.data_len = sizeof(payload);
	EXPECT_EQ(-E2BIG, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	/* The payload at the end of a page, the next unmapped: read exactly. */
	BIND_INIT();
	b.data_uptr = (uintptr_t)(two + PAGE_4K - sizeof(s1));
	memcpy(two + PAGE_4K - sizeof(s1), &s1, sizeof(s1));
	b.data_len = sizeof(s1) + 8;
	EXPECT_EQ(-EFAULT, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	ASSERT_NOTHING_CHANGED();

	/* Payload fields. */
	s1.flags = 1ull << 5;
	BIND_INIT();
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	s1.flags = IOMMU_VTD_S1_EAFE;
	EXPECT_EQ(-EOPNOTSUPP, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	s1.flags = 0;
	s1.__reserved = 1;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	s1.__reserved = 0;
	s1.addr_width = 39;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	s1.addr_width = 48;
	s1.pgtbl_addr = T_PML4 + 0x800;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	s1.pgtbl_addr = 0x9000000;	/* not mapped in stage 2 */
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	s1.pgtbl_addr = T_PML4;
	BIND_INIT();
	b.group_id = self->gid + 1000;
	EXPECT_EQ(-ENOENT, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	ASSERT_NOTHING_CHANGED();

	/* The good ones: a payload from the end of the page; SRE|WPE. */
	BIND_INIT();
	b.data_uptr = (uintptr_t)(two + PAGE_4K - sizeof(s1));
	EXPECT_EQ(0, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	EXPECT_TRUE(b.out_flags & RVFIO_NESTING_GROUP_BOUND);
	/* Bound twice. */
	EXPECT_EQ(-EBUSY, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));
	EXPECT_EQ(-EINVAL, nesting_unbind(self->c, self->gid)) TH_LOG("unbind when not bound");
	EXPECT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48,
				    IOMMU_VTD_S1_SRE | IOMMU_VTD_S1_WPE, NULL));
	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));
	memset(payload, 0, sizeof(payload));
	memcpy(payload, &s1, sizeof(s1));
	BIND_INIT();
	b.data_uptr = (uintptr_t)payload;
	b.data_len = sizeof(payload);
	EXPECT_EQ(0, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_BIND, &b));
	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));
	ASSERT_NOTHING_CHANGED();
	munmap(two, PAGE_4K);
#undef BIND_INIT
}

TEST_F_TIMEOUT(nest, unbind_and_invalidate_bad_input, DMA_TEST_TIMEOUT)
{
	struct iommu_hwpt_vtd_s1_invalidate e[3] = {
		{ .addr = S1_A, .npages = 1 },
		{ .addr = S1_B, .npages = 1, .flags = 2 },
		{ .addr = 0, .npages = 1 },
	};
	struct rvfio_nesting_invalidate inv;
	struct rvfio_nesting_unbind u = { .argsz = sizeof(u), .group_id = self->gid };
	uint8_t big[3][32];
	uint32_t done = 99;

#define INV_INIT(n) (inv = (struct rvfio_nesting_invalidate){ \
	.argsz = sizeof(inv), .group_id = self->gid, \
	.data_type = IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, \
	.data_uptr = (uintptr_t)e, .entry_len = sizeof(e[0]), .entry_num = (n) })
	/* Not bound yet. */
	EXPECT_EQ(-EINVAL, nesting_invalidate(self->c, self->gid, S1_A, 1, &done));
	EXPECT_EQ(0, done);
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_UNBIND, &u));
	EXPECT_EQ(-ENOENT, nesting_invalidate(self->c, self->gid + 1000, S1_A, 1, &done));

	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	u.__reserved = 1;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_UNBIND, &u));
	u.__reserved = 0;
	u.flags = 1;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_UNBIND, &u));
	u.flags = 0;
	u.group_id = self->gid + 1000;
	EXPECT_EQ(-ENOENT, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_UNBIND, &u));
	EXPECT_TRUE(nesting_group_flags(self->c, self->gid) & RVFIO_NESTING_GROUP_BOUND);

	/* Header errors: entry_num comes back 0. */
	INV_INIT(1);
	inv.flags = 1;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(0, inv.entry_num);
	INV_INIT(1);
	inv.data_type = 1;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(0, inv.entry_num);
	INV_INIT(1);
	inv.entry_len = 16;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	INV_INIT(1);
	inv.entry_len = 2 * PAGE_4K;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	INV_INIT(1);
	inv.data_uptr = 0;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	INV_INIT((1u << 19) + 1);
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	/* A probe. */
	INV_INIT(0);
	EXPECT_EQ(0, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(0, inv.entry_num);

	/*
	 * A bad entry in the middle: the first is processed (its retarget
	 * takes effect), the count says 1, the third is not processed.
	 */
	self->pt[S1_A >> 12] = D2_GPA | E_OK;
	self->pt[0] = D_GPA | E_OK;
	INV_INIT(3);
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(1, inv.entry_num);
	ASSERT_LANDS(S1_SRC, S1_A, self->d2);
	RESET_PAGES();
	ASSERT_WRITE_DROPPED(0);
	/* Each kind of bad entry (entry_num is in/out: set it each time). */
	e[1].flags = 0;
	e[1].__reserved = 1;
	INV_INIT(2);
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(1, inv.entry_num);
	e[1].__reserved = 0;
	e[1].addr = S1_B + 0x10;
	INV_INIT(2);
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(1, inv.entry_num);
	e[1].addr = S1_B;
	e[1].npages = 0;
	INV_INIT(2);
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(1, inv.entry_num);
	e[1].npages = UINT64_MAX;
	INV_INIT(2);
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(1, inv.entry_num);
	e[1].addr = 0xfffffffffffff000ull;
	e[1].npages = 2;
	INV_INIT(2);
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(1, inv.entry_num);
	e[1].addr = S1_B;
	e[1].npages = 1;
	/* Longer entries: the bytes past the struct must be 0. */
	memset(big, 0, sizeof(big));
	for (int i = 0; i < 3; i++)
		memcpy(big[i], &e[i], sizeof(e[i]));
	big[1][30] = 1;
	INV_INIT(3);
	inv.data_uptr = (uintptr_t)big;
	inv.entry_len = sizeof(big[0]);
	EXPECT_EQ(-E2BIG, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(1, inv.entry_num);
	/* The third entry was not processed: 0 is still a hole. */
	ASSERT_WRITE_DROPPED(0);
	big[1][30] = 0;
	INV_INIT(3);
	inv.data_uptr = (uintptr_t)big;
	inv.entry_len = sizeof(big[0]);
	EXPECT_EQ(0, vfio_ioctl(self->c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv));
	EXPECT_EQ(3, inv.entry_num);
	/* The third entry was processed now: 0 -> D. */
	ASSERT_LANDS(S1_SRC, 0, self->d);
	/* The binding is intact and unbinds. */
	ASSERT_EQ(0, nesting_unbind(self->c, self->gid));
#undef INV_INIT
}

/* Container close, group detach with a bind live: everything released. */
TEST_F_TIMEOUT(nest, container_close_and_detach_with_a_bind_live, DMA_TEST_TIMEOUT)
{
	long long pins;
	char err[256] = "";

	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	edu_close(&self->dev);
	pins = foll_pins_outstanding();
	ASSERT_NE(LLONG_MIN, pins);

	/* Again, leaving by detach (GROUP_UNSET_CONTAINER) first. */
	ASSERT_EQ(0, edu_open(&self->dev, edu_bdf(0), -1, VFIO_TYPE1_NESTING_IOMMU,
			      err, sizeof(err))) TH_LOG("%s", err);
	self->c = self->dev.container;
	for (int i = 0; i < 9; i++) {
		static const uint64_t gpa[] = { T_PML4, T_PDPT, T_PD, T_PT, D_GPA, D2_GPA,
						SRC_GPA, S1_A, S1_B };

		ASSERT_EQ(0, vfio_map(self->c, gpa[i], self->bufs[i].p, PAGE_4K, RW));
	}
	ASSERT_PINS(pins + 9);
	ASSERT_EQ(0, nesting_bind(self->c, self->gid, T_PML4, 48, 0, NULL));
	ASSERT_LANDS(S1_SRC, S1_A, self->d);
	munmap((void *)self->dev.bar0, self->dev.bar0_size);
	self->dev.bar0 = NULL;
	close(self->dev.device);
	self->dev.device = -1;
	ASSERT_EQ(0, ioctl(self->dev.group, VFIO_GROUP_UNSET_CONTAINER));
	ASSERT_PINS(pins);
}

/* Tests that open their own containers: a fixture only for the timeout. */
FIXTURE(own) {};
FIXTURE_SETUP(own) {}
FIXTURE_TEARDOWN(own) {}

/* Process exit with a bind live. */
TEST_F_TIMEOUT(own, process_exit_with_a_bind_live, DMA_TEST_TIMEOUT)
{
	long long pins;
	int status = 0;
	pid_t pid;

	if (access("/dev/vfio/vfio", F_OK) || edu_count() < 1)
		SKIP(return, "needs vfio and an edu device");
	SKIP_UNLESS_RVFIO();
	pins = foll_pins_outstanding();
	ASSERT_NE(LLONG_MIN, pins);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		struct edu e;
		char err[256];
		uint64_t *t = alloc_pages_4k(5 * PAGE_4K, 0);

		if (t == MAP_FAILED ||
		    edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1_NESTING_IOMMU, err, sizeof(err)))
			_exit(2);
		t[0] = T_PDPT | E_OK;
		t[512] = T_PD | E_OK;
		t[1024] = T_PT | E_OK;
		t[1536 + 5] = D_GPA | E_OK;
		for (int i = 0; i < 4; i++)
			if (vfio_map(e.container, T_PML4 + i * PAGE_4K, t + 512 * i, PAGE_4K, RW))
				_exit(3);
		if (vfio_map(e.container, D_GPA, t + 2048, PAGE_4K, RW))
			_exit(4);
		if (nesting_bind(e.container, e.group_id, T_PML4, 48, 0, NULL))
			_exit(5);
		if (edu_dma_to_ram(&e, 0, S1_A, 64))
			_exit(6);
		_exit(0);	/* everything still open and bound */
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	ASSERT_PINS(pins);
}

/* Two groups in one container: one bound, one not, each its own way. */
TEST_F_TIMEOUT(own, two_groups_one_bound, DMA_TEST_TIMEOUT)
{
	struct edu a, b;
	char err[256] = "";
	uint64_t *t = alloc_pages_4k(4 * PAGE_4K, 0);
	uint8_t *d = alloc_pages_4k(PAGE_4K, FILL_D);
	uint8_t *decoy = alloc_pages_4k(PAGE_4K, FILL_DECOY);
	uint8_t *src = alloc_pages_4k(PAGE_4K, 0);
	uint32_t seed = random_seed();

	if (access("/dev/vfio/vfio", F_OK) || edu_count() < 2)
		SKIP(return, "needs vfio and two edu devices in EDU_BDFS");
	SKIP_UNLESS_RVFIO();
	ASSERT_EQ(0, edu_open(&a, edu_bdf(0), -1, VFIO_TYPE1_NESTING_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, edu_open(&b, edu_bdf(1), a.container, 0, err, sizeof(err)))
		TH_LOG("%s", err);
	if (a.group_id == b.group_id)
		SKIP(goto out, "both edu devices are in group %d", a.group_id);
	t[0] = T_PDPT | E_OK;
	t[512] = T_PD | E_OK;
	t[1024] = T_PT | E_OK;
	t[1536 + (S1_A >> 12)] = D_GPA | E_OK;
	t[1536 + (S1_SRC >> 12)] = SRC_GPA | E_P | E_US;
	ASSERT_EQ(0, vfio_map(a.container, T_PML4, t, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(a.container, D_GPA, d, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(a.container, SRC_GPA, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(a.container, S1_A, decoy, PAGE_4K, RW));
	ASSERT_EQ(0, nesting_bind(a.container, a.group_id, T_PML4, 48, 0, NULL));
	EXPECT_TRUE(nesting_group_flags(a.container, a.group_id) & RVFIO_NESTING_GROUP_BOUND);
	EXPECT_FALSE(nesting_group_flags(a.container, b.group_id) & RVFIO_NESTING_GROUP_BOUND);
	/* Device a: stage 1. */
	fill_pattern(src, PAGE_4K, seed);
	ASSERT_EQ(0, edu_copy(&a, S1_SRC, S1_A, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(d, PAGE_4K, seed));
	EXPECT_EQ(-1, check_fill(decoy, PAGE_4K, FILL_DECOY));
	/* Device b: guest-physical addresses. */
	fill_pattern(src, PAGE_4K, seed ^ 0x1111);
	ASSERT_EQ(0, edu_copy(&b, SRC_GPA, S1_A, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(decoy, PAGE_4K, seed ^ 0x1111));
	EXPECT_EQ(-1, check_pattern(d, PAGE_4K, seed));
	/* Device b can bind too, to the same table. */
	ASSERT_EQ(0, nesting_bind(a.container, b.group_id, T_PML4, 48, 0, NULL));
	fill_pattern(src, PAGE_4K, seed ^ 0x2222);
	ASSERT_EQ(0, edu_copy(&b, S1_SRC, S1_A, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(d, PAGE_4K, seed ^ 0x2222));
	/* Detaching the bound a leaves b bound and working. */
	edu_close(&a);
	fill_pattern(src, PAGE_4K, seed ^ 0x3333);
	ASSERT_EQ(0, edu_copy(&b, S1_SRC, S1_A, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(d, PAGE_4K, seed ^ 0x3333));
out:
	edu_close(&b);
	edu_close(&a);
	munmap(t, 4 * PAGE_4K);
	munmap(d, PAGE_4K);
	munmap(decoy, PAGE_4K);
	munmap(src, PAGE_4K);
}

/*
 * VFIO_TYPE1_NESTING_IOMMU as upstream 6.12 type1 has it on Intel: offered
 * (CHECK_EXTENSION 1), but every attach fails. On rvfio: a type1v2 container
 * with the nesting capability; the bind ioctls are ENOTTY elsewhere.
 */
TEST(type1_nesting_as_upstream)
{
	struct edu e;
	char err[256] = "";
	int c, ret;

	if (access("/dev/vfio/vfio", F_OK) || edu_count() < 1)
		SKIP(return, "needs vfio and an edu device");
	c = vfio_container_open();
	ASSERT_GE(c, 0);
	EXPECT_EQ(1, vfio_ioctl(c, VFIO_CHECK_EXTENSION, (void *)VFIO_TYPE1_NESTING_IOMMU));
	close(c);

	ret = edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1_NESTING_IOMMU, err, sizeof(err));
	if (!backend_is_rvfio()) {
		EXPECT_EQ(-EINVAL, ret) TH_LOG("type1: %s", err);
	} else {
		const struct rvfio_iommu_info_cap_nesting *cap;
		struct vfio_iommu_type1_info *info;

		ASSERT_EQ(0, ret) TH_LOG("%s", err);
		EXPECT_EQ(1, vfio_ioctl(e.container, VFIO_CHECK_EXTENSION,
					(void *)VFIO_TYPE1v2_IOMMU));
		info = vfio_get_info(e.container);
		ASSERT_NE(NULL, info);
		cap = (const void *)vfio_info_cap(info, RVFIO_IOMMU_INFO_CAP_NESTING);
		ASSERT_NE(NULL, cap);
		EXPECT_EQ(1, cap->header.version);
		EXPECT_EQ(RVFIO_NESTING_CAP_CACHING_MODE, cap->flags);
		EXPECT_EQ(1u << IOMMU_HWPT_DATA_VTD_S1, cap->data_types);
		EXPECT_EQ(1u << IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, cap->inv_data_types);
		EXPECT_EQ((1ull << 48) | (1ull << 57), cap->addr_widths);
		EXPECT_EQ(IOMMU_VTD_S1_SRE | IOMMU_VTD_S1_WPE, cap->vtd_s1_flags);
		EXPECT_EQ(0x40201000ull, cap->pgsizes);
		ASSERT_EQ(1, cap->nr_groups);
		EXPECT_EQ((uint32_t)e.group_id, cap->groups[0].group_id);
		/* QEMU's VT-d cannot nest in hardware: software, honestly. */
		EXPECT_EQ(RVFIO_NESTING_GROUP_SOFTWARE, cap->groups[0].flags);
		free(info);
		edu_close(&e);
	}
	/* A type1v2 container has no bind (type1: the ioctl does not exist). */
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(-ENOTTY, nesting_bind(e.container, e.group_id, T_PML4, 48, 0, NULL));
	EXPECT_EQ(-ENOTTY, nesting_unbind(e.container, e.group_id));
	EXPECT_EQ(-ENOTTY, nesting_invalidate(e.container, e.group_id, 0, 1, NULL));
	{
		struct vfio_iommu_type1_info *info = vfio_get_info(e.container);

		ASSERT_NE(NULL, info);
		EXPECT_EQ(NULL, vfio_info_cap(info, RVFIO_IOMMU_INFO_CAP_NESTING));
		free(info);
	}
	edu_close(&e);
}

TEST_HARNESS_MAIN
