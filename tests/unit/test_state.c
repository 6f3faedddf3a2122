/*
 * test_state.c: the VMM's own state in the stream (vmig_state_register).
 *
 * A small model VMM, through the public API only: one region of guest
 * memory, a "cpu" section (registers and a counter, saved at the stop)
 * and a "uart" section (its configuration saved while the guest runs,
 * its FIFO at the stop). The tests check that the destination loads
 * exactly what the source saved, in order, before its start callback;
 * that a section the destination does not know, a version it cannot
 * load, a section it needs and the source lacks, a load or a save that
 * fails, each fail the migration before COMMIT with an error naming the
 * section, the source's guest resumed (or never stopped) and the
 * destination's never started; the registration's errors; and one
 * migration between two processes over TCP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <vmig/vmig.h>

#include "unit/testutil.h"
#include "unit/sessionutil.h"

#define MEM (1u << 20)

/* The model VMM's state. */
struct cpu {
	uint64_t rip, rsp, rax;
	uint64_t counter;
	uint8_t fpu[512];
};

struct uart {
	uint32_t baud, lcr;
	char fifo[16];
};

/* A VMM, source or destination, and what its callbacks saw. */
struct vmm {
	vmig_session *s;
	uint8_t *mem;
	struct cpu cpu;
	struct uart uart;
	bool running;
	/* Calls, in order: one letter each (s stop, r resume, S start,
	 * L live save, F final save, c cpu load, u uart load, d load_done,
	 * a load_abort). */
	char calls[256];
	unsigned int ncalls;
	uint32_t cpu_version;  /* loaded: the version the source sent */
	int fail_load;         /* destination: cpu load fails with it */
	int fail_save;         /* source: cpu save_final fails with it */
	struct vmig_test_log log;
};

static void note(struct vmm *v, char c)
{
	if (v->ncalls + 1 < sizeof(v->calls))
		v->calls[v->ncalls++] = c;
}

static int vmm_stop(void *opaque)
{
	struct vmm *v = opaque;

	note(v, 's');
	v->running = false;
	return 0;
}

static int vmm_resume(void *opaque)
{
	struct vmm *v = opaque;

	note(v, 'r');
	v->running = true;
	return 0;
}

static int vmm_start(void *opaque)
{
	struct vmm *v = opaque;

	note(v, 'S');
	v->running = true;
	return 0;
}

static int cpu_save(void *opaque, vmig_state_out *out)
{
	struct vmm *v = opaque;

	note(v, 'F');
	if (v->fail_save)
		return v->fail_save;
	/* Two records: the registers, then the FPU area. */
	if (vmig_state_put(out, &v->cpu, offsetof(struct cpu, fpu)) < 0)
		return -ENOMEM;
	return vmig_state_put(out, v->cpu.fpu, sizeof(v->cpu.fpu));
}

static uint64_t cpu_pending(void *opaque)
{
	(void)opaque;
	return sizeof(struct cpu);
}

static int cpu_load(void *opaque, uint32_t version, const void *data,
		    size_t len)
{
	struct vmm *v = opaque;

	note(v, 'c');
	v->cpu_version = version;
	if (v->fail_load)
		return v->fail_load;
	if (len == offsetof(struct cpu, fpu))
		memcpy(&v->cpu, data, len);
	else if (len == sizeof(v->cpu.fpu))
		memcpy(v->cpu.fpu, data, len);
	else
		return -EINVAL;
	return 0;
}

static int cpu_done(void *opaque, uint32_t version)
{
	struct vmm *v = opaque;

	(void)version;
	note(v, 'd');
	return 0;
}

static void cpu_abort(void *opaque)
{
	struct vmm *v = opaque;

	note(v, 'a');
	memset(&v->cpu, 0, sizeof(v->cpu));
}

static int uart_live(void *opaque, vmig_state_out *out)
{
	struct vmm *v = opaque;
	uint32_t cfg[2] = { v->uart.baud, v->uart.lcr };

	note(v, 'L');
	return vmig_state_put(out, cfg, sizeof(cfg));
}

static int uart_final(void *opaque, vmig_state_out *out)
{
	struct vmm *v = opaque;

	return vmig_state_put(out, v->uart.fifo, sizeof(v->uart.fifo));
}

static int uart_load(void *opaque, uint32_t version, const void *data,
		     size_t len)
{
	struct vmm *v = opaque;
	uint32_t cfg[2];

	(void)version;
	note(v, 'u');
	if (len == sizeof(cfg)) {
		memcpy(cfg, data, len);
		v->uart.baud = cfg[0];
		v->uart.lcr = cfg[1];
	} else if (len == sizeof(v->uart.fifo)) {
		memcpy(v->uart.fifo, data, len);
	} else {
		return -EINVAL;
	}
	return 0;
}

static const struct vmig_state_ops cpu_ops = {
	.size = sizeof(cpu_ops),
	.pending = cpu_pending,
	.save_final = cpu_save,
	.load = cpu_load,
	.load_done = cpu_done,
	.load_abort = cpu_abort,
};

static const struct vmig_state_ops uart_ops = {
	.size = sizeof(uart_ops),
	.save_live = uart_live,
	.save_final = uart_final,
	.load = uart_load,
};

static void vmm_init(struct vmm *v, uint32_t role)
{
	struct vmig_session_params p = {
		.size = sizeof(p),
		.role = role,
		.log = vmig_test_session_log,
		.log_opaque = &v->log,
		.log_level = VMIG_LOG_DEBUG,
	};
	static const struct vmig_vmm_ops ops = {
		.size = sizeof(ops),
		.stop = vmm_stop,
		.resume = vmm_resume,
		.start = vmm_start,
	};
	struct vmig_region r = { .size = sizeof(r), .name = "ram", .fd = -1 };
	struct vmig_policies pol = {
		.size = sizeof(pol),
		.downtime_limit_ms = 60000, /* any machine meets it */
		.verify = VMIG_VERIFY_STRICT,
	};
	size_t i;

	memset(v, 0, sizeof(*v));
	v->mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(v->mem != MAP_FAILED);
	CU_ASSERT_FATAL(vmig_session_new(&p, &v->s) == 0);
	r.hva = v->mem;
	r.length = MEM;
	CU_ASSERT_FATAL(vmig_region_add(v->s, &r, NULL) == 0);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(v->s, &ops, v) == 0);
	CU_ASSERT_FATAL(vmig_set_policies(v->s, &pol) == 0);
	if (role == VMIG_ROLE_DESTINATION)
		return;
	v->running = true;
	for (i = 0; i < MEM; i += 4096)
		v->mem[i] = (uint8_t)(i >> 12);
	v->cpu.rip = 0xffff8000c0de0042ull;
	v->cpu.rsp = 0x7ffc0000;
	v->cpu.rax = 42;
	v->cpu.counter = 123456789;
	for (i = 0; i < sizeof(v->cpu.fpu); i++)
		v->cpu.fpu[i] = (uint8_t)(i * 7);
	v->uart.baud = 115200;
	v->uart.lcr = 3;
	memcpy(v->uart.fifo, "hello, world!\n", 15);
}

static void vmm_fini(struct vmm *v)
{
	vmig_session_free(v->s);
	munmap(v->mem, MEM);
}

/* A number of the session's report. */
static uint64_t report_u64(vmig_session *s, const char *key)
{
	cJSON *root = json_session_report(s);
	uint64_t v = (uint64_t)json_num(root, key);

	cJSON_Delete(root);
	return v;
}

/* Both sides register the two sections (cpu at version cpu_v). */
static void register_both(struct vmm *src, struct vmm *dst, uint32_t cpu_v)
{
	CU_ASSERT_FATAL(vmig_state_register(src->s, "cpu", cpu_v, 1,
					    &cpu_ops, src) == 0);
	CU_ASSERT_FATAL(vmig_state_register(src->s, "uart", 1, 1, &uart_ops,
					    src) == 0);
	/* The destination's order differs: names match, not places. */
	CU_ASSERT_FATAL(vmig_state_register(dst->s, "uart", 1, 1, &uart_ops,
					    dst) == 0);
	CU_ASSERT_FATAL(vmig_state_register(dst->s, "cpu", 2, 1, &cpu_ops,
					    dst) == 0);
}

static void test_state_travels(void)
{
	struct vmm src, dst;
	const char *f, *d, *S;
	int ret;

	vmm_init(&src, VMIG_ROLE_SOURCE);
	vmm_init(&dst, VMIG_ROLE_DESTINATION);
	register_both(&src, &dst, 2);
	ret = vmig_migrate_local(src.s, dst.s);
	CU_ASSERT_EQUAL_FATAL(ret, 0);
	/* Exactly the source's state at the stop, loaded. */
	CU_ASSERT(memcmp(&dst.cpu, &src.cpu, sizeof(src.cpu)) == 0);
	CU_ASSERT(memcmp(&dst.uart, &src.uart, sizeof(src.uart)) == 0);
	CU_ASSERT_EQUAL(dst.cpu_version, 2);
	CU_ASSERT(memcmp(dst.mem, src.mem, MEM) == 0);
	/* Source: live saves while running, then stop, then final save. */
	CU_ASSERT(src.calls[0] == 'L');
	f = strchr(src.calls, 'F');
	CU_ASSERT(f && strchr(src.calls, 's') < f);
	CU_ASSERT_PTR_NULL(strchr(src.calls, 'r'));
	CU_ASSERT(!src.running);
	/* Destination: uart's live records, cpu's two, load_done, start. */
	d = strchr(dst.calls, 'd');
	S = strchr(dst.calls, 'S');
	CU_ASSERT(dst.calls[0] == 'u');
	CU_ASSERT(d && S && d < S && S[1] == '\0');
	CU_ASSERT(strstr(dst.calls, "cc") && strstr(dst.calls, "cc") < d);
	CU_ASSERT_PTR_NULL(strchr(dst.calls, 'a'));
	CU_ASSERT(dst.running);
	/* The report counts what travelled, on both sides. */
	CU_ASSERT_EQUAL(report_u64(src.s, "vmm_state_sections"), 2);
	CU_ASSERT(report_u64(src.s, "vmm_state_bytes") >=
		  sizeof(struct cpu) + sizeof(src.uart.fifo) + 8);
	CU_ASSERT_EQUAL(report_u64(dst.s, "vmm_state_bytes"),
			report_u64(src.s, "vmm_state_bytes"));
	CU_ASSERT(has(src.log.text, "source: VMM state section \"uart\" "
			  "(version 1) travels"));
	vmm_fini(&src);
	vmm_fini(&dst);
}

/* The sections of a failing case, registered on both sides. */
static void unknown_section(struct vmm *src, struct vmm *dst)
{
	CU_ASSERT_FATAL(vmig_state_register(src->s, "cpu", 1, 1, &cpu_ops,
					    src) == 0);
	CU_ASSERT_FATAL(vmig_state_register(src->s, "gpu-model", 1, 1,
					    &uart_ops, src) == 0);
	CU_ASSERT_FATAL(vmig_state_register(dst->s, "cpu", 1, 1, &cpu_ops,
					    dst) == 0);
}

static void newer_version(struct vmm *src, struct vmm *dst)
{
	register_both(src, dst, 3);
}

static void section_missing(struct vmm *src, struct vmm *dst)
{
	register_both(src, dst, 1);
	CU_ASSERT_FATAL(vmig_state_unregister(src->s, "uart") == 0);
}

static void load_fails(struct vmm *src, struct vmm *dst)
{
	register_both(src, dst, 2);
	dst->fail_load = -EBADMSG;
}

static void save_fails(struct vmm *src, struct vmm *dst)
{
	register_both(src, dst, 2);
	src->fail_save = -EIO;
}

static const struct failure {
	void (*arrange)(struct vmm *src, struct vmm *dst);
	/*
	 * After the stop: the source resumes its guest once; else at the
	 * handshake: it was never stopped.
	 */
	bool stopped;
	const char *what;   /* in the source's error */
} failures[] = {
	{ unknown_section, false,
	  "state section 1 (\"gpu-model\", version 1) is not known here" },
	{ newer_version, false,
	  "state section 0 (\"cpu\"): version 3, this destination loads "
	  "versions 1 to 2" },
	{ section_missing, false,
	  "the state section \"uart\" this destination loads is not in the "
	  "stream" },
	{ load_fails, true,
	  "state section 0 (cpu): the VMM's load refused a record of" },
	{ save_fails, true,
	  "state section \"cpu\": the VMM's save_final failed" },
};

/*
 * Each failing case fails the migration with an error naming the
 * section; the destination never starts (and drops what it loaded).
 */
static void test_failures(void)
{
	struct vmm src, dst;
	size_t i;

	for (i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
		const struct failure *f = &failures[i];
		const char *r;

		vmm_init(&src, VMIG_ROLE_SOURCE);
		vmm_init(&dst, VMIG_ROLE_DESTINATION);
		f->arrange(&src, &dst);
		CU_ASSERT(vmig_migrate_local(src.s, dst.s) < 0);
		CU_ASSERT(has(vmig_errmsg(src.s), f->what));
		r = strchr(src.calls, 'r');
		CU_ASSERT_EQUAL(strchr(src.calls, 's') != NULL, f->stopped);
		CU_ASSERT_EQUAL(r != NULL, f->stopped);
		CU_ASSERT(r == strrchr(src.calls, 'r'));
		CU_ASSERT(src.running);
		CU_ASSERT_PTR_NULL(strchr(dst.calls, 'S'));
		CU_ASSERT(!dst.running);
		/* What the destination loaded is dropped. */
		if (strchr(dst.calls, 'c') || strchr(dst.calls, 'u'))
			CU_ASSERT_EQUAL(dst.calls[dst.ncalls - 1], 'a');
		vmm_fini(&src);
		vmm_fini(&dst);
	}
}

static void test_register_errors(void)
{
	struct vmig_state_ops small = { .size = 8, .load = cpu_load };
	struct vmig_state_ops none = { .size = sizeof(none) };
	char name[80];
	vmig_session *s = NULL;
	unsigned int i;

	CU_ASSERT_FATAL(vmig_session_new(NULL, &s) == 0);
	CU_ASSERT_EQUAL(vmig_state_register(NULL, "x", 1, 1, &cpu_ops, NULL),
			-EINVAL);
	CU_ASSERT_EQUAL(vmig_state_register(s, "", 1, 1, &cpu_ops, NULL),
			-EINVAL);
	CU_ASSERT_EQUAL(vmig_state_register(s, "a\nb", 1, 1, &cpu_ops, NULL),
			-EINVAL);
	memset(name, 'n', sizeof(name));
	name[VMIG_STATE_NAME_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(vmig_state_register(s, name, 1, 1, &cpu_ops, NULL),
			-EINVAL);
	name[VMIG_STATE_NAME_MAX] = '\0';
	CU_ASSERT_EQUAL(vmig_state_register(s, name, 1, 1, &cpu_ops, NULL), 0);
	CU_ASSERT_EQUAL(vmig_state_register(s, "v", 0, 0, &cpu_ops, NULL),
			-EINVAL);
	CU_ASSERT_EQUAL(vmig_state_register(s, "v", 2, 3, &cpu_ops, NULL),
			-EINVAL);
	CU_ASSERT(has(vmig_errmsg(s), "min_version 3"));
	CU_ASSERT_EQUAL(vmig_state_register(s, "v", 1, 1, NULL, NULL),
			-EINVAL);
	CU_ASSERT_EQUAL(vmig_state_register(s, "v", 1, 1, &small, NULL),
			-EINVAL);
	CU_ASSERT_EQUAL(vmig_state_register(s, "v", 1, 1, &none, NULL),
			-EINVAL);
	CU_ASSERT_EQUAL(vmig_state_register(s, name, 1, 1, &cpu_ops, NULL),
			-EEXIST);
	for (i = 1; i < VMIG_STATE_SECTIONS_MAX; i++) {
		snprintf(name, sizeof(name), "s%u", i);
		CU_ASSERT_EQUAL(vmig_state_register(s, name, 1, 1, &cpu_ops,
						    NULL),
				0);
	}
	CU_ASSERT_EQUAL(vmig_state_register(s, "one-more", 1, 1, &cpu_ops,
					    NULL),
			-ENOSPC);
	CU_ASSERT_EQUAL(vmig_state_unregister(s, "nothing"), -ENOENT);
	CU_ASSERT_EQUAL(vmig_state_unregister(s, "s7"), 0);
	CU_ASSERT_EQUAL(vmig_state_unregister(s, "s7"), -ENOENT);
	CU_ASSERT_EQUAL(vmig_state_register(s, "one-more", 1, 1, &cpu_ops,
					    NULL),
			0);
	CU_ASSERT_EQUAL(vmig_state_put(NULL, "x", 1), -EINVAL);
	vmig_session_free(s);
}

/* The destination in a child process: exit 0 when all it loaded is right. */
static int child_destination(int port_fd, const struct vmm *want)
{
	struct vmm dst;
	char bound[160];
	int ret;

	vmm_init(&dst, VMIG_ROLE_DESTINATION);
	if (vmig_state_register(dst.s, "cpu", 2, 1, &cpu_ops, &dst) ||
	    vmig_state_register(dst.s, "uart", 1, 1, &uart_ops, &dst))
		_exit(10);
	if (vmig_listen(dst.s, "tcp:127.0.0.1:0", bound, sizeof(bound)))
		_exit(11);
	if (write(port_fd, bound, strlen(bound) + 1) < 0)
		_exit(12);
	close(port_fd);
	ret = vmig_receive(dst.s);
	if (ret) {
		fprintf(stderr, "destination: %s\n", vmig_errmsg(dst.s));
		_exit(13);
	}
	if (memcmp(&dst.cpu, &want->cpu, sizeof(want->cpu)) ||
	    memcmp(&dst.uart, &want->uart, sizeof(want->uart)) ||
	    memcmp(dst.mem, want->mem, MEM))
		_exit(14);
	if (strcmp(strchr(dst.calls, 'd'), "dS"))
		_exit(15);
	vmm_fini(&dst);
	_exit(0);
}

static void test_two_processes(void)
{
	struct vmm src;
	char addr[160] = { 0 };
	int fds[2], status = -1;
	ssize_t n;
	pid_t pid;

	vmm_init(&src, VMIG_ROLE_SOURCE);
	CU_ASSERT_FATAL(vmig_state_register(src.s, "cpu", 2, 1, &cpu_ops,
					    &src) == 0);
	CU_ASSERT_FATAL(vmig_state_register(src.s, "uart", 1, 1, &uart_ops,
					    &src) == 0);
	CU_ASSERT_FATAL(pipe(fds) == 0);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_destination(fds[1], &src);
	}
	close(fds[1]);
	n = read(fds[0], addr, sizeof(addr) - 1);
	close(fds[0]);
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL(vmig_migrate(src.s, addr), 0);
	CU_ASSERT(waitpid(pid, &status, 0) == pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fprintf(stderr, "\n  destination exit status %d\n",
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	vmm_fini(&src);
}

static CU_TestInfo tests[] = {
	{ "the VMM's state travels, loaded before start", test_state_travels },
	{ "what fails, before the stop or after it", test_failures },
	{ "registration errors", test_register_errors },
	{ "between two processes over TCP", test_two_processes },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE("state", tests))
