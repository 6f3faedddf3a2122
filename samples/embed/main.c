/*
 * main.c: the smallest program embedding vmig.
 *
 * It creates a session, lists the dirty-source plugins vmig can load (from
 * its install directory and VMIG_PLUGIN_PATH) and checks a configuration
 * given in the source. Build it against an installed vmig with CMake
 * (find_package(vmig), target vmig::vmig) or with
 *   cc main.c $(pkg-config --cflags --libs vmig)
 */
#include <stdio.h>
#include <string.h>

#include <vmig/vmig.h>

static void show(void *opaque, const struct vmig_plugin_info *info)
{
	int *found = opaque;

	if (info->error) {
		printf("%s: %s\n", info->path, info->errmsg);
		return;
	}
	printf("plugin %s: %s\n", info->desc->name, info->desc->description);
	(*found)++;
}

int main(void)
{
	static const char config[] =
		"{ \"memory\": [ { \"gpa\": 0, \"size\": \"1G\" } ] }";
	struct vmig_session_params params = { .size = sizeof(params) };
	vmig_session *s;
	vmig_config *cfg;
	char err[256];
	int found = 0, ret;

	printf("vmig %s\n", vmig_version_string());
	ret = vmig_session_new(&params, &s);
	if (ret < 0) {
		fprintf(stderr, "session: %s\n", vmig_strerror(ret));
		return 1;
	}
	ret = vmig_plugins_scan(s, show, &found);
	vmig_session_free(s);
	if (ret < 0 || !found) {
		fprintf(stderr, "no plugin found\n");
		return 1;
	}
	ret = vmig_config_parse(config, strlen(config), NULL, &cfg, err,
				sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "config: %s\n", err);
		return 1;
	}
	vmig_config_free(cfg);
	printf("configuration: valid\n");
	return 0;
}
