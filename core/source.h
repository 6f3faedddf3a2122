/*
 * source.h: every call vmig makes into a dirty source's operations.
 *
 * A plugin may leave any slot but create NULL, and a table built for an
 * older ABI minor ends before the slots added since. plugin.h documents
 * what vmig does then for each operation; these wrappers are the one
 * place that applies it, so that no caller chooses a default of its own:
 *
 *   probe           declined (precision NONE, "cannot probe devices")
 *   attach, detach  accepted, nothing to do
 *   start, stop     succeed
 *   read            every page of the request is dirty
 *   map             succeeds (nothing to arm)
 *   unmap_prepare   a read of the range (the last bits before it goes)
 *   unmap_complete  succeeds, nothing more to report
 *   status          -ENOTSUP (the probe's verdict stands)
 *   device_gone     nothing to forget
 *
 * The wrappers also check what comes back where the ABI bounds it (a
 * precision outside the enum, an unterminated reason).
 */
#ifndef VMIG_CORE_SOURCE_H
#define VMIG_CORE_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include <vmig/plugin.h>

struct vmig_source_rec;

/* Creates src's instance (create is the one required operation). */
int vmig_src_create(struct vmig_source_rec *src);
/* Destroys src's instance, if it has one; src->inst is NULL after. */
void vmig_src_destroy(struct vmig_source_rec *src);
/*
 * Probes dev into *out (zeroed and sized here). 0 with a verdict, or the
 * probe's own error. An unknown precision is a refusal with a reason.
 */
int vmig_src_probe(struct vmig_source_rec *src,
		   const struct vmig_device_desc *dev, struct vmig_probe *out);
int vmig_src_attach(struct vmig_source_rec *src,
		    const struct vmig_device_desc *dev);
int vmig_src_detach(struct vmig_source_rec *src, uint32_t device_id);
int vmig_src_start(struct vmig_source_rec *src, uint64_t page_size);
int vmig_src_stop(struct vmig_source_rec *src);
/* Whether the source reads at all (without read, everything is dirty). */
bool vmig_src_reads(const struct vmig_source_rec *src);
/* rq's bits into bitmap, which is zero on entry and sized for rq. */
int vmig_src_read(struct vmig_source_rec *src, const struct vmig_read *rq,
		  uint64_t *bitmap);
int vmig_src_map(struct vmig_source_rec *src, uint32_t iommu_id,
		 const struct vmig_range *range);
int vmig_src_unmap_prepare(struct vmig_source_rec *src,
			   const struct vmig_read *rq, uint64_t *bitmap,
			   uint32_t *flags);
int vmig_src_unmap_complete(struct vmig_source_rec *src,
			    const struct vmig_read *rq, uint64_t *bitmap);
int vmig_src_status(struct vmig_source_rec *src, uint32_t device_id,
		    struct vmig_probe *out);
/* Tells src that a device has left the session (ABI 1.1). */
void vmig_src_device_gone(struct vmig_source_rec *src, uint32_t device_id);

#endif /* VMIG_CORE_SOURCE_H */
