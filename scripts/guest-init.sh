#!/bin/sh
# /init of the rvfio test VM (busybox sh, PID 1). Built into the initramfs by
# scripts/mkinitramfs.sh; driven by scripts/vm.sh through the kernel command
# line:
#   rvfio.mode=check|run|shell      what to do (default: shell)
#   rvfio.backends=a,b              check: backends to test, in order
#                                   (default: rvfio,vfio_iommu_type1: rvfio
#                                   first, while lockdep is certainly on)
#   rvfio.backend=NAME              run/shell: backend to load (default: rvfio)
#   rvfio.test_timeout=SECS         check: limit per test binary (default: 600)
#   rvfio.loglevel=N                console loglevel while tests run (default: 4,
#                                   so only errors and worse interleave with
#                                   test output; `dmesg` at the end has all)
#   rvfio.kmemleak_scans=N          kmemleak scans before the dmesg dump (1)
#   rvfio.tests=a_test,b_test       check: run only these /selftests binaries
#                                   (default: every /selftests/*_test); a
#                                   listed binary that is missing is UNEXPECTED
#   rvfio.test_names=a,b            check: run only the harness tests of
#                                   these names in each binary (-t a -t b;
#                                   for developing one test, not make check)
#   rvfio.intremap=on|off           what the host set up (QEMU intel-iommu
#                                   intremap=); exported to the tests as
#                                   RVFIO_INTREMAP, unsafe_intr_test checks
#                                   it against the kernel's view
#
# Everything the host parses starts with "### " (see vm.sh):
#   ### SETUP FAILED <what>                   setup broke; nothing was tested
#   ### EDU_BDFS <bdf> <bdf> <bdf>
#   ### BACKEND <name> LOAD OK|LOAD FAILED <rc>
#   ### BACKEND <name> TEST <binary>          then the binary's output
#   ### EXIT <rc> TIME <secs> [TIMEOUT]
#   ### BACKEND <name> UNLOAD OK|UNLOAD FAILED <rc>
#   ### UNEXPECTED <what>                     e.g. a backend loaded by accident,
#                                             or an mdev sample that failed to load
#   ### ABORT <why>                           remaining tests not run
#   ### SAMPLE EXIT <rc>                      run mode
#   ### DMESG BEGIN ... ### DMESG END         the whole kernel log
#   ### DONE
export PATH=/bin HOME=/root TERM=linux

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/hugepages
mount -t devpts devpts /dev/pts
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null ||
	echo "init: hugetlbfs not available"

MODE=shell
BACKENDS=rvfio,vfio_iommu_type1
BACKEND=rvfio
TEST_TIMEOUT=600
LOGLEVEL=4
KMEMLEAK_SCANS=1
TESTS=
INTREMAP=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	rvfio.mode=*) MODE=${arg#*=} ;;
	rvfio.backends=*) BACKENDS=${arg#*=} ;;
	rvfio.backend=*) BACKEND=${arg#*=} ;;
	rvfio.test_timeout=*) TEST_TIMEOUT=${arg#*=} ;;
	rvfio.loglevel=*) LOGLEVEL=${arg#*=} ;;
	rvfio.kmemleak_scans=*) KMEMLEAK_SCANS=${arg#*=} ;;
	rvfio.tests=*) TESTS=${arg#*=} ;;
	rvfio.test_names=*) TEST_NAMES=${arg#*=} ;;
	rvfio.intremap=*) INTREMAP=${arg#*=} ;;
	esac
done
# The fuzzer's run time, seed and variant (selftests/fuzz_test.c; make fuzz):
#   rvfio.fuzz_seconds=N rvfio.fuzz_seed=S rvfio.fuzz_variant=V -> FUZZ_*
# and the fail-nth sweep's one line per run (rvfio.fail_nth_verbose=1).
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	rvfio.fuzz_seconds=*) export FUZZ_SECONDS=${arg#*=} ;;
	rvfio.fuzz_seed=*) export FUZZ_SEED=${arg#*=} ;;
	rvfio.fuzz_variant=*) export FUZZ_VARIANT=${arg#*=} ;;
	rvfio.fail_nth_verbose=*) export FAIL_NTH_VERBOSE=${arg#*=} ;;
	esac
done
BACKENDS=$(echo "$BACKENDS" | tr ',' ' ')
TESTS=$(echo "$TESTS" | tr ',' ' ')
HARNESS_ARGS=
for n in $(echo "${TEST_NAMES:-}" | tr ',' ' '); do
	HARNESS_ARGS="$HARNESS_ARGS -t $n"
done
export RVFIO_INTREMAP=$INTREMAP
KVER=$(uname -r)
MODDIR=/lib/modules/$KVER

# Progress lines carry the guest's uptime in seconds.
say() {
	echo "init: [$(cut -d' ' -f1 /proc/uptime)] $*"
}

# Leave the VM. -no-reboot on the QEMU side turns a reboot into an exit too.
finish() {
	sync
	poweroff -f
	sleep 5
	reboot -f
}

# Print the whole kernel log between markers for the host to scan.
dump_dmesg() {
	local i=0
	if [ -w /sys/kernel/debug/kmemleak ] && [ "$KMEMLEAK_SCANS" -gt 0 ]; then
		# A leak is reported as "kmemleak: N new suspected memory leaks"
		# in dmesg, which the host treats as a failure.
		say "kmemleak: $KMEMLEAK_SCANS scan(s)"
		while [ $i -lt "$KMEMLEAK_SCANS" ]; do
			echo scan >/sys/kernel/debug/kmemleak
			i=$((i + 1))
		done
		say "kmemleak: done"
		echo "### KMEMLEAK BEGIN"
		cat /sys/kernel/debug/kmemleak
		echo "### KMEMLEAK END"
	fi
	echo "### DMESG BEGIN"
	dmesg
	echo "### DMESG END"
}

# A kernel module's name as /sys/module spells it.
modname() {
	local n=${1##*/}
	n=${n%.ko}
	echo "$n" | tr '-' '_'
}

is_loaded() {
	[ -e "/sys/module/$(modname "$1")/initstate" ] ||
		grep -q "/$1.ko\$" "$MODDIR/modules.builtin" 2>/dev/null ||
		grep -q "/$(echo "$1" | tr '_' '-').ko\$" "$MODDIR/modules.builtin" 2>/dev/null
}

# Load a module of the test kernel and its dependencies (from modules.dep,
# which lists all of them, deepest last) with plain insmod. Unlike modprobe
# this never follows MODULE_SOFTDEP: vfio.ko asks for vfio_iommu_type1 that
# way, and the backend under test must be the only one loaded.
load_mod() {
	local want=$1 alt line path deps d rev
	is_loaded "$want" && return 0
	alt=$(echo "$want" | tr '_' '-')
	line=$(grep -E "(^|/)($want|$alt)\.ko:" "$MODDIR/modules.dep" | head -n1)
	if [ -z "$line" ]; then
		echo "init: module $want not found in $MODDIR"
		return 1
	fi
	path=${line%%:*}
	deps=${line#*:}
	rev=
	for d in $deps; do rev="$d $rev"; done
	for d in $rev; do
		is_loaded "$(modname "$d")" && continue
		insmod "$MODDIR/$d" || return 1
	done
	insmod "$MODDIR/$path"
}

# Load/unload an IOMMU backend: rvfio from /rvfio, anything else from the
# test kernel's modules.
load_backend() {
	if [ "$1" = rvfio ]; then
		if [ ! -f /rvfio/rvfio.ko ]; then
			echo "init: /rvfio/rvfio.ko is not in the initramfs"
			return 1
		fi
		insmod /rvfio/rvfio.ko
	else
		load_mod "$1"
	fi
}

# Sample mdev drivers (scripts/build-mdev-sample.sh) for the emulated-IOMMU
# tests, with the kernel's mdev.ko first. Loaded once for all backends: an
# mdev uses a backend only while a test has it in a container. Without them
# in the initramfs the mdev tests skip.
load_mdev_samples() {
	local ko
	ls /samples-mdev/*.ko >/dev/null 2>&1 || {
		say "no mdev sample in /samples-mdev"
		return 0
	}
	if ! load_mod mdev; then
		echo "### UNEXPECTED loading mdev.ko failed"
		return 0
	fi
	for ko in /samples-mdev/*.ko; do
		is_loaded "$(modname "$ko")" && continue
		insmod "$ko" || echo "### UNEXPECTED insmod $ko failed"
	done
	say "mdev samples: $(ls /sys/class/mdev_bus 2>/dev/null | tr '\n' ' ')"
}

setup_failed() {
	echo "### SETUP FAILED $*"
	if [ "$MODE" = shell ]; then
		return
	fi
	dump_dmesg
	echo "### DONE"
	finish
}

say "kernel $KVER, mode $MODE, cmdline: $(cat /proc/cmdline)"
[ -d /sys/class/iommu ] && [ -n "$(ls /sys/class/iommu)" ] ||
	setup_failed "no IOMMU in /sys/class/iommu"

# vfio core and vfio-pci; the container backend comes later.
for m in vfio vfio-pci; do
	load_mod "$m" || setup_failed "loading $m"
done
say "vfio and vfio-pci loaded"
for b in vfio_iommu_type1 rvfio; do
	is_loaded "$b" && echo "### UNEXPECTED $b loaded during setup"
done

# Bind every edu device to vfio-pci.
EDU_BDFS=
for dev in /sys/bus/pci/devices/*; do
	[ "$(cat "$dev/vendor")" = 0x1234 ] && [ "$(cat "$dev/device")" = 0x11e8 ] &&
		EDU_BDFS="$EDU_BDFS ${dev##*/}"
done
EDU_BDFS=$(echo $EDU_BDFS | tr ' ' '\n' | sort | tr '\n' ' ')
EDU_BDFS=${EDU_BDFS% }
export EDU_BDFS
[ -n "$EDU_BDFS" ] || setup_failed "no edu device (1234:11e8) on the PCI bus"
echo "1234 11e8" >/sys/bus/pci/drivers/vfio-pci/new_id ||
	setup_failed "vfio-pci new_id"
for bdf in $EDU_BDFS; do
	grp=$(readlink "/sys/bus/pci/devices/$bdf/iommu_group")
	grp=${grp##*/}
	[ -n "$grp" ] || setup_failed "$bdf has no iommu_group"
	i=0
	while [ ! -c "/dev/vfio/$grp" ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	drv=$(readlink "/sys/bus/pci/devices/$bdf/driver")
	[ "${drv##*/}" = vfio-pci ] || setup_failed "$bdf bound to '${drv##*/}', not vfio-pci"
	[ -c "/dev/vfio/$grp" ] || setup_failed "/dev/vfio/$grp missing for $bdf"
	say "edu $bdf -> iommu group $grp (/dev/vfio/$grp)"
done
# The ivshmem-plain device (a large BAR for pfnmap_huge_test), if any.
for dev in /sys/bus/pci/devices/*; do
	[ "$(cat "$dev/vendor")" = 0x1af4 ] && [ "$(cat "$dev/device")" = 0x1110 ] || continue
	echo "1af4 1110" >/sys/bus/pci/drivers/vfio-pci/new_id ||
		setup_failed "vfio-pci new_id for ivshmem"
	drv=$(readlink "$dev/driver")
	[ "${drv##*/}" = vfio-pci ] || setup_failed "${dev##*/} (ivshmem) bound to '${drv##*/}'"
	say "ivshmem ${dev##*/} bound to vfio-pci"
	break
done
[ -c /dev/vfio/vfio ] || setup_failed "/dev/vfio/vfio missing (CONFIG_VFIO_CONTAINER?)"
say "hugepages: $(grep HugePages_Total /proc/meminfo)"
echo "### EDU_BDFS $EDU_BDFS"

# Greps the kernel log for a crash that leaves the kernel unfit to go on.
crashed() {
	dmesg | grep -qE 'Oops|BUG:|kernel BUG at|general protection fault|Kernel panic'
}

# The test binaries of this boot: rvfio.tests, or every /selftests/*_test.
test_list() {
	local t
	if [ -z "$TESTS" ]; then
		for t in /selftests/*_test; do
			[ -x "$t" ] && echo "$t"
		done
		return 0
	fi
	for t in $TESTS; do
		if [ -x "/selftests/$t" ]; then
			echo "/selftests/$t"
		else
			echo "### UNEXPECTED rvfio.tests names $t, which is not in /selftests" >&2
		fi
	done
}

mode_check() {
	local b t rc start end extra other tests
	dmesg -n "$LOGLEVEL"
	tests=$(test_list)	# its complaints go to stderr, the console
	say "tests: $(echo $tests | sed 's@/selftests/@@g'), interrupt remapping: ${INTREMAP:-not stated}"
	# The mdev samples only matter to mdev_test, owner_test and fault_ring_test.
	case " $TESTS " in
	"  " | *" mdev_test "* | *" owner_test "* | *" fault_ring_test "*) load_mdev_samples ;;
	esac
	# The reliability tests drive the mdev sample too (when named alone).
	case " $TESTS " in
	*" fail_nth_test "* | *" fuzz_test "* | *" stress_test "*) load_mdev_samples ;;
	esac
	for b in $BACKENDS; do
		for other in vfio_iommu_type1 rvfio; do
			is_loaded "$other" && echo "### UNEXPECTED $other loaded before backend $b"
		done
		if load_backend "$b"; then
			echo "### BACKEND $b LOAD OK"
		else
			echo "### BACKEND $b LOAD FAILED $?"
			if crashed; then
				echo "### ABORT kernel crashed while loading $b"
				return
			fi
			continue
		fi
		grep "^$b " /proc/modules
		for t in $tests; do
			echo "### BACKEND $b TEST ${t##*/}"
			start=$(cut -d. -f1 /proc/uptime)
			(cd /tmp && VFIO_BACKEND=$b timeout -k 10 "$TEST_TIMEOUT" "$t" $HARNESS_ARGS) </dev/null 2>&1
			rc=$?
			end=$(cut -d. -f1 /proc/uptime)
			extra=
			[ $((end - start)) -ge "$TEST_TIMEOUT" ] && extra=" TIMEOUT"
			echo "### EXIT $rc TIME $((end - start))$extra"
			# Test children left behind (the harness runs each test in
			# its own process group; a timeout kills only the parent)
			# would keep the backend busy: kill everything but init.
			kill -KILL -1 2>/dev/null
			if crashed; then
				echo "### ABORT kernel crashed during ${t##*/} on $b"
				return
			fi
		done
		grep "^$b " /proc/modules
		if rmmod "$b"; then
			echo "### BACKEND $b UNLOAD OK"
		else
			echo "### BACKEND $b UNLOAD FAILED $?"
			grep "^$b " /proc/modules
		fi
	done
}

mode_run() {
	local rc
	dmesg -n "$LOGLEVEL"
	if load_backend "$BACKEND"; then
		echo "### BACKEND $BACKEND LOAD OK"
	else
		echo "### BACKEND $BACKEND LOAD FAILED $?"
		return
	fi
	grep "^$BACKEND " /proc/modules
	say "running /samples/edu_dma"
	(cd /tmp && timeout -k 10 "$TEST_TIMEOUT" /samples/edu_dma) </dev/null 2>&1
	rc=$?
	say "edu_dma exited $rc"
	echo "### SAMPLE EXIT $rc"
	crashed && return
	if rmmod "$BACKEND"; then
		echo "### BACKEND $BACKEND UNLOAD OK"
	else
		echo "### BACKEND $BACKEND UNLOAD FAILED $?"
	fi
}

mode_shell() {
	load_mdev_samples
	if load_backend "$BACKEND"; then
		echo "### BACKEND $BACKEND LOAD OK"
	else
		echo "### BACKEND $BACKEND LOAD FAILED $?"
	fi
	cat <<EOF

rvfio test VM: backend $BACKEND, EDU_BDFS="$EDU_BDFS"
  /selftests/*  /samples/edu_dma  /rvfio/rvfio.ko  /lib/modules/$KVER
  exit the shell to power off (or Ctrl-A x in QEMU)
EOF
	setsid cttyhack sh -l
}

case "$MODE" in
check) mode_check ;;
run) mode_run ;;
shell) mode_shell ;;
*) echo "### SETUP FAILED unknown rvfio.mode=$MODE" ;;
esac
[ "$MODE" = shell ] || dump_dmesg
echo "### DONE"
finish
