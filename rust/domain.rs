// SPDX-License-Identifier: GPL-2.0

//! IOMMU paging domains and the groups attached to them: the safe wrappers
//! over `iommu_paging_domain_alloc()`, `iommu_attach_group()`,
//! `iommu_map()`/`iommu_unmap()` and reserved-region queries.

use crate::bindings;
use crate::instrument::{timed, Stat};
use crate::iova::IovaRange;
use crate::pin::PAGE_SHIFT;
use crate::rcu;
use crate::runs::Run;
use crate::sg_map;
use core::ffi::c_void;
use kernel::error::{code::*, to_result, Result};
use kernel::prelude::*;

/// An `iommu_group` that vfio core has handed to this container.
///
/// vfio core keeps the group alive from `attach_group` until the matching
/// `detach_group` returns, which bounds every `Group`'s use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Group(*mut bindings::iommu_group);

// SAFETY: the pointer is only passed to IOMMU core functions, which do their
// own locking, while vfio core holds the group (see the type's docs).
unsafe impl Send for Group {}
// SAFETY: as above.
unsafe impl Sync for Group {}

/// One reserved region of a group, type1's `struct iommu_resv_region` subset.
#[derive(Clone, Copy)]
pub(crate) struct ResvRegion {
    pub(crate) range: IovaRange,
    pub(crate) kind: i32,
}

impl ResvRegion {
    /// `IOMMU_RESV_DIRECT_RELAXABLE` regions do not restrict the IOVA space.
    pub(crate) fn is_relaxable(&self) -> bool {
        // SAFETY: reading an immutable C constant.
        self.kind == unsafe { bindings::RVFIO_RESV_DIRECT_RELAXABLE }
    }

    /// A software-managed MSI window needs an MSI cookie on the domain.
    pub(crate) fn is_sw_msi(&self) -> bool {
        // SAFETY: reading an immutable C constant.
        self.kind == unsafe { bindings::RVFIO_RESV_SW_MSI }
    }

    /// A hardware MSI window.
    pub(crate) fn is_msi(&self) -> bool {
        // SAFETY: reading an immutable C constant.
        self.kind == unsafe { bindings::RVFIO_RESV_MSI }
    }
}

impl Group {
    /// Wraps the group pointer vfio core passed to `attach_group`.
    ///
    /// # Safety
    ///
    /// `ptr` must be a valid `iommu_group` that vfio core keeps alive until
    /// the matching `detach_group` (or the failed attach) returns, and the
    /// returned value must not be used after that.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::iommu_group) -> Self {
        Self(ptr)
    }

    /// Identity for lookups.
    pub(crate) fn key(&self) -> usize {
        self.0 as usize
    }

    /// The group's reserved regions (`iommu_get_group_resv_regions()`).
    pub(crate) fn reserved_regions(&self) -> Result<KVec<ResvRegion>> {
        struct Ctx {
            out: KVec<ResvRegion>,
            failed: bool,
        }
        extern "C" fn cb(ctx: *mut c_void, start: u64, length: u64, kind: i32) {
            // SAFETY: `ctx` is the `&mut Ctx` passed below, alive for the call.
            let ctx = unsafe { &mut *ctx.cast::<Ctx>() };
            // A zero-length region reserves nothing.
            let Some(range) = IovaRange::from_len(start, length) else {
                return;
            };
            if ctx
                .out
                .push(ResvRegion { range, kind }, GFP_KERNEL)
                .is_err()
            {
                ctx.failed = true;
            }
        }
        let mut ctx = Ctx {
            out: KVec::new(),
            failed: false,
        };
        // SAFETY: the group is valid (type invariant); `cb` only touches `ctx`,
        // which outlives the call.
        let ret = unsafe {
            bindings::rvfio_group_resv_regions(self.0, Some(cb), (&mut ctx as *mut Ctx).cast())
        };
        to_result(ret)?;
        if ctx.failed {
            return Err(ENOMEM);
        }
        Ok(ctx.out)
    }

    /// `iommu_group_id()`: the N of /dev/vfio/N.
    pub(crate) fn id(&self) -> u32 {
        // SAFETY: the group is valid.
        let id = unsafe { bindings::iommu_group_id(self.0) };
        // CAST: group ids are allocated from 0 up (an ida).
        id as u32
    }

    /// Whether the group's IOMMU driver offers a nest-parent domain, the
    /// first step of hardware nesting: `Ok` when it does, `EOPNOTSUPP`
    /// when it has no `domain_alloc_user` op or refuses (every IOMMU
    /// without nesting support), another errno when allocating failed.
    pub(crate) fn probe_nest_parent(&self) -> Result {
        // SAFETY: the group is valid; the domain the C side may allocate is
        // freed there, never attached.
        to_result(unsafe { bindings::rvfio_group_probe_nest_parent(self.0) })
    }

    /// `iommu_group_has_isolated_msi()`.
    pub(crate) fn has_isolated_msi(&self) -> bool {
        // SAFETY: the group is valid.
        unsafe { bindings::iommu_group_has_isolated_msi(self.0) }
    }
}

/// What type1 reads from `struct iommu_domain`.
#[derive(Clone, Copy)]
pub(crate) struct DomainInfo {
    pub(crate) pgsize_bitmap: u64,
    pub(crate) aperture: IovaRange,
    /// The IOMMU driver's domain ops: only domains with the same ops are
    /// shared between groups.
    pub(crate) ops: usize,
}

/// An unmanaged paging domain allocated by rvfio.
///
/// # Invariants
///
/// `ptr` came from `iommu_paging_domain_alloc()`, is owned by this value and
/// is freed on drop. Every group attached through [`IommuDomain::attach`] is
/// detached before the drop (the container's bookkeeping guarantees it).
/// With `fault_handler`, the handler's token is valid until the drop.
pub(crate) struct IommuDomain {
    ptr: *mut bindings::iommu_domain,
    fault_handler: bool,
}

// SAFETY: iommu_domain operations do their own locking; ownership can move.
unsafe impl Send for IommuDomain {}
// SAFETY: map/unmap/attach on a shared domain are serialised by the IOMMU
// core and the container's mutex.
unsafe impl Sync for IommuDomain {}

impl IommuDomain {
    /// Allocates a paging domain suitable for the first device of `group`
    /// (as type1 does: the devices of a group share its IOMMU).
    pub(crate) fn alloc_for(group: &Group) -> Result<Self> {
        struct First {
            domain: *mut bindings::iommu_domain,
            err: i32,
        }
        extern "C" fn first_dev(dev: *mut bindings::device, data: *mut c_void) -> i32 {
            // SAFETY: `data` is the `First` passed below, alive for the call.
            let first = unsafe { &mut *data.cast::<First>() };
            // SAFETY: `dev` is a device of the group, which the IOMMU core
            // keeps alive while it iterates; `err` is a valid out-pointer.
            first.domain = unsafe { bindings::rvfio_paging_domain_alloc(dev, &mut first.err) };
            // Only the first device: stop iterating.
            1
        }
        let mut first = First {
            domain: core::ptr::null_mut(),
            err: ENODEV.to_errno(),
        };
        // SAFETY: the group is valid; `first_dev` only touches `first`,
        // which outlives the call.
        unsafe {
            bindings::iommu_group_for_each_dev(
                group.0,
                (&mut first as *mut First).cast(),
                Some(first_dev),
            )
        };
        if first.domain.is_null() {
            return Err(Error::from_errno(first.err));
        }
        // INVARIANT: allocated just now, owned here; no handler yet.
        Ok(Self {
            ptr: first.domain,
            fault_handler: false,
        })
    }

    pub(crate) fn info(&self) -> DomainInfo {
        let mut raw = bindings::rvfio_domain_info::default();
        // SAFETY: the domain is valid; `raw` is a valid out-pointer.
        unsafe { bindings::rvfio_domain_info(self.ptr, &mut raw) };
        DomainInfo {
            pgsize_bitmap: raw.pgsize_bitmap,
            aperture: IovaRange {
                start: raw.aperture_start,
                end: raw.aperture_end,
            },
            ops: raw.ops as usize,
        }
    }

    /// `ops->enforce_cache_coherency()`, false when the driver lacks it.
    pub(crate) fn enforce_cache_coherency(&self) -> bool {
        // SAFETY: the domain is valid.
        unsafe { bindings::rvfio_domain_enforce_cc(self.ptr) }
    }

    /// Installs rvfio's IOMMU fault handler (`faults.rs`) with `token`.
    ///
    /// # Safety
    ///
    /// The domain is not attached to anything yet (`iommu_set_fault_handler()`
    /// is two plain stores, which a fault in flight could see half done),
    /// and `token` is a `FaultHub` that stays valid until this value is
    /// dropped.
    pub(crate) unsafe fn set_fault_handler(&mut self, token: *const c_void) {
        // SAFETY: the domain is valid; the caller guarantees the rest.
        unsafe { bindings::rvfio_domain_set_fault_handler(self.ptr, token) };
        // INVARIANT: the caller keeps `token` valid until the drop.
        self.fault_handler = true;
    }

    /// `iommu_attach_group()`.
    pub(crate) fn attach(&self, group: &Group) -> Result {
        // SAFETY: domain and group are valid.
        to_result(unsafe { bindings::iommu_attach_group(self.ptr, group.0) })
    }

    /// `iommu_detach_group()`.
    pub(crate) fn detach(&self, group: &Group) {
        // SAFETY: domain and group are valid; the group is attached here.
        unsafe { bindings::iommu_detach_group(self.ptr, group.0) }
    }

    /// `iommu_get_msi_cookie()`; ENODEV (no DMA-IOMMU layer) is not an error.
    pub(crate) fn get_msi_cookie(&self, base: u64) -> Result {
        // SAFETY: the domain is valid.
        let ret = unsafe { bindings::iommu_get_msi_cookie(self.ptr, base) };
        if ret == ENODEV.to_errno() {
            return Ok(());
        }
        to_result(ret)
    }

    /// Maps `runs`, which follow each other in IOVA, with one IOTLB sync
    /// per batch of runs rather than per run (`sg_map.rs`). On error none
    /// of them is mapped.
    ///
    /// # Safety
    ///
    /// The memory of every run must stay valid for device access until it
    /// is unmapped again (pinned pages, or MMIO owned by the caller).
    pub(crate) unsafe fn map_runs(&self, runs: &[Run], prot: i32) -> Result {
        let pages = runs.iter().map(|r| r.npages()).sum();
        // SAFETY: the caller's contract.
        timed(Stat::IommuMap, pages, || unsafe {
            sg_map::map_runs(self, runs, prot)
        })
    }

    /// `iommu_map()` of `[paddr, paddr + size)` at `iova`, `IOMMU_CACHE`
    /// added as type1 does, page tables charged to the caller's memcg.
    ///
    /// # Safety
    ///
    /// The memory must stay valid for device access until it is unmapped.
    pub(crate) unsafe fn map(&self, iova: u64, paddr: u64, size: u64, prot: i32) -> Result {
        // SAFETY: the domain is valid; the caller keeps the memory alive.
        to_result(unsafe {
            bindings::iommu_map(
                self.ptr,
                iova as _,
                paddr,
                size as _,
                prot | bindings::IOMMU_CACHE,
                bindings::GFP_KERNEL_ACCOUNT,
            )
        })
    }

    /// `iommu_map_sg()` of the `nents` entries of `sgl` from `iova`
    /// (`IOMMU_CACHE` added); on error nothing of it stays mapped.
    ///
    /// # Safety
    ///
    /// `sgl` points to `nents` initialised scatterlist entries whose memory
    /// stays valid for device access until it is unmapped.
    pub(crate) unsafe fn map_sg(
        &self,
        iova: u64,
        sgl: *mut bindings::scatterlist,
        nents: usize,
        prot: i32,
    ) -> Result {
        // SAFETY: the domain is valid; the rest is the caller's contract.
        let mapped = unsafe {
            bindings::iommu_map_sg(
                self.ptr,
                iova as _,
                sgl,
                nents as _,
                prot | bindings::IOMMU_CACHE,
                bindings::GFP_KERNEL_ACCOUNT,
            )
        };
        if mapped < 0 {
            return Err(Error::from_errno(mapped as i32));
        }
        Ok(())
    }

    /// Unmaps `[iova, iova + size)`; returns how many bytes were unmapped.
    pub(crate) fn unmap(&self, iova: u64, size: u64) -> u64 {
        timed(Stat::IommuUnmap, size >> PAGE_SHIFT, || {
            // SAFETY: the domain is valid. Unmapping ranges that are not
            // mapped is harmless: the IOMMU core stops at the first hole.
            unsafe { bindings::iommu_unmap(self.ptr, iova as _, size as _) as u64 }
        })
    }
}

impl IommuDomain {
    /// An unowned handle on this domain for the PFNMAP revoker.
    pub(crate) fn as_ref(&self) -> DomainRef {
        DomainRef(self.ptr)
    }
}

/// An unowned handle on an [`IommuDomain`], kept by the PFNMAP revoker
/// (`revoke.rs`), which must be able to unmap without the container's lock.
/// Nothing about the type keeps the domain alive: the container removes the
/// handle from the revoker before it frees the domain, and every use is an
/// `unsafe` call that relies on that.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct DomainRef(*mut bindings::iommu_domain);

// SAFETY: a plain pointer used only for iommu_map/iommu_unmap, which do
// their own locking.
unsafe impl Send for DomainRef {}

impl DomainRef {
    /// A key that identifies the domain.
    pub(crate) fn key(&self) -> usize {
        self.0 as usize
    }

    /// `iommu_map()` with `GFP_ATOMIC` page-table allocations, for callers
    /// that hold a lock mmu-notifier callbacks take.
    ///
    /// # Safety
    ///
    /// The domain is alive, and `[paddr, paddr + size)` stays valid for
    /// device access until it is unmapped again.
    pub(crate) unsafe fn map_atomic(&self, iova: u64, paddr: u64, size: u64, prot: i32) -> Result {
        let prot = prot | bindings::IOMMU_CACHE;
        // Not timed on its own: the revoker's publish is (instrument.rs).
        // SAFETY: guaranteed by the caller.
        to_result(unsafe { bindings::rvfio_domain_map_atomic(self.0, iova, paddr, size, prot) })
    }

    /// `iommu_unmap()`; returns how many bytes were unmapped.
    ///
    /// # Safety
    ///
    /// The domain is alive.
    pub(crate) unsafe fn unmap(&self, iova: u64, size: u64) -> u64 {
        timed(Stat::IommuUnmap, size >> PAGE_SHIFT, || {
            // SAFETY: guaranteed by the caller.
            unsafe { bindings::iommu_unmap(self.0, iova as _, size as _) as u64 }
        })
    }
}

impl Drop for IommuDomain {
    fn drop(&mut self) {
        if self.fault_handler {
            // A fault handler may still run on another CPU for this domain
            // (the IOMMU driver looked the domain up before the detach):
            // after a grace period none does, and neither the domain nor
            // the token is reached again.
            rcu::synchronize();
        }
        // SAFETY: owned by the invariant; no group is attached any more.
        unsafe { bindings::iommu_domain_free(self.ptr) };
    }
}
