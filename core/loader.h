/*
 * loader.h: finding, loading, validating and unloading plugins.
 *
 * A plugin set holds the plugins of one session: its extra search
 * directories, the plugins loaded from files and those registered from
 * inside the program. Loaded files are shared process-wide and reference
 * counted, so two sessions loading the same file share one dlopen handle,
 * and the object is unloaded when the last reference goes.
 *
 * Search order for a plugin name: the directories added to the set (from
 * the configuration, in order), then each entry of VMIG_PLUGIN_PATH
 * (colon-separated; empty entries ignored), then the install directory
 * (vmig_loader_install_dir). The name "x" is looked for as "vmig-x.so".
 */
#ifndef VMIG_CORE_LOADER_H
#define VMIG_CORE_LOADER_H

#include <stddef.h>

#include <vmig/plugin.h>

struct vmig_pluginset;

/*
 * The install directory: "<dir of libvmig.so>/vmig/plugins" when the
 * library can find its own file, else the compile-time
 * VMIG_PLUGIN_INSTALL_DIR. Never NULL.
 */
const char *vmig_loader_install_dir(void);

/*
 * Checks a descriptor as the loader does. origin names it in the message
 * (a file, or "registered plugin"). Returns 0, VMIG_EABI or
 * VMIG_EBADPLUGIN with a message in err.
 */
int vmig_plugin_validate(const struct vmig_plugin *desc, const char *origin,
			 char *err, size_t errlen);

/* Creates an empty set. Returns 0 or -ENOMEM. */
int vmig_pluginset_new(struct vmig_pluginset **out);

/* Drops the set's references (unloading files nobody else uses). */
void vmig_pluginset_free(struct vmig_pluginset *set);

/* Appends a search directory. Returns 0, -EINVAL or -ENOMEM. */
int vmig_pluginset_add_path(struct vmig_pluginset *set, const char *dir);

/*
 * The full search list (set dirs, VMIG_PLUGIN_PATH, install dir), as read
 * now. The array and strings are the set's; valid until the next call on
 * the set. Returns the number of entries or -ENOMEM.
 */
int vmig_pluginset_search_dirs(struct vmig_pluginset *set,
			       const char *const **dirs);

/*
 * Loads a plugin by name or path (a path contains '/'). host is passed to
 * the entry point. Loading a file already in the set returns its index
 * again. Returns the plugin's index in the set, or -ENOENT,
 * VMIG_ENOTPLUGIN, VMIG_ENOENTRY, VMIG_EABI, VMIG_EBADPLUGIN,
 * VMIG_EREFUSED, VMIG_EDUPLICATE, -ENOMEM, each with a message in err
 * that names the file (and the dynamic loader's text for
 * VMIG_ENOTPLUGIN).
 */
int vmig_pluginset_load(struct vmig_pluginset *set, const char *name_or_path,
			const struct vmig_host *host, char *err,
			size_t errlen);

/*
 * Adds a descriptor linked into the program. Returns its index, or
 * VMIG_EABI, VMIG_EBADPLUGIN, VMIG_EDUPLICATE, -ENOMEM with a message.
 */
int vmig_pluginset_register(struct vmig_pluginset *set,
			    const struct vmig_plugin *desc, char *err,
			    size_t errlen);

/*
 * The user pointer of registered plugin i (vmig_plugin_register_user),
 * given to its instances in their host table; NULL for a file's.
 */
void vmig_pluginset_set_user(struct vmig_pluginset *set, size_t i,
			     void *user);
void *vmig_pluginset_user(const struct vmig_pluginset *set, size_t i);

/* Number of plugins in the set. */
size_t vmig_pluginset_count(const struct vmig_pluginset *set);

/* The descriptor of plugin i. */
const struct vmig_plugin *vmig_pluginset_get(const struct vmig_pluginset *set,
					     size_t i);

/* The file of plugin i, or NULL for a registered one. */
const char *vmig_pluginset_path(const struct vmig_pluginset *set, size_t i);

/* The index of the plugin named name, or -ENOENT. */
int vmig_pluginset_find(const struct vmig_pluginset *set, const char *name);

/* One plugin file found by a scan; valid during the callback only. */
struct vmig_scan_entry {
	const char *path;
	int error;                      /* 0 or as vmig_pluginset_load */
	const char *errmsg;             /* when error != 0 */
	const struct vmig_plugin *desc; /* when error == 0 */
};

/*
 * Calls fn for every file named vmig-*.so in the search directories, in
 * search order, sorted by name within a directory; a file whose name was
 * already seen in an earlier directory is skipped (shadowed). Each file is
 * loaded for the call and unloaded after, unless something else holds
 * it. Two files declaring the same plugin name: the second gets
 * VMIG_EDUPLICATE. Returns the number of entries, or -ENOMEM.
 */
int vmig_pluginset_scan(struct vmig_pluginset *set,
			const struct vmig_host *host,
			void (*fn)(void *opaque,
				   const struct vmig_scan_entry *entry),
			void *opaque);

#endif /* VMIG_CORE_LOADER_H */
