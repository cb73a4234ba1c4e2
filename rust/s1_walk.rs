// SPDX-License-Identifier: GPL-2.0

//! The stage-1 page-table walker of software nesting (no kernel dependency;
//! also built and tested on the host by `rust/host`).
//!
//! A guest's VT-d first-stage table is x86-64 paging: 4 levels for an
//! address width of 48, 5 for 57; leaves of 4 KiB (PTE), 2 MiB (PDE with PS)
//! and 1 GiB (PDPTE with PS). Every table pointer and every leaf target is a
//! guest-physical address (a container IOVA), so the walker reads the tables
//! through a callback that resolves guest-physical addresses through stage 2
//! and can fail (the table page is not mapped there).
//!
//! What is honoured, at every level of the walk, as the VT-d spec and QEMU's
//! `vtd_iova_to_flpte()` do:
//! - P: a clear present bit is a hole.
//! - U/S: requests without PASID are user requests, so U/S must be set at
//!   every level (SRE and WPE only matter to supervisor requests).
//! - R/W: the translation is writable only when R/W is set at every level.
//! - Reserved bits are holes: address bits at or above the output width (the
//!   bind's address width, at most 52) up to bit 51; PS in a PML4E or PML5E;
//!   bits 20:13 of a 2 MiB leaf and 29:13 of a 1 GiB leaf.
//! - Non-canonical input addresses (bits above the width not all equal to
//!   its top bit) are holes.
//!
//! Not honoured: accessed and dirty bits are never set (a guest that relies
//! on them for its IOMMU tables sees them clear); PWT, PCD, PAT, G, XD and
//! the ignored bits have no meaning for the shadow. A table page referenced
//! a second time in one walk (a table that points at itself, or two entries
//! that share a table) is a hole at the second reference, where hardware
//! would follow it: that bounds a walk to one visit of each table entry.
//! A walk also has a budget of entries read; what lies beyond it is a hole.

use crate::iova::IovaRange;

/// Bits of a paging entry.
const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PS: u64 = 1 << 7;

/// Entries per table page, and bits of the IOVA each level indexes.
const ENTRIES: u64 = 512;
const LEVEL_BITS: u32 = 9;
const PAGE_SHIFT: u32 = 12;

/// The physical-address field of an entry ends at bit 51.
const MAX_OUT_WIDTH: u32 = 52;

/// Why a range of stage-1 IOVAs has no translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hole {
    /// An entry on the path has P clear.
    NotPresent,
    /// An entry on the path has U/S clear.
    NotUser,
    /// An entry on the path has a reserved bit set (address bits above the
    /// output width, or the low bits of a large leaf).
    Reserved,
    /// PS set in a PML4E or PML5E.
    TopLevelPs,
    /// The address is not canonical for the table's width.
    NonCanonical,
    /// The table page at this guest-physical address cannot be read through
    /// stage 2.
    TableUnmapped { table: u64 },
    /// The table page at this guest-physical address was already walked in
    /// this walk (a cycle, or a table shared by two entries).
    Shared { table: u64 },
    /// The walk's budget of entries ran out before this range.
    Budget,
}

/// A translation: the stage-1 IOVAs `range` map to guest-physical addresses
/// from `gpa` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// The part of the leaf inside the walked range.
    pub(crate) range: IovaRange,
    /// The guest-physical address of `range.start`.
    pub(crate) gpa: u64,
    /// R/W set at every level.
    pub(crate) writable: bool,
    /// The leaf's page size: 12, 21 or 30.
    pub(crate) shift: u32,
}

/// The visitor stopped the walk (for instance, out of memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stop;

/// What a walk reads through and reports to.
pub(crate) trait Visit {
    /// The 8-byte entry at guest-physical `gpa` (8-byte aligned), or `None`
    /// when its page is not readable through stage 2.
    fn read_u64(&mut self, gpa: u64) -> Option<u64>;
    /// Called before the walk descends into the table page at `gpa`: false
    /// when this walk already went through it (the reference is a hole).
    /// The visitor keeps the set; the walker itself has no memory.
    fn enter_table(&mut self, gpa: u64) -> Result<bool, Stop>;
    /// A translation, in ascending IOVA order with the holes.
    fn leaf(&mut self, leaf: &Leaf) -> Result<(), Stop>;
    /// A range without translation; adjacent holes of the same kind are
    /// reported as one.
    fn hole(&mut self, range: IovaRange, why: Hole) -> Result<(), Stop>;
}

/// A bound stage-1 table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Table {
    /// Guest-physical address of the top-level table page.
    root: u64,
    /// 4 or 5.
    levels: u32,
    /// The output-address field: bits 12 up to the output width.
    addr_mask: u64,
}

/// How a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Entries read.
    pub(crate) reads: u64,
    /// The budget ran out; the rest of the range was reported as a hole.
    pub(crate) exhausted: bool,
}

impl Table {
    /// The table at `root` with `addr_width` 48 (4 levels) or 57 (5 levels);
    /// `None` for another width or an unaligned root.
    pub(crate) fn new(root: u64, addr_width: u32) -> Option<Self> {
        let levels = match addr_width {
            48 => 4,
            57 => 5,
            _ => return None,
        };
        if root & ((1 << PAGE_SHIFT) - 1) != 0 {
            return None;
        }
        let out = addr_width.min(MAX_OUT_WIDTH);
        let addr_mask = ((1u64 << out) - 1) & !((1u64 << PAGE_SHIFT) - 1);
        // A root outside the output width could not be named by an entry
        // either; refuse it rather than walk it.
        if root & !addr_mask != 0 {
            return None;
        }
        Some(Self {
            root,
            levels,
            addr_mask,
        })
    }

    pub(crate) fn root(&self) -> u64 {
        self.root
    }

    #[cfg(test)]
    pub(crate) fn levels(&self) -> u32 {
        self.levels
    }

    /// Input address width: 48 or 57.
    fn width(&self) -> u32 {
        PAGE_SHIFT + LEVEL_BITS * self.levels
    }

    /// The two canonical halves of the input space.
    pub(crate) fn canonical(&self) -> [IovaRange; 2] {
        let half = 1u64 << (self.width() - 1);
        [
            IovaRange {
                start: 0,
                end: half - 1,
            },
            IovaRange {
                start: half.wrapping_neg(),
                end: u64::MAX,
            },
        ]
    }

    /// Walks `range`, reporting every byte of it exactly once as a leaf or
    /// a hole, in ascending order. At most `budget` entries are read.
    pub(crate) fn walk<V: Visit>(
        &self,
        range: IovaRange,
        budget: u64,
        v: &mut V,
    ) -> Result<Outcome, Stop> {
        let mut w = Walker {
            table: self,
            v,
            budget,
            reads: 0,
            pending: None,
        };
        let [lo, hi] = self.canonical();
        let mut cursor = range.start;
        let mut exhausted = false;
        // The root is entered once for both canonical halves.
        let mut root_entered = None;
        for half in [lo, hi] {
            if exhausted || cursor > range.end {
                break;
            }
            if cursor < half.start {
                let gap_end = range.end.min(half.start - 1);
                w.hole(cursor, gap_end, Hole::NonCanonical)?;
                if gap_end == range.end {
                    break;
                }
                cursor = half.start;
            }
            let Some(part) = half.intersect(&IovaRange {
                start: cursor,
                end: range.end,
            }) else {
                continue;
            };
            let entered = match root_entered {
                Some(e) => e,
                None => *root_entered.insert(w.v.enter_table(self.root)?),
            };
            let r = if entered {
                w.entries(self.root, self.levels, part, true)
            } else {
                w.hole(part.start, part.end, Hole::Shared { table: self.root })
                    .map_err(Abort::from)
            };
            match r {
                Ok(()) => {}
                Err(Abort::Stop) => return Err(Stop),
                Err(Abort::Budget(at)) => {
                    w.hole(at, range.end, Hole::Budget)?;
                    exhausted = true;
                }
            }
            if part.end == u64::MAX {
                break;
            }
            cursor = part.end + 1;
        }
        w.flush()?;
        Ok(Outcome {
            reads: w.reads,
            exhausted,
        })
    }
}

/// Why a walk unwinds.
enum Abort {
    Stop,
    /// The budget ran out at this IOVA.
    Budget(u64),
}

impl From<Stop> for Abort {
    fn from(_: Stop) -> Self {
        Abort::Stop
    }
}

struct Walker<'a, V: Visit> {
    table: &'a Table,
    v: &'a mut V,
    budget: u64,
    reads: u64,
    /// A hole not reported yet, so that adjacent ones merge.
    pending: Option<(IovaRange, Hole)>,
}

impl<V: Visit> Walker<'_, V> {
    fn flush(&mut self) -> Result<(), Stop> {
        match self.pending.take() {
            Some((r, why)) => self.v.hole(r, why),
            None => Ok(()),
        }
    }

    fn hole(&mut self, start: u64, end: u64, why: Hole) -> Result<(), Stop> {
        if let Some((r, w)) = &mut self.pending {
            if *w == why && r.end.checked_add(1) == Some(start) {
                r.end = end;
                return Ok(());
            }
        }
        self.flush()?;
        self.pending = Some((IovaRange { start, end }, why));
        Ok(())
    }

    fn leaf(&mut self, leaf: Leaf) -> Result<(), Stop> {
        self.flush()?;
        self.v.leaf(&leaf)
    }

    /// Walks the part `part` of the table page at `gpa`, which sits at
    /// `level` (1 = PT, 2 = PD, 3 = PDPT, 4 = PML4, 5 = PML5). `writable`
    /// is R/W of every entry above it.
    fn table(
        &mut self,
        gpa: u64,
        level: u32,
        part: IovaRange,
        writable: bool,
    ) -> Result<(), Abort> {
        if !self.v.enter_table(gpa)? {
            self.hole(part.start, part.end, Hole::Shared { table: gpa })?;
            return Ok(());
        }
        self.entries(gpa, level, part, writable)
    }

    /// The entries of the table page at `gpa` that cover `part`.
    fn entries(
        &mut self,
        gpa: u64,
        level: u32,
        part: IovaRange,
        writable: bool,
    ) -> Result<(), Abort> {
        let shift = PAGE_SHIFT + LEVEL_BITS * (level - 1);
        let top = level == self.table.levels;
        let mut cursor = part.start;
        loop {
            let entry_start = cursor & !((1u64 << shift) - 1);
            let entry_end = entry_start | ((1u64 << shift) - 1);
            let end = entry_end.min(part.end);
            if self.reads >= self.budget {
                return Err(Abort::Budget(cursor));
            }
            self.reads += 1;
            let index = (cursor >> shift) & (ENTRIES - 1);
            match self.v.read_u64(gpa + index * 8) {
                None => self.hole(cursor, end, Hole::TableUnmapped { table: gpa })?,
                Some(e) => self.entry(e, level, top, shift, cursor, end, writable)?,
            }
            if end == part.end {
                return Ok(());
            }
            cursor = end + 1;
        }
    }

    /// One entry at `level` covering `[start, end]` of the walked range.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        e: u64,
        level: u32,
        top: bool,
        shift: u32,
        start: u64,
        end: u64,
        writable: bool,
    ) -> Result<(), Abort> {
        let why = if e & P == 0 {
            Some(Hole::NotPresent)
        } else if e & US == 0 {
            Some(Hole::NotUser)
        } else if e & PS != 0 && level >= 4 {
            // PS is reserved in PML4Es and PML5Es, whatever the width.
            Some(if top {
                Hole::TopLevelPs
            } else {
                Hole::Reserved
            })
        } else {
            None
        };
        if let Some(why) = why {
            self.hole(start, end, why)?;
            return Ok(());
        }
        let writable = writable && e & RW != 0;
        let mask = self.table.addr_mask;
        // Address bits above the output width, up to 51.
        let high = e & ((1u64 << MAX_OUT_WIDTH) - 1) & !mask & !((1u64 << PAGE_SHIFT) - 1);
        let leaf = level == 1 || (e & PS != 0 && (level == 2 || level == 3));
        if !leaf {
            if high != 0 {
                self.hole(start, end, Hole::Reserved)?;
                return Ok(());
            }
            return self.table(e & mask, level - 1, IovaRange { start, end }, writable);
        }
        // Large leaves: bits (shift-1):13 are reserved, bit 12 is PAT.
        let low_reserved = if level == 1 {
            0
        } else {
            ((1u64 << shift) - 1) & !((1u64 << (PAGE_SHIFT + 1)) - 1)
        };
        if high != 0 || e & low_reserved != 0 {
            self.hole(start, end, Hole::Reserved)?;
            return Ok(());
        }
        let base = e & mask & !((1u64 << shift) - 1);
        let entry_start = start & !((1u64 << shift) - 1);
        self.leaf(Leaf {
            range: IovaRange { start, end },
            gpa: base + (start - entry_start),
            writable,
            shift,
        })?;
        Ok(())
    }
}

/// The translation of one stage-1 IOVA (the emulated-IOMMU path): the leaf
/// that holds it, clipped to that one byte, or why there is none. `read` is
/// the stage-2 read of [`Visit::read_u64`].
pub(crate) fn translate(
    table: &Table,
    iova: u64,
    read: &mut dyn FnMut(u64) -> Option<u64>,
) -> Result<Leaf, Hole> {
    struct One<'a> {
        read: &'a mut dyn FnMut(u64) -> Option<u64>,
        /// The tables on the path: a single address descends at most one
        /// table per level.
        path: [u64; 5],
        depth: usize,
        result: Option<Result<Leaf, Hole>>,
    }
    impl Visit for One<'_> {
        fn read_u64(&mut self, gpa: u64) -> Option<u64> {
            (self.read)(gpa)
        }
        fn enter_table(&mut self, gpa: u64) -> Result<bool, Stop> {
            if self.path[..self.depth].contains(&gpa) || self.depth == self.path.len() {
                return Ok(false);
            }
            self.path[self.depth] = gpa;
            self.depth += 1;
            Ok(true)
        }
        fn leaf(&mut self, leaf: &Leaf) -> Result<(), Stop> {
            self.result = Some(Ok(*leaf));
            Ok(())
        }
        fn hole(&mut self, _range: IovaRange, why: Hole) -> Result<(), Stop> {
            self.result = Some(Err(why));
            Ok(())
        }
    }
    let mut one = One {
        read,
        path: [0; 5],
        depth: 0,
        result: None,
    };
    let range = IovaRange {
        start: iova,
        end: iova,
    };
    // One address reads at most one entry per level.
    match table.walk(range, 8, &mut one) {
        Ok(_) => one.result.unwrap_or(Err(Hole::Budget)),
        Err(Stop) => Err(Hole::Budget),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec;

    const K4: u64 = 0x1000;
    const M2: u64 = 0x20_0000;
    const G1: u64 = 0x4000_0000;
    const OK: u64 = P | RW | US;

    /// Guest memory: 4 KiB pages by guest-physical address; a page not in
    /// the map is not mapped in stage 2.
    #[derive(Default)]
    struct Mem {
        pages: BTreeMap<u64, [u64; 512]>,
        reads: u64,
    }

    impl Mem {
        fn page(&mut self, gpa: u64) -> &mut [u64; 512] {
            self.pages.entry(gpa).or_insert([0; 512])
        }
        fn set(&mut self, table: u64, index: u64, e: u64) {
            self.page(table)[index as usize] = e;
        }
        fn read(&mut self, gpa: u64) -> Option<u64> {
            self.reads += 1;
            let page = self.pages.get(&(gpa & !0xfff))?;
            Some(page[((gpa & 0xfff) / 8) as usize])
        }
    }

    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    enum Item {
        L(Leaf),
        H(IovaRange, Hole),
    }

    /// Records everything, with a per-walk visited set.
    struct Rec<'a> {
        mem: &'a mut Mem,
        visited: BTreeSet<u64>,
        items: Vec<Item>,
        entered: u64,
    }

    impl Visit for Rec<'_> {
        fn read_u64(&mut self, gpa: u64) -> Option<u64> {
            self.mem.read(gpa)
        }
        fn enter_table(&mut self, gpa: u64) -> Result<bool, Stop> {
            self.entered += 1;
            Ok(self.visited.insert(gpa))
        }
        fn leaf(&mut self, leaf: &Leaf) -> Result<(), Stop> {
            self.items.push(Item::L(*leaf));
            Ok(())
        }
        fn hole(&mut self, range: IovaRange, why: Hole) -> Result<(), Stop> {
            self.items.push(Item::H(range, why));
            Ok(())
        }
    }

    fn r(start: u64, end: u64) -> IovaRange {
        IovaRange { start, end }
    }

    fn walk(mem: &mut Mem, t: &Table, range: IovaRange) -> (Vec<Item>, Outcome) {
        let mut rec = Rec {
            mem,
            visited: BTreeSet::new(),
            items: Vec::new(),
            entered: 0,
        };
        let out = t.walk(range, 1 << 20, &mut rec).unwrap();
        check_tiling(&rec.items, range);
        (rec.items, out)
    }

    /// Every byte of `range` is reported exactly once, in order.
    fn check_tiling(items: &[Item], range: IovaRange) {
        let mut next = Some(range.start);
        for it in items {
            let ir = match it {
                Item::L(l) => l.range,
                Item::H(r, _) => *r,
            };
            assert_eq!(Some(ir.start), next, "gap or overlap at {:?}", it);
            assert!(ir.end >= ir.start);
            next = ir.end.checked_add(1);
        }
        assert_eq!(next, range.end.checked_add(1), "range not covered");
    }

    fn leaves(items: &[Item]) -> Vec<Leaf> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::L(l) => Some(*l),
                _ => None,
            })
            .collect()
    }

    /// PML4 0x100000 -> PDPT 0x101000 -> PD 0x102000 -> PT 0x103000, the
    /// shape of the selftest.
    fn four_level(mem: &mut Mem) -> Table {
        mem.set(0x100000, 0, 0x101000 | OK);
        mem.set(0x101000, 0, 0x102000 | OK);
        mem.set(0x102000, 0, 0x103000 | OK);
        mem.page(0x103000);
        Table::new(0x100000, 48).unwrap()
    }

    fn translate_in(mem: &mut Mem, t: &Table, iova: u64) -> Result<Leaf, Hole> {
        translate(t, iova, &mut |gpa| mem.read(gpa))
    }

    #[test]
    fn table_config() {
        assert_eq!(Table::new(0x1000, 48).unwrap().levels(), 4);
        assert_eq!(Table::new(0x1000, 57).unwrap().levels(), 5);
        assert!(Table::new(0x1000, 39).is_none());
        assert!(Table::new(0x1000, 52).is_none());
        assert!(Table::new(0x1800, 48).is_none(), "unaligned root");
        assert!(Table::new(1 << 48, 48).is_none(), "root above the width");
        assert!(Table::new(1 << 48, 57).is_some());
        let t = Table::new(0, 48).unwrap();
        assert_eq!(
            t.canonical(),
            [r(0, 0x7fff_ffff_ffff), r(0xffff_8000_0000_0000, u64::MAX)]
        );
    }

    #[test]
    fn one_4k_leaf() {
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        mem.set(0x103000, 5, 0x800000 | OK | (1 << 5) | (1 << 6));
        let (items, out) = walk(&mut mem, &t, r(0, 0x1f_ffff));
        assert_eq!(
            items,
            [
                Item::H(r(0, 0x4fff), Hole::NotPresent),
                Item::L(Leaf {
                    range: r(0x5000, 0x5fff),
                    gpa: 0x800000,
                    writable: true,
                    shift: 12
                }),
                Item::H(r(0x6000, 0x1f_ffff), Hole::NotPresent),
            ]
        );
        assert!(!out.exhausted);
        // One entry per level above, then the 512 PTEs.
        assert_eq!(out.reads, 3 + 512);
        let l = translate_in(&mut mem, &t, 0x5abc).unwrap();
        assert_eq!((l.gpa, l.range), (0x800abc, r(0x5abc, 0x5abc)));
        assert_eq!(translate_in(&mut mem, &t, 0x6000), Err(Hole::NotPresent));
    }

    #[test]
    fn leaves_are_clipped_to_the_range() {
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        // 2 MiB leaf at IOVA 2 MiB -> GPA 0x4000_0000.
        mem.set(0x102000, 1, 0x4000_0000 | OK | PS);
        let (items, _) = walk(&mut mem, &t, r(0x20_3000, 0x20_4fff));
        assert_eq!(
            leaves(&items),
            [Leaf {
                range: r(0x20_3000, 0x20_4fff),
                gpa: 0x4000_3000,
                writable: true,
                shift: 21
            }]
        );
    }

    #[test]
    fn large_leaves_and_their_reserved_bits() {
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        // PD[1]: 2 MiB leaf with PAT (bit 12) set: fine.
        mem.set(0x102000, 1, 0x4000_0000 | OK | PS | (1 << 12));
        // PD[2]: 2 MiB leaf with bit 13 set: reserved.
        mem.set(0x102000, 2, 0x4020_0000 | OK | PS | (1 << 13));
        // PD[3]: 2 MiB leaf with bit 20 set: reserved.
        mem.set(0x102000, 3, 0x4040_0000 | OK | PS | (1 << 20));
        // PDPT[1]: 1 GiB leaf, PAT set.
        mem.set(0x101000, 1, 0x8000_0000 | OK | PS | (1 << 12));
        // PDPT[2]: 1 GiB leaf with bit 29 set: reserved.
        mem.set(0x101000, 2, 0xc000_0000 | OK | PS | (1 << 29));
        // PDPT[3]: 1 GiB leaf with bit 13 set: reserved.
        mem.set(0x101000, 3, 0x1_0000_0000 | OK | PS | (1 << 13));
        let (items, _) = walk(&mut mem, &t, r(0, 4 * G1 - 1));
        assert_eq!(
            leaves(&items),
            [
                Leaf {
                    range: r(M2, 2 * M2 - 1),
                    gpa: 0x4000_0000,
                    writable: true,
                    shift: 21
                },
                Leaf {
                    range: r(G1, 2 * G1 - 1),
                    gpa: 0x8000_0000,
                    writable: true,
                    shift: 30
                },
            ]
        );
        assert!(items.contains(&Item::H(r(2 * M2, 4 * M2 - 1), Hole::Reserved)));
        assert!(items.contains(&Item::H(r(2 * G1, 4 * G1 - 1), Hole::Reserved)));
        assert_eq!(
            translate_in(&mut mem, &t, G1 + 0x12345).unwrap().gpa,
            0x8001_2345
        );
    }

    #[test]
    fn pat_bit_of_a_pte_is_not_ps() {
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        mem.set(0x103000, 0, 0x9000 | OK | (1 << 7));
        let l = translate_in(&mut mem, &t, 0).unwrap();
        assert_eq!((l.gpa, l.shift), (0x9000, 12));
    }

    #[test]
    fn address_bits_above_the_width_are_reserved() {
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        mem.set(0x103000, 0, (1 << 48) | 0x9000 | OK);
        mem.set(0x103000, 1, (1 << 51) | 0x9000 | OK);
        // Bits 52..62 are ignored, 63 (XD) only matters for execute.
        mem.set(0x103000, 2, (0x7ff << 52) | (1 << 63) | 0x9000 | OK);
        assert_eq!(translate_in(&mut mem, &t, 0), Err(Hole::Reserved));
        assert_eq!(translate_in(&mut mem, &t, K4), Err(Hole::Reserved));
        assert_eq!(translate_in(&mut mem, &t, 2 * K4).unwrap().gpa, 0x9000);
        // A table pointer above the width is reserved too.
        mem.set(0x102000, 1, (1 << 50) | 0x103000 | OK);
        assert_eq!(translate_in(&mut mem, &t, M2), Err(Hole::Reserved));
        // With 57 bits, bits 48..51 are address bits.
        let mut mem = Mem::default();
        let t5 = Table::new(0x200000, 57).unwrap();
        mem.set(0x200000, 0, 0x100000 | OK);
        mem.set(0x100000, 0, 0x101000 | OK);
        mem.set(0x101000, 0, 0x102000 | OK);
        mem.set(0x102000, 0, 0x103000 | OK);
        mem.set(0x103000, 0, (1 << 51) | 0x9000 | OK);
        assert_eq!(
            translate_in(&mut mem, &t5, 0).unwrap().gpa,
            (1 << 51) | 0x9000
        );
    }

    #[test]
    fn present_user_and_write_at_every_level() {
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        mem.set(0x103000, 0, 0x9000 | OK);
        mem.set(0x103000, 1, 0x9000 | P | US);
        mem.set(0x103000, 2, 0x9000 | P | RW);
        mem.set(0x103000, 3, 0x9000 | RW | US);
        assert!(translate_in(&mut mem, &t, 0).unwrap().writable);
        assert!(!translate_in(&mut mem, &t, K4).unwrap().writable);
        assert_eq!(translate_in(&mut mem, &t, 2 * K4), Err(Hole::NotUser));
        assert_eq!(translate_in(&mut mem, &t, 3 * K4), Err(Hole::NotPresent));
        for (table, index) in [(0x100000, 0), (0x101000, 0), (0x102000, 0)] {
            let saved = mem.page(table)[index];
            // R/W clear above: read-only.
            mem.set(table, index as u64, saved & !RW);
            assert!(!translate_in(&mut mem, &t, 0).unwrap().writable);
            // U/S clear above: supervisor-only, a hole for these requests.
            mem.set(table, index as u64, saved & !US);
            assert_eq!(translate_in(&mut mem, &t, 0), Err(Hole::NotUser));
            mem.set(table, index as u64, saved & !P);
            assert_eq!(translate_in(&mut mem, &t, 0), Err(Hole::NotPresent));
            mem.set(table, index as u64, saved);
        }
    }

    #[test]
    fn ps_at_the_top_level_is_a_hole() {
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        mem.set(0x100000, 1, OK | PS);
        assert_eq!(translate_in(&mut mem, &t, 1 << 39), Err(Hole::TopLevelPs));
        // In a 5-level table, PS in the PML4E (not the top) is reserved too.
        let mut mem = Mem::default();
        let t5 = Table::new(0x200000, 57).unwrap();
        mem.set(0x200000, 0, 0x100000 | OK);
        mem.set(0x100000, 0, OK | PS);
        assert_eq!(translate_in(&mut mem, &t5, 0), Err(Hole::Reserved));
        mem.set(0x200000, 1, OK | PS);
        assert_eq!(translate_in(&mut mem, &t5, 1 << 48), Err(Hole::TopLevelPs));
    }

    #[test]
    fn non_canonical_and_upper_half() {
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        // PML4[511] -> a chain of its own: the upper half's last 512 GiB.
        mem.set(0x100000, 511, 0x104000 | OK);
        mem.set(0x104000, 0, 0x105000 | OK);
        mem.set(0x105000, 0, 0x106000 | OK);
        mem.set(0x106000, 0, 0x9000 | OK);
        mem.set(0x103000, 0, 0x9000 | OK);
        assert_eq!(translate_in(&mut mem, &t, 1 << 47), Err(Hole::NonCanonical));
        assert_eq!(
            translate_in(&mut mem, &t, 0x0001_0000_0000_0000),
            Err(Hole::NonCanonical)
        );
        let up = 0xffff_ff80_0000_0000;
        assert_eq!(translate_in(&mut mem, &t, up).unwrap().gpa, 0x9000);
        // A walk across the gap reports it once, and the upper half after.
        let (items, _) = walk(&mut mem, &t, r(0x7fff_ffff_f000, 0xffff_8000_0000_0fff));
        assert_eq!(
            items,
            [
                Item::H(r(0x7fff_ffff_f000, 0x7fff_ffff_ffff), Hole::NotPresent),
                Item::H(r(1 << 47, 0xffff_7fff_ffff_ffff), Hole::NonCanonical),
                Item::H(
                    r(0xffff_8000_0000_0000, 0xffff_8000_0000_0fff),
                    Hole::NotPresent
                ),
            ]
        );
        // The whole 64-bit space: both halves, the last byte included.
        let (items, _) = walk(&mut mem, &t, r(0, u64::MAX));
        let ls = leaves(&items);
        assert_eq!(ls.len(), 2, "{:?}", ls);
        assert_eq!(ls[1].range, r(up, up + 0xfff));
        // 5-level: bit 56 is the top bit.
        let t5 = Table::new(0x200000, 57).unwrap();
        let mut mem = Mem::default();
        mem.page(0x200000);
        let (items, _) = walk(&mut mem, &t5, r(0, u64::MAX));
        assert_eq!(
            items,
            [
                Item::H(r(0, (1 << 56) - 1), Hole::NotPresent),
                Item::H(r(1 << 56, 0xfeff_ffff_ffff_ffff), Hole::NonCanonical),
                Item::H(r(0xff00_0000_0000_0000, u64::MAX), Hole::NotPresent),
            ]
        );
    }

    #[test]
    fn self_pointing_table_terminates() {
        let mut mem = Mem::default();
        // PML4[0] points at the PML4 itself; every other entry too.
        for i in 0..512 {
            mem.set(0x100000, i, 0x100000 | OK);
        }
        let t = Table::new(0x100000, 48).unwrap();
        let (items, out) = walk(&mut mem, &t, r(0, u64::MAX));
        assert!(leaves(&items).is_empty());
        // Each entry of the page is read once per walk: the 512 entries
        // once, and a re-entry at each of them is a hole.
        assert_eq!(out.reads, 512);
        assert!(items.contains(&Item::H(
            r(0, 0x7fff_ffff_ffff),
            Hole::Shared { table: 0x100000 }
        )));
        assert_eq!(
            translate_in(&mut mem, &t, 0x5000),
            Err(Hole::Shared { table: 0x100000 })
        );
    }

    #[test]
    fn cycle_further_down_and_shared_tables() {
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        // PT[0] is a leaf; PD[1] points back at the PDPT (a cycle), PD[2]
        // and PD[3] share the PT.
        mem.set(0x103000, 0, 0x9000 | OK);
        mem.set(0x102000, 1, 0x101000 | OK);
        mem.set(0x102000, 2, 0x103000 | OK);
        let (items, _) = walk(&mut mem, &t, r(0, 4 * M2 - 1));
        assert_eq!(leaves(&items).len(), 1);
        assert!(items.contains(&Item::H(
            r(M2, 2 * M2 - 1),
            Hole::Shared { table: 0x101000 }
        )));
        assert!(items.contains(&Item::H(
            r(2 * M2, 3 * M2 - 1),
            Hole::Shared { table: 0x103000 }
        )));
        // Walked alone, the second reference is the first one of its walk.
        assert_eq!(translate_in(&mut mem, &t, 2 * M2).unwrap().gpa, 0x9000);
    }

    #[test]
    fn every_entry_read_at_most_once_per_walk() {
        // A hostile table where every entry of every level points at the
        // next level's single page, the PT being all leaves: without the
        // visited set this would be 512^4 leaves.
        let mut mem = Mem::default();
        for i in 0..512 {
            mem.set(0x100000, i, 0x101000 | OK);
            mem.set(0x101000, i, 0x102000 | OK);
            mem.set(0x102000, i, 0x103000 | OK);
            mem.set(0x103000, i, (0x200000 + i * K4) | OK);
        }
        let t = Table::new(0x100000, 48).unwrap();
        let (items, out) = walk(&mut mem, &t, r(0, u64::MAX));
        assert_eq!(out.reads, 4 * 512);
        assert_eq!(mem.reads, 4 * 512);
        let ls = leaves(&items);
        assert_eq!(ls.len(), 512);
        assert_eq!(ls[511].range, r(511 * K4, 512 * K4 - 1));
    }

    #[test]
    fn budget_bounds_the_work() {
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        for i in 0..512 {
            mem.set(0x103000, i, (0x200000 + i * K4) | OK);
        }
        let mut rec = Rec {
            mem: &mut mem,
            visited: BTreeSet::new(),
            items: Vec::new(),
            entered: 0,
        };
        let out = t.walk(r(0, M2 - 1), 100, &mut rec).unwrap();
        assert!(out.exhausted);
        assert_eq!(out.reads, 100);
        check_tiling(&rec.items, r(0, M2 - 1));
        let ls = leaves(&rec.items);
        // 3 reads above the PT, then 97 PTEs.
        assert_eq!(ls.len(), 97);
        assert_eq!(
            rec.items.last(),
            Some(&Item::H(r(97 * K4, M2 - 1), Hole::Budget))
        );
    }

    #[test]
    fn table_pages_outside_stage_2() {
        let mut mem = Mem::default();
        let t = Table::new(0x100000, 48).unwrap();
        mem.set(0x100000, 0, 0x101000 | OK);
        mem.set(0x101000, 0, 0x55_5000 | OK); // PD not in stage 2
        let (items, _) = walk(&mut mem, &t, r(0, G1 - 1));
        assert_eq!(
            items,
            [Item::H(
                r(0, G1 - 1),
                Hole::TableUnmapped { table: 0x55_5000 }
            )]
        );
        // The root itself.
        let t = Table::new(0x900000, 48).unwrap();
        assert_eq!(
            translate_in(&mut mem, &t, 0),
            Err(Hole::TableUnmapped { table: 0x900000 })
        );
    }

    #[test]
    fn five_level_table_walked_as_four_level() {
        // A guest built a 5-level table but bound it with width 48: the
        // PML5 is taken for a PML4, and IOVA 0x5000 does not reach its leaf.
        let mut mem = Mem::default();
        mem.set(0x200000, 0, 0x100000 | OK); // PML5
        mem.set(0x100000, 0, 0x101000 | OK); // PML4
        mem.set(0x101000, 0, 0x102000 | OK); // PDPT
        mem.set(0x102000, 0, 0x103000 | OK); // PD
        mem.set(0x103000, 5, 0x800000 | OK); // PT
        let t5 = Table::new(0x200000, 57).unwrap();
        assert_eq!(translate_in(&mut mem, &t5, 0x5000).unwrap().gpa, 0x800000);
        let t4 = Table::new(0x200000, 48).unwrap();
        assert_eq!(translate_in(&mut mem, &t4, 0x5000), Err(Hole::NotPresent));
    }

    #[test]
    fn five_levels_reach_the_top_of_57_bits() {
        let mut mem = Mem::default();
        let t5 = Table::new(0x200000, 57).unwrap();
        // PML5[255] -> PML4 -> PDPT[511] 1 GiB leaf.
        mem.set(0x200000, 255, 0x100000 | OK);
        mem.set(0x100000, 511, 0x101000 | OK);
        mem.set(0x101000, 511, 0x4000_0000 | OK | PS);
        let iova = (1u64 << 56) - G1;
        let l = translate_in(&mut mem, &t5, iova + 7).unwrap();
        assert_eq!((l.gpa, l.shift), (0x4000_0007, 30));
        let (items, _) = walk(&mut mem, &t5, r(0, (1 << 56) - 1));
        assert_eq!(leaves(&items).len(), 1);
    }

    #[test]
    fn stop_propagates() {
        struct Stopper(Mem);
        impl Visit for Stopper {
            fn read_u64(&mut self, gpa: u64) -> Option<u64> {
                self.0.read(gpa)
            }
            fn enter_table(&mut self, _gpa: u64) -> Result<bool, Stop> {
                Ok(true)
            }
            fn leaf(&mut self, _leaf: &Leaf) -> Result<(), Stop> {
                Err(Stop)
            }
            fn hole(&mut self, _range: IovaRange, _why: Hole) -> Result<(), Stop> {
                Ok(())
            }
        }
        let mut mem = Mem::default();
        let t = four_level(&mut mem);
        mem.set(0x103000, 3, 0x9000 | OK);
        let mut s = Stopper(mem);
        assert_eq!(t.walk(r(0, G1), 1000, &mut s), Err(Stop));
    }

    /// A deterministic pseudo-random table of a few pages: walks of any
    /// sub-range agree with single-address translation at sampled points.
    #[test]
    fn random_tables_agree_with_translate() {
        let mut seed: u64 = 0x1234_5678_9abc_def1;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..40 {
            let mut mem = Mem::default();
            let pages: Vec<u64> = (0..6).map(|i| 0x100000 + i * K4).collect();
            for &p in &pages {
                mem.page(p);
                for _ in 0..6 {
                    let idx = next() % 4;
                    let target = if next() % 3 == 0 {
                        0x5000_0000 + (next() % 64) * K4
                    } else {
                        pages[(next() % 6) as usize]
                    };
                    let mut e = target | (next() & 0x1ff);
                    if next() % 8 == 0 {
                        e |= 1 << (48 + next() % 4);
                    }
                    mem.set(p, idx, e);
                }
            }
            let t = Table::new(pages[0], 48).unwrap();
            let range = r(0, 4 * G1 * 512 - 1);
            let (items, _) = walk(&mut mem, &t, range);
            for _ in 0..50 {
                // Sample addresses the small indices can reach.
                let level = |i: u64, s: u32| (i % 4) << s;
                let iova = level(next(), 39)
                    | level(next(), 30)
                    | level(next(), 21)
                    | level(next(), 12)
                    | (next() & 0xfff);
                let single = translate_in(&mut mem, &t, iova);
                let item = items
                    .iter()
                    .find(|it| match it {
                        Item::L(l) => l.range.start <= iova && iova <= l.range.end,
                        Item::H(r, _) => r.start <= iova && iova <= r.end,
                    })
                    .unwrap();
                match (item, single) {
                    (Item::L(l), Ok(s)) => {
                        assert_eq!(l.gpa + (iova - l.range.start), s.gpa, "round {}", round);
                        assert_eq!(l.writable, s.writable);
                    }
                    (Item::H(_, why), Err(s)) => {
                        // A shared table is a hole in the full walk; alone
                        // it may translate, or be a hole of another kind.
                        if !matches!(why, Hole::Shared { .. }) {
                            assert_eq!(*why, s, "round {} iova {:#x}", round, iova);
                        }
                    }
                    (Item::H(_, Hole::Shared { .. }), Ok(_)) => {}
                    (a, b) => panic!("round {}: walk {:?} vs translate {:?}", round, a, b),
                }
            }
        }
    }
}
