// SPDX-License-Identifier: GPL-2.0

//! One `VFIO_IOMMU_MAP_DMA` mapping (type1's `struct vfio_dma`): the user
//! range, who owns it, and the physically contiguous runs it was pinned as.
//!
//! type1 remembers nothing about the pages it pinned and asks the IOMMU
//! (`iommu_iova_to_phys()`) at unmap time. rvfio keeps the runs instead: one
//! entry per physically contiguous piece, so replaying a mapping into a new
//! domain and unpinning need no page-table walks.

use crate::bindings;
use crate::domain::IommuDomain;
use crate::iova::IovaRange;
use crate::mm::{MmRef, MmUsers, Owner};
use crate::pin::{self, Pfnmap, PinBatch, PAGE_SHIFT};
use crate::revoke::{PfnRun, RangeWatch, Revoker, Watch, WatchCache, WatchKey};
use crate::runs::Run;
use crate::unpin::unpin_runs;
use kernel::error::{code::*, Result};
use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::sync::Arc;

/// How often a PFNMAP mapping is looked up again when its range keeps being
/// invalidated while it is being mapped, before MAP_DMA gives up (EAGAIN).
const PUBLISH_ATTEMPTS: u32 = 8;

/// `IOMMU_READ`: the device may read the memory.
pub(crate) const PROT_READ: i32 = bindings::IOMMU_READ;
/// `IOMMU_WRITE`: the device may write the memory.
pub(crate) const PROT_WRITE: i32 = bindings::IOMMU_WRITE;

/// Pages pinned and mapped between two charges of `locked_vm` (and IOMMU
/// map calls): 32 MiB. Pages pinned but not charged yet never exceed this,
/// so RLIMIT_MEMLOCK is overrun by at most that much, briefly, before
/// MAP_DMA fails with ENOMEM and unpins everything.
const FLUSH_PAGES: u64 = 8192;

/// Runs [`RunList::reserve`] reserves at most (8 MiB of them).
const RESERVE_MAX: usize = 1 << 18;

/// A mapping's runs, in IOVA order. The single run of a small map is kept
/// inline, without an allocation.
enum RunList {
    One(Run),
    /// kvmalloc'ed: fragmented memory has a run per page (2 MiB of runs
    /// for 256 MiB).
    Many(KVVec<Run>),
}

impl RunList {
    const fn new() -> Self {
        Self::Many(KVVec::new())
    }

    fn as_slice(&self) -> &[Run] {
        match self {
            Self::One(run) => core::slice::from_ref(run),
            Self::Many(runs) => runs,
        }
    }

    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    fn push(&mut self, run: Run) -> Result {
        match self {
            Self::Many(runs) if runs.capacity() == 0 => *self = Self::One(run),
            // No allocation warning for a run list kvmalloc() cannot serve
            // (past INT_MAX bytes): MAP_DMA fails with ENOMEM instead.
            Self::Many(runs) => runs.push(run, GFP_KERNEL | __GFP_NOWARN)?,
            Self::One(first) => {
                let mut runs = KVVec::with_capacity(4, GFP_KERNEL)?;
                runs.push(*first, GFP_KERNEL)?;
                runs.push(run, GFP_KERNEL)?;
                *self = Self::Many(runs);
            }
        }
        Ok(())
    }

    /// Makes room for `additional` more runs, so that a large mapping's
    /// list is not copied over and over as it grows. Only a hint: when
    /// the allocation fails, pushes allocate as they go.
    ///
    /// Capped at [`RESERVE_MAX`] runs: a huge mapping's estimate could ask
    /// for more than kvmalloc() serves (which WARNs past INT_MAX bytes);
    /// beyond the cap the list grows as it is filled.
    fn reserve(&mut self, additional: usize) {
        let additional = additional.min(RESERVE_MAX);
        match self {
            Self::Many(runs) => {
                let _ = runs.reserve(additional, GFP_KERNEL | __GFP_NOWARN);
            }
            Self::One(first) => {
                let first = *first;
                if let Ok(mut runs) =
                    KVVec::with_capacity(additional + 1, GFP_KERNEL | __GFP_NOWARN)
                {
                    // The capacity is there: this push does not allocate.
                    if runs.push(first, GFP_KERNEL).is_ok() {
                        *self = Self::Many(runs);
                    }
                }
            }
        }
    }

    /// Forgets the runs from index `len` on.
    fn truncate(&mut self, len: usize) {
        match self {
            Self::One(_) if len == 0 => *self = Self::new(),
            Self::One(_) => {}
            Self::Many(runs) if len < runs.len() => {
                // SAFETY: `len` is below the length, and `Run` is `Copy`:
                // nothing to drop.
                unsafe { runs.set_len(len) }
            }
            Self::Many(_) => {}
        }
    }
}

/// Runs recorded but not yet charged and mapped, while a mapping is pinned.
#[derive(Default)]
struct Pending {
    /// Index in the mapping's runs of the first run not mapped yet.
    first: usize,
    /// Pages of the runs from `first` on.
    pages: u64,
    /// Of those, the pages to charge.
    charge: usize,
}

/// One user mapping.
///
/// # Invariants
///
/// - `range` is non-empty and page aligned.
/// - Every entry of `runs` is pinned once by this mapping (unless reserved),
///   the runs tile `range` from its start without gaps, and the container
///   maps them in each of its domains; with a `watch`, the reserved runs
///   are mapped by the revoker instead (and may have been revoked).
/// - `vpfns` holds one pin per entry (taken by [`Dma::pin_external`]).
/// - `locked_vm` pages are charged to `owner.mm`: every non-reserved page
///   of the range while `runs` is not empty, otherwise every non-reserved
///   page in `vpfns` (type1's accounting: external pins are charged only
///   while no IOMMU domain pins the whole range).
pub(crate) struct Dma {
    range: IovaRange,
    vaddr: u64,
    /// VFIO_DMA_UNMAP_FLAG_VADDR invalidated `vaddr`; the IOMMU mapping
    /// stays and DMA continues until MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR.
    vaddr_invalid: bool,
    prot: i32,
    owner: Arc<Owner>,
    locked_vm: usize,
    runs: RunList,
    /// Pages pinned through the emulated-IOMMU interface (type1's
    /// `pfn_list`), by IOVA.
    vpfns: RBTree<u64, Vpfn>,
    /// Dirty bitmap, one bit per page, while dirty tracking is on.
    bitmap: Option<KVec<u64>>,
    /// The range has VM_PFNMAP pages: their translation is revoked when
    /// they go away (`revoke.rs`).
    watch: Option<Watch>,
}

/// Where an IOVA of a mapping lands (see [`Dma::run_at`]).
#[derive(Clone, Copy)]
pub(crate) struct RunAt {
    /// The page frame of the IOVA's page.
    pub(crate) pfn: u64,
    /// Bytes from the IOVA to the end of its physically contiguous run.
    pub(crate) bytes: u64,
    /// Pinned by the mapping (not a reserved pfn such as the zero page).
    pub(crate) pinned: bool,
    /// PFNMAP memory, mapped and revoked by the revoker (`revoke.rs`).
    pub(crate) pfnmap: bool,
}

/// One page pinned for an emulated-IOMMU device, with its pin count.
struct Vpfn {
    pfn: u64,
    refs: u32,
}

impl Dma {
    /// A mapping with nothing pinned yet.
    pub(crate) fn new(range: IovaRange, vaddr: u64, prot: i32, owner: Arc<Owner>) -> Self {
        Self {
            range,
            vaddr,
            vaddr_invalid: false,
            prot,
            owner,
            locked_vm: 0,
            runs: RunList::new(),
            vpfns: RBTree::new(),
            bitmap: None,
            watch: None,
        }
    }

    /// The IOMMU path pinned the whole range (a domain exists).
    pub(crate) fn domain_pinned(&self) -> bool {
        !self.runs.is_empty()
    }

    /// An emulated-IOMMU device holds pins in this mapping.
    pub(crate) fn has_external_pins(&self) -> bool {
        self.vpfns.iter().next().is_some()
    }

    pub(crate) fn prot(&self) -> i32 {
        self.prot
    }

    /// An emulated-IOMMU device holds a pin at exactly `iova`.
    pub(crate) fn has_external_pin_at(&self, iova: u64) -> bool {
        self.vpfns.get(&iova).is_some()
    }

    fn external_nonreserved(&self) -> usize {
        self.vpfns
            .values()
            .filter(|v| !pin::pfn_is_reserved(v.pfn))
            .count()
    }

    /// Pins the page at `iova` for an emulated-IOMMU device (type1's
    /// `vfio_pin_page_external()` plus its pfn_list), or takes one more
    /// reference if it is pinned already. A new pin is charged when no
    /// domain pinned the range. Returns the pfn; EINVAL for MMIO.
    pub(crate) fn pin_external(&mut self, iova: u64) -> Result<u64> {
        if let Some(v) = self.vpfns.get_mut(&iova) {
            v.refs = v.refs.checked_add(1).ok_or(EINVAL)?;
            return Ok(v.pfn);
        }
        let node = kernel::rbtree::RBTreeNodeReservation::new(GFP_KERNEL)?;
        let vaddr = self.vaddr + (iova - self.range.start);
        let mut batch = PinBatch::new(1)?;
        let write = self.prot & PROT_WRITE != 0;
        // No IOMMU mapping results, so PFNMAP needs no watch (and is refused
        // below: it has no struct page).
        let run = batch
            .pin(&self.owner.mm, vaddr, iova, 1, write, Pfnmap::Allow)?
            .1[0];
        let pfn = run.pfn();
        let charge = !self.domain_pinned() && !run.reserved();
        if charge {
            if let Err(e) = self.owner.charge(1) {
                // SAFETY: pinned just now, mapped nowhere.
                unsafe { pin::unpin_run(&run, false) };
                return Err(e);
            }
            self.locked_vm += 1;
        }
        if !pin::pfn_valid(pfn) {
            if charge {
                self.owner.uncharge(1);
                self.locked_vm -= 1;
            }
            // SAFETY: pinned just now, mapped nowhere.
            unsafe { pin::unpin_run(&run, false) };
            return Err(EINVAL);
        }
        self.vpfns
            .insert(node.into_node(iova, Vpfn { pfn, refs: 1 }));
        Ok(pfn)
    }

    /// Drops one reference on the external pin at `iova` (type1's
    /// `vfio_unpin_page_external()`); the last one unpins, uncharging when
    /// no domain pinned the range. Returns whether `iova` was pinned.
    pub(crate) fn unpin_external(&mut self, iova: u64) -> bool {
        let Some(v) = self.vpfns.get_mut(&iova) else {
            return false;
        };
        v.refs -= 1;
        if v.refs > 0 {
            return true;
        }
        let Some(v) = self.vpfns.remove(&iova) else {
            return true;
        };
        let reserved = pin::pfn_is_reserved(v.pfn);
        let run = Run::new(iova, v.pfn, 1, reserved);
        // SAFETY: the external pin was ours; the device let go of the page.
        unsafe { pin::unpin_run(&run, self.prot & PROT_WRITE != 0) };
        if !self.domain_pinned() && !reserved {
            self.owner.uncharge(1);
            self.locked_vm -= 1;
        }
        true
    }

    /// type1's `vfio_dma_rw_chunk()`: copies between `buf` and the user
    /// memory behind `iova`, at most to the end of the mapping. Returns the
    /// number of bytes copied.
    ///
    /// # Safety
    ///
    /// `buf` is valid for reads and writes of `count` bytes.
    pub(crate) unsafe fn rw(
        &mut self,
        iova: u64,
        buf: *mut u8,
        count: usize,
        write: bool,
    ) -> Result<usize> {
        if (write && self.prot & PROT_WRITE == 0) || self.prot & PROT_READ == 0 {
            return Err(EPERM);
        }
        let offset = iova - self.range.start;
        let count = (count as u64).min(self.size() - offset);
        // SAFETY: `buf` holds at least `count` bytes (the function's
        // contract; `count` was only lowered). A device write is a read of
        // the buffer.
        unsafe {
            self.owner
                .mm
                .copy(self.vaddr + offset, buf, count as usize, write)?
        };
        if write {
            let first = offset >> PAGE_SHIFT;
            let last = (offset + count - 1) >> PAGE_SHIFT;
            self.mark_dirty(first, last - first + 1);
        }
        Ok(count as usize)
    }

    /// The u64 at `iova` (8-byte aligned, inside the mapping) read from the
    /// owner's memory, for a stage-1 walk of an emulated-IOMMU group (no
    /// domain pinned the range). `None` when the mapping is not readable or
    /// the memory cannot be read.
    pub(crate) fn read_user_u64(&self, iova: u64) -> Option<u64> {
        if self.prot & PROT_READ == 0 || self.vaddr_invalid {
            return None;
        }
        let mut val = 0u64;
        let vaddr = self.vaddr + (iova - self.range.start);
        // SAFETY: `val` is 8 writable bytes of ours.
        let ret = unsafe {
            self.owner
                .mm
                .copy(vaddr, (&mut val as *mut u64).cast(), 8, false)
        };
        ret.is_ok().then_some(val)
    }

    // --- Dirty tracking. ---

    /// Starts tracking: a zeroed bitmap, then every externally pinned page
    /// marked dirty (type1's `vfio_dma_bitmap_alloc()` and
    /// `vfio_dma_populate_bitmap()`).
    pub(crate) fn start_dirty(&mut self) -> Result {
        let npages = self.size() >> PAGE_SHIFT;
        let mut words = KVec::new();
        words.extend_with(npages.div_ceil(64) as usize, 0u64, GFP_KERNEL)?;
        self.bitmap = Some(words);
        self.repopulate_dirty();
        Ok(())
    }

    pub(crate) fn stop_dirty(&mut self) {
        self.bitmap = None;
    }

    /// Marks `n` pages dirty from page index `first` of the mapping.
    pub(crate) fn mark_dirty(&mut self, first: u64, n: u64) {
        if let Some(words) = &mut self.bitmap {
            crate::dirty::set_bits(words, first, n);
        }
    }

    /// Marks every page dirty.
    pub(crate) fn mark_all_dirty(&mut self) {
        let n = self.size() >> PAGE_SHIFT;
        self.mark_dirty(0, n);
    }

    /// Word `j` of the dirty bitmap (0 when not tracking).
    pub(crate) fn dirty_word(&self, j: u64) -> u64 {
        self.bitmap
            .as_ref()
            .and_then(|w| w.get(j as usize).copied())
            .unwrap_or(0)
    }

    /// After a report: only the externally pinned pages stay dirty.
    pub(crate) fn repopulate_dirty(&mut self) {
        let start = self.range.start;
        if let Some(words) = &mut self.bitmap {
            for w in words.iter_mut() {
                *w = 0;
            }
            for iova in self.vpfns.keys() {
                crate::dirty::set_bits(words, (iova - start) >> PAGE_SHIFT, 1);
            }
        }
    }

    pub(crate) fn vaddr_invalid(&self) -> bool {
        self.vaddr_invalid
    }

    pub(crate) fn set_vaddr_invalid(&mut self, invalid: bool) {
        self.vaddr_invalid = invalid;
    }

    /// VFIO_DMA_MAP_FLAG_VADDR: the mapping's memory is now at `vaddr` in
    /// the caller's address space. When the caller is another process, the
    /// pinned pages' charge moves to its `locked_vm` first (type1's
    /// `vfio_change_dma_owner()`): ENOMEM past the new owner's limit leaves
    /// everything as it was.
    pub(crate) fn update_vaddr(&mut self, vaddr: u64, new: Arc<Owner>) -> Result {
        if new.mm.as_ptr() != self.owner.mm.as_ptr() {
            new.charge(self.locked_vm)?;
            self.owner.uncharge(self.locked_vm);
            self.owner = new;
        }
        self.vaddr = vaddr;
        self.vaddr_invalid = false;
        Ok(())
    }

    // --- DMA owner change (owner_change.rs). ---

    pub(crate) fn owner(&self) -> &Arc<Owner> {
        &self.owner
    }

    /// Pages charged to the owner's `locked_vm` for this mapping.
    pub(crate) fn locked_vm(&self) -> usize {
        self.locked_vm
    }

    /// The key of the PFNMAP watch, for a mapping that has one.
    pub(crate) fn watch_key(&self) -> Option<WatchKey> {
        self.watch.as_ref().map(|w| w.key())
    }

    /// Whether `[vaddr, vaddr + size)` of `mm` maps the memory this mapping
    /// holds, so that it can be the mapping's address from now on: no
    /// private anonymous memory (EOPNOTSUPP), writable when the mapping is
    /// and readable (EACCES), mapped (EFAULT), and every pinned page and
    /// PFNMAP pfn the same (EXDEV). The new range is pinned short-term to
    /// be compared and released again. A mapping that pinned nothing (no
    /// IOMMU domain yet) is compared through its emulated-IOMMU pins, and
    /// when it has none there is nothing to compare.
    pub(crate) fn check_same_memory(&self, mm: &MmRef, vaddr: u64) -> Result {
        let write = self.prot & PROT_WRITE != 0;
        check_vmas(mm, vaddr, self.size(), write)?;
        let runs = self.runs.as_slice();
        if runs.is_empty() {
            for (iova, v) in self.vpfns.iter() {
                let at = vaddr + (iova - self.range.start);
                let expect = Run::new(*iova, v.pfn, 1, pin::pfn_is_reserved(v.pfn));
                compare_range(mm, at, *iova, 1, write, core::slice::from_ref(&expect))?;
            }
            return Ok(());
        }
        compare_range(
            mm,
            vaddr,
            self.range.start,
            self.size() >> PAGE_SHIFT,
            write,
            runs,
        )
    }

    /// Makes `owner` the mapping's owner and `vaddr` its address (valid
    /// again if it was invalidated), with `watch` (already holding the
    /// PFNMAP state) replacing the old watch. The caller moved the charge.
    pub(crate) fn set_owner(&mut self, owner: Arc<Owner>, vaddr: u64, watch: Option<Watch>) {
        self.owner = owner;
        self.vaddr = vaddr;
        self.vaddr_invalid = false;
        if watch.is_some() {
            self.watch = watch;
        }
    }

    pub(crate) fn range(&self) -> IovaRange {
        self.range
    }

    /// The pinned run holding `iova` (inside the mapping), for software
    /// nesting (`stage2.rs`); `None` while no IOMMU domain pinned the range.
    pub(crate) fn run_at(&self, iova: u64) -> Option<RunAt> {
        let runs = self.runs.as_slice();
        // Runs tile the range in IOVA order: the last one starting at or
        // before `iova` holds it.
        let i = runs.partition_point(|r| r.iova() <= iova).checked_sub(1)?;
        let run = &runs[i];
        let offset = iova.checked_sub(run.iova())?;
        if offset >= run.bytes() {
            return None;
        }
        Some(RunAt {
            pfn: run.pfn() + (offset >> PAGE_SHIFT),
            bytes: run.bytes() - offset,
            pinned: !run.reserved(),
            pfnmap: self.deferred(run),
        })
    }

    pub(crate) fn size(&self) -> u64 {
        self.range.end - self.range.start + 1
    }

    /// Pins the user range and maps it into `domain` run by run, each run as
    /// large as physical contiguity (and `max_run_pages`) allows.
    ///
    /// On error nothing remains: no pins, no charge, no mapping in `domain`.
    pub(crate) fn pin_and_map(&mut self, domain: &IommuDomain, max_run_pages: u64) -> Result {
        let result = self.try_pin_and_map(domain, max_run_pages);
        if result.is_err() {
            self.unmap_from(domain);
            self.release_pages();
        }
        result
    }

    fn try_pin_and_map(&mut self, domain: &IommuDomain, max_run_pages: u64) -> Result {
        let npages = self.size() >> PAGE_SHIFT;
        let mut batch = PinBatch::new(npages)?;
        let write = self.prot & PROT_WRITE != 0;
        // A watch exists when the range was found to start in PFNMAP memory.
        let pfnmap = if self.watch.is_some() {
            Pfnmap::Expect
        } else {
            Pfnmap::Refuse
        };
        let mut pending = Pending::default();
        // The run still growing: pinned, in no list, maybe continued by the
        // next batch.
        let mut cur: Option<Run> = None;
        let mut done: u64 = 0;

        let result = loop {
            if done == npages {
                break cur
                    .take()
                    .map_or(Ok(()), |run| self.push_run(run, &mut pending))
                    .and_then(|()| self.flush(domain, &mut pending));
            }
            let want = usize::try_from(npages - done).unwrap_or(usize::MAX);
            let vaddr = self.vaddr + (done << PAGE_SHIFT);
            let iova = self.range.start + (done << PAGE_SHIFT);
            let (got, runs) = match batch.pin(&self.owner.mm, vaddr, iova, want, write, pfnmap) {
                Ok(pinned) => pinned,
                Err(e) => break Err(e),
            };
            if done == 0 && got as u64 != npages {
                // The first batch tells how fragmented the memory is.
                let batches = npages.div_ceil(got as u64);
                let estimate = (runs.len() as u64).saturating_mul(batches).min(npages);
                self.runs.reserve(estimate as usize);
            }
            done += got as u64;
            let mut failed = None;
            for (i, run) in runs.iter().enumerate() {
                match &mut cur {
                    Some(c) if c.continued_by(run, max_run_pages) => c.grow(run),
                    _ => {
                        let Some(full) = cur.replace(*run) else {
                            continue;
                        };
                        if let Err(e) = self.push_run(full, &mut pending) {
                            // SAFETY: pinned by this call, in no list, mapped
                            // nowhere; `cur` is released below.
                            unsafe { unpin_runs(&runs[i + 1..], false) };
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            if let Some(e) = failed {
                break Err(e);
            }
            if pending.pages >= FLUSH_PAGES {
                if let Err(e) = self.flush(domain, &mut pending) {
                    break Err(e);
                }
            }
        };
        if result.is_err() {
            // Runs not mapped yet go now; the caller unmaps and releases
            // the rest.
            if let Some(run) = cur {
                // SAFETY: pinned by this call, in no list, mapped nowhere.
                unsafe { pin::unpin_run(&run, false) };
            }
            let unmapped = self.runs.as_slice().get(pending.first..).unwrap_or(&[]);
            // SAFETY: pinned by this mapping and not mapped (`flush` maps
            // runs from `pending.first` on, and moves it past what it mapped).
            unsafe { unpin_runs(unmapped, false) };
            self.runs.truncate(pending.first);
        }
        result
    }

    /// Records `run` (pinned, not mapped yet) as the mapping's next run.
    fn push_run(&mut self, run: Run, pending: &mut Pending) -> Result {
        let charge = self.chargeable(&run);
        if let Err(e) = self.runs.push(run) {
            // SAFETY: pinned by the caller, in no list, mapped nowhere.
            unsafe { pin::unpin_run(&run, false) };
            return Err(e);
        }
        pending.pages += run.npages();
        pending.charge += charge;
        Ok(())
    }

    /// Pages of `run` to charge to `locked_vm`: not reserved ones, and not
    /// those an emulated-IOMMU device pinned (and charged) before any
    /// domain existed.
    fn chargeable(&self, run: &Run) -> usize {
        if run.reserved() {
            return 0;
        }
        if !self.has_external_pins() {
            return run.npages() as usize;
        }
        (0..run.npages())
            .filter(|i| self.vpfns.get(&(run.iova() + (i << PAGE_SHIFT))).is_none())
            .count()
    }

    /// Charges the pending runs, then maps them into `domain` (those the
    /// revoker maps excepted). type1 charges while it pins: ENOMEM here
    /// leaves the pending runs unmapped for the caller to release.
    fn flush(&mut self, domain: &IommuDomain, pending: &mut Pending) -> Result {
        self.owner.charge(pending.charge)?;
        self.locked_vm += pending.charge;
        pending.charge = 0;
        pending.pages = 0;
        let runs = self.runs.as_slice();
        let first = pending.first;
        let result = self.map_groups(domain, runs.get(first..).unwrap_or(&[]));
        pending.first = match result {
            Ok(()) => runs.len(),
            Err((mapped, _)) => first + mapped,
        };
        result.map_err(|(_, e)| e)
    }

    /// Maps `runs` into `domain`, each stretch of runs the container maps
    /// with one call. On error returns how many runs are mapped (all that
    /// come before the failed stretch) and the errno.
    fn map_groups(
        &self,
        domain: &IommuDomain,
        runs: &[Run],
    ) -> core::result::Result<(), (usize, Error)> {
        let mut start = 0;
        while start < runs.len() {
            if self.deferred(&runs[start]) {
                start += 1;
                continue;
            }
            let len = runs[start..]
                .iter()
                .position(|r| self.deferred(r))
                .unwrap_or(runs.len() - start);
            // SAFETY: the runs' pages are pinned (or reserved MMIO) until
            // `release_pages`, which the container calls only after unmapping.
            if let Err(e) = unsafe { domain.map_runs(&runs[start..start + len], self.prot) } {
                return Err((start, e));
            }
            start += len;
        }
        Ok(())
    }

    /// Maps every run into a newly attached `domain` (type1's
    /// `vfio_iommu_replay()`); on error unmaps what it mapped.
    pub(crate) fn map_into(&self, domain: &IommuDomain) -> Result {
        let runs = self.runs.as_slice();
        self.map_groups(domain, runs).map_err(|(mapped, e)| {
            Self::unmap_runs(domain, runs.get(..mapped).unwrap_or(&[]), |r| {
                self.deferred(r)
            });
            e
        })
    }

    /// Removes the mapping's translations from `domain`: with a watch, one
    /// call per stretch of adjacent runs between those the revoker maps
    /// (left to it; iommu_unmap() stops at a hole), otherwise one call.
    pub(crate) fn unmap_from(&self, domain: &IommuDomain) {
        let runs = self.runs.as_slice();
        if self.watch.is_some() {
            Self::unmap_runs(domain, runs, |r| self.deferred(r));
        } else if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
            // Every run is the container's, and they tile the range from
            // its start (the type invariant): one call, without a pass over
            // the runs (a run per page of fragmented memory; under TCG
            // even a test per run showed, 4k_frag unmap 1.2x).
            let len = last.iova() + last.bytes() - first.iova();
            Self::unmap_stretch(domain, Some((first.iova(), len)));
        }
    }

    fn unmap_runs(domain: &IommuDomain, runs: &[Run], skip: impl Fn(&Run) -> bool) {
        let mut stretch: Option<(u64, u64)> = None;
        for run in runs {
            if skip(run) {
                Self::unmap_stretch(domain, stretch.take());
                continue;
            }
            stretch = match stretch {
                Some((start, len)) if start + len == run.iova() => Some((start, len + run.bytes())),
                other => {
                    Self::unmap_stretch(domain, other);
                    Some((run.iova(), run.bytes()))
                }
            };
        }
        Self::unmap_stretch(domain, stretch);
    }

    fn unmap_stretch(domain: &IommuDomain, stretch: Option<(u64, u64)>) {
        let Some((iova, len)) = stretch else { return };
        let unmapped = domain.unmap(iova, len);
        if unmapped != len {
            pr_err!(
                "unmapped {:#x} of {:#x} bytes at iova {:#x}\n",
                unmapped,
                len,
                iova
            );
        }
    }

    // --- PFNMAP ranges (see revoke.rs). ---

    /// A run mapped by the revoker rather than by the container.
    fn deferred(&self, run: &Run) -> bool {
        run.reserved() && self.watch.is_some()
    }

    /// Pins the range once and maps it into every domain of `domains` (the
    /// first pins, the others replay), type1's `vfio_pin_map_dma()`. A range
    /// with VM_PFNMAP pages is watched first: its PFNMAP runs are mapped
    /// under the revoker's lock, and the lookup starts over when the range is
    /// invalidated meanwhile. On error nothing remains mapped or pinned.
    ///
    /// The watch's notifier covers the whole vma the range starts in and is
    /// kept in `cache`: a later mapping of the same BAR mmap finds it there,
    /// skips finding out that its range is PFNMAP and registers nothing.
    pub(crate) fn pin_and_map_all(
        &mut self,
        domains: &[&IommuDomain],
        revoker: &Arc<Revoker>,
        cache: &mut WatchCache,
        max_run: u64,
    ) -> Result {
        if self.watch.is_none() {
            let shared = match cache.find(&self.owner.mm, self.vaddr, self.size()) {
                Some(shared) => shared,
                None => {
                    match self.try_map_all(domains, max_run) {
                        Err(e) if pin::needs_watch(&e) => {}
                        other => return other,
                    }
                    let (start, end) = self.owner.mm.vma_bounds(self.vaddr)?;
                    let end = end.max(self.vaddr + self.size());
                    let shared =
                        RangeWatch::new(revoker, &self.owner.mm, start.min(self.vaddr), end)?;
                    drop(cache.insert(shared.clone()));
                    shared
                }
            };
            self.watch = Some(Watch::new(shared, self.vaddr, self.range.start, self.prot)?);
        }
        for _ in 0..PUBLISH_ATTEMPTS {
            let seq = self.watch.as_ref().map_or(0, |w| w.read_begin());
            let result = self.try_map_all(domains, max_run);
            let result = result.and_then(|()| self.publish(seq, domains));
            match result {
                Ok(true) => return Ok(()),
                // Invalidated while looking up: everything was undone.
                Ok(false) => continue,
                Err(e) => {
                    self.watch = None;
                    return Err(e);
                }
            }
        }
        self.watch = None;
        Err(EAGAIN)
    }

    /// Hands the PFNMAP runs to the watch, which maps them unless the range
    /// was invalidated since `seq`; in that case, or on error, undoes what
    /// `try_map_all` did.
    fn publish(&mut self, seq: u64, domains: &[&IommuDomain]) -> Result<bool> {
        let pfnmap = self.runs.as_slice().iter().filter(|r| r.reserved());
        let runs = pfnmap.map(|r| PfnRun {
            iova: r.iova(),
            pfn: r.pfn(),
            npages: r.npages(),
        });
        let published = match &self.watch {
            Some(w) => w.publish(seq, runs),
            None => Err(EINVAL),
        };
        if !matches!(published, Ok(true)) {
            for d in domains {
                self.unmap_from(d);
            }
            self.release_pages();
        }
        published
    }

    /// Pins and maps into `domains`; on error undoes everything.
    fn try_map_all(&mut self, domains: &[&IommuDomain], max_run: u64) -> Result {
        let Some((first, rest)) = domains.split_first() else {
            return Ok(());
        };
        self.pin_and_map(first, max_run)?;
        for (i, d) in rest.iter().enumerate() {
            if let Err(e) = self.map_into(d) {
                self.unmap_from(first);
                for done in rest.iter().take(i) {
                    self.unmap_from(done);
                }
                self.release_pages();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Stops watching: the revoker unmaps the PFNMAP runs it still maps.
    /// Call before unmapping the rest.
    pub(crate) fn forget_pfnmap(&mut self) {
        self.watch = None;
    }

    /// Whether the range has PFNMAP pages, and how many of their bytes had
    /// their translation revoked.
    pub(crate) fn pfnmap_status(&self) -> Option<u64> {
        self.watch.as_ref().map(|w| w.revoked_bytes())
    }

    /// Unpins every run (dirtying pages the device could write) and returns
    /// the charge to `locked_vm`. Call only once the mapping is in no domain.
    pub(crate) fn release_pages(&mut self) {
        let dirty = self.prot & PROT_WRITE != 0;
        // SAFETY: by the type invariant the runs are pinned by us, and the
        // caller has unmapped them from every domain.
        unsafe { unpin_runs(self.runs.as_slice(), dirty) };
        self.runs = RunList::new();
        // External pins stay, and are charged now that no domain pins the
        // range (type1's `vfio_iommu_unmap_unpin_reaccount()`).
        let keep = self.external_nonreserved();
        self.owner.uncharge(self.locked_vm.saturating_sub(keep));
        self.locked_vm = keep.min(self.locked_vm);
    }
}

impl Drop for Dma {
    fn drop(&mut self) {
        if !self.runs.is_empty() || self.has_external_pins() {
            // Unpinning pages a device may still reach would hand it freed
            // memory: leak them loudly instead.
            pr_err!(
                "mapping at iova {:#x} dropped while pinned; leaking its pages\n",
                self.range.start
            );
        }
    }
}

/// Checks the vmas over `[vaddr, vaddr + size)` of `mm` for
/// [`Dma::check_same_memory`].
fn check_vmas(mm: &MmRef, vaddr: u64, size: u64, write: bool) -> Result {
    let users = MmUsers::get(mm).ok_or(EFAULT)?;
    let lock = users.read_lock();
    let end = vaddr.checked_add(size).ok_or(EINVAL)?;
    let mut addr = lock.untagged(vaddr);
    let end = addr + (end - vaddr);
    while addr < end {
        let vma = lock.vma(addr).ok_or(EFAULT)?;
        if vma.is_private_anon() {
            return Err(Error::from_errno(-(bindings::EOPNOTSUPP as i32)));
        }
        let flags = vma.flags();
        if flags & bindings::VM_READ as u64 == 0
            || (write && flags & bindings::VM_WRITE as u64 == 0)
        {
            return Err(EACCES);
        }
        addr = vma.end();
    }
    Ok(())
}

/// Pins `npages` pages of `mm` at `vaddr` short-term, a batch at a time,
/// and checks that they are the pages `expect` (runs from `iova` on, in
/// IOVA order) names, then releases them: EXDEV on the first difference.
fn compare_range(
    mm: &MmRef,
    vaddr: u64,
    iova: u64,
    npages: u64,
    write: bool,
    expect: &[Run],
) -> Result {
    let mut batch = PinBatch::new(npages)?;
    let mut cursor = 0;
    let mut done = 0;
    while done < npages {
        let want = usize::try_from(npages - done).unwrap_or(usize::MAX);
        let at = iova + (done << PAGE_SHIFT);
        let (got, runs) = batch.pin_as(
            mm,
            vaddr + (done << PAGE_SHIFT),
            at,
            want,
            write,
            Pfnmap::Allow,
            false,
        )?;
        let same = runs.iter().all(|r| same_pages(r, expect, &mut cursor));
        // SAFETY: pinned just now by this function, mapped nowhere.
        unsafe { unpin_runs(runs, false) };
        if !same {
            return Err(EXDEV);
        }
        done += got as u64;
    }
    Ok(())
}

/// Whether every page of `run` is the page `expect` has at its IOVA.
/// `cursor` walks `expect` forward (runs are compared in IOVA order).
fn same_pages(run: &Run, expect: &[Run], cursor: &mut usize) -> bool {
    (0..run.npages()).all(|p| {
        let iova = run.iova() + (p << PAGE_SHIFT);
        while expect
            .get(*cursor)
            .is_some_and(|e| e.iova() + e.bytes() <= iova)
        {
            *cursor += 1;
        }
        expect.get(*cursor).is_some_and(|e| {
            e.iova() <= iova
                && e.reserved() == run.reserved()
                && e.pfn() + ((iova - e.iova()) >> PAGE_SHIFT) == run.pfn() + p
        })
    })
}
