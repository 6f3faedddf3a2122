/*
 * testutil.h: the CUnit runner every unit test shares.
 *
 * A test file defines its tests and suites with CUnit's CU_TestInfo and
 * CU_SuiteInfo tables (VMIG_SUITE for a suite without fixtures) and ends
 * with VMIG_TEST_MAIN(suites), or VMIG_TEST_MAIN_SUITE(suite) when it has
 * one suite. The program exits non-zero when any assertion failed, so
 * CTest sees the failure. Also what the tests' log callbacks share.
 */
#ifndef VMIG_TESTUTIL_H
#define VMIG_TESTUTIL_H

#include <CUnit/Basic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int vmig_test_run(CU_SuiteInfo *suites)
{
	unsigned int failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	if (CU_register_suites(suites) != CUE_SUCCESS) {
		fprintf(stderr, "cannot register suites: %s\n",
			CU_get_error_msg());
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	/*
	 * A suite whose init or cleanup failed ran none (or not all) of its
	 * tests: that is a failure too, never a quiet pass.
	 */
	failures = CU_get_number_of_failures() +
		   CU_get_number_of_tests_failed() +
		   CU_get_number_of_suites_failed();
	if (CU_get_number_of_tests_run() == 0)
		failures++; /* a test program that ran nothing is broken */
	CU_cleanup_registry();
	return failures ? 1 : 0;
}

/*
 * Appends one logged message, and a newline, to the text in log (size
 * bytes): what a test's log callback keeps for its assertions.
 */
static inline void vmig_test_log_append(char *log, size_t size, const char *msg)
{
	size_t n = strlen(log);

	snprintf(log + n, size - n, "%s\n", msg);
}

/*
 * A suite of the tests in a CU_TestInfo table, with no init, cleanup,
 * setup or teardown: an entry of the CU_SuiteInfo table.
 */
#define VMIG_SUITE(name, tests)                                                \
	{                                                                      \
		(name), NULL, NULL, NULL, NULL, (tests)                        \
	}

/* The same with an init and a cleanup (NULL: none) around the suite. */
#define VMIG_SUITE_INIT(name, init, cleanup, tests)                            \
	{                                                                      \
		(name), (init), (cleanup), NULL, NULL, (tests)                 \
	}

#define VMIG_TEST_MAIN(suites)                \
	int main(void)                        \
	{                                     \
		return vmig_test_run(suites); \
	}

/* The main of a test program of one suite (VMIG_SUITE...). */
#define VMIG_TEST_MAIN_SUITE(suite)                                            \
	static CU_SuiteInfo vmig_test_suites[] = { suite,                      \
						   CU_SUITE_INFO_NULL };       \
	VMIG_TEST_MAIN(vmig_test_suites)

/*
 * Whether needle is in hay (NULL: no); when not, says both on stderr, so
 * that a failed CU_ASSERT(has(...)) shows what the text was.
 */
static inline bool has(const char *hay, const char *needle)
{
	if (hay && strstr(hay, needle))
		return true;
	fprintf(stderr, "\n  \"%s\" not in \"%s\"\n", needle,
		hay ? hay : "(null)");
	return false;
}

#endif /* VMIG_TESTUTIL_H */
