/* Transitional: the kernel UAPI additions now live in <vmig/linux-uapi.h>. */
#include <vmig/linux-uapi.h>
