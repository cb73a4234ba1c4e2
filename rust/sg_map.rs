// SPDX-License-Identifier: GPL-2.0

//! Mapping a mapping's runs into an IOMMU domain, many runs per call.
//!
//! `iommu_map()` syncs the IOTLB after every call; on VT-d in caching mode
//! every sync is an (emulated) invalidation. Fragmented memory, a run per
//! page, therefore goes through `iommu_map_sg()`: [`SG_RUNS`] runs per call,
//! one sync for all of them. The IOMMU core picks the largest page sizes
//! each run's alignment allows.

use crate::bindings;
use crate::domain::IommuDomain;
use crate::pin::{pfn_valid, PAGE_SHIFT};
use crate::runs::Run;
use core::mem::MaybeUninit;
use kernel::error::{code::*, Result};
use kernel::prelude::*;

/// Runs per `iommu_map_sg()` call.
const SG_RUNS: usize = 256;
/// Longest run a scatterlist entry can describe (its length is 32 bits).
const SG_MAX_PAGES: u64 = (1 << 30) >> PAGE_SHIFT;

/// A scatterlist array (`struct scatterlist[]`) for `iommu_map_sg()`.
struct SgList {
    buf: KVec<bindings::scatterlist>,
}

impl SgList {
    /// Room for `n` entries; `None` when the allocation fails (the caller
    /// then maps run by run).
    fn new(n: usize) -> Option<Self> {
        let buf = KVec::with_capacity(n, GFP_KERNEL | __GFP_NOWARN).ok()?;
        Some(Self { buf })
    }

    fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Describes `runs` (at most [`SgList::capacity`], each [`sg_ok`]) in
    /// the first entries and maps them from the first run's IOVA.
    ///
    /// # Safety
    ///
    /// As for [`IommuDomain::map_runs`].
    unsafe fn map(&mut self, domain: &IommuDomain, runs: &[Run], prot: i32) -> Result {
        let k = runs.len().min(self.capacity());
        let entries: &mut [MaybeUninit<bindings::scatterlist>] = self.buf.spare_capacity_mut();
        let sgl = entries.as_mut_ptr().cast::<bindings::scatterlist>();
        // SAFETY: `sgl` has room for `k` entries; sg_init_table() zeroes
        // them and marks the last one.
        unsafe { bindings::sg_init_table(sgl, k as _) };
        for (j, run) in runs.iter().take(k).enumerate() {
            // SAFETY: entry `j < k` was initialised above; the run's pfn has
            // a struct page (`sg_ok`) and its length fits in 32 bits.
            unsafe { bindings::rvfio_sg_set_pfn(sgl.add(j), run.pfn(), run.bytes() as u32) };
        }
        // SAFETY: `sgl` holds `k` initialised entries describing the runs,
        // which the caller keeps valid for device access (our contract).
        unsafe { domain.map_sg(runs[0].iova(), sgl, k, prot) }
    }
}

/// A run a scatterlist entry can describe.
fn sg_ok(run: &Run) -> bool {
    run.npages() < SG_MAX_PAGES && pfn_valid(run.pfn())
}

/// Maps `runs`, which follow each other in IOVA (`IOMMU_CACHE` added, as
/// type1 does). On error none of them is mapped.
///
/// # Safety
///
/// The memory of every run must stay valid for device access until it is
/// unmapped again (pinned pages, or MMIO owned by the caller).
pub(crate) unsafe fn map_runs(domain: &IommuDomain, runs: &[Run], prot: i32) -> Result {
    let Some(first) = runs.first() else {
        return Ok(());
    };
    if runs
        .windows(2)
        .any(|w| w[0].iova() + w[0].bytes() != w[1].iova())
    {
        pr_err!("map_runs: runs that do not follow each other in IOVA\n");
        return Err(EINVAL);
    }
    let mut sgl = if runs.len() > 1 {
        SgList::new(runs.len().min(SG_RUNS))
    } else {
        None
    };
    let mut i = 0;
    let mut result = Ok(());
    while i < runs.len() {
        let batch = match &mut sgl {
            Some(sgl) if sg_ok(&runs[i]) => {
                // iommu_map_sg() merges physically adjacent entries into one
                // mapping (with larger pages): runs split on purpose
                // (disable_hugepages) must not meet in one call.
                let mut k = 1;
                while i + k < runs.len()
                    && k < sgl.capacity()
                    && sg_ok(&runs[i + k])
                    && runs[i + k].pfn() != runs[i + k - 1].pfn() + runs[i + k - 1].npages()
                {
                    k += 1;
                }
                // SAFETY: our contract, for these runs.
                result = unsafe { sgl.map(domain, &runs[i..i + k], prot) };
                k
            }
            _ => {
                let r = &runs[i];
                // SAFETY: our contract, for this run.
                result = unsafe { domain.map(r.iova(), r.pfn() << PAGE_SHIFT, r.bytes(), prot) };
                1
            }
        };
        if result.is_err() {
            break;
        }
        i += batch;
    }
    // The failed call undid itself; undo the calls before it.
    if result.is_err() && i > 0 {
        domain.unmap(first.iova(), runs[i].iova() - first.iova());
    }
    result
}
