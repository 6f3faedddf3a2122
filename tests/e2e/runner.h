/*
 * runner.h: running the built `vmig` program from a test, as a user does:
 * a child process with its output captured, and its JSON report read.
 */
#ifndef VMIG_TEST_RUNNER_H
#define VMIG_TEST_RUNNER_H

#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

extern char **environ;

struct vmig_run_result {
	int status; /* exit status, or -1 if it did not exit */
	char out[65536];
	char err[16384];
};

static inline void vmig_slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	buf[0] = '\0';
	if (!f)
		return;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/*
 * Runs `prog` with the NULL-terminated arguments that follow, stdout and
 * stderr captured in files under dir. VMIG_PLUGIN_PATH is removed from the
 * environment, so the program finds its plugins by itself. Returns 0, or
 * -1 when the program could not be started.
 */
static inline int vmig_run_prog(struct vmig_run_result *r, const char *dir,
				const char *prog, ...)
{
	char out[512], err[512];
	const char *argv[32];
	char *envp[512];
	posix_spawn_file_actions_t fa;
	va_list ap;
	pid_t pid;
	int n = 0, e = 0, wstatus, i;

	argv[n++] = prog;
	va_start(ap, prog);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	for (i = 0; environ[i] && e < 510; i++) {
		if (strncmp(environ[i], "VMIG_PLUGIN_PATH=", 17))
			envp[e++] = environ[i];
	}
	envp[e] = NULL;
	snprintf(out, sizeof(out), "%s/stdout", dir);
	snprintf(err, sizeof(err), "%s/stderr", dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	i = posix_spawn(&pid, prog, &fa, NULL, (char *const *)argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	if (i)
		return -1;
	if (waitpid(pid, &wstatus, 0) != pid)
		return -1;
	r->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
	vmig_slurp(out, r->out, sizeof(r->out));
	vmig_slurp(err, r->err, sizeof(r->err));
	return 0;
}

/*
 * Makes a fresh directory /tmp/<prefix>-XXXXXX in buf for a suite's files.
 * Returns 0, or 1 (a suite's init failure) when it cannot.
 */
static inline int vmig_tmpdir_make(char *buf, size_t len, const char *prefix)
{
	snprintf(buf, len, "/tmp/%s-XXXXXX", prefix);
	return mkdtemp(buf) ? 0 : 1;
}

/* Removes the directory and all in it: 0, or 1 when that failed. */
static inline int vmig_tmpdir_remove(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}

/* Reads and parses a JSON file, or NULL. */
static inline cJSON *vmig_load_json(const char *path)
{
	static char buf[4 << 20];

	vmig_slurp(path, buf, sizeof(buf));
	return cJSON_Parse(buf);
}

#endif /* VMIG_TEST_RUNNER_H */
