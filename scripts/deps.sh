#!/usr/bin/env bash
# Install everything rvfio needs on a Debian 12 (bookworm) machine, idempotently.
#   - apt packages: Debian's Rust 1.96 (rustc-web, rust-web-src), clang/lld/llvm 19,
#     the kernel source, kernel build tools, busybox for the initramfs;
#   - QEMU 10.0 from bookworm-backports (bookworm's 7.2 edu device aborts on bad DMA);
#   - bindgen-cli at a pinned version, into build/tools (not a global cargo dir).
# A stamp file records what was installed so a second run costs a few ms.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
tools="$build/tools"
mkdir -p "$tools"

BINDGEN_VERSION=0.73.2
APT_PKGS=(rustc-web rust-web-src clang-19 lld-19 llvm-19 libclang-19-dev
	  flex bison bc libelf-dev libssl-dev cpio busybox-static kmod pahole
	  make xz-utils linux-source-6.12 gcc libc6-dev python3 dwarves
	  rust-web-clippy rustfmt-web patch)
QEMU_PKGS=(qemu-system-x86)

stamp="$tools/deps.stamp"
want="bindgen=$BINDGEN_VERSION apt=${APT_PKGS[*]} qemu=${QEMU_PKGS[*]}"

have_all() {
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] || return 1
	dpkg-query -W -f='${Status}\n' "${APT_PKGS[@]}" "${QEMU_PKGS[@]}" 2>/dev/null |
		grep -qv 'install ok installed' && return 1
	[ -x "$tools/bin/bindgen" ] || return 1
	/usr/bin/qemu-system-x86_64 --version | grep -q 'version 10\.' || return 1
}
if have_all; then
	exit 0
fi

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

# bookworm-backports for QEMU 10: same mirror and keyring as the main entry.
bp=/etc/apt/sources.list.d/rvfio-bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$uri" ] || uri=http://deb.debian.org/debian
	$SUDO tee "$bp" >/dev/null <<EOS
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
fi

$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${APT_PKGS[@]}"
$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${QEMU_PKGS[@]}"

if ! "$tools/bin/bindgen" --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	cargo install --locked "bindgen-cli@$BINDGEN_VERSION" --root "$tools"
fi

echo "$want" >"$stamp"
echo "deps: all installed"
