// SPDX-License-Identifier: GPL-2.0

//! VFIO_IOMMU_DIRTY_PAGES (type1's `vfio_iommu_type1_dirty_pages()`) and the
//! bitmap reporting that UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
//! shares with it. What counts as dirty is explained in `dirty.rs`.

use crate::bindings;
use crate::caps::DIRTY_BITMAP_SIZE_MAX;
use crate::container::{Container, Inner};
use crate::dirty;
use crate::ioctl::read_fixed;
use crate::iova::IovaRange;
use crate::uapi::*;
use core::mem::size_of;
use kernel::error::{code::*, Result};
use kernel::prelude::*;
use kernel::uaccess::{UserPtr, UserSlice};

/// Words written to user space per copy.
const CHUNK_WORDS: usize = 512;

/// A validated user bitmap for the IOVA range starting at `base`.
pub(crate) struct UserBitmap {
    data: u64,
    base: u64,
    pgshift: u32,
}

impl UserBitmap {
    /// Checks a `vfio_bitmap` for `npages_of(size)` pages the way type1
    /// does before taking its lock: address range acceptable to
    /// `access_ok()`, and a size that holds the bits without exceeding the
    /// maximum. The page size itself is checked under the lock.
    pub(crate) fn new(bitmap: &Bitmap, base: u64, size: u64) -> Result<Self> {
        // SAFETY: access_ok() only compares addresses.
        if !unsafe { bindings::rvfio_access_ok(bitmap.data as _, bitmap.size as _) } {
            return Err(EINVAL);
        }
        if bitmap.pgsize == 0 {
            return Err(EINVAL);
        }
        let pgshift = bitmap.pgsize.trailing_zeros();
        if !dirty::bitmap_size_ok(size >> pgshift, bitmap.size, DIRTY_BITMAP_SIZE_MAX) {
            return Err(EINVAL);
        }
        Ok(Self {
            data: bitmap.data,
            base,
            pgshift,
        })
    }

    /// Writes the bits of mapping `dma`, whose own bitmap word `j` is
    /// `src(j)`, exactly as type1's `update_user_bitmap()` does.
    pub(crate) fn report(&self, dma: &IovaRange, src: &dyn Fn(u64) -> u64) -> Result {
        let nbits = (dma.end - dma.start + 1) >> self.pgshift;
        let p = dirty::placement((dma.start - self.base) >> self.pgshift, nbits);
        let first = self.data + p.first_word * 8;
        let leftover = if p.shift != 0 {
            UserSlice::new(first as UserPtr, 8).reader().read::<u64>()?
        } else {
            0
        };
        let mut buf = KVec::with_capacity(CHUNK_WORDS * 8, GFP_KERNEL)?;
        let mut i = 0;
        while i < p.words {
            let n = (p.words - i).min(CHUNK_WORDS as u64);
            buf.clear_bytes();
            for j in i..i + n {
                let w = dirty::shifted_word(&p, nbits, j, leftover, src);
                buf.extend_from_slice(&w.to_ne_bytes(), GFP_KERNEL)?;
            }
            let at = first + i * 8;
            UserSlice::new(at as UserPtr, buf.len())
                .writer()
                .write_slice(&buf)?;
            i += n;
        }
        Ok(())
    }
}

/// `KVec<u8>` reuse without reallocating.
trait ClearBytes {
    fn clear_bytes(&mut self);
}

impl ClearBytes for KVec<u8> {
    fn clear_bytes(&mut self) {
        // SAFETY: shrinking the length of a vector of `u8` (no drop glue)
        // to zero is always valid.
        unsafe { self.set_len(0) };
    }
}

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
/// unmaps and dirty bitmaps).
pub(crate) fn check_not_bisected(inner: &mut Inner, r: &IovaRange) -> Result {
    // The lowest mapping overlapping `r` is the one containing `r.start`,
    // if any; when it also reaches `r.end` (unmapping one whole mapping),
    // one tree walk answers both ends.
    let Some(first) = inner.first_overlap_with(r, |_, dma| dma.range()) else {
        return Ok(());
    };
    if first.start < r.start || (first.end > r.end && first.start <= r.end) {
        return Err(EINVAL);
    }
    if first.end >= r.end {
        return Ok(());
    }
    match inner.mapping_at(r.end) {
        Some(m) if m.end != r.end => Err(EINVAL),
        _ => Ok(()),
    }
}
