// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_test - a seeded fuzzer of every container ioctl, several threads at
 * once, while edu devices DMA through the containers.
 *
 * Variants: one container shared by FUZZ_THREADS threads, and two
 * containers (edu #1 in the first, edu #2 in the second) whose threads
 * mostly use their own container and sometimes the other. Every thread
 * draws its calls from its own generator, seeded from the run's seed and
 * its index, mixing valid arguments with boundary and invalid ones:
 *  - argsz around each structure's size (0, 4, size - 1, size, size + 1,
 *    large), the structure also placed right before a PROT_NONE page so
 *    that a read past argsz faults;
 *  - IOVAs and sizes aligned or not, zero, huge, wrapping past 2^64, in the
 *    MSI window, overlapping the thread's own and other threads' mappings;
 *  - every flag of MAP_DMA, UNMAP_DMA and DIRTY_PAGES, alone, combined and
 *    unknown ones;
 *  - vaddrs in anonymous 4 KiB and THP memory, read-only memory, PROT_NONE
 *    memory, an unmapped hole, a device BAR (PFNMAP), NULL and kernel
 *    addresses; bad pointers for the argument itself;
 *  - CHECK_EXTENSION, GET_INFO, MAP_DMA, UNMAP_DMA (ALL, VADDR,
 *    GET_DIRTY_BITMAP), DIRTY_PAGES, SET_IOMMU, GET_API_VERSION, unknown
 *    ioctls, and rvfio's RVFIO_IOMMU_DMA_QUERY and RVFIO_IOMMU_REVOKE_EVENTFD
 *    (type1 answers ENOTTY);
 *  - munmap and mmap again of a thread's scratch memory and BAR mapping
 *    while they are mapped (revocation on rvfio).
 * One thread gives up CAP_IPC_LOCK, so RLIMIT_MEMLOCK (set to 16 MiB)
 * applies to its maps. A DMA thread per container copies through a mapping
 * of its own, mapping it again when a fuzzer unmapped it.
 *
 * Checked: every errno is one a container ioctl may return; a structure
 * ending right before a PROT_NONE page with argsz equal to its size never
 * gives EFAULT (nothing past argsz is read); after the run a fresh mapping
 * still carries an edu copy, and once the containers are closed VmLck and
 * the FOLL_PIN count are back at their baseline. The kernel log is judged
 * by scripts/vm.sh (no splat).
 *
 * Environment: FUZZ_SECONDS (whole run per backend, split between the
 * variants; default 20), FUZZ_SEED (re-runs that seed; default: a fresh
 * one, printed), FUZZ_VARIANT (one_container or two_containers: only that
 * one runs), FUZZ_THREADS (fuzzing threads per variant, default 4).
 * The seed and the calls per second are printed as TAP diagnostics.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <linux/rvfio.h>

#include "kselftest_harness.h"
#include "vfio_edu.h"
#include "fault_inject.h"

#define MAX_THREADS	8
#define RAM_SIZE	(8 * SZ_1M)
#define THP_SIZE	(4 * SZ_2M)
#define RO_SIZE		SZ_1M
#define NONE_SIZE	SZ_1M
#define SCRATCH_SIZE	(256 * 1024)
#define WIN_SIZE	(64 * SZ_1M)	/* each thread's IOVA window */
#define WIN_BASE	0x10000000ull
#define DMA_IOVA	0x8000000ull	/* the DMA threads' own mapping */
#define MEMLOCK_LIMIT	(16 * SZ_1M)
#define KERNEL_PTR	0xffffffff81000000ull
#define FUZZ_TIMEOUT	(24 * 3600)	/* the guest's TEST_TIMEOUT bounds it */

#define RW		(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)

/* ---- the generator: xorshift64*, one per thread ---- */

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t below(uint64_t *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

static bool chance(uint64_t *s, unsigned int pct)
{
	return below(s, 100) < pct;
}

/* ---- shared state ---- */

struct pools {
	uint8_t *ram, *thp, *ro, *none, *hole;
	volatile uint8_t *bar;		/* a device BAR (PFNMAP) */
	size_t bar_size;
};

enum { OP_MAP, OP_UNMAP, OP_INFO, OP_DIRTY, OP_EXT, OP_QUERY, OP_EVENTFD, OP_MISC,
       OP_REMAP, OP_NR };
static const char *const op_names[OP_NR] = {
	"MAP_DMA", "UNMAP_DMA", "GET_INFO", "DIRTY_PAGES", "CHECK_EXTENSION",
	"DMA_QUERY", "REVOKE_EVENTFD", "other ioctls", "munmap/mmap",
};

#define NERRNO 134
struct stats {
	unsigned long calls[OP_NR];
	unsigned long ok[OP_NR];
	unsigned long err[NERRNO];
};

struct fuzz;

struct worker {
	struct fuzz *f;
	int idx;
	uint64_t seed;
	pthread_t th;
	struct stats st;
	uint8_t *scratch;		/* SCRATCH_SIZE, munmapped and mmapped again */
	volatile uint8_t *bar;		/* its own mmap of the BAR, likewise */
	int efd;
	uint8_t *guard;			/* a RW page followed by a PROT_NONE page */
	bool no_ipc_lock;
	char bad[256];			/* the first check that failed */
};

struct fuzz {
	int c[2];
	int nc;
	struct edu e[2];
	struct pools p;
	atomic_bool stop;
	int nthreads;
	struct worker w[MAX_THREADS];
	pthread_t dma_th[2];
	unsigned long dma_ok[2], dma_tries[2];
	bool rvfio;
};

/* Errnos a container ioctl may return. */
static bool errno_ok(int e)
{
	switch (e) {
	case EINVAL: case EFAULT: case ENOMEM: case EEXIST: case ENOENT: case EBUSY:
	case ENOSPC: case EPERM: case ENOTTY: case E2BIG: case EBADF: case EOVERFLOW:
	case ERANGE: case EACCES: case ENODEV: case EAGAIN:
		return true;
	}
	return false;
}

/* ---- argument pieces ---- */

static uint64_t pick_size(uint64_t *s)
{
	switch (below(s, 12)) {
	case 0: return 0;
	case 1: return PAGE_4K - 1 - below(s, 16);
	case 2: return ~0ull - below(s, 4) * PAGE_4K;
	case 3: return 1ull << (12 + below(s, 52));
	case 4: return SZ_2M;
	case 5: return (1 + below(s, 64)) * PAGE_4K + 1;
	default: return (1 + below(s, 64)) * PAGE_4K;
	}
}

static uint64_t pick_iova(uint64_t *s, int idx)
{
	uint64_t own = WIN_BASE + idx * WIN_SIZE;

	switch (below(s, 16)) {
	case 0: return below(s, 1ull << 48) & ~(PAGE_4K - 1);
	case 1: return ~0ull - below(s, 8) * PAGE_4K;
	case 2: return X86_MSI_BASE + below(s, 16) * PAGE_4K;
	case 3: return own + below(s, WIN_SIZE);		/* unaligned */
	case 4: return WIN_BASE + below(s, MAX_THREADS) * WIN_SIZE +	/* someone's */
		       below(s, 1024) * PAGE_4K;
	case 5: return 0;
	default: return own + below(s, 1024) * PAGE_4K;
	}
}

static uint64_t pick_vaddr(struct worker *w, uint64_t *s, uint64_t size)
{
	struct pools *p = &w->f->p;
	uint64_t span = size < RAM_SIZE ? RAM_SIZE - size : 0;

	switch (below(s, 20)) {
	case 0: return 0;
	case 1: return KERNEL_PTR;
	case 2: return (uintptr_t)p->none + below(s, 4) * PAGE_4K;
	case 3: return (uintptr_t)p->ro + below(s, RO_SIZE / PAGE_4K) * PAGE_4K;
	case 4: return (uintptr_t)p->hole;
	case 5: return (uintptr_t)p->bar;
	case 6: return (uintptr_t)w->bar;
	case 7: return (uintptr_t)w->scratch + below(s, SCRATCH_SIZE / PAGE_4K) * PAGE_4K;
	case 8: return (uintptr_t)p->thp + below(s, THP_SIZE / SZ_2M) * SZ_2M;
	case 9: return (uintptr_t)p->ram + below(s, RAM_SIZE);	/* unaligned */
	case 10: return ~0ull - PAGE_4K + 1;
	default: return (uintptr_t)p->ram + below(s, span / PAGE_4K + 1) * PAGE_4K;
	}
}

static uint32_t pick_argsz(uint64_t *s, uint32_t size)
{
	switch (below(s, 10)) {
	case 0: return 0;
	case 1: return 4;
	case 2: return size - 1;
	case 3: return size + 1;
	case 4: return size + 8 * below(s, 8);
	case 5: return 4096;
	case 6: return ~0u - below(s, 4);
	default: return size;
	}
}

/*
 * Where the argument structure goes: a normal buffer (big enough for any
 * argsz up to 4 KiB), right before the guard page (so that reading past
 * the structure faults), or a bad pointer.
 */
enum place { IN_BUF, AT_GUARD, BAD_PTR };

static void *place_arg(struct worker *w, uint64_t *s, void *buf, const void *arg, size_t len,
		       enum place *where)
{
	unsigned int r = below(s, 20);

	if (r == 0 || !w->guard) {
		*where = BAD_PTR;
		return below(s, 2) ? NULL : (void *)(uintptr_t)KERNEL_PTR;
	}
	if (r == 1) {
		*where = BAD_PTR;
		return w->f->p.none;
	}
	if (r == 2) {
		/* Straddling into the PROT_NONE page: EFAULT, or EINVAL first. */
		*where = BAD_PTR;
		memcpy(w->guard + PAGE_4K - 4, arg, 4);
		return w->guard + PAGE_4K - 4;
	}
	if (r < 6) {
		uint8_t *p = w->guard + PAGE_4K - len;

		*where = AT_GUARD;
		memcpy(p, arg, len);
		return p;
	}
	*where = IN_BUF;
	memcpy(buf, arg, len);
	return buf;
}

/* ---- one call ---- */

static void note(struct worker *w, int op, long ret, const char *what, uint32_t argsz,
		 size_t size, enum place where, bool efault_allowed)
{
	int e = ret < 0 ? (int)-ret : 0;

	w->st.calls[op]++;
	if (!e) {
		w->st.ok[op]++;
		return;
	}
	if (e < NERRNO)
		w->st.err[e]++;
	if (w->bad[0])
		return;
	if (!errno_ok(e))
		snprintf(w->bad, sizeof(w->bad), "thread %d: %s (%s): errno %d (%s)", w->idx,
			 op_names[op], what, e, strerror(e));
	else if (e == EFAULT && where == AT_GUARD && argsz == size && !efault_allowed)
		snprintf(w->bad, sizeof(w->bad),
			 "thread %d: %s (%s): EFAULT for a %zu-byte structure with argsz %u "
			 "before a PROT_NONE page: read past argsz?", w->idx, op_names[op], what,
			 size, argsz);
}

static long xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

static void do_map(struct worker *w, uint64_t *s, int c)
{
	static const uint32_t flags[] = {
		RW, RW, RW, RW, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, 0,
		VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_MAP_FLAG_VADDR | RW, 1u << 3, 1u << 31,
	};
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m) };
	uint8_t buf[4096 + 64];
	enum place where;
	void *arg;

	m.flags = flags[below(s, sizeof(flags) / sizeof(flags[0]))];
	m.size = pick_size(s);
	m.iova = pick_iova(s, w->idx);
	if (m.size == SZ_2M && chance(s, 70))
		m.iova &= ~(SZ_2M - 1);
	m.vaddr = pick_vaddr(w, s, m.size);
	if (m.size == SZ_2M && chance(s, 50))
		m.vaddr = (uintptr_t)w->f->p.thp + below(s, THP_SIZE / SZ_2M) * SZ_2M;
	m.argsz = pick_argsz(s, sizeof(m));
	arg = place_arg(w, s, buf, &m, sizeof(m), &where);
	/* The vaddr may be PROT_NONE or unmapped: EFAULT is fine here. */
	note(w, OP_MAP, xioctl(c, VFIO_IOMMU_MAP_DMA, arg), "map", m.argsz, sizeof(m), where, true);
}

static void do_unmap(struct worker *w, uint64_t *s, int c)
{
	static const uint32_t flags[] = {
		0, 0, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_VADDR,
		VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
		VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR,
		VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 1u << 5, 1u << 30,
	};
	struct {
		struct vfio_iommu_type1_dma_unmap u;
		struct vfio_bitmap bm;
	} req;
	__u64 bits[64];
	uint8_t buf[4096 + 64];
	enum place where;
	size_t len = sizeof(req.u);
	void *arg;

	memset(&req, 0, sizeof(req));
	req.u.flags = flags[below(s, sizeof(flags) / sizeof(flags[0]))];
	/* UNMAP_ALL empties the container (and the DMA threads' mapping): rarely. */
	if ((req.u.flags & VFIO_DMA_UNMAP_FLAG_ALL) && below(s, 200) != 0)
		req.u.flags &= ~VFIO_DMA_UNMAP_FLAG_ALL;
	req.u.iova = pick_iova(s, w->idx);
	req.u.size = pick_size(s);
	if (req.u.flags & VFIO_DMA_UNMAP_FLAG_ALL && chance(s, 70))
		req.u.iova = req.u.size = 0;
	if (req.u.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
		len = sizeof(req);
		req.bm.pgsize = chance(s, 80) ? PAGE_4K : 1ull << below(s, 40);
		req.bm.size = chance(s, 80) ? sizeof(bits) : below(s, 1ull << 32);
		req.bm.data = chance(s, 85) ? bits : (__u64 *)(uintptr_t)
			pick_vaddr(w, s, req.bm.size);
	}
	req.u.argsz = pick_argsz(s, len);
	arg = place_arg(w, s, buf, &req, len, &where);
	/* A bitmap pointer may be bad; size is written back (guard page). */
	note(w, OP_UNMAP, xioctl(c, VFIO_IOMMU_UNMAP_DMA, arg), "unmap", req.u.argsz, len, where,
	     len != sizeof(req.u));
}

static void do_info(struct worker *w, uint64_t *s, int c)
{
	uint8_t buf[4096 + 64], *arg;
	struct vfio_iommu_type1_info info = { 0 };
	uint32_t sizes[] = { sizeof(info), 64, 96, 128, 256 };
	enum place where;

	info.argsz = pick_argsz(s, sizes[below(s, 5)]);
	arg = place_arg(w, s, buf, &info, sizeof(info), &where);
	/* At the guard the buffer is only sizeof(info) long: EFAULT is right
	 * when argsz asks for more. */
	note(w, OP_INFO, xioctl(c, VFIO_IOMMU_GET_INFO, arg), "get_info", info.argsz,
	     sizeof(info), where, false);
}

static void do_dirty(struct worker *w, uint64_t *s, int c)
{
	static const uint32_t flags[] = {
		VFIO_IOMMU_DIRTY_PAGES_FLAG_START, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
		VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
		VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, 0,
		VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
		VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
		1u << 3, 1u << 31,
	};
	struct {
		struct vfio_iommu_type1_dirty_bitmap db;
		struct vfio_iommu_type1_dirty_bitmap_get range;
	} req;
	__u64 bits[64];
	uint8_t buf[4096 + 64];
	enum place where;
	size_t len = sizeof(req.db);
	void *arg;

	memset(&req, 0, sizeof(req));
	req.db.flags = flags[below(s, sizeof(flags) / sizeof(flags[0]))];
	if (req.db.flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) {
		len = sizeof(req);
		req.range.iova = pick_iova(s, w->idx);
		req.range.size = pick_size(s);
		req.range.bitmap.pgsize = chance(s, 80) ? PAGE_4K : 1ull << below(s, 40);
		req.range.bitmap.size = chance(s, 80) ? sizeof(bits) : below(s, 1ull << 32);
		req.range.bitmap.data = chance(s, 85) ? bits : (__u64 *)(uintptr_t)
			pick_vaddr(w, s, 4096);
	}
	req.db.argsz = pick_argsz(s, len);
	arg = place_arg(w, s, buf, &req, len, &where);
	note(w, OP_DIRTY, xioctl(c, VFIO_IOMMU_DIRTY_PAGES, arg), "dirty", req.db.argsz, len,
	     where, len != sizeof(req.db));
}

static void do_ext(struct worker *w, uint64_t *s, int c)
{
	long ext = below(s, 4) ? (long)below(s, 12) :
		   below(s, 2) ? RVFIO_PFNMAP_REVOKE : (long)rnd(s);
	long r = ioctl(c, VFIO_CHECK_EXTENSION, ext);

	if (r < 0) {
		note(w, OP_EXT, -errno, "check_extension", 0, 0, IN_BUF, true);
		return;
	}
	w->st.calls[OP_EXT]++;
	if (r > 1 && !w->bad[0])
		snprintf(w->bad, sizeof(w->bad), "thread %d: CHECK_EXTENSION(%#lx) = %ld", w->idx,
			 ext, r);
	else
		w->st.ok[OP_EXT]++;
}

static void do_query(struct worker *w, uint64_t *s, int c)
{
	struct rvfio_dma_query q = { .argsz = sizeof(q) };
	uint8_t buf[4096 + 64];
	enum place where;
	void *arg;

	q.argsz = pick_argsz(s, sizeof(q));
	q.flags = chance(s, 85) ? 0 : 1u << below(s, 32);
	q.iova = chance(s, 50) ? DMA_IOVA + below(s, 8) * PAGE_4K : pick_iova(s, w->idx);
	arg = place_arg(w, s, buf, &q, sizeof(q), &where);
	note(w, OP_QUERY, xioctl(c, RVFIO_IOMMU_DMA_QUERY, arg), "dma_query", q.argsz, sizeof(q),
	     where, false);
}

static void do_eventfd(struct worker *w, uint64_t *s, int c)
{
	struct rvfio_revoke_eventfd r = { .argsz = sizeof(r) };
	uint8_t buf[4096 + 64];
	enum place where;
	void *arg;

	switch (below(s, 6)) {
	case 0: r.fd = -1; break;
	case 1: r.fd = -2 - (int)below(s, 100); break;
	case 2: r.fd = c; break;			/* open, not an eventfd */
	case 3: r.fd = 100000; break;
	default: r.fd = w->efd; break;
	}
	r.argsz = pick_argsz(s, sizeof(r));
	r.flags = chance(s, 85) ? 0 : 1u << below(s, 32);
	r.__reserved = chance(s, 90) ? 0 : (uint32_t)rnd(s);
	arg = place_arg(w, s, buf, &r, sizeof(r), &where);
	note(w, OP_EVENTFD, xioctl(c, RVFIO_IOMMU_REVOKE_EVENTFD, arg), "revoke_eventfd", r.argsz,
	     sizeof(r), where, false);
}

static void do_misc(struct worker *w, uint64_t *s, int c)
{
	long r;

	switch (below(s, 4)) {
	case 0:
		r = ioctl(c, VFIO_GET_API_VERSION);
		w->st.calls[OP_MISC]++;
		if (r == VFIO_API_VERSION)
			w->st.ok[OP_MISC]++;
		else if (!w->bad[0])
			snprintf(w->bad, sizeof(w->bad), "GET_API_VERSION = %ld", r);
		return;
	case 1:
		/* The container has its IOMMU already. */
		note(w, OP_MISC, ioctl(c, VFIO_SET_IOMMU, (long)below(s, 12)) ? -errno : 0,
		     "set_iommu", 0, 0, IN_BUF, true);
		return;
	case 2:
		/* Unknown VFIO ioctls (rvfio's own start at VFIO_BASE + 90). */
		r = below(s, 2) ? 20 + below(s, 70) : 92 + below(s, 30);
		note(w, OP_MISC, xioctl(c, _IO(VFIO_TYPE, VFIO_BASE + r),
					(void *)(uintptr_t)pick_vaddr(w, s, 64)),
		     "unknown VFIO ioctl", 0, 0, IN_BUF, true);
		return;
	default:
		note(w, OP_MISC, xioctl(c, (unsigned long)rnd(s) & 0xffffffffu,
					(void *)(uintptr_t)pick_vaddr(w, s, 64)),
		     "random ioctl number", 0, 0, IN_BUF, true);
	}
}

/* munmap and mmap again the thread's scratch memory or BAR mapping. */
static void do_remap(struct worker *w, uint64_t *s)
{
	struct edu *e = &w->f->e[0];
	void *p;

	w->st.calls[OP_REMAP]++;
	if (below(s, 2)) {
		munmap(w->scratch, SCRATCH_SIZE);
		p = alloc_pages_4k(SCRATCH_SIZE, (uint8_t)w->idx);
		w->scratch = p == MAP_FAILED ? NULL : p;
	} else if (w->bar) {
		struct vfio_region_info ri = {
			.argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX,
		};

		munmap((void *)w->bar, w->f->p.bar_size);
		w->bar = NULL;
		if (!ioctl(e->device, VFIO_DEVICE_GET_REGION_INFO, &ri)) {
			p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, e->device,
				 ri.offset);
			w->bar = p == MAP_FAILED ? NULL : p;
		}
	}
	if (w->scratch && w->bar)
		w->st.ok[OP_REMAP]++;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fuzz *f = w->f;
	uint64_t s = w->seed;
	struct vfio_region_info ri = {
		.argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX,
	};
	void *p;

	if (w->no_ipc_lock && drop_cap_ipc_lock()) {
		snprintf(w->bad, sizeof(w->bad), "thread %d: dropping CAP_IPC_LOCK failed", w->idx);
		return NULL;
	}
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p = mmap(NULL, 2 * PAGE_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED && !mprotect((uint8_t *)p + PAGE_4K, PAGE_4K, PROT_NONE))
		w->guard = p;
	p = alloc_pages_4k(SCRATCH_SIZE, (uint8_t)w->idx);
	w->scratch = p == MAP_FAILED ? NULL : p;
	if (!ioctl(f->e[0].device, VFIO_DEVICE_GET_REGION_INFO, &ri)) {
		p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, f->e[0].device,
			 ri.offset);
		w->bar = p == MAP_FAILED ? NULL : p;
	}
	while (!atomic_load(&f->stop)) {
		/* Own container mostly; with two, the other one sometimes. */
		int c = f->c[f->nc == 2 ? (w->idx + chance(&s, 20)) % 2 : 0];

		switch (below(&s, 100)) {
		case 0 ... 34: do_map(w, &s, c); break;
		case 35 ... 59: do_unmap(w, &s, c); break;
		case 60 ... 66: do_info(w, &s, c); break;
		case 67 ... 76: do_dirty(w, &s, c); break;
		case 77 ... 80: do_ext(w, &s, c); break;
		case 81 ... 86: do_query(w, &s, c); break;
		case 87 ... 91: do_eventfd(w, &s, c); break;
		case 92 ... 97: do_misc(w, &s, c); break;
		default: do_remap(w, &s); break;
		}
	}
	if (w->scratch)
		munmap(w->scratch, SCRATCH_SIZE);
	if (w->bar)
		munmap((void *)w->bar, f->p.bar_size);
	if (w->efd >= 0)
		close(w->efd);
	if (w->guard)
		munmap(w->guard, 2 * PAGE_4K);
	return NULL;
}

/* Copies through DMA_IOVA of container k; maps it again when it is gone. */
struct dma_arg {
	struct fuzz *f;
	int k;
};

static void *dma_main(void *arg)
{
	struct dma_arg *a = arg;
	struct fuzz *f = a->f;
	struct edu *e = &f->e[a->k];
	uint8_t *buf = alloc_pages_4k(2 * PAGE_4K, 0);
	uint32_t seed = 1;

	if (buf == MAP_FAILED)
		return NULL;
	while (!atomic_load(&f->stop)) {
		vfio_map(f->c[a->k], DMA_IOVA, buf, 2 * PAGE_4K, RW);
		fill_pattern(buf, 256, ++seed);
		memset(buf + PAGE_4K, 0, 256);
		f->dma_tries[a->k]++;
		if (edu_copy(e, DMA_IOVA, DMA_IOVA + PAGE_4K, 256))
			break;
		if (check_pattern(buf + PAGE_4K, 256, seed) == -1)
			f->dma_ok[a->k]++;
	}
	/* The fuzzers may have unmapped it meanwhile: pins stay consistent. */
	munmap(buf, 2 * PAGE_4K);
	return NULL;
}

/* ---- the fixture ---- */

FIXTURE(fuzz) {
	struct fuzz f;
	long taint0;
	long lck0;
	long long pins0;
};

FIXTURE_VARIANT(fuzz) {
	int containers;
	const char *name;
};

FIXTURE_VARIANT_ADD(fuzz, one_container) { .containers = 1, .name = "one_container" };
FIXTURE_VARIANT_ADD(fuzz, two_containers) { .containers = 2, .name = "two_containers" };

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static void *map_anon(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

FIXTURE_SETUP(fuzz)
{
	struct fuzz *f = &self->f;
	char err[256] = "";
	uint8_t *raw;

	const char *only = getenv("FUZZ_VARIANT");

	memset(f, 0, sizeof(*f));
	f->c[0] = f->c[1] = -1;
	for (int k = 0; k < 2; k++)
		f->e[k].container = f->e[k].group = f->e[k].device = -1;
	if (only && *only && strcmp(only, variant->name))
		SKIP(return, "FUZZ_VARIANT=%s runs only that variant", only);
	if (access("/dev/vfio/vfio", F_OK))
		SKIP(return, "/dev/vfio/vfio does not exist: vfio is not loaded");
	if (edu_count() < variant->containers)
		SKIP(return, "needs %d edu devices, have %d", variant->containers, edu_count());
	self->lck0 = vmlck_kb();
	self->pins0 = foll_pins_outstanding();
	self->taint0 = kernel_taint();
	f->nc = variant->containers;
	f->rvfio = access("/sys/module/rvfio", F_OK) == 0;
	for (int k = 0; k < f->nc; k++) {
		ASSERT_EQ(0, edu_open(&f->e[k], edu_bdf(k), -1, VFIO_TYPE1v2_IOMMU, err,
				      sizeof(err))) TH_LOG("edu #%d: %s", k + 1, err);
		f->c[k] = f->e[k].container;
	}
	f->p.ram = alloc_pages_4k(RAM_SIZE, 0x11);
	ASSERT_NE(MAP_FAILED, f->p.ram);
	raw = map_anon(THP_SIZE + SZ_2M, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, raw);
	f->p.thp = (uint8_t *)(((uintptr_t)raw + SZ_2M - 1) & ~(uintptr_t)(SZ_2M - 1));
	madvise(f->p.thp, THP_SIZE, MADV_HUGEPAGE);
	memset(f->p.thp, 0x22, THP_SIZE);
	f->p.ro = map_anon(RO_SIZE, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, f->p.ro);
	memset(f->p.ro, 0x33, RO_SIZE);
	ASSERT_EQ(0, mprotect(f->p.ro, RO_SIZE, PROT_READ));
	f->p.none = map_anon(NONE_SIZE, PROT_NONE);
	ASSERT_NE(NULL, f->p.none);
	f->p.hole = map_anon(SZ_1M, PROT_READ);
	ASSERT_NE(NULL, f->p.hole);
	munmap(f->p.hole, SZ_1M);
	f->p.bar = f->e[0].bar0;
	f->p.bar_size = f->e[0].bar0_size;
}

FIXTURE_TEARDOWN(fuzz)
{
	struct fuzz *f = &self->f;

	for (int k = 0; k < 2; k++)
		edu_close(&f->e[k]);
	if (f->p.ram)
		munmap(f->p.ram, RAM_SIZE);
	if (f->p.ro)
		munmap(f->p.ro, RO_SIZE);
	if (f->p.none)
		munmap(f->p.none, NONE_SIZE);
}

TEST_F_TIMEOUT(fuzz, run, FUZZ_TIMEOUT)
{
	struct fuzz *f = &self->f;
	uint64_t seed = env_u64("FUZZ_SEED", 0);
	double secs = (double)env_u64("FUZZ_SECONDS", 20) / 2;
	int nthreads = (int)env_u64("FUZZ_THREADS", 4);
	struct dma_arg da[2];
	struct stats tot = { 0 };
	struct rlimit rl = { MEMLOCK_LIMIT, MEMLOCK_LIMIT };
	struct timespec t0, t1;
	unsigned long calls = 0;
	char line[512];
	int len;

	if (!seed)
		seed = ((uint64_t)random_seed() << 32) | random_seed();
	/* The variants fuzz with different streams of the same seed. */
	seed ^= (uint64_t)variant->containers * 0x9e3779b97f4a7c15ull;
	ksft_print_msg("fuzz %s on %s: seed %#llx (FUZZ_SEED=%#llx FUZZ_VARIANT=%s re-run it "
		       "alone), %d threads, %.0f s\n", variant->name,
		       f->rvfio ? "rvfio" : "vfio_iommu_type1", (unsigned long long)seed,
		       (unsigned long long)(seed ^ (uint64_t)variant->containers *
					    0x9e3779b97f4a7c15ull),
		       variant->name, nthreads, secs);
	ASSERT_GE(MAX_THREADS, nthreads);
	ASSERT_LE(1, nthreads);
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &rl));
	f->nthreads = nthreads;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int k = 0; k < f->nc; k++) {
		da[k] = (struct dma_arg){ f, k };
		ASSERT_EQ(0, pthread_create(&f->dma_th[k], NULL, dma_main, &da[k]));
	}
	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &f->w[i];

		w->f = f;
		w->idx = i;
		w->seed = (seed + (uint64_t)(i + 1) * 0xbf58476d1ce4e5b9ull) | 1;
		w->no_ipc_lock = i == nthreads - 1 && nthreads > 1;
		w->efd = -1;
		ASSERT_EQ(0, pthread_create(&w->th, NULL, worker_main, w));
	}
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&f->stop, true);
	for (int i = 0; i < nthreads; i++)
		pthread_join(f->w[i].th, NULL);
	for (int k = 0; k < f->nc; k++)
		pthread_join(f->dma_th[k], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &f->w[i];

		for (int op = 0; op < OP_NR; op++) {
			tot.calls[op] += w->st.calls[op];
			tot.ok[op] += w->st.ok[op];
		}
		for (int e = 0; e < NERRNO; e++)
			tot.err[e] += w->st.err[e];
		EXPECT_EQ(0, w->bad[0]) TH_LOG("seed %#llx: %s", (unsigned long long)seed, w->bad);
	}
	for (int op = 0; op < OP_NR; op++)
		calls += tot.calls[op];
	ksft_print_msg("%lu calls in %.1f s: %.0f calls/s; DMA copies %lu of %lu arrived intact\n",
		       calls, secs, calls / secs, f->dma_ok[0] + f->dma_ok[1],
		       f->dma_tries[0] + f->dma_tries[1]);
	len = 0;
	for (int op = 0; op < OP_NR; op++)
		len += snprintf(line + len, sizeof(line) - len, "%s%s %lu/%lu", op ? ", " : "",
				op_names[op], tot.ok[op], tot.calls[op]);
	ksft_print_msg("succeeded/calls: %s\n", line);
	len = 0;
	for (int e = 1; e < NERRNO; e++)
		if (tot.err[e])
			len += snprintf(line + len, sizeof(line) - len, " %s %lu", strerrorname_np(e) ?
					strerrorname_np(e) : "?", tot.err[e]);
	ksft_print_msg("errnos:%s\n", line);
	EXPECT_LT(0, tot.ok[OP_MAP]) TH_LOG("no MAP_DMA ever succeeded: the fuzzer is blind");
	EXPECT_FALSE(kernel_warned_since(self->taint0))
		TH_LOG("the kernel WARNed during the run (taint W): see dmesg; FUZZ_SEED=%#llx",
		       (unsigned long long)(seed ^ (uint64_t)variant->containers *
					    0x9e3779b97f4a7c15ull));
	EXPECT_LT(0, tot.ok[OP_UNMAP]);

	/* The containers still work: a fresh mapping carries an edu copy. */
	for (int k = 0; k < f->nc; k++) {
		uint8_t *b = alloc_pages_4k(2 * PAGE_4K, 0);
		uint32_t ps = random_seed();
		uint64_t n;

		ASSERT_NE(MAP_FAILED, b);
		ASSERT_EQ(0, vfio_unmap_all(f->c[k], &n));
		ASSERT_EQ(0, vfio_map(f->c[k], DMA_IOVA, b, 2 * PAGE_4K, RW));
		fill_pattern(b, PAGE_4K, ps);
		ASSERT_EQ(0, edu_copy(&f->e[k], DMA_IOVA, DMA_IOVA + PAGE_4K, PAGE_4K));
		EXPECT_EQ(-1, check_pattern(b + PAGE_4K, PAGE_4K, ps))
			TH_LOG("container %d: edu copy after fuzzing did not arrive", k + 1);
		munmap(b, 2 * PAGE_4K);
	}
	for (int k = 0; k < 2; k++)
		edu_close(&f->e[k]);
	EXPECT_EQ(self->lck0, vmlck_kb()) TH_LOG("VmLck after closing the containers");
	for (int i = 0; i < 40 && foll_pins_outstanding() != self->pins0; i++)
		usleep(50000);
	EXPECT_EQ(self->pins0, foll_pins_outstanding())
		TH_LOG("FOLL_PIN pins after closing the containers");
}

/*
 * Found by this fuzzer (see Documentation/testing.rst): MAP_DMA of a huge
 * range whose first pages are scattered 4 KiB pages. The first pinning batch
 * succeeds; sizing a list of physically contiguous runs for the whole range
 * from it must not ask the allocator for more than it allows (a kvmalloc()
 * over INT_MAX is a kernel WARNING). The map fails where the memory ends;
 * nothing stays pinned or charged.
 */
TEST(huge_map_of_scattered_pages)
{
	const uint64_t iova = SZ_4G, size = 1ull << 39;	/* 512 GiB, 2^27 pages */
	long lck0 = vmlck_kb(), taint0 = kernel_taint();
	long long pins0 = foll_pins_outstanding();
	uint8_t *p;
	int c, g, ret;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device");
	/* Low in the address space, so that vaddr + size stays a user address. */
	p = mmap((void *)0x200000000ull, 4 * SZ_1M, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	madvise(p, 4 * SZ_1M, MADV_NOHUGEPAGE);
	/* Touched back to front: the pages come out of the allocator scattered. */
	for (long off = 4 * SZ_1M - PAGE_4K; off >= 0; off -= PAGE_4K)
		p[off] = 1;
	c = vfio_container_open();
	ASSERT_LE(0, c);
	g = vfio_group_attach(c, edu_bdf(0), NULL);
	ASSERT_LE(0, g);
	ASSERT_EQ(0, vfio_set_iommu(c, VFIO_TYPE1v2_IOMMU));
	ret = vfio_map(c, iova, p, size, RW);
	EXPECT_TRUE(ret == -EFAULT || ret == -ENOMEM)
		TH_LOG("MAP_DMA of 512 GiB with 4 MiB behind it: %d (%s)", ret, strerror(-ret));
	EXPECT_FALSE(kernel_warned_since(taint0))
		TH_LOG("MAP_DMA made the kernel WARN (taint W): see dmesg");
	if (taint0 & (1l << TAINT_WARN_BIT))
		ksft_print_msg("the kernel had WARNed before: a WARN here would not show\n");
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(pins0, foll_pins_outstanding());
	close(g);
	close(c);
	munmap(p, 4 * SZ_1M);
}

TEST_HARNESS_MAIN
