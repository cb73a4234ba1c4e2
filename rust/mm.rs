// SPDX-License-Identifier: GPL-2.0

//! The process a mapping belongs to: its `mm_struct` (for pinning and
//! `locked_vm`), its thread-group leader (whose RLIMIT_MEMLOCK applies) and
//! whether it had CAP_IPC_LOCK at map time. type1 records the same three
//! things per `vfio_dma` (`mm`, `task`, `lock_cap`).

use crate::bindings;
use kernel::error::{code::*, to_result, Result};
use kernel::prelude::*;

/// A reference to an `mm_struct` that keeps the struct (not the address
/// space) alive: `mmgrab()`/`mmdrop()`.
///
/// # Invariants
///
/// `ptr` is non-null and holds an `mm_count` reference owned by this value.
pub(crate) struct MmRef {
    ptr: *mut bindings::mm_struct,
}

// SAFETY: an mm_count reference may be dropped from any thread, and the
// pointer is only handed to functions that do their own locking.
unsafe impl Send for MmRef {}
// SAFETY: `&MmRef` only exposes the pointer to functions that lock the mm.
unsafe impl Sync for MmRef {}

impl MmRef {
    /// The current process's mm, or `None` for a kernel thread.
    pub(crate) fn current() -> Option<Self> {
        // SAFETY: no preconditions; returns current->mm with mmgrab() taken.
        let ptr = unsafe { bindings::rvfio_current_mm_grab() };
        // INVARIANT: non-null and grabbed.
        (!ptr.is_null()).then_some(Self { ptr })
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::mm_struct {
        self.ptr
    }
}

impl Drop for MmRef {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we own one mm_count reference.
        unsafe { bindings::rvfio_mm_drop(self.ptr) };
    }
}

/// A reference to a thread-group leader's `task_struct`.
///
/// # Invariants
///
/// `ptr` is non-null and holds a task reference owned by this value.
pub(crate) struct TaskRef {
    ptr: *mut bindings::task_struct,
}

// SAFETY: task references may be dropped from any thread.
unsafe impl Send for TaskRef {}
// SAFETY: `&TaskRef` only passes the pointer to rlimit lookups.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// `current->group_leader`, referenced.
    pub(crate) fn current_leader() -> Self {
        // SAFETY: no preconditions; takes a reference on the group leader.
        let ptr = unsafe { bindings::rvfio_current_leader_get() };
        // INVARIANT: current->group_leader is never null; we hold a reference.
        Self { ptr }
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we own one task reference.
        unsafe { bindings::rvfio_task_put(self.ptr) };
    }
}

/// Who a mapping's pinned pages are charged to.
pub(crate) struct Owner {
    pub(crate) mm: MmRef,
    pub(crate) task: TaskRef,
    /// CAP_IPC_LOCK at map time: RLIMIT_MEMLOCK is not enforced.
    pub(crate) lock_cap: bool,
}

impl Owner {
    /// The calling process; EFAULT when it has no address space.
    pub(crate) fn current() -> Result<Self> {
        let mm = MmRef::current().ok_or(EFAULT)?;
        // SAFETY: no preconditions.
        let lock_cap = unsafe { bindings::rvfio_capable_ipc_lock() };
        Ok(Self {
            mm,
            task: TaskRef::current_leader(),
            lock_cap,
        })
    }

    /// Charges `npages` to `locked_vm`: ENOMEM past RLIMIT_MEMLOCK (unless
    /// `lock_cap`), EINTR on a fatal signal, ESRCH when the mm is gone.
    pub(crate) fn charge(&self, npages: usize) -> Result {
        let n = isize::try_from(npages).map_err(|_| ENOMEM)?;
        // SAFETY: `mm` and `task` are valid references by their invariants.
        let ret =
            unsafe { bindings::rvfio_lock_acct(self.mm.as_ptr(), self.task.ptr, n, self.lock_cap) };
        if ret == ENOMEM.to_errno() {
            // SAFETY: no preconditions.
            let limit = unsafe { bindings::rvfio_current_memlock_limit() };
            pr_warn!("RLIMIT_MEMLOCK ({}) exceeded\n", limit);
        }
        to_result(ret)
    }

    /// Returns `npages` to `locked_vm`. When the process is gone there is
    /// nothing to give back to, as in type1.
    pub(crate) fn uncharge(&self, npages: usize) {
        let Ok(n) = isize::try_from(npages) else {
            return;
        };
        // SAFETY: as in `charge`; a decrement never fails on the rlimit.
        let _ = unsafe { bindings::rvfio_lock_acct(self.mm.as_ptr(), self.task.ptr, -n, true) };
    }
}
