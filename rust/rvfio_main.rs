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
//! - `nesting.rs` (+ `nesting_ioctl.rs`): the nesting container's stage-1
//!   binds; `shadow.rs`: a bound group's shadow domain; `stage2.rs`:
//!   stage 2 as the walker sees it.
//! - `iova.rs`, `caps.rs`, `dirty.rs`, `s1_walk.rs`, `shadow_plan.rs`: pure
//!   logic, also tested on the host.
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
mod get_info;
mod ioctl;
mod iova;
mod map_dma;
mod mm;
mod nesting;
mod nesting_ioctl;
mod pfnmap_ioctl;
mod pin;
mod revoke;
mod s1_walk;
mod shadow;
mod shadow_plan;
mod stage2;
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
        pr_info!("registered as a VFIO IOMMU backend (type1, type1v2, nesting)\n");
        Ok(Self {
            _registration: registration,
        })
    }
}
