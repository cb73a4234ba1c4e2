#!/usr/bin/env bash
# Build rvfio.ko out of tree against build/kernel-debug.
#   scripts/build-module.sh          build build/module/rvfio.ko
#   scripts/build-module.sh lint     rustfmt --check and clippy on the module
# Environment (defaults in brackets), to build against another kernel:
#   KDIR [build/kernel-debug]   MODDIR [build/module] (the mirror and output)
#   SRC [the checkout]   where Kbuild and rust/ come from (make bench can build
#                        a committed revision exported elsewhere)
#   RVFIO_RUSTFLAGS []   extra rustc flags (make bench's analysis mode passes
#                        --cfg rvfio_instrument, see rust/instrument.rs)
# The module is built in build/module, a symlink mirror of Kbuild and rust/,
# because 6.12's Kbuild writes objects next to the sources for M= builds.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-build}
kdir=${KDIR:-$top/build/kernel-debug}
mod=${MODDIR:-$top/build/module}
src=${SRC:-$top}
tools=$top/build/tools
rust_lib=$(ls -d /usr/src/rustc-*/library | head -n1)

[ -f "$kdir/Module.symvers" ] || { echo "build-module: no kernel in $kdir (make kernel)" >&2; exit 1; }

# Refresh the mirror: new files appear, deleted ones vanish.
mkdir -p "$mod/rust"
ln -sfn "$src/Kbuild" "$mod/Kbuild"
for f in "$src"/rust/*; do
	case "$f" in */host) continue ;; esac
	ln -sfn "$f" "$mod/rust/$(basename "$f")"
done
find "$mod" -xtype l -delete

kmake=(make -s -C "$kdir" M="$mod" LLVM=-19
       RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
       BINDGEN="$tools/bin/bindgen" RUST_LIB_SRC="$rust_lib")
export LIBCLANG_PATH=/usr/lib/llvm-19/lib

case "$mode" in
build)
	"${kmake[@]}" -j"$(nproc)" KCFLAGS=-Werror \
		KRUSTFLAGS="-Dwarnings ${RVFIO_RUSTFLAGS:-}" modules
	;;
lint)
	# Debian's rustfmt-web and rust-web-clippy (scripts/deps.sh), matching
	# the kernel's own rules (.rustfmt.toml, CLIPPY=1 lints).
	echo "lint: rustfmt --check"
	/usr/bin/rustfmt --edition 2021 --config-path "$kdir/source/.rustfmt.toml" \
		--check "$top"/rust/*.rs "$top"/rust/host/src/*.rs
	echo "lint: clippy"
	touch "$top/rust/rvfio_main.rs"
	"${kmake[@]}" -j"$(nproc)" CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver \
		KRUSTFLAGS=-Dwarnings modules
	echo "lint: clean"
	;;
*)
	echo "usage: $0 [build|lint]" >&2; exit 2 ;;
esac
