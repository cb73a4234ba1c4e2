// SPDX-License-Identifier: GPL-2.0
/*
 * fault_bench: the "faults" case of rvfio_bench (Documentation/bench.rst):
 * how fast DMA faults reach user space through rvfio's fault ring, against
 * iommufd's fault queue on the same kernel.
 *
 * rvfio: an rvfio_mdev_sample mdev (samples/mdev/) alone in a type1v2
 * container with a fault ring; its vfio_dma_rw() on an IOVA that is not
 * mapped is a fault of rvfio's own translation, recorded in the ring (or,
 * for the round trip, a page request). iommufd: the selftest mock device
 * (CONFIG_IOMMUFD_TEST) on a hwpt with a fault queue;
 * IOMMU_TEST_OP_TRIGGER_IOPF reports a page request, which the consumer
 * read()s and answers with write() (iommufd queues nothing else). In both,
 * the producer is one thread doing one ioctl per fault and the consumer
 * another, blocked until woken. The mock device gets its mock IOMMU only
 * when no VT-d is registered (6.12 gives devices without firmware IOMMU
 * data to the first IOMMU driver): the backend "iommufd-mock" is a boot
 * with intel_iommu=off that runs only this case.
 *
 * Measured, each repetition a line
 *   BENCH-FAULT {"backend":..,"case":..,"value":..,"unit":..,...}
 * - fault_rate: FAULTS faults as fast as the producer can, until the
 *   consumer holds them all: faults per second. rvfio's consumer reads the
 *   eventfd once per wake-up and drains the mapped records without a
 *   syscall each; iommufd's reads up to 64 records per read() and answers
 *   them with one write().
 * - wake_us: one fault at a time, the consumer blocked first: from before
 *   the producer's ioctl to the consumer holding the record (rvfio: back
 *   from read() of the eventfd, record copied from the ring; iommufd: back
 *   from poll() and read() of the record). Median and 99th percentile of
 *   SAMPLES faults.
 * - page_rtt_us: a page request's round trip: rvfio from before the mdev's
 *   vfio_dma_rw() to its return, the consumer answering INVALID (the access
 *   waits in the kernel meanwhile); iommufd from before the trigger to the
 *   consumer's write() of the response returning (the trigger does not
 *   wait). Median of SAMPLES.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/rvfio.h>
#include <linux/vfio.h>

#include "iommufd_test.h"	/* drivers/iommu/iommufd/ of the perf kernel */
#include "rvfio_mdev_sample.h"	/* samples/mdev/ */
#include "fault_bench.h"

#define FAULTS		20000
#define SAMPLES		500
#define HOLE		0x5000000ull	/* never mapped */
#define MDEV_TYPE_DIR	"/sys/class/mdev_bus/" RVFIO_MDEV_SAMPLE_PARENT \
			"/mdev_supported_types/" RVFIO_MDEV_SAMPLE_TYPE

static uint64_t ns_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v and returns its q-quantile (0..1). */
static uint64_t quantile(uint64_t *v, int n, double q)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[(int)(q * (n - 1) + 0.5)];
}

static void emit(const char *be, const char *cas, double value, const char *unit,
		 const char *extra)
{
	printf("BENCH-FAULT {\"backend\":\"%s\",\"case\":\"%s\",\"value\":%.3f,"
	       "\"unit\":\"%s\"%s}\n", be, cas, value, unit, extra ? extra : "");
}

/* ====================================================================
 * The two producers and consumers behind one interface
 * ==================================================================== */

struct fsrc {
	const char *name;
	/* rvfio */
	int container, group, device, ring, efd;
	struct rvfio_fault_ring_header *hdr;
	struct rvfio_fault *rec;
	size_t ring_size;
	uint32_t cons;
	char uuid[40];
	bool created;
	/* iommufd */
	int iommufd, fault_fd;
	uint32_t idev_id;
};

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* A new ring of 4096 entries with a new eventfd (a counter at 0); page
 * requests when pr. */
static int rvfio_ring(struct fsrc *s, bool pr)
{
	struct rvfio_fault_ring_create a = {
		.argsz = sizeof(a), .flags = pr ? RVFIO_FAULT_RING_PAGE_REQUESTS : 0,
		.entries = 4096, .eventfd = s->efd,
		.kinds = RVFIO_FAULT_KIND_DMA | (pr ? RVFIO_FAULT_KIND_PAGE_REQ : 0),
		.timeout_ms = pr ? RVFIO_FAULT_RING_MAX_TIMEOUT_MS : 0,
	};
	struct rvfio_fault_ring_header *h;

	if (s->hdr)
		munmap(s->hdr, s->ring_size);
	if (s->ring >= 0)
		close(s->ring);
	if (s->efd >= 0)
		close(s->efd);
	s->hdr = NULL;
	s->efd = eventfd(0, EFD_CLOEXEC);
	if (s->efd < 0)
		return -errno;
	a.eventfd = s->efd;
	s->ring = ioctl(s->container, RVFIO_IOMMU_FAULT_RING, &a);
	if (s->ring < 0)
		return -errno;
	h = mmap(NULL, 4096, PROT_READ, MAP_SHARED, s->ring, 0);
	if (h == MAP_FAILED)
		return -errno;
	s->ring_size = h->mmap_size;
	munmap(h, 4096);
	s->hdr = mmap(NULL, s->ring_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->ring, 0);
	if (s->hdr == MAP_FAILED) {
		s->hdr = NULL;
		return -errno;
	}
	s->rec = (void *)((char *)s->hdr + s->hdr->records_offset);
	s->cons = 0;
	return 0;
}

/* An mdev alone in a type1v2 container with a fault ring. */
static const char *rvfio_setup(struct fsrc *s)
{
	static char why[256];
	char path[256], link[256];
	struct vfio_group_status st = { .argsz = sizeof(st) };
	unsigned int r[4];
	ssize_t n;
	int ret;

	if (access(MDEV_TYPE_DIR, F_OK))
		return "the rvfio_mdev_sample mdev type is not there (mdev.ko or the sample not loaded)";
	srand(ns_now());
	for (int i = 0; i < 4; i++)
		r[i] = rand();
	snprintf(s->uuid, sizeof(s->uuid), "%08x-%04x-4%03x-8%03x-%04x%08x", r[0],
		 r[1] & 0xffff, r[2] & 0xfff, r[3] & 0xfff, r[1] >> 16, r[2]);
	if ((ret = write_str(MDEV_TYPE_DIR "/create", s->uuid)))
		return snprintf(why, sizeof(why), "create mdev: %s", strerror(-ret)), why;
	s->created = true;
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group", s->uuid);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return "mdev has no iommu_group";
	link[n] = 0;
	snprintf(path, sizeof(path), "/dev/vfio/%s", strrchr(link, '/') + 1);
	for (int i = 0; i < 50 && access(path, F_OK); i++)
		usleep(100000);
	s->container = open("/dev/vfio/vfio", O_RDWR);
	s->group = open(path, O_RDWR);
	if (s->container < 0 || s->group < 0)
		return "open the container or the mdev's group";
	if (ioctl(s->group, VFIO_GROUP_GET_STATUS, &st) ||
	    ioctl(s->group, VFIO_GROUP_SET_CONTAINER, &s->container) ||
	    ioctl(s->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return snprintf(why, sizeof(why), "mdev container: %s", strerror(errno)), why;
	if (ioctl(s->container, VFIO_CHECK_EXTENSION, RVFIO_FAULT_RING) != 1)
		return "the container has no fault ring";
	s->device = ioctl(s->group, VFIO_GROUP_GET_DEVICE_FD, s->uuid);
	if (s->device < 0)
		return "VFIO_GROUP_GET_DEVICE_FD of the mdev";
	if (rvfio_ring(s, false))
		return snprintf(why, sizeof(why), "fault ring: %s", strerror(errno)), why;
	return NULL;
}

static void rvfio_teardown(struct fsrc *s)
{
	char path[128];

	if (s->hdr)
		munmap(s->hdr, s->ring_size);
	int *fds[] = { &s->ring, &s->efd, &s->device, &s->group, &s->container };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	if (s->created) {
		snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", s->uuid);
		write_str(path, "1");
	}
}

static int iommufd_test(int fd, struct iommu_test_cmd *c)
{
	c->size = sizeof(*c);
	return ioctl(fd, IOMMU_TEST_CMD, c) ? -errno : 0;
}

/* The mock device on a nested hwpt with a fault queue, as iommufd's own
 * selftest sets it up. */
static const char *iommufd_setup(struct fsrc *s)
{
	static char why[256];
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct iommu_test_cmd md = { .op = IOMMU_TEST_OP_MOCK_DOMAIN };
	struct iommu_test_cmd rep = { .op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE };
	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
	struct iommu_hwpt_alloc parent = { .size = sizeof(parent) }, nested;

	s->iommufd = open("/dev/iommu", O_RDWR);
	if (s->iommufd < 0)
		return "no /dev/iommu";
	if (ioctl(s->iommufd, IOMMU_IOAS_ALLOC, &ioas))
		return "IOMMU_IOAS_ALLOC";
	md.id = ioas.out_ioas_id;
	if (iommufd_test(s->iommufd, &md))
		return snprintf(why, sizeof(why), "IOMMU_TEST_OP_MOCK_DOMAIN: %s (with VT-d "
				"on, 6.12 gives the mock device to VT-d: see iommufd-mock)",
				strerror(errno)), why;
	s->idev_id = md.mock_domain.out_idev_id;
	if (ioctl(s->iommufd, IOMMU_FAULT_QUEUE_ALLOC, &fa))
		return "IOMMU_FAULT_QUEUE_ALLOC";
	s->fault_fd = fa.out_fault_fd;
	parent.flags = IOMMU_HWPT_ALLOC_NEST_PARENT;
	parent.dev_id = s->idev_id;
	parent.pt_id = ioas.out_ioas_id;
	if (ioctl(s->iommufd, IOMMU_HWPT_ALLOC, &parent))
		return "IOMMU_HWPT_ALLOC (nest parent)";
	nested = (struct iommu_hwpt_alloc){
		.size = sizeof(nested), .flags = IOMMU_HWPT_FAULT_ID_VALID,
		.dev_id = s->idev_id, .pt_id = parent.out_hwpt_id,
		.data_type = IOMMU_HWPT_DATA_SELFTEST, .data_len = sizeof(data),
		.data_uptr = (uintptr_t)&data, .fault_id = fa.out_fault_id,
	};
	if (ioctl(s->iommufd, IOMMU_HWPT_ALLOC, &nested))
		return snprintf(why, sizeof(why), "IOMMU_HWPT_ALLOC (iopf): %s", strerror(errno)), why;
	rep.id = md.mock_domain.out_stdev_id;
	rep.mock_domain_replace.pt_id = nested.out_hwpt_id;
	if (iommufd_test(s->iommufd, &rep))
		return "IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE";
	return NULL;
}

/* One fault from the producer side. */
static long produce(struct fsrc *s)
{
	if (s->iommufd >= 0) {
		struct iommu_test_cmd t = {
			.op = IOMMU_TEST_OP_TRIGGER_IOPF,
			.trigger_iopf = {
				.dev_id = s->idev_id, .pasid = 0x1, .grpid = 0x2,
				.perm = IOMMU_PGFAULT_PERM_READ, .addr = HOLE,
			},
		};

		return iommufd_test(s->iommufd, &t);
	}
	struct rvfio_mdev_dma_rw rw = { .iova = HOLE, .len = 8 };
	uint64_t buf;

	rw.data = (uintptr_t)&buf;
	return ioctl(s->device, RVFIO_MDEV_DMA_RW, &rw) ? -errno : 0;
}

/*
 * The consumer: blocks until woken, then takes every fault there is (at
 * most max), answering page requests with code. Returns how many it took
 * (rvfio: records plus newly lost ones), and the first record's cookie.
 */
static long consume(struct fsrc *s, long max, uint32_t code, uint64_t *lost_seen)
{
	if (s->iommufd >= 0) {
		struct iommu_hwpt_pgfault f[64];
		struct iommu_hwpt_page_response r[64];
		struct pollfd p = { .fd = s->fault_fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0)
			return -ETIMEDOUT;
		n = read(s->fault_fd, f, sizeof(f[0]) * (max < 64 ? max : 64));
		if (n <= 0)
			return n < 0 ? -errno : 0;
		n /= sizeof(f[0]);
		for (ssize_t i = 0; i < n; i++)
			r[i] = (struct iommu_hwpt_page_response){ f[i].cookie, code };
		if (write(s->fault_fd, r, n * sizeof(r[0])) < 0)
			return -errno;
		return n;
	}
	uint64_t v, lost;
	uint32_t prod;
	long got = 0;

	if (read(s->efd, &v, sizeof(v)) != sizeof(v))
		return -errno;
	prod = __atomic_load_n(&s->hdr->producer, __ATOMIC_ACQUIRE);
	while (s->cons != prod && got < max) {
		struct rvfio_fault *f = &s->rec[s->cons & (s->hdr->entries - 1)];

		if (f->kind == RVFIO_FAULT_KIND_PAGE_REQ) {
			struct rvfio_fault_response r = { f->cookie, code };

			if (write(s->ring, &r, sizeof(r)) < 0)
				return -errno;
		}
		s->cons++;
		got++;
	}
	__atomic_store_n(&s->hdr->consumer, s->cons, __ATOMIC_RELEASE);
	lost = __atomic_load_n(&s->hdr->lost, __ATOMIC_ACQUIRE);
	got += lost - *lost_seen;
	*lost_seen = lost;
	return got;
}

/* ---- fault_rate ---- */

struct rate_ctx {
	struct fsrc *s;
	long want, got, wakeups;
	uint64_t lost, t_end;
	int err;
};

static void *rate_consumer(void *arg)
{
	struct rate_ctx *c = arg;

	while (c->got < c->want) {
		long n = consume(c->s, c->want - c->got, 1, &c->lost);

		if (n < 0) {
			c->err = (int)-n;
			break;
		}
		c->got += n;
		c->wakeups++;
	}
	c->t_end = ns_now();
	return NULL;
}

static int fault_rate(struct fsrc *s, double *per_s, long *wakeups, uint64_t *lost)
{
	struct rate_ctx c = { .s = s, .want = FAULTS };
	uint64_t t0, lost0 = 0;
	pthread_t t;

	if (s->iommufd < 0)
		c.lost = lost0 = __atomic_load_n(&s->hdr->lost, __ATOMIC_ACQUIRE);
	pthread_create(&t, NULL, rate_consumer, &c);
	usleep(10000);
	t0 = ns_now();
	for (long i = 0; i < FAULTS; i++) {
		long r = produce(s);

		/* rvfio: the access fails as it does without a ring. */
		if (r && !(s->iommufd < 0 && r == -EINVAL))
			return (int)r;
	}
	pthread_join(t, NULL);
	if (c.err)
		return -c.err;
	/* Delivered: recorded, not lost. */
	*per_s = (FAULTS - (s->iommufd < 0 ? c.lost - lost0 : 0)) / ((c.t_end - t0) / 1e9);
	*wakeups = c.wakeups;
	*lost = s->iommufd < 0 ? c.lost - lost0 : 0;
	return 0;
}

/* ---- wake_us and page_rtt_us: one at a time ---- */

struct pp_ctx {
	struct fsrc *s;
	atomic_int ready, stop;
	atomic_ullong t_wake;	/* when the consumer held the fault */
	uint64_t lost;
	uint32_t code;
	int err;
};

static void *pp_consumer(void *arg)
{
	struct pp_ctx *c = arg;

	while (!atomic_load(&c->stop)) {
		long n;

		atomic_store(&c->ready, 1);
		n = consume(c->s, 1, c->code, &c->lost);
		if (n < 0) {
			if (!atomic_load(&c->stop))
				c->err = (int)-n;
			break;
		}
		if (n)
			atomic_store(&c->t_wake, ns_now());
	}
	return NULL;
}

/*
 * SAMPLES faults one at a time. rtt: page requests, timed by the producer
 * for rvfio (its access returns after the answer) and up to the consumer's
 * answer for iommufd; otherwise the time to the consumer's wake-up.
 */
static int one_at_a_time(struct fsrc *s, bool rtt, uint64_t *out)
{
	struct pp_ctx c = { .s = s, .code = 1 };
	pthread_t t;
	int ret = 0;

	if (s->iommufd < 0 && (ret = rvfio_ring(s, rtt)))
		return ret;
	pthread_create(&t, NULL, pp_consumer, &c);
	for (int i = 0; i < SAMPLES && !ret; i++) {
		uint64_t t0, deadline = ns_now() + 5000000000ull;
		long r;

		while (!atomic_load(&c.ready))
			usleep(50);
		usleep(300);	/* let it block */
		atomic_store(&c.ready, 0);
		atomic_store(&c.t_wake, 0);
		t0 = ns_now();
		r = produce(s);
		if (r && !(s->iommufd < 0 && r == -EINVAL)) {
			ret = (int)r;
			break;
		}
		if (rtt && s->iommufd < 0) {
			out[i] = ns_now() - t0;
			while (!atomic_load(&c.t_wake) && ns_now() < deadline)
				;
			continue;
		}
		while (!atomic_load(&c.t_wake) && ns_now() < deadline)
			;
		if (!atomic_load(&c.t_wake))
			ret = -ETIMEDOUT;
		out[i] = atomic_load(&c.t_wake) - t0;
	}
	atomic_store(&c.stop, 1);
	/* Wake the consumer for the last time. */
	if (s->iommufd >= 0) {
		produce(s);
	} else {
		uint64_t one = 1;

		if (write(s->efd, &one, sizeof(one)) != sizeof(one))
			ret = ret ? ret : -errno;
	}
	pthread_join(t, NULL);
	if (!ret && c.err)
		ret = -c.err;
	if (s->iommufd < 0 && !ret)
		ret = rvfio_ring(s, false);
	return ret;
}

void case_faults(const char *backend, int reps)
{
	struct fsrc s = { .container = -1, .group = -1, .device = -1, .ring = -1, .efd = -1,
			  .iommufd = -1, .fault_fd = -1 };
	static uint64_t samples[SAMPLES];
	const char *why;
	char extra[128];
	int ret = 0;

	if (!strcmp(backend, "rvfio") || !strcmp(backend, "rvfio-base")) {
		why = rvfio_setup(&s);
	} else if (!strcmp(backend, "iommufd") || !strcmp(backend, "iommufd-mock")) {
		why = iommufd_setup(&s);
	} else {
		printf("BENCH-SKIP faults %s has no fault ring or fault queue\n", backend);
		return;
	}
	if (why) {
		printf("BENCH-SKIP faults %s\n", why);
		goto out;
	}
	for (int r = 0; r < reps && !ret; r++) {
		double per_s = 0;
		long wakeups = 0;
		uint64_t lost = 0;

		ret = fault_rate(&s, &per_s, &wakeups, &lost);
		if (ret)
			break;
		snprintf(extra, sizeof(extra), ",\"faults\":%d,\"wakeups\":%ld,\"lost\":%llu",
			 FAULTS, wakeups, (unsigned long long)lost);
		emit(backend, "fault_rate", per_s, "faults/s", extra);

		ret = one_at_a_time(&s, false, samples);
		if (ret)
			break;
		snprintf(extra, sizeof(extra), ",\"p99\":%.3f,\"samples\":%d",
			 quantile(samples, SAMPLES, 0.99) / 1e3, SAMPLES);
		emit(backend, "wake_us", quantile(samples, SAMPLES, 0.5) / 1e3, "us", extra);

		ret = one_at_a_time(&s, true, samples);
		if (ret)
			break;
		snprintf(extra, sizeof(extra), ",\"p99\":%.3f,\"samples\":%d",
			 quantile(samples, SAMPLES, 0.99) / 1e3, SAMPLES);
		emit(backend, "page_rtt_us", quantile(samples, SAMPLES, 0.5) / 1e3, "us", extra);
	}
	if (ret)
		printf("BENCH-ERR faults: %s\n", strerror(-ret));
out:
	if (s.iommufd >= 0) {
		close(s.fault_fd);
		close(s.iommufd);
	} else {
		rvfio_teardown(&s);
	}
}
