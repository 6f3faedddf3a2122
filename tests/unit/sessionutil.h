/*
 * sessionutil.h: what the unit tests of whole sessions do the same way:
 * a session that finds the build's plugins, the text it logs, and its
 * report parsed.
 * Include after testutil.h.
 */
#ifndef VMIG_SESSIONUTIL_H
#define VMIG_SESSIONUTIL_H

#include <stdlib.h>

#include <vmig/vmig.h>

#include "common/report.h"

/* What a session logged, its log_opaque, for the tests to read back. */
struct vmig_test_log {
	char text[32768];
};

/* The log callback of a session whose log_opaque is a vmig_test_log. */
static inline void vmig_test_session_log(void *opaque,
					 enum vmig_log_level level,
					 const char *msg)
{
	struct vmig_test_log *l = opaque;

	(void)level;
	vmig_test_log_append(l->text, sizeof(l->text), msg);
}

/* A new session with params p, the build's plugin directory added. */
static inline vmig_session *
vmig_test_session_new(const struct vmig_session_params *p)
{
	vmig_session *s = NULL;

	CU_ASSERT_FATAL(vmig_session_new(p, &s) == 0);
	CU_ASSERT_FATAL(vmig_plugin_add_path(s, VMIG_BUILD_PLUGIN_DIR) == 0);
	return s;
}

/* The session's report, parsed; the caller deletes it. */
static inline cJSON *json_session_report(vmig_session *s)
{
	int64_t len = vmig_report_json(s, NULL, 0);
	cJSON *root;
	char *buf;

	CU_ASSERT_FATAL(len > 0);
	buf = malloc((size_t)len + 1);
	CU_ASSERT_FATAL(buf != NULL);
	CU_ASSERT_FATAL(vmig_report_json(s, buf, (size_t)len + 1) == len);
	root = cJSON_Parse(buf);
	free(buf);
	CU_ASSERT_FATAL(root != NULL);
	return root;
}

#endif /* VMIG_SESSIONUTIL_H */
