// SPDX-License-Identifier: GPL-2.0

//! VFIO_IOMMU_MAP_DMA (type1's `vfio_iommu_type1_map_dma()` and
//! `vfio_dma_do_map()`).

use crate::container::Container;
use crate::dma::{PROT_READ, PROT_WRITE};
use crate::instrument::{timed, Stat};
use crate::ioctl::read_fixed;
use crate::iova;
use crate::mm::Owner;
use crate::uapi::*;
use kernel::error::{code::*, Result};
use kernel::uaccess::UserPtr;

pub(crate) fn map_dma(container: &Container, arg: UserPtr) -> Result {
    let map: DmaMap = timed(Stat::MapArgs, 0, || read_fixed(arg))?;
    let mask = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;
    if map.flags & !mask != 0 {
        return Err(EINVAL);
    }
    let set_vaddr = map.flags & VFIO_DMA_MAP_FLAG_VADDR != 0;
    let mut prot = 0;
    if map.flags & VFIO_DMA_MAP_FLAG_WRITE != 0 {
        prot |= PROT_WRITE;
    }
    if map.flags & VFIO_DMA_MAP_FLAG_READ != 0 {
        prot |= PROT_READ;
    }
    // Exactly one of: a protection, or a vaddr update.
    if (prot != 0) == set_vaddr {
        return Err(EINVAL);
    }

    let mut inner = timed(Stat::MapLock, 0, || container.lock());
    let range = iova::check_map(map.iova, map.vaddr, map.size, inner.min_pgsize()).ok_or(EINVAL)?;
    let owner = timed(Stat::Owner, 0, Owner::current)?;
    if set_vaddr {
        return inner.update_vaddr(&range, map.vaddr, owner);
    }
    inner.add_dma(range, map.vaddr, prot, owner)
}
