// SPDX-License-Identifier: GPL-2.0

//! Timing of the map and unmap paths for `make bench`'s analysis mode
//! (`RVFIO_INSTRUMENT=1 scripts/bench.sh`, Documentation/bench.rst).
//!
//! Compiled in only with `--cfg rvfio_instrument`, which scripts/bench.sh
//! passes for that mode (with a C block that bench/instrument_glue.py adds
//! to a copy of glue.c: the `bench_stats` module parameter, which shows and
//! resets the totals through the two functions below). In every other
//! build [`timed`] is an inline call of its closure and nothing else.

/// What is timed.
#[derive(Clone, Copy)]
pub(crate) enum Stat {
    /// The MAP_DMA and UNMAP_DMA ioctls, whole (`ioctl.rs`).
    IoctlMap,
    IoctlUnmap,
    /// The caller's mm, task and CAP_IPC_LOCK (`Owner::current`).
    Owner,
    /// One pinning batch (`PinBatch::pin`), pages = pages pinned.
    Pin,
    /// `locked_vm` charge and uncharge (`Owner::charge`/`uncharge`).
    Charge,
    Uncharge,
    /// IOMMU map calls of pinned and reserved runs (`IommuDomain`); the
    /// PFNMAP runs the revoker maps are part of `Publish`.
    IommuMap,
    /// IOMMU unmap calls.
    IommuUnmap,
    /// Releasing a mapping's pins (`unpin::unpin_runs`), pages = runs.
    Unpin,
    /// mmu interval notifier insert and remove (`watch.rs`).
    WatchNew,
    WatchDrop,
    /// Handing the PFNMAP runs to the revoker (`Watch::publish`).
    Publish,
    /// Reading the ioctl argument (`read_fixed`), of MAP_DMA and UNMAP_DMA.
    MapArgs,
    UnmapArgs,
    /// Taking the container's mutex.
    MapLock,
    UnmapLock,
    /// The mapping tree: the overlap check and the insertion of a map; the
    /// bisection check and the lookup of a removal.
    MapTree,
    UnmapTree,
    /// Taking a removed mapping out of the tree and dropping it in place.
    Release,
}

/// Names in `bench_stats`, in `Stat` order (bench/report.py reads them).
#[cfg_attr(not(rvfio_instrument), allow(dead_code))]
const NAMES: [&str; 19] = [
    "ioctl_map_dma",
    "ioctl_unmap_dma",
    "owner",
    "pin",
    "charge",
    "uncharge",
    "iommu_map",
    "iommu_unmap",
    "unpin",
    "watch_new",
    "watch_drop",
    "publish",
    "map_args",
    "unmap_args",
    "map_lock",
    "unmap_lock",
    "map_tree",
    "unmap_tree",
    "release",
];

// One name per `Stat`, the last of which is `Release`.
const _: () = assert!(NAMES.len() == Stat::Release as usize + 1);

/// Runs `f`; in the instrumented build also counts the call, `pages` and
/// the time it took under `stat`.
#[cfg(not(rvfio_instrument))]
#[inline(always)]
pub(crate) fn timed<R>(_stat: Stat, _pages: u64, f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(rvfio_instrument)]
pub(crate) use imp::timed;

#[cfg(rvfio_instrument)]
mod imp {
    use super::{Stat, NAMES};
    use crate::bindings;
    use core::fmt::Write;
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

    const N: usize = NAMES.len();
    static CALLS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
    static PAGES: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
    static NS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

    fn now() -> u64 {
        // SAFETY: ktime_get() has no preconditions.
        unsafe { bindings::ktime_get() as u64 }
    }

    pub(crate) fn timed<R>(stat: Stat, pages: u64, f: impl FnOnce() -> R) -> R {
        let t0 = now();
        let r = f();
        let i = stat as usize;
        NS[i].fetch_add(now() - t0, Relaxed);
        CALLS[i].fetch_add(1, Relaxed);
        PAGES[i].fetch_add(pages, Relaxed);
        r
    }

    /// A `core::fmt::Write` into a C buffer, truncating.
    struct Buf<'a> {
        out: &'a mut [u8],
        n: usize,
    }

    impl Write for Buf<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let room = self.out.len() - self.n;
            let k = s.len().min(room);
            self.out[self.n..self.n + k].copy_from_slice(&s.as_bytes()[..k]);
            self.n += k;
            Ok(())
        }
    }

    /// `bench_stats` read: one line per stat into `buf` (`len` bytes, a
    /// sysfs page); returns the bytes written.
    #[no_mangle]
    extern "C" fn rvfio_rs_bench_stats(buf: *mut u8, len: usize) -> isize {
        // SAFETY: the caller (glue.c's param getter) passes its sysfs
        // buffer of `len` bytes, ours until we return.
        let out = unsafe { core::slice::from_raw_parts_mut(buf, len) };
        let mut b = Buf { out, n: 0 };
        for (i, name) in NAMES.iter().enumerate() {
            let _ = writeln!(
                b,
                "{} calls={} pages={} ns={}",
                name,
                CALLS[i].load(Relaxed),
                PAGES[i].load(Relaxed),
                NS[i].load(Relaxed)
            );
        }
        b.n as isize
    }

    /// `bench_stats` write: zeroes every total.
    #[no_mangle]
    extern "C" fn rvfio_rs_bench_reset() {
        for i in 0..N {
            CALLS[i].store(0, Relaxed);
            PAGES[i].store(0, Relaxed);
            NS[i].store(0, Relaxed);
        }
    }
}
