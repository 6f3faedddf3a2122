/*
 * main.c: the smallest program embedding vmig.
 *
 * It creates a session, lists the dirty-source plugins vmig can load (from
 * its install directory and VMIG_PLUGIN_PATH), gives the session some
 * guest memory, reads its dirty bitmap back, and registers the VMM's own
 * state (a "machine" section: what its save writes, its load reads;
 * docs/embedding.md). Build it against an
 * installed vmig with CMake (find_package(vmig), target vmig::vmig) or
 * with
 *   cc main.c $(pkg-config --cflags --libs vmig)
 */
#include <stdio.h>
#include <string.h>

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

/* The VMM's own state: here, the machine's configuration. */
struct machine {
	unsigned int vcpus;
	unsigned int ram_pages;
};

static int machine_save(void *opaque, vmig_state_out *out)
{
	return vmig_state_put(out, opaque, sizeof(struct machine));
}

static int machine_load(void *opaque, uint32_t version, const void *data,
			size_t len)
{
	struct machine *m = opaque;

	if (version != 1 || len != sizeof(*m))
		return -22; /* EINVAL */
	memcpy(m, data, len);
	return 0;
}

static const struct vmig_state_ops machine_ops = {
	.size = sizeof(machine_ops),
	.save_final = machine_save,
	.load = machine_load,
};

static struct machine machine = { 1, RAM_PAGES };

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
	if (ret == 0) {
		ret = vmig_state_register(s, "machine", 1, 1, &machine_ops,
					  &machine);
		if (ret < 0)
			fprintf(stderr, "state: %s\n", vmig_errmsg(s));
		else
			printf("state section \"machine\": registered\n");
	}
	vmig_session_free(s);
	return ret < 0 ? 1 : 0;
}
