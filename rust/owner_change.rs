// SPDX-License-Identifier: GPL-2.0

//! RVFIO_IOMMU_CHANGE_DMA_OWNER: the calling process becomes the owner of
//! every mapping of the container in one call, or nothing changes (live
//! update: a VMM that re-execs itself keeps its mappings and its devices'
//! DMA). The ABI is in `include/uapi/linux/rvfio.h`.
//!
//! The call runs in three phases under the container's mutex, which
//! MAP/UNMAP and the emulated-IOMMU path also take:
//!
//! 1. Check, changing nothing: the entries name every mapping exactly once;
//!    each new range maps the very memory its mapping holds
//!    (`Dma::check_same_memory`); PFNMAP mappings get a watch on their new
//!    range, registered before the range is looked up.
//! 2. Charge: the whole `locked_vm` of the mappings other processes own is
//!    charged to the caller in one call (RLIMIT_MEMLOCK applies unless it
//!    has CAP_IPC_LOCK).
//! 3. Commit, which can only fail before anything moved: the PFNMAP watches'
//!    state moves to the new watches under the revoker's lock, unless one
//!    of the new ranges was invalidated since phase 1 (EAGAIN: the charge is
//!    returned). Then the old owners are uncharged and every mapping gets
//!    its new owner and vaddr. Nothing is unpinned, unmapped or mapped.

use crate::container::Inner;
use crate::mm::Owner;
use crate::pin::PAGE_SIZE;
use crate::revoke::PreparedWatch;
use crate::uapi::OwnerEntry;
use kernel::error::{code::*, Error};
use kernel::prelude::*;

/// An error and the index of the entry it is about (`None`: no single
/// entry is to blame).
pub(crate) type Failure = (Error, Option<u32>);

/// Makes `new` the owner of every mapping of `inner`, at the vaddrs
/// `entries` give (one per mapping, any order).
pub(crate) fn change_dma_owner(
    inner: &mut Inner,
    entries: &[OwnerEntry],
    new: Owner,
) -> core::result::Result<(), Failure> {
    let order = check_entries(inner, entries)?;

    // Phase 1: the memory, and the new PFNMAP watches.
    let revoker = inner.revoker().clone();
    let mut moves = KVec::new();
    let mut foreign = 0usize;
    for &i in order.iter() {
        let e = &entries[i as usize];
        let fail = |err| (err, Some(i));
        let Some(dma) = inner.dmas().get(&e.iova) else {
            return Err(fail(ENOENT));
        };
        let size = dma.size();
        if e.vaddr % PAGE_SIZE != 0 || e.vaddr.checked_add(size).is_none() {
            return Err(fail(EINVAL));
        }
        // The watch first: an invalidation of the new range from here on
        // fails the commit.
        if let Some(old) = dma.watch_key() {
            let prepared = PreparedWatch::new(&revoker, &new.mm, e.vaddr, size).map_err(fail)?;
            moves
                .push((old, prepared), GFP_KERNEL)
                .map_err(|_| fail(ENOMEM))?;
        }
        dma.check_same_memory(&new.mm, e.vaddr).map_err(fail)?;
        if dma.owner().mm != new.mm {
            foreign += dma.locked_vm();
        }
    }

    // Phase 2: the charge.
    new.charge(foreign).map_err(|e| (e, None))?;

    // Phase 3: the watches, all or none; then owners and vaddrs.
    let mut watches = match revoker.move_watches(moves) {
        Ok(w) => w.into_iter(),
        Err((e, at)) => {
            new.uncharge(foreign);
            return Err((e, at.and_then(|k| pfnmap_entry(inner, entries, &order, k))));
        }
    };
    let mut old: Option<(Owner, usize)> = None;
    for &i in order.iter() {
        let e = &entries[i as usize];
        let Some(dma) = inner.dmas_mut().get_mut(&e.iova) else {
            continue;
        };
        if dma.owner().mm != new.mm && dma.locked_vm() != 0 {
            // Uncharged per run of mappings with the same old owner.
            match &mut old {
                Some((o, n)) if o.mm == dma.owner().mm => *n += dma.locked_vm(),
                _ => {
                    if let Some((o, n)) = old.replace((dma.owner().clone(), dma.locked_vm())) {
                        o.uncharge(n);
                    }
                }
            }
        }
        let watch = if dma.watch_key().is_some() {
            watches.next()
        } else {
            None
        };
        dma.set_owner(new.clone(), e.vaddr, watch);
    }
    if let Some((o, n)) = old {
        o.uncharge(n);
    }
    inner.clear_vaddr_invalid();
    Ok(())
}

/// The entries sorted by IOVA (as indices into `entries`), after checking
/// that they name every mapping exactly once.
///
/// An entry that is wrong by itself is blamed before the count: a second
/// entry for a mapping (EEXIST) or one where no mapping starts (ENOENT).
/// Distinct entries that all name mappings cannot outnumber them, so an
/// array longer than the mappings always fails on an entry, and EINVAL
/// (no entry to blame) is left for an array that misses a mapping.
fn check_entries(
    inner: &Inner,
    entries: &[OwnerEntry],
) -> core::result::Result<KVVec<u32>, Failure> {
    let mut order = KVVec::with_capacity(entries.len(), GFP_KERNEL).map_err(|_| (ENOMEM, None))?;
    for i in 0..entries.len() {
        // Fits: the ioctl bounds the count by RVFIO_DMA_OWNER_MAX_ENTRIES.
        order
            .push(i as u32, GFP_KERNEL)
            .map_err(|_| (ENOMEM, None))?;
    }
    order.sort_unstable_by_key(|&i| entries[i as usize].iova);
    for w in order.windows(2) {
        if entries[w[0] as usize].iova == entries[w[1] as usize].iova {
            return Err((EEXIST, Some(w[0].max(w[1]))));
        }
    }
    if let Some(&i) = order
        .iter()
        .find(|&&i| inner.dmas().get(&entries[i as usize].iova).is_none())
    {
        return Err((ENOENT, Some(i)));
    }
    // Distinct mapping starts: as many as the mappings means all of them.
    if entries.len() != inner.dmas().iter().count() {
        return Err((EINVAL, None));
    }
    Ok(order)
}

/// The entry of the `k`-th PFNMAP mapping in IOVA order (whose new range
/// changed while it was checked).
fn pfnmap_entry(inner: &Inner, entries: &[OwnerEntry], order: &[u32], k: usize) -> Option<u32> {
    order
        .iter()
        .copied()
        .filter(|&i| {
            inner
                .dmas()
                .get(&entries[i as usize].iova)
                .is_some_and(|d| d.watch_key().is_some())
        })
        .nth(k)
}
