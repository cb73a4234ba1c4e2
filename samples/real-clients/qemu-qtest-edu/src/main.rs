// SPDX-License-Identifier: GPL-2.0
//! qemu-qtest-edu: drives QEMU's vfio-pci over the qtest protocol for
//! `make real-clients`.
//!
//! QEMU is the VFIO client under test. It is started (by this program, with
//! the command line given after `--`) with `-qtest stdio -S` and
//! `-device vfio-pci,host=<edu BDF>`: no guest CPU runs, but QEMU does its
//! real container set-up (group, container, `VFIO_TYPE1v2_IOMMU`) and its
//! memory listener maps all guest RAM with `VFIO_IOMMU_MAP_DMA`, IOVA = guest
//! physical address. This program then plays the guest over qtest (QEMU's
//! test protocol on QEMU's stdin/stdout):
//!
//! 1. finds the edu device by scanning bus 0 through config ports 0xcf8/0xcfc,
//!    programs its BAR0 (no firmware ran) and enables memory decoding and bus
//!    mastering (QEMU's vfio-pci passes PCI_COMMAND through to the device);
//! 2. checks edu's ID and liveness registers through the BAR (QEMU maps the
//!    device's BAR region);
//! 3. per round: writes a random page into guest RAM, has edu DMA it into
//!    its buffer and back out to another guest page (both ways through the
//!    IOMMU, translated by the mappings QEMU made), reads that page back over
//!    qtest and compares it, and checks that the page after it stayed zero;
//! 4. checks that guest RAM is pinned while QEMU runs: system-wide pinned
//!    pages (`nr_foll_pin_acquired - nr_foll_pin_released`, /proc/vmstat) up
//!    by at least `--min-pinned` pages from before QEMU started;
//! 5. sends QEMU SIGTERM (as libqtest does) and requires a clean exit: QEMU
//!    unmaps everything and closes the container on the way out (the guest
//!    script checks that the pins are gone).
//!
//! Usage: `qemu-qtest-edu [--rounds N] [--min-pinned PAGES] [--emulated] --
//! <qemu command line>`.
//! Progress on stderr, one result line on stdout; exit status 0 only if all
//! checked out. `--emulated` is for trying this program on the host against
//! QEMU's own emulated edu (`-device edu` instead of vfio-pci, and no `-S`:
//! that edu's DMA timer runs on QEMU's virtual clock, which stands still while
//! the guest CPU is stopped; Debian's QEMU has no qtest accelerator whose
//! `clock_step` could move it): it waits 3 s for the firmware to finish.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread::{self, sleep};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const EDU_VENDOR_DEVICE: u32 = 0x11e8_1234;
const PCI_COMMAND_MEMORY: u32 = 0x2;
const PCI_COMMAND_MASTER: u32 = 0x4;
/// Where BAR0 (1 MiB, 32-bit) goes: inside the PCI hole of a q35 machine with
/// little RAM, clear of MMCONFIG (0xb0000000), IO-APIC and LAPIC.
const BAR0_ADDR: u64 = 0xe000_0000;

const EDU_REG_ID: u64 = 0x00;
const EDU_ID_VALUE: u64 = 0x0100_00ed;
const EDU_REG_LIVENESS: u64 = 0x04;
const EDU_REG_DMA_SRC: u64 = 0x80;
const EDU_REG_DMA_DST: u64 = 0x88;
const EDU_REG_DMA_COUNT: u64 = 0x90;
const EDU_REG_DMA_CMD: u64 = 0x98;
const EDU_DMA_CMD_RUN: u64 = 0x1;
const EDU_DMA_CMD_TO_RAM: u64 = 0x2;
const EDU_BUF_ADDR: u64 = 0x40000;
const PAGE: usize = 0x1000;
const EDU_DMA_TIMEOUT: Duration = Duration::from_secs(10);

/// Guest-physical pages used: round r's source at 1 MiB + r * 64 KiB, its
/// target 32 KiB after it, then a guard page.
const GPA_BASE: u64 = 0x10_0000;
const GPA_SLOT: u64 = 0x1_0000;
const GPA_TARGET: u64 = 0x8000;

/// QEMU initialises (and maps all guest RAM) before it reads the first
/// command; later answers come at once.
const FIRST_ANSWER: Duration = Duration::from_secs(300);
const ANSWER: Duration = Duration::from_secs(60);

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

struct Qtest {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    timeout: Duration,
}

impl Qtest {
    fn start(cmd: &[String]) -> Res<Self> {
        let mut child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", cmd[0]))?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Qtest {
            child,
            stdin,
            lines,
            timeout: FIRST_ANSWER,
        })
    }

    /// Sends one command, returns the word after "OK" (empty if none).
    fn cmd(&mut self, c: &str) -> Res<String> {
        writeln!(self.stdin, "{c}").map_err(|e| format!("qtest '{c}': write: {e}"))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(l) => l,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "qtest '{}': no answer in {:?}",
                        short(c),
                        self.timeout
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let st = self.child.try_wait().ok().flatten();
                    return Err(format!("qtest '{}': QEMU went away ({st:?})", short(c)));
                }
            };
            // Asynchronous events (interrupt interception) are not answers.
            if line.starts_with("IRQ") {
                continue;
            }
            self.timeout = ANSWER;
            return match line.strip_prefix("OK") {
                Some(rest) => Ok(rest.trim().to_string()),
                None => Err(format!("qtest '{}': {line}", short(c))),
            };
        }
    }

    fn value(&mut self, c: &str) -> Res<u64> {
        let v = self.cmd(c)?;
        u64::from_str_radix(v.trim_start_matches("0x"), 16)
            .map_err(|_| format!("qtest '{c}': bad value '{v}'"))
    }

    fn cfg_read(&mut self, dev: u32, reg: u32) -> Res<u32> {
        self.cmd(&format!("outl 0xcf8 {:#x}", cfg_addr(dev, reg)))?;
        Ok(self.value("inl 0xcfc")? as u32)
    }

    fn cfg_write(&mut self, dev: u32, reg: u32, val: u32) -> Res<()> {
        self.cmd(&format!("outl 0xcf8 {:#x}", cfg_addr(dev, reg)))?;
        self.cmd(&format!("outl 0xcfc {val:#x}")).map(drop)
    }

    fn readl(&mut self, addr: u64) -> Res<u64> {
        self.value(&format!("readl {addr:#x}"))
    }

    fn writel(&mut self, addr: u64, val: u64) -> Res<()> {
        self.cmd(&format!("writel {addr:#x} {val:#x}")).map(drop)
    }

    fn mem_write(&mut self, gpa: u64, data: &[u8]) -> Res<()> {
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        self.cmd(&format!("write {gpa:#x} {:#x} 0x{hex}", data.len()))
            .map(drop)
    }

    fn mem_read(&mut self, gpa: u64, len: usize) -> Res<Vec<u8>> {
        let v = self.cmd(&format!("read {gpa:#x} {len:#x}"))?;
        let hex = v.trim_start_matches("0x");
        if hex.len() != 2 * len {
            return Err(format!(
                "read {gpa:#x}: {} hex digits for {len} bytes",
                hex.len()
            ));
        }
        (0..len)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("read {gpa:#x}: {e}"))
    }

    /// SIGTERM, then wait for QEMU to exit (cleanly: status 0).
    fn quit(mut self) -> Res<()> {
        // SAFETY: kill() takes no pointers; the pid is our own child's, not
        // yet reaped (so not reused).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) if st.success() => return Ok(()),
                Ok(Some(st)) => return Err(format!("QEMU exited with {st} after SIGTERM")),
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    return Err("QEMU did not exit within 120 s of SIGTERM".into());
                }
                Ok(None) => sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("waiting for QEMU: {e}")),
            }
        }
    }
}

fn short(c: &str) -> &str {
    &c[..c.len().min(40)]
}

fn cfg_addr(dev: u32, reg: u32) -> u32 {
    0x8000_0000 | (dev << 11) | (reg & 0xfc)
}

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

fn edu_wait(q: &mut Qtest, what: &str) -> Res<()> {
    let deadline = Instant::now() + EDU_DMA_TIMEOUT;
    while q.readl(BAR0_ADDR + EDU_REG_DMA_CMD)? & EDU_DMA_CMD_RUN != 0 {
        if Instant::now() > deadline {
            return Err(format!(
                "{what}: edu DMA still running after {EDU_DMA_TIMEOUT:?}"
            ));
        }
        sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn edu_dma(q: &mut Qtest, src: u64, dst: u64, len: usize, to_ram: bool) -> Res<()> {
    let what = format!("DMA {src:#x} -> {dst:#x}");
    edu_wait(q, &what)?;
    for (reg, val) in [
        (EDU_REG_DMA_SRC, src),
        (EDU_REG_DMA_DST, dst),
        (EDU_REG_DMA_COUNT, len as u64),
    ] {
        q.writel(BAR0_ADDR + reg, val)?;
        let back = q.readl(BAR0_ADDR + reg)?;
        if back != val {
            return Err(format!(
                "{what}: edu register {reg:#x} reads {back:#x}, wrote {val:#x}"
            ));
        }
    }
    let dir = if to_ram { EDU_DMA_CMD_TO_RAM } else { 0 };
    q.writel(BAR0_ADDR + EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | dir)?;
    edu_wait(q, &what)
}

/// Steps 1 and 2: returns the edu's slot on bus 0.
fn setup(q: &mut Qtest) -> Res<u32> {
    let mut found = None;
    for dev in 0..32 {
        if q.cfg_read(dev, 0)? == EDU_VENDOR_DEVICE {
            found = Some(dev);
            break;
        }
    }
    let dev = found.ok_or("no edu (1234:11e8) on the guest's bus 0: vfio-pci missing?")?;
    q.cfg_write(dev, 0x10, BAR0_ADDR as u32)?;
    let bar = q.cfg_read(dev, 0x10)?;
    if u64::from(bar & !0xf) != BAR0_ADDR {
        return Err(format!("BAR0 reads {bar:#x} after writing {BAR0_ADDR:#x}"));
    }
    let cmd = q.cfg_read(dev, 0x04)? & 0xffff;
    q.cfg_write(dev, 0x04, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)?;
    let cmd = q.cfg_read(dev, 0x04)? & 0xffff;
    if cmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER) != PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER {
        return Err(format!(
            "PCI_COMMAND reads {cmd:#x}: memory/bus master did not stick"
        ));
    }
    let id = q.readl(BAR0_ADDR + EDU_REG_ID)?;
    if id != EDU_ID_VALUE {
        return Err(format!(
            "edu ID register reads {id:#x} through vfio-pci's BAR0"
        ));
    }
    q.writel(BAR0_ADDR + EDU_REG_LIVENESS, 0x1234_5678)?;
    let live = q.readl(BAR0_ADDR + EDU_REG_LIVENESS)?;
    if live != u64::from(!0x1234_5678u32) {
        return Err(format!(
            "edu liveness register reads {live:#x}, not the inverse"
        ));
    }
    Ok(dev)
}

/// Step 3, one round; returns bytes checked.
fn round_trip(q: &mut Qtest, round: u64, seed: u64) -> Res<usize> {
    let src = GPA_BASE + round * GPA_SLOT;
    let dst = src + GPA_TARGET;
    let data = pattern(seed ^ (round + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15), PAGE);
    q.mem_write(src, &data)?;
    q.cmd(&format!("memset {dst:#x} {:#x} 0", 2 * PAGE))?;
    edu_dma(q, src, EDU_BUF_ADDR, PAGE, false)?;
    edu_dma(q, EDU_BUF_ADDR, dst, PAGE, true)?;
    let got = q.mem_read(dst, PAGE)?;
    let bad: Vec<usize> = (0..PAGE).filter(|&i| got[i] != data[i]).collect();
    if let Some(&i) = bad.first() {
        return Err(format!(
            "round {round}: {} of {PAGE} bytes at GPA {dst:#x} differ from what edu DMAed \
             from GPA {src:#x} (first at +{i:#x}: {:#04x}, expected {:#04x})",
            bad.len(),
            got[i],
            data[i]
        ));
    }
    let guard = q.mem_read(dst + PAGE as u64, PAGE)?;
    if let Some(i) = guard.iter().position(|&b| b != 0) {
        return Err(format!(
            "round {round}: the DMA wrote past its end (+{:#x})",
            PAGE + i
        ));
    }
    Ok(PAGE)
}

fn run(rounds: u64, min_pinned: i64, emulated: bool, cmd: &[String]) -> Res<String> {
    let t0 = Instant::now();
    let pinned_before = pinned_pages()?;
    let mut q = Qtest::start(cmd)?;
    if emulated {
        // Let the firmware finish its PCI set-up before ours.
        sleep(Duration::from_secs(3));
    }
    let result: Res<(u32, Duration, usize, i64)> = (|| {
        let dev = setup(&mut q)?;
        let ready = t0.elapsed();
        eprintln!("qemu-qtest-edu: edu at 00:{dev:02x}.0, BAR0 {BAR0_ADDR:#x}, QEMU ready after {ready:.1?}");
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id());
        let mut checked = 0;
        for r in 0..rounds {
            checked += round_trip(&mut q, r, seed)?;
        }
        let pinned = pinned_pages()? - pinned_before;
        if pinned < min_pinned {
            return Err(format!(
                "{pinned} pages pinned while QEMU runs (nr_foll_pin_acquired - released), \
                 expected at least {min_pinned}"
            ));
        }
        Ok((dev, ready, checked, pinned))
    })();
    let quit = q.quit();
    let (dev, ready, checked, pinned) = result?;
    quit?;
    Ok(format!(
        "edu at guest 00:{dev:02x}.0, {rounds} round trips \
         (guest RAM -> device -> guest RAM), {checked} bytes checked; {pinned} pages \
         pinned while QEMU ran; QEMU ready after {:.1} s, clean exit after {:.1} s",
        ready.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let usage = || {
        eprintln!(
            "usage: {} [--rounds N] [--emulated] -- <qemu command line>",
            args[0]
        );
        ExitCode::FAILURE
    };
    let (mut rounds, mut min_pinned, mut emulated) = (4, 0, false);
    let mut i = 1;
    while i < args.len() && args[i] != "--" {
        match (
            args[i].as_str(),
            args.get(i + 1).and_then(|v| v.parse().ok()),
        ) {
            ("--rounds", Some(n)) => {
                rounds = n;
                i += 1;
            }
            ("--min-pinned", Some(n)) => {
                min_pinned = n as i64;
                i += 1;
            }
            ("--emulated", _) => emulated = true,
            _ => return usage(),
        }
        i += 1;
    }
    if i + 1 >= args.len() {
        return usage();
    }
    match run(rounds, min_pinned, emulated, &args[i + 1..]) {
        Ok(msg) => {
            println!("qemu-qtest-edu: OK: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("qemu-qtest-edu: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}
