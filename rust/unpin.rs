// SPDX-License-Identifier: GPL-2.0

//! Releasing a mapping's pins: a physically contiguous run with one
//! `unpin_user_page_range_dirty_lock()`, and the one-page runs of fragmented
//! memory a batch per `unpin_user_pages_dirty_lock()` call.

use crate::bindings;
use crate::instrument::{timed, Stat};
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
    // SAFETY: the caller's contract.
    timed(Stat::Unpin, runs.len() as u64, || unsafe {
        unpin_runs_inner(runs, dirty)
    })
}

/// [`unpin_runs`], untimed.
///
/// # Safety
///
/// As for [`unpin_runs`].
unsafe fn unpin_runs_inner(runs: &[Run], dirty: bool) {
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
                let taken = unsafe { unpin_singles(&runs[i..], dirty, buf) };
                if taken == 0 {
                    // SAFETY: the caller's contract, for this run.
                    unsafe { unpin_run(&runs[i], dirty) };
                    i += 1;
                }
                i += taken;
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
/// one), `BATCH` per call with `buf` as the C side's scratch. Returns how
/// many runs it took.
///
/// # Safety
///
/// As for [`unpin_run`], for those runs.
unsafe fn unpin_singles(runs: &[Run], dirty: bool, buf: &mut KVec<u64>) -> usize {
    let n = runs.iter().take_while(|r| r.npages() == 1).count();
    let room = buf.capacity().min(BATCH);
    if n == 0 || room == 0 {
        return 0;
    }
    // SAFETY: the runs are one-page runs the caller may unpin (our
    // contract); `Run` is `struct rvfio_run`; `buf` has room for `room`
    // page pointers (64 bits each, like its `u64`s), which the C side
    // writes before it reads them.
    unsafe {
        bindings::rvfio_unpin_page_runs(
            runs.as_ptr().cast(),
            n as _,
            dirty,
            buf.as_mut_ptr().cast(),
            room as _,
        )
    };
    n
}
