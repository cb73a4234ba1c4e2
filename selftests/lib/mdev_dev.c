// SPDX-License-Identifier: GPL-2.0
/* mdev_dev.c - see mdev_dev.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "mdev_dev.h"
#include "vfio_edu.h"
#include "vfio_util.h"

#define MDEV_BUS_DIR	"/sys/class/mdev_bus"
#define MDEV_TYPE_DIR	MDEV_BUS_DIR "/" RVFIO_MDEV_SAMPLE_PARENT \
			"/mdev_supported_types/" RVFIO_MDEV_SAMPLE_TYPE

static long ioctl_ret(int fd, unsigned long req, void *arg)
{
	long r = ioctl(fd, req, arg);

	return r < 0 ? -errno : r;
}

const char *mdev_dev_missing(void)
{
	if (access("/dev/vfio/vfio", F_OK))
		return "/dev/vfio/vfio does not exist: vfio is not loaded";
	if (access(MDEV_BUS_DIR, F_OK))
		return MDEV_BUS_DIR " does not exist: mdev.ko is not loaded";
	if (access(MDEV_TYPE_DIR, F_OK))
		return MDEV_TYPE_DIR " does not exist: rvfio_mdev_sample.ko is not loaded";
	return NULL;
}

void mdev_dev_init(struct mdev_dev *m)
{
	memset(m, 0, sizeof(*m));
	m->group = m->device = -1;
}

int mdev_dev_create(struct mdev_dev *m)
{
	char path[256], link[256];
	const char *base;
	uint8_t b[16];
	ssize_t n;
	int ret;

	if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
		uint64_t t = random_seed() * 0x9e3779b97f4a7c15ull ^ getpid();

		for (int i = 0; i < 16; i++)
			b[i] = t >> (8 * (i % 8)) ^ i * 37;
	}
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* variant 1 */
	snprintf(m->uuid, sizeof(m->uuid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
	ret = sysfs_write_str(MDEV_TYPE_DIR "/create", m->uuid);
	if (ret)
		return ret;
	m->created = true;
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group", m->uuid);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = '\0';
	base = strrchr(link, '/');
	m->group_id = atoi(base ? base + 1 : link);
	snprintf(path, sizeof(path), "/dev/vfio/%d", m->group_id);
	for (int i = 0; i < 50 && access(path, F_OK); i++)
		usleep(100 * 1000);
	return access(path, F_OK) ? -ENOENT : 0;
}

int mdev_dev_attach(struct mdev_dev *m, int container)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char path[64];

	if (m->group < 0) {
		snprintf(path, sizeof(path), "/dev/vfio/%d", m->group_id);
		m->group = open(path, O_RDWR | O_CLOEXEC);
		if (m->group < 0)
			return -errno;
	}
	if (ioctl(m->group, VFIO_GROUP_GET_STATUS, &st))
		return -errno;
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
		return -EPERM;
	return ioctl(m->group, VFIO_GROUP_SET_CONTAINER, &container) ? -errno : 0;
}

int mdev_dev_open(struct mdev_dev *m)
{
	m->device = ioctl(m->group, VFIO_GROUP_GET_DEVICE_FD, m->uuid);
	if (m->device < 0) {
		m->device = -1;
		return -errno;
	}
	return 0;
}

void mdev_dev_close_device(struct mdev_dev *m)
{
	if (m->device >= 0)
		close(m->device);
	m->device = -1;
}

void mdev_dev_close(struct mdev_dev *m)
{
	mdev_dev_close_device(m);
	if (m->group >= 0)
		close(m->group);
	m->group = -1;
}

void mdev_dev_destroy(struct mdev_dev *m)
{
	char path[128];

	mdev_dev_close(m);
	if (m->created) {
		snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", m->uuid);
		sysfs_write_str(path, "1");
		m->created = false;
	}
}

int mdev_dev_up(struct mdev_dev *m, int *container, int iommu_type, char *err, size_t errlen)
{
	bool own = *container < 0;
	int ret;

	mdev_dev_init(m);
	if (own) {
		*container = vfio_container_open();
		if (*container < 0) {
			ret = *container;
			snprintf(err, errlen, "open /dev/vfio/vfio: %s", strerror(-ret));
			return ret;
		}
	}
	ret = mdev_dev_create(m);
	if (ret) {
		snprintf(err, errlen, "create mdev %s: %s", m->uuid, strerror(-ret));
		goto fail;
	}
	ret = mdev_dev_attach(m, *container);
	if (ret) {
		snprintf(err, errlen, "attach group %d of mdev %s: %s", m->group_id,
			 m->uuid, strerror(-ret));
		goto fail;
	}
	if (iommu_type) {
		ret = vfio_set_iommu(*container, iommu_type);
		if (ret) {
			snprintf(err, errlen, "VFIO_SET_IOMMU(%d) with only the mdev group: %s",
				 iommu_type, strerror(-ret));
			goto fail;
		}
	}
	ret = mdev_dev_open(m);
	if (ret) {
		snprintf(err, errlen, "VFIO_GROUP_GET_DEVICE_FD(%s): %s", m->uuid,
			 strerror(-ret));
		goto fail;
	}
	return 0;
fail:
	mdev_dev_destroy(m);
	if (own) {
		close(*container);
		*container = -1;
	}
	return ret;
}

long mdev_dev_pin(int dev, uint64_t iova, uint32_t npages, uint32_t prot)
{
	struct rvfio_mdev_pin p = { .iova = iova, .npages = npages, .prot = prot };

	return ioctl_ret(dev, RVFIO_MDEV_PIN, &p);
}

long mdev_dev_unpin(int dev, uint64_t iova, uint32_t npages)
{
	struct rvfio_mdev_pin p = { .iova = iova, .npages = npages };

	return ioctl_ret(dev, RVFIO_MDEV_UNPIN, &p);
}

long mdev_dev_dma_rw(int dev, uint64_t iova, void *buf, uint32_t len, uint32_t flags)
{
	struct rvfio_mdev_dma_rw r = {
		.iova = iova, .data = (uintptr_t)buf, .len = len, .flags = flags,
	};

	return ioctl_ret(dev, RVFIO_MDEV_DMA_RW, &r);
}

long mdev_dev_access(int dev, bool write, uint64_t iova, uint32_t off, void *buf, uint32_t len)
{
	struct rvfio_mdev_access a = {
		.iova = iova, .offset = off, .len = len, .data = (uintptr_t)buf,
	};

	return ioctl_ret(dev, write ? RVFIO_MDEV_WRITE_PINNED : RVFIO_MDEV_READ_PINNED, &a);
}

int mdev_dev_stats(int dev, struct rvfio_mdev_stats *st)
{
	memset(st, 0, sizeof(*st));
	return (int)ioctl_ret(dev, RVFIO_MDEV_GET_STATS, st);
}
