// SPDX-License-Identifier: GPL-2.0
/*
 * stress_test - load and faults that a container must survive with nothing
 * left pinned or charged:
 *  - eight_threads: 8 threads on one container (edu #1 and #2 attached)
 *    map, query the dirty bitmap, DMA through and unmap their own ranges
 *    for STRESS_SECONDS (default 15); every answer and every copied byte is
 *    checked.
 *  - kill_during_map_unmap: a child maps and unmaps a large buffer in a
 *    loop and is killed with SIGKILL at a random moment, STRESS_KILLS times
 *    (default 100); after each kill the FOLL_PIN count is back at the
 *    baseline and the group attaches to a new container again.
 *  - during_owner_change_and_bind (rvfio only): likewise for a child that
 *    loops over CHANGE_DMA_OWNER of an 8 MiB memfd mapping to its other
 *    view, NESTING_BIND of a table with 2048 4 KiB leaves and UNBIND
 *    (STRESS_KILLS / 2 kills).
 *  - remove_rescan: the last edu is removed (/sys/bus/pci/devices/.../remove)
 *    while its container has mappings and a DMA is running, the container
 *    outlives it, then the bus is rescanned, the device is bound to
 *    vfio-pci again and copies through a new container. The device ends up
 *    bound to vfio-pci as before, for the tests that follow.
 *  - fd_passing: process A maps memory and passes the container (and its
 *    group and device fds) to process B through SCM_RIGHTS, then A is
 *    killed; B's DMA still goes through A's mapping, B maps its own memory,
 *    unmaps both, and its VmLck and the FOLL_PIN count go back to zero.
 * Each test ends with VmLck and the FOLL_PIN count at the baseline; the
 * kernel log (no splat) is judged by scripts/vm.sh, and guest-init unloads
 * the backend afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/rvfio.h>

#include "kselftest_harness.h"
#include "vfio_edu.h"
#include "fault_inject.h"
#include "vfio_util.h"

#define RW		(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)
#define NTHREADS	8
#define SLOT_BASE	0x10000000ull
#define SLOT_SIZE	(16 * SZ_1M)
#define THREAD_PAGES	64

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long env_long(const char *name, long dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtol(v, NULL, 0) : dflt;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- eight threads on one container ---- */

struct stress {
	int c;
	struct edu e[2];
	pthread_mutex_t edu_lock[2];
	double deadline;
	atomic_int failed;
};

struct sthread {
	struct stress *s;
	int idx;
	pthread_t th;
	uint8_t *buf;
	unsigned long maps, bitmaps, copies, unmaps;
	char bad[256];
};

/* Ones for the first n bits, zero after them. */
static bool bits_ok(const uint64_t *bits, size_t words, unsigned int n)
{
	for (size_t w = 0; w < words; w++) {
		uint64_t want = n >= (w + 1) * 64 ? ~0ull :
				n > w * 64 ? (1ull << (n - w * 64)) - 1 : 0;

		if (bits[w] != want)
			return false;
	}
	return true;
}

#define BAD(t, ...) do { \
	snprintf((t)->bad, sizeof((t)->bad), __VA_ARGS__); \
	atomic_store(&(t)->s->failed, 1); \
	return NULL; \
} while (0)

static void *stress_main(void *arg)
{
	struct sthread *t = arg;
	struct stress *s = t->s;
	uint64_t iova0 = SLOT_BASE + t->idx * SLOT_SIZE, rs = 0x9e3779b9u * (t->idx + 1);
	uint64_t bits[THREAD_PAGES / 64 + 1];
	int ret;

	while (now_s() < s->deadline && !atomic_load(&s->failed)) {
		unsigned int off = xorshift(&rs) % (THREAD_PAGES / 2);
		unsigned int n = 2 + xorshift(&rs) % (THREAD_PAGES / 2 - 1);
		uint64_t iova = iova0 + (xorshift(&rs) % 64) * SZ_2M / 8;
		uint8_t *mem = t->buf + off * PAGE_4K;
		uint64_t done = 0;

		ret = vfio_map(s->c, iova, mem, n * PAGE_4K, RW);
		if (ret)
			BAD(t, "thread %d: map %#llx + %u pages: %s", t->idx,
			    (unsigned long long)iova, n, strerror(-ret));
		t->maps++;
		ret = vfio_dirty_get(s->c, iova, n * PAGE_4K, bits, sizeof(bits) / 8);
		if (ret)
			BAD(t, "thread %d: GET_BITMAP: %s", t->idx, strerror(-ret));
		if (!bits_ok(bits, sizeof(bits) / 8, n))
			BAD(t, "thread %d: GET_BITMAP of %u mapped pages: %#llx", t->idx, n,
			    (unsigned long long)bits[0]);
		t->bitmaps++;
		if (xorshift(&rs) % 4 == 0) {
			int k = t->idx % 2;
			uint32_t seed = (uint32_t)xorshift(&rs) | 1;
			unsigned int a = xorshift(&rs) % n, b = (a + 1) % n;

			fill_pattern(mem + a * PAGE_4K, 512, seed);
			memset(mem + b * PAGE_4K, 0, 512);
			pthread_mutex_lock(&s->edu_lock[k]);
			ret = edu_copy(&s->e[k], iova + a * PAGE_4K, iova + b * PAGE_4K, 512);
			pthread_mutex_unlock(&s->edu_lock[k]);
			if (ret)
				BAD(t, "thread %d: edu copy: %s", t->idx, strerror(-ret));
			if (check_pattern(mem + b * PAGE_4K, 512, seed) != -1)
				BAD(t, "thread %d: edu #%d copy %#llx -> %#llx did not arrive",
				    t->idx, k + 1, (unsigned long long)(iova + a * PAGE_4K),
				    (unsigned long long)(iova + b * PAGE_4K));
			t->copies++;
		}
		ret = vfio_unmap(s->c, iova, n * PAGE_4K, 0, &done);
		if (ret || done != n * PAGE_4K)
			BAD(t, "thread %d: unmap %u pages: %s, %llu bytes", t->idx, n,
			    strerror(-ret), (unsigned long long)done);
		/* Nothing mapped there now: type1 answers 0 and reports nothing dirty. */
		ret = vfio_dirty_get(s->c, iova, n * PAGE_4K, bits, sizeof(bits) / 8);
		if (ret || !bits_ok(bits, sizeof(bits) / 8, 0))
			BAD(t, "thread %d: GET_BITMAP of the range just unmapped: %d, %#llx",
			    t->idx, ret, (unsigned long long)bits[0]);
		t->unmaps++;
	}
	return NULL;
}

TEST(eight_threads)
{
	struct stress s = { .c = -1 };
	struct sthread t[NTHREADS];
	double secs = (double)env_long("STRESS_SECONDS", 15), t0;
	unsigned long tot[4] = { 0 };
	long lck0 = vmlck_kb(), taint0 = kernel_taint();
	long long pins0 = foll_pins_outstanding();
	char err[256] = "";

	if (edu_count() < 2)
		SKIP(return, "needs 2 edu devices, have %d", edu_count());
	ASSERT_EQ(0, edu_open(&s.e[0], edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	s.c = s.e[0].container;
	ASSERT_EQ(0, edu_open(&s.e[1], edu_bdf(1), s.c, 0, err, sizeof(err))) TH_LOG("%s", err);
	for (int k = 0; k < 2; k++)
		pthread_mutex_init(&s.edu_lock[k], NULL);
	ASSERT_EQ(0, vfio_ioctl(s.c, VFIO_IOMMU_DIRTY_PAGES, &(struct vfio_iommu_type1_dirty_bitmap){
		.argsz = sizeof(struct vfio_iommu_type1_dirty_bitmap),
		.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START }));
	t0 = now_s();
	s.deadline = t0 + secs;
	for (int i = 0; i < NTHREADS; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].s = &s;
		t[i].idx = i;
		t[i].buf = alloc_pages_4k(THREAD_PAGES * PAGE_4K, (uint8_t)i);
		ASSERT_NE(MAP_FAILED, t[i].buf);
	}
	for (int i = 0; i < NTHREADS; i++)
		ASSERT_EQ(0, pthread_create(&t[i].th, NULL, stress_main, &t[i]));
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i].th, NULL);
	for (int i = 0; i < NTHREADS; i++) {
		EXPECT_EQ(0, t[i].bad[0]) TH_LOG("%s", t[i].bad);
		tot[0] += t[i].maps;
		tot[1] += t[i].bitmaps;
		tot[2] += t[i].copies;
		tot[3] += t[i].unmaps;
	}
	ksft_print_msg("%s: 8 threads, %.1f s: %lu maps, %lu bitmaps, %lu edu copies, %lu unmaps\n",
		       backend_name(), now_s() - t0, tot[0], tot[1], tot[2], tot[3]);
	EXPECT_LT(0, tot[2]);
	edu_close(&s.e[1]);
	edu_close(&s.e[0]);
	for (int i = 0; i < NTHREADS; i++)
		munmap(t[i].buf, THREAD_PAGES * PAGE_4K);
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(pins0, pins_settle(pins0, 3000));
	EXPECT_FALSE(kernel_warned_since(taint0)) TH_LOG("the kernel WARNed: see dmesg");
}

/* ---- SIGKILL in the middle of large maps and unmaps ---- */

/* The tests that kill processes; no set-up of their own. */
FIXTURE(kill) {
	int unused;
};

FIXTURE_SETUP(kill)
{
	self->unused = 0;
	if (edu_count() < 1)
		SKIP(return, "needs an edu device");
}

FIXTURE_TEARDOWN(kill)
{
}

/*
 * Kill number i: waits (at most 5 s) for the child to enter call `want`
 * (*phase says which call runs), sleeps a random part of that call's usual
 * duration `dur`, kills the child with SIGKILL and reaps it. Returns the
 * phase it was killed in.
 */
#define aim_and_kill(...) __aim_and_kill(_metadata, __VA_ARGS__)
static int __aim_and_kill(struct __test_metadata *_metadata, pid_t pid, volatile int *phase,
			  int want, double dur, uint64_t *rs, long i)
{
	double until = now_s() + 5;
	int status, at;

	while (*phase != want && now_s() < until)
		sched_yield();
	usleep((useconds_t)((xorshift(rs) % 1000) / 1000.0 * dur * 1e6));
	at = *phase;
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status))
		TH_LOG("kill %ld: the child exited with %d before the kill", i, WEXITSTATUS(status));
	return at;
}

/*
 * The child: a container with bdf's group (no device fd needed to map),
 * then map and unmap buf in a loop; *phase says which call runs.
 * Writes 'R' to fd when it starts looping, 'E' if the set-up failed.
 */
static void kill_child(const char *bdf, uint8_t *buf, size_t len, volatile int *phase, int fd)
{
	int c = vfio_container_open(), g;
	uint64_t n;

	g = c < 0 ? c : vfio_group_attach(c, bdf, NULL);
	if (g < 0 || vfio_set_iommu(c, VFIO_TYPE1v2_IOMMU)) {
		if (write(fd, "E", 1) < 0)
			_exit(2);
		_exit(1);
	}
	/* Fault the inherited shared mapping in, as the parent's is. */
	for (size_t off = 0; off < len; off += PAGE_4K)
		(void)*(volatile uint8_t *)(buf + off);
	if (write(fd, "R", 1) != 1)
		_exit(1);
	for (;;) {
		*phase = 1;
		if (vfio_map(c, SLOT_BASE, buf, len, RW))
			_exit(3);
		*phase = 2;
		if (vfio_unmap(c, SLOT_BASE, len, 0, &n))
			_exit(4);
	}
}

TEST_F_TIMEOUT(kill, during_map_unmap, 600)
{
	long kills = env_long("STRESS_KILLS", 100), mb = env_long("STRESS_KILL_MB", 64);
	size_t len = (size_t)mb * SZ_1M;
	long long pins0 = foll_pins_outstanding();
	long taint0 = kernel_taint();
	volatile int *phase;
	int c, g, in_map = 0, in_unmap = 0, other = 0;
	double dur[3] = { 0 }, t0;
	uint64_t rs = random_seed(), n;
	char err[256] = "";
	uint8_t *buf;
	struct edu e;

	/* Shared, so that the child pins the parent's pages (no COW copy). */
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 0x77, len);
	phase = mmap(NULL, PAGE_4K, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, phase);

	/* How long one map + unmap takes: kills land anywhere in it. */
	c = vfio_container_open();
	ASSERT_LE(0, c);
	g = vfio_group_attach(c, edu_bdf(0), NULL);
	ASSERT_LE(0, g);
	ASSERT_EQ(0, vfio_set_iommu(c, VFIO_TYPE1v2_IOMMU));
	for (int i = 0; i < 4; i++) {
		t0 = now_s();
		ASSERT_EQ(0, vfio_map(c, SLOT_BASE, buf, len, RW));
		dur[1] += (now_s() - t0) / 4;
		t0 = now_s();
		ASSERT_EQ(0, vfio_unmap(c, SLOT_BASE, len, 0, &n));
		dur[2] += (now_s() - t0) / 4;
	}
	close(g);
	close(c);

	t0 = now_s();
	for (long i = 0; i < kills; i++) {
		int p[2], want, at;
		char r = 0;
		pid_t pid;

		ASSERT_EQ(0, pipe(p));
		*phase = 0;
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid) {
			close(p[0]);
			kill_child(edu_bdf(0), buf, len, phase, p[1]);
		}
		close(p[1]);
		ASSERT_EQ(1, read(p[0], &r, 1));
		close(p[0]);
		ASSERT_EQ('R', r) TH_LOG("kill %ld: the child could not set up its container "
					 "(the last one still held?)", i);
		/* Half the kills aim at a MAP_DMA, half at an UNMAP_DMA. */
		want = 1 + (int)(xorshift(&rs) % 2);
		at = aim_and_kill(pid, phase, want, dur[want], &rs, i);
		switch (at) {
		case 1: in_map++; break;
		case 2: in_unmap++; break;
		default: other++; break;
		}
		ASSERT_EQ(pins0, pins_settle(pins0, 3000))
			TH_LOG("kill %ld (%s): pins left behind", i,
			       at == 1 ? "during MAP_DMA" : "during UNMAP_DMA");
	}
	ksft_print_msg("%s: %ld kills of a %ld MiB map/unmap loop (MAP_DMA %.3f s, UNMAP_DMA "
		       "%.3f s): %d during MAP_DMA, %d during UNMAP_DMA, %d elsewhere; %.1f s\n",
		       backend_name(), kills, mb, dur[1], dur[2], in_map, in_unmap, other,
		       now_s() - t0);
	EXPECT_LT(kills / 4, in_map);
	EXPECT_LT(kills / 4, in_unmap);
	/* The group still works after all that. */
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(e.container, SLOT_BASE, buf, 2 * PAGE_4K, RW));
	fill_pattern(buf, PAGE_4K, 42);
	ASSERT_EQ(0, edu_copy(&e, SLOT_BASE, SLOT_BASE + PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(buf + PAGE_4K, PAGE_4K, 42));
	edu_close(&e);
	munmap(buf, len);
	munmap((void *)phase, PAGE_4K);
	EXPECT_EQ(pins0, pins_settle(pins0, 3000));
	EXPECT_FALSE(kernel_warned_since(taint0)) TH_LOG("the kernel WARNed: see dmesg");
}

/* ---- SIGKILL in the middle of rvfio's long calls: owner change, bind ---- */

/*
 * Guest memory for the test below: one memfd of KR_PAGES pages mapped at
 * guest-physical 0 (the container IOVA), its last pages a four-level stage-1
 * table that maps stage-1 IOVA x to guest-physical x with 4 KiB leaves for
 * the first KR_DATA bytes: binding it shadows KR_DATA / 4 KiB leaves.
 */
#define KR_DATA		(8 * SZ_1M)
#define KR_PTS		(KR_DATA / SZ_2M)		/* page-table pages */
#define KR_TABLE	KR_DATA				/* GPA of the PML4 */
#define KR_SIZE		(KR_DATA + (3 + KR_PTS) * PAGE_4K)
#define KR_OK		0x7ull				/* present, writable, user */

enum kr_phase { KR_SETUP, KR_OWNER, KR_BIND, KR_UNBIND, KR_NPHASES };
static const char *const kr_names[KR_NPHASES] = {
	"set-up", "CHANGE_DMA_OWNER", "NESTING_BIND", "NESTING_UNBIND",
};

static void kr_table(uint8_t *mem)
{
	uint64_t *pml4 = (uint64_t *)(mem + KR_TABLE), *pdpt = pml4 + 512, *pd = pdpt + 512;
	uint64_t *pt = pd + 512;

	memset(pml4, 0, (3 + KR_PTS) * PAGE_4K);
	pml4[0] = (KR_TABLE + PAGE_4K) | KR_OK;
	pdpt[0] = (KR_TABLE + 2 * PAGE_4K) | KR_OK;
	for (uint64_t i = 0; i < KR_PTS; i++)
		pd[i] = (KR_TABLE + (3 + i) * PAGE_4K) | KR_OK;
	for (uint64_t i = 0; i < KR_DATA / PAGE_4K; i++)
		pt[i] = (i * PAGE_4K) | KR_OK;
}

static long kr_owner(int c, void *vaddr)
{
	struct rvfio_dma_owner_entry e = { .iova = 0, .vaddr = (uintptr_t)vaddr };

	return change_dma_owner(c, &e, 1, NULL);
}

/*
 * A nesting container with bdf's group (its fd in *group) and the memfd
 * mapped through view.
 */
static int kr_container(const char *bdf, uint8_t *view, int *group, int *gid)
{
	int c = vfio_container_open();

	*group = c < 0 ? c : vfio_group_attach(c, bdf, gid);
	if (*group < 0 || vfio_set_iommu(c, VFIO_TYPE1_NESTING_IOMMU) ||
	    vfio_map(c, 0, view, KR_SIZE, RW))
		return -1;
	return c;
}

/* The child: owner change to the other view, bind, unbind, over and over. */
static void kr_child(const char *bdf, uint8_t *const view[2], volatile int *phase, int fd)
{
	int g, gid = -1, c = kr_container(bdf, view[0], &g, &gid);

	if (c < 0) {
		if (write(fd, "E", 1) < 0)
			_exit(2);
		_exit(1);
	}
	if (write(fd, "R", 1) != 1)
		_exit(1);
	for (int i = 1;; i ^= 1) {
		*phase = KR_OWNER;
		if (kr_owner(c, view[i]))
			_exit(3);
		*phase = KR_BIND;
		if (nesting_bind(c, gid, KR_TABLE, 48, 0, NULL))
			_exit(4);
		*phase = KR_UNBIND;
		if (nesting_unbind(c, gid))
			_exit(5);
	}
}

/*
 * rvfio's calls that take longest: CHANGE_DMA_OWNER pins every page of the
 * new range to compare it with the mapping's, NESTING_BIND walks a table of
 * 2048 leaves and builds the shadow, UNBIND tears it down. A child loops
 * over the three and is killed at a random point of one of them,
 * STRESS_KILLS / 2 times (a loop takes about four times as long as the
 * map/unmap test's); after each kill nothing is pinned beyond the
 * baseline (the owner change's comparison pins included) and the group
 * joins the next child's container; at the end an edu copy goes through a
 * fresh container.
 */
TEST_F_TIMEOUT(kill, during_owner_change_and_bind, 600)
{
	long kills = env_long("STRESS_KILLS", 100) / 2;
	long long pins0 = foll_pins_outstanding();
	long taint0 = kernel_taint();
	int counts[KR_NPHASES] = { 0 }, fd, c, g = -1, gid = -1;
	double dur[KR_NPHASES] = { 0 }, t0;
	uint64_t rs = random_seed(), n;
	volatile int *phase;
	uint8_t *view[2];
	char err[256] = "";
	struct edu e;

	if (!backend_is_rvfio())
		SKIP(return, "%s has no CHANGE_DMA_OWNER and no stage-1 bind (rvfio's uapi)",
		     backend_name());
	fd = memfd_create("stress_kill_rvfio", MFD_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, KR_SIZE));
	for (int i = 0; i < 2; i++) {
		view[i] = mmap(NULL, KR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		ASSERT_NE(MAP_FAILED, view[i]);
	}
	close(fd);
	memset(view[0], 0x5a, KR_DATA);
	kr_table(view[0]);
	phase = mmap(NULL, PAGE_4K, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, phase);

	/* How long each call takes: kills land anywhere in one. */
	c = kr_container(edu_bdf(0), view[0], &g, &gid);
	ASSERT_LE(0, c);
	for (int i = 0; i < 4; i++) {
		t0 = now_s();
		ASSERT_EQ(0, kr_owner(c, view[(i + 1) % 2]));
		dur[KR_OWNER] += (now_s() - t0) / 4;
		t0 = now_s();
		ASSERT_EQ(0, nesting_bind(c, gid, KR_TABLE, 48, 0, NULL));
		dur[KR_BIND] += (now_s() - t0) / 4;
		t0 = now_s();
		ASSERT_EQ(0, nesting_unbind(c, gid));
		dur[KR_UNBIND] += (now_s() - t0) / 4;
	}
	close(g);
	close(c);

	t0 = now_s();
	for (long i = 0; i < kills; i++) {
		int p[2], want, at;
		char r = 0;
		pid_t pid;

		ASSERT_EQ(0, pipe(p));
		*phase = KR_SETUP;
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid) {
			close(p[0]);
			kr_child(edu_bdf(0), view, phase, p[1]);
		}
		close(p[1]);
		ASSERT_EQ(1, read(p[0], &r, 1));
		close(p[0]);
		ASSERT_EQ('R', r) TH_LOG("kill %ld: the child could not set up its container", i);
		want = KR_OWNER + (int)(xorshift(&rs) % 3);
		at = aim_and_kill(pid, phase, want, dur[want], &rs, i);
		counts[at]++;
		ASSERT_EQ(pins0, pins_settle(pins0, 3000))
			TH_LOG("kill %ld (during %s): pins left behind", i, kr_names[at]);
	}
	ksft_print_msg("rvfio: %ld kills of an owner change / bind / unbind loop over %d MiB "
		       "(%d stage-1 leaves; CHANGE_DMA_OWNER %.3f s, BIND %.3f s, UNBIND %.3f s): "
		       "%d during CHANGE_DMA_OWNER, %d during BIND, %d during UNBIND, %d in set-up; "
		       "%.1f s\n", kills, (int)(KR_DATA / SZ_1M), (int)(KR_DATA / PAGE_4K),
		       dur[KR_OWNER], dur[KR_BIND], dur[KR_UNBIND], counts[KR_OWNER],
		       counts[KR_BIND], counts[KR_UNBIND], counts[KR_SETUP], now_s() - t0);
	/*
	 * Each call is aimed at with probability 1/3 (about 17 of 50); fewer
	 * than 5 means the aiming is broken, not bad luck (3.7 standard
	 * deviations below, about 1 in 10^4).
	 */
	for (int k = KR_OWNER; k < KR_NPHASES; k++) {
		EXPECT_LT(kills / 12, counts[k]) TH_LOG("too few kills during %s", kr_names[k]);
	}
	/* The group still works after all that. */
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(e.container, SLOT_BASE, view[0], 2 * PAGE_4K, RW));
	fill_pattern(view[0], PAGE_4K, 43);
	ASSERT_EQ(0, edu_copy(&e, SLOT_BASE, SLOT_BASE + PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(view[0] + PAGE_4K, PAGE_4K, 43));
	ASSERT_EQ(0, vfio_unmap(e.container, SLOT_BASE, 2 * PAGE_4K, 0, &n));
	edu_close(&e);
	for (int i = 0; i < 2; i++)
		munmap(view[i], KR_SIZE);
	munmap((void *)phase, PAGE_4K);
	EXPECT_EQ(pins0, pins_settle(pins0, 3000));
	EXPECT_FALSE(kernel_warned_since(taint0)) TH_LOG("the kernel WARNed: see dmesg");
}

/* ---- device removal and rescan ---- */

static bool pci_present(const char *bdf)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", bdf);
	return access(path, F_OK) == 0;
}

/* Rescans until bdf is back and bound to vfio-pci with its /dev/vfio node. 0 or -errno. */
static int pci_rescan_vfio(const char *bdf)
{
	char drv[64], dev[64];
	int ret, grp;

	for (int i = 0; i < 50 && !pci_present(bdf); i++) {
		ret = sysfs_write_str("/sys/bus/pci/rescan", "1");
		if (ret)
			return ret;
		if (!pci_present(bdf))
			usleep(100000);
	}
	if (!pci_present(bdf))
		return -ENODEV;
	pci_driver(bdf, drv, sizeof(drv));
	if (!drv[0])
		sysfs_write_str("/sys/bus/pci/drivers/vfio-pci/bind", bdf);
	pci_driver(bdf, drv, sizeof(drv));
	if (strcmp(drv, "vfio-pci"))
		return -EBUSY;
	grp = edu_group_id(bdf);
	if (grp < 0)
		return grp;
	snprintf(dev, sizeof(dev), "/dev/vfio/%d", grp);
	for (int i = 0; i < 50 && access(dev, F_OK); i++)
		usleep(100000);
	return access(dev, F_OK) ? -ENOENT : 0;
}

struct remover {
	const char *bdf;
	atomic_int done;
	int ret;
};

static void *remove_main(void *arg)
{
	struct remover *r = arg;
	char path[128];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", r->bdf);
	r->ret = sysfs_write_str(path, "1");	/* waits until the device fd is closed */
	atomic_store(&r->done, 1);
	return NULL;
}

FIXTURE(removal) {
	char bdf[32];
};

FIXTURE_SETUP(removal)
{
	if (edu_count() < 1)
		SKIP(return, "needs an edu device");
	snprintf(self->bdf, sizeof(self->bdf), "%s", edu_bdf(edu_count() - 1));
}

/* Whatever happened, the device is back and bound to vfio-pci. */
FIXTURE_TEARDOWN(removal)
{
	if (self->bdf[0] && pci_rescan_vfio(self->bdf))
		fprintf(stderr, "# %s could not be brought back to vfio-pci\n", self->bdf);
}

/*
 * The container has edu #1 and the removed edu; the removal detaches the
 * removed device's group (vfio core does, when a group's last device
 * goes), the container keeps its mapping for edu #1, and the device,
 * rescanned, joins the same container again.
 */
TEST_F_TIMEOUT(removal, remove_rescan, 120)
{
	const uint64_t iova = SLOT_BASE;
	long long pins0 = foll_pins_outstanding();
	long lck0 = vmlck_kb(), taint0 = kernel_taint();
	struct remover r = { .bdf = self->bdf };
	uint8_t *buf = alloc_pages_4k(16 * PAGE_4K, 0x5c);
	char err[256] = "", drv[64];
	struct edu e1, ed;
	pthread_t th;
	int group;

	if (edu_count() < 2)
		SKIP(return, "needs 2 edu devices, have %d", edu_count());
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, edu_open(&e1, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, edu_open(&ed, self->bdf, e1.container, 0, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(e1.container, iova, buf, 16 * PAGE_4K, RW));
	ASSERT_EQ(pins0 + 16, foll_pins_outstanding());
	/* The removal waits for the device fd; it must not finish before. */
	ASSERT_EQ(0, pthread_create(&th, NULL, remove_main, &r));
	usleep(300000);
	ASSERT_EQ(0, atomic_load(&r.done)) TH_LOG("the device went while its fd was open");
	/* A DMA in flight (100 ms) while the device fd closes and the device goes. */
	edu_write64(&ed, EDU_REG_DMA_SRC, EDU_BUF_ADDR);
	edu_write64(&ed, EDU_REG_DMA_DST, iova + PAGE_4K);
	edu_write64(&ed, EDU_REG_DMA_COUNT, PAGE_4K);
	edu_write32(&ed, EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | EDU_DMA_CMD_TO_RAM);
	munmap((void *)ed.bar0, ed.bar0_size);
	ed.bar0 = NULL;
	close(ed.device);
	ed.device = -1;
	for (int i = 0; i < 100 && !atomic_load(&r.done); i++)
		usleep(100000);
	ASSERT_EQ(1, atomic_load(&r.done)) TH_LOG("the removal did not finish after the fd closed");
	pthread_join(th, NULL);
	ASSERT_EQ(0, r.ret) TH_LOG("remove: %s", strerror(-r.ret));
	ASSERT_FALSE(pci_present(self->bdf));
	edu_close(&ed);
	/* The container lives on with edu #1: the mapping pins and carries DMA. */
	EXPECT_EQ(pins0 + 16, foll_pins_outstanding());
	fill_pattern(buf, PAGE_4K, 5);
	memset(buf + 2 * PAGE_4K, 0, PAGE_4K);
	ASSERT_EQ(0, edu_copy(&e1, iova, iova + 2 * PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(buf + 2 * PAGE_4K, PAGE_4K, 5));

	/* Back on the bus, bound to vfio-pci, into the same container again. */
	ASSERT_EQ(0, pci_rescan_vfio(self->bdf));
	pci_driver(self->bdf, drv, sizeof(drv));
	ASSERT_STREQ("vfio-pci", drv);
	ASSERT_EQ(0, edu_open(&ed, self->bdf, e1.container, 0, err, sizeof(err)))
		TH_LOG("after rescan: %s", err);
	group = ed.group_id;
	EXPECT_EQ(pins0 + 16, foll_pins_outstanding());
	fill_pattern(buf, PAGE_4K, 7);
	memset(buf + PAGE_4K, 0, PAGE_4K);
	ASSERT_EQ(0, edu_copy(&ed, iova, iova + PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(buf + PAGE_4K, PAGE_4K, 7))
		TH_LOG("the rescanned device does not see the container's mapping");
	edu_close(&ed);
	edu_close(&e1);
	munmap(buf, 16 * PAGE_4K);
	EXPECT_EQ(pins0, pins_settle(pins0, 3000));
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_FALSE(kernel_warned_since(taint0)) TH_LOG("the kernel WARNed: see dmesg");
	ksft_print_msg("%s: %s removed with a mapping and a DMA in flight, rescanned into "
		       "group %d, copied through again\n", backend_name(), self->bdf, group);
}

/* ---- the container passed to another process, the first killed ---- */

static int send_fds(int sock, const int *fds, int n)
{
	char data = 'F';
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = CMSG_SPACE(n * sizeof(int)),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -errno;
}

static int recv_fds(int sock, int *fds, int n)
{
	char data;
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = CMSG_SPACE(n * sizeof(int)),
	};
	struct cmsghdr *cm;

	if (recvmsg(sock, &msg, 0) != 1)
		return -errno;
	cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(n * sizeof(int)))
		return -EPROTO;
	memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
	return 0;
}

#define FDP_A	0x10000000ull	/* A's mapping */
#define FDP_B	0x20000000ull	/* B's own */

/* Process A: map shared memory, pass container, group and device fds, wait to die. */
static void proc_a(int sock, uint8_t *shared)
{
	char err[256];
	struct edu e;
	int fds[3];

	if (edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)) ||
	    vfio_map(e.container, FDP_A, shared, 4 * PAGE_4K, RW))
		_exit(1);
	fds[0] = e.container;
	fds[1] = e.group;
	fds[2] = e.device;
	if (send_fds(sock, fds, 3))
		_exit(2);
	for (;;)
		pause();
}

/* Process B: exit status 0 when everything it checks holds. */
static int proc_b(int sock, int go, uint8_t *shared)
{
	uint8_t *own = alloc_pages_4k(4 * PAGE_4K, 0);
	int fds[3], c;
	struct edu e;
	char ok;
	uint64_t n;
	long lck;

	if (own == MAP_FAILED || recv_fds(sock, fds, 3))
		return 10;
	if (write(sock, "R", 1) != 1 || read(go, &ok, 1) != 1)	/* A is dead now */
		return 11;
	c = fds[0];
	memset(&e, 0, sizeof(e));
	e.container = c;
	e.group = fds[1];
	e.device = fds[2];
	e.bar0_size = 0;
	{
		struct vfio_region_info ri = {
			.argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX,
		};
		void *bar;

		if (ioctl(e.device, VFIO_DEVICE_GET_REGION_INFO, &ri))
			return 12;
		bar = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, e.device, ri.offset);
		if (bar == MAP_FAILED)
			return 13;
		e.bar0 = bar;
		e.bar0_size = ri.size;
	}
	/* A's mapping still carries DMA. */
	fill_pattern(shared, PAGE_4K, 11);
	memset(shared + PAGE_4K, 0, PAGE_4K);
	if (edu_copy(&e, FDP_A, FDP_A + PAGE_4K, PAGE_4K) ||
	    check_pattern(shared + PAGE_4K, PAGE_4K, 11) != -1)
		return 14;
	/* B's own mapping is charged to B. */
	lck = vmlck_kb();
	if (vfio_map(c, FDP_B, own, 4 * PAGE_4K, RW))
		return 15;
	if (vmlck_kb() != lck + 16)
		return 16;
	if (edu_copy(&e, FDP_A, FDP_B, PAGE_4K) || check_pattern(own, PAGE_4K, 11) != -1)
		return 17;
	if (vfio_unmap(c, FDP_A, 4 * PAGE_4K, 0, &n) || n != 4 * PAGE_4K)
		return 18;
	if (vfio_unmap(c, FDP_B, 4 * PAGE_4K, 0, &n) || n != 4 * PAGE_4K)
		return 19;
	if (vmlck_kb() != lck)
		return 20;
	e.own_container = true;
	edu_close(&e);
	return 0;
}

TEST_F_TIMEOUT(kill, fd_passing, 120)
{
	long long pins0 = foll_pins_outstanding();
	long taint0 = kernel_taint();
	uint8_t *shared;
	int sv[2], go[2], status;
	pid_t a, b;
	char r;

	shared = mmap(NULL, 4 * PAGE_4K, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, shared);
	memset(shared, 0, 4 * PAGE_4K);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_EQ(0, pipe(go));
	a = fork();
	ASSERT_LE(0, a);
	if (!a) {
		close(sv[1]);
		proc_a(sv[0], shared);
	}
	b = fork();
	ASSERT_LE(0, b);
	if (!b) {
		close(sv[0]);
		close(go[1]);
		_exit(proc_b(sv[1], go[0], shared));
	}
	close(go[0]);
	/* B has the fds (it says so on the socket it shares with A). */
	ASSERT_EQ(1, read(sv[0], &r, 1));
	ASSERT_EQ(4, pins_settle(pins0 + 4, 3000) - pins0) TH_LOG("A's mapping pins its pages");
	kill(a, SIGKILL);
	ASSERT_EQ(a, waitpid(a, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	/* The container lives on in B: A's pages stay pinned. */
	EXPECT_EQ(pins0 + 4, foll_pins_outstanding());
	ASSERT_EQ(1, write(go[1], "G", 1));
	ASSERT_EQ(b, waitpid(b, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("process B's check %d failed (see proc_b)",
						 WEXITSTATUS(status));
	EXPECT_EQ(pins0, pins_settle(pins0, 3000));
	close(sv[0]);
	close(sv[1]);
	close(go[1]);
	munmap(shared, 4 * PAGE_4K);
	EXPECT_FALSE(kernel_warned_since(taint0)) TH_LOG("the kernel WARNed: see dmesg");
	ksft_print_msg("%s: container passed to another process, first one killed\n",
		       backend_name());
}

TEST_HARNESS_MAIN
