// SPDX-License-Identifier: GPL-2.0

//! RVFIO_IOMMU_CHANGE_DMA_OWNER's argument (`struct
//! rvfio_change_dma_owner`): read, bounded, and the failing entry written
//! back. The change itself is `owner_change.rs`.

use crate::container::Container;
use crate::ioctl::read_fixed;
use crate::mm::Owner;
use crate::owner_change;
use crate::uapi::*;
use core::mem::{size_of, MaybeUninit};
use kernel::error::{code::*, Result};
use kernel::prelude::*;
use kernel::uaccess::{UserPtr, UserSlice};

/// Offset of `failed` in `struct rvfio_change_dma_owner`.
const FAILED_OFFSET: usize = 12;

pub(crate) fn change_dma_owner(container: &Container, arg: UserPtr) -> Result {
    let head: ChangeDmaOwner = read_fixed(arg)?;
    // `failed` is inside the validated `argsz` from here on, and must be
    // writable before anything changes: a successful change never reports
    // an error afterwards. Every later error (flags and count included)
    // leaves RVFIO_DMA_OWNER_NO_ENTRY there unless it names an entry.
    write_failed(arg, RVFIO_DMA_OWNER_NO_ENTRY)?;
    if head.flags != 0 {
        return Err(EINVAL);
    }
    if head.count > RVFIO_DMA_OWNER_MAX_ENTRIES {
        return Err(E2BIG);
    }
    let entries = read_entries(head.entries, head.count as usize)?;
    let new = Owner::current()?;
    let result = owner_change::change_dma_owner(&mut container.lock(), &entries, new);
    match result {
        Ok(()) => Ok(()),
        Err((e, at)) => {
            // The call's own error wins over one writing the index.
            let _ = write_failed(arg, at.unwrap_or(RVFIO_DMA_OWNER_NO_ENTRY));
            Err(e)
        }
    }
}

/// Reads `count` entries from `ptr`, in one copy.
fn read_entries(ptr: u64, count: usize) -> Result<KVVec<OwnerEntry>> {
    let mut entries = KVVec::with_capacity(count, GFP_KERNEL)?;
    let len = count * size_of::<OwnerEntry>();
    let spare = &mut entries.spare_capacity_mut()[..count];
    // SAFETY: `spare` is `count` entries of 16 bytes with no padding, so
    // `len` bytes from its start are in bounds; `MaybeUninit<u8>` needs no
    // initialisation and has alignment 1.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<MaybeUninit<u8>>(), len)
    };
    UserSlice::new(ptr as UserPtr, len)
        .reader()
        .read_raw(bytes)?;
    // SAFETY: the copy initialised all `count` entries; `OwnerEntry` is
    // `FromBytes`, so any bytes are a valid value.
    unsafe { entries.set_len(count) };
    Ok(entries)
}

fn write_failed(arg: UserPtr, index: u32) -> Result {
    UserSlice::new(arg + FAILED_OFFSET, size_of::<u32>())
        .writer()
        .write(&index)
}
