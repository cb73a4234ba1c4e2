// SPDX-License-Identifier: GPL-2.0

//! Raw bindings, generated at build time by rvfio's own bindgen run (see
//! `Kbuild`, `bindings_helper.h`, `bindgen_flags`) into
//! `build/module/rust/bindings_generated.rs`.
//!
//! Nothing outside the wrapper layer may use this module directly: the
//! wrappers are `domain.rs` and `sg_map.rs` (IOMMU domains, groups,
//! scatterlists), `mm.rs` (mm references, the mmap lock, vmas, locked_vm),
//! `pin.rs` and `unpin.rs` (GUP and its release), `watch.rs` (mmu interval
//! notifiers), `vfio_device.rs`, `revoke.rs`'s `EventFd`, `backend.rs`
//! (the ops table's entry points and module parameters), `uapi.rs` (the
//! ioctl structures), and for the fault ring `fault_ring.rs`, `faults.rs`,
//! `irq_lock.rs` and `rcu.rs`.

#![allow(
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]

// The kernel crate maps these to usize/isize; bindgen_parameters blocklists them.
type __kernel_size_t = usize;
type __kernel_ssize_t = isize;
type __kernel_ptrdiff_t = isize;

include!("bindings_generated.rs");
