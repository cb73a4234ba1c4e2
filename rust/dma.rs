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
use crate::mm::Owner;
use crate::pin::{self, PinBatch, PAGE_SHIFT};
use kernel::error::Result;
use kernel::prelude::*;

/// `IOMMU_READ`: the device may read the memory.
pub(crate) const PROT_READ: i32 = bindings::IOMMU_READ;
/// `IOMMU_WRITE`: the device may write the memory.
pub(crate) const PROT_WRITE: i32 = bindings::IOMMU_WRITE;

/// A physically contiguous piece of a mapping whose pages are either all
/// pinned or all reserved (never pinned, never charged).
#[derive(Clone, Copy)]
struct Run {
    iova: u64,
    pfn: u64,
    npages: u64,
    reserved: bool,
}

impl Run {
    fn bytes(&self) -> u64 {
        self.npages << PAGE_SHIFT
    }

    /// True when the page `pfn` at `iova` continues this run.
    fn extends_with(&self, iova: u64, pfn: u64, reserved: bool, max_pages: u64) -> bool {
        self.reserved == reserved
            && self.npages < max_pages
            && self.pfn + self.npages == pfn
            && self.iova + self.bytes() == iova
    }

    /// Releases the pins of this run.
    ///
    /// # Safety
    ///
    /// The run's pages were pinned by this mapping and are mapped in no
    /// domain any more.
    unsafe fn unpin(&self, dirty: bool) {
        if !self.reserved {
            // SAFETY: guaranteed by the caller.
            unsafe { pin::unpin(self.pfn, self.npages, dirty) };
        }
    }
}

/// One user mapping.
///
/// # Invariants
///
/// - `range` is non-empty and page aligned.
/// - Every entry of `runs` is pinned once by this mapping (unless reserved),
///   the runs tile `range` from its start without gaps, and the container
///   maps them in each of its domains.
/// - `locked_vm` pages are charged to `owner.mm`.
pub(crate) struct Dma {
    range: IovaRange,
    vaddr: u64,
    /// VFIO_DMA_UNMAP_FLAG_VADDR invalidated `vaddr`; the IOMMU mapping
    /// stays and DMA continues until MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR.
    vaddr_invalid: bool,
    prot: i32,
    owner: Owner,
    locked_vm: usize,
    runs: KVec<Run>,
}

impl Dma {
    /// A mapping with nothing pinned yet.
    pub(crate) fn new(range: IovaRange, vaddr: u64, prot: i32, owner: Owner) -> Self {
        Self {
            range,
            vaddr,
            vaddr_invalid: false,
            prot,
            owner,
            locked_vm: 0,
            runs: KVec::new(),
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
    pub(crate) fn update_vaddr(&mut self, vaddr: u64, new: Owner) -> Result {
        if new.mm.as_ptr() != self.owner.mm.as_ptr() {
            new.charge(self.locked_vm)?;
            self.owner.uncharge(self.locked_vm);
            self.owner = new;
        }
        self.vaddr = vaddr;
        self.vaddr_invalid = false;
        Ok(())
    }

    pub(crate) fn range(&self) -> IovaRange {
        self.range
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
        let mut batch = PinBatch::new()?;
        let write = self.prot & PROT_WRITE != 0;
        let npages = self.size() >> PAGE_SHIFT;
        let mut done: u64 = 0;
        let mut cur: Option<Run> = None;

        while done < npages {
            let want = usize::try_from(npages - done).unwrap_or(usize::MAX);
            let vaddr = self.vaddr + (done << PAGE_SHIFT);
            let pfns = match batch.pin(&self.owner.mm, vaddr, want, write) {
                Ok(pfns) => pfns,
                Err(e) => {
                    self.flush_or_release(cur.take(), domain, false)?;
                    return Err(e);
                }
            };
            let got = pfns.len();

            // Charge the batch before mapping any of it (type1 checks the
            // limit while pinning): ENOMEM leaves nothing behind.
            let charge = pfns.iter().filter(|p| !pin::pfn_is_reserved(**p)).count();
            if let Err(e) = self.owner.charge(charge) {
                for &pfn in pfns {
                    // SAFETY: pinned just now, mapped nowhere.
                    unsafe {
                        Run {
                            iova: 0,
                            pfn,
                            npages: 1,
                            reserved: pin::pfn_is_reserved(pfn),
                        }
                        .unpin(false)
                    };
                }
                self.flush_or_release(cur.take(), domain, false)?;
                return Err(e);
            }
            self.locked_vm += charge;

            for (i, &pfn) in pfns.iter().enumerate() {
                let iova = self.range.start + ((done + i as u64) << PAGE_SHIFT);
                let reserved = pin::pfn_is_reserved(pfn);
                match &mut cur {
                    Some(run) if run.extends_with(iova, pfn, reserved, max_run_pages) => {
                        run.npages += 1
                    }
                    _ => {
                        let next = Run {
                            iova,
                            pfn,
                            npages: 1,
                            reserved,
                        };
                        if let Err(e) = self.flush_or_release(cur.replace(next), domain, true) {
                            // The rest of this batch is pinned but in no run.
                            for &rest in &pfns[i..] {
                                let reserved = pin::pfn_is_reserved(rest);
                                // SAFETY: pinned by this call, mapped nowhere.
                                unsafe {
                                    Run {
                                        iova: 0,
                                        pfn: rest,
                                        npages: 1,
                                        reserved,
                                    }
                                    .unpin(false)
                                };
                            }
                            return Err(e);
                        }
                    }
                }
            }
            done += got as u64;
        }
        self.flush_or_release(cur.take(), domain, true)
    }

    /// Maps `run` into `domain` and records it (when `map`), or releases its
    /// pins (when not, or when mapping fails).
    fn flush_or_release(&mut self, run: Option<Run>, domain: &IommuDomain, map: bool) -> Result {
        let Some(run) = run else { return Ok(()) };
        let result = if map {
            self.map_run(&run, domain)
        } else {
            Ok(())
        };
        match result {
            Ok(()) if map => Ok(()),
            other => {
                // SAFETY: pinned by this mapping, not mapped (or the map
                // failed and iommu_map() undid itself).
                unsafe { run.unpin(false) };
                other
            }
        }
    }

    fn map_run(&mut self, run: &Run, domain: &IommuDomain) -> Result {
        self.runs.reserve(1, GFP_KERNEL)?;
        // SAFETY: the run's pages are pinned (or reserved MMIO) until
        // `release_pages`, which the container calls only after unmapping.
        unsafe { domain.map(run.iova, run.pfn << PAGE_SHIFT, run.bytes(), self.prot)? };
        // Capacity was reserved above, so this cannot fail.
        self.runs.push(*run, GFP_KERNEL)?;
        Ok(())
    }

    /// Maps every run into a newly attached `domain` (type1's
    /// `vfio_iommu_replay()`); on error unmaps what it mapped.
    pub(crate) fn map_into(&self, domain: &IommuDomain) -> Result {
        for (i, run) in self.runs.iter().enumerate() {
            let paddr = run.pfn << PAGE_SHIFT;
            // SAFETY: pinned until `release_pages` (type invariant).
            let result = unsafe { domain.map(run.iova, paddr, run.bytes(), self.prot) };
            if let Err(e) = result {
                if let Some(done) = self.runs.get(..i) {
                    for r in done {
                        domain.unmap(r.iova, r.bytes());
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes the mapping's translations from `domain`.
    pub(crate) fn unmap_from(&self, domain: &IommuDomain) {
        let mut iova = self.range.start;
        for run in self.runs.iter() {
            // Runs tile the range, so unmapping is one call per contiguous
            // stretch; iommu_unmap() stops at holes, hence per-run calls
            // only where a run does not start where the last one ended.
            if run.iova != iova {
                break;
            }
            iova += run.bytes();
        }
        let mapped = iova - self.range.start;
        if mapped > 0 {
            let unmapped = domain.unmap(self.range.start, mapped);
            if unmapped != mapped {
                pr_err!(
                    "unmapped {:#x} of {:#x} bytes at iova {:#x}\n",
                    unmapped,
                    mapped,
                    self.range.start
                );
            }
        }
    }

    /// Unpins every run (dirtying pages the device could write) and returns
    /// the charge to `locked_vm`. Call only once the mapping is in no domain.
    pub(crate) fn release_pages(&mut self) {
        let dirty = self.prot & PROT_WRITE != 0;
        for run in self.runs.iter() {
            // SAFETY: by the type invariant the runs are pinned by us, and the
            // caller has unmapped them from every domain.
            unsafe { run.unpin(dirty) };
        }
        self.runs = KVec::new();
        self.owner.uncharge(self.locked_vm);
        self.locked_vm = 0;
    }
}

impl Drop for Dma {
    fn drop(&mut self) {
        if !self.runs.is_empty() {
            // Unpinning pages a device may still reach would hand it freed
            // memory: leak them loudly instead.
            pr_err!(
                "mapping at iova {:#x} dropped while pinned; leaking its pages\n",
                self.range.start
            );
        }
    }
}

/// The page size runs are capped at: 1 page with `disable_hugepages`.
pub(crate) fn max_run_pages() -> u64 {
    // SAFETY: reads a module parameter.
    if unsafe { bindings::rvfio_param_disable_hugepages() } {
        1
    } else {
        u64::MAX
    }
}
