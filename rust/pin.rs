// SPDX-License-Identifier: GPL-2.0

//! Long-term pinning of user memory, in batches of page frame numbers.

use crate::bindings;
use crate::mm::MmRef;
use kernel::error::{code::*, Result};
use kernel::prelude::*;

/// `PAGE_SHIFT`.
pub(crate) const PAGE_SHIFT: u32 = bindings::PAGE_SHIFT;
/// `PAGE_SIZE`.
pub(crate) const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// Pages pinned per `pin_user_pages_remote()` call: one page worth of
/// pointers, like type1's `vfio_batch`.
pub(crate) const BATCH_PAGES: usize = PAGE_SIZE as usize / core::mem::size_of::<u64>();

/// The errno of [`PinBatch::pin`] for a VM_PFNMAP range when PFNMAP was
/// not asked for: the caller must watch the range first (`revoke.rs`).
pub(crate) const NEEDS_WATCH: i32 = -(bindings::EREMCHG as i32);

/// A reusable buffer of pfns filled by [`PinBatch::pin`].
pub(crate) struct PinBatch {
    pfns: KVec<u64>,
}

impl PinBatch {
    pub(crate) fn new() -> Result<Self> {
        let mut pfns = KVec::with_capacity(BATCH_PAGES, GFP_KERNEL)?;
        pfns.extend_with(BATCH_PAGES, 0, GFP_KERNEL)?;
        Ok(Self { pfns })
    }

    /// Long-term pins up to `npages` (at most [`BATCH_PAGES`]) pages of `mm`
    /// at `vaddr`, writable when `write`. Returns the pfns of the pages
    /// pinned, at least one; the caller owns one pin on each non-reserved
    /// pfn (see [`pfn_is_reserved`]) and must release it with [`unpin`].
    /// A VM_PFNMAP range gives its (unpinned) pfns when `pfnmap_ok`, otherwise
    /// the errno [`NEEDS_WATCH`].
    pub(crate) fn pin(
        &mut self,
        mm: &MmRef,
        vaddr: u64,
        npages: usize,
        write: bool,
        pfnmap_ok: bool,
    ) -> Result<&[u64]> {
        let n = npages.min(BATCH_PAGES);
        // SAFETY: `mm` is a valid grabbed mm; `pfns` has room for `n` entries.
        let ret = unsafe {
            bindings::rvfio_pin_pfns(
                mm.as_ptr(),
                vaddr as _,
                n as _,
                write,
                pfnmap_ok,
                self.pfns.as_mut_ptr(),
            )
        };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        // `rvfio_pin_pfns` never returns 0 and never more than asked.
        let got = (ret as usize).min(n);
        if got == 0 {
            return Err(EFAULT);
        }
        Ok(&self.pfns[..got])
    }
}

/// True for pfns that are neither pinned nor charged: MMIO and reserved
/// pages such as the zero page (type1's `is_invalid_reserved_pfn()`).
pub(crate) fn pfn_is_reserved(pfn: u64) -> bool {
    // SAFETY: a pure lookup of the memory map.
    unsafe { bindings::rvfio_pfn_is_reserved(pfn) }
}

/// Releases the pins on `npages` physically contiguous pages from `pfn`,
/// marking them dirty when the device could write them.
///
/// # Safety
///
/// The caller owns one pin on each of these pages, taken by
/// [`PinBatch::pin`], and no IOMMU mapping of them remains.
pub(crate) unsafe fn unpin(pfn: u64, npages: u64, dirty: bool) {
    // SAFETY: guaranteed by the caller.
    unsafe { bindings::rvfio_unpin_pfns(pfn, npages, dirty) }
}
