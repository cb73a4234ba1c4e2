// SPDX-License-Identifier: GPL-2.0

//! VFIO_IOMMU_DIRTY_PAGES (type1's `vfio_iommu_type1_dirty_pages()`) and
//! the bisection check that UNMAP_DMA shares with it. The user bitmap is
//! `user_bitmap.rs`; what counts as dirty is explained in `dirty.rs`.

use crate::container::{Container, Inner};
use crate::ioctl::read_fixed;
use crate::iova::IovaRange;
use crate::uapi::*;
use crate::user_bitmap::UserBitmap;
use core::mem::size_of;
use kernel::error::{code::*, Result};
use kernel::uaccess::{UserPtr, UserSlice};

pub(crate) fn dirty_pages(container: &Container, arg: UserPtr) -> Result {
    if !container.v2 {
        return Err(EACCES);
    }
    let head: DirtyBitmap = read_fixed(arg)?;
    let mask = VFIO_IOMMU_DIRTY_PAGES_FLAG_START
        | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
        | VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
    // Exactly one known flag.
    if head.flags & !mask != 0 || head.flags.count_ones() != 1 {
        return Err(EINVAL);
    }
    match head.flags {
        VFIO_IOMMU_DIRTY_PAGES_FLAG_START => container.lock().set_dirty_tracking(true),
        VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP => container.lock().set_dirty_tracking(false),
        _ => get_bitmap(container, arg, head.argsz as usize),
    }
}

fn get_bitmap(container: &Container, arg: UserPtr, argsz: usize) -> Result {
    let head = size_of::<DirtyBitmap>();
    if argsz < head + size_of::<DirtyBitmapGet>() {
        return Err(EINVAL);
    }
    let range: DirtyBitmapGet = UserSlice::new(arg + head, size_of::<DirtyBitmapGet>())
        .reader()
        .read()?;
    if range.iova.checked_add(range.size).is_none() {
        return Err(EINVAL);
    }
    let bitmap = UserBitmap::new(&range.bitmap, range.iova, range.size)?;

    let mut inner = container.lock();
    let pgsize = inner.min_pgsize();
    if range.bitmap.pgsize != pgsize
        || range.iova & (pgsize - 1) != 0
        || range.size == 0
        || range.size & (pgsize - 1) != 0
    {
        return Err(EINVAL);
    }
    if !inner.dirty_tracking() {
        return Err(EINVAL);
    }
    let r = IovaRange {
        start: range.iova,
        end: range.iova + range.size - 1,
    };
    // The range must not bisect a mapping, as for a v2 unmap.
    check_not_bisected(&mut inner, &r)?;
    for dma in inner.mappings_starting_in(&r)? {
        inner.report_dirty(dma.start, &bitmap)?;
    }
    Ok(())
}

/// EINVAL when `r` cuts a mapping at either end (type1's check for v2
/// unmaps and dirty bitmaps). Otherwise the start of the lowest mapping in
/// `r` and whether devices hold pins in it, found on the way: an unmap
/// needs no second tree walk to find it.
pub(crate) fn check_not_bisected(inner: &mut Inner, r: &IovaRange) -> Result<Option<(u64, bool)>> {
    // The lowest mapping overlapping `r` is the one containing `r.start`,
    // if any; when it also reaches `r.end` (unmapping one whole mapping),
    // one tree walk answers both ends.
    let Some((key, first, external)) =
        inner.first_overlap_with(r, |key, dma| (key, dma.range(), dma.has_external_pins()))
    else {
        return Ok(None);
    };
    if first.start < r.start || (first.end > r.end && first.start <= r.end) {
        return Err(EINVAL);
    }
    if first.end >= r.end {
        return Ok(Some((key, external)));
    }
    match inner.mapping_at(r.end) {
        Some(m) if m.end != r.end => Err(EINVAL),
        _ => Ok(Some((key, external))),
    }
}
