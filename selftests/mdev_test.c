// SPDX-License-Identifier: GPL-2.0
/*
 * mdev_test - the emulated-IOMMU (mdev) side of a VFIO IOMMU backend, as
 * upstream vfio_iommu_type1 (6.12) implements it: vfio_pin_pages(),
 * vfio_unpin_pages(), vfio_dma_rw(), device registration and the .dma_unmap
 * notification, locked-memory accounting of pins, and pinned-page dirty
 * scope.
 *
 * The device is rvfio_mdev_sample (samples/mdev/), whose ioctls make it pin,
 * unpin, access pinned pages and vfio_dma_rw() on request
 * (samples/mdev/rvfio_mdev_sample.h). Each test creates its own mdev through
 * sysfs and removes it at the end. An mdev has an "emulated" IOMMU group:
 * the backend allocates no IOMMU domain for it and pins nothing at MAP_DMA.
 *
 * Witnesses, as in accounting_test: VmLck (mm->locked_vm of the mapping
 * task) and the system-wide count of FOLL_PIN pins (nr_foll_pin_acquired -
 * nr_foll_pin_released). Mixed tests put the first edu device (vfio-pci,
 * IOMMU-backed) into the same container.
 *
 * Without /sys/class/mdev_bus (mdev.ko) or the sample's mdev type, every test
 * skips with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include "kselftest_harness.h"
#include "vfio_edu.h"
#include "mdev_dev.h"
#include "vfio_util.h"
#include <linux/rvfio.h>

#define RO		VFIO_DMA_MAP_FLAG_READ
#define WO		VFIO_DMA_MAP_FLAG_WRITE
#define RW		(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)
#define PIN_R		RVFIO_MDEV_PROT_READ
#define PIN_W		RVFIO_MDEV_PROT_WRITE
#define PIN_RW		(PIN_R | PIN_W)
#define RW_WRITE	RVFIO_MDEV_DMA_RW_WRITE
#define RW_KTHREAD	RVFIO_MDEV_DMA_RW_KTHREAD

#define KB_PER_PAGE	(long)(PAGE_4K / 1024)
#define IOVA_A		0x100000ull	/* below the edu's 256 MiB DMA window */
#define MAX_BUFS	16
#define DMA_TEST_TIMEOUT 120

#define DSTART		VFIO_IOMMU_DIRTY_PAGES_FLAG_START
#define DSTOP		VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP

/* ---- the sample's ioctls; each returns the ioctl's result or -errno ---- */

static struct rvfio_mdev_stats mstats(int dev)
{
	struct rvfio_mdev_stats st;

	if (mdev_dev_stats(dev, &st))
		memset(&st, 0xff, sizeof(st));	/* impossible values if the ioctl fails */
	return st;
}

/* ---- dirty tracking ---- */

/* ---- accounting witnesses ---- */


#define ASSERT_VMLCK(expected_kb) do { \
	long __l = vmlck_kb(); \
	ASSERT_EQ((long)(expected_kb), __l) \
		TH_LOG("VmLck: expected %ld kB, have %ld kB", (long)(expected_kb), __l); \
} while (0)

/* ---- buffers, unmapped at teardown ---- */

struct bufs {
	struct { void *p; size_t len; } b[MAX_BUFS];
	int n;
};

#define new_buf(bufs, len, fill) __new_buf(_metadata, (bufs), (len), (fill))
static uint8_t *__new_buf(struct __test_metadata *_metadata, struct bufs *bufs,
			  size_t len, uint8_t fill)
{
	void *p;

	ASSERT_LT(bufs->n, MAX_BUFS);
	p = alloc_pages_4k(len, fill);
	ASSERT_NE(MAP_FAILED, p);
	bufs->b[bufs->n].p = p;
	bufs->b[bufs->n].len = len;
	bufs->n++;
	return p;
}

static void free_bufs(struct bufs *bufs)
{
	for (int i = 0; i < bufs->n; i++)
		munmap(bufs->b[i].p, bufs->b[i].len);
	bufs->n = 0;
}

/* =========================================================================
 * mdev-only type1v2 container
 * ========================================================================= */

FIXTURE(mdev) {
	int c;
	struct mdev_dev m;
	int dev;		/* == m.device */
	struct mdev_dev m2;		/* a second mdev, for tests that want one */
	struct bufs bufs;
};

FIXTURE_SETUP(mdev)
{
	const char *why = mdev_dev_missing();
	char err[256] = "";

	self->c = -1;
	self->bufs.n = 0;
	mdev_dev_init(&self->m);
	mdev_dev_init(&self->m2);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, mdev_dev_up(&self->m, &self->c, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("setup: %s", err);
	self->dev = self->m.device;
}

FIXTURE_TEARDOWN(mdev)
{
	mdev_dev_destroy(&self->m2);
	mdev_dev_close(&self->m);
	if (self->c >= 0)
		close(self->c);
	self->c = -1;
	mdev_dev_destroy(&self->m);
	free_bufs(&self->bufs);
}

/* The device fd answers VFIO_DEVICE_GET_INFO: no regions, no interrupts. */
TEST_F(mdev, device_info_no_regions)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };

	ASSERT_EQ(0, vfio_ioctl(self->dev, VFIO_DEVICE_GET_INFO, &info));
	EXPECT_EQ(0, info.num_regions);
	EXPECT_EQ(0, info.num_irqs);
}

/*
 * An emulated-only container has no IOMMU domain, hence no aperture and no
 * reserved regions: GET_INFO reports every page size from 4 KiB up and no
 * IOVA_RANGE capability (type1's "a container with a single mdev device will
 * have an empty list"), and MAP_DMA accepts IOVAs a VT-d domain would refuse,
 * such as the x86 MSI window.
 */
TEST_F(mdev, info_and_map_without_iova_ranges)
{
	struct vfio_iommu_type1_info *info = vfio_get_info(self->c);
	const struct vfio_iommu_type1_info_dma_avail *avail;
	uint8_t *buf = new_buf(&self->bufs, 2 * PAGE_4K, 0x31);
	uint64_t n = 0;

	ASSERT_NE(NULL, info) TH_LOG("GET_INFO: %s", strerror(errno));
	EXPECT_TRUE(info->flags & VFIO_IOMMU_INFO_PGSIZES);
	EXPECT_EQ(~(uint64_t)(PAGE_4K - 1), info->iova_pgsizes)
		TH_LOG("iova_pgsizes 0x%llx", (unsigned long long)info->iova_pgsizes);
	EXPECT_EQ(NULL, vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE));
	avail = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	ASSERT_NE(NULL, avail);
	free(info);

	ASSERT_EQ(0, vfio_map(self->c, X86_MSI_BASE, buf, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, 1ull << 62, buf + PAGE_4K, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_unmap(self->c, X86_MSI_BASE, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	ASSERT_EQ(0, vfio_unmap(self->c, 1ull << 62, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
}

/* MAP_DMA with only an emulated group pins nothing and charges nothing. */
TEST_F(mdev, map_pins_nothing)
{
	const size_t size = 64 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x42);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	struct rvfio_mdev_stats st;
	uint64_t n = 0;

	ASSERT_GE(lck0, 0);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, size, 0, &n));
	EXPECT_EQ(size, n);
	/* Nothing was pinned in the mapping: no .dma_unmap callback. */
	st = mstats(self->dev);
	EXPECT_EQ(0, st.dma_unmap_calls);
}

/*
 * Without pinning at map time, MAP_DMA does not look at the memory at all:
 * it accepts a range that is not (or no longer) mapped in the process. The
 * failure shows up when the mdev pins (EFAULT from pin_user_pages_remote) or
 * accesses it (EFAULT from the user copy).
 */
TEST_F(mdev, map_unbacked_then_pin_efault)
{
	const size_t size = 4 * PAGE_4K;
	uint8_t *buf = alloc_pages_4k(size, 0x55);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	uint8_t tmp[64];
	uint64_t n = 0;

	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, munmap(buf, size));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	EXPECT_EQ(-EFAULT, mdev_dev_pin(self->dev, IOVA_A, 1, PIN_RW));
	EXPECT_EQ(-EFAULT, mdev_dev_dma_rw(self->dev, IOVA_A, tmp, sizeof(tmp), 0));
	EXPECT_EQ(-EFAULT, mdev_dev_dma_rw(self->dev, IOVA_A, tmp, sizeof(tmp), RW_KTHREAD));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
	EXPECT_EQ(0, mstats(self->dev).pinned_pages);
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, size, 0, &n));
	EXPECT_EQ(size, n);
}

/*
 * vaddr update cannot coexist with an mdev: CHECK_EXTENSION(VFIO_UPDATE_VADDR)
 * says 0 and UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR fails with EBUSY,
 * leaving the mapping intact.
 */
TEST_F(mdev, update_vaddr_refused_with_mdev)
{
	uint8_t *buf = new_buf(&self->bufs, 4 * PAGE_4K, 0x17);
	uint64_t n = 0;

	EXPECT_EQ(0, ioctl(self->c, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, 4 * PAGE_4K, RW));
	EXPECT_EQ(-EBUSY, vfio_unmap(self->c, IOVA_A, 4 * PAGE_4K, VFIO_DMA_UNMAP_FLAG_VADDR, &n));
	/* On error type1 does not copy the struct back: size is still the input. */
	EXPECT_EQ(4 * PAGE_4K, n);
	/* Still mapped and usable. */
	EXPECT_EQ(1, mdev_dev_pin(self->dev, IOVA_A, 1, PIN_RW));
	EXPECT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A, 1));
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, 4 * PAGE_4K, 0, &n));
	EXPECT_EQ(4 * PAGE_4K, n);
}

/*
 * PIN returns npages; with no IOMMU domain in the container the backend
 * charges each pinned page to the mapper's locked_vm exactly once and holds
 * one FOLL_PIN pin per page. UNPIN gives both back.
 */
TEST_F(mdev, pin_charges_vmlck_exactly)
{
	const size_t size = 16 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x61);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	struct rvfio_mdev_stats st;

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_EQ(4, mdev_dev_pin(self->dev, IOVA_A + 2 * PAGE_4K, 4, PIN_RW));
	ASSERT_VMLCK(lck0 + 4 * KB_PER_PAGE);
	ASSERT_PINS(pins0 + 4);
	st = mstats(self->dev);
	EXPECT_EQ(4, st.pinned_pages);
	EXPECT_EQ(4, st.pinned_refs);

	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + 15 * PAGE_4K, 1, PIN_R));
	ASSERT_VMLCK(lck0 + 5 * KB_PER_PAGE);
	ASSERT_PINS(pins0 + 5);

	ASSERT_EQ(4, mdev_dev_unpin(self->dev, IOVA_A + 2 * PAGE_4K, 4));
	ASSERT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A + 15 * PAGE_4K, 1));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
	EXPECT_EQ(0, mstats(self->dev).pinned_pages);
}

/* 512 pages (VFIO_PIN_PAGES_MAX_ENTRIES) in one call work; 513 are E2BIG. */
TEST_F(mdev, pin_max_entries)
{
	const size_t size = 520 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x62);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	EXPECT_EQ(-E2BIG, mdev_dev_pin(self->dev, IOVA_A, 513, PIN_RW));
	ASSERT_VMLCK(lck0);
	ASSERT_EQ(512, mdev_dev_pin(self->dev, IOVA_A, 512, PIN_RW));
	ASSERT_VMLCK(lck0 + 512 * KB_PER_PAGE);
	ASSERT_PINS(pins0 + 512);
	ASSERT_EQ(512, mdev_dev_unpin(self->dev, IOVA_A, 512));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
}

/*
 * The struct page the backend returns is the user's page: READ_PINNED (a
 * kmap of it) returns the user's bytes, WRITE_PINNED changes the user's
 * memory, exactly at the bytes written.
 */
TEST_F(mdev, pinned_page_is_user_memory)
{
	const size_t size = 4 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0);
	uint32_t seed = random_seed();
	uint8_t got[PAGE_4K], data[300];

	fill_pattern(buf, size, seed);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_EQ(2, mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 2, PIN_RW));

	ASSERT_EQ(PAGE_4K, mdev_dev_access(self->dev, false, IOVA_A + PAGE_4K, 0, got, PAGE_4K));
	EXPECT_EQ(0, memcmp(got, buf + PAGE_4K, PAGE_4K));
	ASSERT_EQ(200, mdev_dev_access(self->dev, false, IOVA_A + 2 * PAGE_4K, 3000, got, 200));
	EXPECT_EQ(0, memcmp(got, buf + 2 * PAGE_4K + 3000, 200));

	memset(data, 0xc3, sizeof(data));
	ASSERT_EQ(sizeof(data), mdev_dev_access(self->dev, true, IOVA_A + 2 * PAGE_4K, 100, data,
					sizeof(data)));
	EXPECT_EQ(-1, check_fill(buf + 2 * PAGE_4K + 100, sizeof(data), 0xc3));
	/* Everything around it is untouched. */
	EXPECT_EQ(-1, check_pattern(buf, 2 * PAGE_4K + 100, seed));
	{
		uint8_t *ref = malloc(size);

		ASSERT_NE(NULL, ref);
		fill_pattern(ref, size, seed);
		EXPECT_EQ(0, memcmp(buf + 2 * PAGE_4K + 400, ref + 2 * PAGE_4K + 400,
				    size - 2 * PAGE_4K - 400));
		free(ref);
	}
	/* Unpinned pages cannot be accessed through the driver. */
	EXPECT_EQ(-ENOENT, mdev_dev_access(self->dev, false, IOVA_A, 0, got, 16));
	ASSERT_EQ(2, mdev_dev_unpin(self->dev, IOVA_A + PAGE_4K, 2));
}

/*
 * Pinning a page twice takes two references on one pin: VmLck and FOLL_PIN
 * are charged once, and after one unpin the page stays pinned (still charged,
 * still pinned, still reachable, and UNMAP must still ask the device to let
 * go of it).
 */
TEST_F(mdev, pin_twice_unpin_once_stays_pinned)
{
	const size_t size = 4 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x7e);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	struct rvfio_mdev_stats st;
	uint8_t got[8];
	uint64_t n = 0;

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 1, PIN_RW));
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 1, PIN_RW));
	ASSERT_VMLCK(lck0 + KB_PER_PAGE);
	ASSERT_PINS(pins0 + 1);
	st = mstats(self->dev);
	EXPECT_EQ(1, st.pinned_pages);
	EXPECT_EQ(2, st.pinned_refs);

	ASSERT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A + PAGE_4K, 1));
	ASSERT_VMLCK(lck0 + KB_PER_PAGE);
	ASSERT_PINS(pins0 + 1);
	ASSERT_EQ(sizeof(got), mdev_dev_access(self->dev, false, IOVA_A + PAGE_4K, 0, got, sizeof(got)));
	EXPECT_EQ(-1, check_fill(got, sizeof(got), 0x7e));

	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, size, 0, &n));
	EXPECT_EQ(size, n);
	st = mstats(self->dev);
	EXPECT_EQ(1, st.dma_unmap_calls);
	EXPECT_EQ(1, st.unmap_unpinned);
	EXPECT_EQ(0, st.pinned_pages);
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
}

/*
 * PIN of an IOVA no mapping covers is EINVAL, also when only the last page
 * of the request is outside; the pages pinned before the failing one are
 * unwound (nothing stays pinned or charged).
 */
TEST_F(mdev, pin_outside_mapping_einval)
{
	const size_t size = 4 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x19);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();

	EXPECT_EQ(-EINVAL, mdev_dev_pin(self->dev, IOVA_A, 1, PIN_RW));	/* nothing mapped */
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	EXPECT_EQ(-EINVAL, mdev_dev_pin(self->dev, IOVA_A - PAGE_4K, 1, PIN_RW));
	EXPECT_EQ(-EINVAL, mdev_dev_pin(self->dev, IOVA_A + size, 1, PIN_RW));
	EXPECT_EQ(-EINVAL, mdev_dev_pin(self->dev, IOVA_A + 2 * PAGE_4K, 3, PIN_RW));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
	EXPECT_EQ(0, mstats(self->dev).pinned_pages);
}

/*
 * A pin may not ask for more than the mapping allows: WRITE on a read-only
 * mapping is EPERM (READ works), READ on a write-only mapping is EPERM.
 */
TEST_F(mdev, pin_prot_exceeds_mapping_eperm)
{
	uint8_t *buf = new_buf(&self->bufs, 2 * PAGE_4K, 0x23);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A + PAGE_4K, buf + PAGE_4K, PAGE_4K, WO));
	EXPECT_EQ(-EPERM, mdev_dev_pin(self->dev, IOVA_A, 1, PIN_W));
	EXPECT_EQ(-EPERM, mdev_dev_pin(self->dev, IOVA_A, 1, PIN_RW));
	EXPECT_EQ(-EPERM, mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 1, PIN_R));
	/* Page 0 pinned, page 1 refused: unwound. */
	EXPECT_EQ(-EPERM, mdev_dev_pin(self->dev, IOVA_A, 2, PIN_R));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A, 1, PIN_R));
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 1, PIN_W));
	ASSERT_VMLCK(lck0 + 2 * KB_PER_PAGE);
	ASSERT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A, 1));
	ASSERT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A + PAGE_4K, 1));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
}

/*
 * UNMAP_DMA of a mapping with pinned pages calls the device's .dma_unmap
 * with that mapping's whole range; the device unpins, the unmap completes
 * with the full size, and pins and VmLck return to the baseline.
 */
TEST_F(mdev, unmap_with_pins_notifies)
{
	const size_t size = 16 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x4d);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	struct rvfio_mdev_stats st;
	uint64_t n = 0;

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_EQ(2, mdev_dev_pin(self->dev, IOVA_A + 3 * PAGE_4K, 2, PIN_RW));
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + 9 * PAGE_4K, 1, PIN_R));
	ASSERT_VMLCK(lck0 + 3 * KB_PER_PAGE);
	ASSERT_PINS(pins0 + 3);

	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, size, 0, &n));
	EXPECT_EQ(size, n);
	st = mstats(self->dev);
	EXPECT_EQ(1, st.dma_unmap_calls);
	EXPECT_EQ(IOVA_A, st.last_unmap_iova);
	EXPECT_EQ(size, st.last_unmap_length);
	EXPECT_EQ(3, st.unmap_unpinned);
	EXPECT_EQ(0, st.pinned_pages);
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
	/* The IOVA is free again. */
	EXPECT_EQ(-EINVAL, mdev_dev_pin(self->dev, IOVA_A + 3 * PAGE_4K, 1, PIN_R));
}

/*
 * One UNMAP_DMA over three mappings, of which the first and last hold pins:
 * one callback per mapping that has pins (with that mapping's range), none
 * for the one without; all three are unmapped.
 */
TEST_F(mdev, unmap_notifies_each_mapping_with_pins)
{
	const size_t seg = 4 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, 3 * seg, 0x2f);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	struct rvfio_mdev_stats st;
	uint64_t n = 0;

	for (int i = 0; i < 3; i++)
		ASSERT_EQ(0, vfio_map(self->c, IOVA_A + i * seg, buf + i * seg, seg, RW));
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 1, PIN_RW));
	ASSERT_EQ(2, mdev_dev_pin(self->dev, IOVA_A + 2 * seg, 2, PIN_RW));

	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, 3 * seg, 0, &n));
	EXPECT_EQ(3 * seg, n);
	st = mstats(self->dev);
	EXPECT_EQ(2, st.dma_unmap_calls);
	EXPECT_EQ(3, st.unmap_unpinned);
	/* Upstream notifies in IOVA order; either mapping's range is fine here. */
	EXPECT_TRUE(st.last_unmap_iova == IOVA_A + 2 * seg || st.last_unmap_iova == IOVA_A)
		TH_LOG("last callback iova 0x%llx", (unsigned long long)st.last_unmap_iova);
	EXPECT_EQ(seg, st.last_unmap_length);
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
}

/* UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_ALL notifies too and reports the total. */
TEST_F(mdev, unmap_all_with_pins_notifies)
{
	uint8_t *buf = new_buf(&self->bufs, 8 * PAGE_4K, 0x3a);
	long lck0 = vmlck_kb();
	struct rvfio_mdev_stats st;
	uint64_t n = 0;

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, 1ull << 32, buf + 4 * PAGE_4K, 4 * PAGE_4K, RW));
	ASSERT_EQ(4, mdev_dev_pin(self->dev, 1ull << 32, 4, PIN_RW));
	ASSERT_EQ(0, vfio_unmap_all(self->c, &n));
	EXPECT_EQ(8 * PAGE_4K, n);
	st = mstats(self->dev);
	EXPECT_EQ(1, st.dma_unmap_calls);
	EXPECT_EQ(1ull << 32, st.last_unmap_iova);
	EXPECT_EQ(4 * PAGE_4K, st.last_unmap_length);
	EXPECT_EQ(0, st.pinned_pages);
	ASSERT_VMLCK(lck0);
}

/*
 * Closing the device fd (close_device unpins everything) returns pins and
 * VmLck; the mapping stays and, with no pins left, unmaps without a callback.
 */
TEST_F(mdev, close_device_releases_pins)
{
	uint8_t *buf = new_buf(&self->bufs, 8 * PAGE_4K, 0x0c);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	struct rvfio_mdev_stats st;
	uint64_t n = 0;

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, 8 * PAGE_4K, RW));
	ASSERT_EQ(8, mdev_dev_pin(self->dev, IOVA_A, 8, PIN_RW));
	ASSERT_VMLCK(lck0 + 8 * KB_PER_PAGE);
	mdev_dev_close_device(&self->m);
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
	ASSERT_EQ(0, mdev_dev_open(&self->m));
	self->dev = self->m.device;
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, 8 * PAGE_4K, 0, &n));
	EXPECT_EQ(8 * PAGE_4K, n);
	st = mstats(self->dev);
	EXPECT_EQ(0, st.dma_unmap_calls);
	EXPECT_EQ(0, st.pinned_pages);
}

/*
 * The mapping task's RLIMIT_MEMLOCK (checked unless it had CAP_IPC_LOCK at
 * MAP_DMA time) bounds mdev pins when no IOMMU domain pins: a PIN that
 * crosses it fails with ENOMEM and unwinds; up to the limit works.
 */
TEST_F(mdev, pin_over_memlock_enomem)
{
	uint8_t *buf = new_buf(&self->bufs, 8 * PAGE_4K, 0x4b);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	struct rlimit rl;

	ASSERT_GE(lck0, 0);
	rl.rlim_cur = rl.rlim_max = (lck0 + 2 * KB_PER_PAGE) * 1024;
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &rl));
	ASSERT_EQ(0, drop_cap_ipc_lock());
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, 8 * PAGE_4K, RW));
	EXPECT_EQ(-ENOMEM, mdev_dev_pin(self->dev, IOVA_A, 3, PIN_RW));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
	ASSERT_EQ(2, mdev_dev_pin(self->dev, IOVA_A, 2, PIN_RW));
	ASSERT_VMLCK(lck0 + 2 * KB_PER_PAGE);
	EXPECT_EQ(-ENOMEM, mdev_dev_pin(self->dev, IOVA_A + 2 * PAGE_4K, 1, PIN_RW));
	/* A page pinned already costs nothing more. */
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 1, PIN_RW));
	ASSERT_VMLCK(lck0 + 2 * KB_PER_PAGE);
	ASSERT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A + PAGE_4K, 1));
	ASSERT_EQ(2, mdev_dev_unpin(self->dev, IOVA_A, 2));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
}

/* Pinned pages of a vfio-pci BAR (not pfn_valid) cannot be pinned: EINVAL. */
TEST_F(mdev, pin_mmio_einval)
{
	char err[256] = "";
	struct edu e;
	long lck0 = vmlck_kb();

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	/* The edu stays in its own container; ours maps its BAR by vaddr. */
	EXPECT_EQ(0, vfio_map(self->c, IOVA_A, (void *)e.bar0, PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, mdev_dev_pin(self->dev, IOVA_A, 1, PIN_RW));
	EXPECT_EQ(0, mstats(self->dev).pinned_pages);
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(0, vfio_unmap(self->c, IOVA_A, PAGE_4K, 0, NULL));
	edu_close(&e);
}

/*
 * DMA_RW moves bytes between the device and the user's memory without
 * pinning: reads see the user's bytes, writes change exactly the bytes
 * written, across page boundaries, from the ioctl caller and from a kthread.
 */
static void dma_rw_roundtrip(struct __test_metadata *_metadata,
			     FIXTURE_DATA(mdev) *self, uint32_t ctx)
{
	const size_t size = 4 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0);
	uint8_t *ref = malloc(size), *tmp = malloc(size);
	uint32_t seed = random_seed();
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();

	ASSERT_NE(NULL, ref);
	ASSERT_NE(NULL, tmp);
	fill_pattern(buf, size, seed);
	memcpy(ref, buf, size);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));

	ASSERT_EQ(0, mdev_dev_dma_rw(self->dev, IOVA_A + 1000, tmp, 3000 + PAGE_4K, ctx));
	EXPECT_EQ(0, memcmp(tmp, ref + 1000, 3000 + PAGE_4K));

	memset(tmp, 0xe7, size);
	ASSERT_EQ(0, mdev_dev_dma_rw(self->dev, IOVA_A + 2000, tmp, 5000, ctx | RW_WRITE));
	memset(ref + 2000, 0xe7, 5000);
	EXPECT_EQ(0, memcmp(buf, ref, size));

	ASSERT_EQ(0, mdev_dev_dma_rw(self->dev, IOVA_A, tmp, size, ctx));
	EXPECT_EQ(0, memcmp(tmp, ref, size));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
	free(ref);
	free(tmp);
}

TEST_F(mdev, dma_rw_from_caller)
{
	dma_rw_roundtrip(_metadata, self, 0);
}

TEST_F(mdev, dma_rw_from_kthread)
{
	dma_rw_roundtrip(_metadata, self, RW_KTHREAD);
}

/* One DMA_RW may span adjacent mappings of unrelated buffers. */
TEST_F(mdev, dma_rw_across_mappings)
{
	uint8_t *a = new_buf(&self->bufs, PAGE_4K, 0xaa);
	uint8_t *b = new_buf(&self->bufs, PAGE_4K, 0xbb);
	uint8_t tmp[512];

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, a, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A + PAGE_4K, b, PAGE_4K, RW));
	ASSERT_EQ(0, mdev_dev_dma_rw(self->dev, IOVA_A + PAGE_4K - 256, tmp, sizeof(tmp), 0));
	EXPECT_EQ(-1, check_fill(tmp, 256, 0xaa));
	EXPECT_EQ(-1, check_fill(tmp + 256, 256, 0xbb));
	memset(tmp, 0x11, sizeof(tmp));
	ASSERT_EQ(0, mdev_dev_dma_rw(self->dev, IOVA_A + PAGE_4K - 256, tmp, sizeof(tmp),
			     RW_WRITE | RW_KTHREAD));
	EXPECT_EQ(-1, check_fill(a + PAGE_4K - 256, 256, 0x11));
	EXPECT_EQ(-1, check_fill(b, 256, 0x11));
	EXPECT_EQ(-1, check_fill(b + 256, PAGE_4K - 256, 0xbb));
}

/*
 * DMA_RW outside every mapping is EINVAL. One that runs off the end of a
 * mapping is EINVAL too, after type1 has copied the part inside it (it works
 * mapping by mapping).
 */
TEST_F(mdev, dma_rw_outside_mapping_einval)
{
	uint8_t *buf = new_buf(&self->bufs, 2 * PAGE_4K, 0x5a);
	uint8_t tmp[512];

	memset(tmp, 0x99, sizeof(tmp));
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_A, tmp, sizeof(tmp), 0));
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_A, tmp, sizeof(tmp), RW_KTHREAD));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, 2 * PAGE_4K, RW));
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_A + 2 * PAGE_4K, tmp, 16, RW_WRITE));
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_A - 16, tmp, 16, RW_WRITE | RW_KTHREAD));
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_A + 2 * PAGE_4K - 256, tmp, sizeof(tmp),
				   RW_WRITE));
	EXPECT_EQ(-1, check_fill(buf + 2 * PAGE_4K - 256, 256, 0x99))
		TH_LOG("type1 writes the part of the request inside the mapping");
	EXPECT_EQ(-1, check_fill(buf, 2 * PAGE_4K - 256, 0x5a));
	/* Length 0 is refused by vfio_dma_rw() itself. */
	EXPECT_EQ(-EINVAL, mdev_dev_dma_rw(self->dev, IOVA_A, tmp, 0, 0));
}

/*
 * DMA_RW honours the mapping's protection: a write needs WRITE, and type1
 * wants READ for any access (so a write-only mapping is refused both ways).
 */
TEST_F(mdev, dma_rw_prot_eperm)
{
	uint8_t *buf = new_buf(&self->bufs, 2 * PAGE_4K, 0x6b);
	uint8_t tmp[64];

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A + PAGE_4K, buf + PAGE_4K, PAGE_4K, WO));
	memset(tmp, 0, sizeof(tmp));
	EXPECT_EQ(0, mdev_dev_dma_rw(self->dev, IOVA_A, tmp, sizeof(tmp), 0));
	EXPECT_EQ(-1, check_fill(tmp, sizeof(tmp), 0x6b));
	EXPECT_EQ(-EPERM, mdev_dev_dma_rw(self->dev, IOVA_A, tmp, sizeof(tmp), RW_WRITE));
	EXPECT_EQ(-EPERM, mdev_dev_dma_rw(self->dev, IOVA_A + PAGE_4K, tmp, sizeof(tmp), RW_WRITE));
	EXPECT_EQ(-EPERM, mdev_dev_dma_rw(self->dev, IOVA_A + PAGE_4K, tmp, sizeof(tmp),
				  RW_KTHREAD));
	EXPECT_EQ(-1, check_fill(buf, 2 * PAGE_4K, 0x6b));
}

/*
 * Another process (here a forked child, with its own mm) that reaches the
 * device: DMA_RW from its own context fails with EFAULT (type1 will not copy
 * into an mm that is not current's), from a kthread it works; PIN works and
 * charges the mapping task, not the child.
 */
TEST_F(mdev, other_process_dma_rw_and_pin)
{
	uint8_t *buf = new_buf(&self->bufs, 2 * PAGE_4K, 0x3c);
	long *res = mmap(NULL, PAGE_4K, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	long lck0 = vmlck_kb();
	int status;
	pid_t pid;

	ASSERT_NE(MAP_FAILED, res);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, 2 * PAGE_4K, RW));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		uint8_t tmp[32];

		memset(tmp, 0, sizeof(tmp));
		res[0] = mdev_dev_dma_rw(self->dev, IOVA_A, tmp, sizeof(tmp), 0);
		res[1] = mdev_dev_dma_rw(self->dev, IOVA_A, tmp, sizeof(tmp), RW_KTHREAD);
		res[2] = check_fill(tmp, sizeof(tmp), 0x3c);
		res[3] = mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 1, PIN_RW);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(-EFAULT, res[0]);
	EXPECT_EQ(0, res[1]);
	EXPECT_EQ(-1, res[2]);
	EXPECT_EQ(1, res[3]);
	ASSERT_VMLCK(lck0 + KB_PER_PAGE);
	ASSERT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A + PAGE_4K, 1));
	ASSERT_VMLCK(lck0);
	munmap(res, PAGE_4K);
}

/*
 * Dirty tracking with only an emulated group is pinned-page scoped: a
 * GET_BITMAP reports the pages pinned (before or during tracking) and the
 * pages written by DMA_RW since the last GET_BITMAP; the next one reports
 * only what is still pinned. DMA_RW reads dirty nothing. An unpinned page is
 * still reported once (it was dirty since the last report).
 */
TEST_F(mdev, dirty_pinned_scope)
{
	const size_t size = 8 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x12);
	uint8_t tmp[16] = { 1, 2, 3 };
	uint64_t w;

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + 6 * PAGE_4K, 1, PIN_R));	/* before START */
	ASSERT_EQ(0, vfio_dirty_ctl(self->c, DSTART));

	ASSERT_EQ(0, vfio_dirty_get(self->c, IOVA_A, size, &w, 1));
	EXPECT_EQ(1ull << 6, w) TH_LOG("bitmap 0x%llx", (unsigned long long)w);

	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 1, PIN_RW));
	ASSERT_EQ(0, mdev_dev_dma_rw(self->dev, IOVA_A + 3 * PAGE_4K + 10, tmp, sizeof(tmp), RW_WRITE));
	ASSERT_EQ(0, mdev_dev_dma_rw(self->dev, IOVA_A + 4 * PAGE_4K, tmp, sizeof(tmp),
			     RW_WRITE | RW_KTHREAD));
	ASSERT_EQ(0, mdev_dev_dma_rw(self->dev, IOVA_A + 5 * PAGE_4K, tmp, sizeof(tmp), 0));
	ASSERT_EQ(0, vfio_dirty_get(self->c, IOVA_A, size, &w, 1));
	EXPECT_EQ((1ull << 1) | (1ull << 3) | (1ull << 4) | (1ull << 6), w)
		TH_LOG("bitmap 0x%llx", (unsigned long long)w);

	ASSERT_EQ(0, vfio_dirty_get(self->c, IOVA_A, size, &w, 1));
	EXPECT_EQ((1ull << 1) | (1ull << 6), w) TH_LOG("bitmap 0x%llx", (unsigned long long)w);

	ASSERT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A + PAGE_4K, 1));
	ASSERT_EQ(0, vfio_dirty_get(self->c, IOVA_A, size, &w, 1));
	EXPECT_EQ((1ull << 1) | (1ull << 6), w) TH_LOG("bitmap 0x%llx", (unsigned long long)w);
	ASSERT_EQ(0, vfio_dirty_get(self->c, IOVA_A, size, &w, 1));
	EXPECT_EQ(1ull << 6, w) TH_LOG("bitmap 0x%llx", (unsigned long long)w);

	ASSERT_EQ(0, vfio_dirty_ctl(self->c, DSTOP));
	ASSERT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A + 6 * PAGE_4K, 1));
}

/*
 * UNMAP_DMA with GET_DIRTY_BITMAP while a page is pinned: the device is told
 * to unpin first, and the returned bitmap still has that page (and only it).
 */
TEST_F(mdev, dirty_unmap_bitmap_reports_pinned)
{
	const size_t size = 8 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x13);
	uint64_t w = 0;
	struct {
		struct vfio_iommu_type1_dma_unmap u;
		struct vfio_bitmap b;
	} req = {
		.u = {
			.argsz = sizeof(req),
			.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			.iova = IOVA_A, .size = size,
		},
		.b = { .pgsize = PAGE_4K, .size = sizeof(w), .data = (__u64 *)&w },
	};

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_EQ(0, vfio_dirty_ctl(self->c, DSTART));
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + 2 * PAGE_4K, 1, PIN_RW));
	ASSERT_EQ(0, vfio_ioctl(self->c, VFIO_IOMMU_UNMAP_DMA, &req));
	EXPECT_EQ(size, req.u.size);
	EXPECT_EQ(1ull << 2, w) TH_LOG("bitmap 0x%llx", (unsigned long long)w);
	EXPECT_EQ(1, mstats(self->dev).dma_unmap_calls);
	EXPECT_EQ(0, mstats(self->dev).pinned_pages);
	ASSERT_EQ(0, vfio_dirty_ctl(self->c, DSTOP));
}

/*
 * Two mdevs in one container: the backend notifies every registered device
 * for a mapping with pins, whichever device pinned. Both pinning the same
 * page shares one pin (charged once).
 */
TEST_F(mdev, two_mdevs_both_notified)
{
	uint8_t *buf = new_buf(&self->bufs, 4 * PAGE_4K, 0x71);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	struct rvfio_mdev_stats s1, s2;
	struct mdev_dev *m2 = &self->m2;
	char err[256] = "";
	uint64_t n = 0;
	int ret;

	ret = mdev_dev_up(m2, &self->c, 0, err, sizeof(err));
	ASSERT_EQ(0, ret) TH_LOG("second mdev: %s", err);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A + SZ_1M, buf, PAGE_4K, RW));
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 1, PIN_RW));
	ASSERT_EQ(1, mdev_dev_pin(m2->device, IOVA_A + PAGE_4K, 1, PIN_RW));
	ASSERT_VMLCK(lck0 + KB_PER_PAGE);
	ASSERT_PINS(pins0 + 1);

	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, 4 * PAGE_4K, 0, &n));
	EXPECT_EQ(4 * PAGE_4K, n);
	s1 = mstats(self->dev);
	s2 = mstats(m2->device);
	EXPECT_EQ(1, s1.dma_unmap_calls);
	EXPECT_EQ(1, s2.dma_unmap_calls);
	EXPECT_EQ(IOVA_A, s2.last_unmap_iova);
	EXPECT_EQ(4 * PAGE_4K, s2.last_unmap_length);
	EXPECT_EQ(1, s1.unmap_unpinned);
	EXPECT_EQ(1, s2.unmap_unpinned);
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);

	/* Only m2 pins now: both are still told. */
	ASSERT_EQ(1, mdev_dev_pin(m2->device, IOVA_A + SZ_1M, 1, PIN_R));
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A + SZ_1M, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	EXPECT_EQ(2, mstats(self->dev).dma_unmap_calls);
	EXPECT_EQ(2, mstats(m2->device).dma_unmap_calls);
	ASSERT_VMLCK(lck0);
}

/* =========================================================================
 * Tests that build their own container: the "bare" fixture only cleans up
 * (an mdev left behind would use up one of the sample's instances).
 * ========================================================================= */

FIXTURE(bare) {
	int c;			/* container */
	struct mdev_dev m;
	struct edu e;		/* joins c; c stays owned by the fixture */
	struct bufs bufs;
};

FIXTURE_SETUP(bare)
{
	const char *why = mdev_dev_missing();

	self->c = -1;
	self->bufs.n = 0;
	mdev_dev_init(&self->m);
	memset(&self->e, 0, sizeof(self->e));
	self->e.container = self->e.group = self->e.device = -1;
	if (why)
		SKIP(return, "%s", why);
}

FIXTURE_TEARDOWN(bare)
{
	edu_close(&self->e);
	mdev_dev_close(&self->m);
	if (self->c >= 0)
		close(self->c);
	self->c = -1;
	mdev_dev_destroy(&self->m);
	free_bufs(&self->bufs);
}

/* In a VFIO_TYPE1_IOMMU (v1) container vfio_pin_pages() is EACCES; dma_rw works. */
TEST_F(bare, v1_container_pin_eacces)
{
	uint8_t *buf = new_buf(&self->bufs, 2 * PAGE_4K, 0x44);
	char err[256] = "";
	uint8_t tmp[16];
	uint64_t n = 0;

	ASSERT_EQ(0, mdev_dev_up(&self->m, &self->c, VFIO_TYPE1_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, 2 * PAGE_4K, RW));
	EXPECT_EQ(-EACCES, mdev_dev_pin(self->m.device, IOVA_A, 1, PIN_RW));
	EXPECT_EQ(0, mstats(self->m.device).pinned_pages);
	EXPECT_EQ(0, mdev_dev_dma_rw(self->m.device, IOVA_A, tmp, sizeof(tmp), 0));
	EXPECT_EQ(-1, check_fill(tmp, sizeof(tmp), 0x44));
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, 2 * PAGE_4K, 0, &n));
	EXPECT_EQ(2 * PAGE_4K, n);
}

/* =========================================================================
 * Mixed container: the first edu (vfio-pci, IOMMU domain) plus an mdev
 * ========================================================================= */

FIXTURE(mixed) {
	struct edu e;
	int c;
	struct mdev_dev m;
	int dev;
	struct bufs bufs;
};

FIXTURE_SETUP(mixed)
{
	const char *why = mdev_dev_missing();
	char err[256] = "";
	int ret;

	self->bufs.n = 0;
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
	edu_close(&self->e);		/* closes the container */
	mdev_dev_destroy(&self->m);
	free_bufs(&self->bufs);
}

/*
 * With an IOMMU domain in the container, MAP_DMA pins and charges every page
 * once; an mdev PIN of those pages charges nothing more (type1 pins the page
 * again for the mdev's reference, and lets go of it at UNPIN). The edu's DMA
 * still works, and sees the same memory as the mdev's pinned pages.
 */
TEST_F_TIMEOUT(mixed, map_charges_once_and_edu_works, DMA_TEST_TIMEOUT)
{
	const size_t size = 16 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0);
	uint32_t seed = random_seed();
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding(), pins_pin;
	uint8_t got[256], data[256];
	uint64_t n = 0;

	fill_pattern(buf, size, seed);
	ASSERT_EQ(0, ioctl(self->c, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_VMLCK(lck0 + 16 * KB_PER_PAGE);
	ASSERT_PINS(pins0 + 16);

	ASSERT_EQ(4, mdev_dev_pin(self->dev, IOVA_A, 4, PIN_RW));
	ASSERT_VMLCK(lck0 + 16 * KB_PER_PAGE);
	pins_pin = foll_pins_outstanding();
	TH_LOG("FOLL_PIN pins after the mdev PIN of 4 mapped pages: +%lld",
	       pins_pin - (pins0 + 16));

	/* The mdev writes page 1 through its struct page; the edu reads it. */
	memset(data, 0x5d, sizeof(data));
	ASSERT_EQ(sizeof(data), mdev_dev_access(self->dev, true, IOVA_A + PAGE_4K, 0, data, sizeof(data)));
	ASSERT_EQ(0, edu_dma_to_dev(&self->e, IOVA_A + PAGE_4K, 0, sizeof(data)));
	ASSERT_EQ(0, edu_dma_to_ram(&self->e, 0, IOVA_A + 8 * PAGE_4K, sizeof(data)));
	EXPECT_EQ(-1, check_fill(buf + 8 * PAGE_4K, sizeof(data), 0x5d));
	/* The edu writes page 3 (pinned by the mdev); the mdev reads it. */
	ASSERT_EQ(0, edu_copy(&self->e, IOVA_A + 12 * PAGE_4K, IOVA_A + 3 * PAGE_4K, sizeof(got)));
	ASSERT_EQ(sizeof(got),
		  mdev_dev_access(self->dev, false, IOVA_A + 3 * PAGE_4K, 0, got, sizeof(got)));
	EXPECT_EQ(0, memcmp(got, buf + 12 * PAGE_4K, sizeof(got)));
	EXPECT_EQ(0, memcmp(buf + 3 * PAGE_4K, buf + 12 * PAGE_4K, sizeof(got)));

	ASSERT_EQ(4, mdev_dev_unpin(self->dev, IOVA_A, 4));
	ASSERT_VMLCK(lck0 + 16 * KB_PER_PAGE);
	ASSERT_PINS(pins0 + 16);
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, size, 0, &n));
	EXPECT_EQ(size, n);
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
}

/* UNMAP_DMA with mdev pins in a mixed container: notified, all released. */
TEST_F(mixed, unmap_with_pins_notifies)
{
	const size_t size = 8 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x29);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	struct rvfio_mdev_stats st;
	uint64_t n = 0;

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_EQ(3, mdev_dev_pin(self->dev, IOVA_A + 2 * PAGE_4K, 3, PIN_RW));
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, size, 0, &n));
	EXPECT_EQ(size, n);
	st = mstats(self->dev);
	EXPECT_EQ(1, st.dma_unmap_calls);
	EXPECT_EQ(IOVA_A, st.last_unmap_iova);
	EXPECT_EQ(size, st.last_unmap_length);
	EXPECT_EQ(0, st.pinned_pages);
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
}

/*
 * The edu group leaves while the mdev holds pins: the last IOMMU domain goes,
 * its pins are dropped, and locked_vm is re-accounted to just the pages the
 * mdev still pins. Unpinning them then returns VmLck to the baseline.
 */
TEST_F(mixed, edu_leaves_reaccounts_mdev_pins)
{
	const size_t size = 16 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x2a);
	long lck0 = vmlck_kb();
	long long pins0 = foll_pins_outstanding();
	uint8_t got[16];
	int c = self->c;

	ASSERT_EQ(0, vfio_map(c, IOVA_A, buf, size, RW));
	ASSERT_EQ(3, mdev_dev_pin(self->dev, IOVA_A + 5 * PAGE_4K, 3, PIN_RW));
	ASSERT_VMLCK(lck0 + 16 * KB_PER_PAGE);

	/* Keep the container: take it from the edu, then close the edu. */
	self->e.own_container = false;
	edu_close(&self->e);
	self->e.container = c;
	self->e.own_container = true;
	ASSERT_VMLCK(lck0 + 3 * KB_PER_PAGE);
	ASSERT_PINS(pins0 + 3);
	ASSERT_EQ(sizeof(got),
		  mdev_dev_access(self->dev, false, IOVA_A + 6 * PAGE_4K, 0, got, sizeof(got)));
	EXPECT_EQ(-1, check_fill(got, sizeof(got), 0x2a));
	/* Now pins are charged one by one again. */
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A, 1, PIN_RW));
	ASSERT_VMLCK(lck0 + 4 * KB_PER_PAGE);
	ASSERT_EQ(3, mdev_dev_unpin(self->dev, IOVA_A + 5 * PAGE_4K, 3));
	ASSERT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A, 1));
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
}

/*
 * Dirty tracking in a mixed container: the edu group never pins, so type1
 * cannot know what it wrote and reports every mapped page dirty on every
 * GET_BITMAP, whatever the mdev pins.
 */
TEST_F(mixed, dirty_all_pages_while_edu_never_pins)
{
	const size_t size = 16 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x2b);
	uint64_t w;

	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_EQ(0, vfio_dirty_ctl(self->c, DSTART));
	ASSERT_EQ(1, mdev_dev_pin(self->dev, IOVA_A + PAGE_4K, 1, PIN_RW));
	ASSERT_EQ(0, vfio_dirty_get(self->c, IOVA_A, size, &w, 1));
	EXPECT_EQ(0xffffull, w) TH_LOG("bitmap 0x%llx", (unsigned long long)w);
	ASSERT_EQ(0, vfio_dirty_get(self->c, IOVA_A, size, &w, 1));
	EXPECT_EQ(0xffffull, w) TH_LOG("bitmap 0x%llx", (unsigned long long)w);
	ASSERT_EQ(0, vfio_dirty_ctl(self->c, DSTOP));
	ASSERT_EQ(1, mdev_dev_unpin(self->dev, IOVA_A + PAGE_4K, 1));
}

/*
 * mdev first, edu joins later: pages the mdev already pinned (and charged)
 * are not charged again when the new IOMMU domain pins the whole mapping, and
 * the vaddr-update extension stays off. (VFIO_UPDATE_VADDR is on for the edu
 * alone.)
 */
TEST_F_TIMEOUT(bare, edu_joins_after_mdev_pins, DMA_TEST_TIMEOUT)
{
	const size_t size = 16 * PAGE_4K;
	uint8_t *buf = new_buf(&self->bufs, size, 0x66);
	char err[256] = "";
	long lck0;
	long long pins0;
	uint64_t n = 0;
	int ret;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");

	/* The edu alone offers vaddr update. */
	ASSERT_EQ(0, edu_open(&self->e, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(1, ioctl(self->e.container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	edu_close(&self->e);

	lck0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_EQ(0, mdev_dev_up(&self->m, &self->c, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(0, ioctl(self->c, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, buf, size, RW));
	ASSERT_EQ(4, mdev_dev_pin(self->m.device, IOVA_A + 4 * PAGE_4K, 4, PIN_RW));
	ASSERT_VMLCK(lck0 + 4 * KB_PER_PAGE);

	ret = edu_open(&self->e, edu_bdf(0), self->c, 0, err, sizeof(err));
	ASSERT_EQ(0, ret) TH_LOG("edu joining: %s", err);
	ASSERT_VMLCK(lck0 + 16 * KB_PER_PAGE);
	EXPECT_EQ(0, ioctl(self->c, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	/* The new domain maps the old mapping: the edu can DMA through it. */
	ASSERT_EQ(0, edu_copy(&self->e, IOVA_A, IOVA_A + 10 * PAGE_4K, 64));
	EXPECT_EQ(-1, check_fill(buf + 10 * PAGE_4K, 64, 0x66));
	ASSERT_EQ(4, mdev_dev_unpin(self->m.device, IOVA_A + 4 * PAGE_4K, 4));
	ASSERT_VMLCK(lck0 + 16 * KB_PER_PAGE);
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, size, 0, &n));
	EXPECT_EQ(size, n);
	ASSERT_VMLCK(lck0);
	ASSERT_PINS(pins0);
}

/*
 * An IOMMU-backed group cannot join a container whose (aperture-less, mdev
 * only) IOVA space already maps its reserved MSI window: SET_CONTAINER fails
 * with EINVAL and the container keeps working for the mdev.
 */
TEST_F(bare, edu_join_conflicts_with_msi_mapping)
{
	const uint64_t iova = X86_MSI_BASE + SZ_1M / 2;
	uint8_t *buf = new_buf(&self->bufs, PAGE_4K, 0x67);
	char err[256] = "";
	uint64_t n = 0;
	int ret;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	ASSERT_EQ(0, mdev_dev_up(&self->m, &self->c, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(self->c, iova, buf, PAGE_4K, RW));
	ret = edu_open(&self->e, edu_bdf(0), self->c, 0, err, sizeof(err));
	EXPECT_EQ(-EINVAL, ret) TH_LOG("edu joining: %s", err);
	ASSERT_EQ(1, mdev_dev_pin(self->m.device, iova, 1, PIN_RW));
	ASSERT_EQ(0, vfio_unmap(self->c, iova, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	EXPECT_EQ(1, mstats(self->m.device).dma_unmap_calls);
}

/* =========================================================================
 * Nesting container with a bound mdev group (rvfio only): the device's
 * pin_pages and dma_rw are translated through the guest's stage-1 table.
 * ========================================================================= */

#define E_OK	0x7ull		/* present, writable, user */
#define E_RO	0x5ull		/* present, user */
#define N_PML4	0x100000ull	/* PML4, PDPT, PD, PT follow: one mapping */
#define N_D	0x800000ull
#define N_D2	0x801000ull

/* VFIO_BACKEND says rvfio (not only that rvfio is loaded). */
static bool backend_env_is_rvfio(void)
{
	const char *be = getenv("VFIO_BACKEND");

	return be && !strcmp(be, "rvfio");
}

TEST_F(bare, nesting_mdev_translates_through_stage1)
{
	uint64_t *t = (uint64_t *)new_buf(&self->bufs, 4 * PAGE_4K, 0);
	uint8_t *d = new_buf(&self->bufs, PAGE_4K, 0x11);
	uint8_t *d2 = new_buf(&self->bufs, PAGE_4K, 0x22);
	uint8_t *decoy = new_buf(&self->bufs, PAGE_4K, 0xdc);
	uint8_t buf[64], rd[32];
	struct rvfio_mdev_stats st;
	struct mdev_dev m2;
	char err[256] = "";
	long long pins0;
	uint64_t n = 0;
	uint32_t out = 0;
	long flags;

	if (!backend_env_is_rvfio())
		SKIP(return, "rvfio only: upstream 6.12 type1 has no stage-1 bind");
	pins0 = foll_pins_outstanding();
	ASSERT_EQ(0, mdev_dev_up(&self->m, &self->c, VFIO_TYPE1_NESTING_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	t[0] = (N_PML4 + PAGE_4K) | E_OK;
	t[512] = (N_PML4 + 2 * PAGE_4K) | E_OK;
	t[1024] = (N_PML4 + 3 * PAGE_4K) | E_OK;
	t[1536 + 5] = N_D | E_OK;		/* 0x5000 -> D */
	t[1536 + 6] = N_D2 | E_RO;		/* 0x6000 -> D2, read-only */
	ASSERT_EQ(0, vfio_map(self->c, N_PML4, t, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, N_D, d, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, N_D2, d2, PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, 0x5000, decoy, PAGE_4K, RW));
	ASSERT_EQ(0, nesting_bind(self->c, self->m.group_id, N_PML4, 48, 0, &out));
	flags = out;
	ASSERT_GT(flags, 0);
	EXPECT_TRUE(flags & RVFIO_NESTING_GROUP_EMULATED);
	EXPECT_TRUE(flags & RVFIO_NESTING_GROUP_BOUND);

	/* A second emulated group cannot join while this one is bound. */
	mdev_dev_init(&m2);
	ASSERT_EQ(0, mdev_dev_create(&m2)) TH_LOG("create mdev %s", m2.uuid);
	EXPECT_EQ(-EBUSY, mdev_dev_attach(&m2, self->c));
	mdev_dev_destroy(&m2);

	/* dma_rw: stage-1 IOVAs, both directions; a leaf boundary crossed. */
	memset(buf, 0x5a, sizeof(buf));
	EXPECT_EQ(0, mdev_dev_dma_rw(self->m.device, 0x5010, buf, sizeof(buf), RW_WRITE));
	EXPECT_EQ(-1, check_fill(d + 0x10, sizeof(buf), 0x5a));
	EXPECT_EQ(-1, check_fill(decoy, PAGE_4K, 0xdc));
	EXPECT_EQ(0, mdev_dev_dma_rw(self->m.device, 0x5ff0, rd, sizeof(rd), RW_KTHREAD));
	EXPECT_EQ(-1, check_fill(rd, 16, 0x11));
	EXPECT_EQ(-1, check_fill(rd + 16, 16, 0x22));
	/* Stage-1 faults: read-only entry written, hole. */
	EXPECT_EQ(-EPERM, mdev_dev_dma_rw(self->m.device, 0x6000, buf, 8, RW_WRITE));
	EXPECT_EQ(-1, check_fill(d2, PAGE_4K, 0x22));
	EXPECT_EQ(-EFAULT, mdev_dev_dma_rw(self->m.device, 0x7000, buf, 8, 0));

	/* pin_pages through stage 1: the page pinned is D. */
	ASSERT_EQ(1, mdev_dev_pin(self->m.device, 0x5000, 1, PIN_RW));
	ASSERT_PINS(pins0 + 1);
	EXPECT_EQ(8, mdev_dev_access(self->m.device, false, 0x5000, 0x10, rd, 8));
	EXPECT_EQ(-1, check_fill(rd, 8, 0x5a));
	EXPECT_EQ(-EPERM, mdev_dev_pin(self->m.device, 0x6000, 1, PIN_W));
	EXPECT_EQ(-EFAULT, mdev_dev_pin(self->m.device, 0x7000, 1, PIN_R));
	ASSERT_PINS(pins0 + 1);

	/* An invalidation asks the device for its pins there (by stage-1 IOVA). */
	t[1536 + 5] = N_D2 | E_OK;
	ASSERT_EQ(0, nesting_invalidate(self->c, self->m.group_id, 0x5000, 1, NULL));
	st = mstats(self->m.device);
	EXPECT_EQ(1, st.dma_unmap_calls);
	EXPECT_EQ(0x5000, st.last_unmap_iova);
	EXPECT_EQ(0, st.pinned_pages);
	ASSERT_PINS(pins0);
	/* Pinned again: D2 now. */
	ASSERT_EQ(1, mdev_dev_pin(self->m.device, 0x5000, 1, PIN_RW));
	EXPECT_EQ(8, mdev_dev_access(self->m.device, false, 0x5000, 0, rd, 8));
	EXPECT_EQ(-1, check_fill(rd, 8, 0x22));

	/* UNMAP_DMA of D2 while pinned through stage 1: notified by stage-1 IOVA. */
	ASSERT_EQ(0, vfio_unmap(self->c, N_D2, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	st = mstats(self->m.device);
	EXPECT_EQ(0x5000, st.last_unmap_iova);
	EXPECT_EQ(0, st.pinned_pages);
	ASSERT_PINS(pins0);
	/* D2 is gone from stage 2: a stage-2 fault (EINVAL, as type1's). */
	EXPECT_EQ(-EINVAL, mdev_dev_pin(self->m.device, 0x5000, 1, PIN_R));

	/* Unbind gives the pins back, and 0x5000 is the decoy's address again. */
	t[1536 + 5] = N_D | E_OK;
	ASSERT_EQ(0, nesting_invalidate(self->c, self->m.group_id, 0x5000, 1, NULL));
	ASSERT_EQ(1, mdev_dev_pin(self->m.device, 0x5000, 1, PIN_RW));
	ASSERT_PINS(pins0 + 1);
	ASSERT_EQ(0, nesting_unbind(self->c, self->m.group_id));
	EXPECT_EQ(0, mstats(self->m.device).pinned_pages);
	ASSERT_PINS(pins0);
	EXPECT_EQ(0, mdev_dev_dma_rw(self->m.device, 0x5000, rd, 8, 0));
	EXPECT_EQ(-1, check_fill(rd, 8, 0xdc));
}

TEST_HARNESS_MAIN
