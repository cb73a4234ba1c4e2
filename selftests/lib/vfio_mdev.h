/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vfio_mdev.h - helpers for selftests that drive the rvfio_mdev_sample
 * mediated device (samples/mdev/): create one through sysfs, put its
 * emulated-IOMMU group into a container, open its device fd, and call the
 * sample's ioctls (pin, unpin, access pinned pages, vfio_dma_rw()).
 *
 * Helpers that can fail return 0 (or the ioctl's result) or -errno.
 */
#ifndef VFIO_MDEV_H
#define VFIO_MDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../samples/mdev/rvfio_mdev_sample.h"

#define MDEV_BUS_DIR	"/sys/class/mdev_bus"
#define MDEV_TYPE_DIR	MDEV_BUS_DIR "/" RVFIO_MDEV_SAMPLE_PARENT \
			"/mdev_supported_types/" RVFIO_MDEV_SAMPLE_TYPE

struct mdev {
	char uuid[40];
	int group_id;
	int group;		/* /dev/vfio/<group_id> */
	int device;		/* vfio device fd */
	bool created;
};

void mdev_init(struct mdev *m);
/* Why mdev tests cannot run here, or NULL. */
const char *mdev_missing(void);
/* echo <new uuid> > .../create; find /dev/vfio/N through the iommu_group link. */
int mdev_create(struct mdev *m, char *err, size_t errlen);
/* Open the mdev's group and add it to container. */
int mdev_attach(struct mdev *m, int container);
int mdev_open_device(struct mdev *m);
void mdev_close_device(struct mdev *m);
/* Close the fds, then remove the mdev (which waits for its fds to close). */
void mdev_destroy(struct mdev *m);
/*
 * Create an mdev and put it into container (a new one if *container < 0,
 * then SET_IOMMU(iommu_type) unless iommu_type is 0), open its device.
 * On failure everything made here is undone and err says why.
 */
int mdev_up(struct mdev *m, int *container, int iommu_type, char *err, size_t errlen);

/* The sample's ioctls (rvfio_mdev_sample.h); the result or -errno. */
long mpin(int dev, uint64_t iova, uint32_t npages, uint32_t prot);
long munpin(int dev, uint64_t iova, uint32_t npages);
long maccess(int dev, bool write, uint64_t iova, uint32_t off, void *buf, uint32_t len);
long mdma_rw(int dev, uint64_t iova, void *buf, uint32_t len, uint32_t flags);
/* GET_STATS; all fields 0xff.. if the ioctl fails. */
struct rvfio_mdev_stats mstats(int dev);

#endif /* VFIO_MDEV_H */
