/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rvfio: uapi beyond upstream's <linux/vfio.h>.
 *
 * Everything here is issued on a VFIO container fd whose IOMMU backend is
 * rvfio (VFIO_SET_IOMMU with VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU or
 * VFIO_TYPE1_NESTING_IOMMU while rvfio is the loaded backend). upstream's
 * vfio_iommu_type1 answers 0 to the extensions, reports none of the
 * GET_INFO capabilities and answers ENOTTY to the ioctls, so a client can
 * probe for them.
 */
#ifndef _UAPI_LINUX_RVFIO_H
#define _UAPI_LINUX_RVFIO_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/vfio.h>
#include <linux/iommufd.h>	/* struct iommu_hwpt_vtd_s1{,_invalidate} */

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
 * Guest page-table bind (nesting).
 *
 * A container set up with VFIO_SET_IOMMU(VFIO_TYPE1_NESTING_IOMMU) behaves
 * as a VFIO_TYPE1v2_IOMMU one for MAP_DMA, UNMAP_DMA, GET_INFO, dirty
 * tracking and vaddr update: those manage stage 2, the guest-physical
 * address space (a container IOVA is a guest-physical address). On top of
 * that, a guest's stage-1 page table can be bound to one group attached to
 * the container: from then on that group's devices issue stage-1 IOVAs,
 * translated by the guest's table and then by stage 2. Other groups of the
 * container keep using container IOVAs directly. Bind, unbind and cache
 * invalidation name the group by its IOMMU group id (N of /dev/vfio/N) and
 * take iommufd's payloads: struct iommu_hwpt_vtd_s1 for the table, whose
 * pgtbl_addr is a guest-physical address (a container IOVA), and an array
 * of struct iommu_hwpt_vtd_s1_invalidate for invalidations.
 *
 * rvfio serves a bind by software nesting when the IOMMU cannot nest in
 * hardware (and in this version always): it walks the guest's table through
 * stage 2 and maps the composed translation (stage-1 IOVA to host-physical)
 * into an IOMMU domain of the group's own. That is caching mode: a change of
 * a stage-1 entry, also from not present to present, takes effect only once
 * RVFIO_IOMMU_NESTING_INVALIDATE has named its range. Stage-2 changes
 * (MAP_DMA, UNMAP_DMA) take effect at once, as with hardware nesting.
 * Documentation/rvfio.rst says which bits of the table are honoured.
 */

/**
 * define RVFIO_IOMMU_INFO_CAP_NESTING - VFIO_IOMMU_GET_INFO capability id
 *
 * Reported by a nesting container only: struct rvfio_iommu_info_cap_nesting.
 * The id is rvfio's own, far from upstream's VFIO_IOMMU_TYPE1_INFO_* ids.
 */
#define RVFIO_IOMMU_INFO_CAP_NESTING	0x726e

/**
 * struct rvfio_nesting_group - how one attached group is nested
 * @group_id: its IOMMU group id
 * @flags: RVFIO_NESTING_GROUP_*
 *
 * %RVFIO_NESTING_GROUP_SOFTWARE: a bind is served by software nesting.
 * %RVFIO_NESTING_GROUP_HW_CAPABLE: the IOMMU driver offers a nest-parent
 * domain (hardware nesting would be possible); rvfio still uses software.
 * %RVFIO_NESTING_GROUP_EMULATED: an emulated-IOMMU (mdev) group: rvfio
 * translates its devices' pin_pages and dma_rw through the bound table.
 * %RVFIO_NESTING_GROUP_BOUND: a stage-1 table is bound.
 * %RVFIO_NESTING_GROUP_BLOCKED: an unbind could not put the group back on
 * its stage-2 domain; its DMA is blocked (the kernel log says why).
 */
struct rvfio_nesting_group {
	__u32	group_id;
	__u32	flags;
#define RVFIO_NESTING_GROUP_SOFTWARE	(1 << 0)
#define RVFIO_NESTING_GROUP_HW_CAPABLE	(1 << 1)
#define RVFIO_NESTING_GROUP_EMULATED	(1 << 2)
#define RVFIO_NESTING_GROUP_BOUND	(1 << 3)
#define RVFIO_NESTING_GROUP_BLOCKED	(1 << 4)
};

/**
 * struct rvfio_iommu_info_cap_nesting - the nesting capability
 * @header: id %RVFIO_IOMMU_INFO_CAP_NESTING, version 1
 * @flags: %RVFIO_NESTING_CAP_CACHING_MODE: every change of a stage-1 entry,
 *	from not present to present included, needs an invalidation
 * @nr_groups: entries in @groups (the IOMMU-backed and emulated groups
 *	attached to the container)
 * @data_types: bind payloads accepted, bit N for type N
 *	(1 << IOMMU_HWPT_DATA_VTD_S1)
 * @inv_data_types: invalidation payloads accepted, bit N for type N
 *	(1 << IOMMU_HWPT_INVALIDATE_DATA_VTD_S1)
 * @addr_widths: bit N set: addr_width N is accepted ((1 << 48) | (1 << 57))
 * @vtd_s1_flags: the struct iommu_hwpt_vtd_s1 flags a bind accepts
 *	(IOMMU_VTD_S1_SRE | IOMMU_VTD_S1_WPE: they only concern supervisor
 *	requests, which devices without PASID never make)
 * @pgsizes: stage-1 leaf sizes walked (4 KiB, 2 MiB, 1 GiB)
 * @groups: one entry per attached group
 */
struct rvfio_iommu_info_cap_nesting {
	struct vfio_info_cap_header header;
	__u32	flags;
#define RVFIO_NESTING_CAP_CACHING_MODE	(1 << 0)
	__u32	nr_groups;
	__u32	data_types;
	__u32	inv_data_types;
	__aligned_u64	addr_widths;
	__aligned_u64	vtd_s1_flags;
	__aligned_u64	pgsizes;
	struct rvfio_nesting_group groups[];
};

/**
 * struct rvfio_nesting_bind - RVFIO_IOMMU_NESTING_BIND argument
 * @argsz: sizeof(struct rvfio_nesting_bind)
 * @flags: 0
 * @group_id: IOMMU group id of a group attached to this container
 * @data_type: IOMMU_HWPT_DATA_VTD_S1
 * @data_len: bytes at @data_uptr: at least sizeof(struct iommu_hwpt_vtd_s1);
 *	bytes past that struct, up to @data_len, must be 0
 * @out_flags: out: the group's RVFIO_NESTING_GROUP_* flags once bound
 * @data_uptr: user pointer to the struct iommu_hwpt_vtd_s1
 *
 * RVFIO_IOMMU_NESTING_BIND - _IO(VFIO_TYPE, VFIO_BASE + 94)
 *
 * Binds the stage-1 table at @data_uptr's pgtbl_addr (a container IOVA,
 * 4 KiB aligned, mapped readable) with its addr_width (48: 4 levels, 57: 5
 * levels) to the group. The group's translation is built completely before
 * the group is switched to it; on any error the group keeps translating
 * container IOVAs as before and nothing is left allocated.
 *
 * Return: 0; ENOTTY on a container that is not a nesting one; EINVAL for a
 * short @argsz, non-zero @flags, another @data_type, @data_len below the
 * payload, unknown or reserved payload flags, non-zero payload __reserved,
 * another addr_width, and a pgtbl_addr that is unaligned or not mapped
 * readable in stage 2; E2BIG for non-zero bytes past the payload struct or
 * @data_len above the page size, and for a table whose translation exceeds
 * rvfio's limits (Documentation/uapi.rst); EOPNOTSUPP for IOMMU_VTD_S1_EAFE;
 * ENOENT when no group with @group_id is attached; EBUSY when it is bound
 * already, or when it is an emulated-IOMMU group and another one is attached;
 * EFAULT; ENOMEM.
 */
struct rvfio_nesting_bind {
	__u32	argsz;
	__u32	flags;
	__u32	group_id;
	__u32	data_type;
	__u32	data_len;
	__u32	out_flags;
	__aligned_u64	data_uptr;
};
#define RVFIO_IOMMU_NESTING_BIND	_IO(VFIO_TYPE, VFIO_BASE + 94)

/**
 * struct rvfio_nesting_unbind - RVFIO_IOMMU_NESTING_UNBIND argument
 * @argsz: sizeof(struct rvfio_nesting_unbind)
 * @flags: 0
 * @group_id: IOMMU group id of a bound group
 * @__reserved: 0
 *
 * RVFIO_IOMMU_NESTING_UNBIND - _IO(VFIO_TYPE, VFIO_BASE + 95)
 *
 * Puts the group back on container IOVAs. Once the argument is valid this
 * cannot fail: if the group cannot be re-attached to its stage-2 domain, its
 * DMA stays blocked (RVFIO_NESTING_GROUP_BLOCKED, and the kernel log says
 * so) and the unbind still succeeds. Detaching the group from the container
 * and closing the container unbind too.
 *
 * Return: 0; ENOTTY on a container that is not a nesting one; EINVAL for a
 * short @argsz, non-zero @flags or @__reserved, or a group that is not
 * bound; ENOENT when no group with @group_id is attached; EFAULT.
 */
struct rvfio_nesting_unbind {
	__u32	argsz;
	__u32	flags;
	__u32	group_id;
	__u32	__reserved;
};
#define RVFIO_IOMMU_NESTING_UNBIND	_IO(VFIO_TYPE, VFIO_BASE + 95)

/**
 * struct rvfio_nesting_invalidate - RVFIO_IOMMU_NESTING_INVALIDATE argument
 * @argsz: sizeof(struct rvfio_nesting_invalidate)
 * @flags: 0
 * @group_id: IOMMU group id of a bound group
 * @data_type: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1
 * @data_uptr: user pointer to an array of @entry_num entries of
 *	@entry_len bytes, each a struct iommu_hwpt_vtd_s1_invalidate
 * @entry_len: at least sizeof(struct iommu_hwpt_vtd_s1_invalidate), at most
 *	the page size; bytes of an entry past that struct must be 0
 * @entry_num: in: the number of entries (at most 1 << 19); 0 only checks
 *	@data_type (a probe). Out: the number of entries processed, written back
 *	on success and on error (once the fixed part was read)
 *
 * RVFIO_IOMMU_NESTING_INVALIDATE - _IO(VFIO_TYPE, VFIO_BASE + 96)
 *
 * Makes the group's translation of each entry's range follow the stage-1
 * table as it is now. An entry is @addr (4 KiB aligned) and @npages 4 KiB
 * pages (addr 0 with npages U64_MAX: everything); IOMMU_VTD_INV_FLAGS_LEAF
 * is accepted and only a hint. A range that covers part of a large stage-1
 * leaf invalidates the whole leaf, as hardware drops whole IOTLB entries.
 * Entries are processed in order and stop at the first bad one.
 *
 * Return: 0; ENOTTY on a container that is not a nesting one; EINVAL for a
 * short @argsz, non-zero @flags, another @data_type, a bad @entry_len or
 * @entry_num, a NULL @data_uptr with entries, a group that is not bound, and
 * an entry with unknown flags, non-zero __reserved, an unaligned addr, no
 * pages, or a range past the end of the address space; E2BIG for non-zero
 * bytes past an entry's struct; ENOENT when no group with @group_id is
 * attached; EFAULT; ENOMEM.
 */
struct rvfio_nesting_invalidate {
	__u32	argsz;
	__u32	flags;
	__u32	group_id;
	__u32	data_type;
	__aligned_u64	data_uptr;
	__u32	entry_len;
	__u32	entry_num;
};
#define RVFIO_IOMMU_NESTING_INVALIDATE	_IO(VFIO_TYPE, VFIO_BASE + 96)

#endif /* _UAPI_LINUX_RVFIO_H */
