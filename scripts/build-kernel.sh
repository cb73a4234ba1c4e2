#!/usr/bin/env bash
# Build rvfio's test kernel:  scripts/build-kernel.sh FLAVOUR   (debug | perf)
#
#   source  /usr/src/linux-source-6.12.tar.xz (Debian's patched 6.12), unpacked
#           once into build/linux-src (re-unpacked when the package version changes)
#   objdir  build/kernel-FLAVOUR  (O= build; the source tree stays clean)
#   config  tinyconfig + kernel/configs/kvm_guest.config + the flavour's fragments
#           from scripts/kconfig/, then olddefconfig; every line of the fragments
#           is checked against the final .config and the build fails on a mismatch
#   output  objdir/arch/x86/boot/bzImage, objdir/Module.symvers and rust/ (for the
#           out-of-tree module), objdir/modroot/lib/modules/VERSION (stripped
#           modules), objdir/usr/include (uapi headers for the selftests)
#   log     build/kernel-FLAVOUR.log (its tail is printed on failure)
#
# Nothing is redone unless a fragment, this script, the toolchain (see
# scripts/toolchain.mk) or the kernel source version changed: a stamp in the
# objdir holds a hash of all of them.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self="$top/scripts/build-kernel.sh"
build="$top/build"
kconfdir="$top/scripts/kconfig"

flavour=${1:-}
# Fragments per flavour, merged in this order (a later one wins).
case "$flavour" in
debug)	fragments=(base.config debug.config) ;;
perf)	fragments=(base.config perf.config) ;;
*)	echo "usage: $0 debug|perf" >&2; exit 2 ;;
esac

src_tar=/usr/src/linux-source-6.12.tar.xz
src_pkg=linux-source-6.12
src="$build/linux-src"
obj="$build/kernel-$flavour"
log="$build/kernel-$flavour.log"
stamp="$obj/.rvfio-build-stamp"
say() { echo "kernel($flavour): $*"; }

# Being run from the top-level make must not leak its flags or command-line
# variables (O=, V=, -j jobserver...) into the kernel's make.
unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL GNUMAKEFLAGS

# Toolchain variables: one source of truth, scripts/toolchain.mk.
toolchain_vars=$(make -s --no-print-directory -f - TOP="$top" print <<'EOF'
include $(TOP)/scripts/toolchain.mk
print: ; @echo '$(KMAKE_TOOLCHAIN)'; echo '$(LIBCLANG_PATH)'
EOF
)
read -ra toolchain <<<"$(sed -n 1p <<<"$toolchain_vars")"
LIBCLANG_PATH=$(sed -n 2p <<<"$toolchain_vars")
export LIBCLANG_PATH

src_ver=$(dpkg-query -W -f='${Version}' "$src_pkg" 2>/dev/null) || {
	echo "kernel($flavour): package $src_pkg is not installed; run scripts/deps.sh" >&2
	exit 1
}

# Test-kernel patches (scripts/kernel-patches/, Documentation/testing.rst),
# applied in name order to the shared source tree.
patchdir="$top/scripts/kernel-patches"
patches=()
for p in "$patchdir"/*.patch; do [ -f "$p" ] && patches+=("$p"); done

frag_paths=()
for f in "${fragments[@]}"; do frag_paths+=("$kconfdir/$f"); done

# What the build depends on besides the kernel sources themselves. Paths are
# relative to the checkout, so a second worktree whose build/ links to this
# objdir sees the same hash.
want=$({
	echo "flavour=$flavour source=$src_pkg=$src_ver"
	echo "toolchain=${toolchain[*]} LIBCLANG_PATH=$LIBCLANG_PATH"
	dpkg-query -W -f='${Package}=${Version}\n' rustc-web rust-web-src clang-19 lld-19 llvm-19 2>/dev/null || true
	for f in "$self" "${frag_paths[@]}" "${patches[@]}"; do echo "== $f"; cat "$f"; done
} | sed "s#$top#TOP#g" | sha256sum | cut -d' ' -f1)

up_to_date() {
	[ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
		[ -f "$obj/arch/x86/boot/bzImage" ] && [ -f "$obj/Module.symvers" ] &&
		[ -d "$obj/modroot/lib/modules" ] && [ -f "$obj/usr/include/linux/vfio.h" ]
}

mkdir -p "$build"
# Serialise concurrent builds of the same flavour (make kernel from two shells).
exec 9>"$build/.kernel-$flavour.lock"
if ! flock -n 9; then
	say "waiting for another build of this flavour"
	flock 9
fi
if up_to_date; then
	exit 0
fi

# Run a step with its output in the log; on failure show where it broke.
step() {
	local what=$1; shift
	echo "### $what: $*" >>"$log"
	if ! "$@" >>"$log" 2>&1; then
		say "FAILED: $what (full log: $log)"
		grep -nE '(error|Error [0-9]+)' "$log" | grep -v 'Werror' | tail -n 15 >&2 || true
		echo "--- last lines of $log ---" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
}
kmake() { make -C "$src" O="$obj" "${toolchain[@]}" "$@"; }

start=$SECONDS
: >"$log"
echo "### kernel build, flavour $flavour, $(date -u +%FT%TZ), hash $want" >>"$log"

# Preconditions: the toolchain deps.sh installs.
for v in "${toolchain[@]}"; do
	case "$v" in
	RUST_LIB_SRC=) say "no /usr/src/rustc-*/library (rust-web-src); run scripts/deps.sh" >&2; exit 1 ;;
	BINDGEN=*|RUSTC=*|RUSTDOC=*)
		[ -x "${v#*=}" ] || { say "${v#*=} missing; run scripts/deps.sh" >&2; exit 1; } ;;
	esac
done
[ -f "$src_tar" ] || { say "$src_tar missing; run scripts/deps.sh" >&2; exit 1; }

# 1. Source tree, unpacked once per package version.  Shared by all flavours.
exec 8>"$build/.linux-src.lock"
flock 8
if [ "$(cat "$src/.rvfio-src-version" 2>/dev/null)" != "$src_ver" ]; then
	say "unpacking $src_pkg $src_ver into $src"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	step "unpack" tar -xJf "$src_tar" -C "$src.tmp" --strip-components=1
	echo "$src_ver" >"$src.tmp/.rvfio-src-version"
	mv "$src.tmp" "$src"
fi
# Patches: the ones applied are kept in $src/.rvfio-patches; when the set in
# the repository differs, the old ones are reversed (newest first) and the new
# ones applied. patch(1) gives every file it touches a new mtime, so make
# rebuilds exactly what changed.
applied="$src/.rvfio-patches"
mkdir -p "$applied"
if ! diff -rq "$applied" "$patchdir" >/dev/null 2>&1; then
	for p in $(ls -r "$applied"/*.patch 2>/dev/null); do
		say "reversing $(basename "$p")"
		step "reverse $(basename "$p")" patch -d "$src" -p1 -R -s -i "$p"
		rm -f "$p"
	done
	for p in "${patches[@]}"; do
		say "applying $(basename "$p")"
		step "apply $(basename "$p")" patch -d "$src" -p1 -N -s -i "$p"
		cp "$p" "$applied/"
	done
fi
flock -u 8
# Objects built from another source version are not trustworthy (tar keeps the
# archive's old mtimes, so make would not notice): start that objdir afresh.
if [ -d "$obj" ] && [ "$(cat "$obj/.rvfio-src-version" 2>/dev/null)" != "$src_ver" ]; then
	say "source version changed: removing $obj"
	rm -rf "$obj"
fi
mkdir -p "$obj"
echo "$src_ver" >"$obj/.rvfio-src-version"
rm -f "$stamp"

# 2. Configuration.  The toolchain variables matter here too: Kconfig's
# RUST_IS_AVAILABLE runs the Rust toolchain check.
say "configuring (${fragments[*]})"
step "tinyconfig" kmake tinyconfig
step "merge_config" bash -c 'cd "$1" && shift && exec "$@"' _ "$obj" \
	"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" \
	"$src/kernel/configs/kvm_guest.config" "${frag_paths[@]}"
step "olddefconfig" kmake olddefconfig

# Every option a fragment asks for must have survived olddefconfig (Kconfig
# silently drops what a dependency forbids).  "is not set" and an absent
# symbol both count as n.
if ! mismatches=$(awk -v cfg="$obj/.config" '
	function val(line) { sub(/^[^=]*=/, "", line); return line }
	/^CONFIG_[A-Za-z0-9_]+=/ { name = $0; sub(/=.*/, "", name); v = val($0) }
	/^# CONFIG_[A-Za-z0-9_]+ is not set$/ { name = $2; v = "n" }
	!/^CONFIG_[A-Za-z0-9_]+=/ && !/^# CONFIG_[A-Za-z0-9_]+ is not set$/ { next }
	FILENAME == cfg { got[name] = v; next }
	{ want[name] = v; from[name] = FILENAME }
	END {
		bad = 0
		for (k in want) {
			g = (k in got) ? got[k] : "n"
			if (g != want[k]) {
				shown = (k in got) ? g : "n (absent)"
				n = split(from[k], p, "/")
				printf "  %-40s requested %s, got %s   [%s]\n", k, want[k], shown, p[n]
				bad = 1
			}
		}
		exit bad
	}' "${frag_paths[@]}" "$obj/.config" | sort); then
	say "FAILED: options requested by the fragments did not survive olddefconfig:"
	echo "$mismatches" >&2
	echo "  (final config: $obj/.config; check the options' Kconfig 'depends on')" >&2
	exit 1
fi

# 3. Build, install the modules (stripped) and the uapi headers.
say "building bzImage + modules with -j$(nproc) (log: $log)"
step "build" kmake -j"$(nproc)" bzImage modules
rm -rf "$obj/modroot"
step "modules_install" kmake modules_install INSTALL_MOD_PATH="$obj/modroot" INSTALL_MOD_STRIP=1
# The uapi headers land in $obj/usr/include.  That is exactly where
# headers_install would put them (INSTALL_HDR_PATH defaults to $(objtree)/usr),
# and headers_install there is only an rsync of that directory onto itself, so
# `headers` does the job without needing rsync.
step "headers" kmake headers

echo "$want" >"$stamp"
elapsed=$((SECONDS - start))
say "built in $((elapsed / 60))m$((elapsed % 60))s: $obj/arch/x86/boot/bzImage ($(kmake -s kernelrelease 2>/dev/null))"
