#!/bin/sh
# The sample KVM VMM migrating a real guest between two processes over a
# unix socket: the vCPU's registers travel as a state section, the
# destination loads exactly what the source saved, and its guest continues
# from the exact instruction where the source stopped (the destination
# checks its first exit itself) and counts on. Exits 77 (skipped) without
# a usable /dev/kvm.
# Usage: kvm-vmm.sh VMM_PROGRAM
set -eu
vmm=$1
tmp=$(mktemp -d /tmp/vmig-kvm-XXXXXX)
dst_pid=
cleanup() {
	[ -n "$dst_pid" ] && kill "$dst_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "no usable /dev/kvm"; exit 77; }

"$vmm" destination "unix:$tmp/sock" >"$tmp/dst.out" 2>"$tmp/dst.err" &
dst_pid=$!
i=0
until grep -q "^listening on" "$tmp/dst.out" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$dst_pid" 2>/dev/null; then
		cat "$tmp/dst.out" "$tmp/dst.err"
		echo "the destination did not start listening"
		exit 1
	fi
	sleep 0.1
done
"$vmm" source "unix:$tmp/sock" >"$tmp/src.out" 2>"$tmp/src.err" ||
	{ cat "$tmp/src.out" "$tmp/src.err"; echo "source failed"; exit 1; }
rc=0
wait "$dst_pid" || rc=$?
dst_pid=
cat "$tmp/src.out" "$tmp/dst.out"
[ $rc -eq 0 ] || { cat "$tmp/dst.err"; echo "destination failed ($rc)"; exit 1; }
stopped=$(sed -n 's/^migrated: source stopped at //p' "$tmp/src.out")
first=$(sed -n 's/^destination after migration: guest counter \([0-9]*\) -> .*/\1/p' "$tmp/dst.out")
[ -n "$stopped" ] && [ -n "$first" ] && [ "$first" -ge "$stopped" ] ||
	{ echo "the destination's guest did not go on from $stopped"; exit 1; }
saved=$(sed -n 's/^source: vCPU saved: \(rip .*\), count [0-9]*$/\1/p' "$tmp/src.out")
loaded=$(sed -n 's/^destination: first exit: .*(loaded: \(rip .*\), count [0-9]*)$/\1/p' "$tmp/dst.out")
[ -n "$saved" ] && [ "$saved" = "$loaded" ] ||
	{ echo "vCPU state: saved '$saved', loaded '$loaded'"; exit 1; }
echo "kvm: the guest went on from $stopped on the destination ($saved)"
