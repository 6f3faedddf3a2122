#!/bin/sh
# The sample KVM VMM (samples/kvm-vmm) on a real KVM: Linux 6.12 built
# with KVM (config-fragment-kvm) booted under QEMU's software emulation,
# whose CPU offers SVM, so that KVM runs nested inside it. In the guest,
# the sample migrates its own KVM guest in one process (vmig-kvm-vmm
# local) and between two (tests/e2e/kvm-vmm.sh over a unix socket): the
# vCPU's registers travel as a vmig state section and the guest must
# continue from the exact instruction where it stopped.
#
# Usage: run-kvm.sh BUILD_DIR (bin/vmig-kvm-vmm, lib/libvmig.so)
# Environment: VMIG_KVM_KERNEL (a bzImage with KVM; else get-kernel.sh
# builds or finds one), VMIG_LAB_BOOT_TIMEOUT (default 600), VMIG_QEMU.
# Exit status 0 when both migrations passed; 77 without QEMU or a static
# busybox (for CTest to skip).
set -eu

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
work="$build/kernel-kvm"
boot_timeout=${VMIG_LAB_BOOT_TIMEOUT:-600}
qemu=${VMIG_QEMU:-qemu-system-x86_64}

say() {
	echo "kvm lab: $*"
}

"$here/../../scripts/install-deps.sh" >&2 || true
if ! command -v "$qemu" >/dev/null 2>&1; then
	say "$qemu not found: scripts/install-deps.sh qemu-system-x86"
	exit 77
fi
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
	say "no static /bin/busybox: scripts/install-deps.sh busybox-static"
	exit 77
fi
[ -x "$build/bin/vmig-kvm-vmm" ] || { say "vmig-kvm-vmm: not built"; exit 1; }

mkdir -p "$work"
kernel=${VMIG_KVM_KERNEL:-$(VMIG_KERNEL_FRAGMENT="$here/config-fragment-kvm" \
	"$here/get-kernel.sh")}
say "kernel $kernel"
"$here/mkinitramfs.sh" "$build" "$work/initramfs.gz"

console="$work/console"
out="$work/ttyS1"
rm -f "$console" "$out"
start=$(date +%s)
rc=0
timeout -k 10 "$boot_timeout" "$qemu" -accel tcg -cpu max -m 1G \
	-machine q35 -nographic -no-reboot -monitor none \
	-kernel "$kernel" -initrd "$work/initramfs.gz" \
	-append "console=ttyS0 panic=-1 no_timer_check vmig.boot=kvm" \
	-serial "file:$console" -serial "file:$out" \
	</dev/null >"$work/qemu.out" 2>&1 || rc=$?
took=$(($(date +%s) - start))
tr -d '\r' <"$out" >"$work/result" 2>/dev/null || true
cat "$work/result"
if ! grep -q '^VMIG-LAB-EXIT:' "$work/result"; then
	say "the boot did not finish (QEMU exit $rc, ${took}s); console tail:"
	tail -n 40 "$console" 2>/dev/null | tr -d '\r'
	exit 1
fi
fails=0
for t in LOCAL TWO-PROCESSES; do
	r=$(sed -n "s/^KVM-$t-EXIT: //p" "$work/result")
	say "$t: exit ${r:-none}"
	[ "$r" = 0 ] || fails=$((fails + 1))
done
say "${took}s, $fails failed"
[ "$fails" -eq 0 ]
