/*
 * fuzz_config.c: libFuzzer harness of the configuration parser
 * (tool/json.c, tool/config*.c: vmig_config_parse).
 *
 * An input is a document, parsed as `vmig check` would. Checked after
 * each: an accepted document yields a configuration, a refused one
 * VMIG_ECONFIG with a NUL-terminated message (never an empty one), and
 * nothing leaks (AddressSanitizer's leak check at exit, and on every
 * input under -detect_leaks=1).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vmig/vmig.h>

#include "tool/vmig_tool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	vmig_config *cfg = NULL;
	char err[2048];
	int ret;

	err[0] = 'x';
	ret = vmig_config_parse((const char *)data, size, "/base", &cfg, err,
				sizeof(err));
	if (ret == 0) {
		if (!cfg)
			abort();
		vmig_config_free(cfg);
		return 0;
	}
	if (cfg)
		abort(); /* a failure gives no configuration */
	if (ret == VMIG_ECONFIG &&
	    (!memchr(err, '\0', sizeof(err)) || !err[0]))
		abort(); /* a refusal says why */
	return 0;
}
