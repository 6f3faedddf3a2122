#!/bin/sh
# check-exports.sh: libvmig exports exactly the public API, each plugin
# exactly its entry point.
#
# Usage: check-exports.sh LIBVMIG VMIG_H [PLUGIN...]
#
# The functions libvmig exports must be the functions vmig.h declares with
# VMIG_API, both ways: nothing exported that is not declared (a private
# symbol leaking, which programs would come to depend on), nothing declared
# that is not exported (a program would fail to link). Every symbol it
# exports starts with vmig_. A plugin exports vmig_plugin_init and nothing
# else, so that two plugins never clash and never bind to each other.
# Prints what is wrong and exits 1, or prints one line and exits 0.

set -u
# comm needs both lists sorted the same way.
LC_ALL=C
export LC_ALL

if [ $# -lt 2 ]; then
	echo "usage: $0 LIBVMIG VMIG_H [PLUGIN...]" >&2
	exit 2
fi
lib=$1
header=$2
shift 2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-exports.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM

fail=0
problem() {
	echo "check-exports: $*"
	fail=1
}

# Writes the symbols file $1 defines and exports into file $2, one
# "TYPE NAME" a line, without symbol versions and without what the linker
# defines in every object.
exports() {
	if ! nm -D --defined-only "$1" >"$tmp/nm.out" 2>"$tmp/nm.err"; then
		problem "$1: cannot list its dynamic symbols:" \
			"$(head -n 1 "$tmp/nm.err")"
		return 1
	fi
	awk 'NF >= 2 {
		type = $(NF - 1); name = $NF
		sub(/@.*/, "", name)
		if (name == "_init" || name == "_fini" || name == "_edata" ||
		    name == "_end" || name == "__bss_start")
			next
		print type, name
	}' "$tmp/nm.out" | sort -u >"$2"
}

# The names of the functions vmig.h declares with VMIG_API. Continuation
# lines are joined, comments and preprocessor lines dropped (the line that
# defines VMIG_API mentions it), and the rest cut at each ';', so that a
# declaration spanning lines is whole; its name is the first vmig_*
# identifier followed by '(' after VMIG_API.
declared() {
	awk '{ buf = buf $0 "\n" }
	END {
		gsub(/\\\n/, "", buf)
		out = ""
		while ((i = index(buf, "/*")) > 0) {
			out = out substr(buf, 1, i - 1) " "
			buf = substr(buf, i + 2)
			j = index(buf, "*/")
			if (j == 0) {
				buf = ""
				break
			}
			buf = substr(buf, j + 2)
		}
		out = out buf
		n = split(out, lines, "\n")
		text = ""
		for (k = 1; k <= n; k++) {
			l = lines[k]
			sub(/\/\/.*/, "", l)
			if (l ~ /^[ \t]*#/)
				continue
			text = text " " l
		}
		n = split(text, decls, ";")
		for (k = 1; k <= n; k++) {
			d = decls[k]
			p = index(d, "VMIG_API")
			if (p == 0)
				continue
			d = " " substr(d, p + length("VMIG_API"))
			if (!match(d, /[^A-Za-z0-9_]vmig_[A-Za-z0-9_]*[ \t]*\(/))
				continue
			name = substr(d, RSTART + 1, RLENGTH - 1)
			sub(/[ \t]*\($/, "", name)
			print name
		}
	}' "$1" | sort -u
}

# ---------------------------------------------------------------------
# libvmig

if [ ! -f "$lib" ]; then
	problem "$lib: not a file"
elif [ ! -f "$header" ]; then
	problem "$header: not a file"
elif exports "$lib" "$tmp/lib.syms"; then
	awk '$2 !~ /^vmig_/ { print $2 }' "$tmp/lib.syms" >"$tmp/lib.bad"
	while read -r sym; do
		problem "$lib exports $sym, which does not start with vmig_"
	done <"$tmp/lib.bad"

	# T and t: text; W: weak; i: indirect (ifunc) functions.
	awk '$1 ~ /^[TtWi]$/ { print $2 }' "$tmp/lib.syms" | sort -u \
		>"$tmp/lib.funcs"
	declared "$header" >"$tmp/api.funcs"
	if [ ! -s "$tmp/api.funcs" ]; then
		problem "$header: found no VMIG_API function declarations"
	fi
	# Names without the prefix are reported above already.
	comm -23 "$tmp/lib.funcs" "$tmp/api.funcs" | grep '^vmig_' \
		>"$tmp/extra"
	while read -r sym; do
		problem "$lib exports $sym, which $header does not declare" \
			"with VMIG_API"
	done <"$tmp/extra"
	comm -13 "$tmp/lib.funcs" "$tmp/api.funcs" >"$tmp/missing"
	while read -r sym; do
		problem "$header declares $sym, which $lib does not export"
	done <"$tmp/missing"
	nlib=$(wc -l <"$tmp/lib.funcs")
fi

# ---------------------------------------------------------------------
# Plugins

nplugins=0
for plugin in "$@"; do
	nplugins=$((nplugins + 1))
	if [ ! -f "$plugin" ]; then
		problem "$plugin: not a file"
		continue
	fi
	exports "$plugin" "$tmp/plugin.syms" || continue
	if ! grep -qx '[TtWi] vmig_plugin_init' "$tmp/plugin.syms"; then
		problem "$plugin does not export the function vmig_plugin_init"
	fi
	grep -vx '[TtWi] vmig_plugin_init' "$tmp/plugin.syms" \
		>"$tmp/plugin.extra"
	while read -r type sym; do
		problem "$plugin exports $sym ($type) besides vmig_plugin_init"
	done <"$tmp/plugin.extra"
done

if [ "$fail" -ne 0 ]; then
	exit 1
fi
echo "check-exports: $lib exports the $nlib functions of $(basename "$header");" \
	"$nplugins plugin(s) export only vmig_plugin_init"
exit 0
