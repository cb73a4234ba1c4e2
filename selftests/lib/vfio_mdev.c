// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_mdev.c - the rvfio_mdev_sample mediated device for the selftests
 * (see vfio_mdev.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#include "vfio_edu.h"
#include "vfio_mdev.h"

void mdev_init(struct mdev *m)
{
	memset(m, 0, sizeof(*m));
	m->group = m->device = -1;
}

static int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

/* Why mdev tests cannot run here, or NULL. */
const char *mdev_missing(void)
{
	if (access("/dev/vfio/vfio", F_OK))
		return "/dev/vfio/vfio does not exist: vfio is not loaded";
	if (access(MDEV_BUS_DIR, F_OK))
		return MDEV_BUS_DIR " does not exist: mdev.ko is not loaded";
	if (access(MDEV_TYPE_DIR, F_OK))
		return MDEV_TYPE_DIR " does not exist: rvfio_mdev_sample.ko is not loaded";
	return NULL;
}

/* echo <new uuid> > .../create; find /dev/vfio/N through the iommu_group link. */
int mdev_create(struct mdev *m, char *err, size_t errlen)
{
	char path[256], link[256];
	uint8_t b[16];
	const char *base;
	ssize_t n;
	int ret, i;

	if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
		uint64_t t = random_seed() * 0x9e3779b97f4a7c15ull ^ getpid();

		for (i = 0; i < 16; i++)
			b[i] = t >> (8 * (i % 8)) ^ i * 37;
	}
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* variant 1 */
	snprintf(m->uuid, sizeof(m->uuid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
	ret = write_str(MDEV_TYPE_DIR "/create", m->uuid);
	if (ret) {
		snprintf(err, errlen, "create mdev %s: %s", m->uuid, strerror(-ret));
		return ret;
	}
	m->created = true;
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group", m->uuid);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		ret = -errno;
		snprintf(err, errlen, "readlink of mdev %s iommu_group: %s", m->uuid,
			 strerror(errno));
		return ret;
	}
	link[n] = '\0';
	base = strrchr(link, '/');
	m->group_id = atoi(base ? base + 1 : link);
	snprintf(path, sizeof(path), "/dev/vfio/%d", m->group_id);
	for (i = 0; i < 50 && access(path, F_OK); i++)
		usleep(100 * 1000);
	if (access(path, F_OK)) {
		snprintf(err, errlen, "/dev/vfio/%d did not appear", m->group_id);
		return -ENOENT;
	}
	return 0;
}

/* Open the mdev's group and add it to container. 0 or -errno. */
int mdev_attach(struct mdev *m, int container)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char path[64];

	snprintf(path, sizeof(path), "/dev/vfio/%d", m->group_id);
	m->group = open(path, O_RDWR | O_CLOEXEC);
	if (m->group < 0)
		return -errno;
	if (ioctl(m->group, VFIO_GROUP_GET_STATUS, &st))
		return -errno;
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
		return -EPERM;
	if (ioctl(m->group, VFIO_GROUP_SET_CONTAINER, &container))
		return -errno;
	return 0;
}

int mdev_open_device(struct mdev *m)
{
	m->device = ioctl(m->group, VFIO_GROUP_GET_DEVICE_FD, m->uuid);
	return m->device < 0 ? -errno : 0;
}

void mdev_close_device(struct mdev *m)
{
	if (m->device >= 0)
		close(m->device);
	m->device = -1;
}

/* Close the fds, then remove the mdev (which waits for its fds to close). */
void mdev_destroy(struct mdev *m)
{
	char path[128];

	mdev_close_device(m);
	if (m->group >= 0)
		close(m->group);
	m->group = -1;
	if (m->created) {
		snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", m->uuid);
		write_str(path, "1");
		m->created = false;
	}
}

/*
 * Create an mdev and put it into container (a new one if *container < 0,
 * then SET_IOMMU(iommu_type) unless iommu_type is 0), open its device.
 * On failure everything made here is undone and err says why.
 */
int mdev_up(struct mdev *m, int *container, int iommu_type,
		      char *err, size_t errlen)
{
	bool own = *container < 0;
	int ret;

	mdev_init(m);
	if (own) {
		*container = vfio_container_open();
		if (*container < 0) {
			ret = *container;
			snprintf(err, errlen, "open /dev/vfio/vfio: %s", strerror(-ret));
			return ret;
		}
	}
	ret = mdev_create(m, err, errlen);
	if (ret)
		goto fail;
	ret = mdev_attach(m, *container);
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
	ret = mdev_open_device(m);
	if (ret) {
		snprintf(err, errlen, "VFIO_GROUP_GET_DEVICE_FD(%s): %s", m->uuid,
			 strerror(-ret));
		goto fail;
	}
	return 0;
fail:
	mdev_destroy(m);
	if (own) {
		close(*container);
		*container = -1;
	}
	return ret;
}

/* ---- the sample's ioctls; each returns the ioctl's result or -errno ---- */

long mpin(int dev, uint64_t iova, uint32_t npages, uint32_t prot)
{
	struct rvfio_mdev_pin p = { .iova = iova, .npages = npages, .prot = prot };

	return vfio_ioctl(dev, RVFIO_MDEV_PIN, &p);
}

long munpin(int dev, uint64_t iova, uint32_t npages)
{
	struct rvfio_mdev_pin p = { .iova = iova, .npages = npages };

	return vfio_ioctl(dev, RVFIO_MDEV_UNPIN, &p);
}

long maccess(int dev, bool write, uint64_t iova, uint32_t off, void *buf,
		    uint32_t len)
{
	struct rvfio_mdev_access a = {
		.iova = iova, .offset = off, .len = len, .data = (uintptr_t)buf,
	};

	return vfio_ioctl(dev, write ? RVFIO_MDEV_WRITE_PINNED : RVFIO_MDEV_READ_PINNED, &a);
}

long mdma_rw(int dev, uint64_t iova, void *buf, uint32_t len, uint32_t flags)
{
	struct rvfio_mdev_dma_rw r = {
		.iova = iova, .data = (uintptr_t)buf, .len = len, .flags = flags,
	};

	return vfio_ioctl(dev, RVFIO_MDEV_DMA_RW, &r);
}

struct rvfio_mdev_stats mstats(int dev)
{
	struct rvfio_mdev_stats st;

	memset(&st, 0xff, sizeof(st));	/* impossible values if the ioctl fails */
	vfio_ioctl(dev, RVFIO_MDEV_GET_STATS, &st);
	return st;
}

