// SPDX-License-Identifier: GPL-2.0

//! A `struct vfio_device` registered with the container by vfio core
//! (`ops->register_device`): an emulated-IOMMU device whose `dma_unmap`
//! callback rvfio calls before unmapping what it may have pinned.

use crate::bindings;

/// A registered `vfio_device`.
///
/// vfio core calls `unregister_device` before the device goes away, and
/// rvfio only uses the pointer under `Container::devices`, which
/// `unregister_device` takes too.
#[derive(Clone, Copy)]
pub(crate) struct VfioDevice(*mut bindings::vfio_device);

// SAFETY: only used under `Container::devices` while registered (see above).
unsafe impl Send for VfioDevice {}

impl VfioDevice {
    /// # Safety
    ///
    /// `ptr` is a live `vfio_device` that stays registered with this
    /// container until `unregister_device` is called for it.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::vfio_device) -> Self {
        Self(ptr)
    }

    /// Identity for lookups.
    pub(crate) fn key(&self) -> usize {
        self.0 as usize
    }

    pub(crate) fn has_dma_unmap(&self) -> bool {
        // SAFETY: live per the type's contract.
        unsafe { bindings::rvfio_vdev_has_dma_unmap(self.0) }
    }

    pub(crate) fn dma_unmap(&self, iova: u64, length: u64) {
        // SAFETY: live per the type's contract.
        unsafe { bindings::rvfio_vdev_dma_unmap(self.0, iova, length) }
    }
}
