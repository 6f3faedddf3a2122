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

#define FORMS                                                            \
	"\"unix:<path>\", \"tcp:<host>:<port>\", "                       \
	"\"tls:<host>:<port>?<options>\" or "                             \
	"\"tls-psk:<host>:<port>?<options>\""

static int parse(const char *address, bool listen, struct vmig_address *a,
		 char *err, size_t errlen)
{
	err[0] = '\0';
	return vmig_address_parse(address, listen, a, err, errlen);
}

/* address (to listen on, or not) is refused with -EINVAL and msg. */
static void refused(const char *address, bool listen, const char *msg)
{
	struct vmig_address a;
	char err[256];

	CU_ASSERT_EQUAL(parse(address, listen, &a, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, msg);
}

static void test_unix(void)
{
	struct vmig_address a;
	char err[512], lng[200];

	CU_ASSERT_EQUAL(parse("unix:/run/vmig.sock", false, &a, err,
			      sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(vmig_address_scheme(&a), "unix");
	CU_ASSERT_STRING_EQUAL(a.path, "/run/vmig.sock");
	refused("unix:", false, "unix:: expected " FORMS);
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

static void test_tls(void)
{
	struct vmig_address a;
	char err[256];

	CU_ASSERT_EQUAL(parse("tls:dst.example:4444?ca=/etc/vmig/ca.pem",
			      false, &a, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(vmig_address_scheme(&a), "tls");
	CU_ASSERT_STRING_EQUAL(a.host, "dst.example");
	CU_ASSERT_STRING_EQUAL(a.port, "4444");
	CU_ASSERT_STRING_EQUAL(a.options, "ca=/etc/vmig/ca.pem");
	CU_ASSERT_EQUAL(parse("tls:[::]:0?cert=c.pem&key=k.pem&ca=ca.pem&"
			      "name=src.example", true, &a, err,
			      sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(a.host, "::");
	CU_ASSERT_EQUAL(parse("tls-psk:10.0.0.2:4444?key=/etc/vmig/psk&"
			      "identity=rack7", false, &a, err,
			      sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(vmig_address_scheme(&a), "tls-psk");
	refused("tls:h:1", false,
		"tls:h:1: expected ca=<file> (the destination's CA)");
	refused("tls:h:1?ca=x", true,
		"tls:h:1?ca=x: expected cert=<file> and key=<file> (this "
		"side's certificate)");
	refused("tls:h:1?ca=x&cert=y", false,
		"tls:h:1?ca=x&cert=y: cert= and key= go together");
	refused("tls-psk:h:1?ca=x", false,
		"tls-psk:h:1?ca=x: unknown option \"ca\" (tls-psk takes key= "
		"and identity=)");
	refused("tls-psk:h:1?key", false,
		"tls-psk:h:1?key: option \"key\" is not key=value");
	refused("tls-psk:h:1", false,
		"tls-psk:h:1: expected key=<file of the pre-shared key>");
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
		  "tcp::80: expected " FORMS },
		{ "tcp:[::1:80", false,
		  "tcp:[::1:80: expected " FORMS },
		{ "udp:host:80", false,
		  "udp:host:80: expected " FORMS },
		{ "unix", false,
		  "unix: expected " FORMS },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		refused(cases[i].address, cases[i].listen, cases[i].err);
	refused(NULL, false, "(null): expected " FORMS);
}

static CU_TestInfo tests[] = {
	{ "unix addresses", test_unix },
	{ "tcp addresses", test_tcp },
	{ "tls and tls-psk addresses", test_tls },
	{ "refusals and their messages", test_refused },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE("addresses", tests))
