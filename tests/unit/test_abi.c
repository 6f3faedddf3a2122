/*
 * test_abi.c: pins the public ABI of api/vmig/plugin.h and api/vmig/vmig.h.
 *
 * Every structure's size, alignment and fields (offset, size and type),
 * every enum value and #define, the types of the callbacks and of every
 * public function are written here as literals, computed once on x86-64.
 * A change to a public header fails this test: if the change is meant
 * (a field appended at the end, a new constant), update the pins in the
 * same commit; if it moves or retypes anything that exists, it breaks
 * every plugin and program built against the old header.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vmig/plugin.h>
#include <vmig/version.h>
#include <vmig/vmig.h>

#include "unit/testutil.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define STR(x) STR_(x)
#define STR_(x) #x

/* True when expr has type T, qualifiers aside. */
#define HAS_TYPE(expr, ...) \
	__builtin_types_compatible_p(__typeof__(expr), __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* Structure layouts                                                   */

struct field_pin {
	const char *name;
	size_t offset, size;           /* as compiled now */
	size_t want_offset, want_size; /* as pinned */
	int type_ok;
};

struct struct_pin {
	const char *name;
	size_t size, align;
	size_t want_size, want_align;
	const struct field_pin *fields;
	size_t nr_fields;
};

#define PIN(T, f, off, sz, ...)                                         \
	{ #T "." #f, offsetof(T, f), sizeof(((T *)0)->f), off, sz,      \
	  HAS_TYPE(((T *)0)->f, __VA_ARGS__) }

#define STRUCT(T, sz, al, pins) \
	{ #T, sizeof(T), _Alignof(T), sz, al, pins, ARRAY_SIZE(pins) }

/*
 * The layouts of LP64: pointers and size_t of 8 bytes, uint64_t aligned
 * on 8 (x86-64, and the other LP64 ELF ABIs alike).
 */
#if defined(__LP64__)

static const struct field_pin vmig_range_pins[] = {
	PIN(struct vmig_range, iova, 0, 8, uint64_t),
	PIN(struct vmig_range, length, 8, 8, uint64_t),
};

static const struct field_pin vmig_iommu_desc_pins[] = {
	PIN(struct vmig_iommu_desc, size, 0, 4, uint32_t),
	PIN(struct vmig_iommu_desc, id, 4, 4, uint32_t),
	PIN(struct vmig_iommu_desc, kind, 8, 4, uint32_t),
	PIN(struct vmig_iommu_desc, fd, 12, 4, int32_t),
	PIN(struct vmig_iommu_desc, ioas_id, 16, 4, uint32_t),
	PIN(struct vmig_iommu_desc, reserved, 20, 4, uint32_t),
};

static const struct field_pin vmig_pasid_desc_pins[] = {
	PIN(struct vmig_pasid_desc, size, 0, 4, uint32_t),
	PIN(struct vmig_pasid_desc, pasid, 4, 4, uint32_t),
	PIN(struct vmig_pasid_desc, iommu, 8, 8,
	    const struct vmig_iommu_desc *),
};

static const struct field_pin vmig_device_desc_pins[] = {
	PIN(struct vmig_device_desc, size, 0, 4, uint32_t),
	PIN(struct vmig_device_desc, id, 4, 4, uint32_t),
	PIN(struct vmig_device_desc, name, 8, 8, const char *),
	PIN(struct vmig_device_desc, address, 16, 8, const char *),
	PIN(struct vmig_device_desc, kind, 24, 4, uint32_t),
	PIN(struct vmig_device_desc, device_fd, 28, 4, int32_t),
	PIN(struct vmig_device_desc, group_fd, 32, 4, int32_t),
	PIN(struct vmig_device_desc, iommufd_id, 36, 4, uint32_t),
	PIN(struct vmig_device_desc, iommu, 40, 8,
	    const struct vmig_iommu_desc *),
	PIN(struct vmig_device_desc, ranges, 48, 8, const struct vmig_range *),
	PIN(struct vmig_device_desc, nr_ranges, 56, 4, uint32_t),
	PIN(struct vmig_device_desc, nr_pasids, 60, 4, uint32_t),
	PIN(struct vmig_device_desc, pasids, 64, 8,
	    const struct vmig_pasid_desc *),
};

static const struct field_pin vmig_probe_pins[] = {
	PIN(struct vmig_probe, size, 0, 4, uint32_t),
	PIN(struct vmig_probe, precision, 4, 4, uint32_t),
	PIN(struct vmig_probe, cost, 8, 4, uint32_t),
	PIN(struct vmig_probe, flags, 12, 4, uint32_t),
	PIN(struct vmig_probe, reason, 16, 160, char[160]),
};

static const struct field_pin vmig_read_pins[] = {
	PIN(struct vmig_read, size, 0, 4, uint32_t),
	PIN(struct vmig_read, flags, 4, 4, uint32_t),
	PIN(struct vmig_read, iommu_id, 8, 4, uint32_t),
	PIN(struct vmig_read, reserved, 12, 4, uint32_t),
	PIN(struct vmig_read, iova, 16, 8, uint64_t),
	PIN(struct vmig_read, length, 24, 8, uint64_t),
	PIN(struct vmig_read, page_size, 32, 8, uint64_t),
};

static const struct field_pin vmig_host_pins[] = {
	PIN(struct vmig_host, size, 0, 4, uint32_t),
	PIN(struct vmig_host, abi_minor, 4, 4, uint32_t),
	PIN(struct vmig_host, kctx, 8, 8, void *),
	PIN(struct vmig_host, ctx, 16, 8, void *),
	PIN(struct vmig_host, open, 24, 8, int (*)(void *, const char *, int)),
	PIN(struct vmig_host, close, 32, 8, int (*)(void *, int)),
	PIN(struct vmig_host, ioctl, 40, 8,
	    int (*)(void *, int, unsigned long, void *)),
	PIN(struct vmig_host, read, 48, 8,
	    int64_t (*)(void *, int, void *, size_t)),
	PIN(struct vmig_host, write, 56, 8,
	    int64_t (*)(void *, int, const void *, size_t)),
	PIN(struct vmig_host, poll, 64, 8,
	    int (*)(void *, struct pollfd *, unsigned int, int)),
	PIN(struct vmig_host, mmap, 72, 8,
	    int (*)(void *, void *, size_t, int, int, int, int64_t, void **)),
	PIN(struct vmig_host, munmap, 80, 8, int (*)(void *, void *, size_t)),
	PIN(struct vmig_host, log, 88, 8, void (*)(void *, int, const char *)),
	PIN(struct vmig_host, ranges_unknown, 96, 8,
	    void (*)(void *, uint32_t, const struct vmig_range *, uint32_t)),
	/* Since plugin ABI 1.1. */
	PIN(struct vmig_host, user, 104, 8, void *),
};

static const struct field_pin vmig_source_ops_pins[] = {
	PIN(struct vmig_source_ops, size, 0, 4, uint32_t),
	PIN(struct vmig_source_ops, reserved, 4, 4, uint32_t),
	PIN(struct vmig_source_ops, create, 8, 8,
	    int (*)(const struct vmig_host *, void **)),
	PIN(struct vmig_source_ops, destroy, 16, 8, void (*)(void *)),
	PIN(struct vmig_source_ops, probe, 24, 8,
	    int (*)(void *, const struct vmig_device_desc *,
		    struct vmig_probe *)),
	PIN(struct vmig_source_ops, attach, 32, 8,
	    int (*)(void *, const struct vmig_device_desc *)),
	PIN(struct vmig_source_ops, detach, 40, 8, int (*)(void *, uint32_t)),
	PIN(struct vmig_source_ops, start, 48, 8, int (*)(void *, uint64_t)),
	PIN(struct vmig_source_ops, stop, 56, 8, int (*)(void *)),
	PIN(struct vmig_source_ops, read, 64, 8,
	    int (*)(void *, const struct vmig_read *, uint64_t *)),
	PIN(struct vmig_source_ops, map, 72, 8,
	    int (*)(void *, uint32_t, const struct vmig_range *)),
	PIN(struct vmig_source_ops, unmap_prepare, 80, 8,
	    int (*)(void *, const struct vmig_read *, uint64_t *, uint32_t *)),
	PIN(struct vmig_source_ops, unmap_complete, 88, 8,
	    int (*)(void *, const struct vmig_read *, uint64_t *)),
	PIN(struct vmig_source_ops, status, 96, 8,
	    int (*)(void *, uint32_t, struct vmig_probe *)),
	/* Since plugin ABI 1.1. */
	PIN(struct vmig_source_ops, device_gone, 104, 8,
	    void (*)(void *, uint32_t)),
};

static const struct field_pin vmig_plugin_pins[] = {
	PIN(struct vmig_plugin, size, 0, 4, uint32_t),
	PIN(struct vmig_plugin, abi_major, 4, 4, uint32_t),
	PIN(struct vmig_plugin, abi_minor, 8, 4, uint32_t),
	PIN(struct vmig_plugin, flags, 12, 4, uint32_t),
	PIN(struct vmig_plugin, name, 16, 8, const char *),
	PIN(struct vmig_plugin, version, 24, 8, const char *),
	PIN(struct vmig_plugin, description, 32, 8, const char *),
	PIN(struct vmig_plugin, device_kinds, 40, 4, uint32_t),
	PIN(struct vmig_plugin, iommu_kinds, 44, 4, uint32_t),
	PIN(struct vmig_plugin, precision, 48, 4, uint32_t),
	PIN(struct vmig_plugin, max_ranges, 52, 4, uint32_t),
	PIN(struct vmig_plugin, page_sizes, 56, 8, uint64_t),
	PIN(struct vmig_plugin, max_read_bytes, 64, 8, uint64_t),
	PIN(struct vmig_plugin, ops, 72, 8, const struct vmig_source_ops *),
};

static const struct field_pin vmig_progress_pins[] = {
	PIN(struct vmig_progress, size, 0, 4, uint32_t),
	PIN(struct vmig_progress, iteration, 4, 4, uint32_t),
	PIN(struct vmig_progress, pages_dirty, 8, 8, uint64_t),
	PIN(struct vmig_progress, bytes_left, 16, 8, uint64_t),
	PIN(struct vmig_progress, dirty_rate, 24, 8, uint64_t),
	PIN(struct vmig_progress, bandwidth, 32, 8, uint64_t),
	PIN(struct vmig_progress, expected_downtime_us, 40, 8, uint64_t),
	/* Since 0.2. */
	PIN(struct vmig_progress, phase, 48, 4, uint32_t),
	PIN(struct vmig_progress, reserved, 52, 4, uint32_t),
	PIN(struct vmig_progress, bytes_sent, 56, 8, uint64_t),
	PIN(struct vmig_progress, elapsed_us, 64, 8, uint64_t),
};

static const struct field_pin vmig_session_params_pins[] = {
	PIN(struct vmig_session_params, size, 0, 4, uint32_t),
	PIN(struct vmig_session_params, role, 4, 4, uint32_t),
	PIN(struct vmig_session_params, log, 8, 8, vmig_log_fn),
	PIN(struct vmig_session_params, log_opaque, 16, 8, void *),
	PIN(struct vmig_session_params, log_level, 24, 4, uint32_t),
	PIN(struct vmig_session_params, reserved, 28, 4, uint32_t),
	PIN(struct vmig_session_params, kernel, 32, 8,
	    const struct vmig_host *),
	PIN(struct vmig_session_params, progress, 40, 8, vmig_progress_fn),
	PIN(struct vmig_session_params, progress_opaque, 48, 8, void *),
};

static const struct field_pin vmig_plugin_info_pins[] = {
	PIN(struct vmig_plugin_info, size, 0, 4, uint32_t),
	PIN(struct vmig_plugin_info, error, 4, 4, int32_t),
	PIN(struct vmig_plugin_info, path, 8, 8, const char *),
	PIN(struct vmig_plugin_info, errmsg, 16, 8, const char *),
	PIN(struct vmig_plugin_info, desc, 24, 8, const struct vmig_plugin *),
};

static const struct field_pin vmig_region_pins[] = {
	PIN(struct vmig_region, size, 0, 4, uint32_t),
	PIN(struct vmig_region, flags, 4, 4, uint32_t),
	PIN(struct vmig_region, name, 8, 8, const char *),
	PIN(struct vmig_region, gpa, 16, 8, uint64_t),
	PIN(struct vmig_region, length, 24, 8, uint64_t),
	PIN(struct vmig_region, hva, 32, 8, void *),
	PIN(struct vmig_region, fd, 40, 4, int32_t),
	PIN(struct vmig_region, reserved, 44, 4, uint32_t),
	PIN(struct vmig_region, fd_offset, 48, 8, uint64_t),
};

static const struct field_pin vmig_iommu_pins[] = {
	PIN(struct vmig_iommu, size, 0, 4, uint32_t),
	PIN(struct vmig_iommu, kind, 4, 4, uint32_t),
	PIN(struct vmig_iommu, name, 8, 8, const char *),
	PIN(struct vmig_iommu, fd, 16, 4, int32_t),
	PIN(struct vmig_iommu, ioas_id, 20, 4, uint32_t),
};

static const struct field_pin vmig_dma_map_pins[] = {
	PIN(struct vmig_dma_map, size, 0, 4, uint32_t),
	PIN(struct vmig_dma_map, flags, 4, 4, uint32_t),
	PIN(struct vmig_dma_map, iommu_id, 8, 4, uint32_t),
	PIN(struct vmig_dma_map, reserved, 12, 4, uint32_t),
	PIN(struct vmig_dma_map, iova, 16, 8, uint64_t),
	PIN(struct vmig_dma_map, length, 24, 8, uint64_t),
	PIN(struct vmig_dma_map, gpa, 32, 8, uint64_t),
};

static const struct field_pin vmig_pasid_pins[] = {
	PIN(struct vmig_pasid, pasid, 0, 4, uint32_t),
	PIN(struct vmig_pasid, iommu_id, 4, 4, uint32_t),
};

static const struct field_pin vmig_device_pins[] = {
	PIN(struct vmig_device, size, 0, 4, uint32_t),
	PIN(struct vmig_device, kind, 4, 4, uint32_t),
	PIN(struct vmig_device, name, 8, 8, const char *),
	PIN(struct vmig_device, address, 16, 8, const char *),
	PIN(struct vmig_device, iommu_id, 24, 4, uint32_t),
	PIN(struct vmig_device, device_fd, 28, 4, int32_t),
	PIN(struct vmig_device, group_fd, 32, 4, int32_t),
	PIN(struct vmig_device, iommufd_id, 36, 4, uint32_t),
	PIN(struct vmig_device, nr_pasids, 40, 4, uint32_t),
	PIN(struct vmig_device, reserved, 44, 4, uint32_t),
	PIN(struct vmig_device, pasids, 48, 8, const struct vmig_pasid *),
};

static const struct field_pin vmig_device_status_pins[] = {
	PIN(struct vmig_device_status, size, 0, 4, uint32_t),
	PIN(struct vmig_device_status, precision, 4, 4, uint32_t),
	PIN(struct vmig_device_status, source, 8, 64, char[64]),
	PIN(struct vmig_device_status, reason, 72, 160, char[160]),
};

static const struct field_pin vmig_vmm_ops_pins[] = {
	PIN(struct vmig_vmm_ops, size, 0, 4, uint32_t),
	PIN(struct vmig_vmm_ops, reserved, 4, 4, uint32_t),
	PIN(struct vmig_vmm_ops, stop, 8, 8, int (*)(void *)),
	PIN(struct vmig_vmm_ops, resume, 16, 8, int (*)(void *)),
	PIN(struct vmig_vmm_ops, start, 24, 8, int (*)(void *)),
};

static const struct field_pin vmig_policies_pins[] = {
	PIN(struct vmig_policies, size, 0, 4, uint32_t),
	PIN(struct vmig_policies, hotplug, 4, 4, uint32_t),
	PIN(struct vmig_policies, downtime_limit_ms, 8, 8, uint64_t),
	PIN(struct vmig_policies, bandwidth_limit, 16, 8, uint64_t),
	PIN(struct vmig_policies, max_iterations, 24, 4, uint32_t),
	PIN(struct vmig_policies, timeout_strategy, 28, 4, uint32_t),
	PIN(struct vmig_policies, timeout_ms, 32, 8, uint64_t),
	PIN(struct vmig_policies, tracking, 40, 4, uint32_t),
	PIN(struct vmig_policies, reserved, 44, 4, uint32_t),
	PIN(struct vmig_policies, switchover_timeout_ms, 48, 8, uint64_t),
	PIN(struct vmig_policies, handshake_timeout_ms, 56, 8, uint64_t),
	PIN(struct vmig_policies, idle_timeout_ms, 64, 8, uint64_t),
	PIN(struct vmig_policies, verify, 72, 4, uint32_t),
	PIN(struct vmig_policies, connections, 76, 4, uint32_t),
};

static const struct field_pin vmig_sync_truth_pins[] = {
	PIN(struct vmig_sync_truth, size, 0, 4, uint32_t),
	PIN(struct vmig_sync_truth, reserved, 4, 4, uint32_t),
	PIN(struct vmig_sync_truth, writes, 8, 8, uint64_t),
	PIN(struct vmig_sync_truth, pages_written, 16, 8, uint64_t),
	PIN(struct vmig_sync_truth, pages_missed, 24, 8, uint64_t),
	PIN(struct vmig_sync_truth, written, 32, 8, uint64_t *const *),
};

static const struct field_pin vmig_observer_pins[] = {
	PIN(struct vmig_observer, size, 0, 4, uint32_t),
	PIN(struct vmig_observer, flags, 4, 4, uint32_t),
	PIN(struct vmig_observer, tracking_started, 8, 8, void (*)(void *)),
	PIN(struct vmig_observer, sync, 16, 8,
	    void (*)(void *, bool, struct vmig_sync_truth *)),
	PIN(struct vmig_observer, vmm_call_done, 24, 8, void (*)(void *)),
};

static const struct field_pin vmig_status_pins[] = {
	PIN(struct vmig_status, size, 0, 4, uint32_t),
	PIN(struct vmig_status, phase, 4, 4, uint32_t),
	PIN(struct vmig_status, iteration, 8, 4, uint32_t),
	PIN(struct vmig_status, reserved, 12, 4, uint32_t),
	PIN(struct vmig_status, bytes_sent, 16, 8, uint64_t),
	PIN(struct vmig_status, bytes_left, 24, 8, uint64_t),
	PIN(struct vmig_status, pages_dirty, 32, 8, uint64_t),
	PIN(struct vmig_status, dirty_rate, 40, 8, uint64_t),
	PIN(struct vmig_status, bandwidth, 48, 8, uint64_t),
	PIN(struct vmig_status, expected_downtime_us, 56, 8, uint64_t),
	PIN(struct vmig_status, elapsed_us, 64, 8, uint64_t),
	PIN(struct vmig_status, stopped_us, 72, 8, uint64_t),
};

static const struct field_pin vmig_event_pins[] = {
	PIN(struct vmig_event, size, 0, 4, uint32_t),
	PIN(struct vmig_event, type, 4, 4, uint32_t),
	PIN(struct vmig_event, phase, 8, 4, uint32_t),
	PIN(struct vmig_event, iteration, 12, 4, uint32_t),
	PIN(struct vmig_event, error, 16, 4, int32_t),
	PIN(struct vmig_event, reserved, 20, 4, uint32_t),
	PIN(struct vmig_event, elapsed_us, 24, 8, uint64_t),
	PIN(struct vmig_event, pages_dirty, 32, 8, uint64_t),
	PIN(struct vmig_event, bytes_sent, 40, 8, uint64_t),
	PIN(struct vmig_event, expected_downtime_us, 48, 8, uint64_t),
	PIN(struct vmig_event, message, 56, 8, const char *),
};

static const struct field_pin vmig_state_ops_pins[] = {
	PIN(struct vmig_state_ops, size, 0, 4, uint32_t),
	PIN(struct vmig_state_ops, reserved, 4, 4, uint32_t),
	PIN(struct vmig_state_ops, pending, 8, 8, uint64_t (*)(void *)),
	PIN(struct vmig_state_ops, save_live, 16, 8,
	    int (*)(void *, vmig_state_out *)),
	PIN(struct vmig_state_ops, save_final, 24, 8,
	    int (*)(void *, vmig_state_out *)),
	PIN(struct vmig_state_ops, load, 32, 8,
	    int (*)(void *, uint32_t, const void *, size_t)),
	PIN(struct vmig_state_ops, load_done, 40, 8,
	    int (*)(void *, uint32_t)),
	PIN(struct vmig_state_ops, load_abort, 48, 8, void (*)(void *)),
};

static const struct struct_pin struct_pins[] = {
	STRUCT(struct vmig_range, 16, 8, vmig_range_pins),
	STRUCT(struct vmig_iommu_desc, 24, 4, vmig_iommu_desc_pins),
	STRUCT(struct vmig_pasid_desc, 16, 8, vmig_pasid_desc_pins),
	STRUCT(struct vmig_device_desc, 72, 8, vmig_device_desc_pins),
	STRUCT(struct vmig_probe, 176, 4, vmig_probe_pins),
	STRUCT(struct vmig_read, 40, 8, vmig_read_pins),
	STRUCT(struct vmig_host, 112, 8, vmig_host_pins),
	STRUCT(struct vmig_source_ops, 112, 8, vmig_source_ops_pins),
	STRUCT(struct vmig_plugin, 80, 8, vmig_plugin_pins),
	STRUCT(struct vmig_progress, 72, 8, vmig_progress_pins),
	STRUCT(struct vmig_session_params, 56, 8, vmig_session_params_pins),
	STRUCT(struct vmig_plugin_info, 32, 8, vmig_plugin_info_pins),
	STRUCT(struct vmig_region, 56, 8, vmig_region_pins),
	STRUCT(struct vmig_iommu, 24, 8, vmig_iommu_pins),
	STRUCT(struct vmig_dma_map, 40, 8, vmig_dma_map_pins),
	STRUCT(struct vmig_pasid, 8, 4, vmig_pasid_pins),
	STRUCT(struct vmig_device, 56, 8, vmig_device_pins),
	STRUCT(struct vmig_device_status, 232, 4, vmig_device_status_pins),
	STRUCT(struct vmig_vmm_ops, 32, 8, vmig_vmm_ops_pins),
	STRUCT(struct vmig_policies, 80, 8, vmig_policies_pins),
	STRUCT(struct vmig_sync_truth, 40, 8, vmig_sync_truth_pins),
	STRUCT(struct vmig_observer, 32, 8, vmig_observer_pins),
	STRUCT(struct vmig_status, 80, 8, vmig_status_pins),
	STRUCT(struct vmig_event, 64, 8, vmig_event_pins),
	STRUCT(struct vmig_state_ops, 56, 8, vmig_state_ops_pins),
};

/*
 * Each structure has the pinned size and alignment, each field its
 * offset, size and type, and the fields fill the structure: no implicit
 * padding (a hole would hold garbage that a reader of a newer minor may
 * take for a field) and no field left unpinned.
 */
static void test_layouts(void)
{
	size_t i, j;

	CU_ASSERT_EQUAL(ARRAY_SIZE(struct_pins), 25);
	for (i = 0; i < ARRAY_SIZE(struct_pins); i++) {
		const struct struct_pin *sp = &struct_pins[i];
		size_t end = 0, sum = 0;

		if (sp->size != sp->want_size || sp->align != sp->want_align)
			fprintf(stderr,
				"\n%s: size %zu align %zu, pinned %zu %zu\n",
				sp->name, sp->size, sp->align, sp->want_size,
				sp->want_align);
		CU_ASSERT_EQUAL(sp->size, sp->want_size);
		CU_ASSERT_EQUAL(sp->align, sp->want_align);
		for (j = 0; j < sp->nr_fields; j++) {
			const struct field_pin *fp = &sp->fields[j];

			if (fp->offset != fp->want_offset ||
			    fp->size != fp->want_size || !fp->type_ok)
				fprintf(stderr,
					"\n%s: offset %zu size %zu type %s, "
					"pinned %zu %zu\n",
					fp->name, fp->offset, fp->size,
					fp->type_ok ? "ok" : "CHANGED",
					fp->want_offset, fp->want_size);
			CU_ASSERT_EQUAL(fp->offset, fp->want_offset);
			CU_ASSERT_EQUAL(fp->size, fp->want_size);
			CU_ASSERT(fp->type_ok);
			/* In declaration order, each after the last. */
			CU_ASSERT(fp->offset >= end);
			end = fp->offset + fp->size;
			sum += fp->size;
		}
		if (sum != sp->size)
			fprintf(stderr, "\n%s: fields cover %zu of %zu bytes\n",
				sp->name, sum, sp->size);
		CU_ASSERT_EQUAL(sum, sp->size);
		CU_ASSERT_EQUAL(end, sp->size);
	}
}

#else /* !__LP64__ */

static void test_layouts(void)
{
	CU_FAIL("the layout pins are for LP64 only: add this ABI's");
}

#endif

/* ------------------------------------------------------------------ */
/* Types of callbacks and functions                                    */

struct type_pin {
	const char *name;
	int ok;
};

#define TYPE_PIN(name, ...) { #name, HAS_TYPE(name, __VA_ARGS__) }

/* Dereferencing a typedef'd pointer: a value of that type, never read. */
#define VALUE_OF(T) (*(T *)0)

static const struct type_pin type_pins[] = {
	{ "vmig_plugin_entry_fn",
	  HAS_TYPE(VALUE_OF(vmig_plugin_entry_fn),
		   const struct vmig_plugin *(*)(const struct vmig_host *,
						 uint32_t)) },
	{ "vmig_log_fn",
	  HAS_TYPE(VALUE_OF(vmig_log_fn),
		   void (*)(void *, enum vmig_log_level, const char *)) },
	{ "vmig_progress_fn",
	  HAS_TYPE(VALUE_OF(vmig_progress_fn),
		   void (*)(void *, const struct vmig_progress *)) },
	{ "vmig_session", HAS_TYPE(VALUE_OF(vmig_session *),
				   struct vmig_session *) },
	/* The prototype plugin.h gives plugins for their entry point. */
	{ STR(VMIG_PLUGIN_ENTRY),
	  HAS_TYPE(VMIG_PLUGIN_ENTRY,
		   const struct vmig_plugin *(const struct vmig_host *,
					      uint32_t)) },
	TYPE_PIN(vmig_host_logf,
		 void (const struct vmig_host *, int, const char *, ...)),
	TYPE_PIN(vmig_strerror, const char *(int)),
	TYPE_PIN(vmig_version, unsigned int (void)),
	TYPE_PIN(vmig_version_string, const char *(void)),
	TYPE_PIN(vmig_linux_kernel, const struct vmig_host *(void)),
	TYPE_PIN(vmig_session_new,
		 int (const struct vmig_session_params *, vmig_session **)),
	TYPE_PIN(vmig_session_free, void (vmig_session *)),
	TYPE_PIN(vmig_errmsg, const char *(const vmig_session *)),
	TYPE_PIN(vmig_plugin_add_path, int (vmig_session *, const char *)),
	TYPE_PIN(vmig_plugin_load, int (vmig_session *, const char *)),
	TYPE_PIN(vmig_plugin_register,
		 int (vmig_session *, const struct vmig_plugin *)),
	TYPE_PIN(vmig_plugins_scan,
		 int (vmig_session *,
		      void (*)(void *, const struct vmig_plugin_info *),
		      void *)),
	TYPE_PIN(vmig_set_preference,
		 int (vmig_session *, const char *const *, size_t)),
	TYPE_PIN(vmig_region_add,
		 int (vmig_session *, const struct vmig_region *, uint32_t *)),
	TYPE_PIN(vmig_iommu_add,
		 int (vmig_session *, const struct vmig_iommu *, uint32_t *)),
	TYPE_PIN(vmig_dma_map,
		 int (vmig_session *, const struct vmig_dma_map *)),
	TYPE_PIN(vmig_dma_unmap,
		 int (vmig_session *, uint32_t, uint64_t, uint64_t)),
	TYPE_PIN(vmig_device_add,
		 int (vmig_session *, const struct vmig_device *, uint32_t *)),
	TYPE_PIN(vmig_device_remove, int (vmig_session *, uint32_t)),
	TYPE_PIN(vmig_device_status,
		 int (vmig_session *, uint32_t, struct vmig_device_status *)),
	TYPE_PIN(vmig_tracking_start, int (vmig_session *)),
	TYPE_PIN(vmig_dirty_sync, int64_t (vmig_session *)),
	TYPE_PIN(vmig_dirty_bitmap,
		 int (vmig_session *, uint32_t, const uint64_t **,
		      uint64_t *)),
	TYPE_PIN(vmig_dirty_clear, int (vmig_session *, uint32_t)),
	TYPE_PIN(vmig_tracking_stop, int (vmig_session *)),
	TYPE_PIN(vmig_set_vmm_ops,
		 int (vmig_session *, const struct vmig_vmm_ops *, void *)),
	TYPE_PIN(vmig_set_policies,
		 int (vmig_session *, const struct vmig_policies *)),
	TYPE_PIN(vmig_migrate, int (vmig_session *, const char *)),
	TYPE_PIN(vmig_listen,
		 int (vmig_session *, const char *, char *, size_t)),
	TYPE_PIN(vmig_receive, int (vmig_session *)),
	TYPE_PIN(vmig_migrate_local, int (vmig_session *, vmig_session *)),
	TYPE_PIN(vmig_cancel, int (vmig_session *)),
	TYPE_PIN(vmig_resolve, int (vmig_session *, uint32_t)),
	TYPE_PIN(vmig_memory_digest, int (vmig_session *, uint64_t *)),
	TYPE_PIN(vmig_memory_dump, int (vmig_session *, const char *)),
	TYPE_PIN(vmig_set_observer,
		 int (vmig_session *, const struct vmig_observer *, void *)),
	TYPE_PIN(vmig_report_json, int64_t (vmig_session *, char *, size_t)),
	TYPE_PIN(vmig_query, int (vmig_session *, struct vmig_status *)),
	TYPE_PIN(vmig_set_event_callback,
		 int (vmig_session *, vmig_event_fn, void *)),
	TYPE_PIN(vmig_phase_name, const char *(uint32_t)),
	TYPE_PIN(vmig_precision_name, const char *(uint32_t)),
	TYPE_PIN(vmig_plugin_register_user,
		 int (vmig_session *, const struct vmig_plugin *, void *)),
	TYPE_PIN(vmig_state_register,
		 int (vmig_session *, const char *, uint32_t, uint32_t,
		      const struct vmig_state_ops *, void *)),
	TYPE_PIN(vmig_state_unregister, int (vmig_session *, const char *)),
	TYPE_PIN(vmig_state_put,
		 int (vmig_state_out *, const void *, size_t)),
};

static void test_types(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(type_pins); i++) {
		if (!type_pins[i].ok)
			fprintf(stderr, "\n%s: type changed\n",
				type_pins[i].name);
		CU_ASSERT(type_pins[i].ok);
	}
}

/* ------------------------------------------------------------------ */
/* Enums                                                               */

struct enum_pin {
	const char *name;
	long long value, want;
};

#define ENUM(c, v) { #c, (long long)(c), v }

static const struct enum_pin enum_pins[] = {
	ENUM(VMIG_LOG_ERROR, 0),
	ENUM(VMIG_LOG_WARN, 1),
	ENUM(VMIG_LOG_INFO, 2),
	ENUM(VMIG_LOG_DEBUG, 3),
	ENUM(VMIG_PRECISION_NONE, 0),
	ENUM(VMIG_PRECISION_EXACT, 1),
	ENUM(VMIG_PRECISION_SUPERSET, 2),
	ENUM(VMIG_PRECISION_ALL_MAPPED, 3),
	ENUM(VMIG_DEVICE_VFIO_PCI, 1),
	ENUM(VMIG_DEVICE_MDEV, 2),
	ENUM(VMIG_IOMMU_TYPE1, 1),
	ENUM(VMIG_IOMMU_IOMMUFD, 2),
	ENUM(VMIG_IOMMU_GPA, 3),
	ENUM(VMIG_ECONFIG, -4001),
	ENUM(VMIG_ENOTPLUGIN, -4002),
	ENUM(VMIG_ENOENTRY, -4003),
	ENUM(VMIG_EABI, -4004),
	ENUM(VMIG_EBADPLUGIN, -4005),
	ENUM(VMIG_EDUPLICATE, -4006),
	ENUM(VMIG_EREFUSED, -4007),
	ENUM(VMIG_EMISSED, -4008),
	ENUM(VMIG_EPROTO, -4009),
	ENUM(VMIG_EMISMATCH, -4010),
	ENUM(VMIG_EUNRESOLVED, -4011),
	ENUM(VMIG_EMIGRATED, -4012),
	ENUM(VMIG_EAUDIT, -4013),
	ENUM(VMIG_STATE_NAME_MAX, 63),
	ENUM(VMIG_STATE_RECORD_MAX, 1 << 20),
	ENUM(VMIG_STATE_SECTIONS_MAX, 64),
	ENUM(VMIG_RESOLVE_RESUME, 1),
	ENUM(VMIG_RESOLVE_DESTINATION, 2),
	ENUM(VMIG_DEFAULT_SWITCHOVER_TIMEOUT_MS, 30000),
	ENUM(VMIG_HOTPLUG_POLICY_TRACK, 0),
	ENUM(VMIG_HOTPLUG_POLICY_DEGRADE, 1),
	ENUM(VMIG_HOTPLUG_POLICY_REJECT, 2),
	ENUM(VMIG_TIMEOUT_STRATEGY_CANCEL, 0),
	ENUM(VMIG_TIMEOUT_STRATEGY_FORCE, 1),
	ENUM(VMIG_TRACKING_POLICY_MIXED, 0),
	ENUM(VMIG_TRACKING_POLICY_ALL_OR_NOTHING, 1),
	ENUM(VMIG_VERIFY_DEFAULT, 0),
	ENUM(VMIG_VERIFY_AUDIT, 1),
	ENUM(VMIG_VERIFY_STRICT, 2),
	ENUM(VMIG_VERIFY_OFF, 3),
	ENUM(VMIG_ROLE_SOURCE, 1),
	ENUM(VMIG_ROLE_DESTINATION, 2),
	ENUM(VMIG_OBSERVER_TRUTH, 1),
	ENUM(VMIG_PHASE_NONE, 0),
	ENUM(VMIG_PHASE_SETUP, 1),
	ENUM(VMIG_PHASE_PRECOPY, 2),
	ENUM(VMIG_PHASE_SWITCHOVER, 3),
	ENUM(VMIG_PHASE_COMMIT, 4),
	ENUM(VMIG_PHASE_COMPLETED, 5),
	ENUM(VMIG_PHASE_FAILED, 6),
	ENUM(VMIG_PHASE_UNRESOLVED, 7),
	ENUM(VMIG_EVENT_PHASE, 1),
	ENUM(VMIG_EVENT_ITERATION, 2),
	ENUM(VMIG_EVENT_CONVERGED, 3),
	ENUM(VMIG_EVENT_SWITCHOVER, 4),
	ENUM(VMIG_EVENT_COMMIT, 5),
	ENUM(VMIG_EVENT_COMPLETED, 6),
	ENUM(VMIG_EVENT_FAILED, 7),
};

static void test_enums(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(enum_pins); i++) {
		if (enum_pins[i].value != enum_pins[i].want)
			fprintf(stderr, "\n%s = %lld, pinned %lld\n",
				enum_pins[i].name, enum_pins[i].value,
				enum_pins[i].want);
		CU_ASSERT_EQUAL(enum_pins[i].value, enum_pins[i].want);
	}
	/* Enums cross the boundary as uint32_t fields: they must fit. */
	CU_ASSERT_EQUAL(sizeof(enum vmig_log_level), 4);
	CU_ASSERT_EQUAL(sizeof(enum vmig_precision), 4);
	CU_ASSERT_EQUAL(sizeof(enum vmig_device_kind), 4);
	CU_ASSERT_EQUAL(sizeof(enum vmig_iommu_kind), 4);
	CU_ASSERT_EQUAL(sizeof(enum vmig_error), 4);
	CU_ASSERT_EQUAL(sizeof(enum vmig_role), 4);
	CU_ASSERT_EQUAL(sizeof(enum vmig_hotplug_policy), 4);
	CU_ASSERT_EQUAL(sizeof(enum vmig_timeout_strategy), 4);
	CU_ASSERT_EQUAL(sizeof(enum vmig_resolution), 4);
}

/* Each of vmig's own codes has its own description. */
static void test_error_names(void)
{
	static const int codes[] = {
		VMIG_ECONFIG, VMIG_ENOTPLUGIN, VMIG_ENOENTRY, VMIG_EABI,
		VMIG_EBADPLUGIN, VMIG_EDUPLICATE, VMIG_EREFUSED, VMIG_EMISSED,
		VMIG_EPROTO, VMIG_EMISMATCH, VMIG_EUNRESOLVED, VMIG_EMIGRATED,
	};
	const char *unknown = vmig_strerror(-999999);
	size_t i, j;

	CU_ASSERT_PTR_NOT_NULL_FATAL(unknown);
	for (i = 0; i < ARRAY_SIZE(codes); i++) {
		const char *s = vmig_strerror(codes[i]);

		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		CU_ASSERT(strcmp(s, unknown) != 0);
		for (j = 0; j < i; j++)
			CU_ASSERT(strcmp(s, vmig_strerror(codes[j])) != 0);
	}
}

/* ------------------------------------------------------------------ */
/* Constants                                                           */

/* True when the constant is an unsigned int, as the u suffix makes it. */
#define IS_UINT(c) _Generic((c), unsigned int: 1, default: 0)

static void test_plugin_constants(void)
{
	CU_ASSERT_STRING_EQUAL(VMIG_PLUGIN_ENTRY_NAME, "vmig_plugin_init");
	/* The macro names the symbol that the string spells. */
	CU_ASSERT_STRING_EQUAL(STR(VMIG_PLUGIN_ENTRY), VMIG_PLUGIN_ENTRY_NAME);

	CU_ASSERT_EQUAL(VMIG_PAGE_SIZE, 4096);
	CU_ASSERT(IS_UINT(VMIG_PAGE_SIZE));

	CU_ASSERT_EQUAL(VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI), 0x2);
	CU_ASSERT_EQUAL(VMIG_KIND_BIT(VMIG_DEVICE_MDEV), 0x4);
	CU_ASSERT_EQUAL(VMIG_KIND_BIT(VMIG_IOMMU_TYPE1), 0x2);
	CU_ASSERT_EQUAL(VMIG_KIND_BIT(VMIG_IOMMU_IOMMUFD), 0x4);
	CU_ASSERT_EQUAL(VMIG_KIND_BIT(VMIG_IOMMU_GPA), 0x8);
	CU_ASSERT(IS_UINT(VMIG_KIND_BIT(VMIG_IOMMU_GPA)));

	CU_ASSERT_EQUAL(VMIG_READ_NO_CLEAR, 0x1);
	CU_ASSERT(IS_UINT(VMIG_READ_NO_CLEAR));
	CU_ASSERT_EQUAL(VMIG_PROBE_PASIDS, 0x1);
	CU_ASSERT(IS_UINT(VMIG_PROBE_PASIDS));
	CU_ASSERT_EQUAL(VMIG_UNMAP_DONE, 0x1);
	CU_ASSERT(IS_UINT(VMIG_UNMAP_DONE));
	CU_ASSERT_EQUAL(VMIG_PLUGIN_READ_NO_CLEAR, 0x1);
	CU_ASSERT(IS_UINT(VMIG_PLUGIN_READ_NO_CLEAR));

	CU_ASSERT_EQUAL(VMIG_DMA_READ, 0x1);
	CU_ASSERT_EQUAL(VMIG_DMA_WRITE, 0x2);
	CU_ASSERT_EQUAL(VMIG_DMA_EXISTING, 0x4);
	CU_ASSERT(IS_UINT(VMIG_DMA_READ) && IS_UINT(VMIG_DMA_WRITE) &&
		  IS_UINT(VMIG_DMA_EXISTING));

	CU_ASSERT_EQUAL(VMIG_PLUGIN_ABI_MAJOR, 1);
	CU_ASSERT_EQUAL(VMIG_PLUGIN_ABI_MINOR, 1);
}

/* VMIG_HAS_FIELD is true exactly when the size covers the whole field. */
static void test_has_field(void)
{
	struct vmig_host host = { .size = 0 };
	const struct vmig_host *none = NULL;
	size_t end = offsetof(struct vmig_host, log) + sizeof(host.log);

	CU_ASSERT_FALSE(VMIG_HAS_FIELD(none, struct vmig_host, size));
	host.size = (uint32_t)end;
	CU_ASSERT(VMIG_HAS_FIELD(&host, struct vmig_host, log));
	CU_ASSERT_FALSE(VMIG_HAS_FIELD(&host, struct vmig_host,
				       ranges_unknown));
	host.size = (uint32_t)end - 1;
	CU_ASSERT_FALSE(VMIG_HAS_FIELD(&host, struct vmig_host, log));
	CU_ASSERT(VMIG_HAS_FIELD(&host, struct vmig_host, munmap));
	host.size = sizeof(host);
	CU_ASSERT(VMIG_HAS_FIELD(&host, struct vmig_host, ranges_unknown));
}

static char logged[600];
static int log_level;
static int log_calls;

static void record_log(void *ctx, int level, const char *msg)
{
	CU_ASSERT_PTR_EQUAL(ctx, &log_calls);
	log_calls++;
	log_level = level;
	snprintf(logged, sizeof(logged), "%s", msg);
}

/* The inline helper of plugin.h, which every plugin compiles in. */
static void test_host_logf(void)
{
	struct vmig_host host = {
		.size = sizeof(host),
		.ctx = &log_calls,
		.log = record_log,
	};
	char long_arg[700];

	vmig_host_logf(&host, VMIG_LOG_WARN, "%s %d", "fd", 7);
	CU_ASSERT_EQUAL(log_calls, 1);
	CU_ASSERT_EQUAL(log_level, VMIG_LOG_WARN);
	CU_ASSERT_STRING_EQUAL(logged, "fd 7");

	/* Longer than its buffer: truncated to 511 characters. */
	memset(long_arg, 'x', sizeof(long_arg) - 1);
	long_arg[sizeof(long_arg) - 1] = '\0';
	vmig_host_logf(&host, VMIG_LOG_INFO, "%s", long_arg);
	CU_ASSERT_EQUAL(log_calls, 2);
	CU_ASSERT_EQUAL(strlen(logged), 511);

	/* A table too old to have log, no log, or no table: nothing. */
	host.size = offsetof(struct vmig_host, log);
	vmig_host_logf(&host, VMIG_LOG_ERROR, "dropped");
	host.size = sizeof(host);
	host.log = NULL;
	vmig_host_logf(&host, VMIG_LOG_ERROR, "dropped");
	vmig_host_logf(NULL, VMIG_LOG_ERROR, "dropped");
	CU_ASSERT_EQUAL(log_calls, 2);
}

/* ------------------------------------------------------------------ */
/* Versions                                                            */

static void test_version(void)
{
	char composed[32];

	CU_ASSERT_EQUAL(VMIG_VERSION_MAJOR, 0);
	CU_ASSERT_EQUAL(VMIG_VERSION_MINOR, 3);
	CU_ASSERT_EQUAL(VMIG_VERSION_PATCH, 0);
	CU_ASSERT_STRING_EQUAL(VMIG_VERSION_STRING, "0.3.0");
	CU_ASSERT_EQUAL(VMIG_VERSION, 0x000300);
	CU_ASSERT_EQUAL(VMIG_VERSION_HEX(1, 2, 3), 0x010203);
	CU_ASSERT_EQUAL(VMIG_VERSION_HEX(0, 255, 255), 0x00ffff);

	/* The string, the number and the parts say the same version. */
	snprintf(composed, sizeof(composed), "%d.%d.%d", VMIG_VERSION_MAJOR,
		 VMIG_VERSION_MINOR, VMIG_VERSION_PATCH);
	CU_ASSERT_STRING_EQUAL(composed, VMIG_VERSION_STRING);
	CU_ASSERT_EQUAL(VMIG_VERSION,
			VMIG_VERSION_HEX(VMIG_VERSION_MAJOR,
					 VMIG_VERSION_MINOR,
					 VMIG_VERSION_PATCH));

	/* The library linked in is the one these headers describe. */
	CU_ASSERT_EQUAL(vmig_version(), VMIG_VERSION);
	CU_ASSERT_PTR_NOT_NULL_FATAL(vmig_version_string());
	CU_ASSERT_STRING_EQUAL(vmig_version_string(), VMIG_VERSION_STRING);
	snprintf(composed, sizeof(composed), "%u.%u.%u",
		 vmig_version() >> 16, (vmig_version() >> 8) & 0xff,
		 vmig_version() & 0xff);
	CU_ASSERT_STRING_EQUAL(composed, vmig_version_string());
}

static CU_TestInfo abi_tests[] = {
	{ "structure layouts", test_layouts },
	{ "callback and function types", test_types },
	{ "enum values", test_enums },
	{ "error names", test_error_names },
	{ "plugin constants", test_plugin_constants },
	{ "VMIG_HAS_FIELD", test_has_field },
	{ "vmig_host_logf", test_host_logf },
	{ "versions", test_version },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("abi", abi_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
