/*
 * ksimglobal.h: the one simulated kernel that a test file of the
 * simulator itself keeps, K with its host table H (each test makes it
 * with ksim_new and ends with sim_free), and the calls through H.
 * Include once, after testutil.h.
 */
#ifndef VMIG_KSIMGLOBAL_H
#define VMIG_KSIMGLOBAL_H

#include <fcntl.h>

#include "ksim/ksim.h"

static struct ksim *K;
static const struct vmig_host *H;

static inline void sim_free(void)
{
	ksim_free(K);
	K = NULL;
	H = NULL;
}

static inline int xopen(const char *path)
{
	return H->open(H->kctx, path, O_RDWR);
}

static inline int xioctl(int fd, unsigned long req, void *arg)
{
	return H->ioctl(H->kctx, fd, req, arg);
}

static inline int xclose(int fd)
{
	return H->close(H->kctx, fd);
}

#endif /* VMIG_KSIMGLOBAL_H */
