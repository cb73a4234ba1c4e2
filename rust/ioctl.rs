// SPDX-License-Identifier: GPL-2.0

//! Container ioctl dispatch and the argument-reading rule every handler
//! follows: read `argsz` alone, refuse it when it is below the fixed size,
//! and only then read the fixed part. Nothing past `argsz` is ever read or
//! written. (type1 reads the fixed part before looking at `argsz`; the
//! errno is the same, EINVAL, unless that memory is unreadable.)

use crate::container::Container;
use crate::instrument::{timed, Stat};
use crate::uapi::*;
use crate::{
    dirty_pages, fault_ioctl, get_info, map_dma, nesting_ioctl, owner_ioctl, pfnmap_ioctl,
    unmap_dma,
};
use core::mem::size_of;
use kernel::error::{code::*, Result};
use kernel::types::FromBytes;
use kernel::uaccess::{UserPtr, UserSlice};

/// Reads the fixed part `T` of an ioctl argument that starts with `u32
/// argsz`. EINVAL when `argsz` is smaller than `T`, EFAULT on a bad pointer.
pub(crate) fn read_fixed<T: FromBytes>(arg: UserPtr) -> Result<T> {
    let argsz: u32 = UserSlice::new(arg, size_of::<u32>()).reader().read()?;
    if (argsz as usize) < size_of::<T>() {
        return Err(EINVAL);
    }
    UserSlice::new(arg, size_of::<T>()).reader().read()
}

/// Answers VFIO_CHECK_EXTENSION; `container` is `None` when vfio core polls
/// the backends for a container that has none yet.
pub(crate) fn check_extension(container: Option<&Container>, ext: u64) -> isize {
    match ext {
        VFIO_TYPE1_IOMMU | VFIO_TYPE1V2_IOMMU | VFIO_UNMAP_ALL => 1,
        VFIO_DMA_CC_IOMMU => match container {
            None => 0,
            Some(c) => c.lock().all_domains_coherent() as isize,
        },
        // Emulated-IOMMU devices cannot pin or read while vaddrs change.
        VFIO_UPDATE_VADDR => container.is_some_and(|c| !c.lock().has_emulated()) as isize,
        // The nesting container: type1v2 plus stage-1 binds by software
        // nesting, which needs nothing of the IOMMU (nesting.rs).
        VFIO_TYPE1_NESTING_IOMMU => 1,
        // PFNMAP mappings are revoked when their memory goes (revoke.rs).
        RVFIO_PFNMAP_REVOKE => 1,
        // DMA faults in a ring user space maps (faults.rs).
        RVFIO_FAULT_RING => 1,
        // One call moves every mapping to the caller (owner_change.rs).
        RVFIO_DMA_OWNER => 1,
        _ => 0,
    }
}

/// Dispatches one container ioctl. Returns the value for user space.
pub(crate) fn dispatch(container: &Container, cmd: u32, arg: usize) -> Result<isize> {
    match cmd {
        VFIO_CHECK_EXTENSION => Ok(check_extension(Some(container), arg as u64)),
        VFIO_IOMMU_GET_INFO => get_info::get_info(container, arg).map(|()| 0),
        VFIO_IOMMU_MAP_DMA => {
            timed(Stat::IoctlMap, 0, || map_dma::map_dma(container, arg)).map(|()| 0)
        }
        VFIO_IOMMU_UNMAP_DMA => {
            timed(Stat::IoctlUnmap, 0, || unmap_dma::unmap_dma(container, arg)).map(|()| 0)
        }
        VFIO_IOMMU_DIRTY_PAGES => dirty_pages::dirty_pages(container, arg).map(|()| 0),
        RVFIO_IOMMU_DMA_QUERY => pfnmap_ioctl::dma_query(container, arg).map(|()| 0),
        RVFIO_IOMMU_REVOKE_EVENTFD => pfnmap_ioctl::revoke_eventfd(container, arg).map(|()| 0),
        RVFIO_IOMMU_FAULT_RING => fault_ioctl::create_ring(container, arg),
        RVFIO_IOMMU_CHANGE_DMA_OWNER => owner_ioctl::change_dma_owner(container, arg).map(|()| 0),
        RVFIO_IOMMU_NESTING_BIND => nesting_ioctl::bind(container, arg).map(|()| 0),
        RVFIO_IOMMU_NESTING_UNBIND => nesting_ioctl::unbind(container, arg).map(|()| 0),
        RVFIO_IOMMU_NESTING_INVALIDATE => nesting_ioctl::invalidate(container, arg).map(|()| 0),
        _ => Err(ENOTTY),
    }
}
