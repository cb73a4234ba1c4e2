// SPDX-License-Identifier: GPL-2.0

//! Runs: how a batch of pinned pages, or of looked-up PFNMAP pfns, becomes
//! the physically contiguous pieces a mapping is made of and mapped as.
//!
//! Pure logic, also built and tested on the host (`rust/host`): the C side
//! describes a pinned batch as physically contiguous runs
//! (`rvfio_pages_to_runs()`, a loop that reads one struct page per folio);
//! the runs of PFNMAP pfns and the one-page split of `disable_hugepages` are
//! made here.

/// `PAGE_SHIFT` of x86-64, the only architecture rvfio builds for (the
/// module checks it against the kernel's at compile time).
pub(crate) const RUN_PAGE_SHIFT: u32 = 12;

/// A physically contiguous piece of a mapping whose pages are either all
/// pinned or all reserved (type1's `is_invalid_reserved_pfn()`: MMIO or
/// the zero page, neither pinned nor charged). The layout of
/// `struct rvfio_run`, which the C side fills for pinned batches.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Run {
    iova: u64,
    pfn: u64,
    npages: u64,
    reserved: bool,
}

impl Run {
    pub(crate) const fn new(iova: u64, pfn: u64, npages: u64, reserved: bool) -> Self {
        Self {
            iova,
            pfn,
            npages,
            reserved,
        }
    }

    pub(crate) fn iova(&self) -> u64 {
        self.iova
    }

    pub(crate) fn pfn(&self) -> u64 {
        self.pfn
    }

    pub(crate) fn npages(&self) -> u64 {
        self.npages
    }

    pub(crate) fn reserved(&self) -> bool {
        self.reserved
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.npages << RUN_PAGE_SHIFT
    }

    /// Appends `next`, which [`Run::continued_by`] accepted.
    pub(crate) fn grow(&mut self, next: &Run) {
        self.npages += next.npages;
    }

    /// True when `next` continues this run (same kind, physically and in
    /// IOVA adjacent) and the result stays within `max_pages`.
    pub(crate) fn continued_by(&self, next: &Run, max_pages: u64) -> bool {
        self.reserved == next.reserved
            && self.npages + next.npages <= max_pages
            && self.pfn + self.npages == next.pfn
            && self.iova + self.bytes() == next.iova
    }
}

/// Builds the runs of one batch into `out`, from its first IOVA.
///
/// # Invariants
///
/// `out[..n]` are the runs so far; they tile `[iova, iova + pages << 12)`
/// of the batch's pages handed in so far, in order.
struct Builder<'a> {
    out: &'a mut [Run],
    n: usize,
    iova: u64,
    /// `disable_hugepages`: a run per page, as type1 maps them.
    split: bool,
}

impl Builder<'_> {
    /// Adds `len` pages from `pfn`, physically contiguous and of one kind,
    /// that follow the pages added before.
    fn push(&mut self, pfn: u64, len: u64, reserved: bool) {
        if !self.split && self.n > 0 {
            let last = &mut self.out[self.n - 1];
            if last.reserved == reserved && last.pfn + last.npages == pfn {
                last.npages += len;
                self.iova += len << RUN_PAGE_SHIFT;
                return;
            }
        }
        let pieces = if self.split { len } else { 1 };
        let each = if self.split { 1 } else { len };
        for k in 0..pieces {
            self.out[self.n] = Run::new(self.iova, pfn + k, each, reserved);
            self.n += 1;
            self.iova += each << RUN_PAGE_SHIFT;
        }
    }
}

/// `disable_hugepages`: splits the first `k` runs of `runs` into one-page
/// runs, in place (`runs` must have room for one run per page of them);
/// returns the new number of runs.
pub(crate) fn split_pages(runs: &mut [Run], k: usize) -> usize {
    let total: u64 = runs[..k].iter().map(|r| r.npages).sum();
    let total = total as usize;
    // From the back, so that nothing is overwritten before it is read.
    let mut w = total;
    for j in (0..k).rev() {
        let r = runs[j];
        for p in (0..r.npages).rev() {
            w -= 1;
            runs[w] = Run::new(r.iova + (p << RUN_PAGE_SHIFT), r.pfn + p, 1, r.reserved);
        }
    }
    total
}

/// The runs of `pfns`, looked up in a VM_PFNMAP range (never pinned: all
/// reserved), to be mapped from `iova`, written to `out`; returns their
/// number.
pub(crate) fn from_pfns(pfns: &[u64], iova: u64, split: bool, out: &mut [Run]) -> usize {
    let mut b = Builder {
        out,
        n: 0,
        iova,
        split,
    };
    let mut i = 0;
    while i < pfns.len() {
        let mut len = 1;
        while i + len < pfns.len() && pfns[i + len] == pfns[i] + len as u64 {
            len += 1;
        }
        b.push(pfns[i], len as u64, true);
        i += len;
    }
    b.n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_pages_expands_in_place() {
        let mut runs = [Run::default(); 8];
        runs[0] = Run::new(0x10000, 512, 3, false);
        runs[1] = Run::new(0x13000, 9, 1, true);
        runs[2] = Run::new(0x14000, 20, 2, false);
        let n = split_pages(&mut runs, 3);
        assert_eq!(
            &runs[..n],
            &[
                Run::new(0x10000, 512, 1, false),
                Run::new(0x11000, 513, 1, false),
                Run::new(0x12000, 514, 1, false),
                Run::new(0x13000, 9, 1, true),
                Run::new(0x14000, 20, 1, false),
                Run::new(0x15000, 21, 1, false)
            ]
        );
    }

    #[test]
    fn pfnmap_pfns_are_reserved_runs() {
        let mut out = [Run::default(); 8];
        let n = from_pfns(&[100, 101, 102, 200], 0x2000, false, &mut out);
        assert_eq!(
            &out[..n],
            &[
                Run::new(0x2000, 100, 3, true),
                Run::new(0x5000, 200, 1, true)
            ]
        );
        let n = from_pfns(&[100, 101], 0, true, &mut out);
        assert_eq!(
            &out[..n],
            &[Run::new(0, 100, 1, true), Run::new(0x1000, 101, 1, true)]
        );
    }

    #[test]
    fn continued_by_respects_kind_adjacency_and_cap() {
        let a = Run::new(0, 10, 2, false);
        assert!(a.continued_by(&Run::new(0x2000, 12, 1, false), 3));
        assert!(!a.continued_by(&Run::new(0x2000, 12, 2, false), 3));
        assert!(!a.continued_by(&Run::new(0x2000, 12, 1, true), 8));
        assert!(!a.continued_by(&Run::new(0x3000, 12, 1, false), 8));
        assert!(!a.continued_by(&Run::new(0x2000, 13, 1, false), 8));
    }
}
