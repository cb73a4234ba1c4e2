// SPDX-License-Identifier: GPL-2.0

//! An mmu interval notifier on a range of a process's address space
//! (`include/linux/mmu_notifier.h`): the safe wrapper the PFNMAP revoker
//! (`revoke.rs`) watches mappings with.
//!
//! The notifier is embedded in a pinned [`Node`] that also holds the
//! [`Revoker`] its callback reports to; glue.c's ops table calls
//! [`rvfio_rs_watch_invalidate`] with the embedded `mmu_interval_notifier`,
//! from which the node is found again.

use crate::bindings;
use crate::instrument::{timed, Stat};
use crate::mm::{MmRef, MmUsers};
use crate::pin::PAGE_SHIFT;
use crate::revoke::Revoker;
use core::pin::Pin;
use kernel::error::{code::*, to_result, Result};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;

/// The C notifier and whom its callback tells.
#[pin_data]
struct Node {
    #[pin]
    mni: Opaque<bindings::mmu_interval_notifier>,
    revoker: Arc<Revoker>,
}

/// A registered interval notifier; unregistered (waiting for a running
/// callback) on drop.
///
/// # Invariants
///
/// `node.mni` was inserted with `mmu_interval_notifier_insert()` and
/// `rvfio_watch_ops`, and is removed only by `drop`.
pub(crate) struct IntervalNotifier {
    node: Pin<KBox<Node>>,
}

// SAFETY: the C notifier is only used through the notifier API, which is
// thread safe; `Revoker` is `Send + Sync`.
unsafe impl Send for IntervalNotifier {}
// SAFETY: as above.
unsafe impl Sync for IntervalNotifier {}

impl IntervalNotifier {
    /// Watches `[start, start + len)` of `mm`; invalidations of the range
    /// go to `revoker`. ENODEV when `mm` has exited.
    pub(crate) fn new(revoker: Arc<Revoker>, mm: &MmRef, start: u64, len: u64) -> Result<Self> {
        timed(Stat::WatchNew, len >> PAGE_SHIFT, || {
            Self::insert(revoker, mm, start, len)
        })
    }

    fn insert(revoker: Arc<Revoker>, mm: &MmRef, start: u64, len: u64) -> Result<Self> {
        let node = KBox::pin(
            Node {
                mni: Opaque::new(Default::default()),
                revoker,
            },
            GFP_KERNEL_ACCOUNT,
        )?;
        // Registering the mm's first notifier needs a live mm.
        let users = MmUsers::get(mm).ok_or(ENODEV)?;
        // SAFETY: `node.mni` is pinned and stays so until `drop` removes it;
        // the address space is alive (`users`); the ops table is static.
        to_result(unsafe {
            bindings::mmu_interval_notifier_insert(
                node.mni.get(),
                users.as_ptr(),
                start as _,
                len as _,
                &bindings::rvfio_watch_ops,
            )
        })?;
        // INVARIANT: inserted just now.
        Ok(Self { node })
    }

    /// Identifies the notifier (its address) to the callback's receiver.
    pub(crate) fn key(&self) -> usize {
        self.node.mni.get() as usize
    }

    pub(crate) fn revoker(&self) -> &Arc<Revoker> {
        &self.node.revoker
    }

    /// `mmu_interval_read_begin()`: call before looking the range up.
    pub(crate) fn read_begin(&self) -> u64 {
        // SAFETY: inserted (type invariant).
        unsafe { bindings::mmu_interval_read_begin(self.node.mni.get()) as u64 }
    }

    /// `mmu_interval_read_retry()`: whether the range was invalidated since
    /// `seq`. Call under the lock the callback takes.
    pub(crate) fn read_retry(&self, seq: u64) -> bool {
        // SAFETY: inserted (type invariant).
        unsafe { bindings::rvfio_watch_read_retry(self.node.mni.get(), seq as _) }
    }
}

impl Drop for IntervalNotifier {
    fn drop(&mut self) {
        timed(Stat::WatchDrop, 0, || {
            // SAFETY: inserted (type invariant), removed once. This waits
            // for a running callback; afterwards none can reach the node,
            // which is freed when `node` drops.
            unsafe { bindings::mmu_interval_notifier_remove(self.node.mni.get()) }
        });
    }
}

/// One invalidation of a watched range, handed to the revoker.
pub(crate) struct Invalidation {
    mni: *mut bindings::mmu_interval_notifier,
    cur_seq: u64,
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl Invalidation {
    /// `mmu_interval_set_seq()`: call under the lock that mappers check
    /// `read_retry()` under, before changing anything.
    pub(crate) fn set_seq(&self) {
        // SAFETY: the notifier is alive during its callback, which is where
        // an `Invalidation` exists (it is not `Send` and not kept).
        unsafe { bindings::rvfio_watch_set_seq(self.mni, self.cur_seq as _) }
    }
}

/// The invalidate callback (glue.c's `rvfio_watch_ops`).
#[no_mangle]
extern "C" fn rvfio_rs_watch_invalidate(
    mni: *mut bindings::mmu_interval_notifier,
    cur_seq: core::ffi::c_ulong,
    start: core::ffi::c_ulong,
    end: core::ffi::c_ulong,
    blockable: bool,
) -> bool {
    if !blockable {
        // Only the OOM reaper asks; it skips VM_PFNMAP vmas and retries.
        return false;
    }
    // CAST: `Opaque<T>` is `repr(transparent)` over `T`.
    let field = mni
        .cast_const()
        .cast::<Opaque<bindings::mmu_interval_notifier>>();
    // SAFETY: every notifier with `rvfio_watch_ops` is the `mni` field of a
    // `Node` (`IntervalNotifier::new`), alive until its removal, which waits
    // for this callback.
    let node = unsafe { &*kernel::container_of!(field, Node, mni) };
    let inv = Invalidation {
        mni,
        cur_seq,
        start,
        end,
    };
    node.revoker.invalidate(mni as usize, &inv);
    true
}
