/*
 * vmig.c: the command-line program, the thin end of the embedding API.
 *
 *   vmig plugins [--json] [--path DIR]...   what plugins can be loaded
 *   vmig check CONFIG                      validate a configuration
 *   vmig run CONFIG [--report FILE] [--dump-memory FILE]
 *                                          run what it says
 *
 * Everything here goes through the public API (vmig/vmig.h) and the tool
 * on top of it (tool/vmig_tool.h: configurations, runs, the report
 * file); the program adds only argument parsing, logging to stderr, the
 * progress line, and turning SIGINT and SIGTERM into vmig_cancel() (from a thread of its own
 * that waits for them, so nothing runs in a signal handler).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <vmig/vmig.h>

#include "tool/vmig_tool.h"

/* Exit statuses (vmig(1), EXIT STATUS). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,       /* failed; a source's guest runs on the source */
	EXIT_USAGE = 2,      /* bad command line */
	EXIT_MISSED = 3,     /* a run missed writes: a broken promise */
	EXIT_CONFIG = 4,     /* the configuration is invalid */
	EXIT_UNRESOLVED = 5, /* the source cannot know who runs the guest */
	EXIT_CANCELLED = 6,  /* cancelled (a signal, or the source) */
};

static const char *prog = "vmig";
static int verbosity = VMIG_LOG_WARN;
static int progress_shown;
/* The last error the log printed, so that the end does not repeat it. */
static char last_error[1024];

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s <command> [options]\n"
		"\n"
		"commands:\n"
		"  plugins [--json] [--path DIR]...\n"
		"      list the plugins vmig finds (in each --path, then\n"
		"      VMIG_PLUGIN_PATH, then the install directory) and\n"
		"      what each can track\n"
		"  check CONFIG\n"
		"      validate a JSON configuration (docs/config.md)\n"
		"  run CONFIG [--report FILE] [--dump-memory FILE] [--events FILE]\n"
		"      run what the configuration says (a migration, as\n"
		"      source, destination or both ends, or a tracking run)\n"
		"      and write its JSON report (--report overrides the\n"
		"      configuration's); --dump-memory writes guest memory,\n"
		"      in guest-physical order, at the end; a destination\n"
		"      prints \"listening on ADDRESS\" once it listens;\n"
		"      --events writes the source's events as JSON lines;\n"
		"      SIGINT or SIGTERM cancels a migration\n"
		"  version\n"
		"\n"
		"options: -v (more log; twice for debug), -q (errors only),\n"
		"         -h (this help)\n",
		prog);
}

static void log_stderr(void *opaque, enum vmig_log_level level,
		       const char *msg)
{
	static const char *const names[] = { "error", "warning", "info",
					     "debug" };

	(void)opaque;
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		progress_shown = 0;
	}
	fprintf(stderr, "%s: %s: %s\n", prog,
		names[level <= VMIG_LOG_DEBUG ? level : VMIG_LOG_DEBUG], msg);
	if (level == VMIG_LOG_ERROR)
		snprintf(last_error, sizeof(last_error), "%s", msg);
}

/* Prints a failure's message, unless the log just printed it. */
static void print_failure(const char *msg)
{
	size_t n = strlen(msg), m = strlen(last_error);

	if (!n || (m && (strstr(last_error, msg) ||
			 (n >= m && !strcmp(msg + n - m, last_error)))))
		return;
	fprintf(stderr, "%s: %s\n", prog, msg);
}

/*
 * A 64-bit figure as a JSON integer, exact whatever its size (a double
 * would print 2^63 as 9.2233720368547758e+18).
 */
static void add_u64(cJSON *o, const char *key, uint64_t v)
{
	char text[24];

	snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
	cJSON_AddRawToObject(o, key, text);
}

static double mib(uint64_t bytes)
{
	return (double)bytes / (1 << 20);
}

static void progress_line(void *opaque, const struct vmig_progress *p)
{
	char dt[32];
	double done, elapsed;

	(void)opaque;
	if (!isatty(STDERR_FILENO) || verbosity < VMIG_LOG_WARN)
		return;
	elapsed = VMIG_HAS_FIELD(p, struct vmig_progress, elapsed_us)
			  ? (double)p->elapsed_us / 1e6
			  : 0;
	if (VMIG_HAS_FIELD(p, struct vmig_progress, phase) &&
	    p->phase != VMIG_PHASE_PRECOPY && p->phase != VMIG_PHASE_NONE) {
		/* Connecting and the handshake, or the switchover. */
		fprintf(stderr, "\r\033[K%s, %.1f s", vmig_phase_name(p->phase),
			elapsed);
		fflush(stderr);
		progress_shown = 1;
		return;
	}
	if (!p->bandwidth) {
		/* A tracking run: no stream. */
		fprintf(stderr,
			"\r\033[Kiteration %u: %llu pages dirty (%.1f MiB), "
			"dirty rate %.1f MiB/s",
			p->iteration, (unsigned long long)p->pages_dirty,
			mib(p->bytes_left), mib(p->dirty_rate));
	} else {
		if (p->expected_downtime_us == UINT64_MAX)
			snprintf(dt, sizeof(dt), "not known yet");
		else
			snprintf(dt, sizeof(dt), "%.0f ms",
				 (double)p->expected_downtime_us / 1000);
		/* Of this pass: what is sent of what it had to send. */
		done = p->bytes_left && p->pages_dirty
			       ? 100.0 - 100.0 * (double)p->bytes_left /
						 ((double)p->pages_dirty * 4096)
			       : 100.0;
		if (done < 0)
			done = 0;
		fprintf(stderr,
			"\r\033[Kpre-copy, pass %u %.0f%%, %.1f s: %.1f MiB "
			"left, dirty rate %.1f MiB/s, bandwidth %.1f MiB/s, "
			"expected downtime %s",
			p->iteration, done, elapsed, mib(p->bytes_left),
			mib(p->dirty_rate), mib(p->bandwidth), dt);
	}
	fflush(stderr);
	progress_shown = 1;
}

static int new_session(vmig_session **s)
{
	struct vmig_session_params params = {
		.size = sizeof(params),
		.log = log_stderr,
		.log_level = (uint32_t)verbosity,
		.progress = progress_line,
	};
	int ret = vmig_session_new(&params, s);

	if (ret < 0)
		fprintf(stderr, "%s: cannot create a session: %s\n", prog,
			vmig_strerror(ret));
	return ret;
}

/* ------------------------------------------------------------------ */
/* vmig plugins                                                        */

struct list {
	int json;
	int errors;
	cJSON *arr;
};

static void kinds(char *buf, size_t len, uint32_t mask, int iommu)
{
	static const char *const dev[] = { NULL, "vfio-pci", "mdev" };
	static const char *const io[] = { NULL, "type1", "iommufd", "gpa" };
	const char *const *names = iommu ? io : dev;
	size_t n = iommu ? 4 : 3, i, used = 0;

	buf[0] = '\0';
	for (i = 1; i < n; i++) {
		if (!(mask & (1u << i)))
			continue;
		used += (size_t)snprintf(buf + used, len - used, "%s%s",
					 used ? ", " : "", names[i]);
		if (used >= len)
			return;
	}
	if (!used)
		snprintf(buf, len, "none");
}

static void size_name(char *buf, size_t len, uint64_t v)
{
	static const char units[] = "KMGTPE";
	int u = -1;

	while (v >= 1024 && !(v % 1024) && u < 5) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", (unsigned long long)v);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
}

static void list_one(void *opaque, const struct vmig_plugin_info *info)
{
	struct list *l = opaque;
	const struct vmig_plugin *d = info->desc;
	char devs[64], ios[64], minpg[32], maxpg[32];
	cJSON *o, *a;

	if (info->error) {
		l->errors++;
		if (!l->json) {
			printf("%s\n    error: %s\n", info->path, info->errmsg);
			return;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "path", info->path);
		cJSON_AddStringToObject(o, "error", info->errmsg);
		cJSON_AddItemToArray(l->arr, o);
		return;
	}
	kinds(devs, sizeof(devs), d->device_kinds, 0);
	kinds(ios, sizeof(ios), d->iommu_kinds, 1);
	size_name(minpg, sizeof(minpg), d->page_sizes & -d->page_sizes);
	size_name(maxpg, sizeof(maxpg),
		  1ull << (63 - __builtin_clzll(d->page_sizes)));
	if (!l->json) {
		printf("%s %s  (%s)\n", d->name, d->version ? d->version : "",
		       info->path);
		if (d->description)
			printf("    %s\n", d->description);
		printf("    devices: %s; address spaces: %s\n", devs, ios);
		printf("    precision: %s at best; page sizes: %s%s%s; "
		       "read without clearing: %s\n",
		       vmig_precision_name(d->precision), minpg,
		       strcmp(minpg, maxpg) ? " to " : "",
		       strcmp(minpg, maxpg) ? maxpg : "",
		       d->flags & VMIG_PLUGIN_READ_NO_CLEAR ? "yes" : "no");
		if (d->max_ranges)
			printf("    ranges per device: at most %u\n",
			       d->max_ranges);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", d->name);
	cJSON_AddStringToObject(o, "version", d->version ? d->version : "");
	cJSON_AddStringToObject(o, "description",
				d->description ? d->description : "");
	cJSON_AddStringToObject(o, "path", info->path);
	cJSON_AddNumberToObject(o, "abi_major", d->abi_major);
	cJSON_AddNumberToObject(o, "abi_minor", d->abi_minor);
	a = cJSON_AddArrayToObject(o, "device_kinds");
	if (d->device_kinds & VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI))
		cJSON_AddItemToArray(a, cJSON_CreateString("vfio-pci"));
	if (d->device_kinds & VMIG_KIND_BIT(VMIG_DEVICE_MDEV))
		cJSON_AddItemToArray(a, cJSON_CreateString("mdev"));
	a = cJSON_AddArrayToObject(o, "address_spaces");
	if (d->iommu_kinds & VMIG_KIND_BIT(VMIG_IOMMU_TYPE1))
		cJSON_AddItemToArray(a, cJSON_CreateString("type1"));
	if (d->iommu_kinds & VMIG_KIND_BIT(VMIG_IOMMU_IOMMUFD))
		cJSON_AddItemToArray(a, cJSON_CreateString("iommufd"));
	if (d->iommu_kinds & VMIG_KIND_BIT(VMIG_IOMMU_GPA))
		cJSON_AddItemToArray(a, cJSON_CreateString("gpa"));
	cJSON_AddStringToObject(o, "precision",
				vmig_precision_name(d->precision));
	add_u64(o, "min_page_size", d->page_sizes & -d->page_sizes);
	add_u64(o, "max_page_size",
		1ull << (63 - __builtin_clzll(d->page_sizes)));
	cJSON_AddBoolToObject(o, "read_no_clear",
			      (d->flags & VMIG_PLUGIN_READ_NO_CLEAR) != 0);
	cJSON_AddNumberToObject(o, "max_ranges", d->max_ranges);
	add_u64(o, "max_read_bytes", d->max_read_bytes);
	cJSON_AddItemToArray(l->arr, o);
}

static int cmd_plugins(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "path", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct list l = { 0 };
	vmig_session *s;
	int c, ret, n;

	if (new_session(&s) < 0)
		return EXIT_FAIL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jp:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			l.json = 1;
			break;
		case 'p':
			ret = vmig_plugin_add_path(s, optarg);
			if (ret < 0) {
				fprintf(stderr, "%s: %s\n", prog,
					vmig_errmsg(s));
				vmig_session_free(s);
				return EXIT_FAIL;
			}
			break;
		case 'h':
			usage(stdout);
			vmig_session_free(s);
			return EXIT_OK;
		default:
			usage(stderr);
			vmig_session_free(s);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		vmig_session_free(s);
		return EXIT_USAGE;
	}
	if (l.json)
		l.arr = cJSON_CreateArray();
	n = vmig_plugins_scan(s, list_one, &l);
	vmig_session_free(s);
	if (n < 0) {
		fprintf(stderr, "%s: plugins: %s\n", prog, vmig_strerror(n));
		cJSON_Delete(l.arr);
		return EXIT_FAIL;
	}
	if (l.json) {
		char *text = cJSON_Print(l.arr);

		if (text)
			printf("%s\n", text);
		cJSON_free(text);
		cJSON_Delete(l.arr);
	} else if (n == 0) {
		printf("no plugins found\n");
	}
	return l.errors || n == 0 ? EXIT_FAIL : EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* vmig check, vmig run                                                */

static int load_config(const char *path, vmig_config **cfg)
{
	char err[4096];
	const char *line;
	int ret = vmig_config_load(path, cfg, err, sizeof(err));

	if (ret >= 0)
		return ret;
	/* Every error found, one a line, each naming the file once. */
	for (line = err; *line;) {
		size_t n = strcspn(line, "\n");

		if (!strncmp(line, path, strlen(path)))
			fprintf(stderr, "%s: %.*s\n", prog, (int)n, line);
		else
			fprintf(stderr, "%s: %s: %.*s\n", prog, path, (int)n,
				line);
		line += n + (line[n] == '\n');
	}
	return ret;
}

static int cmd_check(int argc, char **argv)
{
	vmig_config *cfg;
	int ret;

	if (argc != 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	ret = load_config(argv[1], &cfg);
	if (ret < 0)
		return ret == VMIG_ECONFIG ? EXIT_CONFIG : EXIT_FAIL;
	vmig_config_free(cfg);
	printf("%s: valid\n", argv[1]);
	return EXIT_OK;
}

static double num_or(cJSON *o, const char *key, double dflt)
{
	cJSON *v = cJSON_GetObjectItem(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* A line or two of figures from the report, for the terminal. */
static void print_summary(vmig_session *s, const char *report)
{
	int64_t len = vmig_report_json(s, NULL, 0);
	cJSON *root, *w, *r, *m, *mode;
	const char *res;
	char *buf;

	if (len < 0)
		return;
	buf = malloc((size_t)len + 1);
	if (!buf)
		return;
	vmig_report_json(s, buf, (size_t)len + 1);
	root = cJSON_Parse(buf);
	free(buf);
	if (!root)
		return;
	mode = cJSON_GetObjectItem(root, "mode");
	res = cJSON_GetStringValue(cJSON_GetObjectItem(root, "result"));
	if (cJSON_IsString(mode) && !strcmp(mode->valuestring, "migration") &&
	    res) {
		const char *role = cJSON_GetStringValue(
			cJSON_GetObjectItem(root, "role"));

		int match = cJSON_IsTrue(
			cJSON_GetObjectItem(root, "memory_match"));

		if (role && !strcmp(role, "destination"))
			printf("migration %s (destination): %.1f MiB received "
			       "in %.0f ms, guest %s, memory %s\n",
			       res, num_or(root, "total_bytes", 0) / (1 << 20),
			       num_or(root, "duration_us", 0) / 1000,
			       cJSON_GetStringValue(cJSON_GetObjectItem(
				       root, "guest")),
			       match ? "matches" : "not proven equal");
		else
			printf("migration %s (source): %d iteration(s), %.1f "
			       "MiB in %.0f ms, downtime %.1f ms, memory %s\n",
			       res,
			       cJSON_GetArraySize(cJSON_GetObjectItem(
				       root, "iterations")),
			       num_or(root, "total_bytes", 0) / (1 << 20),
			       num_or(root, "duration_us", 0) / 1000,
			       num_or(root, "downtime_ms", 0),
			       match ? "matches" : "not proven equal");
	}
	w = cJSON_GetObjectItem(root, "pages_written");
	r = cJSON_GetObjectItem(root, "pages_reported");
	m = cJSON_GetObjectItem(root, "pages_missed");
	if (cJSON_IsNumber(w) && cJSON_IsNumber(m)) {
		cJSON *src;
		double unwritten = 0;

		/* What the sources reported that nothing wrote (report.md). */
		cJSON_ArrayForEach(src, cJSON_GetObjectItem(root, "sources"))
			unwritten += num_or(src, "pages_unwritten", 0);
		printf("pages written %.0f, reported %.0f (unwritten %.0f), "
		       "missed %.0f",
		       w->valuedouble, cJSON_IsNumber(r) ? r->valuedouble : 0,
		       unwritten, m->valuedouble);
	}
	else if (cJSON_IsNumber(r))
		printf("pages reported %.0f (no ground truth: real kernel)",
		       r->valuedouble);
	else
		printf("no ground truth on this side");
	printf("%s%s\n", report ? "; report: " : "", report ? report : "");
	cJSON_Delete(root);
}

/* vmig run --events FILE: one JSON object a line, as they happen. */
static void event_line(void *opaque, const struct vmig_event *ev)
{
	static const char *const types[] = {
		NULL, "phase", "iteration", "converged", "switchover",
		"commit", "completed", "failed",
	};
	FILE *f = opaque;
	cJSON *o = cJSON_CreateObject();
	char *text;

	if (!o)
		return;
	cJSON_AddStringToObject(o, "event",
				ev->type < sizeof(types) / sizeof(types[0]) &&
						types[ev->type]
					? types[ev->type]
					: "unknown");
	cJSON_AddStringToObject(o, "phase", vmig_phase_name(ev->phase));
	add_u64(o, "iteration", ev->iteration);
	add_u64(o, "elapsed_us", ev->elapsed_us);
	add_u64(o, "pages_dirty", ev->pages_dirty);
	add_u64(o, "bytes_sent", ev->bytes_sent);
	if (ev->expected_downtime_us != UINT64_MAX)
		add_u64(o, "expected_downtime_us", ev->expected_downtime_us);
	if (ev->type == VMIG_EVENT_FAILED)
		cJSON_AddNumberToObject(o, "error", ev->error);
	cJSON_AddStringToObject(o, "message", ev->message);
	text = cJSON_PrintUnformatted(o);
	if (text) {
		fprintf(f, "%s\n", text);
		fflush(f);
	}
	cJSON_free(text);
	cJSON_Delete(o);
}

/*
 * SIGINT and SIGTERM cancel the migration. They are blocked in every
 * thread and taken by this one, which may call into the library.
 */
struct sigctl {
	pthread_t thread;
	sigset_t set;
	vmig_session *s;
	pthread_mutex_t lock;
	int done; /* the run is over: stop trying */
};

static void *signal_main(void *opaque)
{
	struct sigctl *c = opaque;
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int sig;

	for (;;) {
		if (sigwait(&c->set, &sig) != 0 || sig == SIGUSR1)
			return NULL;
		fprintf(stderr, "%s: %s: cancelling the migration\n", prog,
			sig == SIGINT ? "interrupted" : "terminated");
		/* A set-up that still runs (filling memory) stops at once. */
		vmig_configure_interrupt();
		/* The run may not have begun its migration yet: retry. */
		for (;;) {
			int done;

			pthread_mutex_lock(&c->lock);
			done = c->done;
			pthread_mutex_unlock(&c->lock);
			if (done || vmig_cancel(c->s) == 0)
				break;
			nanosleep(&ts, NULL);
		}
	}
}

static int signals_start(struct sigctl *c, vmig_session *s)
{
	c->s = s;
	c->done = 0;
	pthread_mutex_init(&c->lock, NULL);
	sigemptyset(&c->set);
	sigaddset(&c->set, SIGINT);
	sigaddset(&c->set, SIGTERM);
	sigaddset(&c->set, SIGUSR1);
	if (pthread_sigmask(SIG_BLOCK, &c->set, NULL) ||
	    pthread_create(&c->thread, NULL, signal_main, c)) {
		pthread_mutex_destroy(&c->lock);
		return -1;
	}
	return 0;
}

static void signals_stop(struct sigctl *c)
{
	pthread_mutex_lock(&c->lock);
	c->done = 1;
	pthread_mutex_unlock(&c->lock);
	pthread_kill(c->thread, SIGUSR1);
	pthread_join(c->thread, NULL);
	pthread_mutex_destroy(&c->lock);
}

/* The configuration's "role", read from its text (NULL: none). */
static int config_is_destination(const char *path)
{
	FILE *f = fopen(path, "r");
	cJSON *root, *role;
	char *buf;
	long len;
	int ret = 0;

	if (!f)
		return 0;
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) || !(buf = malloc((size_t)len + 1))) {
		fclose(f);
		return 0;
	}
	len = (long)fread(buf, 1, (size_t)len, f);
	buf[len] = '\0';
	fclose(f);
	root = cJSON_Parse(buf);
	free(buf);
	role = cJSON_GetObjectItem(root, "role");
	if (cJSON_IsString(role) && !strcmp(role->valuestring, "destination"))
		ret = 1;
	cJSON_Delete(root);
	return ret;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "report", required_argument, NULL, 'r' },
		{ "dump-memory", required_argument, NULL, 'd' },
		{ "events", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *report = NULL, *dump = NULL, *events = NULL;
	FILE *evf = NULL;
	struct sigctl sig;
	vmig_config *cfg;
	vmig_session *s;
	char bound[256], msg[1024];
	int c, ret, dret = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:d:e:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			report = optarg;
			break;
		case 'e':
			events = optarg;
			break;
		case 'd':
			dump = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	ret = load_config(argv[optind], &cfg);
	if (ret < 0)
		return ret == VMIG_ECONFIG ? EXIT_CONFIG : EXIT_FAIL;
	if (new_session(&s) < 0) {
		vmig_config_free(cfg);
		return EXIT_FAIL;
	}
	if (signals_start(&sig, s) < 0) {
		fprintf(stderr, "%s: cannot watch for signals\n", prog);
		vmig_config_free(cfg);
		vmig_session_free(s);
		return EXIT_FAIL;
	}
	if (events) {
		evf = fopen(events, "w");
		if (!evf) {
			fprintf(stderr, "%s: %s: %s\n", prog, events,
				strerror(errno));
			vmig_config_free(cfg);
			ret = -errno;
			goto out;
		}
		vmig_set_event_callback(s, event_line, evf);
	}
	ret = vmig_session_configure(s, cfg);
	vmig_config_free(cfg);
	if (ret < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, argv[optind],
			vmig_errmsg(s));
		goto out;
	}
	if (config_is_destination(argv[optind])) {
		/* Listen first, and say where: the source may need to know. */
		ret = vmig_listen(s, NULL, bound, sizeof(bound));
		if (ret < 0) {
			fprintf(stderr, "%s: %s\n", prog, vmig_errmsg(s));
			goto out;
		}
		printf("listening on %s\n", bound);
		fflush(stdout);
	}
	ret = vmig_run(s, report);
	if (progress_shown)
		fputs("\r\033[K", stderr);
	snprintf(msg, sizeof(msg), "%s", vmig_errmsg(s));
	if (dump) {
		dret = vmig_memory_dump(s, dump);
		if (dret < 0)
			fprintf(stderr, "%s: %s\n", prog, vmig_errmsg(s));
	}
	print_summary(s, report);
	if (ret < 0)
		print_failure(msg);
out:
	signals_stop(&sig);
	vmig_session_free(s);
	if (evf)
		fclose(evf);
	switch (ret) {
	case VMIG_EMISSED:
		return EXIT_MISSED;
	case VMIG_EUNRESOLVED:
		return EXIT_UNRESOLVED;
	case -ECANCELED:
		return EXIT_CANCELLED;
	default:
		return ret < 0 || dret < 0 ? EXIT_FAIL : EXIT_OK;
	}
}

int main(int argc, char **argv)
{
	int i, n = 0;

	/* Global -v/-q anywhere; the rest goes to the command. */
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			verbosity++;
		} else if (!strcmp(argv[i], "-vv")) {
			verbosity += 2;
		} else if (!strcmp(argv[i], "-q") ||
			   !strcmp(argv[i], "--quiet")) {
			verbosity = VMIG_LOG_ERROR;
		} else {
			argv[++n] = argv[i];
		}
	}
	argc = n + 1;
	if (verbosity > VMIG_LOG_DEBUG)
		verbosity = VMIG_LOG_DEBUG;
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "plugins"))
		return cmd_plugins(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("vmig %s (plugin ABI %d.%d)\n", vmig_version_string(),
		       VMIG_PLUGIN_ABI_MAJOR, VMIG_PLUGIN_ABI_MINOR);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "--help")) {
		usage(stdout);
		return EXIT_OK;
	}
	fprintf(stderr, "%s: unknown command \"%s\"\n", prog, argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
