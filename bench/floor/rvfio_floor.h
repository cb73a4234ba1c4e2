/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rvfio_floor: benchmark-only module (bench/floor/), never loaded by
 * `make check`. It measures the floor of a VFIO type1-style MAP_DMA /
 * UNMAP_DMA: pin_user_pages_fast(FOLL_LONGTERM | FOLL_WRITE) in batches plus
 * iommu_map() of each physically contiguous run into a paging domain, and
 * one iommu_unmap() plus unpin_user_page_range_dirty_lock() per run (or
 * unpin_user_pages_dirty_lock() on the array when runs are short, under 8
 * pages on average), with no bookkeeping
 * beyond an array of page pointers. Times are taken in the kernel (ktime).
 *
 * The device: /dev/rvfio_floor (a misc device). The domain is allocated with
 * iommu_paging_domain_alloc() and attached with iommu_attach_device() to the
 * first edu device (1234:11e8) that has no driver, at module load.
 */
#ifndef RVFIO_FLOOR_H
#define RVFIO_FLOOR_H

#include <linux/ioctl.h>
#include <linux/types.h>

struct rvfio_floor_req {
	__u64 vaddr;		/* in (MAP): user address, page aligned */
	__u64 size;		/* in (MAP): bytes, page aligned */
	__u64 iova;		/* in (MAP): IO virtual address */
	__u32 slot;		/* in: which of RVFIO_FLOOR_SLOTS mappings */
	__u32 nr_runs;		/* out (MAP): iommu_map() calls made */
	__u64 total_ns;		/* out: whole operation */
	__u64 pin_ns;		/* out (MAP): pinning; (UNMAP): unpinning */
	__u64 iommu_ns;		/* out: iommu_map() / iommu_unmap() */
	__u64 flags;		/* in (MAP): RVFIO_FLOOR_F_*, for analysis */
};

/*
 * Variants that add back, one at a time, what type1 and rvfio do beyond the
 * floor (the backends floor_remote and floor_remote_acct of the client):
 *   REMOTE  pin each batch with mmget + mmap_read_lock +
 *           pin_user_pages_remote() instead of pin_user_pages_fast()
 *   ACCT    charge each batch to locked_vm with account_locked_vm() (which
 *           takes mmap_write_lock), uncharge once at unmap
 */
#define RVFIO_FLOOR_F_REMOTE	(1ULL << 0)
#define RVFIO_FLOOR_F_ACCT	(1ULL << 1)

#define RVFIO_FLOOR_SLOTS	8192
#define RVFIO_FLOOR_MAP		_IOWR('F', 1, struct rvfio_floor_req)
#define RVFIO_FLOOR_UNMAP	_IOWR('F', 2, struct rvfio_floor_req)

#endif
