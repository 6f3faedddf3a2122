#!/bin/sh
# Builds the kernel lab's initramfs (newc cpio, gzip):
#   /init                      lab-init.sh
#   /bin/busybox               Debian's busybox-static
#   /opt/vmig/bin/vmig-lab     the lab program, dynamically linked
#   /opt/vmig/lib/             libvmig, where the loader finds its plugins
#   /opt/vmig/lib/vmig/plugins the plugins
#   /opt/vmig/bin/vmig-kvm-vmm the sample KVM VMM and kvm-vmm.sh, when
#                              built (run-kvm.sh boots them)
#   and every other shared library ldd names, at the path ldd gives.
# Usage: mkinitramfs.sh BUILD_DIR OUTPUT
set -eu

[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR OUTPUT" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
output=$2
lab="$build/bin/vmig-lab"
plugins="$build/lib/vmig/plugins"
busybox=${VMIG_BUSYBOX:-/bin/busybox}

die() {
	echo "mkinitramfs: $*" >&2
	exit 1
}

[ -x "$lab" ] || die "$lab: not built"
[ -d "$plugins" ] || die "$plugins: no plugins built"
[ -x "$busybox" ] || die "$busybox: missing (install busybox-static)"
for tool in cpio gzip ldd; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool: not found (scripts/install-deps.sh cpio installs it)"
done
# The static busybox is the only program that runs before any library is
# there; a dynamic one would fail in the guest with a bare "not found".
if ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked (install busybox-static)"
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/vmig-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
mkdir -p "$stage/bin" "$stage/dev" "$stage/proc" "$stage/sys" \
	"$stage/tmp" "$stage/opt/vmig/bin" "$stage/opt/vmig/lib/vmig/plugins"
cp "$busybox" "$stage/bin/busybox"
cp "$here/lab-init.sh" "$stage/init"
chmod 755 "$stage/init"
cp "$lab" "$stage/opt/vmig/bin/vmig-lab"
cp "$plugins"/*.so "$stage/opt/vmig/lib/vmig/plugins/"

# Copies the shared libraries an object needs. libvmig goes to
# /opt/vmig/lib (the plugins sit below it, found with dladdr); the
# system's libraries keep their paths, so the dynamic loader (whose path
# is written in every program) and its default search find them.
copy_libs() {
	ldd "$1" | while read -r line; do
		case "$line" in
		*"=> not found"*)
			die "$1: ${line%% *} not found"
			;;
		*"=> /"*)
			path=${line#*=> }
			path=${path%% (*}
			;;
		/*)
			path=${line%% (*}
			;;
		*)
			continue
			;;
		esac
		case "$path" in
		"$build"/*)
			dest="$stage/opt/vmig/lib/${path##*/}"
			;;
		*)
			dest="$stage$path"
			;;
		esac
		[ -e "$dest" ] && continue
		mkdir -p "$(dirname "$dest")"
		cp -L "$path" "$dest"
	done
}

copy_libs "$lab"
kvm="$build/bin/vmig-kvm-vmm"
if [ -x "$kvm" ]; then
	cp "$kvm" "$stage/opt/vmig/bin/vmig-kvm-vmm"
	cp "$here/../e2e/kvm-vmm.sh" "$stage/opt/vmig/bin/kvm-vmm.sh"
	copy_libs "$kvm"
fi
for p in "$plugins"/*.so; do
	copy_libs "$p"
done
[ -e "$stage/opt/vmig/lib/libvmig.so.0" ] ||
	[ -n "$(ls "$stage"/opt/vmig/lib/libvmig.so* 2>/dev/null)" ] ||
	die "$lab is not linked to libvmig"

# Each step writes a file of its own, so that a failing step stops the
# script here with its cause (sh has no pipefail: a pipeline would have
# gzip'ed cpio's empty output and reported success).
mkdir -p "$(dirname "$output")"
list="$stage.list"
archive="$stage.cpio"
trap 'rm -rf "$stage" "$list" "$archive"' EXIT INT TERM
(cd "$stage" && find . >"$list") || die "listing $stage failed"
LC_ALL=C sort -o "$list" "$list" || die "sorting the file list failed"
(cd "$stage" && cpio -o -H newc -R 0:0 --quiet <"$list" >"$archive") ||
	die "cpio failed to archive $stage"
[ -s "$archive" ] || die "cpio wrote an empty archive"
gzip -1 -c "$archive" >"$output.tmp.$$" || die "gzip failed"
mv -f "$output.tmp.$$" "$output"
