/* SPDX-License-Identifier: GPL-2.0 */
/*
 * edu_fixture.h - the common kselftest_harness fixture of the rvfio
 * selftests: a fresh type1v2 container with the first edu device's group
 * attached, its device fd open, bus mastering on and BAR0 mapped. Memory from
 * edu_buf() is unmapped at teardown, after the container is closed.
 *
 * Include after kselftest_harness.h.
 */
#ifndef EDU_FIXTURE_H
#define EDU_FIXTURE_H

#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vfio_edu.h"

#define RO	VFIO_DMA_MAP_FLAG_READ
#define WO	VFIO_DMA_MAP_FLAG_WRITE
#define RW	(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)

/* Seconds for tests that run edu DMAs (each costs >= 100 ms of guest time). */
#define DMA_TEST_TIMEOUT	120

#define EDU_FIXTURE_MAX_BUFS	32

FIXTURE(edu) {
	struct edu dev;
	int c;			/* == dev.container */
	struct { void *p; size_t len; } bufs[EDU_FIXTURE_MAX_BUFS];
	int nbufs;
};

/* Skip (with the reason) when the environment has no edu device at all. */
#define SKIP_IF_NO_EDU(n) do { \
	if (access("/dev/vfio/vfio", F_OK)) \
		SKIP(return, "/dev/vfio/vfio does not exist: vfio is not loaded"); \
	if (edu_count() < (n)) \
		SKIP(return, "needs %d edu device(s) in EDU_BDFS, have %d", (n), edu_count()); \
} while (0)

FIXTURE_SETUP(edu)
{
	char err[256] = "";
	int ret;

	self->nbufs = 0;
	self->dev.container = self->dev.group = self->dev.device = -1;
	self->dev.bar0 = NULL;
	SKIP_IF_NO_EDU(1);
	ret = edu_open(&self->dev, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err));
	ASSERT_EQ(0, ret) TH_LOG("setup: %s", err);
	self->c = self->dev.container;
}

FIXTURE_TEARDOWN(edu)
{
	edu_close(&self->dev);
	for (int i = 0; i < self->nbufs; i++)
		munmap(self->bufs[i].p, self->bufs[i].len);
	self->nbufs = 0;
}

/* Pre-faulted 4 KiB-page anonymous memory filled with fill, freed at teardown. */
#define edu_buf(len, fill) __edu_buf(_metadata, self, (len), (fill))
static inline uint8_t *__edu_buf(struct __test_metadata *_metadata,
				 FIXTURE_DATA(edu) *self, size_t len, uint8_t fill)
{
	void *p;

	ASSERT_LT(self->nbufs, EDU_FIXTURE_MAX_BUFS);
	p = alloc_pages_4k(len, fill);
	ASSERT_NE(MAP_FAILED, p);
	self->bufs[self->nbufs].p = p;
	self->bufs[self->nbufs].len = len;
	self->nbufs++;
	return p;
}

/* The container still maps and unmaps: map a fresh page RW, unmap exactly it. */
#define ASSERT_CONTAINER_USABLE() __assert_usable(_metadata, self)
static inline void __assert_usable(struct __test_metadata *_metadata, FIXTURE_DATA(edu) *self)
{
	const uint64_t iova = 0x7ff00000ull;
	uint8_t *p = edu_buf(PAGE_4K, 0x11);
	uint64_t n = 0;

	ASSERT_EQ(0, vfio_map(self->c, iova, p, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_unmap(self->c, iova, PAGE_4K, 0, &n));
	ASSERT_EQ(PAGE_4K, n);
}

#endif /* EDU_FIXTURE_H */
