#!/bin/busybox sh
# shellcheck shell=sh
# /init of the kernel lab's initramfs (mkinitramfs.sh puts it there).
#
# Mounts the kernel's file systems, prepares the devices of this boot
# (vmig.boot=mock|viommu|kvm on the kernel command line), runs the lab
# program against the real kernel (kvm: the sample KVM VMM, in one
# process and between two) and powers off. The lab's own output goes to the
# second serial port (/dev/ttyS1), away from the kernel's messages on the
# console, between the markers that run-lab.sh looks for:
#   VMIG-LAB-ARGS: <the device facts passed to the lab program>
#   ... the lab program's output ...
#   VMIG-LAB-EXIT: <its exit status>
# A boot whose devices cannot be prepared says VMIG-LAB-SETUP-FAILED: why.

/bin/busybox mkdir -p /bin /proc /sys /dev /tmp
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

out=/dev/ttyS1
[ -c "$out" ] || out=/dev/console

say() {
	echo "vmig-lab: $*" >/dev/console
}

finish() {
	say "powering off"
	sync
	poweroff -f
	# poweroff -f does not return; should it, the kernel panics (and QEMU,
	# with -no-reboot, exits) when init ends.
	exit 1
}

setup_failed() {
	echo "VMIG-LAB-SETUP-FAILED: $*" >"$out"
	say "setup failed: $*"
	finish
}

# Waits (at most ten seconds) until the path exists.
wait_for() {
	n=0
	while [ ! -e "$1" ]; do
		n=$((n + 1))
		[ "$n" -gt 100 ] && return 1
		sleep 0.1
	done
	return 0
}

boot=$(sed -n 's/.*vmig\.boot=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
say "boot '$boot'"
args="--boot $boot"

# The edu device (1234:11e8) to vfio-pci, through driver_override.
prepare_edu() {
	bdf=""
	for d in /sys/bus/pci/devices/*; do
		if [ "$(cat "$d/vendor")" = 0x1234 ] &&
		   [ "$(cat "$d/device")" = 0x11e8 ]; then
			bdf=${d##*/}
		fi
	done
	[ -n "$bdf" ] || setup_failed "no edu device (1234:11e8)"
	dev=/sys/bus/pci/devices/$bdf
	echo vfio-pci >"$dev/driver_override" ||
		setup_failed "$bdf: cannot set driver_override"
	if [ -e "$dev/driver" ]; then
		echo "$bdf" >"$dev/driver/unbind"
	fi
	echo "$bdf" >/sys/bus/pci/drivers_probe
	wait_for "$dev/vfio-dev" || setup_failed "$bdf: vfio-pci did not bind"
	[ -e "$dev/iommu_group" ] || setup_failed "$bdf: no IOMMU group"
	group=$(basename "$(readlink "$dev/iommu_group")")
	cdev=/dev/vfio/devices/$(ls "$dev/vfio-dev")
	wait_for "/dev/vfio/$group" || setup_failed "no /dev/vfio/$group"
	wait_for "$cdev" || setup_failed "no $cdev"
	args="$args --pci $bdf --pci-group $group --pci-cdev $cdev"
	say "edu $bdf: group $group, $cdev"
}

# Two mtty mdevs, each in a group of its own.
prepare_mtty() {
	types=/sys/class/mdev_bus/mtty/mdev_supported_types
	wait_for "$types" || setup_failed "no $types"
	type=""
	for t in "$types"/*; do
		[ -d "$t" ] && { type=$t; break; }
	done
	[ -n "$type" ] || setup_failed "mtty offers no mdev type"
	for i in 1 2; do
		uuid=$(cat /proc/sys/kernel/random/uuid)
		echo "$uuid" >"$type/create" ||
			setup_failed "cannot create mdev $i of $type"
		dev=/sys/bus/mdev/devices/$uuid
		wait_for "$dev/iommu_group" ||
			setup_failed "mdev $uuid: no IOMMU group"
		group=$(basename "$(readlink "$dev/iommu_group")")
		wait_for "/dev/vfio/$group" || setup_failed "no /dev/vfio/$group"
		cdev=""
		if [ -d "$dev/vfio-dev" ]; then
			cdev=/dev/vfio/devices/$(ls "$dev/vfio-dev")
			wait_for "$cdev" || setup_failed "no $cdev"
		fi
		args="$args --mdev $uuid --mdev-group $group"
		[ -n "$cdev" ] && args="$args --mdev-cdev $cdev"
		say "mtty $uuid (${type##*/}): group $group, ${cdev:-no cdev}"
	done
}

case "$boot" in
mock)
	# iommufd's selftest mock needs nothing but /dev/iommu.
	wait_for /dev/iommu || setup_failed "no /dev/iommu"
	;;
viommu)
	wait_for /dev/vfio/vfio || setup_failed "no /dev/vfio/vfio"
	prepare_edu
	prepare_mtty
	;;
kvm)
	# KVM inside the emulated machine (nested: TCG's SVM or VMX).
	wait_for /dev/kvm || setup_failed "no /dev/kvm (does the emulated CPU offer SVM or VMX?)"
	[ -x /opt/vmig/bin/vmig-kvm-vmm ] ||
		setup_failed "no vmig-kvm-vmm in the initramfs"
	echo "VMIG-LAB-ARGS: $args" >"$out"
	say "running the sample KVM VMM"
	{
		LD_LIBRARY_PATH=/opt/vmig/lib /opt/vmig/bin/vmig-kvm-vmm local
		echo "KVM-LOCAL-EXIT: $?"
		LD_LIBRARY_PATH=/opt/vmig/lib sh /opt/vmig/bin/kvm-vmm.sh \
			/opt/vmig/bin/vmig-kvm-vmm
		echo "KVM-TWO-PROCESSES-EXIT: $?"
	} >"$out" 2>&1
	echo "VMIG-LAB-EXIT: 0" >"$out"
	finish
	;;
*)
	setup_failed "unknown boot '$boot' (vmig.boot= on the command line)"
	;;
esac

echo "VMIG-LAB-ARGS: $args" >"$out"
say "running the lab"
# shellcheck disable=SC2086
LD_LIBRARY_PATH=/opt/vmig/lib /opt/vmig/bin/vmig-lab --kernel real $args \
	>"$out" 2>&1
rc=$?
echo "VMIG-LAB-EXIT: $rc" >"$out"
say "lab exited with $rc"
finish
