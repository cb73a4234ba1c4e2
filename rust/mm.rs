// SPDX-License-Identifier: GPL-2.0

//! The process a mapping belongs to: its `mm_struct` (for pinning and
//! `locked_vm`), its thread-group leader (whose RLIMIT_MEMLOCK applies) and
//! whether it had CAP_IPC_LOCK at map time. type1 records the same three
//! things per `vfio_dma` (`mm`, `task`, `lock_cap`).
//!
//! Also the safe wrappers over an mm's references and its mmap lock
//! (`include/linux/sched/mm.h`, `include/linux/mmap_lock.h`): [`MmUsers`]
//! keeps the address space alive, [`MmapRead`] holds the lock, and a
//! [`Vma`] borrowed from it cannot outlive it.

use crate::bindings;
use crate::instrument::{timed, Stat};
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use kernel::error::{code::*, to_result, Result};
use kernel::prelude::*;
use kernel::uaccess::{UserPtr, UserSlice};

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

    /// Whether this is the calling task's own address space (never true in
    /// a kernel thread that has not borrowed it).
    pub(crate) fn is_current(&self) -> bool {
        // SAFETY: reads `current->mm`; no reference is taken or kept.
        unsafe { bindings::rvfio_current_mm() == self.ptr }
    }

    /// Copies between `buf` and `[vaddr, vaddr + buf.len())` of this
    /// address space, as type1's `vfio_dma_rw_chunk()`: the owner copies
    /// directly, a kernel thread borrows the mm (`kthread_use_mm()`), any
    /// other process gets EFAULT. EPERM when the address space is gone.
    ///
    /// # Safety
    ///
    /// `buf` is valid for reads (`write`) or writes (`!write`) of `len`
    /// bytes, and nothing else accesses it meanwhile.
    pub(crate) unsafe fn copy(&self, vaddr: u64, buf: *mut u8, len: usize, write: bool) -> Result {
        let _users = MmUsers::get(self).ok_or(EPERM)?;
        // SAFETY: reads `current->mm`.
        let kthread = unsafe { bindings::rvfio_current_mm().is_null() };
        if kthread {
            // SAFETY: a kernel thread without an mm, and `_users` keeps the
            // address space alive until the matching unuse below.
            unsafe { bindings::kthread_use_mm(self.ptr) };
        }
        let result = if kthread || self.is_current() {
            let user = UserSlice::new(vaddr as UserPtr, len);
            if write {
                // SAFETY: readable for `len` bytes (the caller's contract).
                let src = unsafe { core::slice::from_raw_parts(buf, len) };
                user.writer().write_slice(src)
            } else {
                // SAFETY: writable for `len` bytes (the caller's contract);
                // `MaybeUninit<u8>` has the layout of `u8`.
                let dst =
                    unsafe { core::slice::from_raw_parts_mut(buf.cast::<MaybeUninit<u8>>(), len) };
                user.reader().read_raw(dst)
            }
        } else {
            Err(EFAULT)
        };
        if kthread {
            // SAFETY: borrowed above.
            unsafe { bindings::kthread_unuse_mm(self.ptr) };
        }
        result
    }
}

impl Clone for MmRef {
    fn clone(&self) -> Self {
        // SAFETY: we hold a reference (type invariant), so the struct is
        // alive; mmgrab() takes another.
        unsafe { bindings::rvfio_mmgrab(self.ptr) };
        // INVARIANT: the new value owns the reference taken just now.
        Self { ptr: self.ptr }
    }
}

impl PartialEq for MmRef {
    fn eq(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }
}

impl Drop for MmRef {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we own one mm_count reference.
        unsafe { bindings::rvfio_mm_drop(self.ptr) };
    }
}

/// A reference on an address space's users (`mmget_not_zero()`/`mmput()`):
/// its memory cannot be torn down while this lives.
///
/// # Invariants
///
/// `mm.ptr` holds an `mm_users` reference owned by this value.
pub(crate) struct MmUsers<'a> {
    mm: &'a MmRef,
}

impl<'a> MmUsers<'a> {
    /// `None` when the address space has exited.
    pub(crate) fn get(mm: &'a MmRef) -> Option<Self> {
        // SAFETY: `mm` is grabbed, so the struct is alive.
        let ok = unsafe { bindings::rvfio_mmget_not_zero(mm.ptr) };
        // INVARIANT: mmget_not_zero() took the reference.
        ok.then_some(Self { mm })
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::mm_struct {
        self.mm.ptr
    }

    /// Takes the mmap lock for reading.
    pub(crate) fn read_lock(&self) -> MmapRead<'_> {
        // SAFETY: the address space is alive (type invariant).
        unsafe { bindings::rvfio_mmap_read_lock(self.mm.ptr) };
        // INVARIANT: locked just now.
        MmapRead {
            mm: self.mm.ptr,
            _users: PhantomData,
        }
    }
}

impl Drop for MmUsers<'_> {
    fn drop(&mut self) {
        // SAFETY: drops the reference the type holds.
        unsafe { bindings::mmput(self.mm.ptr) };
    }
}

/// The mmap lock of an address space, held for reading.
///
/// # Invariants
///
/// `mm` is alive (an [`MmUsers`] outlives this) and its mmap lock is held
/// for reading by this value.
pub(crate) struct MmapRead<'a> {
    mm: *mut bindings::mm_struct,
    _users: PhantomData<&'a ()>,
}

impl MmapRead<'_> {
    /// `untagged_addr_remote()`: `addr` without a tag of this mm's ABI.
    pub(crate) fn untagged(&self, addr: u64) -> u64 {
        // SAFETY: the lock is held (type invariant), as the macro requires.
        unsafe { bindings::rvfio_untagged_addr_remote(self.mm, addr as _) as u64 }
    }

    /// The vma containing `addr`. It borrows the lock, so it cannot be used
    /// after anything that may drop the lock ([`MmapRead::fault_in`]).
    pub(crate) fn vma(&self, addr: u64) -> Option<Vma<'_>> {
        // SAFETY: the lock is held (type invariant).
        let ptr = unsafe { bindings::rvfio_vma_lookup(self.mm, addr as _) };
        // INVARIANT: found under the lock, which the borrow keeps held.
        (!ptr.is_null()).then_some(Vma {
            ptr,
            _lock: PhantomData,
        })
    }

    /// `fixup_user_fault()`: faults `addr` in (for writing when `write`).
    /// Returns whether the lock was dropped and taken again meanwhile, in
    /// which case every vma looked up before is stale (the borrow checker
    /// makes callers look them up again: this takes `&mut self`) and the
    /// fault's own result does not matter: the caller looks again, as
    /// type1's `follow_fault_pfn()` does.
    pub(crate) fn fault_in(&mut self, addr: u64, write: bool) -> Result<bool> {
        let mut flags = bindings::FAULT_FLAG_REMOTE;
        if write {
            flags |= bindings::FAULT_FLAG_WRITE;
        }
        let mut unlocked = false;
        // SAFETY: the lock is held, as fixup_user_fault() requires; it
        // returns with the lock held again, and says in `unlocked` whether
        // it dropped it.
        let ret = unsafe { bindings::fixup_user_fault(self.mm, addr as _, flags, &mut unlocked) };
        if unlocked {
            return Ok(true);
        }
        to_result(ret)?;
        Ok(false)
    }

    /// `pin_user_pages_remote()` into `pages` (as many as it holds):
    /// returns how many were pinned.
    pub(crate) fn pin_pages(&self, vaddr: u64, flags: u32, pages: &mut [u64]) -> Result<usize> {
        // SAFETY: the lock is held and the address space alive (type
        // invariant); `pages` has room for `pages.len()` pointers
        // (struct page pointers are 64 bits, as the C side checks).
        let ret = unsafe {
            bindings::pin_user_pages_remote(
                self.mm,
                vaddr as _,
                pages.len() as _,
                flags,
                pages.as_mut_ptr().cast(),
                core::ptr::null_mut(),
            )
        };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        Ok(ret as usize)
    }
}

impl Drop for MmapRead<'_> {
    fn drop(&mut self) {
        // SAFETY: held by this value (type invariant).
        unsafe { bindings::rvfio_mmap_read_unlock(self.mm) };
    }
}

/// A vma found under an [`MmapRead`], valid while that lock is held.
///
/// # Invariants
///
/// `ptr` is a vma of the locked mm, found after the lock was last taken.
pub(crate) struct Vma<'a> {
    ptr: *mut bindings::vm_area_struct,
    _lock: PhantomData<&'a ()>,
}

/// Why [`Vma::follow_pfnmap`] stopped before the end.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FollowStop {
    /// It reached the end, or filled the buffer.
    Done,
    /// Nothing is mapped at the next address (yet).
    Absent,
    /// The next pte is read-only and a writable lookup was asked for.
    ReadOnly,
    /// The next pfn is ordinary memory (it has a struct page and is not
    /// PageReserved).
    Ram,
}

impl Vma<'_> {
    pub(crate) fn flags(&self) -> u64 {
        // SAFETY: valid while the lock is held (type invariant).
        unsafe { bindings::rvfio_vma_flags(self.ptr) as u64 }
    }

    pub(crate) fn end(&self) -> u64 {
        // SAFETY: as above.
        unsafe { bindings::rvfio_vma_end(self.ptr) as u64 }
    }

    pub(crate) fn is_pfnmap(&self) -> bool {
        self.flags() & bindings::VM_PFNMAP as u64 != 0
    }

    /// Private anonymous memory (`MAP_PRIVATE | MAP_ANONYMOUS`, the heap,
    /// stacks): it belongs to this address space alone and does not
    /// survive exec. Shared anonymous memory is shmem and not this.
    pub(crate) fn is_private_anon(&self) -> bool {
        // SAFETY: valid while the lock is held (type invariant).
        let anon = unsafe { bindings::rvfio_vma_is_anonymous(self.ptr) };
        anon && self.flags() & bindings::VM_SHARED as u64 == 0
    }

    /// The pfns mapped from `addr` on, page by page up to `end` and at most
    /// `out.len()` of them (`rvfio_follow_pfnmap_range()`, in one call):
    /// how many were found, and why it stopped.
    pub(crate) fn follow_pfnmap(
        &self,
        addr: u64,
        end: u64,
        write: bool,
        out: &mut [u64],
    ) -> (usize, FollowStop) {
        let mut stop = 0;
        // SAFETY: a VM_PFNMAP vma under the mmap lock (the callee checks
        // the vma type too); `out` has room for `out.len()` pfns.
        let n = unsafe {
            bindings::rvfio_follow_pfnmap_range(
                self.ptr,
                addr as _,
                end as _,
                write,
                out.as_mut_ptr(),
                out.len() as _,
                &mut stop,
            )
        };
        let n = usize::try_from(n).unwrap_or(0).min(out.len());
        let stop = match stop as u32 {
            bindings::RVFIO_FOLLOW_ABSENT => FollowStop::Absent,
            bindings::RVFIO_FOLLOW_READONLY => FollowStop::ReadOnly,
            bindings::RVFIO_FOLLOW_RAM => FollowStop::Ram,
            _ => FollowStop::Done,
        };
        (n, stop)
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

impl Clone for TaskRef {
    fn clone(&self) -> Self {
        // SAFETY: we hold a reference (type invariant); take another.
        unsafe { bindings::rvfio_task_get(self.ptr) };
        // INVARIANT: the new value owns the reference taken just now.
        Self { ptr: self.ptr }
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we own one task reference.
        unsafe { bindings::rvfio_task_put(self.ptr) };
    }
}

/// Who a mapping's pinned pages are charged to.
#[derive(Clone)]
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
        let result = timed(Stat::Charge, npages as u64, || {
            self.lock_acct(npages, true, self.lock_cap)
        });
        if result == Err(ENOMEM) {
            // SAFETY: no preconditions.
            let limit = unsafe { bindings::rvfio_current_memlock_limit() };
            pr_warn!("RLIMIT_MEMLOCK ({}) exceeded\n", limit);
        }
        result
    }

    /// Returns `npages` to `locked_vm`. When the process is gone there is
    /// nothing to give back to, as in type1.
    pub(crate) fn uncharge(&self, npages: usize) {
        // A decrement never fails on the rlimit.
        let _ = timed(Stat::Uncharge, npages as u64, || {
            self.lock_acct(npages, false, true)
        });
    }

    /// type1's `vfio_lock_acct()`: `__account_locked_vm()` under the mmap
    /// write lock. The caller's own mm has users while it runs; another's
    /// needs a users reference (ESRCH when it has none left).
    fn lock_acct(&self, npages: usize, inc: bool, lock_cap: bool) -> Result {
        if npages == 0 {
            return Ok(());
        }
        let npages = u64::try_from(npages).map_err(|_| ENOMEM)?;
        let _users = if self.mm.is_current() {
            None
        } else {
            Some(MmUsers::get(&self.mm).ok_or(ESRCH)?)
        };
        let mm = self.mm.as_ptr();
        // SAFETY: the address space is alive (ours, or `_users`).
        to_result(unsafe { bindings::rvfio_mmap_write_lock_killable(mm) })?;
        // SAFETY: the mmap lock is held for writing, as the function
        // requires; `task` is referenced (its invariant).
        let ret =
            unsafe { bindings::__account_locked_vm(mm, npages as _, inc, self.task.ptr, lock_cap) };
        // SAFETY: locked above.
        unsafe { bindings::rvfio_mmap_write_unlock(mm) };
        to_result(ret)
    }
}
