// SPDX-License-Identifier: GPL-2.0

//! The type1 ioctl ABI of `include/uapi/linux/vfio.h`: ioctl numbers,
//! extension ids, flags and the fixed parts of the argument structures.
//!
//! The structures are declared here rather than used from the bindgen output
//! so that they can carry `FromBytes`/`AsBytes`; their sizes are checked
//! against the generated ones at compile time.

use crate::bindings;
use core::mem::size_of;
use kernel::ioctl::_IO;
use kernel::types::{AsBytes, FromBytes};

const VFIO_TYPE: u32 = b';' as u32;
const VFIO_BASE: u32 = 100;

pub(crate) const VFIO_CHECK_EXTENSION: u32 = _IO(VFIO_TYPE, VFIO_BASE + 1);
pub(crate) const VFIO_IOMMU_GET_INFO: u32 = _IO(VFIO_TYPE, VFIO_BASE + 12);
pub(crate) const VFIO_IOMMU_MAP_DMA: u32 = _IO(VFIO_TYPE, VFIO_BASE + 13);
pub(crate) const VFIO_IOMMU_UNMAP_DMA: u32 = _IO(VFIO_TYPE, VFIO_BASE + 14);
pub(crate) const VFIO_IOMMU_DIRTY_PAGES: u32 = _IO(VFIO_TYPE, VFIO_BASE + 17);

// rvfio's own (include/uapi/linux/rvfio.h).
pub(crate) const RVFIO_IOMMU_DMA_QUERY: u32 = _IO(VFIO_TYPE, VFIO_BASE + 90);
pub(crate) const RVFIO_IOMMU_REVOKE_EVENTFD: u32 = _IO(VFIO_TYPE, VFIO_BASE + 91);
pub(crate) const RVFIO_IOMMU_CHANGE_DMA_OWNER: u32 = _IO(VFIO_TYPE, VFIO_BASE + 93);
pub(crate) const RVFIO_PFNMAP_REVOKE: u64 = bindings::RVFIO_PFNMAP_REVOKE as u64;
pub(crate) const RVFIO_DMA_OWNER: u64 = bindings::RVFIO_DMA_OWNER as u64;
pub(crate) const RVFIO_DMA_OWNER_NO_ENTRY: u32 = bindings::RVFIO_DMA_OWNER_NO_ENTRY;
pub(crate) const RVFIO_DMA_OWNER_MAX_ENTRIES: u32 = bindings::RVFIO_DMA_OWNER_MAX_ENTRIES;
pub(crate) const RVFIO_DMA_QUERY_PFNMAP: u32 = bindings::RVFIO_DMA_QUERY_PFNMAP;
pub(crate) const RVFIO_DMA_QUERY_REVOKED: u32 = bindings::RVFIO_DMA_QUERY_REVOKED;
pub(crate) const RVFIO_IOMMU_FAULT_RING: u32 = _IO(VFIO_TYPE, VFIO_BASE + 92);
pub(crate) const RVFIO_FAULT_RING: u64 = bindings::RVFIO_FAULT_RING as u64;
pub(crate) const RVFIO_IOMMU_NESTING_BIND: u32 = _IO(VFIO_TYPE, VFIO_BASE + 94);
pub(crate) const RVFIO_IOMMU_NESTING_UNBIND: u32 = _IO(VFIO_TYPE, VFIO_BASE + 95);
pub(crate) const RVFIO_IOMMU_NESTING_INVALIDATE: u32 = _IO(VFIO_TYPE, VFIO_BASE + 96);
pub(crate) const RVFIO_IOMMU_INFO_CAP_NESTING: u16 = bindings::RVFIO_IOMMU_INFO_CAP_NESTING as u16;
pub(crate) const RVFIO_NESTING_CAP_CACHING_MODE: u32 = bindings::RVFIO_NESTING_CAP_CACHING_MODE;
pub(crate) const RVFIO_NESTING_GROUP_SOFTWARE: u32 = bindings::RVFIO_NESTING_GROUP_SOFTWARE;
pub(crate) const RVFIO_NESTING_GROUP_HW_CAPABLE: u32 = bindings::RVFIO_NESTING_GROUP_HW_CAPABLE;
pub(crate) const RVFIO_NESTING_GROUP_EMULATED: u32 = bindings::RVFIO_NESTING_GROUP_EMULATED;
pub(crate) const RVFIO_NESTING_GROUP_BOUND: u32 = bindings::RVFIO_NESTING_GROUP_BOUND;
pub(crate) const RVFIO_NESTING_GROUP_BLOCKED: u32 = bindings::RVFIO_NESTING_GROUP_BLOCKED;

/// EOPNOTSUPP, which the 6.12 kernel crate does not name.
pub(crate) fn eopnotsupp() -> kernel::error::Error {
    kernel::error::Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

// iommufd's payloads (<linux/iommufd.h>).
pub(crate) const IOMMU_HWPT_DATA_VTD_S1: u32 = bindings::IOMMU_HWPT_DATA_VTD_S1;
pub(crate) const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1: u32 =
    bindings::IOMMU_HWPT_INVALIDATE_DATA_VTD_S1;
pub(crate) const IOMMU_VTD_S1_SRE: u64 = bindings::IOMMU_VTD_S1_SRE as u64;
pub(crate) const IOMMU_VTD_S1_EAFE: u64 = bindings::IOMMU_VTD_S1_EAFE as u64;
pub(crate) const IOMMU_VTD_S1_WPE: u64 = bindings::IOMMU_VTD_S1_WPE as u64;
pub(crate) const IOMMU_VTD_INV_FLAGS_LEAF: u32 = bindings::IOMMU_VTD_INV_FLAGS_LEAF;

// Extension ids (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU).
pub(crate) const VFIO_TYPE1_IOMMU: u64 = bindings::VFIO_TYPE1_IOMMU as u64;
pub(crate) const VFIO_TYPE1V2_IOMMU: u64 = bindings::VFIO_TYPE1v2_IOMMU as u64;
pub(crate) const VFIO_DMA_CC_IOMMU: u64 = bindings::VFIO_DMA_CC_IOMMU as u64;
pub(crate) const VFIO_TYPE1_NESTING_IOMMU: u64 = bindings::VFIO_TYPE1_NESTING_IOMMU as u64;
pub(crate) const VFIO_UNMAP_ALL: u64 = bindings::VFIO_UNMAP_ALL as u64;
pub(crate) const VFIO_UPDATE_VADDR: u64 = bindings::VFIO_UPDATE_VADDR as u64;

pub(crate) const VFIO_DMA_MAP_FLAG_READ: u32 = bindings::VFIO_DMA_MAP_FLAG_READ;
pub(crate) const VFIO_DMA_MAP_FLAG_WRITE: u32 = bindings::VFIO_DMA_MAP_FLAG_WRITE;
pub(crate) const VFIO_DMA_MAP_FLAG_VADDR: u32 = bindings::VFIO_DMA_MAP_FLAG_VADDR;

pub(crate) const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: u32 =
    bindings::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
pub(crate) const VFIO_DMA_UNMAP_FLAG_ALL: u32 = bindings::VFIO_DMA_UNMAP_FLAG_ALL;
pub(crate) const VFIO_DMA_UNMAP_FLAG_VADDR: u32 = bindings::VFIO_DMA_UNMAP_FLAG_VADDR;

pub(crate) const VFIO_IOMMU_DIRTY_PAGES_FLAG_START: u32 =
    bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
pub(crate) const VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP: u32 = bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
pub(crate) const VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP: u32 =
    bindings::VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;

pub(crate) const VFIO_IOMMU_INFO_PGSIZES: u32 = bindings::VFIO_IOMMU_INFO_PGSIZES;
pub(crate) const VFIO_IOMMU_INFO_CAPS: u32 = bindings::VFIO_IOMMU_INFO_CAPS;

/// `struct vfio_iommu_type1_dma_map`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct DmaMap {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) vaddr: u64,
    pub(crate) iova: u64,
    pub(crate) size: u64,
}

/// The fixed part of `struct vfio_iommu_type1_dma_unmap` (a `vfio_bitmap`
/// follows it with VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct DmaUnmap {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) iova: u64,
    pub(crate) size: u64,
}

/// `struct vfio_bitmap`: a user bitmap, one bit per `pgsize` page.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Bitmap {
    pub(crate) pgsize: u64,
    pub(crate) size: u64,
    pub(crate) data: u64,
}

/// The fixed part of `struct vfio_iommu_type1_dirty_bitmap`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct DirtyBitmap {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
}

/// `struct vfio_iommu_type1_dirty_bitmap_get`, after `DirtyBitmap`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct DirtyBitmapGet {
    pub(crate) iova: u64,
    pub(crate) size: u64,
    pub(crate) bitmap: Bitmap,
}

/// `struct vfio_iommu_type1_info`; the capability chain follows it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Info {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) iova_pgsizes: u64,
    pub(crate) cap_offset: u32,
    pub(crate) pad: u32,
}

/// `struct rvfio_dma_query`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct DmaQuery {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) iova: u64,
    pub(crate) size: u64,
    pub(crate) revoked_bytes: u64,
}

/// `struct rvfio_revoke_eventfd`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct RevokeEventfd {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) fd: i32,
    pub(crate) reserved: u32,
    pub(crate) revocations: u64,
}

/// `struct rvfio_change_dma_owner`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct ChangeDmaOwner {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) count: u32,
    pub(crate) failed: u32,
    pub(crate) entries: u64,
}

/// `struct rvfio_dma_owner_entry`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct OwnerEntry {
    pub(crate) iova: u64,
    pub(crate) vaddr: u64,
}

/// `struct rvfio_nesting_bind`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct NestingBind {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) group_id: u32,
    pub(crate) data_type: u32,
    pub(crate) data_len: u32,
    pub(crate) out_flags: u32,
    pub(crate) data_uptr: u64,
}

/// `struct rvfio_nesting_unbind`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct NestingUnbind {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) group_id: u32,
    pub(crate) reserved: u32,
}

/// `struct rvfio_nesting_invalidate`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct NestingInvalidate {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) group_id: u32,
    pub(crate) data_type: u32,
    pub(crate) data_uptr: u64,
    pub(crate) entry_len: u32,
    pub(crate) entry_num: u32,
}

/// `struct iommu_hwpt_vtd_s1` (iommufd's stage-1 table payload).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct HwptVtdS1 {
    pub(crate) flags: u64,
    pub(crate) pgtbl_addr: u64,
    pub(crate) addr_width: u32,
    pub(crate) reserved: u32,
}

/// `struct iommu_hwpt_vtd_s1_invalidate` (one invalidation entry).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct HwptVtdS1Invalidate {
    pub(crate) addr: u64,
    pub(crate) npages: u64,
    pub(crate) flags: u32,
    pub(crate) reserved: u32,
}

// SAFETY: plain `repr(C)` integers with no padding (checked below): every
// bit pattern is valid and every byte is initialised.
unsafe impl FromBytes for DmaMap {}
// SAFETY: as above.
unsafe impl AsBytes for DmaMap {}
// SAFETY: as above.
unsafe impl FromBytes for DmaUnmap {}
// SAFETY: as above.
unsafe impl AsBytes for DmaUnmap {}
// SAFETY: as above.
unsafe impl FromBytes for Bitmap {}
// SAFETY: as above.
unsafe impl FromBytes for DirtyBitmap {}
// SAFETY: as above.
unsafe impl FromBytes for DirtyBitmapGet {}
// SAFETY: as above.
unsafe impl FromBytes for Info {}
// SAFETY: as above.
unsafe impl AsBytes for Info {}

// SAFETY: as above.
unsafe impl FromBytes for DmaQuery {}
// SAFETY: as above.
unsafe impl AsBytes for DmaQuery {}
// SAFETY: as above.
unsafe impl FromBytes for RevokeEventfd {}
// SAFETY: as above.
unsafe impl AsBytes for RevokeEventfd {}

// SAFETY: as above.
unsafe impl FromBytes for ChangeDmaOwner {}
// SAFETY: as above.
unsafe impl AsBytes for ChangeDmaOwner {}
// SAFETY: as above.
unsafe impl FromBytes for OwnerEntry {}

const _: () = assert!(size_of::<ChangeDmaOwner>() == size_of::<bindings::rvfio_change_dma_owner>());
const _: () = assert!(size_of::<ChangeDmaOwner>() == 24);
const _: () = assert!(size_of::<OwnerEntry>() == size_of::<bindings::rvfio_dma_owner_entry>());
const _: () = assert!(size_of::<OwnerEntry>() == 16);
// SAFETY: as above.
unsafe impl FromBytes for NestingBind {}
// SAFETY: as above.
unsafe impl AsBytes for NestingBind {}
// SAFETY: as above.
unsafe impl FromBytes for NestingUnbind {}
// SAFETY: as above.
unsafe impl FromBytes for NestingInvalidate {}
// SAFETY: as above.
unsafe impl FromBytes for HwptVtdS1 {}
// SAFETY: as above.
unsafe impl FromBytes for HwptVtdS1Invalidate {}

const _: () = assert!(size_of::<NestingBind>() == size_of::<bindings::rvfio_nesting_bind>());
const _: () = assert!(size_of::<NestingBind>() == 32);
const _: () = assert!(size_of::<NestingUnbind>() == size_of::<bindings::rvfio_nesting_unbind>());
const _: () = assert!(size_of::<NestingUnbind>() == 16);
const _: () =
    assert!(size_of::<NestingInvalidate>() == size_of::<bindings::rvfio_nesting_invalidate>());
const _: () = assert!(size_of::<NestingInvalidate>() == 32);
const _: () = assert!(size_of::<HwptVtdS1>() == size_of::<bindings::iommu_hwpt_vtd_s1>());
const _: () = assert!(size_of::<HwptVtdS1>() == 24);
const _: () = assert!(
    size_of::<HwptVtdS1Invalidate>() == size_of::<bindings::iommu_hwpt_vtd_s1_invalidate>()
);
const _: () = assert!(size_of::<HwptVtdS1Invalidate>() == 24);
const _: () =
    assert!(size_of::<bindings::rvfio_iommu_info_cap_nesting>() == crate::caps::NESTING_SIZE);
const _: () =
    assert!(size_of::<bindings::rvfio_nesting_group>() == crate::caps::NESTING_GROUP_SIZE);
const _: () = assert!(RVFIO_IOMMU_INFO_CAP_NESTING == crate::caps::CAP_NESTING);
const _: () = assert!(size_of::<DmaQuery>() == size_of::<bindings::rvfio_dma_query>());
const _: () = assert!(size_of::<DmaQuery>() == 32);
const _: () = assert!(size_of::<RevokeEventfd>() == size_of::<bindings::rvfio_revoke_eventfd>());
const _: () = assert!(size_of::<RevokeEventfd>() == 24);
const _: () = assert!(size_of::<DmaMap>() == size_of::<bindings::vfio_iommu_type1_dma_map>());
const _: () = assert!(size_of::<DmaMap>() == 32);
const _: () = assert!(size_of::<DmaUnmap>() == 24);
const _: () = assert!(size_of::<Bitmap>() == size_of::<bindings::vfio_bitmap>());
const _: () = assert!(size_of::<DirtyBitmap>() == 8);
const _: () = assert!(
    size_of::<DirtyBitmapGet>() == size_of::<bindings::vfio_iommu_type1_dirty_bitmap_get>()
);
const _: () = assert!(size_of::<Info>() == size_of::<bindings::vfio_iommu_type1_info>());
const _: () = assert!(size_of::<Info>() == crate::caps::INFO_SIZE);

/// `offsetofend(struct vfio_iommu_type1_info, iova_pgsizes)`: the least a
/// GET_INFO caller must provide.
pub(crate) const INFO_MINSZ: usize = 16;

/// `struct rvfio_fault_ring_create`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct FaultRingCreate {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) entries: u32,
    pub(crate) eventfd: i32,
    pub(crate) kinds: u32,
    pub(crate) timeout_ms: u32,
}

/// `struct rvfio_fault_response`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct FaultResponse {
    pub(crate) cookie: u32,
    pub(crate) code: u32,
}

// SAFETY: plain `repr(C)` integers with no padding (checked below).
unsafe impl FromBytes for FaultRingCreate {}
// SAFETY: as above.
unsafe impl FromBytes for FaultResponse {}

const _: () =
    assert!(size_of::<FaultRingCreate>() == size_of::<bindings::rvfio_fault_ring_create>());
const _: () = assert!(size_of::<FaultRingCreate>() == 24);
const _: () = assert!(size_of::<FaultResponse>() == size_of::<bindings::rvfio_fault_response>());
const _: () = assert!(size_of::<FaultResponse>() == crate::ring::RESPONSE_SIZE);

// The uapi as `ring.rs` (which builds on the host, without bindings) has it.
const _: () = {
    use crate::ring;
    assert!(size_of::<ring::Record>() == size_of::<bindings::rvfio_fault>());
    assert!(size_of::<ring::Header>() == size_of::<bindings::rvfio_fault_ring_header>());
    assert!(ring::MAX_ENTRIES == bindings::RVFIO_FAULT_RING_MAX_ENTRIES);
    assert!(ring::MAX_TIMEOUT_MS == bindings::RVFIO_FAULT_RING_MAX_TIMEOUT_MS);
    assert!(ring::DEFAULT_TIMEOUT_MS == bindings::RVFIO_FAULT_RING_DEFAULT_TIMEOUT_MS);
    assert!(ring::KIND_DMA == bindings::RVFIO_FAULT_KIND_DMA);
    assert!(ring::KIND_PAGE_REQ == bindings::RVFIO_FAULT_KIND_PAGE_REQ);
    assert!(ring::F_PAGE_REQUESTS == bindings::RVFIO_FAULT_RING_PAGE_REQUESTS);
    assert!(ring::F_HW_PAGE_REQUESTS == bindings::RVFIO_FAULT_RING_HW_PAGE_REQUESTS);
    assert!(ring::STATE_DETACHED == bindings::RVFIO_FAULT_RING_DETACHED);
    assert!(ring::REC_GROUP_VALID as u32 == bindings::RVFIO_FAULT_GROUP_VALID);
    assert!(ring::REC_RID_VALID as u32 == bindings::RVFIO_FAULT_RID_VALID);
    assert!(ring::REC_PASID_VALID as u32 == bindings::RVFIO_FAULT_PASID_VALID);
    assert!(ring::REC_EMULATED as u32 == bindings::RVFIO_FAULT_EMULATED);
    assert!(ring::ACCESS_READ as u32 == bindings::RVFIO_FAULT_ACCESS_READ);
    assert!(ring::ACCESS_WRITE as u32 == bindings::RVFIO_FAULT_ACCESS_WRITE);
    assert!(ring::STAGE_2 as u32 == bindings::RVFIO_FAULT_STAGE_2);
    assert!(ring::REASON_HW as u32 == bindings::RVFIO_FAULT_REASON_HW);
    assert!(ring::REASON_NOT_MAPPED as u32 == bindings::RVFIO_FAULT_REASON_NOT_MAPPED);
    assert!(ring::REASON_PERMISSION as u32 == bindings::RVFIO_FAULT_REASON_PERMISSION);
    assert!(ring::RESPONSE_SUCCESS == bindings::RVFIO_FAULT_RESPONSE_SUCCESS);
    assert!(ring::RESPONSE_INVALID == bindings::RVFIO_FAULT_RESPONSE_INVALID);
    assert!(ring::RESPONSE_FAILURE == bindings::RVFIO_FAULT_RESPONSE_FAILURE);
};
