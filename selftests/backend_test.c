// SPDX-License-Identifier: GPL-2.0
/*
 * backend_test - which IOMMU backend module serves the container.
 *
 * vfio core takes a reference on the backend's ops->owner module for as long
 * as a container uses it (SET_IOMMU until the last group leaves), so the
 * refcount column of /proc/modules for $VFIO_BACKEND must go up by one per
 * container at SET_IOMMU and come back down when the container is released.
 * If another module served the container, the count would not move.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "vfio_edu.h"

static const char *backend(struct __test_metadata *_metadata)
{
	const char *be = getenv("VFIO_BACKEND");

	ASSERT_NE(NULL, be) TH_LOG("VFIO_BACKEND is not set");
	ASSERT_NE(0, be[0]) TH_LOG("VFIO_BACKEND is empty");
	ASSERT_GE(module_refcount(be), 0) TH_LOG("module %s is not loaded (/proc/modules)", be);
	return be;
}

TEST(set_iommu_takes_backend_module_reference)
{
	const char *be = backend(_metadata);
	int ref0, c, g, gid;
	uint8_t *buf;
	uint64_t n = 0;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	buf = alloc_pages_4k(PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ref0 = module_refcount(be);
	TH_LOG("%s refcount before: %d", be, ref0);

	c = vfio_container_open();
	ASSERT_GE(c, 0);
	/* CHECK_EXTENSION borrows the module only for the call. */
	ASSERT_EQ(1, ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(ref0, module_refcount(be));
	g = vfio_group_attach(c, edu_bdf(0), &gid);
	ASSERT_GE(g, 0) TH_LOG("attach: %s", strerror(-g));
	EXPECT_EQ(ref0, module_refcount(be)) TH_LOG("reference taken before SET_IOMMU");

	ASSERT_EQ(0, vfio_set_iommu(c, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(ref0 + 1, module_refcount(be))
		TH_LOG("SET_IOMMU did not take a reference on %s: another backend serves", be);
	/* The container works through it. */
	ASSERT_EQ(0, vfio_map(c, 0x100000, buf, PAGE_4K, VFIO_DMA_MAP_FLAG_READ));
	EXPECT_EQ(ref0 + 1, module_refcount(be));

	/* The last group leaving releases the backend (mappings and all). */
	close(g);
	EXPECT_EQ(ref0, module_refcount(be)) TH_LOG("reference not dropped at group close");
	/* The container is back to unset: type1 ioctls are refused again. */
	EXPECT_EQ(-EINVAL, vfio_unmap(c, 0x100000, PAGE_4K, 0, &n));
	close(c);
	EXPECT_EQ(ref0, module_refcount(be));
	munmap(buf, PAGE_4K);
}

/* Closing the container fd with the group still attached also releases it, once. */
TEST(container_close_releases_backend_reference)
{
	const char *be = backend(_metadata);
	char err[256] = "";
	struct edu e;
	int ref0;

	if (edu_count() < 1)
		SKIP(return, "needs an edu device in EDU_BDFS");
	ref0 = module_refcount(be);
	ASSERT_EQ(0, edu_open(&e, edu_bdf(0), -1, VFIO_TYPE1_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(ref0 + 1, module_refcount(be));
	/* The container fd goes first; the group (and device) still hold it. */
	close(e.container);
	e.own_container = false;
	EXPECT_EQ(ref0 + 1, module_refcount(be));
	edu_close(&e);
	EXPECT_EQ(ref0, module_refcount(be));
}

/* Two containers, one reference each. */
TEST(each_container_holds_one_reference)
{
	const char *be = backend(_metadata);
	char err[256] = "";
	struct edu e1, e2;
	int ref0;

	if (edu_count() < 2)
		SKIP(return, "needs 2 edu devices in EDU_BDFS, have %d", edu_count());
	ref0 = module_refcount(be);
	ASSERT_EQ(0, edu_open(&e1, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(ref0 + 1, module_refcount(be));
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), -1, VFIO_TYPE1_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(ref0 + 2, module_refcount(be));
	edu_close(&e1);
	EXPECT_EQ(ref0 + 1, module_refcount(be));
	edu_close(&e2);
	EXPECT_EQ(ref0, module_refcount(be));
}

/* A second group joining a container with the IOMMU set takes no extra reference. */
TEST(second_group_in_container_takes_no_extra_reference)
{
	const char *be = backend(_metadata);
	char err[256] = "";
	struct edu e1, e2;
	int ref0;

	if (edu_count() < 2)
		SKIP(return, "needs 2 edu devices in EDU_BDFS, have %d", edu_count());
	ref0 = module_refcount(be);
	ASSERT_EQ(0, edu_open(&e1, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, edu_open(&e2, edu_bdf(1), e1.container, 0, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(ref0 + 1, module_refcount(be));
	edu_close(&e2);
	EXPECT_EQ(ref0 + 1, module_refcount(be));
	edu_close(&e1);
	EXPECT_EQ(ref0, module_refcount(be));
}

TEST_HARNESS_MAIN
