#!/bin/sh
# Installs the Debian 12 packages vmig needs, if any are missing.
# Usage: scripts/install-deps.sh [extra packages...]
# Runs apt-get through sudo when not root; refreshes the package lists
# only when an install fails without them.
set -eu

# Besides the build, every program a script of the tree calls that a fresh
# Debian 12 lacks, whichever path a run takes: QEMU (qemu-system-x86_64,
# kvm), a static busybox and cpio for the kernel lab; flex, bison, bc, the
# libelf and libssl headers and xz for a test kernel built from source
# (tests/kernel/get-kernel.sh, when no copy is cached); dash (sh) for the
# scripts themselves.
pkgs="build-essential cmake pkg-config libuv1-dev libcjson-dev libcunit1-dev
libgnutls28-dev qemu-system-x86 busybox-static cpio flex bison bc libelf-dev
libssl-dev xz-utils dash $*"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	sudo=""
else
	sudo="sudo"
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$sudo apt-get install -y --no-install-recommends $missing ||
	{ $sudo apt-get update && $sudo apt-get install -y --no-install-recommends $missing; }
