/*
 * interpose.c: "test-interpose-a" and "test-interpose-b", built from this
 * one file with different INTERPOSE_NAME and INTERPOSE_VALUE.
 *
 * Both export a global function of the same name and call it from probe,
 * which reports its result in the probe's cost. Loaded with RTLD_LOCAL,
 * each plugin's call reaches its own definition; had the loader used
 * RTLD_GLOBAL, the second plugin would bind to the first one's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <vmig/plugin.h>

#include "common/test_plugin.h"

#if !defined(INTERPOSE_NAME) || !defined(INTERPOSE_VALUE)
#error "define INTERPOSE_NAME and INTERPOSE_VALUE"
#endif

/* Exported on purpose: a symbol that could be interposed. */
VMIG_PLUGIN_EXPORT unsigned int vmig_test_interpose_value(void);

VMIG_PLUGIN_EXPORT __attribute__((noinline)) unsigned int
vmig_test_interpose_value(void)
{
	return INTERPOSE_VALUE;
}

static int ip_create(const struct vmig_host *host, void **instance)
{
	(void)host;
	*instance = malloc(1);
	return *instance ? 0 : -ENOMEM;
}

static void ip_destroy(void *instance)
{
	free(instance);
}

static int ip_probe(void *instance, const struct vmig_device_desc *dev,
		    struct vmig_probe *out)
{
	(void)instance;
	(void)dev;
	out->precision = VMIG_PRECISION_NONE;
	out->cost = vmig_test_interpose_value();
	snprintf(out->reason, sizeof(out->reason), "%s reached value %u",
		 INTERPOSE_NAME, out->cost);
	return 0;
}

static const struct vmig_source_ops ip_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = ip_create,
	.destroy = ip_destroy,
	.probe = ip_probe,
};

static const struct vmig_plugin ip_plugin =
	VMIG_TEST_LOADER_PLUGIN(INTERPOSE_NAME,
				"a loader test plugin exporting a clashing symbol",
				ip_ops);

VMIG_PLUGIN_EXPORT const struct vmig_plugin *
VMIG_PLUGIN_ENTRY(const struct vmig_host *host, uint32_t abi_major)
{
	(void)host;
	(void)abi_major;
	return &ip_plugin;
}
