// SPDX-License-Identifier: GPL-2.0

//! Looking up the pfns of a `VM_PFNMAP` range (another device's BAR), with
//! type1's follow-fault: in 6.12 vfio-pci populates a BAR mmap only on first
//! access, so a missing pfn is faulted in and looked up again.
//!
//! type1 (`vaddr_get_pfns()`, `follow_fault_pfn()`) looks up one page per
//! call after trying to pin it; rvfio looks up to a batch of pages of one
//! vma per mmap-lock hold (glue.c's `rvfio_follow_pfnmap_range()` walks the
//! ptes, and inside a PMD or PUD leaf fills the pfns without a page-table
//! walk per page); this file decides what to refuse, fault in and retry.

use crate::bindings;
use crate::mm::{FollowStop, MmapRead, Vma};
use crate::pin::PAGE_SIZE;
use kernel::error::{code::*, Error, Result};

/// What one look at a vma found.
enum Scan {
    /// `out` is full, or the vma ended: return what was found.
    Done,
    /// Nothing is mapped at the address reached: fault it in.
    Absent,
    /// Refused at the address reached (with `i` pfns found before it).
    Failed(Error),
}

/// Up to `out.len()` pfns of the VM_PFNMAP range from `addr`, in one vma,
/// under the mmap read lock `lock`. Returns the number found (at least one)
/// or the errno for the first page: EFAULT when the vma is not PFNMAP, lacks
/// the permission (even if its ptes are populated: `PROT_NONE` after the
/// BAR was touched), or maps ordinary memory; the fault's errno otherwise.
///
/// Pfns found before a fault dropped the lock are kept: the caller's
/// mmu-notifier sequence check (`revoke.rs`) catches any change.
pub(crate) fn lookup(
    lock: &mut MmapRead<'_>,
    addr: u64,
    write: bool,
    out: &mut [u64],
) -> Result<usize> {
    let mut i = 0;
    let mut addr = addr;
    // The address last faulted in without the lock being dropped: if it is
    // still absent after that, the fault did not help (type1 gives up too).
    let mut faulted_at = None;
    loop {
        let scan = match lock.vma(addr).filter(|v| v.is_pfnmap()) {
            Some(vma) => scan(&vma, &mut addr, write, out, &mut i),
            None => Scan::Failed(EFAULT),
        };
        let e = match scan {
            Scan::Done => return Ok(i),
            Scan::Failed(e) => e,
            Scan::Absent if faulted_at == Some(addr) => EFAULT,
            Scan::Absent => match lock.fault_in(addr, write) {
                // The lock was dropped: the vma may be stale, look it up
                // again (and fault again if need be, as type1 does).
                Ok(true) => continue,
                Ok(false) => {
                    faulted_at = Some(addr);
                    continue;
                }
                Err(e) => e,
            },
        };
        return if i > 0 { Ok(i) } else { Err(e) };
    }
}

/// Looks pfns up from `*addr` while they are present, within `vma` and
/// `out`; advances `*addr` and `*i` past what it found.
fn scan(vma: &Vma<'_>, addr: &mut u64, write: bool, out: &mut [u64], i: &mut usize) -> Scan {
    let flags = vma.flags();
    // Honour the vma's permissions as GUP does for ordinary memory:
    // follow_pfnmap_start() finds ptes that mprotect(PROT_NONE) left in
    // place, and type1 would map them. No FOLL_FORCE-like bypass.
    if flags & bindings::VM_READ as u64 == 0 || (write && flags & bindings::VM_WRITE as u64 == 0) {
        return Scan::Failed(EFAULT);
    }
    let (n, stop) = vma.follow_pfnmap(*addr, vma.end(), write, &mut out[*i..]);
    *i += n;
    *addr += (n as u64) * PAGE_SIZE;
    match stop {
        FollowStop::Done => Scan::Done,
        FollowStop::Absent => Scan::Absent,
        // A read-only BAR for a writable mapping; type1 refuses a PFNMAP
        // pfn backed by ordinary memory.
        FollowStop::ReadOnly | FollowStop::Ram => Scan::Failed(EFAULT),
    }
}
