// SPDX-License-Identifier: GPL-2.0

//! VFIO_IOMMU_GET_INFO (type1's `vfio_iommu_type1_get_info()`): page sizes
//! and the capability chain, with type1's argsz negotiation.

use crate::caps::{InfoCaps, INFO_SIZE};
use crate::container::Container;
use crate::uapi::*;
use kernel::error::{code::*, Result};
use kernel::prelude::*;
use kernel::uaccess::{UserPtr, UserSlice};

/// The part of `struct vfio_iommu_type1_info` every caller must provide.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct InfoHead {
    argsz: u32,
    flags: u32,
    iova_pgsizes: u64,
}
// SAFETY: plain integers without padding.
unsafe impl kernel::types::FromBytes for InfoHead {}
const _: () = assert!(core::mem::size_of::<InfoHead>() == INFO_MINSZ);

pub(crate) fn get_info(container: &Container, arg: UserPtr) -> Result {
    let head: InfoHead = crate::ioctl::read_fixed(arg)?;
    let argsz = head.argsz as usize;

    let mut info = Info {
        argsz: head.argsz,
        flags: VFIO_IOMMU_INFO_PGSIZES,
        ..Info::default()
    };
    // Build the chain under the lock, copy it out after.
    let chain = {
        let inner = container.lock();
        info.iova_pgsizes = inner.pgsize_bitmap();
        let groups = match container.nesting {
            true => inner.nest().cap_groups()?,
            false => KVec::new(),
        };
        let caps = InfoCaps {
            migration_pgsize: Some(inner.min_pgsize()),
            dma_avail: inner.dma_avail(),
            iovas: inner.valid_iovas(),
            nesting: container
                .nesting
                .then(|| crate::nesting_ioctl::info_cap(&groups)),
        };
        let mut buf = KVec::new();
        buf.extend_with(caps.len(), 0u8, GFP_KERNEL)?;
        caps.write(&mut buf);
        buf
    };

    if !chain.is_empty() {
        info.flags |= VFIO_IOMMU_INFO_CAPS;
        let needed = INFO_SIZE + chain.len();
        if argsz < needed {
            // Tell the caller how much to provide; copy no capability.
            info.argsz = u32::try_from(needed).map_err(|_| EINVAL)?;
        } else {
            UserSlice::new(arg + INFO_SIZE, chain.len())
                .writer()
                .write_slice(&chain)?;
            info.cap_offset = INFO_SIZE as u32;
        }
    }

    // Write back at most argsz bytes of the struct.
    let bytes = info_bytes(&info);
    let n = argsz.min(INFO_SIZE);
    UserSlice::new(arg, n).writer().write_slice(&bytes[..n])
}

fn info_bytes(info: &Info) -> [u8; INFO_SIZE] {
    let mut b = [0u8; INFO_SIZE];
    b[0..4].copy_from_slice(&info.argsz.to_ne_bytes());
    b[4..8].copy_from_slice(&info.flags.to_ne_bytes());
    b[8..16].copy_from_slice(&info.iova_pgsizes.to_ne_bytes());
    b[16..20].copy_from_slice(&info.cap_offset.to_ne_bytes());
    b[20..24].copy_from_slice(&info.pad.to_ne_bytes());
    b
}
