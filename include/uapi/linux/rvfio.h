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
 * IOMMU fault ring.
 *
 * VFIO_CHECK_EXTENSION(RVFIO_FAULT_RING) returns 1 when the container can
 * report the DMA faults of its devices in a ring buffer that user space
 * maps, created with RVFIO_IOMMU_FAULT_RING. Two sources feed the ring:
 *
 * - the IOMMU hardware: an unrecoverable DMA fault (translation missing or
 *   without the permission) of a device in one of the container's IOMMU
 *   domains, as the IOMMU driver reports it through report_iommu_fault()
 *   (AMD-Vi, ARM SMMUv2; Intel VT-d with the patch described in rvfio's
 *   Documentation/testing.rst). The driver says only whether the access was
 *   a read or a write, so such a record has reason RVFIO_FAULT_REASON_HW;
 * - rvfio's own translation for emulated-IOMMU (mdev) devices:
 *   vfio_pin_pages() or vfio_dma_rw() on an IOVA that is not mapped
 *   (RVFIO_FAULT_REASON_NOT_MAPPED) or not with the access asked for
 *   (RVFIO_FAULT_REASON_PERMISSION). These can be recoverable: with
 *   RVFIO_FAULT_RING_PAGE_REQUESTS the access waits for user space to fix
 *   the mapping and answer the page request (struct rvfio_fault_response).
 */
#define RVFIO_FAULT_RING		0x72760002

/* Most records a ring can have; its size in bytes is this times 64. */
#define RVFIO_FAULT_RING_MAX_ENTRIES	65536
/* Longest wait for a page response, and the wait when 0 is given. */
#define RVFIO_FAULT_RING_MAX_TIMEOUT_MS	60000
#define RVFIO_FAULT_RING_DEFAULT_TIMEOUT_MS 1000

/* Kinds of fault; a record has one, struct rvfio_fault_ring_create a mask. */
#define RVFIO_FAULT_KIND_DMA		(1 << 0) /* unrecoverable DMA fault */
#define RVFIO_FAULT_KIND_PAGE_REQ	(1 << 1) /* page request: answer it */

/**
 * struct rvfio_fault_ring_create - argument of %RVFIO_IOMMU_FAULT_RING
 * @argsz: sizeof(struct rvfio_fault_ring_create) or more
 * @flags: %RVFIO_FAULT_RING_PAGE_REQUESTS: rvfio's own translation faults
 *	are page requests (%RVFIO_FAULT_KIND_PAGE_REQ) instead of unrecoverable
 *	faults: the device's access waits until user space answers, the
 *	request times out (@timeout_ms) or the ring goes away.
 *	%RVFIO_FAULT_RING_HW_PAGE_REQUESTS: the same for page requests from
 *	devices (PCIe PRI); not supported, refused with EOPNOTSUPP.
 * @entries: number of records, a power of two from 1 to
 *	%RVFIO_FAULT_RING_MAX_ENTRIES
 * @eventfd: an eventfd signalled once for every record written, or -1
 * @kinds: the kinds of fault to report, a mask of %RVFIO_FAULT_KIND_*;
 *	%RVFIO_FAULT_KIND_PAGE_REQ is required by, and only valid with,
 *	%RVFIO_FAULT_RING_PAGE_REQUESTS. A hardware fault of a kind not in
 *	@kinds is left to the IOMMU driver (which logs it) as if there were no
 *	ring; an emulated-IOMMU access fails as it would without a ring.
 * @timeout_ms: with %RVFIO_FAULT_RING_PAGE_REQUESTS, how long a page
 *	request waits for its response: 1 to %RVFIO_FAULT_RING_MAX_TIMEOUT_MS,
 *	or 0 for %RVFIO_FAULT_RING_DEFAULT_TIMEOUT_MS; 0 without it
 */
struct rvfio_fault_ring_create {
	__u32	argsz;
	__u32	flags;
#define RVFIO_FAULT_RING_PAGE_REQUESTS		(1 << 0)
#define RVFIO_FAULT_RING_HW_PAGE_REQUESTS	(1 << 1)
	__u32	entries;
	__s32	eventfd;
	__u32	kinds;
	__u32	timeout_ms;
};

/*
 * RVFIO_IOMMU_FAULT_RING - _IO(VFIO_TYPE, VFIO_BASE + 92), struct rvfio_fault_ring_create
 *
 * Creates the container's fault ring and returns a new file descriptor for
 * it (O_RDWR, O_CLOEXEC). A container has at most one ring at a time;
 * closing the fd removes it (after the last mmap() of it is gone) and a new
 * one can then be created. Faults before the ring exists, and after it is
 * removed, are not recorded. Nothing is written back to the argument.
 *
 * Errors, and nothing is created: EINVAL for a short @argsz, an unknown
 * flag, @entries 0, not a power of two or above the maximum, @kinds 0 or
 * with an unknown bit or not matching the flags, @timeout_ms out of range,
 * and for an @eventfd < -1 or one that is not an eventfd; EBADF for an
 * @eventfd that is not an open file descriptor; EOPNOTSUPP for
 * %RVFIO_FAULT_RING_HW_PAGE_REQUESTS; EBUSY when the container has a ring.
 *
 * The fd:
 *
 * mmap() (MAP_SHARED; offsets and lengths in whole pages, inside the
 * @mmap_size of the header, else EINVAL) shows struct rvfio_fault_ring_header
 * at offset 0 and the records, an array of @entries struct rvfio_fault, at
 * @records_offset (the page size). One mmap() of @mmap_size bytes at 0 maps
 * everything. User space writes only @consumer; the kernel never reads
 * anything else back, and treats @consumer as untrusted.
 *
 * Producer and consumer are free-running 32-bit indices: record i is at
 * index i & (@entries - 1); the ring holds @producer - @consumer records
 * (modulo 2^32), is empty when they are equal and full when that is
 * @entries. The kernel writes a record, then (release) advances @producer;
 * the consumer reads @producer (acquire), the records up to it, then
 * (release) stores the new @consumer. A fault that finds the ring full is
 * not recorded: @lost counts it, and no unconsumed record is overwritten.
 * So does a page request the kernel had no memory to post (its access
 * fails at once, as without a ring).
 * A @consumer that is not between the last one the kernel accepted and
 * @producer (it would move backwards or past records never written) is
 * ignored: the kernel keeps the last accepted value, counts the write in
 * @consumer_rejected, and goes on; storing a valid value later fixes it.
 *
 * poll(): EPOLLIN when the ring holds records, EPOLLOUT always (responses
 * can be written), EPOLLHUP once the container is gone. The eventfd is
 * signalled for every record written; its counter adds the signals up, so
 * one read() of it covers any number of records, and a consumer that is
 * busy draining is not woken again.
 *
 * write(): an array of struct rvfio_fault_response, one per page request
 * answered. Returns the bytes consumed; a count that is not a multiple of
 * its size is EINVAL. The responses are taken in order; at the first bad
 * one the call stops and returns the bytes before it, or, when it is the
 * first, an error: EINVAL for an unknown @code, ENOENT for a @cookie that
 * is not pending (never was, already answered, timed out, or answered
 * INVALID by the kernel when the ring or its container went away). ENOENT
 * is harmless: the request it meant is already finished.
 *
 * read() is not supported (EINVAL): records are read from the mapping.
 */
#define RVFIO_IOMMU_FAULT_RING		_IO(VFIO_TYPE, VFIO_BASE + 92)

/**
 * struct rvfio_fault_ring_header - page 0 of the ring's mapping
 * @producer: index of the next record the kernel writes (kernel)
 * @entries: number of records, a power of two
 * @entry_size: sizeof(struct rvfio_fault): 64
 * @records_offset: offset of record 0 in the mapping (the page size)
 * @lost: faults not recorded: the ring was full, or a page request could
 *	not be allocated
 * @mmap_size: bytes of the whole mapping (header page and records)
 * @kinds: the kinds of fault reported (%RVFIO_FAULT_KIND_*)
 * @flags: the ring's flags (%RVFIO_FAULT_RING_*)
 * @consumer_rejected: stores to @consumer the kernel ignored
 * @state: %RVFIO_FAULT_RING_DETACHED once the container is gone (closed):
 *	no fault is recorded any more
 * @consumer: index of the next record user space reads (user space);
 *	on a cache line of its own
 *
 * Everything but @consumer is written by the kernel only.
 */
struct rvfio_fault_ring_header {
	__u32	producer;
	__u32	entries;
	__u32	entry_size;
	__u32	records_offset;
	__u64	lost;
	__u64	mmap_size;
	__u32	kinds;
	__u32	flags;
	__u32	consumer_rejected;
	__u32	state;
#define RVFIO_FAULT_RING_DETACHED	(1 << 0)
	__u32	__reserved0[4];
	__u32	consumer;	/* offset 64 */
	__u32	__reserved1[15];
};

/**
 * struct rvfio_fault - one record of the fault ring (64 bytes)
 * @seq: the fault's sequence number: faults seen by this ring before it,
 *	recorded or lost (a gap means faults were lost there)
 * @timestamp_ns: CLOCK_MONOTONIC when the fault was recorded
 * @iova: the faulting IOVA (VT-d reports the page's address)
 * @kind: %RVFIO_FAULT_KIND_DMA or %RVFIO_FAULT_KIND_PAGE_REQ
 * @flags: %RVFIO_FAULT_GROUP_VALID: @group_id is set;
 *	%RVFIO_FAULT_RID_VALID: @requester_id is set (a PCI device);
 *	%RVFIO_FAULT_PASID_VALID: @pasid is set (the access had a PASID);
 *	%RVFIO_FAULT_EMULATED: rvfio's own translation faulted, for an
 *	emulated-IOMMU device (pin_pages or dma_rw); otherwise the IOMMU did
 * @access: %RVFIO_FAULT_ACCESS_* the device attempted
 * @stage: which translation faulted: %RVFIO_FAULT_STAGE_2 (the container's
 *	mappings); %RVFIO_FAULT_STAGE_1 is reserved for a guest page table
 *	bound on top of them
 * @reason: %RVFIO_FAULT_REASON_*
 * @group_id: the device's IOMMU group, N of /dev/vfio/N
 * @requester_id: the PCI requester: segment << 16 | bus << 8 | devfn
 * @pasid: the PASID
 * @cookie: a page request's cookie, for its response; 0 otherwise
 */
struct rvfio_fault {
	__u64	seq;
	__u64	timestamp_ns;
	__u64	iova;
	__u16	kind;
	__u16	flags;
#define RVFIO_FAULT_GROUP_VALID		(1 << 0)
#define RVFIO_FAULT_RID_VALID		(1 << 1)
#define RVFIO_FAULT_PASID_VALID		(1 << 2)
#define RVFIO_FAULT_EMULATED		(1 << 3)
	__u8	access;
#define RVFIO_FAULT_ACCESS_READ		(1 << 0)
#define RVFIO_FAULT_ACCESS_WRITE	(1 << 1)
#define RVFIO_FAULT_ACCESS_EXEC		(1 << 2)
#define RVFIO_FAULT_ACCESS_PRIV		(1 << 3)
	__u8	stage;
#define RVFIO_FAULT_STAGE_1		1
#define RVFIO_FAULT_STAGE_2		2
	__u8	reason;
#define RVFIO_FAULT_REASON_HW		0 /* the IOMMU told only the access */
#define RVFIO_FAULT_REASON_NOT_MAPPED	1 /* no mapping at @iova */
#define RVFIO_FAULT_REASON_PERMISSION	2 /* mapped without @access */
	__u8	__reserved0;
	__s32	group_id;
	__u32	requester_id;
	__u32	pasid;
	__u32	cookie;
	__u64	__reserved1[2];
};

/**
 * struct rvfio_fault_response - a page response, written to the ring fd
 * @cookie: the page request's @cookie
 * @code: %RVFIO_FAULT_RESPONSE_SUCCESS: the mapping was fixed, translate
 *	again (an access that still faults then fails as it would without a
 *	ring); %RVFIO_FAULT_RESPONSE_INVALID or %RVFIO_FAULT_RESPONSE_FAILURE:
 *	the access fails with the error it gets without a ring (EINVAL when
 *	not mapped, EPERM for the permission)
 */
struct rvfio_fault_response {
	__u32	cookie;
	__u32	code;
#define RVFIO_FAULT_RESPONSE_SUCCESS	0
#define RVFIO_FAULT_RESPONSE_INVALID	1
#define RVFIO_FAULT_RESPONSE_FAILURE	2
};

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
 * EFAULT, also when the memory behind pgtbl_addr cannot be read (an
 * emulated-IOMMU group's table is read from the mapping owner's memory);
 * ENOMEM.
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
 * Puts the group back on container IOVAs. If the IOMMU driver fails to
 * attach the group to its stage-2 domain (it allocates on attach), the group
 * stays bound and the call fails with that error (ENOMEM), having changed
 * nothing. Only if the group then cannot be put back on its stage-1
 * translation either is it left unbound with its DMA blocked
 * (RVFIO_NESTING_GROUP_BLOCKED, and the kernel log says so), and the unbind
 * succeeds. Detaching the group from the container and closing the
 * container unbind too; those cannot fail.
 *
 * Return: 0; ENOTTY on a container that is not a nesting one; EINVAL for a
 * short @argsz, non-zero @flags or @__reserved, or a group that is not
 * bound; ENOENT when no group with @group_id is attached; EFAULT; ENOMEM.
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
