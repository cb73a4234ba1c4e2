// SPDX-License-Identifier: GPL-2.0

//! The backend's entry points: the functions `glue.c`'s
//! `vfio_iommu_driver_ops` table calls, and the registration with vfio core.

use crate::bindings;
use crate::container::Container;
use crate::domain::Group;
use crate::emulated;
use crate::ioctl;
use crate::uapi::{
    VFIO_CHECK_EXTENSION, VFIO_TYPE1V2_IOMMU, VFIO_TYPE1_IOMMU, VFIO_TYPE1_NESTING_IOMMU,
};
use crate::vfio_device::VfioDevice;
use core::ffi::c_void;
use core::pin::Pin;
use kernel::error::{code::*, to_result, Result};
use kernel::prelude::*;
use kernel::types::ForeignOwnable;

/// `enum vfio_group_type`'s VFIO_IOMMU: a group behind a real IOMMU.
const VFIO_IOMMU: i32 = bindings::vfio_group_type_VFIO_IOMMU as i32;

/// rvfio's registration as a VFIO IOMMU backend; unregisters on drop.
pub(crate) struct Registration(());

impl Registration {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: registers the static ops table in glue.c; paired with the
        // unregister in `drop`.
        to_result(unsafe { bindings::rvfio_glue_register() })?;
        Ok(Self(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: registered in `new`. vfio core holds a module reference
        // for every container using rvfio, so none is left at this point.
        unsafe { bindings::rvfio_glue_unregister() };
    }
}

type ContainerBox = Pin<KBox<Container>>;

/// Borrows the container behind `data`.
///
/// # Safety
///
/// `data` must come from [`rvfio_rs_open`] and not have been released.
unsafe fn container<'a>(data: *mut c_void) -> Pin<&'a Container> {
    // SAFETY: guaranteed by the caller.
    unsafe { ContainerBox::borrow(data) }
}

/// `ops->open`: a new container for IOMMU type `type_`.
#[no_mangle]
extern "C" fn rvfio_rs_open(type_: core::ffi::c_ulong, data: *mut *mut c_void) -> i32 {
    let (v2, nesting) = match type_ {
        VFIO_TYPE1_IOMMU => (false, false),
        VFIO_TYPE1V2_IOMMU => (true, false),
        // type1v2 for stage 2, plus stage-1 binds (nesting.rs).
        VFIO_TYPE1_NESTING_IOMMU => (true, true),
        _ => return EINVAL.to_errno(),
    };
    let revoker = match crate::revoke::Revoker::new() {
        Ok(r) => r,
        Err(e) => return e.to_errno(),
    };
    let faults = match crate::faults::FaultHub::new() {
        Ok(f) => f,
        Err(e) => return e.to_errno(),
    };
    match KBox::pin_init(Container::new(v2, nesting, revoker, faults), GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: `data` is the valid out-pointer of glue.c's shim.
            unsafe { *data = b.into_foreign().cast_mut() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `ops->release`: the last group left, or SET_IOMMU failed.
#[no_mangle]
extern "C" fn rvfio_rs_release(data: *mut c_void) {
    // SAFETY: vfio core passes the `data` from `open` once, at the end.
    drop(unsafe { ContainerBox::from_foreign(data) });
}

/// `ops->ioctl`; `data` is NULL when vfio core polls for extensions.
#[no_mangle]
extern "C" fn rvfio_rs_ioctl(
    data: *mut c_void,
    cmd: u32,
    arg: core::ffi::c_ulong,
) -> core::ffi::c_long {
    if data.is_null() {
        return match cmd {
            VFIO_CHECK_EXTENSION => ioctl::check_extension(None, arg) as _,
            _ => EINVAL.to_errno() as _,
        };
    }
    // SAFETY: non-null `data` comes from `open` and is live while vfio core
    // holds the container.
    let c = unsafe { container(data) };
    match ioctl::dispatch(&c, cmd, arg as usize) {
        Ok(v) => v as _,
        Err(e) => e.to_errno() as _,
    }
}

/// `ops->attach_group`.
#[no_mangle]
extern "C" fn rvfio_rs_attach_group(
    data: *mut c_void,
    group: *mut bindings::iommu_group,
    type_: i32,
) -> i32 {
    // SAFETY: `data` is live (see `rvfio_rs_ioctl`).
    let c = unsafe { container(data) };
    // SAFETY: vfio core keeps `group` alive until it is detached; the
    // container forgets it in `detach_group`.
    let group = unsafe { Group::from_raw(group) };
    let result = if type_ == VFIO_IOMMU {
        c.lock().attach_group(group)
    } else {
        c.lock().attach_emulated(group)
    };
    match result {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `ops->detach_group`.
#[no_mangle]
extern "C" fn rvfio_rs_detach_group(data: *mut c_void, group: *mut bindings::iommu_group) {
    // SAFETY: `data` is live (see `rvfio_rs_ioctl`).
    let c = unsafe { container(data) };
    // SAFETY: the group was attached and is still alive during this call.
    let group = unsafe { Group::from_raw(group) };
    c.lock().detach_group(group);
}

/// `ops->pin_pages` (through glue.c, which turns pfns into pages).
#[no_mangle]
extern "C" fn rvfio_rs_pin_pages(
    data: *mut c_void,
    group: *mut bindings::iommu_group,
    iova: u64,
    npage: i32,
    prot: i32,
    pfns: *mut u64,
) -> i32 {
    let Ok(n) = usize::try_from(npage) else {
        return EINVAL.to_errno();
    };
    if n == 0 || pfns.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: `data` is live (see `rvfio_rs_ioctl`).
    let c = unsafe { container(data) };
    // SAFETY: the caller's group is attached to this container.
    let group = unsafe { Group::from_raw(group) };
    // SAFETY: vfio_pin_pages() passes an array of `npage` entries.
    let pfns = unsafe { core::slice::from_raw_parts_mut(pfns, n) };
    match emulated::pin_pages(&c, group, iova, npage, prot, pfns) {
        Ok(n) => n,
        Err(e) => e.to_errno(),
    }
}

/// `ops->unpin_pages`.
#[no_mangle]
extern "C" fn rvfio_rs_unpin_pages(data: *mut c_void, iova: u64, npage: i32) {
    // SAFETY: `data` is live (see `rvfio_rs_ioctl`).
    let c = unsafe { container(data) };
    emulated::unpin_pages(&c, iova, npage);
}

/// `ops->register_device`.
#[no_mangle]
extern "C" fn rvfio_rs_register_device(data: *mut c_void, vdev: *mut bindings::vfio_device) {
    // SAFETY: `data` is live (see `rvfio_rs_ioctl`).
    let c = unsafe { container(data) };
    // SAFETY: vfio core unregisters the device before it goes away.
    emulated::register_device(&c, unsafe { VfioDevice::from_raw(vdev) });
}

/// `ops->unregister_device`.
#[no_mangle]
extern "C" fn rvfio_rs_unregister_device(data: *mut c_void, vdev: *mut bindings::vfio_device) {
    // SAFETY: `data` is live (see `rvfio_rs_ioctl`).
    let c = unsafe { container(data) };
    // SAFETY: the device is still alive during this call.
    emulated::unregister_device(&c, unsafe { VfioDevice::from_raw(vdev) });
}

/// `ops->dma_rw`.
#[no_mangle]
extern "C" fn rvfio_rs_dma_rw(
    data: *mut c_void,
    iova: u64,
    buf: *mut c_void,
    count: usize,
    write: bool,
) -> i32 {
    // SAFETY: `data` is live (see `rvfio_rs_ioctl`).
    let c = unsafe { container(data) };
    // SAFETY: vfio_dma_rw() passes a kernel buffer of `count` bytes.
    match unsafe { emulated::dma_rw(&c, iova, buf.cast(), count, write) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
