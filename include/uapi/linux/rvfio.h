/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rvfio: uapi beyond upstream's <linux/vfio.h>.
 *
 * Everything here is issued on a VFIO container fd whose IOMMU backend is
 * rvfio (VFIO_SET_IOMMU with VFIO_TYPE1_IOMMU or VFIO_TYPE1v2_IOMMU while
 * rvfio is the loaded backend). upstream's vfio_iommu_type1 answers 0 to the
 * extensions and ENOTTY to the ioctls, so a client can probe for them.
 */
#ifndef _UAPI_LINUX_RVFIO_H
#define _UAPI_LINUX_RVFIO_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/vfio.h>

/*
 * Revocation of PFNMAP mappings.
 *
 * VFIO_CHECK_EXTENSION(RVFIO_PFNMAP_REVOKE) returns 1 when the container
 * removes the IOMMU translation of a mapping made from a VM_PFNMAP range
 * (another device's BAR, mmap()ed from its vfio device fd) as soon as the
 * memory behind that range goes away or is disabled: the range is unmapped
 * (munmap(), process exit), or its owner zaps it (vfio-pci does when memory
 * space is disabled in the command register, around a device reset, and
 * when the device fd's last user goes away). DMA to a revoked IOVA no longer
 * reaches the BAR. The mapping itself stays: its IOVA range remains in use
 * until VFIO_IOMMU_UNMAP_DMA, which succeeds and reports the whole size.
 * A revoked mapping is never re-established: unmap it and map it again.
 */
#define RVFIO_PFNMAP_REVOKE		0x72760001

/*
 * RVFIO_IOMMU_DMA_QUERY - _IO(VFIO_TYPE, VFIO_BASE + 90), struct rvfio_dma_query
 * (in and out; _IO like every VFIO ioctl, the size is in @argsz)
 *
 * Describes the mapping that contains @iova. Returns 0, or ENOENT when no
 * mapping contains @iova, EINVAL for flags set on input or a short @argsz.
 * Revocation is per physically contiguous run of the mapping's PFNMAP pages:
 * after a partial munmap() of a BAR, @revoked_bytes counts the runs that
 * overlapped it (at least the unmapped part), and RVFIO_DMA_QUERY_REVOKED is
 * set as soon as it is non-zero.
 */
struct rvfio_dma_query {
	__u32	argsz;
	__u32	flags;		/* in: 0; out: RVFIO_DMA_QUERY_* */
#define RVFIO_DMA_QUERY_PFNMAP		(1 << 0) /* maps VM_PFNMAP (unpinned) memory */
#define RVFIO_DMA_QUERY_REVOKED		(1 << 1) /* its translation was revoked */
	__u64	iova;		/* in: any IOVA in the mapping; out: its start */
	__u64	size;		/* out: the mapping's size in bytes */
	__u64	revoked_bytes;	/* out: bytes whose translation was revoked */
};
#define RVFIO_IOMMU_DMA_QUERY		_IO(VFIO_TYPE, VFIO_BASE + 90)

/*
 * RVFIO_IOMMU_REVOKE_EVENTFD - _IO(VFIO_TYPE, VFIO_BASE + 91), struct rvfio_revoke_eventfd
 *
 * Sets (@fd >= 0) or clears (@fd == -1) the eventfd the container signals
 * once per revocation, after the IOMMU translation is gone. A later set
 * replaces an earlier one. @revocations (out) is the number of revocations
 * the container has seen so far, whether or not an eventfd was set.
 * EBADF when @fd is not an open file descriptor, EINVAL when it is one but
 * not an eventfd, and for @fd < -1, non-zero @flags or @__reserved, or a
 * short @argsz.
 */
struct rvfio_revoke_eventfd {
	__u32	argsz;
	__u32	flags;		/* in: 0 */
	__s32	fd;
	__u32	__reserved;	/* in: 0 */
	__u64	revocations;	/* out */
};
#define RVFIO_IOMMU_REVOKE_EVENTFD	_IO(VFIO_TYPE, VFIO_BASE + 91)

/*
 * DMA owner change, for live update.
 *
 * VFIO_CHECK_EXTENSION(RVFIO_DMA_OWNER) returns 1 when the container offers
 * RVFIO_IOMMU_CHANGE_DMA_OWNER: one call that makes the calling process the
 * owner of every mapping of the container, or changes nothing.
 */
#define RVFIO_DMA_OWNER			0x72760003

/**
 * struct rvfio_dma_owner_entry - one mapping and its address in the caller
 * @iova:  start IOVA of a mapping of the container (as given to MAP_DMA)
 * @vaddr: where the caller maps the same memory now
 */
struct rvfio_dma_owner_entry {
	__aligned_u64	iova;
	__aligned_u64	vaddr;
};

/**
 * struct rvfio_change_dma_owner - argument of RVFIO_IOMMU_CHANGE_DMA_OWNER
 * @argsz:     sizeof(struct rvfio_change_dma_owner) or more
 * @flags:     in: 0
 * @count:     in: number of entries at @entries, one for every mapping of
 *             the container, in any order; at most
 *             RVFIO_DMA_OWNER_MAX_ENTRIES
 * @failed:    out: on error, the index of the entry that failed the call,
 *             or RVFIO_DMA_OWNER_NO_ENTRY when no single entry is to blame
 *             (@count, the limit, an allocation); on success
 *             RVFIO_DMA_OWNER_NO_ENTRY
 * @entries:   in: user pointer to @count struct rvfio_dma_owner_entry
 *
 * The caller becomes the owner of every mapping: later pinning (a group
 * attached, emulated-IOMMU devices' pin_pages and dma_rw) uses its address
 * space at the new @vaddr, the mappings' whole locked_vm charge moves to it
 * (checked against its RLIMIT_MEMLOCK unless it has CAP_IPC_LOCK) and is
 * taken off the old owners, the revocation watches of PFNMAP mappings move
 * to the new ranges, and vaddrs invalidated with VFIO_DMA_UNMAP_FLAG_VADDR
 * are valid again. The pages stay pinned and mapped throughout: DMA never
 * stops. Each new range must map the very pages (or PFNMAP pfns) the mapping
 * holds, writable if the mapping is: the call pins the new range to compare
 * and releases those pins before it returns.
 *
 * Either everything happens or nothing does. Errors, with @failed:
 *   EINVAL    short @argsz (@failed not written), non-zero @flags, a
 *             mapping without an entry (RVFIO_DMA_OWNER_NO_ENTRY; @count 0
 *             with mappings present too), a @vaddr that is not page
 *             aligned or whose range wraps
 *   E2BIG     @count above RVFIO_DMA_OWNER_MAX_ENTRIES
 *   EFAULT    @entries unreadable, @failed not writable (before anything
 *             changed); a new range not mapped in the caller
 *   ENOENT    no mapping starts at the entry's @iova
 *   EEXIST    a second entry for the same mapping (@failed: the later one)
 *   EOPNOTSUPP the new range is private anonymous memory, which cannot be
 *             the same memory in another process (use a memfd, shared
 *             memory or hugetlbfs for memory that must survive exec)
 *   EXDEV     the new range maps other pages than the mapping holds
 *   EACCES    the new range is read-only and the mapping is writable
 *   ENOMEM    past the caller's RLIMIT_MEMLOCK, or out of memory
 *   EAGAIN    a new PFNMAP range changed while it was checked; retry
 * An entry that is wrong by itself is reported before a count that does
 * not match: an array with more entries than mappings always fails with
 * EEXIST or ENOENT and that entry's index. Entries are checked in IOVA
 * order; @failed names the first that fails. With no mappings, @count 0
 * succeeds and changes nothing.
 */
struct rvfio_change_dma_owner {
	__u32		argsz;
	__u32		flags;
	__u32		count;
	__u32		failed;
#define RVFIO_DMA_OWNER_NO_ENTRY	0xffffffffu
#define RVFIO_DMA_OWNER_MAX_ENTRIES	(1u << 20)
	__aligned_u64	entries;
};
#define RVFIO_IOMMU_CHANGE_DMA_OWNER	_IO(VFIO_TYPE, VFIO_BASE + 93)

#endif /* _UAPI_LINUX_RVFIO_H */
