// SPDX-License-Identifier: GPL-2.0

//! rvfio: a VFIO IOMMU backend for Linux 6.12, a drop-in replacement for
//! `vfio_iommu_type1`.
//!
//! Where things are (one hop from the ioctl or op name):
//! - `backend.rs`: the ops vfio core calls (open, release, ioctl,
//!   attach_group, detach_group) and the registration.
//! - `ioctl.rs`: ioctl dispatch, CHECK_EXTENSION, argument reading.
//! - `map_dma.rs`, `unmap_dma.rs`, `get_info.rs`: one ioctl each.
//! - `container.rs`: per-container state (domains, groups, mappings).
//! - `dma.rs`: one mapping and its pinned runs; `pin.rs`: pinning;
//!   `mm.rs`: locked_vm accounting; `domain.rs`: IOMMU domains and groups.
//! - `revoke.rs`: PFNMAP revocation; `pfnmap_ioctl.rs`: its ioctls.
//! - `emulated.rs`: the mdev path (pin_pages, dma_rw, dma_unmap callbacks).
//! - The fault ring: `fault_ioctl.rs` (RVFIO_IOMMU_FAULT_RING),
//!   `faults.rs` (per container: the IOMMU fault handler, rvfio's own
//!   translation faults, page requests), `fault_ring.rs` (the ring, its
//!   memory and fd), `irq_lock.rs`, `rcu.rs`.
//! - `iova.rs`, `caps.rs`, `dirty.rs`, `ring.rs`: pure logic, also tested on
//!   the host.
//! - `bindings.rs` + `glue.c`: the only places that touch C directly.

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
mod ioctl;
mod iova;
mod irq_lock;
mod map_dma;
mod mm;
mod pfnmap_ioctl;
mod pin;
mod rcu;
mod revoke;
mod ring;
mod uapi;
mod unmap_dma;

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
        pr_info!("registered as a VFIO IOMMU backend (type1, type1v2)\n");
        Ok(Self {
            _registration: registration,
        })
    }
}
