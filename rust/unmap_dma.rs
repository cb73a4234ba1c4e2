// SPDX-License-Identifier: GPL-2.0

//! VFIO_IOMMU_UNMAP_DMA (type1's `vfio_iommu_type1_unmap_dma()` and
//! `vfio_dma_do_unmap()`), v1 and v2 semantics.

use crate::container::Container;
use crate::ioctl::read_fixed;
use crate::iova;
use crate::uapi::*;
use core::mem::size_of;
use kernel::error::{code::*, Result};
use kernel::uaccess::{UserPtr, UserSlice};

pub(crate) fn unmap_dma(container: &Container, arg: UserPtr) -> Result {
    let mut unmap: DmaUnmap = read_fixed(arg)?;
    let mask =
        VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL;
    if unmap.flags & !mask != 0 {
        return Err(EINVAL);
    }
    let dirty = unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP != 0;
    if dirty && unmap.flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR) != 0 {
        return Err(EINVAL);
    }
    if dirty {
        // type1 refuses this unless dirty tracking was started, which rvfio
        // does not offer yet.
        return Err(EINVAL);
    }
    if unmap.flags & VFIO_DMA_UNMAP_FLAG_VADDR != 0 {
        // VFIO_UPDATE_VADDR is not advertised yet.
        return Err(crate::ioctl::eopnotsupp());
    }
    let all = unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL != 0;

    let unmapped = {
        let mut inner = container.lock();
        let range =
            iova::check_unmap(unmap.iova, unmap.size, all, inner.min_pgsize()).ok_or(EINVAL)?;
        if container.v2 && !all {
            // v2: the range may not bisect a mapping at either end.
            if let Some(m) = inner.mapping_at(range.start) {
                if m.start != range.start {
                    return Err(EINVAL);
                }
            }
            if let Some(m) = inner.mapping_at(range.end) {
                if m.end != range.end {
                    return Err(EINVAL);
                }
            }
        }
        let mut unmapped: u64 = 0;
        while let Some(key) = inner.first_overlap(&range) {
            // v1: a request that starts inside a mapping unmaps nothing from
            // there on (success, size 0 for it); one that covers a
            // mapping's first IOVA removes the whole mapping.
            if !container.v2 && range.start > key {
                break;
            }
            unmapped += inner.remove_dma(key);
        }
        unmapped
    };

    unmap.size = unmapped;
    // Only `size` changes: write back the fixed part (argsz was checked).
    let mut w = UserSlice::new(arg, size_of::<DmaUnmap>()).writer();
    w.write(&unmap)
}
