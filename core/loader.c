/*
 * loader.c: finding, loading, validating and unloading plugins.
 *
 * This file owns the plugin sets of the sessions and the process-wide
 * registry of loaded plugin files. The registry is keyed by the file's
 * (st_dev, st_ino), so that one file reached by two paths, or loaded by
 * two sets, has one dlopen handle and one reference count; the object is
 * closed when its last reference goes.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <vmig/plugin.h>
#include <vmig/vmig.h>

#include "core/loader.h"

#ifndef VMIG_PLUGIN_INSTALL_DIR
#error "the build must define VMIG_PLUGIN_INSTALL_DIR"
#endif

/* A plugin name, and so a file name vmig-<name>.so, is short and plain. */
#define NAME_MAX_LEN 63

/* The smallest descriptor of plugin ABI 1.0: everything up to ops. */
#define PLUGIN_MIN_SIZE                          \
	(offsetof(struct vmig_plugin, ops) + \
	 sizeof(((struct vmig_plugin *)0)->ops))

/* The smallest operations table that holds create. */
#define OPS_MIN_SIZE                                    \
	(offsetof(struct vmig_source_ops, create) + \
	 sizeof(((struct vmig_source_ops *)0)->create))

/* Where a registered (linked-in) plugin comes from, in messages. */
#define REGISTERED_ORIGIN "registered plugin"

/* One loaded file, shared by every set that loaded it. */
struct loaded_file {
	dev_t dev;
	ino_t ino;
	void *handle;
	unsigned int refs;
	struct loaded_file *next;
};

/* One plugin of a set: a file's (file != NULL) or a registered one. */
struct set_plugin {
	const struct vmig_plugin *desc;
	struct loaded_file *file;
	char *path; /* as this set reached the file */
	void *user; /* a registered one's user pointer */
};

struct vmig_pluginset {
	char **dirs;
	size_t nr_dirs;
	struct set_plugin *plugins;
	size_t nr_plugins;
	size_t cap_plugins;
	/* The last list vmig_pluginset_search_dirs() returned. */
	char **search;
	size_t nr_search;
};

/* A list of strings that the caller frees with strv_free. */
struct strv {
	char **v;
	size_t n;
	size_t cap;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct loaded_file *registry;

/*
 * The table entry points get when the caller has none: plugins may rely
 * on a non-NULL table whose size they can check.
 */
static const struct vmig_host minimal_host = {
	.size = sizeof(struct vmig_host),
	.abi_minor = VMIG_PLUGIN_ABI_MINOR,
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void strv_free(struct strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
	sv->cap = 0;
}

/* Appends a copy of the first len bytes of s. */
static int strv_addn(struct strv *sv, const char *s, size_t len)
{
	char *copy;

	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 8;
		char **v = realloc(sv->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		sv->v = v;
		sv->cap = cap;
	}
	copy = strndup(s, len);
	if (!copy)
		return -ENOMEM;
	sv->v[sv->n++] = copy;
	return 0;
}

static int strv_add(struct strv *sv, const char *s)
{
	return strv_addn(sv, s, strlen(s));
}

static bool strv_has(const struct strv *sv, const char *s)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return true;
	return false;
}

/*
 * A plugin name, as a descriptor declares it or as the user asks for it.
 * Returns NULL when valid, else what is wrong with it.
 */
static const char *name_problem(const char *name)
{
	size_t len = strnlen(name, NAME_MAX_LEN + 1);
	size_t i;

	if (len == 0)
		return "is empty";
	if (len > NAME_MAX_LEN)
		return "is longer than 63 characters";
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return "has a character outside [a-z0-9._-]";
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The install directory                                               */

static pthread_once_t install_dir_once = PTHREAD_ONCE_INIT;
static char install_dir[PATH_MAX];

static void install_dir_init(void)
{
	const char *dflt = VMIG_PLUGIN_INSTALL_DIR;
	char dir[PATH_MAX];
	const char *base, *slash;
	Dl_info info;
	int n;

	snprintf(install_dir, sizeof(install_dir), "%s", dflt);
	/*
	 * A static function of this file is in whichever object the loader
	 * was linked into; only libvmig itself has plugins next to it.
	 */
	if (!dladdr((void *)install_dir_init, &info) || !info.dli_fname)
		return;
	slash = strrchr(info.dli_fname, '/');
	base = slash ? slash + 1 : info.dli_fname;
	if (strncmp(base, "libvmig.so", strlen("libvmig.so")) != 0)
		return;
	if (!slash) {
		snprintf(dir, sizeof(dir), ".");
	} else if (slash == info.dli_fname) {
		snprintf(dir, sizeof(dir), "/");
	} else {
		n = snprintf(dir, sizeof(dir), "%.*s",
			     (int)(slash - info.dli_fname), info.dli_fname);
		if (n < 0 || (size_t)n >= sizeof(dir))
			return;
	}
	/*
	 * The dynamic loader keeps the name it was given, which may be
	 * relative to a working directory that the program can change.
	 */
	if (dir[0] != '/') {
		char abs[PATH_MAX];

		if (!realpath(dir, abs))
			return;
		snprintf(dir, sizeof(dir), "%s", abs);
	}
	n = snprintf(install_dir, sizeof(install_dir), "%s%svmig/plugins",
		     dir, strcmp(dir, "/") == 0 ? "" : "/");
	if (n < 0 || (size_t)n >= sizeof(install_dir))
		snprintf(install_dir, sizeof(install_dir), "%s", dflt);
}

const char *vmig_loader_install_dir(void)
{
	pthread_once(&install_dir_once, install_dir_init);
	return install_dir;
}

/* ------------------------------------------------------------------ */
/* Descriptors                                                         */

int vmig_plugin_validate(const struct vmig_plugin *desc, const char *origin,
			 char *err, size_t errlen)
{
	const struct vmig_source_ops *ops;
	const char *problem;

	if (!origin)
		origin = "plugin";
	if (!desc) {
		set_err(err, errlen, "%s: the descriptor is NULL", origin);
		return VMIG_EBADPLUGIN;
	}
	/*
	 * size and abi_major are the two fields every major shares; nothing
	 * else may be read before both are known to be there and right.
	 */
	if (desc->size < offsetof(struct vmig_plugin, abi_major) +
				 sizeof(desc->abi_major)) {
		set_err(err, errlen,
			"%s: descriptor size %u is too small to hold abi_major",
			origin, desc->size);
		return VMIG_EBADPLUGIN;
	}
	if (desc->abi_major != VMIG_PLUGIN_ABI_MAJOR) {
		set_err(err, errlen,
			"%s: built for plugin ABI %u.x, this vmig has %u.x",
			origin, desc->abi_major, VMIG_PLUGIN_ABI_MAJOR);
		return VMIG_EABI;
	}
	if (desc->size < PLUGIN_MIN_SIZE) {
		set_err(err, errlen,
			"%s: descriptor size %u is below the plugin ABI 1.0 minimum of %zu bytes",
			origin, desc->size, (size_t)PLUGIN_MIN_SIZE);
		return VMIG_EBADPLUGIN;
	}
	if (!desc->name) {
		set_err(err, errlen, "%s: descriptor field name is NULL",
			origin);
		return VMIG_EBADPLUGIN;
	}
	problem = name_problem(desc->name);
	if (problem) {
		set_err(err, errlen, "%s: descriptor field name \"%.*s\" %s",
			origin, NAME_MAX_LEN + 1, desc->name, problem);
		return VMIG_EBADPLUGIN;
	}
	ops = desc->ops;
	if (!ops) {
		set_err(err, errlen, "%s: descriptor field ops is NULL",
			origin);
		return VMIG_EBADPLUGIN;
	}
	if (ops->size < OPS_MIN_SIZE) {
		set_err(err, errlen,
			"%s: ops size %u is too small to hold create (%zu bytes)",
			origin, ops->size, (size_t)OPS_MIN_SIZE);
		return VMIG_EBADPLUGIN;
	}
	if (!ops->create) {
		set_err(err, errlen, "%s: ops field create is NULL", origin);
		return VMIG_EBADPLUGIN;
	}
	if (desc->precision > VMIG_PRECISION_ALL_MAPPED) {
		set_err(err, errlen,
			"%s: descriptor field precision %u is not an enum vmig_precision value",
			origin, desc->precision);
		return VMIG_EBADPLUGIN;
	}
	if (desc->page_sizes == 0) {
		set_err(err, errlen,
			"%s: descriptor field page_sizes is 0 (no page size)",
			origin);
		return VMIG_EBADPLUGIN;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The registry of loaded files                                        */

/*
 * Takes a reference on the file at path (already stat'ed into st),
 * opening it when no set holds it yet.
 */
static int file_get(const char *path, const struct stat *st,
		    struct loaded_file **out, char *err, size_t errlen)
{
	struct loaded_file *f;
	const char *why;
	void *handle;

	pthread_mutex_lock(&registry_lock);
	for (f = registry; f; f = f->next) {
		if (f->dev == st->st_dev && f->ino == st->st_ino) {
			f->refs++;
			pthread_mutex_unlock(&registry_lock);
			*out = f;
			return 0;
		}
	}
	/*
	 * dlopen runs under the lock so that two threads loading one file
	 * cannot both add it. RTLD_LOCAL keeps each plugin's symbols to
	 * itself: two plugins may define the same global names.
	 */
	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		why = dlerror();
		pthread_mutex_unlock(&registry_lock);
		set_err(err, errlen, "%s: not a loadable object: %s", path,
			why ? why : "unknown dynamic loader error");
		return VMIG_ENOTPLUGIN;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		dlclose(handle);
		pthread_mutex_unlock(&registry_lock);
		set_err(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->handle = handle;
	f->refs = 1;
	f->next = registry;
	registry = f;
	pthread_mutex_unlock(&registry_lock);
	*out = f;
	return 0;
}

static void file_put(struct loaded_file *f)
{
	struct loaded_file **pp;

	if (!f)
		return;
	pthread_mutex_lock(&registry_lock);
	if (--f->refs > 0) {
		pthread_mutex_unlock(&registry_lock);
		return;
	}
	for (pp = &registry; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	dlclose(f->handle);
	pthread_mutex_unlock(&registry_lock);
	free(f);
}

/*
 * Opens a plugin file and validates what its entry point returns. On
 * success the caller holds a reference on *file.
 */
static int plugin_open(const char *path, const struct stat *st,
		       const struct vmig_host *host,
		       struct loaded_file **file,
		       const struct vmig_plugin **desc, char *err,
		       size_t errlen)
{
	const struct vmig_plugin *d;
	vmig_plugin_entry_fn entry;
	struct loaded_file *f;
	void *sym;
	int ret;

	ret = file_get(path, st, &f, err, errlen);
	if (ret < 0)
		return ret;
	dlerror();
	sym = dlsym(f->handle, VMIG_PLUGIN_ENTRY_NAME);
	if (!sym) {
		set_err(err, errlen, "%s: no %s entry point", path,
			VMIG_PLUGIN_ENTRY_NAME);
		ret = VMIG_ENOENTRY;
		goto fail;
	}
	entry = (vmig_plugin_entry_fn)sym;
	/* The entry runs unlocked: it may log, and the log may call us. */
	d = entry(host ? host : &minimal_host, VMIG_PLUGIN_ABI_MAJOR);
	if (!d) {
		set_err(err, errlen, "%s: %s refused to initialise", path,
			VMIG_PLUGIN_ENTRY_NAME);
		ret = VMIG_EREFUSED;
		goto fail;
	}
	ret = vmig_plugin_validate(d, path, err, errlen);
	if (ret < 0)
		goto fail;
	*file = f;
	*desc = d;
	return 0;
fail:
	file_put(f);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Plugin sets                                                         */

int vmig_pluginset_new(struct vmig_pluginset **out)
{
	struct vmig_pluginset *set;

	if (!out)
		return -EINVAL;
	set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	*out = set;
	return 0;
}

static void free_strings(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void vmig_pluginset_free(struct vmig_pluginset *set)
{
	size_t i;

	if (!set)
		return;
	for (i = 0; i < set->nr_plugins; i++) {
		file_put(set->plugins[i].file);
		free(set->plugins[i].path);
	}
	free(set->plugins);
	free_strings(set->dirs, set->nr_dirs);
	free_strings(set->search, set->nr_search);
	free(set);
}

int vmig_pluginset_add_path(struct vmig_pluginset *set, const char *dir)
{
	char **dirs;
	char *copy;

	if (!set || !dir || !dir[0])
		return -EINVAL;
	copy = strdup(dir);
	if (!copy)
		return -ENOMEM;
	dirs = realloc(set->dirs, (set->nr_dirs + 1) * sizeof(*dirs));
	if (!dirs) {
		free(copy);
		return -ENOMEM;
	}
	dirs[set->nr_dirs++] = copy;
	set->dirs = dirs;
	return 0;
}

/* Builds the search list as it is now: set dirs, environment, install. */
static int build_search(const struct vmig_pluginset *set, struct strv *sv)
{
	const char *env = getenv("VMIG_PLUGIN_PATH");
	size_t i;
	int ret;

	for (i = 0; i < set->nr_dirs; i++) {
		ret = strv_add(sv, set->dirs[i]);
		if (ret < 0)
			goto fail;
	}
	while (env && *env) {
		const char *colon = strchr(env, ':');
		size_t len = colon ? (size_t)(colon - env) : strlen(env);

		if (len > 0) {
			ret = strv_addn(sv, env, len);
			if (ret < 0)
				goto fail;
		}
		env = colon ? colon + 1 : NULL;
	}
	ret = strv_add(sv, vmig_loader_install_dir());
	if (ret < 0)
		goto fail;
	return 0;
fail:
	strv_free(sv);
	return ret;
}

int vmig_pluginset_search_dirs(struct vmig_pluginset *set,
			       const char *const **dirs)
{
	struct strv sv = { 0 };
	int ret;

	if (!set || !dirs)
		return -EINVAL;
	ret = build_search(set, &sv);
	if (ret < 0)
		return ret;
	free_strings(set->search, set->nr_search);
	set->search = sv.v;
	set->nr_search = sv.n;
	*dirs = (const char *const *)set->search;
	return (int)set->nr_search;
}

static char *join_path(const char *dir, const char *file)
{
	size_t dl = strlen(dir);
	char *p;

	if (asprintf(&p, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/",
		     file) < 0)
		return NULL;
	return p;
}

/*
 * Makes a path absolute, without resolving symbolic links: messages and
 * vmig_pluginset_path() name the file the user pointed at, and stay right
 * if the program changes its working directory later.
 */
static char *full_path(const char *path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return strdup(path);
	while (path[0] == '.' && path[1] == '/') {
		path += 2;
		while (path[0] == '/')
			path++;
	}
	return join_path(cwd, path);
}

/* Finds the file of a plugin name along the search list. */
static int find_by_name(const struct vmig_pluginset *set, const char *name,
			char **path, struct stat *st, char *err,
			size_t errlen)
{
	struct strv sv = { 0 };
	char *file, *p, *list;
	size_t i, len;
	int ret;

	if (asprintf(&file, "vmig-%s.so", name) < 0)
		return -ENOMEM;
	ret = build_search(set, &sv);
	if (ret < 0) {
		free(file);
		return ret;
	}
	for (i = 0; i < sv.n; i++) {
		p = join_path(sv.v[i], file);
		if (!p) {
			ret = -ENOMEM;
			goto out;
		}
		if (stat(p, st) == 0) {
			*path = full_path(p);
			free(p);
			ret = *path ? 0 : -ENOMEM;
			goto out;
		}
		free(p);
	}
	/* Say where we looked: that is what the user has to fix. */
	len = 1;
	for (i = 0; i < sv.n; i++)
		len += strlen(sv.v[i]) + 2;
	list = malloc(len);
	if (!list) {
		ret = -ENOMEM;
		goto out;
	}
	list[0] = '\0';
	for (i = 0; i < sv.n; i++) {
		if (i)
			strcat(list, ", ");
		strcat(list, sv.v[i]);
	}
	set_err(err, errlen, "plugin \"%s\" not found: no %s in %s", name,
		file, list);
	free(list);
	ret = -ENOENT;
out:
	strv_free(&sv);
	free(file);
	return ret;
}

/* The origin of plugin i, for messages. */
static const char *plugin_origin(const struct vmig_pluginset *set, size_t i)
{
	return set->plugins[i].path ? set->plugins[i].path : REGISTERED_ORIGIN;
}

static int set_append(struct vmig_pluginset *set,
		      const struct vmig_plugin *desc,
		      struct loaded_file *file, const char *path)
{
	struct set_plugin *sp;

	if (set->nr_plugins > INT_MAX - 1)
		return -ENOMEM;
	if (set->nr_plugins == set->cap_plugins) {
		size_t cap = set->cap_plugins ? set->cap_plugins * 2 : 4;

		sp = realloc(set->plugins, cap * sizeof(*sp));
		if (!sp)
			return -ENOMEM;
		set->plugins = sp;
		set->cap_plugins = cap;
	}
	sp = &set->plugins[set->nr_plugins];
	sp->desc = desc;
	sp->file = file;
	sp->path = NULL;
	sp->user = NULL;
	if (path) {
		sp->path = strdup(path);
		if (!sp->path)
			return -ENOMEM;
	}
	return (int)set->nr_plugins++;
}

/* Refuses a second plugin of the same name in one set. */
static int check_duplicate(const struct vmig_pluginset *set,
			   const struct vmig_plugin *desc, const char *origin,
			   char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < set->nr_plugins; i++) {
		if (strcmp(set->plugins[i].desc->name, desc->name) == 0) {
			set_err(err, errlen,
				"%s: plugin name \"%s\" is already taken by %s",
				origin, desc->name, plugin_origin(set, i));
			return VMIG_EDUPLICATE;
		}
	}
	return 0;
}

int vmig_pluginset_load(struct vmig_pluginset *set, const char *name_or_path,
			const struct vmig_host *host, char *err,
			size_t errlen)
{
	const struct vmig_plugin *desc;
	struct loaded_file *file;
	const char *problem;
	char *path = NULL;
	struct stat st;
	size_t i;
	int ret;

	if (!set || !name_or_path) {
		set_err(err, errlen, "no plugin name or path given");
		return -EINVAL;
	}
	if (strchr(name_or_path, '/')) {
		path = full_path(name_or_path);
		if (!path)
			return -ENOMEM;
		if (stat(path, &st) != 0) {
			ret = -errno;
			if (ret == -ENOENT || ret == -ENOTDIR) {
				set_err(err, errlen,
					"%s: plugin file does not exist",
					path);
				ret = -ENOENT;
			} else {
				set_err(err, errlen, "%s: cannot stat: %s",
					path, strerror(-ret));
			}
			free(path);
			return ret;
		}
	} else {
		problem = name_problem(name_or_path);
		if (problem) {
			set_err(err, errlen, "invalid plugin name \"%.*s\": %s",
				NAME_MAX_LEN + 1, name_or_path, problem);
			return -EINVAL;
		}
		ret = find_by_name(set, name_or_path, &path, &st, err, errlen);
		if (ret < 0)
			return ret;
	}
	/* The same file again, by whatever path, is the plugin we have. */
	for (i = 0; i < set->nr_plugins; i++) {
		file = set->plugins[i].file;
		if (file && file->dev == st.st_dev && file->ino == st.st_ino) {
			free(path);
			return (int)i;
		}
	}
	ret = plugin_open(path, &st, host, &file, &desc, err, errlen);
	if (ret < 0)
		goto out;
	ret = check_duplicate(set, desc, path, err, errlen);
	if (ret == 0)
		ret = set_append(set, desc, file, path);
	if (ret < 0) {
		if (ret == -ENOMEM)
			set_err(err, errlen, "%s: out of memory", path);
		file_put(file);
	}
out:
	free(path);
	return ret;
}

int vmig_pluginset_register(struct vmig_pluginset *set,
			    const struct vmig_plugin *desc, char *err,
			    size_t errlen)
{
	size_t i;
	int ret;

	if (!set) {
		set_err(err, errlen, "no plugin set");
		return -EINVAL;
	}
	ret = vmig_plugin_validate(desc, REGISTERED_ORIGIN, err, errlen);
	if (ret < 0)
		return ret;
	/* Registering one descriptor twice is as loading one file twice. */
	for (i = 0; i < set->nr_plugins; i++)
		if (!set->plugins[i].file && set->plugins[i].desc == desc)
			return (int)i;
	ret = check_duplicate(set, desc, REGISTERED_ORIGIN, err, errlen);
	if (ret < 0)
		return ret;
	ret = set_append(set, desc, NULL, NULL);
	if (ret < 0)
		set_err(err, errlen, REGISTERED_ORIGIN ": out of memory");
	return ret;
}

void vmig_pluginset_set_user(struct vmig_pluginset *set, size_t i,
			     void *user)
{
	if (set && i < set->nr_plugins && !set->plugins[i].file)
		set->plugins[i].user = user;
}

void *vmig_pluginset_user(const struct vmig_pluginset *set, size_t i)
{
	return set && i < set->nr_plugins ? set->plugins[i].user : NULL;
}

size_t vmig_pluginset_count(const struct vmig_pluginset *set)
{
	return set ? set->nr_plugins : 0;
}

const struct vmig_plugin *vmig_pluginset_get(const struct vmig_pluginset *set,
					     size_t i)
{
	if (!set || i >= set->nr_plugins)
		return NULL;
	return set->plugins[i].desc;
}

const char *vmig_pluginset_path(const struct vmig_pluginset *set, size_t i)
{
	if (!set || i >= set->nr_plugins)
		return NULL;
	return set->plugins[i].path;
}

int vmig_pluginset_find(const struct vmig_pluginset *set, const char *name)
{
	size_t i;

	if (!set || !name)
		return -ENOENT;
	for (i = 0; i < set->nr_plugins; i++)
		if (strcmp(set->plugins[i].desc->name, name) == 0)
			return (int)i;
	return -ENOENT;
}

/* ------------------------------------------------------------------ */
/* Scanning                                                            */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_plugin_file(const char *name)
{
	size_t len = strlen(name);

	return len > strlen("vmig-") + strlen(".so") &&
	       strncmp(name, "vmig-", strlen("vmig-")) == 0 &&
	       strcmp(name + len - strlen(".so"), ".so") == 0;
}

/* The vmig-*.so names of one directory, sorted; none if unreadable. */
static int list_dir(const char *dir, struct strv *names)
{
	struct dirent *de;
	DIR *d;
	int ret = 0;

	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (!is_plugin_file(de->d_name))
			continue;
		ret = strv_add(names, de->d_name);
		if (ret < 0)
			break;
	}
	closedir(d);
	if (ret < 0)
		return ret;
	if (names->n > 1)
		qsort(names->v, names->n, sizeof(*names->v), cmp_names);
	return 0;
}

/* What a scan remembers of the plugins it has reported as good. */
struct scan_state {
	struct strv seen;       /* file names, for shadowing */
	struct strv good_names; /* plugin names ... */
	struct strv good_paths; /* ... and their files, for duplicates */
	char *err;
	size_t errlen;
};

static int scan_file(struct scan_state *ss, const char *path,
		     const struct vmig_host *host,
		     void (*fn)(void *opaque,
				const struct vmig_scan_entry *entry),
		     void *opaque)
{
	struct vmig_scan_entry entry = { .path = path };
	const struct vmig_plugin *desc = NULL;
	struct loaded_file *file = NULL;
	struct stat st;
	size_t i;
	int ret;

	ss->err[0] = '\0';
	if (stat(path, &st) != 0) {
		/* Removed since the directory was read. */
		ret = -errno;
		set_err(ss->err, ss->errlen, "%s: cannot stat: %s", path,
			strerror(-ret));
	} else {
		ret = plugin_open(path, &st, host, &file, &desc, ss->err,
				  ss->errlen);
	}
	for (i = 0; ret == 0 && i < ss->good_names.n; i++) {
		if (strcmp(ss->good_names.v[i], desc->name) == 0) {
			set_err(ss->err, ss->errlen,
				"%s: plugin name \"%s\" is already taken by %s",
				path, desc->name, ss->good_paths.v[i]);
			ret = VMIG_EDUPLICATE;
		}
	}
	if (ret == 0) {
		if (strv_add(&ss->good_names, desc->name) < 0 ||
		    strv_add(&ss->good_paths, path) < 0) {
			file_put(file);
			return -ENOMEM;
		}
		entry.desc = desc;
	} else {
		entry.error = ret;
		entry.errmsg = ss->err;
	}
	if (fn)
		fn(opaque, &entry);
	file_put(file);
	return 0;
}

int vmig_pluginset_scan(struct vmig_pluginset *set,
			const struct vmig_host *host,
			void (*fn)(void *opaque,
				   const struct vmig_scan_entry *entry),
			void *opaque)
{
	struct scan_state ss = { 0 };
	struct strv dirs = { 0 };
	size_t d, i;
	int count = 0;
	int ret;

	if (!set)
		return -EINVAL;
	/* Room for a path from the dynamic loader's text and one of ours. */
	ss.errlen = 2 * PATH_MAX + 512;
	ss.err = malloc(ss.errlen);
	if (!ss.err)
		return -ENOMEM;
	ret = build_search(set, &dirs);
	if (ret < 0)
		goto out;
	for (d = 0; d < dirs.n; d++) {
		struct strv names = { 0 };

		ret = list_dir(dirs.v[d], &names);
		for (i = 0; ret == 0 && i < names.n; i++) {
			char *rel, *path;

			/* The same file name earlier in the order wins. */
			if (strv_has(&ss.seen, names.v[i]))
				continue;
			ret = strv_add(&ss.seen, names.v[i]);
			if (ret < 0)
				break;
			rel = join_path(dirs.v[d], names.v[i]);
			path = rel ? full_path(rel) : NULL;
			free(rel);
			if (!path) {
				ret = -ENOMEM;
				break;
			}
			ret = scan_file(&ss, path, host, fn, opaque);
			free(path);
			if (ret == 0)
				count++;
		}
		strv_free(&names);
		if (ret < 0)
			goto out;
	}
	ret = count;
out:
	strv_free(&dirs);
	strv_free(&ss.seen);
	strv_free(&ss.good_names);
	strv_free(&ss.good_paths);
	free(ss.err);
	return ret;
}
