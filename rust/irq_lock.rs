// SPDX-License-Identifier: GPL-2.0

//! A lock for data shared with hard interrupt handlers: a `raw_spinlock_t`
//! taken with `raw_spin_lock_irqsave()` (`include/linux/spinlock.h`), as a
//! [`kernel::sync::lock::Backend`], so it is used like the kernel crate's
//! `SpinLock` (whose 6.12 backend leaves interrupts on).
//!
//! Why raw and with interrupts off: the fault ring's producer runs in the
//! IOMMU's fault interrupt (VT-d's `dmar_fault()` is `IRQF_NO_THREAD`), in
//! IRQ threads (AMD-Vi) and in process context (rvfio's own faults). With
//! interrupts left on, a fault interrupt on the CPU holding the lock would
//! spin forever; and a `spinlock_t` becomes a sleeping lock on PREEMPT_RT,
//! which a non-threaded handler must not take.

use crate::bindings;
use kernel::sync::lock::{Backend, Lock};

/// A lock whose holder runs with local interrupts disabled.
pub(crate) type IrqSpinLock<T> = Lock<T, IrqSpinLockBackend>;

/// The backend: `raw_spinlock_t`, irqsave/irqrestore.
pub(crate) struct IrqSpinLockBackend;

// SAFETY: `raw_spin_lock_irqsave()` gives mutual exclusion between CPUs and,
// with interrupts off, against handlers on the holder's CPU; `relock` is the
// default, which locks the same way.
unsafe impl Backend for IrqSpinLockBackend {
    type State = bindings::raw_spinlock;
    /// The interrupt flags to restore.
    type GuardState = kernel::ffi::c_ulong;

    unsafe fn init(
        ptr: *mut Self::State,
        name: *const kernel::ffi::c_char,
        key: *mut kernel::bindings::lock_class_key,
    ) {
        // SAFETY: the caller passes a lock to initialise and a name and key
        // that live forever; both bindings name the same C type.
        unsafe { bindings::rvfio_raw_spin_lock_init(ptr, name, key.cast()) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: the caller initialised the lock.
        unsafe { bindings::rvfio_raw_spin_lock_irqsave(ptr) }
    }

    unsafe fn unlock(ptr: *mut Self::State, flags: &Self::GuardState) {
        // SAFETY: the caller holds the lock, taken by `lock`, which returned
        // `flags`.
        unsafe { bindings::rvfio_raw_spin_unlock_irqrestore(ptr, *flags) }
    }
}

/// A pin-initialiser for an [`IrqSpinLock`] with its own lockdep class.
#[macro_export]
macro_rules! new_irq_spinlock {
    ($inner:expr, $name:literal) => {
        $crate::irq_lock::IrqSpinLock::new(
            $inner,
            kernel::c_str!($name),
            kernel::static_lock_class!(),
        )
    };
}
