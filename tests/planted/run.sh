#!/bin/sh
# Plants known bugs in a scratch copy of the tree, one at a time, and
# checks that the tests named for each catch it: a suite that stays green
# with a bug in the code cannot be trusted to catch the next one.
#
# Usage: tests/planted/run.sh [SCRATCH_DIR]
# Each tests/planted/*.patch starts with lines of text before its diff:
#   Planted: what the bug does
#   Caught-by: CTest names (regular expressions, space separated)
# A bug is caught when every named test fails with it planted. Only tests
# that catch it every time are named: vmig-chaos catches some of these
# bugs in most runs (hotplug-forgets-one-mapping, gpa-restart-marks-
# nothing), but whether its threads put a write in the window varies. The script
# prints one line per bug and exits non-zero when a bug was not caught
# or its patch no longer applies (then the patch needs updating).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
scratch=${1:-${TMPDIR:-/tmp}/vmig-planted}
jobs=$(nproc)

say() {
	echo "planted: $*"
}

# The tree as it is (tracked and new files, not ignored ones).
rm -rf "$scratch"
mkdir -p "$scratch/src"
(cd "$top" && git ls-files -co --exclude-standard -z |
	xargs -0 tar cf - --no-recursion) | (cd "$scratch/src" && tar xf -)
cmake -S "$scratch/src" -B "$scratch/build" -DVMIG_WERROR=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >"$scratch/configure.log" 2>&1 ||
	{ say "configure failed: $scratch/configure.log"; exit 1; }
cmake --build "$scratch/build" -j"$jobs" >"$scratch/build.log" 2>&1 ||
	{ say "the unchanged tree does not build: $scratch/build.log"; exit 1; }

total=0
caught=0
for patch in "$top"/tests/planted/*.patch; do
	name=$(basename "$patch" .patch)
	what=$(sed -n 's/^Planted: //p' "$patch")
	tests=$(sed -n 's/^Caught-by: //p' "$patch")
	total=$((total + 1))
	if [ -z "$tests" ]; then
		say "$name: no Caught-by line"
		continue
	fi
	if ! (cd "$scratch/src" && patch -s -p1 -N <"$patch") \
		>"$scratch/$name.apply" 2>&1; then
		say "$name: the patch no longer applies: $(cat "$scratch/$name.apply")"
		continue
	fi
	missed=""
	if ! cmake --build "$scratch/build" -j"$jobs" \
		>"$scratch/$name.build" 2>&1; then
		missed="(does not build: $scratch/$name.build)"
	else
		for t in $tests; do
			if ctest --test-dir "$scratch/build" --output-on-failure -R "^$t\$" \
				>"$scratch/$name.$t.log" 2>&1; then
				missed="$missed $t"
			elif ! grep -q "tests passed\|tests failed" \
				"$scratch/$name.$t.log" ||
				grep -q "No tests were found" \
					"$scratch/$name.$t.log"; then
				missed="$missed $t(not found)"
			fi
		done
	fi
	(cd "$scratch/src" && patch -s -p1 -R <"$patch")
	if [ -z "$missed" ]; then
		caught=$((caught + 1))
		say "$name: caught by $tests ($what)"
	else
		say "$name: NOT caught by$missed ($what)"
	fi
done
# The scratch build back to the unchanged tree, for the next run.
cmake --build "$scratch/build" -j"$jobs" >/dev/null 2>&1 || true
say "$total bugs planted, $caught caught"
[ "$caught" -eq "$total" ]
