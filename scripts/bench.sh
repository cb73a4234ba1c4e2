#!/usr/bin/env bash
# make bench: map/unmap speed of rvfio against upstream's vfio_iommu_type1,
# iommufd's native IOAS ioctls and the in-kernel floor (bench/floor), on the
# performance kernel (build/kernel-perf: no KASAN, no lockdep). See
# Documentation/bench.rst.
#
#   scripts/bench.sh          build what is needed, boot one fresh VM per
#                             backend and round, then write the report
#   scripts/bench.sh report   only re-write the report from the VM logs
#   scripts/bench.sh save [NAME]   copy the report to
#                             bench/results/DATE[-NAME].{md,json,png} (to commit)
#
# Environment (defaults in brackets):
#   ROUNDS [4]        A/B rounds; each round boots every backend once, the
#                     order rotating from round to round
#   BENCH_BACKENDS [rvfio,vfio_iommu_type1,iommufd,floor,iommufd-mock]
#                     (iommufd-mock: only the "faults" case, iommufd's mock
#                     device, booted with intel_iommu=off)
#   REPS [5]          repetitions per case inside one VM
#   MIB [256]         buffer size of the big cases
#   CASES []          only these client cases (comma list, default all)
#   HUGEPAGES [160]   2 MiB hugepages reserved at boot (MIB/2 needed)
#   VM_TIMEOUT [900]  per VM; TSC_KHZ: guest TSC rate (default: from the host)
#   BENCH_OUT [build/bench]   where everything of this run goes
#   RVFIO_INSTRUMENT [] 1: with RVFIO_REV, time rvfio's map and unmap paths
#                     (rust/instrument.rs, built with --cfg rvfio_instrument
#                     into BENCH_OUT/module-instr; bench/instrument_glue.py adds
#                     the bench_stats parameter to the copy's glue.c); the log
#                     gets BENCH-STATS lines
#   RVFIO_REV []      build rvfio.ko from this git revision (exported to
#                     build/bench/rvfio-src) instead of the working tree, so
#                     that uncommitted work in rust/ is not what gets measured
#   RVFIO_BASE_REV [] also build rvfio.ko from this revision and bench it as
#                     the backend "rvfio-base" in the same run (added to
#                     BENCH_BACKENDS): before/after comparisons of rvfio
#                     itself, boot by boot, with the report's A/B table
#
# Outputs (build/bench/): vm-BACKEND-rROUND.log (console of each boot),
# results.json (rows with rvfio_ms, type1_ms, iommufd_ms, floor_ms),
# results.md (table, contiguity, environment), chart.png. The committed copy
# lives in bench/results/ (copied by hand from results.md).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
out="${BENCH_OUT:-$build/bench}"
kdir="$build/kernel-perf"
moddir="$build/module-perf"
python=/usr/bin/python3
mkdir -p "$out"
# Absolute: the module build's mirror symlinks into it (scripts/build-module.sh).
out=$(cd "$out" && pwd)
say() { echo "bench: $*"; }
die() { echo "bench: $*" >&2; exit 1; }

ROUNDS=${ROUNDS:-4}
if [ -n "${RVFIO_BASE_REV:-}" ]; then
	BENCH_BACKENDS=${BENCH_BACKENDS:-rvfio-base,rvfio,vfio_iommu_type1,iommufd,floor,iommufd-mock}
else
	BENCH_BACKENDS=${BENCH_BACKENDS:-rvfio,vfio_iommu_type1,iommufd,floor,iommufd-mock}
fi
REPS=${REPS:-5}
MIB=${MIB:-256}
HUGEPAGES=${HUGEPAGES:-160}
VM_TIMEOUT=${VM_TIMEOUT:-900}

report() {
	"$python" "$top/bench/report.py" "$out" "$kdir" "$@"
}
case "${1:-}" in
report)
	report "$(cat "$out/wall" 2>/dev/null)"
	exit 0
	;;
save)
	[ -f "$out/results.md" ] || die "no $out/results.md (run make bench first)"
	d=$(sed -n '1s/.*, \([0-9-]*\) .*/\1/p' "$out/results.md")${2:+-$2}
	mkdir -p "$top/bench/results"
	for f in md json; do cp "$out/results.$f" "$top/bench/results/$d.$f"; done
	[ -f "$out/chart.png" ] && cp "$out/chart.png" "$top/bench/results/$d.png"
	ls -l "$top/bench/results/$d".*
	exit 0
	;;
"") ;;
*) die "usage: $0 [report|save]" ;;
esac

# ---- 1. what only the bench needs: matplotlib for the chart ----
if ! "$python" -c 'import matplotlib' 2>/dev/null; then
	say "installing python3-matplotlib (for the chart)"
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends \
		python3-matplotlib >/dev/null
fi

# ---- 2. builds: perf kernel, rvfio.ko and the floor against it, the client ----
"$top/scripts/build-kernel.sh" perf
if [ -n "${RVFIO_REV:-}" ]; then
	rev=$(git -C "$top" rev-parse --short "$RVFIO_REV")
	rm -rf "$out/rvfio-src" "$moddir"
	mkdir -p "$out/rvfio-src"
	# What the module build reads: Kbuild, rust/ and (when the revision has
	# it) include/ for rvfio's own uapi header.
	# shellcheck disable=SC2046
	git -C "$top" archive "$rev" $(git -C "$top" ls-tree --name-only "$rev" Kbuild rust include) |
		tar -x -C "$out/rvfio-src"
	if [ "${RVFIO_INSTRUMENT:-}" = 1 ]; then
		"$python" "$top/bench/instrument_glue.py" "$out/rvfio-src/rust/glue.c"
		moddir="$out/module-instr"
		rm -rf "$moddir"
	fi
	flags=
	[ "${RVFIO_INSTRUMENT:-}" = 1 ] && flags="--cfg rvfio_instrument"
	KDIR="$kdir" MODDIR="$moddir" SRC="$out/rvfio-src" RVFIO_RUSTFLAGS="$flags" \
		"$top/scripts/build-module.sh"
	echo "rvfio $rev (RVFIO_REV=$RVFIO_REV${flags:+, instrumented})" >"$out/rvfio-source"
else
	KDIR="$kdir" MODDIR="$moddir" "$top/scripts/build-module.sh"
	echo "rvfio working tree $(git -C "$top" describe --always --dirty 2>/dev/null)" \
		"($(git -C "$top" status --short -- Kbuild rust | wc -l) uncommitted files in Kbuild rust/)" \
		>"$out/rvfio-source"
fi

mkdir -p "$out/floor" "$out/floor-ko" "$out/bin"
rm -f "$out/floor-ko/rvfio-base.ko"
if [ -n "${RVFIO_BASE_REV:-}" ]; then
	base_rev=$(git -C "$top" rev-parse --short "$RVFIO_BASE_REV")
	rm -rf "$out/rvfio-base-src" "$out/module-base"
	mkdir -p "$out/rvfio-base-src"
	# shellcheck disable=SC2046
	git -C "$top" archive "$base_rev" $(git -C "$top" ls-tree --name-only "$base_rev" Kbuild rust include) |
		tar -x -C "$out/rvfio-base-src"
	KDIR="$kdir" MODDIR="$out/module-base" SRC="$out/rvfio-base-src" "$top/scripts/build-module.sh"
	# Into the initramfs's /samples-mdev; bench-init.sh loads it for
	# the backend rvfio-base (its module name is rvfio, too).
	cp "$out/module-base/rvfio.ko" "$out/floor-ko/rvfio-base.ko"
	echo "rvfio-base $base_rev (RVFIO_BASE_REV=$RVFIO_BASE_REV)" >>"$out/rvfio-source"
fi
for f in "$top"/bench/floor/*; do ln -sfn "$f" "$out/floor/${f##*/}"; done
(
	unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL
	export LIBCLANG_PATH=/usr/lib/llvm-19/lib
	make -s -C "$kdir" M="$out/floor" LLVM=-19 \
		RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
		BINDGEN="$build/tools/bin/bindgen" \
		RUST_LIB_SRC="$(ls -d /usr/src/rustc-*/library | head -n1)" \
		KCFLAGS=-Werror -j"$(nproc)" modules
)
cmp -s "$out/floor/rvfio_floor.ko" "$out/floor-ko/rvfio_floor.ko" ||
	cp "$out/floor/rvfio_floor.ko" "$out/floor-ko/rvfio_floor.ko"
# The mdev sample for the "faults" case (bench/fault_bench.c): rvfio's own
# translation faults, produced at will. Into /samples-mdev too.
KDIR="$kdir" MDEV_SAMPLES_DIR="$out/mdev-sample" "$top/scripts/build-mdev-sample.sh"
cmp -s "$out/mdev-sample/rvfio_mdev_sample.ko" "$out/floor-ko/rvfio_mdev_sample.ko" ||
	cp "$out/mdev-sample/rvfio_mdev_sample.ko" "$out/floor-ko/rvfio_mdev_sample.ko"

client="$out/bin/rvfio_bench"
# fault_bench.c also needs rvfio's uapi, the mdev sample's ABI and iommufd's
# selftest ABI (drivers/iommu/iommufd/iommufd_test.h of the perf kernel).
if [ ! -x "$client" ] || [ -n "$(find "$top/bench/rvfio_bench.c" "$top/bench/fault_bench.c" \
	"$top/bench/fault_bench.h" "$top/bench/floor/rvfio_floor.h" \
	"$top/include/uapi/linux/rvfio.h" "$top/samples/mdev/rvfio_mdev_sample.h" \
	"$kdir/usr/include/linux/vfio.h" -newer "$client" 2>/dev/null)" ]; then
	gcc -static -O2 -pthread -Wall -Werror -Wno-sign-compare -I"$kdir/usr/include" \
		-I"$top/bench" -I"$top/include/uapi" -I"$top/samples/mdev" \
		-I"$kdir/source/drivers/iommu/iommufd" \
		-o "$client.tmp" "$top/bench/rvfio_bench.c" "$top/bench/fault_bench.c"
	mv "$client.tmp" "$client"
fi

# The initramfs: scripts/mkinitramfs.sh with bench inputs. The client goes in
# /selftests, the floor module in /samples-mdev, /init is bench-init.sh.
initramfs="$out/initramfs.cpio.gz"
KDIR="$kdir" MODULE="$moddir/rvfio.ko" SELFTESTS_DIR="$out/bin" \
	SAMPLES_DIR="$out/no-samples" MDEV_SAMPLES_DIR="$out/floor-ko" \
	INITRAMFS="$initramfs" INIT="$top/bench/bench-init.sh" \
	"$top/scripts/mkinitramfs.sh"

# ---- 3. one fresh VM per backend and round ----
# The devices of scripts/vm.sh (q35, VT-d with interrupt remapping and
# caching mode, three edu devices with a 64-bit DMA mask, the third behind a
# PCIe root port, an ivshmem-plain device with a 64 MiB BAR2), TCG, 2 vCPUs,
# 4 GiB.
tsc_khz=${TSC_KHZ:-$("$top/scripts/host-tsc-khz.sh")} || die "cannot find the host TSC rate; set TSC_KHZ"
hz=$(sed -n 's/^CONFIG_HZ=\([0-9]*\)$/\1/p' "$kdir/.config")

boot() {
	local backend=$1 round=$2 log="$out/vm-$1-r$2.log" rc t0 try load0
	local append="console=ttyS0,115200 panic=-1 intel_iommu=on tsc_early_khz=$tsc_khz"
	append+=" lpj=$((tsc_khz * 1000 / hz)) no5lvl log_buf_len=4M"
	# A loaded host can make the early IO-APIC timer check fail under TCG
	# ("timer doesn't work through Interrupt-remapped IO-APIC": panic).
	append+=" no_timer_check"
	append+=" hugepagesz=2M hugepages=$HUGEPAGES"
	append+=" rvfio_bench.backend=$backend rvfio_bench.reps=$REPS rvfio_bench.mib=$MIB"
	# iommufd's mock device (the "faults" case) gets its mock IOMMU only
	# while no VT-d is registered (bench/bench-init.sh).
	[ "$backend" = iommufd-mock ] && append=${append/intel_iommu=on/intel_iommu=off}
	[ -n "${CASES:-}" ] && append+=" rvfio_bench.cases=$CASES"
	# A boot that breaks before the bench finishes (a TCG hiccup) is
	# retried, twice at most; its log is kept as .failN.
	exec 7>"$vm_lock"
	flock -n 7 || { say "waiting for another VM to finish"; flock 7; }
	for try in 1 2 3; do
		load0=$(cut -d' ' -f1 /proc/loadavg)
		t0=$SECONDS
		set +e
		timeout -k 10 "$VM_TIMEOUT" /usr/bin/qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 4G \
			-machine q35,kernel-irqchip=split \
			-device intel-iommu,intremap=on,caching-mode=on,eim=on \
			-device edu,dma_mask=0xffffffffffffffff \
			-device edu,dma_mask=0xffffffffffffffff \
			-device pcie-root-port,id=rp1,chassis=1,slot=1 \
			-device edu,dma_mask=0xffffffffffffffff,bus=rp1 \
			-object memory-backend-memfd,id=ivshmem0,size=64M,share=on \
			-device ivshmem-plain,memdev=ivshmem0 \
			-nic none -no-reboot -nographic \
			-kernel "$kdir/arch/x86/boot/bzImage" -initrd "$initramfs" \
			-append "$append" </dev/null >"$log" 2>&1
		rc=$?
		set -e
		echo "HOSTLOAD start $load0 end $(cut -d' ' -f1 /proc/loadavg)" >>"$log"
		grep -q '^BENCH-DONE' "$log" && break
		[ "$try" = 3 ] || { say "round $round $backend: VM broke (qemu rc $rc), booting again"; mv "$log" "$log.fail$try"; }
	done
	exec 7>&-
	local cases
	cases=$(grep -c '^BENCH {' "$log" || true)
	say "round $round $backend: $cases cases in $((SECONDS - t0))s (qemu rc $rc, $log)"
	grep -E '^(BENCH-ERR|BENCH-FATAL|BENCH-SKIP)|### (SETUP FAILED|UNEXPECTED)' "$log" |
		sed 's/^/    /' || true
}

IFS=, read -ra backends <<<"$BENCH_BACKENDS"
# One VM at a time on this machine, whatever boots it (scripts/vm.sh takes
# the same lock): a second TCG VM would be measured too. Taken per boot, so
# that other users of the machine get their turn between boots.
vm_lock=${VM_LOCK:-/tmp/rvfio-vm.lock}
rm -f "$out"/vm-*.log "$out"/vm-*.log.fail*
start=$SECONDS
n=${#backends[@]}
for ((r = 1; r <= ROUNDS; r++)); do
	for ((i = 0; i < n; i++)); do
		boot "${backends[$(((i + r - 1) % n))]}" "$r"
	done
done
say "all VMs: $((SECONDS - start))s; whole bench: ${SECONDS}s"
echo "$SECONDS" >"$out/wall"
report "$SECONDS"
