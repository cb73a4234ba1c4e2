// SPDX-License-Identifier: GPL-2.0
/*
 * dirty_test - VFIO_IOMMU_DIRTY_PAGES and UNMAP_DMA with
 * VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, as upstream vfio_iommu_type1 (6.12)
 * implements them.
 *
 * Only IOMMU-backed groups (vfio-pci edu devices) exist here and none of them
 * pins pages through vfio_pin_pages(), so type1 cannot know what the device
 * wrote: update_user_bitmap() reports every page of every mapping in the
 * range dirty, on every GET_BITMAP.
 *
 * The exact bitmap contents follow update_user_bitmap() (vfio_iommu_type1.c):
 * for each mapping in the range, in IOVA order, with
 *	bit_offset = (mapping iova - range iova) / 4096,
 *	copy_offset = bit_offset / 64, shift = bit_offset % 64,
 * it writes whole u64 words copy_offset .. copy_offset +
 * ceil((npages + shift) / 64) - 1 of the user bitmap: the mapping's bits are
 * 1, all other bits of those words are 0, except that when shift != 0 the
 * whole first word is first ORed with the word the user had there (so every
 * bit of that first word that was already set stays set, below and above the
 * mapping). Words no mapping reaches are not written at all, and nothing past
 * the last mapping's last word is written.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"

#define P_WORD		0xa5a5a5a5a5a5a5a5ull	/* user's pre-set bitmap words */
#define GUARD_WORD	0x5ee5aa55c0ffee11ull	/* words after the bitmap */
#define NGUARD		4
#define DIRTY_MAX_BYTES	(256ull << 20)

#define DSTART		VFIO_IOMMU_DIRTY_PAGES_FLAG_START
#define DSTOP		VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
#define DGET		VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP

/*
 * The test layout: a range of RANGE_PAGES pages at RANGE_IOVA holding five
 * mappings (offsets and sizes in pages from the range start) with gaps
 * between them, and one mapping just outside the range on each side.
 *   M1  5 +   3: bits   5..7   word 0 (shift 5)
 *   M2 60 +  10: bits  60..69  words 0-1 (shift 60)
 *   M3 130 + 130: bits 130..259 words 2-4 (shift 2)
 *   M4 320 +  20: bits 320..339 word 5 (shift 0)
 *   M5 421 +   7: bits 421..427 word 6 (shift 37), mapped after START
 * RANGE_PAGES = 448 -> 7 words (56 bytes) of bitmap.
 */
#define RANGE_IOVA	0x40000000ull
#define RANGE_PAGES	448
#define RANGE_WORDS	7
#define RANGE_SIZE	(RANGE_PAGES * PAGE_4K)
#define BUF_PAGES	512
#define OUT_BEFORE_IOVA	(RANGE_IOVA - 16 * PAGE_4K)	/* 4 pages, buf page 500 */
#define OUT_AFTER_IOVA	(RANGE_IOVA + RANGE_SIZE)	/* 4 pages, buf page 448 */
#define OUT_PAGES	4

struct seg {
	uint64_t off, npages;
};

static const struct seg layout[] = {
	{ 5, 3 }, { 60, 10 }, { 130, 130 }, { 320, 20 }, { 421, 7 },
};
#define NSEG		(int)(sizeof(layout) / sizeof(layout[0]))
#define LAYOUT_PAGES	(3 + 10 + 130 + 20 + 7)

/* Expected words after one update pass, user words initially 0. */
static const uint64_t expect_zero[RANGE_WORDS] = {
	0xf0000000000000e0ull,	/* M1 bits 5-7, M2 bits 60-63 */
	0x000000000000003full,	/* M2 bits 64-69 */
	0xfffffffffffffffcull,	/* M3 bits 130-191 */
	0xffffffffffffffffull,	/* M3 bits 192-255 */
	0x000000000000000full,	/* M3 bits 256-259 */
	0x00000000000fffffull,	/* M4 bits 320-339 */
	0x00000fe000000000ull,	/* M5 bits 421-427 */
};

/*
 * Expected words when the user pre-set every word to P_WORD: a mapping's
 * first word keeps all of P when shift != 0 (words 0, 2, 6); every other word
 * a mapping writes loses P (words 1, 4 and, shift 0, word 5); word 3 is all
 * ones anyway.
 */
static const uint64_t expect_preset[RANGE_WORDS] = {
	P_WORD | 0xf0000000000000e0ull,
	0x000000000000003full,
	P_WORD | 0xfffffffffffffffcull,
	0xffffffffffffffffull,
	0x000000000000000full,
	0x00000000000fffffull,
	P_WORD | 0x00000fe000000000ull,
};

struct dirty_get {
	struct vfio_iommu_type1_dirty_bitmap hdr;
	struct vfio_iommu_type1_dirty_bitmap_get range;
};

struct unmap_bitmap {
	struct vfio_iommu_type1_dma_unmap hdr;
	struct vfio_bitmap bitmap;
};

static int dirty_ctl(int c, uint32_t argsz, uint32_t flags)
{
	struct vfio_iommu_type1_dirty_bitmap d = { .argsz = argsz, .flags = flags };

	return ioctl(c, VFIO_IOMMU_DIRTY_PAGES, &d) ? -errno : 0;
}

static int dirty_start(int c)
{
	return dirty_ctl(c, sizeof(struct vfio_iommu_type1_dirty_bitmap), DSTART);
}

static int dirty_stop(int c)
{
	return dirty_ctl(c, sizeof(struct vfio_iommu_type1_dirty_bitmap), DSTOP);
}

static int get_bitmap_raw(int c, uint32_t argsz, uint32_t flags, uint64_t iova, uint64_t size,
			  uint64_t pgsize, uint64_t bsize, void *data)
{
	struct dirty_get g = {
		.hdr = { .argsz = argsz, .flags = flags },
		.range = {
			.iova = iova, .size = size,
			.bitmap = { .pgsize = pgsize, .size = bsize, .data = data },
		},
	};

	return ioctl(c, VFIO_IOMMU_DIRTY_PAGES, &g) ? -errno : 0;
}

static int get_bitmap(int c, uint64_t iova, uint64_t size, uint64_t pgsize, uint64_t bsize,
		      void *data)
{
	return get_bitmap_raw(c, sizeof(struct dirty_get), DGET, iova, size, pgsize, bsize, data);
}

static int unmap_bitmap_raw(int c, uint32_t argsz, uint32_t flags, uint64_t iova, uint64_t size,
			    uint64_t pgsize, uint64_t bsize, void *data, uint64_t *unmapped)
{
	struct unmap_bitmap u = {
		.hdr = { .argsz = argsz, .flags = flags, .iova = iova, .size = size },
		.bitmap = { .pgsize = pgsize, .size = bsize, .data = data },
	};
	int ret = ioctl(c, VFIO_IOMMU_UNMAP_DMA, &u) ? -errno : 0;

	if (unmapped)
		*unmapped = u.hdr.size;
	return ret;
}

static int unmap_bitmap(int c, uint64_t iova, uint64_t size, uint64_t bsize, void *data,
			uint64_t *unmapped)
{
	return unmap_bitmap_raw(c, sizeof(struct unmap_bitmap),
				VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova, size, PAGE_4K, bsize,
				data, unmapped);
}

/* A bitmap of nwords words, all = fill, followed by NGUARD guard words. */
static uint64_t *bitmap_new(size_t nwords, uint64_t fill)
{
	uint64_t *bm = malloc((nwords + NGUARD) * sizeof(*bm));

	if (!bm)
		return NULL;
	for (size_t i = 0; i < nwords; i++)
		bm[i] = fill;
	for (size_t i = 0; i < NGUARD; i++)
		bm[nwords + i] = GUARD_WORD;
	return bm;
}

/* Index of the first of nwords words != fill, or of a guard word that changed; -1 if none. */
static long bitmap_untouched(const uint64_t *bm, size_t nwords, uint64_t fill)
{
	for (size_t i = 0; i < nwords; i++)
		if (bm[i] != fill)
			return (long)i;
	for (size_t i = 0; i < NGUARD; i++)
		if (bm[nwords + i] != GUARD_WORD)
			return (long)(nwords + i);
	return -1;
}

/* The first n words of bm equal expect[], and the NGUARD words after bm[total - 1] are intact. */
#define ASSERT_WORDS_IN(bm, expect, n, total) do { \
	for (int __i = 0; __i < (int)(n); __i++) { \
		EXPECT_EQ((expect)[__i], (bm)[__i]) \
			TH_LOG("bitmap word %d: expected %#018llx, got %#018llx", __i, \
			       (unsigned long long)(expect)[__i], (unsigned long long)(bm)[__i]); \
	} \
	for (int __i = 0; __i < NGUARD; __i++) { \
		EXPECT_EQ(GUARD_WORD, (bm)[(total) + __i]) \
			TH_LOG("guard word %d after the bitmap was overwritten: %#018llx", __i, \
			       (unsigned long long)(bm)[(total) + __i]); \
	} \
} while (0)
#define ASSERT_WORDS(bm, expect, n) ASSERT_WORDS_IN(bm, expect, n, n)

/*
 * Map the layout of buf (BUF_PAGES pages): M1..M4 (and the two outside
 * mappings) now; M5 is left for the caller (after START).
 */
static void map_layout(struct __test_metadata *_metadata, int c, uint8_t *buf, bool with_m5)
{
	for (int i = 0; i < NSEG; i++) {
		if (i == NSEG - 1 && !with_m5)
			continue;
		ASSERT_EQ(0, vfio_map(c, RANGE_IOVA + layout[i].off * PAGE_4K,
				      buf + layout[i].off * PAGE_4K, layout[i].npages * PAGE_4K, RW))
			TH_LOG("mapping M%d", i + 1);
	}
	ASSERT_EQ(0, vfio_map(c, OUT_BEFORE_IOVA, buf + 500 * PAGE_4K, OUT_PAGES * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(c, OUT_AFTER_IOVA, buf + 448 * PAGE_4K, OUT_PAGES * PAGE_4K, RW));
}

static void map_m5(struct __test_metadata *_metadata, int c, uint8_t *buf)
{
	const struct seg *m5 = &layout[NSEG - 1];

	ASSERT_EQ(0, vfio_map(c, RANGE_IOVA + m5->off * PAGE_4K, buf + m5->off * PAGE_4K,
			      m5->npages * PAGE_4K, RW));
}

/* A type1 (v1) container has no dirty tracking at all: EACCES before any argument check. */
TEST(v1_container_dirty_pages_eacces)
{
	uint64_t *bm = bitmap_new(1, 0);
	char err[256] = "";
	uint8_t *buf;
	struct edu e;
	uint64_t n = 0;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	ASSERT_NE(NULL, bm);
	buf = alloc_pages_4k(PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(e.container, SZ_1M, buf, PAGE_4K, RW));
	EXPECT_EQ(-EACCES, dirty_start(e.container));
	EXPECT_EQ(-EACCES, dirty_stop(e.container));
	EXPECT_EQ(-EACCES, get_bitmap(e.container, SZ_1M, PAGE_4K, PAGE_4K, 8, bm));
	EXPECT_EQ(-EACCES, dirty_ctl(e.container, 0, 0));
	EXPECT_EQ(-EACCES, dirty_ctl(e.container, 8, 0xff));
	/* UNMAP's GET_DIRTY_BITMAP needs tracking, which v1 cannot turn on. */
	EXPECT_EQ(-EINVAL, unmap_bitmap(e.container, SZ_1M, PAGE_4K, 8, bm, &n));
	EXPECT_EQ(-1, bitmap_untouched(bm, 1, 0));
	n = 0;
	ASSERT_EQ(0, vfio_unmap(e.container, SZ_1M, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n) TH_LOG("the rejected UNMAP removed the mapping");
	edu_close(&e);
	munmap(buf, PAGE_4K);
	free(bm);
}

/*
 * Bad argsz or flags are EINVAL, and none of the rejected calls turned
 * tracking on (GET_BITMAP still EINVAL) or off.
 */
TEST_F(edu, dirty_pages_bad_argsz_or_flags_einval)
{
	const uint32_t sz = sizeof(struct vfio_iommu_type1_dirty_bitmap);
	uint8_t *buf = edu_buf(PAGE_4K, 0);
	uint64_t *bm = bitmap_new(1, 0);

	ASSERT_NE(NULL, bm);
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz - 1, DSTART));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, 0, DSTART));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz, 0));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz, DSTART | DSTOP));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz, DSTART | DGET));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz, DSTOP | DGET));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz, DSTART | DSTOP | DGET));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz, 1u << 3));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz, DSTART | (1u << 3)));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz, 1u << 31));
	/* Tracking is still off. */
	EXPECT_EQ(-EINVAL, get_bitmap(self->c, SZ_1M, PAGE_4K, PAGE_4K, 8, bm));
	EXPECT_EQ(-1, bitmap_untouched(bm, 1, 0));
	/* GET_BITMAP's argsz must hold the range struct. */
	ASSERT_EQ(0, dirty_start(self->c));
	EXPECT_EQ(-EINVAL, get_bitmap_raw(self->c, sz, DGET, SZ_1M, PAGE_4K, PAGE_4K, 8, bm));
	EXPECT_EQ(-EINVAL, get_bitmap_raw(self->c, sizeof(struct dirty_get) - 1, DGET, SZ_1M,
					  PAGE_4K, PAGE_4K, 8, bm));
	EXPECT_EQ(-1, bitmap_untouched(bm, 1, 0));
	/* Rejected STOPs did not stop it: GET_BITMAP works and sees the page. */
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz, DSTOP | (1u << 3)));
	EXPECT_EQ(-EINVAL, dirty_ctl(self->c, sz - 1, DSTOP));
	ASSERT_EQ(0, get_bitmap(self->c, SZ_1M, PAGE_4K, PAGE_4K, 8, bm));
	EXPECT_EQ(1, bm[0]);
	EXPECT_EQ(-1, bitmap_untouched(bm + 1, 0, 0));
	free(bm);
}

/* GET_BITMAP with valid arguments needs tracking on: before START and after STOP, EINVAL. */
TEST_F(edu, get_bitmap_without_tracking_einval)
{
	uint8_t *buf = edu_buf(4 * PAGE_4K, 0);
	uint64_t *bm = bitmap_new(1, P_WORD);

	ASSERT_NE(NULL, bm);
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, 4 * PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, get_bitmap(self->c, SZ_1M, 4 * PAGE_4K, PAGE_4K, 8, bm));
	EXPECT_EQ(-1, bitmap_untouched(bm, 1, P_WORD));
	/* STOP without START is fine and changes nothing. */
	EXPECT_EQ(0, dirty_stop(self->c));
	EXPECT_EQ(-EINVAL, get_bitmap(self->c, SZ_1M, 4 * PAGE_4K, PAGE_4K, 8, bm));
	ASSERT_EQ(0, dirty_start(self->c));
	ASSERT_EQ(0, dirty_stop(self->c));
	EXPECT_EQ(-EINVAL, get_bitmap(self->c, SZ_1M, 4 * PAGE_4K, PAGE_4K, 8, bm));
	EXPECT_EQ(-1, bitmap_untouched(bm, 1, P_WORD));
}

/* START and STOP are idempotent; tracking works across START, START and ends at STOP. */
TEST_F(edu, start_stop_idempotent)
{
	uint8_t *buf = edu_buf(8 * PAGE_4K, 0);
	uint64_t *bm = bitmap_new(1, 0);

	ASSERT_NE(NULL, bm);
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, dirty_start(self->c));
	ASSERT_EQ(0, dirty_start(self->c));
	/* A mapping made while tracking is on is covered too. */
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M + 4 * PAGE_4K, buf + 4 * PAGE_4K, 2 * PAGE_4K, RW));
	ASSERT_EQ(0, get_bitmap(self->c, SZ_1M, 8 * PAGE_4K, PAGE_4K, 8, bm));
	EXPECT_EQ(0x3f, bm[0]);
	EXPECT_EQ(-1, bitmap_untouched(bm + 1, 0, 0));
	ASSERT_EQ(0, dirty_start(self->c));
	bm[0] = 0;
	ASSERT_EQ(0, get_bitmap(self->c, SZ_1M, 8 * PAGE_4K, PAGE_4K, 8, bm));
	/*
	 * A second GET_BITMAP: the mapped pages again. (Only them are checked:
	 * see get_bitmap_again_still_reports_mapped_pages.)
	 */
	EXPECT_EQ(0x3f, bm[0] & 0x3f);
	ASSERT_EQ(0, dirty_stop(self->c));
	ASSERT_EQ(0, dirty_stop(self->c));
	bm[0] = 0;
	EXPECT_EQ(-EINVAL, get_bitmap(self->c, SZ_1M, 8 * PAGE_4K, PAGE_4K, 8, bm));
	EXPECT_EQ(0, bm[0]);
	/* Restart after STOP. */
	ASSERT_EQ(0, dirty_start(self->c));
	ASSERT_EQ(0, get_bitmap(self->c, SZ_1M, 8 * PAGE_4K, PAGE_4K, 8, bm));
	EXPECT_EQ(0x3f, bm[0]);
	EXPECT_EQ(-1, bitmap_untouched(bm + 1, 0, 0));
}

/*
 * GET_BITMAP over five mappings at unaligned bit offsets with gaps, into a
 * zeroed bitmap: mapped pages are 1, gaps 0, nothing after the bitmap is
 * written, and the mappings just outside the range are not reported.
 */
TEST_F(edu, get_bitmap_exact_bits_zeroed_bitmap)
{
	uint8_t *buf = edu_buf(BUF_PAGES * PAGE_4K, 0x11);
	uint64_t *bm = bitmap_new(RANGE_WORDS, 0);

	ASSERT_NE(NULL, bm);
	map_layout(_metadata, self->c, buf, false);
	ASSERT_EQ(0, dirty_start(self->c));
	map_m5(_metadata, self->c, buf);
	ASSERT_EQ(0, get_bitmap(self->c, RANGE_IOVA, RANGE_SIZE, PAGE_4K, RANGE_WORDS * 8, bm));
	/* Independently of the hand-written words: bit i set iff page i is mapped. */
	for (int i = 0; i < RANGE_PAGES; i++) {
		bool mapped = false, set = (bm[i / 64] >> (i % 64)) & 1;

		for (int s = 0; s < NSEG; s++)
			mapped |= i >= (int)layout[s].off && i < (int)(layout[s].off + layout[s].npages);
		if (mapped != set) {
			EXPECT_EQ(mapped, set) TH_LOG("page %d of the range: mapped %d, bit %d", i,
						      mapped, set);
			break;
		}
	}
	ASSERT_WORDS(bm, expect_zero, RANGE_WORDS);
}

/*
 * The same with every bitmap word pre-set by the user: the words type1 owns
 * are rewritten, the first word of a mapping at a non-zero shift keeps the
 * user's bits (OR), and words past the last mapping's words are not touched.
 * A range 16 pages longer than the layout (one more word, no mapping in it)
 * shows that untouched words keep P.
 */
TEST_F(edu, get_bitmap_exact_bits_preset_bitmap)
{
	uint8_t *buf = edu_buf(BUF_PAGES * PAGE_4K, 0x22);
	uint64_t *bm = bitmap_new(RANGE_WORDS, P_WORD);
	uint64_t *bm2 = bitmap_new(RANGE_WORDS + 1, P_WORD);
	uint64_t n = 0;

	ASSERT_NE(NULL, bm);
	ASSERT_NE(NULL, bm2);
	map_layout(_metadata, self->c, buf, false);
	ASSERT_EQ(0, dirty_start(self->c));
	map_m5(_metadata, self->c, buf);
	ASSERT_EQ(0, get_bitmap(self->c, RANGE_IOVA, RANGE_SIZE, PAGE_4K, RANGE_WORDS * 8, bm));
	ASSERT_WORDS(bm, expect_preset, RANGE_WORDS);

	/* Past OUT_AFTER: range grows by 64 pages, including OUT_AFTER (bits 448..451). */
	ASSERT_EQ(0, vfio_unmap(self->c, OUT_AFTER_IOVA, OUT_PAGES * PAGE_4K, 0, &n));
	ASSERT_EQ(OUT_PAGES * PAGE_4K, n);
	/*
	 * A fresh START so the per-mapping bitmaps are clean (see
	 * get_bitmap_again_still_reports_mapped_pages).
	 */
	ASSERT_EQ(0, dirty_stop(self->c));
	ASSERT_EQ(0, dirty_start(self->c));
	ASSERT_EQ(0, get_bitmap(self->c, RANGE_IOVA, RANGE_SIZE + 64 * PAGE_4K, PAGE_4K,
				(RANGE_WORDS + 1) * 8, bm2));
	ASSERT_WORDS_IN(bm2, expect_preset, RANGE_WORDS, RANGE_WORDS + 1);
	EXPECT_EQ(P_WORD, bm2[RANGE_WORDS]) TH_LOG("a word with no mapping was written");
	free(bm);
	free(bm2);
}

/*
 * GET_BITMAP again (without STOP/START in between): every mapped page is
 * still reported dirty (the group still cannot report what it wrote).
 *
 * Bits outside the mappings are not checked here, only logged: 6.12's type1
 * reports some gap pages dirty from the second GET_BITMAP on. For a mapping
 * at shift s != 0, update_user_bitmap() shifts the mapping's own bitmap left
 * by s in place and ORs the user's first word into it, but afterwards clears
 * only its first npages bits, so bits npages..npages+s-1 (and the user's
 * word) stay set and come out shifted past the mapping's end next time
 * (seen: 0x1c00 in word 0 of round 1, pages 10-12 after M1 at pages 5-7).
 */
TEST_F(edu, get_bitmap_again_still_reports_mapped_pages)
{
	uint8_t *buf = edu_buf(BUF_PAGES * PAGE_4K, 0x33);
	uint64_t *bm = bitmap_new(RANGE_WORDS, 0);

	ASSERT_NE(NULL, bm);
	map_layout(_metadata, self->c, buf, true);
	ASSERT_EQ(0, dirty_start(self->c));
	for (int round = 0; round < 3; round++) {
		memset(bm, 0, RANGE_WORDS * 8);
		ASSERT_EQ(0, get_bitmap(self->c, RANGE_IOVA, RANGE_SIZE, PAGE_4K, RANGE_WORDS * 8,
					bm));
		for (int w = 0; w < RANGE_WORDS; w++) {
			EXPECT_EQ(expect_zero[w], bm[w] & expect_zero[w])
				TH_LOG("round %d word %d: mapped pages not all reported (%#018llx)",
				       round, w, (unsigned long long)bm[w]);
			if (bm[w] & ~expect_zero[w])
				TH_LOG("round %d word %d: bits outside the mappings set: %#018llx",
				       round, w, (unsigned long long)(bm[w] & ~expect_zero[w]));
		}
		for (int g = 0; g < NGUARD; g++) {
			EXPECT_EQ(GUARD_WORD, bm[RANGE_WORDS + g]);
		}
	}
}

/* A range containing no mapping: success, and no word of the bitmap is written. */
TEST_F(edu, get_bitmap_empty_range_writes_nothing)
{
	uint8_t *buf = edu_buf(BUF_PAGES * PAGE_4K, 0x44);
	uint64_t *bm = bitmap_new(4, P_WORD);

	ASSERT_NE(NULL, bm);
	map_layout(_metadata, self->c, buf, true);
	ASSERT_EQ(0, dirty_start(self->c));
	/* The gap between M3 and M4 (pages 260..319 of the layout). */
	ASSERT_EQ(0, get_bitmap(self->c, RANGE_IOVA + 260 * PAGE_4K, 60 * PAGE_4K, PAGE_4K, 8,
				bm));
	EXPECT_EQ(-1, bitmap_untouched(bm, 4, P_WORD));
	/* Far away from everything. */
	ASSERT_EQ(0, get_bitmap(self->c, SZ_4G, 256 * PAGE_4K, PAGE_4K, 32, bm));
	EXPECT_EQ(-1, bitmap_untouched(bm, 4, P_WORD));
}

/*
 * Argument checks of GET_BITMAP, each EINVAL and each leaving the user's
 * bitmap untouched: bitmap pgsize other than 4 KiB, bitmap smaller than the
 * range needs, bitmap size 0 or above 256 MiB, range size 0, unaligned range
 * iova or size, wrapping range, and a range that cuts a mapping at either end.
 */
TEST_F(edu, get_bitmap_bad_arguments_einval)
{
	uint8_t *buf = edu_buf(BUF_PAGES * PAGE_4K, 0x55);
	uint64_t *bm = bitmap_new(RANGE_WORDS, P_WORD);
	const uint64_t R = RANGE_IOVA, S = RANGE_SIZE, B = RANGE_WORDS * 8;
	const uint64_t m3 = R + 130 * PAGE_4K, m3_end = m3 + 130 * PAGE_4K;
	int c = self->c;

	ASSERT_NE(NULL, bm);
	map_layout(_metadata, c, buf, true);
	ASSERT_EQ(0, dirty_start(c));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, S, 2 * PAGE_4K, B, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, S, PAGE_4K / 2, 2 * B, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, S, SZ_2M, B, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, S, PAGE_4K, B - 8, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, S, PAGE_4K, B - 1, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, S, PAGE_4K, 0, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, S, PAGE_4K, DIRTY_MAX_BYTES + 8, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, 0, PAGE_4K, B, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R + 0x800, S, PAGE_4K, B, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R + 1, S, PAGE_4K, B, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, S + 0x800, PAGE_4K, B, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, S - 1, PAGE_4K, B, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, 0xfffffffffff00000ull, SZ_2M, PAGE_4K, B, bm));
	/* Bisections: starting inside M3, ending inside M3, both. */
	EXPECT_EQ(-EINVAL, get_bitmap(c, m3 + PAGE_4K, m3_end - m3 - PAGE_4K, PAGE_4K, B, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, m3_end - R - PAGE_4K, PAGE_4K, B, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, m3 + PAGE_4K, PAGE_4K, PAGE_4K, B, bm));
	/* The whole range plus one page of OUT_AFTER, or minus... one page of OUT_BEFORE. */
	EXPECT_EQ(-EINVAL, get_bitmap(c, R, S + PAGE_4K, PAGE_4K, B + 8, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(c, OUT_BEFORE_IOVA + PAGE_4K, R + S - OUT_BEFORE_IOVA -
				      PAGE_4K, PAGE_4K, B + 8, bm));
	EXPECT_EQ(-1, bitmap_untouched(bm, RANGE_WORDS, P_WORD))
		TH_LOG("a rejected GET_BITMAP wrote the bitmap");
	/* Exactly M3 works: its 130 bits at shift 0, word 2 (bits 128, 129) rewritten. */
	ASSERT_EQ(0, get_bitmap(c, m3, m3_end - m3, PAGE_4K, 3 * 8, bm));
	EXPECT_EQ(~0ull, bm[0]);
	EXPECT_EQ(~0ull, bm[1]);
	EXPECT_EQ(3, bm[2]);
	EXPECT_EQ(P_WORD, bm[3]);
}

/*
 * The largest bitmap type1 takes is 256 MiB (2^31 pages = 8 TiB of IOVA).
 * Exactly that size works (only the word of the one mapping is written);
 * 8 bytes more is EINVAL.
 */
TEST_F(edu, get_bitmap_maximum_size_256m)
{
	const size_t len = DIRTY_MAX_BYTES + PAGE_4K;
	uint8_t *buf = edu_buf(4 * PAGE_4K, 0x66);
	uint64_t *bm;

	bm = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		  -1, 0);
	ASSERT_NE(MAP_FAILED, bm);
	for (int i = 0; i < 16; i++)
		bm[i] = P_WORD;
	/* Pages 261..264: word 4, shift 5. */
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M + 5 * PAGE_4K, buf, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, dirty_start(self->c));
	EXPECT_EQ(-EINVAL, get_bitmap(self->c, 0, 2048ull << 32, PAGE_4K, DIRTY_MAX_BYTES + 8, bm));
	EXPECT_EQ(-EINVAL, get_bitmap(self->c, 0, (2048ull << 32) + 64 * PAGE_4K, PAGE_4K,
				      DIRTY_MAX_BYTES + 8, bm));
	for (int i = 0; i < 16; i++) {
		EXPECT_EQ(P_WORD, bm[i]);
	}
	ASSERT_EQ(0, get_bitmap(self->c, 0, 2048ull << 32, PAGE_4K, DIRTY_MAX_BYTES, bm));
	for (int i = 0; i < 16; i++) {
		EXPECT_EQ(i == 4 ? P_WORD | (0xfull << 5) : P_WORD, bm[i]) TH_LOG("word %d", i);
	}
	munmap(bm, len);
}

/* A bitmap the process cannot write: EFAULT. */
TEST_F(edu, get_bitmap_unwritable_bitmap_efault)
{
	uint8_t *buf = edu_buf(4 * PAGE_4K, 0x77);
	uint64_t *ro;

	ro = mmap(NULL, PAGE_4K, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, dirty_start(self->c));
	EXPECT_EQ(-EFAULT, get_bitmap(self->c, SZ_1M, 4 * PAGE_4K, PAGE_4K, 8, ro));
	EXPECT_EQ(0, ro[0]);
	/* Tracking still works. */
	{
		uint64_t w = 0;

		ASSERT_EQ(0, get_bitmap(self->c, SZ_1M, 4 * PAGE_4K, PAGE_4K, 8, &w));
		EXPECT_EQ(0xf, w);
	}
	munmap(ro, PAGE_4K);
}

/*
 * UNMAP_DMA with GET_DIRTY_BITMAP: rejected (EINVAL, mapping kept, bitmap
 * untouched) when tracking is off, when argsz has no room for struct
 * vfio_bitmap, when combined with ALL or VADDR, when the bitmap pgsize is not
 * 4 KiB and when the bitmap is too small for the range.
 */
TEST_F(edu, unmap_get_dirty_bitmap_bad_arguments_einval)
{
	const uint32_t F = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
	const uint32_t full = sizeof(struct unmap_bitmap);
	const uint32_t minsz = sizeof(struct vfio_iommu_type1_dma_unmap);
	uint8_t *buf = edu_buf(128 * PAGE_4K, 0x12);
	uint64_t *bm = bitmap_new(2, P_WORD);
	int c = self->c;
	uint64_t n;

	ASSERT_NE(NULL, bm);
	ASSERT_EQ(0, vfio_map(c, SZ_1M, buf, 128 * PAGE_4K, RW));
	/* Tracking off. */
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, SZ_1M, 128 * PAGE_4K, 16, bm, &n));
	ASSERT_EQ(0, dirty_start(c));
	EXPECT_EQ(-EINVAL, unmap_bitmap_raw(c, minsz, F, SZ_1M, 128 * PAGE_4K, PAGE_4K, 16, bm,
					    &n));
	EXPECT_EQ(-EINVAL, unmap_bitmap_raw(c, full - 1, F, SZ_1M, 128 * PAGE_4K, PAGE_4K, 16, bm,
					    &n));
	EXPECT_EQ(-EINVAL, unmap_bitmap_raw(c, full, F | VFIO_DMA_UNMAP_FLAG_ALL, 0, 0, PAGE_4K,
					    16, bm, &n));
	EXPECT_EQ(-EINVAL, unmap_bitmap_raw(c, full, F | VFIO_DMA_UNMAP_FLAG_ALL, SZ_1M,
					    128 * PAGE_4K, PAGE_4K, 16, bm, &n));
	EXPECT_EQ(-EINVAL, unmap_bitmap_raw(c, full, F | VFIO_DMA_UNMAP_FLAG_VADDR, SZ_1M,
					    128 * PAGE_4K, PAGE_4K, 16, bm, &n));
	EXPECT_EQ(-EINVAL, unmap_bitmap_raw(c, full, F, SZ_1M, 128 * PAGE_4K, 2 * PAGE_4K, 16, bm,
					    &n));
	EXPECT_EQ(-EINVAL, unmap_bitmap_raw(c, full, F, SZ_1M, 128 * PAGE_4K, PAGE_4K, 8, bm,
					    &n));
	EXPECT_EQ(-EINVAL, unmap_bitmap_raw(c, full, F, SZ_1M, 128 * PAGE_4K, PAGE_4K, 0, bm,
					    &n));
	/* Bisecting the mapping. */
	EXPECT_EQ(-EINVAL, unmap_bitmap(c, SZ_1M, 64 * PAGE_4K, 16, bm, &n));
	EXPECT_EQ(-1, bitmap_untouched(bm, 2, P_WORD)) TH_LOG("a rejected UNMAP wrote the bitmap");
	/* The VADDR-only and ALL-only flags did not act either: the mapping is whole and valid. */
	EXPECT_EQ(-EINVAL, vfio_map(c, SZ_1M, buf, 128 * PAGE_4K, VFIO_DMA_MAP_FLAG_VADDR))
		TH_LOG("mapping was invalidated by a rejected UNMAP");
	n = 0;
	ASSERT_EQ(0, vfio_unmap(c, SZ_1M, 128 * PAGE_4K, 0, &n));
	EXPECT_EQ(128 * PAGE_4K, n);
}

/*
 * UNMAP_DMA with GET_DIRTY_BITMAP over the whole layout range: it reports
 * the unmapped size, fills the bitmap exactly like GET_BITMAP (user's words
 * pre-set), the mappings are gone (the device's write through one is
 * dropped), VmLck and the pins go down by exactly those pages, and the
 * mappings just outside the range stay.
 */
TEST_F_TIMEOUT(edu, unmap_get_dirty_bitmap_returns_bitmap_and_unmaps, DMA_TEST_TIMEOUT)
{
	uint8_t *buf = edu_buf(BUF_PAGES * PAGE_4K, 0);
	uint64_t *bm = bitmap_new(RANGE_WORDS, P_WORD);
	const uint64_t m3 = RANGE_IOVA + 130 * PAGE_4K;
	uint8_t *m3_mem = buf + 130 * PAGE_4K, *src = buf + 500 * PAGE_4K;
	uint32_t seed = random_seed();
	long lck0, lck1;
	long long pins0, pins1;
	uint64_t n = 0;

	ASSERT_NE(NULL, bm);
	fill_pattern(src, PAGE_4K, seed);
	lck0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_GE(lck0, 0);
	ASSERT_NE(LLONG_MIN, pins0);
	map_layout(_metadata, self->c, buf, false);
	ASSERT_EQ(0, dirty_start(self->c));
	map_m5(_metadata, self->c, buf);
	lck1 = vmlck_kb();
	pins1 = foll_pins_outstanding();
	EXPECT_EQ(lck0 + (LAYOUT_PAGES + 2 * OUT_PAGES) * 4, lck1);
	EXPECT_EQ(pins0 + LAYOUT_PAGES + 2 * OUT_PAGES, pins1);

	/* The device writes through M3 while it is mapped. */
	ASSERT_EQ(0, edu_copy(&self->dev, OUT_BEFORE_IOVA, m3, PAGE_4K));
	ASSERT_EQ(-1, check_pattern(m3_mem, PAGE_4K, seed)) TH_LOG("DMA through M3 failed");

	ASSERT_EQ(0, unmap_bitmap(self->c, RANGE_IOVA, RANGE_SIZE, RANGE_WORDS * 8, bm, &n));
	EXPECT_EQ(LAYOUT_PAGES * PAGE_4K, n);
	ASSERT_WORDS(bm, expect_preset, RANGE_WORDS);
	EXPECT_EQ(lck1 - LAYOUT_PAGES * 4, vmlck_kb());
	EXPECT_EQ(pins1 - LAYOUT_PAGES, foll_pins_outstanding());

	/* M3 is gone: the device's write is dropped. */
	memset(m3_mem, 0xe7, PAGE_4K);
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, m3, PAGE_4K));
	EXPECT_EQ(-1, check_fill(m3_mem, PAGE_4K, 0xe7)) TH_LOG("DMA reached an unmapped IOVA");
	/* Nothing left in the range; the neighbours are still there. */
	n = 1;
	ASSERT_EQ(0, vfio_unmap(self->c, RANGE_IOVA, RANGE_SIZE, 0, &n));
	EXPECT_EQ(0, n);
	n = 0;
	ASSERT_EQ(0, vfio_unmap(self->c, OUT_BEFORE_IOVA, OUT_PAGES * PAGE_4K, 0, &n));
	EXPECT_EQ(OUT_PAGES * PAGE_4K, n);
	n = 0;
	ASSERT_EQ(0, vfio_unmap(self->c, OUT_AFTER_IOVA, OUT_PAGES * PAGE_4K, 0, &n));
	EXPECT_EQ(OUT_PAGES * PAGE_4K, n);
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(pins0, foll_pins_outstanding());
}

/* UNMAP with a bitmap over a range holding no mapping: size 0, bitmap untouched. */
TEST_F(edu, unmap_get_dirty_bitmap_empty_range)
{
	uint8_t *buf = edu_buf(PAGE_4K, 0);
	uint64_t *bm = bitmap_new(1, P_WORD);
	uint64_t n = 1;

	ASSERT_NE(NULL, bm);
	ASSERT_EQ(0, vfio_map(self->c, SZ_4G, buf, PAGE_4K, RW));
	ASSERT_EQ(0, dirty_start(self->c));
	ASSERT_EQ(0, unmap_bitmap(self->c, SZ_1M, 64 * PAGE_4K, 8, bm, &n));
	EXPECT_EQ(0, n);
	EXPECT_EQ(-1, bitmap_untouched(bm, 1, P_WORD));
}

/* GET_INFO's MIGRATION capability: 4 KiB bitmap pages, 256 MiB bitmap maximum. */
TEST_F(edu, get_info_migration_capability)
{
	const struct vfio_iommu_type1_info_cap_migration *mig;
	struct vfio_iommu_type1_info *info = vfio_get_info(self->c);

	ASSERT_NE(NULL, info);
	mig = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
	ASSERT_NE(NULL, mig);
	EXPECT_EQ(1, mig->header.version);
	EXPECT_EQ(0, mig->flags);
	EXPECT_EQ(PAGE_4K, mig->pgsize_bitmap);
	EXPECT_EQ(DIRTY_MAX_BYTES, mig->max_dirty_bitmap_size);
	free(info);
	/* Unchanged while tracking is on. */
	ASSERT_EQ(0, dirty_start(self->c));
	info = vfio_get_info(self->c);
	ASSERT_NE(NULL, info);
	mig = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
	ASSERT_NE(NULL, mig);
	EXPECT_EQ(PAGE_4K, mig->pgsize_bitmap);
	EXPECT_EQ(DIRTY_MAX_BYTES, mig->max_dirty_bitmap_size);
	free(info);
}

TEST_HARNESS_MAIN
