// SPDX-License-Identifier: GPL-2.0

//! Long-term pinning of user memory in batches, described as physically
//! contiguous runs (`runs.rs`): which GUP path pins, and when a range is
//! looked up as PFNMAP instead (`pfnmap.rs`).

use crate::bindings;
use crate::instrument::{timed, Stat};
use crate::mm::{MmRef, MmUsers};
use crate::pfnmap;
use crate::runs::{self, Run};
use kernel::error::{code::*, Result};
use kernel::prelude::*;

/// `PAGE_SHIFT`.
pub(crate) const PAGE_SHIFT: u32 = bindings::PAGE_SHIFT;
/// `PAGE_SIZE`.
pub(crate) const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
const _: () = assert!(PAGE_SHIFT == runs::RUN_PAGE_SHIFT);

/// Pages pinned per GUP call: one page worth of pointers, like type1's
/// `vfio_batch`.
pub(crate) const BATCH_PAGES: usize = PAGE_SIZE as usize / core::mem::size_of::<u64>();

/// Maps of up to this many pages pin without allocating a buffer. One:
/// the batch then fits in a few words, which move without a `memcpy` call.
const INLINE_PAGES: usize = 1;

/// The errno of [`PinBatch::pin`] for a VM_PFNMAP range when PFNMAP was
/// not asked for: the caller must watch the range first (`revoke.rs`).
/// EREMCHG: no caller of the pinning path returns it for anything else.
const NEEDS_WATCH: i32 = -(bindings::EREMCHG as i32);

/// Whether `e` is [`PinBatch::pin`]'s "watch this PFNMAP range first".
pub(crate) fn needs_watch(e: &Error) -> bool {
    e.to_errno() == NEEDS_WATCH
}

/// Releases the pins of `run` (nothing for a reserved one).
///
/// # Safety
///
/// The run's pages were pinned by [`PinBatch::pin`], the caller owns those
/// pins, and no IOMMU mapping of them remains.
pub(crate) unsafe fn unpin_run(run: &Run, dirty: bool) {
    if !run.reserved() {
        // SAFETY: guaranteed by the caller.
        unsafe { bindings::rvfio_unpin_pfn_range(run.pfn(), run.npages(), dirty) }
    }
}

/// Where a batch goes: pinned page pointers or PFNMAP pfns, and the runs
/// they make.
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

const _: () = assert!(core::mem::size_of::<Run>() == core::mem::size_of::<bindings::rvfio_run>());

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
                runs: [Run::default(); INLINE_PAGES],
            }
        } else {
            let mut pages = KVec::with_capacity(n, GFP_KERNEL)?;
            pages.extend_with(n, 0u64, GFP_KERNEL)?;
            let mut runs = KVec::with_capacity(n, GFP_KERNEL)?;
            runs.extend_with(n, Run::default(), GFP_KERNEL)?;
            Buffers::Heap { pages, runs }
        };
        Ok(Self { bufs })
    }

    /// Long-term pins up to `npages` (at most the batch's size) pages of `mm`
    /// at `vaddr`, writable when `write`, to be mapped from `iova`. Returns
    /// how many pages were pinned (at least one) and the runs they form;
    /// the caller owns the pins and must release them with [`unpin_run`]
    /// or `unpin::unpin_runs`. What a VM_PFNMAP range gives depends on
    /// `pfnmap` ([`Pfnmap`]). ENODEV when `mm` has exited.
    pub(crate) fn pin(
        &mut self,
        mm: &MmRef,
        vaddr: u64,
        iova: u64,
        npages: usize,
        write: bool,
        pfnmap: Pfnmap,
    ) -> Result<(usize, &[Run])> {
        self.pin_as(mm, vaddr, iova, npages, write, pfnmap, true)
    }

    /// [`PinBatch::pin`], or with `longterm` false a short-term pin (no
    /// FOLL_LONGTERM: nothing is migrated), to look pages up and release
    /// them again at once.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn pin_as(
        &mut self,
        mm: &MmRef,
        vaddr: u64,
        iova: u64,
        npages: usize,
        write: bool,
        pfnmap: Pfnmap,
        longterm: bool,
    ) -> Result<(usize, &[Run])> {
        let (pages, runs): (&mut [u64], &mut [Run]) = match &mut self.bufs {
            Buffers::Inline { pages, runs } => (pages, runs),
            Buffers::Heap { pages, runs } => (pages, runs),
        };
        let n = npages.min(pages.len());
        let pages = &mut pages[..n];
        let split = max_run_pages() == 1;
        let (got, is_pfnmap) = timed(Stat::Pin, n as u64, || {
            pin_raw(mm, vaddr, write, pfnmap, longterm, pages)
        })?;
        let got = got.min(n);
        if got == 0 {
            return Err(EFAULT);
        }
        let nruns = if is_pfnmap {
            runs::from_pfns(&pages[..got], iova, split, runs)
        } else {
            // SAFETY: `pages[..got]` are pages pinned just now; `runs` has
            // room for `got` entries (it is as long as `pages`), and `Run`
            // is `struct rvfio_run` (same layout, checked).
            let k = unsafe {
                bindings::rvfio_pages_to_runs(
                    pages.as_mut_ptr().cast(),
                    got as _,
                    iova,
                    runs.as_mut_ptr().cast(),
                )
            };
            let k = usize::try_from(k).unwrap_or(0).min(got);
            if split {
                runs::split_pages(runs, k)
            } else {
                k
            }
        };
        Ok((got, &runs[..nruns]))
    }
}

/// What [`PinBatch::pin`] does with a VM_PFNMAP range (another device's
/// BAR), which has no pages to pin.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pfnmap {
    /// Fail with an error for which [`needs_watch`] is true: the caller
    /// must watch the range before mapping it (`revoke.rs`).
    Refuse,
    /// Look its pfns up (up to the end of its vma) and give them as
    /// reserved runs.
    Allow,
    /// As `Allow`, for a range known to start in PFNMAP memory: the GUP
    /// fast path, which would only fail there, is not tried.
    Expect,
}

/// Pins pages at `vaddr` of `mm` into `buf` as struct page pointers, or,
/// for a VM_PFNMAP range, looks their pfns up into `buf`. Returns how many,
/// and whether they are PFNMAP pfns.
fn pin_raw(
    mm: &MmRef,
    vaddr: u64,
    write: bool,
    pfnmap: Pfnmap,
    longterm: bool,
    buf: &mut [u64],
) -> Result<(usize, bool)> {
    let mut flags = 0;
    if longterm {
        flags |= bindings::FOLL_LONGTERM;
    }
    if write {
        flags |= bindings::FOLL_WRITE;
    }
    // The usual case, MAP_DMA by the mapping's owner: the lockless GUP fast
    // path (as iommufd does), which pins a whole THP or hugetlb folio per
    // page-table entry instead of walking page by page under the mmap lock.
    // Anything it cannot pin (a VM_PFNMAP range, an error) is sorted out
    // below with the lock held.
    if mm.is_current() && pfnmap != Pfnmap::Expect {
        let n = i32::try_from(buf.len()).unwrap_or(i32::MAX);
        // SAFETY: `buf` has room for `n` page pointers (64 bits, as the C
        // side checks); the caller's own mm is alive while it runs.
        let ret =
            unsafe { bindings::pin_user_pages_fast(vaddr as _, n, flags, buf.as_mut_ptr().cast()) };
        if ret > 0 {
            return Ok((ret as usize, false));
        }
    }
    let users = MmUsers::get(mm).ok_or(ENODEV)?;
    let mut lock = users.read_lock();
    // A VM_PFNMAP range (another device's BAR) cannot be pinned: look its
    // pfns up instead, as 6.12's vaddr_get_pfns() does when pinning fails
    // (but without trying to pin first). Such pfns are neither pinned nor
    // charged. Pinning stops where such a range begins.
    let addr = lock.untagged(vaddr);
    if lock.vma(addr).is_some_and(|v| v.is_pfnmap()) {
        if pfnmap == Pfnmap::Refuse {
            return Err(Error::from_errno(NEEDS_WATCH));
        }
        let got = pfnmap::lookup(&mut lock, addr, write, buf)?;
        return Ok((got, true));
    }
    let got = lock.pin_pages(vaddr, flags, buf)?;
    if got == 0 {
        return Err(EFAULT);
    }
    Ok((got, false))
}

/// True for pfns that are neither pinned nor charged: MMIO and reserved
/// pages such as the zero page (type1's `is_invalid_reserved_pfn()`).
pub(crate) fn pfn_is_reserved(pfn: u64) -> bool {
    // SAFETY: a pure lookup of the memory map.
    unsafe { bindings::rvfio_pfn_is_reserved(pfn) }
}

/// Whether `pfn` has a struct page (`pfn_valid()`).
pub(crate) fn pfn_valid(pfn: u64) -> bool {
    // SAFETY: a pure lookup of the memory map.
    unsafe { bindings::rvfio_pfn_valid(pfn) }
}

/// The page count runs are capped at: 1 with `disable_hugepages`.
pub(crate) fn max_run_pages() -> u64 {
    // SAFETY: reads a module parameter.
    if unsafe { bindings::rvfio_param_disable_hugepages() } {
        1
    } else {
        u64::MAX
    }
}
