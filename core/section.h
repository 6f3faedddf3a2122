/*
 * section.h: the parts of a migration (guest RAM, device state, and one
 * day the VMM's own state) behind one interface.
 *
 * A section says what it still has to move (pending), saves while the
 * guest runs (save_live) and after it stopped (save_final), and puts its
 * frames into a sink the source's phase machine gives it (a pooled
 * batch that references guest memory, writer.c's, or control frames
 * with payloads of their own, precopy.c's). On the destination, a section's
 * loader applies what the checked frames carry. section_ram.c is guest
 * RAM (the dirty bitmaps, PAGES and ZERO); section_devstate.c the VFIO
 * devices' state over core/devstate.c (DEVICE_STATE and DEVICE_END);
 * section_state.c the VMM's own state sections (VMM_STATE and
 * VMM_STATE_END); sections.c the set of them a migration moves, in order
 * (a new section is its file and one line there).
 */
#ifndef VMIG_CORE_SECTION_H
#define VMIG_CORE_SECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* Where a section's frames go. */
struct vmig_section_sink {
	/*
	 * Room for the next frame's header (encoded there, then add()),
	 * or NULL when the sink takes no more now.
	 */
	uint8_t *(*next)(void *opaque);
	/*
	 * Adds the frame encoded at next(), its payload data (len bytes):
	 * referenced until written, or with own taken and freed then.
	 * Returns 0, or an error (the source has failed).
	 */
	int (*add)(void *opaque, const void *data, size_t len, bool own);
	void *opaque;
	/* The iteration's record (pages, zero pages, device bytes). */
	struct vmig_iter_stats *it;
	/* PAGES and ZERO pages added through this sink. */
	uint64_t pages;
};

struct vmig_section;

struct vmig_section_ops {
	const char *name;
	/*
	 * Its frames carry guest memory and go in the pooled batches
	 * (without: control frames, each with its own payload).
	 */
	bool batched;
	/* Prepares the section. Returns 0 or an error (sec->err says). */
	int (*setup)(struct vmig_section *sec);
	void (*cleanup)(struct vmig_section *sec);
	/* Tracking started: the guest runs and the section is live. */
	int (*live_start)(struct vmig_section *sec);
	/*
	 * A pass begins over what a sync found (dirty pages); final: the
	 * guest is stopped (every page carries DATA_CRC).
	 */
	void (*pass_begin)(struct vmig_section *sec, uint64_t dirty,
			   bool final);
	/* Bytes still to move at the stop (the convergence estimate). */
	uint64_t (*pending)(struct vmig_section *sec);
	/*
	 * The guest runs: queues what it has now. Returns 1 when its pass
	 * is over, 0 when the sink is full, or an error.
	 */
	int (*save_live)(struct vmig_section *sec,
			 struct vmig_section_sink *out);
	/* The guest was stopped: the section stops too. */
	int (*stop)(struct vmig_section *sec);
	/*
	 * The guest is stopped: queues the rest. Returns 1 once all is
	 * queued, 0 when the sink is full, or an error.
	 */
	int (*save_final)(struct vmig_section *sec,
			  struct vmig_section_sink *out);
	/* A failure before COMMIT: the section runs again. */
	void (*recover)(struct vmig_section *sec);
};

struct vmig_section {
	const struct vmig_section_ops *ops;
	vmig_session *s;
	struct vmig_engine *e;
	void *priv;
	char err[512];   /* why the last call failed */
};

/*
 * The destination's side of a section: the receive machine (dest.c's
 * vmig_rx) checks every header, then applies what a frame carries here.
 * A loader keeps its state in the vmig_rx (the devices HELLO named, their
 * state handles). Messages go to err, without the frame's name (the
 * receive machine adds it).
 */
struct vmig_section_loader {
	const char *name;
	/* HELLO named device d: can it resume a state here? */
	int (*open)(struct vmig_rx *rx, struct vmig_rx_device *d, char *err,
		    size_t errlen);
	/* HELLO accepted: every named device starts resuming. */
	int (*start)(struct vmig_rx *rx, char *err, size_t errlen);
	/* PAGES and ZERO, checked: where page first of region is. */
	uint8_t *(*span)(struct vmig_rx *rx, uint64_t region, uint64_t first);
	/*
	 * ZERO: count pages at span (page first of region) are zero. Runs
	 * on the data connections' threads too, for pages of their own.
	 */
	void (*zero)(struct vmig_rx *rx, uint64_t region, uint64_t first,
		     uint8_t *span, uint64_t count);
	/* DEVICE_STATE, checked: len more bytes of d's state. */
	int (*write)(struct vmig_rx *rx, struct vmig_rx_device *d,
		     const void *buf, size_t len, char *err, size_t errlen);
	/* COMPLETE: what was received is loaded (before ACK). */
	int (*load)(struct vmig_rx *rx, char *err, size_t errlen);
	/* COMMIT: it runs (before the guest starts). */
	int (*run)(struct vmig_rx *rx, char *err, size_t errlen);
	/* A failure: what was loaded is dropped (the guest never runs). */
	void (*abort)(struct vmig_rx *rx);
	/* The end, whatever it was: releases what open took. */
	void (*close)(struct vmig_rx *rx);
};

/* section_ram.c */
extern const struct vmig_section_ops vmig_section_ram;
/* Dirty pages not queued yet in this pass. */
uint64_t vmig_section_ram_left(const struct vmig_section *sec);
extern const struct vmig_section_loader vmig_section_ram_loader;

/* section_devstate.c */
extern const struct vmig_section_ops vmig_section_devstate;
/* The devices whose state travels (HELLO's order), and their names. */
uint32_t vmig_section_devstate_count(const struct vmig_section *sec);
const char *vmig_section_devstate_name(const struct vmig_section *sec,
				       uint32_t i);
/*
 * An unresolved migration keeps the stopped devices: hands their state
 * handles (and the ids of their devices) to the engine, which releases
 * them at vmig_resolve(). False when out of memory (nothing is kept).
 */
bool vmig_section_devstate_hold(struct vmig_section *sec,
				struct vmig_engine *e);
extern const struct vmig_section_loader vmig_section_devstate_loader;

/* section_state.c: the source's side */
extern const struct vmig_section_ops vmig_section_state;
/* The state sections that travel (HELLO's order), and each one's. */
uint32_t vmig_section_state_count(const struct vmig_section *sec);
const struct vmig_state_reg *
vmig_section_state_reg(const struct vmig_section *sec, uint32_t i);
/* vmig_state_check() of the records queued: what ACK must repeat. */
uint64_t vmig_section_state_check(const struct vmig_section *sec);

/*
 * section_state.c: the destination's side. Messages go to err without
 * the frame's name (the receive machine adds it).
 */
/* HELLO named n->sections sections in layout: match them with ours. */
int vmig_state_rx_hello(struct vmig_rx *rx, const uint8_t *layout,
			const struct vmig_hello_counts *n, char *err,
			size_t errlen);
/* VMM_STATE, checked: one record of section i to its load. */
int vmig_state_rx_record(struct vmig_rx *rx, uint32_t i, const void *data,
			 size_t len, char *err, size_t errlen);
/* COMPLETE: every section's load_done. */
int vmig_state_rx_done(struct vmig_rx *rx, char *err, size_t errlen);
/* A failure after a record was loaded: every section's load_abort. */
void vmig_state_rx_abort(struct vmig_rx *rx);

/* ------------------------------------------------------------------ */
/* sections.c: the sections a migration moves, in their order          */

enum vmig_section_id {
	VMIG_SECTION_RAM,      /* batched: paces each pass */
	VMIG_SECTION_DEVICES,  /* between RAM's batches, then after it */
	VMIG_SECTION_STATE,    /* the VMM's, likewise, after the devices */
	VMIG_SECTION_NR,
};

struct vmig_sections {
	struct vmig_section sec[VMIG_SECTION_NR];
	uint32_t fill;         /* the batched section being passed over */
	uint32_t tail;         /* stopped: the section being saved to its end */
	const char *why;       /* why the last call failed */
};

/* Gives every section its ops (setup comes with the connection). */
void vmig_sections_init(struct vmig_sections *set, vmig_session *s,
			struct vmig_engine *e);
/*
 * Each of these calls the sections in order and stops at the first that
 * fails, with its error returned and its message in set->why.
 */
int vmig_sections_setup(struct vmig_sections *set);
int vmig_sections_live(struct vmig_sections *set);
int vmig_sections_stop(struct vmig_sections *set);
void vmig_sections_recover(struct vmig_sections *set);
void vmig_sections_cleanup(struct vmig_sections *set);
/* A pass begins over what a sync found (final: the guest is stopped). */
void vmig_sections_pass(struct vmig_sections *set, uint64_t dirty,
			bool final);
/* Bytes of guest memory dirty and not queued in this pass. */
uint64_t vmig_sections_dirty(struct vmig_sections *set);
/* Bytes the other sections (device and VMM state) have still to move. */
uint64_t vmig_sections_pending(struct vmig_sections *set);
/*
 * Fills out (a pooled batch) from the batched sections; true once every
 * one of them ended its pass.
 */
bool vmig_sections_fill(struct vmig_sections *set,
			struct vmig_section_sink *out, bool final);
/* The guest runs: what the other sections have now, into out. */
int vmig_sections_save_live(struct vmig_sections *set,
			    struct vmig_section_sink *out);
/*
 * The guest is stopped and the batched sections' last pass queued: the
 * others' rest. 1 once all is queued, 0 when out is full, or an error.
 */
int vmig_sections_save_final(struct vmig_sections *set,
			     struct vmig_section_sink *out);

#endif /* VMIG_CORE_SECTION_H */
