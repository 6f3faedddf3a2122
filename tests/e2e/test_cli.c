/*
 * test_cli.c: the vmig program end to end.
 *
 * Runs the built `vmig` as a user would (a child process, its output
 * captured) on the sample configurations and on broken input, and checks
 * its exit status, what it printed and the JSON report it wrote.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/frames.h"
#include "common/report.h"
#include "e2e/runner.h"
#include "unit/testutil.h"

#define VMIG VMIG_BINARY_DIR "/bin/vmig"
#define CONFIGS VMIG_SOURCE_DIR "/samples/configs/"

/* Runs the program; a test cannot go on when it cannot even start it. */
#define run(r, ...) \
	CU_ASSERT_FATAL(vmig_run_prog(r, tmpdir, VMIG, __VA_ARGS__) == 0)

static char tmpdir[64];

static int suite_init(void)
{
	return vmig_tmpdir_make(tmpdir, sizeof(tmpdir), "vmig-cli");
}

static int suite_fini(void)
{
	return vmig_tmpdir_remove(tmpdir);
}

/* ------------------------------------------------------------------ */

static void test_version_and_usage(void)
{
	struct vmig_run_result r;

	run(&r, "version", NULL);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "vmig 0."));
	run(&r, "frobnicate", NULL);
	CU_ASSERT_EQUAL(r.status, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "unknown command \"frobnicate\""));
	run(&r, NULL);
	CU_ASSERT_EQUAL(r.status, 2);
	run(&r, "run", NULL);
	CU_ASSERT_EQUAL(r.status, 2);
}

/* The plugins next to libvmig are found without any configuration. */
static void test_plugins_list(void)
{
	struct vmig_run_result r;

	run(&r, "plugins", NULL);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "vfio-type1 "));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "devices: vfio-pci, mdev"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "address spaces: type1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "vmig/plugins/vmig-vfio-type1.so"));
}

static void test_plugins_json(void)
{
	struct vmig_run_result r;
	cJSON *root, *p, *t1 = NULL;

	run(&r, "plugins", "--json", NULL);
	CU_ASSERT_EQUAL(r.status, 0);
	root = cJSON_Parse(r.out);
	CU_ASSERT_FATAL(cJSON_IsArray(root));
	cJSON_ArrayForEach(p, root) {
		cJSON *name = cJSON_GetObjectItem(p, "name");

		if (cJSON_IsString(name) &&
		    !strcmp(name->valuestring, "vfio-type1"))
			t1 = p;
	}
	CU_ASSERT_FATAL(t1 != NULL);
	CU_ASSERT_STRING_EQUAL(
		cJSON_GetStringValue(cJSON_GetObjectItem(t1, "precision")),
		"exact");
	CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(
				t1, "device_kinds")),
			2);
	CU_ASSERT_EQUAL(
		cJSON_GetObjectItem(t1, "min_page_size")->valuedouble, 4096);
	CU_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(t1, "read_no_clear")));
	cJSON_Delete(root);
}

/* Broken plugins in the path are listed with what is wrong with each. */
static void test_plugins_broken(void)
{
	struct vmig_run_result r;

	run(&r, "plugins", "--path", VMIG_TEST_PLUGIN_DIR, NULL);
	CU_ASSERT_EQUAL(r.status, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "test-good"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "vmig-test-abi2.so\n    error:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "vmig-test-notelf.so\n    error:"));
	/* The real plugins are still found after the test directory. */
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "vfio-type1 "));
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	fclose(f);
}

static void test_check(void)
{
	struct vmig_run_result r;
	char bad[128];

	run(&r, "check", CONFIGS "demo.json", NULL);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "demo.json: valid"));

	snprintf(bad, sizeof(bad), "%s/bad.json", tmpdir);
	write_file(bad, "{ \"memory\": [ { \"gpa\": 0, \"size\": \"1M\" } ],\n"
			"  \"devices\": [ { \"name\": \"a\", \"kind\": 3,\n"
			"                   \"group\": 1 } ] }\n");
	run(&r, "check", bad, NULL);
	/* An invalid configuration has its own status (vmig(1)). */
	CU_ASSERT_EQUAL(r.status, 4);
	CU_ASSERT_PTR_NOT_NULL(strstr(
		r.err, "devices[0].kind: expected one of \"vfio-pci\", \"mdev\""));
	/* The file is named once. */
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "bad.json"));
	CU_ASSERT_PTR_NULL(strstr(strstr(r.err, "bad.json") + 1, "bad.json"));

	/* Every error, one a line, each naming the file. */
	write_file(bad, "{ \"role\": \"local\",\n"
			"  \"memory\": [ { \"gpa\": 1, \"size\": \"1M\" } ],\n"
			"  \"run\": { \"mode\": \"x\" } }\n");
	run(&r, "check", bad, NULL);
	CU_ASSERT_EQUAL(r.status, 4);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "bad.json: memory[0].gpa: 0x1 "
					     "is not a multiple of 4 KiB\n"
					     "vmig: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "bad.json: run.mode: expected "
					     "one of"));

	run(&r, "check", "/nonexistent/vmig.json", NULL);
	CU_ASSERT_EQUAL(r.status, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "/nonexistent/vmig.json"));
}

static cJSON *run_report(const char *config, const char *name)
{
	char report[128];
	struct vmig_run_result r;
	cJSON *root;

	snprintf(report, sizeof(report), "%s/%s", tmpdir, name);
	run(&r, "run", config, "--report", report, NULL);
	CU_ASSERT_EQUAL(r.status, 0);
	if (r.status)
		fprintf(stderr, "%s", r.err);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "missed 0"));
	root = vmig_load_json(report);
	CU_ASSERT_FATAL(root != NULL);
	return root;
}

/*
 * The demo: a live migration inside one process (role "local"), the
 * simulated devices writing during the pre-copy.
 */
static void test_run_demo(void)
{
	cJSON *root = run_report(CONFIGS "demo.json", "demo.json");
	cJSON *devs = cJSON_GetObjectItem(root, "devices");
	cJSON *nic = cJSON_GetArrayItem(devs, 0);
	cJSON *vgpu = cJSON_GetArrayItem(devs, 1);
	cJSON *iters = cJSON_GetObjectItem(root, "iterations");
	cJSON *dst = cJSON_GetObjectItem(root, "destination");
	int n = cJSON_GetArraySize(iters);

	CU_ASSERT_STRING_EQUAL(json_str(root, "mode"), "migration");
	CU_ASSERT_STRING_EQUAL(json_str(root, "result"), "completed");
	CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(root, "memory_match")));
	CU_ASSERT_EQUAL(json_num(root, "pages_missed"), 0);
	CU_ASSERT_EQUAL(json_num(root, "pages_differing"), 0);
	CU_ASSERT(json_num(root, "pages_written") > 0);
	CU_ASSERT(n >= 2);
	CU_ASSERT_STRING_EQUAL(json_str(cJSON_GetArrayItem(iters, 0), "phase"),
			       "pre-copy");
	CU_ASSERT_STRING_EQUAL(
		json_str(cJSON_GetArrayItem(iters, n - 1), "phase"),
		"stop-copy");
	CU_ASSERT_STRING_EQUAL(json_str(nic, "name"), "nic0");
	CU_ASSERT_STRING_EQUAL(json_str(nic, "source"), "vfio-type1");
	CU_ASSERT_STRING_EQUAL(json_str(nic, "precision"), "all-mapped");
	CU_ASSERT_STRING_EQUAL(json_str(vgpu, "source"), "vfio-type1");
	CU_ASSERT_STRING_EQUAL(json_str(vgpu, "precision"), "exact");
	CU_ASSERT_FATAL(cJSON_IsObject(dst));
	CU_ASSERT_STRING_EQUAL(json_str(dst, "role"), "destination");
	CU_ASSERT_STRING_EQUAL(json_str(dst, "result"), "completed");
	CU_ASSERT_STRING_EQUAL(json_str(dst, "guest"), "started");
	CU_ASSERT_STRING_EQUAL(json_str(dst, "digest"),
			       json_str(root, "digest"));
	cJSON_Delete(root);
}

/* A plain vfio-pci device: type1 reports every mapped page, every time. */
static void test_run_type1_pci(void)
{
	cJSON *root = run_report(CONFIGS "type1-pci.json", "pci.json");
	cJSON *it;
	double mapped = 2 * (64 << 20) / 4096;

	int n = 0;

	CU_ASSERT_EQUAL(json_num(root, "pages_missed"), 0);
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(root, "iterations")) {
		CU_ASSERT_EQUAL(json_num(it, "pages_reported"), mapped);
		CU_ASSERT(json_num(it, "pages_written") > 0);
		n++;
	}
	CU_ASSERT_EQUAL(n, 3); /* run.iterations: the loop checked them */
	cJSON_Delete(root);
}

/* An mdev alone: pinned pages and what it wrote, nothing more. */
static void test_run_type1_mdev(void)
{
	cJSON *root = run_report(CONFIGS "type1-mdev.json", "mdev.json");
	cJSON *it;

	int n = 0;

	CU_ASSERT_EQUAL(json_num(root, "pages_missed"), 0);
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(root, "iterations")) {
		CU_ASSERT(json_num(it, "pages_written") > 0);
		CU_ASSERT(json_num(it, "pages_reported") <=
			  json_num(it, "pages_written") + 8);
		CU_ASSERT(json_num(it, "pages_reported") >= 8);
		n++;
	}
	CU_ASSERT_EQUAL(n, 5); /* run.iterations: the loop checked them */
	cJSON_Delete(root);
}

/* --events: the source's events, one JSON object a line, in order. */
static void test_run_events(void)
{
	struct vmig_run_result r;
	char path[128], text[8192], *line, *save = NULL;
	const char *want[] = { "setup", "pre-copy", "switchover", "commit",
			       "completed" };
	size_t k = 0, lines = 0;

	snprintf(path, sizeof(path), "%s/events.jsonl", tmpdir);
	run(&r, "run", CONFIGS "demo.json", "--events", path, NULL);
	CU_ASSERT_EQUAL(r.status, 0);
	vmig_slurp(path, text, sizeof(text));
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		cJSON *o = cJSON_Parse(line);
		const char *ev = cJSON_GetStringValue(
			cJSON_GetObjectItem(o, "event"));
		const char *ph = cJSON_GetStringValue(
			cJSON_GetObjectItem(o, "phase"));

		CU_ASSERT(o && ev && ph);
		if (ev && ph && !strcmp(ev, "phase") && k < 5 &&
		    !strcmp(ph, want[k]))
			k++;
		lines++;
		cJSON_Delete(o);
	}
	CU_ASSERT_EQUAL(k, 5);
	CU_ASSERT(lines >= 8);
}

static void test_run_errors(void)
{
	struct vmig_run_result r;
	char path[128];

	run(&r, "run", "/nonexistent/x.json", NULL);
	CU_ASSERT_EQUAL(r.status, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "/nonexistent/x.json"));

	/* A report that cannot be written is named. */
	snprintf(path, sizeof(path), "%s/badreport.json", tmpdir);
	write_file(path,
		   "{ \"memory\": [ { \"gpa\": 0, \"size\": \"1M\" } ],\n"
		   "  \"devices\": [ { \"name\": \"a\", \"kind\": \"vfio-pci\",\n"
		   "                   \"group\": 1 } ],\n"
		   "  \"run\": { \"mode\": \"track\" },\n"
		   "  \"kernel\": { \"type\": \"simulated\",\n"
		   "    \"devices\": [ { \"name\": \"a\" } ] } }\n");
	run(&r, "run", path, "--report", "/nonexistent/dir/r.json",
	    NULL);
	CU_ASSERT_EQUAL(r.status, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "/nonexistent/dir/r.json"));
}

/* ------------------------------------------------------------------ */
/* Signals                                                             */

/* Starts the program with args (NULL-terminated), its output to out. */
static pid_t start(const char *out, const char *const *args)
{
	pid_t pid = fork();

	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		FILE *f = freopen(out, "w", stdout);

		if (!f || dup2(1, 2) < 0)
			_exit(127);
		execv(VMIG, (char *const *)args);
		_exit(127);
	}
	return pid;
}

/* Its exit status (-1: not an exit). */
static int finish(pid_t pid)
{
	int ws;

	CU_ASSERT_FATAL(waitpid(pid, &ws, 0) == pid);
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/*
 * Waits until file holds text, or pid ended (false). A condition, not a
 * time: the test's own bound is CTest's.
 */
static bool wait_text(const char *file, const char *text, pid_t pid)
{
	static char buf[1 << 16];

	for (;;) {
		vmig_slurp(file, buf, sizeof(buf));
		if (strstr(buf, text))
			return true;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		usleep(10000);
	}
}

/* The source's report after a signal: cancelled, its guest running. */
static void check_cancelled(const char *report)
{
	cJSON *root = vmig_load_json(report);

	CU_ASSERT_FATAL(root != NULL);
	CU_ASSERT_STRING_EQUAL(json_str(root, "result"), "cancelled");
	CU_ASSERT_STRING_EQUAL(json_str(root, "guest"), "running");
	CU_ASSERT(has(json_str(root, "error"),
		      "cancelled (vmig_cancel) at iteration 0"));
	cJSON_Delete(root);
}

/* A run's files in the test's directory, named from a prefix. */
enum { F_SOCK, F_SCFG, F_DCFG, F_EV, F_REP, F_SOUT, F_DOUT, F_COUNT };

struct run_files {
	char p[F_COUNT][100];
};

static const char *const run_file_ends[F_COUNT] = {
	".sock", "-src.json", "-dst.json", "-events", "-report.json",
	"-src.out", "-dst.out",
};

static void run_files(struct run_files *f, const char *prefix)
{
	int i;

	for (i = 0; i < F_COUNT; i++)
		snprintf(f->p[i], sizeof(f->p[i]), "%.40s/%.20s%s", tmpdir,
			 prefix, run_file_ends[i]);
}

/* A configuration of role on the unix socket sock: memory, then more. */
static void write_run_config(const char *path, const char *role,
			     const char *sock, const char *memory,
			     const char *more)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "{ \"role\": \"%s\", \"transport\": \"unix:%s\",\n"
		 "  \"memory\": [ %s ],\n%s"
		 "  \"kernel\": { \"type\": \"simulated\", \"devices\": [] } }\n",
		 role, sock, memory, more);
	write_file(path, text);
}

/*
 * SIGINT to a source in iteration 0 of a 1 GiB guest (16 MiB written, at
 * 1 MiB/s): exit status 6, cancelled, the guest runs on the source; the
 * destination, told, exits cancelled too.
 */
static void test_run_sigint_iteration0(void)
{
	struct run_files f;
	char text[1024];
	pid_t dst, src;

	run_files(&f, "i0");
	write_run_config(f.p[F_DCFG], "destination", f.p[F_SOCK],
			 "{ \"gpa\": 0, \"size\": \"1G\" }", "");
	write_run_config(f.p[F_SCFG], "source", f.p[F_SOCK],
			 "{ \"gpa\": 0, \"size\": \"1G\", \"fill\": \"random\", "
			 "\"fill_size\": \"16M\" }",
			 "  \"policies\": { \"bandwidth_limit\": \"1M\" },\n");
	dst = start(f.p[F_DOUT],
		    (const char *const[]){ VMIG, "run", f.p[F_DCFG], NULL });
	CU_ASSERT_FATAL(wait_text(f.p[F_DOUT], "listening on", dst));
	src = start(f.p[F_SOUT],
		    (const char *const[]){ VMIG, "run", f.p[F_SCFG], "--events",
					   f.p[F_EV], "--report", f.p[F_REP],
					   NULL });
	CU_ASSERT_FATAL(wait_text(f.p[F_EV], "\"phase\":\"pre-copy\"", src));
	kill(src, SIGINT);
	CU_ASSERT_EQUAL(finish(src), 6);
	CU_ASSERT_EQUAL(finish(dst), 6);
	vmig_slurp(f.p[F_SOUT], text, sizeof(text));
	CU_ASSERT(has(text, "interrupted: cancelling the migration"));
	check_cancelled(f.p[F_REP]);
}

/*
 * SIGTERM to a source in its set-up: the destination (this test) read its
 * HELLO and never answers. Exit status 6, the guest runs on the source.
 */
static void test_run_sigterm_setup(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	static uint8_t buf[65536];
	uint8_t hdr[VMIG_TEST_FRAME_HDR];
	struct run_files f;
	char text[1024];
	int lfd, fd;
	pid_t src;

	run_files(&f, "mute");
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", f.p[F_SOCK]);
	write_run_config(f.p[F_SCFG], "source", f.p[F_SOCK],
			 "{ \"gpa\": 0, \"size\": \"1M\" }", "");
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(lfd >= 0);
	CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CU_ASSERT_FATAL(listen(lfd, 1) == 0);
	src = start(f.p[F_SOUT],
		    (const char *const[]){ VMIG, "run", f.p[F_SCFG], "--report",
					   f.p[F_REP], NULL });
	fd = accept(lfd, NULL, NULL);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(read_frame(fd, hdr, buf, sizeof(buf)), 1 /* HELLO */);
	kill(src, SIGTERM);
	CU_ASSERT_EQUAL(finish(src), 6);
	vmig_slurp(f.p[F_SOUT], text, sizeof(text));
	CU_ASSERT(has(text, "terminated: cancelling the migration"));
	check_cancelled(f.p[F_REP]);
	close(fd);
	close(lfd);
}

static CU_TestInfo tests[] = {
	{ "version and usage", test_version_and_usage },
	{ "plugins", test_plugins_list },
	{ "plugins --json", test_plugins_json },
	{ "plugins with broken ones", test_plugins_broken },
	{ "check", test_check },
	{ "run demo", test_run_demo },
	{ "run: type1 with vfio-pci", test_run_type1_pci },
	{ "run: type1 with an mdev", test_run_type1_mdev },
	{ "run --events", test_run_events },
	{ "run errors", test_run_errors },
	{ "run: SIGINT in iteration 0", test_run_sigint_iteration0 },
	{ "run: SIGTERM in the set-up", test_run_sigterm_setup },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE_INIT("cli", suite_init, suite_fini, tests))
