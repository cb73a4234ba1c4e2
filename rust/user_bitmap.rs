// SPDX-License-Identifier: GPL-2.0

//! A dirty bitmap in user memory (`struct vfio_bitmap`), validated as
//! type1 validates it and written word for word as type1's
//! `update_user_bitmap()` writes it. Shared by VFIO_IOMMU_DIRTY_PAGES and
//! UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP; the container
//! reports into it.

use crate::bindings;
use crate::caps::DIRTY_BITMAP_SIZE_MAX;
use crate::dirty;
use crate::iova::IovaRange;
use crate::uapi::Bitmap;
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
