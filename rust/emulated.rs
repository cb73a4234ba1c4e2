// SPDX-License-Identifier: GPL-2.0

//! The emulated-IOMMU (mdev) interface: `pin_pages`, `unpin_pages`,
//! `dma_rw`, `register_device`/`unregister_device`, and the dma_unmap
//! notification that asks devices to drop their pins before an unmap.
//! Kernel drivers reach these through `vfio_pin_pages()`,
//! `vfio_unpin_pages()` and `vfio_dma_rw()`.

use crate::container::{Container, Inner};
use crate::domain::Group;
use crate::faults::{self, AccessError, Miss};
use crate::nesting;
use crate::pin::PAGE_SHIFT;
use crate::ring;
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
/// stores their pfns. Returns `npage`; on error nothing stays pinned. A
/// page that is not mapped, or not with `prot`, is a fault of the device
/// (`faults.rs`): recorded in the fault ring, or a page request after whose
/// success the pin is tried again.
pub(crate) fn pin_pages(
    c: &Container,
    group: Group,
    iova: u64,
    npage: i32,
    prot: i32,
    pfns: &mut [u64],
) -> Result<i32> {
    let mut asked = None;
    loop {
        match pin_pages_once(c, group, iova, npage, prot, pfns) {
            Ok(n) => return Ok(n),
            Err(AccessError::Err(e)) => return Err(e),
            Err(AccessError::Miss(miss)) => {
                // Without the container's lock: a page request waits.
                let hub = c.lock().faults().clone();
                hub.translation_fault(&miss.by(Some(group)), &mut asked)?;
            }
        }
    }
}

fn pin_pages_once(
    c: &Container,
    group: Group,
    iova: u64,
    npage: i32,
    prot: i32,
    pfns: &mut [u64],
) -> Result<i32, AccessError> {
    if !c.v2 {
        return Err(EACCES.into());
    }
    let mut inner = c.lock();
    if inner.vaddr_invalid_count() != 0 {
        return Err(EBUSY.into());
    }
    // A device that pins must be able to give pages back on unmap.
    if inner.registered_devices() == 0 {
        return Err(EINVAL.into());
    }
    let n = usize::try_from(npage).map_err(|_| EINVAL)?;
    let pgshift = inner.min_pgshift();
    // (The pins made before a miss are undone below before the miss is
    // reported: user space may unmap while a page request waits.)
    // A group bound to a stage-1 table pins stage-1 IOVAs (nesting.rs).
    let s1 = inner.nest().table_of(&group);
    for (i, slot) in pfns.iter_mut().enumerate().take(n) {
        let page_iova = iova + ((i as u64) << PAGE_SHIFT);
        let pinned = match &s1 {
            Some((table, id)) => pin_s1(&mut inner, table, *id, page_iova, prot, pgshift),
            // Pins are given back by IOVA: one taken through stage 1 at the
            // same IOVA would be ambiguous.
            None if inner.nest().s1_pin(page_iova).is_some() => Err(EBUSY.into()),
            None => pin_one(&mut inner, page_iova, prot, pgshift),
        };
        match pinned {
            Ok(pfn) => *slot = pfn,
            Err(e) => {
                for j in 0..i {
                    unpin_one(&mut inner, iova + ((j as u64) << PAGE_SHIFT));
                }
                return Err(e);
            }
        }
    }
    inner.promote_dirty_scope(&group);
    Ok(npage)
}

/// One pin of stage-1 `iova` by a device of bound group `id`: through the
/// pin already taken there (the device's IOTLB, until an invalidation asks
/// for it back), or through a fresh translation.
fn pin_s1(
    inner: &mut Inner,
    table: &crate::s1_walk::Table,
    id: u32,
    iova: u64,
    prot: i32,
    pgshift: u32,
) -> Result<u64, AccessError> {
    let write = prot & crate::dma::PROT_WRITE != 0;
    let (gpa, writable) = match inner.nest().s1_pin(iova) {
        Some((gpa, writable)) => (gpa, writable),
        None => {
            if inner
                .dma_at_mut(iova)
                .is_some_and(|d| d.has_external_pin_at(iova))
            {
                return Err(EBUSY.into());
            }
            let t = nesting::translate(inner, table, id, iova, write)?;
            (t.gpa & !((1u64 << PAGE_SHIFT) - 1), t.writable)
        }
    };
    if write && !writable {
        let access = faults::access_of_prot(prot);
        return Err(Miss::permission(iova, access).stage1().into());
    }
    let pfn = pin_one(inner, gpa, prot, pgshift)?;
    if let Err(e) = inner.nest_mut().s1_pin_add(iova, gpa, writable) {
        if let Some(dma) = inner.dma_at_mut(gpa) {
            dma.unpin_external(gpa);
        }
        return Err(e.into());
    }
    Ok(pfn)
}

/// Gives back one pin at `iova`: one taken through stage 1 if there is
/// one, otherwise a direct one. Returns whether `iova` was pinned.
fn unpin_one(inner: &mut Inner, iova: u64) -> bool {
    let gpa = inner.nest_mut().s1_pin_drop(iova).unwrap_or(iova);
    match inner.dma_at_mut(gpa) {
        Some(dma) => dma.unpin_external(gpa),
        None => false,
    }
}

fn pin_one(inner: &mut Inner, iova: u64, prot: i32, pgshift: u32) -> Result<u64, AccessError> {
    let tracking = inner.dirty_tracking();
    let access = faults::access_of_prot(prot);
    let dma = inner
        .dma_at_mut(iova)
        .ok_or(Miss::not_mapped(iova, access))?;
    if dma.prot() & prot != prot {
        return Err(Miss::permission(iova, access).into());
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
        if !unpin_one(&mut inner, page_iova) && inner.dma_at_mut(page_iova).is_none() {
            pr_err!("unpin_pages outside any mapping at {:#x}\n", page_iova);
            break;
        }
    }
}

/// `dma_rw`: copies `count` bytes between `buf` and the user memory mapped
/// at `iova`, mapping by mapping. A byte that is not mapped, or not for
/// the access, is a fault of the device (see [`pin_pages`]); after a
/// successful page request the copy starts over.
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
    let mut asked = None;
    loop {
        // SAFETY: our contract.
        match unsafe { dma_rw_once(c, iova, buf, count, write) } {
            Ok(()) => return Ok(()),
            Err(AccessError::Err(e)) => return Err(e),
            Err(AccessError::Miss(miss)) => {
                // vfio_dma_rw() does not say which device calls; with one
                // emulated-IOMMU group it can only be that one's.
                let (hub, group) = {
                    let inner = c.lock();
                    (inner.faults().clone(), inner.sole_emulated_group())
                };
                hub.translation_fault(&miss.by(group), &mut asked)?;
            }
        }
    }
}

/// # Safety
///
/// As for [`dma_rw`].
unsafe fn dma_rw_once(
    c: &Container,
    iova: u64,
    buf: *mut u8,
    count: usize,
    write: bool,
) -> Result<(), AccessError> {
    let mut inner = c.lock();
    if inner.vaddr_invalid_count() != 0 {
        return Err(EBUSY.into());
    }
    let access = if write {
        ring::ACCESS_WRITE
    } else {
        ring::ACCESS_READ
    };
    // A bound emulated-IOMMU group's devices address stage-1 IOVAs; it is
    // then the container's only emulated group (nesting.rs).
    let s1 = inner.nest().emulated_table();
    let mut done = 0;
    while done < count {
        let at = iova + done as u64;
        let (at, chunk) = match &s1 {
            None => (at, count - done),
            Some((table, id)) => {
                let t = nesting::translate(&mut inner, table, *id, at, write)?;
                let chunk = usize::try_from(t.bytes).unwrap_or(usize::MAX);
                (t.gpa, chunk.min(count - done))
            }
        };
        let dma = inner.dma_at_mut(at).ok_or(Miss::not_mapped(at, access))?;
        // `Dma::rw`'s own check (type1's): reads need READ, writes both.
        let prot = dma.prot();
        if prot & crate::dma::PROT_READ == 0 || (write && prot & crate::dma::PROT_WRITE == 0) {
            return Err(Miss::permission(at, access).into());
        }
        // SAFETY: `done < count` and `chunk <= count - done`, so `buf + done`
        // has at least `chunk` bytes left of the caller's `count` (our
        // contract).
        done += unsafe { dma.rw(at, buf.add(done), chunk, write)? };
    }
    Ok(())
}
