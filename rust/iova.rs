// SPDX-License-Identifier: GPL-2.0

//! IOVA arithmetic with no kernel dependency (also built and tested on the
//! host by `rust/host`): argument checks for MAP/UNMAP, and the list of valid
//! IOVA ranges (type1's `iova_list`).
//!
//! The valid list is the intersection of every domain's aperture minus every
//! attached group's non-relaxable reserved regions. type1 keeps it up to date
//! incrementally (resize on attach, expand and refresh on detach); rvfio
//! recomputes it from the attached groups, which gives the same list.

/// An inclusive range of IOVAs, `[start, end]`, like type1's `struct
/// vfio_iova` and the uapi `struct vfio_iova_range`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IovaRange {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl IovaRange {
    /// The range `[start, start + len - 1]`, or `None` when `len` is 0 or
    /// the range wraps past the end of the address space.
    pub(crate) fn from_len(start: u64, len: u64) -> Option<Self> {
        let end = start.checked_add(len.checked_sub(1)?)?;
        Some(Self { start, end })
    }

    /// The whole 64-bit IOVA space.
    pub(crate) const FULL: Self = Self {
        start: 0,
        end: u64::MAX,
    };

    /// True when `other` lies entirely inside `self`.
    pub(crate) fn contains(&self, other: &IovaRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Intersection of two ranges, `None` when they are disjoint.
    pub(crate) fn intersect(&self, other: &IovaRange) -> Option<IovaRange> {
        let r = IovaRange {
            start: self.start.max(other.start),
            end: self.end.min(other.end),
        };
        (r.start <= r.end).then_some(r)
    }
}

/// Allocation failure while building a range list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NoMem;

/// Where computed ranges go: a `KVec` in the kernel, a `Vec` on the host.
pub(crate) trait RangeSink {
    /// Appends `range`.
    fn push_range(&mut self, range: IovaRange) -> Result<(), NoMem>;
}

/// Writes `aperture` minus every range in `reserved` (which may overlap each
/// other and be in any order) into `out`, in ascending order. Returns the
/// number of ranges written; 0 means nothing is left, which type1's attach
/// refuses with EINVAL.
///
/// Quadratic in the number of reserved regions, which is a handful.
pub(crate) fn subtract_reserved<S: RangeSink>(
    aperture: IovaRange,
    reserved: &[IovaRange],
    out: &mut S,
) -> Result<usize, NoMem> {
    let mut written = 0;
    let mut cursor = aperture.start;
    loop {
        // The lowest-starting reserved region that still matters at `cursor`.
        let next = reserved
            .iter()
            .filter(|r| r.end >= cursor && r.start <= aperture.end)
            .min_by_key(|r| r.start);
        let Some(r) = next else {
            out.push_range(IovaRange {
                start: cursor,
                end: aperture.end,
            })?;
            return Ok(written + 1);
        };
        if r.start > cursor {
            out.push_range(IovaRange {
                start: cursor,
                end: r.start - 1,
            })?;
            written += 1;
        }
        if r.end >= aperture.end {
            return Ok(written);
        }
        cursor = r.end + 1;
    }
}

/// type1's `vfio_iommu_iova_dma_valid()`: with an empty list (no IOMMU group
/// attached yet) every range is valid; otherwise `range` must fit entirely in
/// one valid range.
pub(crate) fn dma_range_valid(valid: &[IovaRange], range: &IovaRange) -> bool {
    valid.is_empty() || valid.iter().any(|v| v.contains(range))
}

/// The smallest page size in `pgsize_bitmap` (type1: `1 << __ffs(bitmap)`).
/// The bitmap always has PAGE_SIZE set, so it is never 0.
pub(crate) fn min_pgsize(pgsize_bitmap: u64) -> u64 {
    1u64 << pgsize_bitmap.trailing_zeros().min(63)
}

/// MAP_DMA's argument checks (type1's `vfio_dma_do_map()`): `size` non-zero,
/// `iova`, `vaddr` and `size` aligned to `pgsize`, no wrap of either range.
/// Returns the IOVA range on success.
pub(crate) fn check_map(iova: u64, vaddr: u64, size: u64, pgsize: u64) -> Option<IovaRange> {
    if size == 0 || (size | iova | vaddr) & (pgsize - 1) != 0 {
        return None;
    }
    IovaRange::from_len(vaddr, size)?;
    IovaRange::from_len(iova, size)
}

/// UNMAP_DMA's argument checks (type1's `vfio_dma_do_unmap()`). With `all`,
/// `iova` and `size` must both be 0 and the whole space is meant. Returns the
/// IOVA range the request covers.
pub(crate) fn check_unmap(iova: u64, size: u64, all: bool, pgsize: u64) -> Option<IovaRange> {
    if iova & (pgsize - 1) != 0 {
        return None;
    }
    if all {
        return (iova == 0 && size == 0).then_some(IovaRange::FULL);
    }
    if size == 0 || size & (pgsize - 1) != 0 {
        return None;
    }
    IovaRange::from_len(iova, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    impl RangeSink for Vec<IovaRange> {
        fn push_range(&mut self, range: IovaRange) -> Result<(), NoMem> {
            self.push(range);
            Ok(())
        }
    }

    fn r(start: u64, end: u64) -> IovaRange {
        IovaRange { start, end }
    }

    #[test]
    fn subtract_msi_window_from_vtd_aperture() {
        // VT-d with 48-bit address width and the x86 MSI window reserved.
        let mut out = Vec::new();
        let n = subtract_reserved(
            r(0, (1 << 48) - 1),
            &[r(0xfee0_0000, 0xfeef_ffff)],
            &mut out,
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(out, [r(0, 0xfedf_ffff), r(0xfef0_0000, (1 << 48) - 1)]);
    }

    #[test]
    fn subtract_overlapping_unsorted_and_edges() {
        let mut out = Vec::new();
        subtract_reserved(
            r(0x1000, 0x9fff),
            &[
                r(0x8000, 0xffff),
                r(0, 0x1fff),
                r(0x3000, 0x4fff),
                r(0x4000, 0x5fff),
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [r(0x2000, 0x2fff), r(0x6000, 0x7fff)]);
    }

    #[test]
    fn subtract_everything_leaves_nothing() {
        let mut out = Vec::new();
        assert_eq!(
            subtract_reserved(r(0x1000, 0x1fff), &[r(0, u64::MAX)], &mut out),
            Ok(0)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn subtract_up_to_the_top_of_the_space() {
        let mut out = Vec::new();
        subtract_reserved(IovaRange::FULL, &[r(u64::MAX - 0xfff, u64::MAX)], &mut out).unwrap();
        assert_eq!(out, [r(0, u64::MAX - 0x1000)]);
    }

    #[test]
    fn dma_validity() {
        let valid = [r(0, 0xfedf_ffff), r(0xfef0_0000, 0xffff_ffff)];
        assert!(dma_range_valid(&valid, &r(0x1000, 0x1fff)));
        assert!(!dma_range_valid(&valid, &r(0xfee0_0000, 0xfee0_0fff)));
        // Straddling two valid ranges is not valid either.
        assert!(!dma_range_valid(&valid, &r(0xfedf_f000, 0xfef0_0fff)));
        assert!(dma_range_valid(&[], &r(0xfee0_0000, 0xfee0_0fff)));
    }

    #[test]
    fn map_checks_match_type1() {
        let pg = 4096;
        assert_eq!(
            check_map(0x1000, 0x2000, 0x1000, pg),
            Some(r(0x1000, 0x1fff))
        );
        assert_eq!(check_map(0x1000, 0x2000, 0, pg), None);
        assert_eq!(check_map(0x1001, 0x2000, 0x1000, pg), None);
        assert_eq!(check_map(0x1000, 0x2001, 0x1000, pg), None);
        assert_eq!(check_map(0x1000, 0x2000, 0x1001, pg), None);
        assert_eq!(check_map(u64::MAX - 0xfff, 0, 0x2000, pg), None);
        assert_eq!(check_map(0, u64::MAX - 0xfff, 0x2000, pg), None);
        // The last page of the space is mappable.
        assert_eq!(
            check_map(u64::MAX - 0xfff, 0, 0x1000, pg),
            Some(r(u64::MAX - 0xfff, u64::MAX))
        );
    }

    #[test]
    fn unmap_checks_match_type1() {
        let pg = 4096;
        assert_eq!(check_unmap(0, 0, true, pg), Some(IovaRange::FULL));
        assert_eq!(check_unmap(0x1000, 0, true, pg), None);
        assert_eq!(check_unmap(0, 0x1000, true, pg), None);
        assert_eq!(check_unmap(0, 0, false, pg), None);
        assert_eq!(
            check_unmap(0x1000, 0x1000, false, pg),
            Some(r(0x1000, 0x1fff))
        );
        assert_eq!(check_unmap(0x1800, 0x1000, false, pg), None);
        assert_eq!(check_unmap(u64::MAX - 0xfff, 0x2000, false, pg), None);
    }

    #[test]
    fn min_pgsize_of_bitmaps() {
        assert_eq!(min_pgsize(!0xfff), 0x1000);
        assert_eq!(min_pgsize(0x4020_1000), 0x1000);
        assert_eq!(min_pgsize(0x20_0000), 0x20_0000);
    }
}

/// type1's `vfio_update_pgsize_bitmap()`: the page sizes every domain
/// supports, with sizes below PAGE_SIZE hidden behind PAGE_SIZE itself (the
/// pinning granularity). With no domain, every size from PAGE_SIZE up.
pub(crate) fn container_pgsize_bitmap(
    domain_bitmaps: impl Iterator<Item = u64>,
    page_size: u64,
) -> u64 {
    let page_mask = !(page_size - 1);
    let mut bitmap = domain_bitmaps.fold(u64::MAX, |acc, b| acc & b);
    if bitmap & !page_mask != 0 {
        bitmap &= page_mask;
        bitmap |= page_size;
    }
    bitmap
}

#[cfg(test)]
mod pgsize_tests {
    use super::container_pgsize_bitmap;

    #[test]
    fn pgsize_bitmap_like_type1() {
        let vtd = 0x1000 | 0x20_0000 | 0x4000_0000;
        assert_eq!(container_pgsize_bitmap([vtd].into_iter(), 4096), vtd);
        assert_eq!(
            container_pgsize_bitmap([vtd, 0x1000 | 0x20_0000].into_iter(), 4096),
            0x20_1000
        );
        // No domain: PAGE_MASK, as type1 starts with.
        assert_eq!(container_pgsize_bitmap([].into_iter(), 4096), !0xfff);
        // Sub-page sizes are folded into PAGE_SIZE.
        assert_eq!(
            container_pgsize_bitmap([0x200 | 0x10000].into_iter(), 4096),
            0x11000
        );
    }
}
