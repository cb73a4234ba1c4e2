// SPDX-License-Identifier: GPL-2.0

//! rvfio's own container ioctls for PFNMAP revocation
//! (`include/uapi/linux/rvfio.h`): RVFIO_IOMMU_DMA_QUERY and
//! RVFIO_IOMMU_REVOKE_EVENTFD.

use crate::container::Container;
use crate::ioctl::read_fixed;
use crate::revoke::EventFd;
use crate::uapi::*;
use core::mem::size_of;
use kernel::error::{code::*, Result};
use kernel::uaccess::{UserPtr, UserSlice};

/// Describes the mapping containing `iova`: ENOENT when there is none.
pub(crate) fn dma_query(container: &Container, arg: UserPtr) -> Result {
    let mut q: DmaQuery = read_fixed(arg)?;
    if q.flags != 0 {
        return Err(EINVAL);
    }
    let (range, pfnmap) = container.lock().pfnmap_query(q.iova).ok_or(ENOENT)?;
    q.iova = range.start;
    q.size = range.end - range.start + 1;
    q.revoked_bytes = pfnmap.unwrap_or(0);
    if pfnmap.is_some() {
        q.flags |= RVFIO_DMA_QUERY_PFNMAP;
    }
    if q.revoked_bytes != 0 {
        q.flags |= RVFIO_DMA_QUERY_REVOKED;
    }
    UserSlice::new(arg, size_of::<DmaQuery>())
        .writer()
        .write(&q)
}

/// Sets (fd >= 0) or clears (fd == -1) the revocation eventfd.
pub(crate) fn revoke_eventfd(container: &Container, arg: UserPtr) -> Result {
    let mut r: RevokeEventfd = read_fixed(arg)?;
    if r.flags != 0 || r.reserved != 0 || r.fd < -1 {
        return Err(EINVAL);
    }
    let eventfd = match r.fd {
        -1 => None,
        fd => Some(EventFd::from_fd(fd)?),
    };
    // The revoker is reached through `inner` only to find it; it is not
    // held while the eventfd is swapped.
    let revoker = container.lock().revoker().clone();
    let (old, revocations) = revoker.swap_eventfd(eventfd);
    r.revocations = revocations;
    let written = UserSlice::new(arg, size_of::<RevokeEventfd>())
        .writer()
        .write(&r);
    if written.is_err() {
        // EFAULT changes nothing: the old eventfd goes back (the new one is
        // dropped outside the revoker's lock).
        drop(revoker.swap_eventfd(old));
    }
    written
}
