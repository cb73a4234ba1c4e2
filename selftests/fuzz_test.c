// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_test - a seeded fuzzer of every container ioctl, several threads at
 * once, while edu devices DMA through the containers.
 *
 * Variants: one container shared by FUZZ_THREADS threads; two containers
 * (edu #1 in the first, edu #2 in the second) whose threads mostly use
 * their own container and sometimes the other; and one nesting container
 * (VFIO_TYPE1_NESTING_IOMMU, rvfio only: upstream type1 cannot attach it
 * on Intel), where MAP/UNMAP are stage 2 and binds come and go. Every thread
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
 *    ioctls, and rvfio's own (type1 answers ENOTTY to all of them):
 *    RVFIO_IOMMU_DMA_QUERY, RVFIO_IOMMU_REVOKE_EVENTFD;
 *    RVFIO_IOMMU_FAULT_RING (every field, and on the ring fd mmap() of any
 *    length, offset and protection, stores of any consumer index, write()
 *    of any responses, read(), poll(), close() while faults arrive: the DMA
 *    threads fault whenever a fuzzer unmapped their IOVA);
 *    RVFIO_IOMMU_CHANGE_DMA_OWNER (count, entries naming mappings or not,
 *    new vaddrs in a second view of the same memfd, other memory, bad
 *    pointers); RVFIO_IOMMU_NESTING_BIND, _UNBIND and _INVALIDATE, with a
 *    guest page table in the container that the fuzzers rewrite with
 *    random entries (self-pointing, reserved bits, huge leaves, holes);
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
 * three variants; default 30), FUZZ_SEED (re-runs that seed; default: a fresh
 * one, printed), FUZZ_VARIANT (one_container or two_containers: only that
 * one runs; or nesting), FUZZ_THREADS (fuzzing threads per variant, default 4).
 * The seed and the calls per second are printed as TAP diagnostics.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#define SHM_SIZE	SZ_1M		/* a memfd, mapped twice */
#define SINK_SIZE	(64 * 1024)	/* bitmaps of any size go here */
#define GT_GPA		0x100000ull	/* the nesting variant's guest table */
#define GT_PAGES	4		/* PML4, PDPT, PD, PT */
#define PTE_OK		0x7ull		/* present, writable, user */
#define PTE_PS		0x80ull
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
	uint8_t *shm[2];		/* two views of one memfd */
	uint8_t *sink;			/* SINK_SIZE writable, then PROT_NONE */
	uint64_t *gt;			/* the guest table (nesting variant) */
	volatile uint8_t *bar;		/* a device BAR (PFNMAP) */
	size_t bar_size;
};

enum { OP_MAP, OP_UNMAP, OP_INFO, OP_DIRTY, OP_EXT, OP_QUERY, OP_EVENTFD, OP_RING,
       OP_RING_FD, OP_OWNER, OP_BIND, OP_UNBIND, OP_INVAL, OP_TABLE, OP_MISC, OP_REMAP,
       OP_NR };
static const char *const op_names[OP_NR] = {
	"MAP_DMA", "UNMAP_DMA", "GET_INFO", "DIRTY_PAGES", "CHECK_EXTENSION",
	"DMA_QUERY", "REVOKE_EVENTFD", "FAULT_RING", "ring fd", "CHANGE_DMA_OWNER",
	"NESTING_BIND", "NESTING_UNBIND", "NESTING_INVALIDATE", "guest table writes",
	"other ioctls", "munmap/mmap",
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
	int ring_fd;			/* a fault ring it created, or -1 */
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
	bool nesting;			/* the nesting variant */
};

/* Errnos a container ioctl may return. */
static bool errno_ok(int e)
{
	switch (e) {
	case EINVAL: case EFAULT: case ENOMEM: case EEXIST: case ENOENT: case EBUSY:
	case ENOSPC: case EPERM: case ENOTTY: case E2BIG: case EBADF: case EOVERFLOW:
	case ERANGE: case EACCES: case ENODEV: case EAGAIN:
	case EOPNOTSUPP: case EXDEV:	/* FAULT_RING, CHANGE_DMA_OWNER */
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
	case 11: return (uintptr_t)p->shm[0] + below(s, SHM_SIZE / PAGE_4K) * PAGE_4K;
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

/*
 * Where a dirty bitmap goes, and its stated size. The kernel writes as
 * many bytes as the range needs, up to that size: our stack buffer only
 * with its own size; larger sizes only into the sink, whose PROT_NONE tail
 * stops any write at the end of it (a bitmap size beyond a buffer would
 * otherwise let the kernel overwrite whatever follows it: the fuzzer's own
 * stack, as a long run once did); or pointers that fault at once.
 */
static void pick_bitmap(struct worker *w, uint64_t *s, __u64 *bits, size_t len, __u64 **data,
			__u64 *size)
{
	struct pools *p = &w->f->p;

	switch (below(s, 20)) {
	case 0 ... 15:
		*data = bits;
		*size = chance(s, 90) ? len : below(s, len + 1);
		return;
	case 16 ... 17:
		*data = (__u64 *)p->sink;
		*size = chance(s, 50) ? below(s, SINK_SIZE + 1) : below(s, 1ull << 32);
		return;
	default: {
		uintptr_t bad[] = {
			0, KERNEL_PTR, (uintptr_t)p->none, (uintptr_t)p->hole, (uintptr_t)p->ro,
		};

		*data = (__u64 *)bad[below(s, 5)];
		*size = below(s, 1ull << 32);
		return;
	}
	}
}

/* ---- one call ---- */

/* What the thread was doing, for the report of a fatal signal. */
static __thread int tls_op = -1, tls_idx = -1;

/*
 * A fatal signal in the fuzzer itself (the kernel wrote where it should
 * not have, or the fuzzer has a bug): say which thread in which kind of
 * call, then die of it as before.
 */
static void fatal_signal(int sig, siginfo_t *si, void *uc)
{
	char msg[192];
	int n;

	(void)uc;
	n = snprintf(msg, sizeof(msg), "# fuzz: thread %d: signal %d at address %p in a %s call\n",
		     tls_idx, sig, si->si_addr, tls_op >= 0 ? op_names[tls_op] : "(no)");
	if (n > 0 && write(2, msg, (size_t)n) < 0)
		n = 0;
	signal(sig, SIG_DFL);
	raise(sig);
}

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

	tls_op = OP_MAP;
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

	tls_op = OP_UNMAP;
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
		pick_bitmap(w, s, bits, sizeof(bits), &req.bm.data, &req.bm.size);
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

	tls_op = OP_INFO;
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

	tls_op = OP_DIRTY;
	memset(&req, 0, sizeof(req));
	req.db.flags = flags[below(s, sizeof(flags) / sizeof(flags[0]))];
	if (req.db.flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) {
		len = sizeof(req);
		req.range.iova = pick_iova(s, w->idx);
		req.range.size = pick_size(s);
		req.range.bitmap.pgsize = chance(s, 80) ? PAGE_4K : 1ull << below(s, 40);
		pick_bitmap(w, s, bits, sizeof(bits), &req.range.bitmap.data,
			    &req.range.bitmap.size);
	}
	req.db.argsz = pick_argsz(s, len);
	arg = place_arg(w, s, buf, &req, len, &where);
	note(w, OP_DIRTY, xioctl(c, VFIO_IOMMU_DIRTY_PAGES, arg), "dirty", req.db.argsz, len,
	     where, len != sizeof(req.db));
}

static void do_ext(struct worker *w, uint64_t *s, int c)
{
	static const long rvfio_ext[] = { RVFIO_PFNMAP_REVOKE, RVFIO_FAULT_RING, RVFIO_DMA_OWNER };
	long ext = below(s, 4) ? (long)below(s, 12) :
		   below(s, 2) ? rvfio_ext[below(s, 3)] : (long)rnd(s);
	long r = ioctl(c, VFIO_CHECK_EXTENSION, ext);

	tls_op = OP_EXT;
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

	tls_op = OP_QUERY;
	q.argsz = pick_argsz(s, sizeof(q));
	q.flags = chance(s, 85) ? 0 : 1u << below(s, 32);
	q.iova = chance(s, 50) ? DMA_IOVA + below(s, 8) * PAGE_4K : pick_iova(s, w->idx);
	arg = place_arg(w, s, buf, &q, sizeof(q), &where);
	note(w, OP_QUERY, xioctl(c, RVFIO_IOMMU_DMA_QUERY, arg), "dma_query", q.argsz, sizeof(q),
	     where, false);
}

/* An eventfd argument: -1 (none), other negatives, an fd that is no eventfd
 * (the container's), one that is not open, or the thread's eventfd. */
static int pick_eventfd(struct worker *w, uint64_t *s, int c)
{
	switch (below(s, 6)) {
	case 0: return -1;
	case 1: return -2 - (int)below(s, 100);
	case 2: return c;
	case 3: return 100000;
	default: return w->efd;
	}
}

static void do_eventfd(struct worker *w, uint64_t *s, int c)
{
	struct rvfio_revoke_eventfd r = { .argsz = sizeof(r) };
	uint8_t buf[4096 + 64];
	enum place where;
	void *arg;

	tls_op = OP_EVENTFD;
	r.fd = pick_eventfd(w, s, c);
	r.argsz = pick_argsz(s, sizeof(r));
	r.flags = chance(s, 85) ? 0 : 1u << below(s, 32);
	r.__reserved = chance(s, 90) ? 0 : (uint32_t)rnd(s);
	arg = place_arg(w, s, buf, &r, sizeof(r), &where);
	note(w, OP_EVENTFD, xioctl(c, RVFIO_IOMMU_REVOKE_EVENTFD, arg), "revoke_eventfd", r.argsz,
	     sizeof(r), where, false);
}

/* ---- the fault ring ---- */

static void do_ring(struct worker *w, uint64_t *s, int c)
{
	static const uint32_t entries[] = { 1, 2, 8, 64, 4096, 65536, 0, 3, 100, 131072 };
	struct rvfio_fault_ring_create r = { .argsz = sizeof(r) };
	uint8_t buf[4096 + 64];
	enum place where;
	void *arg;
	long ret;

	tls_op = OP_RING;
	r.flags = chance(s, 60) ? 0 : chance(s, 70) ? RVFIO_FAULT_RING_PAGE_REQUESTS :
		  1u << below(s, 32);
	r.entries = chance(s, 80) ? entries[below(s, 6)] : entries[below(s, 10)];
	r.kinds = chance(s, 70) ? RVFIO_FAULT_KIND_DMA :
		  chance(s, 50) ? RVFIO_FAULT_KIND_DMA | RVFIO_FAULT_KIND_PAGE_REQ :
		  (uint32_t)below(s, 16);
	if (r.flags == RVFIO_FAULT_RING_PAGE_REQUESTS && chance(s, 80))
		r.kinds = RVFIO_FAULT_KIND_DMA | RVFIO_FAULT_KIND_PAGE_REQ;
	r.timeout_ms = chance(s, 80) ? 0 : (uint32_t)below(s, 120000);
	r.eventfd = pick_eventfd(w, s, c);
	r.argsz = pick_argsz(s, sizeof(r));
	arg = place_arg(w, s, buf, &r, sizeof(r), &where);
	ret = ioctl(c, RVFIO_IOMMU_FAULT_RING, arg);
	if (ret >= 0) {
		/* A ring fd: keep one, the container has at most one ring. */
		if (w->ring_fd >= 0)
			close(w->ring_fd);
		w->ring_fd = (int)ret;
		ret = 0;
	} else {
		ret = -errno;
	}
	note(w, OP_RING, ret, "fault_ring", r.argsz, sizeof(r), where, false);
}

/* What a ring consumer does, right or wrong, while faults arrive. */
static void do_ring_fd(struct worker *w, uint64_t *s)
{
	static const int prots[] = {
		PROT_READ | PROT_WRITE, PROT_READ, PROT_WRITE, PROT_NONE, PROT_READ | PROT_EXEC,
	};
	struct rvfio_fault_ring_header *h;
	struct rvfio_fault_response resp[4];
	int fd = w->ring_fd;
	size_t len, n;
	off_t off;
	long ret = 0;
	void *p;

	tls_op = OP_RING_FD;
	if (fd < 0) {
		w->st.calls[OP_RING_FD]++;
		return;
	}
	switch (below(s, 6)) {
	case 0: case 1:
		/* mmap() of any length and offset, whole pages or not. */
		len = chance(s, 50) ? 2 * PAGE_4K : (size_t)below(s, 8) * PAGE_4K + below(s, 2);
		off = chance(s, 70) ? 0 : (off_t)below(s, 8) * PAGE_4K + (chance(s, 10) ? 1 : 0);
		p = mmap(NULL, len ? len : PAGE_4K, prots[below(s, 5)],
			 chance(s, 90) ? MAP_SHARED : MAP_PRIVATE, fd, off);
		if (p == MAP_FAILED) {
			ret = -errno;
			break;
		}
		if (off == 0 && len >= PAGE_4K && chance(s, 90)) {
			h = p;
			if (!mprotect(p, PAGE_4K, PROT_READ | PROT_WRITE)) {
				/* Consume (or not) what is there; any index. */
				uint32_t prod = __atomic_load_n(&h->producer, __ATOMIC_ACQUIRE);

				__atomic_store_n(&h->consumer, chance(s, 70) ? prod :
						 (uint32_t)rnd(s), __ATOMIC_RELEASE);
			}
		}
		munmap(p, len ? len : PAGE_4K);
		break;
	case 2: case 3:
		/* Responses: any cookie, code and length. */
		for (int i = 0; i < 4; i++)
			resp[i] = (struct rvfio_fault_response){
				.cookie = chance(s, 30) ? 0 : (uint32_t)below(s, 16),
				.code = chance(s, 80) ? (uint32_t)below(s, 3) : (uint32_t)rnd(s),
			};
		n = chance(s, 80) ? (1 + below(s, 4)) * sizeof(resp[0]) : (size_t)below(s, 40);
		ret = write(fd, chance(s, 95) ? (void *)resp : (void *)w->f->p.none, n);
		ret = ret < 0 ? -errno : 0;
		break;
	case 4: {
		struct pollfd pf = { .fd = fd, .events = POLLIN | POLLOUT };
		uint8_t tmp[64];

		if (poll(&pf, 1, 0) < 0)
			ret = -errno;
		else if (read(fd, tmp, sizeof(tmp)) < 0 && errno != EINVAL)
			ret = -errno;
		break;
	}
	default:
		close(fd);
		w->ring_fd = -1;
		break;
	}
	note(w, OP_RING_FD, ret, "ring fd", 0, 0, IN_BUF, true);
}

/* ---- the DMA owner change ---- */

static void do_owner(struct worker *w, uint64_t *s, int c)
{
	struct rvfio_dma_owner_entry e[4];
	struct rvfio_change_dma_owner a = { .argsz = sizeof(a) };
	struct pools *p = &w->f->p;
	uint8_t buf[4096 + 64];
	enum place where;
	void *arg;

	tls_op = OP_OWNER;
	a.count = chance(s, 90) ? (uint32_t)below(s, 5) :
		  chance(s, 50) ? RVFIO_DMA_OWNER_MAX_ENTRIES + 1 : (uint32_t)rnd(s);
	for (int i = 0; i < 4; i++) {
		uint64_t pg = below(s, SHM_SIZE / PAGE_4K);

		e[i].iova = chance(s, 30) ? DMA_IOVA : pick_iova(s, w->idx);
		/* Mostly the same memfd pages at their second view. */
		e[i].vaddr = chance(s, 50) ? (uintptr_t)p->shm[1] + pg * PAGE_4K :
			     pick_vaddr(w, s, PAGE_4K);
	}
	a.entries = chance(s, 90) ? (uintptr_t)e : pick_vaddr(w, s, sizeof(e));
	a.flags = chance(s, 90) ? 0 : 1u << below(s, 32);
	a.argsz = pick_argsz(s, sizeof(a));
	arg = place_arg(w, s, buf, &a, sizeof(a), &where);
	/* The new vaddrs may be PROT_NONE or unmapped: EFAULT is fine. */
	note(w, OP_OWNER, xioctl(c, RVFIO_IOMMU_CHANGE_DMA_OWNER, arg), "change_dma_owner",
	     a.argsz, sizeof(a), where, true);
}

/* ---- the nesting ioctls, and the guest table they walk ---- */

static uint32_t pick_group(struct worker *w, uint64_t *s)
{
	return chance(s, 85) ? (uint32_t)w->f->e[0].group_id :
	       chance(s, 50) ? (uint32_t)below(s, 64) : (uint32_t)rnd(s);
}

/* One random entry somewhere in the guest table. */
static void scribble_table(struct worker *w, uint64_t *s)
{
	uint64_t *gt = w->f->p.gt;
	uint64_t v;

	if (!gt)
		return;
	switch (below(s, 8)) {
	case 0: v = 0; break;
	case 1: v = (GT_GPA + below(s, GT_PAGES) * PAGE_4K) | PTE_OK; break;	/* may loop */
	case 2: v = (DMA_IOVA + below(s, 2) * PAGE_4K) | PTE_OK; break;
	case 3: v = (rnd(s) & 0x000ffffffffff000ull) | PTE_OK; break;	/* reserved bits */
	case 4: v = (DMA_IOVA & ~(SZ_2M - 1)) | PTE_OK | PTE_PS; break;	/* huge leaf */
	case 5: v = rnd(s); break;
	default: v = (WIN_BASE + below(s, MAX_THREADS) * WIN_SIZE + below(s, 64) * PAGE_4K) |
		     (chance(s, 80) ? PTE_OK : 1); break;
	}
	__atomic_store_n(&gt[below(s, GT_PAGES * 512)], v, __ATOMIC_RELAXED);
}

static void do_nest(struct worker *w, uint64_t *s, int c)
{
	uint8_t buf[4096 + 64];
	enum place where;
	void *arg;

	tls_op = OP_BIND;	/* or another of the nesting ioctls */
	/* Table writes only where there is a table. */
	switch (below(s, w->f->p.gt ? 10 : 8)) {
	case 0 ... 2: {
		static const uint32_t widths[] = { 48, 48, 57, 39, 0, 64 };
		struct iommu_hwpt_vtd_s1 s1 = {
			.flags = chance(s, 85) ? 0 : 1ull << below(s, 8),
			.pgtbl_addr = chance(s, 80) ? GT_GPA : chance(s, 50) ?
				      pick_iova(s, w->idx) : rnd(s),
			.addr_width = widths[below(s, 6)],
		};
		uint8_t payload[64] = { 0 };
		struct rvfio_nesting_bind b = {
			.argsz = sizeof(b), .group_id = pick_group(w, s),
			.data_type = chance(s, 90) ? IOMMU_HWPT_DATA_VTD_S1 : (uint32_t)below(s, 8),
			.data_len = chance(s, 80) ? sizeof(s1) : (uint32_t)below(s, 8192),
			.data_uptr = (uintptr_t)payload,
		};

		memcpy(payload, &s1, sizeof(s1));
		if (chance(s, 10))
			payload[sizeof(s1) + below(s, sizeof(payload) - sizeof(s1))] = 1;
		if (chance(s, 10))
			b.data_uptr = pick_vaddr(w, s, 64);
		b.flags = chance(s, 90) ? 0 : 1u << below(s, 32);
		b.argsz = pick_argsz(s, sizeof(b));
		arg = place_arg(w, s, buf, &b, sizeof(b), &where);
		/* out_flags is written back: EFAULT at the guard is fine. */
		note(w, OP_BIND, xioctl(c, RVFIO_IOMMU_NESTING_BIND, arg), "nesting_bind",
		     b.argsz, sizeof(b), where, true);
		return;
	}
	case 3 ... 4: {
		struct rvfio_nesting_unbind u = { .argsz = sizeof(u), .group_id = pick_group(w, s) };

		u.flags = chance(s, 90) ? 0 : 1u << below(s, 32);
		u.__reserved = chance(s, 90) ? 0 : (uint32_t)rnd(s);
		u.argsz = pick_argsz(s, sizeof(u));
		arg = place_arg(w, s, buf, &u, sizeof(u), &where);
		note(w, OP_UNBIND, xioctl(c, RVFIO_IOMMU_NESTING_UNBIND, arg), "nesting_unbind",
		     u.argsz, sizeof(u), where, false);
		return;
	}
	case 5 ... 7: {
		struct iommu_hwpt_vtd_s1_invalidate ents[8];
		struct rvfio_nesting_invalidate inv = {
			.argsz = sizeof(inv), .group_id = pick_group(w, s),
			.data_type = chance(s, 90) ? IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 :
				     (uint32_t)below(s, 8),
			.data_uptr = (uintptr_t)ents,
			.entry_len = chance(s, 85) ? sizeof(ents[0]) : (uint32_t)below(s, 64),
			.entry_num = chance(s, 90) ? (uint32_t)below(s, 3) : (uint32_t)rnd(s),
		};

		for (int i = 0; i < 8; i++)
			ents[i] = (struct iommu_hwpt_vtd_s1_invalidate){
				.addr = chance(s, 20) ? 0 : chance(s, 80) ?
					below(s, 1ull << 30) & ~(PAGE_4K - 1) : rnd(s),
				.npages = chance(s, 20) ? ~0ull : chance(s, 80) ?
					  1 + below(s, 512) : rnd(s),
				.flags = chance(s, 90) ? 0 : (uint32_t)rnd(s),
			};
		if (chance(s, 10))
			inv.data_uptr = pick_vaddr(w, s, sizeof(ents));
		inv.flags = chance(s, 90) ? 0 : 1u << below(s, 32);
		inv.argsz = pick_argsz(s, sizeof(inv));
		arg = place_arg(w, s, buf, &inv, sizeof(inv), &where);
		/* entry_num is written back, on error too. */
		note(w, OP_INVAL, xioctl(c, RVFIO_IOMMU_NESTING_INVALIDATE, arg),
		     "nesting_invalidate", inv.argsz, sizeof(inv), where, true);
		return;
	}
	default:
		scribble_table(w, s);
		w->st.calls[OP_TABLE]++;
		w->st.ok[OP_TABLE]++;
		return;
	}
}

static void do_misc(struct worker *w, uint64_t *s, int c)
{
	long r;

	tls_op = OP_MISC;
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

	tls_op = OP_REMAP;
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

	tls_idx = w->idx;
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
		case 0 ... 31: do_map(w, &s, c); break;
		case 32 ... 54: do_unmap(w, &s, c); break;
		case 55 ... 60: do_info(w, &s, c); break;
		case 61 ... 68: do_dirty(w, &s, c); break;
		case 69 ... 71: do_ext(w, &s, c); break;
		case 72 ... 75: do_query(w, &s, c); break;
		case 76 ... 78: do_eventfd(w, &s, c); break;
		case 79 ... 81: do_ring(w, &s, c); break;
		case 82 ... 84: do_ring_fd(w, &s); break;
		case 85 ... 87: do_owner(w, &s, c); break;
		case 88 ... 93:
			/* Elsewhere they are ENOTTY at once: now and then. */
			if (f->nesting || chance(&s, 25))
				do_nest(w, &s, c);
			else
				do_map(w, &s, c);
			break;
		case 94 ... 97: do_misc(w, &s, c); break;
		default: do_remap(w, &s); break;
		}
	}
	if (w->scratch)
		munmap(w->scratch, SCRATCH_SIZE);
	if (w->bar)
		munmap((void *)w->bar, f->p.bar_size);
	if (w->efd >= 0)
		close(w->efd);
	if (w->ring_fd >= 0)
		close(w->ring_fd);
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
	bool nesting;
	const char *name;
};

FIXTURE_VARIANT_ADD(fuzz, one_container) { .containers = 1, .name = "one_container" };
FIXTURE_VARIANT_ADD(fuzz, two_containers) { .containers = 2, .name = "two_containers" };
FIXTURE_VARIANT_ADD(fuzz, nesting) { .containers = 1, .nesting = true, .name = "nesting" };

#define NVARIANTS	3

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
	f->nesting = variant->nesting;
	if (f->nesting && !f->rvfio)
		SKIP(return, "upstream type1 cannot attach a VFIO_TYPE1_NESTING_IOMMU container "
		     "on Intel (nesting_test's type1_nesting_as_upstream checks that); rvfio only");
	for (int k = 0; k < f->nc; k++) {
		ASSERT_EQ(0, edu_open(&f->e[k], edu_bdf(k), -1, f->nesting ?
				      VFIO_TYPE1_NESTING_IOMMU : VFIO_TYPE1v2_IOMMU, err,
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
	{
		int fd = memfd_create("fuzz_shm", MFD_CLOEXEC);

		ASSERT_LE(0, fd);
		ASSERT_EQ(0, ftruncate(fd, SHM_SIZE));
		for (int i = 0; i < 2; i++) {
			void *v = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

			ASSERT_NE(MAP_FAILED, v);
			f->p.shm[i] = v;
		}
		close(fd);
		memset(f->p.shm[0], 0x44, SHM_SIZE);
	}
	{
		uint8_t *sink = map_anon(2 * SINK_SIZE, PROT_READ | PROT_WRITE);

		ASSERT_NE(NULL, sink);
		ASSERT_EQ(0, mprotect(sink + SINK_SIZE, SINK_SIZE, PROT_NONE));
		f->p.sink = sink;
	}
	if (f->nesting) {
		/*
		 * A valid table to start from: stage-1 DMA_IOVA and the page
		 * after it map to the same guest-physical addresses, so the DMA
		 * thread's copies land while a bind of it lasts.
		 */
		uint64_t *gt = map_anon(GT_PAGES * PAGE_4K, PROT_READ | PROT_WRITE);

		ASSERT_NE(NULL, gt);
		f->p.gt = gt;
		gt[0] = (GT_GPA + PAGE_4K) | PTE_OK;
		gt[512] = (GT_GPA + 2 * PAGE_4K) | PTE_OK;
		gt[1024 + ((DMA_IOVA >> 21) & 511)] = (GT_GPA + 3 * PAGE_4K) | PTE_OK;
		gt[1536 + 0] = DMA_IOVA | PTE_OK;
		gt[1536 + 1] = (DMA_IOVA + PAGE_4K) | PTE_OK;
		ASSERT_EQ(0, vfio_map(f->c[0], GT_GPA, gt, GT_PAGES * PAGE_4K, RW));
	}
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
	for (int i = 0; i < 2; i++)
		if (f->p.shm[i])
			munmap(f->p.shm[i], SHM_SIZE);
	if (f->p.gt)
		munmap(f->p.gt, GT_PAGES * PAGE_4K);
	if (f->p.sink)
		munmap(f->p.sink, 2 * SINK_SIZE);
}

TEST_F_TIMEOUT(fuzz, run, FUZZ_TIMEOUT)
{
	struct fuzz *f = &self->f;
	uint64_t seed = env_u64("FUZZ_SEED", 0);
	double secs = (double)env_u64("FUZZ_SECONDS", 30) / NVARIANTS;
	int nthreads = (int)env_u64("FUZZ_THREADS", 4);
	struct dma_arg da[2];
	struct stats tot = { 0 };
	struct rlimit rl = { MEMLOCK_LIMIT, MEMLOCK_LIMIT };
	struct timespec t0, t1;
	unsigned long calls = 0;
	char line[1024];
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
	{
		struct sigaction sa = { .sa_sigaction = fatal_signal, .sa_flags = SA_SIGINFO };

		sigemptyset(&sa.sa_mask);
		ASSERT_EQ(0, sigaction(SIGSEGV, &sa, NULL));
		ASSERT_EQ(0, sigaction(SIGBUS, &sa, NULL));
	}
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
		w->ring_fd = -1;
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
		if (f->nesting) {
			/* Back on container IOVAs (EINVAL: it was not bound). */
			struct rvfio_nesting_unbind u = {
				.argsz = sizeof(u), .group_id = f->e[k].group_id,
			};
			long r = xioctl(f->c[k], RVFIO_IOMMU_NESTING_UNBIND, &u);

			ASSERT_TRUE(r == 0 || r == -EINVAL) TH_LOG("unbind: %s", strerror((int)-r));
		}
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
