/*
 * report.c: the report file (docs/report.md).
 *
 * libvmig builds the report (vmig_report_json); the tool writes it to a
 * file aside and renames it, so that a reader never sees half a report.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tool.h"

/* Writes len bytes of buf to a new file at tmp. */
static int write_file(vmig_session *s, const char *tmp, const char *path,
		      const char *buf, size_t len)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return tool_fail(s, -errno, "report %s: %s", path,
				 vmig_strerror(-errno));
	if (write(fd, buf, len) != (ssize_t)len) {
		close(fd);
		unlink(tmp);
		return tool_fail(s, -EIO, "report %s: short write", path);
	}
	if (close(fd) < 0) {
		unlink(tmp);
		return tool_fail(s, -errno, "report %s: %s", path,
				 vmig_strerror(-errno));
	}
	return 0;
}

int vmig_report_write(vmig_session *s, const char *path)
{
	char *tmp = NULL, *buf;
	int64_t len;
	int ret;

	len = vmig_report_json(s, NULL, 0);
	if (len < 0)
		return tool_fail(s, (int)len, "report: %s",
				 vmig_strerror((int)len));
	buf = malloc((size_t)len + 1);
	if (!buf)
		return -ENOMEM;
	vmig_report_json(s, buf, (size_t)len + 1);
	buf[len] = '\n';
	if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0) {
		free(buf);
		return -ENOMEM;
	}
	ret = write_file(s, tmp, path, buf, (size_t)len + 1);
	if (ret == 0 && rename(tmp, path) < 0) {
		ret = tool_fail(s, -errno, "report %s: %s", path,
				vmig_strerror(-errno));
		unlink(tmp);
	}
	free(tmp);
	free(buf);
	return ret;
}
