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
/// one), `BATCH` per call through `buf`. Returns how many runs it took.
///
/// # Safety
///
/// As for [`unpin_run`], for those runs.
unsafe fn unpin_singles(runs: &[Run], dirty: bool, buf: &mut KVec<u64>) -> usize {
    // One pass over the runs: their pfns go straight into the buffer's
    // spare room (no per-run length checks), a batch at a time.
    let room = buf.spare_capacity_mut();
    let len = room.len().min(BATCH);
    if len == 0 {
        // Not reached: the buffer was allocated with room for BATCH.
        return 0;
    }
    let room = &mut room[..len];
    let mut k = 0;
    let mut taken = 0;
    for run in runs.iter() {
        if run.npages() != 1 {
            break;
        }
        taken += 1;
        if run.reserved() {
            continue;
        }
        room[k].write(run.pfn());
        k += 1;
        if k == room.len() {
            // SAFETY: `room[..k]` were written just now; the caller's
            // contract for their pages.
            unsafe { flush(room.as_mut_ptr().cast(), k, dirty) };
            k = 0;
        }
    }
    // SAFETY: as above.
    unsafe { flush(room.as_mut_ptr().cast(), k, dirty) };
    taken
}

/// Unpins the `n` pages whose pfns `pfns` holds.
///
/// # Safety
///
/// `pfns` points to `n` initialised pfns, of pages the caller may unpin
/// (as for [`unpin_run`]); the C side overwrites them with page pointers.
unsafe fn flush(pfns: *mut u64, n: usize, dirty: bool) {
    if n == 0 {
        return;
    }
    // SAFETY: the caller's contract; the C side turns the pfns into page
    // pointers in place, then unpins them.
    unsafe { bindings::rvfio_unpin_pfn_array(pfns, n as _, dirty) };
}
