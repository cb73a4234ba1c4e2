#!/bin/sh
# /init of the bench VM (busybox sh, PID 1), the counterpart of
# scripts/guest-init.sh for `make bench`: scripts/bench.sh builds it into
# build/bench/initramfs.cpio.gz (scripts/mkinitramfs.sh with INIT=this file,
# SELFTESTS_DIR=build/bench/bin so the client lands in /selftests, and
# MDEV_SAMPLES_DIR=build/bench/floor-ko so the floor module lands in
# /samples-mdev). One backend per boot, from the kernel command line:
#   rvfio_bench.backend=rvfio|vfio_iommu_type1|iommufd|floor|iommufd-mock
#   rvfio_bench.reps=N   rvfio_bench.mib=N   rvfio_bench.cases=a,b (default all)
# /samples-mdev also holds the mdev sample, loaded with mdev.ko for rvfio
# when the "faults" case runs.
# Host protocol: "### " marker lines, the client's "BENCH ..." lines, then
# "### DMESG BEGIN" ... "### DMESG END" and "### DONE".
export PATH=/bin HOME=/root TERM=linux
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/hugepages
mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null

BACKEND=rvfio REPS=5 MIB=256 CASES=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	rvfio_bench.backend=*) BACKEND=${arg#*=} ;;
	rvfio_bench.reps=*) REPS=${arg#*=} ;;
	rvfio_bench.mib=*) MIB=${arg#*=} ;;
	rvfio_bench.cases=*) CASES=${arg#*=} ;;
	esac
done
KVER=$(uname -r)
MODDIR=/lib/modules/$KVER
say() { echo "init: [$(cut -d' ' -f1 /proc/uptime)] $*"; }
finish() {
	echo "### DMESG BEGIN"
	dmesg
	echo "### DMESG END"
	echo "### DONE"
	sync
	poweroff -f
	sleep 5
	reboot -f
}
failed() {
	echo "### SETUP FAILED $*"
	finish
}

is_loaded() { [ -e "/sys/module/$(echo "$1" | tr '-' '_')/initstate" ]; }
# A module of the perf kernel and its dependencies, with plain insmod (never
# modprobe: vfio.ko soft-depends on vfio_iommu_type1, which must not come in
# behind the backend under test).
load_mod() {
	local want=$1 alt line path deps d rev
	is_loaded "$want" && return 0
	alt=$(echo "$want" | tr '_' '-')
	line=$(grep -E "(^|/)($want|$alt)\.ko:" "$MODDIR/modules.dep" | head -n1)
	[ -n "$line" ] || { echo "init: module $want not found"; return 1; }
	path=${line%%:*}
	deps=${line#*:}
	rev=
	for d in $deps; do rev="$d $rev"; done
	for d in $rev; do
		d_name=${d##*/}
		is_loaded "${d_name%.ko}" || insmod "$MODDIR/$d" || return 1
	done
	insmod "$MODDIR/$path"
}

say "kernel $KVER, backend $BACKEND, reps $REPS, $MIB MiB; $(grep -c ^processor /proc/cpuinfo) cpus"
say "$(grep -E 'MemTotal|HugePages_Total' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
say "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled)"

EDU_BDFS=
for dev in /sys/bus/pci/devices/*; do
	[ "$(cat "$dev/vendor")" = 0x1234 ] && [ "$(cat "$dev/device")" = 0x11e8 ] &&
		EDU_BDFS="$EDU_BDFS ${dev##*/}"
done
BDF=$(echo $EDU_BDFS | tr ' ' '\n' | sort | head -n1)
[ -n "$BDF" ] || failed "no edu device"
echo "### EDU_BDFS$EDU_BDFS"

case "$BACKEND" in floor*) is_floor=yes ;; *) is_floor=no ;; esac
if [ "$BACKEND" = iommufd-mock ]; then
	# Only the "faults" case, on iommufd's selftest mock device, booted with
	# intel_iommu=off (scripts/bench.sh): 6.12 hands a device without
	# firmware IOMMU data to the first IOMMU driver registered, which would
	# be VT-d, so the mock device gets no IOMMU while VT-d is on.
	:
elif [ $is_floor = yes ]; then
	# The floor attaches its own paging domain to an edu with no driver.
	insmod /samples-mdev/rvfio_floor.ko || failed "insmod rvfio_floor.ko"
else
	for m in vfio vfio-pci; do load_mod "$m" || failed "loading $m"; done
	echo "1234 11e8" >/sys/bus/pci/drivers/vfio-pci/new_id || failed "vfio-pci new_id"
	# The ivshmem-plain device: its 64 MiB BAR2 is the large PFNMAP row.
	for dev in /sys/bus/pci/devices/*; do
		[ "$(cat "$dev/vendor")" = 0x1af4 ] && [ "$(cat "$dev/device")" = 0x1110 ] || continue
		echo "1af4 1110" >/sys/bus/pci/drivers/vfio-pci/new_id
		say "ivshmem ${dev##*/}: $(readlink "$dev/driver" | sed 's,.*/,,')"
		break
	done
	i=0
	while [ ! -e "/sys/bus/pci/devices/$BDF/vfio-dev" ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	case "$BACKEND" in
	rvfio) insmod /rvfio/rvfio.ko || failed "insmod rvfio.ko" ;;
	# An earlier revision of rvfio (RVFIO_BASE_REV), for A/B runs.
	rvfio-base) insmod /samples-mdev/rvfio-base.ko || failed "insmod rvfio-base.ko" ;;
	vfio_iommu_type1) load_mod vfio_iommu_type1 || failed "loading vfio_iommu_type1" ;;
	iommufd) ;;  # built in; the client uses /dev/iommu and the vfio cdev
	*) failed "unknown backend $BACKEND" ;;
	esac
	want_mod=${BACKEND%-base}
	for m in vfio_iommu_type1 rvfio; do
		[ "$m" != "$want_mod" ] && is_loaded "$m" && failed "$m loaded besides $BACKEND"
	done
fi
# The "faults" case drives rvfio through the mdev sample (kernel's mdev.ko
# first); iommufd's side uses its built-in selftest mock device.
case "$BACKEND,$CASES" in
rvfio,* | rvfio-base,*)
	case ",$CASES," in
	,, | *,faults,*)
		if [ -f /samples-mdev/rvfio_mdev_sample.ko ]; then
			load_mod mdev && insmod /samples-mdev/rvfio_mdev_sample.ko ||
				echo "### UNEXPECTED loading the mdev sample failed"
		fi ;;
	esac ;;
esac
echo "### BACKEND $BACKEND LOAD OK"
case "$BACKEND" in rvfio | rvfio-base)
	echo "### PARAM dma_entry_limit $(cat /sys/module/rvfio/parameters/dma_entry_limit)" ;;
esac
[ "$BACKEND" = vfio_iommu_type1 ] && echo "### PARAM dma_entry_limit $(cat /sys/module/vfio_iommu_type1/parameters/dma_entry_limit)"

dmesg -n 4
say "running rvfio_bench $BACKEND $BDF $REPS $MIB"
[ -n "$CASES" ] && export BENCH_CASES=$CASES
/selftests/rvfio_bench "$BACKEND" "$BDF" "$REPS" "$MIB" </dev/null 2>&1
echo "### BENCH EXIT $?"
dmesg | grep -qE 'Oops|BUG:|WARNING:|kernel BUG at|general protection fault' &&
	echo "### UNEXPECTED kernel splat (see the dmesg dump)"
finish
