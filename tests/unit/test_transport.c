/*
 * test_transport.c: migration addresses (core/transport/address.h), the
 * one parser the engine and the configuration share: each transport's
 * form, what a listener may say that a connection may not (port 0), and
 * the message of each refusal. Nothing is resolved or connected.
 */
#include <errno.h>
#include <string.h>

#include "core/transport/address.h"
#include "testutil.h"

static int parse(const char *address, bool listen, struct vmig_address *a,
		 char *err, size_t errlen)
{
	err[0] = '\0';
	return vmig_address_parse(address, listen, a, err, errlen);
}

static void test_unix(void)
{
	struct vmig_address a;
	char err[512], lng[200];

	CU_ASSERT_EQUAL(parse("unix:/run/vmig.sock", false, &a, err,
			      sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(vmig_address_scheme(&a), "unix");
	CU_ASSERT_STRING_EQUAL(a.path, "/run/vmig.sock");
	CU_ASSERT_EQUAL(parse("unix:", false, &a, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "unix:: expected \"unix:<path>\" or "
				    "\"tcp:<host>:<port>\"");
	memset(lng, 'x', sizeof(lng) - 1);
	memcpy(lng, "unix:/", 6);
	lng[sizeof(lng) - 1] = '\0';
	CU_ASSERT_EQUAL(parse(lng, true, &a, err, sizeof(err)),
			-ENAMETOOLONG);
	CU_ASSERT(strstr(err, "longer than a unix socket allows (107 "
			 "bytes)") != NULL);
}

static void test_tcp(void)
{
	struct vmig_address a;
	char err[256];

	CU_ASSERT_EQUAL(parse("tcp:10.0.0.1:4444", false, &a, err,
			      sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(vmig_address_scheme(&a), "tcp");
	CU_ASSERT_STRING_EQUAL(a.host, "10.0.0.1");
	CU_ASSERT_STRING_EQUAL(a.port, "4444");
	CU_ASSERT_EQUAL(parse("tcp:[fe80::1]:00080", false, &a, err,
			      sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(a.host, "fe80::1");
	CU_ASSERT_STRING_EQUAL(a.port, "80");
	CU_ASSERT_EQUAL(parse("tcp:host.example:0", true, &a, err,
			      sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(a.host, "host.example");
	CU_ASSERT_STRING_EQUAL(a.port, "0");
}

static void test_refused(void)
{
	static const struct {
		const char *address;
		bool listen;
		const char *err;
	} cases[] = {
		{ "tcp:host:0", false,
		  "tcp:host:0: expected a port from 1 to 65535" },
		{ "tcp:host:65536", true,
		  "tcp:host:65536: expected a port from 0 to 65535" },
		{ "tcp:host:12a", true,
		  "tcp:host:12a: expected a port from 0 to 65535" },
		{ "tcp:host:", true,
		  "tcp:host:: expected a port from 0 to 65535" },
		{ "tcp::80", false,
		  "tcp::80: expected \"unix:<path>\" or \"tcp:<host>:<port>\"" },
		{ "tcp:[::1:80", false,
		  "tcp:[::1:80: expected \"unix:<path>\" or "
		  "\"tcp:<host>:<port>\"" },
		{ "udp:host:80", false,
		  "udp:host:80: expected \"unix:<path>\" or "
		  "\"tcp:<host>:<port>\"" },
		{ "unix", false,
		  "unix: expected \"unix:<path>\" or \"tcp:<host>:<port>\"" },
	};
	struct vmig_address a;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CU_ASSERT_EQUAL(parse(cases[i].address, cases[i].listen, &a,
				      err, sizeof(err)), -EINVAL);
		CU_ASSERT_STRING_EQUAL(err, cases[i].err);
	}
	CU_ASSERT_EQUAL(parse(NULL, false, &a, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "(null): expected \"unix:<path>\" or "
				    "\"tcp:<host>:<port>\"");
}

static CU_TestInfo tests[] = {
	{ "unix addresses", test_unix },
	{ "tcp addresses", test_tcp },
	{ "refusals and their messages", test_refused },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE("addresses", tests))
