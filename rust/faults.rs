// SPDX-License-Identifier: GPL-2.0

//! A container's DMA faults: which ring (if any) they go to, the IOMMU
//! fault handler of the container's domains, and what rvfio's own
//! translation (the emulated-IOMMU path, `emulated.rs`) does on a miss.
//!
//! Every domain the container allocates gets the fault handler (glue.c's
//! `rvfio_fault_handler`, calling [`rvfio_rs_hw_fault`]) before it is
//! attached, once, with the container's [`FaultHub`] as token:
//! `iommu_set_fault_handler()` is two plain stores, so it must not race with
//! a fault. The hub outlives every domain: a domain is freed only after an
//! RCU grace period that follows its detach (`domain.rs`), which waits for
//! handlers still running on it on other CPUs (VT-d reports from hard
//! interrupt context, which the grace period covers; AMD-Vi from a thread,
//! which holds the RCU read lock like every reader here).
//!
//! The hub publishes the current ring through RCU ([`RcuArc`]); the handler
//! borrows it under the read lock. Removing a ring (its fd released, the
//! container closed, a failed create) unpublishes it, waits for a grace
//! period and only then lets it go, so a handler never reaches freed memory,
//! and answers its pending page requests INVALID. None of these steps can
//! fail.

use crate::domain::Group;
use crate::fault_ring::{self, Ring};
use crate::rcu::{RcuArc, RcuReadGuard};
use crate::revoke::EventFd;
use crate::ring::{self, Config, Record, Response};
use core::ffi::c_void;
use kernel::error::{code::*, Error, Result};
use kernel::prelude::*;
use kernel::sync::Arc;

/// The fault state of one container, shared with its ring.
pub(crate) struct FaultHub {
    ring: RcuArc<Ring>,
}

impl FaultHub {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                ring: RcuArc::new(),
            },
            GFP_KERNEL,
        )?)
    }

    /// The fault handler's token: this hub. Valid while the container
    /// holds the hub, which is until its last domain is freed.
    pub(crate) fn token(&self) -> *const c_void {
        core::ptr::from_ref(self).cast()
    }

    /// The token of a shadow domain's handler (nesting.rs): faults there
    /// are at stage-1 IOVAs. The hub's address with its lowest bit set
    /// (the hub is aligned to more than 2 bytes).
    pub(crate) fn stage1_token(&self) -> *const c_void {
        self.token().wrapping_byte_add(STAGE1_TAG)
    }

    /// RVFIO_IOMMU_FAULT_RING: creates and publishes the ring and returns
    /// its fd. EBUSY when there is one already; on any error nothing is
    /// left (the eventfd reference is dropped with the ring).
    pub(crate) fn create(self: &Arc<Self>, cfg: Config, eventfd: Option<EventFd>) -> Result<i32> {
        // Cheap early answer; the publish below is what decides.
        if self.ring.is_published() {
            return Err(EBUSY);
        }
        let ring = Ring::new(cfg, eventfd, self.clone())?;
        if self.ring.publish(ring.clone()).is_err() {
            return Err(EBUSY);
        }
        fault_ring::install_fd(&ring).inspect_err(|_| {
            // Faults may have reached it already: unpublish, then answer
            // any page request.
            self.unpublish(&ring);
            ring.detach();
        })
    }

    /// Stops reporting to `ring` if it is the published one, after every
    /// handler that may still see it has finished.
    pub(crate) fn unpublish(&self, ring: &Arc<Ring>) {
        drop(self.ring.take(Some(core::ptr::from_ref(&**ring))));
    }

    /// The container goes away: its ring (if any) is detached. The ring fd
    /// stays usable for reading what was recorded and reports EPOLLHUP.
    pub(crate) fn shutdown(&self) {
        if let Some(ring) = self.ring.take(None) {
            ring.detach();
        }
    }

    /// A miss of rvfio's own translation (the emulated-IOMMU path). Records
    /// it, or with page requests turns it into one and waits for the answer.
    /// `Ok(())`: translate again (user space fixed the mapping); otherwise
    /// the access fails with the miss's error. `asked` is the IOVA of this
    /// access's previous page request: no new one is raised at or below it.
    ///
    /// Must be called without the container's lock: the wait lets user
    /// space map the IOVA.
    pub(crate) fn translation_fault(&self, miss: &Miss, asked: &mut Option<u64>) -> Result {
        let Some(ring) = self.ring.get_arc() else {
            return Err(miss.error);
        };
        let mut rec = Record {
            kind: ring::KIND_DMA as u16,
            flags: ring::REC_EMULATED,
            access: miss.access,
            stage: miss.stage,
            reason: miss.reason,
            iova: miss.iova,
            group_id: -1,
            ..Record::default()
        };
        if let Some(id) = miss.group {
            rec.flags |= ring::REC_GROUP_VALID;
            rec.group_id = id;
        }
        let cfg = ring.config();
        if cfg.page_requests() && ring::may_request(*asked, miss.iova) {
            rec.kind = ring::KIND_PAGE_REQ as u16;
            *asked = Some(miss.iova);
            let Some(request) = ring.request_page(rec) else {
                return Err(miss.error);
            };
            drop(ring);
            return match request.wait() {
                Response::Success => Ok(()),
                Response::Invalid | Response::Failure => Err(miss.error),
            };
        }
        if cfg.reports(ring::KIND_DMA) {
            ring.push(rec);
        }
        Err(miss.error)
    }
}

/// The container's hold on its [`FaultHub`]: shuts the hub down when the
/// container goes.
pub(crate) struct FaultHandle(Arc<FaultHub>);

impl FaultHandle {
    pub(crate) fn new(hub: Arc<FaultHub>) -> Self {
        Self(hub)
    }

    pub(crate) fn hub(&self) -> &Arc<FaultHub> {
        &self.0
    }
}

impl Drop for FaultHandle {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// The tag of [`FaultHub::stage1_token`].
const STAGE1_TAG: usize = 1;
const _: () = assert!(core::mem::align_of::<FaultHub>() > STAGE1_TAG);

/// A translation miss of an emulated-IOMMU access.
#[derive(Clone, Copy)]
pub(crate) struct Miss {
    pub(crate) iova: u64,
    /// `ring::ACCESS_*`.
    pub(crate) access: u8,
    /// `ring::REASON_NOT_MAPPED` or `ring::REASON_PERMISSION`.
    pub(crate) reason: u8,
    /// The device's IOMMU group id, when known.
    pub(crate) group: Option<i32>,
    /// `ring::STAGE_2`, or `ring::STAGE_1` for a hole of a bound guest
    /// page table (nesting.rs).
    pub(crate) stage: u8,
    /// What the access fails with (type1's errno: EINVAL, EPERM).
    pub(crate) error: Error,
}

impl Miss {
    /// Nothing mapped at `iova`: EINVAL.
    pub(crate) fn not_mapped(iova: u64, access: u8) -> Self {
        Self {
            iova,
            access,
            reason: ring::REASON_NOT_MAPPED,
            group: None,
            stage: ring::STAGE_2,
            error: EINVAL,
        }
    }

    /// Mapped without `access`: EPERM.
    pub(crate) fn permission(iova: u64, access: u8) -> Self {
        Self {
            reason: ring::REASON_PERMISSION,
            error: EPERM,
            ..Self::not_mapped(iova, access)
        }
    }

    /// The same miss, by a device of `group` (`None`: unknown).
    pub(crate) fn by(self, group: Option<Group>) -> Self {
        Self {
            group: group.and_then(|g| i32::try_from(g.id()).ok()),
            ..self
        }
    }

    /// The same miss, in a bound guest page table (stage 1): a hole fails
    /// the access with EFAULT, a read-only entry with EPERM.
    pub(crate) fn stage1(self) -> Self {
        let error = if self.reason == ring::REASON_PERMISSION {
            EPERM
        } else {
            EFAULT
        };
        Self {
            stage: ring::STAGE_1,
            error,
            ..self
        }
    }
}

/// Why an emulated-IOMMU access failed.
pub(crate) enum AccessError {
    /// Any error but a translation miss.
    Err(Error),
    /// A translation miss (see [`FaultHub::translation_fault`]).
    Miss(Miss),
}

impl From<Error> for AccessError {
    fn from(e: Error) -> Self {
        Self::Err(e)
    }
}

impl From<Miss> for AccessError {
    fn from(m: Miss) -> Self {
        Self::Miss(m)
    }
}

/// `ring::ACCESS_*` for an `IOMMU_READ`/`IOMMU_WRITE` protection.
pub(crate) fn access_of_prot(prot: i32) -> u8 {
    let mut access = 0;
    if prot & crate::bindings::IOMMU_READ != 0 {
        access |= ring::ACCESS_READ;
    }
    if prot & crate::bindings::IOMMU_WRITE != 0 {
        access |= ring::ACCESS_WRITE;
    }
    access
}

/// What `report_iommu_fault()` returns without a handler: -ENOSYS (not in
/// the 6.12 kernel crate's errno list).
const NOT_TAKEN: i32 = -(crate::bindings::ENOSYS as i32);

/// The IOMMU fault handler's work (glue.c's `rvfio_fault_handler`): records
/// a fault the IOMMU driver reported on one of the container's domains.
/// Runs in hard interrupt context on VT-d: no sleeping, no allocation.
/// Returns 0 when the fault was taken (recorded or counted as lost), or
/// -ENOSYS, as `report_iommu_fault()` does without a handler, so that the
/// driver logs it as before.
#[no_mangle]
extern "C" fn rvfio_rs_hw_fault(
    token: *const c_void,
    iova: u64,
    flags: i32,
    group_id: i32,
    pci_segment: i32,
    pci_rid: u16,
) -> i32 {
    // A shadow domain's token is tagged: its faults are at stage-1 IOVAs.
    let stage = if token as usize & STAGE1_TAG != 0 {
        ring::STAGE_1
    } else {
        ring::STAGE_2
    };
    let token = (token as usize & !STAGE1_TAG) as *const c_void;
    // SAFETY: `token` is the hub installed with the handler (untagged just
    // now), which outlives the domain's use (see the module documentation).
    let hub = unsafe { &*token.cast::<FaultHub>() };
    let rcu = RcuReadGuard::new();
    let Some(ring) = hub.ring.get(&rcu) else {
        return NOT_TAKEN;
    };
    if !ring.config().reports(ring::KIND_DMA) {
        return NOT_TAKEN;
    }
    let mut rec = Record {
        kind: ring::KIND_DMA as u16,
        access: ring::hw_access(flags),
        stage,
        reason: ring::REASON_HW,
        iova,
        group_id: -1,
        ..Record::default()
    };
    if group_id >= 0 {
        rec.flags |= ring::REC_GROUP_VALID;
        rec.group_id = group_id;
    }
    if let Ok(segment) = u32::try_from(pci_segment) {
        rec.flags |= ring::REC_RID_VALID;
        rec.requester_id = segment << 16 | u32::from(pci_rid);
    }
    ring.push(rec);
    drop(rcu);
    0
}
