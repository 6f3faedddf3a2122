#!/bin/sh
# Runs every test of vmig: installs what the tests need, then builds twice
# and runs the whole CTest suite on each build:
#   build-ci    warnings as errors (and the valgrind runs, and the
#               kernel lab: tests/kernel/run-lab.sh under QEMU),
#   build-asan  AddressSanitizer and UndefinedBehaviorSanitizer,
# then compiles it with clang (-Werror) where clang is installed, and
# runs the fuzzers briefly (build-fuzz, tests/fuzz/README.md).
# Exits non-zero when anything fails.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)

# Every program a test or script calls that a fresh Debian 12 lacks,
# before anything runs, whichever path the run takes: QEMU
# (qemu-system-x86_64, kvm), a static busybox and cpio for the kernel
# lab; flex, bison, bc, the libelf and libssl headers and xz for a lab
# kernel built from source; dash (sh) for the scripts; iproute2 for the
# network-namespace test, valgrind, clang for the second compile, patch
# for the planted bugs, libclang-rt for the fuzzers, man-db for the
# manual page check. (install-deps.sh's own list has most of them too.)
scripts/install-deps.sh valgrind qemu-system-x86 busybox-static cpio \
	flex bison bc libelf-dev libssl-dev xz-utils dash \
	iproute2 clang libclang-rt-14-dev patch man-db

# The kernel lab's bzImage, before CTest's time limits apply: from
# ../shared or the cache in a moment, or built from source (about half
# an hour on 2 cores) when neither has it.
tests/kernel/get-kernel.sh >/dev/null
# And the one with KVM, for the sample KVM VMM nested in QEMU (run-kvm.sh).
VMIG_KERNEL_FRAGMENT="$top/tests/kernel/config-fragment-kvm" \
	tests/kernel/get-kernel.sh >/dev/null

echo "== build-ci: -Werror"
cmake -S . -B build-ci -DVMIG_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-ci -j"$jobs"
ctest --test-dir build-ci --output-on-failure -j"$jobs"

echo "== build-asan: -Werror, AddressSanitizer, UBSan"
cmake -S . -B build-asan -DVMIG_WERROR=ON -DVMIG_SANITIZE=ON \
	-DCMAKE_BUILD_TYPE=Debug
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure -j"$jobs"

# The suite must catch each known bug planted in a scratch copy.
echo "== planted bugs"
tests/planted/run.sh "$top/build-planted"

# A second compiler catches what the first lets through (format checks of
# va_list functions, for one); built only, where clang is installed.
if command -v clang >/dev/null 2>&1; then
	echo "== build-clang: -Werror (compile only)"
	CC=clang cmake -S . -B build-clang -DVMIG_WERROR=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-clang -j"$jobs"

	# The libFuzzer harnesses (tests/fuzz), each run for a short bounded
	# time over its seed corpus.
	echo "== build-fuzz: libFuzzer, AddressSanitizer, UBSan"
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j"$jobs" --target vmig-fuzz-rx \
		vmig-fuzz-config
	ctest --test-dir build-fuzz -L fuzz --output-on-failure
fi

echo "== all tests passed"
