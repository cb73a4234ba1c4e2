// SPDX-License-Identifier: GPL-2.0

//! Stage 2 as software nesting sees it: the container's mappings, whose
//! IOVAs are the guest's physical addresses. Reads guest page tables through
//! the pages those mappings pin, and tells the shadow builder which pinned
//! host-physical run backs a guest-physical address.
//!
//! Everything here runs under the container's mutex, which keeps the
//! mappings (and so their pins) from changing while it looks.

use crate::bindings;
use crate::dma::{Dma, RunAt, PROT_READ, PROT_WRITE};
use crate::pin::{PAGE_SHIFT, PAGE_SIZE};
use crate::shadow_plan::{Stage2, S2};
use kernel::error::{code::*, Result};
use kernel::rbtree::RBTree;

/// What the mapping tree holds at a guest-physical address.
enum Found {
    /// Inside a mapping with these permissions: where, when pinned.
    In { run: Option<RunAt>, prot: i32 },
    /// In no mapping; the next mapping starts there (`None`: none does).
    Gap(Option<u64>),
}

/// Where a table entry is read from.
enum TableAt {
    Pfn(u64),
    Value(u64),
}

/// A read-only view of stage 2 for one walk.
pub(crate) struct S2View<'a> {
    dmas: &'a mut RBTree<u64, Dma>,
    /// The last table page looked up and its pfn (`None`: unreadable), so
    /// that the 512 entries of a table cost one tree lookup.
    page: Option<(u64, Option<u64>)>,
}

impl<'a> S2View<'a> {
    pub(crate) fn new(dmas: &'a mut RBTree<u64, Dma>) -> Self {
        Self { dmas, page: None }
    }

    /// Calls `f` with the mapping holding `gpa` (as
    /// `Inner::first_overlap_with` finds it); without one, where the next
    /// mapping starts (`None`: no mapping does).
    fn with_dma<R>(
        &mut self,
        gpa: u64,
        f: impl FnOnce(&Dma) -> R,
    ) -> core::result::Result<R, Option<u64>> {
        match self.dmas.cursor_lower_bound(&gpa) {
            Some(cursor) => {
                let (k, dma) = cursor.current();
                if *k == gpa {
                    return Ok(f(dma));
                }
                let next = *k;
                match cursor.peek_prev() {
                    Some((_, prev)) if prev.range().end >= gpa => Ok(f(prev)),
                    _ => Err(Some(next)),
                }
            }
            None => match self.dmas.cursor_back() {
                Some(c) if c.current().1.range().end >= gpa => Ok(f(c.current().1)),
                _ => Err(None),
            },
        }
    }

    /// The mapping tree at `gpa`.
    fn find(&mut self, gpa: u64) -> Found {
        match self.with_dma(gpa, |d| (d.run_at(gpa), d.prot())) {
            Ok((run, prot)) => Found::In { run, prot },
            Err(next) => Found::Gap(next),
        }
    }

    /// Where a table may be read at `gpa`: the pfn of a pinned page mapped
    /// readable in stage 2 (not PFNMAP, not a reserved pfn), or, when no
    /// IOMMU domain pinned the mapping, the u64 read from its owner's
    /// memory.
    fn table_at(&mut self, gpa: u64) -> Option<TableAt> {
        let found = self.with_dma(gpa, |d| match d.run_at(gpa) {
            Some(run) if d.prot() & PROT_READ != 0 && run.pinned && !run.pfnmap => {
                Some(TableAt::Pfn(run.pfn))
            }
            Some(_) => None,
            None => d.read_user_u64(gpa).map(TableAt::Value),
        });
        found.ok().flatten()
    }

    /// Whether a table can be read at `gpa` (the bind's check of the root):
    /// EINVAL when stage 2 does not map it readable or maps PFNMAP memory
    /// there, EFAULT when it does but the owner's memory (no IOMMU domain
    /// pinned it) cannot be read now.
    pub(crate) fn check_table(&mut self, gpa: u64) -> Result {
        let found = self.with_dma(gpa, |d| match d.run_at(gpa) {
            Some(run) if d.prot() & PROT_READ != 0 && run.pinned && !run.pfnmap => Ok(()),
            Some(_) => Err(EINVAL),
            None if d.prot() & PROT_READ == 0 || d.vaddr_invalid() => Err(EINVAL),
            None => d.read_user_u64(gpa).map(|_| ()).ok_or(EFAULT),
        });
        found.unwrap_or(Err(EINVAL))
    }

    /// The u64 at `gpa` (8-byte aligned), read through the pinned page
    /// stage 2 maps there, or `None` when stage 2 does not map it readable.
    pub(crate) fn read_u64(&mut self, gpa: u64) -> Option<u64> {
        let page = gpa & !(PAGE_SIZE - 1);
        let pfn = match self.page {
            Some((p, pfn)) if p == page => pfn,
            _ => match self.table_at(gpa) {
                Some(TableAt::Value(v)) => return Some(v),
                Some(TableAt::Pfn(pfn)) => {
                    self.page = Some((page, Some(pfn)));
                    Some(pfn)
                }
                None => {
                    self.page = Some((page, None));
                    None
                }
            },
        }?;
        // CAST: below PAGE_SIZE.
        let offset = (gpa & (PAGE_SIZE - 1)) as u32;
        // SAFETY: `pfn` is pinned by a mapping of the container, which
        // cannot go away while the container's mutex is held (our caller's).
        Some(unsafe { bindings::rvfio_pfn_read_u64(pfn, offset) })
    }
}

impl Stage2 for S2View<'_> {
    fn lookup(&mut self, gpa: u64, max: u64) -> S2 {
        match self.find(gpa) {
            Found::In {
                run: Some(run),
                prot,
            } if !run.pfnmap => S2::Mapped {
                hpa: run.pfn << PAGE_SHIFT,
                len: run.bytes.min(max),
                read: prot & PROT_READ != 0,
                write: prot & PROT_WRITE != 0,
            },
            // PFNMAP memory is revoked by the revoker, which does not know
            // shadow domains: a shadow never points at it.
            Found::In { run: Some(run), .. } => S2::Hole {
                len: run.bytes.min(max),
            },
            // Not pinned (no IOMMU domain): nothing a shadow can point at.
            Found::In { run: None, .. } => S2::Hole { len: PAGE_SIZE },
            Found::Gap(next) => S2::Hole {
                len: next.map_or(max, |n| (n - gpa).min(max)),
            },
        }
    }
}
