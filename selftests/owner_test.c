// SPDX-License-Identifier: GPL-2.0
/*
 * owner_test - RVFIO_IOMMU_CHANGE_DMA_OWNER (include/uapi/linux/rvfio.h,
 * issue 15): one call makes the caller the owner of every mapping of a
 * container (its mm for later pinning and for the mdev path, the whole
 * locked_vm charge, the PFNMAP revocation watches), or changes nothing.
 *
 * Processes. The test process T makes every assertion. The other processes
 * are servers: they do what T asks over a pipe and report what happened
 * (an errno, their VmLck, whether the bytes that crossed the IOMMU were
 * right). A server is a fork of T (another mm, the same addresses), or,
 * in the live-update flow, this very binary exec()ed with SERVER_ARG and
 * the fds it needs (a fresh mm, new addresses); main() below catches that
 * before the harness runs.
 *
 * Witnesses: edu DMA through the IOMMU, its bytes checked through the
 * checking process's own mapping; a second edu's BAR (PFNMAP) read by the
 * first one peer-to-peer; the mdev sample's vfio_dma_rw(); VmLck of each
 * process (/proc/PID/status); the system-wide count of outstanding
 * FOLL_PIN pins.
 *
 * upstream vfio_iommu_type1 has no such call. uapi_probe checks that it
 * answers ENOTTY and CHECK_EXTENSION(RVFIO_DMA_OWNER) 0; every other test
 * checks the same and then skips with that reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/pci_regs.h>
#include <linux/rvfio.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"
#include "mdev_dev.h"
#include "vfio_util.h"

#define NO_ENTRY	RVFIO_DMA_OWNER_NO_ENTRY
#define SERVER_ARG	"--owner-server"
#define FLOW_TIMEOUT	600
#define PAIR_TIMEOUT	180

/* The call with every field given; 0 or -errno. */
static int change_raw(int c, struct rvfio_change_dma_owner *arg)
{
	return (int)vfio_ioctl(c, RVFIO_IOMMU_CHANGE_DMA_OWNER, arg);
}

/*
 * Tests of the call: on rvfio the container must offer it; on any other
 * backend it must answer as upstream's type1 does (ENOTTY, extension 0),
 * and the test skips with that reason.
 */
#define REQUIRE_OWNER(c) do { \
	if (strcmp(backend_name(), "rvfio")) { \
		struct rvfio_change_dma_owner __a = { .argsz = sizeof(__a) }; \
		ASSERT_EQ(0, vfio_check_ext((c), RVFIO_DMA_OWNER)); \
		ASSERT_EQ(-ENOTTY, change_raw((c), &__a)); \
		SKIP(return, "%s has no RVFIO_IOMMU_CHANGE_DMA_OWNER (ENOTTY, " \
		     "CHECK_EXTENSION(RVFIO_DMA_OWNER) 0)", backend_name()); \
	} \
	ASSERT_EQ(1, vfio_check_ext((c), RVFIO_DMA_OWNER)) \
		TH_LOG("rvfio container does not offer RVFIO_DMA_OWNER"); \
} while (0)

/* ---- memory ------------------------------------------------------------ */

static void *map_shared(int fd, size_t len, off_t off, int prot)
{
	return mmap(NULL, len, prot, MAP_SHARED, fd, off);
}

/* ---- a second edu whose BAR0 is the PFNMAP range ------------------------ */

/*
 * Attach bdf's group to container c, open the device, enable its memory
 * space (BAR0 not mapped here). 0 or -errno, err says why.
 */
static int peer_open(int c, const char *bdf, int *group, int *device, char *err, size_t errlen)
{
	uint16_t cmd;
	int ret;

	*device = -1;
	*group = vfio_group_attach(c, bdf, NULL);
	if (*group < 0) {
		ret = *group;
		snprintf(err, errlen, "attach group of %s: %s", bdf, strerror(-ret));
		return ret;
	}
	*device = ioctl(*group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (*device < 0) {
		ret = -errno;
		snprintf(err, errlen, "VFIO_GROUP_GET_DEVICE_FD(%s): %s", bdf, strerror(-ret));
		return ret;
	}
	ret = vfio_pci_config_read(*device, PCI_COMMAND, &cmd, 2);
	cmd |= PCI_COMMAND_MEMORY;
	if (!ret)
		ret = vfio_pci_config_write(*device, PCI_COMMAND, &cmd, 2);
	if (ret)
		snprintf(err, errlen, "enabling memory space of %s: %s", bdf, strerror(-ret));
	return ret;
}

/*
 * edu e reads 4 bytes at iova into its buffer, whose first 64 bytes came
 * from the scratch page (scr, at scr_iova) with a fresh pattern, and copies
 * the 64 bytes back into the scratch page. *val gets the 4 bytes; -EIO when
 * the other 60 are not the pattern.
 */
static int p2p_read32(struct edu *e, uint64_t iova, uint64_t scr_iova, uint8_t *scr,
		      uint32_t *val)
{
	uint8_t expect[64];
	int ret;

	fill_pattern(expect, sizeof(expect), random_seed());
	memcpy(scr, expect, sizeof(expect));
	ret = edu_dma_to_dev(e, scr_iova, 0, sizeof(expect));
	if (!ret)
		ret = edu_dma_to_dev(e, iova, 0, 4);
	memset(scr, 0xd1, sizeof(expect));
	if (!ret)
		ret = edu_dma_to_ram(e, 0, scr_iova, sizeof(expect));
	if (ret)
		return ret;
	memcpy(val, scr, 4);
	return memcmp(scr + 4, expect + 4, sizeof(expect) - 4) ? -EIO : 0;
}

/* One page through the device: a fresh pattern at sv (IOVA si) must arrive at dv (IOVA di). */
static int copy_checked(struct edu *e, uint64_t si, uint8_t *sv, uint64_t di, uint8_t *dv,
			char *why, size_t wl)
{
	uint32_t seed = random_seed();
	long bad;
	int ret;

	fill_pattern(sv, PAGE_4K, seed);
	memset(dv, 0xd1, PAGE_4K);
	ret = edu_copy(e, si, di, PAGE_4K);
	if (ret) {
		snprintf(why, wl, "edu copy %#llx -> %#llx: %s", (unsigned long long)si,
			 (unsigned long long)di, strerror(-ret));
		return ret;
	}
	bad = check_pattern(dv, PAGE_4K, seed);
	if (bad >= 0) {
		snprintf(why, wl, "edu copy %#llx -> %#llx: byte %ld differs",
			 (unsigned long long)si, (unsigned long long)di, bad);
		return -EIO;
	}
	return 0;
}

/* ==========================================================================
 * Servers
 * ========================================================================== */

#define SRV_MAX_ENTRIES	8
#define SRV_MAX_FDS	12
#define LOOP_PAGES	8

enum srv_op {
	OP_VMLCK = 1,	/* nothing: every reply carries the server's VmLck */
	OP_MMAP,	/* fd (-1: private anonymous, pre-faulted), a offset, b len, flags prot -> a */
	OP_MUNMAP,	/* a vaddr, b len */
	OP_CHANGE,	/* count, e[]; mode CHANGE_RO_ARG: the argument on a read-only page */
	OP_MAP_DMA,	/* a iova, b vaddr, c size, flags */
	OP_UNMAP_DMA,	/* a iova, b size -> a unmapped */
	OP_EDU_MAP,	/* mmap BAR0 of edu #1 (the server's device fd), check its ID */
	OP_COPY,	/* a src iova, b src vaddr, c dst iova, d dst vaddr: one checked page */
	OP_P2P_READ,	/* a iova, b scratch iova, c scratch vaddr -> a value read */
	OP_LOOP_START,	/* lp: round trips until OP_LOOP_STOP, in a thread */
	OP_LOOP_COUNT,	/* -> a round trips so far, b failed ones */
	OP_LOOP_STOP,	/* -> a, b, why (the first failure) */
	OP_MDEV_RW,	/* a iova, b vaddr, c len, flags: dma_rw write then read, both checked */
	OP_MDEV_PROBE,	/* a iova: one 16-byte dma_rw read, its errno */
	OP_CAP,		/* flags 0: drop CAP_IPC_LOCK (effective), 1: raise it again */
	OP_MEMLOCK,	/* flags 0: RLIMIT_MEMLOCK soft limit a (bytes), 1: restore */
	OP_QUERY,	/* a iova -> a RVFIO_DMA_QUERY flags, b revoked bytes */
	OP_SPAWN,	/* fds[0] in, fds[1] out, fds[]: exec a server that keeps them -> a pid */
	OP_TOGGLE,	/* flags 1: a thread flips [a, a + b) read-only and back; 0: stop -> a flips */
	OP_EXIT,	/* _exit(0), every fd and mapping still open */
};

#define CHANGE_RO_ARG	1

/* What the round-trip loop copies: src -> mid -> back, LOOP_PAGES pages each. */
struct loop_cfg {
	uint64_t src_iova, src_va, mid_iova, mid_va, back_iova, back_va;
	uint64_t peer_iova;		/* 0: no peer-to-peer read */
	uint64_t scratch_iova, scratch_va;
};

struct req {
	int op;
	int fd;
	uint32_t flags, count, mode;
	uint64_t a, b, c, d;
	struct loop_cfg lp;
	int nfds;
	int fds[SRV_MAX_FDS];
	struct rvfio_dma_owner_entry e[SRV_MAX_ENTRIES];
};

struct rep {
	int ret;		/* 0 or -errno; -EIO: bytes were wrong */
	uint32_t failed;
	long vmlck;		/* the server's VmLck after the request, kB */
	uint64_t a, b;
	char why[200];
};

struct srv {
	int in, out;
	int c;			/* container */
	struct edu e;		/* edu #1: device fd, BAR0 once mapped */
	int mdev;		/* mdev device fd or -1 */
	struct rlimit memlock;
	bool memlock_saved;
	pthread_t th;
	bool running;
	struct loop_cfg lp;
	volatile bool stop;
	long trips, fails;	/* atomics */
	char why[200];
	pthread_t tt;
	bool toggling;
	volatile bool tstop;
	uint64_t taddr, tlen;
	long flips;
};

/* mprotect() is an invalidation of the range (for populated ptes). */
static void *toggle_fn(void *arg)
{
	struct srv *s = arg;
	void *p = (void *)(uintptr_t)s->taddr;

	while (!__atomic_load_n(&s->tstop, __ATOMIC_ACQUIRE)) {
		mprotect(p, s->tlen, PROT_READ);
		mprotect(p, s->tlen, PROT_READ | PROT_WRITE);
		__atomic_fetch_add(&s->flips, 1, __ATOMIC_ACQ_REL);
	}
	return NULL;
}

static void *loop_fn(void *arg)
{
	struct srv *s = arg;
	const struct loop_cfg *lp = &s->lp;
	char why[160];

	for (long k = 0; !__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE); k++) {
		uint64_t off = (k % LOOP_PAGES) * PAGE_4K;
		uint32_t v = 0;
		int ret;

		ret = copy_checked(&s->e, lp->src_iova + off, (uint8_t *)(uintptr_t)lp->src_va + off,
				   lp->mid_iova + off, (uint8_t *)(uintptr_t)lp->mid_va + off,
				   why, sizeof(why));
		if (!ret)
			ret = copy_checked(&s->e, lp->mid_iova + off,
					   (uint8_t *)(uintptr_t)lp->mid_va + off,
					   lp->back_iova + off,
					   (uint8_t *)(uintptr_t)lp->back_va + off, why, sizeof(why));
		if (!ret && lp->peer_iova) {
			ret = p2p_read32(&s->e, lp->peer_iova, lp->scratch_iova,
					 (uint8_t *)(uintptr_t)lp->scratch_va, &v);
			if (ret)
				snprintf(why, sizeof(why), "peer read: %s", strerror(-ret));
			else if (v != EDU_ID_VALUE)
				snprintf(why, sizeof(why), "peer read %#x, not the edu ID", v);
			if (!ret && v != EDU_ID_VALUE)
				ret = -EIO;
		}
		if (ret && __atomic_fetch_add(&s->fails, 1, __ATOMIC_ACQ_REL) == 0)
			snprintf(s->why, sizeof(s->why), "round trip %ld: %s", k, why);
		__atomic_fetch_add(&s->trips, 1, __ATOMIC_ACQ_REL);
	}
	return NULL;
}

static void srv_spawn(struct srv *s, const struct req *q, struct rep *r)
{
	char nums[5][16], *argv[8];
	pid_t pid;

	snprintf(nums[0], sizeof(nums[0]), "%d", q->fds[0]);
	snprintf(nums[1], sizeof(nums[1]), "%d", q->fds[1]);
	snprintf(nums[2], sizeof(nums[2]), "%d", s->c);
	snprintf(nums[3], sizeof(nums[3]), "%d", s->e.device);
	snprintf(nums[4], sizeof(nums[4]), "%d", s->mdev);
	argv[0] = "owner_test";
	argv[1] = SERVER_ARG;
	for (int i = 0; i < 5; i++)
		argv[2 + i] = nums[i];
	argv[7] = NULL;
	pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls here: the parent has threads. */
		for (int i = 0; i < q->nfds; i++)
			fcntl(q->fds[i], F_SETFD, fcntl(q->fds[i], F_GETFD) & ~FD_CLOEXEC);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	if (pid < 0)
		r->ret = -errno;
	r->a = pid;
	/* The new server's ends of its pipes are its own now. */
	close(q->fds[0]);
	close(q->fds[1]);
}

static void srv_change(struct srv *s, const struct req *q, struct rep *r)
{
	struct rvfio_change_dma_owner *arg, local = {
		.argsz = sizeof(local), .count = q->count, .entries = (uintptr_t)q->e,
		.failed = 0x5a5a5a5a,
	};

	if (q->mode != CHANGE_RO_ARG) {
		r->ret = change_raw(s->c, &local);
		r->failed = local.failed;
		return;
	}
	arg = mmap(NULL, PAGE_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (arg == MAP_FAILED) {
		r->ret = -ENOMEM;
		snprintf(r->why, sizeof(r->why), "mmap: %s", strerror(errno));
		return;
	}
	*arg = local;
	mprotect(arg, PAGE_4K, PROT_READ);
	r->ret = change_raw(s->c, arg);
	r->failed = arg->failed;
	munmap(arg, PAGE_4K);
}

static void srv_mdev_rw(struct srv *s, const struct req *q, struct rep *r)
{
	uint8_t buf[512], *va = (uint8_t *)(uintptr_t)q->b;
	uint32_t len = q->c < sizeof(buf) ? (uint32_t)q->c : sizeof(buf);
	uint32_t seed = random_seed();

	fill_pattern(buf, len, seed);
	memset(va, 0xd1, len);
	r->ret = mdev_dev_dma_rw(s->mdev, q->a, buf, len, RVFIO_MDEV_DMA_RW_WRITE | q->flags);
	if (r->ret) {
		snprintf(r->why, sizeof(r->why), "dma_rw write: %s", strerror(-r->ret));
		return;
	}
	if (check_pattern(va, len, seed) != -1) {
		r->ret = -EIO;
		snprintf(r->why, sizeof(r->why), "dma_rw write did not land in this mapping");
		return;
	}
	fill_pattern(va, len, seed + 1);
	memset(buf, 0, len);
	r->ret = mdev_dev_dma_rw(s->mdev, q->a, buf, len, q->flags);
	if (r->ret)
		snprintf(r->why, sizeof(r->why), "dma_rw read: %s", strerror(-r->ret));
	else if (check_pattern(buf, len, seed + 1) != -1) {
		r->ret = -EIO;
		snprintf(r->why, sizeof(r->why), "dma_rw read did not see this mapping");
	}
}

static void srv_handle(struct srv *s, const struct req *q, struct rep *r)
{
	memset(r, 0, sizeof(*r));
	switch (q->op) {
	case OP_VMLCK:
		break;
	case OP_MMAP: {
		void *p;

		if (q->fd < 0) {
			p = mmap(NULL, q->b, q->flags, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p != MAP_FAILED && (q->flags & PROT_WRITE))
				memset(p, 0x3c, q->b);
		} else {
			p = map_shared(q->fd, q->b, q->a, q->flags);
		}
		if (p == MAP_FAILED)
			r->ret = -errno;
		else
			r->a = (uintptr_t)p;
		break;
	}
	case OP_MUNMAP:
		r->ret = munmap((void *)(uintptr_t)q->a, q->b) ? -errno : 0;
		break;
	case OP_CHANGE:
		srv_change(s, q, r);
		break;
	case OP_MAP_DMA:
		r->ret = vfio_map(s->c, q->a, (void *)(uintptr_t)q->b, q->c, q->flags);
		break;
	case OP_UNMAP_DMA:
		r->ret = vfio_unmap(s->c, q->a, q->b, 0, &r->a);
		break;
	case OP_EDU_MAP: {
		uint64_t off = 0, size = 0;
		void *p;

		r->ret = vfio_bar0_region(s->e.device, &off, &size);
		if (r->ret)
			break;
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->e.device, off);
		if (p == MAP_FAILED) {
			r->ret = -errno;
			break;
		}
		s->e.bar0 = p;
		s->e.bar0_size = size;
		if (edu_read32(&s->e, EDU_REG_ID) != EDU_ID_VALUE)
			r->ret = -ENODEV;
		break;
	}
	case OP_COPY:
		r->ret = copy_checked(&s->e, q->a, (uint8_t *)(uintptr_t)q->b, q->c,
				      (uint8_t *)(uintptr_t)q->d, r->why, sizeof(r->why));
		break;
	case OP_P2P_READ: {
		uint32_t v = 0;

		r->ret = p2p_read32(&s->e, q->a, q->b, (uint8_t *)(uintptr_t)q->c, &v);
		r->a = v;
		break;
	}
	case OP_LOOP_START:
		s->lp = q->lp;
		s->stop = false;
		s->trips = s->fails = 0;
		s->why[0] = '\0';
		r->ret = -pthread_create(&s->th, NULL, loop_fn, s);
		s->running = !r->ret;
		break;
	case OP_LOOP_STOP:
		if (s->running) {
			__atomic_store_n(&s->stop, true, __ATOMIC_RELEASE);
			pthread_join(s->th, NULL);
			s->running = false;
		}
		snprintf(r->why, sizeof(r->why), "%s", s->why);
		/* fall through */
	case OP_LOOP_COUNT:
		r->a = __atomic_load_n(&s->trips, __ATOMIC_ACQUIRE);
		r->b = __atomic_load_n(&s->fails, __ATOMIC_ACQUIRE);
		break;
	case OP_MDEV_RW:
		srv_mdev_rw(s, q, r);
		break;
	case OP_MDEV_PROBE: {
		uint8_t tmp[16];

		r->ret = mdev_dev_dma_rw(s->mdev, q->a, tmp, sizeof(tmp), 0);
		break;
	}
	case OP_CAP:
		r->ret = q->flags ? 0 : drop_cap_ipc_lock();
		if (q->flags) {
			struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
			struct __user_cap_data_struct data[2];

			if (syscall(SYS_capget, &hdr, data)) {
				r->ret = -errno;
				break;
			}
			data[CAP_IPC_LOCK / 32].effective |= 1u << (CAP_IPC_LOCK % 32);
			r->ret = syscall(SYS_capset, &hdr, data) ? -errno : 0;
		}
		break;
	case OP_MEMLOCK: {
		struct rlimit l;

		if (!s->memlock_saved && getrlimit(RLIMIT_MEMLOCK, &s->memlock) == 0)
			s->memlock_saved = true;
		l = s->memlock;
		if (!q->flags)
			l.rlim_cur = q->a;
		r->ret = setrlimit(RLIMIT_MEMLOCK, &l) ? -errno : 0;
		break;
	}
	case OP_QUERY: {
		struct rvfio_dma_query dq = { .argsz = sizeof(dq), .iova = q->a };

		r->ret = (int)vfio_ioctl(s->c, RVFIO_IOMMU_DMA_QUERY, &dq);
		r->a = dq.flags;
		r->b = dq.revoked_bytes;
		break;
	}
	case OP_SPAWN:
		srv_spawn(s, q, r);
		break;
	case OP_TOGGLE:
		if (q->flags && !s->toggling) {
			s->taddr = q->a;
			s->tlen = q->b;
			s->tstop = false;
			s->flips = 0;
			r->ret = -pthread_create(&s->tt, NULL, toggle_fn, s);
			s->toggling = !r->ret;
		} else if (!q->flags && s->toggling) {
			__atomic_store_n(&s->tstop, true, __ATOMIC_RELEASE);
			pthread_join(s->tt, NULL);
			s->toggling = false;
		}
		r->a = __atomic_load_n(&s->flips, __ATOMIC_ACQUIRE);
		break;
	case OP_EXIT:
		break;
	default:
		r->ret = -EINVAL;
	}
	r->vmlck = vmlck_kb();
}

static void __attribute__((noreturn)) srv_run(struct srv *s)
{
	struct req q;
	struct rep r;

	for (;;) {
		ssize_t n = read(s->in, &q, sizeof(q));

		/* EOF: the test process is gone. */
		if (n != sizeof(q))
			_exit(n == 0 ? 0 : 3);
		srv_handle(s, &q, &r);
		if (write(s->out, &r, sizeof(r)) != sizeof(r))
			_exit(4);
		if (q.op == OP_EXIT)
			_exit(0);
	}
}

static void srv_init(struct srv *s, int in, int out, int c, const struct edu *e, int mdev)
{
	memset(s, 0, sizeof(*s));
	s->in = in;
	s->out = out;
	s->c = c;
	if (e)
		s->e = *e;
	else
		s->e.device = s->e.group = s->e.container = -1;
	s->mdev = mdev;
}

/* main() of an exec()ed server: SERVER_ARG in out container edu-device mdev-device. */
static void __attribute__((noreturn)) srv_exec_main(char **argv)
{
	static struct srv s;

	srv_init(&s, atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), NULL, atoi(argv[6]));
	s.e.device = atoi(argv[5]);
	s.e.container = s.c;
	srv_run(&s);
}

/* ---- the test process's side ---------------------------------------------- */

struct conn {
	int to, from;
	pid_t pid;
};

static void conn_init(struct conn *k)
{
	k->to = k->from = -1;
	k->pid = -1;
}

static struct rep call(struct conn *k, struct req q)
{
	struct rep r;

	if (write(k->to, &q, sizeof(q)) == sizeof(q) && read(k->from, &r, sizeof(r)) == sizeof(r))
		return r;
	memset(&r, 0, sizeof(r));
	r.ret = -EPIPE;
	r.vmlck = -1;
	snprintf(r.why, sizeof(r.why), "server %d died", k->pid);
	return r;
}

/* Kills and reaps a server (our child, or reparented to us). */
static void conn_kill(struct conn *k)
{
	if (k->to >= 0)
		close(k->to);
	if (k->from >= 0)
		close(k->from);
	k->to = k->from = -1;
	if (k->pid > 0) {
		kill(k->pid, SIGKILL);
		waitpid(k->pid, NULL, 0);
	}
	k->pid = -1;
}

/* Tells a server to exit and reaps it; its exit status or -errno. */
static int conn_exit(struct conn *k)
{
	struct rep r = call(k, (struct req){ .op = OP_EXIT });
	int status = 0;

	if (r.ret)
		return r.ret;
	if (waitpid(k->pid, &status, 0) != k->pid)
		return -errno;
	k->pid = -1;
	close(k->to);
	close(k->from);
	k->to = k->from = -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * A fork of the caller as a server: it shares every fd and has a copy of
 * the address space. 0 or -errno.
 */
static int fork_server(struct conn *k, int c, const struct edu *e, int mdev)
{
	int to[2], from[2];
	pid_t pid;

	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		static struct srv s;

		/* Gone with T, even when T dies of a failed assertion. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(to[1]);
		close(from[0]);
		srv_init(&s, to[0], from[1], c, e, mdev);
		srv_run(&s);
	}
	close(to[0]);
	close(from[1]);
	k->to = to[1];
	k->from = from[0];
	k->pid = pid;
	return 0;
}

/* Short requests. */
#define R_VMLCK(k)		call((k), (struct req){ .op = OP_VMLCK })
#define R_MMAP(k, fd_, off, len, prot) \
	call((k), (struct req){ .op = OP_MMAP, .fd = (fd_), .a = (off), .b = (len), .flags = (prot) })
#define R_MUNMAP(k, va, len)	call((k), (struct req){ .op = OP_MUNMAP, .a = (va), .b = (len) })
#define R_COPY(k, si, sv, di, dv) \
	call((k), (struct req){ .op = OP_COPY, .a = (si), .b = (sv), .c = (di), .d = (dv) })

/* The server moves the mappings to itself with entries e[0..count). */
static struct rep r_change(struct conn *k, const struct rvfio_dma_owner_entry *e, uint32_t count,
			   uint32_t mode)
{
	struct req q = { .op = OP_CHANGE, .count = count, .mode = mode };

	memcpy(q.e, e, sizeof(*e) * (count < SRV_MAX_ENTRIES ? count : SRV_MAX_ENTRIES));
	return call(k, q);
}

/* A server's request that must succeed. */
#define ASSERT_OK(res) do { \
	struct rep __r = (res); \
	ASSERT_EQ(0, __r.ret) TH_LOG("server: %s (%s)", strerror(-__r.ret), __r.why); \
} while (0)

/* ==========================================================================
 * 1. The uapi on both backends, and bad input (one process)
 * ========================================================================== */

/* rvfio offers the call; type1 answers 0 and ENOTTY. */
TEST_F(edu, uapi_probe)
{
	struct rvfio_change_dma_owner a = { .argsz = sizeof(a), .failed = 7 };

	if (strcmp(backend_name(), "rvfio")) {
		EXPECT_EQ(0, vfio_check_ext(self->c, RVFIO_DMA_OWNER));
		EXPECT_EQ(-ENOTTY, change_raw(self->c, &a));
		EXPECT_EQ(7, a.failed);
		return;
	}
	EXPECT_EQ(1, vfio_check_ext(self->c, RVFIO_DMA_OWNER));
	/* No mappings: count 0 succeeds and says no entry failed. */
	EXPECT_EQ(0, change_raw(self->c, &a));
	EXPECT_EQ(NO_ENTRY, a.failed);
}

#define BI_PAGES	16
#define BI_IOVA0	0x10000000ull
#define BI_IOVA1	0x10200000ull

/* Two mappings of one memfd (8 pages each) for the bad-input tests. */
struct bi {
	int fd;
	uint8_t *m;
	struct rvfio_dma_owner_entry e[2];
	long lck;
	long long pins;
};

#define bi_setup(b) __bi_setup(_metadata, self, (b))
static void __bi_setup(struct __test_metadata *_metadata, FIXTURE_DATA(edu) *self, struct bi *b)
{
	b->fd = memfd_new("owner_test", BI_PAGES * PAGE_4K, false);
	ASSERT_GE(b->fd, 0);
	b->m = map_shared(b->fd, BI_PAGES * PAGE_4K, 0, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, b->m);
	memset(b->m, 0, BI_PAGES * PAGE_4K);
	ASSERT_EQ(0, vfio_map(self->c, BI_IOVA0, b->m, 8 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, BI_IOVA1, b->m + 8 * PAGE_4K, 8 * PAGE_4K, RW));
	b->e[0] = (struct rvfio_dma_owner_entry){ BI_IOVA0, (uintptr_t)b->m };
	b->e[1] = (struct rvfio_dma_owner_entry){ BI_IOVA1, (uintptr_t)b->m + 8 * PAGE_4K };
	b->lck = vmlck_kb();
	b->pins = foll_pins_outstanding();
}

/*
 * Nothing changed: VmLck and pins as after mapping, the device copies
 * between both mappings, and the correct call (same owner) succeeds.
 */
#define bi_unchanged(b) __bi_unchanged(_metadata, self, (b))
static void __bi_unchanged(struct __test_metadata *_metadata, FIXTURE_DATA(edu) *self,
			   struct bi *b)
{
	uint32_t failed = 0;

	EXPECT_EQ(b->lck, vmlck_kb());
	ASSERT_PINS(b->pins);
	ASSERT_DEV_COPY(&self->dev, BI_IOVA0, b->m, BI_IOVA1 + PAGE_4K, b->m + 9 * PAGE_4K);
	ASSERT_EQ(0, change_dma_owner(self->c, b->e, 2, &failed));
	EXPECT_EQ(NO_ENTRY, failed);
	EXPECT_EQ(b->lck, vmlck_kb());
	ASSERT_PINS(b->pins);
}

static void bi_teardown(FIXTURE_DATA(edu) *self, struct bi *b)
{
	vfio_unmap_all(self->c, NULL);
	munmap(b->m, BI_PAGES * PAGE_4K);
	close(b->fd);
}

/*
 * argsz below the structure: EINVAL, and @failed (at offset 12) is not
 * written even when it lies inside argsz: nothing was accepted.
 */
TEST_F_TIMEOUT(edu, short_argsz_einval, DMA_TEST_TIMEOUT)
{
	const uint32_t sizes[] = { 0, 4, 12, 16, 23 };
	struct bi b;

	REQUIRE_OWNER(self->c);
	bi_setup(&b);
	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct rvfio_change_dma_owner a = {
			.argsz = sizes[i], .count = 2, .entries = (uintptr_t)b.e, .failed = 77,
		};

		EXPECT_EQ(-EINVAL, change_raw(self->c, &a)) TH_LOG("argsz %u", sizes[i]);
		EXPECT_EQ(77, a.failed) TH_LOG("argsz %u: failed written", sizes[i]);
	}
	/* A larger argsz is fine (the tail is not looked at). */
	{
		struct {
			struct rvfio_change_dma_owner a;
			uint64_t tail[4];
		} big = {
			.a = { .argsz = sizeof(big), .count = 2, .entries = (uintptr_t)b.e },
			.tail = { ~0ull, ~0ull, ~0ull, ~0ull },
		};

		EXPECT_EQ(0, change_raw(self->c, &big.a));
		EXPECT_EQ(NO_ENTRY, big.a.failed);
	}
	bi_unchanged(&b);
	bi_teardown(self, &b);
}

/* Unknown flags: EINVAL, no entry to blame. */
TEST_F_TIMEOUT(edu, unknown_flags_einval, DMA_TEST_TIMEOUT)
{
	const uint32_t flags[] = { 1, 2, 0x80000000u, ~0u };
	struct bi b;

	REQUIRE_OWNER(self->c);
	bi_setup(&b);
	for (unsigned int i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct rvfio_change_dma_owner a = {
			.argsz = sizeof(a), .flags = flags[i], .count = 2,
			.entries = (uintptr_t)b.e, .failed = 77,
		};

		EXPECT_EQ(-EINVAL, change_raw(self->c, &a)) TH_LOG("flags %#x", flags[i]);
		EXPECT_EQ(NO_ENTRY, a.failed) TH_LOG("flags %#x", flags[i]);
	}
	bi_unchanged(&b);
	bi_teardown(self, &b);
}

/*
 * count above RVFIO_DMA_OWNER_MAX_ENTRIES: E2BIG before the array is read
 * (it is not even readable here). count 0 with mappings present: EINVAL.
 */
TEST_F_TIMEOUT(edu, count_bounds, DMA_TEST_TIMEOUT)
{
	const uint32_t big[] = { RVFIO_DMA_OWNER_MAX_ENTRIES + 1, ~0u };
	uint32_t failed;
	struct bi b;

	REQUIRE_OWNER(self->c);
	bi_setup(&b);
	for (unsigned int i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		failed = 77;
		EXPECT_EQ(-E2BIG, change_dma_owner(self->c, NULL, big[i], &failed)) TH_LOG("%u", big[i]);
		EXPECT_EQ(NO_ENTRY, failed);
	}
	failed = 77;
	EXPECT_EQ(-EINVAL, change_dma_owner(self->c, b.e, 0, &failed));
	EXPECT_EQ(NO_ENTRY, failed);
	failed = 77;
	EXPECT_EQ(-EINVAL, change_dma_owner(self->c, NULL, 0, &failed));
	EXPECT_EQ(NO_ENTRY, failed);
	bi_unchanged(&b);
	bi_teardown(self, &b);
}

/* The array unreadable, wholly or in part: EFAULT, no entry to blame. */
TEST_F_TIMEOUT(edu, unreadable_entries_efault, DMA_TEST_TIMEOUT)
{
	struct rvfio_dma_owner_entry *straddle;
	uint32_t failed;
	uint8_t *two;
	struct bi b;

	REQUIRE_OWNER(self->c);
	bi_setup(&b);
	two = mmap(NULL, 2 * PAGE_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, two);
	ASSERT_EQ(0, mprotect(two + PAGE_4K, PAGE_4K, PROT_NONE));
	/* Entry 0 readable, entry 1 on the PROT_NONE page. */
	straddle = (struct rvfio_dma_owner_entry *)(two + PAGE_4K) - 1;
	straddle[0] = b.e[0];

	failed = 77;
	EXPECT_EQ(-EFAULT, change_dma_owner(self->c, NULL, 2, &failed));
	EXPECT_EQ(NO_ENTRY, failed);
	failed = 77;
	EXPECT_EQ(-EFAULT, change_dma_owner(self->c, (void *)(two + PAGE_4K), 2, &failed));
	EXPECT_EQ(NO_ENTRY, failed);
	failed = 77;
	EXPECT_EQ(-EFAULT, change_dma_owner(self->c, straddle, 2, &failed));
	EXPECT_EQ(NO_ENTRY, failed);
	failed = 77;
	EXPECT_EQ(-EFAULT, change_dma_owner(self->c, (void *)0xffff888000000000ull, 2, &failed));
	EXPECT_EQ(NO_ENTRY, failed);
	/* The largest count allowed, and nothing readable. */
	failed = 77;
	EXPECT_EQ(-EFAULT, change_dma_owner(self->c, NULL, RVFIO_DMA_OWNER_MAX_ENTRIES, &failed));
	EXPECT_EQ(NO_ENTRY, failed);
	munmap(two, 2 * PAGE_4K);
	bi_unchanged(&b);
	bi_teardown(self, &b);
}

/*
 * A vaddr that cannot be the mapping's: unaligned or wrapping (EINVAL),
 * not mapped (EFAULT), read-only for a writable mapping (EACCES), other
 * pages (EXDEV), private anonymous memory (EOPNOTSUPP). Each names its
 * entry (the second one here, so the first was checked fine before).
 */
TEST_F_TIMEOUT(edu, bad_vaddr_names_entry, DMA_TEST_TIMEOUT)
{
	uint8_t *anon = edu_buf(8 * PAGE_4K, 0x21), *ro, *hole;
	struct {
		uint64_t vaddr;
		int err;
		const char *what;
	} cases[6];
	struct rvfio_dma_owner_entry e[2];
	uint32_t failed;
	struct bi b;

	REQUIRE_OWNER(self->c);
	bi_setup(&b);
	ro = map_shared(b.fd, 8 * PAGE_4K, 8 * PAGE_4K, PROT_READ);
	ASSERT_NE(MAP_FAILED, ro);
	hole = mmap(NULL, 8 * PAGE_4K, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	ASSERT_EQ(0, munmap(hole, 8 * PAGE_4K));
	cases[0] = (typeof(cases[0])){ (uintptr_t)b.m + 8 * PAGE_4K + 0x800, -EINVAL, "unaligned" };
	cases[1] = (typeof(cases[0])){ ~0ull & ~(PAGE_4K - 1), -EINVAL, "wraps" };
	cases[2] = (typeof(cases[0])){ (uintptr_t)hole, -EFAULT, "not mapped" };
	cases[3] = (typeof(cases[0])){ (uintptr_t)ro, -EACCES, "read-only" };
	cases[4] = (typeof(cases[0])){ (uintptr_t)b.m + 7 * PAGE_4K, -EXDEV, "other pages" };
	cases[5] = (typeof(cases[0])){ (uintptr_t)anon, -EOPNOTSUPP, "private anonymous" };
	for (unsigned int i = 0; i < 6; i++) {
		e[0] = b.e[0];
		e[1] = (struct rvfio_dma_owner_entry){ BI_IOVA1, cases[i].vaddr };
		failed = 77;
		EXPECT_EQ(cases[i].err, change_dma_owner(self->c, e, 2, &failed)) TH_LOG("%s", cases[i].what);
		EXPECT_EQ(1, failed) TH_LOG("%s", cases[i].what);
	}
	munmap(ro, 8 * PAGE_4K);
	bi_unchanged(&b);
	bi_teardown(self, &b);
}

/*
 * The owner itself moves its mappings to a second mmap of the same memory:
 * nothing is charged or pinned anew, the old mmap can go, DMA goes on, and
 * UNMAP releases everything. A device-read-only mapping accepts a
 * read-only range.
 */
TEST_F_TIMEOUT(edu, same_owner_new_vaddrs, DMA_TEST_TIMEOUT)
{
	struct rvfio_dma_owner_entry e[3];
	uint8_t *m2, *ro;
	uint32_t failed = 77;
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	uint64_t n = 0;
	struct bi b;

	REQUIRE_OWNER(self->c);
	bi_setup(&b);
	ASSERT_EQ(0, vfio_map(self->c, SZ_4G, b.m + 4 * PAGE_4K, 2 * PAGE_4K, RO));
	m2 = map_shared(b.fd, BI_PAGES * PAGE_4K, 0, PROT_READ | PROT_WRITE);
	ro = map_shared(b.fd, 2 * PAGE_4K, 4 * PAGE_4K, PROT_READ);
	ASSERT_NE(MAP_FAILED, m2);
	ASSERT_NE(MAP_FAILED, ro);
	e[0] = (struct rvfio_dma_owner_entry){ SZ_4G, (uintptr_t)ro };
	e[1] = (struct rvfio_dma_owner_entry){ BI_IOVA1, (uintptr_t)m2 + 8 * PAGE_4K };
	e[2] = (struct rvfio_dma_owner_entry){ BI_IOVA0, (uintptr_t)m2 };
	ASSERT_EQ(0, change_dma_owner(self->c, e, 3, &failed));
	EXPECT_EQ(NO_ENTRY, failed);
	EXPECT_EQ(lck0 + 18 * 4, vmlck_kb());
	ASSERT_PINS(pins0 + 18);
	ASSERT_EQ(0, munmap(b.m, BI_PAGES * PAGE_4K));
	b.m = m2;
	ASSERT_DEV_COPY(&self->dev, SZ_4G, m2 + 4 * PAGE_4K, BI_IOVA1 + 2 * PAGE_4K,
			m2 + 10 * PAGE_4K);
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ(18 * PAGE_4K, n);
	EXPECT_EQ(lck0, vmlck_kb());
	ASSERT_PINS(pins0);
	munmap(ro, 2 * PAGE_4K);
	bi_teardown(self, &b);
}

/* ==========================================================================
 * 2. Atomicity: the mappings' owner T, a forked server N as the caller
 * ========================================================================== */

/*
 * The mappings, in IOVA order; PFNMAP is edu #2's BAR0. The array the
 * correct call passes lists them as PAIR_ORDER says, so that its middle
 * entry (index 2) is M4, the last in IOVA order: checked after the PFNMAP
 * mapping got its new watch, which a failure there must drop again.
 */
enum { M0, M1, M2, MPEER, M4, NMAPS };
static const struct {
	uint64_t iova;
	size_t page, pages;	/* in the memfd; PFNMAP: none */
	uint32_t prot;
} pmaps[NMAPS] = {
	[M0] = { 0x10000000ull, 0, 8, RW },
	[M1] = { 0x10100000ull, 8, 8, RW },
	[M2] = { 0x10200000ull, 16, 16, RO },
	[MPEER] = { 0x40000000ull, 0, 0, RW },
	[M4] = { 0x50000000ull, 32, 8, RW },
};
static const int pair_order[NMAPS] = { M1, MPEER, M4, M0, M2 };
#define PAIR_MIDDLE	2	/* pair_order[2] == M4 */
#define PAIR_PEER_AT	1	/* pair_order[1] == MPEER */
#define PAIR_PAGES	40	/* charged: every memfd page */
#define PAIR_MEM_PAGES	64
#define PAIR_SCRATCH	(7 * PAGE_4K)	/* in M1 */

FIXTURE(pair) {
	struct edu e1;		/* DMA master; owns the container */
	int c, g2, d2;		/* edu #2's group and device fd */
	uint8_t *bar;		/* T's mmap of edu #2's BAR0 */
	uint64_t bar_size;
	int memfd;
	uint8_t *mem;		/* PAIR_MEM_PAGES pages */
	uint8_t *anon;		/* 8 pages of private anonymous memory */
	struct rvfio_dma_owner_entry e[NMAPS + 1];	/* the correct array (+ room) */
	struct conn n;
	long lck0, lck1, nlck0;
	long long pins1;
	/* mdev_only_container's own container */
	struct mdev_dev m;
	struct conn k;
	int mc;
};

FIXTURE_SETUP(pair)
{
	char err[256] = "";
	struct rep r;
	void *p;

	self->c = self->g2 = self->d2 = self->memfd = -1;
	self->e1.container = self->e1.group = self->e1.device = -1;
	self->bar = self->mem = self->anon = NULL;
	conn_init(&self->n);
	conn_init(&self->k);
	mdev_dev_init(&self->m);
	self->mc = -1;
	SKIP_IF_NO_EDU(2);
	ASSERT_EQ(0, edu_open(&self->e1, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("setup: %s", err);
	self->c = self->e1.container;
	REQUIRE_OWNER(self->c);
	ASSERT_EQ(0, peer_open(self->c, edu_bdf(edu_count() - 1), &self->g2, &self->d2, err,
			       sizeof(err))) TH_LOG("setup: %s", err);
	p = vfio_bar0_mmap(self->d2, PROT_READ | PROT_WRITE, &self->bar_size);
	ASSERT_NE(MAP_FAILED, p) TH_LOG("BAR0 of the peer: %s", strerror(errno));
	self->bar = p;
	ASSERT_EQ(self->bar_size, self->e1.bar0_size) TH_LOG("the two edus' BAR0 differ in size");
	self->memfd = memfd_new("owner_test", PAIR_MEM_PAGES * PAGE_4K, false);
	ASSERT_GE(self->memfd, 0);
	p = map_shared(self->memfd, PAIR_MEM_PAGES * PAGE_4K, 0, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	self->mem = p;
	memset(self->mem, 0, PAIR_MEM_PAGES * PAGE_4K);
	p = alloc_pages_4k(8 * PAGE_4K, 0x42);
	ASSERT_NE(MAP_FAILED, p);
	self->anon = p;

	self->lck0 = vmlck_kb();
	for (int i = 0; i < NMAPS; i++) {
		const void *va = i == MPEER ? (void *)self->bar : self->mem + pmaps[i].page * PAGE_4K;
		uint64_t size = i == MPEER ? self->bar_size : pmaps[i].pages * PAGE_4K;

		ASSERT_EQ(0, vfio_map(self->c, pmaps[i].iova, va, size, pmaps[i].prot))
			TH_LOG("setup: mapping %d", i);
	}
	for (int k = 0; k < NMAPS; k++) {
		int i = pair_order[k];

		self->e[k].iova = pmaps[i].iova;
		self->e[k].vaddr = i == MPEER ? (uintptr_t)self->bar :
				   (uintptr_t)(self->mem + pmaps[i].page * PAGE_4K);
	}
	self->lck1 = vmlck_kb();
	ASSERT_EQ(self->lck0 + PAIR_PAGES * 4, self->lck1);
	self->pins1 = foll_pins_outstanding();
	/* N: the same addresses in another mm (the memfd, the BAR: shared). */
	ASSERT_EQ(0, fork_server(&self->n, self->c, &self->e1, -1));
	r = R_VMLCK(&self->n);
	ASSERT_OK(r);
	self->nlck0 = r.vmlck;
}

FIXTURE_TEARDOWN(pair)
{
	conn_kill(&self->k);
	mdev_dev_close(&self->m);
	if (self->mc >= 0)
		close(self->mc);
	mdev_dev_destroy(&self->m);
	conn_kill(&self->n);
	if (self->c >= 0)
		vfio_unmap_all(self->c, NULL);
	if (self->bar)
		munmap(self->bar, self->bar_size);
	if (self->d2 >= 0)
		close(self->d2);
	if (self->g2 >= 0)
		close(self->g2);
	edu_close(&self->e1);
	if (self->mem)
		munmap(self->mem, PAIR_MEM_PAGES * PAGE_4K);
	if (self->anon)
		munmap(self->anon, 8 * PAGE_4K);
	if (self->memfd >= 0)
		close(self->memfd);
}

#define PEER_READS_ID() do { \
	uint32_t __v = 0; \
	ASSERT_EQ(0, p2p_read32(&self->e1, pmaps[MPEER].iova, pmaps[M1].iova + PAIR_SCRATCH, \
				self->mem + pmaps[M1].page * PAGE_4K + PAIR_SCRATCH, &__v)); \
	EXPECT_EQ(EDU_ID_VALUE, __v) TH_LOG("edu #1 read %#x through the PFNMAP mapping", __v); \
} while (0)

/*
 * Who holds the charge (T or N), exactly; the pins; with dma, the device
 * copies (M2, device-read-only -> M4; M0 -> M1) and reads the peer's ID.
 */
#define pair_state(t_owns, dma) __pair_state(_metadata, self, (t_owns), (dma))
static void __pair_state(struct __test_metadata *_metadata, FIXTURE_DATA(pair) *self,
			 bool t_owns, bool dma)
{
	struct rep r = R_VMLCK(&self->n);
	uint8_t *m = self->mem;

	ASSERT_OK(r);
	EXPECT_EQ(t_owns ? self->lck1 : self->lck0, vmlck_kb()) TH_LOG("T's VmLck");
	EXPECT_EQ(t_owns ? self->nlck0 : self->nlck0 + PAIR_PAGES * 4, r.vmlck) TH_LOG("N's VmLck");
	ASSERT_PINS(self->pins1);
	if (!dma)
		return;
	ASSERT_DEV_COPY(&self->e1, pmaps[M2].iova + PAGE_4K, m + 17 * PAGE_4K,
			pmaps[M4].iova + 3 * PAGE_4K, m + 35 * PAGE_4K);
	ASSERT_DEV_COPY(&self->e1, pmaps[M0].iova, m, pmaps[M1].iova, m + 8 * PAGE_4K);
	PEER_READS_ID();
}

/*
 * After a refused call: nothing changed; the correct call from N then
 * moves everything to N, DMA goes on, and T takes it all back.
 */
#define pair_then_correct() __pair_then_correct(_metadata, self)
static void __pair_then_correct(struct __test_metadata *_metadata, FIXTURE_DATA(pair) *self)
{
	struct rep r;
	uint32_t failed = 77;

	pair_state(true, true);
	r = r_change(&self->n, self->e, NMAPS, 0);
	ASSERT_EQ(0, r.ret) TH_LOG("the correct call after a refused one: %s", strerror(-r.ret));
	EXPECT_EQ(NO_ENTRY, r.failed);
	pair_state(false, true);
	ASSERT_EQ(0, change_dma_owner(self->c, self->e, NMAPS, &failed));
	EXPECT_EQ(NO_ENTRY, failed);
	pair_state(true, false);
}

/* A refused call from N: errno and index as expected. */
#define EXPECT_REFUSED(res, err, idx) do { \
	struct rep __r = (res); \
	EXPECT_EQ((err), __r.ret) TH_LOG("got %s (%s)", strerror(-__r.ret), __r.why); \
	EXPECT_EQ((uint32_t)(idx), __r.failed); \
} while (0)

/* One entry in the middle of the array maps other pages: EXDEV, index 2. */
TEST_F_TIMEOUT(pair, mismatch_in_middle_exdev, PAIR_TIMEOUT)
{
	struct rvfio_dma_owner_entry e[NMAPS];

	memcpy(e, self->e, sizeof(e));
	e[PAIR_MIDDLE].vaddr += PAGE_4K;	/* M4 shifted by a page: pages 33..40 */
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -EXDEV, PAIR_MIDDLE);
	pair_then_correct();
}

/* The PFNMAP entry names another device's BAR (edu #1's): EXDEV, its index. */
TEST_F_TIMEOUT(pair, pfnmap_other_bar_exdev, PAIR_TIMEOUT)
{
	struct rvfio_dma_owner_entry e[NMAPS];

	memcpy(e, self->e, sizeof(e));
	e[PAIR_PEER_AT].vaddr = (uintptr_t)self->e1.bar0;
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -EXDEV, PAIR_PEER_AT);
	/* Memory where the BAR was expected, and a BAR where memory was. */
	e[PAIR_PEER_AT].vaddr = (uintptr_t)self->mem;
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -EXDEV, PAIR_PEER_AT);
	memcpy(e, self->e, sizeof(e));
	e[PAIR_MIDDLE].vaddr = (uintptr_t)self->bar;
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -EXDEV, PAIR_MIDDLE);
	pair_then_correct();
}

/* A mapping without an entry (count one short): EINVAL, no entry to blame. */
TEST_F_TIMEOUT(pair, missing_entry_einval, PAIR_TIMEOUT)
{
	EXPECT_REFUSED(r_change(&self->n, self->e, NMAPS - 1, 0), -EINVAL, NO_ENTRY);
	EXPECT_REFUSED(r_change(&self->n, self->e + 1, NMAPS - 1, 0), -EINVAL, NO_ENTRY);
	pair_then_correct();
}

/*
 * An entry too many: a second one for a mapping (EEXIST) or one at an IOVA
 * where no mapping starts (ENOENT), appended or in place of a correct one:
 * its index.
 */
TEST_F_TIMEOUT(pair, extra_entry_eexist_enoent, PAIR_TIMEOUT)
{
	struct rvfio_dma_owner_entry e[NMAPS + 1];

	memcpy(e, self->e, sizeof(self->e[0]) * NMAPS);
	e[NMAPS] = self->e[PAIR_PEER_AT];
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS + 1, 0), -EEXIST, NMAPS);
	e[NMAPS] = (struct rvfio_dma_owner_entry){ pmaps[M0].iova + PAGE_4K,
						   (uintptr_t)self->mem + PAGE_4K };
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS + 1, 0), -ENOENT, NMAPS);
	e[NMAPS] = (struct rvfio_dma_owner_entry){ 0x70000000ull, (uintptr_t)self->mem };
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS + 1, 0), -ENOENT, NMAPS);
	/* In place: the array has the right length but names a mapping twice. */
	e[PAIR_MIDDLE + 1] = self->e[0];
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -EEXIST, PAIR_MIDDLE + 1);
	memcpy(e, self->e, sizeof(self->e[0]) * NMAPS);
	e[PAIR_MIDDLE].iova = 0x70000000ull;
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -ENOENT, PAIR_MIDDLE);
	pair_then_correct();
}

/*
 * N without CAP_IPC_LOCK and with RLIMIT_MEMLOCK one page short of the
 * charge: ENOMEM, no entry to blame. With the limit exactly the charge the
 * call succeeds.
 */
TEST_F_TIMEOUT(pair, new_owner_memlock_enomem, PAIR_TIMEOUT)
{
	uint64_t need = (uint64_t)(self->nlck0 / 4 + PAIR_PAGES) * PAGE_4K;
	uint32_t failed = 77;
	struct rep r;

	ASSERT_OK(call(&self->n, (struct req){ .op = OP_CAP, .flags = 0 }));
	ASSERT_OK(call(&self->n, (struct req){ .op = OP_MEMLOCK, .a = need - PAGE_4K }));
	EXPECT_REFUSED(r_change(&self->n, self->e, NMAPS, 0), -ENOMEM, NO_ENTRY);
	pair_state(true, true);
	ASSERT_OK(call(&self->n, (struct req){ .op = OP_MEMLOCK, .a = need }));
	r = r_change(&self->n, self->e, NMAPS, 0);
	ASSERT_EQ(0, r.ret) TH_LOG("limit exactly the charge: %s", strerror(-r.ret));
	EXPECT_EQ(NO_ENTRY, r.failed);
	pair_state(false, true);
	ASSERT_OK(call(&self->n, (struct req){ .op = OP_CAP, .flags = 1 }));
	ASSERT_OK(call(&self->n, (struct req){ .op = OP_MEMLOCK, .flags = 1 }));
	ASSERT_EQ(0, change_dma_owner(self->c, self->e, NMAPS, &failed));
	pair_state(true, false);
}

/* Private anonymous memory for one entry: EOPNOTSUPP, its index. */
TEST_F_TIMEOUT(pair, private_anon_eopnotsupp, PAIR_TIMEOUT)
{
	struct rvfio_dma_owner_entry e[NMAPS];

	memcpy(e, self->e, sizeof(e));
	/* N's copy of T's anonymous buffer, at the same address. */
	e[PAIR_MIDDLE].vaddr = (uintptr_t)self->anon;
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -EOPNOTSUPP, PAIR_MIDDLE);
	pair_then_correct();
}

/* Other refusals from another process: EFAULT, EACCES, EINVAL, each its index. */
TEST_F_TIMEOUT(pair, bad_ranges_name_entry, PAIR_TIMEOUT)
{
	struct rvfio_dma_owner_entry e[NMAPS];
	uint64_t ro, hole;
	struct rep r;

	r = R_MMAP(&self->n, self->memfd, pmaps[M1].page * PAGE_4K, 8 * PAGE_4K, PROT_READ);
	ASSERT_OK(r);
	ro = r.a;
	r = R_MMAP(&self->n, -1, 0, 8 * PAGE_4K, PROT_READ);
	ASSERT_OK(r);
	hole = r.a;
	ASSERT_OK(R_MUNMAP(&self->n, hole, 8 * PAGE_4K));

	memcpy(e, self->e, sizeof(e));
	e[0].vaddr = ro;			/* M1 is writable */
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -EACCES, 0);
	e[0].vaddr = hole;
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -EFAULT, 0);
	e[0].vaddr = self->e[0].vaddr + 16;
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -EINVAL, 0);
	pair_then_correct();
}

/*
 * @failed not writable (the argument on a read-only page): EFAULT before
 * anything changed, although the array itself is correct.
 */
TEST_F_TIMEOUT(pair, failed_not_writable_efault, PAIR_TIMEOUT)
{
	EXPECT_REFUSED(r_change(&self->n, self->e, NMAPS, CHANGE_RO_ARG), -EFAULT, 0x5a5a5a5a);
	pair_then_correct();
}

/*
 * The PFNMAP watch travels with the mapping: moved to N and back to T, the
 * mapping is not revoked by anything N does with its mmap, but T's munmap
 * of its BAR mmap revokes it.
 */
TEST_F_TIMEOUT(pair, pfnmap_watch_follows_owner, PAIR_TIMEOUT)
{
	struct rep r;
	uint32_t failed = 77;
	uint32_t v = 0xdeadbeef;

	r = r_change(&self->n, self->e, NMAPS, 0);
	ASSERT_EQ(0, r.ret) TH_LOG("%s", strerror(-r.ret));
	ASSERT_EQ(0, change_dma_owner(self->c, self->e, NMAPS, &failed));
	/* N's mapping of the BAR is nobody's watch now: its munmap revokes nothing. */
	ASSERT_OK(R_MUNMAP(&self->n, (uintptr_t)self->bar, self->bar_size));
	r = call(&self->n, (struct req){ .op = OP_QUERY, .a = pmaps[MPEER].iova });
	ASSERT_OK(r);
	EXPECT_EQ(RVFIO_DMA_QUERY_PFNMAP, r.a);
	PEER_READS_ID();
	/* T's is. */
	ASSERT_EQ(0, munmap(self->bar, self->bar_size));
	self->bar = NULL;
	r = call(&self->n, (struct req){ .op = OP_QUERY, .a = pmaps[MPEER].iova });
	ASSERT_OK(r);
	EXPECT_EQ(RVFIO_DMA_QUERY_PFNMAP | RVFIO_DMA_QUERY_REVOKED, r.a);
	EXPECT_EQ(self->bar_size, r.b);
	ASSERT_EQ(0, p2p_read32(&self->e1, pmaps[MPEER].iova, pmaps[M1].iova + PAIR_SCRATCH,
				self->mem + pmaps[M1].page * PAGE_4K + PAIR_SCRATCH, &v));
	EXPECT_EQ(0, v) TH_LOG("the revoked BAR still answers (%#x)", v);
}

/*
 * A vaddr invalidated with VFIO_DMA_UNMAP_FLAG_VADDR: a refused call leaves
 * it invalid (MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR restores it), a
 * successful one makes it valid again (that restore is then EINVAL).
 */
TEST_F_TIMEOUT(pair, invalidated_vaddr_made_valid, PAIR_TIMEOUT)
{
	const uint64_t iova = pmaps[M0].iova, size = pmaps[M0].pages * PAGE_4K;
	const uint32_t unmap_vaddr = VFIO_DMA_UNMAP_FLAG_VADDR;
	struct rvfio_dma_owner_entry e[NMAPS];
	uint32_t failed = 77;
	uint64_t n = 0;
	struct rep r;

	memcpy(e, self->e, sizeof(e));
	e[PAIR_MIDDLE].vaddr += PAGE_4K;
	ASSERT_EQ(0, vfio_unmap(self->c, iova, size, unmap_vaddr, &n));
	EXPECT_REFUSED(r_change(&self->n, e, NMAPS, 0), -EXDEV, PAIR_MIDDLE);
	EXPECT_EQ(0, vfio_map(self->c, iova, self->mem, size, VFIO_DMA_MAP_FLAG_VADDR))
		TH_LOG("the refused call changed the invalid vaddr");
	ASSERT_EQ(0, vfio_unmap(self->c, iova, size, unmap_vaddr, &n));
	r = r_change(&self->n, self->e, NMAPS, 0);
	ASSERT_EQ(0, r.ret) TH_LOG("%s", strerror(-r.ret));
	EXPECT_EQ(-EINVAL, vfio_map(self->c, iova, self->mem, size, VFIO_DMA_MAP_FLAG_VADDR))
		TH_LOG("still invalid after the call");
	pair_state(false, true);
	/* Valid again: it can be invalidated again, and T takes everything back. */
	EXPECT_EQ(0, vfio_unmap(self->c, iova, size, unmap_vaddr, &n));
	ASSERT_EQ(0, change_dma_owner(self->c, self->e, NMAPS, &failed));
	pair_state(true, true);
}

/*
 * The PFNMAP range of the new owner is invalidated over and over (a thread
 * of N flips its BAR mmap read-only and back) while N makes the call. Each
 * call either succeeds, or fails with EAGAIN (invalidated after its watch
 * was set up) or EACCES (read-only just then), naming the PFNMAP entry,
 * and changes nothing. Once N owns the mapping its flips revoke it.
 */
TEST_F_TIMEOUT(pair, pfnmap_invalidated_during_call, PAIR_TIMEOUT)
{
	int ok = 0, again = 0, acces = 0;
	uint32_t failed = 77;
	time_t end;
	struct rep r;

	ASSERT_OK(call(&self->n, (struct req){ .op = OP_TOGGLE, .flags = 1,
					       .a = (uintptr_t)self->bar, .b = self->bar_size }));
	end = time(NULL) + 60;
	for (int i = 0; i < 300 && time(NULL) < end && (!again || ok < 3); i++) {
		r = r_change(&self->n, self->e, NMAPS, 0);
		if (r.ret == 0) {
			ok++;
			EXPECT_EQ(NO_ENTRY, r.failed);
			EXPECT_EQ(self->nlck0 + PAIR_PAGES * 4, r.vmlck);
			EXPECT_EQ(self->lck0, vmlck_kb());
			ASSERT_EQ(0, change_dma_owner(self->c, self->e, NMAPS, &failed));
			continue;
		}
		if (r.ret == -EAGAIN)
			again++;
		else if (r.ret == -EACCES || r.ret == -EFAULT)
			acces++;	/* read-only vma, or pte, just then */
		else
			ASSERT_EQ(0, r.ret) TH_LOG("call %d: %s", i, strerror(-r.ret));
		EXPECT_EQ(PAIR_PEER_AT, r.failed) TH_LOG("call %d: %s", i, strerror(-r.ret));
		EXPECT_EQ(self->nlck0, r.vmlck);
		EXPECT_EQ(self->lck1, vmlck_kb());
	}
	r = call(&self->n, (struct req){ .op = OP_TOGGLE, .flags = 0 });
	ASSERT_OK(r);
	TH_LOG("%d calls succeeded, %d EAGAIN, %d EACCES/EFAULT, %llu flips", ok, again, acces,
	       (unsigned long long)r.a);
	EXPECT_LT(0, ok + again + acces);
	pair_state(true, false);
	ASSERT_DEV_COPY(&self->e1, pmaps[M0].iova, self->mem, pmaps[M1].iova, self->mem + 8 * PAGE_4K);
	r = call(&self->n, (struct req){ .op = OP_QUERY, .a = pmaps[MPEER].iova });
	ASSERT_OK(r);
	if (ok)
		EXPECT_EQ(RVFIO_DMA_QUERY_PFNMAP | RVFIO_DMA_QUERY_REVOKED, r.a)
			TH_LOG("N owned the mapping while flipping its range");
}

/*
 * A container with only an mdev (no IOMMU domain, nothing pinned at
 * MAP_DMA): the pages the mdev pinned are what the call compares, and
 * their charge moves. Afterwards pins (whichever process asks the device)
 * are taken through N's mm and charged to N, and dma_rw works in N's
 * context and no longer in T's.
 */
TEST_F_TIMEOUT(pair, mdev_only_container, PAIR_TIMEOUT)
{
	const char *why = mdev_dev_missing();
	const uint64_t iova = 0x100000ull;
	const uint32_t prw = RVFIO_MDEV_PROT_READ | RVFIO_MDEV_PROT_WRITE;
	struct rvfio_dma_owner_entry e;
	long lck0 = vmlck_kb(), klck0;
	uint8_t tmp[16];
	char err[256] = "";
	struct rep r;

	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, mdev_dev_up(&self->m, &self->mc, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(1, vfio_check_ext(self->mc, RVFIO_DMA_OWNER));
	ASSERT_EQ(0, vfio_map(self->mc, iova, self->mem, 8 * PAGE_4K, RW));
	EXPECT_EQ(lck0, vmlck_kb()) TH_LOG("an mdev-only MAP_DMA pins nothing");
	ASSERT_EQ(2, mdev_dev_pin(self->m.device, iova + 2 * PAGE_4K, 2, prw));
	EXPECT_EQ(lck0 + 8, vmlck_kb());
	ASSERT_EQ(0, fork_server(&self->k, self->mc, NULL, self->m.device));
	r = R_VMLCK(&self->k);
	ASSERT_OK(r);
	klck0 = r.vmlck;
	/* A pinned page differs: EXDEV, nothing moves. */
	e = (struct rvfio_dma_owner_entry){ iova, (uintptr_t)self->mem + PAGE_4K };
	EXPECT_REFUSED(r_change(&self->k, &e, 1, 0), -EXDEV, 0);
	EXPECT_EQ(lck0 + 8, vmlck_kb());
	e.vaddr = (uintptr_t)self->mem;
	r = r_change(&self->k, &e, 1, 0);
	ASSERT_EQ(0, r.ret) TH_LOG("%s", strerror(-r.ret));
	EXPECT_EQ(klck0 + 8, r.vmlck);
	EXPECT_EQ(lck0, vmlck_kb());
	/* A new pin, asked for by T: N's mm, N's charge. */
	ASSERT_EQ(1, mdev_dev_pin(self->m.device, iova + 5 * PAGE_4K, 1, RVFIO_MDEV_PROT_READ));
	r = R_VMLCK(&self->k);
	EXPECT_EQ(klck0 + 12, r.vmlck);
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(-EFAULT, mdev_dev_dma_rw(self->m.device, iova, tmp, sizeof(tmp), 0))
		TH_LOG("T is not the owner");
	r = call(&self->k, (struct req){ .op = OP_MDEV_RW, .a = iova + 6 * PAGE_4K + 8,
					 .b = (uintptr_t)self->mem + 6 * PAGE_4K + 8, .c = 64 });
	EXPECT_EQ(0, r.ret) TH_LOG("%s", r.why);
	EXPECT_EQ(2, mdev_dev_unpin(self->m.device, iova + 2 * PAGE_4K, 2));
	EXPECT_EQ(1, mdev_dev_unpin(self->m.device, iova + 5 * PAGE_4K, 1));
	r = R_VMLCK(&self->k);
	EXPECT_EQ(klck0, r.vmlck);
	EXPECT_EQ(0, vfio_unmap_all(self->mc, NULL));
}

/* ==========================================================================
 * 3. Live update: A maps and DMAs, its exec()ed successor N takes over
 * ========================================================================== */

#define FL_MEM_LEN	(4 * SZ_1M)		/* memfd: M0 = [0, 2M), M1 = [2M, 4M) */
#define FL_HUGE_LEN	SZ_2M			/* hugetlbfs, one 2 MiB page */
#define FL_IOVA_M0	0x10000000ull
#define FL_IOVA_M1	0x10400000ull
#define FL_IOVA_H	0x20000000ull
#define FL_IOVA_PEER	0x40000000ull
#define FL_IOVA_EXTRA	0x60000000ull
#define FL_KB		((FL_MEM_LEN + FL_HUGE_LEN) / 1024)
#define FL_PAGES	((FL_MEM_LEN + FL_HUGE_LEN) / PAGE_4K)
#define FL_SCRATCH	0			/* M1's first page */
#define FL_MDEV_OFF	(32 * PAGE_4K)		/* in M1 */
#define FL_LOOP_WAIT_S	120

FIXTURE(flow) {
	struct conn a, n;
	struct mdev_dev m;
	int fds[SRV_MAX_FDS];
	int nfds;
};

FIXTURE_SETUP(flow)
{
	conn_init(&self->a);
	conn_init(&self->n);
	mdev_dev_init(&self->m);
	self->nfds = 0;
	if (access("/dev/vfio/vfio", F_OK))
		SKIP(return, "/dev/vfio/vfio does not exist: vfio is not loaded");
	if (edu_count() < 2)
		SKIP(return, "needs 2 edu devices in EDU_BDFS, have %d", edu_count());
	/* N's parent A exits first: N must become our child. */
	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1));
}

FIXTURE_TEARDOWN(flow)
{
	conn_kill(&self->n);
	conn_kill(&self->a);
	for (int i = 0; i < self->nfds; i++)
		if (self->fds[i] >= 0)
			close(self->fds[i]);
	mdev_dev_destroy(&self->m);
}

/* A's or N's memory, in its own address space. */
struct where {
	uint64_t mem, huge, bar;
};

#define FL_ENTRIES(w) { \
	{ FL_IOVA_H, (w).huge }, { FL_IOVA_M1, (w).mem + SZ_2M }, \
	{ FL_IOVA_PEER, (w).bar }, { FL_IOVA_M0, (w).mem }, \
}

/* The loop of process w: M0 -> hugetlbfs -> M0 (other pages), and the peer's ID. */
static struct loop_cfg fl_loop(struct where w)
{
	return (struct loop_cfg){
		.src_iova = FL_IOVA_M0, .src_va = w.mem,
		.mid_iova = FL_IOVA_H, .mid_va = w.huge,
		.back_iova = FL_IOVA_M0 + LOOP_PAGES * PAGE_4K,
		.back_va = w.mem + LOOP_PAGES * PAGE_4K,
		.peer_iova = FL_IOVA_PEER,
		.scratch_iova = FL_IOVA_M1 + FL_SCRATCH, .scratch_va = w.mem + SZ_2M + FL_SCRATCH,
	};
}

/* Waits until server k's loop has done more than `after` round trips. */
static long loop_wait(struct conn *k, long after)
{
	time_t end = time(NULL) + FL_LOOP_WAIT_S;
	struct rep r;

	do {
		r = call(k, (struct req){ .op = OP_LOOP_COUNT });
		if (r.ret || (long)r.a > after)
			return r.ret ? r.ret : (long)r.a;
		usleep(100 * 1000);
	} while (time(NULL) < end);
	return -ETIMEDOUT;
}

/*
 * The live-update flow. T sets up a container with edu #1 (DMA master),
 * edu #2 (its BAR0 is the PFNMAP range) and, when the sample is loaded, an
 * mdev; it forks A, gives A everything and keeps nothing. A maps a memfd
 * (two mappings), hugetlbfs memory and the BAR, and keeps edu #1 doing
 * round trips through all of them in a thread. A forks and the child execs
 * this binary as N, which inherits the fds, maps the memory at its own
 * addresses and makes the call while A's loop runs. Then A stops (every
 * round trip bit-exact) and exits; N goes on: DMA through its own BAR0
 * mmap, the peer still reachable, its own MAP/UNMAP, the mdev's dma_rw.
 * Counters: VmLck moves from A to N exactly, the outstanding pins stay the
 * same across the call and A's exit, and are back at the start when N
 * exits.
 */
TEST_F_TIMEOUT(flow, exec_successor_takes_over, FLOW_TIMEOUT)
{
	int ta[2], at[2], tn[2], nt[2], g1, d1, g2, d2, mg = -1, md = -1, memfd, hugefd;
	uint64_t bar_off = 0, bar_size = 0, extra = 0;
	const char *no_mdev = mdev_dev_missing();
	long long pins0, pins_mapped;
	struct where wa, wn;
	long lck_t0, lck_a0, lck_n0, trips;
	char err[256] = "";
	struct edu e1;
	struct rep r;
	int c, status;
	void *p;

	lck_t0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_NE(LLONG_MIN, pins0);

	/* ---- T: the container, every device, the memory (not mapped) ---- */
	ASSERT_EQ(0, edu_open(&e1, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	c = e1.container;
	g1 = e1.group;
	d1 = e1.device;
	self->fds[self->nfds++] = c;
	self->fds[self->nfds++] = g1;
	self->fds[self->nfds++] = d1;
	REQUIRE_OWNER(c);
	ASSERT_EQ(0, peer_open(c, edu_bdf(edu_count() - 1), &g2, &d2, err, sizeof(err)))
		TH_LOG("%s", err);
	self->fds[self->nfds++] = g2;
	self->fds[self->nfds++] = d2;
	ASSERT_EQ(0, vfio_bar0_region(d2, &bar_off, &bar_size));
	memfd = memfd_new("owner_test", FL_MEM_LEN, false);
	ASSERT_GE(memfd, 0);
	self->fds[self->nfds++] = memfd;
	hugefd = memfd_new("owner_test_huge", FL_HUGE_LEN, true);
	if (hugefd < 0)
		SKIP(return, "no hugetlbfs memfd (%s): the flow maps 2 MiB pages", strerror(-hugefd));
	self->fds[self->nfds++] = hugefd;
	p = map_shared(hugefd, FL_HUGE_LEN, 0, PROT_READ | PROT_WRITE);
	if (p == MAP_FAILED)
		SKIP(return, "no free 2 MiB hugepage (mmap: %s)", strerror(errno));
	memset(p, 0, FL_HUGE_LEN);	/* the page stays in the file */
	munmap(p, FL_HUGE_LEN);
	if (no_mdev) {
		TH_LOG("mdev part skipped: %s", no_mdev);
	} else {
		ASSERT_EQ(0, mdev_dev_up(&self->m, &c, 0, err, sizeof(err))) TH_LOG("%s", err);
		/* self->fds closes them: mdev_dev_destroy() only removes the mdev. */
		mg = self->m.group;
		md = self->m.device;
		self->m.group = self->m.device = -1;
		self->fds[self->nfds++] = mg;
		self->fds[self->nfds++] = md;
	}
	ASSERT_EQ(0, pipe2(ta, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(at, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(tn, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(nt, O_CLOEXEC));

	/* ---- A: a fork of T that gets everything; T keeps none of it ---- */
	self->a.pid = fork();
	ASSERT_GE(self->a.pid, 0);
	if (self->a.pid == 0) {
		static struct srv s;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(ta[1]);
		close(at[0]);
		close(tn[1]);
		close(nt[0]);
		srv_init(&s, ta[0], at[1], c, &e1, md);
		srv_run(&s);
	}
	close(ta[0]);
	close(at[1]);
	self->a.to = ta[1];
	self->a.from = at[0];
	for (int i = 0; i < self->nfds; i++)
		close(self->fds[i]);
	munmap((void *)e1.bar0, e1.bar0_size);
	/* The fds N inherits (the same numbers in A and N). */
	self->fds[0] = tn[0];
	self->fds[1] = nt[1];
	self->fds[2] = c;
	self->fds[3] = g1;
	self->fds[4] = d1;
	self->fds[5] = g2;
	self->fds[6] = d2;
	self->fds[7] = memfd;
	self->fds[8] = hugefd;
	self->fds[9] = mg;
	self->fds[10] = md;
	self->nfds = 0;		/* none of them is ours to close */

	/* ---- A maps ---- */
	r = R_VMLCK(&self->a);
	ASSERT_OK(r);
	lck_a0 = r.vmlck;
	r = R_MMAP(&self->a, memfd, 0, FL_MEM_LEN, PROT_READ | PROT_WRITE);
	ASSERT_OK(r);
	wa.mem = r.a;
	r = R_MMAP(&self->a, hugefd, 0, FL_HUGE_LEN, PROT_READ | PROT_WRITE);
	ASSERT_OK(r);
	wa.huge = r.a;
	r = R_MMAP(&self->a, d2, bar_off, bar_size, PROT_READ | PROT_WRITE);
	ASSERT_OK(r);
	wa.bar = r.a;
	ASSERT_OK(call(&self->a, (struct req){ .op = OP_MAP_DMA, .a = FL_IOVA_M0, .b = wa.mem,
					       .c = SZ_2M, .flags = RW }));
	ASSERT_OK(call(&self->a, (struct req){ .op = OP_MAP_DMA, .a = FL_IOVA_M1,
					       .b = wa.mem + SZ_2M, .c = SZ_2M, .flags = RW }));
	ASSERT_OK(call(&self->a, (struct req){ .op = OP_MAP_DMA, .a = FL_IOVA_H, .b = wa.huge,
					       .c = FL_HUGE_LEN, .flags = RW }));
	r = call(&self->a, (struct req){ .op = OP_MAP_DMA, .a = FL_IOVA_PEER, .b = wa.bar,
					 .c = bar_size, .flags = RW });
	ASSERT_OK(r);
	EXPECT_EQ(lck_a0 + FL_KB, r.vmlck) TH_LOG("A's VmLck after mapping");
	pins_mapped = foll_pins_outstanding();
	EXPECT_EQ(pins0 + FL_PAGES, pins_mapped);
	if (md >= 0) {
		/* A owns the mappings: its dma_rw works. */
		r = call(&self->a, (struct req){ .op = OP_MDEV_RW, .a = FL_IOVA_M1 + FL_MDEV_OFF,
						 .b = wa.mem + SZ_2M + FL_MDEV_OFF, .c = 256 });
		ASSERT_OK(r);
	}
	ASSERT_OK(call(&self->a, (struct req){ .op = OP_LOOP_START, .lp = fl_loop(wa) }));
	ASSERT_LT(0, loop_wait(&self->a, 0)) TH_LOG("A's loop does not run");

	/* ---- A forks, the child execs N ---- */
	{
		struct req q = { .op = OP_SPAWN, .nfds = 11 };

		memcpy(q.fds, self->fds, sizeof(int) * 11);
		if (md < 0)
			q.nfds = 9;
		r = call(&self->a, q);
		ASSERT_OK(r);
		self->n.pid = r.a;
		self->n.to = tn[1];
		self->n.from = nt[0];
		close(tn[0]);
		close(nt[1]);
	}
	r = R_VMLCK(&self->n);
	ASSERT_OK(r);	/* the exec()ed server answers */
	lck_n0 = r.vmlck;
	/* N maps the memory where its own address space has room. */
	r = R_MMAP(&self->n, memfd, 0, FL_MEM_LEN, PROT_READ | PROT_WRITE);
	ASSERT_OK(r);
	wn.mem = r.a;
	r = R_MMAP(&self->n, hugefd, 0, FL_HUGE_LEN, PROT_READ | PROT_WRITE);
	ASSERT_OK(r);
	wn.huge = r.a;
	r = R_MMAP(&self->n, d2, bar_off, bar_size, PROT_READ | PROT_WRITE);
	ASSERT_OK(r);
	wn.bar = r.a;
	TH_LOG("A maps at %#llx/%#llx/%#llx, N at %#llx/%#llx/%#llx",
	       (unsigned long long)wa.mem, (unsigned long long)wa.huge, (unsigned long long)wa.bar,
	       (unsigned long long)wn.mem, (unsigned long long)wn.huge, (unsigned long long)wn.bar);
	EXPECT_TRUE(wa.mem != wn.mem || wa.huge != wn.huge || wa.bar != wn.bar);
	r = call(&self->n, (struct req){ .op = OP_EDU_MAP });
	ASSERT_OK(r);	/* N maps edu #1 itself */
	if (md >= 0) {
		/* Not the owner yet: dma_rw from N's context cannot reach its memory. */
		r = call(&self->n, (struct req){ .op = OP_MDEV_PROBE, .a = FL_IOVA_M1 });
		EXPECT_EQ(-EFAULT, r.ret);
	}

	/* ---- the call, while A's loop runs ---- */
	ASSERT_PINS(pins_mapped);
	EXPECT_EQ(lck_a0 + FL_KB, vmlck_kb_pid(self->a.pid));
	trips = loop_wait(&self->a, 0);
	{
		struct rvfio_dma_owner_entry e[] = FL_ENTRIES(wn);

		r = r_change(&self->n, e, 4, 0);
	}
	ASSERT_EQ(0, r.ret) TH_LOG("N's call: %s", strerror(-r.ret));
	EXPECT_EQ(NO_ENTRY, r.failed);
	EXPECT_EQ(lck_n0 + FL_KB, r.vmlck) TH_LOG("N's VmLck after the call");
	EXPECT_EQ(lck_n0 + FL_KB, vmlck_kb_pid(self->n.pid));
	EXPECT_EQ(lck_a0, vmlck_kb_pid(self->a.pid)) TH_LOG("A's VmLck after the call");
	ASSERT_PINS(pins_mapped);
	if (md >= 0) {
		r = call(&self->a, (struct req){ .op = OP_MDEV_PROBE, .a = FL_IOVA_M1 });
		EXPECT_EQ(-EFAULT, r.ret) TH_LOG("A's dma_rw after it lost the mappings");
	}
	/* DMA never stopped: the loop goes on past the call, bit-exact. */
	ASSERT_LT(trips, loop_wait(&self->a, trips + 1));
	r = call(&self->a, (struct req){ .op = OP_LOOP_STOP });
	ASSERT_OK(r);
	TH_LOG("A's loop: %llu round trips", (unsigned long long)r.a);
	EXPECT_EQ(0, r.b) TH_LOG("%llu of %llu round trips failed; first: %s",
				 (unsigned long long)r.b, (unsigned long long)r.a, r.why);

	/* ---- A exits with everything still open ---- */
	ASSERT_EQ(0, conn_exit(&self->a)) TH_LOG("A's exit status");
	ASSERT_PINS(pins_mapped);
	EXPECT_EQ(lck_n0 + FL_KB, vmlck_kb_pid(self->n.pid));
	/* A's exit took its mm: the BAR mapping's watch is on N's now. */
	r = call(&self->n, (struct req){ .op = OP_QUERY, .a = FL_IOVA_PEER });
	ASSERT_OK(r);
	EXPECT_EQ(RVFIO_DMA_QUERY_PFNMAP, r.a) TH_LOG("revoked by A's exit");

	/* ---- N goes on through its own mappings ---- */
	r = call(&self->n, (struct req){ .op = OP_LOOP_START, .lp = fl_loop(wn) });
	ASSERT_OK(r);
	ASSERT_LT(3, loop_wait(&self->n, 3)) TH_LOG("N's loop");
	r = call(&self->n, (struct req){ .op = OP_LOOP_STOP });
	ASSERT_OK(r);
	EXPECT_EQ(0, r.b) TH_LOG("N: %llu of %llu round trips failed; first: %s",
				 (unsigned long long)r.b, (unsigned long long)r.a, r.why);
	/* Its own MAP/UNMAP: pinned through its mm, charged to it. */
	r = R_MMAP(&self->n, -1, 0, 16 * PAGE_4K, PROT_READ | PROT_WRITE);
	ASSERT_OK(r);
	extra = r.a;
	r = call(&self->n, (struct req){ .op = OP_MAP_DMA, .a = FL_IOVA_EXTRA, .b = extra,
					 .c = 16 * PAGE_4K, .flags = RW });
	ASSERT_OK(r);
	EXPECT_EQ(lck_n0 + FL_KB + 64, r.vmlck);
	ASSERT_PINS(pins_mapped + 16);
	ASSERT_OK(R_COPY(&self->n, FL_IOVA_M1 + 16 * PAGE_4K, wn.mem + SZ_2M + 16 * PAGE_4K,
			 FL_IOVA_EXTRA + 5 * PAGE_4K, extra + 5 * PAGE_4K));
	ASSERT_OK(R_COPY(&self->n, FL_IOVA_EXTRA + 15 * PAGE_4K, extra + 15 * PAGE_4K,
			 FL_IOVA_H + 64 * PAGE_4K, wn.huge + 64 * PAGE_4K));
	r = call(&self->n, (struct req){ .op = OP_UNMAP_DMA, .a = FL_IOVA_EXTRA,
					 .b = 16 * PAGE_4K });
	ASSERT_OK(r);
	EXPECT_EQ(16 * PAGE_4K, r.a);
	EXPECT_EQ(lck_n0 + FL_KB, r.vmlck);
	ASSERT_PINS(pins_mapped);
	if (md >= 0) {
		/* The mdev's dma_rw now reaches N's memory, from N and from a kthread. */
		r = call(&self->n, (struct req){ .op = OP_MDEV_RW, .a = FL_IOVA_M1 + FL_MDEV_OFF,
						 .b = wn.mem + SZ_2M + FL_MDEV_OFF, .c = 512 });
		EXPECT_EQ(0, r.ret) TH_LOG("%s", r.why);
		r = call(&self->n, (struct req){ .op = OP_MDEV_RW, .a = FL_IOVA_H + 100,
						 .b = wn.huge + 100, .c = 300,
						 .flags = RVFIO_MDEV_DMA_RW_KTHREAD });
		EXPECT_EQ(0, r.ret) TH_LOG("%s", r.why);
	}
	/* N's munmap of its BAR mmap revokes the mapping: the watch is N's. */
	ASSERT_OK(R_MUNMAP(&self->n, wn.bar, bar_size));
	r = call(&self->n, (struct req){ .op = OP_QUERY, .a = FL_IOVA_PEER });
	ASSERT_OK(r);
	EXPECT_EQ(RVFIO_DMA_QUERY_PFNMAP | RVFIO_DMA_QUERY_REVOKED, r.a);
	r = call(&self->n, (struct req){ .op = OP_P2P_READ, .a = FL_IOVA_PEER,
					 .b = FL_IOVA_M1 + FL_SCRATCH,
					 .c = wn.mem + SZ_2M + FL_SCRATCH });
	ASSERT_OK(r);
	EXPECT_EQ(0, r.a) TH_LOG("the revoked BAR still answers (%#llx)", (unsigned long long)r.a);

	/* ---- N exits: everything is released ---- */
	status = conn_exit(&self->n);
	ASSERT_EQ(0, status) TH_LOG("N's exit status (was it reparented to us?)");
	ASSERT_PINS(pins0);
	EXPECT_EQ(lck_t0, vmlck_kb());
	mdev_dev_destroy(&self->m);
}

int main(int argc, char **argv)
{
	if (argc == 7 && !strcmp(argv[1], SERVER_ARG))
		srv_exec_main(argv);
	return test_harness_run(argc, argv);
}
