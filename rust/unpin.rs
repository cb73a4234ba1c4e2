// SPDX-License-Identifier: GPL-2.0

//! Releasing a mapping's pins: a physically contiguous run with one
//! `unpin_user_page_range_dirty_lock()`, and the one-page runs of fragmented
//! memory a batch per `unpin_user_pages_dirty_lock()` call.

use crate::bindings;
use crate::pin::unpin_run;
use crate::runs::Run;
use kernel::prelude::*;

/// One-page runs unpinned per call.
const BATCH: usize = 512;

/// Releases the pins of every non-reserved run of `runs`, marking the pages
/// dirty when the device could write them.
///
/// # Safety
///
/// As for [`unpin_run`], for every run.
pub(crate) unsafe fn unpin_runs(runs: &[Run], dirty: bool) {
    // A buffer for the batches, allocated when the first stretch of
    // one-page runs shows up; without it, a call per run.
    let mut batch: Option<KVec<u64>> = None;
    let mut i = 0;
    while i < runs.len() {
        let singles = runs[i].npages() == 1 && runs.get(i + 1).is_some_and(|r| r.npages() == 1);
        if singles && batch.is_none() {
            batch = KVec::with_capacity(BATCH, GFP_KERNEL | __GFP_NOWARN).ok();
        }
        match batch.as_mut() {
            Some(buf) if singles => {
                // SAFETY: the caller's contract, for these runs.
                i += unsafe { unpin_singles(&runs[i..], dirty, buf) };
            }
            _ => {
                // SAFETY: the caller's contract, for this run.
                unsafe { unpin_run(&runs[i], dirty) };
                i += 1;
            }
        }
    }
}

/// Unpins the one-page runs at the start of `runs` (up to the first longer
/// one), `BATCH` per call through `buf`. Returns how many runs it took.
///
/// # Safety
///
/// As for [`unpin_run`], for those runs.
unsafe fn unpin_singles(runs: &[Run], dirty: bool, buf: &mut KVec<u64>) -> usize {
    let mut taken = 0;
    for run in runs.iter().take_while(|r| r.npages() == 1) {
        taken += 1;
        if run.reserved() {
            continue;
        }
        // The capacity is there (flushed below at BATCH): no allocation.
        if buf.push(run.pfn(), GFP_NOWAIT).is_err() {
            // SAFETY: the caller's contract.
            unsafe { unpin_run(run, dirty) };
            continue;
        }
        if buf.len() == BATCH {
            // SAFETY: the caller's contract.
            unsafe { flush(buf, dirty) };
        }
    }
    // SAFETY: the caller's contract.
    unsafe { flush(buf, dirty) };
    taken
}

/// Unpins the pages whose pfns `buf` holds and empties it.
///
/// # Safety
///
/// As for [`unpin_run`], for each of those pages.
unsafe fn flush(buf: &mut KVec<u64>, dirty: bool) {
    if buf.is_empty() {
        return;
    }
    // SAFETY: `buf` holds `len` pfns of pages the caller may unpin; the C
    // side turns them into page pointers in place, then unpins them.
    unsafe { bindings::rvfio_unpin_pfn_array(buf.as_mut_ptr(), buf.len() as _, dirty) };
    // SAFETY: shrinking to zero; `u64` has nothing to drop (and the C side
    // overwrote the entries with page pointers).
    unsafe { buf.set_len(0) };
}
