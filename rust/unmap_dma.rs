// SPDX-License-Identifier: GPL-2.0

//! VFIO_IOMMU_UNMAP_DMA (type1's `vfio_iommu_type1_unmap_dma()` and
//! `vfio_dma_do_unmap()`): v1 and v2 semantics, the dirty bitmap of
//! VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP and the vaddr invalidation of
//! VFIO_DMA_UNMAP_FLAG_VADDR.

use crate::container::Container;
use crate::dirty_pages::check_not_bisected;
use crate::emulated;
use crate::instrument::{timed, Stat};
use crate::ioctl::read_fixed;
use crate::iova;
use crate::uapi::*;
use crate::user_bitmap::UserBitmap;
use core::mem::size_of;
use kernel::error::{code::*, Result};
use kernel::prelude::*;
use kernel::uaccess::{UserPtr, UserSlice};

pub(crate) fn unmap_dma(container: &Container, arg: UserPtr) -> Result {
    let mut unmap: DmaUnmap = timed(Stat::UnmapArgs, 0, || read_fixed(arg))?;
    let mask =
        VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL;
    if unmap.flags & !mask != 0 {
        return Err(EINVAL);
    }
    let want_dirty = unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP != 0;
    if want_dirty && unmap.flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR) != 0 {
        return Err(EINVAL);
    }
    let bitmap = if want_dirty {
        let fixed = size_of::<DmaUnmap>();
        if (unmap.argsz as usize) < fixed + size_of::<Bitmap>() {
            return Err(EINVAL);
        }
        let raw: Bitmap = UserSlice::new(arg + fixed, size_of::<Bitmap>())
            .reader()
            .read()?;
        Some((UserBitmap::new(&raw, unmap.iova, unmap.size)?, raw.pgsize))
    } else {
        None
    };
    let invalidate = unmap.flags & VFIO_DMA_UNMAP_FLAG_VADDR != 0;
    let all = unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL != 0;

    let mut inner = timed(Stat::UnmapLock, 0, || container.lock());
    // Devices of emulated-IOMMU groups could not follow the vaddr change.
    if invalidate && inner.has_emulated() {
        return Err(EBUSY);
    }
    let pgsize = inner.min_pgsize();
    let range = iova::check_unmap(unmap.iova, unmap.size, all, pgsize).ok_or(EINVAL)?;
    if let Some((_, bitmap_pgsize)) = &bitmap {
        // Only while tracking, and only at the smallest page size.
        if !inner.dirty_tracking() || *bitmap_pgsize != pgsize {
            return Err(EINVAL);
        }
    }
    // v2: the lowest mapping in the range comes with the check, and the
    // loop below starts from it without walking the tree again.
    let mut first = None;
    if container.v2 && !all {
        first = timed(Stat::UnmapTree, 0, || {
            check_not_bisected(&mut inner, &range)
        })?;
        if first.is_none() {
            drop(inner);
            return write_size(arg, &mut unmap, 0);
        }
    }
    if invalidate {
        // v1: nothing when the request starts inside a mapping (below).
        let starts_inside = inner.first_overlap(&range).is_some_and(|k| k < range.start);
        let size = if !container.v2 && starts_inside {
            0
        } else {
            inner.invalidate_vaddrs(&range)?
        };
        drop(inner);
        return write_size(arg, &mut unmap, size);
    }
    let mut unmapped: u64 = 0;
    let mut last: Option<u64> = None;
    let mut retries = 0;
    while let Some((key, external)) = first
        .take()
        .or_else(|| inner.first_overlap_with(&range, |key, dma| (key, dma.has_external_pins())))
    {
        // v1: a request that starts inside a mapping unmaps nothing more
        // (success); one that covers a mapping's first IOVA removes the
        // whole mapping, even past the end of the request.
        if !container.v2 && key < range.start {
            break;
        }
        if external {
            // Devices must drop their pins first; they do so from the
            // callback, through unpin_pages. type1 BUG()s after 10 tries.
            if last == Some(key) {
                retries += 1;
                if retries > 10 {
                    pr_err!("devices keep pages pinned at iova {:#x}\n", key);
                    return Err(EBUSY);
                }
            } else {
                last = Some(key);
                retries = 0;
            }
            let Some(r) = inner.mapping_at(key) else {
                continue;
            };
            inner = emulated::notify_dma_unmap(container, inner, r.start, r.end - r.start + 1);
            // Pins taken through a stage-1 translation are known to their
            // devices by stage-1 IOVA (nesting containers).
            inner = crate::nesting_ioctl::drop_s1_pins(container, inner, None, Some(&r));
            continue;
        }
        if let Some((bitmap, _)) = &bitmap {
            // As in type1, mappings already removed stay removed.
            inner.report_dirty(key, bitmap)?;
        }
        let size = inner.remove_dma(key);
        unmapped += size;
        // Mappings do not overlap: past this one's end nothing is left to
        // find (saves a tree walk per call).
        if size == 0 || key + (size - 1) >= range.end {
            break;
        }
    }
    drop(inner);
    write_size(arg, &mut unmap, unmapped)
}

/// Reports the size unmapped: only `size` changes, and only the fixed part
/// (which `argsz` was checked to cover) is written back.
fn write_size(arg: UserPtr, unmap: &mut DmaUnmap, size: u64) -> Result {
    unmap.size = size;
    UserSlice::new(arg, size_of::<DmaUnmap>())
        .writer()
        .write(unmap)
}
