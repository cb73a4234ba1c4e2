// SPDX-License-Identifier: GPL-2.0

//! rvfio: a VFIO IOMMU backend for Linux 6.12, a drop-in replacement for
//! `vfio_iommu_type1`.
//!
//! Where things are (one hop from the ioctl or op name):
//! - `backend.rs`: the ops vfio core calls (open, release, ioctl,
//!   attach_group, detach_group, the mdev ops) and the registration.
//! - `ioctl.rs`: ioctl dispatch, CHECK_EXTENSION, argument reading.
//! - `map_dma.rs`, `unmap_dma.rs`, `get_info.rs`, `dirty_pages.rs`,
//!   `pfnmap_ioctl.rs`, `owner_ioctl.rs`: one ioctl (or two) each.
//! - `container.rs`: per-container state (domains, groups, mappings).
//! - `dma.rs`: one mapping and its pinned runs.
//! - Pinning, from a user range to IOMMU mappings and back: `pin.rs` (which
//!   GUP path), `pfnmap.rs` (VM_PFNMAP lookup with follow-fault), `runs.rs`
//!   (pages into physically contiguous runs), `sg_map.rs` (runs into
//!   `iommu_map_sg()` batches), `unpin.rs` (releasing them).
//! - `mm.rs`: the owning process, mm references, the mmap lock, vmas and
//!   locked_vm accounting.
//! - `domain.rs`: IOMMU domains and groups; `vfio_device.rs`: registered
//!   emulated-IOMMU devices; `emulated.rs`: the mdev pin/dma_rw path.
//! - `revoke.rs`: PFNMAP revocation; `watch.rs`: the mmu interval notifier.
//! - `owner_change.rs` (+ `owner_ioctl.rs`): the DMA owner change.
//! - The nesting container: `nesting.rs` (+ `nesting_ioctl.rs`): stage-1
//!   binds; `shadow.rs`: a bound group's shadow domain; `stage2.rs`:
//!   stage 2 as the walker sees it.
//! - `user_bitmap.rs`: dirty bitmaps in user memory.
//! - The fault ring: `fault_ioctl.rs` (RVFIO_IOMMU_FAULT_RING),
//!   `faults.rs` (per container: the IOMMU fault handler, rvfio's own
//!   translation faults, page requests), `fault_ring.rs` (the ring, its
//!   memory and fd), `irq_lock.rs`, `rcu.rs`.
//! - `instrument.rs`: timing for `make bench`'s analysis mode (compiled in
//!   only with `--cfg rvfio_instrument`).
//! - Pure logic, also tested on the host (`rust/host`): `iova.rs`,
//!   `caps.rs`, `dirty.rs`, `runs.rs`, `ring.rs`, `s1_walk.rs`,
//!   `shadow_plan.rs`.
//! - `bindings.rs` + `glue.c`: the only places that touch C directly
//!   (`glue.c` says what it holds and why each part must be C).

use kernel::prelude::*;

mod backend;
mod bindings;
mod caps;
mod container;
mod dirty;
mod dirty_pages;
mod dma;
mod domain;
mod emulated;
mod fault_ioctl;
mod fault_ring;
mod faults;
mod get_info;
mod instrument;
mod ioctl;
mod iova;
mod irq_lock;
mod map_dma;
mod mm;
mod nesting;
mod nesting_ioctl;
mod owner_change;
mod owner_ioctl;
mod pfnmap;
mod pfnmap_ioctl;
mod pin;
mod rcu;
mod revoke;
mod ring;
mod runs;
mod s1_walk;
mod sg_map;
mod shadow;
mod shadow_plan;
mod stage2;
mod uapi;
mod unmap_dma;
mod unpin;
mod user_bitmap;
mod vfio_device;
mod watch;

module! {
    type: Rvfio,
    name: "rvfio",
    author: "rvfio developers",
    description: "VFIO IOMMU backend (type1-compatible) in Rust",
    license: "GPL",
}

struct Rvfio {
    _registration: backend::Registration,
}

impl kernel::Module for Rvfio {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let registration = backend::Registration::new()?;
        pr_info!("registered as a VFIO IOMMU backend (type1, type1v2, nesting)\n");
        Ok(Self {
            _registration: registration,
        })
    }
}
