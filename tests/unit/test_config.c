/*
 * test_config.c: the JSON configuration (core/config.c): every key's valid
 * forms and defaults, every kind of invalid value with its exact message,
 * syntax errors with line and column, files, allocation failures at every
 * allocation, and random mutations of a full document.
 *
 * Documents are written with ' for " to keep them readable; dq() turns
 * them into JSON. Expected messages are plain C strings.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <linux/vfio.h>

#include "tool/config.h"
#include <vmig/linux-uapi.h>
#include "unit/testutil.h"

static char msg[512];

/* A copy of s with every ' turned into ". */
static char *dq(const char *s)
{
	char *d = strdup(s), *p;

	CU_ASSERT_FATAL(d != NULL);
	for (p = d; *p; p++)
		if (*p == '\'')
			*p = '"';
	return d;
}

static int parse_raw(const char *json, size_t len, const char *base,
		     vmig_config **out)
{
	return vmig_config_parse(json, len, base, out, msg, sizeof(msg));
}

static int parse_doc(const char *doc, const char *base, vmig_config **out)
{
	char *j = dq(doc);
	int rc = parse_raw(j, strlen(j), base, out);

	free(j);
	return rc;
}

static void report(int line, const char *what)
{
	CU_assertImplementation(CU_FALSE, (unsigned int)line, what, __FILE__,
				"", CU_FALSE);
}

/* Parses doc (with base_dir base), which must be valid. */
static vmig_config *ok_base(int line, const char *doc, const char *base)
{
	vmig_config *cfg = NULL;
	int rc = parse_doc(doc, base, &cfg);

	if (rc || !cfg || msg[0]) {
		fprintf(stderr, "\nline %d: rc %d: %s\n", line, rc, msg);
		report(line, "a valid document was refused");
		vmig_config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* Parses raw JSON, which must be refused with exactly this message. */
static void err_raw(int line, const char *json, size_t len, const char *want)
{
	vmig_config *cfg = (vmig_config *)&cfg;
	int rc = parse_raw(json, len, NULL, &cfg);

	if (rc != VMIG_ECONFIG || cfg || strcmp(msg, want)) {
		fprintf(stderr, "\nline %d: rc %d\n  want: %s\n  got:  %s\n",
			line, rc, want, msg);
		report(line, "wrong error");
	}
	if (rc == 0)
		vmig_config_free(cfg);
}

static void err_doc(int line, const char *doc, const char *want)
{
	char *j = dq(doc);

	err_raw(line, j, strlen(j), want);
	free(j);
}

#define OK(doc) ok_base(__LINE__, doc, NULL)
#define OK_BASE(doc, base) ok_base(__LINE__, doc, base)
#define ERR(doc, want) err_doc(__LINE__, doc, want)
#define ERR_RAW(json, len, want) err_raw(__LINE__, json, len, want)

/* The smallest valid document, and pieces to build others from. */
#define MEM "'memory': [{'gpa': 0, 'size': '1G'}]"
#define WITH(extra) "{" MEM ", " extra "}"
#define NIC0 "{'name': 'nic0', 'kind': 'vfio-pci', 'group': 7}"
#define NIC1 "{'name': 'nic1', 'kind': 'vfio-pci', 'group': 8}"
#define FD0 "{'name': 'fd0', 'kind': 'vfio-pci', 'iommu': 'iommufd', " \
	    "'cdev': '/dev/vfio/devices/vfio0'}"
#define MDEV0 "{'name': 'm0', 'kind': 'mdev', 'group': 9}"

/* ------------------------------------------------------------------ */
/* Syntax                                                              */

static void test_syntax_errors(void)
{
	static const char nul[] = "{\"role\"\0: 1}";
	static const char full[] = "{\"memory\": []}";
	static char deep[100001];

	ERR_RAW("{\n  \"role\": \"source\",\n  \"memory\": [}\n}", 39,
		"line 3, column 14: invalid JSON near \"}\"");
	ERR("{'role': 'source',}",
	    "line 1, column 19: invalid JSON near \"}\"");
	ERR("{'role': 'sou",
	    "line 1, column 14: invalid JSON: unexpected end of the document");
	ERR("", "line 1, column 1: invalid JSON: the document is empty");
	ERR("  \n ", "line 2, column 2: invalid JSON: the document is empty");
	ERR_RAW(NULL, 0, "line 1, column 1: invalid JSON: the document is "
		"empty");
	ERR_RAW(NULL, 10, "line 1, column 1: invalid JSON: the document is "
		"empty");
	ERR("{'memory': []} x", "line 1, column 16: invalid JSON: text after "
	    "the document near \"x\"");
	ERR("{'memory': tru}", "line 1, column 15: invalid JSON near \"}\"");
	ERR("{'memory': 01}", "line 1, column 13: invalid JSON near \"1}\"");
	ERR("{'memory': 1.}", "line 1, column 14: invalid JSON near \"}\"");
	ERR("{'memory': -}", "line 1, column 13: invalid JSON near \"}\"");
	ERR("{'memory': .5}", "line 1, column 12: invalid JSON near \".5}\"");
	ERR_RAW("{'memory': 1}", 13,
		"line 1, column 2: invalid JSON near \"'memory': 1}\"");
	ERR_RAW("{\"role\": \"a\\u0000\"}", 19,
		"line 1, column 12: a string cannot contain \\u0000");
	ERR_RAW("{\"role\": \"\xff\"}", 13,
		"line 1, column 11: invalid UTF-8 near \"\\xff\\\"}\"");
	ERR_RAW("{\"role\": \"\xc0\xaf\"}", 14,
		"line 1, column 11: invalid UTF-8 near \"\\xc0\\xaf\\\"}\"");
	ERR_RAW("{\"role\": \"\xed\xa0\x80\"}", 15,
		"line 1, column 11: invalid UTF-8 near "
		"\"\\xed\\xa0\\x80\\\"}\"");
	ERR_RAW("{\"role\": \"\\udc00\"}", 18,
		"line 1, column 11: invalid JSON near \"\\\\udc00\\\"}\"");
	ERR_RAW("{\"role\": \"\\ud800x\"}", 19,
		"line 1, column 17: invalid JSON near \"x\\\"}\"");
	ERR_RAW("{\"role\": \"\\q\"}", 14,
		"line 1, column 11: invalid JSON near \"\\\\q\\\"}\"");
	ERR_RAW("{\"role\": \"a\tb\"}", 15,
		"line 1, column 12: invalid JSON near \"\\x09b\\\"}\"");
	/* Columns count characters, not bytes. */
	ERR_RAW("{\"\xc3\xa9\": x}", 9,
		"line 1, column 7: invalid JSON near \"x}\"");
	/* An embedded NUL, and a length shorter than the text. */
	ERR_RAW(nul, sizeof(nul) - 1,
		"line 1, column 8: invalid JSON near \"\\x00: 1}\"");
	ERR_RAW(full, 5, "line 1, column 6: invalid JSON: unexpected end of "
		"the document");
	ERR("{'memory': [0, 1111111111222222222233333333334444444444"
	    "555555555566666666667777777777]}", "line 1, column 16: invalid "
	    "JSON: a number longer than 63 characters");

	memset(deep, '[', sizeof(deep) - 1);
	ERR_RAW(deep, 70, "line 1, column 65: invalid JSON: nested deeper "
		"than 64 levels");
	ERR_RAW(deep, sizeof(deep) - 1, "line 1, column 65: invalid JSON: "
		"nested deeper than 64 levels");
	ERR_RAW(deep, 64, "line 1, column 65: invalid JSON: unexpected end "
		"of the document");
}

static void test_syntax_accepted(void)
{
	static const char padded[] = "{\"memory\": [{\"gpa\": 0, \"size\": "
				     "4096}]}\0\0";
	static const char bom[] = "\xef\xbb\xbf{\"memory\": [{\"gpa\": 0, "
				  "\"size\": 4096}]}";
	static const char esc[] = "{\"memory\": [{\"name\": \"r\\u00e9\\ud83d"
				  "\\ude00\\n\", \"gpa\": 0, \"size\": 4096}]}";
	vmig_config *cfg = NULL;

	/* A length that counts the terminating NULs is forgiven. */
	CU_ASSERT_EQUAL(parse_raw(padded, sizeof(padded), NULL, &cfg), 0);
	CU_ASSERT_EQUAL(msg[0], '\0');
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->regions[0].size, 4096);
	vmig_config_free(cfg);
	cfg = NULL;
	CU_ASSERT_EQUAL(parse_raw(bom, sizeof(bom) - 1, NULL, &cfg), 0);
	CU_ASSERT_PTR_NOT_NULL(cfg);
	vmig_config_free(cfg);
	cfg = NULL;
	CU_ASSERT_EQUAL(parse_raw(esc, sizeof(esc) - 1, NULL, &cfg), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_STRING_EQUAL(cfg->regions[0].name,
			       "r\xc3\xa9\xf0\x9f\x98\x80\n");
	vmig_config_free(cfg);
}

/*
 * Independent errors are all named, one a line, in document order; an
 * element's error does not hide its siblings'; what depends on a broken
 * section (mappings on memory and devices, the kernel on the mappings)
 * is not checked against it.
 */
static void test_many_errors(void)
{
	vmig_config *cfg = (vmig_config *)&cfg;

	ERR("{'role': 'local', 'policies': {'max_iterations': 'x'}, "
	    "'memory': [{'gpa': 0, 'size': '1M'}, {'gpa': 1, 'size': '1M'}],"
	    " 'devices': [{'name': 'a', 'kind': 3, 'group': 1}, "
	    "{'name': 'b', 'kind': 'mdev'}], "
	    "'dma_mappings': [{'space': 'nowhere', 'iova': 0, 'gpa': 0, "
	    "'size': '1M'}], 'run': {'mode': 'fly'}}",
	    "policies.max_iterations: expected an integer from 1 to 100000\n"
	    "memory[1].gpa: 0x1 is not a multiple of 4 KiB\n"
	    "devices[0].kind: expected one of \"vfio-pci\", \"mdev\"\n"
	    "devices[1]: missing key \"group\" (required for a type1 "
	    "device)\n"
	    "run.mode: expected one of \"migrate\", \"track\"");
}

static void test_root(void)
{
	vmig_config *cfg = (vmig_config *)&cfg;

	ERR("[]", "(root): expected an object");
	ERR("1", "(root): expected an object");
	ERR("{}", "(root): missing key \"memory\"");
	ERR(WITH("'rol': 'source'"), "(root): unknown key \"rol\"");
	ERR(WITH("'Role': 'source'"), "(root): unknown key \"Role\"");
	ERR(WITH("'role': 'source', 'role': 'destination'"),
	    "(root): duplicate key \"role\"");
	/* A key is shown escaped and shortened. */
	ERR(WITH("'a\\'\\n01234567890123456789012345678901234567890123456789'"
		 ": 1"),
	    "(root): unknown key \"a\\\"\\x0a012345678901234567890123456789"
	    "0123456789...\"");

	/* No output pointer: nothing to do. */
	CU_ASSERT_EQUAL(vmig_config_parse("{}", 2, NULL, NULL, msg,
					  sizeof(msg)), -EINVAL);
	/* A message is cut to the buffer, and always terminated. */
	CU_ASSERT_EQUAL(vmig_config_parse("[]", 2, NULL, &cfg, msg, 8),
			VMIG_ECONFIG);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT_STRING_EQUAL(msg, "(root):");
	CU_ASSERT_EQUAL(vmig_config_parse("[", 1, NULL, &cfg, msg, 1),
			VMIG_ECONFIG);
	CU_ASSERT_STRING_EQUAL(msg, "");
	CU_ASSERT_EQUAL(vmig_config_parse("[]", 2, NULL, &cfg, NULL, 0),
			VMIG_ECONFIG);
}

/* ------------------------------------------------------------------ */
/* Top-level keys                                                      */

static void test_defaults(void)
{
	vmig_config *cfg = OK("{" MEM "}");

	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->role, VMIG_ROLE_SOURCE);
	CU_ASSERT_PTR_NULL(cfg->transport);
	CU_ASSERT_STRING_EQUAL(cfg->base_dir, ".");
	CU_ASSERT_PTR_NULL(cfg->plugin_paths);
	CU_ASSERT_EQUAL(cfg->nr_plugin_paths, 0);
	CU_ASSERT_PTR_NULL(cfg->plugins);
	CU_ASSERT_EQUAL(cfg->nr_plugins, 0);
	CU_ASSERT_FALSE(cfg->plugins_given);
	CU_ASSERT_PTR_NULL(cfg->preference);
	CU_ASSERT_EQUAL(cfg->nr_preference, 0);
	CU_ASSERT_EQUAL(cfg->policies.hotplug, VMIG_HOTPLUG_POLICY_TRACK);
	CU_ASSERT_EQUAL(cfg->policies.downtime_limit_ms, 300);
	CU_ASSERT_EQUAL(cfg->policies.bandwidth_limit, 0);
	CU_ASSERT_EQUAL(cfg->policies.max_iterations, 30);
	CU_ASSERT_EQUAL(cfg->policies.timeout_ms, 0);
	/* A guest never waits stopped without a bound, by default. */
	CU_ASSERT_EQUAL(cfg->policies.switchover_timeout_ms, 30000);
	/* Nor does either side wait for a stalled peer forever. */
	CU_ASSERT_EQUAL(cfg->policies.handshake_timeout_ms, 30000);
	CU_ASSERT_EQUAL(cfg->policies.idle_timeout_ms, 60000);
	CU_ASSERT_EQUAL(cfg->policies.timeout_strategy, VMIG_TIMEOUT_STRATEGY_CANCEL);
	CU_ASSERT_EQUAL(cfg->policies.tracking, VMIG_TRACKING_POLICY_MIXED);
	CU_ASSERT_EQUAL_FATAL(cfg->nr_regions, 1);
	CU_ASSERT_STRING_EQUAL(cfg->regions[0].name, "ram0");
	CU_ASSERT_EQUAL(cfg->regions[0].gpa, 0);
	CU_ASSERT_EQUAL(cfg->regions[0].size, 1ull << 30);
	CU_ASSERT_PTR_NULL(cfg->devices);
	CU_ASSERT_EQUAL(cfg->nr_devices, 0);
	CU_ASSERT_PTR_NULL(cfg->mappings);
	CU_ASSERT_EQUAL(cfg->nr_mappings, 0);
	CU_ASSERT_FALSE(cfg->mappings_given);
	CU_ASSERT_PTR_NULL(cfg->report);
	CU_ASSERT_EQUAL(cfg->kernel.type, VMIG_KERNEL_LINUX);
	CU_ASSERT_EQUAL(cfg->kernel.nr_devices, 0);
	CU_ASSERT_EQUAL(cfg->kernel.nr_faults, 0);
	CU_ASSERT_EQUAL(cfg->run.iterations, 5);
	CU_ASSERT_FALSE(cfg->run.track_only);
	/* No role and no transport: both ends in this process. */
	CU_ASSERT_EQUAL(cfg->role, VMIG_ROLE_SOURCE);
	CU_ASSERT_TRUE(cfg->local);
	vmig_config_free(cfg);
}

static void test_role(void)
{
	vmig_config *cfg = OK(WITH("'role': 'destination', "
				   "'transport': 'unix:/tmp/s'"));

	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->role, VMIG_ROLE_DESTINATION);
	CU_ASSERT_FALSE(cfg->local);
	vmig_config_free(cfg);
	cfg = OK(WITH("'role': 'source', 'transport': 'tcp:h:1'"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->role, VMIG_ROLE_SOURCE);
	CU_ASSERT_FALSE(cfg->local);
	vmig_config_free(cfg);
	/* A transport without a role: a source. */
	cfg = OK(WITH("'transport': 'tcp:h:1'"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->role, VMIG_ROLE_SOURCE);
	CU_ASSERT_FALSE(cfg->local);
	vmig_config_free(cfg);
	cfg = OK(WITH("'role': 'local'"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->role, VMIG_ROLE_SOURCE);
	CU_ASSERT_TRUE(cfg->local);
	vmig_config_free(cfg);
	ERR(WITH("'role': 'dest'"),
	    "role: expected one of \"source\", \"destination\", \"local\"");
	ERR(WITH("'role': 1"),
	    "role: expected one of \"source\", \"destination\", \"local\"");
	ERR(WITH("'role': 'destination'"),
	    "transport: required for role \"destination\" (\"unix:<path>\" "
	    "or \"tcp:<host>:<port>\")");
	ERR(WITH("'role': 'source'"),
	    "transport: required for role \"source\" (\"unix:<path>\" "
	    "or \"tcp:<host>:<port>\")");
	ERR(WITH("'role': 'local', 'transport': 'unix:/x'"),
	    "transport: not used with role \"local\" (both ends run in one "
	    "process)");
}

static void test_transport(void)
{
	static const char *const good[] = {
		"unix:/run/vmig.sock", "unix:rel.sock", "tcp:host:4444",
		"tcp:10.0.0.1:1", "tcp:[::1]:65535", "tcp:a.b-c:80",
		"tls:dst:4444?ca=/etc/vmig/ca.pem",
		"tls-psk:[fd00::2]:4444?key=/etc/vmig/psk&identity=r7",
		"tls:h:1",
	};
	static const char *const bad[] = {
		"udp:host:1", "tcp:host", "tcp::80", "unix:", "tcp:a:b:80",
		"tcp:[::1:80", "tcp:[]:80", "", "tls::80?ca=x",
		"tls-psk:h?key=x",
	};
	static const char *const bad_port[] = {
		"tcp:h:0", "tcp:h:65536", "tcp:h:80x", "tcp:h:", "tcp:h:-1",
		"tcp:h:123456", "tcp:h:80?x", "tls:h:0?ca=x",
	};
	char doc[160];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(*good); i++) {
		vmig_config *cfg;

		snprintf(doc, sizeof(doc), WITH("'transport': '%s'"), good[i]);
		cfg = OK(doc);
		CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
		CU_ASSERT_STRING_EQUAL(cfg->transport, good[i]);
		vmig_config_free(cfg);
	}
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		snprintf(doc, sizeof(doc), WITH("'transport': '%s'"), bad[i]);
		ERR(doc, "transport: " "expected \"unix:<path>\", \"tcp:<host>:<port>\", "
		    "\"tls:<host>:<port>?<options>\" or "
		    "\"tls-psk:<host>:<port>?<options>\"");
	}
	for (i = 0; i < sizeof(bad_port) / sizeof(*bad_port); i++) {
		snprintf(doc, sizeof(doc), WITH("'transport': '%s'"),
			 bad_port[i]);
		ERR(doc, "transport: expected a port from 1 to 65535 after "
		    "the last ':'");
	}
	ERR(WITH("'transport': 4444"), "transport: " "expected \"unix:<path>\", \"tcp:<host>:<port>\", "
		    "\"tls:<host>:<port>?<options>\" or "
		    "\"tls-psk:<host>:<port>?<options>\"");
}

static void test_plugins(void)
{
	vmig_config *cfg;

	cfg = OK_BASE(WITH("'plugins': {'paths': ['plugins', '/opt/p', "
			   "'../x'], 'load': ['vfio-type1', 'my_v.2', "
			   "'./vendor.so', '/abs/p.so']}"), "/etc/vmig");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL_FATAL(cfg->nr_plugin_paths, 3);
	CU_ASSERT_STRING_EQUAL(cfg->plugin_paths[0], "/etc/vmig/plugins");
	CU_ASSERT_STRING_EQUAL(cfg->plugin_paths[1], "/opt/p");
	CU_ASSERT_STRING_EQUAL(cfg->plugin_paths[2], "/etc/vmig/../x");
	CU_ASSERT_TRUE(cfg->plugins_given);
	CU_ASSERT_EQUAL_FATAL(cfg->nr_plugins, 4);
	CU_ASSERT_STRING_EQUAL(cfg->plugins[0], "vfio-type1");
	CU_ASSERT_STRING_EQUAL(cfg->plugins[1], "my_v.2");
	CU_ASSERT_STRING_EQUAL(cfg->plugins[2], "/etc/vmig/./vendor.so");
	CU_ASSERT_STRING_EQUAL(cfg->plugins[3], "/abs/p.so");
	CU_ASSERT_STRING_EQUAL(cfg->base_dir, "/etc/vmig");
	vmig_config_free(cfg);

	/* A base ending in '/' gets no second one; no base: left alone. */
	cfg = OK_BASE(WITH("'plugins': {'paths': ['p']}"), "/etc/");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_STRING_EQUAL(cfg->plugin_paths[0], "/etc/p");
	CU_ASSERT_FALSE(cfg->plugins_given);
	CU_ASSERT_PTR_NULL(cfg->plugins);
	vmig_config_free(cfg);
	cfg = OK(WITH("'plugins': {'paths': ['p'], 'load': []}"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_STRING_EQUAL(cfg->plugin_paths[0], "p");
	CU_ASSERT_TRUE(cfg->plugins_given);
	CU_ASSERT_EQUAL(cfg->nr_plugins, 0);
	vmig_config_free(cfg);
	cfg = OK(WITH("'plugins': {}"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_FALSE(cfg->plugins_given);
	vmig_config_free(cfg);

	ERR(WITH("'plugins': []"), "plugins: expected an object");
	ERR(WITH("'plugins': {'pathz': []}"), "plugins: unknown key \"pathz\"");
	ERR(WITH("'plugins': {'paths': 'p'}"), "plugins.paths: expected an "
	    "array");
	ERR(WITH("'plugins': {'paths': ['a', '']}"),
	    "plugins.paths[1]: expected a non-empty string");
	ERR(WITH("'plugins': {'load': ['ok', 3]}"),
	    "plugins.load[1]: expected a non-empty string");
	ERR(WITH("'plugins': {'load': ['Type1']}"),
	    "plugins.load[0]: \"Type1\" is neither a plugin name "
	    "([a-z0-9._-]+) nor a path (with a '/')");
	ERR(WITH("'plugins': {'load': ['vfio type1']}"),
	    "plugins.load[0]: \"vfio type1\" is neither a plugin name "
	    "([a-z0-9._-]+) nor a path (with a '/')");
}

static void test_preference(void)
{
	vmig_config *cfg = OK(WITH("'preference': ['iommufd', "
				   "'device-dirty', 'vfio-type1']"));

	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL_FATAL(cfg->nr_preference, 3);
	CU_ASSERT_STRING_EQUAL(cfg->preference[0], "iommufd");
	CU_ASSERT_STRING_EQUAL(cfg->preference[1], "device-dirty");
	CU_ASSERT_STRING_EQUAL(cfg->preference[2], "vfio-type1");
	vmig_config_free(cfg);
	cfg = OK(WITH("'preference': []"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_PTR_NULL(cfg->preference);
	vmig_config_free(cfg);

	ERR(WITH("'preference': 'iommufd'"), "preference: expected an array");
	ERR(WITH("'preference': ['a', 'b', 'c', 'b', 'a']"),
	    "preference[3]: \"b\" is already listed at preference[1]");
	ERR(WITH("'preference': ['./x.so']"),
	    "preference[0]: \"./x.so\" is not a plugin name ([a-z0-9._-]+)");
	ERR(WITH("'preference': [null]"),
	    "preference[0]: expected a non-empty string");
}

static void test_policies(void)
{
	vmig_config *cfg;

	cfg = OK(WITH("'policies': {'hotplug': 'reject', "
		      "'downtime_limit_ms': 50, 'bandwidth_limit': '1G', "
		      "'max_iterations': 100000, 'timeout_ms': 60000, "
		      "'timeout_strategy': 'force', "
		      "'tracking': 'all-or-nothing', "
		      "'switchover_timeout_ms': 1500, "
		      "'handshake_timeout_ms': 700, 'idle_timeout_ms': 900, "
		      "'verify': 'strict'}"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->policies.hotplug, VMIG_HOTPLUG_POLICY_REJECT);
	CU_ASSERT_EQUAL(cfg->policies.downtime_limit_ms, 50);
	CU_ASSERT_EQUAL(cfg->policies.bandwidth_limit, 1ull << 30);
	CU_ASSERT_EQUAL(cfg->policies.max_iterations, 100000);
	CU_ASSERT_EQUAL(cfg->policies.timeout_ms, 60000);
	CU_ASSERT_EQUAL(cfg->policies.timeout_strategy, VMIG_TIMEOUT_STRATEGY_FORCE);
	CU_ASSERT_EQUAL(cfg->policies.tracking, VMIG_TRACKING_POLICY_ALL_OR_NOTHING);
	CU_ASSERT_EQUAL(cfg->policies.switchover_timeout_ms, 1500);
	CU_ASSERT_EQUAL(cfg->policies.handshake_timeout_ms, 700);
	CU_ASSERT_EQUAL(cfg->policies.idle_timeout_ms, 900);
	CU_ASSERT_EQUAL(cfg->policies.verify, VMIG_VERIFY_STRICT);
	vmig_config_free(cfg);

	cfg = OK(WITH("'policies': {'verify': 'off'}"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->policies.verify, VMIG_VERIFY_OFF);
	vmig_config_free(cfg);

	cfg = OK(WITH("'policies': {'hotplug': 'degrade', "
		      "'bandwidth_limit': 0, 'max_iterations': 1, "
		      "'timeout_ms': 0, 'timeout_strategy': 'cancel', "
		      "'tracking': 'mixed'}"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->policies.hotplug, VMIG_HOTPLUG_POLICY_DEGRADE);
	CU_ASSERT_EQUAL(cfg->policies.downtime_limit_ms, 300);
	CU_ASSERT_EQUAL(cfg->policies.bandwidth_limit, 0);
	CU_ASSERT_EQUAL(cfg->policies.max_iterations, 1);
	CU_ASSERT_EQUAL(cfg->policies.timeout_strategy, VMIG_TIMEOUT_STRATEGY_CANCEL);
	CU_ASSERT_EQUAL(cfg->policies.tracking, VMIG_TRACKING_POLICY_MIXED);
	CU_ASSERT_EQUAL(cfg->policies.verify, VMIG_VERIFY_AUDIT);
	vmig_config_free(cfg);

	cfg = OK(WITH("'policies': {'hotplug': 'track', "
		      "'bandwidth_limit': 125000000}"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->policies.hotplug, VMIG_HOTPLUG_POLICY_TRACK);
	CU_ASSERT_EQUAL(cfg->policies.bandwidth_limit, 125000000);
	vmig_config_free(cfg);

	ERR(WITH("'policies': 1"), "policies: expected an object");
	ERR(WITH("'policies': {'hotplugs': 'track'}"),
	    "policies: unknown key \"hotplugs\"");
	ERR(WITH("'policies': {'hotplug': 'Track'}"),
	    "policies.hotplug: expected one of \"track\", \"degrade\", "
	    "\"reject\"");
	ERR(WITH("'policies': {'downtime_limit_ms': 0}"),
	    "policies.downtime_limit_ms: expected a positive integer "
	    "(milliseconds, below 2^53)");
	ERR(WITH("'policies': {'downtime_limit_ms': 1.5}"),
	    "policies.downtime_limit_ms: expected a positive integer "
	    "(milliseconds, below 2^53)");
	ERR(WITH("'policies': {'downtime_limit_ms': '300'}"),
	    "policies.downtime_limit_ms: expected a positive integer "
	    "(milliseconds, below 2^53)");
	ERR(WITH("'policies': {'bandwidth_limit': -1}"),
	    "policies.bandwidth_limit: expected a size per second (0 for "
	    "none, a positive integer, or a string like \"1G\")");
	ERR(WITH("'policies': {'bandwidth_limit': '1Gb'}"),
	    "policies.bandwidth_limit: expected a size per second (0 for "
	    "none, a positive integer, or a string like \"1G\")");
	ERR(WITH("'policies': {'max_iterations': 0}"),
	    "policies.max_iterations: expected an integer from 1 to 100000");
	ERR(WITH("'policies': {'max_iterations': 100001}"),
	    "policies.max_iterations: expected an integer from 1 to 100000");
	ERR(WITH("'policies': {'verify': 'maybe'}"),
	    "policies.verify: expected one of \"audit\", \"strict\", "
	    "\"off\"");
	ERR(WITH("'policies': {'switchover_timeout_ms': 0}"),
	    "policies.switchover_timeout_ms: expected a positive integer "
	    "(milliseconds, below 2^53)");
	ERR(WITH("'policies': {'handshake_timeout_ms': 0}"),
	    "policies.handshake_timeout_ms: expected a positive integer "
	    "(milliseconds, below 2^53)");
	ERR(WITH("'policies': {'idle_timeout_ms': 'long'}"),
	    "policies.idle_timeout_ms: expected a positive integer "
	    "(milliseconds, below 2^53)");
	ERR(WITH("'policies': {'timeout_ms': -1}"),
	    "policies.timeout_ms: expected a non-negative integer "
	    "(milliseconds, below 2^53)");
	ERR(WITH("'policies': {'timeout_ms': 9007199254740992}"),
	    "policies.timeout_ms: expected a non-negative integer "
	    "(milliseconds, below 2^53)");
	ERR(WITH("'policies': {'timeout_strategy': 'abort'}"),
	    "policies.timeout_strategy: expected one of \"cancel\", "
	    "\"force\"");
	ERR(WITH("'policies': {'tracking': true}"),
	    "policies.tracking: expected one of \"mixed\", "
	    "\"all-or-nothing\"");
}

static void test_run_report(void)
{
	vmig_config *cfg;

	cfg = OK_BASE(WITH("'run': {'iterations': 100000}, "
			   "'report': 'out/r.json'"), "/srv");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->run.iterations, 100000);
	CU_ASSERT_STRING_EQUAL(cfg->report, "/srv/out/r.json");
	vmig_config_free(cfg);
	cfg = OK_BASE(WITH("'run': {}, 'report': '/tmp/r.json'"), "/srv");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->run.iterations, 5);
	CU_ASSERT_STRING_EQUAL(cfg->report, "/tmp/r.json");
	vmig_config_free(cfg);

	ERR(WITH("'run': {'iterations': 0}"),
	    "run.iterations: expected an integer from 1 to 100000");
	ERR(WITH("'run': {'iteration': 3}"), "run: unknown key \"iteration\"");
	cfg = OK(WITH("'run': {'mode': 'track'}"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_TRUE(cfg->run.track_only);
	vmig_config_free(cfg);
	cfg = OK(WITH("'run': {'mode': 'migrate'}"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_FALSE(cfg->run.track_only);
	vmig_config_free(cfg);
	ERR(WITH("'run': {'mode': 'copy'}"),
	    "run.mode: expected one of \"migrate\", \"track\"");
	ERR(WITH("'run': 3"), "run: expected an object");
	ERR(WITH("'report': ''"), "report: expected a non-empty string");
	ERR(WITH("'report': ['a']"), "report: expected a non-empty string");
}

/* ------------------------------------------------------------------ */
/* Memory                                                              */

#define REG(r) "{'memory': [" r "]}"

static void test_memory(void)
{
	vmig_config *cfg;

	cfg = OK(REG("{'gpa': 0, 'size': 1073741824}, "
		     "{'name': 'high', 'gpa': '0x100000000', 'size': '2GiB', "
		     "'fill': 'random', 'backing': 'memfd'}, "
		     "{'gpa': '8G', 'size': '512M', 'fill': 'zero', "
		     "'backing': 'hugetlbfs'}, "
		     "{'gpa': '17179869184', 'size': '4KiB'}, "
		     "{'gpa': '0X2000000000', 'size': '0x3000'}, "
		     "{'gpa': '0x3000000000', 'size': '1T'}, "
		     "{'gpa': '0xfffffffffffff000', 'size': '4K'}, "
		     "{'gpa': 9007199254736896, 'size': '1MiB'}, "
		     "{'gpa': '0x20000000000', 'size': '1TiB'}"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL_FATAL(cfg->nr_regions, 9);
	CU_ASSERT_STRING_EQUAL(cfg->regions[0].name, "ram0");
	CU_ASSERT_EQUAL(cfg->regions[0].size, 1ull << 30);
	CU_ASSERT_EQUAL(cfg->regions[0].fill, VMIG_CFG_FILL_ZERO);
	CU_ASSERT_EQUAL(cfg->regions[1].fill, VMIG_CFG_FILL_RANDOM);
	CU_ASSERT_EQUAL(cfg->regions[2].fill, VMIG_CFG_FILL_ZERO);
	CU_ASSERT_EQUAL(cfg->regions[0].backing, VMIG_CFG_BACKING_ANONYMOUS);
	CU_ASSERT_EQUAL(cfg->regions[1].backing, VMIG_CFG_BACKING_MEMFD);
	CU_ASSERT_EQUAL(cfg->regions[2].backing, VMIG_CFG_BACKING_HUGETLBFS);
	CU_ASSERT_STRING_EQUAL(cfg->regions[1].name, "high");
	CU_ASSERT_EQUAL(cfg->regions[1].gpa, 1ull << 32);
	CU_ASSERT_EQUAL(cfg->regions[1].size, 2ull << 30);
	CU_ASSERT_STRING_EQUAL(cfg->regions[2].name, "ram2");
	CU_ASSERT_EQUAL(cfg->regions[2].gpa, 8ull << 30);
	CU_ASSERT_EQUAL(cfg->regions[2].size, 512ull << 20);
	CU_ASSERT_EQUAL(cfg->regions[3].gpa, 16ull << 30);
	CU_ASSERT_EQUAL(cfg->regions[3].size, 4096);
	CU_ASSERT_EQUAL(cfg->regions[4].gpa, 0x2000000000ull);
	CU_ASSERT_EQUAL(cfg->regions[4].size, 0x3000);
	CU_ASSERT_EQUAL(cfg->regions[5].size, 1ull << 40);
	/* The last page of the 64-bit space is a valid region. */
	CU_ASSERT_EQUAL(cfg->regions[6].gpa, 0xfffffffffffff000ull);
	CU_ASSERT_EQUAL(cfg->regions[7].gpa, 9007199254736896ull);
	CU_ASSERT_EQUAL(cfg->regions[8].size, 1ull << 40);
	vmig_config_free(cfg);

	ERR("{'memory': []}", "memory: expected at least one region");
	ERR("{'memory': {}}", "memory: expected an array");
	ERR(REG("[]"), "memory[0]: expected an object");
	ERR(REG("{'gpa': 0}"), "memory[0]: missing key \"size\"");
	ERR(REG("{'size': 4096}"), "memory[0]: missing key \"gpa\"");
	ERR(REG("{'gpa': 0, 'size': 4096, 'flags': 0}"),
	    "memory[0]: unknown key \"flags\"");
	ERR(REG("{'gpa': 0, 'size': 4096, 'name': ''}"),
	    "memory[0].name: expected a non-empty string");
	ERR(REG("{'gpa': 0, 'size': 4096, 'fill': 'ones'}"),
	    "memory[0].fill: expected one of \"zero\", \"random\"");
	ERR(REG("{'gpa': 0, 'size': 4096, 'fill': 1}"),
	    "memory[0].fill: expected one of \"zero\", \"random\"");
	ERR(REG("{'gpa': 0, 'size': 4096, 'backing': 'shm'}"),
	    "memory[0].backing: expected one of \"anonymous\", \"memfd\", "
	    "\"hugetlbfs\"");
	ERR(REG("{'gpa': 0, 'size': '3M', 'backing': 'hugetlbfs'}"),
	    "memory[0].size: 0x300000 is not a multiple of 2 MiB, as "
	    "\"backing\": \"hugetlbfs\" needs");
}

static void test_sizes_addresses(void)
{
	static const char *const bad_sizes[] = {
		"0", "-4096", "4096.5", "'12X'", "''", "'0x'", "true",
		"'4k'", "' 4096'", "'4096 '", "'-4096'", "'1.5G'", "'0'",
		"'0x0'", "null", "'0x1000K'", "'KiB'",
	};
	static const char *const bad_addrs[] = {
		"-1", "0.5", "'1 G'", "'0xg'", "false", "'-0x1000'", "[]",
	};
	char doc[200];
	size_t i;

	for (i = 0; i < sizeof(bad_sizes) / sizeof(*bad_sizes); i++) {
		snprintf(doc, sizeof(doc), REG("{'gpa': 0, 'size': %s}"),
			 bad_sizes[i]);
		ERR(doc, "memory[0].size: expected a size (a positive integer, "
		    "or a string like \"512M\")");
	}
	for (i = 0; i < sizeof(bad_addrs) / sizeof(*bad_addrs); i++) {
		snprintf(doc, sizeof(doc), REG("{'gpa': %s, 'size': 4096}"),
			 bad_addrs[i]);
		ERR(doc, "memory[0].gpa: expected an address (a non-negative "
		    "integer, or a string like \"0x100000000\")");
	}
	/* Numbers that a double cannot hold exactly must be strings. */
	ERR(REG("{'gpa': 9007199254740992, 'size': 4096}"),
	    "memory[0].gpa: numbers from 2^53 up are imprecise in JSON; write "
	    "it as a string");
	ERR(REG("{'gpa': 0, 'size': 18446744073709551616}"),
	    "memory[0].size: numbers from 2^53 up are imprecise in JSON; "
	    "write it as a string");
	ERR(REG("{'gpa': 0, 'size': 1e999}"),
	    "memory[0].size: numbers from 2^53 up are imprecise in JSON; "
	    "write it as a string");
	ERR(REG("{'gpa': '0x10000000000000000', 'size': 4096}"),
	    "memory[0].gpa: \"0x10000000000000000\" is larger than 2^64-1");
	ERR(REG("{'gpa': '18446744073709551616', 'size': 4096}"),
	    "memory[0].gpa: \"18446744073709551616\" is larger than 2^64-1");
	ERR(REG("{'gpa': 0, 'size': '16777216T'}"),
	    "memory[0].size: \"16777216T\" is larger than 2^64-1");
	ERR(REG("{'gpa': 0, 'size': 4097}"),
	    "memory[0].size: 0x1001 is not a multiple of 4 KiB");
	ERR(REG("{'gpa': '0x800', 'size': 4096}"),
	    "memory[0].gpa: 0x800 is not a multiple of 4 KiB");
	ERR(REG("{'gpa': '0xfffffffffffff000', 'size': 8192}"),
	    "memory[0]: the range 0xfffffffffffff000 + 0x2000 goes past the "
	    "end of the 64-bit space");
}

static void test_memory_overlaps(void)
{
	vmig_config *cfg;

	/* Adjacent regions do not overlap. */
	cfg = OK(REG("{'gpa': '1M', 'size': '1M'}, {'gpa': 0, 'size': '1M'}, "
		     "{'gpa': '2M', 'size': '1M'}"));
	CU_ASSERT_PTR_NOT_NULL(cfg);
	vmig_config_free(cfg);

	ERR(REG("{'gpa': 0, 'size': '2M'}, {'gpa': '1M', 'size': '2M'}"),
	    "memory[1]: 0x100000-0x2fffff overlaps memory[0] 0x0-0x1fffff");
	ERR(REG("{'gpa': '1M', 'size': '2M'}, {'gpa': 0, 'size': '2M'}"),
	    "memory[1]: 0x0-0x1fffff overlaps memory[0] 0x100000-0x2fffff");
	/* A region inside a big one, after a region in between. */
	ERR(REG("{'gpa': 0, 'size': '1G'}, {'gpa': '2G', 'size': '4K'}, "
		"{'gpa': '512M', 'size': '4K'}"),
	    "memory[2]: 0x20000000-0x20000fff overlaps memory[0] "
	    "0x0-0x3fffffff");
	ERR(REG("{'gpa': 0, 'size': 4096}, {'gpa': 0, 'size': 4096}"),
	    "memory[1]: 0x0-0xfff overlaps memory[0] 0x0-0xfff");
	ERR(REG("{'name': 'lo', 'gpa': 0, 'size': 4096}, "
		"{'name': 'hi', 'gpa': 4096, 'size': 4096}, "
		"{'name': 'lo', 'gpa': 8192, 'size': 4096}"),
	    "memory[2].name: \"lo\" is already used by memory[0]");
	/* A default name counts too. */
	ERR(REG("{'gpa': 0, 'size': 4096}, "
		"{'name': 'ram0', 'gpa': 4096, 'size': 4096}"),
	    "memory[1].name: \"ram0\" is already used by memory[0]");
}

/* ------------------------------------------------------------------ */
/* Devices                                                             */

static void test_devices(void)
{
	const struct vmig_cfg_device *d;
	vmig_config *cfg;

	cfg = OK(WITH("'devices': [" NIC0 ", "
		      "{'name': 'nic1', 'kind': 'vfio-pci', "
		      "'address': '0000:3b:00.1', 'iommu': 'type1', "
		      "'group': 0, 'container': 'c2'}, " MDEV0 ", "
		      "{'name': 'fd0', 'kind': 'vfio-pci', 'iommu': 'iommufd', "
		      "'cdev': '/dev/vfio/devices/vfio0', 'ioas': 'main', "
		      "'pasids': [{'pasid': 1, 'ioas': 'sva'}, "
		      "{'pasid': 1048575, 'ioas': 'main'}]}, "
		      "{'name': 'fd1', 'kind': 'mdev', 'iommu': 'iommufd', "
		      "'cdev': 'vfio1', 'pasids': []}]"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL_FATAL(cfg->nr_devices, 5);
	d = &cfg->devices[0];
	CU_ASSERT_STRING_EQUAL(d->name, "nic0");
	CU_ASSERT_EQUAL(d->kind, VMIG_DEVICE_VFIO_PCI);
	CU_ASSERT_STRING_EQUAL(d->address, "nic0");
	CU_ASSERT_EQUAL(d->iommu, VMIG_CFG_IOMMU_TYPE1);
	CU_ASSERT_EQUAL(d->group, 7);
	CU_ASSERT_STRING_EQUAL(d->container, "default");
	CU_ASSERT_PTR_NULL(d->cdev);
	CU_ASSERT_PTR_NULL(d->ioas);
	CU_ASSERT_EQUAL(d->nr_pasids, 0);
	d = &cfg->devices[1];
	CU_ASSERT_STRING_EQUAL(d->address, "0000:3b:00.1");
	CU_ASSERT_EQUAL(d->group, 0);
	CU_ASSERT_STRING_EQUAL(d->container, "c2");
	d = &cfg->devices[2];
	CU_ASSERT_EQUAL(d->kind, VMIG_DEVICE_MDEV);
	CU_ASSERT_EQUAL(d->iommu, VMIG_CFG_IOMMU_TYPE1);
	d = &cfg->devices[3];
	CU_ASSERT_EQUAL(d->iommu, VMIG_CFG_IOMMU_IOMMUFD);
	CU_ASSERT_EQUAL(d->group, -1);
	CU_ASSERT_PTR_NULL(d->container);
	CU_ASSERT_STRING_EQUAL(d->cdev, "/dev/vfio/devices/vfio0");
	CU_ASSERT_STRING_EQUAL(d->ioas, "main");
	CU_ASSERT_EQUAL_FATAL(d->nr_pasids, 2);
	CU_ASSERT_EQUAL(d->pasids[0].pasid, 1);
	CU_ASSERT_STRING_EQUAL(d->pasids[0].ioas, "sva");
	CU_ASSERT_EQUAL(d->pasids[1].pasid, 0xfffff);
	CU_ASSERT_STRING_EQUAL(d->pasids[1].ioas, "main");
	d = &cfg->devices[4];
	CU_ASSERT_EQUAL(d->kind, VMIG_DEVICE_MDEV);
	CU_ASSERT_STRING_EQUAL(d->cdev, "vfio1");
	CU_ASSERT_STRING_EQUAL(d->ioas, "default");
	CU_ASSERT_PTR_NULL(d->pasids);
	vmig_config_free(cfg);

	cfg = OK(WITH("'devices': []"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->nr_devices, 0);
	CU_ASSERT_PTR_NULL(cfg->devices);
	vmig_config_free(cfg);
}

static void test_device_errors(void)
{
	ERR(WITH("'devices': {}"), "devices: expected an array");
	ERR(WITH("'devices': [" NIC0 ", 'nic1']"),
	    "devices[1]: expected an object");
	ERR(WITH("'devices': [{'kind': 'mdev', 'group': 1}]"),
	    "devices[0]: missing key \"name\"");
	ERR(WITH("'devices': [" NIC0 ", " NIC1 ", {'name': 'x', 'group': 1}]"),
	    "devices[2]: missing key \"kind\"");
	ERR(WITH("'devices': [" NIC0 ", " NIC1 ", "
		 "{'name': 'x', 'kind': 'pci', 'group': 1}]"),
	    "devices[2].kind: expected one of \"vfio-pci\", \"mdev\"");
	ERR(WITH("'devices': [{'name': '', 'kind': 'mdev', 'group': 1}]"),
	    "devices[0].name: expected a non-empty string");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'mdev', 'group': 1, "
		 "'adress': 'x'}]"), "devices[0]: unknown key \"adress\"");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'mdev', 'group': 1, "
		 "'address': 7}]"),
	    "devices[0].address: expected a non-empty string");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'mdev', 'group': 1, "
		 "'iommu': 'type2'}]"),
	    "devices[0].iommu: expected one of \"type1\", \"iommufd\"");
	ERR(WITH("'devices': [" NIC0 ", " NIC1 ", "
		 "{'name': 'nic0', 'kind': 'mdev', 'group': 3}]"),
	    "devices[2].name: \"nic0\" is already used by devices[0]");
	ERR(WITH("'devices': [" NIC0 ", {'name': 'nic0', 'kind': 'mdev', "
		 "'group': 3}]"),
	    "devices[1].name: \"nic0\" is already used by devices[0]");
	/* type1 keys. */
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci'}]"),
	    "devices[0]: missing key \"group\" (required for a type1 device)");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', 'group': -1}]"),
	    "devices[0].group: expected an integer from 0 to 2147483647");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'group': 2147483648}]"),
	    "devices[0].group: expected an integer from 0 to 2147483647");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'group': '1'}]"),
	    "devices[0].group: expected an integer from 0 to 2147483647");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', 'group': 1, "
		 "'container': ''}]"),
	    "devices[0].container: expected a non-empty string");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', 'group': 1, "
		 "'cdev': '/dev/vfio/devices/vfio0'}]"),
	    "devices[0].cdev: only valid with \"iommu\": \"iommufd\"");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', 'group': 1, "
		 "'ioas': 'x'}]"),
	    "devices[0].ioas: only valid with \"iommu\": \"iommufd\"");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', 'group': 1, "
		 "'pasids': []}]"),
	    "devices[0].pasids: only valid with \"iommu\": \"iommufd\"");
	/* iommufd keys. */
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd'}]"),
	    "devices[0]: missing key \"cdev\" (required for an iommufd "
	    "device)");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd', 'cdev': 'c', 'group': 1}]"),
	    "devices[0].group: only valid with \"iommu\": \"type1\"");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd', 'cdev': 'c', 'container': 'x'}]"),
	    "devices[0].container: only valid with \"iommu\": \"type1\"");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd', 'cdev': ''}]"),
	    "devices[0].cdev: expected a non-empty string");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd', 'cdev': 'c', 'pasids': {}}]"),
	    "devices[0].pasids: expected an array");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd', 'cdev': 'c', "
		 "'pasids': [{'pasid': 0, 'ioas': 'x'}]}]"),
	    "devices[0].pasids[0].pasid: expected an integer from 1 to "
	    "1048575 (0xfffff)");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd', 'cdev': 'c', "
		 "'pasids': [{'pasid': 1048576, 'ioas': 'x'}]}]"),
	    "devices[0].pasids[0].pasid: expected an integer from 1 to "
	    "1048575 (0xfffff)");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd', 'cdev': 'c', "
		 "'pasids': [{'pasid': 3}]}]"),
	    "devices[0].pasids[0]: missing key \"ioas\"");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd', 'cdev': 'c', "
		 "'pasids': [{'ioas': 'x'}]}]"),
	    "devices[0].pasids[0]: missing key \"pasid\"");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd', 'cdev': 'c', "
		 "'pasids': [{'pasid': 3, 'ioas': 'x', 'hwpt': 1}]}]"),
	    "devices[0].pasids[0]: unknown key \"hwpt\"");
	ERR(WITH("'devices': [" NIC0 ", {'name': 'a', 'kind': 'vfio-pci', "
		 "'iommu': 'iommufd', 'cdev': 'c', "
		 "'pasids': [{'pasid': 3, 'ioas': 'x'}, "
		 "{'pasid': 4, 'ioas': 'x'}, {'pasid': 3, 'ioas': 'y'}]}]"),
	    "devices[1].pasids[2].pasid: 3 is already used by "
	    "devices[1].pasids[0]");
}

static void test_device_groups(void)
{
	vmig_config *cfg;

	/* One group in one container: fine, whatever the label. */
	cfg = OK(WITH("'devices': ["
		      "{'name': 'a', 'kind': 'vfio-pci', 'group': 4, "
		      "'container': 'c'}, "
		      "{'name': 'b', 'kind': 'vfio-pci', 'group': 4, "
		      "'container': 'c'}, "
		      "{'name': 'c', 'kind': 'vfio-pci', 'group': 5}]"));
	CU_ASSERT_PTR_NOT_NULL(cfg);
	vmig_config_free(cfg);

	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', 'group': 4}, "
		 "{'name': 'b', 'kind': 'vfio-pci', 'group': 5}, "
		 "{'name': 'c', 'kind': 'vfio-pci', 'group': 4, "
		 "'container': 'other'}]"),
	    "devices[2].container: devices[0] is in the same group 4 but in "
	    "container \"default\"");
	ERR(WITH("'devices': [{'name': 'a', 'kind': 'vfio-pci', 'group': 9, "
		 "'container': 'x'}, "
		 "{'name': 'b', 'kind': 'vfio-pci', 'group': 4}, "
		 "{'name': 'c', 'kind': 'vfio-pci', 'group': 4, "
		 "'container': 'y'}, "
		 "{'name': 'd', 'kind': 'vfio-pci', 'group': 9}]"),
	    "devices[2].container: devices[1] is in the same group 4 but in "
	    "container \"default\"");
}

/* ------------------------------------------------------------------ */
/* DMA mappings                                                        */

#define SPACES "'devices': [" NIC0 ", {'name': 'n2', 'kind': 'vfio-pci', " \
	       "'group': 2, 'container': 'c2'}, " \
	       "{'name': 'fd0', 'kind': 'vfio-pci', 'iommu': 'iommufd', " \
	       "'cdev': 'c0', 'ioas': 'io1'}, " \
	       "{'name': 'fd1', 'kind': 'vfio-pci', 'iommu': 'iommufd', " \
	       "'cdev': 'c1', 'ioas': 'io2', " \
	       "'pasids': [{'pasid': 5, 'ioas': 'sva'}]}]"
#define MAPS(m) "{'memory': [{'gpa': 0, 'size': '1G'}, " \
		"{'gpa': '4G', 'size': '1G'}], " SPACES ", " \
		"'dma_mappings': " m "}"

static void test_mappings(void)
{
	const struct vmig_cfg_mapping *m;
	vmig_config *cfg;

	cfg = OK(MAPS("'identity'"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_FALSE(cfg->mappings_given);
	CU_ASSERT_PTR_NULL(cfg->mappings);
	CU_ASSERT_EQUAL(cfg->nr_mappings, 0);
	vmig_config_free(cfg);

	cfg = OK(MAPS("[]"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_TRUE(cfg->mappings_given);
	CU_ASSERT_EQUAL(cfg->nr_mappings, 0);
	vmig_config_free(cfg);

	cfg = OK(MAPS("[{'space': 'default', 'iova': 0, 'gpa': 0, "
		      "'size': '1G'}, "
		      "{'space': 'default', 'iova': '1G', 'gpa': '4G', "
		      "'size': '1G', 'write': false}, "
		      "{'space': 'c2', 'iova': 0, 'gpa': '0x1000', "
		      "'size': '4K', 'write': true}, "
		      "{'space': 'sva', 'iova': '0xffffffffffe00000', "
		      "'gpa': '4G', 'size': '2M'}, "
		      "{'space': 'io2', 'iova': 0, 'gpa': '0x3ffff000', "
		      "'size': 4096}]"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_TRUE(cfg->mappings_given);
	CU_ASSERT_EQUAL_FATAL(cfg->nr_mappings, 5);
	m = &cfg->mappings[0];
	CU_ASSERT_STRING_EQUAL(m->space, "default");
	CU_ASSERT_EQUAL(m->iova, 0);
	CU_ASSERT_EQUAL(m->gpa, 0);
	CU_ASSERT_EQUAL(m->size, 1ull << 30);
	CU_ASSERT_TRUE(m->write);
	m = &cfg->mappings[1];
	CU_ASSERT_EQUAL(m->iova, 1ull << 30);
	CU_ASSERT_EQUAL(m->gpa, 4ull << 30);
	CU_ASSERT_FALSE(m->write);
	CU_ASSERT_TRUE(cfg->mappings[2].write);
	CU_ASSERT_STRING_EQUAL(cfg->mappings[3].space, "sva");
	CU_ASSERT_EQUAL(cfg->mappings[3].iova, 0xffffffffffe00000ull);
	CU_ASSERT_STRING_EQUAL(cfg->mappings[4].space, "io2");
	vmig_config_free(cfg);
}

static void test_mapping_errors(void)
{
	ERR(MAPS("'none'"),
	    "dma_mappings: expected \"identity\" or an array");
	ERR(MAPS("{}"), "dma_mappings: expected \"identity\" or an array");
	ERR(MAPS("[{'iova': 0, 'gpa': 0, 'size': 4096}]"),
	    "dma_mappings[0]: missing key \"space\"");
	ERR(MAPS("[{'space': 'c2', 'gpa': 0, 'size': 4096}]"),
	    "dma_mappings[0]: missing key \"iova\"");
	ERR(MAPS("[{'space': 'c2', 'iova': 0, 'size': 4096}]"),
	    "dma_mappings[0]: missing key \"gpa\"");
	ERR(MAPS("[{'space': 'c2', 'iova': 0, 'gpa': 0}]"),
	    "dma_mappings[0]: missing key \"size\"");
	ERR(MAPS("[{'space': 'c2', 'iova': 0, 'gpa': 0, 'size': 4096, "
		 "'writable': true}]"),
	    "dma_mappings[0]: unknown key \"writable\"");
	ERR(MAPS("[{'space': 'c2', 'iova': 0, 'gpa': 0, 'size': 4096, "
		 "'write': 1}]"),
	    "dma_mappings[0].write: expected true or false");
	ERR(MAPS("[{'space': 'c3', 'iova': 0, 'gpa': 0, 'size': 4096}]"),
	    "dma_mappings[0].space: no device uses a container or an IOAS "
	    "named \"c3\"");
	ERR(MAPS("[{'space': 'default', 'iova': 0, 'gpa': 0, 'size': 4096},"
		 "{'space': 'c2', 'iova': 0, 'gpa': 0, 'size': 4096},"
		 "{'space': '', 'iova': 0, 'gpa': 0, 'size': 4096}]"),
	    "dma_mappings[2].space: expected a non-empty string");
	ERR(MAPS("[{'space': 'c2', 'iova': 1, 'gpa': 0, 'size': 4096}]"),
	    "dma_mappings[0].iova: 0x1 is not a multiple of 4 KiB");
	ERR(MAPS("[{'space': 'c2', 'iova': 0, 'gpa': 2048, 'size': 4096}]"),
	    "dma_mappings[0].gpa: 0x800 is not a multiple of 4 KiB");
	ERR(MAPS("[{'space': 'c2', 'iova': 0, 'gpa': 0, 'size': 0}]"),
	    "dma_mappings[0].size: expected a size (a positive integer, or a "
	    "string like \"512M\")");
	ERR(MAPS("[{'space': 'c2', 'iova': 'x', 'gpa': 0, 'size': 4096}]"),
	    "dma_mappings[0].iova: expected an address (a non-negative "
	    "integer, or a string like \"0x100000000\")");
	/* The GPA range must lie inside one region, not across two. */
	ERR(MAPS("[{'space': 'c2', 'iova': 0, 'gpa': '0x3ffff000', "
		 "'size': 8192}]"),
	    "dma_mappings[0]: gpa 0x3ffff000-0x40000fff is not inside one "
	    "memory region");
	ERR(MAPS("[{'space': 'c2', 'iova': 0, 'gpa': '2G', 'size': 4096}]"),
	    "dma_mappings[0]: gpa 0x80000000-0x80000fff is not inside one "
	    "memory region");
	ERR(MAPS("[{'space': 'c2', 'iova': '0xfffffffffffff000', 'gpa': 0, "
		 "'size': 8192}]"),
	    "dma_mappings[0]: the range 0xfffffffffffff000 + 0x2000 goes past "
	    "the end of the 64-bit space");
	/* Overlaps count within one space only. */
	ERR(MAPS("[{'space': 'c2', 'iova': 0, 'gpa': 0, 'size': '1M'}, "
		 "{'space': 'default', 'iova': '512K', 'gpa': 0, "
		 "'size': '1M'}, "
		 "{'space': 'c2', 'iova': '1M', 'gpa': 0, 'size': '1M'}, "
		 "{'space': 'c2', 'iova': '0x1ff000', 'gpa': 0, "
		 "'size': '8K'}]"),
	    "dma_mappings[3]: iova 0x1ff000-0x200fff overlaps "
	    "dma_mappings[2] 0x100000-0x1fffff in space \"c2\"");
}

static void test_mapping_ambiguous(void)
{
	/* "default" is both the default container and the default IOAS. */
	ERR("{" MEM ", 'devices': [" NIC0 ", " FD0 "], 'dma_mappings': "
	    "[{'space': 'default', 'iova': 0, 'gpa': 0, 'size': 4096}]}",
	    "dma_mappings[0].space: \"default\" names both a type1 container "
	    "and an iommufd IOAS");
	ERR("{" MEM ", 'dma_mappings': "
	    "[{'space': 'default', 'iova': 0, 'gpa': 0, 'size': 4096}]}",
	    "dma_mappings[0].space: no device uses a container or an IOAS "
	    "named \"default\"");
}

/* ------------------------------------------------------------------ */
/* Kernel                                                              */

#define SIMDEVS "'devices': [" NIC0 ", " MDEV0 ", " FD0 "]"
#define SIM(k) "{" MEM ", " SIMDEVS ", 'kernel': {'type': 'simulated', " k "}}"
#define SIM3 "{'name': 'nic0'}, {'name': 'm0'}, {'name': 'fd0'}"

static void test_kernel(void)
{
	const struct vmig_cfg_sim_device *sd;
	vmig_config *cfg;

	cfg = OK(WITH("'kernel': 'linux'"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->kernel.type, VMIG_KERNEL_LINUX);
	CU_ASSERT_EQUAL(cfg->kernel.type1_pgsize, 0);
	vmig_config_free(cfg);

	/* Defaults; the seed is the device's index in "devices" + 1. */
	cfg = OK(SIM("'devices': [{'name': 'fd0'}, {'name': 'nic0'}, "
		     "{'name': 'm0'}]"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->kernel.type, VMIG_KERNEL_SIMULATED);
	CU_ASSERT_EQUAL(cfg->kernel.type1_pgsize, 4096);
	CU_ASSERT_FALSE(cfg->kernel.iommufd_compat);
	CU_ASSERT_EQUAL(cfg->kernel.nr_faults, 0);
	CU_ASSERT_EQUAL_FATAL(cfg->kernel.nr_devices, 3);
	sd = &cfg->kernel.devices[0];
	CU_ASSERT_STRING_EQUAL(sd->name, "fd0");
	CU_ASSERT_FALSE(sd->pins_pages);
	CU_ASSERT_TRUE(sd->iommu_dirty_tracking);
	CU_ASSERT_EQUAL(sd->dma.pattern, KSIM_DMA_NONE);
	CU_ASSERT_EQUAL(sd->dma.writes_per_step, 64);
	CU_ASSERT_EQUAL(sd->dma.write_size, 4096);
	CU_ASSERT_EQUAL(sd->dma.seed, 3);
	CU_ASSERT_EQUAL(sd->pin_pages, 0);
	CU_ASSERT_EQUAL(cfg->kernel.devices[1].dma.seed, 1);
	CU_ASSERT_EQUAL(cfg->kernel.devices[2].dma.seed, 2);
	vmig_config_free(cfg);

	cfg = OK(SIM("'type1_page_size': '2M', 'iommufd_compat': true, "
		     "'devices': ["
		     "{'name': 'nic0', 'pins_pages': true, "
		     "'iommu_dirty_tracking': false, "
		     "'pin': {'iova': '1M', 'pages': 256}, "
		     "'dma': {'pattern': 'hotspot', 'writes_per_step': 0, "
		     "'write_size': 1048576, 'seed': '0xffffffffffffffff'}}, "
		     "{'name': 'm0', 'pin': {'iova': 0, 'pages': 1}, "
		     "'dma': {'pattern': 'random', 'seed': 0}}, "
		     "{'name': 'fd0', 'dma': {'pattern': 'sequential', "
		     "'writes_per_step': 1000000, 'write_size': 1}}]"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->kernel.type1_pgsize, 2u << 20);
	CU_ASSERT_TRUE(cfg->kernel.iommufd_compat);
	sd = &cfg->kernel.devices[0];
	CU_ASSERT_TRUE(sd->pins_pages);
	CU_ASSERT_FALSE(sd->iommu_dirty_tracking);
	CU_ASSERT_EQUAL(sd->pin_iova, 1u << 20);
	CU_ASSERT_EQUAL(sd->pin_pages, 256);
	CU_ASSERT_EQUAL(sd->dma.pattern, KSIM_DMA_HOTSPOT);
	CU_ASSERT_EQUAL(sd->dma.writes_per_step, 0);
	CU_ASSERT_EQUAL(sd->dma.write_size, 1048576);
	CU_ASSERT_EQUAL(sd->dma.seed, UINT64_MAX);
	sd = &cfg->kernel.devices[1];
	CU_ASSERT_EQUAL(sd->pin_iova, 0);
	CU_ASSERT_EQUAL(sd->pin_pages, 1);
	CU_ASSERT_EQUAL(sd->dma.pattern, KSIM_DMA_RANDOM);
	CU_ASSERT_EQUAL(sd->dma.writes_per_step, 64);
	CU_ASSERT_EQUAL(sd->dma.seed, 0);
	sd = &cfg->kernel.devices[2];
	CU_ASSERT_EQUAL(sd->dma.pattern, KSIM_DMA_SEQUENTIAL);
	CU_ASSERT_EQUAL(sd->dma.writes_per_step, 1000000);
	CU_ASSERT_EQUAL(sd->dma.write_size, 1);
	vmig_config_free(cfg);

	/* A simulated kernel with no devices at all. */
	cfg = OK(WITH("'kernel': {'type': 'simulated', 'devices': []}"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->kernel.type, VMIG_KERNEL_SIMULATED);
	CU_ASSERT_PTR_NULL(cfg->kernel.devices);
	vmig_config_free(cfg);
}

/* The VFIO device features of simulated devices. */
static void test_kernel_features(void)
{
	const struct ksim_feature_params *f;
	vmig_config *cfg;

	cfg = OK(SIM("'devices': [{'name': 'nic0', 'migration': true, "
		     "'dma_logging': 'pds'}, "
		     "{'name': 'm0', 'migration': {'p2p': true, "
		     "'pre_copy': true, 'state_size': '1M', 'state_seed': 7}, "
		     "'dma_logging': {'model': 'mlx5', 'max_ranges': 4, "
		     "'min_page_size': '8K', 'max_page_size': '2M'}}, "
		     "{'name': 'fd0', 'migration': false, "
		     "'dma_logging': false}]"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	f = &cfg->kernel.devices[0].feature;
	CU_ASSERT_TRUE(f->migration);
	CU_ASSERT_EQUAL(f->mig_flags, 0);
	CU_ASSERT_EQUAL(f->log, KSIM_LOG_PDS);
	CU_ASSERT_EQUAL(f->log_max_ranges, 0);
	f = &cfg->kernel.devices[1].feature;
	CU_ASSERT_TRUE(f->migration);
	CU_ASSERT_EQUAL(f->mig_flags, 2 | 4);
	CU_ASSERT_EQUAL(f->state_size, 1u << 20);
	CU_ASSERT_EQUAL(f->state_seed, 7);
	CU_ASSERT_EQUAL(f->log, KSIM_LOG_MLX5);
	CU_ASSERT_EQUAL(f->log_max_ranges, 4);
	CU_ASSERT_EQUAL(f->log_min_page_size, 8192);
	CU_ASSERT_EQUAL(f->log_max_page_size, 2u << 20);
	f = &cfg->kernel.devices[2].feature;
	CU_ASSERT_FALSE(f->migration);
	CU_ASSERT_EQUAL(f->log, KSIM_LOG_NONE);
	vmig_config_free(cfg);

	ERR(SIM("'devices': [{'name': 'nic0', 'migration': 1}]"),
	    "kernel.devices[0].migration: expected true, false or an object");
	ERR(SIM("'devices': [{'name': 'nic0', 'migration': {'p3p': true}}]"),
	    "kernel.devices[0].migration: unknown key \"p3p\"");
	ERR(SIM("'devices': [{'name': 'nic0', 'migration': "
		"{'state_size': '1G'}}]"),
	    "kernel.devices[0].migration.state_size: at most 64M");
	ERR(SIM("'devices': [{'name': 'nic0', 'dma_logging': 'mlx6'}]"),
	    "kernel.devices[0].dma_logging: expected false, one of \"mlx5\", "
	    "\"pds\", \"stub\", or an object");
	ERR(SIM("'devices': [{'name': 'nic0', 'dma_logging': {}}]"),
	    "kernel.devices[0].dma_logging: missing key \"model\"");
	ERR(SIM("'devices': [{'name': 'nic0', 'dma_logging': "
		"{'model': 'pds', 'max_ranges': 0}}]"),
	    "kernel.devices[0].dma_logging.max_ranges: expected an integer "
	    "from 1 to 65535");
	ERR(SIM("'devices': [{'name': 'nic0', 'dma_logging': "
		"{'model': 'mlx5', 'min_page_size': '6K'}}]"),
	    "kernel.devices[0].dma_logging.min_page_size: expected a power "
	    "of two of at least 4K");
	ERR(SIM("'devices': [{'name': 'nic0', 'dma_logging': "
		"{'model': 'mlx5', 'min_page_size': '8K', "
		"'max_page_size': '4K'}}]"),
	    "kernel.devices[0].dma_logging.max_page_size: expected a power "
	    "of two of at least min_page_size");
}

static void test_kernel_errors(void)
{
	ERR(WITH("'kernel': 'windows'"),
	    "kernel: expected \"linux\" or an object");
	ERR(WITH("'kernel': {'devices': []}"), "kernel: missing key \"type\"");
	ERR(WITH("'kernel': {'type': 'linux', 'devices': []}"),
	    "kernel.type: expected \"simulated\"");
	ERR(WITH("'kernel': {'type': 'simulated'}"),
	    "kernel: missing key \"devices\"");
	ERR(WITH("'kernel': {'type': 'simulated', 'devices': [], "
		 "'fault': []}"), "kernel: unknown key \"fault\"");
	ERR(SIM("'type1_page_size': 12288, 'devices': [" SIM3 "]"),
	    "kernel.type1_page_size: 0x3000 is not a power of two");
	ERR(SIM("'type1_page_size': 0, 'devices': [" SIM3 "]"),
	    "kernel.type1_page_size: expected a size (a positive integer, or "
	    "a string like \"512M\")");
	ERR(SIM("'iommufd_compat': 'yes', 'devices': [" SIM3 "]"),
	    "kernel.iommufd_compat: expected true or false");
	ERR(SIM("'devices': {}"), "kernel.devices: expected an array");
	/* Every device simulated, once, and nothing else. */
	ERR(SIM("'devices': [{'name': 'nic0'}, {'name': 'fd0'}]"),
	    "kernel.devices: devices[1] (\"m0\") has no simulated device");
	ERR(SIM("'devices': [" SIM3 ", {'name': 'm0'}]"),
	    "kernel.devices[3].name: \"m0\" is already used by "
	    "kernel.devices[1]");
	ERR(SIM("'devices': [" SIM3 ", {'name': 'nic9'}]"),
	    "kernel.devices[3].name: no device \"nic9\" in devices");
	ERR(SIM("'devices': [{'pins_pages': true}]"),
	    "kernel.devices[0]: missing key \"name\"");
	ERR(SIM("'devices': [{'name': 'nic0', 'pin_pages': true}]"),
	    "kernel.devices[0]: unknown key \"pin_pages\"");
	ERR(SIM("'devices': [{'name': 'm0', 'pins_pages': false}]"),
	    "kernel.devices[0].pins_pages: only valid for a vfio-pci device "
	    "(an mdev always pins)");
	ERR(SIM("'devices': [{'name': 'nic0', 'pins_pages': 1}]"),
	    "kernel.devices[0].pins_pages: expected true or false");
	ERR(SIM("'devices': [{'name': 'nic0', 'iommu_dirty_tracking': 0}]"),
	    "kernel.devices[0].iommu_dirty_tracking: expected true or false");
	/* Pinning. */
	ERR(SIM("'devices': [{'name': 'nic0', "
		"'pin': {'iova': 0, 'pages': 1}}]"),
	    "kernel.devices[0].pin: only an mdev, or a vfio-pci device with "
	    "\"pins_pages\": true, pins pages");
	ERR(SIM("'devices': [{'name': 'nic0', 'pins_pages': false, "
		"'pin': {'iova': 0, 'pages': 1}}]"),
	    "kernel.devices[0].pin: only an mdev, or a vfio-pci device with "
	    "\"pins_pages\": true, pins pages");
	ERR(SIM("'devices': [{'name': 'm0', 'pin': {'iova': 0}}]"),
	    "kernel.devices[0].pin: missing key \"pages\"");
	ERR(SIM("'devices': [{'name': 'm0', 'pin': {'pages': 1}}]"),
	    "kernel.devices[0].pin: missing key \"iova\"");
	ERR(SIM("'devices': [{'name': 'm0', 'pin': {'iova': 0, 'pages': 0}}]"),
	    "kernel.devices[0].pin.pages: expected a positive integer");
	ERR(SIM("'devices': [{'name': 'm0', "
		"'pin': {'iova': 100, 'pages': 1}}]"),
	    "kernel.devices[0].pin.iova: 0x64 is not a multiple of 4 KiB");
	ERR(SIM("'devices': [{'name': 'm0', "
		"'pin': {'iova': '1G', 'pages': 1}}]"),
	    "kernel.devices[0].pin: 0x40000000-0x40000fff is not all mapped "
	    "in the device's address space");
	ERR(SIM("'devices': [{'name': 'm0', "
		"'pin': {'iova': '0xfffffffffffff000', 'pages': 2}}]"),
	    "kernel.devices[0].pin.pages: 0xfffffffffffff000 + 2 pages goes "
	    "past the end of the 64-bit space");
	ERR(SIM("'devices': [{'name': 'm0', "
		"'pin': {'iova': 0, 'pages': 1, 'write': true}}]"),
	    "kernel.devices[0].pin: unknown key \"write\"");
	/* DMA engine. */
	ERR(SIM("'devices': [{'name': 'm0', 'dma': {}}]"),
	    "kernel.devices[0].dma: missing key \"pattern\"");
	ERR(SIM("'devices': [{'name': 'm0', 'dma': 'random'}]"),
	    "kernel.devices[0].dma: expected an object");
	ERR(SIM("'devices': [{'name': 'm0', 'dma': {'pattern': 'burst'}}]"),
	    "kernel.devices[0].dma.pattern: expected one of \"none\", "
	    "\"random\", \"sequential\", \"hotspot\"");
	ERR(SIM("'devices': [{'name': 'm0', 'dma': {'pattern': 'none', "
		"'writes_per_step': 1000001}}]"),
	    "kernel.devices[0].dma.writes_per_step: expected an integer from "
	    "0 to 1000000");
	ERR(SIM("'devices': [{'name': 'm0', 'dma': {'pattern': 'none', "
		"'write_size': 0}}]"),
	    "kernel.devices[0].dma.write_size: expected an integer from 1 to "
	    "1048576");
	ERR(SIM("'devices': [{'name': 'm0', 'dma': {'pattern': 'none', "
		"'seed': -1}}]"),
	    "kernel.devices[0].dma.seed: expected a non-negative integer, or "
	    "a string like \"0x5eed\"");
	ERR(SIM("'devices': [{'name': 'm0', 'dma': {'pattern': 'none', "
		"'sead': 1}}]"),
	    "kernel.devices[0].dma: unknown key \"sead\"");
}

static void test_kernel_pin_mappings(void)
{
	vmig_config *cfg;

	/* A pinned range may span mappings that touch. */
	cfg = OK("{" MEM ", 'devices': [" MDEV0 "], "
		 "'dma_mappings': [{'space': 'default', 'iova': '1M', "
		 "'gpa': 0, 'size': '1M'}, {'space': 'default', 'iova': 0, "
		 "'gpa': '1M', 'size': '1M'}], "
		 "'kernel': {'type': 'simulated', 'devices': [{'name': 'm0', "
		 "'pin': {'iova': '0xff000', 'pages': 2}}]}}");
	CU_ASSERT_PTR_NOT_NULL(cfg);
	vmig_config_free(cfg);
	ERR("{" MEM ", 'devices': [" MDEV0 "], "
	    "'dma_mappings': [{'space': 'default', 'iova': '1M', "
	    "'gpa': 0, 'size': '1M'}, {'space': 'default', 'iova': 0, "
	    "'gpa': '1M', 'size': '512K'}], "
	    "'kernel': {'type': 'simulated', 'devices': [{'name': 'm0', "
	    "'pin': {'iova': '0xff000', 'pages': 2}}]}}",
	    "kernel.devices[0].pin: 0xff000-0x100fff is not all mapped in the "
	    "device's address space");
	/* Identity mapping: regions that touch are one IOVA range. */
	cfg = OK("{'memory': [{'gpa': '1M', 'size': '1M'}, "
		 "{'gpa': 0, 'size': '1M'}], 'devices': [" MDEV0 "], "
		 "'kernel': {'type': 'simulated', 'devices': [{'name': 'm0', "
		 "'pin': {'iova': '0xff000', 'pages': 257}}]}}");
	CU_ASSERT_PTR_NOT_NULL(cfg);
	vmig_config_free(cfg);
	ERR("{'memory': [{'gpa': '1M', 'size': '1M'}, "
	    "{'gpa': 0, 'size': '1M'}], 'devices': [" MDEV0 "], "
	    "'kernel': {'type': 'simulated', 'devices': [{'name': 'm0', "
	    "'pin': {'iova': '0xff000', 'pages': 258}}]}}",
	    "kernel.devices[0].pin: 0xff000-0x200fff is not all mapped in the "
	    "device's address space");
	/* An iommufd device pins in its IOAS, not in a container. */
	ERR("{" MEM ", 'devices': [" MDEV0 ", {'name': 'm1', 'kind': 'mdev', "
	    "'iommu': 'iommufd', 'cdev': 'c'}], "
	    "'dma_mappings': [{'space': 'default', 'iova': 0, 'gpa': 0, "
	    "'size': '1M'}], "
	    "'kernel': {'type': 'simulated', 'devices': [{'name': 'm0'}, "
	    "{'name': 'm1', 'pin': {'iova': 0, 'pages': 1}}]}}",
	    "dma_mappings[0].space: \"default\" names both a type1 container "
	    "and an iommufd IOAS");
	cfg = OK("{" MEM ", 'devices': [" MDEV0 ", {'name': 'm1', "
		 "'kind': 'mdev', 'iommu': 'iommufd', 'cdev': 'c', "
		 "'ioas': 'io'}], "
		 "'dma_mappings': [{'space': 'default', 'iova': 0, 'gpa': 0, "
		 "'size': '1M'}, {'space': 'io', 'iova': '1G', 'gpa': 0, "
		 "'size': '1M'}], "
		 "'kernel': {'type': 'simulated', 'devices': [{'name': 'm0'}, "
		 "{'name': 'm1', 'pin': {'iova': '1G', 'pages': 256}}]}}");
	CU_ASSERT_PTR_NOT_NULL(cfg);
	vmig_config_free(cfg);
	ERR("{" MEM ", 'devices': [" MDEV0 ", {'name': 'm1', "
	    "'kind': 'mdev', 'iommu': 'iommufd', 'cdev': 'c', "
	    "'ioas': 'io'}], "
	    "'dma_mappings': [{'space': 'default', 'iova': 0, 'gpa': 0, "
	    "'size': '1M'}, {'space': 'io', 'iova': '1G', 'gpa': 0, "
	    "'size': '1M'}], "
	    "'kernel': {'type': 'simulated', 'devices': [{'name': 'm0'}, "
	    "{'name': 'm1', 'pin': {'iova': 0, 'pages': 1}}]}}",
	    "kernel.devices[1].pin: 0x0-0xfff is not all mapped in the "
	    "device's address space");
}

#define FAULTS(f) SIM("'devices': [" SIM3 "], 'faults': " f)

static void test_faults(void)
{
	const struct vmig_cfg_fault *f;
	vmig_config *cfg;

	cfg = OK(FAULTS("[{'request': 'VFIO_IOMMU_DIRTY_PAGES', "
			"'errno': 'EIO'}, "
			"{'request': 'IOMMU_HWPT_GET_DIRTY_BITMAP', "
			"'errno': 'EOPNOTSUPP', 'times': -1}, "
			"{'request': 'VFIO_DEVICE_BIND_IOMMUFD', "
			"'errno': 12, 'times': 3}, "
			"{'request': 15217, 'errno': 'EAGAIN'}, "
			"{'request': '0x3b71', 'errno': 'ENOTTY'}, "
			"{'nth': 42, 'errno': 'EFAULT'}, "
			"{'request': 'VFIO_MIG_GET_PRECOPY_INFO', "
			"'errno': 'ENOTSUP'}]"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL_FATAL(cfg->kernel.nr_faults, 7);
	f = cfg->kernel.faults;
	CU_ASSERT_STRING_EQUAL(f[0].request_name, "VFIO_IOMMU_DIRTY_PAGES");
	CU_ASSERT_EQUAL(f[0].request, VFIO_IOMMU_DIRTY_PAGES);
	CU_ASSERT_EQUAL(f[0].err, EIO);
	CU_ASSERT_EQUAL(f[0].times, 1);
	CU_ASSERT_EQUAL(f[0].nth, 0);
	CU_ASSERT_EQUAL(f[1].request, VK_IOMMU_HWPT_GET_DIRTY_BITMAP);
	CU_ASSERT_EQUAL(f[1].request, 0x3b8c);
	CU_ASSERT_EQUAL(f[1].err, EOPNOTSUPP);
	CU_ASSERT_EQUAL(f[1].times, -1);
	CU_ASSERT_EQUAL(f[2].request, VK_VFIO_DEVICE_BIND_IOMMUFD);
	CU_ASSERT_EQUAL(f[2].err, ENOMEM);
	CU_ASSERT_EQUAL(f[2].times, 3);
	CU_ASSERT_STRING_EQUAL(f[3].request_name, "0x3b71");
	CU_ASSERT_EQUAL(f[3].request, 0x3b71);
	CU_ASSERT_EQUAL(f[3].err, EAGAIN);
	CU_ASSERT_EQUAL(f[4].request, 0x3b71);
	CU_ASSERT_EQUAL(f[4].err, ENOTTY);
	CU_ASSERT_PTR_NULL(f[5].request_name);
	CU_ASSERT_EQUAL(f[5].request, 0);
	CU_ASSERT_EQUAL(f[5].nth, 42);
	CU_ASSERT_EQUAL(f[5].times, 0);
	CU_ASSERT_EQUAL(f[5].err, EFAULT);
	CU_ASSERT_EQUAL(f[6].request, VK_VFIO_MIG_GET_PRECOPY_INFO);
	CU_ASSERT_EQUAL(f[6].err, EOPNOTSUPP);
	vmig_config_free(cfg);
}

/* Every request and errno name the documentation promises. */
static void test_fault_names(void)
{
	static const struct {
		const char *name;
		unsigned long nr;
	} reqs[] = {
		{ "VFIO_IOMMU_DIRTY_PAGES", VFIO_IOMMU_DIRTY_PAGES },
		{ "VFIO_IOMMU_MAP_DMA", VFIO_IOMMU_MAP_DMA },
		{ "VFIO_IOMMU_UNMAP_DMA", VFIO_IOMMU_UNMAP_DMA },
		{ "VFIO_IOMMU_GET_INFO", VFIO_IOMMU_GET_INFO },
		{ "VFIO_SET_IOMMU", VFIO_SET_IOMMU },
		{ "VFIO_CHECK_EXTENSION", VFIO_CHECK_EXTENSION },
		{ "VFIO_GET_API_VERSION", VFIO_GET_API_VERSION },
		{ "VFIO_GROUP_SET_CONTAINER", VFIO_GROUP_SET_CONTAINER },
		{ "VFIO_GROUP_UNSET_CONTAINER", VFIO_GROUP_UNSET_CONTAINER },
		{ "VFIO_GROUP_GET_STATUS", VFIO_GROUP_GET_STATUS },
		{ "VFIO_GROUP_GET_DEVICE_FD", VFIO_GROUP_GET_DEVICE_FD },
		{ "VFIO_DEVICE_FEATURE", VFIO_DEVICE_FEATURE },
		{ "VFIO_DEVICE_GET_INFO", VFIO_DEVICE_GET_INFO },
		{ "VFIO_DEVICE_RESET", VFIO_DEVICE_RESET },
		{ "VFIO_DEVICE_BIND_IOMMUFD", 0x3b76 },
		{ "VFIO_DEVICE_ATTACH_IOMMUFD_PT", 0x3b77 },
		{ "VFIO_DEVICE_DETACH_IOMMUFD_PT", 0x3b78 },
		{ "VFIO_MIG_GET_PRECOPY_INFO", 0x3b79 },
		{ "IOMMU_DESTROY", 0x3b80 },
		{ "IOMMU_IOAS_ALLOC", 0x3b81 },
		{ "IOMMU_IOAS_ALLOW_IOVAS", 0x3b82 },
		{ "IOMMU_IOAS_COPY", 0x3b83 },
		{ "IOMMU_IOAS_IOVA_RANGES", 0x3b84 },
		{ "IOMMU_IOAS_MAP", 0x3b85 },
		{ "IOMMU_IOAS_UNMAP", 0x3b86 },
		{ "IOMMU_OPTION", 0x3b87 },
		{ "IOMMU_VFIO_IOAS", 0x3b88 },
		{ "IOMMU_HWPT_ALLOC", 0x3b89 },
		{ "IOMMU_GET_HW_INFO", 0x3b8a },
		{ "IOMMU_HWPT_SET_DIRTY_TRACKING", 0x3b8b },
		{ "IOMMU_HWPT_GET_DIRTY_BITMAP", 0x3b8c },
		{ "IOMMU_HWPT_INVALIDATE", 0x3b8d },
		{ "IOMMU_FAULT_QUEUE_ALLOC", 0x3b8e },
		{ "IOMMU_TEST_CMD", 0x3ba0 },
	};
	static const struct {
		const char *name;
		int nr;
	} errs[] = {
		{ "EIO", EIO }, { "EINVAL", EINVAL }, { "ENOMEM", ENOMEM },
		{ "EFAULT", EFAULT }, { "ENOTTY", ENOTTY },
		{ "EOPNOTSUPP", EOPNOTSUPP }, { "ENOENT", ENOENT },
		{ "EBUSY", EBUSY }, { "EACCES", EACCES }, { "E2BIG", E2BIG },
		{ "EOVERFLOW", EOVERFLOW }, { "ENODEV", ENODEV },
		{ "EEXIST", EEXIST }, { "ENOTCONN", ENOTCONN },
		{ "EPERM", EPERM }, { "EAGAIN", EAGAIN },
	};
	char doc[600];
	size_t i;

	for (i = 0; i < sizeof(reqs) / sizeof(*reqs); i++) {
		vmig_config *cfg;

		snprintf(doc, sizeof(doc), FAULTS("[{'request': '%s', "
			 "'errno': '%s'}]"), reqs[i].name,
			 errs[i % (sizeof(errs) / sizeof(*errs))].name);
		cfg = OK(doc);
		CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
		CU_ASSERT_STRING_EQUAL(cfg->kernel.faults[0].request_name,
				       reqs[i].name);
		CU_ASSERT_EQUAL(cfg->kernel.faults[0].request, reqs[i].nr);
		CU_ASSERT_EQUAL(cfg->kernel.faults[0].err,
				errs[i % (sizeof(errs) / sizeof(*errs))].nr);
		vmig_config_free(cfg);
	}
}

static void test_fault_errors(void)
{
	ERR(FAULTS("{}"), "kernel.faults: expected an array");
	ERR(FAULTS("[3]"), "kernel.faults[0]: expected an object");
	ERR(FAULTS("[{'errno': 'EIO'}]"),
	    "kernel.faults[0]: missing key \"request\" (or \"nth\")");
	ERR(FAULTS("[{'request': 'VFIO_SET_IOMMU'}]"),
	    "kernel.faults[0]: missing key \"errno\"");
	ERR(FAULTS("[{'request': 'VFIO_SET_IOMMU', 'nth': 1, "
		   "'errno': 'EIO'}]"),
	    "kernel.faults[0]: give \"request\" or \"nth\", not both");
	ERR(FAULTS("[{'nth': 1, 'errno': 'EIO', 'times': 2}]"),
	    "kernel.faults[0].times: only valid with \"request\"");
	ERR(FAULTS("[{'request': 'VFIO_SET_IOMMU', 'errno': 'EIO', "
		   "'count': 2}]"),
	    "kernel.faults[0]: unknown key \"count\"");
	ERR(FAULTS("[{'request': 'VFIO_SET_IOMMUU', 'errno': 'EIO'}]"),
	    "kernel.faults[0].request: unknown request \"VFIO_SET_IOMMUU\"");
	ERR(FAULTS("[{'request': 'vfio_set_iommu', 'errno': 'EIO'}]"),
	    "kernel.faults[0].request: unknown request \"vfio_set_iommu\"");
	ERR(FAULTS("[{'request': 0, 'errno': 'EIO'}]"),
	    "kernel.faults[0].request: expected a request name like "
	    "\"VFIO_IOMMU_MAP_DMA\", or a number from 1 to 0xffffffff");
	ERR(FAULTS("[{'request': '0x100000000', 'errno': 'EIO'}]"),
	    "kernel.faults[0].request: expected a request name like "
	    "\"VFIO_IOMMU_MAP_DMA\", or a number from 1 to 0xffffffff");
	ERR(FAULTS("[{'request': true, 'errno': 'EIO'}]"),
	    "kernel.faults[0].request: expected a request name like "
	    "\"VFIO_IOMMU_MAP_DMA\", or a number from 1 to 0xffffffff");
	ERR(FAULTS("[{'request': 'VFIO_SET_IOMMU', 'errno': 'EIOO'}]"),
	    "kernel.faults[0].errno: unknown errno name \"EIOO\"");
	ERR(FAULTS("[{'request': 'VFIO_SET_IOMMU', 'errno': -5}]"),
	    "kernel.faults[0].errno: expected an errno name like \"EIO\", or "
	    "a number from 1 to 4095");
	ERR(FAULTS("[{'request': 'VFIO_SET_IOMMU', 'errno': 4096}]"),
	    "kernel.faults[0].errno: expected an errno name like \"EIO\", or "
	    "a number from 1 to 4095");
	ERR(FAULTS("[{'request': 'VFIO_SET_IOMMU', 'errno': 'EIO', "
		   "'times': 0}]"),
	    "kernel.faults[0].times: expected -1 (always) or a positive "
	    "integer");
	ERR(FAULTS("[{'request': 'VFIO_SET_IOMMU', 'errno': 'EIO', "
		   "'times': -2}]"),
	    "kernel.faults[0].times: expected -1 (always) or a positive "
	    "integer");
	ERR(FAULTS("[{'nth': 0, 'errno': 'EIO'}]"),
	    "kernel.faults[0].nth: expected a positive integer");
	ERR(FAULTS("[{'nth': 1.5, 'errno': 'EIO'}]"),
	    "kernel.faults[0].nth: expected a positive integer");
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

static void test_load(void)
{
	static const char text[] =
		"{\"memory\": [{\"gpa\": 0, \"size\": \"64M\"}],\n"
		" \"plugins\": {\"paths\": [\"plugins\"], "
		"\"load\": [\"./my.so\"]},\n"
		" \"report\": \"report.json\"}\n";
	char path[] = "/tmp/vmig-test-config-XXXXXX";
	char want[600];
	vmig_config *cfg = (vmig_config *)&cfg;
	int fd;

	CU_ASSERT_EQUAL(vmig_config_load("/nonexistent/vmig.json", &cfg, msg,
					 sizeof(msg)), -ENOENT);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT_STRING_EQUAL(msg, "/nonexistent/vmig.json: No such file or "
			       "directory");
	CU_ASSERT_EQUAL(vmig_config_load("/tmp", &cfg, msg, sizeof(msg)),
			-EISDIR);
	CU_ASSERT_STRING_EQUAL(msg, "/tmp: Is a directory");
	CU_ASSERT_EQUAL(vmig_config_load(NULL, &cfg, msg, sizeof(msg)),
			-EINVAL);

	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, text, sizeof(text) - 1) ==
			(ssize_t)(sizeof(text) - 1));
	close(fd);
	cfg = NULL;
	CU_ASSERT_EQUAL(vmig_config_load(path, &cfg, msg, sizeof(msg)), 0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->regions[0].size, 64u << 20);
	CU_ASSERT_STRING_EQUAL(cfg->base_dir, "/tmp");
	CU_ASSERT_STRING_EQUAL(cfg->plugin_paths[0], "/tmp/plugins");
	CU_ASSERT_STRING_EQUAL(cfg->plugins[0], "/tmp/./my.so");
	CU_ASSERT_STRING_EQUAL(cfg->report, "/tmp/report.json");
	vmig_config_free(cfg);

	/* Errors in a file name the file, then the place. */
	fd = open(path, O_WRONLY | O_TRUNC);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, "{\n  \"memory\": [,]\n}\n", 20) == 20);
	close(fd);
	cfg = (vmig_config *)&cfg;
	CU_ASSERT_EQUAL(vmig_config_load(path, &cfg, msg, sizeof(msg)),
			VMIG_ECONFIG);
	CU_ASSERT_PTR_NULL(cfg);
	snprintf(want, sizeof(want), "%s: line 2, column 14: invalid JSON "
		 "near \",]\"", path);
	CU_ASSERT_STRING_EQUAL(msg, want);

	fd = open(path, O_WRONLY | O_TRUNC);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, "{\"memory\": []}", 14) == 14);
	close(fd);
	CU_ASSERT_EQUAL(vmig_config_load(path, &cfg, msg, sizeof(msg)),
			VMIG_ECONFIG);
	snprintf(want, sizeof(want), "%s: memory: expected at least one "
		 "region", path);
	CU_ASSERT_STRING_EQUAL(msg, want);

	/* Something far too big to be a configuration is not read whole. */
	CU_ASSERT_FATAL(truncate(path, 17 << 20) == 0);
	CU_ASSERT_EQUAL(vmig_config_load(path, &cfg, msg, sizeof(msg)),
			-EFBIG);
	CU_ASSERT_PTR_NULL(cfg);
	snprintf(want, sizeof(want), "%s: larger than 16 MiB", path);
	CU_ASSERT_STRING_EQUAL(msg, want);
	/* A short buffer gets a terminated prefix of the message. */
	CU_ASSERT_EQUAL(vmig_config_load(path, &cfg, msg, 6), -EFBIG);
	CU_ASSERT_STRING_EQUAL(msg, "/tmp/");
	unlink(path);
}

/* A relative file name: its directory is ".". */
static void test_load_relative(void)
{
	char dir[] = "/tmp/vmig-test-dir-XXXXXX", cwd[4096];
	vmig_config *cfg = NULL;
	FILE *f;

	CU_ASSERT_FATAL(getcwd(cwd, sizeof(cwd)) != NULL);
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	CU_ASSERT_FATAL(chdir(dir) == 0);
	f = fopen("c.json", "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs("{\"memory\": [{\"gpa\": 0, \"size\": 4096}], "
	      "\"report\": \"r.json\"}", f);
	fclose(f);
	CU_ASSERT_EQUAL(vmig_config_load("c.json", &cfg, msg, sizeof(msg)), 0);
	CU_ASSERT_PTR_NOT_NULL(cfg);
	if (cfg) {
		CU_ASSERT_STRING_EQUAL(cfg->base_dir, ".");
		CU_ASSERT_STRING_EQUAL(cfg->report, "./r.json");
	}
	vmig_config_free(cfg);
	unlink("c.json");
	CU_ASSERT(chdir(cwd) == 0);
	rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* Allocation failures and fuzzing                                     */

/* Uses every part of the schema, so that every allocation happens. */
static const char full_doc[] =
	"{'role': 'source', 'transport': 'tcp:[::1]:4444',"
	" 'plugins': {'paths': ['plugins', '/usr/lib/vmig'],"
	"  'load': ['vfio-type1', './vendor.so']},"
	" 'preference': ['iommufd', 'device-dirty', 'vfio-type1'],"
	" 'policies': {'hotplug': 'degrade', 'downtime_limit_ms': 100,"
	"  'bandwidth_limit': '1G', 'max_iterations': 50,"
	"  'timeout_ms': 60000, 'timeout_strategy': 'force',"
	"  'tracking': 'all-or-nothing'},"
	" 'memory': [{'name': 'low', 'gpa': 0, 'size': '1G'},"
	"  {'gpa': '0x100000000', 'size': '1G'}],"
	" 'devices': ["
	"  {'name': 'nic0', 'kind': 'vfio-pci', 'address': '0000:3b:00.0',"
	"   'group': 12},"
	"  {'name': 'nic1', 'kind': 'vfio-pci', 'group': 12},"
	"  {'name': 'gpu0', 'kind': 'mdev', 'group': 13, 'container': 'c2'},"
	"  {'name': 'acc0', 'kind': 'vfio-pci', 'iommu': 'iommufd',"
	"   'cdev': '/dev/vfio/devices/vfio0', 'ioas': 'main',"
	"   'pasids': [{'pasid': 1, 'ioas': 'sva'}, {'pasid': 2,"
	"   'ioas': 'main'}]}],"
	" 'dma_mappings': ["
	"  {'space': 'default', 'iova': 0, 'gpa': 0, 'size': '1G'},"
	"  {'space': 'c2', 'iova': 0, 'gpa': 0, 'size': '1G'},"
	"  {'space': 'main', 'iova': 0, 'gpa': '4G', 'size': '1G',"
	"   'write': false},"
	"  {'space': 'sva', 'iova': '0x1000', 'gpa': '0x1000',"
	"   'size': '4K'}],"
	" 'report': 'report.json',"
	" 'run': {'iterations': 8},"
	" 'kernel': {'type': 'simulated', 'type1_page_size': 4096,"
	"  'iommufd_compat': false, 'devices': ["
	"   {'name': 'nic0', 'pins_pages': true,"
	"    'pin': {'iova': '0x10000', 'pages': 16},"
	"    'dma': {'pattern': 'random', 'writes_per_step': 32,"
	"     'write_size': 512, 'seed': 7}},"
	"   {'name': 'nic1', 'iommu_dirty_tracking': false},"
	"   {'name': 'gpu0', 'pin': {'iova': 0, 'pages': 4},"
	"    'dma': {'pattern': 'hotspot'}},"
	"   {'name': 'acc0', 'dma': {'pattern': 'sequential'}}],"
	"  'faults': [{'request': 'VFIO_IOMMU_DIRTY_PAGES', 'errno': 'EIO',"
	"   'times': 2}, {'nth': 100, 'errno': 'ENOMEM'},"
	"   {'request': 'IOMMU_HWPT_GET_DIRTY_BITMAP', 'errno': 5,"
	"   'times': -1}]}}";

static long fail_at = -1;  /* the allocation to fail, counting from 0 */
static bool fail_after;    /* and every one after it */
static long nr_allocs;
static long live_allocs;

static void *counting_malloc(size_t n)
{
	long i = nr_allocs++;
	void *p;

	if (fail_at >= 0 && (i == fail_at || (fail_after && i > fail_at)))
		return NULL;
	p = malloc(n);
	if (p)
		live_allocs++;
	return p;
}

static void counting_free(void *p)
{
	if (p)
		live_allocs--;
	free(p);
}

static void test_full_document(void)
{
	vmig_config *cfg = OK_BASE(full_doc, "/etc/vmig");

	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->nr_devices, 4);
	CU_ASSERT_EQUAL(cfg->nr_mappings, 4);
	CU_ASSERT_EQUAL(cfg->kernel.nr_devices, 4);
	CU_ASSERT_EQUAL(cfg->kernel.nr_faults, 3);
	CU_ASSERT_STRING_EQUAL(cfg->plugins[1], "/etc/vmig/./vendor.so");
	CU_ASSERT_STRING_EQUAL(cfg->report, "/etc/vmig/report.json");
	CU_ASSERT_EQUAL(cfg->run.iterations, 8);
	vmig_config_free(cfg);
}

static void test_alloc_failures(void)
{
	cJSON_Hooks hooks = { counting_malloc, counting_free };
	char *json = dq(full_doc);
	long total, i;
	int mode;

	cJSON_InitHooks(&hooks);
	nr_allocs = live_allocs = 0;
	fail_at = -1;
	{
		vmig_config *cfg = NULL;

		CU_ASSERT_EQUAL(parse_raw(json, strlen(json), "/b", &cfg), 0);
		vmig_config_free(cfg);
	}
	total = nr_allocs;
	CU_ASSERT(total > 50);
	CU_ASSERT_EQUAL(live_allocs, 0);
	for (mode = 0; mode < 2; mode++) {
		for (i = 0; i < total; i++) {
			vmig_config *cfg = (vmig_config *)&cfg;
			int rc;

			nr_allocs = live_allocs = 0;
			fail_at = i;
			fail_after = mode;
			rc = parse_raw(json, strlen(json), "/b", &cfg);
			if (rc != -ENOMEM || cfg || strcmp(msg,
							   "out of memory")) {
				fprintf(stderr, "\nallocation %ld (%s): rc %d, "
					"%s\n", i, mode ? "and after" : "only",
					rc, msg);
				CU_FAIL("allocation failure not reported");
			}
			vmig_config_free(rc ? NULL : cfg);
			CU_ASSERT_EQUAL(live_allocs, 0);
		}
	}
	/* Reading a file allocates too. */
	{
		char path[] = "/tmp/vmig-test-config-XXXXXX";
		int fd = mkstemp(path);
		vmig_config *cfg = NULL;

		CU_ASSERT_FATAL(fd >= 0);
		CU_ASSERT_FATAL(write(fd, json, strlen(json)) ==
				(ssize_t)strlen(json));
		close(fd);
		fail_at = -1;
		nr_allocs = 0;
		CU_ASSERT_EQUAL(vmig_config_load(path, &cfg, msg, sizeof(msg)),
				0);
		vmig_config_free(cfg);
		total = nr_allocs;
		for (i = 0; i < total; i++) {
			char want[600];

			cfg = (vmig_config *)&cfg;
			nr_allocs = live_allocs = 0;
			fail_at = i;
			fail_after = false;
			CU_ASSERT_EQUAL(vmig_config_load(path, &cfg, msg,
							 sizeof(msg)), -ENOMEM);
			CU_ASSERT_PTR_NULL(cfg);
			snprintf(want, sizeof(want), "%s: out of memory", path);
			CU_ASSERT_STRING_EQUAL(msg, want);
			CU_ASSERT_EQUAL(live_allocs, 0);
		}
		unlink(path);
	}
	fail_at = -1;
	cJSON_InitHooks(NULL);
	free(json);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

/* "path: what", with a path of key characters, or "line L, column C: ". */
static bool message_well_formed(const char *m)
{
	const char *colon = strstr(m, ": ");
	size_t line, col;
	int n = 0;
	const char *p;

	if (sscanf(m, "line %zu, column %zu: %n", &line, &col, &n) == 2 &&
	    n > 0 && m[n] && line > 0 && col > 0)
		return true;
	if (!colon || colon == m || !colon[2])
		return false;
	if (!strncmp(m, "(root): ", 8))
		return true;
	for (p = m; p < colon; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_.[]", *p))
			return false;
	return true;
}

static void test_fuzz(void)
{
	static const char *const tokens[] = {
		"\"", "{", "}", "[", "]", ",", ":", "0", "-1", "1e999",
		"\\u0000", "\\ud800", "\xff", "null", "\"x\"", "4096", "\"1G\"",
		"18446744073709551616", "\"0x\"", " ", "\n", "true",
	};
	char *base = dq(full_doc), *buf;
	size_t blen = strlen(base), cap = blen + 64, len;
	int iter, ok = 0, syntax = 0, semantic = 0;

	buf = malloc(cap);
	CU_ASSERT_FATAL(buf != NULL);
	for (iter = 0; iter < 5000; iter++) {
		vmig_config *cfg = (vmig_config *)&cfg;
		int k, nmut = 1 + (int)(rng() % 3), rc;

		memcpy(buf, base, blen);
		len = blen;
		for (k = 0; k < nmut; k++) {
			size_t at = len ? rng() % len : 0;
			const char *t;
			size_t tl;

			switch (rng() % 5) {
			case 0: /* flip a bit */
				if (len)
					buf[at] ^= (char)(1u << (rng() % 8));
				break;
			case 1: /* a random byte */
				if (len)
					buf[at] = (char)rng();
				break;
			case 2: /* delete a byte */
				if (len) {
					memmove(buf + at, buf + at + 1,
						len - at - 1);
					len--;
				}
				break;
			case 3: /* insert a token */
				t = tokens[rng() % (sizeof(tokens) /
						    sizeof(*tokens))];
				tl = strlen(t);
				if (len + tl > cap)
					break;
				memmove(buf + at + tl, buf + at, len - at);
				memcpy(buf + at, t, tl);
				len += tl;
				break;
			case 4: /* a digit, to make values wrong */
				if (len)
					buf[at] = (char)('0' + rng() % 10);
				break;
			}
		}
		rc = vmig_config_parse(buf, len, "/b", &cfg, msg, sizeof(msg));
		if (rc == 0) {
			CU_ASSERT_PTR_NOT_NULL(cfg);
			CU_ASSERT_EQUAL(msg[0], '\0');
			vmig_config_free(cfg);
			ok++;
			continue;
		}
		CU_ASSERT_EQUAL(rc, VMIG_ECONFIG);
		CU_ASSERT_PTR_NULL(cfg);
		if (!message_well_formed(msg)) {
			fprintf(stderr, "\nbad message: %s\n", msg);
			CU_FAIL("malformed message");
		}
		if (!strncmp(msg, "line ", 5))
			syntax++;
		else
			semantic++;
	}
	/* The mutations reach every layer, not just the syntax check. */
	CU_ASSERT(ok > 50);
	CU_ASSERT(syntax > 500);
	CU_ASSERT(semantic > 500);
	free(buf);
	free(base);
}

/*
 * Every ```json block of docs/config.md is a valid document, once given
 * a "memory" when it has none, so that the documentation cannot drift
 * from the parser.
 */
static void test_doc_examples(void)
{
	FILE *f = fopen(VMIG_SOURCE_DIR "/docs/config.md", "r");
	char *doc, *p, *end;
	int blocks = 0;
	long size;

	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_FATAL(fseek(f, 0, SEEK_END) == 0);
	size = ftell(f);
	CU_ASSERT_FATAL(size > 0);
	rewind(f);
	doc = calloc(1, (size_t)size + 1);
	CU_ASSERT_FATAL(doc != NULL);
	CU_ASSERT_FATAL(fread(doc, 1, (size_t)size, f) == (size_t)size);
	fclose(f);
	for (p = doc; (p = strstr(p, "```json\n")); p = end + 3) {
		vmig_config *cfg = NULL;
		cJSON *root;
		char *text;
		int rc;

		p += 8;
		end = strstr(p, "```");
		CU_ASSERT_FATAL(end != NULL);
		root = cJSON_ParseWithLength(p, (size_t)(end - p));
		CU_ASSERT_FATAL(cJSON_IsObject(root));
		if (!cJSON_GetObjectItemCaseSensitive(root, "memory"))
			cJSON_AddItemToObject(root, "memory", cJSON_Parse(
				"[{\"gpa\": 0, \"size\": 4096}]"));
		text = cJSON_PrintUnformatted(root);
		CU_ASSERT_FATAL(text != NULL);
		rc = parse_raw(text, strlen(text), "/etc/vmig", &cfg);
		if (rc) {
			fprintf(stderr, "\ndocs/config.md block %d: %s\n",
				blocks, msg);
			CU_FAIL("a documented example is refused");
		}
		vmig_config_free(cfg);
		cJSON_free(text);
		cJSON_Delete(root);
		blocks++;
	}
	/* The complete example, and one per top-level key. */
	CU_ASSERT(blocks >= 12);
	free(doc);
}

static CU_TestInfo syntax_tests[] = {
	{ "syntax errors", test_syntax_errors },
	{ "accepted syntax", test_syntax_accepted },
	{ "root", test_root },
	{ "many errors at once", test_many_errors },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo top_tests[] = {
	{ "defaults", test_defaults },
	{ "role", test_role },
	{ "transport", test_transport },
	{ "plugins", test_plugins },
	{ "preference", test_preference },
	{ "policies", test_policies },
	{ "run and report", test_run_report },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo memory_tests[] = {
	{ "regions", test_memory },
	{ "sizes and addresses", test_sizes_addresses },
	{ "overlaps and names", test_memory_overlaps },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo device_tests[] = {
	{ "devices", test_devices },
	{ "device errors", test_device_errors },
	{ "groups and containers", test_device_groups },
	{ "mappings", test_mappings },
	{ "mapping errors", test_mapping_errors },
	{ "ambiguous spaces", test_mapping_ambiguous },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo kernel_tests[] = {
	{ "kernel", test_kernel },
	{ "kernel: device features", test_kernel_features },
	{ "kernel errors", test_kernel_errors },
	{ "pins over mappings", test_kernel_pin_mappings },
	{ "faults", test_faults },
	{ "fault names", test_fault_names },
	{ "fault errors", test_fault_errors },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo robust_tests[] = {
	{ "load", test_load },
	{ "load relative", test_load_relative },
	{ "full document", test_full_document },
	{ "documentation examples", test_doc_examples },
	{ "allocation failures", test_alloc_failures },
	{ "fuzz", test_fuzz },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("syntax", syntax_tests),
	VMIG_SUITE("top-level", top_tests),
	VMIG_SUITE("memory", memory_tests),
	VMIG_SUITE("devices", device_tests),
	VMIG_SUITE("kernel", kernel_tests),
	VMIG_SUITE("files and robustness", robust_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
