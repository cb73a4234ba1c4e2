// SPDX-License-Identifier: GPL-2.0
/*
 * vaddr_test - VFIO_UPDATE_VADDR: UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR
 * invalidates the process addresses of mappings while the IOMMU mappings and
 * pins stay (the device keeps DMAing), and MAP_DMA with
 * VFIO_DMA_MAP_FLAG_VADDR gives them a new address, possibly in another
 * process, which then owns the mapping and its locked-memory charge.
 *
 * Memory is a memfd mapped MAP_SHARED, so a second mmap of it (in this
 * process or in a child) reaches the same pages: the data the device moves
 * shows up behind the new address.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"
#include "vfio_util.h"

#define VADDR		VFIO_DMA_MAP_FLAG_VADDR
#define UNMAP_VADDR	VFIO_DMA_UNMAP_FLAG_VADDR

/* A memfd of len bytes mapped MAP_SHARED; returns the mapping or MAP_FAILED. */
static void *memfd_map(int fd, size_t len)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
}

/* Touch every page so that MAP_DMA pins already-present pages. */
static void prefault(void *p, size_t len, uint8_t v)
{
	memset(p, v, len);
}

static int invalidate(int c, uint64_t iova, uint64_t size, uint64_t *n)
{
	return vfio_unmap(c, iova, size, UNMAP_VADDR, n);
}

static int restore(int c, uint64_t iova, const void *vaddr, uint64_t size)
{
	return vfio_map(c, iova, vaddr, size, VADDR);
}


/* Once the container has an IOMMU type, CHECK_EXTENSION(VFIO_UPDATE_VADDR) is 1. */
TEST_F(edu, update_vaddr_extension_after_set_iommu)
{
	EXPECT_EQ(1, vfio_ioctl(self->c, VFIO_CHECK_EXTENSION, (void *)(long)VFIO_UPDATE_VADDR));
	EXPECT_EQ(1, vfio_ioctl(self->c, VFIO_CHECK_EXTENSION, (void *)(long)VFIO_UNMAP_ALL));
}

/*
 * UNMAP with VFIO_DMA_UNMAP_FLAG_VADDR reports the size of the invalidated
 * mappings, unpins and uncharges nothing, and the device keeps copying
 * through the IOMMU mappings.
 */
TEST_F_TIMEOUT(edu, invalidate_vaddr_reports_size_dma_continues, DMA_TEST_TIMEOUT)
{
	const size_t len = 16 * PAGE_4K;
	const uint64_t A = SZ_1M, B = 2 * SZ_1M;
	int fd = memfd_new("vaddr_test", len, false);
	uint8_t *m;
	long lck0, lck1;
	long long pins0, pins1;
	uint64_t n = 0;

	ASSERT_GE(fd, 0);
	m = memfd_map(fd, len);
	ASSERT_NE(MAP_FAILED, m);
	prefault(m, len, 0);
	lck0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_EQ(0, vfio_map(self->c, A, m, 8 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, B, m + 8 * PAGE_4K, 4 * PAGE_4K, RW));
	lck1 = vmlck_kb();
	pins1 = foll_pins_outstanding();
	EXPECT_EQ(lck0 + 12 * 4, lck1);
	EXPECT_EQ(pins0 + 12, pins1);

	/* One range over both mappings (and the hole between them). */
	ASSERT_EQ(0, invalidate(self->c, A, B + 4 * PAGE_4K - A, &n));
	EXPECT_EQ(12 * PAGE_4K, n);
	EXPECT_EQ(lck1, vmlck_kb()) TH_LOG("invalidating a vaddr changed VmLck");
	EXPECT_EQ(pins1, foll_pins_outstanding()) TH_LOG("invalidating a vaddr changed the pins");
	/* The device copies A -> B and B -> A. */
	ASSERT_DEV_COPY(&self->dev, A, m, B + PAGE_4K, m + 9 * PAGE_4K);
	ASSERT_DEV_COPY(&self->dev, B + 3 * PAGE_4K, m + 11 * PAGE_4K, A + 7 * PAGE_4K,
			m + 7 * PAGE_4K);
	/* A plain UNMAP of invalidated mappings works and releases everything. */
	n = 0;
	ASSERT_EQ(0, vfio_unmap(self->c, A, B + 4 * PAGE_4K - A, 0, &n));
	EXPECT_EQ(12 * PAGE_4K, n);
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(pins0, foll_pins_outstanding());
	munmap(m, len);
	close(fd);
}

/*
 * Invalidating a range that holds an already-invalid vaddr is EINVAL and
 * changes nothing: a valid mapping before it in the same range is rolled back
 * to valid (MAP_FLAG_VADDR on it is EINVAL), the invalid one stays invalid
 * (it can be restored), and DMA through both continues.
 */
TEST_F_TIMEOUT(edu, invalidate_twice_einval_nothing_changes, DMA_TEST_TIMEOUT)
{
	const size_t len = 8 * PAGE_4K;
	const uint64_t X = SZ_1M, Y = 2 * SZ_1M;
	int fd = memfd_new("vaddr_test", len, false);
	uint8_t *m;
	long lck1;
	uint64_t n;

	ASSERT_GE(fd, 0);
	m = memfd_map(fd, len);
	ASSERT_NE(MAP_FAILED, m);
	prefault(m, len, 0);
	ASSERT_EQ(0, vfio_map(self->c, X, m, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, Y, m + 4 * PAGE_4K, 4 * PAGE_4K, RW));
	lck1 = vmlck_kb();
	n = 0;
	ASSERT_EQ(0, invalidate(self->c, Y, 4 * PAGE_4K, &n));
	EXPECT_EQ(4 * PAGE_4K, n);

	/* Y again, alone. */
	EXPECT_EQ(-EINVAL, invalidate(self->c, Y, 4 * PAGE_4K, &n));
	/* X (valid) then Y (invalid) in one range: X must be rolled back. */
	EXPECT_EQ(-EINVAL, invalidate(self->c, X, Y + 4 * PAGE_4K - X, &n));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, 0, 0, UNMAP_VADDR | VFIO_DMA_UNMAP_FLAG_ALL, &n));
	EXPECT_EQ(lck1, vmlck_kb());
	/* X is valid: restoring it is refused. */
	EXPECT_EQ(-EINVAL, restore(self->c, X, m, 4 * PAGE_4K))
		TH_LOG("X was left invalid by a failed invalidate");
	ASSERT_DEV_COPY(&self->dev, X, m, Y, m + 4 * PAGE_4K);
	/* Y is still invalid: restoring it works, once. */
	ASSERT_EQ(0, restore(self->c, Y, m + 4 * PAGE_4K, 4 * PAGE_4K));
	EXPECT_EQ(-EINVAL, restore(self->c, Y, m + 4 * PAGE_4K, 4 * PAGE_4K));
	/* Now both invalidate fine in one go. */
	n = 0;
	ASSERT_EQ(0, invalidate(self->c, X, Y + 4 * PAGE_4K - X, &n));
	EXPECT_EQ(8 * PAGE_4K, n);
	ASSERT_DEV_COPY(&self->dev, Y + PAGE_4K, m + 5 * PAGE_4K, X + PAGE_4K, m + PAGE_4K);
	ASSERT_EQ(0, restore(self->c, X, m, 4 * PAGE_4K));
	ASSERT_EQ(0, restore(self->c, Y, m + 4 * PAGE_4K, 4 * PAGE_4K));
	EXPECT_EQ(lck1, vmlck_kb());
	munmap(m, len);
	close(fd);
}

/*
 * MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR: READ/WRITE with it is EINVAL; no
 * mapping at the range is ENOENT; a size or iova that does not match the
 * invalidated mapping exactly, or a mapping whose vaddr is still valid, is
 * EINVAL; an unaligned vaddr is EINVAL. None of these restores the mapping:
 * the right call afterwards succeeds, exactly once.
 */
TEST_F(edu, map_vaddr_errors)
{
	const size_t len = 16 * PAGE_4K;
	const uint64_t A = SZ_1M, V = 4 * SZ_1M;
	int fd = memfd_new("vaddr_test", len, false);
	uint8_t *m;
	uint64_t n = 0;

	ASSERT_GE(fd, 0);
	m = memfd_map(fd, len);
	ASSERT_NE(MAP_FAILED, m);
	prefault(m, len, 0);
	ASSERT_EQ(0, vfio_map(self->c, A, m, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, V, m + 8 * PAGE_4K, 4 * PAGE_4K, RO));	/* stays valid */
	ASSERT_EQ(0, invalidate(self->c, A, 4 * PAGE_4K, &n));
	ASSERT_EQ(4 * PAGE_4K, n);

	EXPECT_EQ(-EINVAL, vfio_map(self->c, A, m, 4 * PAGE_4K, VADDR | RO));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, A, m, 4 * PAGE_4K, VADDR | WO));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, A, m, 4 * PAGE_4K, VADDR | RW));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, A, m, 4 * PAGE_4K, 0));
	/* Nothing mapped there at all. */
	EXPECT_EQ(-ENOENT, restore(self->c, 2 * SZ_1M, m, 4 * PAGE_4K));
	EXPECT_EQ(-ENOENT, restore(self->c, A + 4 * PAGE_4K, m, 4 * PAGE_4K));
	EXPECT_EQ(-ENOENT, restore(self->c, A - 4 * PAGE_4K, m, 4 * PAGE_4K));
	/* Overlapping but not matching. */
	EXPECT_EQ(-EINVAL, restore(self->c, A, m, 2 * PAGE_4K));
	EXPECT_EQ(-EINVAL, restore(self->c, A, m, 8 * PAGE_4K));
	EXPECT_EQ(-EINVAL, restore(self->c, A + PAGE_4K, m, 3 * PAGE_4K));
	EXPECT_EQ(-EINVAL, restore(self->c, A - PAGE_4K, m, 4 * PAGE_4K));
	/* Unaligned vaddr. */
	EXPECT_EQ(-EINVAL, restore(self->c, A, m + 0x800, 4 * PAGE_4K));
	/* V's vaddr is valid. */
	EXPECT_EQ(-EINVAL, restore(self->c, V, m + 8 * PAGE_4K, 4 * PAGE_4K));
	/* A is still invalid: the right call works, then no more. */
	ASSERT_EQ(0, restore(self->c, A, m, 4 * PAGE_4K));
	EXPECT_EQ(-EINVAL, restore(self->c, A, m, 4 * PAGE_4K));
	n = 0;
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ(8 * PAGE_4K, n);
	munmap(m, len);
	close(fd);
}

/*
 * Restore at a new address: the memfd mapped a second time (the first
 * mapping is gone by then). DMA works before and after, the data is the
 * memfd's, VmLck and the pins are unchanged (same process), and UNMAP
 * releases everything.
 */
TEST_F_TIMEOUT(edu, restore_at_new_vaddr_dma_continues, DMA_TEST_TIMEOUT)
{
	const size_t len = 8 * PAGE_4K;
	const uint64_t A = 0x3000000;
	int fd = memfd_new("vaddr_test", len, false);
	uint8_t *m1, *m2;
	long lck0, lck1;
	long long pins0, pins1;
	uint64_t n = 0;

	ASSERT_GE(fd, 0);
	m1 = memfd_map(fd, len);
	m2 = memfd_map(fd, len);
	ASSERT_NE(MAP_FAILED, m1);
	ASSERT_NE(MAP_FAILED, m2);
	ASSERT_NE(m1, m2);
	prefault(m1, len, 0);
	lck0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_EQ(0, vfio_map(self->c, A, m1, len, RW));
	lck1 = vmlck_kb();
	pins1 = foll_pins_outstanding();
	EXPECT_EQ(lck0 + 8 * 4, lck1);
	EXPECT_EQ(pins0 + 8, pins1);
	ASSERT_EQ(0, invalidate(self->c, A, len, &n));
	EXPECT_EQ(len, n);
	ASSERT_EQ(0, munmap(m1, len));
	/* No process address at all now; the device still copies. */
	ASSERT_DEV_COPY(&self->dev, A, m2, A + 4 * PAGE_4K, m2 + 4 * PAGE_4K);
	ASSERT_EQ(0, restore(self->c, A, m2, len));
	EXPECT_EQ(lck1, vmlck_kb());
	EXPECT_EQ(pins1, foll_pins_outstanding());
	ASSERT_DEV_COPY(&self->dev, A + PAGE_4K, m2 + PAGE_4K, A + 7 * PAGE_4K, m2 + 7 * PAGE_4K);
	ASSERT_EQ(0, vfio_unmap(self->c, A, len, 0, &n));
	EXPECT_EQ(len, n);
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(pins0, foll_pins_outstanding());
	munmap(m2, len);
	close(fd);
}

/*
 * While any vaddr is invalid, a group cannot join the container (EBUSY: its
 * attach might need to pin). After restore it joins, and the second device
 * copies through the mapping that was made before it joined.
 */
TEST_F_TIMEOUT(edu, attach_group_while_vaddr_invalid_ebusy, DMA_TEST_TIMEOUT)
{
	const size_t len = 8 * PAGE_4K;
	const uint64_t A = SZ_1M, B = 2 * SZ_1M;
	char err[256] = "";
	struct edu e2;
	int fd, g;
	uint8_t *m;
	uint64_t n = 0;

	if (edu_count() < 2)
		SKIP(return, "needs 2 edu devices in EDU_BDFS, have %d", edu_count());
	fd = memfd_new("vaddr_test", len, false);
	ASSERT_GE(fd, 0);
	m = memfd_map(fd, len);
	ASSERT_NE(MAP_FAILED, m);
	prefault(m, len, 0);
	ASSERT_EQ(0, vfio_map(self->c, A, m, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, B, m + 4 * PAGE_4K, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, invalidate(self->c, B, 4 * PAGE_4K, &n));
	g = vfio_group_attach(self->c, edu_bdf(1), NULL);
	if (g >= 0)
		close(g);
	ASSERT_EQ(-EBUSY, g) TH_LOG("group attach with an invalid vaddr: %s", strerror(-g));
	/* The refused group can still be used elsewhere: it is not half-attached. */
	{
		struct edu tmp;

		ASSERT_EQ(0, edu_open(&tmp, edu_bdf(1), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
			TH_LOG("%s", err);
		edu_close(&tmp);
	}
	ASSERT_EQ(0, restore(self->c, B, m + 4 * PAGE_4K, 4 * PAGE_4K));
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), self->c, 0, err, sizeof(err))) TH_LOG("%s", err);
	/* Both devices reach both mappings. */
	ASSERT_DEV_COPY(&e2, A, m, B, m + 4 * PAGE_4K);
	ASSERT_DEV_COPY(&self->dev, B + PAGE_4K, m + 5 * PAGE_4K, A + PAGE_4K, m + PAGE_4K);
	/* Invalidation is allowed with two groups (both IOMMU-backed) too. */
	n = 0;
	ASSERT_EQ(0, invalidate(self->c, A, B + 4 * PAGE_4K - A, &n));
	EXPECT_EQ(8 * PAGE_4K, n);
	ASSERT_DEV_COPY(&e2, B + 2 * PAGE_4K, m + 6 * PAGE_4K, A + 2 * PAGE_4K, m + 2 * PAGE_4K);
	ASSERT_EQ(0, restore(self->c, A, m, 4 * PAGE_4K));
	ASSERT_EQ(0, restore(self->c, B, m + 4 * PAGE_4K, 4 * PAGE_4K));
	edu_close(&e2);
	munmap(m, len);
	close(fd);
}

/*
 * A plain UNMAP of an invalidated mapping also ends its invalid state: a
 * group can attach afterwards.
 */
TEST_F(edu, unmap_of_invalid_mapping_allows_attach)
{
	const size_t len = 4 * PAGE_4K;
	int fd, g;
	uint8_t *m;
	uint64_t n = 0;

	if (edu_count() < 2)
		SKIP(return, "needs 2 edu devices in EDU_BDFS, have %d", edu_count());
	fd = memfd_new("vaddr_test", len, false);
	ASSERT_GE(fd, 0);
	m = memfd_map(fd, len);
	ASSERT_NE(MAP_FAILED, m);
	prefault(m, len, 0);
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, m, len, RW));
	ASSERT_EQ(0, invalidate(self->c, SZ_1M, len, &n));
	ASSERT_EQ(0, vfio_unmap(self->c, SZ_1M, len, 0, &n));
	EXPECT_EQ(len, n);
	g = vfio_group_attach(self->c, edu_bdf(1), NULL);
	EXPECT_GE(g, 0) TH_LOG("attach after unmapping the invalid mapping: %s", strerror(-g));
	if (g >= 0)
		close(g);
	munmap(m, len);
	close(fd);
}

/*
 * UNMAP with VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL invalidates
 * every mapping (each can then be restored exactly once), reports their total
 * size, and needs iova = size = 0. DMA goes on. With a second edu, attach is
 * refused until the last one is restored.
 */
TEST_F_TIMEOUT(edu, invalidate_vaddr_all, DMA_TEST_TIMEOUT)
{
	const size_t len = 16 * PAGE_4K;
	const uint64_t iova[3] = { SZ_1M, 3 * SZ_1M, SZ_4G };
	const size_t pages[3] = { 2, 4, 8 };
	size_t off[3] = { 0, 2, 6 };
	int fd = memfd_new("vaddr_test", len, false), g;
	char err[256] = "";
	struct edu e2;
	uint8_t *m;
	uint64_t n = 0;
	long lck1;

	ASSERT_GE(fd, 0);
	m = memfd_map(fd, len);
	ASSERT_NE(MAP_FAILED, m);
	prefault(m, len, 0);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, vfio_map(self->c, iova[i], m + off[i] * PAGE_4K, pages[i] * PAGE_4K, RW));
	}
	lck1 = vmlck_kb();
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, SZ_1M, 0, UNMAP_VADDR | VFIO_DMA_UNMAP_FLAG_ALL, &n));
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, 0, SZ_4G, UNMAP_VADDR | VFIO_DMA_UNMAP_FLAG_ALL, &n));
	n = 0;
	ASSERT_EQ(0, vfio_unmap(self->c, 0, 0, UNMAP_VADDR | VFIO_DMA_UNMAP_FLAG_ALL, &n));
	EXPECT_EQ(14 * PAGE_4K, n);
	EXPECT_EQ(lck1, vmlck_kb());
	ASSERT_DEV_COPY(&self->dev, iova[0], m, iova[2] + 7 * PAGE_4K, m + 13 * PAGE_4K);
	/* All invalid already: a second one fails. */
	EXPECT_EQ(-EINVAL, vfio_unmap(self->c, 0, 0, UNMAP_VADDR | VFIO_DMA_UNMAP_FLAG_ALL, &n));
	for (int i = 0; i < 3; i++) {
		if (edu_count() >= 2) {
			g = vfio_group_attach(self->c, edu_bdf(1), NULL);
			if (g >= 0)
				close(g);
			EXPECT_EQ(-EBUSY, g) TH_LOG("attach with %d invalid vaddrs", 3 - i);
		}
		ASSERT_EQ(0, restore(self->c, iova[i], m + off[i] * PAGE_4K, pages[i] * PAGE_4K))
			TH_LOG("mapping %d was not invalidated", i);
	}
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(-EINVAL, restore(self->c, iova[i], m + off[i] * PAGE_4K,
					   pages[i] * PAGE_4K));
	}
	if (edu_count() >= 2) {
		ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), self->c, 0, err, sizeof(err)))
			TH_LOG("%s", err);
		ASSERT_DEV_COPY(&e2, iova[1] + 3 * PAGE_4K, m + 5 * PAGE_4K, iova[0], m);
		edu_close(&e2);
	}
	n = 0;
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ(14 * PAGE_4K, n);
	munmap(m, len);
	close(fd);
}

/* Closing the container while vaddrs are invalid releases every pin and charge. */
TEST_F(edu, close_with_invalid_vaddr_releases_all)
{
	const size_t len = 32 * PAGE_4K;
	int fd = memfd_new("vaddr_test", len, false);
	uint8_t *m;
	long lck0;
	long long pins0;
	uint64_t n = 0;

	ASSERT_GE(fd, 0);
	m = memfd_map(fd, len);
	ASSERT_NE(MAP_FAILED, m);
	prefault(m, len, 0);
	lck0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, m, len, RW));
	ASSERT_EQ(0, invalidate(self->c, SZ_1M, len, &n));
	ASSERT_EQ(0, munmap(m, len));
	EXPECT_EQ(lck0 + 32 * 4, vmlck_kb());
	EXPECT_EQ(pins0 + 32, foll_pins_outstanding());
	edu_close(&self->dev);
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(pins0, foll_pins_outstanding());
	close(fd);
}

/* ---- across fork ---------------------------------------------------------- */

/*
 * Plain processes orchestrated by the test process T through pipes. Messages
 * are fixed-size records; a reader that sees EOF treats it as "peer died".
 */
struct msg {
	long step;
	long a, b;
};

static int msg_send(int fd, long step, long a, long b)
{
	struct msg m = { step, a, b };

	return write(fd, &m, sizeof(m)) == sizeof(m) ? 0 : -1;
}

static int msg_recv(int fd, struct msg *m)
{
	ssize_t r = read(fd, m, sizeof(*m));

	return r == sizeof(*m) ? 0 : -1;
}

#define FORK_PAGES	64
#define FORK_LEN	(FORK_PAGES * PAGE_4K)
#define FORK_IOVA	0x10000000ull

FIXTURE(fork) {
	int unused;
};

FIXTURE_SETUP(fork)
{
	self->unused = 0;
	if (access("/dev/vfio/vfio", F_OK))
		SKIP(return, "/dev/vfio/vfio does not exist: vfio is not loaded");
	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	/* The child of the parent must be reparented to the test process. */
	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1));
}

FIXTURE_TEARDOWN(fork)
{
}

#define CHILD_FAIL(code, ...) do { \
	fprintf(stderr, "# child %d: step %d: ", getpid(), (code)); \
	fprintf(stderr, __VA_ARGS__); \
	fprintf(stderr, "\n"); \
	_exit(code); \
} while (0)

/*
 * The child C: mmaps the memfd at a new address, restores the vaddr (taking
 * over the mapping), reports its VmLck before/after, waits, then DMAs
 * through the mapping and checks the data in its own mapping, unmaps and
 * reports its VmLck again. Exit code 0 or the failing step.
 */
static void fork_child(int memfd, struct edu *e, uint8_t *old_map, int to_t, int from_t)
{
	long before, after;
	uint32_t seed;
	struct msg m;
	uint8_t *m2;
	uint64_t n = 0;
	int ret;

	munmap(old_map, FORK_LEN);	/* the inherited mapping: not used */
	m2 = memfd_map(memfd, FORK_LEN);
	if (m2 == MAP_FAILED)
		CHILD_FAIL(40, "mmap memfd: %s", strerror(errno));
	if (msg_recv(from_t, &m) || m.step != 1)
		CHILD_FAIL(41, "no go from the test process");
	before = vmlck_kb();
	ret = restore(e->container, FORK_IOVA, m2, FORK_LEN);
	if (ret)
		CHILD_FAIL(42, "MAP_DMA(VADDR) in the child: %s", strerror(-ret));
	after = vmlck_kb();
	msg_send(to_t, 2, before, after);
	if (msg_recv(from_t, &m) || m.step != 3)
		CHILD_FAIL(43, "no go after the parent exited");
	/* The device copies page 0 -> page 32 and page 1 -> page 33. */
	for (int i = 0; i < 2; i++) {
		seed = random_seed();
		fill_pattern(m2 + i * PAGE_4K, PAGE_4K, seed);
		memset(m2 + (32 + i) * PAGE_4K, 0xd1, PAGE_4K);
		ret = edu_copy(e, FORK_IOVA + i * PAGE_4K, FORK_IOVA + (32 + i) * PAGE_4K, PAGE_4K);
		if (ret)
			CHILD_FAIL(44, "edu DMA: %s", strerror(-ret));
		if (check_pattern(m2 + (32 + i) * PAGE_4K, PAGE_4K, seed) != -1)
			CHILD_FAIL(45, "device copy %d did not arrive in the child's mapping", i);
	}
	ret = vfio_unmap(e->container, FORK_IOVA, FORK_LEN, 0, &n);
	if (ret || n != FORK_LEN)
		CHILD_FAIL(46, "UNMAP: %s, size %#llx", strerror(-ret), (unsigned long long)n);
	msg_send(to_t, 4, before, vmlck_kb());
	if (msg_recv(from_t, &m) || m.step != 5)
		CHILD_FAIL(47, "no final go");
	edu_close(e);
	_exit(0);
}

/*
 * The parent P: maps a memfd, invalidates the vaddr, forks C (which inherits
 * the container, group and device fds), reports to T and exits when told
 * (exit_early: right after forking, before C restores).
 */
static void fork_parent(bool exit_early, int pt, int tp, int ct, int tc)
{
	char err[256] = "";
	struct edu e;
	uint8_t *m;
	long before, after;
	uint64_t n = 0;
	struct msg msg;
	int fd, ret;
	pid_t c;

	fd = memfd_new("vaddr_test", FORK_LEN, false);
	if (fd < 0)
		CHILD_FAIL(20, "memfd: %s", strerror(-fd));
	m = memfd_map(fd, FORK_LEN);
	if (m == MAP_FAILED)
		CHILD_FAIL(21, "mmap: %s", strerror(errno));
	prefault(m, FORK_LEN, 0x3c);
	ret = edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err));
	if (ret)
		CHILD_FAIL(22, "%s", err);
	before = vmlck_kb();
	ret = vfio_map(e.container, FORK_IOVA, m, FORK_LEN, RW);
	if (ret)
		CHILD_FAIL(23, "MAP_DMA: %s", strerror(-ret));
	after = vmlck_kb();
	ret = invalidate(e.container, FORK_IOVA, FORK_LEN, &n);
	if (ret || n != FORK_LEN)
		CHILD_FAIL(24, "invalidate: %s, size %#llx", strerror(-ret), (unsigned long long)n);
	c = fork();
	if (c < 0)
		CHILD_FAIL(25, "fork: %s", strerror(errno));
	if (c == 0) {
		close(pt);
		close(tp);
		fork_child(fd, &e, m, ct, tc);
	}
	close(ct);
	close(tc);
	msg_send(pt, 1, before, after);
	msg_send(pt, 2, c, 0);
	if (exit_early)
		_exit(0);
	if (msg_recv(tp, &msg) || msg.step != 9)
		CHILD_FAIL(26, "no exit command");
	_exit(0);	/* with every fd and the mapping still open */
}

static void fork_restore_test(struct __test_metadata *_metadata, bool parent_exits_first)
{
	int pt[2], tp[2], ct[2], tc[2], status;
	long long pins0;
	long lck_p0, lck_p1;
	struct msg m;
	pid_t p, c;

	pins0 = foll_pins_outstanding();
	ASSERT_NE(LLONG_MIN, pins0);
	ASSERT_EQ(0, pipe(pt));
	ASSERT_EQ(0, pipe(tp));
	ASSERT_EQ(0, pipe(ct));
	ASSERT_EQ(0, pipe(tc));
	p = fork();
	ASSERT_GE(p, 0);
	if (p == 0) {
		close(pt[0]);
		close(tp[1]);
		close(ct[0]);
		close(tc[1]);
		fork_parent(parent_exits_first, pt[1], tp[0], ct[1], tc[0]);
	}
	close(pt[1]);
	close(tp[0]);
	close(ct[1]);
	close(tc[0]);

	ASSERT_EQ(0, msg_recv(pt[0], &m)) TH_LOG("parent died before mapping");
	lck_p0 = m.a;
	lck_p1 = m.b;
	EXPECT_EQ(lck_p0 + FORK_PAGES * 4, lck_p1) TH_LOG("parent's VmLck after MAP_DMA");
	ASSERT_EQ(0, msg_recv(pt[0], &m));
	c = m.a;
	ASSERT_GT(c, 0);
	EXPECT_EQ(pins0 + FORK_PAGES, foll_pins_outstanding());

	if (parent_exits_first) {
		ASSERT_EQ(p, waitpid(p, &status, 0));
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("parent failed: status %#x", status);
		/* The mapping outlives its owner's mm: still pinned. */
		EXPECT_EQ(pins0 + FORK_PAGES, foll_pins_outstanding());
	}

	/* C restores the vaddr: it takes over the mapping and its charge. */
	ASSERT_EQ(0, msg_send(tc[1], 1, 0, 0));
	ASSERT_EQ(0, msg_recv(ct[0], &m)) TH_LOG("child died restoring the vaddr");
	ASSERT_EQ(2, m.step);
	EXPECT_EQ(m.a + FORK_PAGES * 4, m.b) TH_LOG("child's VmLck %ld -> %ld", m.a, m.b);
	EXPECT_EQ(m.b, vmlck_kb_pid(c));
	if (!parent_exits_first) {
		EXPECT_EQ(lck_p0, vmlck_kb_pid(p)) TH_LOG("the parent's charge did not move");
		ASSERT_EQ(0, msg_send(tp[1], 9, 0, 0));
		ASSERT_EQ(p, waitpid(p, &status, 0));
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("parent failed: status %#x", status);
	}
	/* Only the child holds the container now. */
	EXPECT_EQ(pins0 + FORK_PAGES, foll_pins_outstanding());
	ASSERT_EQ(0, msg_send(tc[1], 3, 0, 0));
	ASSERT_EQ(0, msg_recv(ct[0], &m)) TH_LOG("child died (DMA or UNMAP)");
	ASSERT_EQ(4, m.step);
	EXPECT_EQ(m.a, m.b) TH_LOG("child's VmLck after UNMAP: %ld, before restore %ld", m.b, m.a);
	EXPECT_EQ(pins0, foll_pins_outstanding()) TH_LOG("the child's UNMAP left pages pinned");
	ASSERT_EQ(0, msg_send(tc[1], 5, 0, 0));
	ASSERT_EQ(c, waitpid(c, &status, 0)) TH_LOG("the child was not reparented to the test");
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child failed: status %#x", status);
	EXPECT_EQ(pins0, foll_pins_outstanding());
	close(pt[0]);
	close(tp[1]);
	close(ct[0]);
	close(tc[1]);
}

/*
 * The parent maps a memfd and invalidates the vaddr, then forks; the child
 * mmaps the memfd and restores the vaddr: the charge moves from the parent's
 * VmLck to the child's. The parent exits; the child (holding the container
 * fd it inherited) DMAs through the mapping, sees the data in its own
 * mapping, unmaps: its VmLck is back, nothing stays pinned.
 */
TEST_F_TIMEOUT(fork, vaddr_restore_in_child_moves_ownership, DMA_TEST_TIMEOUT)
{
	fork_restore_test(_metadata, false);
}

/* The same with the parent gone before the child restores (exec-style handover). */
TEST_F_TIMEOUT(fork, vaddr_restore_in_child_after_parent_exit, DMA_TEST_TIMEOUT)
{
	fork_restore_test(_metadata, true);
}

TEST_HARNESS_MAIN
