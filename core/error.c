/*
 * error.c: error names and the library version.
 *
 * vmig's errors are negative errno values plus a few codes of its own
 * (enum vmig_error); this file owns their descriptions.
 */
#include <string.h>

#include <vmig/vmig.h>

VMIG_API const char *vmig_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case VMIG_ECONFIG:
		return "invalid configuration";
	case VMIG_ENOTPLUGIN:
		return "not a loadable object";
	case VMIG_ENOENTRY:
		return "no " VMIG_PLUGIN_ENTRY_NAME " entry point";
	case VMIG_EABI:
		return "plugin built for another ABI major";
	case VMIG_EBADPLUGIN:
		return "plugin descriptor too short or malformed";
	case VMIG_EDUPLICATE:
		return "another plugin has the same name";
	case VMIG_EREFUSED:
		return "plugin refused to initialise";
	case VMIG_EMISSED:
		return "dirty writes were missed";
	case VMIG_EPROTO:
		return "malformed or rejected migration stream";
	case VMIG_EMISMATCH:
		return "destination memory differs from the source";
	case VMIG_EUNRESOLVED:
		return "migration outcome unresolved: the guest is paused";
	case VMIG_EMIGRATED:
		return "the guest was migrated away already";
	case VMIG_EAUDIT:
		return "committed, then the audit found the destination's "
		       "memory differs";
	}
	if (err < 0 && err > -4096) {
		/* Unlike strerror, this never writes a shared buffer. */
		const char *desc = strerrordesc_np(-err);

		if (desc)
			return desc;
	}
	return "unknown error";
}

VMIG_API unsigned int vmig_version(void)
{
	return VMIG_VERSION;
}

VMIG_API const char *vmig_version_string(void)
{
	return VMIG_VERSION_STRING;
}
