// SPDX-License-Identifier: GPL-2.0

//! The shadow domain of a group bound to a guest's stage-1 table (software
//! nesting): an IOMMU paging domain of the group's own that maps stage-1
//! IOVAs straight to the host-physical pages stage 2 pins, and the record of
//! every unit mapped there (`shadow_plan.rs` has the pure logic).
//!
//! # The invariant
//!
//! No unit ever points at a page that is not pinned by a stage-2 mapping of
//! the container. Units are made only from pinned, non-PFNMAP runs
//! (`stage2.rs`), under the container's mutex, which also serialises every
//! stage-2 change; a stage-2 unmap calls [`Shadow::zap_gpa`] (or
//! [`Shadow::zap_all`]) before the pages are unpinned (`nesting.rs`).

use crate::domain::{Group, IommuDomain, ResvRegion};
use crate::iova::{self, IovaRange, NoMem, RangeSink};
use crate::s1_walk::{Hole, Leaf, Stop, Table, Visit};
use crate::shadow_plan::{self, NewFate, OldFate, Unit, UnitSink};
use crate::stage2::S2View;
use kernel::error::{code::*, Error, Result};
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};

/// Entries one walk may read: 32 MiB of tables.
pub(crate) const WALK_BUDGET: u64 = 1 << 22;
/// Units one shadow may hold.
pub(crate) const MAX_UNITS: usize = 1 << 21;

/// Tree nodes a shadow keeps for reuse.
const SPARE_NODES: usize = 32;

/// Allocations of the shadow are charged to the caller's memory cgroup.
const GFP: kernel::alloc::Flags = GFP_KERNEL_ACCOUNT;

/// The smallest range holding both.
fn hull(a: Option<IovaRange>, b: IovaRange) -> Option<IovaRange> {
    Some(match a {
        None => b,
        Some(a) => IovaRange {
            start: a.start.min(b.start),
            end: a.end.max(b.end),
        },
    })
}

fn overlaps(a: Option<IovaRange>, b: &IovaRange) -> bool {
    a.is_some_and(|a| a.intersect(b).is_some())
}

/// How a walk of a range ended, when it did not fail.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walked {
    /// The range's translation follows the table.
    Complete,
    /// The walk budget or the unit limit ran out: the rest of the range is
    /// left untranslated.
    Truncated,
}

/// The shadow of one bound group.
///
/// # Invariants
///
/// - `units` holds exactly what `domain` maps, one entry per `iommu_map()`
///   call, keyed by IOVA, without overlaps; `count` is their number.
/// - Every unit's memory is pinned by a stage-2 mapping (module docs).
/// - `tables` holds (at least) every table page a unit's walk went
///   through, `targets` the guest-physical addresses of every unit, and
///   `misses` (at least) every guest-physical address a walk needed and
///   stage 2 did not have.
pub(crate) struct Shadow {
    domain: IommuDomain,
    /// Stage-1 IOVAs the domain may map: its aperture minus the group's
    /// reserved regions (the MSI window among them), ascending.
    allowed: KVec<IovaRange>,
    units: RBTree<u64, Unit>,
    count: usize,
    /// Tree nodes of units that went, for the next new units: a guest that
    /// unmaps and maps an entry costs no allocation.
    spare: [Option<RBTreeNodeReservation<u64, Unit>>; SPARE_NODES],
    spare_count: usize,
    tables: RBTree<u64, ()>,
    targets: Option<IovaRange>,
    misses: Option<IovaRange>,
    /// A re-walk after a stage-2 change failed or was cut short: the next
    /// stage-2 change walks everything again.
    pub(crate) stale: bool,
}

struct RangeVec(KVec<IovaRange>);

impl RangeSink for RangeVec {
    fn push_range(&mut self, range: IovaRange) -> core::result::Result<(), NoMem> {
        self.0.push(range, GFP).map_err(|_| NoMem)
    }
}

/// A vector that keeps its first `N` elements inline: an invalidation of a
/// leaf or two allocates nothing.
enum SmallVec<T: Copy + Default, const N: usize> {
    Inline([T; N], usize),
    Heap(KVVec<T>),
}

impl<T: Copy + Default, const N: usize> SmallVec<T, N> {
    fn new() -> Self {
        Self::Inline([T::default(); N], 0)
    }

    fn push(&mut self, v: T) -> Result {
        match self {
            Self::Inline(a, n) if *n < N => {
                a[*n] = v;
                *n += 1;
            }
            Self::Inline(a, n) => {
                let mut heap = KVVec::with_capacity(2 * N, GFP)?;
                heap.extend_from_slice(&a[..*n], GFP)?;
                heap.push(v, GFP)?;
                *self = Self::Heap(heap);
            }
            Self::Heap(h) => h.push(v, GFP)?,
        }
        Ok(())
    }

    fn as_slice(&self) -> &[T] {
        match self {
            Self::Inline(a, n) => &a[..*n],
            Self::Heap(h) => h,
        }
    }
}

/// The table pages one walk entered: the first few inline (a walk of a
/// small range enters one per level), the rest in a tree.
struct Visited {
    inline: [u64; VISITED_INLINE],
    n: usize,
    tree: RBTree<u64, ()>,
}

const VISITED_INLINE: usize = 8;

impl Visited {
    fn new() -> Self {
        Self {
            inline: [0; VISITED_INLINE],
            n: 0,
            tree: RBTree::new(),
        }
    }

    /// Adds `gpa`; false when it was there already.
    fn insert(&mut self, gpa: u64) -> Result<bool> {
        if self.inline[..self.n].contains(&gpa) || self.tree.get(&gpa).is_some() {
            return Ok(false);
        }
        if self.n < VISITED_INLINE {
            self.inline[self.n] = gpa;
            self.n += 1;
        } else {
            self.tree.try_create_and_insert(gpa, (), GFP)?;
        }
        Ok(true)
    }
}

/// Units being composed by a walk.
struct Fresh<'a> {
    units: SmallVec<Unit, 4>,
    limit: usize,
    misses: &'a mut Option<IovaRange>,
    /// Why the sink stopped the walk.
    error: Option<Error>,
}

impl UnitSink for Fresh<'_> {
    fn unit(&mut self, unit: Unit) -> core::result::Result<(), Stop> {
        if self.units.as_slice().len() >= self.limit {
            self.error = Some(E2BIG);
            return Err(Stop);
        }
        self.units.push(unit).map_err(|_| {
            self.error = Some(ENOMEM);
            Stop
        })
    }

    fn miss(&mut self, gpa: IovaRange) {
        *self.misses = hull(*self.misses, gpa);
    }
}

/// The walk's visitor: reads through stage 2, composes leaves into units.
struct Builder<'a, 'b> {
    s2: &'a mut S2View<'b>,
    allowed: &'a [IovaRange],
    /// Table pages this walk entered.
    visited: Visited,
    fresh: Fresh<'a>,
}

impl Visit for Builder<'_, '_> {
    fn read_u64(&mut self, gpa: u64) -> Option<u64> {
        self.s2.read_u64(gpa)
    }

    fn enter_table(&mut self, gpa: u64) -> core::result::Result<bool, Stop> {
        self.visited.insert(gpa).map_err(|_| {
            self.fresh.error = Some(ENOMEM);
            Stop
        })
    }

    fn leaf(&mut self, leaf: &Leaf) -> core::result::Result<(), Stop> {
        shadow_plan::compose(leaf, self.allowed, self.s2, &mut self.fresh)
    }

    fn hole(&mut self, _range: IovaRange, why: Hole) -> core::result::Result<(), Stop> {
        if let Hole::TableUnmapped { table } = why {
            self.fresh.miss(IovaRange {
                start: table,
                end: table | 0xfff,
            });
        }
        Ok(())
    }
}

impl Shadow {
    /// An empty shadow domain for `group`, which `resv` are the reserved
    /// regions of (`sw_msi`: the base of its software MSI window), enforcing
    /// cache coherency when its stage-2 domain does (`enforce_cc`), so that
    /// VFIO_DMA_CC_IOMMU stays true of the container.
    /// Faults of the group's devices on the shadow domain go to the
    /// container's fault hub through `fault_token` (stage 1: they are at
    /// stage-1 IOVAs).
    pub(crate) fn new(
        group: &Group,
        resv: &[ResvRegion],
        sw_msi: Option<u64>,
        enforce_cc: bool,
        fault_token: *const core::ffi::c_void,
    ) -> Result<Self> {
        let mut domain = IommuDomain::alloc_for(group)?;
        // SAFETY: allocated just now, attached to nothing; the token is the
        // container's hub, which outlives the container's domains.
        unsafe { domain.set_fault_handler(fault_token) };
        // Before anything is mapped (VT-d refuses it afterwards).
        if enforce_cc && !domain.enforce_cache_coherency() {
            return Err(EINVAL);
        }
        if let Some(base) = sw_msi {
            domain.get_msi_cookie(base)?;
        }
        // Every reserved region, relaxable ones too: a shadow maps nothing
        // the IOMMU core or the platform keeps for itself.
        let mut reserved = KVec::new();
        for r in resv {
            reserved.push(r.range, GFP)?;
        }
        let mut allowed = RangeVec(KVec::new());
        iova::subtract_reserved(domain.info().aperture, &reserved, &mut allowed)
            .map_err(|_| ENOMEM)?;
        Ok(Self {
            domain,
            allowed: allowed.0,
            units: RBTree::new(),
            count: 0,
            spare: core::array::from_fn(|_| None),
            spare_count: 0,
            tables: RBTree::new(),
            targets: None,
            misses: None,
            stale: false,
        })
    }

    pub(crate) fn domain(&self) -> &IommuDomain {
        &self.domain
    }

    /// Stage-1 IOVAs a walk needs to look at: the allowed ranges' hull.
    fn walkable(&self) -> Option<IovaRange> {
        let first = self.allowed.first()?;
        let last = self.allowed.last()?;
        Some(IovaRange {
            start: first.start,
            end: last.end,
        })
    }

    /// Calls `f` for every unit that overlaps `r`, in IOVA order.
    fn overlapping(&mut self, r: IovaRange, mut f: impl FnMut(&Unit)) {
        let mut cursor = match self.units.cursor_lower_bound(&r.start) {
            Some(c) => {
                if let Some((_, prev)) = c.peek_prev() {
                    if prev.range().end >= r.start {
                        f(prev);
                    }
                }
                Some(c)
            }
            None => {
                if let Some(c) = self.units.cursor_back() {
                    let last = c.current().1;
                    if last.range().end >= r.start {
                        f(last);
                    }
                }
                None
            }
        };
        while let Some(c) = cursor {
            let (k, u) = c.current();
            if *k > r.end {
                break;
            }
            f(u);
            cursor = c.move_next();
        }
    }

    /// Makes the translation of `range` follow `table` as it is now,
    /// changing only the units that differ (`full`: `range` is everything,
    /// and what the shadow remembers about tables and misses starts over).
    /// On `Err` nothing changed, unless mapping a new unit failed: then the
    /// units not mapped are holes and the record says so.
    pub(crate) fn rewalk(
        &mut self,
        table: &Table,
        range: IovaRange,
        s2: &mut S2View<'_>,
        full: bool,
    ) -> Result<Walked> {
        let range = shadow_plan::expand(range, |q| {
            let mut h = None;
            self.overlapping(q, |u| h = hull(h, u.leaf_range()));
            h
        });
        let mut in_range = 0;
        self.overlapping(range, |_| in_range += 1);
        let mut misses = if full { None } else { self.misses };
        let mut b = Builder {
            s2,
            allowed: &self.allowed,
            visited: Visited::new(),
            fresh: Fresh {
                units: SmallVec::new(),
                limit: MAX_UNITS - (self.count - in_range),
                misses: &mut misses,
                error: None,
            },
        };
        let mut walked = Walked::Complete;
        if let Some(w) = self.walkable().and_then(|w| w.intersect(&range)) {
            match table.walk(w, WALK_BUDGET, &mut b) {
                Ok(out) if out.exhausted => walked = Walked::Truncated,
                Ok(_) => {}
                Err(Stop) => match b.fresh.error {
                    // Out of units: what was composed is applied, the rest
                    // of the range stays untranslated.
                    Some(e) if e == E2BIG => walked = Walked::Truncated,
                    Some(e) => return Err(e),
                    None => return Err(ENOMEM),
                },
            }
        }
        let Builder { visited, fresh, .. } = b;
        // The record of table pages is kept exact or larger, so its nodes
        // are allocated before anything changes.
        let mut tables = if full {
            RBTree::new()
        } else {
            core::mem::replace(&mut self.tables, RBTree::new())
        };
        let result = Self::record_tables(&mut tables, visited);
        if full && result.is_err() {
            // Nothing changed: the old record stays.
            return result.map(|()| walked);
        }
        if !full || result.is_ok() {
            self.tables = tables;
        }
        result?;
        self.apply(range, fresh.units.as_slice())?;
        self.misses = misses;
        Ok(walked)
    }

    /// Adds the table pages of `visited` to `tables`.
    fn record_tables(tables: &mut RBTree<u64, ()>, mut visited: Visited) -> Result {
        for gpa in visited.inline[..visited.n].iter() {
            if tables.get(gpa).is_none() {
                tables.try_create_and_insert(*gpa, (), GFP)?;
            }
        }
        loop {
            let Some(k) = visited.tree.keys().next().copied() else {
                return Ok(());
            };
            if let Some(node) = visited.tree.remove_node(&k) {
                tables.insert(node);
            }
        }
    }

    /// The unit at `iova` or the first one after it.
    fn unit_from(&mut self, iova: u64) -> Option<Unit> {
        self.units.cursor_lower_bound(&iova).map(|c| *c.current().1)
    }

    /// Replaces the shadow's units in `range` (which holds them whole) by
    /// `fresh` (sorted, inside `range`): unmaps the ones that changed first
    /// (a new unit may overlap them), then maps the new ones. A removed unit
    /// whose IOVA a new one starts at gives it its tree node; nodes for the
    /// other new ones are allocated before anything changes, so that in the
    /// usual retarget of an entry nothing is allocated at all.
    fn apply(&mut self, range: IovaRange, fresh: &[Unit]) -> Result {
        let need = fresh
            .iter()
            .filter(|u| shadow_plan::new_fate(u, self.units.get(&u.iova)) == NewFate::MapNew)
            .count();
        // The spare nodes only grow until the new units take them.
        let mut nodes = KVVec::new();
        if need > self.spare_count {
            let extra = need - self.spare_count;
            nodes = KVVec::with_capacity(extra, GFP)?;
            for _ in 0..extra {
                nodes.push(RBTreeNodeReservation::new(GFP)?, GFP)?;
            }
        }
        // Nothing below allocates except the IOMMU's page tables.
        let mut from = range.start;
        while let Some(o) = self.unit_from(from) {
            if o.iova > range.end {
                break;
            }
            match shadow_plan::old_fate(&o, fresh) {
                OldFate::Keep => {}
                // The node holds a stale unit until the loop below
                // replaces or removes it.
                OldFate::UnmapReuse => unmap_unit(&self.domain, &o),
                OldFate::Unmap => {
                    unmap_unit(&self.domain, &o);
                    if let Some(node) = self.units.remove_node(&o.iova) {
                        self.count -= 1;
                        self.recycle(node.into_reservation());
                    }
                }
            }
            match o.range().end.checked_add(1) {
                Some(next) => from = next,
                None => break,
            }
        }
        let mut nodes = nodes.into_iter();
        let mut result = Ok(());
        for u in fresh {
            let present = match shadow_plan::new_fate(u, self.units.get(&u.iova)) {
                NewFate::Keep => continue,
                NewFate::MapReuse => true,
                NewFate::MapNew => false,
            };
            let mapped = match result {
                // SAFETY: the unit's memory is pinned by a stage-2 mapping
                // (it was composed from pinned runs under the container's
                // mutex), and the shadow is zapped before any of it is
                // unpinned.
                Ok(()) => unsafe { self.domain.map(u.iova, u.hpa, u.len, prot(u.read, u.write)) },
                Err(e) => Err(e),
            };
            match (mapped, present) {
                (Ok(()), true) => {
                    if let Some(v) = self.units.get_mut(&u.iova) {
                        *v = *u;
                    }
                }
                (Ok(()), false) => match nodes.next().or_else(|| self.take_spare()) {
                    Some(node) => {
                        self.units.insert(node.into_node(u.iova, *u));
                        self.count += 1;
                    }
                    None => {
                        // Cannot happen (one node per such unit); never
                        // leave a mapping the record does not know.
                        unmap_unit(&self.domain, u);
                        continue;
                    }
                },
                (Err(e), present) => {
                    // The rest stays untranslated; the record matches.
                    if present {
                        self.units.remove(&u.iova);
                        self.count -= 1;
                    }
                    result = Err(e);
                    continue;
                }
            }
            self.targets = hull(self.targets, u.gpa_range());
        }
        result
    }

    fn recycle(&mut self, node: RBTreeNodeReservation<u64, Unit>) {
        if self.spare_count < SPARE_NODES {
            self.spare[self.spare_count] = Some(node);
            self.spare_count += 1;
        }
    }

    fn take_spare(&mut self) -> Option<RBTreeNodeReservation<u64, Unit>> {
        let i = self.spare_count.checked_sub(1)?;
        self.spare_count = i;
        self.spare[i].take()
    }

    /// True when a walk went through a table page in `gpa` (stage-2 IOVAs).
    pub(crate) fn uses_table_in(&mut self, gpa: &IovaRange) -> bool {
        match self.tables.cursor_lower_bound(&(gpa.start & !0xfff)) {
            Some(c) => *c.current().0 <= gpa.end,
            None => false,
        }
    }

    /// True when a walk needed a guest-physical address in `gpa` that stage
    /// 2 did not have.
    pub(crate) fn missed_in(&self, gpa: &IovaRange) -> bool {
        overlaps(self.misses, gpa)
    }

    /// Unmaps every unit whose memory lies in `gpa` (stage 2 is about to
    /// unmap it); they become misses. Cannot fail.
    pub(crate) fn zap_gpa(&mut self, gpa: &IovaRange) {
        if !overlaps(self.targets, gpa) {
            return;
        }
        let mut cursor = self.units.cursor_front();
        while let Some(c) = cursor {
            let (k, u) = c.current();
            let (k, u) = (*k, *u);
            if u.gpa_range().intersect(gpa).is_none() {
                cursor = c.move_next();
                continue;
            }
            unmap_unit(&self.domain, &u);
            let (next, node) = c.remove_current();
            drop(node);
            self.count -= 1;
            self.misses = hull(self.misses, u.gpa_range());
            // `remove_current` moves to the previous node when the last one
            // went: then there is nothing after it.
            cursor = next.filter(|n| *n.current().0 > k);
        }
    }

    /// Unmaps everything (a table page is about to leave stage 2): the next
    /// full walk rebuilds what is still translatable. Cannot fail.
    pub(crate) fn zap_all(&mut self) {
        for u in self.units.values() {
            unmap_unit(&self.domain, u);
        }
        self.units = RBTree::new();
        self.count = 0;
        self.targets = None;
        self.stale = true;
    }
}

/// Unmaps one whole unit (never part of one: see `shadow_plan.rs`).
fn unmap_unit(domain: &IommuDomain, u: &Unit) {
    let unmapped = domain.unmap(u.iova, u.len);
    if unmapped != u.len {
        pr_err!(
            "shadow: unmapped {:#x} of {:#x} bytes at iova {:#x}\n",
            unmapped,
            u.len,
            u.iova
        );
    }
}

/// IOMMU_READ / IOMMU_WRITE.
fn prot(read: bool, write: bool) -> i32 {
    let mut p = 0;
    if read {
        p |= crate::dma::PROT_READ;
    }
    if write {
        p |= crate::dma::PROT_WRITE;
    }
    p
}
