/*
 * vmig/version.h: the library version and the plugin ABI version.
 *
 * The library version follows semantic versioning. The plugin ABI version
 * is separate: a plugin must have been built for exactly the same ABI major
 * as the library that loads it; ABI minors only ever add fields to the end
 * of tables, so any minor works with any other of the same major.
 */
#ifndef VMIG_VERSION_H
#define VMIG_VERSION_H

#define VMIG_VERSION_MAJOR 0
#define VMIG_VERSION_MINOR 3
#define VMIG_VERSION_PATCH 0
#define VMIG_VERSION_STRING "0.3.0"

/* Packs a version into one integer: 0x00MMmmpp. */
#define VMIG_VERSION_HEX(major, minor, patch) \
	(((major) << 16) | ((minor) << 8) | (patch))
#define VMIG_VERSION                                                  \
	VMIG_VERSION_HEX(VMIG_VERSION_MAJOR, VMIG_VERSION_MINOR, \
			 VMIG_VERSION_PATCH)

/* The dirty-source plugin ABI (see vmig/plugin.h). */
#define VMIG_PLUGIN_ABI_MAJOR 1
#define VMIG_PLUGIN_ABI_MINOR 1

#endif /* VMIG_VERSION_H */
