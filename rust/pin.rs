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

/// One pfn of a pinned batch, and whether it is reserved (type1's
/// `is_invalid_reserved_pfn()`: MMIO or the zero page, neither pinned nor
/// charged). `rvfio_pin_pfns()` tags reserved pfns with
/// `RVFIO_PFN_RESERVED`, so the caller need not look at each page again.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(crate) struct PinnedPfn(u64);

/// `RVFIO_PFN_RESERVED` (bit 63; bindgen types the macro as `i64`).
const RESERVED_TAG: u64 = bindings::RVFIO_PFN_RESERVED as u64;

impl PinnedPfn {
    pub(crate) fn pfn(self) -> u64 {
        self.0 & !RESERVED_TAG
    }

    pub(crate) fn reserved(self) -> bool {
        self.0 & RESERVED_TAG != 0
    }
}

/// A reusable buffer of pfns filled by [`PinBatch::pin`].
pub(crate) struct PinBatch {
    pfns: KVec<PinnedPfn>,
}

impl PinBatch {
    /// A buffer for up to `npages` pages per call, at most [`BATCH_PAGES`]:
    /// a one-page map allocates 8 bytes, not a page.
    pub(crate) fn new(npages: u64) -> Result<Self> {
        let n = usize::try_from(npages).map_or(BATCH_PAGES, |n| n.clamp(1, BATCH_PAGES));
        let mut pfns = KVec::with_capacity(n, GFP_KERNEL)?;
        pfns.extend_with(n, PinnedPfn(0), GFP_KERNEL)?;
        Ok(Self { pfns })
    }

    /// Long-term pins up to `npages` (at most the batch's size) pages of `mm`
    /// at `vaddr`, writable when `write`. Returns the pfns of the pages
    /// pinned, at least one; the caller owns one pin on each non-reserved
    /// pfn and must release it with [`unpin`].
    /// A VM_PFNMAP range gives its (unpinned) pfns when `pfnmap_ok`, otherwise
    /// the errno [`NEEDS_WATCH`].
    pub(crate) fn pin(
        &mut self,
        mm: &MmRef,
        vaddr: u64,
        npages: usize,
        write: bool,
        pfnmap_ok: bool,
    ) -> Result<&[PinnedPfn]> {
        let n = npages.min(self.pfns.len());
        // SAFETY: `mm` is a valid grabbed mm; `pfns` has room for `n` entries.
        let ret = unsafe {
            bindings::rvfio_pin_pfns(
                mm.as_ptr(),
                vaddr as _,
                n as _,
                write,
                pfnmap_ok,
                // `PinnedPfn` is a transparent `u64`.
                self.pfns.as_mut_ptr().cast(),
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

/// Releases one pin on each page of `pfns` (marking them dirty when the
/// device could write them), then empties `pfns`.
///
/// # Safety
///
/// The caller owns one pin on each of these pages, taken by
/// [`PinBatch::pin`], and no IOMMU mapping of them remains.
pub(crate) unsafe fn unpin_pfns(pfns: &mut KVec<u64>, dirty: bool) {
    if pfns.is_empty() {
        return;
    }
    // SAFETY: guaranteed by the caller; the C side may overwrite the array
    // (it turns pfns into page pointers in place), which is emptied below.
    unsafe { bindings::rvfio_unpin_pfn_list(pfns.as_mut_ptr(), pfns.len() as _, dirty) };
    // SAFETY: 0 <= the length; u64 needs no drop.
    unsafe { pfns.set_len(0) };
}
