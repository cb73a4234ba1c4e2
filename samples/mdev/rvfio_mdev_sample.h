/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rvfio_mdev_sample.h - the test ABI of the rvfio_mdev_sample mediated device.
 *
 * rvfio_mdev_sample is an emulated-IOMMU vfio device (an "mdev", like i915
 * GVT-g or s390 vfio-ccw) with no real hardware behind it. It exists to drive
 * the kernel side of a VFIO IOMMU backend that only mdev drivers reach:
 * vfio_pin_pages(), vfio_unpin_pages(), vfio_dma_rw() and the .dma_unmap
 * notification. User space controls it through the ioctls below on the vfio
 * device fd (VFIO_GROUP_GET_DEVICE_FD with the mdev's UUID), after the mdev's
 * group has been added to a container and VFIO_SET_IOMMU has been done.
 *
 * Creating one:
 *
 *	T=/sys/class/mdev_bus/rvfio_mdev_sample/mdev_supported_types/rvfio_mdev_sample-pin
 *	echo $UUID > $T/create
 *	readlink /sys/bus/mdev/devices/$UUID/iommu_group	# .../iommu_groups/N
 *	echo 1 > /sys/bus/mdev/devices/$UUID/remove
 *
 * IOVAs are the container's: pages must be mapped with VFIO_IOMMU_MAP_DMA
 * before they can be pinned or accessed. All IOVAs given to PIN, UNPIN and
 * the *_PINNED ioctls must be page (4 KiB) aligned. Unless stated otherwise,
 * an ioctl returns 0 on success and -1 with errno set on failure; errnos that
 * come from the vfio core or the IOMMU backend are passed through unchanged.
 *
 * This header is shared by the module and user space.
 */
#ifndef _UAPI_RVFIO_MDEV_SAMPLE_H
#define _UAPI_RVFIO_MDEV_SAMPLE_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Names as they appear in sysfs. */
#define RVFIO_MDEV_SAMPLE_PARENT	"rvfio_mdev_sample"
#define RVFIO_MDEV_SAMPLE_TYPE		"rvfio_mdev_sample-pin"
/* The mdev type's device_api attribute. */
#define RVFIO_MDEV_SAMPLE_DEVICE_API	"rvfio-mdev-sample"

/*
 * The ioctl numbers use VFIO's type character with numbers far above VFIO's
 * own; being _IOW/_IOR-encoded (VFIO uses plain _IO) they cannot collide
 * with a VFIO device ioctl.
 */
#define RVFIO_MDEV_IOCTL_TYPE		';'
#define RVFIO_MDEV_IOCTL_BASE		0x70

/* Pin protection, the same values as IOMMU_READ and IOMMU_WRITE. */
#define RVFIO_MDEV_PROT_READ		(1u << 0)
#define RVFIO_MDEV_PROT_WRITE		(1u << 1)

/* Largest npages the sample accepts for PIN and UNPIN. */
#define RVFIO_MDEV_PIN_MAX		1024
/* Largest len the sample accepts for DMA_RW. */
#define RVFIO_MDEV_DMA_RW_MAX		(1u << 20)

/**
 * struct rvfio_mdev_pin - argument of %RVFIO_MDEV_PIN and %RVFIO_MDEV_UNPIN
 * @iova: first IOVA, page aligned
 * @npages: number of consecutive pages, 1 .. %RVFIO_MDEV_PIN_MAX
 * @prot: PIN: %RVFIO_MDEV_PROT_READ and/or %RVFIO_MDEV_PROT_WRITE;
 *        UNPIN: must be 0
 *
 * %RVFIO_MDEV_PIN calls vfio_pin_pages(dev, @iova, @npages, @prot, pages)
 * once and returns its result: @npages on success, else -1 with errno set to
 * what vfio_pin_pages() returned (for example EINVAL when a page is not
 * mapped, EPERM when @prot exceeds the mapping's, EACCES in a type1 v1
 * container, E2BIG for more than 512 pages). The driver keeps the returned
 * struct page pointers; pinning a page it already holds takes one more
 * reference (and makes one more vfio_pin_pages() call necessary to undo).
 *
 * %RVFIO_MDEV_UNPIN drops one pin reference on each page by calling
 * vfio_unpin_pages(dev, iova, 1) for it. Every page of the range must be held
 * by this device (else EINVAL and nothing is unpinned), because the backend
 * WARNs about unpinning what was never pinned. Returns the number of pages
 * unpinned by this call, which is smaller than @npages only when a concurrent
 * .dma_unmap callback released some of them first.
 */
struct rvfio_mdev_pin {
	__u64 iova;
	__u32 npages;
	__u32 prot;
};

/**
 * struct rvfio_mdev_access - argument of the *_PINNED ioctls
 * @iova: IOVA of a page this device holds pinned, page aligned
 * @offset: byte offset inside that page
 * @len: bytes to copy; @offset + @len <= 4096
 * @data: user buffer (destination for READ_PINNED, source for WRITE_PINNED)
 *
 * %RVFIO_MDEV_READ_PINNED and %RVFIO_MDEV_WRITE_PINNED access the struct page
 * that vfio_pin_pages() returned directly (kmap_local_page()), not through
 * the IOMMU backend: they show that the pin resolved to the user's memory.
 * ENOENT if the page is not pinned by this device; WRITE_PINNED gives EPERM
 * unless the page was pinned with %RVFIO_MDEV_PROT_WRITE. Return @len.
 */
struct rvfio_mdev_access {
	__u64 iova;
	__u32 offset;
	__u32 len;
	__u64 data;
};

/* Write user memory (the device "DMA"s into RAM) instead of reading it. */
#define RVFIO_MDEV_DMA_RW_WRITE		(1u << 0)
/* Call vfio_dma_rw() from a workqueue worker (a kthread, no current->mm). */
#define RVFIO_MDEV_DMA_RW_KTHREAD	(1u << 1)

/**
 * struct rvfio_mdev_dma_rw - argument of %RVFIO_MDEV_DMA_RW
 * @iova: first IOVA (any alignment)
 * @data: user buffer: source of a write, destination of a read
 * @len: bytes, at most %RVFIO_MDEV_DMA_RW_MAX (E2BIG); 0 is passed on
 * @flags: %RVFIO_MDEV_DMA_RW_WRITE, %RVFIO_MDEV_DMA_RW_KTHREAD
 *
 * Calls vfio_dma_rw(dev, @iova, kbuf, @len, write) with a kernel bounce
 * buffer, from the ioctl caller's context or, with
 * %RVFIO_MDEV_DMA_RW_KTHREAD, from a kthread (the backend then borrows the
 * mapping owner's mm with kthread_use_mm()). Returns 0 or -1 with errno set
 * to what vfio_dma_rw() returned. A read copies the bounce buffer to @data
 * only on success; a write that fails part way may have written a prefix.
 */
struct rvfio_mdev_dma_rw {
	__u64 iova;
	__u64 data;
	__u32 len;
	__u32 flags;
};

/**
 * struct rvfio_mdev_stats - result of %RVFIO_MDEV_GET_STATS
 * @dma_unmap_calls: .dma_unmap callbacks received since the mdev was created
 * @last_unmap_iova: iova of the latest .dma_unmap callback
 * @last_unmap_length: length of the latest .dma_unmap callback
 * @unmap_unpinned: pin references dropped by .dma_unmap callbacks, in total
 * @pinned_pages: distinct IOVA pages this device holds pinned now
 * @pinned_refs: pin references this device holds now (>= @pinned_pages)
 */
struct rvfio_mdev_stats {
	__u64 dma_unmap_calls;
	__u64 last_unmap_iova;
	__u64 last_unmap_length;
	__u64 unmap_unpinned;
	__u64 pinned_pages;
	__u64 pinned_refs;
};

#define RVFIO_MDEV_PIN \
	_IOW(RVFIO_MDEV_IOCTL_TYPE, RVFIO_MDEV_IOCTL_BASE + 0, struct rvfio_mdev_pin)
#define RVFIO_MDEV_UNPIN \
	_IOW(RVFIO_MDEV_IOCTL_TYPE, RVFIO_MDEV_IOCTL_BASE + 1, struct rvfio_mdev_pin)
#define RVFIO_MDEV_READ_PINNED \
	_IOW(RVFIO_MDEV_IOCTL_TYPE, RVFIO_MDEV_IOCTL_BASE + 2, struct rvfio_mdev_access)
#define RVFIO_MDEV_WRITE_PINNED \
	_IOW(RVFIO_MDEV_IOCTL_TYPE, RVFIO_MDEV_IOCTL_BASE + 3, struct rvfio_mdev_access)
#define RVFIO_MDEV_DMA_RW \
	_IOW(RVFIO_MDEV_IOCTL_TYPE, RVFIO_MDEV_IOCTL_BASE + 4, struct rvfio_mdev_dma_rw)
#define RVFIO_MDEV_GET_STATS \
	_IOR(RVFIO_MDEV_IOCTL_TYPE, RVFIO_MDEV_IOCTL_BASE + 5, struct rvfio_mdev_stats)

#endif /* _UAPI_RVFIO_MDEV_SAMPLE_H */
