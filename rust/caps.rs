// SPDX-License-Identifier: GPL-2.0

//! The capability chain of `VFIO_IOMMU_GET_INFO`, laid out byte for byte as
//! type1 lays it out (no kernel dependency; tested on the host).
//!
//! type1 builds the chain with `vfio_info_cap_add()`, which pads every
//! capability to a multiple of 8 bytes, links each header's `next` to the
//! following capability and leaves the last `next` at 0, then shifts every
//! `next` by `sizeof(struct vfio_iommu_type1_info)` (24) because the chain is
//! copied right after the info struct. Order: MIGRATION (when dirty tracking
//! is offered), DMA_AVAIL, IOVA_RANGE (only when the valid list is not empty),
//! then rvfio's own NESTING (nesting containers only).

use crate::iova::IovaRange;

/// `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`.
pub(crate) const CAP_IOVA_RANGE: u16 = 1;
/// `VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION`.
pub(crate) const CAP_MIGRATION: u16 = 2;
/// `VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL`.
pub(crate) const CAP_DMA_AVAIL: u16 = 3;

/// `RVFIO_IOMMU_INFO_CAP_NESTING` (include/uapi/linux/rvfio.h).
pub(crate) const CAP_NESTING: u16 = 0x726e;

/// `struct rvfio_iommu_info_cap_nesting` without its groups: header, u32
/// flags, nr_groups, data_types, inv_data_types, u64 addr_widths,
/// vtd_s1_flags, pgsizes.
pub(crate) const NESTING_SIZE: usize = 48;
/// `struct rvfio_nesting_group`: u32 group_id, u32 flags.
pub(crate) const NESTING_GROUP_SIZE: usize = 8;

/// `sizeof(struct vfio_iommu_type1_info)`: where the chain starts.
pub(crate) const INFO_SIZE: usize = 24;

/// `struct vfio_iommu_type1_info_cap_migration`: header, u32 flags, padding,
/// u64 pgsize_bitmap, u64 max_dirty_bitmap_size.
const MIGRATION_SIZE: usize = 32;
/// `struct vfio_iommu_type1_info_dma_avail`: header, u32 avail (12, padded to 16).
const DMA_AVAIL_SIZE: usize = 12;
/// `struct vfio_iommu_type1_info_cap_iova_range` without its ranges: header,
/// u32 nr_iovas, u32 reserved.
const IOVA_RANGE_SIZE: usize = 16;
/// `struct vfio_iova_range`: u64 start, u64 end.
const IOVA_SIZE: usize = 16;

/// type1's `DIRTY_BITMAP_SIZE_MAX`: a bitmap for `INT_MAX` pages, in bytes.
pub(crate) const DIRTY_BITMAP_SIZE_MAX: u64 = ((i32::MAX as u64 + 63) & !63) / 8;

/// What GET_INFO reports beyond the page sizes.
pub(crate) struct InfoCaps<'a> {
    /// `Some(min page size)` when the MIGRATION capability is offered.
    pub(crate) migration_pgsize: Option<u64>,
    /// Remaining `dma_entry_limit` budget.
    pub(crate) dma_avail: u32,
    /// The valid IOVA list; the capability is left out when it is empty.
    pub(crate) iovas: &'a [IovaRange],
    /// The NESTING capability of a nesting container.
    pub(crate) nesting: Option<NestingCap<'a>>,
}

/// The fields of `struct rvfio_iommu_info_cap_nesting`.
pub(crate) struct NestingCap<'a> {
    pub(crate) flags: u32,
    pub(crate) data_types: u32,
    pub(crate) inv_data_types: u32,
    pub(crate) addr_widths: u64,
    pub(crate) vtd_s1_flags: u64,
    pub(crate) pgsizes: u64,
    pub(crate) groups: &'a [NestingGroup],
}

/// `struct rvfio_nesting_group`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NestingGroup {
    pub(crate) id: u32,
    pub(crate) flags: u32,
}

const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

impl InfoCaps<'_> {
    fn iova_cap_size(&self) -> usize {
        align8(IOVA_RANGE_SIZE + IOVA_SIZE * self.iovas.len())
    }

    /// Bytes of the whole chain; 0 when there are no capabilities.
    pub(crate) fn len(&self) -> usize {
        let mut n = align8(DMA_AVAIL_SIZE);
        if self.migration_pgsize.is_some() {
            n += MIGRATION_SIZE;
        }
        if !self.iovas.is_empty() {
            n += self.iova_cap_size();
        }
        if let Some(nest) = &self.nesting {
            n += NESTING_SIZE + NESTING_GROUP_SIZE * nest.groups.len();
        }
        n
    }

    /// Writes the chain into `buf` (exactly [`Self::len`] bytes, zeroed by
    /// the caller) with `next` offsets as seen from the start of the info
    /// struct, i.e. already shifted by [`INFO_SIZE`].
    pub(crate) fn write(&self, buf: &mut [u8]) {
        let mut w = Writer {
            buf,
            pos: 0,
            last_header: None,
        };
        if let Some(pgsize) = self.migration_pgsize {
            w.header(CAP_MIGRATION);
            w.u32_at(8, 0); // flags
            w.u64_at(16, pgsize);
            w.u64_at(24, DIRTY_BITMAP_SIZE_MAX);
            w.advance(MIGRATION_SIZE);
        }
        w.header(CAP_DMA_AVAIL);
        w.u32_at(8, self.dma_avail);
        w.advance(align8(DMA_AVAIL_SIZE));
        if !self.iovas.is_empty() {
            w.header(CAP_IOVA_RANGE);
            // `iovas.len()` is bounded by the number of reserved regions.
            w.u32_at(8, self.iovas.len() as u32);
            for (i, r) in self.iovas.iter().enumerate() {
                w.u64_at(IOVA_RANGE_SIZE + i * IOVA_SIZE, r.start);
                w.u64_at(IOVA_RANGE_SIZE + i * IOVA_SIZE + 8, r.end);
            }
            w.advance(self.iova_cap_size());
        }
        if let Some(nest) = &self.nesting {
            w.header(CAP_NESTING);
            w.u32_at(8, nest.flags);
            // The groups of one container: a handful.
            w.u32_at(12, nest.groups.len() as u32);
            w.u32_at(16, nest.data_types);
            w.u32_at(20, nest.inv_data_types);
            w.u64_at(24, nest.addr_widths);
            w.u64_at(32, nest.vtd_s1_flags);
            w.u64_at(40, nest.pgsizes);
            for (i, g) in nest.groups.iter().enumerate() {
                w.u32_at(NESTING_SIZE + i * NESTING_GROUP_SIZE, g.id);
                w.u32_at(NESTING_SIZE + i * NESTING_GROUP_SIZE + 4, g.flags);
            }
            w.advance(NESTING_SIZE + NESTING_GROUP_SIZE * nest.groups.len());
        }
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    last_header: Option<usize>,
}

impl Writer<'_> {
    /// Starts a capability at `pos` and links the previous one to it.
    fn header(&mut self, id: u16) {
        if let Some(prev) = self.last_header {
            // `next` is relative to the start of the info struct.
            self.put(prev + 4, &((INFO_SIZE + self.pos) as u32).to_ne_bytes());
        }
        self.put(self.pos, &id.to_ne_bytes());
        self.put(self.pos + 2, &1u16.to_ne_bytes()); // version
        self.last_header = Some(self.pos);
    }

    fn u32_at(&mut self, off: usize, v: u32) {
        self.put(self.pos + off, &v.to_ne_bytes());
    }

    fn u64_at(&mut self, off: usize, v: u64) {
        self.put(self.pos + off, &v.to_ne_bytes());
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    fn u16_at(b: &[u8], o: usize) -> u16 {
        u16::from_ne_bytes(b[o..o + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_ne_bytes(b[o..o + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_ne_bytes(b[o..o + 8].try_into().unwrap())
    }

    #[test]
    fn chain_without_migration_has_type1_layout() {
        let iovas = [
            IovaRange {
                start: 0,
                end: 0xfedf_ffff,
            },
            IovaRange {
                start: 0xfef0_0000,
                end: 0xffff_ffff_ffff,
            },
        ];
        let caps = InfoCaps {
            migration_pgsize: None,
            dma_avail: 65534,
            iovas: &iovas,
            nesting: None,
        };
        assert_eq!(caps.len(), 16 + 16 + 32);
        let mut b = vec![0u8; caps.len()];
        caps.write(&mut b);
        // DMA_AVAIL at info offset 24, linked to IOVA_RANGE at 24 + 16.
        assert_eq!(u16_at(&b, 0), CAP_DMA_AVAIL);
        assert_eq!(u16_at(&b, 2), 1);
        assert_eq!(u32_at(&b, 4), 40);
        assert_eq!(u32_at(&b, 8), 65534);
        assert_eq!(u16_at(&b, 16), CAP_IOVA_RANGE);
        assert_eq!(u32_at(&b, 20), 0, "last capability ends the chain");
        assert_eq!(u32_at(&b, 24), 2);
        assert_eq!(u64_at(&b, 32), 0);
        assert_eq!(u64_at(&b, 40), 0xfedf_ffff);
        assert_eq!(u64_at(&b, 48), 0xfef0_0000);
        assert_eq!(u64_at(&b, 56), 0xffff_ffff_ffff);
    }

    #[test]
    fn chain_with_migration_first_and_no_iovas() {
        let caps = InfoCaps {
            migration_pgsize: Some(4096),
            dma_avail: 7,
            iovas: &[],
            nesting: None,
        };
        assert_eq!(caps.len(), 32 + 16);
        let mut b = vec![0u8; caps.len()];
        caps.write(&mut b);
        assert_eq!(u16_at(&b, 0), CAP_MIGRATION);
        assert_eq!(u32_at(&b, 4), 24 + 32);
        assert_eq!(u64_at(&b, 16), 4096);
        assert_eq!(u64_at(&b, 24), 256 << 20);
        assert_eq!(u16_at(&b, 32), CAP_DMA_AVAIL);
        assert_eq!(u32_at(&b, 36), 0);
        assert_eq!(u32_at(&b, 40), 7);
    }

    #[test]
    fn nesting_capability_comes_last() {
        let iovas = [IovaRange {
            start: 0,
            end: 0xfedf_ffff,
        }];
        let groups = [
            NestingGroup { id: 7, flags: 1 },
            NestingGroup { id: 9, flags: 9 },
        ];
        let caps = InfoCaps {
            migration_pgsize: None,
            dma_avail: 3,
            iovas: &iovas,
            nesting: Some(NestingCap {
                flags: 1,
                data_types: 2,
                inv_data_types: 1,
                addr_widths: (1 << 48) | (1 << 57),
                vtd_s1_flags: 5,
                pgsizes: 0x4020_1000,
                groups: &groups,
            }),
        };
        assert_eq!(caps.len(), 16 + 32 + 48 + 16);
        let mut b = vec![0u8; caps.len()];
        caps.write(&mut b);
        // IOVA_RANGE (at chain offset 16) links to NESTING at 16 + 32.
        assert_eq!(u16_at(&b, 16), CAP_IOVA_RANGE);
        assert_eq!(u32_at(&b, 20), (INFO_SIZE + 48) as u32);
        let n = 48;
        assert_eq!(u16_at(&b, n), CAP_NESTING);
        assert_eq!(u16_at(&b, n + 2), 1);
        assert_eq!(u32_at(&b, n + 4), 0, "last capability ends the chain");
        assert_eq!(u32_at(&b, n + 8), 1);
        assert_eq!(u32_at(&b, n + 12), 2);
        assert_eq!(u32_at(&b, n + 16), 2);
        assert_eq!(u32_at(&b, n + 20), 1);
        assert_eq!(u64_at(&b, n + 24), (1 << 48) | (1 << 57));
        assert_eq!(u64_at(&b, n + 32), 5);
        assert_eq!(u64_at(&b, n + 40), 0x4020_1000);
        assert_eq!(u32_at(&b, n + 48), 7);
        assert_eq!(u32_at(&b, n + 52), 1);
        assert_eq!(u32_at(&b, n + 56), 9);
        assert_eq!(u32_at(&b, n + 60), 9);
    }
}
