/*
 * guest.h: the simulated guest, a thread that steps a simulated kernel's
 * devices (their DMA engines write guest memory) while the guest runs.
 *
 * Its VMM callbacks (sim_guest_vmm_ops) stop it, resume it and count. While
 * a migration runs it goes in lockstep with the syncs (sim_guest_sync,
 * from the session's observer): exactly steps_per_sync steps between two
 * syncs, however fast or loaded the machine is, so that every iteration
 * sees writes and none sees more than that many steps' worth.
 */
#ifndef VMIG_SIM_GUEST_H
#define VMIG_SIM_GUEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <vmig/vmig.h>

struct ksim;

struct sim_guest_params {
	struct ksim *k;               /* whose devices to step; NULL: none */
	unsigned int step_us;         /* the pause after each step */
	unsigned int steps_per_sync;  /* in lockstep */
	bool lockstep;                /* from the start (a migration's) */
	/* Called after each device step, unlocked (a "vCPU"); may be NULL. */
	void (*step)(void *opaque, uint64_t n);
	void *step_opaque;
};

struct sim_guest {
	struct sim_guest_params p;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool running;  /* the VMM's view: the guest runs */
	bool stepping; /* a step is under way (unlocked) */
	bool quit;
	/*
	 * The owner's, under lock: while paused, no step starts (a caller
	 * quiesces the devices) and a sync does not wait for steps; busy
	 * counts guest writes other threads make, which the stop waits
	 * for as it waits for a step.
	 */
	unsigned int paused;
	unsigned int busy;
	bool lockstep; /* a migration's syncs pace the steps */
	bool granted;  /* a sync allowed steps already */
	uint64_t steps;
	uint64_t allowed; /* with lockstep: steps before the next sync */
	unsigned int stops, resumes, starts; /* the VMM callbacks' calls */
};

/* Prepares a guest that runs, without its thread yet. */
void sim_guest_init(struct sim_guest *g, const struct sim_guest_params *p);

/*
 * Starts its thread, which steps g->p.k's devices (a guest without one
 * is only a VMM's callbacks: the destination's). Returns 0 or -EAGAIN.
 */
int sim_guest_spawn(struct sim_guest *g);

/* Ends the thread: no step is taken from now on. */
void sim_guest_quit(struct sim_guest *g);

/* Ends the thread if it runs, and frees what the guest holds. */
void sim_guest_fini(struct sim_guest *g);

/*
 * Around each sync of a migration (the session's observer): before it,
 * waits until the guest took this interval's steps; after it, allows the
 * next interval's, so that no step of the next interval lands in this
 * one. The first sync allows the first interval's steps itself: what the
 * guest did before tracking started is not that interval's.
 */
void sim_guest_sync(struct sim_guest *g, bool after);

/*
 * The VMM's callbacks, opaque the guest: stop returns once no step and
 * no write of another thread is under way (no write follows it); resume
 * runs it again, out of lockstep (the migration is over); start counts.
 */
int sim_guest_stop(void *opaque);
int sim_guest_resume(void *opaque);
int sim_guest_start(void *opaque);
extern const struct vmig_vmm_ops sim_guest_vmm_ops;

#endif /* VMIG_SIM_GUEST_H */
