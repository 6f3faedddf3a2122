/*
 * main.c: the smallest program embedding vmig.
 *
 * It creates a session, lists the dirty-source plugins vmig can load (from
 * its install directory and VMIG_PLUGIN_PATH), gives the session some
 * guest memory and reads its dirty bitmap back. Build it against an
 * installed vmig with CMake (find_package(vmig), target vmig::vmig) or
 * with
 *   cc main.c $(pkg-config --cflags --libs vmig)
 */
#include <stdio.h>

#include <vmig/vmig.h>

#define RAM_PAGES 16

/* The "guest memory": what a VMM would have mapped for its guest. */
static _Alignas(4096) unsigned char ram[RAM_PAGES * 4096];

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

/* Registers the guest memory and says how many pages it has. */
static int add_memory(vmig_session *s)
{
	struct vmig_region r = {
		.size = sizeof(r),
		.name = "ram",
		.gpa = 0,
		.length = sizeof(ram),
		.hva = ram,
		.fd = -1,
	};
	const uint64_t *bits;
	uint64_t npages;
	uint32_t id;
	int ret;

	ret = vmig_region_add(s, &r, &id);
	if (ret == 0)
		ret = vmig_dirty_bitmap(s, id, &bits, &npages);
	if (ret < 0) {
		fprintf(stderr, "memory: %s\n", vmig_errmsg(s));
		return ret;
	}
	printf("memory: region %u, %llu pages\n", id,
	       (unsigned long long)npages);
	return 0;
}

int main(void)
{
	struct vmig_session_params params = { .size = sizeof(params) };
	vmig_session *s;
	int found = 0, ret;

	printf("vmig %s\n", vmig_version_string());
	ret = vmig_session_new(&params, &s);
	if (ret < 0) {
		fprintf(stderr, "session: %s\n", vmig_strerror(ret));
		return 1;
	}
	ret = vmig_plugins_scan(s, show, &found);
	if (ret < 0 || !found) {
		fprintf(stderr, "no plugin found\n");
		vmig_session_free(s);
		return 1;
	}
	ret = add_memory(s);
	vmig_session_free(s);
	return ret < 0 ? 1 : 0;
}
