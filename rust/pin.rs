// SPDX-License-Identifier: GPL-2.0

//! Long-term pinning of user memory, in batches described as physically
//! contiguous runs.

use crate::bindings;
use crate::mm::MmRef;
use kernel::error::{code::*, Result};
use kernel::prelude::*;

/// `PAGE_SHIFT`.
pub(crate) const PAGE_SHIFT: u32 = bindings::PAGE_SHIFT;
/// `PAGE_SIZE`.
pub(crate) const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// Pages pinned per `pin_user_pages_fast()` call: one page worth of
/// pointers, like type1's `vfio_batch`.
pub(crate) const BATCH_PAGES: usize = PAGE_SIZE as usize / core::mem::size_of::<u64>();

/// Maps of up to this many pages pin without allocating a buffer. One:
/// the batch then fits in 64 bytes, which moves without a `memcpy` call.
const INLINE_PAGES: usize = 1;

/// The errno of [`PinBatch::pin`] for a VM_PFNMAP range when PFNMAP was
/// not asked for: the caller must watch the range first (`revoke.rs`).
pub(crate) const NEEDS_WATCH: i32 = -(bindings::EREMCHG as i32);

/// A physically contiguous piece of a mapping (`struct rvfio_run`) whose
/// pages are either all pinned or all reserved (type1's
/// `is_invalid_reserved_pfn()`: MMIO or the zero page, neither pinned nor
/// charged).
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(crate) struct Run(bindings::rvfio_run);

impl Run {
    const EMPTY: Run = Run::new(0, 0, 0, false);

    pub(crate) const fn new(iova: u64, pfn: u64, npages: u64, reserved: bool) -> Self {
        Self(bindings::rvfio_run {
            iova,
            pfn,
            npages,
            reserved,
        })
    }

    pub(crate) fn iova(&self) -> u64 {
        self.0.iova
    }

    pub(crate) fn pfn(&self) -> u64 {
        self.0.pfn
    }

    pub(crate) fn npages(&self) -> u64 {
        self.0.npages
    }

    pub(crate) fn reserved(&self) -> bool {
        self.0.reserved
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.0.npages << PAGE_SHIFT
    }

    /// Appends `next`, which [`Run::continued_by`] accepted.
    pub(crate) fn grow(&mut self, next: &Run) {
        self.0.npages += next.0.npages;
    }

    /// True when `next` continues this run (same kind, physically and in
    /// IOVA adjacent) and the result stays within `max_pages`.
    pub(crate) fn continued_by(&self, next: &Run, max_pages: u64) -> bool {
        self.0.reserved == next.0.reserved
            && self.0.npages + next.0.npages <= max_pages
            && self.0.pfn + self.0.npages == next.0.pfn
            && self.0.iova + self.bytes() == next.0.iova
    }

    /// Releases the pins of this run (nothing for a reserved one).
    ///
    /// # Safety
    ///
    /// The run's pages were pinned by [`PinBatch::pin`], the caller owns
    /// those pins, and no IOMMU mapping of them remains.
    pub(crate) unsafe fn unpin(&self, dirty: bool) {
        if !self.0.reserved {
            // SAFETY: guaranteed by the caller.
            unsafe { bindings::rvfio_unpin_pfns(self.0.pfn, self.0.npages, dirty) }
        }
    }
}

/// Releases the pins of every non-reserved run of `runs`, marking the pages
/// dirty when the device could write them.
///
/// # Safety
///
/// As for [`Run::unpin`], for every run.
pub(crate) unsafe fn unpin_runs(runs: &[Run], dirty: bool) {
    if runs.is_empty() {
        return;
    }
    // SAFETY: guaranteed by the caller; `Run` is a transparent
    // `rvfio_run` and the C side only reads `runs.len()` of them.
    unsafe { bindings::rvfio_unpin_runs(runs.as_ptr().cast(), runs.len() as _, dirty) }
}

/// Where a batch goes: pinned page pointers (scratch for the C side) and
/// the runs they make.
enum Buffers {
    /// Small maps: no allocation.
    Inline {
        pages: [u64; INLINE_PAGES],
        runs: [Run; INLINE_PAGES],
    },
    Heap {
        pages: KVec<u64>,
        runs: KVec<Run>,
    },
}

/// A reusable buffer for [`PinBatch::pin`].
pub(crate) struct PinBatch {
    bufs: Buffers,
}

impl PinBatch {
    /// A buffer for up to `npages` pages per call, at most [`BATCH_PAGES`]:
    /// a one-page map allocates nothing.
    pub(crate) fn new(npages: u64) -> Result<Self> {
        let n = usize::try_from(npages).map_or(BATCH_PAGES, |n| n.clamp(1, BATCH_PAGES));
        let bufs = if n <= INLINE_PAGES {
            Buffers::Inline {
                pages: [0; INLINE_PAGES],
                runs: [Run::EMPTY; INLINE_PAGES],
            }
        } else {
            let mut pages = KVec::with_capacity(n, GFP_KERNEL)?;
            pages.extend_with(n, 0u64, GFP_KERNEL)?;
            let mut runs = KVec::with_capacity(n, GFP_KERNEL)?;
            runs.extend_with(n, Run::EMPTY, GFP_KERNEL)?;
            Buffers::Heap { pages, runs }
        };
        Ok(Self { bufs })
    }

    /// Long-term pins up to `npages` (at most the batch's size) pages of `mm`
    /// at `vaddr`, writable when `write`, to be mapped from `iova`. Returns
    /// how many pages were pinned (at least one) and the runs they form;
    /// the caller owns the pins and must release them with [`Run::unpin`]
    /// or [`unpin_runs`].
    /// A VM_PFNMAP range gives reserved runs of its (unpinned) pfns when
    /// `pfnmap_ok`, otherwise the errno [`NEEDS_WATCH`].
    pub(crate) fn pin(
        &mut self,
        mm: &MmRef,
        vaddr: u64,
        iova: u64,
        npages: usize,
        write: bool,
        pfnmap_ok: bool,
    ) -> Result<(usize, &[Run])> {
        let (pages, runs): (&mut [u64], &mut [Run]) = match &mut self.bufs {
            Buffers::Inline { pages, runs } => (pages, runs),
            Buffers::Heap { pages, runs } => (pages, runs),
        };
        let n = npages.min(pages.len());
        let mut nruns: kernel::ffi::c_long = 0;
        // SAFETY: `mm` is a valid grabbed mm; `pages` and `runs` have room
        // for `n` entries each (`Run` is a transparent `rvfio_run`).
        let ret = unsafe {
            bindings::rvfio_pin_runs(
                mm.as_ptr(),
                vaddr as _,
                iova,
                n as _,
                write,
                pfnmap_ok,
                pages.as_mut_ptr(),
                runs.as_mut_ptr().cast(),
                &mut nruns,
            )
        };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        // `rvfio_pin_runs` never returns 0, never more than asked, and
        // makes at most one run per page.
        let got = (ret as usize).min(n);
        let nruns = usize::try_from(nruns).unwrap_or(0).min(got);
        if got == 0 || nruns == 0 {
            return Err(EFAULT);
        }
        Ok((got, &runs[..nruns]))
    }
}

/// True for pfns that are neither pinned nor charged: MMIO and reserved
/// pages such as the zero page (type1's `is_invalid_reserved_pfn()`).
pub(crate) fn pfn_is_reserved(pfn: u64) -> bool {
    // SAFETY: a pure lookup of the memory map.
    unsafe { bindings::rvfio_pfn_is_reserved(pfn) }
}
