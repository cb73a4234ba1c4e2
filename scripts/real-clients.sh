#!/usr/bin/env bash
# Host side of `make real-clients` (Documentation/testing.rst, "Real clients"):
# real, unmodified VFIO clients for the test VM.
#
#   scripts/real-clients.sh build          all of the below; each step is
#                                          skipped when its output is current
#   scripts/real-clients.sh fetch          the Debian .debs (cached, checksummed)
#   scripts/real-clients.sh lint           rustfmt and clippy (warnings are
#                                          errors) of samples/real-clients
#   scripts/real-clients.sh initrd OUT BASE
#                                          build, then OUT = BASE (the main
#                                          initramfs) followed by the overlay
#                                          archive (the kernel unpacks
#                                          concatenated cpio archives in turn)
#
# What goes into the overlay (build/real-clients/overlay.cpio.gz):
#   /realclients/root/       a Debian root for chroot: DPDK 22.11 (dpdk-dev's
#                            dpdk-testpmd, its libraries and the net_e1000 and
#                            mempool_ring plugins) and QEMU 10.0 from
#                            bookworm-backports (qemu-system-x86_64, seabios,
#                            its libraries), unpacked with dpkg-deb -x from the
#                            .debs below, with documentation and the unused
#                            QEMU binaries left out
#   /realclients/bin/        vfio-ioctls-client and qemu-qtest-edu, static
#                            (samples/real-clients, built with cargo from
#                            crates.io and the committed Cargo.lock)
#   /selftests/real_clients_test   scripts/guest-real-clients.sh, run by the
#                            guest init per backend like the selftests
#
# Downloads: `apt-get download` of the exact packages named below (installing
# dpdk-dev on the host would pull systemd and udev), at the versions apt's
# package lists offer. Each file's SHA256 must match the one apt's (signed)
# lists give for it, when downloaded and every later time it is used; the
# list of files and checksums is kept in build/real-clients/debs/MANIFEST, so
# a second run needs no network. The Rust clients' crates come from crates.io
# through cargo's own cache (~/.cargo), also offline once fetched.
#
# Environment: REAL_CLIENTS_DIR [build/real-clients]; CARGO [cargo, the rustup
# toolchain on PATH].
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"
rc="${REAL_CLIENTS_DIR:-$build/real-clients}"
debs="$rc/debs"
overlay="$rc/overlay.d"
root="$overlay/realclients/root"
bindir="$overlay/realclients/bin"
crates="$top/samples/real-clients"
cargo=${CARGO:-cargo}

# glibc and libgcc_s (glibc's pthread_cancel dlopens it) for both clients.
BASE_PKGS=(libc6 libgcc-s1)
# dpdk-testpmd lives in dpdk-dev. These are the packages that own a file of
# its shared-library closure (readelf NEEDED, RUNPATH) plus the two plugins
# the test needs: librte-net-e1000-23 (net_e1000_em, the emulated e1000e)
# and librte-mempool-ring23 (the default mempool handler). The closure is
# checked after unpacking, so a missing package is named, not guessed at.
DPDK_PKGS=(dpdk-dev ibverbs-providers libbsd0 libcap2 libdbus-1-3 libelf1 libfdt1
	libgcrypt20 libgpg-error0 libibverbs1 libjansson4 liblz4-1 liblzma5 libmd0
	libnl-3-200 libnl-route-3-200 libnuma1 libpcap0.8 libsystemd0 libzstd1 zlib1g
	librte-bitratestats23 librte-bpf23 librte-bus-auxiliary23 librte-bus-dpaa23
	librte-bus-pci23 librte-bus-vdev23 librte-cmdline23 librte-common-dpaax23
	librte-common-iavf23 librte-common-mlx5-23 librte-crypto-scheduler23
	librte-cryptodev23 librte-eal23 librte-ethdev23 librte-eventdev23 librte-gro23
	librte-gso23 librte-hash23 librte-ip-frag23 librte-kvargs23 librte-latencystats23
	librte-mbuf23 librte-mempool-dpaa23 librte-mempool-ring23 librte-mempool23
	librte-meter23 librte-metrics23 librte-net-bnxt23 librte-net-bond23
	librte-net-dpaa23 librte-net-e1000-23 librte-net-i40e23 librte-net-ice23
	librte-net-ixgbe23 librte-net-mlx5-23 librte-net23 librte-pcapng23 librte-pci23
	librte-pdump23 librte-rcu23 librte-reorder23 librte-ring23 librte-sched23
	librte-security23 librte-telemetry23 librte-timer23)
# QEMU 10.0 as the host runs it (bookworm-backports; bookworm has 7.2), the
# firmware it loads for q35 (seabios, also from backports, as qemu-system-x86
# requires) and the libraries of `ldd qemu-system-x86_64` (bookworm's).
QEMU_PKGS=(qemu-system-x86/bookworm-backports qemu-system-data/bookworm-backports
	seabios/bookworm-backports
	libaio1 libblkid1 libbpf1 libcapstone4 libdaxctl1 libffi8 libfuse3-3
	libglib2.0-0 libgmp10 libgnutls30 libhogweed6 libidn2-0 libjpeg62-turbo libkmod2
	libmount1 libndctl6 libnettle8 libp11-kit0 libpcre2-8-0 libpixman-1-0 libpmem1
	libpng16-16 librdmacm1 libsasl2-2 libseccomp2 libselinux1 libslirp0 libssl3
	libtasn1-6 libudev1 libunistring2 liburing2 libuuid1 libvdeplug2)
# Versions the test is about; a package list offering others is an error.
VERSION_CHECKS=("dpdk-dev 22.11." "qemu-system-x86 1:10.0.")
# Left out of the chroot: documentation, locales, headers, and the QEMU
# binaries not used (i386, microvm).
PRUNE=(usr/share/doc usr/share/man usr/share/info usr/share/locale usr/share/lintian
	usr/share/bug usr/share/bash-completion usr/share/doc-base usr/share/icons
	usr/share/applications usr/include usr/lib/x86_64-linux-gnu/gconv
	usr/bin/qemu-system-i386 usr/bin/qemu-system-x86_64-microvm usr/bin/dpdk-test)
# The programs whose library closure must resolve inside the chroot.
CLOSURE_ROOTS=(usr/bin/dpdk-testpmd usr/bin/qemu-system-x86_64
	"usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0/*.so*")

die() { echo "real-clients: $*" >&2; exit 1; }
note() { echo "real-clients: $*"; }

all_specs() { printf '%s\n' "${BASE_PKGS[@]}" "${DPDK_PKGS[@]}" "${QEMU_PKGS[@]}" | awk '!seen[$0]++'; }

# Verify FILE against SHA256.
verify() {
	[ -f "$debs/$1" ] && [ "$(sha256sum "$debs/$1" | cut -d' ' -f1)" = "$2" ]
}

# fetch: resolve every package spec with `apt-get download --print-uris`
# (apt's lists: file name and SHA256, no network), download what the cache
# lacks, verify everything, write MANIFEST ("spec file sha256" lines).
fetch() {
	local spec pkg line file sha old uris need=() n=0 cached=0 new="$debs/MANIFEST.new"
	mkdir -p "$debs"
	: >"$new"
	# One apt run for all (each costs about half a second); lines are
	# "'URI' FILE SIZE SHA256:HASH", FILE starting with "PACKAGE_".
	uris=$(all_specs | xargs apt-get download --print-uris 2>/dev/null || true)
	while read -r spec; do
		pkg=${spec%%/*}
		line=$(awk -v p="${pkg}_" 'index($2, p) == 1' <<<"$uris" | tail -n1)
		if [ -n "$line" ]; then
			file=$(awk '{print $2}' <<<"$line")
			sha=$(awk '{print $4}' <<<"$line")
			sha=${sha#SHA256:}
			[ ${#sha} = 64 ] || die "apt gives no SHA256 for $spec: $line"
		else
			# No package lists (or the package left them): the cached
			# copy from an earlier run, if it still verifies.
			old=$(awk -v s="$spec" '$1 == s' "$debs/MANIFEST" 2>/dev/null || true)
			[ -n "$old" ] || die "apt-get download --print-uris $spec failed and nothing" \
				"is cached: run scripts/deps.sh (apt-get update) first"
			file=$(awk '{print $2}' <<<"$old")
			sha=$(awk '{print $3}' <<<"$old")
			cached=$((cached + 1))
		fi
		verify "$file" "$sha" || need+=("$spec")
		echo "$spec $file $sha" >>"$new"
		n=$((n + 1))
	done < <(all_specs)
	[ $cached = 0 ] || note "$cached of $n packages not in apt's lists: using the cached files"
	if [ ${#need[@]} -gt 0 ]; then
		note "downloading ${#need[@]} of $n packages into $debs"
		# apt's sandbox user could not write into build/; the files are
		# verified below either way.
		(cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "${need[@]}") >/dev/null ||
			die "apt-get download failed"
	fi
	while read -r spec file sha; do
		verify "$file" "$sha" || die "$file: SHA256 does not match apt's ($sha)"
	done <"$new"
	for c in "${VERSION_CHECKS[@]}"; do
		set -- $c
		awk -v p="$1" -v v="$2" '{n = $1; sub("/.*", "", n); if (n == p) {
			f = $2; sub("^[^_]*_", "", f); sub("_.*", "", f); gsub("%3a", ":", f)
			if (index(f, v) != 1) { print p " is " f ", not " v "*"; bad = 1 } } }
			END { exit bad }' "$new" || die "unexpected version"
	done
	# Drop superseded files from the cache.
	for file in "$debs"/*.deb; do
		[ -e "$file" ] || continue
		awk -v f="${file##*/}" '$2 == f {found = 1} END {exit !found}' "$new" || rm -f "$file"
	done
	if ! cmp -s "$new" "$debs/MANIFEST"; then
		mv "$new" "$debs/MANIFEST"
	else
		rm -f "$new"
	fi
}

# closure ROOT PATTERN...: every NEEDED library of the given ELF files (and
# of their libraries, transitively) must resolve inside ROOT, through the
# Debian library directories or the file's RUNPATH.
closure() {
	python3 - "$@" <<'EOF'
import glob, os, subprocess, sys
root, pats = sys.argv[1], sys.argv[2:]
dirs = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib"]
def dyn(path):
    out = subprocess.run(["readelf", "-dW", path], capture_output=True, text=True).stdout
    needed, runpath = [], []
    for l in out.splitlines():
        if "(NEEDED)" in l:
            needed.append(l.split("[", 1)[1].rstrip("]"))
        elif "(RUNPATH)" in l or "(RPATH)" in l:
            runpath += l.split("[", 1)[1].rstrip("]").split(":")
    return needed, runpath
def inroot(p):
    # Resolve symlinks as the chroot would (absolute ones relative to root).
    for _ in range(40):
        if not os.path.islink(p):
            return p
        t = os.readlink(p)
        p = root + t if t.startswith("/") else os.path.join(os.path.dirname(p), t)
    return p
todo, seen, missing = [], set(), []
for pat in pats:
    hits = glob.glob(os.path.join(root, pat))
    if not hits:
        missing.append(f"{pat}: not in the chroot")
    todo += hits
while todo:
    p = inroot(todo.pop())
    if p in seen:
        continue
    seen.add(p)
    needed, runpath = dyn(p)
    for so in needed:
        for d in runpath + dirs:
            q = root + d + "/" + so
            if os.path.lexists(q) and os.path.exists(inroot(q)):
                todo.append(q)
                break
        else:
            missing.append(f"{so} (needed by {p[len(root):]})")
for m in missing:
    print("real-clients: missing in the chroot:", m, file=sys.stderr)
print(f"real-clients: library closure: {len(seen)} ELF files resolve inside the chroot")
sys.exit(1 if missing else 0)
EOF
}

# stage: unpack every .deb of MANIFEST into the chroot, prune, check. Redone
# only when MANIFEST or this script changed.
stage() {
	local want tmp file spec sha p
	want="$(sha256sum "$debs/MANIFEST" "$0" | cut -d' ' -f1 | tr '\n' ' ')"
	if [ -d "$root" ] && [ "$(cat "$rc/root.stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	note "unpacking $(wc -l <"$debs/MANIFEST") packages into $root"
	tmp="$root.tmp"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	while read -r spec file sha; do
		verify "$file" "$sha" || die "$file changed since it was verified"
		dpkg-deb -x "$debs/$file" "$tmp"
	done <"$debs/MANIFEST"
	for p in "${PRUNE[@]}"; do
		rm -rf "${tmp:?}/$p"
	done
	# Mount points and runtime directories the guest script fills.
	mkdir -p "$tmp"/{dev,proc,sys,tmp,run,var}
	[ -e "$tmp/var/run" ] || ln -s ../run "$tmp/var/run"
	[ -f "$tmp/usr/share/seabios/bios-256k.bin" ] || die "no bios-256k.bin (seabios) in the chroot"
	closure "$tmp" "${CLOSURE_ROOTS[@]}" || die "library closure incomplete: add the packages above"
	rm -rf "$root"
	mkdir -p "$(dirname "$root")"
	mv "$tmp" "$root"
	echo "$want" >"$rc/root.stamp"
	note "chroot: $(du -sh "$root" | cut -f1)"
}

# clients: the two Rust programs, static (glibc, crt-static), crates.io only,
# exactly the versions of the committed Cargo.lock.
clients() {
	local t="$rc/target" b
	mkdir -p "$bindir"
	(cd "$crates" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$t" \
		"$cargo" build --quiet --release --locked --target x86_64-unknown-linux-gnu) ||
		die "cargo build in $crates failed"
	for b in vfio-ioctls-client qemu-qtest-edu; do
		file "$t/x86_64-unknown-linux-gnu/release/$b" | grep -q 'static' ||
			die "$b is not statically linked"
		cmp -s "$t/x86_64-unknown-linux-gnu/release/$b" "$bindir/$b" ||
			install -m 0755 "$t/x86_64-unknown-linux-gnu/release/$b" "$bindir/$b"
	done
}

# archive: overlay.d as a gzip'd newc cpio, when anything in it is newer.
archive() {
	local out="$rc/overlay.cpio.gz" tmp
	mkdir -p "$overlay/selftests"
	cmp -s "$top/scripts/guest-real-clients.sh" "$overlay/selftests/real_clients_test" ||
		install -m 0755 "$top/scripts/guest-real-clients.sh" "$overlay/selftests/real_clients_test"
	if [ -f "$out" ] && [ -z "$(find "$overlay" "$rc/root.stamp" -newer "$out" -print -quit)" ]; then
		return 0
	fi
	tmp="$out.tmp.$$"
	(cd "$overlay" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet) | gzip -1 >"$tmp"
	mv "$tmp" "$out"
	note "overlay: $(du -h "$out" | cut -f1) $out"
}

lint() {
	(cd "$crates" && "$cargo" fmt --check &&
		RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$rc/target" \
		"$cargo" clippy --quiet --release --locked --target x86_64-unknown-linux-gnu -- \
		-D warnings -W clippy::undocumented_unsafe_blocks) ||
		die "lint of $crates failed"
}

build_all() {
	fetch
	stage
	clients
	archive
}

case "${1:-}" in
fetch) fetch ;;
build) build_all ;;
lint) lint ;;
initrd)
	[ $# = 3 ] || die "usage: $0 initrd OUT BASE"
	build_all
	[ -f "$3" ] || die "no base initramfs $3"
	# Rebuilt when either part changed, or the base is another file.
	inputs="$(realpath "$3") $(stat -c %Y "$3") $(stat -c %Y "$rc/overlay.cpio.gz")"
	if [ ! -f "$2" ] || [ "$(cat "$2.inputs" 2>/dev/null)" != "$inputs" ]; then
		cat "$3" "$rc/overlay.cpio.gz" >"$2.tmp"
		mv "$2.tmp" "$2"
		echo "$inputs" >"$2.inputs"
	fi
	;;
*)
	echo "usage: $0 build|fetch|lint|initrd OUT BASE" >&2
	exit 2
	;;
esac
