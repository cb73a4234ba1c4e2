// SPDX-License-Identifier: GPL-2.0

//! The shadow of software nesting, as plain data (no kernel dependency; also
//! built and tested on the host by `rust/host`): the units rvfio maps into a
//! bound group's shadow domain, how stage-1 leaves compose with stage 2 into
//! units, and how a shadow is changed into another one, touching only what
//! changed.
//!
//! A unit is what one `iommu_map()` call maps: one stage-1 leaf (or the part
//! of it inside a walked range) over one physically contiguous run of a
//! stage-2 mapping, minus reserved regions. Units are never merged across
//! leaves or runs and are only ever unmapped whole, because the IOMMU driver
//! may have used large pages inside a unit and unmapping part of a large
//! page unmaps all of it (VT-d does).
//!
//! An invalidation replaces the units of a range by those of a new walk of
//! it: [`old_fate`] and [`new_fate`] say which are kept, unmapped, mapped.

use crate::iova::IovaRange;
use crate::s1_walk::Leaf;

/// One mapping of the shadow domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Unit {
    /// Stage-1 IOVA of the first byte.
    pub(crate) iova: u64,
    /// Bytes, a multiple of 4 KiB.
    pub(crate) len: u64,
    /// Host-physical address of the first byte.
    pub(crate) hpa: u64,
    /// Guest-physical address (stage-2 IOVA) of the first byte: which
    /// stage-2 mapping keeps the memory pinned.
    pub(crate) gpa: u64,
    pub(crate) read: bool,
    pub(crate) write: bool,
    /// Page-size shift of the stage-1 leaf the unit comes from.
    pub(crate) shift: u32,
}

impl Unit {
    pub(crate) fn range(&self) -> IovaRange {
        IovaRange {
            start: self.iova,
            end: self.iova + (self.len - 1),
        }
    }

    /// The guest-physical range the unit translates to.
    pub(crate) fn gpa_range(&self) -> IovaRange {
        IovaRange {
            start: self.gpa,
            end: self.gpa + (self.len - 1),
        }
    }

    /// The whole stage-1 leaf the unit is part of: aligned to its size.
    pub(crate) fn leaf_range(&self) -> IovaRange {
        let mask = (1u64 << self.shift) - 1;
        IovaRange {
            start: self.iova & !mask,
            end: self.iova | mask,
        }
    }
}

/// What stage 2 holds at a guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum S2 {
    /// `len` bytes from the address asked for are mapped, physically
    /// contiguous from `hpa`, pinned, with these permissions.
    Mapped {
        hpa: u64,
        len: u64,
        read: bool,
        write: bool,
    },
    /// `len` bytes from the address asked for have nothing rvfio may map:
    /// not mapped in stage 2, or memory a shadow may not point at (PFNMAP).
    Hole { len: u64 },
}

/// Stage 2 as the composition sees it.
pub(crate) trait Stage2 {
    /// What is at `gpa` (4 KiB aligned), for at most `max` bytes (a
    /// non-zero multiple of 4 KiB); the answer's `len` is a non-zero
    /// multiple of 4 KiB no larger than `max`.
    fn lookup(&mut self, gpa: u64, max: u64) -> S2;
}

/// Where composed units go.
pub(crate) trait UnitSink {
    /// A unit, in ascending IOVA order.
    fn unit(&mut self, unit: Unit) -> Result<(), crate::s1_walk::Stop>;
    /// Leaf targets that stage 2 did not have (a later MAP_DMA there must
    /// re-resolve them).
    fn miss(&mut self, gpa: IovaRange);
}

/// Composes `leaf` over stage 2 into units, inside the `allowed` IOVA
/// ranges only (sorted, disjoint: the shadow domain's aperture minus the
/// group's reserved regions). A unit is readable as stage 2 is, writable
/// when both stages are; a unit with neither is left out.
pub(crate) fn compose<S: Stage2, O: UnitSink>(
    leaf: &Leaf,
    allowed: &[IovaRange],
    s2: &mut S,
    out: &mut O,
) -> Result<(), crate::s1_walk::Stop> {
    for a in allowed {
        let Some(piece) = a.intersect(&leaf.range) else {
            continue;
        };
        let mut iova = piece.start;
        let mut gpa = leaf.gpa + (piece.start - leaf.range.start);
        loop {
            // Bytes left in the piece, minus one (the piece may end at the
            // top of the address space).
            let left = piece.end - iova;
            let max = left.saturating_add(1);
            let len = match s2.lookup(gpa, max) {
                S2::Mapped {
                    hpa,
                    len,
                    read,
                    write,
                } => {
                    let len = len.min(max);
                    let write = write && leaf.writable;
                    if read || write {
                        out.unit(Unit {
                            iova,
                            len,
                            hpa,
                            gpa,
                            read,
                            write,
                            shift: leaf.shift,
                        })?;
                    }
                    len
                }
                S2::Hole { len } => {
                    let len = len.min(max);
                    out.miss(IovaRange {
                        start: gpa,
                        end: gpa + (len - 1),
                    });
                    len
                }
            };
            if len > left {
                break;
            }
            iova += len;
            gpa += len;
        }
    }
    Ok(())
}

/// `range` grown until every unit that overlaps it lies inside it, leaf by
/// leaf: an invalidation of an address drops the whole leaf that held it,
/// as hardware drops a whole IOTLB entry. `hull(r)` is the smallest range
/// holding the leaf ranges of every unit overlapping `r` (`None` when no
/// unit does). Large leaves are aligned, so this settles after at most one
/// step per page size.
pub(crate) fn expand(
    range: IovaRange,
    mut hull: impl FnMut(IovaRange) -> Option<IovaRange>,
) -> IovaRange {
    let mut r = range;
    // 4 KiB, 2 MiB and 1 GiB leaves, plus the step that finds no growth.
    for _ in 0..4 {
        let Some(h) = hull(r) else { return r };
        let grown = IovaRange {
            start: r.start.min(h.start),
            end: r.end.max(h.end),
        };
        if grown == r {
            return r;
        }
        r = grown;
    }
    r
}

/// What becomes of a unit the shadow holds in a range that is replaced by
/// the units `new` (sorted by IOVA, the walk of that range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OldFate {
    /// An identical unit is in `new`: nothing to do.
    Keep,
    /// Unmap it and forget it.
    Unmap,
    /// Unmap it; a new unit starts at the same IOVA and takes its record.
    UnmapReuse,
}

pub(crate) fn old_fate(old: &Unit, new: &[Unit]) -> OldFate {
    match new.binary_search_by_key(&old.iova, |u| u.iova) {
        Ok(i) if new[i] == *old => OldFate::Keep,
        Ok(_) => OldFate::UnmapReuse,
        Err(_) => OldFate::Unmap,
    }
}

/// What a unit of the walk needs, given what the shadow's record held at its
/// IOVA before anything changed (`at`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NewFate {
    /// It is mapped already, identical.
    Keep,
    /// Map it into the record entry an old unit leaves ([`OldFate::UnmapReuse`]).
    MapReuse,
    /// Map it into a new record entry.
    MapNew,
}

pub(crate) fn new_fate(new: &Unit, at: Option<&Unit>) -> NewFate {
    match at {
        Some(u) if u == new => NewFate::Keep,
        Some(_) => NewFate::MapReuse,
        None => NewFate::MapNew,
    }
}

/// The whole plan, as the shadow carries it out (`shadow.rs`): every old unit
/// of the range and then every new one, each with its fate, all unmaps before
/// any map (a new unit may overlap a removed one). Only what differs is
/// touched.
#[cfg(test)]
pub(crate) fn plan(old: &[Unit], new: &[Unit]) -> (std_plan::Olds, std_plan::News) {
    let olds = old.iter().map(|o| (*o, old_fate(o, new))).collect();
    let news = new
        .iter()
        .map(|n| {
            let at = old.iter().find(|o| o.iova == n.iova);
            (*n, new_fate(n, at))
        })
        .collect();
    (olds, news)
}

#[cfg(test)]
mod std_plan {
    extern crate std;
    pub(crate) type Olds = std::vec::Vec<(super::Unit, super::OldFate)>;
    pub(crate) type News = std::vec::Vec<(super::Unit, super::NewFate)>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s1_walk::Stop;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    const K4: u64 = 0x1000;
    const M2: u64 = 0x20_0000;

    fn r(start: u64, end: u64) -> IovaRange {
        IovaRange { start, end }
    }

    /// Stage 2 as a list of (gpa, len, hpa, read, write) runs.
    struct Runs(Vec<(u64, u64, u64, bool, bool)>);

    impl Stage2 for Runs {
        fn lookup(&mut self, gpa: u64, max: u64) -> S2 {
            for &(g, len, hpa, read, write) in &self.0 {
                if g <= gpa && gpa < g + len {
                    return S2::Mapped {
                        hpa: hpa + (gpa - g),
                        len: (g + len - gpa).min(max),
                        read,
                        write,
                    };
                }
            }
            let next = self
                .0
                .iter()
                .map(|r| r.0)
                .filter(|&g| g > gpa)
                .min()
                .unwrap_or(u64::MAX);
            S2::Hole {
                len: (next - gpa).min(max),
            }
        }
    }

    #[derive(Default)]
    struct Out {
        units: Vec<Unit>,
        misses: Vec<IovaRange>,
    }

    impl UnitSink for Out {
        fn unit(&mut self, unit: Unit) -> Result<(), Stop> {
            self.units.push(unit);
            Ok(())
        }
        fn miss(&mut self, gpa: IovaRange) {
            self.misses.push(gpa);
        }
    }

    fn leaf(start: u64, len: u64, gpa: u64, writable: bool, shift: u32) -> Leaf {
        Leaf {
            range: r(start, start + (len - 1)),
            gpa,
            writable,
            shift,
        }
    }

    fn unit(iova: u64, len: u64, hpa: u64, gpa: u64, write: bool, shift: u32) -> Unit {
        Unit {
            iova,
            len,
            hpa,
            gpa,
            read: true,
            write,
            shift,
        }
    }

    const ALL: [IovaRange; 1] = [IovaRange {
        start: 0,
        end: u64::MAX,
    }];

    #[test]
    fn a_4k_leaf_over_a_huge_run() {
        let mut s2 = Runs(std::vec![(0x800000, M2, 0x1_0000_0000, true, true)]);
        let mut out = Out::default();
        compose(
            &leaf(0x5000, K4, 0x801000, true, 12),
            &ALL,
            &mut s2,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out.units,
            [unit(0x5000, K4, 0x1_0000_1000, 0x801000, true, 12)]
        );
        assert!(out.misses.is_empty());
    }

    #[test]
    fn a_2m_leaf_over_fragmented_runs_with_a_hole() {
        // Stage 2: 4 KiB runs at gpa 0x40000000.., the third page missing,
        // the fourth read-only.
        let base = 0x4000_0000;
        let mut runs = std::vec![
            (base, K4, 0x7000_0000, true, true),
            (base + K4, K4, 0x7100_0000, true, true),
            (base + 3 * K4, K4, 0x7300_0000, true, false),
        ];
        runs.push((base + 4 * K4, M2 - 4 * K4, 0x7400_0000, true, true));
        let mut s2 = Runs(runs);
        let mut out = Out::default();
        compose(&leaf(M2, M2, base, true, 21), &ALL, &mut s2, &mut out).unwrap();
        assert_eq!(
            out.units,
            [
                unit(M2, K4, 0x7000_0000, base, true, 21),
                unit(M2 + K4, K4, 0x7100_0000, base + K4, true, 21),
                unit(M2 + 3 * K4, K4, 0x7300_0000, base + 3 * K4, false, 21),
                unit(
                    M2 + 4 * K4,
                    M2 - 4 * K4,
                    0x7400_0000,
                    base + 4 * K4,
                    true,
                    21
                ),
            ]
        );
        assert_eq!(out.misses, [r(base + 2 * K4, base + 3 * K4 - 1)]);
    }

    #[test]
    fn permissions_compose() {
        let mut s2 = Runs(std::vec![
            (0x1000, K4, 0xa000, true, true),
            (0x2000, K4, 0xb000, true, false),
            (0x3000, K4, 0xc000, false, true),
        ]);
        let mut out = Out::default();
        // Read-only stage 1 over a writable stage 2: read-only.
        compose(&leaf(0, K4, 0x1000, false, 12), &ALL, &mut s2, &mut out).unwrap();
        // Writable stage 1 over a read-only stage 2: read-only.
        compose(&leaf(K4, K4, 0x2000, true, 12), &ALL, &mut s2, &mut out).unwrap();
        // Write-only stage 2: write-only with a writable stage 1...
        compose(&leaf(2 * K4, K4, 0x3000, true, 12), &ALL, &mut s2, &mut out).unwrap();
        // ...and nothing at all with a read-only one.
        compose(
            &leaf(3 * K4, K4, 0x3000, false, 12),
            &ALL,
            &mut s2,
            &mut out,
        )
        .unwrap();
        let p: Vec<(bool, bool)> = out.units.iter().map(|u| (u.read, u.write)).collect();
        assert_eq!(p, [(true, false), (true, false), (false, true)]);
        assert_eq!(out.units[2].iova, 2 * K4);
    }

    #[test]
    fn reserved_regions_are_skipped() {
        // A 2 MiB leaf over the MSI window's neighbourhood.
        let allowed = [r(0, 0xfedf_ffff), r(0xfef0_0000, (1 << 48) - 1)];
        let mut s2 = Runs(std::vec![(
            0x100_0000,
            0x40_0000,
            0x2_0000_0000,
            true,
            true
        )]);
        let mut out = Out::default();
        compose(
            &leaf(0xfec0_0000, 2 * M2, 0x100_0000, true, 21),
            &allowed,
            &mut s2,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out.units,
            [
                unit(0xfec0_0000, M2, 0x2_0000_0000, 0x100_0000, true, 21),
                unit(0xfef0_0000, 0x10_0000, 0x2_0030_0000, 0x130_0000, true, 21),
            ]
        );
        // Above the aperture: nothing.
        let mut out = Out::default();
        compose(
            &leaf(1 << 48, K4, 0x100_0000, true, 12),
            &allowed,
            &mut s2,
            &mut out,
        )
        .unwrap();
        assert!(out.units.is_empty());
    }

    #[test]
    fn top_of_the_space() {
        let mut s2 = Runs(std::vec![(0x1000, K4, 0xa000, true, true)]);
        let mut out = Out::default();
        compose(
            &leaf(u64::MAX - 0xfff, K4, 0x1000, true, 12),
            &ALL,
            &mut s2,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out.units,
            [unit(u64::MAX - 0xfff, K4, 0xa000, 0x1000, true, 12)]
        );
        assert_eq!(out.units[0].range(), r(u64::MAX - 0xfff, u64::MAX));
        // A leaf whose target is not mapped at all.
        let mut out = Out::default();
        compose(
            &leaf(u64::MAX - 0xfff, K4, 0x9000, true, 12),
            &ALL,
            &mut s2,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.misses, [r(0x9000, 0x9fff)]);
    }

    #[test]
    fn leaf_ranges() {
        let u = unit(M2 + 3 * K4, K4, 0, 0, true, 21);
        assert_eq!(u.leaf_range(), r(M2, 2 * M2 - 1));
        let u = unit(0x4000_5000, K4, 0, 0, true, 30);
        assert_eq!(u.leaf_range(), r(0x4000_0000, 0x7fff_ffff));
        assert_eq!(
            unit(0x5000, K4, 0, 0, true, 12).leaf_range(),
            r(0x5000, 0x5fff)
        );
    }

    /// `expand` over a list of units.
    fn expand_in(units: &[Unit], range: IovaRange) -> IovaRange {
        expand(range, |q| {
            units
                .iter()
                .filter(|u| u.range().intersect(&q).is_some())
                .map(|u| u.leaf_range())
                .reduce(|a, b| r(a.start.min(b.start), a.end.max(b.end)))
        })
    }

    #[test]
    fn invalidation_covers_whole_leaves() {
        let units = [
            // A 2 MiB leaf shadowed as two pieces.
            unit(M2, K4, 0, 0, true, 21),
            unit(M2 + 5 * K4, K4, 0, 0, true, 21),
            // 4 KiB leaves after it.
            unit(2 * M2, K4, 0, 0, true, 12),
            // A 1 GiB leaf piece further up.
            unit(0x4000_0000 + M2, K4, 0, 0, true, 30),
        ];
        assert_eq!(expand_in(&units, r(0x5000, 0x5fff)), r(0x5000, 0x5fff));
        assert_eq!(expand_in(&units, r(M2, M2 + 0xfff)), r(M2, 2 * M2 - 1));
        // An address inside the leaf, between its pieces: not overlapping
        // any unit, so nothing grows (the leaf's units are not touched).
        assert_eq!(
            expand_in(&units, r(M2 + K4, M2 + 2 * K4 - 1)),
            r(M2 + K4, M2 + 2 * K4 - 1)
        );
        assert_eq!(
            expand_in(&units, r(M2 + 5 * K4, 2 * M2 + 0xfff)),
            r(M2, 2 * M2 + 0xfff)
        );
        assert_eq!(
            expand_in(&units, r(0x4000_0000 + M2, 0x4000_0000 + M2)),
            r(0x4000_0000, 0x7fff_ffff)
        );
        assert_eq!(expand_in(&[], r(7, 9)), r(7, 9));
    }

    fn fates(old: &[Unit], new: &[Unit]) -> (Vec<OldFate>, Vec<NewFate>) {
        let (o, n) = plan(old, new);
        (
            o.into_iter().map(|(_, f)| f).collect(),
            n.into_iter().map(|(_, f)| f).collect(),
        )
    }

    #[test]
    fn plan_changes_only_what_changed() {
        use NewFate as N;
        use OldFate as O;
        let a = unit(0x1000, K4, 0xa000, 0x10_1000, true, 12);
        let b = unit(0x2000, K4, 0xb000, 0x10_2000, true, 12);
        let c = unit(0x3000, K4, 0xc000, 0x10_3000, true, 12);
        let b_ro = Unit { write: false, ..b };
        let b_moved = Unit {
            hpa: 0xe000,
            gpa: 0x10_e000,
            ..b
        };
        assert_eq!(
            fates(&[a, b, c], &[a, b, c]),
            (
                vec![O::Keep, O::Keep, O::Keep],
                vec![N::Keep, N::Keep, N::Keep]
            )
        );
        // A permission or target change: that unit only, its record reused.
        assert_eq!(
            fates(&[a, b, c], &[a, b_ro, c]),
            (
                vec![O::Keep, O::UnmapReuse, O::Keep],
                vec![N::Keep, N::MapReuse, N::Keep]
            )
        );
        assert_eq!(
            fates(&[a, b, c], &[a, b_moved, c]),
            (
                vec![O::Keep, O::UnmapReuse, O::Keep],
                vec![N::Keep, N::MapReuse, N::Keep]
            )
        );
        // Present -> not present, and back.
        assert_eq!(
            fates(&[a, b, c], &[a, c]),
            (vec![O::Keep, O::Unmap, O::Keep], vec![N::Keep, N::Keep])
        );
        assert_eq!(
            fates(&[a], &[a, b, c]),
            (vec![O::Keep], vec![N::Keep, N::MapNew, N::MapNew])
        );
        assert_eq!(fates(&[], &[b]), (vec![], vec![N::MapNew]));
        assert_eq!(fates(&[b], &[]), (vec![O::Unmap], vec![]));
    }

    #[test]
    fn plan_of_differently_split_units() {
        // Eight 4 KiB leaves replaced by one 2 MiB leaf's piece over the
        // same memory: the first record is reused, the other seven go.
        let old: Vec<Unit> = (0..8)
            .map(|i| {
                unit(
                    M2 + i * K4,
                    K4,
                    0xa00000 + i * K4,
                    0x800000 + i * K4,
                    true,
                    12,
                )
            })
            .collect();
        let new = [unit(M2, 8 * K4, 0xa00000, 0x800000, true, 21)];
        let (o, n) = fates(&old, &new);
        assert_eq!(o[0], OldFate::UnmapReuse);
        assert!(o[1..].iter().all(|f| *f == OldFate::Unmap));
        assert_eq!(n, [NewFate::MapReuse]);
        // And back: the 2 MiB piece's record goes to the first 4 KiB leaf.
        let (o, n) = fates(&new, &old);
        assert_eq!(o, [OldFate::UnmapReuse]);
        assert_eq!(n[0], NewFate::MapReuse);
        assert!(n[1..].iter().all(|f| *f == NewFate::MapNew));
    }
}
