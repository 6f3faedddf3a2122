/*
 * test_loader.c: the plugin loader (core/loader.c) against the plugins of
 * tests/plugins, good and broken: every error with its message, the
 * search order, shadowing, reference counting, RTLD_LOCAL, scanning and
 * the install directory found through dladdr.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vmig/plugin.h>
#include <vmig/vmig.h>

#include "core/loader.h"
#include "unit/testutil.h"

#define TP(file) VMIG_TEST_PLUGIN_DIR "/" file
#define GOOD TP("vmig-test-good.so")
#define GOOD2 TP("dup/vmig-test-good2.so")
#define INSTALL_DIR "/nonexistent/vmig/plugins"

static char err[8192];

/* Whether the dynamic loader still has path mapped. */
static bool is_loaded(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);

	if (!h)
		return false;
	dlclose(h);
	return true;
}

/* A string for CUnit's string assertions, which do not take NULL. */
static const char *nn(const char *s)
{
	return s ? s : "(null)";
}

static bool contains(const char *haystack, const char *needle)
{
	return haystack && strstr(haystack, needle) != NULL;
}

static struct vmig_pluginset *new_set(void)
{
	struct vmig_pluginset *set = NULL;

	CU_ASSERT_FATAL(vmig_pluginset_new(&set) == 0);
	CU_ASSERT_FATAL(set != NULL);
	return set;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	CU_ASSERT(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

static void make_tmpdir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/vmig-test-loader-XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(buf) != NULL);
}

static char *path_in(const char *dir, const char *file)
{
	char *p;

	CU_ASSERT_FATAL(asprintf(&p, "%s/%s", dir, file) >= 0);
	return p;
}

static void make_dir(const char *dir, const char *sub)
{
	char *p = path_in(dir, sub);

	CU_ASSERT_FATAL(mkdir(p, 0700) == 0);
	free(p);
}

static void link_in(const char *dir, const char *name, const char *target)
{
	char *p = path_in(dir, name);

	CU_ASSERT_FATAL(symlink(target, p) == 0);
	free(p);
}

/* A copy is another inode: the loader must take it for another file. */
static void copy_in(const char *dir, const char *name, const char *src)
{
	char *p = path_in(dir, name);
	char buf[65536];
	ssize_t n;
	int in, out;

	in = open(src, O_RDONLY | O_CLOEXEC);
	CU_ASSERT_FATAL(in >= 0);
	out = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	CU_ASSERT_FATAL(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		CU_ASSERT_FATAL(write(out, buf, (size_t)n) == n);
	CU_ASSERT(n == 0);
	close(in);
	close(out);
	free(p);
}

/* Makes an instance of the plugin and has it probe a device. */
static int probe_once(const struct vmig_plugin *desc, struct vmig_probe *out)
{
	struct vmig_device_desc dev = {
		.size = sizeof(dev),
		.id = 7,
		.name = "nic0",
		.kind = VMIG_DEVICE_VFIO_PCI,
		.device_fd = -1,
		.group_fd = -1,
	};
	void *inst = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	ret = desc->ops->create(NULL, &inst);
	if (ret < 0)
		return ret;
	ret = desc->ops->probe(inst, &dev, out);
	desc->ops->destroy(inst);
	return ret;
}

static int suite_init(void)
{
	/* CTest points VMIG_PLUGIN_PATH at the real plugins: not here. */
	return unsetenv("VMIG_PLUGIN_PATH") == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */

static void test_load_good(void)
{
	struct vmig_pluginset *set = new_set();
	const struct vmig_plugin *desc;
	struct vmig_probe probe;

	CU_ASSERT_FALSE(is_loaded(GOOD));
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, GOOD, NULL, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(vmig_pluginset_count(set), 1);
	desc = vmig_pluginset_get(set, 0);
	CU_ASSERT_FATAL(desc != NULL);
	CU_ASSERT_STRING_EQUAL(desc->name, "test-good");
	CU_ASSERT_STRING_EQUAL(nn(vmig_pluginset_path(set, 0)), GOOD);
	CU_ASSERT_EQUAL(vmig_pluginset_find(set, "test-good"), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_find(set, "test-other"), -ENOENT);
	CU_ASSERT_PTR_NULL(vmig_pluginset_get(set, 1));
	CU_ASSERT_PTR_NULL(vmig_pluginset_path(set, 1));
	CU_ASSERT(is_loaded(GOOD));

	CU_ASSERT_EQUAL(probe_once(desc, &probe), 0);
	CU_ASSERT_EQUAL(probe.precision, VMIG_PRECISION_NONE);
	CU_ASSERT(contains(probe.reason, "test-good tracks no device"));
	CU_ASSERT(contains(probe.reason, "nic0"));

	vmig_pluginset_free(set);
	CU_ASSERT_FALSE(is_loaded(GOOD));
}

static char logged[512];
static int log_calls;

static void record_log(void *ctx, int level, const char *msg)
{
	CU_ASSERT_PTR_EQUAL(ctx, &log_calls);
	CU_ASSERT_EQUAL(level, VMIG_LOG_DEBUG);
	log_calls++;
	snprintf(logged, sizeof(logged), "%s", msg);
}

static void test_host_reaches_entry(void)
{
	struct vmig_host host = {
		.size = sizeof(host),
		.abi_minor = VMIG_PLUGIN_ABI_MINOR,
		.ctx = &log_calls,
		.log = record_log,
	};
	struct vmig_pluginset *set = new_set();

	/* test-good refuses a NULL table: NULL here gets the minimal one. */
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, GOOD, NULL, err, sizeof(err)),
			0);
	vmig_pluginset_free(set);

	set = new_set();
	log_calls = 0;
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, GOOD, &host, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(log_calls, 1);
	CU_ASSERT_STRING_EQUAL(logged,
			       "test-good: entry called for plugin ABI 1");
	vmig_pluginset_free(set);
}

static void test_missing_path(void)
{
	struct vmig_pluginset *set = new_set();
	const char *absent = TP("vmig-test-absent.so");

	CU_ASSERT_EQUAL(vmig_pluginset_load(set, absent, NULL, err,
					    sizeof(err)), -ENOENT);
	CU_ASSERT(contains(err, absent));
	CU_ASSERT(contains(err, "does not exist"));

	CU_ASSERT_EQUAL(vmig_pluginset_load(set, "/nonexistent-dir/vmig-x.so",
					    NULL, err, sizeof(err)), -ENOENT);
	CU_ASSERT(contains(err, "/nonexistent-dir/vmig-x.so"));
	CU_ASSERT_EQUAL(vmig_pluginset_count(set), 0);
	vmig_pluginset_free(set);
}

static void test_missing_name(void)
{
	struct vmig_pluginset *set = new_set();
	const char *dirs[] = { "/nonexistent/set1", "/nonexistent/set2",
			       "/nonexistent/env1", "/nonexistent/env2",
			       INSTALL_DIR };
	size_t i;

	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, dirs[0]), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, dirs[1]), 0);
	CU_ASSERT_EQUAL(setenv("VMIG_PLUGIN_PATH",
			       "/nonexistent/env1::/nonexistent/env2:", 1), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, "absent", NULL, err,
					    sizeof(err)), -ENOENT);
	CU_ASSERT(contains(err, "vmig-absent.so"));
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		CU_ASSERT(contains(err, dirs[i]));
	CU_ASSERT_EQUAL(unsetenv("VMIG_PLUGIN_PATH"), 0);
	vmig_pluginset_free(set);
}

static void test_not_elf(void)
{
	struct vmig_pluginset *set = new_set();
	const char *path = TP("vmig-test-notelf.so");
	char why[1024];
	void *h;

	/* What the dynamic loader says about the file, to find it quoted. */
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	CU_ASSERT_PTR_NULL_FATAL(h);
	snprintf(why, sizeof(why), "%s", dlerror());
	CU_ASSERT(strlen(why) > 0);

	CU_ASSERT_EQUAL(vmig_pluginset_load(set, path, NULL, err, sizeof(err)),
			VMIG_ENOTPLUGIN);
	CU_ASSERT(contains(err, path));
	CU_ASSERT(contains(err, why));
	CU_ASSERT_EQUAL(vmig_pluginset_count(set), 0);
	vmig_pluginset_free(set);
}

/* One broken plugin: the error it must get and what its message says. */
struct broken_case {
	const char *file;
	int error;
	const char *needles[3];
};

static const struct broken_case broken_cases[] = {
	{ "vmig-test-noentry.so", VMIG_ENOENTRY,
	  { VMIG_PLUGIN_ENTRY_NAME, NULL } },
	{ "vmig-test-abi2.so", VMIG_EABI, { "2.x", "1.x", NULL } },
	{ "vmig-test-short.so", VMIG_EBADPLUGIN, { "size 8", "1.0", NULL } },
	{ "vmig-test-noname.so", VMIG_EBADPLUGIN, { "name", "NULL", NULL } },
	{ "vmig-test-badname.so", VMIG_EBADPLUGIN,
	  { "name", "\"Bad Name\"", "[a-z0-9._-]" } },
	{ "vmig-test-noops.so", VMIG_EBADPLUGIN, { "ops", "NULL", NULL } },
	{ "vmig-test-nocreate.so", VMIG_EBADPLUGIN,
	  { "create", "NULL", NULL } },
	{ "vmig-test-refuse.so", VMIG_EREFUSED, { "refused", NULL } },
};

static void test_broken_plugins(void)
{
	size_t i, j;

	for (i = 0; i < sizeof(broken_cases) / sizeof(broken_cases[0]); i++) {
		const struct broken_case *bc = &broken_cases[i];
		struct vmig_pluginset *set = new_set();
		char *path = path_in(VMIG_TEST_PLUGIN_DIR, bc->file);
		int ret;

		err[0] = '\0';
		ret = vmig_pluginset_load(set, path, NULL, err, sizeof(err));
		if (ret != bc->error)
			fprintf(stderr, "\n%s: got %d (%s)\n", bc->file, ret,
				err);
		CU_ASSERT_EQUAL(ret, bc->error);
		CU_ASSERT(contains(err, path));
		for (j = 0; j < 3 && bc->needles[j]; j++) {
			if (!contains(err, bc->needles[j]))
				fprintf(stderr, "\n%s: \"%s\" lacks \"%s\"\n",
					bc->file, err, bc->needles[j]);
			CU_ASSERT(contains(err, bc->needles[j]));
		}
		CU_ASSERT_EQUAL(vmig_pluginset_count(set), 0);
		/* A refused file keeps no reference. */
		CU_ASSERT_FALSE(is_loaded(path));
		vmig_pluginset_free(set);
		free(path);
	}
}

static void test_newer_minor(void)
{
	struct vmig_pluginset *set = new_set();
	const struct vmig_plugin *desc;
	void *inst = NULL;

	CU_ASSERT_EQUAL(vmig_pluginset_load(set, TP("vmig-test-newer.so"),
					    NULL, err, sizeof(err)), 0);
	desc = vmig_pluginset_get(set, 0);
	CU_ASSERT_FATAL(desc != NULL);
	CU_ASSERT_STRING_EQUAL(desc->name, "test-newer");
	CU_ASSERT_EQUAL(desc->abi_minor, 99);
	CU_ASSERT(desc->size > sizeof(struct vmig_plugin));
	CU_ASSERT_EQUAL(desc->ops->create(NULL, &inst), 0);
	desc->ops->destroy(inst);
	vmig_pluginset_free(set);
}

static void test_same_file_twice(void)
{
	struct vmig_pluginset *set = new_set();
	char tmp[64], *alias;

	make_tmpdir(tmp, sizeof(tmp));
	link_in(tmp, "vmig-test-good.so", GOOD);
	alias = path_in(tmp, "vmig-test-good.so");

	CU_ASSERT_EQUAL(vmig_pluginset_load(set, TP("vmig-test-newer.so"),
					    NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, GOOD, NULL, err, sizeof(err)),
			1);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, GOOD, NULL, err, sizeof(err)),
			1);
	/* Another path to the same file is the same plugin. */
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, alias, NULL, err, sizeof(err)),
			1);
	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, tmp), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, "test-good", NULL, err,
					    sizeof(err)), 1);
	CU_ASSERT_EQUAL(vmig_pluginset_count(set), 2);
	vmig_pluginset_free(set);
	CU_ASSERT_FALSE(is_loaded(GOOD));

	free(alias);
	rm_tree(tmp);
}

static void test_refcount(void)
{
	struct vmig_pluginset *a = new_set(), *b = new_set();
	const struct vmig_plugin *da, *db;
	struct vmig_probe probe;

	CU_ASSERT_EQUAL(vmig_pluginset_load(a, GOOD, NULL, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(b, GOOD, NULL, err, sizeof(err)),
			0);
	da = vmig_pluginset_get(a, 0);
	db = vmig_pluginset_get(b, 0);
	/* One mapping of the object: the very same descriptor. */
	CU_ASSERT_PTR_NOT_NULL_FATAL(da);
	CU_ASSERT_PTR_EQUAL(da, db);

	vmig_pluginset_free(a);
	CU_ASSERT(is_loaded(GOOD));
	CU_ASSERT_EQUAL(probe_once(db, &probe), 0);
	CU_ASSERT(contains(probe.reason, "test-good tracks no device"));

	vmig_pluginset_free(b);
	CU_ASSERT_FALSE(is_loaded(GOOD));
}

#define THREAD_ROUNDS 50

static void *load_loop(void *arg)
{
	const struct vmig_plugin **first = arg;
	char msg[1024];
	int i;

	for (i = 0; i < THREAD_ROUNDS; i++) {
		struct vmig_pluginset *set;

		if (vmig_pluginset_new(&set) < 0)
			return (void *)1;
		if (vmig_pluginset_load(set, GOOD, NULL, msg,
					sizeof(msg)) != 0 ||
		    !vmig_pluginset_get(set, 0) ||
		    strcmp(vmig_pluginset_get(set, 0)->name, "test-good")) {
			vmig_pluginset_free(set);
			return (void *)1;
		}
		if (i == 0)
			*first = vmig_pluginset_get(set, 0);
		vmig_pluginset_free(set);
	}
	return NULL;
}

/* load_loop in two threads, each to its end without a failure. */
static void two_loaders(const struct vmig_plugin *first[2])
{
	pthread_t t[2];
	void *res[2];
	int i;

	for (i = 0; i < 2; i++)
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, load_loop,
					       &first[i]) == 0);
	for (i = 0; i < 2; i++) {
		CU_ASSERT(pthread_join(t[i], &res[i]) == 0);
		CU_ASSERT_PTR_NULL(res[i]);
	}
}

/* Sets loaded and freed from two threads keep the registry right. */
static void test_threads(void)
{
	const struct vmig_plugin *first[2] = { NULL, NULL };
	struct vmig_pluginset *hold = new_set();
	int i;

	/* Held here, the object stays at one address for both threads. */
	CU_ASSERT_EQUAL(vmig_pluginset_load(hold, GOOD, NULL, err, sizeof(err)),
			0);
	two_loaders(first);
	for (i = 0; i < 2; i++)
		CU_ASSERT_PTR_EQUAL(first[i], vmig_pluginset_get(hold, 0));
	vmig_pluginset_free(hold);
	CU_ASSERT_FALSE(is_loaded(GOOD));

	/* Unheld, the threads load and unload it over and over. */
	two_loaders(first);
	CU_ASSERT_FALSE(is_loaded(GOOD));
}

/* ------------------------------------------------------------------ */

static int reg_create(const struct vmig_host *host, void **instance)
{
	(void)host;
	*instance = NULL;
	return 0;
}

static const struct vmig_source_ops reg_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = reg_create,
};

/* The smallest operations table that holds create. */
static const struct vmig_source_ops reg_ops_min = {
	.size = offsetof(struct vmig_source_ops, create) + sizeof(void *),
	.create = reg_create,
};

static const struct vmig_source_ops reg_ops_short = {
	.size = offsetof(struct vmig_source_ops, create) + sizeof(void *) - 1,
	.create = reg_create,
};

static const struct vmig_source_ops reg_ops_nocreate = {
	.size = sizeof(struct vmig_source_ops),
};

/*
 * The cases below override REG_DESC's defaults, one field each: that is
 * what they are for.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"

#define REG_DESC(...)                                          \
	{                                                      \
		.size = sizeof(struct vmig_plugin),            \
		.abi_major = VMIG_PLUGIN_ABI_MAJOR,            \
		.abi_minor = VMIG_PLUGIN_ABI_MINOR,            \
		.name = "test-reg",                            \
		.precision = VMIG_PRECISION_EXACT,             \
		.page_sizes = VMIG_PAGE_SIZE,                  \
		.ops = &reg_ops,                               \
		__VA_ARGS__                                    \
	}

static const struct vmig_plugin reg_good = REG_DESC();

/* 1.0's minimum size is the whole 1.0 struct: everything up to ops. */
#define MIN_SIZE (offsetof(struct vmig_plugin, ops) + sizeof(void *))

struct reg_case {
	struct vmig_plugin desc;
	int error;
	const char *needle;
};

static const struct reg_case reg_cases[] = {
	{ REG_DESC(.size = 4), VMIG_EBADPLUGIN, "abi_major" },
	{ REG_DESC(.abi_major = 2), VMIG_EABI, "built for plugin ABI 2.x" },
	{ REG_DESC(.abi_major = 0), VMIG_EABI, "this vmig has 1.x" },
	{ REG_DESC(.size = MIN_SIZE - 1), VMIG_EBADPLUGIN, "minimum" },
	{ REG_DESC(.name = NULL), VMIG_EBADPLUGIN, "name is NULL" },
	{ REG_DESC(.name = ""), VMIG_EBADPLUGIN, "empty" },
	{ REG_DESC(.name = "a234567890123456789012345678901234567890"
			   "123456789012345678901234"),
	  VMIG_EBADPLUGIN, "longer than 63" },
	{ REG_DESC(.name = "Upper"), VMIG_EBADPLUGIN, "[a-z0-9._-]" },
	{ REG_DESC(.name = "a/b"), VMIG_EBADPLUGIN, "[a-z0-9._-]" },
	{ REG_DESC(.name = "a b"), VMIG_EBADPLUGIN, "[a-z0-9._-]" },
	{ REG_DESC(.ops = NULL), VMIG_EBADPLUGIN, "ops is NULL" },
	{ REG_DESC(.ops = &reg_ops_short), VMIG_EBADPLUGIN, "ops size" },
	{ REG_DESC(.ops = &reg_ops_nocreate), VMIG_EBADPLUGIN,
	  "create is NULL" },
	{ REG_DESC(.precision = VMIG_PRECISION_ALL_MAPPED + 1),
	  VMIG_EBADPLUGIN, "precision" },
	{ REG_DESC(.page_sizes = 0), VMIG_EBADPLUGIN, "page_sizes" },
};

/* Descriptors at the edges of what is valid. */
static const struct vmig_plugin reg_edges[] = {
	REG_DESC(.name = "e1", .size = MIN_SIZE),
	REG_DESC(.name = "e2.x_y-z", .ops = &reg_ops_min),
	REG_DESC(.name = "a23456789012345678901234567890123456789012345678"
			 "901234567890123"),
	REG_DESC(.name = "e4", .precision = VMIG_PRECISION_ALL_MAPPED),
	REG_DESC(.name = "e5", .precision = VMIG_PRECISION_NONE),
	REG_DESC(.name = "e6", .abi_minor = 1000),
};

#pragma GCC diagnostic pop

static void test_register(void)
{
	struct vmig_pluginset *set = new_set();
	size_t i;
	int ret;

	CU_ASSERT_EQUAL(vmig_pluginset_register(set, &reg_good, err,
						sizeof(err)), 0);
	/* The same descriptor again is the same plugin. */
	CU_ASSERT_EQUAL(vmig_pluginset_register(set, &reg_good, err,
						sizeof(err)), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_count(set), 1);
	CU_ASSERT_PTR_EQUAL(vmig_pluginset_get(set, 0), &reg_good);
	CU_ASSERT_PTR_NULL(vmig_pluginset_path(set, 0));
	CU_ASSERT_EQUAL(vmig_pluginset_find(set, "test-reg"), 0);

	CU_ASSERT_EQUAL(vmig_pluginset_register(set, NULL, err, sizeof(err)),
			VMIG_EBADPLUGIN);
	CU_ASSERT(contains(err, "registered plugin"));
	for (i = 0; i < sizeof(reg_cases) / sizeof(reg_cases[0]); i++) {
		err[0] = '\0';
		ret = vmig_pluginset_register(set, &reg_cases[i].desc, err,
					      sizeof(err));
		if (ret != reg_cases[i].error ||
		    !contains(err, reg_cases[i].needle))
			fprintf(stderr, "\ncase %zu: got %d (%s)\n", i, ret,
				err);
		CU_ASSERT_EQUAL(ret, reg_cases[i].error);
		CU_ASSERT(contains(err, "registered plugin"));
		CU_ASSERT(contains(err, reg_cases[i].needle));
	}
	CU_ASSERT_EQUAL(vmig_pluginset_count(set), 1);
	for (i = 0; i < sizeof(reg_edges) / sizeof(reg_edges[0]); i++) {
		ret = vmig_pluginset_register(set, &reg_edges[i], err,
					      sizeof(err));
		if (ret < 0)
			fprintf(stderr, "\nedge %zu: %s\n", i, err);
		CU_ASSERT_EQUAL(ret, (int)i + 1);
	}
	CU_ASSERT_EQUAL(vmig_pluginset_count(set), 1 + i);
	vmig_pluginset_free(set);
}

/* vmig_plugin_validate names its origin and works with no buffer. */
static void test_validate(void)
{
	struct vmig_plugin bad = reg_good;

	CU_ASSERT_EQUAL(vmig_plugin_validate(&reg_good, "x.so", err,
					     sizeof(err)), 0);
	bad.page_sizes = 0;
	CU_ASSERT_EQUAL(vmig_plugin_validate(&bad, "/some/x.so", err,
					     sizeof(err)), VMIG_EBADPLUGIN);
	CU_ASSERT(strncmp(err, "/some/x.so: ", 12) == 0);
	CU_ASSERT_EQUAL(vmig_plugin_validate(&bad, "x.so", NULL, 0),
			VMIG_EBADPLUGIN);
	/* A buffer too small for the message gets a truncated one. */
	memset(err, 'z', 8);
	CU_ASSERT_EQUAL(vmig_plugin_validate(&bad, "x.so", err, 4),
			VMIG_EBADPLUGIN);
	CU_ASSERT_STRING_EQUAL(err, "x.s");
}

/*
 * A descriptor or ops table that ends right before an inaccessible page:
 * reading any field beyond its size would fault.
 */
static void test_validate_reads_within_size(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct vmig_source_ops *ops;
	struct vmig_plugin *desc;
	unsigned char *map;

	map = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(map != MAP_FAILED);
	CU_ASSERT_FATAL(mprotect(map + pg, pg, PROT_NONE) == 0);

	desc = (struct vmig_plugin *)(map + pg - 8);
	desc->size = 8;
	desc->abi_major = VMIG_PLUGIN_ABI_MAJOR;
	CU_ASSERT_EQUAL(vmig_plugin_validate(desc, "edge", err, sizeof(err)),
			VMIG_EBADPLUGIN);
	CU_ASSERT(contains(err, "size 8"));
	desc->abi_major = 2;
	CU_ASSERT_EQUAL(vmig_plugin_validate(desc, "edge", err, sizeof(err)),
			VMIG_EABI);

	/* An ops table of 8 bytes: size and reserved, no create. */
	ops = (struct vmig_source_ops *)(map + pg - 8);
	ops->size = 8;
	ops->reserved = 0;
	{
		struct vmig_plugin d = reg_good;

		d.ops = ops;
		CU_ASSERT_EQUAL(vmig_plugin_validate(&d, "edge", err,
						     sizeof(err)),
				VMIG_EBADPLUGIN);
		CU_ASSERT(contains(err, "ops size 8"));
	}
	CU_ASSERT(munmap(map, 2 * pg) == 0);
}

static void test_duplicates(void)
{
	struct vmig_pluginset *set = new_set();
	struct vmig_plugin same_name = reg_good;

	same_name.name = "test-good";
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, GOOD, NULL, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, GOOD2, NULL, err,
					    sizeof(err)), VMIG_EDUPLICATE);
	CU_ASSERT(contains(err, GOOD));
	CU_ASSERT(contains(err, GOOD2));
	CU_ASSERT(contains(err, "test-good"));
	CU_ASSERT_FALSE(is_loaded(GOOD2));
	CU_ASSERT(is_loaded(GOOD));

	CU_ASSERT_EQUAL(vmig_pluginset_register(set, &same_name, err,
						sizeof(err)), VMIG_EDUPLICATE);
	CU_ASSERT(contains(err, "registered plugin"));
	CU_ASSERT(contains(err, GOOD));
	CU_ASSERT_EQUAL(vmig_pluginset_count(set), 1);
	vmig_pluginset_free(set);

	/* Registered first, the file is the duplicate. */
	set = new_set();
	CU_ASSERT_EQUAL(vmig_pluginset_register(set, &same_name, err,
						sizeof(err)), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, GOOD, NULL, err, sizeof(err)),
			VMIG_EDUPLICATE);
	CU_ASSERT(contains(err, "registered plugin"));
	CU_ASSERT(contains(err, GOOD));
	CU_ASSERT_FALSE(is_loaded(GOOD));
	vmig_pluginset_free(set);
}

static void test_rtld_local(void)
{
	const char *pa = TP("vmig-test-interpose-a.so");
	const char *pb = TP("vmig-test-interpose-b.so");
	struct vmig_pluginset *set = new_set();
	vmig_plugin_entry_fn entry;
	struct vmig_probe probe;
	void *ha, *hb;

	CU_ASSERT_EQUAL(vmig_pluginset_load(set, pa, NULL, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, pb, NULL, err, sizeof(err)),
			1);
	CU_ASSERT_EQUAL(probe_once(vmig_pluginset_get(set, 0), &probe), 0);
	CU_ASSERT_EQUAL(probe.cost, 1);
	CU_ASSERT_EQUAL(probe_once(vmig_pluginset_get(set, 1), &probe), 0);
	CU_ASSERT_EQUAL(probe.cost, 2);
	vmig_pluginset_free(set);
	CU_ASSERT_FALSE(is_loaded(pa));
	CU_ASSERT_FALSE(is_loaded(pb));

	/*
	 * The control: with a loaded RTLD_GLOBAL, b does get a's function,
	 * so the check above would see a loader that used RTLD_GLOBAL.
	 */
	ha = dlopen(pa, RTLD_NOW | RTLD_GLOBAL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ha);
	hb = dlopen(pb, RTLD_NOW | RTLD_LOCAL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(hb);
	entry = (vmig_plugin_entry_fn)dlsym(hb, VMIG_PLUGIN_ENTRY_NAME);
	CU_ASSERT_PTR_NOT_NULL_FATAL(entry);
	CU_ASSERT_EQUAL(probe_once(entry(NULL, VMIG_PLUGIN_ABI_MAJOR), &probe),
			0);
	CU_ASSERT_EQUAL(probe.cost, 1);
	dlclose(hb);
	dlclose(ha);
	CU_ASSERT_FALSE(is_loaded(pb));
	CU_ASSERT_FALSE(is_loaded(pa));
}

/* ------------------------------------------------------------------ */

static void test_search_dirs(void)
{
	struct vmig_pluginset *set = new_set();
	const char *const *dirs;
	int n;

	CU_ASSERT_STRING_EQUAL(vmig_loader_install_dir(), INSTALL_DIR);
	CU_ASSERT_PTR_EQUAL(vmig_loader_install_dir(),
			    vmig_loader_install_dir());

	n = vmig_pluginset_search_dirs(set, &dirs);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(dirs[0], INSTALL_DIR);

	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, "/set/a"), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, "set/b"), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, NULL), -EINVAL);
	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, ""), -EINVAL);
	CU_ASSERT_EQUAL(setenv("VMIG_PLUGIN_PATH", "::/env/x::/env/y:", 1), 0);
	n = vmig_pluginset_search_dirs(set, &dirs);
	CU_ASSERT_EQUAL_FATAL(n, 5);
	CU_ASSERT_STRING_EQUAL(dirs[0], "/set/a");
	CU_ASSERT_STRING_EQUAL(dirs[1], "set/b");
	CU_ASSERT_STRING_EQUAL(dirs[2], "/env/x");
	CU_ASSERT_STRING_EQUAL(dirs[3], "/env/y");
	CU_ASSERT_STRING_EQUAL(dirs[4], INSTALL_DIR);

	/* The environment is read at every call. */
	CU_ASSERT_EQUAL(setenv("VMIG_PLUGIN_PATH", "/env/z", 1), 0);
	n = vmig_pluginset_search_dirs(set, &dirs);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	CU_ASSERT_STRING_EQUAL(dirs[2], "/env/z");
	CU_ASSERT_EQUAL(setenv("VMIG_PLUGIN_PATH", "", 1), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_search_dirs(set, &dirs), 3);
	CU_ASSERT_EQUAL(unsetenv("VMIG_PLUGIN_PATH"), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_search_dirs(set, &dirs), 3);
	CU_ASSERT_STRING_EQUAL(dirs[2], INSTALL_DIR);
	vmig_pluginset_free(set);
}

/*
 * A fresh directory tmp with set/ and env/ in it (*setdir, *envdir), the
 * good plugin in each (*in_set, *in_env): a copy in set/ and a link in
 * env/ when copy_in_set, the other way round otherwise.
 */
static void two_dirs(char *tmp, size_t len, bool copy_in_set, char **setdir,
		     char **envdir, char **in_set, char **in_env)
{
	make_tmpdir(tmp, len);
	make_dir(tmp, "set");
	make_dir(tmp, "env");
	*setdir = path_in(tmp, "set");
	*envdir = path_in(tmp, "env");
	if (copy_in_set) {
		copy_in(*setdir, "vmig-test-good.so", GOOD);
		link_in(*envdir, "vmig-test-good.so", GOOD);
	} else {
		link_in(*setdir, "vmig-test-good.so", GOOD);
		copy_in(*envdir, "vmig-test-good.so", GOOD);
	}
	*in_set = path_in(*setdir, "vmig-test-good.so");
	*in_env = path_in(*envdir, "vmig-test-good.so");
}

static void test_search_order(void)
{
	struct vmig_pluginset *set;
	char tmp[64], *setdir, *envdir, *in_set, *in_env, *env;

	two_dirs(tmp, sizeof(tmp), true, &setdir, &envdir, &in_set, &in_env);
	CU_ASSERT_FATAL(asprintf(&env, "/nonexistent/e0::%s:", envdir) >= 0);

	/* Nothing in the (nonexistent) install directory. */
	set = new_set();
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, "test-good", NULL, err,
					    sizeof(err)), -ENOENT);
	/* The environment is read when loading, not when the set is made. */
	CU_ASSERT_EQUAL(setenv("VMIG_PLUGIN_PATH", env, 1), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, "test-good", NULL, err,
					    sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(nn(vmig_pluginset_path(set, 0)), in_env);
	vmig_pluginset_free(set);

	/* A set directory shadows VMIG_PLUGIN_PATH. */
	set = new_set();
	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, "/nonexistent/s0"), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, setdir), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, "test-good", NULL, err,
					    sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(nn(vmig_pluginset_path(set, 0)), in_set);
	CU_ASSERT(is_loaded(in_set));
	CU_ASSERT_FALSE(is_loaded(GOOD));
	vmig_pluginset_free(set);
	CU_ASSERT_FALSE(is_loaded(in_set));

	CU_ASSERT_EQUAL(unsetenv("VMIG_PLUGIN_PATH"), 0);
	free(env);
	free(in_set);
	free(in_env);
	free(setdir);
	free(envdir);
	rm_tree(tmp);
}

static void test_names(void)
{
	static const char *const bad[] = {
		"", "Test", "a b", "x\n", "caf\xc3\xa9",
		("a23456789012345678901234567890"
		 "1234567890123456789012345678901234"),
	};
	struct vmig_pluginset *set = new_set();
	char cwd[PATH_MAX], here[PATH_MAX], *full;
	size_t i;

	CU_ASSERT_EQUAL(vmig_pluginset_load(set, NULL, NULL, err, sizeof(err)),
			-EINVAL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(vmig_pluginset_load(set, bad[i], NULL, err,
						    sizeof(err)), -EINVAL);
		CU_ASSERT(contains(err, "invalid plugin name"));
		CU_ASSERT(contains(err, bad[i]));
	}

	/*
	 * In the plugins' directory, a plain name is still a name to look
	 * up, never a file; with a '/', it is a path.
	 */
	CU_ASSERT_FATAL(getcwd(cwd, sizeof(cwd)) != NULL);
	CU_ASSERT_FATAL(chdir(VMIG_TEST_PLUGIN_DIR) == 0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, "vmig-test-good.so", NULL,
					    err, sizeof(err)), -ENOENT);
	CU_ASSERT(contains(err, "vmig-vmig-test-good.so.so"));
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, "./vmig-test-good.so", NULL,
					    err, sizeof(err)), 0);
	/* Made absolute, so that it stays right after a chdir. */
	CU_ASSERT_FATAL(getcwd(here, sizeof(here)) != NULL);
	full = path_in(here, "vmig-test-good.so");
	CU_ASSERT_STRING_EQUAL(nn(vmig_pluginset_path(set, 0)), full);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, ".//vmig-test-absent.so",
					    NULL, err, sizeof(err)), -ENOENT);
	CU_ASSERT(contains(err, here));
	/* "." as a set directory finds it by name: the same file. */
	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, "."), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, "test-good", NULL, err,
					    sizeof(err)), 0);
	CU_ASSERT_FATAL(chdir(cwd) == 0);
	CU_ASSERT_EQUAL(vmig_pluginset_count(set), 1);
	vmig_pluginset_free(set);
	free(full);
}

/* ------------------------------------------------------------------ */

#define MAX_SCAN 32

struct scanned {
	char *path;
	int error;
	char *errmsg;
	char *name;
};

struct scan_log {
	struct scanned e[MAX_SCAN];
	int n;
};

static void on_scan(void *opaque, const struct vmig_scan_entry *entry)
{
	struct scan_log *log = opaque;
	struct scanned *s;

	CU_ASSERT_FATAL(log->n < MAX_SCAN);
	s = &log->e[log->n++];
	s->path = strdup(entry->path);
	s->error = entry->error;
	s->errmsg = entry->error ? strdup(entry->errmsg) : NULL;
	/* The descriptor is only valid during the call: keep the name. */
	s->name = entry->error ? NULL : strdup(entry->desc->name);
	CU_ASSERT_EQUAL(entry->error == 0, entry->desc != NULL);
}

static void scan_log_free(struct scan_log *log)
{
	int i;

	for (i = 0; i < log->n; i++) {
		free(log->e[i].path);
		free(log->e[i].errmsg);
		free(log->e[i].name);
	}
	log->n = 0;
}

struct scan_expect {
	const char *dir; /* NULL: the test plugins' directory */
	const char *file;
	int error;
	const char *name;
};

static void test_scan(void)
{
	struct scan_expect expect[] = {
		{ NULL, "vmig-test-abi2.so", VMIG_EABI, NULL },
		{ NULL, "vmig-test-badname.so", VMIG_EBADPLUGIN, NULL },
		{ NULL, "vmig-test-good.so", 0, "test-good" },
		{ NULL, "vmig-test-interpose-a.so", 0, "test-interpose-a" },
		{ NULL, "vmig-test-interpose-b.so", 0, "test-interpose-b" },
		{ NULL, "vmig-test-newer.so", 0, "test-newer" },
		{ NULL, "vmig-test-nocreate.so", VMIG_EBADPLUGIN, NULL },
		{ NULL, "vmig-test-noentry.so", VMIG_ENOENTRY, NULL },
		{ NULL, "vmig-test-noname.so", VMIG_EBADPLUGIN, NULL },
		{ NULL, "vmig-test-noops.so", VMIG_EBADPLUGIN, NULL },
		{ NULL, "vmig-test-notelf.so", VMIG_ENOTPLUGIN, NULL },
		{ NULL, "vmig-test-refuse.so", VMIG_EREFUSED, NULL },
		{ NULL, "vmig-test-short.so", VMIG_EBADPLUGIN, NULL },
		/* vmig-test-good.so of the env dir: shadowed, not listed. */
		{ "env", "vmig-zz-dup.so", VMIG_EDUPLICATE, NULL },
	};
	const size_t nexpect = sizeof(expect) / sizeof(expect[0]);
	struct scan_log log = { .n = 0 };
	struct vmig_pluginset *set = new_set();
	char tmp[64], *envdir, *p;
	size_t i;
	int n;

	make_tmpdir(tmp, sizeof(tmp));
	make_dir(tmp, "env");
	envdir = path_in(tmp, "env");
	link_in(envdir, "vmig-test-good.so", GOOD2);
	link_in(envdir, "vmig-zz-dup.so", GOOD2);
	/* Not named vmig-<something>.so: ignored. */
	link_in(envdir, "vmig-.so", GOOD);
	link_in(envdir, "vmig-test-good.so.1", GOOD);
	link_in(envdir, "libvmig-test.so", GOOD);
	CU_ASSERT_EQUAL(setenv("VMIG_PLUGIN_PATH", envdir, 1), 0);
	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, VMIG_TEST_PLUGIN_DIR), 0);
	/* Another directory, which does not exist, is no error. */
	CU_ASSERT_EQUAL(vmig_pluginset_add_path(set, "/nonexistent/scan"), 0);

	/* Held by the set, test-newer must survive the scan. */
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, "test-newer", NULL, err,
					    sizeof(err)), 0);
	n = vmig_pluginset_scan(set, NULL, on_scan, &log);
	CU_ASSERT_EQUAL(n, (int)nexpect);
	CU_ASSERT_EQUAL(log.n, (int)nexpect);
	for (i = 0; i < nexpect && (int)i < log.n; i++) {
		const struct scanned *s = &log.e[i];

		p = path_in(expect[i].dir ? envdir : VMIG_TEST_PLUGIN_DIR,
			    expect[i].file);
		CU_ASSERT_STRING_EQUAL(s->path, p);
		if (s->error != expect[i].error)
			fprintf(stderr, "\n%s: got %d (%s)\n", s->path,
				s->error, s->errmsg ? s->errmsg : "");
		CU_ASSERT_EQUAL(s->error, expect[i].error);
		if (expect[i].error) {
			CU_ASSERT(contains(s->errmsg, p));
		} else {
			CU_ASSERT_PTR_NOT_NULL(s->name);
			if (s->name)
				CU_ASSERT_STRING_EQUAL(s->name,
						       expect[i].name);
		}
		free(p);
	}
	/* The duplicate names the file that had the name first. */
	CU_ASSERT(log.n == (int)nexpect &&
		  contains(log.e[nexpect - 1].errmsg, GOOD));

	/* Unloaded after the scan, except what the set holds. */
	CU_ASSERT_FALSE(is_loaded(GOOD));
	CU_ASSERT_FALSE(is_loaded(GOOD2));
	CU_ASSERT_FALSE(is_loaded(TP("vmig-test-interpose-a.so")));
	CU_ASSERT(is_loaded(TP("vmig-test-newer.so")));
	CU_ASSERT_EQUAL(vmig_pluginset_count(set), 1);

	/* No callback: still counts. */
	CU_ASSERT_EQUAL(vmig_pluginset_scan(set, NULL, NULL, NULL),
			(int)nexpect);

	scan_log_free(&log);
	vmig_pluginset_free(set);
	CU_ASSERT_FALSE(is_loaded(TP("vmig-test-newer.so")));
	CU_ASSERT_EQUAL(unsetenv("VMIG_PLUGIN_PATH"), 0);
	free(envdir);
	rm_tree(tmp);
}

/* ------------------------------------------------------------------ */

/* The loader as built into tests/plugins/fakelib/libvmig.so. */
struct fake_loader {
	void *h;
	const char *(*install_dir)(void);
	int (*set_new)(struct vmig_pluginset **out);
	void (*set_free)(struct vmig_pluginset *set);
	int (*add_path)(struct vmig_pluginset *set, const char *dir);
	int (*load)(struct vmig_pluginset *set, const char *name_or_path,
		    const struct vmig_host *host, char *err, size_t errlen);
	const char *(*path)(const struct vmig_pluginset *set, size_t i);
};

#define FAKE_SYM(fl, field, sym)                                   \
	do {                                                       \
		*(void **)&(fl)->field = dlsym((fl)->h, sym);      \
		CU_ASSERT_PTR_NOT_NULL_FATAL((fl)->field);         \
	} while (0)

/*
 * Installed, libvmig finds its plugins in <its dir>/vmig/plugins; the
 * fake library shows the dladdr path and that the install directory
 * comes last in the search order.
 */
static void test_install_dir_next_to_library(void)
{
	const char *libdir = TP("fakelib");
	const char *installed = TP("fakelib/vmig/plugins/vmig-test-good.so");
	struct fake_loader fl;
	struct vmig_pluginset *set;
	char tmp[64], want[PATH_MAX];
	char *setdir, *envdir, *in_env, *in_set;

	fl.h = dlopen(TP("fakelib/libvmig.so"), RTLD_NOW | RTLD_LOCAL);
	if (!fl.h)
		fprintf(stderr, "\n%s\n", dlerror());
	CU_ASSERT_PTR_NOT_NULL_FATAL(fl.h);
	FAKE_SYM(&fl, install_dir, "vmig_loader_install_dir");
	FAKE_SYM(&fl, set_new, "vmig_pluginset_new");
	FAKE_SYM(&fl, set_free, "vmig_pluginset_free");
	FAKE_SYM(&fl, add_path, "vmig_pluginset_add_path");
	FAKE_SYM(&fl, load, "vmig_pluginset_load");
	FAKE_SYM(&fl, path, "vmig_pluginset_path");

	snprintf(want, sizeof(want), "%s/vmig/plugins", libdir);
	CU_ASSERT_STRING_EQUAL(nn(fl.install_dir()), want);

	two_dirs(tmp, sizeof(tmp), false, &setdir, &envdir, &in_set, &in_env);

	/* Only the install directory has it. */
	CU_ASSERT_FATAL(fl.set_new(&set) == 0);
	CU_ASSERT_EQUAL(fl.load(set, "test-good", NULL, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(nn(fl.path(set, 0)), installed);
	fl.set_free(set);

	/* VMIG_PLUGIN_PATH shadows the install directory ... */
	CU_ASSERT_FATAL(setenv("VMIG_PLUGIN_PATH", envdir, 1) == 0);
	CU_ASSERT_FATAL(fl.set_new(&set) == 0);
	CU_ASSERT_EQUAL(fl.load(set, "test-good", NULL, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(nn(fl.path(set, 0)), in_env);
	fl.set_free(set);

	/* ... and a set directory shadows both. */
	CU_ASSERT_FATAL(fl.set_new(&set) == 0);
	CU_ASSERT_EQUAL(fl.add_path(set, setdir), 0);
	CU_ASSERT_EQUAL(fl.load(set, "test-good", NULL, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(nn(fl.path(set, 0)), in_set);
	fl.set_free(set);

	CU_ASSERT_EQUAL(unsetenv("VMIG_PLUGIN_PATH"), 0);
	CU_ASSERT_EQUAL(dlclose(fl.h), 0);
	CU_ASSERT_FALSE(is_loaded(installed));
	CU_ASSERT_FALSE(is_loaded(GOOD));
	free(in_set);
	free(in_env);
	free(setdir);
	free(envdir);
	rm_tree(tmp);
}

static void test_misuse(void)
{
	struct vmig_pluginset *set = new_set();
	const char *const *dirs;

	CU_ASSERT_EQUAL(vmig_pluginset_new(NULL), -EINVAL);
	CU_ASSERT_EQUAL(vmig_pluginset_count(NULL), 0);
	CU_ASSERT_PTR_NULL(vmig_pluginset_get(NULL, 0));
	CU_ASSERT_PTR_NULL(vmig_pluginset_path(NULL, 0));
	CU_ASSERT_EQUAL(vmig_pluginset_find(NULL, "x"), -ENOENT);
	CU_ASSERT_EQUAL(vmig_pluginset_find(set, NULL), -ENOENT);
	CU_ASSERT_EQUAL(vmig_pluginset_search_dirs(NULL, &dirs), -EINVAL);
	CU_ASSERT_EQUAL(vmig_pluginset_load(NULL, GOOD, NULL, err,
					    sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(vmig_pluginset_register(NULL, &reg_good, err,
						sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(vmig_pluginset_scan(NULL, NULL, NULL, NULL), -EINVAL);
	/* No message buffer: the error still comes back. */
	CU_ASSERT_EQUAL(vmig_pluginset_load(set, TP("vmig-test-abi2.so"), NULL,
					    NULL, 0), VMIG_EABI);
	vmig_pluginset_free(set);
	vmig_pluginset_free(NULL);
}

static CU_TestInfo loader_tests[] = {
	{ "load a good plugin", test_load_good },
	{ "the host table reaches the entry", test_host_reaches_entry },
	{ "missing file", test_missing_path },
	{ "missing name lists the directories", test_missing_name },
	{ "not an ELF object", test_not_elf },
	{ "broken plugins", test_broken_plugins },
	{ "descriptor of a newer minor", test_newer_minor },
	{ "same file twice in a set", test_same_file_twice },
	{ "reference counting across sets", test_refcount },
	{ "registry from two threads", test_threads },
	{ "register descriptors", test_register },
	{ "validate", test_validate },
	{ "validate reads within size", test_validate_reads_within_size },
	{ "duplicate names", test_duplicates },
	{ "RTLD_LOCAL", test_rtld_local },
	{ "search_dirs", test_search_dirs },
	{ "search order", test_search_order },
	{ "names and paths", test_names },
	{ "scan", test_scan },
	{ "install dir next to libvmig.so", test_install_dir_next_to_library },
	{ "misuse", test_misuse },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE_INIT("loader", suite_init, NULL, loader_tests))
