#!/usr/bin/env bash
# Build the sample mdev driver (samples/mdev/) out of tree against the test
# kernel, into build/samples-mdev/rvfio_mdev_sample.ko.
#
# Like scripts/build-module.sh, the build runs in a symlink mirror of the
# sources (build/samples-mdev), because 6.12's Kbuild writes objects next to
# the sources for M= builds. scripts/mkinitramfs.sh copies every *.ko found
# there into the initramfs (/samples-mdev); scripts/guest-init.sh loads them.
#
# Environment: KDIR [build/kernel-debug], MDEV_SAMPLES_DIR [build/samples-mdev]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kdir="${KDIR:-$top/build/kernel-debug}"
out="${MDEV_SAMPLES_DIR:-$top/build/samples-mdev}"
src="$top/samples/mdev"
tools="$top/build/tools"
rust_lib=$(ls -d /usr/src/rustc-*/library 2>/dev/null | head -n1)

die() { echo "build-mdev-sample: $*" >&2; exit 1; }

[ -f "$kdir/Module.symvers" ] || die "no kernel in $kdir (make kernel)"
grep -qE '^CONFIG_VFIO_MDEV=[ym]$' "$kdir/.config" ||
	die "CONFIG_VFIO_MDEV is not enabled in $kdir/.config"

# Refresh the mirror: new files appear, deleted ones vanish.
mkdir -p "$out"
for f in "$src"/*; do
	ln -sfn "$f" "$out/$(basename "$f")"
done
find "$out" -maxdepth 1 -xtype l -delete

# The same toolchain as the kernel (scripts/toolchain.mk): the kernel is
# configured with CONFIG_RUST, and Kbuild checks the compilers it was built with.
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
make -s -C "$kdir" M="$out" LLVM=-19 \
	RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
	BINDGEN="$tools/bin/bindgen" RUST_LIB_SRC="$rust_lib" \
	-j"$(nproc)" KCFLAGS=-Werror modules
