// SPDX-License-Identifier: GPL-2.0
/*
 * accounting_test - pinned-page and locked-memory accounting of MAP_DMA.
 *
 * Two independent witnesses:
 *   VmLck (/proc/self/status) is mm->locked_vm, which type1 charges per pinned
 *   page of the mapping task's mm;
 *   nr_foll_pin_acquired - nr_foll_pin_released (/proc/vmstat) is the number of
 *   pages currently pinned with FOLL_PIN in the whole system. Nothing else in
 *   the test guest pins pages, so its change is what the backend pinned.
 * Every pin must be released and every charge undone by UNMAP_DMA, by closing
 * the container, or by the death of the process that mapped.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"

#define MAP_SIZE	SZ_2M
#define MAP_PAGES	(MAP_SIZE / PAGE_4K)
#define MAP_KB		(MAP_SIZE / 1024)


/* Map 2 MiB of pre-faulted 4 KiB pages: VmLck and pins grow by exactly that; UNMAP undoes both. */
TEST_F(edu, map_charges_vmlck_and_pins_exactly_unmap_releases)
{
	uint8_t *buf = edu_buf(MAP_SIZE, 0x5c);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	uint64_t n = 0;

	ASSERT_GE(lck0, 0);
	ASSERT_NE(LLONG_MIN, pins0);
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, MAP_SIZE, RW));
	EXPECT_EQ(lck0 + (long)MAP_KB, vmlck_kb());
	ASSERT_PINS(pins0 + MAP_PAGES);

	ASSERT_EQ(0, vfio_unmap(self->c, SZ_1M, MAP_SIZE, 0, &n));
	ASSERT_EQ(MAP_SIZE, n);
	EXPECT_EQ(lck0, vmlck_kb());
	ASSERT_PINS(pins0);

	/* Partial unmaps release exactly their part (v2: whole mappings). */
	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, MAP_SIZE / 2, RW));
	ASSERT_EQ(0, vfio_map(self->c, SZ_4G, buf + MAP_SIZE / 2, MAP_SIZE / 2, RO));
	EXPECT_EQ(lck0 + (long)MAP_KB, vmlck_kb());
	ASSERT_PINS(pins0 + MAP_PAGES);
	ASSERT_EQ(0, vfio_unmap(self->c, SZ_4G, MAP_SIZE / 2, 0, &n));
	EXPECT_EQ(lck0 + (long)MAP_KB / 2, vmlck_kb());
	ASSERT_PINS(pins0 + MAP_PAGES / 2);
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ(MAP_SIZE / 2, n);
	EXPECT_EQ(lck0, vmlck_kb());
	ASSERT_PINS(pins0);
}

/* The same memory mapped at two IOVAs is charged and pinned twice (type1 does not dedup). */
TEST_F(edu, same_memory_at_two_iovas_charged_twice)
{
	uint8_t *buf = edu_buf(64 * PAGE_4K, 0x33);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	uint64_t n = 0;

	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, 64 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, 2 * SZ_1M, buf, 64 * PAGE_4K, RO));
	EXPECT_EQ(lck0 + 2 * 64 * 4, vmlck_kb());
	ASSERT_PINS(pins0 + 2 * 64);
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ(2 * 64 * PAGE_4K, n);
	EXPECT_EQ(lck0, vmlck_kb());
	ASSERT_PINS(pins0);
}

/* Closing device, group and container with live mappings releases pins and VmLck. */
TEST_F(edu, container_close_with_live_mappings_releases_all)
{
	uint8_t *buf = edu_buf(MAP_SIZE, 0x6d), *small = edu_buf(PAGE_4K, 1);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();

	ASSERT_EQ(0, vfio_map(self->c, SZ_1M, buf, MAP_SIZE, RW));
	ASSERT_EQ(0, vfio_map(self->c, SZ_4G + SZ_1M, small, PAGE_4K, RO));
	EXPECT_EQ(lck0 + (long)MAP_KB + 4, vmlck_kb());
	ASSERT_PINS(pins0 + MAP_PAGES + 1);

	edu_close(&self->dev);	/* device, group, container; no UNMAP */
	EXPECT_EQ(lck0, vmlck_kb());
	ASSERT_PINS(pins0);
}

/*
 * A child opens its own container, maps, and exits with the mappings live:
 * nothing stays pinned. Then the parent can take the same group (the child's
 * container released it) and map it.
 */
TEST(child_exit_with_live_mappings_leaves_nothing_pinned)
{
	long long pins0, pins_child;
	int pipefd[2], status;
	char err[256] = "";
	struct edu e;
	uint8_t *buf;
	pid_t pid;
	long lck0;
	uint64_t n = 0;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	pins0 = foll_pins_outstanding();
	lck0 = vmlck_kb();
	ASSERT_NE(LLONG_MIN, pins0);
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		long long p;
		int rc = 0;

		close(pipefd[0]);
		buf = alloc_pages_4k(MAP_SIZE, 0x7e);
		if (buf == MAP_FAILED)
			_exit(10);
		if (edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err))) {
			fprintf(stderr, "# child: %s\n", err);
			_exit(11);
		}
		if (vfio_map(e.container, SZ_1M, buf, MAP_SIZE, RW))
			_exit(12);
		if (vfio_map(e.container, SZ_4G, buf, PAGE_4K, RO))
			_exit(13);
		if (vmlck_kb() != (long)MAP_KB + 4)
			rc = 14;
		p = foll_pins_outstanding();
		if (write(pipefd[1], &p, sizeof(p)) != sizeof(p))
			rc = 15;
		_exit(rc);	/* fds and mappings still open */
	}
	close(pipefd[1]);
	ASSERT_EQ(sizeof(pins_child), read(pipefd[0], &pins_child, sizeof(pins_child)));
	close(pipefd[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status)) TH_LOG("child failed at step %d", WEXITSTATUS(status));
	EXPECT_EQ(pins0 + (long long)MAP_PAGES + 1, pins_child) TH_LOG("child's pins while mapped");
	ASSERT_PINS(pins0);
	EXPECT_EQ(lck0, vmlck_kb());

	/* The group is free again: the parent maps through it and releases. */
	buf = alloc_pages_4k(PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("parent: %s", err);
	ASSERT_EQ(0, vfio_map(e.container, SZ_1M, buf, PAGE_4K, RW));
	ASSERT_PINS(pins0 + 1);
	ASSERT_EQ(0, vfio_unmap_all(e.container, &n));
	EXPECT_EQ(PAGE_4K, n);
	edu_close(&e);
	munmap(buf, PAGE_4K);
	ASSERT_PINS(pins0);
}

/*
 * Without CAP_IPC_LOCK, RLIMIT_MEMLOCK bounds what can be pinned: up to the
 * limit works, one page more fails with ENOMEM and leaves nothing charged or
 * pinned for the failed call.
 */
TEST(memlock_rlimit_enforced_without_cap_ipc_lock)
{
	const size_t half = 512 * 1024;
	long lck0, limit_kb;
	long long pins0;
	struct rlimit rl;
	char err[256] = "";
	struct edu e;
	uint8_t *buf;
	uint64_t n = 0;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	buf = alloc_pages_4k(2 * half + PAGE_4K, 0x2b);
	ASSERT_NE(MAP_FAILED, buf);
	lck0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_GE(lck0, 0);
	/* The limit counts what this mm has locked already. */
	limit_kb = lck0 + 2 * half / 1024;
	rl.rlim_cur = rl.rlim_max = limit_kb * 1024;
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &rl));
	ASSERT_EQ(0, drop_cap_ipc_lock());
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);

	ASSERT_EQ(0, vfio_map(e.container, SZ_1M, buf, half, RW));
	EXPECT_EQ(lck0 + (long)half / 1024, vmlck_kb());
	/* Exactly up to the limit is allowed. */
	ASSERT_EQ(0, vfio_map(e.container, 2 * SZ_1M, buf + half, half, RW));
	EXPECT_EQ(limit_kb, vmlck_kb());
	ASSERT_PINS(pins0 + 2 * half / PAGE_4K);
	/* One page more is not, and the failed call leaves no trace. */
	EXPECT_EQ(-ENOMEM, vfio_map(e.container, 3 * SZ_1M, buf + 2 * half, PAGE_4K, RW));
	EXPECT_EQ(limit_kb, vmlck_kb());
	ASSERT_PINS(pins0 + 2 * half / PAGE_4K);
	/* A larger map that crosses the limit part way also fails cleanly. */
	ASSERT_EQ(0, vfio_unmap(e.container, 2 * SZ_1M, half, 0, &n));
	ASSERT_EQ(half, n);
	EXPECT_EQ(-ENOMEM, vfio_map(e.container, 4 * SZ_1M, buf + half / 2, half + PAGE_4K, RW));
	EXPECT_EQ(lck0 + (long)half / 1024, vmlck_kb());
	ASSERT_PINS(pins0 + half / PAGE_4K);
	/* The IOVA of the failed map is free: no half-made mapping is left behind. */
	ASSERT_EQ(0, vfio_map(e.container, 4 * SZ_1M, buf + half, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_unmap_all(e.container, &n));
	EXPECT_EQ(half + PAGE_4K, n);
	EXPECT_EQ(lck0, vmlck_kb());
	ASSERT_PINS(pins0);
	edu_close(&e);
	munmap(buf, 2 * half + PAGE_4K);
}

TEST_HARNESS_MAIN
