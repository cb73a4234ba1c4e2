// SPDX-License-Identifier: GPL-2.0

//! RCU for the fault ring (`include/linux/rcupdate.h`): a read-side guard
//! and an [`Arc`] published to RCU readers.
//!
//! The 6.12 kernel crate has no RCU abstraction. The publication is an
//! `AtomicPtr`: a release store is what `rcu_assign_pointer()` does and an
//! acquire load is at least what `rcu_dereference()` does; the grace period
//! comes from `synchronize_rcu()`. A reader runs between
//! `rcu_read_lock()`/`rcu_read_unlock()`, or with interrupts disabled (a
//! hard interrupt handler), which `synchronize_rcu()` also waits for.

use crate::bindings;
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::sync::{Arc, ArcBorrow};

/// An RCU read-side critical section, from `new()` to drop.
///
/// Not `Send`: it must end on the task (or interrupt) that began it.
pub(crate) struct RcuReadGuard(PhantomData<*mut ()>);

impl RcuReadGuard {
    pub(crate) fn new() -> Self {
        // SAFETY: paired with the unlock in `drop`.
        unsafe { bindings::rvfio_rcu_read_lock() };
        Self(PhantomData)
    }
}

impl Drop for RcuReadGuard {
    fn drop(&mut self) {
        // SAFETY: locked in `new`, on this task.
        unsafe { bindings::rvfio_rcu_read_unlock() };
    }
}

/// Waits until every RCU reader that began before the call has finished.
pub(crate) fn synchronize() {
    // SAFETY: may sleep; every caller runs in process context.
    unsafe { bindings::synchronize_rcu() };
}

/// An optional `Arc<T>` that RCU readers can borrow without a reference
/// count.
///
/// # Invariants
///
/// `ptr` is null or comes from `Arc::into_raw()`: this value owns that
/// reference. It is given up only after a grace period that began after
/// `ptr` stopped pointing to it, so a borrow taken under an
/// [`RcuReadGuard`] stays valid for the guard's life.
pub(crate) struct RcuArc<T> {
    ptr: AtomicPtr<T>,
}

// SAFETY: it hands out `&T` to other threads and the `Arc<T>` may be
// dropped on any of them: like `Arc<T>`, it needs `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for RcuArc<T> {}
// SAFETY: as above; the pointer itself is an atomic.
unsafe impl<T: Send + Sync> Sync for RcuArc<T> {}

impl<T> RcuArc<T> {
    pub(crate) const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Publishes `arc` when nothing is published; otherwise gives it back.
    pub(crate) fn publish(&self, arc: Arc<T>) -> Result<(), Arc<T>> {
        let raw = Arc::into_raw(arc).cast_mut();
        // Release: the object is initialised before readers can find it.
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), raw, Ordering::Release, Ordering::Relaxed)
        {
            // INVARIANT: the reference is owned here now.
            Ok(_) => Ok(()),
            // SAFETY: `raw` came from `into_raw` above and was not stored.
            Err(_) => Err(unsafe { Arc::from_raw(raw) }),
        }
    }

    /// The published object, for as long as `_guard` lasts.
    pub(crate) fn get<'a>(&self, _guard: &'a RcuReadGuard) -> Option<&'a T> {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: non-null means a live reference owned by `self`, which is
        // dropped only after a grace period that `_guard` holds up (type
        // invariant).
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// A counted reference to the published object.
    pub(crate) fn get_arc(&self) -> Option<Arc<T>> {
        let guard = RcuReadGuard::new();
        let p = self.ptr.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: as in `get`: the reference `self` owns outlives `guard`.
        let borrow = unsafe { ArcBorrow::from_raw(p) };
        let arc = Arc::from(borrow);
        drop(guard);
        Some(arc)
    }

    /// Unpublishes the object when it is `which` (any object for `None`),
    /// waits for the readers that may still see it, and returns it.
    pub(crate) fn take(&self, which: Option<*const T>) -> Option<Arc<T>> {
        let old = match which {
            None => self.ptr.swap(ptr::null_mut(), Ordering::AcqRel),
            Some(w) => self
                .ptr
                .compare_exchange(
                    w.cast_mut(),
                    ptr::null_mut(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .unwrap_or(ptr::null_mut()),
        };
        if old.is_null() {
            return None;
        }
        synchronize();
        // SAFETY: `old` was owned by `self` and is no longer reachable; no
        // reader that found it is left after the grace period.
        Some(unsafe { Arc::from_raw(old) })
    }

    /// Whether something is published (a hint: it may change at once).
    pub(crate) fn is_published(&self) -> bool {
        !self.ptr.load(Ordering::Relaxed).is_null()
    }
}

impl<T> Drop for RcuArc<T> {
    fn drop(&mut self) {
        drop(self.take(None));
    }
}
