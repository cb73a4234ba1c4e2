// SPDX-License-Identifier: GPL-2.0
/*
 * unsafe_intr_test - the interrupt-isolation check of a type1 backend and its
 * allow_unsafe_interrupts parameter (/sys/module/$VFIO_BACKEND/parameters/,
 * bool 0644, default N).
 *
 * Upstream's vfio_iommu_type1_attach_group() refuses a group whose devices
 * have no isolated MSI (iommu_group_has_isolated_msi(): no irq domain on the
 * MSI path with IRQ_DOMAIN_FLAG_ISOLATED_MSI, i.e. no interrupt remapping on
 * x86) with EPERM unless allow_unsafe_interrupts is set. The check runs on
 * both ways a group reaches a backend: VFIO_SET_IOMMU (the container's first
 * groups) and VFIO_GROUP_SET_CONTAINER into a container that already has one.
 *
 * Which case a boot tests depends on the platform, so every test first finds
 * out whether interrupt remapping is on (chip names "IR-..." in
 * /proc/interrupts, which the intel irq remapping domains use) and checks
 * that against $RVFIO_INTREMAP (on|off) when scripts/guest-init.sh sets it:
 *   - remapping on (make check's first boot): attaching with
 *     allow_unsafe_interrupts=N succeeds and DMA works;
 *   - remapping off (make check's second boot, QEMU intel-iommu intremap=off):
 *     EPERM with N, again EPERM on a retry, the container and the group are
 *     unchanged and usable, and after allow_unsafe_interrupts=Y the same
 *     attach succeeds and the device DMAs through the IOMMU.
 * The parameter is restored by a teardown in the harness's parent process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"

#define PARAM		"allow_unsafe_interrupts"
#define IOVA_A		0x10000000ull	/* 256 MiB */
#define BUF_PAGES	4

static int param_path(char *buf, size_t len, const char *be)
{
	return snprintf(buf, len, "/sys/module/%s/parameters/" PARAM, be);
}

/* allow_unsafe_interrupts: 1 (Y), 0 (N) or -errno. */
static int unsafe_read(const char *be)
{
	char path[256], s[8] = "";
	ssize_t n;
	int fd;

	param_path(path, sizeof(path), be);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, s, sizeof(s) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	if (s[0] == 'Y')
		return 1;
	if (s[0] == 'N')
		return 0;
	return -EINVAL;
}

/* Write "Y" or "N" and read it back: 0 or -errno. */
static int unsafe_write(const char *be, int on)
{
	char path[256];
	ssize_t n;
	int fd;

	param_path(path, sizeof(path), be);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, on ? "Y\n" : "N\n", 2);
	n = n < 0 ? -errno : 0;
	close(fd);
	if (n)
		return n;
	return unsafe_read(be) == on ? 0 : -EIO;
}

/*
 * 1 if interrupts are remapped (some irq chip in /proc/interrupts is an
 * "IR-" one: IR-IO-APIC, IR-PCI-MSI-...), 0 if not, -errno.
 */
static int intremap_on(void)
{
	char line[1024];
	int on = 0, n = 0;
	FILE *f = fopen("/proc/interrupts", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		n++;
		if (strstr(line, " IR-"))
			on = 1;
	}
	fclose(f);
	return n > 1 ? on : -ENODATA;
}

static int group_status(int group)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };

	if (ioctl(group, VFIO_GROUP_GET_STATUS, &st))
		return -errno;
	return st.flags;
}

/* Open the group of bdf (viable, no container yet); fd or -errno. */
static int group_open(const char *bdf)
{
	char path[64];
	int id = edu_group_id(bdf), fd, st;

	if (id < 0)
		return id;
	snprintf(path, sizeof(path), "/dev/vfio/%d", id);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	st = group_status(fd);
	if (st < 0 || !(st & VFIO_GROUP_FLAGS_VIABLE) || (st & VFIO_GROUP_FLAGS_CONTAINER_SET)) {
		close(fd);
		return st < 0 ? st : -EBUSY;
	}
	return fd;
}

static int set_container(int group, int container)
{
	return ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) ? -errno : 0;
}

FIXTURE(unsafe) {
	char be[64];
	int old;		/* parameter before the test, -1 unknown */
	int remap;		/* interrupt remapping on */
	struct edu a, b;
	int c;
	uint8_t *buf;
};

FIXTURE_SETUP(unsafe)
{
	const char *be = getenv("VFIO_BACKEND");
	const char *want = getenv("RVFIO_INTREMAP");

	self->old = -1;
	self->c = -1;
	self->buf = MAP_FAILED;
	memset(&self->a, 0, sizeof(self->a));
	memset(&self->b, 0, sizeof(self->b));
	self->a.container = self->a.group = self->a.device = -1;
	self->b.container = self->b.group = self->b.device = -1;
	if (!be || !be[0])
		SKIP(return, "VFIO_BACKEND is not set");
	snprintf(self->be, sizeof(self->be), "%s", be);
	SKIP_IF_NO_EDU(2);
	self->old = unsafe_read(be);
	ASSERT_GE(self->old, 0) TH_LOG("/sys/module/%s/parameters/" PARAM ": %s", be,
				       strerror(-self->old));
	self->remap = intremap_on();
	ASSERT_GE(self->remap, 0) TH_LOG("cannot read /proc/interrupts");
	if (want && want[0]) {
		/* The boot promised a platform: the test must see that one. */
		ASSERT_EQ(!strcmp(want, "on"), self->remap)
			TH_LOG("RVFIO_INTREMAP=%s but interrupt remapping is %s", want,
			       self->remap ? "on" : "off");
	}
	ksft_print_msg("%s: interrupt remapping %s: expecting attach %s with " PARAM "=N\n",
		       be, self->remap ? "on" : "off", self->remap ? "to succeed" : "EPERM");
	self->buf = alloc_pages_4k(BUF_PAGES * PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

/*
 * Runs in the harness's process after the test's process has exited (which
 * closed its devices, groups and containers), even if it died.
 */
FIXTURE_TEARDOWN_PARENT(unsafe)
{
	if (self->old >= 0)
		EXPECT_EQ(0, unsafe_write(self->be, self->old));
}

/*
 * The device copies page 0 of buf -> page 1 (mapped at IOVA_A) through the
 * IOMMU, with a fresh pattern each time.
 */
#define ASSERT_DMA_WORKS(e) ASSERT_DEV_COPY((e), IOVA_A, self->buf, IOVA_A + PAGE_4K, \
					    self->buf + PAGE_4K)

/*
 * VFIO_SET_IOMMU of a container whose group has no isolated MSI: EPERM with
 * allow_unsafe_interrupts=N, twice, for type1v2 and type1; the container
 * stays without a backend (MAP_DMA and GET_DEVICE_FD: EINVAL, the group stays
 * in it). With Y the same container takes the backend and DMA works.
 * With interrupt remapping, N is enough.
 */
TEST_F_TIMEOUT(unsafe, set_iommu_needs_isolated_msi_or_param, DMA_TEST_TIMEOUT)
{
	struct edu *a = &self->a;
	uint64_t n;
	int g;

	ASSERT_EQ(0, unsafe_write(self->be, 0));
	self->c = vfio_container_open();
	ASSERT_GE(self->c, 0);
	g = group_open(edu_bdf(0));
	ASSERT_GE(g, 0) TH_LOG("group of %s: %s", edu_bdf(0), strerror(-g));
	a->group = g;
	snprintf(a->bdf, sizeof(a->bdf), "%s", edu_bdf(0));
	a->container = self->c;
	ASSERT_EQ(0, set_container(g, self->c));
	ASSERT_EQ(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET, group_status(g));

	if (!self->remap) {
		EXPECT_EQ(-EPERM, vfio_set_iommu(self->c, VFIO_TYPE1v2_IOMMU));
		/* Nothing changed: no backend, the group still in the container. */
		EXPECT_EQ(-EINVAL, vfio_map(self->c, IOVA_A, self->buf, PAGE_4K, RW));
		EXPECT_EQ(-EINVAL, (int)vfio_ioctl(g, VFIO_GROUP_GET_DEVICE_FD, a->bdf));
		EXPECT_EQ(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET,
			  group_status(g));
		EXPECT_EQ(1, vfio_ioctl(self->c, VFIO_CHECK_EXTENSION,
					(void *)(uintptr_t)VFIO_TYPE1v2_IOMMU));
		/* A retry, and the v1 interface, are refused the same way. */
		EXPECT_EQ(-EPERM, vfio_set_iommu(self->c, VFIO_TYPE1v2_IOMMU));
		EXPECT_EQ(-EPERM, vfio_set_iommu(self->c, VFIO_TYPE1_IOMMU));
		EXPECT_EQ(-EINVAL, vfio_map(self->c, IOVA_A, self->buf, PAGE_4K, RW));
		ASSERT_EQ(0, unsafe_write(self->be, 1));
	}
	ASSERT_EQ(0, vfio_set_iommu(self->c, VFIO_TYPE1v2_IOMMU));
	ASSERT_EQ(0, edu_open_device(a, NULL, 0));
	ASSERT_EQ(0, vfio_map(self->c, IOVA_A, self->buf, 2 * PAGE_4K, RW));
	ASSERT_DMA_WORKS(a);
	n = 0;
	ASSERT_EQ(0, vfio_unmap(self->c, IOVA_A, 2 * PAGE_4K, 0, &n));
	EXPECT_EQ(2 * PAGE_4K, n);
	/* Unmapped: the device's write no longer arrives. */
	memset(self->buf + PAGE_4K, 0x77, PAGE_4K);
	ASSERT_EQ(0, edu_dma_to_ram(a, 0, IOVA_A + PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_fill(self->buf + PAGE_4K, PAGE_4K, 0x77));
}

/*
 * A second group joining a container that already has the backend
 * (VFIO_GROUP_SET_CONTAINER -> attach_group): EPERM with N and no isolated
 * MSI, twice; the group stays outside, the container and its first device go
 * on working; with Y it joins and sees the existing mapping.
 */
TEST_F_TIMEOUT(unsafe, group_join_needs_isolated_msi_or_param, DMA_TEST_TIMEOUT)
{
	struct edu *a = &self->a, *b = &self->b;
	char err[256] = "";
	uint64_t n;
	int g;

	/* The first group, allowed in whatever the platform. */
	ASSERT_EQ(0, unsafe_write(self->be, !self->remap));
	ASSERT_EQ(0, edu_open(a, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, vfio_map(a->container, IOVA_A, self->buf, 2 * PAGE_4K, RW));
	ASSERT_DMA_WORKS(a);

	ASSERT_EQ(0, unsafe_write(self->be, 0));
	g = group_open(edu_bdf(1));
	ASSERT_GE(g, 0) TH_LOG("group of %s: %s", edu_bdf(1), strerror(-g));
	b->group = g;
	snprintf(b->bdf, sizeof(b->bdf), "%s", edu_bdf(1));
	b->container = a->container;
	if (!self->remap) {
		EXPECT_EQ(-EPERM, set_container(g, a->container));
		EXPECT_EQ(VFIO_GROUP_FLAGS_VIABLE, group_status(g));
		EXPECT_EQ(-EPERM, set_container(g, a->container));
		EXPECT_EQ(VFIO_GROUP_FLAGS_VIABLE, group_status(g));
		/* The container and its device are untouched. */
		ASSERT_DMA_WORKS(a);
		ASSERT_EQ(0, vfio_map(a->container, IOVA_A + SZ_1M, self->buf + 2 * PAGE_4K,
				      PAGE_4K, RW));
		n = 0;
		ASSERT_EQ(0, vfio_unmap(a->container, IOVA_A + SZ_1M, PAGE_4K, 0, &n));
		EXPECT_EQ(PAGE_4K, n);
		ASSERT_EQ(0, unsafe_write(self->be, 1));
	}
	ASSERT_EQ(0, set_container(g, a->container));
	EXPECT_EQ(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET, group_status(g));
	ASSERT_EQ(0, edu_open_device(b, NULL, 0));
	/* The mapping made before the join reaches the new group. */
	ASSERT_DMA_WORKS(b);
	ASSERT_DMA_WORKS(a);
	n = 0;
	ASSERT_EQ(0, vfio_unmap_all(a->container, &n));
	EXPECT_EQ(2 * PAGE_4K, n);
}

TEST_HARNESS_MAIN
