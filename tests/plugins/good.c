/*
 * good.c: a well-formed plugin for the loader's tests, "test-good".
 *
 * Its source works but tracks nothing: probe declines every device with
 * a reason. The entry point refuses a NULL host table, so a successful
 * load also shows that the loader always passes one, and it logs through
 * the table so that tests can see the host reach the plugin.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <vmig/plugin.h>

#include "common/test_plugin.h"

struct good_instance {
	const struct vmig_host *host;
	unsigned int probes;
};

static int good_create(const struct vmig_host *host, void **instance)
{
	struct good_instance *gi = calloc(1, sizeof(*gi));

	if (!gi)
		return -ENOMEM;
	gi->host = host;
	*instance = gi;
	return 0;
}

static void good_destroy(void *instance)
{
	free(instance);
}

static int good_probe(void *instance, const struct vmig_device_desc *dev,
		      struct vmig_probe *out)
{
	struct good_instance *gi = instance;

	if (!gi || !out)
		return -EINVAL;
	gi->probes++;
	out->precision = VMIG_PRECISION_NONE;
	out->cost = 0;
	out->flags = 0;
	snprintf(out->reason, sizeof(out->reason),
		 "test-good tracks no device (probe %u, device %s)",
		 gi->probes, dev && dev->name ? dev->name : "unnamed");
	return 0;
}

static const struct vmig_source_ops good_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = good_create,
	.destroy = good_destroy,
	.probe = good_probe,
};

static const struct vmig_plugin good_plugin =
	VMIG_TEST_LOADER_PLUGIN("test-good",
				"a loader test plugin that tracks nothing",
				good_ops);

VMIG_PLUGIN_EXPORT const struct vmig_plugin *
VMIG_PLUGIN_ENTRY(const struct vmig_host *host, uint32_t abi_major)
{
	if (!host || host->size < sizeof(uint32_t))
		return NULL;
	if (abi_major != VMIG_PLUGIN_ABI_MAJOR)
		return NULL;
	vmig_host_logf(host, VMIG_LOG_DEBUG,
		       "test-good: entry called for plugin ABI %u", abi_major);
	return &good_plugin;
}
