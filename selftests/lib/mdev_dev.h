/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mdev_dev.h - an rvfio_mdev_sample mediated device (samples/mdev/) for
 * tests outside mdev_test.c: create it through sysfs, put its emulated-IOMMU
 * group into a container, open its device, drive the sample's pin, unpin
 * and vfio_dma_rw() ioctls (samples/mdev/rvfio_mdev_sample.h).
 *
 * Every function that can fail returns 0 (or the ioctl's result) or -errno.
 */
#ifndef MDEV_DEV_H
#define MDEV_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../samples/mdev/rvfio_mdev_sample.h"

struct mdev_dev {
	char uuid[40];
	int group_id;
	int group;		/* /dev/vfio/<group_id>, or -1 */
	int device;		/* vfio device fd, or -1 */
	bool created;
};

/* Why no mdev can be made here (a reason for SKIP), or NULL. */
const char *mdev_dev_missing(void);
void mdev_dev_init(struct mdev_dev *m);
/* echo <uuid> > .../create and wait for /dev/vfio/<group>. */
int mdev_dev_create(struct mdev_dev *m);
/* Open the group (if not open) and VFIO_GROUP_SET_CONTAINER. */
int mdev_dev_attach(struct mdev_dev *m, int container);
/* VFIO_GROUP_GET_DEVICE_FD. */
int mdev_dev_open(struct mdev_dev *m);
/* Close the device fd only (the group stays in its container). */
void mdev_dev_close_device(struct mdev_dev *m);
/* Close the device and group fds (the mdev stays). */
void mdev_dev_close(struct mdev_dev *m);
/* mdev_dev_close() and remove the mdev. */
void mdev_dev_destroy(struct mdev_dev *m);
/*
 * Create an mdev and put it into *container (a new one if < 0, then
 * SET_IOMMU(iommu_type) unless 0), open its device. 0 or -errno; on failure
 * what was made here is undone and err says why.
 */
int mdev_dev_up(struct mdev_dev *m, int *container, int iommu_type, char *err, size_t errlen);

/* RVFIO_MDEV_PIN: npages or -errno. */
long mdev_dev_pin(int dev, uint64_t iova, uint32_t npages, uint32_t prot);
/* RVFIO_MDEV_UNPIN: pages unpinned or -errno. */
long mdev_dev_unpin(int dev, uint64_t iova, uint32_t npages);
/* RVFIO_MDEV_DMA_RW: 0 or -errno. */
long mdev_dev_dma_rw(int dev, uint64_t iova, void *buf, uint32_t len, uint32_t flags);
/* RVFIO_MDEV_WRITE_PINNED (write) or READ_PINNED at off in the page at iova: len or -errno. */
long mdev_dev_access(int dev, bool write, uint64_t iova, uint32_t off, void *buf, uint32_t len);
/* RVFIO_MDEV_GET_STATS: 0 or -errno. */
int mdev_dev_stats(int dev, struct rvfio_mdev_stats *st);

#endif /* MDEV_DEV_H */
