#!/usr/bin/env bash
# Boot the rvfio test VM and (for check/run) judge what happened.
#
#   scripts/vm.sh check   run every /selftests/*_test against each backend, one
#                         boot; parse TAP and the kernel log; last line
#                         "N passed, N failed, N skipped"; exit 1 iff failed > 0
#   scripts/vm.sh run     run /samples/edu_dma against one backend, console shown
#   scripts/vm.sh shell   interactive shell on the console (Ctrl-A x quits QEMU)
#
# Environment:
#   BACKENDS=a,b       check: backends in order (default rvfio,vfio_iommu_type1;
#                      rvfio first: lockdep turns itself off after a report,
#                      and upstream's type1 has a known one, see KNOWN_UPSTREAM)
#   BACKEND=name       run/shell: backend to load (default rvfio)
#   VM_TIMEOUT=secs    whole-VM limit (check 1800, run 600, shell none)
#   TEST_TIMEOUT=secs  check: limit per test binary inside the guest (600)
#   TSC_KHZ=khz        guest TSC rate (default: measured from the host)
#   CONSOLE_LOGLEVEL=n guest console loglevel while tests run (default 4)
#   HUGEPAGES=n        2 MiB hugepages reserved at boot (default 64)
#   KMEMLEAK_SCANS=n   kmemleak scans before the final dmesg (check: 1, run: 0;
#                      each takes 20-50 s under TCG with 4 GiB)
#   QEMU_EXTRA="..."   extra QEMU arguments; APPEND_EXTRA="..." kernel arguments
#   VM_ACCEL=tcg|kvm   default tcg (KVM on these rigs is a software virtualizer
#                      that cannot run a stock kernel, see RIG-NOTES.md)
#   VERBOSE=1          check: stream the whole console instead of progress lines
#   KDIR, MODULE, SELFTESTS_DIR, SAMPLES_DIR, INITRAMFS: other inputs/output
#                      (see scripts/mkinitramfs.sh); VM_LOG: console log path
#                      (default build/vm-MODE.log)
#   scripts/vm.sh --judge MODE LOG QEMU_RC WALL VM_TIMEOUT BACKENDS
#                      re-judges an existing console log
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

# judge MODE LOG QEMU_RC WALL_SECS VM_TIMEOUT BACKENDS: parse a console log,
# print the verdict, exit 0 (good) or 1. Also reachable as
# `scripts/vm.sh --judge ...` to re-read an old log.
judge() {
	exec "$python" - "$@" <<'EOF'
"""Judge a VM run from its console log (the marker protocol is documented in
scripts/guest-init.sh)."""
import re
import sys

mode, log_path, qemu_rc, wall, vm_timeout, backends_arg = sys.argv[1:7]
qemu_rc, wall = int(qemu_rc), int(wall)
expected_backends = [b for b in backends_arg.split(",") if b]

with open(log_path, errors="replace") as f:
    lines = [l.rstrip("\r\n").replace("\r", "") for l in f]

SPLAT = re.compile(
    r"WARNING:|BUG:|Oops|KASAN:|kernel BUG|possible circular locking"
    r"|inconsistent lock state|possible recursive locking|INFO: task .* blocked"
    r"|UBSAN|kmemleak: .* new suspected|Kernel panic|general protection fault"
    r"|rust_panic|panicked at")
MARK = re.compile(r"### (.*)$")

failures = []  # (what, detail lines)


def fail(what, detail=()):
    failures.append((what, list(detail)))


# Kernel log: the guest's dump if complete, else the whole console.
try:
    d0 = next(i for i, l in enumerate(lines) if "### DMESG BEGIN" in l)
    d1 = next(i for i, l in enumerate(lines) if i > d0 and "### DMESG END" in l)
    kernel_log, klog_base = lines[d0 + 1:d1], d0 + 1
except StopIteration:
    fail("no complete '### DMESG BEGIN/END' section (guest crashed, hung or timed out)",
         lines[-30:])
    kernel_log, klog_base = lines, 0

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


def known_upstream(i):
    window = "\n".join(kernel_log[i:i + 120])
    for why, pats in KNOWN_UPSTREAM:
        if all(re.search(p, window) for p in pats):
            return why
    return None


splats = []
last = -100
for i, l in enumerate(kernel_log):
    if SPLAT.search(l):
        if i - last > 1:  # adjacent lines of one report count once
            splats.append(i)
        last = i
for i in splats:
    ctx = kernel_log[max(0, i - 2):i + 15]
    why = known_upstream(i)
    if why:
        known.append((kernel_log[i].strip(), why))
        continue
    fail(f"kernel log: {kernel_log[i].strip()}", ctx)

if qemu_rc == 124 or qemu_rc == 137:
    fail(f"VM timed out after {vm_timeout}s (VM_TIMEOUT)")
elif qemu_rc != 0:
    fail(f"QEMU exited with status {qemu_rc}")

markers = [(i, m.group(1)) for i, l in enumerate(lines) if (m := MARK.search(l))]
for i, m in markers:
    if m.startswith(("SETUP FAILED", "UNEXPECTED", "ABORT")):
        fail(m)
if klog_base and not any(m == "DONE" for _, m in markers):
    fail("guest never printed '### DONE'")


def summary_line(passed, failed, skipped):
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
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
    print(f"\nvm.sh run: backend {b}, wall time {wall}s")
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
                record(b, f"{binary}", "skip", reason or "whole binary skipped")
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
        tid = f"{binary}:{name.strip() or m.group(2)}"
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
print(f"\nvm.sh check: wall time {wall}s, console log {log_path}")
summary_line(passed, failed_tests + len(failures), skipped)
EOF
}

if [ "${1:-}" = --judge ]; then
	shift
	judge "$@"
fi

mode=${1:-}
case "$mode" in
check | run | shell) ;;
*)
	echo "usage: $0 check|run|shell" >&2
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
check) [[ ",$BACKENDS," == *,rvfio,* ]] && needs_rvfio=yes ;;
*) [ "$BACKEND" = rvfio ] && needs_rvfio=yes ;;
esac
if [ "$needs_rvfio" = yes ] && [ ! -f "$module" ]; then
	die "$module does not exist (make module), or choose other" \
		"backends: BACKENDS=vfio_iommu_type1 $0 $mode"
fi
"$top/scripts/mkinitramfs.sh"
if [ "$needs_rvfio" = yes ] && ! gzip -dc "$initramfs" | cpio -t --quiet 2>/dev/null |
	grep -qx 'rvfio/rvfio.ko'; then
	die "$initramfs has no rvfio/rvfio.ko"
fi

# The guest's TSC ticks at the host's TSC rate under TCG, but a guest on a busy
# host calibrates it badly, and then guest time runs fast or slow. Tell it.
host_tsc_khz() {
	local mhz
	mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' | tail -n1)
	[ -n "$mhz" ] || mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Detected \([0-9.]*\) MHz processor.*/\1/p' | tail -n1)
	[ -n "$mhz" ] || mhz=$(awk -F': *' '/^cpu MHz/ {print $2; exit}' /proc/cpuinfo)
	[ -n "$mhz" ] || return 1
	awk -v m="$mhz" 'BEGIN { printf "%d\n", m * 1000 }'
}
tsc_khz=${TSC_KHZ:-$(host_tsc_khz)} || die "cannot find the host TSC rate; set TSC_KHZ"

# No panic_on_warn and no oops=panic: a WARN or an Oops kills at most the
# current task, the run goes on and the host finds the splat in the dmesg dump.
# After an Oops the guest stops testing (ABORT) but still dumps dmesg; a panic
# reboots at once (panic=-1), which -no-reboot turns into a QEMU exit.
append="console=ttyS0,115200 panic=-1 intel_iommu=on tsc_early_khz=$tsc_khz log_buf_len=8M"
# no5lvl: -cpu max offers LA57. With 5-level paging, 6.12's KASAN decides
# whether an address has shadow from cpu_feature_enabled(LA57), which reads
# false while identify_cpu() refills the feature words at boot; an interrupt
# in that window gives a false "BUG: KASAN: wild-memory-access" (seen here in
# handle_edge_irq from identify_cpu). The guest needs no 5-level paging.
append+=" no5lvl"
append+=" hugepagesz=2M hugepages=${HUGEPAGES:-64}"
grep -qx 'CONFIG_DETECT_HUNG_TASK=y' "$kdir/.config" 2>/dev/null &&
	append+=" hung_task_timeout_secs=60"
append+=" rvfio.mode=$mode rvfio.backends=$BACKENDS rvfio.backend=$BACKEND"
append+=" rvfio.test_timeout=${TEST_TIMEOUT:-600} rvfio.loglevel=${CONSOLE_LOGLEVEL:-4}"
# kmemleak scans cost ~20-50 s each (4 GiB under TCG): check does one, run none.
if [ "$mode" = check ]; then kmemleak_scans=${KMEMLEAK_SCANS:-1}; else kmemleak_scans=${KMEMLEAK_SCANS:-0}; fi
append+=" rvfio.kmemleak_scans=$kmemleak_scans"
# Secondary CPUs calibrate their delay loop badly under TCG; give them the
# answer (loops per jiffy = TSC ticks per jiffy, as udelay uses the TSC).
hz=$(sed -n 's/^CONFIG_HZ=\([0-9]*\)$/\1/p' "$kdir/.config" 2>/dev/null)
[ -n "$hz" ] && append+=" lpj=$((tsc_khz * 1000 / hz))"
append+=" ${APPEND_EXTRA:-}"

accel=${VM_ACCEL:-tcg}
cpu=max
[ "$accel" = kvm ] && cpu=host
qemu=("$qemu_bin" -accel "$accel" -cpu "$cpu" -smp 2 -m 4G
	-machine q35,kernel-irqchip=split
	-device intel-iommu,intremap=on,caching-mode=on,eim=on
	-device edu,dma_mask=0xffffffffffffffff
	-device edu,dma_mask=0xffffffffffffffff
	-device edu,dma_mask=0xffffffffffffffff
	-nic none -no-reboot
	-kernel "$bzimage" -initrd "$initramfs" -append "$append")
# shellcheck disable=SC2206
qemu+=(${QEMU_EXTRA:-})

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
	;;
check)
	vm_timeout=${VM_TIMEOUT:-1800}
	echo "vm.sh: booting (TCG, backends $BACKENDS, VM timeout ${vm_timeout}s, console in $log)"
	set +e
	if [ "${VERBOSE:-0}" = 1 ]; then
		timeout -k 10 "$vm_timeout" "${qemu[@]}" -nographic </dev/null 2>&1 | tee "$log"
		qrc=${PIPESTATUS[0]}
	else
		# Progress: the guest's marker lines, with host wall-clock seconds.
		timeout -k 10 "$vm_timeout" "${qemu[@]}" -nographic </dev/null 2>&1 | tee "$log" |
			progress
		qrc=${PIPESTATUS[0]}
	fi
	set -e
	;;
esac
wall=$(($(date +%s) - start))

judge "$mode" "$log" "$qrc" "$wall" "$vm_timeout" "$BACKENDS"
