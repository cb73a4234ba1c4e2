#!/usr/bin/env bash
# Build build/initramfs.cpio.gz: the whole userspace of the test VM.
#
# Contents (nothing from the host is needed at run time):
#   /bin/busybox + applet links     busybox-static from the host (/bin/busybox)
#   /init                           scripts/guest-init.sh
#   /lib/modules/<ver>/             the test kernel's modules (debug info stripped)
#                                   plus modules.dep from `depmod -b`
#   /rvfio/rvfio.ko                 build/module/rvfio.ko, when it exists
#   /selftests/*                    every executable in build/selftests/
#   /samples/*                      every executable in build/samples/
#   /samples-mdev/*.ko              sample mdev drivers from build/samples-mdev
#                                   (scripts/build-mdev-sample.sh), stripped
#
# The archive is rebuilt only when one of those inputs is newer than it, when
# the inputs' locations changed, or with FORCE=1; a rebuild takes about a
# second.
#
# Environment (defaults in brackets), for testing against other inputs:
#   KDIR [build/kernel-debug]   MODULE [build/module/rvfio.ko]
#   SELFTESTS_DIR [build/selftests]   SAMPLES_DIR [build/samples]
#   MDEV_SAMPLES_DIR [build/samples-mdev]
#   INITRAMFS [build/initramfs.cpio.gz]   BUSYBOX [/bin/busybox]
#   INIT [scripts/guest-init.sh]   the /init script (make bench uses
#                                   bench/bench-init.sh)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
kdir="${KDIR:-$build/kernel-debug}"
modroot="$kdir/modroot"
out="${INITRAMFS:-$build/initramfs.cpio.gz}"
stage="$out.d"
busybox=${BUSYBOX:-/bin/busybox}
init_src="${INIT:-$top/scripts/guest-init.sh}"
module="${MODULE:-$build/module/rvfio.ko}"
selftests="${SELFTESTS_DIR:-$build/selftests}"
samples="${SAMPLES_DIR:-$build/samples}"
mdev_samples="${MDEV_SAMPLES_DIR:-$build/samples-mdev}"

die() { echo "mkinitramfs: $*" >&2; exit 1; }

file "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	die "$busybox is not a static busybox (install busybox-static)"
[ -d "$modroot/lib/modules" ] ||
	die "no kernel modules in $modroot/lib/modules (build the kernel first)"
kver=$(ls "$modroot/lib/modules" | head -n1)
[ -n "$kver" ] || die "empty $modroot/lib/modules"

# Inputs whose change requires a rebuild. Directories are listed too, so a
# deleted file (which changes its directory's mtime) also triggers one.
inputs=("$busybox" "$init_src" "$0" "$modroot/lib/modules/$kver")
for d in "$(dirname "$module")" "$selftests" "$samples" "$mdev_samples"; do
	[ -d "$d" ] && inputs+=("$d")
done
[ -f "$module" ] && inputs+=("$module")
for f in "$mdev_samples"/*.ko; do
	[ -f "$f" ] && inputs+=("$f")
done
where="kdir=$kdir module=$module selftests=$selftests samples=$samples busybox=$busybox"
where+=" mdev_samples=$mdev_samples"
[ -n "${INIT:-}" ] && where+=" init=$init_src"
if [ "${FORCE:-0}" != 1 ] && [ -f "$out" ] &&
	[ "$(cat "$out.inputs" 2>/dev/null)" = "$where" ] &&
	[ -z "$(find "${inputs[@]}" -newer "$out" -print -quit 2>/dev/null)" ]; then
	exit 0
fi

rm -rf "$stage"
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,mnt,root,etc,lib/modules,rvfio,selftests,samples,samples-mdev}
ln -s bin "$stage/sbin"
mkdir -p "$stage/usr"
ln -s ../bin "$stage/usr/bin"
ln -s ../bin "$stage/usr/sbin"

# busybox and one link per applet, all in /bin.
cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$stage/bin/$applet"
done

install -m 0755 "$init_src" "$stage/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$stage/etc/passwd"
echo "root:x:0:" >"$stage/etc/group"

# Kernel modules. Debug info is stripped (as INSTALL_MOD_STRIP=1 would), which
# keeps the archive small and gzip fast; kallsyms still names functions in
# backtraces. Compressed modules are unpacked so busybox insmod needs no
# decompressor.
strip=$(command -v llvm-strip-19 || command -v strip)
src_mods="$modroot/lib/modules/$kver"
dst_mods="$stage/lib/modules/$kver"
mkdir -p "$dst_mods"
(cd "$src_mods" && find . -name '*.ko*' -print0) | while IFS= read -r -d '' m; do
	mkdir -p "$dst_mods/$(dirname "$m")"
	case "$m" in
	*.ko) cp "$src_mods/$m" "$dst_mods/$m" ;;
	*.ko.xz) xz -dc "$src_mods/$m" >"$dst_mods/${m%.xz}" ;;
	*.ko.gz) gzip -dc "$src_mods/$m" >"$dst_mods/${m%.gz}" ;;
	*.ko.zst) zstd -qdc "$src_mods/$m" >"$dst_mods/${m%.zst}" ;;
	*) continue ;;
	esac
done
find "$dst_mods" -name '*.ko' -exec "$strip" --strip-debug {} +
for f in modules.order modules.builtin modules.builtin.modinfo; do
	[ -f "$src_mods/$f" ] && cp "$src_mods/$f" "$dst_mods/"
done
/sbin/depmod -b "$stage" "$kver"

# The module under test: stripped the same way. The unstripped original stays
# in build/module for addr2line.
if [ -f "$module" ]; then
	cp "$module" "$stage/rvfio/rvfio.ko"
	"$strip" --strip-debug "$stage/rvfio/rvfio.ko"
fi

# Test programs: every regular executable file at the top of each directory.
copy_execs() {
	local from=$1 to=$2 f
	[ -d "$from" ] || return 0
	for f in "$from"/*; do
		[ -f "$f" ] && [ -x "$f" ] && cp "$f" "$to/"
	done
	return 0
}
copy_execs "$selftests" "$stage/selftests"
copy_execs "$samples" "$stage/samples"

# Sample mdev drivers (out-of-tree .ko files), stripped like the rest.
for f in "$mdev_samples"/*.ko; do
	[ -f "$f" ] || continue
	cp "$f" "$stage/samples-mdev/"
	"$strip" --strip-debug "$stage/samples-mdev/${f##*/}"
done

tmp="$out.tmp.$$"
(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner=0:0 --quiet) | gzip -1 >"$tmp"
mv "$tmp" "$out"
echo "$where" >"$out.inputs"
echo "mkinitramfs: $(du -h "$out" | cut -f1) $out (kernel $kver," \
	"rvfio.ko: $([ -f "$stage/rvfio/rvfio.ko" ] && echo yes || echo no)," \
	"selftests: $(ls "$stage/selftests" | wc -l), samples: $(ls "$stage/samples" | wc -l)," \
	"mdev samples: $(ls "$stage/samples-mdev" | wc -l))"
