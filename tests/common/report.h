/*
 * report.h: reading vmig's JSON report in a CUnit test. Each accessor
 * asserts (fatally) that what it reads is there and of the right type, so
 * a test reads the report as plainly as it is written.
 */
#ifndef VMIG_TEST_REPORT_H
#define VMIG_TEST_REPORT_H

#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>

/* The number under key in o. */
static inline double json_num(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItem(o, key);

	if (!cJSON_IsNumber(v))
		fprintf(stderr, "\n  \"%s\" is not a number\n", key);
	CU_ASSERT_FATAL(cJSON_IsNumber(v));
	return v->valuedouble;
}

/* The string under key in o. */
static inline const char *json_str(cJSON *o, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));

	CU_ASSERT_FATAL(s != NULL);
	return s;
}

/* The entry of the array o[array] whose "name" is name. */
static inline cJSON *json_entry(cJSON *o, const char *array, const char *name)
{
	cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, array)) {
		const char *n =
			cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));

		if (n && !strcmp(n, name))
			return e;
	}
	CU_FAIL_FATAL("no such entry in the report");
	return NULL;
}

/* The report's device of this name. */
static inline cJSON *json_device(cJSON *root, const char *name)
{
	return json_entry(root, "devices", name);
}

#endif /* VMIG_TEST_REPORT_H */
