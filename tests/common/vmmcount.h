/*
 * vmmcount.h: a VMM that only counts the calls a session makes to stop,
 * resume and start its guest, and a session of one anonymous RAM region
 * ("ram") whose VMM it is: what the tests of whole migrations over a
 * socket set up the same way on both sides.
 * Include after testutil.h.
 */
#ifndef VMIG_VMMCOUNT_H
#define VMIG_VMMCOUNT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <vmig/vmig.h>

/* How many times the session stopped, resumed and started the guest. */
struct vmig_vmm_count {
	atomic_uint stops, resumes, starts;
};

static inline int vmig_vmm_count_stop(void *o)
{
	atomic_fetch_add(&((struct vmig_vmm_count *)o)->stops, 1);
	return 0;
}

static inline int vmig_vmm_count_resume(void *o)
{
	atomic_fetch_add(&((struct vmig_vmm_count *)o)->resumes, 1);
	return 0;
}

static inline int vmig_vmm_count_start(void *o)
{
	atomic_fetch_add(&((struct vmig_vmm_count *)o)->starts, 1);
	return 0;
}

/* The ops of a VMM whose opaque is a struct vmig_vmm_count. */
static const struct vmig_vmm_ops vmig_vmm_count_ops = {
	.size = sizeof(struct vmig_vmm_ops),
	.stop = vmig_vmm_count_stop,
	.resume = vmig_vmm_count_resume,
	.start = vmig_vmm_count_start,
};

/*
 * A new session of params p with one region ("ram") of len bytes at
 * hva, registered with flags (VMIG_REGION_*) and fd (its memfd, or -1),
 * its VMM the counter vc.
 */
static inline vmig_session *
vmig_test_region_session_p(const struct vmig_session_params *p, uint8_t *hva,
			   size_t len, uint32_t flags, int fd,
			   struct vmig_vmm_count *vc)
{
	struct vmig_region reg = { .size = sizeof(reg), .fd = fd,
				   .name = "ram", .length = len, .hva = hva,
				   .flags = flags };
	vmig_session *s = NULL;

	CU_ASSERT_FATAL(vmig_session_new(p, &s) == 0);
	CU_ASSERT_FATAL(vmig_region_add(s, &reg, NULL) == 0);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(s, &vmig_vmm_count_ops, vc) == 0);
	return s;
}

/* The same with params of its own (a log), the role theirs. */
static inline vmig_session *vmig_test_region_session(int role, uint8_t *hva,
						     size_t len,
						     uint32_t flags, int fd,
						     struct vmig_vmm_count *vc)
{
	struct vmig_session_params p = { .size = sizeof(p), .role = role };

	return vmig_test_region_session_p(&p, hva, len, flags, fd, vc);
}

/*
 * A new session of params p with one anonymous region of len bytes,
 * mapped at *mem (a pattern written into it when data, zero otherwise),
 * its VMM the counter vc.
 */
static inline vmig_session *
vmig_test_ram_session_p(const struct vmig_session_params *p, size_t len,
			bool data, struct vmig_vmm_count *vc, uint8_t **mem)
{
	size_t i;

	*mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(*mem != MAP_FAILED);
	for (i = 0; data && i < len; i += 64)
		(*mem)[i] = (uint8_t)(i / 64 + 1);
	return vmig_test_region_session_p(p, *mem, len, 0, -1, vc);
}

/* The same with params of its own (a log), the role theirs. */
static inline vmig_session *vmig_test_ram_session(int role, size_t len,
						  bool data,
						  struct vmig_vmm_count *vc,
						  uint8_t **mem)
{
	struct vmig_session_params p = { .size = sizeof(p), .role = role };

	return vmig_test_ram_session_p(&p, len, data, vc, mem);
}

/* Frees a session of vmig_test_ram_session() and unmaps its region. */
static inline void vmig_test_ram_free(vmig_session *s, uint8_t *mem,
				      size_t len)
{
	vmig_session_free(s);
	munmap(mem, len);
}

#endif
