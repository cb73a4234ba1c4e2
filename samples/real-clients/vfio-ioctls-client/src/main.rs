// SPDX-License-Identifier: GPL-2.0
//! vfio-ioctls-client: a rust-vmm VFIO client for `make real-clients`.
//!
//! It uses rust-vmm's `vfio-ioctls` crate the way a Rust VMM does, through the
//! legacy container interface: a [`VfioContainer`] on `/dev/vfio/vfio`, a
//! [`VfioDevice`] for one edu device (the crate opens the device's group, adds
//! it to the container and sets `VFIO_TYPE1v2_IOMMU`), `vfio_dma_map` of an
//! anonymous buffer, and device register access through the crate's region
//! reads and writes (config space and BAR0, no mmap). The edu device then
//! copies data through the IOMMU both ways (RAM -> its 4 KiB buffer -> another
//! place in RAM) and the bytes are checked, as is the page after each target
//! (a DMA must not write past its length). Last, `vfio_dma_unmap`: the crate
//! fails unless the kernel reports exactly the size asked as unmapped.
//!
//! Accounting is checked too: after the map, the buffer's pages must be
//! pinned (`nr_foll_pin_acquired - nr_foll_pin_released` in /proc/vmstat up
//! by at least one per 4 KiB page) and charged to the process (`VmLck` up by
//! the buffer's size); after the unmap both must be back where they were.
//!
//! Usage: `vfio-ioctls-client <edu BDF>` (e.g. `0000:00:03.0`). One result
//! line on stdout; exit status 0 when everything checked out, 1 otherwise.
//! The guest side of the test (scripts/guest-real-clients.sh) checks pins and
//! the kernel log around it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};

/// VFIO region indexes of a vfio-pci device (`enum` in `<linux/vfio.h>`).
const BAR0_REGION: u32 = 0;
const CONFIG_REGION: u32 = 7;

/// PCI config space.
const PCI_VENDOR_DEVICE: u64 = 0x00;
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 0x2;
const PCI_COMMAND_MASTER: u16 = 0x4;
const EDU_VENDOR_DEVICE: u32 = 0x11e8_1234;

/// edu registers (BAR0) and its DMA buffer (device addresses), as in
/// selftests/lib/vfio_edu.h. Registers are accessed 32 bits wide: every
/// address used here is below 4 GiB, and a 64-bit access that the region
/// read/write path splits in two would not reach edu's 64-bit registers.
const EDU_REG_ID: u64 = 0x00;
const EDU_ID_VALUE: u32 = 0x0100_00ed;
const EDU_REG_LIVENESS: u64 = 0x04;
const EDU_REG_DMA_SRC: u64 = 0x80;
const EDU_REG_DMA_DST: u64 = 0x88;
const EDU_REG_DMA_COUNT: u64 = 0x90;
const EDU_REG_DMA_CMD: u64 = 0x98;
const EDU_DMA_CMD_RUN: u32 = 0x1;
const EDU_DMA_CMD_TO_RAM: u32 = 0x2;
const EDU_BUF_ADDR: u64 = 0x40000;
const EDU_BUF_SIZE: usize = 0x1000;
/// A transfer completes after a 100 ms timer of the emulated device.
const EDU_DMA_TIMEOUT: Duration = Duration::from_secs(10);

/// The DMA mapping: 1 MiB of anonymous memory at IOVA 1 MiB (inside edu's
/// default 28-bit DMA window even without `dma_mask=`).
const IOVA: u64 = 0x10_0000;
const MAP_SIZE: usize = 0x10_0000;
/// Round trips, each from its own 128 KiB slot of the buffer: source page at
/// the slot's start, target page 64 KiB further, then an untouched guard page.
const ROUNDS: usize = 8;
const SLOT: usize = MAP_SIZE / ROUNDS;
const TARGET: usize = SLOT / 2;

type Res<T> = Result<T, String>;

/// Pages pinned system-wide: `nr_foll_pin_acquired - nr_foll_pin_released`,
/// after folding the per-CPU deltas (`stat_refresh`).
fn pinned_pages() -> Res<i64> {
    // Root may refresh; if the write fails the counters are just less exact.
    let _ = std::fs::write("/proc/sys/vm/stat_refresh", "1");
    let vmstat =
        std::fs::read_to_string("/proc/vmstat").map_err(|e| format!("/proc/vmstat: {e}"))?;
    let get = |key: &str| -> Res<i64> {
        vmstat
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or(format!("no {key} in /proc/vmstat"))
    };
    Ok(get("nr_foll_pin_acquired")? - get("nr_foll_pin_released")?)
}

/// This process's `VmLck` in KiB.
fn vm_locked_kb() -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmLck:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .ok_or("no VmLck in /proc/self/status".into())
}

/// Pin and `locked_vm` accounting at one point of the run.
#[derive(Clone, Copy, PartialEq)]
struct Accounting {
    pinned: i64,
    locked_kb: u64,
}

impl Accounting {
    fn now() -> Res<Self> {
        Ok(Accounting {
            pinned: pinned_pages()?,
            locked_kb: vm_locked_kb()?,
        })
    }
}

/// The edu device, reached through the crate's region accessors.
struct Edu {
    dev: VfioDevice,
}

impl Edu {
    fn cfg_read(&self, off: u64, buf: &mut [u8]) {
        self.dev.region_read(CONFIG_REGION, buf, off);
    }

    fn cfg_write(&self, off: u64, buf: &[u8]) {
        self.dev.region_write(CONFIG_REGION, buf, off);
    }

    fn read32(&self, off: u64) -> u32 {
        // The crate logs (and otherwise ignores) a failed access and leaves the
        // buffer alone: start from a value no edu register holds here.
        let mut b = [0xffu8; 4];
        self.dev.region_read(BAR0_REGION, &mut b, off);
        u32::from_le_bytes(b)
    }

    fn write32(&self, off: u64, val: u32) {
        self.dev.region_write(BAR0_REGION, &val.to_le_bytes(), off);
    }

    /// Enables memory decoding and bus mastering; checks it is an edu device.
    fn enable(&self) -> Res<()> {
        let mut id = [0u8; 4];
        self.cfg_read(PCI_VENDOR_DEVICE, &mut id);
        let id = u32::from_le_bytes(id);
        if id != EDU_VENDOR_DEVICE {
            return Err(format!(
                "config space reads vendor/device {id:#010x}, not edu"
            ));
        }
        let mut cmd = [0u8; 2];
        self.cfg_read(PCI_COMMAND, &mut cmd);
        let cmd = u16::from_le_bytes(cmd) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        self.cfg_write(PCI_COMMAND, &cmd.to_le_bytes());
        let mut back = [0u8; 2];
        self.cfg_read(PCI_COMMAND, &mut back);
        let back = u16::from_le_bytes(back);
        if back & PCI_COMMAND_MASTER == 0 {
            return Err(format!(
                "bus mastering did not stick (PCI_COMMAND {back:#x})"
            ));
        }
        let size = self.dev.get_region_size(BAR0_REGION);
        if size < 0x100 {
            return Err(format!("BAR0 region is {size:#x} bytes"));
        }
        let v = self.read32(EDU_REG_ID);
        if v != EDU_ID_VALUE {
            return Err(format!("edu ID register reads {v:#x}"));
        }
        self.write32(EDU_REG_LIVENESS, 0x1234_5678);
        let v = self.read32(EDU_REG_LIVENESS);
        if v != !0x1234_5678u32 {
            return Err(format!(
                "edu liveness register reads {v:#x}, not the inverse"
            ));
        }
        Ok(())
    }

    fn wait_idle(&self, what: &str) -> Res<()> {
        let deadline = Instant::now() + EDU_DMA_TIMEOUT;
        while self.read32(EDU_REG_DMA_CMD) & EDU_DMA_CMD_RUN != 0 {
            if Instant::now() > deadline {
                return Err(format!(
                    "{what}: edu DMA still running after {EDU_DMA_TIMEOUT:?}"
                ));
            }
            sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// One edu transfer of `len` bytes; `to_ram` copies its buffer to `dst`.
    fn dma(&self, src: u64, dst: u64, len: usize, to_ram: bool) -> Res<()> {
        let what = format!("DMA {src:#x} -> {dst:#x} ({len} bytes)");
        self.wait_idle(&what)?;
        let regs = [
            (EDU_REG_DMA_SRC, src),
            (EDU_REG_DMA_DST, dst),
            (EDU_REG_DMA_COUNT, len as u64),
        ];
        for (reg, val) in regs {
            let val = u32::try_from(val).map_err(|_| format!("{what}: {val:#x} is not 32-bit"))?;
            self.write32(reg, val);
            let back = self.read32(reg);
            if back != val {
                return Err(format!("{what}: edu register {reg:#x} reads {back:#x}"));
            }
        }
        let dir = if to_ram { EDU_DMA_CMD_TO_RAM } else { 0 };
        self.write32(EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | dir);
        self.wait_idle(&what)
    }
}

/// Anonymous memory shared with the device once mapped: only volatile
/// accesses through raw pointers (the crate's `vfio_dma_map` contract).
///
/// # Invariants
/// `ptr` is the start of a private anonymous mapping of `len` bytes that this
/// value owns and unmaps on drop.
struct DmaBuf {
    ptr: *mut u8,
    len: usize,
}

impl DmaBuf {
    fn new(len: usize) -> Res<Self> {
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!(
                "mmap {len} bytes: {}",
                std::io::Error::last_os_error()
            ));
        }
        // INVARIANT: mmap returned a mapping of `len` bytes.
        Ok(DmaBuf { ptr: p.cast(), len })
    }

    fn get(&self, off: usize) -> u8 {
        assert!(off < self.len);
        // SAFETY: `off` is inside the mapping (type invariant); a volatile read
        // is allowed while the device may write the memory.
        unsafe { self.ptr.add(off).read_volatile() }
    }

    fn set(&self, off: usize, v: u8) {
        assert!(off < self.len);
        // SAFETY: as in `get`, for a volatile write.
        unsafe { self.ptr.add(off).write_volatile(v) }
    }
}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours (type invariant) and no longer used.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// xorshift64: a different pattern every run and every round.
fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One round trip through the IOMMU in slot `round`; returns bytes checked.
fn round_trip(edu: &Edu, buf: &DmaBuf, round: usize, seed: u64) -> Res<usize> {
    let src = round * SLOT;
    let dst = src + TARGET;
    let data = pattern(
        seed ^ (round as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        EDU_BUF_SIZE,
    );
    for (i, &b) in data.iter().enumerate() {
        buf.set(src + i, b);
    }
    // The target page and the guard page after it start out zero.
    for i in 0..2 * EDU_BUF_SIZE {
        buf.set(dst + i, 0);
    }
    let (src_iova, dst_iova) = (IOVA + src as u64, IOVA + dst as u64);
    edu.dma(src_iova, EDU_BUF_ADDR, EDU_BUF_SIZE, false)?;
    edu.dma(EDU_BUF_ADDR, dst_iova, EDU_BUF_SIZE, true)?;
    let bad: Vec<usize> = (0..EDU_BUF_SIZE)
        .filter(|&i| buf.get(dst + i) != data[i])
        .collect();
    if let Some(&first) = bad.first() {
        return Err(format!(
            "round {round}: {} of {EDU_BUF_SIZE} bytes at IOVA {dst_iova:#x} differ from what \
             was DMAed from IOVA {src_iova:#x} (first at +{first:#x}: {:#04x}, expected {:#04x})",
            bad.len(),
            buf.get(dst + first),
            data[first]
        ));
    }
    let guard = dst + EDU_BUF_SIZE;
    if let Some(i) = (0..EDU_BUF_SIZE).find(|&i| buf.get(guard + i) != 0) {
        return Err(format!(
            "round {round}: the DMA wrote past its end (+{:#x})",
            EDU_BUF_SIZE + i
        ));
    }
    Ok(EDU_BUF_SIZE)
}

fn run(bdf: &str) -> Res<String> {
    // Declared first so that it is dropped last, after the device and the
    // container (whose release unmaps whatever is still mapped).
    let buf = DmaBuf::new(MAP_SIZE)?;
    let sysfs = PathBuf::from(format!("/sys/bus/pci/devices/{bdf}"));
    let container =
        Arc::new(VfioContainer::new(None).map_err(|e| format!("VfioContainer::new: {e}"))?);
    let ops: Arc<dyn VfioOps> = container.clone();
    let dev = VfioDevice::new(&sysfs, ops, false)
        .map_err(|e| format!("VfioDevice::new({}): {e}", sysfs.display()))?;
    let edu = Edu { dev };
    edu.enable()?;

    let before = Accounting::now()?;
    // SAFETY: `buf` is only accessed volatilely from here on, and it outlives
    // the mapping: `vfio_dma_unmap` below, or on an early return the
    // container's release, comes before `buf` is dropped (declared first).
    unsafe { container.vfio_dma_map(IOVA, MAP_SIZE, buf.ptr) }
        .map_err(|e| format!("vfio_dma_map({IOVA:#x}, {MAP_SIZE:#x}): {e}"))?;
    let mapped = Accounting::now()?;
    let pages = (MAP_SIZE / 4096) as i64;
    if mapped.pinned - before.pinned < pages {
        return Err(format!(
            "after mapping {pages} pages, {} more pinned (nr_foll_pin_acquired - released)",
            mapped.pinned - before.pinned
        ));
    }
    if mapped.locked_kb < before.locked_kb + (MAP_SIZE / 1024) as u64 {
        return Err(format!(
            "VmLck {} kB after mapping {} kB, {} kB before",
            mapped.locked_kb,
            MAP_SIZE / 1024,
            before.locked_kb
        ));
    }

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id());
    let mut checked = 0;
    let mut result = Ok(());
    for round in 0..ROUNDS {
        match round_trip(&edu, &buf, round, seed) {
            Ok(n) => checked += n,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // Unmap even after a failed round; the crate checks the unmapped size.
    let unmap = container
        .vfio_dma_unmap(IOVA, MAP_SIZE)
        .map_err(|e| format!("vfio_dma_unmap({IOVA:#x}, {MAP_SIZE:#x}): {e}"));
    result?;
    unmap?;
    let after = Accounting::now()?;
    if after != before {
        return Err(format!(
            "after the unmap: {} pages pinned and VmLck {} kB, before the map {} and {} kB",
            after.pinned, after.locked_kb, before.pinned, before.locked_kb
        ));
    }
    Ok(format!(
        "{bdf}: mapped {MAP_SIZE} bytes at IOVA {IOVA:#x} ({} pages pinned, VmLck +{} kB), \
         {ROUNDS} edu round trips (RAM -> device -> RAM), {checked} bytes checked, unmap \
         size checked, pins and VmLck back",
        mapped.pinned - before.pinned,
        mapped.locked_kb - before.locked_kb
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 {
        eprintln!("usage: {} <edu BDF, e.g. 0000:00:03.0>", args[0]);
        return ExitCode::FAILURE;
    }
    match run(&args[1]) {
        Ok(msg) => {
            println!("vfio-ioctls-client: OK: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("vfio-ioctls-client: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}
