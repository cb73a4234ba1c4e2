// SPDX-License-Identifier: GPL-2.0

//! `Container`: the backend state of one `/dev/vfio/vfio` container (the
//! `iommu_data` vfio core passes to every op), type1's `struct vfio_iommu`.
//!
//! Locking: one mutex, `Container::inner`, guards everything. vfio core
//! already serialises attach/detach against ioctls with its own
//! `container->group_lock` rwsem (held for write around attach/detach, for
//! read around ioctls), so the mutex orders concurrent ioctls. It is held
//! across pinning and IOMMU (un)mapping, as type1 holds `iommu->lock`.
//! PFNMAP translations are the exception: the revoker (`revoke.rs`) maps
//! and unmaps them under its own mutex, taken after `inner` (never before),
//! because its mmu-notifier callback cannot take `inner`.

use crate::bindings;
use crate::dma::Dma;
use crate::domain::{DomainInfo, Group, IommuDomain, ResvRegion};
use crate::faults::{FaultHandle, FaultHub};
use crate::instrument::{timed, Stat};
use crate::iova::{self, IovaRange, NoMem, RangeSink};
use crate::mm::Owner;
use crate::nesting::Nest;
use crate::pin::{self, PAGE_SIZE};
use crate::revoke::{Revoker, WatchCache};
use crate::stage2::S2View;
use crate::user_bitmap::UserBitmap;
use crate::vfio_device::VfioDevice;
use kernel::error::{code::*, Result};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::rbtree::{Entry, RBTree, RBTreeNodeReservation};
use kernel::sync::{Arc, Mutex};

/// Domains handed to a new mapping without allocating a list for them.
const INLINE_DOMAINS: usize = 4;

/// The backend state of one container.
#[pin_data]
pub(crate) struct Container {
    /// VFIO_TYPE1v2_IOMMU semantics (unmap may not bisect a mapping).
    pub(crate) v2: bool,
    /// VFIO_TYPE1_NESTING_IOMMU: v2 plus stage-1 binds (`nesting.rs`).
    pub(crate) nesting: bool,
    #[pin]
    inner: Mutex<Inner>,
    /// Emulated-IOMMU devices with a dma_unmap callback (type1's
    /// `device_list`), by address. Lock order: `devices` may be held while
    /// taking `inner` (the callbacks unpin), never the other way round.
    #[pin]
    pub(crate) devices: Mutex<RBTree<usize, VfioDevice>>,
}

/// A domain and what type1 caches about it.
struct DomainEntry {
    domain: IommuDomain,
    info: DomainInfo,
    enforce_cc: bool,
    /// Number of groups attached to this domain; the domain is freed when
    /// the last one detaches.
    groups: usize,
}

/// An attached group.
struct GroupEntry {
    group: Group,
    /// Key of its domain in `Inner::domains`.
    domain: u64,
    /// Its reserved regions, read at attach time.
    resv: KVec<ResvRegion>,
    /// The group declared its dirty scope by pinning pages (type1's
    /// `pinned_page_dirty_scope`); until then, all mapped memory is dirty.
    pinned_scope: bool,
}

/// Everything guarded by `Container::inner`.
///
/// # Invariants
///
/// - Every `Dma` in `dmas` is mapped (all its runs) in every domain of
///   `domains`, and no two mappings overlap; `dmas` is keyed by start IOVA.
/// - `dma_avail + dmas.len()` equals `dma_entry_limit` at open time.
/// - `valid` is derived from `domains` and `groups` (see `iova.rs`).
pub(crate) struct Inner {
    domains: RBTree<u64, DomainEntry>,
    next_domain_key: u64,
    groups: RBTree<usize, GroupEntry>,
    dmas: RBTree<u64, Dma>,
    dma_avail: u32,
    valid: KVec<IovaRange>,
    pgsize_bitmap: u64,
    /// VFIO_IOMMU_DIRTY_PAGES_FLAG_START was given (and not STOP).
    dirty_tracking: bool,
    /// Mappings whose vaddr is invalid (VFIO_DMA_UNMAP_FLAG_VADDR).
    vaddr_invalid_count: usize,
    /// Emulated-IOMMU (mdev) groups: no domain, pages pinned on demand.
    emulated: RBTree<usize, Group>,
    /// IOMMU-backed groups that have not pinned (`GroupEntry::pinned_scope`).
    non_pinned_groups: usize,
    /// Devices registered with a dma_unmap callback (the list itself is
    /// `Container::devices`, under its own lock).
    registered_devices: usize,
    /// Revocation of PFNMAP mappings; knows the same domains as `domains`.
    revoker: Arc<Revoker>,
    /// The tree node of the last mapping removed, kept for the next one:
    /// a VMM's stream of small maps and unmaps allocates no node.
    spare_node: Option<RBTreeNodeReservation<u64, Dma>>,
    /// Notifiers of the BAR mmaps PFNMAP mappings were made from, kept for
    /// the next mappings of the same BARs (`revoke.rs`).
    watch_cache: WatchCache,
    /// The owner of the last MAP_DMA: the next one from the same process
    /// shares it (one reference count instead of an mm and a task one).
    last_owner: Option<Arc<Owner>>,
    /// Stage-1 bindings of a nesting container (`nesting.rs`); their
    /// shadows point only at pages `dmas` pins.
    nest: Nest,
    /// Where DMA faults go (faults.rs): the token of every domain's fault
    /// handler. Last, so that it outlives the domains.
    faults: FaultHandle,
}

/// An IOMMU-backed group's stage-2 side, for a bind (`nesting.rs`).
pub(crate) struct GroupS2<'a> {
    /// The stage-2 domain the group is attached to while not bound.
    pub(crate) domain: &'a IommuDomain,
    pub(crate) resv: &'a [ResvRegion],
    /// The stage-2 domain enforces cache coherency (VFIO_DMA_CC_IOMMU).
    pub(crate) enforce_cc: bool,
    /// The fault-handler token of a shadow domain (`faults.rs`, stage 1).
    pub(crate) fault_token: *const core::ffi::c_void,
}

struct RangeVec(KVec<IovaRange>);

impl RangeSink for RangeVec {
    fn push_range(&mut self, range: IovaRange) -> core::result::Result<(), NoMem> {
        self.0.push(range, GFP_KERNEL).map_err(|_| NoMem)
    }
}

impl Container {
    /// A container for IOMMU type `v2` (VFIO_TYPE1v2_IOMMU) or v1, with
    /// `nesting` (VFIO_TYPE1_NESTING_IOMMU, which is v2 too).
    pub(crate) fn new(
        v2: bool,
        nesting: bool,
        revoker: Arc<Revoker>,
        faults: Arc<FaultHub>,
    ) -> impl PinInit<Self> {
        // SAFETY: reads a module parameter.
        let limit = unsafe { bindings::rvfio_param_dma_entry_limit() };
        let nest = Nest::new(nesting);
        pin_init!(Self {
            v2,
            nesting,
            inner <- new_mutex!(Inner {
                domains: RBTree::new(),
                next_domain_key: 0,
                groups: RBTree::new(),
                dmas: RBTree::new(),
                dma_avail: limit,
                valid: KVec::new(),
                pgsize_bitmap: iova::container_pgsize_bitmap(core::iter::empty(), PAGE_SIZE),
                dirty_tracking: false,
                vaddr_invalid_count: 0,
                emulated: RBTree::new(),
                non_pinned_groups: 0,
                registered_devices: 0,
                revoker,
                spare_node: None,
                watch_cache: WatchCache::new(),
                last_owner: None,
                nest,
                faults: FaultHandle::new(faults),
            }),
            devices <- new_mutex!(RBTree::new()),
        })
    }

    pub(crate) fn lock(
        &self,
    ) -> kernel::sync::lock::Guard<'_, Inner, kernel::sync::lock::mutex::MutexBackend> {
        self.inner.lock()
    }
}

impl Inner {
    /// The smallest page size of the container: MAP/UNMAP granularity.
    pub(crate) fn min_pgsize(&self) -> u64 {
        iova::min_pgsize(self.pgsize_bitmap)
    }

    pub(crate) fn pgsize_bitmap(&self) -> u64 {
        self.pgsize_bitmap
    }

    pub(crate) fn dma_avail(&self) -> u32 {
        self.dma_avail
    }

    pub(crate) fn valid_iovas(&self) -> &[IovaRange] {
        &self.valid
    }

    /// VFIO_DMA_CC_IOMMU: every domain enforces cache coherency (true with
    /// no domain, as in type1).
    pub(crate) fn all_domains_coherent(&self) -> bool {
        self.domains.values().all(|d| d.enforce_cc)
    }

    pub(crate) fn dirty_tracking(&self) -> bool {
        self.dirty_tracking
    }

    /// START allocates every mapping's bitmap (type1:
    /// `vfio_dma_bitmap_alloc_all()`); STOP frees them. Repeats are no-ops.
    pub(crate) fn set_dirty_tracking(&mut self, on: bool) -> Result {
        if on == self.dirty_tracking {
            return Ok(());
        }
        if on {
            let mut result = Ok(());
            for dma in self.dmas.values_mut() {
                result = dma.start_dirty();
                if result.is_err() {
                    break;
                }
            }
            if let Err(e) = result {
                for d in self.dmas.values_mut() {
                    d.stop_dirty();
                }
                return Err(e);
            }
        } else {
            for dma in self.dmas.values_mut() {
                dma.stop_dirty();
            }
        }
        self.dirty_tracking = on;
        Ok(())
    }

    /// Writes the dirty bits of the mapping starting at `key` into `bitmap`
    /// (type1's `update_user_bitmap()`), then keeps only externally pinned
    /// pages dirty. While an IOMMU-backed group has not pinned, every page
    /// counts as dirty.
    pub(crate) fn report_dirty(&mut self, key: u64, bitmap: &UserBitmap) -> Result {
        let all = self.non_pinned_groups > 0;
        let Some(dma) = self.dmas.get_mut(&key) else {
            return Ok(());
        };
        if all {
            dma.mark_all_dirty();
        }
        let range = dma.range();
        bitmap.report(&range, &|j| dma.dirty_word(j))?;
        dma.repopulate_dirty();
        Ok(())
    }

    /// Whether any emulated-IOMMU group is attached.
    pub(crate) fn has_emulated(&self) -> bool {
        self.emulated.iter().next().is_some()
    }

    pub(crate) fn registered_devices(&self) -> usize {
        self.registered_devices
    }

    pub(crate) fn set_registered_devices(&mut self, n: usize) {
        self.registered_devices = n;
    }

    pub(crate) fn vaddr_invalid_count(&self) -> usize {
        self.vaddr_invalid_count
    }

    /// The calling process as a mapping's owner: the last MAP_DMA's when it
    /// came from the same process with the same CAP_IPC_LOCK. EFAULT when
    /// the caller has no address space.
    pub(crate) fn current_owner(&mut self) -> Result<Arc<Owner>> {
        if let Some(o) = self.last_owner.as_ref().filter(|o| o.is_current()) {
            return Ok(o.clone());
        }
        let o = Arc::new(Owner::current()?, GFP_KERNEL)?;
        self.last_owner = Some(o.clone());
        Ok(o)
    }

    /// The mappings, by start IOVA (`owner_change.rs`).
    pub(crate) fn dmas(&self) -> &RBTree<u64, Dma> {
        &self.dmas
    }

    pub(crate) fn dmas_mut(&mut self) -> &mut RBTree<u64, Dma> {
        &mut self.dmas
    }

    /// Every mapping's vaddr is valid again (`owner_change.rs` gave each
    /// a new one).
    pub(crate) fn clear_vaddr_invalid(&mut self) {
        self.vaddr_invalid_count = 0;
    }

    /// The mapping that contains `iova`, mutably.
    pub(crate) fn dma_at_mut(&mut self, iova: u64) -> Option<&mut Dma> {
        let key = self.first_overlap(&IovaRange {
            start: iova,
            end: iova,
        })?;
        self.dmas.get_mut(&key)
    }

    /// pin_pages by `group`: an IOMMU-backed group that pins declares its
    /// dirty scope (type1 promotes it).
    pub(crate) fn promote_dirty_scope(&mut self, group: &Group) {
        if let Some(g) = self.groups.get_mut(&group.key()) {
            if !g.pinned_scope {
                g.pinned_scope = true;
                self.non_pinned_groups -= 1;
            }
        }
    }

    pub(crate) fn min_pgshift(&self) -> u32 {
        self.min_pgsize().trailing_zeros()
    }

    // --- The mapping tree. ---

    /// The mappings that start inside `range`, in IOVA order.
    pub(crate) fn mappings_starting_in(&self, range: &IovaRange) -> Result<KVec<IovaRange>> {
        let mut out = KVec::new();
        for (k, dma) in self.dmas.iter() {
            if *k > range.end {
                break;
            }
            if *k >= range.start {
                out.push(dma.range(), GFP_KERNEL)?;
            }
        }
        Ok(out)
    }

    /// Start IOVA of the lowest mapping overlapping `range`.
    pub(crate) fn first_overlap(&mut self, range: &IovaRange) -> Option<u64> {
        self.first_overlap_with(range, |key, _| key)
    }

    /// Calls `f` with the key and mapping [`Inner::first_overlap`] finds: one
    /// tree walk for what the caller wants to know about it.
    pub(crate) fn first_overlap_with<R>(
        &mut self,
        range: &IovaRange,
        f: impl FnOnce(u64, &Dma) -> R,
    ) -> Option<R> {
        match self.dmas.cursor_lower_bound(&range.start) {
            Some(cursor) => {
                if let Some((k, prev)) = cursor.peek_prev() {
                    if prev.range().end >= range.start {
                        return Some(f(*k, prev));
                    }
                }
                let (k, dma) = cursor.current();
                (*k <= range.end).then(|| f(*k, dma))
            }
            None => {
                let cursor = self.dmas.cursor_back()?;
                let (k, last) = cursor.current();
                (last.range().end >= range.start).then(|| f(*k, last))
            }
        }
    }

    /// RVFIO_IOMMU_DMA_QUERY: the mapping containing `iova`, and for one
    /// with PFNMAP pages, how many of its bytes were revoked.
    pub(crate) fn pfnmap_query(&mut self, iova: u64) -> Option<(IovaRange, Option<u64>)> {
        let dma = self.dma_at_mut(iova)?;
        Some((dma.range(), dma.pfnmap_status()))
    }

    pub(crate) fn revoker(&self) -> &Arc<Revoker> {
        &self.revoker
    }

    pub(crate) fn faults(&self) -> &Arc<FaultHub> {
        self.faults.hub()
    }

    /// The emulated-IOMMU group when there is exactly one: the device that
    /// calls dma_rw (which does not say who calls).
    pub(crate) fn sole_emulated_group(&self) -> Option<Group> {
        let mut groups = self.emulated.values();
        let first = groups.next().copied();
        first.filter(|_| groups.next().is_none())
    }

    // --- Nesting (nesting.rs). ---

    pub(crate) fn nest(&self) -> &Nest {
        &self.nest
    }

    pub(crate) fn nest_mut(&mut self) -> &mut Nest {
        &mut self.nest
    }

    /// What a bind or unbind of the group at `key` works with: stage 2,
    /// the nesting state, and for an IOMMU-backed group its stage-2 side.
    pub(crate) fn nest_parts(
        &mut self,
        key: usize,
    ) -> (&mut RBTree<u64, Dma>, &mut Nest, Option<GroupS2<'_>>) {
        let fault_token = self.faults.hub().stage1_token();
        let s2 = self.groups.get(&key).and_then(|g| {
            self.domains.get(&g.domain).map(|d| GroupS2 {
                domain: &d.domain,
                resv: &g.resv,
                enforce_cc: d.enforce_cc,
                fault_token,
            })
        });
        (&mut self.dmas, &mut self.nest, s2)
    }

    /// The mapping containing `iova`, as (start, end).
    pub(crate) fn mapping_at(&mut self, iova: u64) -> Option<IovaRange> {
        let at = IovaRange {
            start: iova,
            end: iova,
        };
        self.first_overlap_with(&at, |_, dma| dma.range())
    }

    /// VFIO_DMA_MAP_FLAG_VADDR: gives the invalidated mapping at exactly
    /// `range` its new `vaddr` in the caller's process (type1: ENOENT when
    /// nothing is mapped there, EINVAL when the mapping differs or its vaddr
    /// is valid).
    pub(crate) fn update_vaddr(
        &mut self,
        range: &IovaRange,
        vaddr: u64,
        owner: Arc<Owner>,
    ) -> Result {
        let key = self.first_overlap(range).ok_or(ENOENT)?;
        let dma = self.dmas.get_mut(&key).ok_or(ENOENT)?;
        if !dma.vaddr_invalid() || dma.range() != *range {
            return Err(EINVAL);
        }
        dma.update_vaddr(vaddr, owner)?;
        self.vaddr_invalid_count -= 1;
        Ok(())
    }

    /// VFIO_DMA_UNMAP_FLAG_VADDR over the mappings starting in `range`:
    /// marks their vaddrs invalid and returns their total size. If one is
    /// already invalid, nothing changes and the result is EINVAL (type1).
    pub(crate) fn invalidate_vaddrs(&mut self, range: &IovaRange) -> Result<u64> {
        let keys = self.mappings_starting_in(range)?;
        let mut size = 0;
        for r in keys.iter() {
            if self.dmas.get(&r.start).is_some_and(|d| d.vaddr_invalid()) {
                return Err(EINVAL);
            }
            size += r.end - r.start + 1;
        }
        for r in keys.iter() {
            if let Some(d) = self.dmas.get_mut(&r.start) {
                d.set_vaddr_invalid(true);
                self.vaddr_invalid_count += 1;
            }
        }
        Ok(size)
    }

    /// Records a new mapping of `range` at `vaddr`, then pins and maps it
    /// into every domain; on error nothing of it remains.
    ///
    /// The mapping is built in its tree node and worked on there: a `Dma` is
    /// too large to move cheaply (a `memcpy` per move; see Documentation/bench.rst).
    pub(crate) fn add_dma(
        &mut self,
        range: IovaRange,
        vaddr: u64,
        prot: i32,
        owner: Arc<Owner>,
    ) -> Result {
        if timed(Stat::MapTree, 0, || self.first_overlap(&range)).is_some() {
            return Err(EEXIST);
        }
        if self.dma_avail == 0 {
            return Err(ENOSPC);
        }
        if !iova::dma_range_valid(&self.valid, &range) {
            return Err(EINVAL);
        }
        let node = match self.spare_node.take() {
            Some(node) => node,
            None => RBTreeNodeReservation::new(GFP_KERNEL)?,
        };

        // The domains as a slice, without an allocation for the usual few.
        let n = self.domains.iter().count();
        let mut values = self.domains.values().map(|entry| &entry.domain);
        let mut inline;
        let mut heap;
        let domains: &[&IommuDomain] = match values.next() {
            None => &[],
            Some(first) if n <= INLINE_DOMAINS => {
                inline = [first; INLINE_DOMAINS];
                for (slot, domain) in inline.iter_mut().skip(1).zip(values) {
                    *slot = domain;
                }
                &inline[..n]
            }
            Some(first) => {
                heap = KVec::with_capacity(n, GFP_KERNEL)?;
                heap.push(first, GFP_KERNEL)?;
                for domain in values {
                    heap.push(domain, GFP_KERNEL)?;
                }
                &heap
            }
        };
        let dma = match timed(Stat::MapTree, 0, || self.dmas.entry(range.start)) {
            Entry::Vacant(slot) => slot.insert(Dma::new(range, vaddr, prot, owner), node),
            // No overlap was found above.
            Entry::Occupied(_) => return Err(EEXIST),
        };
        // With no IOMMU domain (only emulated-IOMMU groups) nothing is
        // pinned until a device asks, as in type1.
        let mut result = dma.pin_and_map_all(
            domains,
            &self.revoker,
            &mut self.watch_cache,
            pin::max_run_pages(),
        );
        if result.is_ok() && self.dirty_tracking {
            result = dma.start_dirty();
            if result.is_err() {
                // As in `remove_dma`: the container's runs, then the watch's.
                for d in domains.iter() {
                    dma.unmap_from(d);
                }
                dma.forget_pfnmap();
                dma.release_pages();
            }
        }
        match result {
            Ok(()) => self.dma_avail -= 1,
            // Nothing is pinned or mapped any more: drop it in its node,
            // and keep the node.
            Err(_) => {
                if let Some(node) = self.dmas.remove_node(&range.start) {
                    self.spare_node = Some(node.into_reservation());
                }
            }
        }
        if result.is_ok() && self.nest.enabled() {
            // Stage-1 entries that needed this range now translate.
            self.nest
                .s2_changed(&mut S2View::new(&mut self.dmas), Some(&range));
        }
        result
    }

    /// Unmaps from every domain, unpins, uncharges and forgets the mapping
    /// starting at `key`; returns its size. The mapping is worked on in its
    /// tree node and dropped there (no move of the `Dma`).
    pub(crate) fn remove_dma(&mut self, key: u64) -> u64 {
        let Some(mut entry) = timed(Stat::UnmapTree, 0, || self.dmas.find_mut(&key)) else {
            return 0;
        };
        let dma = entry.get_mut();
        if dma.vaddr_invalid() {
            self.vaddr_invalid_count -= 1;
        }
        // No shadow may point at the pages once they are unpinned.
        self.nest.s2_unmapping(&dma.range());
        // The container's runs first, while the watch still tells which runs
        // the revoker maps; dropping the watch then unmaps those from every
        // domain (the revoker's domains are the container's). The other way
        // round, every PFNMAP run was unmapped twice (two IOTLB flushes).
        for domain in self.domains.values() {
            dma.unmap_from(&domain.domain);
        }
        dma.forget_pfnmap();
        dma.release_pages();
        let size = dma.size();
        // The mapping is dropped in place; its node is kept for the next.
        self.spare_node = Some(timed(Stat::Release, 0, || {
            entry.remove_node().into_reservation()
        }));
        self.dma_avail += 1;
        if self.nest.enabled() {
            self.nest.s2_changed(&mut S2View::new(&mut self.dmas), None);
        }
        size
    }

    fn remove_all_dmas(&mut self) {
        while let Some(key) = self.dmas.iter().next().map(|(k, _)| *k) {
            self.remove_dma(key);
        }
    }

    // --- Groups and domains. ---

    /// Recomputes the valid IOVA list from the domains and groups, plus an
    /// optional group being attached. Empty means "nothing valid" only when
    /// there is a domain; callers check.
    fn compute_valid(
        &self,
        extra_aperture: Option<IovaRange>,
        extra_resv: &[ResvRegion],
    ) -> Result<KVec<IovaRange>> {
        let mut aperture = Some(IovaRange::FULL);
        let mut any = false;
        let apertures = self.domains.values().map(|d| d.info.aperture);
        for ap in Iterator::chain(apertures, extra_aperture) {
            any = true;
            aperture = aperture.and_then(|a| a.intersect(&ap));
        }
        let mut out = RangeVec(KVec::new());
        if !any {
            return Ok(out.0);
        }
        let Some(aperture) = aperture else {
            return Ok(out.0);
        };
        let mut resv = KVec::new();
        let attached = self.groups.values().flat_map(|g| g.resv.iter());
        for r in Iterator::chain(attached, extra_resv.iter()) {
            if !r.is_relaxable() {
                resv.push(r.range, GFP_KERNEL)?;
            }
        }
        iova::subtract_reserved(aperture, &resv, &mut out).map_err(|_| ENOMEM)?;
        Ok(out.0)
    }

    fn update_pgsize_bitmap(&mut self) {
        self.pgsize_bitmap = iova::container_pgsize_bitmap(
            self.domains.values().map(|d| d.info.pgsize_bitmap),
            PAGE_SIZE,
        );
    }

    fn any_dma_in(&mut self, range: &IovaRange) -> bool {
        self.first_overlap(range).is_some()
    }

    /// type1's `vfio_iommu_type1_attach_group()` for an IOMMU-backed group.
    pub(crate) fn attach_group(&mut self, group: Group) -> Result {
        // Attaching could need the mappings' vaddrs (type1 pins again).
        if self.vaddr_invalid_count != 0 {
            return Err(EBUSY);
        }
        if self.groups.get(&group.key()).is_some() || self.emulated.get(&group.key()).is_some() {
            return Err(EINVAL);
        }
        let resv = group.reserved_regions()?;
        let group_node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let domain_node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let nest_node = self.nest.reserve()?;

        let mut domain = IommuDomain::alloc_for(&group)?;
        // SAFETY: the hub outlives every domain of the container (`faults`
        // is dropped last), and the domain is not attached yet.
        unsafe { domain.set_fault_handler(self.faults.hub().token()) };
        domain.attach(&group)?;
        // From here on, errors detach before `domain` is dropped (freed).
        let result = self.attach_checks(&group, &domain, &resv);
        let (valid, info) = match result {
            Ok(v) => v,
            Err(e) => {
                domain.detach(&group);
                return Err(e);
            }
        };
        let enforce_cc = domain.enforce_cache_coherency();

        // Share an existing domain with the same IOMMU driver and coherency.
        let mut target = None;
        for (key, entry) in self.domains.iter() {
            if entry.info.ops != info.ops || entry.enforce_cc != enforce_cc {
                continue;
            }
            domain.detach(&group);
            if entry.domain.attach(&group).is_ok() {
                target = Some(*key);
                break;
            }
            domain.attach(&group)?;
        }

        let max_run = pin::max_run_pages();
        let key = match target {
            Some(key) => {
                drop(domain);
                key
            }
            None => {
                if let Err(e) = self.replay_into(&domain, max_run) {
                    domain.detach(&group);
                    return Err(e);
                }
                let mut result = Ok(());
                if let Some(base) = sw_msi_base(&resv) {
                    result = domain.get_msi_cookie(base);
                }
                // The PFNMAP runs, which the revoker maps.
                let result = result.and_then(|()| self.revoker.add_domain(domain.as_ref()));
                if let Err(e) = result {
                    let first = self.domains.iter().next().is_none();
                    let n = self.dmas.iter().count();
                    self.undo_replay(&domain, first, n);
                    domain.detach(&group);
                    return Err(e);
                }
                let key = self.next_domain_key;
                self.next_domain_key += 1;
                let entry = DomainEntry {
                    domain,
                    info,
                    enforce_cc,
                    groups: 0,
                };
                self.domains.insert(domain_node.into_node(key, entry));
                key
            }
        };
        if let Some(entry) = self.domains.get_mut(&key) {
            entry.groups += 1;
        }
        self.groups.insert(group_node.into_node(
            group.key(),
            GroupEntry {
                group,
                domain: key,
                resv,
                pinned_scope: false,
            },
        ));
        // An IOMMU-backed group can dirty memory directly.
        self.non_pinned_groups += 1;
        self.valid = valid;
        self.update_pgsize_bitmap();
        self.nest.attached(nest_node, group, false);
        Ok(())
    }

    /// The checks type1 makes once the new domain is attached: aperture and
    /// reserved regions against existing mappings, a non-empty valid list,
    /// and interrupt isolation. Returns the new valid list.
    fn attach_checks(
        &mut self,
        group: &Group,
        domain: &IommuDomain,
        resv: &[ResvRegion],
    ) -> Result<(KVec<IovaRange>, DomainInfo)> {
        let info = domain.info();
        let ap = info.aperture;
        // Existing mappings outside the new aperture.
        if ap.start > 0
            && self.any_dma_in(&IovaRange {
                start: 0,
                end: ap.start - 1,
            })
        {
            return Err(EINVAL);
        }
        if ap.end < u64::MAX
            && self.any_dma_in(&IovaRange {
                start: ap.end + 1,
                end: u64::MAX,
            })
        {
            return Err(EINVAL);
        }
        // Existing mappings in a new reserved region.
        for r in resv.iter().filter(|r| !r.is_relaxable()) {
            if self.any_dma_in(&r.range) {
                return Err(EINVAL);
            }
        }
        let valid = self.compute_valid(Some(ap), resv)?;
        if valid.is_empty() {
            return Err(EINVAL);
        }
        // SAFETY: reads a module parameter.
        let allow_unsafe = unsafe { bindings::rvfio_param_allow_unsafe_interrupts() };
        if !allow_unsafe && !group.has_isolated_msi() {
            pr_warn!("No interrupt remapping support.  Use the module param \"allow_unsafe_interrupts\" to enable VFIO IOMMU support on this platform\n");
            return Err(EPERM);
        }
        Ok((valid, info))
    }

    /// Maps every existing mapping into a new domain; undoes it on error.
    /// type1's `vfio_iommu_replay()`. For the first domain (mappings made
    /// while only emulated-IOMMU groups were attached) this pins too.
    fn replay_into(&mut self, domain: &IommuDomain, max_run: u64) -> Result {
        let first = self.domains.iter().next().is_none();
        let mut failed = None;
        let revoker = self.revoker.clone();
        for (i, dma) in self.dmas.values_mut().enumerate() {
            let result = if first {
                dma.pin_and_map_all(&[domain], &revoker, &mut self.watch_cache, max_run)
            } else {
                dma.map_into(domain)
            };
            if let Err(e) = result {
                failed = Some((i, e));
                break;
            }
        }
        let Some((failed_at, e)) = failed else {
            return Ok(());
        };
        self.undo_replay(domain, first, failed_at);
        Err(e)
    }

    /// Undoes `replay_into` for the first `count` mappings.
    fn undo_replay(&mut self, domain: &IommuDomain, first: bool, count: usize) {
        for dma in self.dmas.values_mut().take(count) {
            if first {
                dma.forget_pfnmap();
            }
            dma.unmap_from(domain);
            if first {
                dma.release_pages();
            }
        }
    }

    /// type1's attach for a VFIO_EMULATED_IOMMU group: no domain; pages
    /// are pinned when its devices ask.
    pub(crate) fn attach_emulated(&mut self, group: Group) -> Result {
        if self.vaddr_invalid_count != 0 {
            return Err(EBUSY);
        }
        if self.groups.get(&group.key()).is_some() || self.emulated.get(&group.key()).is_some() {
            return Err(EINVAL);
        }
        self.nest.may_attach_emulated()?;
        let nest_node = self.nest.reserve()?;
        self.emulated
            .try_create_and_insert(group.key(), group, GFP_KERNEL)?;
        self.nest.attached(nest_node, group, true);
        Ok(())
    }

    /// type1's `vfio_iommu_type1_detach_group()`.
    pub(crate) fn detach_group(&mut self, group: Group) {
        // A bound group leaves its shadow first (its DMA is blocked from
        // here on, as it will be once detached).
        self.nest.detaching(&group);
        if self.emulated.remove(&group.key()).is_some() {
            // Emulated groups were always in pinned scope.
            if !self.has_emulated() && self.domains.iter().next().is_none() {
                self.remove_all_dmas();
            }
            return;
        }
        let Some(entry) = self.groups.remove(&group.key()) else {
            pr_err!("detach of a group that is not attached\n");
            return;
        };
        let last_domain = self.domains.iter().count() == 1;
        let mut free = false;
        if let Some(d) = self.domains.get_mut(&entry.domain) {
            d.domain.detach(&entry.group);
            d.groups -= 1;
            free = d.groups == 0;
        }
        if free {
            if let Some(d) = self.domains.remove(&entry.domain) {
                self.revoker.remove_domain(d.domain.as_ref());
                if !last_domain {
                    // Other domains keep the mappings; this one just goes.
                } else if !self.has_emulated() {
                    // The last IOMMU group takes every mapping with it.
                    for dma in self.dmas.values() {
                        dma.unmap_from(&d.domain);
                    }
                    self.remove_all_dmas();
                } else {
                    // Emulated groups remain: mappings stay, unpinned except
                    // for the devices' own pins, which are charged now.
                    // The revoker unmapped its runs from the domain above;
                    // `unmap_from` skips them while the watch is there.
                    for dma in self.dmas.values_mut() {
                        dma.unmap_from(&d.domain);
                        dma.forget_pfnmap();
                        dma.release_pages();
                    }
                }
            }
            self.update_pgsize_bitmap();
        }
        if !entry.pinned_scope {
            // Its departure may promote the container's dirty scope; what
            // it might have written is reported once more.
            self.non_pinned_groups -= 1;
            if self.dirty_tracking {
                for dma in self.dmas.values_mut() {
                    dma.mark_all_dirty();
                }
            }
        }
        // Fewer constraints can only grow the list; on allocation failure keep
        // the old (smaller, still safe) one, as type1 does.
        if let Ok(valid) = self.compute_valid(None, &[]) {
            self.valid = valid;
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // vfio core detaches every group before release; this only matters
        // if it did not. Shadows go before the pages they point at.
        self.nest.teardown();
        self.remove_all_dmas();
        while let Some(key) = self.groups.iter().next().map(|(k, _)| *k) {
            if let Some(g) = self.groups.remove(&key) {
                if let Some(d) = self.domains.get(&g.domain) {
                    d.domain.detach(&g.group);
                }
            }
        }
    }
}

/// The base of a software-managed MSI window, when the group has one and
/// no hardware MSI window (type1's `vfio_iommu_has_sw_msi()`).
pub(crate) fn sw_msi_base(resv: &[ResvRegion]) -> Option<u64> {
    if resv.iter().any(|r| r.is_msi()) {
        return None;
    }
    resv.iter().find(|r| r.is_sw_msi()).map(|r| r.range.start)
}
