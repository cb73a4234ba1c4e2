// SPDX-License-Identifier: GPL-2.0
/*
 * groups_test - two edu devices, each in its own IOMMU group, in one
 * container. Every mapping of the container must reach every attached
 * group's device, whether it was made before or after the group joined;
 * a group leaving must not disturb the others; the last group leaving takes
 * every mapping (pins and locked memory) with it.
 *
 * Each claim is checked by what the devices copy: edu #1 and edu #2 both
 * move data between IOVAs of the one container.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"

#define SKIP_IF_ONE_EDU() do { \
	if (edu_count() < 2) \
		SKIP(return, "needs 2 edu devices in EDU_BDFS, have %d", edu_count()); \
} while (0)


/* The device's write to dst is dropped (dst_mem keeps its poison). */
#define ASSERT_DEV_WRITE_DROPPED(e, dst, dst_mem) do { \
	memset((dst_mem), 0xe9, PAGE_4K); \
	ASSERT_EQ(0, edu_dma_to_ram((e), 0, (dst), PAGE_4K)); \
	EXPECT_EQ(-1, check_fill((dst_mem), PAGE_4K, 0xe9)) \
		TH_LOG("%s: write to %#llx reached memory", (e)->bdf, (unsigned long long)(dst)); \
} while (0)


/* Leave the container the documented way: device fd closed, then UNSET_CONTAINER. */
static int edu_detach(struct edu *e)
{
	int ret;

	if (e->bar0)
		munmap((void *)e->bar0, e->bar0_size);
	e->bar0 = NULL;
	close(e->device);
	e->device = -1;
	ret = ioctl(e->group, VFIO_GROUP_UNSET_CONTAINER) ? -errno : 0;
	close(e->group);
	e->group = -1;
	return ret;
}

/*
 * Mappings made while only edu #1's group is attached reach edu #2 after
 * its group joins (type1 replays them into a new domain, or the group joins
 * the existing one): edu #2 copies between two IOVAs mapped before it came.
 */
TEST_F_TIMEOUT(edu, mappings_made_before_attach_reach_new_group, DMA_TEST_TIMEOUT)
{
	const uint64_t A = SZ_1M, B = SZ_4G + SZ_2M, C = 0x7000000;
	uint8_t *a = edu_buf(4 * PAGE_4K, 0), *b = edu_buf(4 * PAGE_4K, 0);
	uint8_t *ro = edu_buf(PAGE_4K, 0x66);
	char err[256] = "";
	struct edu e2;
	long lck1;
	long long pins1;

	SKIP_IF_ONE_EDU();
	ASSERT_EQ(0, vfio_map(self->c, A, a, 4 * PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, B, b, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(self->c, C, ro, PAGE_4K, RO));
	lck1 = vmlck_kb();
	pins1 = foll_pins_outstanding();
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), self->c, 0, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_NE(self->dev.group_id, e2.group_id) TH_LOG("both edus in one group");
	/* The replay pins nothing new and charges nothing new. */
	EXPECT_EQ(lck1, vmlck_kb());
	ASSERT_PINS(pins1);
	ASSERT_DEV_COPY(&e2, A + 3 * PAGE_4K, a + 3 * PAGE_4K, B + PAGE_4K, b + PAGE_4K);
	/* Permissions came along: READ-only stays read-only for the new device. */
	ASSERT_DEV_WRITE_DROPPED(&e2, C, ro);
	ASSERT_DEV_WRITE_DROPPED(&e2, A, a);
	/* The first device still works too. */
	ASSERT_DEV_COPY(&self->dev, A, a, B + 3 * PAGE_4K, b + 3 * PAGE_4K);
	edu_close(&e2);
}

/* A mapping made after both groups are attached reaches both devices; an UNMAP removes it for both. */
TEST_F_TIMEOUT(edu, map_after_attach_reaches_both_unmap_removes_for_both, DMA_TEST_TIMEOUT)
{
	const uint64_t A = 0x2000000, B = 0x2100000;
	uint8_t *a = edu_buf(PAGE_4K, 0), *b = edu_buf(2 * PAGE_4K, 0);
	char err[256] = "";
	struct edu e2;
	uint64_t n = 0;

	SKIP_IF_ONE_EDU();
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), self->c, 0, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(self->c, A, a, PAGE_4K, RO));
	ASSERT_EQ(0, vfio_map(self->c, B, b, 2 * PAGE_4K, RW));
	ASSERT_DEV_COPY(&self->dev, A, a, B, b);
	ASSERT_DEV_COPY(&e2, A, a, B + PAGE_4K, b + PAGE_4K);
	ASSERT_EQ(0, vfio_unmap(self->c, B, 2 * PAGE_4K, 0, &n));
	ASSERT_EQ(2 * PAGE_4K, n);
	ASSERT_DEV_WRITE_DROPPED(&self->dev, B, b);
	ASSERT_DEV_WRITE_DROPPED(&e2, B + PAGE_4K, b + PAGE_4K);
	edu_close(&e2);
}

/*
 * A group leaves (device fd closed, VFIO_GROUP_UNSET_CONTAINER) while
 * mappings are live: nothing is unpinned or uncharged, the other device
 * still copies through the mappings made before and after it joined, and
 * new mappings still work. UNSET_CONTAINER with the device fd open is EBUSY.
 */
TEST_F_TIMEOUT(edu, detach_one_group_other_keeps_dma, DMA_TEST_TIMEOUT)
{
	const uint64_t A = SZ_1M, B = 2 * SZ_1M, C = 3 * SZ_1M;
	uint8_t *a = edu_buf(PAGE_4K, 0), *b = edu_buf(PAGE_4K, 0), *c = edu_buf(PAGE_4K, 0);
	char err[256] = "";
	struct edu e2;
	long lck1;
	long long pins1;

	SKIP_IF_ONE_EDU();
	ASSERT_EQ(0, vfio_map(self->c, A, a, PAGE_4K, RW));
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), self->c, 0, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(self->c, B, b, PAGE_4K, RW));
	ASSERT_DEV_COPY(&self->dev, A, a, B, b);
	lck1 = vmlck_kb();
	pins1 = foll_pins_outstanding();

	EXPECT_EQ(-EBUSY, vfio_ioctl(self->dev.group, VFIO_GROUP_UNSET_CONTAINER, NULL))
		TH_LOG("UNSET_CONTAINER with the device still open");
	ASSERT_EQ(0, edu_detach(&self->dev));
	EXPECT_EQ(lck1, vmlck_kb()) TH_LOG("a group leaving changed VmLck");
	ASSERT_PINS(pins1);
	ASSERT_DEV_COPY(&e2, A, a, B, b);
	ASSERT_DEV_COPY(&e2, B, b, A, a);
	ASSERT_EQ(0, vfio_map(self->c, C, c, PAGE_4K, RW));
	ASSERT_DEV_COPY(&e2, A, a, C, c);
	/* The group that left is free: it works in a container of its own. */
	{
		struct edu e1;

		ASSERT_EQ(0, edu_open(&e1, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
			TH_LOG("reopening the detached group: %s", err);
		edu_close(&e1);
	}
	edu_close(&e2);
}

/*
 * The second group leaving takes nothing; the last group leaving takes every
 * mapping: VmLck and the pins are back to where they were although the
 * container fd is still open. The container has no IOMMU then (MAP_DMA
 * EINVAL); with a group and SET_IOMMU again it starts empty (same IOVAs map
 * without EEXIST) and works.
 */
TEST_F_TIMEOUT(edu, detach_last_group_removes_all_mappings, DMA_TEST_TIMEOUT)
{
	const uint64_t A = SZ_1M, B = SZ_4G;
	uint8_t *a = edu_buf(64 * PAGE_4K, 0), *b = edu_buf(64 * PAGE_4K, 0);
	char err[256] = "";
	long lck0;
	long long pins0;
	struct edu e2;
	int c = self->c;

	SKIP_IF_ONE_EDU();
	lck0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_EQ(0, vfio_map(c, A, a, 64 * PAGE_4K, RW));
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), c, 0, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(c, B, b, 64 * PAGE_4K, RW));
	EXPECT_EQ(lck0 + 128 * 4, vmlck_kb());
	ASSERT_PINS(pins0 + 128);

	ASSERT_EQ(0, edu_detach(&self->dev));
	EXPECT_EQ(lck0 + 128 * 4, vmlck_kb());
	ASSERT_PINS(pins0 + 128);
	ASSERT_DEV_COPY(&e2, A, a, B, b);
	/* The last group goes by closing its fds (no UNSET_CONTAINER). */
	edu_close(&e2);
	EXPECT_EQ(lck0, vmlck_kb()) TH_LOG("mappings survived the last group");
	ASSERT_PINS(pins0);
	EXPECT_EQ(-EINVAL, vfio_map(c, 0x5000000, a, PAGE_4K, RW));

	/* Same container fd, fresh start. */
	ASSERT_EQ(0, edu_open(&self->dev, edu_bdf(0), c, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	self->dev.own_container = true;	/* the fixture closes it */
	ASSERT_EQ(0, vfio_map(c, A, a, 64 * PAGE_4K, RW));
	ASSERT_EQ(0, vfio_map(c, B, b, 64 * PAGE_4K, RW));
	ASSERT_DEV_COPY(&self->dev, A + PAGE_4K, a + PAGE_4K, B + 2 * PAGE_4K, b + 2 * PAGE_4K);
	EXPECT_EQ(lck0 + 128 * 4, vmlck_kb());
	ASSERT_PINS(pins0 + 128);
}

/*
 * Three groups, the middle one leaving and coming back: the mappings made
 * while it was away reach it when it returns, and the others never lose any.
 */
TEST_F_TIMEOUT(edu, group_leaves_and_rejoins, DMA_TEST_TIMEOUT)
{
	const uint64_t A = SZ_1M, B = 2 * SZ_1M;
	uint8_t *a = edu_buf(PAGE_4K, 0), *b = edu_buf(PAGE_4K, 0);
	char err[256] = "";
	struct edu e2, e3;
	int n_edu = edu_count() >= 3 ? 3 : 2;

	SKIP_IF_ONE_EDU();
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), self->c, 0, err, sizeof(err))) TH_LOG("%s", err);
	if (n_edu == 3) {
		ASSERT_EQ(0, edu_open(&e3, edu_bdf(2), self->c, 0, err, sizeof(err)))
			TH_LOG("%s", err);
	}
	ASSERT_EQ(0, vfio_map(self->c, A, a, PAGE_4K, RW));
	ASSERT_EQ(0, edu_detach(&e2));
	ASSERT_EQ(0, vfio_map(self->c, B, b, PAGE_4K, RW));
	ASSERT_DEV_COPY(&self->dev, A, a, B, b);
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), self->c, 0, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_DEV_COPY(&e2, B, b, A, a);
	if (n_edu == 3) {
		ASSERT_DEV_COPY(&e3, A, a, B, b);
		edu_close(&e3);
	}
	edu_close(&e2);
}

TEST_HARNESS_MAIN
