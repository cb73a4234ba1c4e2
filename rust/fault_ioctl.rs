// SPDX-License-Identifier: GPL-2.0

//! RVFIO_IOMMU_FAULT_RING (`include/uapi/linux/rvfio.h`): creates the
//! container's fault ring (`faults.rs`, `fault_ring.rs`) and returns its fd.

use crate::bindings;
use crate::container::Container;
use crate::ioctl::read_fixed;
use crate::revoke::EventFd;
use crate::ring::{self, CreateArgs, CreateError};
use crate::uapi::FaultRingCreate;
use kernel::error::{code::*, Error, Result};
use kernel::uaccess::UserPtr;

/// Checks the request, takes the eventfd, creates the ring: the new fd.
/// Nothing is written back.
pub(crate) fn create_ring(container: &Container, arg: UserPtr) -> Result<isize> {
    let a: FaultRingCreate = read_fixed(arg)?;
    let cfg = ring::check_create(&CreateArgs {
        flags: a.flags,
        entries: a.entries,
        eventfd: a.eventfd,
        kinds: a.kinds,
        timeout_ms: a.timeout_ms,
    })
    .map_err(|e| match e {
        CreateError::Invalid => EINVAL,
        // Not in the 6.12 kernel crate's list.
        CreateError::NotSupported => Error::from_errno(-(bindings::EOPNOTSUPP as i32)),
    })?;
    // EBADF for a number that is no open file, EINVAL for another file.
    let eventfd = cfg.eventfd.map(EventFd::from_fd).transpose()?;
    // The hub is reached through `inner` only to find it.
    let hub = container.lock().faults().clone();
    hub.create(cfg, eventfd).map(|fd| fd as isize)
}
