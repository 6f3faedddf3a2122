/*
 * plugutil.h: what the unit tests of the in-tree plugins do the same way:
 * load a plugin as it ships (dlopen of its .so from the build tree) and
 * ask it for a dirty bitmap. Include after testutil.h.
 */
#ifndef VMIG_PLUGUTIL_H
#define VMIG_PLUGUTIL_H

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmig/plugin.h>

#include "common/plugin_args.h"
#include "core/bitmap.h"
#include "ksim/ksim.h"

/*
 * Opens the plugin file (a name in the build's plugin directory) and
 * calls its entry point without a host table. Returns its descriptor, or
 * NULL (said on stderr when dlopen failed); *dl gets the handle.
 */
static inline const struct vmig_plugin *vmig_test_plugin_open(const char *file,
							      void **dl)
{
	char path[512];
	vmig_plugin_entry_fn entry;

	snprintf(path, sizeof(path), "%s/%s", VMIG_BUILD_PLUGIN_DIR, file);
	*dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!*dl) {
		fprintf(stderr, "%s\n", dlerror());
		return NULL;
	}
	entry = (vmig_plugin_entry_fn)dlsym(*dl, VMIG_PLUGIN_ENTRY_NAME);
	if (!entry)
		return NULL;
	return entry(NULL, VMIG_PLUGIN_ABI_MAJOR);
}

static inline int vmig_test_plugin_close(void *dl)
{
	return dl ? dlclose(dl) : 0;
}

/*
 * The suite of a plugin's tests: dl and plug, the plugin in file, loaded
 * by suite_init and unloaded by suite_fini (the suite's init and cleanup).
 */
#define VMIG_TEST_PLUGIN_SUITE(file)                                           \
	static void *dl;                                                       \
	static const struct vmig_plugin *plug;                                 \
	static int suite_init(void)                                            \
	{                                                                      \
		plug = vmig_test_plugin_open(file, &dl);                       \
		return plug ? 0 : 1;                                           \
	}                                                                      \
	static int suite_fini(void)                                            \
	{                                                                      \
		return vmig_test_plugin_close(dl);                             \
	}

/* The plugin that dl holds refuses another major of the plugin ABI. */
static inline void vmig_test_plugin_refuses_next_major(void *dl)
{
	vmig_plugin_entry_fn entry =
		(vmig_plugin_entry_fn)dlsym(dl, VMIG_PLUGIN_ENTRY_NAME);

	CU_ASSERT_FATAL(entry != NULL);
	CU_ASSERT_PTR_NULL(entry(NULL, VMIG_PLUGIN_ABI_MAJOR + 1));
}

/*
 * Reads the dirty bits of [iova, iova + len) in pages of pgsize from the
 * source instance inst into bm, cleared first.
 */
static inline int vmig_test_plugin_read(const struct vmig_plugin *plug,
					void *inst, uint32_t iommu_id,
					uint64_t iova, uint64_t len,
					uint64_t pgsize, uint32_t flags,
					uint64_t *bm)
{
	struct vmig_read rq =
		vmig_test_read_rq(iommu_id, iova, len, pgsize, flags);

	memset(bm, 0, vmig_bitmap_bytes(len / pgsize));
	return plug->ops->read(inst, &rq, bm);
}

/*
 * The end of a test's simulated host: the plugin's instance inst (none
 * when NULL), the kernel k, the guest memory mem.
 */
static inline void vmig_test_plugin_host_free(const struct vmig_plugin *plug,
					      void *inst, struct ksim *k,
					      void *mem)
{
	if (inst)
		plug->ops->destroy(inst);
	ksim_free(k);
	free(mem);
}

#endif /* VMIG_PLUGUTIL_H */
