// SPDX-License-Identifier: GPL-2.0

//! The emulated-IOMMU (mdev) interface: `pin_pages`, `unpin_pages`,
//! `dma_rw`, `register_device`/`unregister_device`, and the dma_unmap
//! notification that asks devices to drop their pins before an unmap.
//! Kernel drivers reach these through `vfio_pin_pages()`,
//! `vfio_unpin_pages()` and `vfio_dma_rw()`.

use crate::container::{Container, Inner};
use crate::domain::Group;
use crate::pin::PAGE_SHIFT;
use crate::vfio_device::VfioDevice;
use kernel::error::{code::*, Result};
use kernel::prelude::*;
use kernel::sync::lock::{mutex::MutexBackend, Guard};

/// `register_device`: devices without a dma_unmap callback are ignored.
pub(crate) fn register_device(c: &Container, dev: VfioDevice) {
    if !dev.has_dma_unmap() {
        return;
    }
    let n = {
        let mut devices = c.devices.lock();
        if devices
            .try_create_and_insert(dev.key(), dev, GFP_KERNEL)
            .is_err()
        {
            pr_err!("out of memory registering a device; its pins cannot be revoked\n");
        }
        devices.iter().count()
    };
    c.lock().set_registered_devices(n);
}

/// `unregister_device`.
pub(crate) fn unregister_device(c: &Container, dev: VfioDevice) {
    let n = {
        let mut devices = c.devices.lock();
        devices.remove(&(dev.key()));
        devices.iter().count()
    };
    c.lock().set_registered_devices(n);
}

/// type1's `vfio_notify_dma_unmap()`: asks every registered device to drop
/// its pins in `[iova, iova + size)`. Their callbacks call back into
/// `unpin_pages`, which takes the container lock, so the caller's guard is
/// released first and a new one returned.
pub(crate) fn notify_dma_unmap<'a>(
    c: &'a Container,
    inner: Guard<'a, Inner, MutexBackend>,
    iova: u64,
    size: u64,
) -> Guard<'a, Inner, MutexBackend> {
    drop(inner);
    {
        let devices = c.devices.lock();
        for dev in devices.values() {
            dev.dma_unmap(iova, size);
        }
    }
    c.lock()
}

/// `pin_pages`: pins `npage` pages from `iova` for a device of `group` and
/// stores their pfns. Returns `npage`; on error nothing stays pinned.
pub(crate) fn pin_pages(
    c: &Container,
    group: Group,
    iova: u64,
    npage: i32,
    prot: i32,
    pfns: &mut [u64],
) -> Result<i32> {
    if !c.v2 {
        return Err(EACCES);
    }
    let mut inner = c.lock();
    if inner.vaddr_invalid_count() != 0 {
        return Err(EBUSY);
    }
    // A device that pins must be able to give pages back on unmap.
    if inner.registered_devices() == 0 {
        return Err(EINVAL);
    }
    let n = usize::try_from(npage).map_err(|_| EINVAL)?;
    let pgshift = inner.min_pgshift();
    for (i, slot) in pfns.iter_mut().enumerate().take(n) {
        let page_iova = iova + ((i as u64) << PAGE_SHIFT);
        match pin_one(&mut inner, page_iova, prot, pgshift) {
            Ok(pfn) => *slot = pfn,
            Err(e) => {
                for j in 0..i {
                    let done = iova + ((j as u64) << PAGE_SHIFT);
                    if let Some(dma) = inner.dma_at_mut(done) {
                        dma.unpin_external(done);
                    }
                }
                return Err(e);
            }
        }
    }
    inner.promote_dirty_scope(&group);
    Ok(npage)
}

fn pin_one(inner: &mut Inner, iova: u64, prot: i32, pgshift: u32) -> Result<u64> {
    let tracking = inner.dirty_tracking();
    let dma = inner.dma_at_mut(iova).ok_or(EINVAL)?;
    if dma.prot() & prot != prot {
        return Err(EPERM);
    }
    let pfn = dma.pin_external(iova)?;
    if tracking {
        let page = (iova - dma.range().start) >> pgshift;
        dma.mark_dirty(page, 1);
    }
    Ok(pfn)
}

/// `unpin_pages`.
pub(crate) fn unpin_pages(c: &Container, iova: u64, npage: i32) {
    if !c.v2 {
        return;
    }
    let mut inner = c.lock();
    for i in 0..u64::try_from(npage).unwrap_or(0) {
        let page_iova = iova + (i << PAGE_SHIFT);
        match inner.dma_at_mut(page_iova) {
            Some(dma) => {
                dma.unpin_external(page_iova);
            }
            None => {
                pr_err!("unpin_pages outside any mapping at {:#x}\n", page_iova);
                break;
            }
        }
    }
}

/// `dma_rw`: copies `count` bytes between `buf` and the user memory mapped
/// at `iova`, mapping by mapping.
///
/// # Safety
///
/// `buf` is valid for reads and writes of `count` bytes.
pub(crate) unsafe fn dma_rw(
    c: &Container,
    iova: u64,
    buf: *mut u8,
    count: usize,
    write: bool,
) -> Result {
    let mut inner = c.lock();
    if inner.vaddr_invalid_count() != 0 {
        return Err(EBUSY);
    }
    let mut done = 0;
    while done < count {
        let at = iova + done as u64;
        let dma = inner.dma_at_mut(at).ok_or(EINVAL)?;
        // SAFETY: `done < count`, so `buf + done` stays inside the caller's
        // `count` bytes and has `count - done` bytes left (our contract).
        done += unsafe { dma.rw(at, buf.add(done), count - done, write)? };
    }
    Ok(())
}
