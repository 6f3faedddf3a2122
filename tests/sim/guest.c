/*
 * guest.c: the simulated guest (guest.h): its thread, its lockstep with
 * the syncs of a migration, and its VMM callbacks.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "ksim/ksim.h"
#include "sim/guest.h"

static void *guest_main(void *opaque)
{
	struct sim_guest *g = opaque;
	struct timespec ts = { 0, (long)g->p.step_us * 1000 };

	pthread_mutex_lock(&g->lock);
	while (!g->quit) {
		if (!g->running || g->paused ||
		    (g->lockstep && g->steps >= g->allowed)) {
			pthread_cond_wait(&g->cond, &g->lock);
			continue;
		}
		g->stepping = true;
		pthread_mutex_unlock(&g->lock);
		if (g->p.k)
			ksim_step(g->p.k);
		if (g->p.step)
			g->p.step(g->p.step_opaque, g->steps);
		pthread_mutex_lock(&g->lock);
		g->stepping = false;
		g->steps++;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

void sim_guest_init(struct sim_guest *g, const struct sim_guest_params *p)
{
	memset(g, 0, sizeof(*g));
	g->p = *p;
	g->running = true;
	g->lockstep = p->lockstep;
	g->allowed = p->steps_per_sync;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
}

int sim_guest_spawn(struct sim_guest *g)
{
	if (pthread_create(&g->thread, NULL, guest_main, g))
		return -EAGAIN;
	g->thread_started = true;
	return 0;
}

void sim_guest_quit(struct sim_guest *g)
{
	pthread_mutex_lock(&g->lock);
	g->quit = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	if (g->thread_started)
		pthread_join(g->thread, NULL);
	g->thread_started = false;
}

void sim_guest_fini(struct sim_guest *g)
{
	sim_guest_quit(g);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

void sim_guest_sync(struct sim_guest *g, bool after)
{
	pthread_mutex_lock(&g->lock);
	if (after || !g->granted) {
		g->allowed = g->steps + g->p.steps_per_sync;
		g->granted = true;
		pthread_cond_broadcast(&g->cond);
	}
	if (!after)
		while (g->lockstep && g->running && !g->paused && !g->quit &&
		       g->steps < g->allowed)
			pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

int sim_guest_stop(void *opaque)
{
	struct sim_guest *g = opaque;

	pthread_mutex_lock(&g->lock);
	g->running = false;
	while (g->stepping || g->busy)
		pthread_cond_wait(&g->cond, &g->lock);
	g->stops++;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int sim_guest_resume(void *opaque)
{
	struct sim_guest *g = opaque;

	pthread_mutex_lock(&g->lock);
	g->running = true;
	g->resumes++;
	/* The migration is over: no sync paces the guest any more. */
	g->lockstep = false;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int sim_guest_start(void *opaque)
{
	struct sim_guest *g = opaque;

	pthread_mutex_lock(&g->lock);
	g->starts++;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

const struct vmig_vmm_ops sim_guest_vmm_ops = {
	.size = sizeof(struct vmig_vmm_ops),
	.stop = sim_guest_stop,
	.resume = sim_guest_resume,
	.start = sim_guest_start,
};
