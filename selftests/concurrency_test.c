// SPDX-License-Identifier: GPL-2.0
/*
 * concurrency_test - containers used from several threads and processes at
 * once:
 *   - threads mapping and unmapping their own IOVA ranges of one container
 *     while the device copies through another mapping of it;
 *   - two containers of one process mapping the same memory at the same IOVA
 *     (each charges and pins it: accounting is per container);
 *   - a process killed by SIGKILL in the middle of a large MAP_DMA leaves
 *     nothing pinned and its group free.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"

#define NTHREADS	4
#define ITERATIONS	200
#define THREAD_PAGES	8


static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

static int workers_done;	/* atomically incremented by each worker when it ends */

struct worker {
	pthread_t tid;
	int c, idx;
	uint8_t *buf;		/* THREAD_PAGES pages */
	uint64_t base;		/* its own 16 MiB of IOVA */
	int errors;
	char first_error[160];
};

static void worker_err(struct worker *w, const char *what, int it, long got, long want)
{
	if (!w->errors++)
		snprintf(w->first_error, sizeof(w->first_error),
			 "thread %d iteration %d: %s: got %ld, expected %ld", w->idx, it, what, got,
			 want);
}

/*
 * ITERATIONS rounds of: map 1..4 pages at one of 8 slots of its range, the
 * same IOVA again (EEXIST), a one-page overlap (EEXIST), unmap (exact size).
 * Ends with THREAD_PAGES pages mapped RW at its base.
 */
static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	int ret;

	for (int i = 0; i < ITERATIONS; i++) {
		uint64_t pages = (i + w->idx) % 4 + 1, size = pages * PAGE_4K;
		uint64_t iova = w->base + ((i * 5 + w->idx) % 8) * SZ_1M;
		uint64_t n = 0;

		ret = vfio_map(w->c, iova, w->buf + (i % 4) * PAGE_4K, size, i % 2 ? RW : RO);
		if (ret) {
			worker_err(w, "MAP_DMA", i, ret, 0);
			continue;
		}
		ret = vfio_map(w->c, iova, w->buf, size, RW);
		if (ret != -EEXIST)
			worker_err(w, "MAP_DMA of the same IOVA", i, ret, -EEXIST);
		ret = vfio_map(w->c, iova + size - PAGE_4K, w->buf, 2 * PAGE_4K, RW);
		if (ret != -EEXIST)
			worker_err(w, "MAP_DMA overlapping the last page", i, ret, -EEXIST);
		ret = vfio_unmap(w->c, iova, size, 0, &n);
		if (ret || n != size)
			worker_err(w, "UNMAP_DMA (ret or size)", i, ret ? ret : (long)n, (long)size);
	}
	ret = vfio_map(w->c, w->base, w->buf, THREAD_PAGES * PAGE_4K, RW);
	if (ret)
		worker_err(w, "final MAP_DMA", ITERATIONS, ret, 0);
	__atomic_add_fetch(&workers_done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * NTHREADS threads churn MAP/UNMAP on their own ranges of one container
 * while the main thread keeps the device copying through a separate, stable
 * pair of mappings (every copy must arrive intact). Afterwards each thread's
 * final mapping works for the device, and the accounting is exact.
 */
TEST_F_TIMEOUT(edu, threads_map_unmap_own_ranges, 300)
{
	const uint64_t S = 0x100000ull, D = 0x110000ull;
	struct worker w[NTHREADS];
	uint8_t *src = edu_buf(PAGE_4K, 0), *dst = edu_buf(PAGE_4K, 0);
	int copies = 0, bad_copies = 0;
	long lck0;
	long long pins0;
	uint64_t t0, n;

	for (int t = 0; t < NTHREADS; t++) {
		w[t].c = self->c;
		w[t].idx = t;
		w[t].buf = edu_buf(THREAD_PAGES * PAGE_4K, 0);
		w[t].base = (uint64_t)(t + 1) << 24;
		w[t].errors = 0;
		w[t].first_error[0] = '\0';
	}
	lck0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_EQ(0, vfio_map(self->c, S, src, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, D, dst, PAGE_4K, RW));
	workers_done = 0;
	t0 = now_ms();
	for (int t = 0; t < NTHREADS; t++) {
		ASSERT_EQ(0, pthread_create(&w[t].tid, NULL, worker_fn, &w[t]));
	}
	/* The device copies S -> D over and over while the threads churn. */
	while (__atomic_load_n(&workers_done, __ATOMIC_SEQ_CST) < NTHREADS) {
		uint32_t seed = random_seed();
		int ret;

		fill_pattern(src, PAGE_4K, seed);
		memset(dst, 0, PAGE_4K);
		ret = edu_copy(&self->dev, S, D, PAGE_4K);
		if (ret) {
			EXPECT_EQ(0, ret) TH_LOG("edu DMA during the churn");
			break;
		}
		copies++;
		if (check_pattern(dst, PAGE_4K, seed) != -1)
			bad_copies++;
	}
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(w[t].tid, NULL);
	TH_LOG("%d threads x %d iterations in %llu ms, %d device copies meanwhile", NTHREADS,
	       ITERATIONS, (unsigned long long)(now_ms() - t0), copies);
	EXPECT_EQ(0, bad_copies) TH_LOG("device copies corrupted during MAP/UNMAP churn");
	for (int t = 0; t < NTHREADS; t++) {
		EXPECT_EQ(0, w[t].errors) TH_LOG("%d errors, first: %s", w[t].errors,
						 w[t].first_error);
	}
	EXPECT_EQ(lck0 + (2 + NTHREADS * THREAD_PAGES) * 4, vmlck_kb());
	ASSERT_PINS(pins0 + 2 + NTHREADS * THREAD_PAGES);
	/* Each thread's final mapping: the device copies page 0 -> page 7 of it. */
	for (int t = 0; t < NTHREADS; t++) {
		uint32_t seed = random_seed();

		fill_pattern(w[t].buf, PAGE_4K, seed);
		memset(w[t].buf + 7 * PAGE_4K, 0, PAGE_4K);
		ASSERT_EQ(0, edu_copy(&self->dev, w[t].base, w[t].base + 7 * PAGE_4K, PAGE_4K));
		EXPECT_EQ(-1, check_pattern(w[t].buf + 7 * PAGE_4K, PAGE_4K, seed))
			TH_LOG("thread %d's final mapping", t);
	}
	n = 0;
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ((2 + NTHREADS * THREAD_PAGES) * PAGE_4K, n);
	EXPECT_EQ(lck0, vmlck_kb());
	ASSERT_PINS(pins0);
}

/*
 * Two containers in one process, each with its own edu group, map the same
 * memory at the same IOVA: each charges VmLck and pins the pages (type1
 * accounts per container, so twice), and both devices copy through their
 * container. Unmapping in one container cuts off only its device; closing
 * the other releases the rest.
 */
TEST_F_TIMEOUT(edu, two_containers_same_memory_same_iova, DMA_TEST_TIMEOUT)
{
	const uint64_t A = 0x4000000;
	const size_t pages = 16;
	uint8_t *buf = edu_buf(pages * PAGE_4K, 0);
	char err[256] = "";
	struct edu e2;
	long lck0;
	long long pins0;
	uint32_t seed;
	uint64_t n = 0;

	if (edu_count() < 2)
		SKIP(return, "needs 2 edu devices in EDU_BDFS, have %d", edu_count());
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_NE(self->c, e2.container);
	lck0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_EQ(0, vfio_map(self->c, A, buf, pages * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(e2.container, A, buf, pages * PAGE_4K, RW));
	EXPECT_EQ(lck0 + 2 * (long)pages * 4, vmlck_kb()) TH_LOG("each container charges");
	ASSERT_PINS(pins0 + 2 * pages);

	seed = random_seed();
	fill_pattern(buf, PAGE_4K, seed);
	ASSERT_EQ(0, edu_copy(&self->dev, A, A + 8 * PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(buf + 8 * PAGE_4K, PAGE_4K, seed));
	seed = random_seed();
	fill_pattern(buf + PAGE_4K, PAGE_4K, seed);
	ASSERT_EQ(0, edu_copy(&e2, A + PAGE_4K, A + 9 * PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(buf + 9 * PAGE_4K, PAGE_4K, seed));

	/* Container 1 unmaps: its device is cut off, the other is not. */
	ASSERT_EQ(0, vfio_unmap(self->c, A, pages * PAGE_4K, 0, &n));
	EXPECT_EQ(pages * PAGE_4K, n);
	EXPECT_EQ(lck0 + (long)pages * 4, vmlck_kb());
	ASSERT_PINS(pins0 + pages);
	memset(buf + 10 * PAGE_4K, 0xe9, PAGE_4K);
	ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, A + 10 * PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_fill(buf + 10 * PAGE_4K, PAGE_4K, 0xe9))
		TH_LOG("device 1 still reaches memory its container unmapped");
	seed = random_seed();
	fill_pattern(buf + 2 * PAGE_4K, PAGE_4K, seed);
	ASSERT_EQ(0, edu_copy(&e2, A + 2 * PAGE_4K, A + 10 * PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(buf + 10 * PAGE_4K, PAGE_4K, seed));
	edu_close(&e2);
	EXPECT_EQ(lck0, vmlck_kb());
	ASSERT_PINS(pins0);
}

/* ---- SIGKILL in the middle of a large MAP_DMA ------------------------------- */

#define BIG_MAP		(1ull << 30)
#define BIG_IOVA	(1ull << 32)

FIXTURE(proc) {
	int unused;
};

FIXTURE_SETUP(proc)
{
	self->unused = 0;
	if (access("/dev/vfio/vfio", F_OK))
		SKIP(return, "/dev/vfio/vfio does not exist: vfio is not loaded");
	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
}

FIXTURE_TEARDOWN(proc)
{
}

/*
 * The child maps BIG_MAP bytes of memory it never touched (so MAP_DMA faults
 * in and pins page by page); it reports before the call and after it.
 */
static void big_map_child(int to_parent)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
	char err[256] = "";
	struct edu e;
	uint8_t *buf;
	long msg;
	int ret;

	setrlimit(RLIMIT_MEMLOCK, &rl);
	buf = mmap(NULL, BIG_MAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		_exit(10);
#ifdef MADV_NOHUGEPAGE
	madvise(buf, BIG_MAP, MADV_NOHUGEPAGE);
#endif
	if (edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err))) {
		fprintf(stderr, "# child: %s\n", err);
		_exit(11);
	}
	msg = 1;
	if (write(to_parent, &msg, sizeof(msg)) != sizeof(msg))
		_exit(12);
	ret = vfio_map(e.container, BIG_IOVA, buf, BIG_MAP, RW);
	msg = ret ? ret : 2;
	if (write(to_parent, &msg, sizeof(msg)) != sizeof(msg))
		_exit(13);
	pause();
	_exit(0);
}

/*
 * A child is killed (SIGKILL) while its MAP_DMA of 1 GiB of untouched memory
 * is part way through pinning: afterwards nothing is pinned (nr_foll_pin
 * acquired - released back to where it was) and the group works in a new
 * container.
 */
TEST_F_TIMEOUT(proc, sigkill_during_large_map_leaves_nothing_pinned, 300)
{
	long long pins0, pins_seen = 0, acq0, rel0, acq1, rel1;
	uint64_t t0, t_kill = 0, t_dead;
	int pipefd[2], status;
	char err[256] = "";
	bool done_before_kill = false;
	struct edu e;
	uint8_t *buf;
	long msg;
	pid_t pid;
	uint64_t n = 0;

	ASSERT_EQ(0, foll_pin_counts(&acq0, &rel0));
	pins0 = acq0 - rel0;
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(pipefd[0]);
		big_map_child(pipefd[1]);
	}
	close(pipefd[1]);
	ASSERT_EQ(sizeof(msg), read(pipefd[0], &msg, sizeof(msg))) TH_LOG("child died early");
	ASSERT_EQ(1, msg);
	t0 = now_ms();
	/* Wait until a good part (but not all) is pinned: 16 MiB. */
	for (;;) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		pins_seen = foll_pins_outstanding() - pins0;
		if (pins_seen >= (long long)(16 * SZ_1M / PAGE_4K))
			break;
		if (now_ms() - t0 > 120000)
			break;
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	t_kill = now_ms();
	/* Did the MAP_DMA return before the kill? (A message 2 or an error is waiting then.) */
	{
		struct timeval tv = { 0, 0 };
		fd_set rd;

		FD_ZERO(&rd);
		FD_SET(pipefd[0], &rd);
		if (select(pipefd[0] + 1, &rd, NULL, NULL, &tv) == 1 &&
		    read(pipefd[0], &msg, sizeof(msg)) == sizeof(msg))
			done_before_kill = true;
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	t_dead = now_ms();
	close(pipefd[0]);
	TH_LOG("pinned %lld pages (%lld MiB) after %llu ms when killed; dead %llu ms later",
	       pins_seen, pins_seen * (long long)PAGE_4K >> 20,
	       (unsigned long long)(t_kill - t0), (unsigned long long)(t_dead - t_kill));
	ASSERT_FALSE(done_before_kill) TH_LOG("MAP_DMA ended (%ld) before the kill", msg);
	ASSERT_GT(pins_seen, 0) TH_LOG("nothing was pinned yet when the child was killed");
	ASSERT_LT(pins_seen, (long long)(BIG_MAP / PAGE_4K));
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		TH_LOG("child status %#x", status);
	ASSERT_PINS(pins0);
	/*
	 * The kill stopped the pinning (GUP gives up on a fatal signal): far
	 * fewer pages than the whole mapping were ever pinned.
	 */
	ASSERT_EQ(0, foll_pin_counts(&acq1, &rel1));
	TH_LOG("pages pinned and released in all: %lld", acq1 - acq0);
	EXPECT_LT(acq1 - acq0, (long long)(BIG_MAP / PAGE_4K / 2))
		TH_LOG("MAP_DMA went on pinning after SIGKILL");

	/* The group is free and works. */
	buf = alloc_pages_4k(2 * PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(e.container, BIG_IOVA, buf, 2 * PAGE_4K, RW))
		TH_LOG("the killed child's IOVA is still taken");
	{
		uint32_t seed = random_seed();

		fill_pattern(buf, PAGE_4K, seed);
		ASSERT_EQ(0, edu_copy(&e, BIG_IOVA, BIG_IOVA + PAGE_4K, PAGE_4K));
		EXPECT_EQ(-1, check_pattern(buf + PAGE_4K, PAGE_4K, seed));
	}
	ASSERT_EQ(0, vfio_unmap_all(e.container, &n));
	EXPECT_EQ(2 * PAGE_4K, n);
	edu_close(&e);
	munmap(buf, 2 * PAGE_4K);
	ASSERT_PINS(pins0);
}

TEST_HARNESS_MAIN
