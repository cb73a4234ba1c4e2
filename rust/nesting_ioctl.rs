// SPDX-License-Identifier: GPL-2.0

//! The nesting container's ioctls (`include/uapi/linux/rvfio.h`):
//! RVFIO_IOMMU_NESTING_BIND, _UNBIND and _INVALIDATE, and its GET_INFO
//! capability. Arguments are read as every rvfio ioctl reads them (`argsz`
//! first, nothing past it); iommufd's payloads are read only up to their
//! stated length, with `copy_struct_from_user()`'s rule for bytes past the
//! struct (they must be 0).

use crate::caps::{NestingCap, NestingGroup};
use crate::container::{Container, Inner};
use crate::emulated;
use crate::ioctl::read_fixed;
use crate::iova::IovaRange;
use crate::nesting::{self, BindArgs};
use crate::pin::PAGE_SIZE;
use crate::s1_walk::Table;
use crate::uapi::*;
use core::mem::size_of;
use kernel::error::{code::*, Result};
use kernel::sync::lock::{mutex::MutexBackend, Guard};
use kernel::uaccess::{UserPtr, UserSlice, UserSliceReader};

/// Most invalidation entries one call takes (iommufd's limit).
const MAX_ENTRIES: u32 = 1 << 19;

/// `offsetof(struct rvfio_nesting_bind, out_flags)`.
const BIND_OUT_FLAGS: usize = 20;
/// `offsetof(struct rvfio_nesting_invalidate, entry_num)`.
const INVALIDATE_ENTRY_NUM: usize = 28;

/// Reads the `len`-byte payload `T` at `ptr`: EINVAL below `T`'s size,
/// E2BIG past a page or when a byte past `T` is not 0.
fn read_payload<T: kernel::types::FromBytes>(ptr: u64, len: usize) -> Result<T> {
    if len < size_of::<T>() {
        return Err(EINVAL);
    }
    if len > PAGE_SIZE as usize {
        return Err(E2BIG);
    }
    let ptr = UserPtr::try_from(ptr).map_err(|_| EFAULT)?;
    let mut reader = UserSlice::new(ptr, len).reader();
    let v: T = reader.read()?;
    check_zero(&mut reader)?;
    Ok(v)
}

/// The rest of `reader` is all zero bytes (E2BIG otherwise).
fn check_zero(reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 64];
    while !reader.is_empty() {
        let n = reader.len().min(buf.len());
        reader.read_slice(&mut buf[..n])?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(E2BIG);
        }
    }
    Ok(())
}

/// RVFIO_IOMMU_NESTING_BIND.
pub(crate) fn bind(container: &Container, arg: UserPtr) -> Result {
    if !container.nesting {
        return Err(ENOTTY);
    }
    let b: NestingBind = read_fixed(arg)?;
    if b.flags != 0 || b.data_type != IOMMU_HWPT_DATA_VTD_S1 {
        return Err(EINVAL);
    }
    let s1: HwptVtdS1 = read_payload(b.data_uptr, b.data_len as usize)?;
    let known = IOMMU_VTD_S1_SRE | IOMMU_VTD_S1_WPE | IOMMU_VTD_S1_EAFE;
    if s1.flags & !known != 0 || s1.reserved != 0 {
        return Err(EINVAL);
    }
    // Extended accessed flags: rvfio never sets accessed or dirty bits.
    if s1.flags & IOMMU_VTD_S1_EAFE != 0 {
        return Err(eopnotsupp());
    }
    let table = Table::new(s1.pgtbl_addr, s1.addr_width).ok_or(EINVAL)?;
    let args = BindArgs {
        group_id: b.group_id,
        table,
    };
    let mut inner = container.lock();
    let flags = nesting::bind(&mut inner, &args)?;
    let written = UserSlice::new(arg + BIND_OUT_FLAGS, size_of::<u32>())
        .writer()
        .write(&flags);
    if let Err(e) = written {
        // The caller cannot learn of the bind: take it back. Should even
        // that fail (stage 2 cannot be attached again), the group stays
        // bound, as GET_INFO tells.
        let _ = nesting::unbind(&mut inner, b.group_id);
        return Err(e);
    }
    Ok(())
}

/// RVFIO_IOMMU_NESTING_UNBIND.
pub(crate) fn unbind(container: &Container, arg: UserPtr) -> Result {
    if !container.nesting {
        return Err(ENOTTY);
    }
    let u: NestingUnbind = read_fixed(arg)?;
    if u.flags != 0 || u.reserved != 0 {
        return Err(EINVAL);
    }
    let mut inner = container.lock();
    if nesting::bound_kind(&inner, u.group_id)? {
        // Devices drop what they pinned through stage 1 first.
        inner = drop_s1_pins(container, inner, None, None);
    }
    nesting::unbind(&mut inner, u.group_id).map(|_| ())
}

/// Asks the emulated-IOMMU devices to drop their pins taken through stage
/// 1 in stage-1 range `s1` or on pages in guest-physical range `gpa`
/// (`None`: any), with the dma_unmap notification by stage-1 IOVA, which
/// runs without the container's lock (`emulated.rs`).
pub(crate) fn drop_s1_pins<'a>(
    container: &'a Container,
    mut inner: Guard<'a, Inner, MutexBackend>,
    s1: Option<&IovaRange>,
    gpa: Option<&IovaRange>,
) -> Guard<'a, Inner, MutexBackend> {
    if !container.nesting {
        return inner;
    }
    // Run by run, looked up afresh after each notification (which drops
    // the lock): nothing is allocated, so this cannot fail, and `from`
    // only grows, so it ends even if a device keeps a pin.
    let mut from = 0;
    while let Some((start, len)) = inner.nest().next_s1_pin_run(gpa, s1, from) {
        inner = emulated::notify_dma_unmap(container, inner, start, len);
        match start.checked_add(len) {
            Some(next) => from = next,
            None => break,
        }
    }
    inner
}

/// RVFIO_IOMMU_NESTING_INVALIDATE: `entry_num` is written back with the
/// number of entries processed, on error too.
pub(crate) fn invalidate(container: &Container, arg: UserPtr) -> Result {
    if !container.nesting {
        return Err(ENOTTY);
    }
    let inv: NestingInvalidate = read_fixed(arg)?;
    let mut done: u32 = 0;
    let result = invalidate_entries(container, &inv, &mut done);
    UserSlice::new(arg + INVALIDATE_ENTRY_NUM, size_of::<u32>())
        .writer()
        .write(&done)?;
    result
}

fn invalidate_entries(container: &Container, inv: &NestingInvalidate, done: &mut u32) -> Result {
    if inv.flags != 0 || inv.data_type != IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 {
        return Err(EINVAL);
    }
    let emulated = nesting::bound_kind(&container.lock(), inv.group_id)?;
    if inv.entry_num == 0 {
        // A probe: the type (and the group) are fine.
        return Ok(());
    }
    let len = inv.entry_len as usize;
    if len < size_of::<HwptVtdS1Invalidate>()
        || len > PAGE_SIZE as usize
        || inv.entry_num > MAX_ENTRIES
        || inv.data_uptr == 0
    {
        return Err(EINVAL);
    }
    for i in 0..inv.entry_num {
        let ptr = (len as u64)
            .checked_mul(u64::from(i))
            .and_then(|off| inv.data_uptr.checked_add(off))
            .ok_or(EFAULT)?;
        // Read without the container's lock (the read may fault).
        let e: HwptVtdS1Invalidate = read_payload(ptr, len)?;
        let range = entry_range(&e)?;
        let mut inner = container.lock();
        if emulated {
            inner = drop_s1_pins(container, inner, Some(&range), None);
            // The group may have been unbound meanwhile.
            nesting::bound_kind(&inner, inv.group_id)?;
        } else {
            nesting::invalidate(&mut inner, inv.group_id, range)?;
        }
        drop(inner);
        *done += 1;
    }
    Ok(())
}

/// The stage-1 range an invalidation entry names (`intel_nested_cache_
/// invalidate_user()`'s checks; EINVAL for unknown flags and a non-zero
/// `__reserved`, as every rvfio ioctl answers).
fn entry_range(e: &HwptVtdS1Invalidate) -> Result<IovaRange> {
    if e.flags & !IOMMU_VTD_INV_FLAGS_LEAF != 0 || e.reserved != 0 {
        return Err(EINVAL);
    }
    if e.addr & (PAGE_SIZE - 1) != 0 || e.npages == 0 {
        return Err(EINVAL);
    }
    if e.npages == u64::MAX {
        return if e.addr == 0 {
            Ok(IovaRange::FULL)
        } else {
            Err(EINVAL)
        };
    }
    // The last byte: (npages - 1) pages and 4095 bytes after addr.
    let last = (e.npages - 1)
        .checked_mul(PAGE_SIZE)
        .and_then(|b| b.checked_add(PAGE_SIZE - 1))
        .ok_or(EINVAL)?;
    let end = e.addr.checked_add(last).ok_or(EINVAL)?;
    Ok(IovaRange { start: e.addr, end })
}

/// GET_INFO's nesting capability for a nesting container.
pub(crate) fn info_cap(groups: &[NestingGroup]) -> NestingCap<'_> {
    NestingCap {
        flags: RVFIO_NESTING_CAP_CACHING_MODE,
        data_types: 1 << IOMMU_HWPT_DATA_VTD_S1,
        inv_data_types: 1 << IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
        addr_widths: (1 << 48) | (1 << 57),
        vtd_s1_flags: IOMMU_VTD_S1_SRE | IOMMU_VTD_S1_WPE,
        pgsizes: (1 << 12) | (1 << 21) | (1 << 30),
        groups,
    }
}
