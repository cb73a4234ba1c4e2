// SPDX-License-Identifier: GPL-2.0

//! The nesting container (VFIO_TYPE1_NESTING_IOMMU): per attached group,
//! whether hardware nesting would be possible, and the stage-1 table bound
//! to it. Binding, unbinding and invalidating a group's table, and keeping
//! every shadow right when stage 2 (MAP_DMA/UNMAP_DMA) changes.
//!
//! Software nesting only. At attach, rvfio asks the group's IOMMU driver
//! for a nest-parent domain (`Group::probe_nest_parent`) and reports the
//! answer, but serves every bind in software: a hardware path (a nest-parent
//! stage 2 and `domain_alloc_user()` of a nested domain) cannot be tested on
//! any emulated IOMMU, so none is shipped (Documentation/rvfio.rst).
//!
//! - An IOMMU-backed group gets a shadow domain (`shadow.rs`) that maps the
//!   composed translation; the group is switched to it once it is complete,
//!   and back to its stage-2 domain at unbind.
//! - An emulated-IOMMU (mdev) group has no domain: its devices' pin_pages and
//!   dma_rw are translated through the table on every call, and the pins
//!   taken through a translation are remembered by stage-1 IOVA (`S1Pin`),
//!   which plays the IOTLB's part until an invalidation or unbind.
//!
//! Locking: all of it lives in the container's `Inner` and is used under
//! its mutex, which also serialises stage-2 changes.

use crate::container::{sw_msi_base, GroupS2, Inner};
use crate::domain::{Group, IommuDomain};
use crate::faults::{AccessError, Miss};
use crate::iova::IovaRange;
use crate::pin::PAGE_SIZE;
use crate::ring;
use crate::s1_walk::{self, Table};
use crate::shadow::{Shadow, Walked};
use crate::stage2::S2View;
use crate::uapi::*;
use kernel::error::{code::*, Result};
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};

/// A group of a nesting container.
pub(crate) struct NestGroup {
    group: Group,
    id: u32,
    emulated: bool,
    /// The IOMMU driver offered a nest-parent domain.
    hw_capable: bool,
    /// An unbind could not put the group back on its stage-2 domain.
    blocked: bool,
    binding: Option<Binding>,
}

/// A bound stage-1 table.
struct Binding {
    table: Table,
    /// `None` for an emulated-IOMMU group.
    shadow: Option<Shadow>,
    /// A shadow update was cut short or failed and this was logged.
    warned: bool,
}

/// A page pinned through a stage-1 translation by an emulated-IOMMU device:
/// the guest-physical page it translated to, whether that translation was
/// writable, and the pin count.
struct S1Pin {
    gpa: u64,
    writable: bool,
    refs: u32,
}

/// The nesting state of a container (empty unless it is a nesting one).
pub(crate) struct Nest {
    enabled: bool,
    groups: RBTree<usize, NestGroup>,
    /// Pins taken through stage 1, by stage-1 IOVA. They outlive an unbind
    /// (a device that did not unpin when asked still gives them back by
    /// stage-1 IOVA).
    s1_pins: RBTree<u64, S1Pin>,
}

impl Nest {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            groups: RBTree::new(),
            s1_pins: RBTree::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// A node for [`Nest::attached`], allocated before the attach changes
    /// anything (`None` when the container does not nest).
    pub(crate) fn reserve(&self) -> Result<Option<RBTreeNodeReservation<usize, NestGroup>>> {
        if !self.enabled {
            return Ok(None);
        }
        Ok(Some(RBTreeNodeReservation::new(GFP_KERNEL)?))
    }

    /// An emulated-IOMMU group may attach: not while another one is bound
    /// (dma_rw and unpin_pages do not say which group's device calls).
    pub(crate) fn may_attach_emulated(&self) -> Result {
        if self
            .groups
            .values()
            .any(|g| g.emulated && g.binding.is_some())
        {
            return Err(EBUSY);
        }
        Ok(())
    }

    /// `group` is attached now (with `node` from [`Nest::reserve`]).
    pub(crate) fn attached(
        &mut self,
        node: Option<RBTreeNodeReservation<usize, NestGroup>>,
        group: Group,
        emulated: bool,
    ) {
        let Some(node) = node else { return };
        // The hardware-nesting decision: reported, not used (module docs).
        let hw_capable = !emulated
            && match group.probe_nest_parent() {
                Ok(()) => true,
                Err(e) if e == eopnotsupp() => false,
                Err(e) => {
                    pr_info!(
                        "group {}: nest-parent probe failed ({:?}); software nesting\n",
                        group.id(),
                        e
                    );
                    false
                }
            };
        let entry = NestGroup {
            group,
            id: group.id(),
            emulated,
            hw_capable,
            blocked: false,
            binding: None,
        };
        self.groups.insert(node.into_node(group.key(), entry));
    }

    /// `group` is being detached: its binding goes, the group is left on
    /// no domain of ours (its detach continues from there).
    pub(crate) fn detaching(&mut self, group: &Group) {
        let Some(mut g) = self.groups.remove(&group.key()) else {
            return;
        };
        if let Some(shadow) = g.binding.take().and_then(|b| b.shadow) {
            // Blocks the group's DMA; the shadow is freed after it.
            shadow.domain().detach(&g.group);
        }
    }

    /// The container goes: every shadow is detached before any domain is
    /// freed.
    pub(crate) fn teardown(&mut self) {
        while let Some(key) = self.groups.iter().next().map(|(k, _)| *k) {
            if let Some(g) = self.groups.get(&key) {
                let group = g.group;
                self.detaching(&group);
            }
        }
    }

    /// The key of the attached group with IOMMU group id `id`.
    fn key_of(&self, id: u32) -> Result<usize> {
        self.groups
            .iter()
            .find(|(_, g)| g.id == id)
            .map(|(k, _)| *k)
            .ok_or(ENOENT)
    }

    /// RVFIO_NESTING_GROUP_* of a group.
    fn flags_of(g: &NestGroup) -> u32 {
        let mut f = RVFIO_NESTING_GROUP_SOFTWARE;
        if g.hw_capable {
            f |= RVFIO_NESTING_GROUP_HW_CAPABLE;
        }
        if g.emulated {
            f |= RVFIO_NESTING_GROUP_EMULATED;
        }
        if g.binding.is_some() {
            f |= RVFIO_NESTING_GROUP_BOUND;
        }
        if g.blocked {
            f |= RVFIO_NESTING_GROUP_BLOCKED;
        }
        f
    }

    /// The groups for GET_INFO's capability.
    pub(crate) fn cap_groups(&self) -> Result<KVec<crate::caps::NestingGroup>> {
        let mut v = KVec::new();
        for g in self.groups.values() {
            v.push(
                crate::caps::NestingGroup {
                    id: g.id,
                    flags: Self::flags_of(g),
                },
                GFP_KERNEL,
            )?;
        }
        Ok(v)
    }

    // --- Stage-2 changes. ---

    /// Stage 2 is about to unmap `range` and unpin its pages: no shadow may
    /// point into it afterwards. A shadow whose walk read a table page there
    /// loses everything (the full walk after the unmap rebuilds what is
    /// still translatable); otherwise only the units with memory there go.
    pub(crate) fn s2_unmapping(&mut self, range: &IovaRange) {
        for shadow in self.shadows() {
            if shadow.uses_table_in(range) {
                shadow.zap_all();
            } else {
                shadow.zap_gpa(range);
            }
        }
    }

    /// Stage 2 changed (`mapped`: this range was just mapped): shadows that
    /// needed something there, or that are stale, are walked again in full.
    pub(crate) fn s2_changed(&mut self, s2: &mut S2View<'_>, mapped: Option<&IovaRange>) {
        for g in self.groups.values_mut() {
            let id = g.id;
            let Some(b) = &mut g.binding else { continue };
            let Some(shadow) = &mut b.shadow else {
                continue;
            };
            if !shadow.stale && !mapped.is_some_and(|m| shadow.missed_in(m)) {
                continue;
            }
            let result = shadow.rewalk(&b.table, IovaRange::FULL, s2, true);
            shadow.stale = !matches!(result, Ok(Walked::Complete));
            if shadow.stale && !b.warned {
                b.warned = true;
                pr_warn!(
                    "group {}: stage-1 shadow incomplete after a stage-2 change ({}); the rest faults\n",
                    id,
                    match result {
                        Ok(_) => "limits exceeded",
                        Err(_) => "out of memory",
                    }
                );
            }
        }
    }

    fn shadows(&mut self) -> impl Iterator<Item = &mut Shadow> {
        self.groups
            .values_mut()
            .filter_map(|g| g.binding.as_mut().and_then(|b| b.shadow.as_mut()))
    }

    // --- Emulated-IOMMU devices of a bound group. ---

    /// The bound table of `group` when it is bound.
    pub(crate) fn table_of(&self, group: &Group) -> Option<(Table, u32)> {
        let g = self.groups.get(&group.key())?;
        Some((g.binding.as_ref()?.table, g.id))
    }

    /// The bound table of the container's emulated-IOMMU group, when it is
    /// bound (there is then no other emulated group: see
    /// [`Nest::may_attach_emulated`]).
    pub(crate) fn emulated_table(&self) -> Option<(Table, u32)> {
        let g = self
            .groups
            .values()
            .find(|g| g.emulated && g.binding.is_some())?;
        Some((g.binding.as_ref()?.table, g.id))
    }

    /// The guest-physical page a pin at stage-1 `iova` holds and whether
    /// its translation was writable, if there is one.
    pub(crate) fn s1_pin(&self, iova: u64) -> Option<(u64, bool)> {
        self.s1_pins.get(&iova).map(|p| (p.gpa, p.writable))
    }

    /// Records one more pin at stage-1 `iova` on the page at `gpa`.
    pub(crate) fn s1_pin_add(&mut self, iova: u64, gpa: u64, writable: bool) -> Result {
        if let Some(p) = self.s1_pins.get_mut(&iova) {
            p.refs = p.refs.checked_add(1).ok_or(EINVAL)?;
            return Ok(());
        }
        let pin = S1Pin {
            gpa,
            writable,
            refs: 1,
        };
        self.s1_pins.try_create_and_insert(iova, pin, GFP_KERNEL)?;
        Ok(())
    }

    /// Drops one pin at stage-1 `iova`; returns its guest-physical page.
    pub(crate) fn s1_pin_drop(&mut self, iova: u64) -> Option<u64> {
        let p = self.s1_pins.get_mut(&iova)?;
        let gpa = p.gpa;
        p.refs -= 1;
        if p.refs == 0 {
            self.s1_pins.remove(&iova);
        }
        Some(gpa)
    }

    /// The first run of consecutive stage-1 pages at or above stage-1 IOVA
    /// `from` that emulated-IOMMU devices pinned through a stage-1
    /// translation, in stage-1 range `s1` or on pages in guest-physical
    /// range `gpa` (`None`: any): its start and length. Allocates nothing,
    /// so that asking the devices to drop such pins cannot fail.
    pub(crate) fn next_s1_pin_run(
        &self,
        gpa: Option<&IovaRange>,
        s1: Option<&IovaRange>,
        from: u64,
    ) -> Option<(u64, u64)> {
        let mut run: Option<(u64, u64)> = None;
        for (iova, p) in self.s1_pins.iter() {
            if *iova < from {
                continue;
            }
            let by_gpa = gpa.map_or(true, |r| r.start <= p.gpa && p.gpa <= r.end);
            let by_s1 = s1.map_or(true, |r| r.start <= *iova && *iova <= r.end);
            let wanted = by_gpa && by_s1;
            run = match run {
                None if wanted => Some((*iova, PAGE_SIZE)),
                None => None,
                Some((start, len)) if wanted && start.checked_add(len) == Some(*iova) => {
                    Some((start, len + PAGE_SIZE))
                }
                Some(done) => return Some(done),
            };
        }
        run
    }
}

/// The arguments of a bind, checked.
pub(crate) struct BindArgs {
    pub(crate) group_id: u32,
    pub(crate) table: Table,
}

/// RVFIO_IOMMU_NESTING_BIND: builds the group's translation completely,
/// then switches the group to it. On error the group is as before.
/// Returns the group's flags.
pub(crate) fn bind(inner: &mut Inner, args: &BindArgs) -> Result<u32> {
    let key = inner.nest().key_of(args.group_id)?;
    let (dmas, nest, s2dom) = inner.nest_parts(key);
    // dma_rw and unpin_pages do not say which group's device calls: only a
    // container's sole emulated-IOMMU group can be bound.
    let emulated = nest.groups.values().filter(|g| g.emulated).count();
    let g = nest.groups.get_mut(&key).ok_or(ENOENT)?;
    if g.binding.is_some() || (g.emulated && emulated > 1) {
        return Err(EBUSY);
    }
    let mut s2 = S2View::new(dmas);
    s2.check_table(args.table.root())?;
    let shadow = match s2dom {
        None if g.emulated => None,
        None => return Err(EINVAL),
        Some(s2side) => Some(build_and_switch(g, &args.table, &mut s2, &s2side)?),
    };
    g.binding = Some(Binding {
        table: args.table,
        shadow,
        warned: false,
    });
    Ok(Nest::flags_of(g))
}

/// A complete shadow of `table` for `g`, which is attached to it instead of
/// `s2dom` on success; on error `g` is back on `s2dom` (or blocked, logged,
/// when that fails too) and nothing of the shadow remains.
fn build_and_switch(
    g: &mut NestGroup,
    table: &Table,
    s2: &mut S2View<'_>,
    s2side: &GroupS2<'_>,
) -> Result<Shadow> {
    let s2dom = s2side.domain;
    let resv = s2side.resv;
    let mut shadow = Shadow::new(
        &g.group,
        resv,
        sw_msi_base(resv),
        s2side.enforce_cc,
        s2side.fault_token,
    )?;
    if shadow.rewalk(table, IovaRange::FULL, s2, true)? == Walked::Truncated {
        return Err(E2BIG);
    }
    // Make before break: stage 2 is left only once the shadow is whole.
    s2dom.detach(&g.group);
    if let Err(e) = shadow.domain().attach(&g.group) {
        reattach(g, s2dom);
        return Err(e);
    }
    g.blocked = false;
    Ok(shadow)
}

/// Puts `g` back on its stage-2 domain; if that fails, the group stays
/// blocked (safe: no DMA), and the log and GET_INFO say so.
fn reattach(g: &mut NestGroup, s2dom: &IommuDomain) {
    match s2dom.attach(&g.group) {
        Ok(()) => g.blocked = false,
        Err(e) => {
            g.blocked = true;
            pr_warn!(
                "group {}: re-attaching its stage-2 domain failed ({:?}); its DMA stays blocked\n",
                g.id,
                e
            );
        }
    }
}

/// RVFIO_IOMMU_NESTING_UNBIND once the group is known. Returns whether it
/// was an emulated-IOMMU group.
///
/// The group goes back to its stage-2 domain. If attaching that fails
/// (the IOMMU driver allocates on attach), the group is put back on the
/// shadow and the error returned: the call changed nothing. Only when that
/// attach fails as well is the group left unbound on the blocking domain
/// (no DMA; logged, GET_INFO reports it) and the unbind succeeds, because
/// the binding cannot be kept without its shadow attached.
pub(crate) fn unbind(inner: &mut Inner, group_id: u32) -> Result<bool> {
    let key = inner.nest().key_of(group_id)?;
    let (_, nest, s2dom) = inner.nest_parts(key);
    let g = nest.groups.get_mut(&key).ok_or(ENOENT)?;
    let binding = g.binding.as_ref().ok_or(EINVAL)?;
    if let Some(shadow) = &binding.shadow {
        shadow.domain().detach(&g.group);
        match s2dom {
            Some(s2side) => match s2side.domain.attach(&g.group) {
                Ok(()) => g.blocked = false,
                Err(e) => {
                    if shadow.domain().attach(&g.group).is_ok() {
                        return Err(e);
                    }
                    g.blocked = true;
                    pr_warn!(
                        "group {}: unbind: neither its stage-2 domain nor its shadow could be \
                         attached again ({:?}); unbound, its DMA stays blocked\n",
                        g.id,
                        e
                    );
                }
            },
            None => g.blocked = true,
        }
    }
    // The shadow is freed only now that no group is attached to it.
    drop(g.binding.take());
    Ok(g.emulated)
}

/// The group a nesting ioctl names must be bound; returns whether it is an
/// emulated-IOMMU group.
pub(crate) fn bound_kind(inner: &Inner, group_id: u32) -> Result<bool> {
    let nest = inner.nest();
    let key = nest.key_of(group_id)?;
    let g = nest.groups.get(&key).ok_or(ENOENT)?;
    if g.binding.is_none() {
        return Err(EINVAL);
    }
    Ok(g.emulated)
}

/// One invalidation entry's range for the group: its shadow follows the
/// table again there (an emulated group has nothing cached but its pins,
/// which the caller has asked the devices to drop).
pub(crate) fn invalidate(inner: &mut Inner, group_id: u32, range: IovaRange) -> Result {
    let key = inner.nest().key_of(group_id)?;
    let (dmas, nest, _) = inner.nest_parts(key);
    let g = nest.groups.get_mut(&key).ok_or(ENOENT)?;
    let id = g.id;
    let b = g.binding.as_mut().ok_or(EINVAL)?;
    let Some(shadow) = &mut b.shadow else {
        return Ok(());
    };
    let mut s2 = S2View::new(dmas);
    let full = range == IovaRange::FULL;
    if shadow.rewalk(&b.table, range, &mut s2, full)? == Walked::Truncated && !b.warned {
        b.warned = true;
        pr_warn!(
            "group {}: stage-1 walk limits exceeded at an invalidation; the rest faults\n",
            id
        );
    }
    Ok(())
}

/// A stage-1 translation for an emulated-IOMMU device of a bound group.
pub(crate) struct S1Translation {
    /// The guest-physical address of the IOVA asked for.
    pub(crate) gpa: u64,
    /// Bytes from there to the end of its stage-1 leaf.
    pub(crate) bytes: u64,
    pub(crate) writable: bool,
}

/// Translates stage-1 `iova` through `table` for a device of group
/// `group_id`. A hole, and a write to a read-only translation, are stage-1
/// faults of the device (`faults.rs`: recorded in the fault ring with
/// stage 1, or a page request; the access fails with EFAULT or EPERM).
pub(crate) fn translate(
    inner: &mut Inner,
    table: &Table,
    group_id: u32,
    iova: u64,
    write: bool,
) -> core::result::Result<S1Translation, AccessError> {
    let access = if write {
        ring::ACCESS_WRITE
    } else {
        ring::ACCESS_READ
    };
    let group = i32::try_from(group_id).ok();
    let mut s2 = S2View::new(inner.dmas_mut());
    match s1_walk::translate(table, iova, &mut |gpa| s2.read_u64(gpa)) {
        Ok(leaf) if write && !leaf.writable => {
            let miss = Miss::permission(iova, access).stage1();
            Err(Miss { group, ..miss }.into())
        }
        Ok(leaf) => {
            let leaf_end = iova | ((1u64 << leaf.shift) - 1);
            Ok(S1Translation {
                gpa: leaf.gpa,
                bytes: leaf_end - iova + 1,
                writable: leaf.writable,
            })
        }
        Err(_) => {
            let miss = Miss::not_mapped(iova, access).stage1();
            Err(Miss { group, ..miss }.into())
        }
    }
}
