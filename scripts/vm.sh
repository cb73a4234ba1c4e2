#!/usr/bin/env bash
# Boot the rvfio test VM and (for check/run) judge what happened.
#
#   scripts/vm.sh check   run every /selftests/*_test against each backend in
#                         the main boot, then unsafe_intr_test against each
#                         backend in a second, short boot without interrupt
#                         remapping; parse TAP and the kernel logs of both;
#                         "N skipped", each with its reason, then the last
#                         line "N passed, N failed" (all boots); exit 1 iff
#                         failed > 0
#   scripts/vm.sh run     run /samples/edu_dma against one backend, console shown
#   scripts/vm.sh shell   interactive shell on the console (Ctrl-A x quits QEMU)
#   scripts/vm.sh real-clients
#                         only the real-clients boot (make real-clients; check
#                         runs it as its third boot, see REAL_CLIENTS below)
#
# Environment:
#   BACKENDS=a,b       check: backends in order (default rvfio,vfio_iommu_type1;
#                      rvfio first: lockdep turns itself off after a report,
#                      and upstream's type1 has a known one, see KNOWN_UPSTREAM)
#   BACKEND=name       run/shell: backend to load (default rvfio)
#   VM_TIMEOUT=secs    whole-VM limit, per boot (check 1800 and 600 for the
#                      second boot, run 600, shell none)
#   TEST_TIMEOUT=secs  check: limit per test binary inside the guest (600)
#   TSC_KHZ=khz        guest TSC rate (default: measured from the host)
#   CONSOLE_LOGLEVEL=n guest console loglevel while tests run (default 4)
#   HUGEPAGES=n        2 MiB hugepages reserved at boot (default 64)
#   HUGEPAGES_1G=n     1 GiB hugepages reserved at boot (default 1, for
#                      params_test's 1 GiB IOMMU leaf)
#   VM_MEM=size        guest memory (default 5G: 4G plus the 1 GiB page)
#   KMEMLEAK_SCANS=n   kmemleak scans before the final dmesg (check: 1, run: 0;
#                      each takes 20-50 s under TCG with 4 GiB)
#   SECOND_BOOT=0|1    check: the second boot (default 1). It uses QEMU
#                      intel-iommu intremap=off (so no isolated MSI), runs only
#                      /selftests/unsafe_intr_test against BACKENDS and logs to
#                      VM_LOG with "-nointremap" before ".log". It is skipped,
#                      with a note, when the initramfs has no unsafe_intr_test
#                      (SELFTESTS_DIR without it).
#   REAL_CLIENTS=0|1   check: the real-clients boot (default 1): DPDK testpmd,
#                      a vfio-ioctls client and QEMU's vfio-pci against each of
#                      BACKENDS (scripts/real-clients.sh, guest side
#                      scripts/guest-real-clients.sh); an e1000e on a
#                      restricted user netdev, VM_MEM3 (default 2G), 128 2 MiB
#                      hugepages, KMEMLEAK_SCANS3 (default 1) scans; console
#                      log with "-realclients" before ".log", test ids
#                      prefixed "realclients/"
#   VM_MEM2=size       second boot's memory (default 1G)
#   KMEMLEAK_SCANS2=n  second boot's kmemleak scans (default 1: ~20 s with 1G;
#                      the EPERM unwind paths run only in this boot)
#   QEMU_EXTRA="..."   extra QEMU arguments; APPEND_EXTRA="..." kernel arguments
#   VM_ACCEL=tcg|kvm   default tcg (KVM on these rigs is a software virtualizer
#                      that cannot run a stock kernel, see RIG-NOTES.md)
#   VERBOSE=1          check: stream the whole console instead of progress lines
#   KDIR, MODULE, SELFTESTS_DIR, SAMPLES_DIR, INITRAMFS: other inputs/output
#                      (see scripts/mkinitramfs.sh); VM_LOG: console log path
#                      (default build/vm-MODE.log)
#   scripts/vm.sh --judge MODE LOG QEMU_RC WALL VM_TIMEOUT BACKENDS \
#                 [LABEL LOG2 QEMU_RC2 WALL2 VM_TIMEOUT2]
#                      re-judges existing console logs (check's second boot
#                      with LABEL nointremap)
#
# The guest side is scripts/guest-init.sh; its "### " marker lines are the
# protocol between the two.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
kdir="${KDIR:-$build/kernel-debug}"
bzimage="$kdir/arch/x86/boot/bzImage"
initramfs="${INITRAMFS:-$build/initramfs.cpio.gz}"
module="${MODULE:-$build/module/rvfio.ko}"
qemu_bin=${QEMU:-/usr/bin/qemu-system-x86_64}
python=/usr/bin/python3
[ -x "$python" ] || python=python3

# judge MODE LOG QEMU_RC WALL_SECS VM_TIMEOUT BACKENDS [LABEL LOG ...]: parse
# console logs, print the verdict, exit 0 (good) or 1. Also reachable as
# `scripts/vm.sh --judge ...` to re-read an old log.
judge() {
	exec "$python" - "$@" <<'EOF'
"""Judge a VM run from its console log (the marker protocol is documented in
scripts/guest-init.sh)."""
import re
import sys

mode, log_path, qemu_rc, wall, vm_timeout, backends_arg = sys.argv[1:7]
expected_backends = [b for b in backends_arg.split(",") if b]
# Boots: the first has no label; further ones (check's second boot) come as
# LABEL LOG QEMU_RC WALL VM_TIMEOUT groups after BACKENDS. Their test ids and
# failures carry "LABEL/" in front.
boots = [("", log_path, qemu_rc, wall, vm_timeout)]
rest = sys.argv[7:]
while len(rest) >= 5:
    boots.append(tuple(rest[:5]))
    rest = rest[5:]

SPLAT = re.compile(
    r"WARNING:|BUG:|Oops|KASAN:|kernel BUG|possible circular locking"
    r"|inconsistent lock state|possible recursive locking|INFO: task .* blocked"
    r"|UBSAN|kmemleak: .* new suspected|Kernel panic|general protection fault"
    r"|rust_panic|panicked at")
MARK = re.compile(r"### (.*)$")

failures = []  # (what, detail lines)
prefix = ""  # the current boot's label + "/" (empty for the first boot)


def fail(what, detail=()):
    failures.append((f"[{prefix[:-1]}] {what}" if prefix else what, list(detail)))


def read_boot(label, path):
    """Set the globals of one boot's console log."""
    global prefix, lines, kernel_log, klog_base, markers
    prefix = f"{label}/" if label else ""
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip("\r\n").replace("\r", "") for l in f]
    except OSError as e:
        lines = []
        fail(f"cannot read console log {path}: {e}")
    kernel_log, klog_base = scan_kernel_log()
    markers = [(i, m.group(1)) for i, l in enumerate(lines) if (m := MARK.search(l))]


# Reports that upstream's vfio_iommu_type1 (the oracle) itself produces,
# recognised by every pattern matching within the report. Each is documented
# in Documentation/testing.rst; it is printed, not counted. A report that
# names rvfio's own code never matches (type1's lock and function names).
KNOWN_UPSTREAM = [
    ("type1 lock inversion between iommu->lock and device_list_lock "
     "(vfio_notify_dma_unmap -> driver dma_unmap -> vfio_unpin_pages); "
     "a real deadlock, see Documentation/testing.rst",
     [r"possible circular locking dependency",
      r"vfio_iommu_type1_unpin_pages",
      r"&iommu->device_list_lock",
      r"vfio_notify_dma_unmap"]),
]
known = []


def known_upstream(klog, i):
    window = "\n".join(klog[i:i + 120])
    for why, pats in KNOWN_UPSTREAM:
        if all(re.search(p, window) for p in pats):
            return why
    return None


def scan_splats(klog):
    splats = []
    last = -100
    for i, l in enumerate(klog):
        if SPLAT.search(l):
            if i - last > 1:  # adjacent lines of one report count once
                splats.append(i)
            last = i
    for i in splats:
        ctx = klog[max(0, i - 2):i + 15]
        why = known_upstream(klog, i)
        if why:
            known.append((prefix + klog[i].strip(), why))
            continue
        fail(f"kernel log: {klog[i].strip()}", ctx)


def scan_kernel_log():
    """The kernel log of lines: the guest's dump if complete, else the whole
    console; and its offset. Splats in it become failures."""
    try:
        d0 = next(i for i, l in enumerate(lines) if "### DMESG BEGIN" in l)
        d1 = next(i for i, l in enumerate(lines) if i > d0 and "### DMESG END" in l)
        klog, base = lines[d0 + 1:d1], d0 + 1
    except StopIteration:
        fail("no complete '### DMESG BEGIN/END' section (guest crashed, hung or timed out)",
             lines[-30:])
        klog, base = lines, 0
    scan_splats(klog)
    return klog, base


def check_boot(qemu_rc, vm_timeout):
    """What every boot must have: a clean QEMU exit, no setup trouble, DONE."""
    qemu_rc = int(qemu_rc)
    if qemu_rc == 124 or qemu_rc == 137:
        fail(f"VM timed out after {vm_timeout}s (VM_TIMEOUT)")
    elif qemu_rc != 0:
        fail(f"QEMU exited with status {qemu_rc}")
    for i, m in markers:
        if m.startswith(("SETUP FAILED", "UNEXPECTED", "ABORT")):
            fail(m)
    if klog_base and not any(m == "DONE" for _, m in markers):
        fail("guest never printed '### DONE'")


def summary_line(passed, failed, skipped):
    # The last line has exactly the shape "N passed, N failed".
    print(f"{skipped} skipped (each listed above with its reason)")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def report_failures():
    if known:
        print("\n== known upstream issues (printed, not counted) ==")
        for line, why in known:
            print(f"KNOWN: {line}\n    | {why}")
    if not failures:
        return
    print("\n== failures ==")
    for what, detail in failures:
        print(f"FAIL: {what}")
        for d in detail:
            print(f"    | {d}")


def backend_events(b):
    """LOAD/UNLOAD results for backend b."""
    return [m for _, m in markers if m.startswith(f"BACKEND {b} ") and " TEST " not in m]


if mode == "run":
    read_boot("", log_path)
    check_boot(qemu_rc, vm_timeout)
    rc = [m for _, m in markers if m.startswith("SAMPLE EXIT")]
    b = next((m.split()[1] for _, m in markers
              if m.startswith("BACKEND ") and " LOAD " in m), "?")
    for m in backend_events(b):
        if "FAILED" in m:
            fail(m)
    if not rc:
        fail("the sample did not finish ('### SAMPLE EXIT' missing)")
    elif rc[0] != "SAMPLE EXIT 0":
        fail(f"edu_dma failed: {rc[0]}")
    print(f"\nvm.sh run: backend {b}, wall time {int(wall)}s")
    report_failures()
    print(f"run: {'FAIL' if failures else 'PASS'}")
    sys.exit(1 if failures else 0)

# ---- check: per-backend, per-test results from TAP ----
TAP = re.compile(r"^(not ok|ok) (\d+)\s*(.*)$")
results = {}  # backend -> {test id: (status, reason)}
order = []  # test ids in first-seen order
passed = failed_tests = skipped = 0
skips = []


def record(b, tid, status, reason=""):
    global passed, failed_tests, skipped
    results.setdefault(b, {})[tid] = (status, reason)
    if tid not in order:
        order.append(tid)
    if status in ("pass", "xfail"):
        passed += 1
    elif status == "skip":
        skipped += 1
        skips.append((b, tid, reason))
    else:
        failed_tests += 1


def judge_binary(b, binary, out, exit_line):
    """Record the TAP results of one test binary's output."""
    plan = None
    totals = False
    seen = 0
    has_not_ok = False
    for l in out:
        if plan is None and (m := re.match(r"^1\.\.(\d+)(.*)$", l)):
            plan = int(m.group(1))
            if plan == 0 and "SKIP" in m.group(2):
                reason = m.group(2).split("SKIP", 1)[1].strip()
                record(b, f"{prefix}{binary}", "skip", reason or "whole binary skipped")
            continue
        if l.startswith("# Totals:"):
            totals = True
            continue
        m = TAP.match(l)
        if not m:
            continue
        seen += 1
        ok = m.group(1) == "ok"
        rest = m.group(3)
        name, _, directive = rest.partition(" #")
        directive = directive.strip()
        word, _, reason = directive.partition(" ")
        word = word.upper()
        tid = f"{prefix}{binary}:{name.strip() or m.group(2)}"
        if not ok:
            has_not_ok = True
            record(b, tid, "FAIL", directive)
        elif word == "SKIP":
            record(b, tid, "skip", reason.strip())
        elif word == "XFAIL":
            record(b, tid, "xfail", reason.strip())
        elif word == "XPASS":
            has_not_ok = True
            record(b, tid, "FAIL", "XPASS (expected to fail, passed)")
        else:
            record(b, tid, "pass")
    ctx = out[-20:]
    problems = []  # all count as one failure of the binary
    if exit_line is None:
        fail(f"{b}: {binary} did not finish (no '### EXIT')", ctx)
        return
    em = re.match(r"EXIT (-?\d+)", exit_line)
    rc = int(em.group(1)) if em else -1
    if "TIMEOUT" in exit_line:
        problems.append(f"timed out ({exit_line})")
    elif rc >= 128:
        problems.append(f"killed by signal {rc - 128} ({exit_line})")
    if plan is None:
        problems.append("printed no TAP plan")
    elif plan > 0 and seen != plan:
        problems.append(f"planned {plan} tests, reported {seen}")
    elif plan > 0 and not totals:
        problems.append("printed no '# Totals' footer")
    if rc not in (0, 4) and rc < 128 and not has_not_ok:
        problems.append(f"exited {rc} without a failing test")
    if rc == 0 and has_not_ok:
        problems.append("reported failures but exited 0")

    if problems:
        fail(f"{b}: {binary}: " + "; ".join(problems), ctx)

def judge_tests():
    """The current boot's test binaries, per backend."""
    ran = {}
    for k, (i, m) in enumerate(markers):
        mt = re.match(r"BACKEND (\S+) TEST (\S+)$", m)
        if not mt:
            continue
        b, binary = mt.groups()
        ran[b] = ran.get(b, 0) + 1
        end = len(lines) if k + 1 == len(markers) else markers[k + 1][0]
        exit_line = markers[k + 1][1] if k + 1 < len(markers) and \
            markers[k + 1][1].startswith("EXIT ") else None
        judge_binary(b, binary, lines[i + 1:end], exit_line)

    for b in expected_backends:
        ev = backend_events(b)
        if f"BACKEND {b} LOAD OK" not in ev:
            fail(f"{b}: not loaded ({', '.join(ev) or 'never tried'})")
            continue
        if not ran.get(b):
            fail(f"{b}: no test binary ran (is /selftests empty?)")
        for e in ev:
            if "UNLOAD FAILED" in e:
                fail(f"{b}: rmmod failed ({e})")
        if f"BACKEND {b} UNLOAD OK" not in ev and not any("UNLOAD FAILED" in e for e in ev):
            fail(f"{b}: never unloaded")


walls = []
for label, path, rc, w, tmo in boots:
    read_boot(label, path)
    check_boot(rc, tmo)
    judge_tests()
    walls.append((label or "main", path, int(w)))

# ---- report ----
cols = [b for b in expected_backends] + [b for b in results if b not in expected_backends]
if order:
    w = max(len(t) for t in order)
    print("\n== results ==")
    print(f"{'test':<{w}}  " + "  ".join(f"{b:<16}" for b in cols))
    for t in order:
        print(f"{t:<{w}}  " + "  ".join(
            f"{results.get(b, {}).get(t, ('-',))[0]:<16}" for b in cols))
# Compare only backends that ran at all (one that did not load is a failure
# of its own above).
ran_cols = [b for b in cols if results.get(b)]
diff = [t for t in order
        if len({results[b].get(t, ("missing",))[0] for b in ran_cols}) > 1]
if len(ran_cols) > 1:
    print("\n== differences between backends ==")
    for t in diff:
        print(f"  {t}: " + ", ".join(
            f"{b}={results[b].get(t, ('missing',))[0]}" for b in ran_cols))
    if not diff:
        print("  none")
if skips:
    print("\n== skipped ==")
    for b, t, r in skips:
        print(f"  {b}: {t}: {r or '(no reason given)'}")
report_failures()
print()
for label, path, w in walls:
    print(f"vm.sh check: {label} boot: wall time {w}s, console log {path}")
if len(walls) > 1:
    print(f"vm.sh check: wall time {sum(w for _, _, w in walls)}s for {len(walls)} boots")
summary_line(passed, failed_tests + len(failures), skipped)
EOF
}

if [ "${1:-}" = --judge ]; then
	shift
	judge "$@"
fi

mode=${1:-}
case "$mode" in
check | run | shell | real-clients) ;;
*)
	echo "usage: $0 check|run|shell|real-clients" >&2
	exit 2
	;;
esac
log="${VM_LOG:-$build/vm-$mode.log}"

die() { echo "vm.sh: $*" >&2; exit 1; }

[ -f "$bzimage" ] || die "no kernel at $bzimage (make kernel)"
BACKENDS=${BACKENDS:-rvfio,vfio_iommu_type1}
BACKEND=${BACKEND:-rvfio}
needs_rvfio=no
case "$mode" in
check | real-clients) [[ ",$BACKENDS," == *,rvfio,* ]] && needs_rvfio=yes ;;
*) [ "$BACKEND" = rvfio ] && needs_rvfio=yes ;;
esac
if [ "$needs_rvfio" = yes ] && [ ! -f "$module" ]; then
	die "$module does not exist (make module), or choose other" \
		"backends: BACKENDS=vfio_iommu_type1 $0 $mode"
fi
"$top/scripts/mkinitramfs.sh"
initramfs_files=$(gzip -dc "$initramfs" | cpio -t --quiet 2>/dev/null)
if [ "$needs_rvfio" = yes ] && ! grep -qx 'rvfio/rvfio.ko' <<<"$initramfs_files"; then
	die "$initramfs has no rvfio/rvfio.ko"
fi

# The guest's TSC ticks at the host's TSC rate under TCG, but a guest on a busy
# host calibrates it badly, and then guest time runs fast or slow. Tell it.
tsc_khz=${TSC_KHZ:-$("$top/scripts/host-tsc-khz.sh")} || die "cannot find the host TSC rate; set TSC_KHZ"

# Kernel arguments of every boot.
# No panic_on_warn and no oops=panic: a WARN or an Oops kills at most the
# current task, the run goes on and the host finds the splat in the dmesg dump.
# After an Oops the guest stops testing (ABORT) but still dumps dmesg; a panic
# reboots at once (panic=-1), which -no-reboot turns into a QEMU exit.
base_append="console=ttyS0,115200 panic=-1 intel_iommu=on tsc_early_khz=$tsc_khz log_buf_len=8M"
# no5lvl: -cpu max offers LA57. With 5-level paging, 6.12's KASAN decides
# whether an address has shadow from cpu_feature_enabled(LA57), which reads
# false while identify_cpu() refills the feature words at boot; an interrupt
# in that window gives a false "BUG: KASAN: wild-memory-access" (seen here in
# handle_edge_irq from identify_cpu). The guest needs no 5-level paging.
base_append+=" no5lvl"
# no_timer_check: on a loaded host the early IO-APIC timer check can miss
# its ticks under TCG and panic ("IO-APIC + timer doesn't work!", seen in
# the intremap=off boot while another VM ran); make bench passes it too.
base_append+=" no_timer_check"
grep -qx 'CONFIG_DETECT_HUNG_TASK=y' "$kdir/.config" 2>/dev/null &&
	base_append+=" hung_task_timeout_secs=60"
base_append+=" rvfio.mode=$mode rvfio.backends=$BACKENDS rvfio.backend=$BACKEND"
base_append+=" rvfio.test_timeout=${TEST_TIMEOUT:-600} rvfio.loglevel=${CONSOLE_LOGLEVEL:-4}"
# Secondary CPUs calibrate their delay loop badly under TCG; give them the
# answer (loops per jiffy = TSC ticks per jiffy, as udelay uses the TSC).
hz=$(sed -n 's/^CONFIG_HZ=\([0-9]*\)$/\1/p' "$kdir/.config" 2>/dev/null)
[ -n "$hz" ] && base_append+=" lpj=$((tsc_khz * 1000 / hz))"

# The main boot: interrupt remapping on; 2 MiB hugepages and one 1 GiB page
# (params_test's 1 GiB IOMMU leaf), so 1 GiB more memory than before.
append="$base_append hugepagesz=2M hugepages=${HUGEPAGES:-64}"
append+=" hugepagesz=1G hugepages=${HUGEPAGES_1G:-1} rvfio.intremap=on"
# kmemleak scans cost ~20-50 s each (4 GiB under TCG): check does one, run none.
if [ "$mode" = check ]; then kmemleak_scans=${KMEMLEAK_SCANS:-1}; else kmemleak_scans=${KMEMLEAK_SCANS:-0}; fi
append+=" rvfio.kmemleak_scans=$kmemleak_scans"
append+=" ${APPEND_EXTRA:-}"

accel=${VM_ACCEL:-tcg}
cpu=max
[ "$accel" = kvm ] && cpu=host
# qemu_cmd MEM IOMMU_DEVICE APPEND: the QEMU command line in qemu[].
# Three edu devices (the DMA engines); the third sits alone behind a PCIe
# root port, which gives it a bus reset method (edu has no FLR), so that
# VFIO_DEVICE_RESET works on it. An ivshmem-plain device offers a 64 MiB
# RAM-backed BAR2: a large PFNMAP range an edu can DMA into.
qemu_cmd() {
	qemu=("$qemu_bin" -accel "$accel" -cpu "$cpu" -smp 2 -m "$1"
		-machine q35,kernel-irqchip=split
		-device "$2"
		-device edu,dma_mask=0xffffffffffffffff
		-device edu,dma_mask=0xffffffffffffffff
		-device pcie-root-port,id=rp1,chassis=1,slot=1
		-device edu,dma_mask=0xffffffffffffffff,bus=rp1
		-object memory-backend-memfd,id=ivshmem0,size=64M,share=on
		-device ivshmem-plain,memdev=ivshmem0
		-nic none -no-reboot
		-kernel "$bzimage" -initrd "$initramfs" -append "$3")
	# shellcheck disable=SC2206
	qemu+=(${QEMU_EXTRA:-})
}
qemu_cmd "${VM_MEM:-5G}" intel-iommu,intremap=on,caching-mode=on,eim=on "$append"

# check's second boot: no interrupt remapping, so no isolated MSI
# (iommu_group_has_isolated_msi() is false: without the intel IR irq domain,
# nothing on the MSI path has IRQ_DOMAIN_FLAG_ISOLATED_MSI, and x86's
# arch_is_isolated_msi() is false). QEMU's VT-d then advertises no IR at all
# (eim needs intremap, and the guest's x2apic falls back to xAPIC). Only
# unsafe_intr_test runs, against the same backends. No hugepages and 1 GiB:
# boot and the kmemleak scan (it walks every struct page) stay short. The scan
# is kept because the attach error paths under test (EPERM after the domain
# was allocated and attached) run only in this boot.
second_boot=no
second_test=unsafe_intr_test
if [ "$mode" = check ]; then
	if [ "${SECOND_BOOT:-1}" = 0 ]; then
		echo "vm.sh: note: second boot (no interrupt remapping) off: SECOND_BOOT=0"
	elif ! grep -qx "selftests/$second_test" <<<"$initramfs_files"; then
		echo "vm.sh: note: second boot (no interrupt remapping) skipped:" \
			"$initramfs has no selftests/$second_test"
	else
		second_boot=yes
		log2=${log%.log}-nointremap.log
		append2="$base_append rvfio.tests=$second_test rvfio.intremap=off"
		append2+=" rvfio.kmemleak_scans=${KMEMLEAK_SCANS2:-1} ${APPEND_EXTRA:-}"
	fi
fi

# The real-clients boot (check's third, or real-clients mode's only one):
# real, unmodified VFIO clients from Debian's packages and crates.io against
# each of BACKENDS, run by the guest init as /selftests/real_clients_test
# (scripts/guest-real-clients.sh). Its own boot, not part of the main one:
# its initramfs is the main one plus a 30 MB overlay (a Debian root with DPDK
# and QEMU; scripts/real-clients.sh builds it, downloading only what its
# cache lacks), it needs an e1000e and 256 MiB of 2 MiB hugepages, and it
# measures pins and hugepages from a fresh boot. The boot itself (kernel to
# init, kmemleak scan, log dump) costs about 25 s (Documentation/testing.rst).
real_clients=no
if [ "$mode" = real-clients ] || { [ "$mode" = check ] && [ "${REAL_CLIENTS:-1}" != 0 ]; }; then
	real_clients=yes
	rc_initrd="$build/initramfs-real-clients.cpio.gz"
	"$top/scripts/real-clients.sh" initrd "$rc_initrd" "$initramfs" ||
		die "building the real clients failed (scripts/real-clients.sh)"
	if [ "$mode" = check ]; then log3=${log%.log}-realclients.log; else log3=$log; fi
	append3="${base_append/rvfio.mode=$mode/rvfio.mode=check} rvfio.tests=real_clients_test"
	append3+=" hugepagesz=2M hugepages=128 rvfio.intremap=on"
	append3+=" rvfio.kmemleak_scans=${KMEMLEAK_SCANS3:-1} ${APPEND_EXTRA:-}"
elif [ "$mode" = check ]; then
	echo "vm.sh: note: real-clients boot off: REAL_CLIENTS=0"
fi
# qemu[] for it: the main boot's machine with the real-clients initramfs and
# an e1000e (no option ROM) whose user netdev reaches nothing outside.
real_clients_qemu() {
	local initramfs=$rc_initrd
	qemu_cmd "${VM_MEM3:-2G}" intel-iommu,intremap=on,caching-mode=on,eim=on "$append3"
	qemu+=(-netdev user,id=rcnet,restrict=on -device e1000e,netdev=rcnet,romfile=)
}

# check's progress report: marker lines and guest "init:" lines, stamped
# with host seconds since the start.
progress() {
	local line now
	while IFS= read -r line; do
		line=${line%$'\r'}
		case "$line" in
		"### "[A-Z]* | "init: "*)
			printf -v now '%(%s)T' -1
			printf '[%4ds] %s\n' $((now - start)) "${line:0:150}"
			;;
		esac
	done
}

# run's console view: everything but the final kernel log dump (the log file
# has it; the verdict below quotes any splat from it).
hide_dmesg_dump() {
	local line n=0 hiding=no
	while IFS= read -r line; do
		case "$line" in
		*"### DMESG BEGIN"*) hiding=yes ;;
		*"### DMESG END"*)
			hiding=no
			echo "(kernel log dump: $n lines, in $log)"
			;;
		*) if [ $hiding = yes ]; then n=$((n + 1)); else printf '%s\n' "$line"; fi ;;
		esac
	done
}

# check_boot LABEL LOG VM_TIMEOUT: boot qemu[] for check, console to LOG;
# sets qrc and boot_wall.
check_boot() {
	local b0
	b0=$(date +%s)
	echo "vm.sh: booting $1 (TCG, backends $BACKENDS, VM timeout ${3}s, console in $2)"
	set +e
	if [ "${VERBOSE:-0}" = 1 ]; then
		timeout -k 10 "$3" "${qemu[@]}" -nographic </dev/null 2>&1 | tee "$2"
		qrc=${PIPESTATUS[0]}
	else
		# Progress: the guest's marker lines, with host wall-clock seconds.
		timeout -k 10 "$3" "${qemu[@]}" -nographic </dev/null 2>&1 | tee "$2" |
			progress
		qrc=${PIPESTATUS[0]}
	fi
	set -e
	boot_wall=$(($(date +%s) - b0))
}

# One VM at a time on this machine (2 cores; TCG VMs side by side distort each
# other's timeouts): every boot, of any checkout, waits for this lock.
vm_lock=${VM_LOCK:-/tmp/rvfio-vm.lock}
exec 7>"$vm_lock"
if ! flock -n 7; then
	echo "vm.sh: waiting for another VM to finish ($vm_lock)"
	flock 7
fi

start=$(date +%s)
case "$mode" in
shell)
	# Console and QEMU monitor multiplexed on the terminal (Ctrl-A c switches,
	# Ctrl-A x quits); everything is also logged.
	if [ -n "${VM_TIMEOUT:-}" ]; then
		qemu=(timeout --foreground "$VM_TIMEOUT" "${qemu[@]}")
	fi
	exec "${qemu[@]}" -display none \
		-chardev "stdio,id=con,mux=on,signal=off,logfile=$log" \
		-serial chardev:con -mon chardev=con,mode=readline
	;;
run)
	vm_timeout=${VM_TIMEOUT:-600}
	set +e
	timeout -k 10 "$vm_timeout" "${qemu[@]}" -nographic </dev/null 2>&1 | tee "$log" |
		hide_dmesg_dump
	qrc=${PIPESTATUS[0]}
	set -e
	wall=$(($(date +%s) - start))
	judge "$mode" "$log" "$qrc" "$wall" "$vm_timeout" "$BACKENDS"
	;;
check)
	vm_timeout=${VM_TIMEOUT:-1800}
	check_boot "main boot" "$log" "$vm_timeout"
	boots=("$log" "$qrc" "$boot_wall" "$vm_timeout" "$BACKENDS")
	if [ "$second_boot" = yes ]; then
		vm_timeout2=${VM_TIMEOUT:-600}
		qemu_cmd "${VM_MEM2:-1G}" intel-iommu,intremap=off,caching-mode=on "$append2"
		check_boot "second boot, no interrupt remapping, $second_test only" \
			"$log2" "$vm_timeout2"
		boots+=(nointremap "$log2" "$qrc" "$boot_wall" "$vm_timeout2")
	fi
	if [ "$real_clients" = yes ]; then
		vm_timeout3=${VM_TIMEOUT:-1200}
		real_clients_qemu
		check_boot "real-clients boot" "$log3" "$vm_timeout3"
		boots+=(realclients "$log3" "$qrc" "$boot_wall" "$vm_timeout3")
	fi
	judge "$mode" "${boots[@]}"
	;;
real-clients)
	vm_timeout3=${VM_TIMEOUT:-1200}
	real_clients_qemu
	check_boot "real-clients boot" "$log3" "$vm_timeout3"
	judge check "$log3" "$qrc" "$boot_wall" "$vm_timeout3" "$BACKENDS"
	;;
esac
