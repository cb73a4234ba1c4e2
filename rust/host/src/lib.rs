//! Builds the kernel-independent files of the rvfio crate on the host so
//! that `cargo test` (run by `make host-test`) exercises them without a VM.
//! Each file is the very one the module compiles, included by path.
#![no_std]
#![allow(dead_code, unreachable_pub)]

#[path = "../../iova.rs"]
pub mod iova;

#[path = "../../caps.rs"]
pub mod caps;

#[path = "../../dirty.rs"]
pub mod dirty;

#[path = "../../runs.rs"]
pub mod runs;

#[path = "../../ring.rs"]
pub mod ring;
#[path = "../../s1_walk.rs"]
pub mod s1_walk;

#[path = "../../shadow_plan.rs"]
pub mod shadow_plan;
