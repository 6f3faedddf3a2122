/*
 * address.h: migration addresses ("unix:/path", "tcp:host:port"), parsed
 * and validated by the transport each names.
 *
 * The one parser of addresses (core/transport/registry.c dispatches to
 * the transports' own): the engine connects and listens with it, and the
 * configuration may validate an address with it. Needs no libuv.
 */
#ifndef VMIG_CORE_TRANSPORT_ADDRESS_H
#define VMIG_CORE_TRANSPORT_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/un.h>

struct vmig_transport;

/* Every form an address may take, for messages. */
#define VMIG_ADDRESS_FORMS                                            \
	"\"unix:<path>\", \"tcp:<host>:<port>\", "                    \
	"\"tls:<host>:<port>?<options>\" or "                          \
	"\"tls-psk:<host>:<port>?<options>\""

/* An address, parsed and validated. */
struct vmig_address {
	const struct vmig_transport *t; /* the transport it names */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix */
	char host[256];  /* tcp: a name, an IPv4 or an IPv6 (no brackets) */
	char port[12];   /* tcp: decimal, 0 only for a listener */
	const char *text; /* the address as given (for messages) */
	char options[1024]; /* tls, tls-psk: after '?' (tls.c) */
};

/*
 * Parses and validates an address: finds its transport by the scheme
 * before ':', which parses the rest. listen: for a listener (a TCP port
 * may be 0). Resolves nothing (a TCP host name is looked up when
 * connecting or listening). Returns 0, or -EINVAL (-ENAMETOOLONG for a
 * unix path too long) with the reason in err ("<address>: expected
 * ...").
 */
int vmig_address_parse(const char *address, bool listen,
		       struct vmig_address *a, char *err, size_t errlen);

/* The scheme of a parsed address ("unix", "tcp"). */
const char *vmig_address_scheme(const struct vmig_address *a);

#endif /* VMIG_CORE_TRANSPORT_ADDRESS_H */
