#!/bin/sh
# The kernel lab: runs vmig's plugins against Linux 6.12 under QEMU
# (software emulation), runs the same scenarios against the kernel
# simulator with the devices the guest had, and compares the two.
#
# Usage: run-lab.sh BUILD_DIR
#   BUILD_DIR holds bin/vmig-lab, lib/libvmig.so and lib/vmig/plugins.
# Environment:
#   VMIG_TEST_KERNEL        the bzImage to boot (else get-kernel.sh finds one)
#   VMIG_LAB_BOOTS          the boots to run (default "mock viommu")
#   VMIG_LAB_BOOT_TIMEOUT   seconds one boot may take (default 300)
#   VMIG_QEMU               the QEMU binary (default qemu-system-x86_64)
#
# Two boots, one QEMU at a time:
#   mock    -machine q35, no vIOMMU: iommufd's selftest mock domains;
#   viommu  an Intel vIOMMU, the edu device bound to vfio-pci and two mtty
#           mdevs.
# Work files (initramfs, consoles, transcripts) go to BUILD_DIR/kernel-lab.
# The last line printed is
#   kernel lab: N scenarios, P passed, D differences from the simulator
# and the exit status is 0 only when P == N and D == 0 (77: no QEMU or no
# static busybox here, for CTest to skip).
set -eu

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
lab="$build/bin/vmig-lab"
work="$build/kernel-lab"
boots=${VMIG_LAB_BOOTS:-mock viommu}
boot_timeout=${VMIG_LAB_BOOT_TIMEOUT:-300}
qemu=${VMIG_QEMU:-qemu-system-x86_64}

say() {
	echo "kernel lab: $*"
}

# The lab's own programs, before anything uses them (a no-op when present).
"$here/../../scripts/install-deps.sh" >&2 || true
if ! command -v "$qemu" >/dev/null 2>&1; then
	say "$qemu not found: scripts/install-deps.sh qemu-system-x86 busybox-static"
	exit 77
fi
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
	say "no static /bin/busybox: scripts/install-deps.sh busybox-static"
	exit 77
fi
[ -x "$lab" ] || { say "$lab: not built"; exit 1; }

mkdir -p "$work"
kernel=$("$here/get-kernel.sh")
say "kernel $kernel"
"$here/mkinitramfs.sh" "$build" "$work/initramfs.gz"

# Boots one machine: runs the lab in it, leaves its output (the part
# between the markers, without carriage returns) in $work/<boot>.real.
# Returns non-zero, with the console's tail printed, when the boot did not
# get the lab to the end in time.
run_boot() {
	name=$1
	shift
	cmdline=$1
	shift
	console="$work/$name.console"
	raw="$work/$name.ttyS1"
	rm -f "$console" "$raw" "$work/$name.real" "$work/$name.sim"
	start=$(date +%s)
	rc=0
	# no_timer_check: the kernel's boot check that the timer interrupt
	# arrives through the IO-APIC measures emulated time against a busy
	# host; under load it fails and, with interrupt remapping, panics.
	timeout -k 10 "$boot_timeout" "$qemu" -accel tcg -cpu max -m 1G \
		-nographic -no-reboot -monitor none \
		"$@" \
		-kernel "$kernel" -initrd "$work/initramfs.gz" \
		-append "console=ttyS0 panic=-1 no_timer_check vmig.boot=$name $cmdline" \
		-serial "file:$console" -serial "file:$raw" \
		</dev/null >"$work/$name.qemu" 2>&1 || rc=$?
	took=$(($(date +%s) - start))
	tr -d '\r' <"$raw" >"$work/$name.real" 2>/dev/null || true
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		say "boot $name: no result within ${boot_timeout}s; console tail:"
		tail -n 40 "$console" 2>/dev/null | tr -d '\r'
		return 1
	fi
	if grep -q '^VMIG-LAB-SETUP-FAILED:' "$work/$name.real"; then
		say "boot $name: $(sed -n 's/^VMIG-LAB-SETUP-FAILED: //p' \
			"$work/$name.real"); console tail:"
		tail -n 40 "$console" | tr -d '\r'
		return 1
	fi
	if ! grep -q '^VMIG-LAB-EXIT:' "$work/$name.real"; then
		say "boot $name: the lab did not finish (QEMU exit $rc); console tail:"
		tail -n 40 "$console" 2>/dev/null | tr -d '\r'
		cat "$work/$name.qemu"
		return 1
	fi
	say "boot $name: ${took}s"
	return 0
}

# The lines of one scenario's transcript that are compared, without their
# step numbers (line n is step n).
transcript() {
	awk -v sc="$2" '
		$0 == "=== BEGIN " sc { on = 1; next }
		$0 == "=== END " sc { on = 0 }
		on && /^#[0-9]+ / { sub(/^#[0-9]+ /, ""); print }
	' "$1"
}

# RESULT of a scenario in an output: PASS, FAIL <reason>, or nothing.
result() {
	sed -n "s/^RESULT $2 //p" "$1" | head -n 1
}

total=0
passed=0
diffs=0
for b in $boots; do
	case "$b" in
	mock)
		machine="-machine q35"
		# Two 2 MiB hugetlb pages: physically contiguous memory, for
		# the 1 MiB IOPTEs of iommufd-plugin-huge.
		cmdline="hugepages=2"
		;;
	viommu)
		# aw-bits=48: the address width of the Intel IOMMU that ksim
		# models (QEMU's default, 39, ends the type1 IOVA ranges at
		# 2^39 - 1 instead of 2^48 - 1).
		machine="-machine q35,kernel-irqchip=split
			-device intel-iommu,intremap=on,caching-mode=on,aw-bits=48
			-device edu"
		cmdline="intel_iommu=on"
		;;
	*)
		say "unknown boot '$b'"
		exit 2
		;;
	esac
	scs=$("$lab" --list | awk -v b="$b" '$2 == b { print $1 }')
	n=$(echo "$scs" | grep -c . || true)
	total=$((total + n))
	# shellcheck disable=SC2086
	# A boot that failed stops the lab here, with its cause (printed
	# by run_boot): what follows could only report scenarios that did
	# not run.
	if ! run_boot "$b" "$cmdline" $machine; then
		say "boot $b failed: stopping (its $n scenarios did not run)"
		exit 1
	fi
	real="$work/$b.real"
	sim="$work/$b.sim"
	args=$(sed -n 's/^VMIG-LAB-ARGS: //p' "$real" | head -n 1)
	# shellcheck disable=SC2086
	"$lab" --kernel sim $args >"$sim" 2>&1 || true
	for sc in $scs; do
		r=$(result "$real" "$sc")
		s=$(result "$sim" "$sc")
		case "$r" in
		PASS)
			passed=$((passed + 1))
			;;
		"")
			r="(did not run)"
			;;
		esac
		[ -n "$s" ] || s="(did not run)"
		transcript "$real" "$sc" >"$work/$b.$sc.real"
		transcript "$sim" "$sc" >"$work/$b.$sc.sim"
		# Each hunk of a diff is one difference, at the step where it
		# starts on the real kernel.
		d=$(diff "$work/$b.$sc.real" "$work/$b.$sc.sim" |
			grep -c '^[0-9]' || true)
		say "$b/$sc: real $r; simulated $s; $d differences"
		if [ "$d" -gt 0 ]; then
			diff "$work/$b.$sc.real" "$work/$b.$sc.sim" | awk -v sc="$sc" '
				/^[0-9]/ {
					split($0, a, /[acd]/)
					split(a[1], s, ",")
					printf "  difference in %s at step #%03d:\n", sc, s[1] + ($0 ~ /^[0-9,]+a/)
					next
				}
				/^</ { sub(/^< /, ""); print "    real: " $0; next }
				/^>/ { sub(/^> /, ""); print "    sim:  " $0; next }
			'
		elif [ "${r%% *}" != "${s%% *}" ]; then
			# The same calls and answers, yet one side's own checks
			# failed: a difference too.
			d=1
			say "  difference in $sc: its result, real $r, simulated $s"
		fi
		diffs=$((diffs + d))
		if [ "${r%% *}" != PASS ]; then
			say "  $b/$sc on the real kernel:"
			sed -n "/^=== BEGIN $sc\$/,/^RESULT $sc /p" "$real" |
				grep -E '^(~ FAILED|RESULT)' | sed 's/^/    /'
		fi
	done
done

say "transcripts in $work"
say "$total scenarios, $passed passed, $diffs differences from the simulator"
[ "$passed" -eq "$total" ] && [ "$diffs" -eq 0 ]
