// SPDX-License-Identifier: GPL-2.0
/*
 * fault_ring_test - rvfio's IOMMU fault ring (include/uapi/linux/rvfio.h,
 * RVFIO_FAULT_RING): records in a ring user space maps, the eventfd and
 * poll() wake-ups, the lost-fault counter, page requests and their
 * responses, a teardown that never fails, and the errors of bad input.
 *
 * Fault sources:
 * - edu DMA through the emulated VT-d: to an IOVA that is not mapped, or a
 *   write through a read-only mapping. The test kernel's VT-d patch
 *   (scripts/kernel-patches/) reports such faults to the domain's fault
 *   handler. QEMU's VT-d keeps one pending fault record and drops a repeat
 *   from the same device, so these tests trigger one fault at a time and
 *   check the records, never dmesg.
 * - The rvfio_mdev_sample mdev (samples/mdev/): vfio_dma_rw() and
 *   vfio_pin_pages() on an IOVA that is not mapped, or without the access,
 *   are faults of rvfio's own translation; they can be produced at will and
 *   become page requests when the ring asks for them.
 *
 * upstream vfio_iommu_type1 has no fault ring: it answers 0 to the extension
 * and ENOTTY to the ioctl. uapi_probe checks that on both backends; every
 * other test skips on type1 with that reason.
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
#include "edu_fixture.h"
#include "fault_ring.h"
#include "mdev_dev.h"
#include "vfio_util.h"

#define KINDS_DMA	RVFIO_FAULT_KIND_DMA
#define KINDS_ALL	(RVFIO_FAULT_KIND_DMA | RVFIO_FAULT_KIND_PAGE_REQ)
#define PR		RVFIO_FAULT_RING_PAGE_REQUESTS
#define IOVA_HOLE	0x5000000ull	/* never mapped by these tests */
#define IOVA_MAP	0x6000000ull
/* How long a hardware fault may take to reach the ring (an MSI of the
 * emulated VT-d under TCG). */
#define HW_FAULT_MS	5000
/* How long to wait for a record that must not come. */
#define QUIET_MS	500

/*
 * Everything but uapi_probe needs the ring: on a backend without it, check
 * that it says so the documented way (extension 0, ENOTTY) and skip.
 */
#define REQUIRE_RING(c) do { \
	long __ext = vfio_check_ext((c), RVFIO_FAULT_RING); \
	if (__ext != 1) { \
		ASSERT_STRNE("rvfio", backend_name()) \
			TH_LOG("rvfio answers %ld to RVFIO_FAULT_RING", __ext); \
		ASSERT_EQ(0, __ext); \
		ASSERT_EQ(-ENOTTY, fault_ring_create((c), 0, 8, -1, KINDS_DMA, 0)); \
		SKIP(return, "%s has no fault ring (RVFIO_FAULT_RING: 0, " \
		     "RVFIO_IOMMU_FAULT_RING: ENOTTY)", backend_name()); \
	} \
} while (0)

/* ---- the ring seen from user space ------------------------------------ */

/* fault_ring_create() and fault_ring_map() into *r, both asserted: the ring's fd. */
#define ring_open(r, c, ...) __ring_open(_metadata, (r), (c), __VA_ARGS__)
static int __ring_open(struct __test_metadata *_metadata, struct fault_ring *r, int c,
		       uint32_t flags, uint32_t entries, int efd, uint32_t kinds, uint32_t timeout_ms)
{
	int fd = fault_ring_create(c, flags, entries, efd, kinds, timeout_ms);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fault_ring_map(r, fd));
	return fd;
}

/* Records ready for us (producer - our consumer). */
static uint32_t ring_ready(struct fault_ring *r)
{
	return fault_ring_producer(r) - r->cons;
}

/* Waits up to ms for n records, with poll(). Returns the number ready. */
static uint32_t ring_wait(struct fault_ring *r, uint32_t n, int ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ring_ready(r) < n) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		long left;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			break;
		/* POLLIN means records beyond the consumer *we stored*. */
		fault_ring_set_consumer(r, r->cons);
		if (poll(&p, 1, (int)left) < 0)
			break;
	}
	return ring_ready(r);
}

/* Copies the next record and consumes it. */
static void ring_pop(struct fault_ring *r, struct rvfio_fault *out)
{
	*out = r->rec[r->cons & (r->hdr->entries - 1)];
	r->cons++;
	fault_ring_set_consumer(r, r->cons);
}

/* The eventfd's counter (read, which resets it); 0 when not signalled. */
static uint64_t eventfd_take(int efd)
{
	uint64_t v = 0;

	if (read(efd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static short poll_events(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };

	if (poll(&p, 1, 0) < 0)
		return -1;
	return p.revents;
}

/* PCI requester id (segment << 16 | bus << 8 | devfn) of "SSSS:BB:DD.F". */
static uint32_t bdf_rid(const char *bdf)
{
	unsigned int seg, bus, dev, fn;

	if (sscanf(bdf, "%x:%x:%x.%x", &seg, &bus, &dev, &fn) != 4)
		return ~0u;
	return seg << 16 | bus << 8 | dev << 3 | fn;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

/* The fields every record of rvfio's own translation has. */
#define ASSERT_EMULATED_REC(f, want_kind, want_iova, want_access, want_reason, gid) do { \
	EXPECT_EQ((want_kind), (f).kind); \
	EXPECT_EQ((uint64_t)(want_iova), (f).iova); \
	EXPECT_EQ((want_access), (f).access); \
	EXPECT_EQ((want_reason), (f).reason); \
	EXPECT_EQ(RVFIO_FAULT_STAGE_2, (f).stage); \
	EXPECT_EQ(RVFIO_FAULT_EMULATED | RVFIO_FAULT_GROUP_VALID, (f).flags); \
	EXPECT_EQ((gid), (f).group_id); \
} while (0)

/* ---- the mdev (lib/mdev_dev.h) --------------------------------------- */

static uint64_t mdev_pinned_pages(int dev)
{
	struct rvfio_mdev_stats st;

	return mdev_dev_stats(dev, &st) ? ~0ull : st.pinned_pages;
}

/* ======================================================================
 * Probe: both backends
 * ====================================================================== */

/* type1: extension 0, ioctl ENOTTY. rvfio: extension 1 and a ring. */
TEST(uapi_probe)
{
	int c = vfio_container_open();
	char err[256] = "";
	struct edu e;
	int fd;

	if (c < 0 && access("/dev/vfio/vfio", F_OK))
		SKIP(return, "/dev/vfio/vfio does not exist: vfio is not loaded");
	ASSERT_LE(0, c);
	/* Before SET_IOMMU vfio core asks the backends: the same answer. */
	if (strcmp(backend_name(), "rvfio")) {
		EXPECT_EQ(0, vfio_check_ext(c, RVFIO_FAULT_RING));
	} else {
		EXPECT_EQ(1, vfio_check_ext(c, RVFIO_FAULT_RING));
	}
	close(c);
	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS for a container with a backend");
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	fd = fault_ring_create(e.container, 0, 8, -1, KINDS_DMA, 0);
	if (strcmp(backend_name(), "rvfio")) {
		EXPECT_EQ(0, vfio_check_ext(e.container, RVFIO_FAULT_RING));
		EXPECT_EQ(-ENOTTY, fd);
	} else {
		EXPECT_EQ(1, vfio_check_ext(e.container, RVFIO_FAULT_RING));
		EXPECT_LE(0, fd);
		/* O_CLOEXEC, as documented. */
		if (fd >= 0) {
			EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
		}
	}
	if (fd >= 0)
		close(fd);
	edu_close(&e);
}

/* ======================================================================
 * Hardware faults: edu DMA through the emulated VT-d
 * ====================================================================== */

/*
 * One hardware fault, triggered by dma(); the ring must get exactly one
 * record, with the right IOVA and access and the edu's group and
 * requester id, and wake the eventfd and poll().
 */
static void hw_fault_once(struct __test_metadata *_metadata, FIXTURE_DATA(edu) *self,
			  uint64_t iova, bool write, uint8_t *ro_mem)
{
	struct rvfio_fault f;
	struct fault_ring r;
	int efd, fd;
	uint64_t t0;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ASSERT_LE(0, efd);
	fd = ring_open(&r, self->c, 0, 16, efd, KINDS_DMA, 0);
	EXPECT_EQ(16, r.hdr->entries);
	EXPECT_EQ(sizeof(struct rvfio_fault), r.hdr->entry_size);
	EXPECT_EQ(KINDS_DMA, r.hdr->kinds);
	EXPECT_EQ(0, fault_ring_producer(&r));
	EXPECT_EQ(0, eventfd_take(efd));
	EXPECT_EQ(POLLOUT, poll_events(fd));

	t0 = now_ns();
	if (write) {
		ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, iova, 8));
	} else {
		ASSERT_EQ(0, edu_dma_to_dev(&self->dev, iova, 0, 8));
	}
	ASSERT_EQ(1, ring_wait(&r, 1, HW_FAULT_MS))
		TH_LOG("no record for a %s fault at %#llx", write ? "write" : "read",
		       (unsigned long long)iova);
	EXPECT_EQ(POLLIN | POLLOUT, poll_events(fd));
	/* Exactly one: no repeat shows up later either. */
	usleep(QUIET_MS * 1000);
	EXPECT_EQ(1, ring_ready(&r));
	EXPECT_EQ(1, eventfd_take(efd));
	ring_pop(&r, &f);
	EXPECT_EQ(0, f.seq);
	EXPECT_EQ(RVFIO_FAULT_KIND_DMA, f.kind);
	EXPECT_EQ(iova & ~(PAGE_4K - 1), f.iova);
	EXPECT_EQ(write ? RVFIO_FAULT_ACCESS_WRITE : RVFIO_FAULT_ACCESS_READ, f.access);
	EXPECT_EQ(RVFIO_FAULT_STAGE_2, f.stage);
	EXPECT_EQ(RVFIO_FAULT_REASON_HW, f.reason);
	EXPECT_EQ(RVFIO_FAULT_GROUP_VALID | RVFIO_FAULT_RID_VALID, f.flags);
	EXPECT_EQ(self->dev.group_id, f.group_id);
	EXPECT_EQ(bdf_rid(self->dev.bdf), f.requester_id)
		TH_LOG("requester id %#x for %s", f.requester_id, self->dev.bdf);
	EXPECT_EQ(0, f.cookie);
	EXPECT_LE(t0, f.timestamp_ns);
	EXPECT_GE(now_ns(), f.timestamp_ns);
	EXPECT_EQ(0, r.hdr->lost);
	EXPECT_EQ(0, r.hdr->consumer_rejected);
	/* Consumed: no longer readable. */
	EXPECT_EQ(POLLOUT, poll_events(fd));
	if (ro_mem) {
		EXPECT_EQ(-1, check_fill(ro_mem, PAGE_4K, 0x77))
			TH_LOG("the write went through the read-only mapping");
	}
	fault_ring_close(&r);
	close(efd);
}

/* The device reads an IOVA nothing is mapped at. */
TEST_F_TIMEOUT(edu, hw_unmapped_read_one_record, DMA_TEST_TIMEOUT)
{
	REQUIRE_RING(self->c);
	hw_fault_once(_metadata, self, IOVA_HOLE + 0x123, false, NULL);
	/* The container is unharmed. */
	ASSERT_CONTAINER_USABLE();
}

/* The device writes through a read-only mapping: refused and recorded. */
TEST_F_TIMEOUT(edu, hw_readonly_write_one_record, DMA_TEST_TIMEOUT)
{
	uint8_t *ro = edu_buf(PAGE_4K, 0x77);

	REQUIRE_RING(self->c);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_MAP, ro, PAGE_4K, RO));
	hw_fault_once(_metadata, self, IOVA_MAP + 0x40, true, ro);
}

/*
 * Faults one after the other land one after the other (sequence numbers,
 * both accesses); a fault while no ring exists, or of a kind the ring does
 * not report, is not recorded; a ring that is closed records nothing more.
 */
TEST_F_TIMEOUT(edu, hw_faults_in_order_and_kinds, DMA_TEST_TIMEOUT)
{
	uint8_t *ro = edu_buf(PAGE_4K, 0x77);
	struct rvfio_fault f;
	struct fault_ring r;

	REQUIRE_RING(self->c);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_MAP, ro, PAGE_4K, RO));
	/*
	 * No ring: the fault goes to the log only. Its interrupt can come
	 * after the DMA has completed (seen under a loaded host: it was then
	 * recorded in the ring created next), so let it be handled first.
	 */
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, IOVA_HOLE, 0, 8));
	usleep(QUIET_MS * 1000);
	ring_open(&r, self->c, 0, 4, -1, KINDS_DMA, 0);
	usleep(QUIET_MS * 1000);
	EXPECT_EQ(0, ring_ready(&r));
	for (int i = 0; i < 3; i++) {
		bool write = i & 1;

		if (write) {
			ASSERT_EQ(0, edu_dma_to_ram(&self->dev, 0, IOVA_MAP, 8));
		} else {
			ASSERT_EQ(0, edu_dma_to_dev(&self->dev, IOVA_HOLE + i * PAGE_4K, 0, 8));
		}
		ASSERT_EQ(1, ring_wait(&r, 1, HW_FAULT_MS)) TH_LOG("fault %d", i);
		ring_pop(&r, &f);
		EXPECT_EQ(i, f.seq);
		EXPECT_EQ(write ? IOVA_MAP : IOVA_HOLE + i * PAGE_4K, f.iova);
		EXPECT_EQ(write ? RVFIO_FAULT_ACCESS_WRITE : RVFIO_FAULT_ACCESS_READ, f.access);
	}
	fault_ring_close(&r);

	/* Page requests only: hardware faults are not reported. */
	ring_open(&r, self->c, PR, 4, -1, RVFIO_FAULT_KIND_PAGE_REQ, 0);
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, IOVA_HOLE, 0, 8));
	usleep(QUIET_MS * 1000);
	EXPECT_EQ(0, ring_ready(&r));
	EXPECT_EQ(0, r.hdr->lost);
	fault_ring_close(&r);
	EXPECT_EQ(-1, check_fill(ro, PAGE_4K, 0x77));
}

/*
 * The ring outlives its container: closing the container (its last group
 * detached) detaches the ring, which stays readable, reports EPOLLHUP and
 * the DETACHED state, and answers responses with ENOENT.
 */
TEST_F_TIMEOUT(edu, ring_outlives_container, DMA_TEST_TIMEOUT)
{
	struct rvfio_fault f;
	struct fault_ring r;
	int fd;

	REQUIRE_RING(self->c);
	fd = ring_open(&r, self->c, 0, 4, -1, KINDS_DMA, 0);
	ASSERT_EQ(0, edu_dma_to_dev(&self->dev, IOVA_HOLE, 0, 8));
	ASSERT_EQ(1, ring_wait(&r, 1, HW_FAULT_MS));
	EXPECT_EQ(0, r.hdr->state);
	edu_close(&self->dev);	/* device, group and container */
	EXPECT_EQ(RVFIO_FAULT_RING_DETACHED, r.hdr->state);
	EXPECT_EQ(POLLIN | POLLOUT | POLLHUP, poll_events(fd));
	ring_pop(&r, &f);
	EXPECT_EQ(IOVA_HOLE, f.iova);
	EXPECT_EQ(POLLOUT | POLLHUP, poll_events(fd));
	EXPECT_EQ(-ENOENT, fault_ring_respond(fd, 1, RVFIO_FAULT_RESPONSE_SUCCESS));
	fault_ring_close(&r);
}

/* Starts an edu DMA (device reads iova) without waiting for it. */
static void edu_dma_start(struct edu *e, uint64_t iova)
{
	edu_write64(e, EDU_REG_DMA_SRC, iova);
	edu_write64(e, EDU_REG_DMA_DST, EDU_BUF_ADDR);
	edu_write64(e, EDU_REG_DMA_COUNT, 8);
	edu_write32(e, EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN);
}

/*
 * Teardown with a fault in flight: the edu's DMA to a hole is started and,
 * without waiting for it, the group is detached and the container closed
 * (the domain freed) with the ring still open, or the ring closed first.
 * Whatever the order, nothing fails and the fault lands in the ring or
 * nowhere.
 */
TEST_F_TIMEOUT(edu, teardown_with_fault_in_flight, DMA_TEST_TIMEOUT)
{
	REQUIRE_RING(self->c);
	edu_close(&self->dev);
	for (int i = 0; i < 12; i++) {
		char err[256] = "";
		struct edu e;
		struct fault_ring r;

		ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
			TH_LOG("%s", err);
		ring_open(&r, e.container, 0, 8, -1, KINDS_DMA, 0);
		edu_dma_start(&e, IOVA_HOLE);
		usleep((i % 4) * 30000);	/* before, around, after the fault */
		if (i % 2) {
			fault_ring_close(&r);
			edu_close(&e);
		} else {
			edu_close(&e);
			EXPECT_EQ(RVFIO_FAULT_RING_DETACHED, r.hdr->state);
			EXPECT_GE(1, fault_ring_producer(&r));
			fault_ring_close(&r);
		}
	}
}

/* ======================================================================
 * rvfio's own translation: the mdev path
 * ====================================================================== */

FIXTURE(mdev) {
	int c;
	struct mdev_dev m;
	int dev;
	void *buf;		/* 4 pages, unmapped at teardown */
};

FIXTURE_SETUP(mdev)
{
	const char *why = mdev_dev_missing();
	char err[256] = "";

	self->c = -1;
	self->buf = MAP_FAILED;
	mdev_dev_init(&self->m);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, mdev_dev_up(&self->m, &self->c, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("setup: %s", err);
	self->dev = self->m.device;
	self->buf = alloc_pages_4k(4 * PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

FIXTURE_TEARDOWN(mdev)
{
	mdev_dev_close(&self->m);
	if (self->c >= 0)
		close(self->c);
	self->c = -1;
	mdev_dev_destroy(&self->m);
	if (self->buf != MAP_FAILED)
		munmap(self->buf, 4 * PAGE_4K);
}

/* dma_rw and pin on an IOVA not mapped, or not with the access: the
 * errors of type1, and one record each. */
TEST_F(mdev, emulated_faults_recorded)
{
	uint8_t tmp[64];
	struct rvfio_fault f;
	struct fault_ring r;
	int efd, fd;

	REQUIRE_RING(self->c);
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ASSERT_LE(0, efd);
	fd = ring_open(&r, self->c, 0, 8, efd, KINDS_DMA, 0);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_MAP, self->buf, PAGE_4K, RO));

	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE + 3, tmp, sizeof(tmp), 0));
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE + 5, tmp, sizeof(tmp),
				   RVFIO_MDEV_DMA_RW_WRITE | RVFIO_MDEV_DMA_RW_KTHREAD));
	EXPECT_EQ(-EPERM, mdev_dev_dma_rw(self->dev, IOVA_MAP + 7, tmp, sizeof(tmp),
				  RVFIO_MDEV_DMA_RW_WRITE));
	EXPECT_EQ(-EINVAL, mdev_dev_pin(self->dev, IOVA_HOLE, 1, RVFIO_MDEV_PROT_READ));
	EXPECT_EQ(-EPERM, mdev_dev_pin(self->dev, IOVA_MAP, 1,
			       RVFIO_MDEV_PROT_READ | RVFIO_MDEV_PROT_WRITE));
	/* Recorded synchronously, before the access returns. */
	ASSERT_EQ(5, ring_ready(&r));
	EXPECT_EQ(5, eventfd_take(efd));
	EXPECT_EQ(POLLIN | POLLOUT, poll_events(fd));

	ring_pop(&r, &f);
	ASSERT_EMULATED_REC(f, RVFIO_FAULT_KIND_DMA, IOVA_HOLE + 3, RVFIO_FAULT_ACCESS_READ,
			    RVFIO_FAULT_REASON_NOT_MAPPED, self->m.group_id);
	EXPECT_EQ(0, f.seq);
	EXPECT_EQ(0, f.cookie);
	ring_pop(&r, &f);
	ASSERT_EMULATED_REC(f, RVFIO_FAULT_KIND_DMA, IOVA_HOLE + 5, RVFIO_FAULT_ACCESS_WRITE,
			    RVFIO_FAULT_REASON_NOT_MAPPED, self->m.group_id);
	ring_pop(&r, &f);
	ASSERT_EMULATED_REC(f, RVFIO_FAULT_KIND_DMA, IOVA_MAP + 7, RVFIO_FAULT_ACCESS_WRITE,
			    RVFIO_FAULT_REASON_PERMISSION, self->m.group_id);
	ring_pop(&r, &f);
	ASSERT_EMULATED_REC(f, RVFIO_FAULT_KIND_DMA, IOVA_HOLE, RVFIO_FAULT_ACCESS_READ,
			    RVFIO_FAULT_REASON_NOT_MAPPED, self->m.group_id);
	ring_pop(&r, &f);
	ASSERT_EMULATED_REC(f, RVFIO_FAULT_KIND_DMA, IOVA_MAP,
			    RVFIO_FAULT_ACCESS_READ | RVFIO_FAULT_ACCESS_WRITE,
			    RVFIO_FAULT_REASON_PERMISSION, self->m.group_id);
	EXPECT_EQ(4, f.seq);
	EXPECT_EQ(POLLOUT, poll_events(fd));
	/* A good access is no fault. */
	EXPECT_EQ(0, mdev_dev_dma_rw(self->dev, IOVA_MAP, tmp, sizeof(tmp), 0));
	EXPECT_EQ(0, ring_ready(&r));
	fault_ring_close(&r);
	close(efd);
}

/*
 * More faults than entries: the first `entries` are recorded and stay as
 * they were, the rest are counted as lost; consuming makes room again, and
 * sequence numbers count the lost faults.
 */
TEST_F(mdev, overflow_counts_lost)
{
	const uint32_t entries = 4, extra = 6;
	uint8_t tmp[8];
	struct rvfio_fault f;
	struct fault_ring r;

	REQUIRE_RING(self->c);
	ring_open(&r, self->c, 0, entries, -1, KINDS_DMA, 0);
	for (uint32_t i = 0; i < entries + extra; i++)
		EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE + i * PAGE_4K, tmp, 8, 0));
	EXPECT_EQ(entries, fault_ring_producer(&r));
	EXPECT_EQ(extra, r.hdr->lost);
	for (uint32_t i = 0; i < entries; i++) {
		EXPECT_EQ(i, r.rec[i].seq);
		EXPECT_EQ(IOVA_HOLE + i * PAGE_4K, r.rec[i].iova) TH_LOG("record %u", i);
	}
	/* Two consumed: exactly two more fit, in slots 0 and 1. */
	ring_pop(&r, &f);
	ring_pop(&r, &f);
	for (uint32_t i = 0; i < 3; i++)
		EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_MAP + i * PAGE_4K, tmp, 8, 0));
	EXPECT_EQ(entries + 2, fault_ring_producer(&r));
	EXPECT_EQ(extra + 1, r.hdr->lost);
	EXPECT_EQ(entries + extra, r.rec[0].seq);
	EXPECT_EQ(IOVA_MAP, r.rec[0].iova);
	EXPECT_EQ(IOVA_MAP + PAGE_4K, r.rec[1].iova);
	EXPECT_EQ(2, r.rec[2].seq);
	EXPECT_EQ(3, r.rec[3].seq);
	fault_ring_close(&r);
}

/* A consumer index past the producer is ignored and counted, and nothing
 * is overwritten; storing a valid one fixes it. */
TEST_F(mdev, bad_consumer_ignored)
{
	uint8_t tmp[8];
	struct fault_ring r;
	int fd;

	REQUIRE_RING(self->c);
	fd = ring_open(&r, self->c, 0, 4, -1, KINDS_DMA, 0);
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE, tmp, 8, 0));
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE + PAGE_4K, tmp, 8, 0));
	ASSERT_EQ(2, fault_ring_producer(&r));
	/* "Consumed" 7 records of which only 2 exist. */
	fault_ring_set_consumer(&r, 7);
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE + 2 * PAGE_4K, tmp, 8, 0));
	EXPECT_EQ(3, fault_ring_producer(&r));
	EXPECT_EQ(1, r.hdr->consumer_rejected);
	EXPECT_EQ(IOVA_HOLE, r.rec[0].iova);
	EXPECT_EQ(IOVA_HOLE + 2 * PAGE_4K, r.rec[2].iova);
	/* Still 3 unconsumed: the fourth fits, the fifth is lost. */
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE + 3 * PAGE_4K, tmp, 8, 0));
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE + 4 * PAGE_4K, tmp, 8, 0));
	EXPECT_EQ(4, fault_ring_producer(&r));
	EXPECT_EQ(1, r.hdr->lost);
	EXPECT_EQ(IOVA_HOLE, r.rec[0].iova);
	EXPECT_EQ(1, r.hdr->consumer_rejected);
	/* Backwards is refused as well. */
	fault_ring_set_consumer(&r, 2);
	EXPECT_EQ(POLLIN | POLLOUT, poll_events(fd));
	fault_ring_set_consumer(&r, 1);
	EXPECT_EQ(POLLIN | POLLOUT, poll_events(fd));
	EXPECT_EQ(2, r.hdr->consumer_rejected);
	/* All consumed: room again. */
	fault_ring_set_consumer(&r, 4);
	EXPECT_EQ(POLLOUT, poll_events(fd));
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE + 5 * PAGE_4K, tmp, 8, 0));
	EXPECT_EQ(5, fault_ring_producer(&r));
	EXPECT_EQ(IOVA_HOLE + 5 * PAGE_4K, r.rec[0].iova);
	fault_ring_close(&r);
}

/* ---- page requests ------------------------------------------------------ */

enum access_op { OP_READ, OP_WRITE, OP_PIN };

/* An access of the mdev on another thread: it blocks on a page request. */
struct access {
	int dev;
	enum access_op op;
	uint64_t iova;
	uint8_t data[64];
	long ret;
	double ms;		/* how long it took */
	atomic_int done;
	pthread_t tid;
};

static void *access_fn(void *arg)
{
	struct access *a = arg;
	double t0 = now_ms();

	switch (a->op) {
	case OP_READ:
		a->ret = mdev_dev_dma_rw(a->dev, a->iova, a->data, sizeof(a->data), 0);
		break;
	case OP_WRITE:
		a->ret = mdev_dev_dma_rw(a->dev, a->iova, a->data, sizeof(a->data),
				 RVFIO_MDEV_DMA_RW_WRITE);
		break;
	case OP_PIN:
		a->ret = mdev_dev_pin(a->dev, a->iova, 1, RVFIO_MDEV_PROT_READ | RVFIO_MDEV_PROT_WRITE);
		break;
	}
	a->ms = now_ms() - t0;
	atomic_store(&a->done, 1);
	return NULL;
}

static int access_start(struct access *a, int dev, enum access_op op, uint64_t iova)
{
	memset(a, 0, sizeof(*a));
	a->dev = dev;
	a->op = op;
	a->iova = iova;
	memset(a->data, 0xa5, sizeof(a->data));
	return pthread_create(&a->tid, NULL, access_fn, a);
}

/* Joins the access thread within ms; 0 or ETIMEDOUT (still blocked). */
static int access_join(struct access *a, int ms)
{
	double end = now_ms() + ms;

	while (!atomic_load(&a->done) && now_ms() < end)
		usleep(2000);
	if (!atomic_load(&a->done))
		return ETIMEDOUT;
	return pthread_join(a->tid, NULL);
}

/* Waits for the page request of a blocked access; its record in *f. */
#define ASSERT_PAGE_REQUEST(r, f, want_iova, want_access, gid) do { \
	ASSERT_EQ(1, ring_wait((r), 1, 5000)) TH_LOG("no page request"); \
	ring_pop((r), (f)); \
	ASSERT_EMULATED_REC(*(f), RVFIO_FAULT_KIND_PAGE_REQ, (want_iova), (want_access), \
			    RVFIO_FAULT_REASON_NOT_MAPPED, (gid)); \
	ASSERT_NE(0, (f)->cookie); \
} while (0)

/*
 * The access blocks on the page request; user space maps the IOVA and
 * answers SUCCESS; the access completes, with the mapped memory's bytes.
 */
static void page_request_success(struct __test_metadata *_metadata, FIXTURE_DATA(mdev) *self,
				 enum access_op op)
{
	uint8_t *mem = self->buf;
	uint32_t seed = random_seed();
	struct rvfio_fault f;
	struct access a;
	struct fault_ring r;
	uint8_t access = op == OP_READ ? RVFIO_FAULT_ACCESS_READ :
			 op == OP_WRITE ? RVFIO_FAULT_ACCESS_WRITE :
			 RVFIO_FAULT_ACCESS_READ | RVFIO_FAULT_ACCESS_WRITE;
	int fd;

	REQUIRE_RING(self->c);
	fd = ring_open(&r, self->c, PR, 8, -1, KINDS_ALL, 20000);
	fill_pattern(mem, PAGE_4K, seed);
	ASSERT_EQ(0, access_start(&a, self->dev, op, IOVA_HOLE + (op == OP_PIN ? 0 : 0x10)));
	ASSERT_PAGE_REQUEST(&r, &f, a.iova, access, self->m.group_id);
	/* Still waiting for us. */
	EXPECT_EQ(ETIMEDOUT, access_join(&a, 200));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_HOLE, mem, PAGE_4K, RW));
	EXPECT_EQ(sizeof(struct rvfio_fault_response),
		  fault_ring_respond(fd, f.cookie, RVFIO_FAULT_RESPONSE_SUCCESS));
	ASSERT_EQ(0, access_join(&a, 5000)) TH_LOG("the access did not complete");
	switch (op) {
	case OP_READ:
		EXPECT_EQ(0, a.ret);
		EXPECT_EQ(0, memcmp(a.data, mem + 0x10, sizeof(a.data)))
			TH_LOG("dma_rw read other bytes than the mapped memory's");
		break;
	case OP_WRITE:
		EXPECT_EQ(0, a.ret);
		EXPECT_EQ(-1, check_fill(mem + 0x10, sizeof(a.data), 0xa5))
			TH_LOG("dma_rw did not write the mapped memory");
		break;
	case OP_PIN: {
		uint8_t got[64];

		EXPECT_EQ(1, a.ret);
		EXPECT_EQ(sizeof(got), mdev_dev_access(self->dev, false, IOVA_HOLE, 0, got, sizeof(got)));
		EXPECT_EQ(0, memcmp(got, mem, sizeof(got)));
		EXPECT_EQ(1, mdev_dev_unpin(self->dev, IOVA_HOLE, 1));
		break;
	}
	}
	/* Answered once: a second answer finds nothing. */
	EXPECT_EQ(-ENOENT, fault_ring_respond(fd, f.cookie, RVFIO_FAULT_RESPONSE_SUCCESS));
	EXPECT_EQ(0, ring_ready(&r));
	fault_ring_close(&r);
}

TEST_F(mdev, page_request_dma_read_success)
{
	page_request_success(_metadata, self, OP_READ);
}

TEST_F(mdev, page_request_dma_write_success)
{
	page_request_success(_metadata, self, OP_WRITE);
}

TEST_F(mdev, page_request_pin_success)
{
	page_request_success(_metadata, self, OP_PIN);
}

/* INVALID and FAILURE: the access fails with the error it gets without a
 * ring. SUCCESS without fixing the mapping: it fails too, as a DMA fault. */
TEST_F(mdev, page_request_refused)
{
	const uint32_t codes[] = { RVFIO_FAULT_RESPONSE_INVALID, RVFIO_FAULT_RESPONSE_FAILURE,
				   RVFIO_FAULT_RESPONSE_SUCCESS };
	struct rvfio_fault f;
	struct access a;
	struct fault_ring r;
	int fd;

	REQUIRE_RING(self->c);
	fd = ring_open(&r, self->c, PR, 8, -1, KINDS_ALL, 20000);
	for (int i = 0; i < 3; i++) {
		enum access_op op = i == 1 ? OP_PIN : OP_READ;

		ASSERT_EQ(0, access_start(&a, self->dev, op, IOVA_HOLE));
		ASSERT_PAGE_REQUEST(&r, &f, IOVA_HOLE,
				    op == OP_PIN ? RVFIO_FAULT_ACCESS_READ | RVFIO_FAULT_ACCESS_WRITE
						 : RVFIO_FAULT_ACCESS_READ,
				    self->m.group_id);
		EXPECT_EQ(8, fault_ring_respond(fd, f.cookie, codes[i]));
		ASSERT_EQ(0, access_join(&a, 5000));
		EXPECT_EQ(-EINVAL, a.ret) TH_LOG("response %u", codes[i]);
		EXPECT_EQ(-ENOENT, fault_ring_respond(fd, f.cookie, RVFIO_FAULT_RESPONSE_SUCCESS));
	}
	/* The success that fixed nothing: the retry's miss is an unrecoverable
	 * fault of the same IOVA, no second request. */
	ASSERT_EQ(1, ring_ready(&r));
	ring_pop(&r, &f);
	ASSERT_EMULATED_REC(f, RVFIO_FAULT_KIND_DMA, IOVA_HOLE, RVFIO_FAULT_ACCESS_READ,
			    RVFIO_FAULT_REASON_NOT_MAPPED, self->m.group_id);
	EXPECT_EQ(0, f.cookie);
	fault_ring_close(&r);
}

/* Nobody answers: the access fails after the ring's timeout, and a late
 * answer gets ENOENT. */
TEST_F(mdev, page_request_timeout)
{
	struct rvfio_fault f;
	struct access a;
	struct fault_ring r;
	int fd;

	REQUIRE_RING(self->c);
	fd = ring_open(&r, self->c, PR, 8, -1, KINDS_ALL, 300);
	ASSERT_EQ(0, access_start(&a, self->dev, OP_READ, IOVA_HOLE));
	ASSERT_PAGE_REQUEST(&r, &f, IOVA_HOLE, RVFIO_FAULT_ACCESS_READ, self->m.group_id);
	ASSERT_EQ(0, access_join(&a, 10000));
	EXPECT_EQ(-EINVAL, a.ret);
	EXPECT_LE(250, a.ms) TH_LOG("gave up after %.0f ms of 300", a.ms);
	EXPECT_EQ(-ENOENT, fault_ring_respond(fd, f.cookie, RVFIO_FAULT_RESPONSE_SUCCESS));
	fault_ring_close(&r);
}

/* Closing the ring with a request pending releases the waiter at once,
 * with the old error; the container is fine and takes a new ring. */
TEST_F(mdev, close_ring_releases_waiter)
{
	struct rvfio_fault f;
	struct access a;
	struct fault_ring r;
	int fd;

	REQUIRE_RING(self->c);
	fd = ring_open(&r, self->c, PR, 8, -1, KINDS_ALL, RVFIO_FAULT_RING_MAX_TIMEOUT_MS);
	ASSERT_EQ(0, access_start(&a, self->dev, OP_PIN, IOVA_HOLE));
	ASSERT_PAGE_REQUEST(&r, &f, IOVA_HOLE, RVFIO_FAULT_ACCESS_READ | RVFIO_FAULT_ACCESS_WRITE,
			    self->m.group_id);
	EXPECT_EQ(ETIMEDOUT, access_join(&a, 200));
	fault_ring_close(&r);		/* munmap and close: the last reference */
	ASSERT_EQ(0, access_join(&a, 5000)) TH_LOG("closing the ring did not release the waiter");
	EXPECT_EQ(-EINVAL, a.ret);
	EXPECT_GT(10000, a.ms);
	EXPECT_EQ(0, mdev_pinned_pages(self->dev));
	fd = fault_ring_create(self->c, 0, 8, -1, KINDS_DMA, 0);
	EXPECT_LE(0, fd);
	close(fd);
}

/* A page request that finds the ring full is lost: the access fails at
 * once. */
TEST_F(mdev, page_request_ring_full)
{
	uint8_t tmp[8];
	struct fault_ring r;
	double t0;
	int fd;

	REQUIRE_RING(self->c);
	fd = ring_open(&r, self->c, PR, 1, -1, KINDS_ALL, RVFIO_FAULT_RING_MAX_TIMEOUT_MS);
	/* Fill the one slot with a request nobody answers (a thread waits). */
	{
		struct access a;
		struct rvfio_fault f;

		ASSERT_EQ(0, access_start(&a, self->dev, OP_READ, IOVA_HOLE));
		ASSERT_EQ(1, ring_wait(&r, 1, 5000));
		f = r.rec[0];
		t0 = now_ms();
		EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE + PAGE_4K, tmp, 8, 0));
		EXPECT_GT(2000, now_ms() - t0);
		EXPECT_EQ(1, r.hdr->lost);
		EXPECT_EQ(8, fault_ring_respond(fd, f.cookie, RVFIO_FAULT_RESPONSE_INVALID));
		ASSERT_EQ(0, access_join(&a, 5000));
		EXPECT_EQ(-EINVAL, a.ret);
	}
	fault_ring_close(&r);
}

/* ---- bad input ---------------------------------------------------------- */

/* Every refused create leaves the container as it was: a good one works
 * afterwards, and a second one is EBUSY while the first is open. */
TEST_F(mdev, create_bad_input)
{
	struct rvfio_fault_ring_create a;
	int pipefd[2], closed_fd, fd, fd2;

	REQUIRE_RING(self->c);
	/* Short argsz. */
	a = (struct rvfio_fault_ring_create){ .argsz = sizeof(a) - 1, .entries = 8,
					      .eventfd = -1, .kinds = KINDS_DMA };
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_FAULT_RING, &a));
	a.argsz = 0;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_FAULT_RING, &a));
	/* Flags. */
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 1u << 7, 8, -1, KINDS_DMA, 0));
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 1u << 31, 8, -1, KINDS_DMA, 0));
	EXPECT_EQ(-EOPNOTSUPP, fault_ring_create(self->c, RVFIO_FAULT_RING_HW_PAGE_REQUESTS, 8, -1,
					   KINDS_ALL, 0));
	EXPECT_EQ(-EOPNOTSUPP, fault_ring_create(self->c, RVFIO_FAULT_RING_HW_PAGE_REQUESTS | PR, 8,
					   -1, KINDS_ALL, 0));
	/* Entries. */
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, 0, -1, KINDS_DMA, 0));
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, 3, -1, KINDS_DMA, 0));
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, 1000, -1, KINDS_DMA, 0));
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, RVFIO_FAULT_RING_MAX_ENTRIES * 2, -1,
				       KINDS_DMA, 0));
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, RVFIO_FAULT_RING_MAX_ENTRIES + 1, -1,
				       KINDS_DMA, 0));
	/* Kinds. */
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, 8, -1, 0, 0));
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, 8, -1, KINDS_DMA | 4, 0));
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, 8, -1, KINDS_ALL, 0));
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, PR, 8, -1, KINDS_DMA, 0));
	/* Timeout. */
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, PR, 8, -1, KINDS_ALL,
				       RVFIO_FAULT_RING_MAX_TIMEOUT_MS + 1));
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, 8, -1, KINDS_DMA, 100));
	/* Eventfd: negative, not open, not an eventfd. */
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, 8, -2, KINDS_DMA, 0));
	closed_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, closed_fd);
	close(closed_fd);
	EXPECT_EQ(-EBADF, fault_ring_create(self->c, 0, 8, closed_fd, KINDS_DMA, 0));
	ASSERT_EQ(0, pipe(pipefd));
	EXPECT_EQ(-EINVAL, fault_ring_create(self->c, 0, 8, pipefd[0], KINDS_DMA, 0));
	close(pipefd[0]);
	close(pipefd[1]);

	/* Nothing was created: these work. */
	fd = fault_ring_create(self->c, 0, RVFIO_FAULT_RING_MAX_ENTRIES, -1, KINDS_DMA, 0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EBUSY, fault_ring_create(self->c, 0, 8, -1, KINDS_DMA, 0));
	EXPECT_EQ(-EBUSY, fault_ring_create(self->c, PR, 1, -1, KINDS_ALL, 0));
	close(fd);
	fd = fault_ring_create(self->c, PR, 1, -1, KINDS_ALL, 1);
	ASSERT_LE(0, fd);
	fd2 = fault_ring_create(self->c, 0, 8, -1, KINDS_DMA, 0);
	EXPECT_EQ(-EBUSY, fd2);
	close(fd);
}

/* mmap: shared only, inside the ring, page offsets; read() unsupported. */
TEST_F(mdev, mmap_bad_input)
{
	long page = sysconf(_SC_PAGESIZE);
	struct rvfio_fault_ring_header *h;
	size_t size;
	char c;
	void *p;
	int fd;

	REQUIRE_RING(self->c);
	fd = fault_ring_create(self->c, 0, 128, -1, KINDS_DMA, 0);	/* 8 KiB of records */
	ASSERT_LE(0, fd);
	h = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, h);
	size = h->mmap_size;
	EXPECT_EQ(3 * page, size);
	EXPECT_EQ(page, h->records_offset);
	EXPECT_EQ(128, h->entries);
	munmap(h, page);

	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, size + page, PROT_READ, MAP_SHARED, fd, 0));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, size, PROT_READ, MAP_SHARED, fd, page));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, page, PROT_READ, MAP_SHARED, fd, size));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 1ull << 52));
	EXPECT_EQ(EINVAL, errno);
	/* Not a page offset: mmap() itself refuses. */
	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 100));
	EXPECT_EQ(EINVAL, errno);
	/* The records alone, at their offset. */
	p = mmap(NULL, size - page, PROT_READ, MAP_SHARED, fd, page);
	EXPECT_NE(MAP_FAILED, p);
	if (p != MAP_FAILED)
		munmap(p, size - page);
	errno = 0;
	EXPECT_EQ(-1, read(fd, &c, 1));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
}

/* write(): whole responses only; unknown cookie ENOENT; unknown code
 * EINVAL; a batch stops at the first bad one. */
TEST_F(mdev, response_bad_input)
{
	struct rvfio_fault_response resp[3];
	struct rvfio_fault f;
	struct access a;
	struct fault_ring r;
	int fd;

	REQUIRE_RING(self->c);
	fd = ring_open(&r, self->c, PR, 8, -1, KINDS_ALL, 20000);
	EXPECT_EQ(-ENOENT, fault_ring_respond(fd, 0, RVFIO_FAULT_RESPONSE_SUCCESS));
	EXPECT_EQ(-ENOENT, fault_ring_respond(fd, 12345, RVFIO_FAULT_RESPONSE_SUCCESS));
	EXPECT_EQ(-EINVAL, fault_ring_respond(fd, 1, 3));
	EXPECT_EQ(0, write(fd, resp, 0));
	errno = 0;
	EXPECT_EQ(-1, write(fd, resp, 7));
	EXPECT_EQ(EINVAL, errno);
	/* Unreadable: EFAULT. */
	ASSERT_EQ(0, munmap(self->buf + 3 * PAGE_4K, PAGE_4K));
	errno = 0;
	EXPECT_EQ(-1, write(fd, (char *)self->buf + 3 * PAGE_4K, 8));
	EXPECT_EQ(EFAULT, errno);

	ASSERT_EQ(0, access_start(&a, self->dev, OP_READ, IOVA_HOLE));
	ASSERT_PAGE_REQUEST(&r, &f, IOVA_HOLE, RVFIO_FAULT_ACCESS_READ, self->m.group_id);
	/* A bad code for the real cookie changes nothing. */
	EXPECT_EQ(-EINVAL, fault_ring_respond(fd, f.cookie, 7));
	EXPECT_EQ(ETIMEDOUT, access_join(&a, 200));
	/* [good, unknown cookie, good]: the first is taken, then it stops. */
	resp[0] = (struct rvfio_fault_response){ f.cookie, RVFIO_FAULT_RESPONSE_INVALID };
	resp[1] = (struct rvfio_fault_response){ f.cookie + 1000, RVFIO_FAULT_RESPONSE_SUCCESS };
	resp[2] = resp[0];
	EXPECT_EQ(8, write(fd, resp, sizeof(resp)));
	ASSERT_EQ(0, access_join(&a, 5000));
	EXPECT_EQ(-EINVAL, a.ret);
	fault_ring_close(&r);
}

/* ======================================================================
 * Teardown under load: an edu and an mdev in one container
 * ====================================================================== */

FIXTURE(mixed) {
	struct edu e;
	int c;
	struct mdev_dev m;
	int dev;
};

FIXTURE_SETUP(mixed)
{
	const char *why = mdev_dev_missing();
	char err[256] = "";
	int ret;

	self->c = -1;
	mdev_dev_init(&self->m);
	memset(&self->e, 0, sizeof(self->e));
	self->e.container = self->e.group = self->e.device = -1;
	if (why)
		SKIP(return, "%s", why);
	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS, have none");
	ret = edu_open(&self->e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err));
	ASSERT_EQ(0, ret) TH_LOG("setup: %s", err);
	self->c = self->e.container;
	ret = mdev_dev_up(&self->m, &self->c, 0, err, sizeof(err));
	if (ret)
		edu_close(&self->e);
	ASSERT_EQ(0, ret) TH_LOG("setup: %s", err);
	self->dev = self->m.device;
}

FIXTURE_TEARDOWN(mixed)
{
	mdev_dev_close(&self->m);
	edu_close(&self->e);
	mdev_dev_destroy(&self->m);
}

struct storm {
	struct edu *e;
	int dev;
	atomic_int stop;
	long edu_faults, mdev_faults, mdev_bad;
};

/* The edu DMAs to a hole again and again: hardware faults. */
static void *edu_storm(void *arg)
{
	struct storm *s = arg;

	while (!atomic_load(&s->stop)) {
		if (edu_dma_to_dev(s->e, IOVA_HOLE, 0, 8))
			break;
		s->edu_faults++;
	}
	return NULL;
}

/* The mdev reads a hole again and again: rvfio's own faults, page requests
 * when the ring asks for them (released by the ring's close). */
static void *mdev_storm(void *arg)
{
	struct storm *s = arg;
	uint8_t tmp[8];

	while (!atomic_load(&s->stop)) {
		long ret = mdev_dev_dma_rw(s->dev, IOVA_HOLE, tmp, sizeof(tmp), 0);

		if (ret != -EINVAL)
			s->mdev_bad++;
		s->mdev_faults++;
	}
	return NULL;
}

/*
 * Closing and re-creating the ring 1000 times while both devices keep
 * faulting: every create succeeds, every waiter is released with the old
 * error, faults keep reaching whichever ring exists. The VM's kmemleak and
 * KASAN checks cover leaks and use after free.
 */
TEST_F_TIMEOUT(mixed, recreate_under_faults, 300)
{
	pthread_t te, tm;
	struct storm s = { .e = &self->e, .dev = self->dev };
	uint64_t records = 0, requests = 0;
	int efd;

	REQUIRE_RING(self->c);
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ASSERT_LE(0, efd);
	ASSERT_EQ(0, pthread_create(&te, NULL, edu_storm, &s));
	ASSERT_EQ(0, pthread_create(&tm, NULL, mdev_storm, &s));
	for (int i = 0; i < 1000; i++) {
		bool pr = i % 2;
		struct fault_ring r;
		int fd = fault_ring_create(self->c, pr ? PR : 0, 64, efd, pr ? KINDS_ALL : KINDS_DMA,
				     pr ? RVFIO_FAULT_RING_MAX_TIMEOUT_MS : 0);

		ASSERT_LE(0, fd) TH_LOG("create %d: %s", i, strerror(-fd));
		ASSERT_EQ(0, fault_ring_map(&r, fd));
		if (i % 100 == 0)
			usleep(20000);	/* let some faults land */
		records += fault_ring_producer(&r) + r.hdr->lost;
		for (uint32_t k = 0; k < fault_ring_producer(&r) && k < 64; k++)
			requests += r.rec[k].kind == RVFIO_FAULT_KIND_PAGE_REQ;
		fault_ring_close(&r);
	}
	atomic_store(&s.stop, 1);
	/* A waiter blocked on a ring that no longer exists cannot be: no ring
	 * is left, and every access of the storm returns. */
	pthread_join(tm, NULL);
	pthread_join(te, NULL);
	TH_LOG("%ld edu faults, %ld mdev accesses, %llu recorded or lost, %llu page requests",
	       s.edu_faults, s.mdev_faults, (unsigned long long)records,
	       (unsigned long long)requests);
	EXPECT_EQ(0, s.mdev_bad);
	EXPECT_LT(0, records);
	EXPECT_LT(0, requests);
	close(efd);
	/* Still a working container with a working ring. */
	{
		struct fault_ring r;
		uint8_t tmp[8];
		int fd = fault_ring_create(self->c, 0, 8, -1, KINDS_DMA, 0);

		ASSERT_LE(0, fd);
		ASSERT_EQ(0, fault_ring_map(&r, fd));
		EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_HOLE, tmp, sizeof(tmp), 0));
		EXPECT_EQ(1, fault_ring_producer(&r));
		fault_ring_close(&r);
	}
}

TEST_HARNESS_MAIN
