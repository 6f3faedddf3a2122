/*
 * state.c: what the tool keeps with a session, and its messages.
 *
 * A session the tool set up carries the tool's state (the configuration's
 * run, a simulated kernel) as its attachment, freed by libvmig with the
 * session once every fd is closed: the simulated kernel outlives them.
 * The tool's messages go where libvmig's go: the session's last error and
 * its log callback.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "ksim/ksim.h"
#include "tool.h"

static void state_free(void *opaque)
{
	struct vmig_tool_state *st = opaque;

	if (st->ksim)
		ksim_free(st->ksim);
	free(st->config_text);
	free(st->config_base);
	free(st->transport);
	free(st->report_path);
	free(st);
}

struct vmig_tool_state *vmig_tool_state(vmig_session *s, bool create)
{
	struct vmig_tool_state *st;

	if (s->attached_free == state_free)
		return s->attached;
	if (!create || s->attached_free)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->run_iterations = 5;
	st->run_track_only = true;
	s->attached = st;
	s->attached_free = state_free;
	return st;
}

struct ksim *vmig_tool_ksim(const vmig_session *s)
{
	if (!s || s->attached_free != state_free)
		return NULL;
	return ((const struct vmig_tool_state *)s->attached)->ksim;
}


