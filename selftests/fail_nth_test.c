// SPDX-License-Identifier: GPL-2.0
/*
 * fail_nth_test - every fallible step of the backend's ioctls, failed in turn.
 *
 * In the style of the kernel's tools/testing/selftests/iommu/
 * iommufd_fail_nth.c: each test is one sequence of calls (map 4 KiB memory,
 * THP, hugetlbfs, a PFNMAP BAR; unmap; unmap-all; GET_INFO with its
 * capability chain; dirty tracking; vaddr invalidate and restore; attaching
 * a group to a container with mappings; replay into the first IOMMU domain;
 * the mdev pin, dma_rw and unpin; rvfio's own ioctls: DMA_QUERY,
 * REVOKE_EVENTFD, the fault ring with a page request and a response, the
 * DMA owner change of RAM and PFNMAP mappings, a stage-1 bind, invalidation
 * and unbind). It runs once without injection (the reference), then with
 * the 1st, 2nd, 3rd ... fallible call failing
 * (/proc/self/task/<tid>/fail-nth), until runs no longer reach the n-th
 * call (see below). Only calls with the backend's code on the stack count and
 * fail: the failslab, fail_page_alloc and fail_usercopy stack filters are
 * set to the backend module's text (lib/fault_inject.c), sleeping and
 * order-0 allocations included.
 *
 * Each run is a fresh container. Before every call of the sequence a
 * snapshot of the container's state is taken with injection paused: the
 * leaf entries of each attached device's IOMMU page table (debugfs), the
 * DMA_AVAIL count of GET_INFO, VmLck and the system's FOLL_PIN count, and
 * what the sequence cares about (dirty tracking on or off, a mapping's vaddr
 * valid or not, the second group attached or not, the mdev's pinned pages,
 * rvfio's DMA_QUERY of the sequence's IOVAs, the fault ring's producer
 * index, which memfd view a mapping's vaddr is in, whether a group is
 * bound to a stage-1 table). When a call fails:
 *  - the failure must be the injected one, its errno ENOMEM or EFAULT;
 *  - the snapshot taken after it must equal the one before;
 *  - edu DMA into the sequence's probe IOVAs must reach memory exactly
 *    where it did before the call (probed in the reference run and in every
 *    FAIL_NTH_DMA_EVERY-th run, default 4: opening the vfio-pci device for
 *    it costs more than the rest of a run; the page-table snapshot is taken
 *    in every run).
 * A call that copies its result out after applying itself (UNMAP_DMA's
 * size, both backends) may fail that copy: EFAULT with the state exactly
 * the reference run's after the call is accepted for those calls only.
 * A run whose injected failure was absorbed (the call succeeded anyway)
 * goes on, and like the reference run ends with a snapshot and probes that
 * must equal the reference run's. After every run the container is closed:
 * VmLck and the FOLL_PIN count must be back at the test's baseline.
 * Each test prints its number of injection points as a TAP diagnostic.
 * The number of fallible calls of a sequence is not quite fixed (vmalloc()
 * and the bulk page allocator fall back to more calls when the per-CPU
 * lists are empty), so the sweep ends after three runs in a row that did
 * not reach their n-th call, not after the first; the points reported are
 * the last n whose failure fired.
 *
 * Both backends run the same sweep; upstream type1 is the oracle.
 * Environment: FAIL_NTH_MAX (runs per sequence, default 1000),
 * FAIL_NTH_DMA_EVERY (default 4), FAIL_NTH_VERBOSE=1 (one line per run).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/rvfio.h>

#include "kselftest_harness.h"
#include "vfio_edu.h"
#include "fault_inject.h"
#include "fault_ring.h"
#include "mdev_dev.h"
#include "vfio_util.h"

#define RW		(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)

/* IOVAs, all below the edu's 256 MiB default DMA window. */
#define IOVA_A		0x1000000ull	/* 16 pages of 4 KiB memory */
#define IOVA_B		0x1010000ull	/* one page, right after A */
#define IOVA_C		0x1200000ull	/* one page */
#define IOVA_HUGE	0x2000000ull	/* 2 MiB THP or hugetlbfs page */
#define IOVA_BAR	0x4000000ull	/* edu #2's BAR0 (1 MiB) */
#define IOVA_LOAD	0x8000000ull	/* loads the edu buffer at test start */

#define IOVA_HOLE	0x5000000ull	/* never mapped: page requests */

/*
 * The nesting sequence's guest (guest-physical = container IOVA, as in
 * nesting_test.c): table pages, data pages D and D2, and decoys: stage-2
 * pages at the stage-1 IOVAs themselves, reached only while unbound.
 */
#define NEST_PML4	0x100000ull
#define NEST_PDPT	0x101000ull
#define NEST_PD		0x102000ull
#define NEST_PT		0x103000ull
#define NEST_D		0x800000ull
#define NEST_D2		0x801000ull
#define NEST_S1_A	0x5000ull	/* -> D from the bind on */
#define NEST_S1_B	0x6000ull	/* -> D2 after the invalidation */
#define NEST_PAGES	8		/* the six above and the two decoys */
#define PTE_OK		0x7ull		/* present, writable, user */

#define A_PAGES		16
#define A_SIZE		(A_PAGES * PAGE_4K)
#define PROBE_LEN	64
#define PROBE_FILL	0xd1
#define EDU_LIVENESS	0x04		/* reads back inverted */

#define MAX_PROBES	4
#define MAX_QUERIES	3
#define MAX_STEPS	8
#define SWEEP_TIMEOUT	900

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the state a failed call must leave alone ----------------------------- */

struct snap {
	struct iommu_pt_print pt[2];	/* edu #1's and edu #2's page tables */
	long avail;			/* GET_INFO DMA_AVAIL, or -errno */
	long lck;			/* VmLck, kB */
	long long pins;			/* FOLL_PIN pins outstanding */
	int dirty;			/* tracking on 1 / off 0, -1 not asked */
	int vaddr;			/* A's vaddr valid 1 / invalid 0, -1 */
	int group2;			/* edu #2's group in a container 1 / 0, -1 */
	long mdev_pinned;		/* the mdev's pinned pages, -1 */
	uint64_t memhash;		/* hash of bufs[0], 0 not asked */
	struct { long ret; uint64_t start, size; uint32_t flags; } q[MAX_QUERIES];
	long ring_prod;			/* the fault ring's producer index, -1 */
	int owner_view;			/* the memfd view A's vaddr is in (0, 1), -1 */
	long nest_bound;		/* the nested group bound (GET_INFO), -1 */
};

/* Where a probe DMA lands: a RAM page, or edu #2's liveness register. */
struct probe {
	uint64_t iova;
	volatile uint8_t *mem;
	bool bar;
};

struct step_stat {
	const char *name;
	int fails;
	int enomem, efault;
	int applied;	/* EFAULT writing the result back, after applying it */
	int absorbed;	/* injected failures the call absorbed (it succeeded) */
};

FIXTURE(fnth) {
	/* For the whole test. */
	struct fail_nth nth;
	bool fi_set;
	long lck0, taint0;
	long long pins0;
	uint8_t pat[PROBE_LEN];		/* the edu buffer's first bytes */
	struct { void *p; size_t len; } bufs[4];
	struct mdev_dev m;
	/* Per run. */
	struct edu e1, e2;
	int c;
	struct edu peer;		/* the BAR owner, own container, whole test */
	volatile uint8_t *bar;		/* this run's mmap of peer's BAR0 */
	size_t bar_size;
	int efd[2];
	uint8_t info_buf[1024];
	uint32_t info_len;
	struct probe probes[MAX_PROBES];
	int nprobes;
	uint64_t queries[MAX_QUERIES];	/* rvfio DMA_QUERY IOVAs */
	int nqueries;
	bool ask_dirty, ask_vaddr, ask_group2, ask_mdev, ask_mem;
	bool ask_ring, ask_owner, ask_nest;
	uint32_t iommu_type;		/* of this run's container */
	/* The fault ring sequence. */
	struct fault_ring ring;		/* fd -1 until created, hdr NULL until mapped */
	/* The owner change sequence: two views of one memfd, a second BAR mmap. */
	int memfd;
	uint8_t *view[2];
	volatile uint8_t *bar2;
	/* The nesting sequences: the guest's pages, mapped in stage 2. */
	uint8_t *guest;
	int nest_gid;			/* the group they bind */
	/* The sweep. */
	unsigned int n;			/* this run's fail-nth; 0 = reference */
	bool armed;			/* n set and not yet fired */
	int step;
	struct step_stat steps[MAX_STEPS];
	int swallowed;			/* runs whose failure a call absorbed */
	bool have_ref;
	struct snap ref;
	int ref_mask;
	int ref_before[MAX_STEPS];		/* probes before each step, reference run */
	struct snap ref_after[MAX_STEPS];	/* state after each step, reference run */
	int ref_after_mask[MAX_STEPS];
	bool probe_run;				/* edu #1's device open, DMA probes made */
	unsigned int dma_every;
	uint8_t ref_info[1024];
	uint32_t ref_info_len;
	bool verbose;
};

static void edu_reset(struct edu *e)
{
	memset(e, 0, sizeof(*e));
	e->container = e->group = e->device = -1;
}

FIXTURE_SETUP(fnth)
{
	char why[256] = "";
	uint64_t start, end;
	const char *v;
	int ret;

	self->nth.fd = -1;
	self->c = -1;
	self->efd[0] = self->efd[1] = -1;
	self->ring.fd = self->memfd = -1;
	edu_reset(&self->e1);
	edu_reset(&self->e2);
	edu_reset(&self->peer);
	mdev_dev_init(&self->m);
	v = getenv("FAIL_NTH_VERBOSE");
	self->verbose = v && *v == '1';
	if (access("/dev/vfio/vfio", F_OK))
		SKIP(return, "/dev/vfio/vfio does not exist: vfio is not loaded");
	if (edu_count() < 2)
		SKIP(return, "needs 2 edu devices in EDU_BDFS, have %d", edu_count());
	ret = module_text_range(backend_name(), &start, &end, why, sizeof(why));
	ASSERT_EQ(0, ret) TH_LOG("text of %s: %s", backend_name(), why);
	ret = fi_setup(start, end, why, sizeof(why));
	if (ret == -ENOENT)
		SKIP(return, "fault injection unavailable: %s", why);
	ASSERT_EQ(0, ret) TH_LOG("fault injection setup: %s", why);
	self->fi_set = true;
	ASSERT_EQ(0, fail_nth_open(&self->nth));
	self->lck0 = vmlck_kb();
	self->pins0 = foll_pins_outstanding();
	self->taint0 = kernel_taint();
	ASSERT_NE(LLONG_MIN, self->pins0);
}

static void run_close(FIXTURE_DATA(fnth) *self)
{
	bool own = self->c >= 0 && self->c == self->e1.container && self->e1.own_container;

	for (int i = 0; i < 2; i++) {
		if (self->efd[i] >= 0)
			close(self->efd[i]);
		self->efd[i] = -1;
	}
	fault_ring_close(&self->ring);
	if (self->bar2)
		munmap((void *)self->bar2, self->bar_size);
	self->bar2 = NULL;
	/* edu #2 first: its group leaves the container before the owner closes it. */
	edu_close(&self->e2);
	mdev_dev_close(&self->m);
	edu_close(&self->e1);
	if (self->c >= 0 && !own)
		close(self->c);
	if (self->bar)
		munmap((void *)self->bar, self->bar_size);
	self->bar = NULL;
	self->c = -1;
	edu_reset(&self->e1);
	edu_reset(&self->e2);
}

FIXTURE_TEARDOWN(fnth)
{
	if (self->nth.fd >= 0)
		fail_nth_disarm(&self->nth);
	fail_nth_close(&self->nth);
	run_close(self);
	edu_close(&self->peer);
	mdev_dev_destroy(&self->m);
	for (int i = 0; i < 4; i++)
		if (self->bufs[i].p)
			munmap(self->bufs[i].p, self->bufs[i].len);
	for (int i = 0; i < 2; i++)
		if (self->view[i])
			munmap(self->view[i], A_SIZE);
	if (self->memfd >= 0)
		close(self->memfd);
	if (self->guest)
		munmap(self->guest, NEST_PAGES * PAGE_4K);
	if (self->fi_set)
		fi_restore();
}

/* ---- helpers --------------------------------------------------------------- */

static long dma_avail(int c)
{
	const struct vfio_iommu_type1_info_dma_avail *cap;
	struct vfio_iommu_type1_info *info = vfio_get_info(c);
	long ret;

	if (!info)
		return -errno;
	cap = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	ret = cap ? (long)cap->avail : -ENOENT;
	free(info);
	return ret;
}

/* UNMAP_DMA with GET_DIRTY_BITMAP of [iova, iova + size) into *word. */
static int unmap_dirty(int c, uint64_t iova, uint64_t size, uint64_t *word, uint64_t *n)
{
	struct {
		struct vfio_iommu_type1_dma_unmap u;
		struct vfio_bitmap bm;
	} req = {
		.u = { .argsz = sizeof(req), .flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
		       .iova = iova, .size = size },
		.bm = { .pgsize = PAGE_4K, .size = sizeof(*word), .data = (__u64 *)word },
	};
	int ret;

	*word = 0;
	ret = (int)vfio_ioctl(c, VFIO_IOMMU_UNMAP_DMA, &req);
	*n = req.u.size;
	return ret;
}

static long long eventfd_take(int efd, int ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v = 0;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	if (read(efd, &v, sizeof(v)) != sizeof(v))
		return -errno;
	return (long long)v;
}

static int group_in_container(int group)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };

	if (group < 0 || ioctl(group, VFIO_GROUP_GET_STATUS, &st))
		return -1;
	return !!(st.flags & VFIO_GROUP_FLAGS_CONTAINER_SET);
}

static uint64_t hash_mem(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h | 1;
}

/* Whether A's vaddr is valid: MAP_FLAG_VADDR on a valid mapping is EINVAL;
 * on an invalid one it succeeds, and is undone at once. */
static int vaddr_valid(int c, const void *vaddr)
{
	uint64_t n;
	int ret = vfio_map(c, IOVA_A, vaddr, A_SIZE, VFIO_DMA_MAP_FLAG_VADDR);

	if (ret == -EINVAL)
		return 1;
	if (ret)
		return ret;
	ret = vfio_unmap(c, IOVA_A, A_SIZE, VFIO_DMA_UNMAP_FLAG_VADDR, &n);
	return ret ? ret : 0;
}

static int owner_view(FIXTURE_DATA(fnth) *self);

static void take_snap(FIXTURE_DATA(fnth) *self, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	s->pt[0].ret = s->pt[1].ret = -ENODEV;
	if (self->e1.group >= 0 && group_in_container(self->e1.group) == 1)
		iommu_pt_fingerprint(self->e1.bdf, &s->pt[0]);
	if (self->e2.group >= 0 && group_in_container(self->e2.group) == 1)
		iommu_pt_fingerprint(self->e2.bdf, &s->pt[1]);
	s->avail = dma_avail(self->c);
	s->lck = vmlck_kb();
	s->pins = foll_pins_outstanding();
	s->dirty = s->vaddr = s->group2 = -1;
	s->mdev_pinned = -1;
	if (self->ask_dirty) {
		uint64_t w;

		/* C stays mapped throughout: GET_BITMAP of it works iff tracking is on. */
		s->dirty = vfio_dirty_get(self->c, IOVA_C, PAGE_4K, &w, 1) == 0;
	}
	if (self->ask_vaddr)
		s->vaddr = vaddr_valid(self->c, self->bufs[0].p);
	if (self->ask_group2)
		s->group2 = group_in_container(self->e2.group);
	if (self->ask_mdev) {
		struct rvfio_mdev_stats st;

		s->mdev_pinned = mdev_dev_stats(self->m.device, &st) ? -2 : (long)st.pinned_pages;
	}
	if (self->ask_mem)
		s->memhash = hash_mem(self->bufs[0].p, self->bufs[0].len);
	s->ring_prod = -1;
	if (self->ask_ring && self->ring.hdr)
		s->ring_prod = fault_ring_producer(&self->ring);
	s->owner_view = self->ask_owner ? owner_view(self) : -1;
	s->nest_bound = -1;
	if (self->ask_nest) {
		long f = nesting_group_flags(self->c, self->nest_gid);

		s->nest_bound = f < 0 ? f : !!(f & RVFIO_NESTING_GROUP_BOUND);
	}
	for (int i = 0; i < self->nqueries; i++) {
		struct rvfio_dma_query q;

		s->q[i].ret = dma_query(self->c, self->queries[i], &q);
		s->q[i].start = q.iova;
		s->q[i].size = q.size;
		s->q[i].flags = q.flags;
	}
}

#define EXPECT_SNAP_FIELD(a, b, field, what) \
	EXPECT_EQ((a)->field, (b)->field) \
		TH_LOG("%s: %s: %s differs", self->steps[self->step].name, what, #field)

static void __cmp_snap(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self,
		       const struct snap *a, const struct snap *b, const char *what)
{
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(a->pt[i].ret, b->pt[i].ret)
			TH_LOG("%s: edu #%d page table readable: %d then %d", what, i + 1,
			       a->pt[i].ret, b->pt[i].ret);
		EXPECT_EQ(a->pt[i].leaves, b->pt[i].leaves)
			TH_LOG("%s: edu #%d IOMMU leaves: %ld then %ld (IOVA pfns %#llx-%#llx then %#llx-%#llx)",
			       what, i + 1, a->pt[i].leaves, b->pt[i].leaves,
			       (unsigned long long)a->pt[i].first_pfn,
			       (unsigned long long)a->pt[i].last_pfn,
			       (unsigned long long)b->pt[i].first_pfn,
			       (unsigned long long)b->pt[i].last_pfn);
		EXPECT_EQ(a->pt[i].hash, b->pt[i].hash)
			TH_LOG("%s: edu #%d IOMMU translations changed", what, i + 1);
	}
	EXPECT_EQ(a->avail, b->avail) TH_LOG("%s: DMA_AVAIL %ld then %ld", what, a->avail, b->avail);
	EXPECT_EQ(a->lck, b->lck) TH_LOG("%s: VmLck %ld then %ld kB", what, a->lck, b->lck);
	EXPECT_EQ(a->pins, b->pins)
		TH_LOG("%s: FOLL_PIN pins %lld then %lld", what, a->pins, b->pins);
	EXPECT_EQ(a->dirty, b->dirty)
		TH_LOG("%s: dirty tracking %d then %d", what, a->dirty, b->dirty);
	EXPECT_EQ(a->vaddr, b->vaddr) TH_LOG("%s: vaddr valid %d then %d", what, a->vaddr, b->vaddr);
	EXPECT_EQ(a->group2, b->group2)
		TH_LOG("%s: edu #2's group attached %d then %d", what, a->group2, b->group2);
	EXPECT_EQ(a->mdev_pinned, b->mdev_pinned)
		TH_LOG("%s: mdev pinned pages %ld then %ld", what, a->mdev_pinned, b->mdev_pinned);
	EXPECT_EQ(a->memhash, b->memhash) TH_LOG("%s: the mapped memory changed", what);
	EXPECT_EQ(a->ring_prod, b->ring_prod)
		TH_LOG("%s: fault ring producer %ld then %ld", what, a->ring_prod, b->ring_prod);
	EXPECT_EQ(a->owner_view, b->owner_view)
		TH_LOG("%s: A's vaddr in memfd view %d then %d", what, a->owner_view,
		       b->owner_view);
	EXPECT_EQ(a->nest_bound, b->nest_bound)
		TH_LOG("%s: the nested group bound %ld then %ld", what, a->nest_bound,
		       b->nest_bound);
	for (int i = 0; i < self->nqueries; i++) {
		EXPECT_EQ(a->q[i].ret, b->q[i].ret)
			TH_LOG("%s: DMA_QUERY(%#llx): %ld then %ld", what,
			       (unsigned long long)self->queries[i], a->q[i].ret, b->q[i].ret);
		EXPECT_EQ(a->q[i].start, b->q[i].start)
			TH_LOG("%s: DMA_QUERY(%#llx) start", what, (unsigned long long)self->queries[i]);
		EXPECT_EQ(a->q[i].size, b->q[i].size)
			TH_LOG("%s: DMA_QUERY(%#llx) size", what, (unsigned long long)self->queries[i]);
		EXPECT_EQ(a->q[i].flags, b->q[i].flags)
			TH_LOG("%s: DMA_QUERY(%#llx) flags", what, (unsigned long long)self->queries[i]);
	}
}
#define cmp_snap(a, b, what) __cmp_snap(_metadata, self, (a), (b), (what))

/*
 * One edu #1 DMA (edu buffer -> IOVA) per probe; bit i of the result is set
 * when probe i's bytes arrived where its IOVA should map. -1 when this run
 * does not probe (edu #1's device is not open).
 */
static int __probe_mask(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	int mask = 0;

	if (self->e1.device < 0)
		return -1;
	for (int i = 0; i < self->nprobes; i++) {
		struct probe *p = &self->probes[i];

		if (p->bar) {
			volatile uint32_t *reg = (volatile uint32_t *)p->mem;
			uint32_t pat32, old = 0x5a5a0000u | i, got;

			memcpy(&pat32, self->pat, 4);
			*reg = old;
			ASSERT_EQ(0, edu_dma_to_ram(&self->e1, 0, p->iova, 4));
			got = *reg;
			if (got == ~pat32)
				mask |= 1u << i;
			else
				ASSERT_EQ(~old, got)
					TH_LOG("probe %#llx: liveness register reads %#x: neither "
					       "the DMA'd %#x nor the old %#x, inverted",
					       (unsigned long long)p->iova, got, pat32, old);
		} else {
			memset((void *)p->mem, PROBE_FILL, PROBE_LEN);
			ASSERT_EQ(0, edu_dma_to_ram(&self->e1, 0, p->iova, PROBE_LEN));
			if (!memcmp((const void *)p->mem, self->pat, PROBE_LEN))
				mask |= 1u << i;
			else
				ASSERT_EQ(-1, check_fill((const void *)p->mem, PROBE_LEN, PROBE_FILL))
					TH_LOG("probe %#llx: memory holds neither the DMA'd bytes "
					       "nor what it held", (unsigned long long)p->iova);
		}
	}
	return mask;
}
#define probe_mask() __probe_mask(_metadata, self)

/* ---- stepping ------------------------------------------------------------------ */

/* Pauses injection; returns the calls still to come (0: it fired). */
static long __pause(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	long rem;

	if (!self->armed)
		return 0;
	rem = fail_nth_disarm(&self->nth);
	ASSERT_LE(0, rem) TH_LOG("reading fail-nth: %s", strerror((int)-rem));
	if (rem == 0)
		self->armed = false;
	return rem;
}

static void __resume(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self, long rem)
{
	if (rem > 0)
		ASSERT_EQ(0, fail_nth_arm(&self->nth, (unsigned int)rem));
}

static void __step_begin(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self,
			 const char *name, struct snap *before, int *mask)
{
	long rem = __pause(_metadata, self);

	ASSERT_LT(self->step, MAX_STEPS);
	self->steps[self->step].name = name;
	take_snap(self, before);
	/*
	 * Where DMA lands before step k is the same in every run (the steps
	 * before it succeeded): probed once, in the reference run.
	 */
	if (self->n == 0)
		self->ref_before[self->step] = probe_mask();
	*mask = self->ref_before[self->step];
	__resume(_metadata, self, rem);
}

/*
 * After the call: true when it failed (the run ends), with every check
 * made; false when it succeeded.
 */
static bool __step_end(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self,
		       long ret, const struct snap *before, int mask_before, bool wb)
{
	struct step_stat *st = &self->steps[self->step];
	bool was_armed = self->armed;
	long rem = __pause(_metadata, self);
	struct snap after;
	char what[160];
	int mask;

	if (ret >= 0) {
		if (was_armed && rem == 0) {
			self->swallowed++;
			st->absorbed++;
		}
		if (self->n == 0) {
			take_snap(self, &self->ref_after[self->step]);
			self->ref_after_mask[self->step] = probe_mask();
		}
		__resume(_metadata, self, rem);
		self->step++;
		return false;
	}
	ASSERT_TRUE(was_armed && rem == 0)
		TH_LOG("%s failed with %s (%ld) although no failure was injected (n=%u)",
		       st->name, strerror((int)-ret), ret, self->n);
	st->fails++;
	if (ret == -ENOMEM)
		st->enomem++;
	else if (ret == -EFAULT)
		st->efault++;
	else
		ASSERT_TRUE(false)
			TH_LOG("%s: errno %s (%ld) for an injected failure (n=%u); "
			       "expected ENOMEM or EFAULT", st->name, strerror((int)-ret), ret, self->n);
	take_snap(self, &after);
	mask = probe_mask();
	/*
	 * A call that writes its result back once it has been applied
	 * (UNMAP_DMA's size, both backends) can fail that write: EFAULT with
	 * the call wholly done, as in the reference run, is accepted then.
	 */
	if (wb && ret == -EFAULT && !memcmp(&after, &self->ref_after[self->step], sizeof(after)) &&
	    (mask < 0 || mask == self->ref_after_mask[self->step])) {
		st->applied++;
		return true;
	}
	snprintf(what, sizeof(what), "%s (n=%u, %s)", st->name, self->n, strerror((int)-ret));
	cmp_snap(before, &after, what);
	if (mask >= 0)
		ASSERT_EQ(mask_before, mask)
			TH_LOG("%s: edu DMA reaches other IOVAs than before the failed call", what);
	ASSERT_EQ(0, _metadata->exit_code)
		TH_LOG("%s changed the container's state (%s)", what,
		       wb && ret == -EFAULT ? "and is not the state of the call wholly applied either" :
		       "a failed call must change nothing");
	if (self->verbose)
		ksft_print_msg("n=%u: %s failed with %s, state unchanged\n", self->n, st->name,
			       strerror((int)-ret));
	return true;
}

/*
 * STEP(name, expr): one call of a sequence; expr is 0 (or >= 0) on the
 * expected success and -errno otherwise. A failed call ends the sequence
 * (the sequence function returns 1) once its checks have passed.
 */
#define __STEP(name, expr, wb) do { \
	struct snap __before; \
	int __mask = -1; \
	long __r; \
	__step_begin(_metadata, self, (name), &__before, &__mask); \
	__r = (expr); \
	if (__step_end(_metadata, self, __r, &__before, __mask, (wb))) \
		return 1; \
} while (0)
#define STEP(name, expr)	__STEP(name, expr, false)
/* A call that copies its result to user space after applying it. */
#define STEP_WB(name, expr)	__STEP(name, expr, true)

/* ---- per-run set-ups ------------------------------------------------------------- */

/*
 * edu #1's group in a new container; its device (DMA probes) only in probe
 * runs: opening and closing a vfio-pci device costs more than the rest of
 * a run, and the IOMMU page table (the snapshot) needs no open device.
 */
#define open_e1() __open_e1(_metadata, self, self->probe_run)
static void __open_e1(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self, bool dev)
{
	char err[256] = "";
	int ret;

	if (dev) {
		ASSERT_EQ(0, edu_open(&self->e1, edu_bdf(0), -1, self->iommu_type, err,
				      sizeof(err))) TH_LOG("edu #1: %s", err);
		self->c = self->e1.container;
		return;
	}
	snprintf(self->e1.bdf, sizeof(self->e1.bdf), "%s", edu_bdf(0));
	self->c = self->e1.container = vfio_container_open();
	ASSERT_LE(0, self->c);
	self->e1.own_container = true;
	ret = vfio_group_attach(self->c, self->e1.bdf, &self->e1.group_id);
	ASSERT_LE(0, ret) TH_LOG("edu #1's group: %s", strerror(-ret));
	self->e1.group = ret;
	ASSERT_EQ(0, vfio_set_iommu(self->c, self->iommu_type));
}

/* edu #2 (the last edu) in the same container, device open, BAR0 mapped. */
/*
 * The peer (the last edu) in a container of its own for the whole test:
 * its BAR, mmap()ed from its device fd, is the PFNMAP memory the runs map.
 */
#define open_peer() __open_peer(_metadata, self)
static void __open_peer(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	char err[256] = "";

	ASSERT_EQ(0, edu_open(&self->peer, edu_bdf(edu_count() - 1), -1, VFIO_TYPE1v2_IOMMU, err,
			      sizeof(err))) TH_LOG("peer edu: %s", err);
}

/* This run's mmap of the peer's BAR0 (a VM_PFNMAP range), untouched. */
#define map_bar() __map_bar(_metadata, self)
static void __map_bar(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint64_t size = 0;
	void *p = vfio_bar0_mmap(self->peer.device, PROT_READ | PROT_WRITE, &size);

	ASSERT_NE(MAP_FAILED, p) TH_LOG("BAR0 of %s: %s", self->peer.bdf, strerror(errno));
	self->bar = p;
	self->bar_size = size;
}

#define buf(i) ((uint8_t *)self->bufs[i].p)

static void add_probe(FIXTURE_DATA(fnth) *self, uint64_t iova, volatile uint8_t *mem, bool bar)
{
	self->probes[self->nprobes++] = (struct probe){ .iova = iova, .mem = mem, .bar = bar };
}

/* ---- the sweep ---------------------------------------------------------------------- */

struct seq {
	const char *name;
	/* Per run: open the container, make what the sequence starts from. */
	void (*setup)(struct __test_metadata *, FIXTURE_DATA(fnth) *);
	/* The swept calls: 0 when all succeeded, 1 when one failed. */
	int (*body)(struct __test_metadata *, FIXTURE_DATA(fnth) *);
	/* After a completed run, before the final snapshot (optional). */
	void (*done)(struct __test_metadata *, FIXTURE_DATA(fnth) *);
	/* After a failed run, after the step's checks (optional). */
	void (*failed)(struct __test_metadata *, FIXTURE_DATA(fnth) *, int step);
};

static void reset_run(FIXTURE_DATA(fnth) *self)
{
	self->nprobes = self->nqueries = 0;
	self->ask_dirty = self->ask_vaddr = self->ask_group2 = false;
	self->ask_mdev = self->ask_mem = false;
	self->ask_ring = self->ask_owner = self->ask_nest = false;
	self->iommu_type = VFIO_TYPE1v2_IOMMU;
	self->step = 0;
	self->info_len = 0;
}

static void run_sweep(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self,
		      const struct seq *s)
{
	const char *maxs = getenv("FAIL_NTH_MAX"), *every = getenv("FAIL_NTH_DMA_EVERY");
	unsigned int max = maxs ? (unsigned int)atoi(maxs) : 1000;
	double t0 = now_s(), t[4] = { 0 }, tt;
	char line[2048];
	int failed_runs = 0, probed = 0, len, unreached = 0;
	unsigned int points = 0;

	self->dma_every = every && atoi(every) > 0 ? (unsigned int)atoi(every) : 4;

	for (self->n = 0;; self->n++) {
		struct snap fin;
		int mask;
		long rem = 0;
		int ret;

		ASSERT_GT(max, self->n)
			TH_LOG("%s: still failing calls after %u runs (FAIL_NTH_MAX)", s->name, max);
		reset_run(self);
		self->probe_run = self->n % self->dma_every == 0;
		tt = now_s();
		s->setup(_metadata, self);
		t[0] += now_s() - tt;
		tt = now_s();
		if (self->n) {
			ASSERT_EQ(0, fail_nth_arm(&self->nth, self->n));
			self->armed = true;
		}
		ret = s->body(_metadata, self);
		t[1] += now_s() - tt;
		tt = now_s();
		if (self->armed) {
			rem = fail_nth_disarm(&self->nth);
			self->armed = false;
			ASSERT_LT(0, rem);	/* fired: __step_end saw it */
		}
		if (ret) {
			failed_runs++;
			if (s->failed)
				s->failed(_metadata, self, self->step);
		} else {
			if (s->done)
				s->done(_metadata, self);
			take_snap(self, &fin);
			mask = probe_mask();
			if (!self->have_ref) {
				self->ref = fin;
				self->ref_mask = mask;
				self->have_ref = true;
				memcpy(self->ref_info, self->info_buf, sizeof(self->ref_info));
				self->ref_info_len = self->info_len;
			} else {
				cmp_snap(&self->ref, &fin, "end of run vs. reference run");
				if (mask >= 0)
					ASSERT_EQ(self->ref_mask, mask)
						TH_LOG("n=%u: after a completed run, edu DMA reaches other "
					       "IOVAs than after the reference run", self->n);
				ASSERT_EQ(self->ref_info_len, self->info_len);
				ASSERT_EQ(0, memcmp(self->ref_info, self->info_buf, self->info_len))
					TH_LOG("n=%u: GET_INFO's answer differs from the reference run's",
					       self->n);
				ASSERT_EQ(0, _metadata->exit_code)
					TH_LOG("n=%u: run completed in a state other than the reference run's",
					       self->n);
			}
		}
		ASSERT_EQ(0, _metadata->exit_code) TH_LOG("n=%u: %s", self->n, ret ?
			"the checks after the failed call failed" : "the checks of the completed run failed");
		t[2] += now_s() - tt;
		tt = now_s();
		run_close(self);
		ASSERT_EQ(self->lck0, vmlck_kb())
			TH_LOG("n=%u: VmLck after closing the container", self->n);
		ASSERT_EQ(self->pins0, pins_settle(self->pins0, 2000))
			TH_LOG("n=%u: FOLL_PIN pins after closing the container", self->n);
		ASSERT_FALSE(kernel_warned_since(self->taint0))
			TH_LOG("n=%u: the kernel WARNed (taint W) in this run: see dmesg", self->n);
		t[3] += now_s() - tt;
		probed += self->probe_run;
		if (self->verbose)
			ksft_print_msg("n=%u: %s\n", self->n, ret ? "a call failed" : "completed");
		/* Runs that never reached their n-th call: every point was swept. */
		if (self->n && !ret && rem > 0) {
			if (++unreached == 3)
				break;
		} else {
			unreached = 0;
			points = self->n;
		}
	}
	len = snprintf(line, sizeof(line), "%s on %s: %u injection points, %d failed calls",
		       s->name, backend_name(), points, failed_runs);
	for (int i = 0; i < MAX_STEPS && self->steps[i].name; i++)
		len += snprintf(line + len, sizeof(line) - len,
				"%s %s %d (ENOMEM %d, EFAULT %d, of which applied %d; absorbed %d)",
				i ? ";" : ":", self->steps[i].name, self->steps[i].fails,
				self->steps[i].enomem, self->steps[i].efault,
				self->steps[i].applied, self->steps[i].absorbed);
	snprintf(line + len, sizeof(line) - len,
		 "; %d absorbed; edu DMA probes in %d of %u runs; %.1f s (set-up %.1f, calls and "
		 "their checks %.1f, end checks %.1f, close %.1f)\n", self->swallowed, probed,
		 self->n + 1, now_s() - t0, t[0], t[1], t[2], t[3]);
	ksft_print_msg("%s", line);
}

/*
 * Loads the edu buffer's first PROBE_LEN bytes (the probes DMA them out)
 * through a container of its own; edu #1 has no reset method, so they stay
 * there across containers.
 */
#define load_pattern() __load_pattern(_metadata, self)
static void __load_pattern(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint8_t *p = alloc_pages_4k(PAGE_4K, 0);
	uint64_t n;

	ASSERT_NE(MAP_FAILED, p);
	fill_pattern(p, PAGE_4K, random_seed());
	for (int i = 0; i < PROBE_LEN; i++)
		if (p[i] == PROBE_FILL)
			p[i] ^= 0x80;
	memcpy(self->pat, p, PROBE_LEN);
	self->iommu_type = VFIO_TYPE1v2_IOMMU;
	__open_e1(_metadata, self, true);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_LOAD, p, PAGE_4K, RW));
	ASSERT_EQ(0, edu_dma_to_dev(&self->e1, IOVA_LOAD, 0, PROBE_LEN));
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_LOAD, PAGE_4K, 0, &n));
	run_close(self);
	munmap(p, PAGE_4K);
}

#define new_buf(i, len) __new_buf(_metadata, self, (i), (len))
static void __new_buf(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self, int i,
		      size_t len)
{
	void *p = alloc_pages_4k(len, 0x33);

	ASSERT_NE(MAP_FAILED, p);
	self->bufs[i].p = p;
	self->bufs[i].len = len;
}

/* ---- map 4 KiB memory; unmap ---------------------------------------------------- */

static void setup_e1_probes_ab(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	open_e1();
	add_probe(self, IOVA_A + (A_PAGES - 1) * PAGE_4K, buf(0) + (A_PAGES - 1) * PAGE_4K, false);
	add_probe(self, IOVA_B, buf(1), false);
}

static int body_map_4k(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint64_t n = 0;

	STEP("map 16 x 4 KiB", vfio_map(self->c, IOVA_A, buf(0), A_SIZE, RW));
	STEP("map 4 KiB", vfio_map(self->c, IOVA_B, buf(1), PAGE_4K, RW));
	STEP_WB("unmap 4 KiB", vfio_unmap(self->c, IOVA_B, PAGE_4K, 0, &n));
	ASSERT_EQ(PAGE_4K, n);
	return 0;
}

static void setup_mapped_abc(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	setup_e1_probes_ab(_metadata, self);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf(0), A_SIZE, RW));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_B, buf(1), PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_C, buf(2), PAGE_4K, RW));
}

static int body_unmap(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint64_t n = 0;

	/* One call over two mappings: all or nothing. */
	STEP_WB("unmap A+B", vfio_unmap(self->c, IOVA_A, A_SIZE + PAGE_4K, 0, &n));
	ASSERT_EQ(A_SIZE + PAGE_4K, n);
	return 0;
}

static int body_unmap_all(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint64_t n = 0;

	STEP_WB("unmap all", vfio_unmap_all(self->c, &n));
	ASSERT_EQ(A_SIZE + 2 * PAGE_4K, n);
	return 0;
}

/*
 * The start of a sweep over the sample mdev: nothing without fault
 * injection, a skip with the reason without the mdev, else one created.
 */
#define MDEV_UP() do { \
	const char *__why = mdev_dev_missing(); \
	\
	if (!self->fi_set) \
		return; \
	if (__why) \
		SKIP(return, "%s", __why); \
	ASSERT_EQ(0, mdev_dev_create(&self->m)); \
} while (0)

#define PREP(nbufs_4k) do { \
	if (!self->fi_set) \
		return; \
	for (int __i = 0; __i < (nbufs_4k); __i++) \
		new_buf(__i, __i ? PAGE_4K : A_SIZE); \
	load_pattern(); \
} while (0)

/* The whole of a test that is one sweep of a sequence over PREP(nbufs_4k)'s buffers. */
#define SWEEP(seq_name, nbufs_4k, ...) do { \
	const struct seq __s = { .name = (seq_name), __VA_ARGS__ }; \
	\
	PREP(nbufs_4k); \
	run_sweep(_metadata, self, &__s); \
} while (0)

TEST_F_TIMEOUT(fnth, map_4k, SWEEP_TIMEOUT)
{
	SWEEP("map_4k", 2, .setup = setup_e1_probes_ab, .body = body_map_4k);
}

TEST_F_TIMEOUT(fnth, unmap, SWEEP_TIMEOUT)
{
	SWEEP("unmap", 3, .setup = setup_mapped_abc, .body = body_unmap);
}

TEST_F_TIMEOUT(fnth, unmap_all, SWEEP_TIMEOUT)
{
	SWEEP("unmap_all", 3, .setup = setup_mapped_abc, .body = body_unmap_all);
}

/* ---- THP and hugetlbfs ------------------------------------------------------------ */

#define KPF_THP		22

/* Whether the page at p is part of a THP (pagemap + kpageflags). */
static int is_thp(const void *p)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int kf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	uint64_t ent = 0, flags = 0;
	int ret = -EIO;

	if (pm >= 0 && kf >= 0 &&
	    pread(pm, &ent, 8, ((uintptr_t)p / PAGE_4K) * 8) == 8 && (ent >> 63) &&
	    pread(kf, &flags, 8, (ent & ((1ull << 55) - 1)) * 8) == 8)
		ret = !!(flags & (1ull << KPF_THP));
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return ret;
}

static void setup_huge(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	open_e1();
	add_probe(self, IOVA_HUGE + SZ_1M + 0x40, buf(0) + SZ_1M + 0x40, false);
}

static int body_map_huge(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint64_t n = 0;

	STEP("map 2 MiB", vfio_map(self->c, IOVA_HUGE, buf(0), SZ_2M, RW));
	STEP_WB("unmap 2 MiB", vfio_unmap(self->c, IOVA_HUGE, SZ_2M, 0, &n));
	ASSERT_EQ(SZ_2M, n);
	/* Map it again: the run ends with the mapping in place. */
	STEP("map 2 MiB again", vfio_map(self->c, IOVA_HUGE, buf(0), SZ_2M, RW));
	return 0;
}

TEST_F_TIMEOUT(fnth, map_thp, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "map_thp", .setup = setup_huge, .body = body_map_huge,
	};
	uint8_t *raw, *p;

	if (!self->fi_set)
		return;
	raw = mmap(NULL, 2 * SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, raw);
	self->bufs[1].p = raw;
	self->bufs[1].len = 2 * SZ_2M;
	p = (uint8_t *)(((uintptr_t)raw + SZ_2M - 1) & ~(uintptr_t)(SZ_2M - 1));
	if (madvise(p, SZ_2M, MADV_HUGEPAGE))
		SKIP(return, "madvise(MADV_HUGEPAGE): %s", strerror(errno));
	memset(p, 0x44, SZ_2M);
	if (is_thp(p) != 1 || is_thp(p + SZ_2M - PAGE_4K) != 1)
		SKIP(return, "the 2 MiB buffer did not get a transparent huge page");
	self->bufs[0].p = p;	/* inside bufs[1]: freed with it */
	self->bufs[0].len = 0;
	load_pattern();
	run_sweep(_metadata, self, &s);
	self->bufs[0].p = NULL;
}

TEST_F_TIMEOUT(fnth, map_hugetlb, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "map_hugetlb", .setup = setup_huge, .body = body_map_huge,
	};
	void *p;

	if (!self->fi_set)
		return;
	p = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED)
		SKIP(return, "no free 2 MiB hugetlbfs page (MAP_HUGETLB: %s)", strerror(errno));
	self->bufs[0].p = p;
	self->bufs[0].len = SZ_2M;
	memset(p, 0x55, SZ_2M);
	load_pattern();
	run_sweep(_metadata, self, &s);
}

/* ---- a PFNMAP BAR ---------------------------------------------------------------- */

static void setup_pfnmap(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	open_e1();
	map_bar();
	add_probe(self, IOVA_BAR + EDU_LIVENESS, self->bar + EDU_LIVENESS, true);
	if (backend_is_rvfio()) {
		self->queries[self->nqueries++] = IOVA_BAR;
		self->queries[self->nqueries++] = IOVA_BAR + self->bar_size - 1;
	}
}

static int body_map_pfnmap(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint64_t n = 0;

	STEP("map BAR", vfio_map(self->c, IOVA_BAR, (void *)self->bar, self->bar_size, RW));
	STEP_WB("unmap BAR", vfio_unmap(self->c, IOVA_BAR, self->bar_size, 0, &n));
	ASSERT_EQ(self->bar_size, n);
	STEP("map BAR again",
	     vfio_map(self->c, IOVA_BAR, (void *)self->bar, self->bar_size, RW));
	return 0;
}

TEST_F_TIMEOUT(fnth, map_pfnmap, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "map_pfnmap", .setup = setup_pfnmap, .body = body_map_pfnmap,
	};

	PREP(0);
	open_peer();
	run_sweep(_metadata, self, &s);
}

/* ---- GET_INFO with its capability chain ---------------------------------------- */

static int get_info_size(int c, uint32_t *need)
{
	struct vfio_iommu_type1_info info = { .argsz = sizeof(info) };
	int ret = (int)vfio_ioctl(c, VFIO_IOMMU_GET_INFO, &info);

	*need = info.argsz;
	return ret;
}

static int body_get_info(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	struct vfio_iommu_type1_info *info = (void *)self->info_buf;
	uint32_t need = 0;

	STEP("get_info (size)", get_info_size(self->c, &need));
	ASSERT_LT(sizeof(*info), need);
	ASSERT_GE(sizeof(self->info_buf), need);
	memset(self->info_buf, 0, sizeof(self->info_buf));
	info->argsz = need;
	STEP("get_info (caps)", vfio_ioctl(self->c, VFIO_IOMMU_GET_INFO, info));
	ASSERT_TRUE(info->flags & VFIO_IOMMU_INFO_CAPS);
	ASSERT_NE(NULL, vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE));
	ASSERT_NE(NULL, vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION));
	ASSERT_NE(NULL, vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL));
	self->info_len = need;
	return 0;
}

TEST_F_TIMEOUT(fnth, get_info, SWEEP_TIMEOUT)
{
	SWEEP("get_info", 3, .setup = setup_mapped_abc, .body = body_get_info);
}

/* ---- dirty tracking ------------------------------------------------------------------ */

static void setup_dirty(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	setup_mapped_abc(_metadata, self);
	self->ask_dirty = true;
}

static int body_dirty(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint64_t w = 0, n = 0;

	STEP("dirty start", vfio_dirty_ctl(self->c, VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
	STEP("dirty get bitmap", vfio_dirty_get(self->c, IOVA_A, A_SIZE, &w, 1));
	/* An IOMMU-backed group: every mapped page is dirty. */
	ASSERT_EQ((1ull << A_PAGES) - 1, w);
	STEP_WB("unmap B with bitmap", unmap_dirty(self->c, IOVA_B, PAGE_4K, &w, &n));
	ASSERT_EQ(PAGE_4K, n);
	ASSERT_EQ(1, w);
	STEP("dirty stop", vfio_dirty_ctl(self->c, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
	return 0;
}

TEST_F_TIMEOUT(fnth, dirty, SWEEP_TIMEOUT)
{
	SWEEP("dirty", 3, .setup = setup_dirty, .body = body_dirty);
}

/* ---- vaddr invalidate and restore ------------------------------------------------------ */

static void setup_vaddr(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	setup_mapped_abc(_metadata, self);
	self->ask_vaddr = true;
}

static int body_vaddr(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint64_t n = 0;

	STEP_WB("vaddr invalidate", vfio_unmap(self->c, IOVA_A, A_SIZE, VFIO_DMA_UNMAP_FLAG_VADDR, &n));
	ASSERT_EQ(A_SIZE, n);
	/* The same memory at another address: a second mapping of it. */
	STEP("vaddr restore", vfio_map(self->c, IOVA_A, buf(3), A_SIZE, VFIO_DMA_MAP_FLAG_VADDR));
	return 0;
}

TEST_F_TIMEOUT(fnth, vaddr, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "vaddr", .setup = setup_vaddr, .body = body_vaddr,
	};
	void *alias;

	PREP(3);
	/* bufs[3]: the new vaddr, memory of the same size; restoring does not
	 * pin again (the pages pinned at MAP_DMA stay), as in type1. */
	alias = mmap(NULL, A_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, alias);
	self->bufs[3].p = alias;
	self->bufs[3].len = A_SIZE;
	run_sweep(_metadata, self, &s);
}

/* ---- a second group joins a container with mappings -------------------------------------- */

static void setup_attach2(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	char path[64];

	setup_mapped_abc(_metadata, self);
	snprintf(self->e2.bdf, sizeof(self->e2.bdf), "%s", edu_bdf(edu_count() - 1));
	self->e2.group_id = edu_group_id(self->e2.bdf);
	ASSERT_LE(0, self->e2.group_id);
	snprintf(path, sizeof(path), "/dev/vfio/%d", self->e2.group_id);
	self->e2.group = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->e2.group);
	self->ask_group2 = true;
}

static int set_container(int group, int c)
{
	return ioctl(group, VFIO_GROUP_SET_CONTAINER, &c) ? -errno : 0;
}

static int body_attach2(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	STEP("attach group 2", set_container(self->e2.group, self->c));
	return 0;
}

/* The new device sees the mappings: edu #2 copies A's first page to B. */
static void done_attach2(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	char err[256] = "";
	uint32_t seed = random_seed();

	if (!self->probe_run)
		return;
	ASSERT_EQ(0, edu_open_device(&self->e2, err, sizeof(err))) TH_LOG("edu #2: %s", err);
	fill_pattern(buf(0), PAGE_4K, seed);
	memset(buf(1), 0, PAGE_4K);
	ASSERT_EQ(0, edu_copy(&self->e2, IOVA_A, IOVA_B, PAGE_4K));
	ASSERT_EQ(-1, check_pattern(buf(1), PAGE_4K, seed))
		TH_LOG("n=%u: edu #2 does not see the mappings made before it joined", self->n);
}

TEST_F_TIMEOUT(fnth, attach_second_group, SWEEP_TIMEOUT)
{
	SWEEP("attach_second_group", 3, .setup = setup_attach2, .body = body_attach2,
	      .done = done_attach2);
}

/* ---- replay: the first IOMMU group joins a container that only had an mdev ---------- */

static void setup_replay(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	char path[64];

	self->c = vfio_container_open();
	ASSERT_LE(0, self->c);
	ASSERT_EQ(0, mdev_dev_attach(&self->m, self->c));
	ASSERT_EQ(0, vfio_set_iommu(self->c, VFIO_TYPE1v2_IOMMU));
	/* Mapped, but nothing pinned yet: an mdev pins only on request. */
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf(0), A_SIZE, RW));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_B, buf(1), PAGE_4K, RW));
	snprintf(self->e1.bdf, sizeof(self->e1.bdf), "%s", edu_bdf(0));
	self->e1.group_id = edu_group_id(self->e1.bdf);
	ASSERT_LE(0, self->e1.group_id);
	snprintf(path, sizeof(path), "/dev/vfio/%d", self->e1.group_id);
	self->e1.group = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->e1.group);
	add_probe(self, IOVA_A + (A_PAGES - 1) * PAGE_4K, buf(0) + (A_PAGES - 1) * PAGE_4K, false);
	add_probe(self, IOVA_B, buf(1), false);
}

static int body_replay(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	STEP("attach IOMMU group (replay)", set_container(self->e1.group, self->c));
	return 0;
}

/* edu #1 opens and the probes (at the end of the run) DMA through it. */
static void done_replay(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	char err[256] = "";

	if (self->probe_run)
		ASSERT_EQ(0, edu_open_device(&self->e1, err, sizeof(err)))
			TH_LOG("edu #1: %s", err);
	EXPECT_EQ(self->pins0 + A_PAGES + 1, foll_pins_outstanding())
		TH_LOG("n=%u: the replay did not pin the mapped pages", self->n);
}

TEST_F_TIMEOUT(fnth, replay_into_first_domain, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "replay_into_first_domain", .setup = setup_replay, .body = body_replay, .done = done_replay,
	};

	MDEV_UP();
	PREP(2);
	run_sweep(_metadata, self, &s);
}

/* ---- the mdev: pin, dma_rw, unpin --------------------------------------------------- */

static void setup_mdev(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	self->c = vfio_container_open();
	ASSERT_LE(0, self->c);
	ASSERT_EQ(0, mdev_dev_attach(&self->m, self->c));
	ASSERT_EQ(0, vfio_set_iommu(self->c, VFIO_TYPE1v2_IOMMU));
	ASSERT_EQ(0, mdev_dev_open(&self->m));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf(0), A_SIZE, RW));
	self->ask_mdev = self->ask_mem = true;
}

static int body_mdev(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint8_t rd[256], wr[256];
	int dev = self->m.device;
	uint32_t seed = random_seed();

	STEP("mdev pin 4 pages", mdev_dev_pin(dev, IOVA_A, 4, RVFIO_MDEV_PROT_READ |
					      RVFIO_MDEV_PROT_WRITE));
	fill_pattern(buf(0) + 5 * PAGE_4K + 100, sizeof(rd), seed);
	memset(rd, 0, sizeof(rd));
	STEP("mdev dma_rw read", mdev_dev_dma_rw(dev, IOVA_A + 5 * PAGE_4K + 100, rd, sizeof(rd), 0));
	ASSERT_EQ(-1, check_pattern(rd, sizeof(rd), seed));
	fill_pattern(wr, sizeof(wr), seed ^ 0x5555);
	STEP("mdev dma_rw write", mdev_dev_dma_rw(dev, IOVA_A + 6 * PAGE_4K + 200, wr, sizeof(wr),
						  RVFIO_MDEV_DMA_RW_WRITE));
	ASSERT_EQ(-1, check_pattern(buf(0) + 6 * PAGE_4K + 200, sizeof(wr), seed ^ 0x5555));
	STEP("mdev unpin", mdev_dev_unpin(dev, IOVA_A, 4));
	/* The buffer's content is what the reference run compares. */
	memset(buf(0), 0x33, A_SIZE);
	return 0;
}

/* Unpins what a failed run left pinned, before the container goes. */
static void failed_mdev(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self, int step)
{
	struct rvfio_mdev_stats st;

	(void)step;
	ASSERT_EQ(0, mdev_dev_stats(self->m.device, &st));
	if (st.pinned_pages)
		ASSERT_EQ(4, mdev_dev_unpin(self->m.device, IOVA_A, 4));
	memset(buf(0), 0x33, A_SIZE);
}

TEST_F_TIMEOUT(fnth, mdev_pin_dma_rw, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "mdev_pin_dma_rw", .setup = setup_mdev, .body = body_mdev, .failed = failed_mdev,
	};

	MDEV_UP();
	new_buf(0, A_SIZE);
	run_sweep(_metadata, self, &s);
}

/* ---- rvfio's own ioctls ------------------------------------------------------------- */

#define REQUIRE_RVFIO() do { \
	if (self->fi_set && !backend_is_rvfio()) \
		SKIP(return, "%s has no RVFIO_IOMMU_* ioctls (rvfio's uapi)", backend_name()); \
} while (0)

static void setup_query(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	setup_pfnmap(_metadata, self);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf(0), A_SIZE, RW));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_BAR, (void *)self->bar, self->bar_size, RW));
}

static int query_expect(int c, uint64_t iova, uint64_t start, uint64_t size, uint32_t flags)
{
	struct rvfio_dma_query q;
	int ret = dma_query(c, iova, &q);

	if (ret)
		return ret;
	/* Any wrong answer is a failure the sweep reports as such. */
	if (q.iova != start || q.size != size || q.flags != flags)
		return -EBADE;
	return 0;
}

static int body_query(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	STEP("dma query RAM", query_expect(self->c, IOVA_A + 5 * PAGE_4K + 3, IOVA_A, A_SIZE, 0));
	STEP("dma query PFNMAP", query_expect(self->c, IOVA_BAR + 8, IOVA_BAR, self->bar_size,
					      RVFIO_DMA_QUERY_PFNMAP));
	return 0;
}

TEST_F_TIMEOUT(fnth, rvfio_dma_query, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "rvfio_dma_query", .setup = setup_query, .body = body_query,
	};

	REQUIRE_RVFIO();
	PREP(1);
	open_peer();
	run_sweep(_metadata, self, &s);
}

static void setup_revoke(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	setup_pfnmap(_metadata, self);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_BAR, (void *)self->bar, self->bar_size, RW));
	for (int i = 0; i < 2; i++) {
		self->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		ASSERT_LE(0, self->efd[i]);
	}
	ASSERT_EQ(0, revoke_eventfd(self->c, self->efd[0], NULL));
}

static int body_revoke(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	STEP("revoke eventfd replace", revoke_eventfd(self->c, self->efd[1], NULL));
	STEP("revoke eventfd clear", revoke_eventfd(self->c, -1, NULL));
	STEP("revoke eventfd set", revoke_eventfd(self->c, self->efd[1], NULL));
	return 0;
}

/*
 * Which eventfd the container signals: munmap edu #2's BAR (a revocation)
 * and see which of the two fires. want: 0 (the first), 1 (the second), -1.
 */
static void __revoke_check(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self, int want)
{
	uint64_t revs = 0;

	munmap((void *)self->bar, self->bar_size);
	self->bar = NULL;
	self->nprobes = 0;	/* the BAR probe has nothing to read any more */
	self->nqueries = 0;
	EXPECT_EQ(want == 0, eventfd_take(self->efd[0], want == 0 ? 2000 : 100) >= 1)
		TH_LOG("n=%u: the first eventfd %s", self->n, want == 0 ? "did not fire" : "fired");
	EXPECT_EQ(want == 1, eventfd_take(self->efd[1], want == 1 ? 2000 : 100) >= 1)
		TH_LOG("n=%u: the second eventfd %s", self->n, want == 1 ? "did not fire" : "fired");
	ASSERT_EQ(0, revoke_eventfd(self->c, -1, &revs));
	EXPECT_LE(1, revs) TH_LOG("n=%u: munmap of the BAR was no revocation", self->n);
}

static void failed_revoke(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self, int step)
{
	/* Failed replace: the first stays; failed clear: the second stays;
	 * failed set after clearing: none. */
	__revoke_check(_metadata, self, step == 0 ? 0 : step == 1 ? 1 : -1);
}

static void done_revoke(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	__revoke_check(_metadata, self, 1);
}

TEST_F_TIMEOUT(fnth, rvfio_revoke_eventfd, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "rvfio_revoke_eventfd", .setup = setup_revoke, .body = body_revoke, .done = done_revoke, .failed = failed_revoke,
	};

	REQUIRE_RVFIO();
	PREP(0);
	open_peer();
	run_sweep(_metadata, self, &s);
}

/* ---- rvfio's fault ring: create, mmap, a page request, a response ------------------ */

#define RING_ENTRIES	8
#define RING_KINDS	(RVFIO_FAULT_KIND_DMA | RVFIO_FAULT_KIND_PAGE_REQ)
#define RING_WAIT_S	10	/* for a page request to reach the ring */

static void setup_ring(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	setup_mdev(_metadata, self);
	self->efd[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ASSERT_LE(0, self->efd[0]);
	self->ask_ring = true;
}

/* RVFIO_IOMMU_FAULT_RING with page requests: the ring fd or -errno. */
static int ring_create(FIXTURE_DATA(fnth) *self)
{
	return fault_ring_create(self->c, RVFIO_FAULT_RING_PAGE_REQUESTS, RING_ENTRIES,
				 self->efd[0], RING_KINDS, 20000);
}

static int ring_create_keep(FIXTURE_DATA(fnth) *self)
{
	int fd = ring_create(self);

	if (fd >= 0)
		self->ring.fd = fd;
	return fd;
}

/*
 * Waits (at most RING_WAIT_S, or until *stop) for the record after `base`,
 * copies and consumes it. 0, or -ETIMEDOUT with no record.
 */
static int ring_take(FIXTURE_DATA(fnth) *self, uint32_t base, atomic_bool *stop,
		     struct rvfio_fault *rec)
{
	struct fault_ring *r = &self->ring;
	double end = now_s() + RING_WAIT_S;

	while (fault_ring_producer(r) == base) {
		if ((stop && atomic_load(stop)) || now_s() > end)
			return -ETIMEDOUT;
		usleep(500);
	}
	*rec = r->rec[base & (r->hdr->entries - 1)];
	fault_ring_set_consumer(r, base + 1);
	return 0;
}

/* The other side of a page request, in a thread of its own (fail-nth
 * counts the main thread's calls only). */
struct pr_peer {
	FIXTURE_DATA(fnth) *self;
	pthread_t th;
	uint32_t base;		/* the ring's producer before the access */
	uint64_t iova;
	atomic_bool access_done;
	/* Results. */
	int taken;		/* 0: a record was taken; -ETIMEDOUT */
	struct rvfio_fault rec;
	long answer;		/* fault_ring_respond()'s result */
	long access;		/* the access's result */
};

/* Answers the page request the main thread's access raises: INVALID. */
static void *pr_answer_main(void *arg)
{
	struct pr_peer *p = arg;

	p->taken = ring_take(p->self, p->base, &p->access_done, &p->rec);
	if (!p->taken)
		p->answer = fault_ring_respond(p->self->ring.fd, p->rec.cookie,
					 RVFIO_FAULT_RESPONSE_INVALID);
	return NULL;
}

/* Makes the access whose page request the main thread answers. */
static void *pr_access_main(void *arg)
{
	struct pr_peer *p = arg;
	uint8_t tmp[64];

	p->access = mdev_dev_dma_rw(p->self->m.device, p->iova, tmp, sizeof(tmp), 0);
	return NULL;
}

static bool pr_rec_ok(const struct rvfio_fault *f, uint64_t iova)
{
	return f->kind == RVFIO_FAULT_KIND_PAGE_REQ && f->iova == iova && f->cookie &&
	       f->access == RVFIO_FAULT_ACCESS_READ && f->reason == RVFIO_FAULT_REASON_NOT_MAPPED;
}

/*
 * The swept thread reads an IOVA that is not mapped: a page request, which
 * the peer thread answers INVALID, so the read fails with type1's EINVAL.
 * That is success here (0). A request the kernel could not allocate is
 * counted lost and the read fails at once, as without a ring: the step
 * books that as the injected ENOMEM, after checking that it is exactly
 * that (no record, the lost counter up by one).
 */
static int page_request(FIXTURE_DATA(fnth) *self)
{
	struct pr_peer p = { .self = self, .iova = IOVA_HOLE + 0x10 };
	uint64_t lost0 = self->ring.hdr->lost;
	uint8_t tmp[64];
	long ret;

	p.base = fault_ring_producer(&self->ring);
	if (pthread_create(&p.th, NULL, pr_answer_main, &p))
		return -EBADE;
	ret = mdev_dev_dma_rw(self->m.device, p.iova, tmp, sizeof(tmp), 0);
	atomic_store(&p.access_done, true);
	pthread_join(p.th, NULL);
	if (ret != -EINVAL)
		return ret ? (int)ret : -EBADE;
	if (!p.taken)
		return pr_rec_ok(&p.rec, p.iova) && p.answer == sizeof(struct rvfio_fault_response) ?
		       0 : -EBADE;
	if (self->ring.hdr->lost == lost0 + 1 && fault_ring_producer(&self->ring) == p.base)
		return -ENOMEM;
	return -EBADE;
}

/*
 * A peer thread's read raises a page request, which the swept thread then
 * answers (INVALID) in the next step. Raised and waited for with injection
 * paused, before that step's snapshot: the record is not the step's doing.
 */
#define raise_request(p) __raise_request(_metadata, self, (p))
static void __raise_request(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self,
			    struct pr_peer *p)
{
	long rem = __pause(_metadata, self);

	p->self = self;
	p->iova = IOVA_HOLE + PAGE_4K + 0x20;
	p->base = fault_ring_producer(&self->ring);
	ASSERT_EQ(0, pthread_create(&p->th, NULL, pr_access_main, p));
	ASSERT_EQ(0, ring_take(self, p->base, NULL, &p->rec)) TH_LOG("no page request");
	ASSERT_TRUE(pr_rec_ok(&p->rec, p->iova));
	__resume(_metadata, self, rem);
}

/*
 * The answer. A failed write must leave the request pending: answering it
 * again then works, and the peer's read fails with EINVAL either way.
 * Nothing is left to inject once the write has failed, and joining is no
 * call of the backend's.
 */
static int answer_request(FIXTURE_DATA(fnth) *self, struct pr_peer *p)
{
	long n = fault_ring_respond(self->ring.fd, p->rec.cookie, RVFIO_FAULT_RESPONSE_INVALID);
	long again = 0;

	if (n < 0)
		again = fault_ring_respond(self->ring.fd, p->rec.cookie, RVFIO_FAULT_RESPONSE_INVALID);
	pthread_join(p->th, NULL);
	if (p->access != -EINVAL)
		return -EBADE;
	if (n < 0)
		return again == sizeof(struct rvfio_fault_response) ? (int)n : -EBADE;
	return n == sizeof(struct rvfio_fault_response) ? 0 : -EBADE;
}

static int body_ring(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	struct pr_peer p = { 0 };

	STEP("fault ring create", ring_create_keep(self));
	STEP("fault ring mmap", fault_ring_map(&self->ring, self->ring.fd));
	STEP("page request (dma_rw)", page_request(self));
	raise_request(&p);
	STEP("page response (write)", answer_request(self, &p));
	return 0;
}

/* A failed create left no ring behind: one can be created now. */
static void failed_ring(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self, int step)
{
	int fd;

	if (step)
		return;
	fd = ring_create(self);
	ASSERT_LE(0, fd) TH_LOG("n=%u: after a failed create: %s", self->n, strerror(-fd));
	close(fd);
}

TEST_F_TIMEOUT(fnth, rvfio_fault_ring, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "rvfio_fault_ring", .setup = setup_ring, .body = body_ring,
		.failed = failed_ring,
	};

	REQUIRE_RVFIO();
	MDEV_UP();
	new_buf(0, A_SIZE);
	run_sweep(_metadata, self, &s);
}

/* ---- rvfio's DMA owner change: RAM and PFNMAP mappings to new vaddrs -------------- */

/*
 * Which memfd view A's mapping uses: view 0 made PROT_NONE for a moment,
 * the mdev's dma_rw (which reads through the owner's vaddr) fails with
 * EFAULT when it is view 0 and works when it is view 1.
 */
static int owner_view(FIXTURE_DATA(fnth) *self)
{
	uint8_t tmp[16];
	long r;

	if (mprotect(self->view[0], A_SIZE, PROT_NONE))
		return -errno;
	r = mdev_dev_dma_rw(self->m.device, IOVA_A + 0x40, tmp, sizeof(tmp), 0);
	if (mprotect(self->view[0], A_SIZE, PROT_READ | PROT_WRITE))
		return -errno;
	return r == -EFAULT ? 0 : r == 0 ? 1 : (int)r;
}

static void setup_owner(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	uint64_t size = 0;
	void *p;

	open_e1();
	map_bar();
	p = vfio_bar0_mmap(self->peer.device, PROT_READ | PROT_WRITE, &size);
	ASSERT_NE(MAP_FAILED, p);
	self->bar2 = p;
	ASSERT_EQ(0, mdev_dev_attach(&self->m, self->c));
	ASSERT_EQ(0, mdev_dev_open(&self->m));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, self->view[0], A_SIZE, RW));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_BAR, (void *)self->bar, self->bar_size, RW));
	add_probe(self, IOVA_A + 3 * PAGE_4K, self->view[0] + 3 * PAGE_4K, false);
	add_probe(self, IOVA_BAR + EDU_LIVENESS, self->bar + EDU_LIVENESS, true);
	self->queries[self->nqueries++] = IOVA_A;
	self->queries[self->nqueries++] = IOVA_BAR;
	self->ask_owner = true;
}

/* Both mappings, A and the BAR, to the vaddrs given. */
static int change_owner(int c, void *a_vaddr, volatile uint8_t *bar_vaddr)
{
	struct rvfio_dma_owner_entry e[2] = {
		{ .iova = IOVA_A, .vaddr = (uintptr_t)a_vaddr },
		{ .iova = IOVA_BAR, .vaddr = (uintptr_t)bar_vaddr },
	};

	return change_dma_owner(c, e, 2, NULL);
}

static int body_owner(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	STEP("change owner to the new vaddrs", change_owner(self->c, self->view[1], self->bar2));
	STEP("change owner back", change_owner(self->c, self->view[0], self->bar));
	return 0;
}

/*
 * Which BAR mmap the PFNMAP mapping's revocation watch follows: munmap of
 * the other one must not revoke it, munmap of that one must. want: 0 (the
 * first mmap, self->bar) or 1 (self->bar2).
 */
static void __owner_watch_check(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self,
				int want)
{
	volatile uint8_t **other = want ? &self->bar : &self->bar2;
	volatile uint8_t **watched = want ? &self->bar2 : &self->bar;
	struct rvfio_dma_query q;

	self->nprobes = 1;	/* the BAR probe has nothing to read any more */
	munmap((void *)*other, self->bar_size);
	*other = NULL;
	ASSERT_EQ(0, dma_query(self->c, IOVA_BAR, &q));
	EXPECT_FALSE(q.flags & RVFIO_DMA_QUERY_REVOKED)
		TH_LOG("n=%u: munmap of BAR mmap %d revoked the mapping", self->n, !want);
	munmap((void *)*watched, self->bar_size);
	*watched = NULL;
	ASSERT_EQ(0, dma_query(self->c, IOVA_BAR, &q));
	EXPECT_TRUE(q.flags & RVFIO_DMA_QUERY_REVOKED)
		TH_LOG("n=%u: munmap of BAR mmap %d did not revoke the mapping", self->n, want);
}

static void failed_owner(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self, int step)
{
	/* The first change failed: still the first mmap; the second: the new one. */
	__owner_watch_check(_metadata, self, step == 1);
}

static void done_owner(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	__owner_watch_check(_metadata, self, 0);
}

TEST_F_TIMEOUT(fnth, rvfio_owner_change, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "rvfio_owner_change", .setup = setup_owner, .body = body_owner,
		.done = done_owner, .failed = failed_owner,
	};

	REQUIRE_RVFIO();
	MDEV_UP();
	self->memfd = memfd_create("fail_nth_owner", MFD_CLOEXEC);
	ASSERT_LE(0, self->memfd);
	ASSERT_EQ(0, ftruncate(self->memfd, A_SIZE));
	for (int i = 0; i < 2; i++) {
		void *p = mmap(NULL, A_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, self->memfd, 0);

		ASSERT_NE(MAP_FAILED, p);
		self->view[i] = p;
	}
	memset(self->view[0], 0x33, A_SIZE);
	PREP(0);
	open_peer();
	run_sweep(_metadata, self, &s);
}

/* ---- rvfio's nesting container: bind, invalidate, unbind --------------------------- */

static const uint64_t nest_gpa[NEST_PAGES] = {
	NEST_PML4, NEST_PDPT, NEST_PD, NEST_PT, NEST_D, NEST_D2, NEST_S1_A, NEST_S1_B,
};
#define gpage(i) (self->guest + (i) * PAGE_4K)
#define gtable(i) ((uint64_t *)gpage(i))

/*
 * A nesting container with edu #1's group; the guest's pages mapped in
 * stage 2; a four-level table mapping stage-1 S1_A to D. The probes tell
 * the states apart: unbound, S1_A and S1_B reach their decoys; bound, S1_A
 * reaches D and S1_B nothing; after the invalidation S1_B reaches D2.
 */
/* The table (S1_A -> D) and the guest's pages mapped in stage 2. */
#define nest_guest() __nest_guest(_metadata, self)
static void __nest_guest(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	memset(self->guest, 0, 4 * PAGE_4K);
	gtable(0)[0] = NEST_PDPT | PTE_OK;
	gtable(1)[0] = NEST_PD | PTE_OK;
	gtable(2)[0] = NEST_PT | PTE_OK;
	gtable(3)[NEST_S1_A >> 12] = NEST_D | PTE_OK;
	for (int i = 0; i < NEST_PAGES; i++)
		ASSERT_EQ(0, vfio_map(self->c, nest_gpa[i], gpage(i), PAGE_4K, RW));
}

static void setup_nest(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	self->iommu_type = VFIO_TYPE1_NESTING_IOMMU;
	open_e1();
	nest_guest();
	add_probe(self, NEST_S1_A, gpage(4), false);	/* bound */
	add_probe(self, NEST_S1_A, gpage(6), false);	/* unbound */
	add_probe(self, NEST_S1_B, gpage(5), false);	/* bound, invalidated */
	add_probe(self, NEST_S1_B, gpage(7), false);	/* unbound */
	self->nest_gid = self->e1.group_id;
	self->ask_nest = true;
}

static int body_nest(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	int gid = self->e1.group_id;
	uint32_t done = 0;

	STEP("nesting bind", nesting_bind(self->c, gid, NEST_PML4, 48, 0, NULL));
	/* The guest adds S1_B -> D2 and invalidates it (caching mode). */
	gtable(3)[NEST_S1_B >> 12] = NEST_D2 | PTE_OK;
	STEP_WB("nesting invalidate", nesting_invalidate(self->c, gid, NEST_S1_B, 1, &done));
	ASSERT_EQ(1, done);
	STEP("nesting unbind", nesting_unbind(self->c, gid));
	return 0;
}

TEST_F_TIMEOUT(fnth, rvfio_nesting_bind, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "rvfio_nesting_bind", .setup = setup_nest, .body = body_nest,
	};
	void *p;

	REQUIRE_RVFIO();
	PREP(0);
	p = alloc_pages_4k(NEST_PAGES * PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, p);
	self->guest = p;
	run_sweep(_metadata, self, &s);
}


/*
 * The same for an emulated-IOMMU group (the mdev): no shadow, the mdev's
 * dma_rw and pin translate through the bound table, and an invalidation
 * makes it drop what it pinned through the range (the dma_unmap
 * notification by stage-1 IOVA). The snapshot sees the bound flag, the
 * mdev's pinned pages and the guest's memory.
 */
#define NEST_FILL_D	0x5d
#define NEST_FILL_D2	0x2d

static void setup_nest_mdev(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	self->c = vfio_container_open();
	ASSERT_LE(0, self->c);
	ASSERT_EQ(0, mdev_dev_attach(&self->m, self->c));
	ASSERT_EQ(0, vfio_set_iommu(self->c, VFIO_TYPE1_NESTING_IOMMU));
	ASSERT_EQ(0, mdev_dev_open(&self->m));
	nest_guest();
	memset(gpage(4), NEST_FILL_D, PAGE_4K);
	memset(gpage(5), NEST_FILL_D2, PAGE_4K);
	self->nest_gid = self->m.group_id;
	self->ask_nest = self->ask_mdev = true;
}

/* The mdev reads stage-1 S1_A: D's bytes, or -EBADE. */
static int s1_read(FIXTURE_DATA(fnth) *self, uint8_t fill)
{
	uint8_t tmp[64];
	long r = mdev_dev_dma_rw(self->m.device, NEST_S1_A + 0x80, tmp, sizeof(tmp), 0);

	if (r)
		return (int)r;
	return check_fill(tmp, sizeof(tmp), fill) == -1 ? 0 : -EBADE;
}

/* After the invalidation the mdev holds no pin any more: 0, or -EBADE. */
static int s1_invalidate_dropped(FIXTURE_DATA(fnth) *self, uint32_t *done)
{
	struct rvfio_mdev_stats st;
	int ret = nesting_invalidate(self->c, self->nest_gid, NEST_S1_A, 1, done);

	if (ret)
		return ret;
	if (mdev_dev_stats(self->m.device, &st) || st.pinned_pages)
		return -EBADE;
	return 0;
}

static int body_nest_mdev(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self)
{
	int gid = self->nest_gid;
	uint32_t done = 0;

	STEP("nesting bind (mdev)", nesting_bind(self->c, gid, NEST_PML4, 48, 0, NULL));
	STEP("mdev dma_rw through stage 1", s1_read(self, NEST_FILL_D));
	STEP("mdev pin through stage 1", mdev_dev_pin(self->m.device, NEST_S1_A, 1,
						      RVFIO_MDEV_PROT_READ | RVFIO_MDEV_PROT_WRITE));
	/* The guest retargets S1_A to D2 and invalidates it. */
	gtable(3)[NEST_S1_A >> 12] = NEST_D2 | PTE_OK;
	STEP_WB("nesting invalidate (mdev)", s1_invalidate_dropped(self, &done));
	ASSERT_EQ(1, done);
	STEP("mdev dma_rw after the invalidation", s1_read(self, NEST_FILL_D2));
	STEP("nesting unbind (mdev)", nesting_unbind(self->c, gid));
	return 0;
}

/* A pin a failed run left behind goes before the container does. */
static void failed_nest_mdev(struct __test_metadata *_metadata, FIXTURE_DATA(fnth) *self,
			     int step)
{
	struct rvfio_mdev_stats st;

	(void)step;
	ASSERT_EQ(0, mdev_dev_stats(self->m.device, &st));
	if (st.pinned_pages)
		ASSERT_EQ(1, mdev_dev_unpin(self->m.device, NEST_S1_A, 1));
}

TEST_F_TIMEOUT(fnth, rvfio_nesting_bind_mdev, SWEEP_TIMEOUT)
{
	const struct seq s = {
		.name = "rvfio_nesting_bind_mdev", .setup = setup_nest_mdev,
		.body = body_nest_mdev, .failed = failed_nest_mdev,
	};
	void *p;

	REQUIRE_RVFIO();
	MDEV_UP();
	p = alloc_pages_4k(NEST_PAGES * PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, p);
	self->guest = p;
	run_sweep(_metadata, self, &s);
}


TEST_HARNESS_MAIN
