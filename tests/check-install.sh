#!/bin/sh
# Installs the build into a temporary prefix and builds an embedder
# against it twice, with find_package(vmig) and with pkg-config; both must
# run and find the installed plugins, and so must the installed `vmig`.
# Usage: check-install.sh BUILD_DIR SOURCE_DIR C_COMPILER
set -eu
build=$1 src=$2 cc=$3
tmp=$(mktemp -d /tmp/vmig-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"

cmake --install "$build" --prefix "$prefix" >/dev/null
unset VMIG_PLUGIN_PATH

# CMake package.
cmake -S "$src/samples/embed" -B "$tmp/cmake" \
	-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$tmp/cmake" >/dev/null
LD_LIBRARY_PATH="$(dirname "$(find "$prefix" -name 'libvmig.so' | head -n1)")" \
	"$tmp/cmake/vmig-embed-sample" >"$tmp/out1"
grep -q "plugin vfio-type1" "$tmp/out1" || { cat "$tmp/out1"; echo "find_package: vfio-type1 not found"; exit 1; }
grep -q 'state section "machine": registered' "$tmp/out1" || { cat "$tmp/out1"; echo "find_package: no state section"; exit 1; }

# pkg-config.
pc=$(dirname "$(find "$prefix" -name vmig.pc | head -n1)")
flags=$(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs vmig)
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Werror "$src/samples/embed/main.c" $flags -o "$tmp/pc-sample"
LD_LIBRARY_PATH="$(PKG_CONFIG_PATH="$pc" pkg-config --variable=libdir vmig)" \
	"$tmp/pc-sample" >"$tmp/out2"
grep -q "plugin vfio-type1" "$tmp/out2" || { cat "$tmp/out2"; echo "pkg-config: vfio-type1 not found"; exit 1; }

# The installed program finds its library and plugins by itself.
"$prefix/bin/vmig" plugins | grep -q "^vfio-type1 " || { echo "installed vmig: no plugins"; exit 1; }
# The manual page and the documentation are installed, and man reads it.
[ -f "$prefix/share/man/man1/vmig.1" ] || { echo "missing man page"; exit 1; }
for d in config.md report.md protocol.md plugin-guide.md; do
	[ -f "$prefix/share/doc/vmig/$d" ] || { echo "missing doc $d"; exit 1; }
done
if command -v man >/dev/null 2>&1; then
	MANPATH="$prefix/share/man" man -P cat vmig 2>/dev/null |
		grep -q "EXIT STATUS" || { echo "man vmig does not show the page"; exit 1; }
fi
for h in vmig.h plugin.h version.h bitmap.h linux-uapi.h; do
	[ -f "$prefix/include/vmig/$h" ] || { echo "missing header $h"; exit 1; }
done

# The in-tree plugins build from the installed headers alone, as a
# vendor's plugin would: nothing from the source tree but the plugin's
# own file, nothing linked in.
for p in vfio-type1/type1.c iommufd/iommufd.c device-dirty/devdirty.c; do
	out="$tmp/$(basename "$p" .c).so"
	"$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -shared -fPIC \
		-fvisibility=hidden -Wl,--no-undefined \
		-I "$prefix/include" "$src/plugins/$p" -o "$out" ||
		{ echo "plugin $p does not build from the installed headers"; exit 1; }
	nm -D --defined-only "$out" | grep -q ' vmig_plugin_init$' ||
		{ echo "plugin $p: no vmig_plugin_init"; exit 1; }
done
# A vendor's plugin outside the tree: find_package(vmig) gives the headers
# and the plugin directory (relative to the moved prefix), pkg-config the
# same; the installed vmig loads the result.
cmake -S "$src/samples/vendor-plugin" -B "$tmp/vendor" \
	-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$tmp/vendor" >/dev/null
cmake --install "$tmp/vendor" >/dev/null
found=$(find "$prefix" -name vmig-acme.so | head -n1)
case "$found" in
*/vmig/plugins/vmig-acme.so) ;;
*) echo "find_package: the vendor plugin was not installed into vmig_PLUGIN_DIR under $prefix"; exit 1 ;;
esac
"$prefix/bin/vmig" plugins | grep -q "^acme " ||
	{ "$prefix/bin/vmig" plugins; echo "installed vmig: the vendor plugin is not listed"; exit 1; }
mkdir -p "$tmp/pcplug"
# shellcheck disable=SC2086
"$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -shared -fPIC \
	-fvisibility=hidden -Wl,--no-undefined \
	$(PKG_CONFIG_PATH="$pc" pkg-config --cflags vmig) \
	"$src/samples/vendor-plugin/acme.c" -o "$tmp/pcplug/vmig-acme.so"
"$prefix/bin/vmig" plugins --path "$tmp/pcplug" | grep -q "^acme " ||
	{ echo "pkg-config: the vendor plugin does not load"; exit 1; }
echo "install: find_package, pkg-config, the installed vmig, the in-tree plugins and a vendor's built from installed headers all work"
