// SPDX-License-Identifier: GPL-2.0

//! Revocation of PFNMAP mappings: when the memory behind a `VM_PFNMAP`
//! range that was DMA-mapped (another device's BAR) goes away or is
//! disabled, its IOMMU translation goes too, before the range can be reused.
//!
//! Every mapping with PFNMAP pages gets a [`Watch`]: an mmu interval
//! notifier on its user range. munmap(), process exit, and the zap vfio-pci
//! does when memory space is disabled, around a reset and when the device is
//! released all invalidate that range first, and the callback unmaps the
//! PFNMAP runs from every domain.
//!
//! The callback runs under the mm's locks (mmap_lock for munmap, vfio-pci's
//! memory_lock and the file's i_mmap lock for a zap), so it cannot take the
//! container's `inner` mutex, which is held while faulting BARs in. It takes
//! only the [`Revoker`]'s own mutex, which guards everything it needs: the
//! domains and, per watch, the runs and whether they are mapped. Nothing
//! under that mutex may allocate with reclaim (reclaim can invalidate too):
//! the runs are mapped with `GFP_ATOMIC` page-table allocations and all other
//! memory is allocated before locking.
//!
//! Mapping follows the mmu-notifier protocol: `read_begin()` before looking
//! the pfns up, then under the mutex `read_retry()`; a callback in between
//! makes the mapper start over, so no translation of a stale pfn is ever
//! installed. Lock order: `Container::inner` -> `Revoker::state`; the mm's
//! locks -> `Revoker::state`.

use crate::bindings;
use crate::domain::DomainRef;
use crate::instrument::{timed, Stat};
use crate::mm::MmRef;
use crate::pin::PAGE_SHIFT;
use crate::watch::{IntervalNotifier, Invalidation};
use kernel::error::{code::*, to_result, Result};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};
use kernel::sync::{Arc, Mutex};

/// A physically contiguous run of unpinned (PFNMAP or reserved) pages of
/// one mapping.
#[derive(Clone, Copy)]
pub(crate) struct PfnRun {
    pub(crate) iova: u64,
    pub(crate) pfn: u64,
    pub(crate) npages: u64,
}

impl PfnRun {
    fn bytes(&self) -> u64 {
        self.npages << PAGE_SHIFT
    }
}

struct WatchedRun {
    run: PfnRun,
    revoked: bool,
}

/// A watched mapping's runs. The single run of a one-page (or physically
/// contiguous) BAR mapping is kept inline: no allocation per small map.
enum WatchedRuns {
    One(WatchedRun),
    Many(KVec<WatchedRun>),
}

impl WatchedRuns {
    const fn new() -> Self {
        Self::Many(KVec::new())
    }

    /// `runs` as a list; allocates (before the caller locks) only for more
    /// than one run.
    fn collect(mut runs: impl Iterator<Item = PfnRun> + Clone) -> Result<Self> {
        let watched = |run| WatchedRun {
            run,
            revoked: false,
        };
        let n = runs.clone().count();
        if n == 1 {
            if let Some(run) = runs.next() {
                return Ok(Self::One(watched(run)));
            }
        }
        let mut list = KVec::with_capacity(n, GFP_KERNEL)?;
        for run in runs {
            // Capacity is there: no allocation.
            list.push(watched(run), GFP_NOWAIT)?;
        }
        Ok(Self::Many(list))
    }

    fn as_slice(&self) -> &[WatchedRun] {
        match self {
            Self::One(run) => core::slice::from_ref(run),
            Self::Many(runs) => runs,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [WatchedRun] {
        match self {
            Self::One(run) => core::slice::from_mut(run),
            Self::Many(runs) => runs,
        }
    }

    fn iter(&self) -> core::slice::Iter<'_, WatchedRun> {
        self.as_slice().iter()
    }

    fn iter_mut(&mut self) -> core::slice::IterMut<'_, WatchedRun> {
        self.as_mut_slice().iter_mut()
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }
}

/// The revoker's view of one watched mapping.
///
/// # Invariants
///
/// While `active`, every run that is not `revoked` is mapped in every domain
/// of [`RevokeState::domains`], and in no other domain.
struct WatchState {
    active: bool,
    /// User address and IOVA of the mapping's start.
    vaddr: u64,
    iova: u64,
    prot: i32,
    runs: WatchedRuns,
}

impl WatchState {
    /// Unmaps the runs that are still mapped from `domain`.
    fn unmap_live(&self, domain: &DomainRef) {
        for r in self.runs.iter().filter(|r| !r.revoked) {
            // SAFETY: `RevokeState::domains` only holds live domains, and
            // callers pass one of them or one that is about to leave it.
            unsafe { domain.unmap(r.run.iova, r.run.bytes()) };
        }
    }
}

/// A watched mapping: the key of its notifier and its IOVA.
pub(crate) type WatchKey = (usize, u64);

/// Everything guarded by [`Revoker::state`].
pub(crate) struct RevokeState {
    /// The container's domains, by address, each alive until
    /// `remove_domain` drops it.
    domains: RBTree<usize, DomainRef>,
    /// By the key of the watch's notifier and the mapping's IOVA: the
    /// mappings of one BAR mmap share a notifier.
    watches: RBTree<WatchKey, WatchState>,
    revocations: u64,
    eventfd: Option<EventFd>,
    /// The tree node of the last watch dropped, for the next one: a small
    /// PFNMAP map and unmap then allocate nothing here.
    spare: Option<RBTreeNodeReservation<WatchKey, WatchState>>,
}

/// The PFNMAP revocation state of one container, shared with its watches.
#[pin_data]
pub(crate) struct Revoker {
    #[pin]
    state: Mutex<RevokeState>,
}

impl Revoker {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                state <- new_mutex!(RevokeState {
                    domains: RBTree::new(),
                    watches: RBTree::new(),
                    revocations: 0,
                    eventfd: None,
                    spare: None,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// A new domain: maps every live PFNMAP run into it, then lets
    /// revocations reach it. On error nothing changed.
    pub(crate) fn add_domain(&self, domain: DomainRef) -> Result {
        // Allocated outside the lock (see the module comment).
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;

        let mut guard = self.state.lock();
        let st = &mut *guard;
        let mut failed = None;
        'outer: for (key, w) in st.watches.iter().filter(|(_, w)| w.active) {
            for (i, r) in w.runs.iter().enumerate().filter(|(_, r)| !r.revoked) {
                let run = r.run;
                // SAFETY: `domain` is alive (the caller's); the run is MMIO
                // whose translation this revoker removes before it goes.
                let res = unsafe {
                    domain.map_atomic(run.iova, run.pfn << PAGE_SHIFT, run.bytes(), w.prot)
                };
                if let Err(e) = res {
                    failed = Some((*key, i, e));
                    break 'outer;
                }
            }
        }
        if let Some((failed_key, failed_run, e)) = failed {
            // Undo in the same order: every run before the failed one.
            for (key, w) in st.watches.iter().filter(|(_, w)| w.active) {
                for (i, r) in w.runs.iter().enumerate().filter(|(_, r)| !r.revoked) {
                    if *key == failed_key && i == failed_run {
                        return Err(e);
                    }
                    // SAFETY: `domain` is alive; mapped just above.
                    unsafe { domain.unmap(r.run.iova, r.run.bytes()) };
                }
            }
            return Err(e);
        }
        st.domains.insert(node.into_node(domain.key(), domain));
        Ok(())
    }

    /// A domain is about to be freed: unmaps the live PFNMAP runs from it and
    /// forgets it.
    pub(crate) fn remove_domain(&self, domain: DomainRef) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if st.domains.remove(&domain.key()).is_none() {
            return;
        }
        for w in st.watches.values().filter(|w| w.active) {
            w.unmap_live(&domain);
        }
    }

    /// Sets (`Some`) or clears the eventfd signalled per revocation;
    /// returns the one it replaces and the number of revocations so far.
    pub(crate) fn swap_eventfd(&self, eventfd: Option<EventFd>) -> (Option<EventFd>, u64) {
        let mut guard = self.state.lock();
        let old = core::mem::replace(&mut guard.eventfd, eventfd);
        (old, guard.revocations)
    }

    /// The invalidate callback's work (`watch.rs`): unmaps the live runs of
    /// the mappings watched by notifier `key` whose user addresses overlap
    /// the invalidated range.
    pub(crate) fn invalidate(&self, key: usize, inv: &Invalidation) {
        let mut guard = self.state.lock();
        // Under the lock mappers check `read_retry()` under.
        inv.set_seq();
        let RevokeState {
            domains,
            watches,
            revocations,
            eventfd,
            spare: _,
        } = &mut *guard;
        let mut revoked = false;
        let mut cursor = watches.cursor_lower_bound(&(key, 0));
        while let Some(mut c) = cursor {
            let (k, ws) = c.current_mut();
            if k.0 != key {
                break;
            }
            // Not active: being mapped; the mapper sees the new sequence and
            // retries.
            if ws.active {
                for r in ws.runs.iter_mut().filter(|r| !r.revoked) {
                    let va = ws.vaddr + (r.run.iova - ws.iova);
                    if va >= inv.end || va + r.run.bytes() <= inv.start {
                        continue;
                    }
                    for d in domains.values() {
                        // SAFETY: `RevokeState::domains` only holds live
                        // domains.
                        unsafe { d.unmap(r.run.iova, r.run.bytes()) };
                    }
                    r.revoked = true;
                    revoked = true;
                }
            }
            cursor = c.move_next();
        }
        if revoked {
            *revocations += 1;
            if let Some(e) = eventfd {
                e.signal();
            }
        }
    }
}

/// An mmu interval notifier on a range of a process, shared by the PFNMAP
/// mappings made from it: registered over a BAR mmap's whole vma when its
/// first mapping is made, and kept by [`WatchCache`] for the mappings after
/// it, so that a stream of small maps of one BAR registers it once.
pub(crate) struct RangeWatch {
    notifier: IntervalNotifier,
    /// The mm (identity only: the notifier holds its reference).
    mm: usize,
    start: u64,
    end: u64,
}

impl RangeWatch {
    /// Watches `[start, end)` of `mm` for `revoker`.
    pub(crate) fn new(
        revoker: &Arc<Revoker>,
        mm: &MmRef,
        start: u64,
        end: u64,
    ) -> Result<Arc<Self>> {
        let notifier = IntervalNotifier::new(revoker.clone(), mm, start, end - start)?;
        Ok(Arc::new(
            Self {
                notifier,
                mm: mm.as_ptr() as usize,
                start,
                end,
            },
            GFP_KERNEL,
        )?)
    }

    fn key(&self) -> usize {
        self.notifier.key()
    }
}

/// Entries [`WatchCache`] keeps.
const WATCH_CACHE: usize = 8;

/// The container's most recently used [`RangeWatch`]es, in use or not.
pub(crate) struct WatchCache {
    /// Oldest first.
    recent: KVec<Arc<RangeWatch>>,
}

impl WatchCache {
    pub(crate) fn new() -> Self {
        Self {
            recent: KVec::new(),
        }
    }

    /// A notifier of `mm` that covers `[vaddr, vaddr + size)`, which was
    /// seen to be (or lie in) a VM_PFNMAP vma: the caller can skip finding
    /// that out again. If the memory there changed since, mapping it still
    /// works (a pin that expects PFNMAP pins ordinary memory too).
    pub(crate) fn find(&mut self, mm: &MmRef, vaddr: u64, size: u64) -> Option<Arc<RangeWatch>> {
        let mm = mm.as_ptr() as usize;
        let end = vaddr.checked_add(size)?;
        let i = self
            .recent
            .iter()
            .position(|w| w.mm == mm && w.start <= vaddr && end <= w.end)?;
        let w = self.recent[i].clone();
        // Most recent last.
        self.recent[i..].rotate_left(1);
        Some(w)
    }

    /// Remembers `w`; returns the entry it pushes out, for the caller to
    /// drop (its notifier goes when no mapping holds it either).
    pub(crate) fn insert(&mut self, w: Arc<RangeWatch>) -> Option<Arc<RangeWatch>> {
        if self.recent.len() < WATCH_CACHE {
            // On allocation failure the watch is simply not cached.
            let _ = self.recent.push(w, GFP_KERNEL);
            return None;
        }
        self.recent.rotate_left(1);
        Some(core::mem::replace(&mut self.recent[WATCH_CACHE - 1], w))
    }
}

/// A watch on a mapping's new user range (DMA owner change), registered
/// but not yet holding the mapping's state: [`Revoker::move_watches`] moves
/// the old watch's state to it, or it is dropped and nothing changed.
pub(crate) struct PreparedWatch {
    shared: Arc<RangeWatch>,
    node: RBTreeNodeReservation<WatchKey, WatchState>,
    vaddr: u64,
    /// `read_begin()` before the new range was looked up.
    seq: u64,
}

impl PreparedWatch {
    /// Watches `[vaddr, vaddr + size)` of `mm`. Call before the new range
    /// is looked up: an invalidation after this fails the move.
    pub(crate) fn new(revoker: &Arc<Revoker>, mm: &MmRef, vaddr: u64, size: u64) -> Result<Self> {
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let end = vaddr.checked_add(size).ok_or(EINVAL)?;
        let shared = RangeWatch::new(revoker, mm, vaddr, end)?;
        let seq = shared.notifier.read_begin();
        Ok(Self {
            shared,
            node,
            vaddr,
            seq,
        })
    }
}

impl Revoker {
    /// The DMA owner change's commit for PFNMAP mappings: for every
    /// `(old, new)`, the state of the watch with key `old` moves to `new`
    /// (runs, revoked flags, whether they are mapped; nothing is unmapped or
    /// mapped), all under one hold of the lock. When any new range was
    /// invalidated since it was prepared, nothing moves and the error names
    /// that pair (EAGAIN). The old watches then hold no state: dropping them
    /// unmaps nothing.
    pub(crate) fn move_watches(
        &self,
        moves: KVec<(WatchKey, PreparedWatch)>,
    ) -> core::result::Result<KVec<Watch>, (Error, Option<usize>)> {
        // Allocated outside the lock (see the module comment).
        let mut watches =
            KVec::with_capacity(moves.len(), GFP_KERNEL).map_err(|_| (ENOMEM, None))?;
        let mut guard = self.state.lock();
        if let Some(i) = moves
            .iter()
            .position(|(_, p)| p.shared.notifier.read_retry(p.seq))
        {
            // The prepared notifiers are removed after the unlock: removal
            // waits for a running callback, which takes the lock.
            drop(guard);
            drop(moves);
            return Err((EAGAIN, Some(i)));
        }
        let st = &mut *guard;
        for (old, p) in moves {
            let key = (p.shared.key(), old.1);
            if let Some(mut ws) = st.watches.remove(&old) {
                ws.vaddr = p.vaddr;
                st.watches.insert(p.node.into_node(key, ws));
            }
            // INVARIANT: the state is held under the new notifier's key.
            // `watches` has room for every pair (reserved above), so this
            // push neither allocates nor fails (a failed push would drop
            // the watch here, under the lock).
            let _ = watches.push(
                Watch {
                    shared: p.shared,
                    iova: old.1,
                },
                GFP_NOWAIT,
            );
        }
        drop(guard);
        Ok(watches)
    }
}

/// The watch on one mapping's user range, through a notifier it may share
/// with other mappings of the same BAR mmap.
///
/// # Invariants
///
/// `RevokeState::watches` of the notifier's revoker holds this watch's
/// state under `(shared.key(), iova)` until `drop`.
pub(crate) struct Watch {
    shared: Arc<RangeWatch>,
    iova: u64,
}

impl Watch {
    /// Watches the mapping at `iova`, whose user range starts at `vaddr`,
    /// through `shared`, which covers it.
    pub(crate) fn new(shared: Arc<RangeWatch>, vaddr: u64, iova: u64, prot: i32) -> Result<Self> {
        let state = WatchState {
            active: false,
            vaddr,
            iova,
            prot,
            runs: WatchedRuns::new(),
        };
        let revoker = shared.notifier.revoker();
        let mut guard = revoker.state.lock();
        let node = match guard.spare.take() {
            Some(node) => node,
            None => {
                // Allocated outside the lock (see the module comment).
                drop(guard);
                let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
                guard = revoker.state.lock();
                node
            }
        };
        guard
            .watches
            .insert(node.into_node((shared.key(), iova), state));
        drop(guard);
        // INVARIANT: inserted under the watch's key just now.
        Ok(Self { shared, iova })
    }

    fn state_key(&self) -> WatchKey {
        (self.shared.key(), self.iova)
    }

    /// `mmu_interval_read_begin()`: call before looking the pfns up.
    pub(crate) fn read_begin(&self) -> u64 {
        self.shared.notifier.read_begin()
    }

    /// Identifies the watch to [`Revoker::move_watches`].
    pub(crate) fn key(&self) -> WatchKey {
        self.state_key()
    }

    /// Maps `runs` into every domain unless the range was invalidated since
    /// `seq` (then returns false and maps nothing: look up again).
    pub(crate) fn publish(
        &self,
        seq: u64,
        runs: impl Iterator<Item = PfnRun> + Clone,
    ) -> Result<bool> {
        timed(Stat::Publish, 0, || self.publish_inner(seq, runs))
    }

    fn publish_inner(&self, seq: u64, runs: impl Iterator<Item = PfnRun> + Clone) -> Result<bool> {
        let watched = WatchedRuns::collect(runs)?;
        let mut guard = self.shared.notifier.revoker().state.lock();
        if self.shared.notifier.read_retry(seq) {
            return Ok(false);
        }
        let st = &mut *guard;
        let Some(ws) = st.watches.get_mut(&self.state_key()) else {
            return Err(EINVAL);
        };
        for (di, d) in st.domains.values().enumerate() {
            for (ri, r) in watched.iter().enumerate() {
                // SAFETY: `d` is alive; the pfns were looked up after
                // `seq`, and a later invalidation unmaps them (we hold the
                // lock its callback takes).
                let res = unsafe {
                    d.map_atomic(r.run.iova, r.run.pfn << PAGE_SHIFT, r.run.bytes(), ws.prot)
                };
                if let Err(e) = res {
                    for (dj, dd) in st.domains.values().enumerate().take(di + 1) {
                        let n = if dj == di { ri } else { watched.len() };
                        for rr in watched.iter().take(n) {
                            // SAFETY: alive; mapped just above.
                            unsafe { dd.unmap(rr.run.iova, rr.run.bytes()) };
                        }
                    }
                    return Err(e);
                }
            }
        }
        ws.runs = watched;
        // INVARIANT: every run is mapped in every domain.
        ws.active = true;
        Ok(true)
    }

    /// Bytes of the mapping whose translation was revoked.
    pub(crate) fn revoked_bytes(&self) -> u64 {
        let guard = self.shared.notifier.revoker().state.lock();
        guard.watches.get(&self.state_key()).map_or(0, |ws| {
            ws.runs
                .iter()
                .filter(|r| r.revoked)
                .map(|r| r.run.bytes())
                .sum()
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Unmap what is still mapped and forget the watch, under one hold
        // of the lock.
        let extra = {
            let mut guard = self.shared.notifier.revoker().state.lock();
            let st = &mut *guard;
            let Some(mut entry) = st.watches.find_mut(&self.state_key()) else {
                return;
            };
            let ws = entry.get_mut();
            if ws.active {
                for d in st.domains.values() {
                    ws.unmap_live(d);
                }
                ws.active = false;
            }
            // The state is dropped in its node (freeing a run list frees
            // without reclaim); the node is kept for the next watch.
            let node = entry.remove_node().into_reservation();
            match st.spare {
                None => {
                    st.spare = Some(node);
                    None
                }
                Some(_) => Some(node),
            }
        };
        // When this was the notifier's last user (and the cache let it go),
        // the notifier is removed after this, outside the lock: removal
        // waits for a running callback, which takes the lock.
        drop(extra);
    }
}

/// A reference on an eventfd context.
///
/// # Invariants
///
/// `ptr` holds one reference, dropped by `drop`.
pub(crate) struct EventFd {
    ptr: *mut bindings::eventfd_ctx,
}

// SAFETY: eventfd contexts are refcounted and signalled under their own
// lock from any context.
unsafe impl Send for EventFd {}
// SAFETY: as above: `signal` may run on several CPUs at once.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// The eventfd behind file descriptor `fd` of the calling process.
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        let mut ptr = core::ptr::null_mut();
        // SAFETY: `ptr` is a valid out-pointer.
        to_result(unsafe { bindings::rvfio_eventfd_get(fd, &mut ptr) })?;
        // INVARIANT: eventfd_ctx_fdget() took a reference.
        Ok(Self { ptr })
    }

    /// `eventfd_signal()`; also from hard interrupt context (not on
    /// PREEMPT_RT).
    pub(crate) fn signal(&self) {
        // SAFETY: `ptr` holds a reference (type invariant).
        unsafe { bindings::rvfio_eventfd_signal(self.ptr) }
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: drops the reference the type holds.
        unsafe { bindings::rvfio_eventfd_put(self.ptr) }
    }
}
