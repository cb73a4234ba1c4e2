/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vfio_util.h - small helpers several rvfio selftests share: which backend
 * runs, sysfs writes, the driver of a PCI device, BAR0 of a vfio-pci device,
 * dirty tracking into a few words, rvfio's query and revocation ioctls,
 * its DMA owner change and nesting ioctls, memfds.
 *
 * Every function that can fail returns 0 (or the ioctl's result) or -errno.
 */
#ifndef VFIO_UTIL_H
#define VFIO_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/rvfio.h>

/* $VFIO_BACKEND if set, else "rvfio" if its module is loaded, else "vfio_iommu_type1". */
const char *backend_name(void);
/* backend_name() is "rvfio". */
bool backend_is_rvfio(void);
/* VFIO_CHECK_EXTENSION(ext) on container c: 1 or 0, or -errno. */
long vfio_check_ext(int c, long ext);

/* Writes val to a sysfs file in one write(): 0, -errno, or -EIO if short. */
int sysfs_write_str(const char *path, const char *val);
/* Name of the driver bdf is bound to into buf ("" if none or it does not fit). */
void pci_driver(const char *bdf, char *buf, size_t len);

/* BAR0 region of a vfio-pci device fd: 0, -errno, or -ENODEV if not mmap-able or < 4 KiB. */
int vfio_bar0_region(int device, uint64_t *offset, uint64_t *size);
/* MAP_SHARED mmap of all of BAR0 with prot, nothing touched: the mapping or MAP_FAILED. */
void *vfio_bar0_mmap(int device, int prot, uint64_t *size);

/* VFIO_IOMMU_DIRTY_PAGES with flag (START or STOP): 0 or -errno. */
int vfio_dirty_ctl(int c, uint32_t flag);
/* GET_BITMAP of [iova, iova + size) in 4 KiB pages into words zeroed u64s: 0 or -errno. */
int vfio_dirty_get(int c, uint64_t iova, uint64_t size, uint64_t *bits, size_t words);

/* RVFIO_IOMMU_DMA_QUERY for iova into a zeroed *q: 0 or -errno. */
int dma_query(int c, uint64_t iova, struct rvfio_dma_query *q);
/* RVFIO_IOMMU_REVOKE_EVENTFD: 0 or -errno; *revocations (if given) gets the count. */
int revoke_eventfd(int c, int fd, uint64_t *revocations);

/*
 * RVFIO_IOMMU_CHANGE_DMA_OWNER with a full-size argument over count entries:
 * 0 or -errno; *failed (if given) gets the out field (preset to 0x5a5a5a5a,
 * so that a call that did not write it shows).
 */
int change_dma_owner(int c, const struct rvfio_dma_owner_entry *e, uint32_t count,
		     uint32_t *failed);

/*
 * RVFIO_IOMMU_NESTING_BIND of the VT-d stage-1 table at guest-physical pgtbl
 * with addr_width width and the payload's flags: 0 or -errno; *out_flags
 * (if given) gets the group's flags on success.
 */
int nesting_bind(int c, int group_id, uint64_t pgtbl, uint32_t width, uint64_t s1_flags,
		 uint32_t *out_flags);
/* RVFIO_IOMMU_NESTING_UNBIND: 0 or -errno. */
int nesting_unbind(int c, int group_id);
/*
 * RVFIO_IOMMU_NESTING_INVALIDATE with one entry of npages from addr: 0 or
 * -errno; *done (if given) gets the entry count written back.
 */
int nesting_invalidate(int c, int group_id, uint64_t addr, uint64_t npages, uint32_t *done);
/*
 * The group's RVFIO_NESTING_GROUP_* flags from GET_INFO's nesting
 * capability; -ENODATA without the capability, -ENOENT without the group.
 */
long nesting_group_flags(int c, int group_id);

/* A memfd of len bytes (hugetlbfs 2 MiB pages with huge): the fd or -errno. */
int memfd_new(const char *name, size_t len, bool huge);

#endif /* VFIO_UTIL_H */
