/*
 * vmig_tool.h: the tool on top of libvmig (not installed).
 *
 * A JSON configuration (docs/config.md) describes what a VMM would
 * otherwise register through the C API, and a run: the tool parses it,
 * sets a session up from it (with the real kernel, or a simulated one),
 * runs what it says and writes the report file. The command-line program
 * (cli/vmig.c) and the tests use it; libvmig knows nothing of it.
 */
#ifndef VMIG_TOOL_H
#define VMIG_TOOL_H

#include <stddef.h>

#include <vmig/vmig.h>

struct ksim;

/* A parsed, validated JSON configuration (docs/config.md). */
typedef struct vmig_config vmig_config;

/*
 * Parses a configuration. Relative paths in it are taken from base_dir
 * (NULL: the current directory). On error writes into err (if errlen >
 * 0) every error it found, at most 20, one a line, each naming the JSON
 * path and what was expected: independent sections, and the elements of
 * an array, are checked after one fails (what depends on a broken
 * section is not). Errors: VMIG_ECONFIG, -ENOMEM.
 */
int vmig_config_parse(const char *json, size_t len, const char *base_dir,
		      vmig_config **out, char *err, size_t errlen);

/*
 * Reads and parses a configuration file. Errors: as vmig_config_parse,
 * and the errno of reading the file (the message names it).
 */
int vmig_config_load(const char *path, vmig_config **out, char *err,
		     size_t errlen);

/* Frees a configuration. Accepts NULL. */
void vmig_config_free(vmig_config *cfg);

/*
 * Sets a fresh session up as a configuration says: search paths and
 * plugins, preference order, policies, memory (freed with the session),
 * the kernel backend (the real one or the simulated one the configuration
 * describes), address spaces, DMA mappings and devices (closed with the
 * session). The configuration may be freed afterwards. Errors: -EBUSY
 * (the session is not fresh), the plugin loader's errors, the kernel's
 * errors, each with a message (vmig_errmsg) naming the configuration key.
 */
int vmig_session_configure(vmig_session *s, const vmig_config *cfg);

/*
 * Interrupts the vmig_session_configure() that runs, from any thread: it
 * stops at its next step (filling memory checks every 64 MiB) and returns
 * -ECANCELED. For a program that configures one session: a signal during
 * a long set-up (gigabytes of memory) ends it at once. Once called, every
 * later configure of this process is interrupted too.
 */
void vmig_configure_interrupt(void);

/*
 * Runs what the configuration says and writes the JSON report to
 * report_path (NULL: the configuration's "report", if any). With the
 * simulated kernel, the report compares what the sources reported with
 * what the simulated devices wrote. Returns 0, VMIG_EMISSED when a write
 * was missed, or another error. A source run without VMM callbacks drives
 * a simulated guest, which ends with the run and cannot ask its peer:
 * after VMIG_EUNRESOLVED the session stays unresolved (the report says
 * so), vmig_resolve(VMIG_RESOLVE_RESUME) fails with -EINVAL (nothing is
 * left to resume), and VMIG_RESOLVE_DESTINATION or freeing the session
 * ends it. A session not set up from a configuration runs a tracking run
 * of 5 iterations.
 */
int vmig_run(vmig_session *s, const char *report_path);

/*
 * Writes the session's report (vmig_report_json) to path, aside and
 * renamed, so that a reader never sees half of it. Returns 0 or an error
 * (vmig_errmsg names the file).
 */
int vmig_report_write(vmig_session *s, const char *path);

/* The simulated kernel of a configured session, or NULL. */
struct ksim *vmig_tool_ksim(const vmig_session *s);

#endif /* VMIG_TOOL_H */
