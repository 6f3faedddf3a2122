#!/bin/sh
# check-layers.sh: the library layer stands alone.
#
# Usage: check-layers.sh symbols LIBVMIG
#        check-layers.sh includes SOURCE_DIR
#
# symbols: libvmig carries none of the simulator (the kernel simulator,
# the simulated guest, the ground truth): no ksim_, truth or sim_ symbol,
# neither exported (nm -D) nor internal (nm, when the symbol table was
# kept). includes: no file under core/ includes a path under tests/ or
# tool/: the simulator and the tool sit on top of the library, never
# under it. Prints what is wrong and exits 1, or prints one line and
# exits 0.

set -u
LC_ALL=C
export LC_ALL

pattern='ksim_|truth|(^|_)sim_'

symbols() {
	lib=$1
	bad=0
	exported=$(nm -D --defined-only "$lib" | awk '{ print $NF }' |
		grep -E "$pattern")
	if [ -n "$exported" ]; then
		echo "$lib exports simulator symbols:"
		echo "$exported" | sed 's/^/  /'
		bad=1
	fi
	# A stripped library has no symbol table: nothing more to read.
	internal=$(nm --defined-only "$lib" 2>/dev/null | awk '{ print $NF }' |
		grep -E "$pattern")
	if [ -n "$internal" ]; then
		echo "$lib carries simulator code:"
		echo "$internal" | sed 's/^/  /'
		bad=1
	fi
	[ $bad -eq 0 ] || exit 1
	echo "layers: $lib has no simulator symbol"
}

includes() {
	src=$1
	found=$(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*(tests|tool)/' \
		"$src/core" || true)
	if [ -n "$found" ]; then
		echo "core/ includes files of the layers above it:"
		echo "$found" | sed 's/^/  /'
		exit 1
	fi
	echo "layers: core/ includes nothing from tests/ or tool/"
}

case "${1:-}" in
symbols) [ $# -eq 2 ] || exit 2; symbols "$2" ;;
includes) [ $# -eq 2 ] || exit 2; includes "$2" ;;
*) echo "usage: $0 symbols LIBVMIG | includes SOURCE_DIR" >&2; exit 2 ;;
esac
