#!/bin/sh
# /selftests/real_clients_test of the real-clients boot (scripts/vm.sh;
# Documentation/testing.rst, "Real clients"): real, unmodified VFIO clients
# against the backend the guest init loaded ($VFIO_BACKEND). The guest init
# runs it once per backend, like a selftest binary; its output is TAP, its
# exit status 0 when every test passed, 1 otherwise.
#
#   1 dpdk_testpmd_hugepages  DPDK 22.11 dpdk-testpmd, txonly over the e1000e,
#   2 dpdk_testpmd_nohuge     on hugepages / with --no-huge (4 KiB pages)
#   3 vfio_ioctls_client      rust-vmm's vfio-ioctls crate, edu DMA both ways
#   4 qemu_vfio_pci           QEMU 10.0's vfio-pci, edu driven over qtest
#
# Every test also requires, measured around the client's whole run: pinned
# pages (nr_foll_pin_acquired - nr_foll_pin_released in /proc/vmstat) and
# free hugepages back to their earlier values once the client has exited, no
# new DMAR fault and no new kernel splat in dmesg. DPDK and QEMU run from the
# Debian root in /realclients/root (chroot), the Rust programs from
# /realclients/bin (static); scripts/real-clients.sh builds both.
#
# Tunables on the kernel command line (APPEND_EXTRA=...):
#   rvfio.rc_dpdk_seconds=N   forwarding time, from when testpmd starts
#                             forwarding (default 10)
#   rvfio.rc_dpdk_floor=N     TX packets required in that time (default below)
#   rvfio.rc_qemu_rounds=N    edu round trips over qtest (default 4)
# Progress and the per-backend numbers go to the console as "init:" lines
# (scripts/vm.sh shows them); after the last backend the rates of all
# backends are printed side by side.
R=/realclients/root
B=/realclients/bin
BACKEND=${VFIO_BACKEND:-unknown}
RESULTS=/tmp/real-clients.results	# one line per client run, all backends

DPDK_SECONDS=10
# The floor, in TX packets both counted by testpmd and by the device's own
# statistics registers: a device that cannot fetch descriptors and buffers
# through the IOMMU, or write descriptors back, stalls within one 512-entry
# TX ring (the PMD reclaims a descriptor only once the device wrote it back),
# while type1 moves about 2 million packets/s here on an idle host (20
# million in 10 s). 100,000 is 200 times the former and 1/200 of the latter,
# room for a host under load.
DPDK_FLOOR=100000
DPDK_MBUFS=4096
QEMU_ROUNDS=4
BACKENDS=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	rvfio.rc_dpdk_seconds=*) DPDK_SECONDS=${arg#*=} ;;
	rvfio.rc_dpdk_floor=*) DPDK_FLOOR=${arg#*=} ;;
	rvfio.rc_qemu_rounds=*) QEMU_ROUNDS=${arg#*=} ;;
	rvfio.backends=*) BACKENDS=$(echo "${arg#*=}" | tr ',' ' ') ;;
	esac
done

say() {
	echo "init: [$(cut -d' ' -f1 /proc/uptime)] real-clients: $BACKEND: $*"
}

ms() {
	awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime
}

# ---- what every test measures around its client ----

pins() {
	echo 1 >/proc/sys/vm/stat_refresh 2>/dev/null
	awk '$1 == "nr_foll_pin_acquired" { a = $2 } $1 == "nr_foll_pin_released" { r = $2 }
		END { printf "%d\n", a - r }' /proc/vmstat
}

hugepages_free() {
	cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0
}

dmar_faults() {
	dmesg | grep -cE 'DMAR: \[(DMA Read|DMA Write|INTR-REMAP)|DMAR: DRHD: handling fault'
}

# The splats scripts/vm.sh fails a run on; counted here to name the client.
SPLAT='WARNING:|BUG:|Oops|KASAN:|kernel BUG|possible circular locking|inconsistent lock state'
SPLAT="$SPLAT|possible recursive locking|INFO: task .* blocked|UBSAN|Kernel panic"
SPLAT="$SPLAT|general protection fault|rust_panic|panicked at"
splats() {
	dmesg | grep -cE "$SPLAT"
}

baseline() {
	P0=$(pins)
	H0=$(hugepages_free)
	D0=$(dmar_faults)
	S0=$(splats)
	PROBLEMS=
}

problem() {
	PROBLEMS="${PROBLEMS:+$PROBLEMS; }$*"
}

# After the client exited: pins and hugepages back (a backend may finish its
# release just after the process is gone: wait up to 10 s, and say so),
# no new DMAR fault or splat.
check_after() {
	local i=0 p h d s
	while :; do
		p=$(pins)
		h=$(hugepages_free)
		[ "$p" = "$P0" ] && [ "$h" = "$H0" ] && break
		[ $i -ge 100 ] && break
		sleep 0.1
		i=$((i + 1))
	done
	[ $i -gt 0 ] && [ $i -lt 100 ] && echo "# pins/hugepages came back $((i * 100)) ms after exit"
	[ "$p" = "$P0" ] || problem "pinned pages not released: $((p - P0)) still pinned ($P0 before, $p after)"
	[ "$h" = "$H0" ] || problem "free hugepages $H0 before, $h after"
	d=$(dmar_faults)
	[ "$d" = "$D0" ] || problem "$((d - D0)) new DMAR fault line(s) in dmesg"
	s=$(splats)
	if [ "$s" != "$S0" ]; then
		problem "$((s - S0)) new kernel splat line(s) in dmesg"
		dmesg | grep -E "$SPLAT" | tail -n 5 | diag "dmesg: "
	fi
	echo "# pins $P0 -> $p, free 2M hugepages $H0 -> $h, DMAR fault lines $D0 -> $d"
}

# diag PREFIX: stdin as TAP diagnostics. A "###" anywhere in a console
# line is a marker to scripts/vm.sh (testpmd draws its statistics boxes with
# them), and terminal escapes only clutter the log: both go.
diag() {
	tr -d '\033' | sed -e 's/\[[0-9][0-9;]*[A-Za-z]//g' -e 's/##*/#/g' -e "s/^/# $1/"
}

# ---- TAP ----
N=0
PASSED=0
FAILED=0
result() {
	N=$((N + 1))
	if [ -z "$PROBLEMS" ]; then
		echo "ok $N $1"
		PASSED=$((PASSED + 1))
	else
		echo "not ok $N $1 # $PROBLEMS"
		FAILED=$((FAILED + 1))
		say "$1 FAILED: $PROBLEMS"
	fi
}

# ---- set-up: the chroot's mounts, the e1000e on vfio-pci ----

mounted() {
	grep -q " $1 " /proc/mounts
}

setup_chroot() {
	mounted "$R/proc" || mount -t proc proc "$R/proc" || return 1
	mounted "$R/sys" || mount -t sysfs sysfs "$R/sys" || return 1
	mounted "$R/dev" || mount -t devtmpfs devtmpfs "$R/dev" || return 1
	mkdir -p "$R/dev/hugepages"
	mounted "$R/dev/hugepages" || mount -t hugetlbfs hugetlbfs "$R/dev/hugepages" || return 1
	mounted "$R/tmp" || mount -t tmpfs tmpfs "$R/tmp" || return 1
	mounted "$R/run" || mount -t tmpfs tmpfs "$R/run" || return 1
}

find_pci() {
	local d
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = "$1" ] && [ "$(cat "$d/device")" = "$2" ] &&
			{ echo "${d##*/}"; return 0; }
	done
	return 1
}

bind_vfio() {
	local d=/sys/bus/pci/devices/$1 drv grp i=0
	drv=$(readlink "$d/driver")
	if [ "${drv##*/}" != vfio-pci ]; then
		[ -n "$drv" ] && echo "$1" >"$d/driver/unbind"
		echo vfio-pci >"$d/driver_override"
		echo "$1" >/sys/bus/pci/drivers_probe
	fi
	drv=$(readlink "$d/driver")
	[ "${drv##*/}" = vfio-pci ] || return 1
	grp=$(readlink "$d/iommu_group")
	grp=${grp##*/}
	while [ ! -c "/dev/vfio/$grp" ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -c "/dev/vfio/$grp" ]
}

# ---- 1, 2: DPDK testpmd ----

# wait_exit PID SECS: wait for PID to exit; its status in RC (KILLED if it
# had to be killed).
wait_exit() {
	local i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt $(($2 * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		kill -KILL "$1"
		wait "$1"
		RC=KILLED
	else
		wait "$1"
		RC=$?
	fi
}

# dpdk NAME EAL-ARGS...: one testpmd run, forwarding DPDK_SECONDS from when
# it starts forwarding.
dpdk() {
	local name=$1 log pid t0 ts te rc tx devtx drop txerr rate win started=no prun hrun
	shift
	log=/tmp/testpmd-$name-$BACKEND.log
	baseline
	if [ -z "$NIC" ]; then
		problem "no e1000e on vfio-pci ($NIC_WHY)"
		result "dpdk_testpmd_$name"
		return
	fi
	t0=$(ms)
	say "dpdk-testpmd $name: starting ($*)"
	chroot "$R" /usr/bin/dpdk-testpmd -l 0-1 -n 1 -a "$NIC" --iova-mode=va \
		--file-prefix "rc_$name" "$@" -- --forward-mode=txonly --stats-period 1 \
		--nb-cores=1 --total-num-mbufs=$DPDK_MBUFS </dev/null >"$log" 2>&1 &
	pid=$!
	# EAL start takes seconds of kernel time (hugepage set-up, DMA
	# mapping); the clock starts when forwarding does.
	while kill -0 $pid 2>/dev/null && [ $(($(ms) - t0)) -lt 180000 ]; do
		if grep -q 'start packet forwarding' "$log"; then
			started=yes
			break
		fi
		sleep 0.2
	done
	ts=$(ms)
	if [ $started = yes ]; then
		say "dpdk-testpmd $name: forwarding after $(((ts - t0) / 1000)) s, for ${DPDK_SECONDS} s"
		sleep "$DPDK_SECONDS"
	else
		problem "testpmd never started forwarding (in $(((ts - t0) / 1000)) s)"
	fi
	# While it forwards: its memory is pinned (and on hugepages).
	prun=$(pins)
	hrun=$(hugepages_free)
	kill -INT $pid 2>/dev/null
	te=$(ms)
	wait_exit $pid 120
	rc=$RC
	tx=$(awk '/Forward statistics for port 0/ { f = 1 } f && /TX-packets:/ { print $2; exit }' "$log")
	drop=$(awk '/Forward statistics for port 0/ { f = 1 } f && /TX-dropped:/ { print $4; exit }' "$log")
	# The periodic NIC statistics come from the device's registers.
	devtx=$(awk '/TX-packets:.*TX-errors:/ { t = $2 } END { print t }' "$log")
	txerr=$(awk '/TX-packets:.*TX-errors:/ { e = $4 } END { print e }' "$log")
	win=$((te - ts))
	[ "$rc" = 0 ] || problem "testpmd exit status $rc"
	grep -q 'Using IOMMU type 1 ' "$log" || problem "no 'Using IOMMU type 1' (the v1 container) in its log"
	grep -q '^Bye' "$log" || problem "testpmd did not finish its shutdown ('Bye...')"
	if [ $started = yes ]; then
		if [ -z "$tx" ]; then
			problem "no final forward statistics"
			tx=0
		elif [ "$tx" -lt "$DPDK_FLOOR" ]; then
			problem "$tx TX packets in $win ms of forwarding, floor $DPDK_FLOOR"
		fi
		[ "${devtx:-0}" -ge "$DPDK_FLOOR" ] ||
			problem "the device counted ${devtx:-no} TX packets, floor $DPDK_FLOOR"
		[ "$txerr" = 0 ] || problem "TX-errors ${txerr:-not reported}"
	fi
	[ "$prun" -gt "$P0" ] || problem "nothing pinned while testpmd forwarded ($P0 before, $prun then)"
	case " $* " in
	*" --no-huge "*) ;;
	*) [ "$hrun" -lt "$H0" ] || problem "no hugepage in use while testpmd forwarded" ;;
	esac
	check_after
	rate=0
	[ $win -gt 0 ] && [ -n "$tx" ] && rate=$((tx * 1000 / win))
	echo "# testpmd $name: exit $rc, TX-packets $tx (the device's last count: $devtx)," \
		"TX-dropped $drop, TX-errors $txerr in $win ms of forwarding: $rate packets/s;" \
		"whole run $((($(ms) - t0) / 1000)) s; while forwarding $((prun - P0)) pages pinned," \
		"$((H0 - hrun)) hugepages in use"
	grep -E 'IOMMU type|Probe PCI driver|packet forwarding - ports|^Bye' "$log" | diag "testpmd: "
	if [ -n "$PROBLEMS" ]; then
		grep -v "^[[:space:]]*$" "$log" | tail -n 40 | diag "testpmd: "
	fi
	say "dpdk-testpmd $name: $tx TX packets in $win ms = $rate packets/s, exit $rc" \
		"($((($(ms) - t0) / 1000)) s in all)"
	echo "dpdk_$name $BACKEND $rate packets/s ($tx in $win ms), $((($(ms) - t0) / 1000)) s" >>"$RESULTS"
	rm -rf "$R/run/dpdk/rc_$name"
	if [ -n "$(ls "$R/dev/hugepages")" ]; then
		echo "# left in hugetlbfs after exit: $(ls "$R/dev/hugepages" | tr '\n' ' ')"
		rm -f "$R"/dev/hugepages/*
	fi
	result "dpdk_testpmd_$name"
}

# ---- 3: the vfio-ioctls client ----

rust_client() {
	local t0 out rc
	baseline
	t0=$(ms)
	out=$(timeout 120 "$B/vfio-ioctls-client" "$EDU_RUST" 2>&1)
	rc=$?
	echo "$out" | diag
	[ $rc = 0 ] || problem "vfio-ioctls-client exit status $rc: $(echo "$out" | tail -n1)"
	check_after
	say "vfio-ioctls-client: exit $rc, $(echo "$out" | sed -n 's/.* \([0-9]*\) bytes checked.*/\1/p') bytes checked ($((($(ms) - t0) / 1000)) s)"
	echo "rust $BACKEND $(echo "$out" | sed -n 's/.* \([0-9]*\) bytes checked.*/\1/p') bytes checked, $((($(ms) - t0) / 1000)) s" >>"$RESULTS"
	result vfio_ioctls_client
}

# ---- 4: QEMU's vfio-pci, driven over qtest ----

qemu_client() {
	local t0 out rc
	baseline
	t0=$(ms)
	# -S and qtest: no guest CPU runs; QEMU sets up the container and maps
	# guest RAM, qemu-qtest-edu plays the guest. No firmware runs either,
	# so nothing else touches the device.
	# --min-pinned: 3/4 of the 128 MiB of guest RAM, in 4 KiB pages.
	out=$(timeout 600 "$B/qemu-qtest-edu" --rounds "$QEMU_ROUNDS" --min-pinned 24576 -- \
		chroot "$R" /usr/bin/qemu-system-x86_64 -machine q35 -accel tcg,tb-size=64 \
		-nodefaults -display none -m 128M -S -qtest stdio -qtest-log /dev/null \
		-device "vfio-pci,host=$EDU_QEMU,addr=04.0" 2>&1)
	rc=$?
	echo "$out" | diag
	[ $rc = 0 ] || problem "qemu-qtest-edu exit status $rc: $(echo "$out" | grep 'qemu-qtest-edu: FAIL' | tail -n1)"
	check_after
	say "QEMU vfio-pci: exit $rc, $(echo "$out" | sed -n 's/.* \([0-9]*\) bytes checked.*/\1/p') bytes checked ($((($(ms) - t0) / 1000)) s)"
	echo "qemu $BACKEND $(echo "$out" | sed -n 's/.* \([0-9]*\) bytes checked.*/\1/p') bytes checked, $((($(ms) - t0) / 1000)) s" >>"$RESULTS"
	result qemu_vfio_pci
}

# After the last backend: every backend's numbers side by side.
side_by_side() {
	local last= b k
	for b in $BACKENDS; do last=$b; done
	[ "$BACKEND" = "$last" ] || return 0
	for k in dpdk_hugepages dpdk_nohuge rust qemu; do
		for b in $BACKENDS; do
			awk -v k=$k -v b=$b '$1 == k && $2 == b { $1 = ""; $2 = ""; sub("^  ", ""); print }' \
				"$RESULTS" | tail -n1 | while read -r line; do
				echo "init: real-clients: $(printf '%-15s %-17s' $k $b) $line"
			done
		done
	done
}

echo "TAP version 13"
echo "1..4"
echo "# backend $BACKEND; DPDK: ${DPDK_SECONDS} s of forwarding, floor $DPDK_FLOOR TX packets"
NIC=
NIC_WHY=
if ! setup_chroot; then
	NIC_WHY="mounting the chroot's file systems failed"
elif ! NIC=$(find_pci 0x8086 0x10d3); then
	NIC_WHY="no e1000e (8086:10d3) on the PCI bus"
	NIC=
elif ! bind_vfio "$NIC"; then
	NIC_WHY="$NIC did not bind to vfio-pci"
	NIC=
fi
set -- $EDU_BDFS
EDU_RUST=$1
EDU_QEMU=${2:-$1}
echo "# e1000e ${NIC:-none ($NIC_WHY)}; edu for vfio-ioctls-client $EDU_RUST, for QEMU $EDU_QEMU"

dpdk hugepages --huge-unlink
dpdk nohuge --no-huge -m 64
rust_client
qemu_client
side_by_side

echo "# Totals: pass:$PASSED fail:$FAILED xfail:0 xpass:0 skip:0 error:0"
[ $FAILED = 0 ]
