/*
 * tool.h: what the files of tool/ share.
 *
 * The tool sets sessions up and runs them through libvmig's public API.
 * Where that API has no call yet for what a configuration needs (memory
 * and fds the session frees or closes with itself, a simulated kernel as
 * its kernel, its attachment, its last error, a local run's comparison
 * of both ends for the report), it reads and writes the session's records
 * through core/internal.h; it never calls an internal function, so that
 * the program links the shared libvmig.
 *
 * state.c owns what the tool keeps with a session and its messages;
 * config.c parses configurations; setup.c applies them; run.c runs them;
 * report.c writes the report file.
 */
#ifndef VMIG_TOOL_TOOL_H
#define VMIG_TOOL_TOOL_H

#include <stdbool.h>
#include <stdint.h>

#include <vmig/vmig.h>

#include "core/internal.h"
#include "vmig_tool.h"

struct ksim;

/* What the tool keeps with a session it set up (vmig_session_configure). */
struct vmig_tool_state {
	struct ksim *ksim;    /* the simulated kernel, or NULL */
	char *config_text;    /* the document (a local run's mirror) */
	size_t config_len;
	char *config_base;
	char *transport;      /* NULL: none */
	bool local;           /* both ends in this process */
	uint32_t run_iterations; /* a tracking run's */
	bool run_track_only;  /* a tracking run, no migration */
	char *report_path;
};

/*
 * The tool's state of s, created (with the defaults: a tracking run of 5
 * iterations) when create is true and there is none. NULL: none, or out
 * of memory.
 */
struct vmig_tool_state *vmig_tool_state(vmig_session *s, bool create);

/*
 * Records err with a formatted message as the session's last error
 * (vmig_errmsg) and logs it; returns err. Logs a formatted message. The
 * library's own inline implementations (core/internal.h).
 */
#define tool_fail vmig_fail
#define tool_logf vmig_logf

#endif /* VMIG_TOOL_TOOL_H */
