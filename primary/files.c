/* files: serving attachments from beneath one root directory, never outside it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "primary/files.h"

#define FILES_PATH_MAX 1024

/* Lexical checks: relative, no ".", ".." or empty components, no control bytes or
 * backslashes (no second encoding layer). 1 ok, 0 refused (as replica/files.h's). */
static int files_path_ok(const char *rel)
{
	const char *p = rel;

	if (!rel || !*rel || *rel == '/' || strlen(rel) > FILES_PATH_MAX)
		return 0;
	for (const char *s = rel; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\')
			return 0;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p == '/') {
			p++;
			if (!*p)
				return 0;   /* trailing slash: a directory */
		}
	}
	return 1;
}

/* openat2 beneath dirfd: the kernel refuses any resolution (.., symlinks, magic links) that
 * would leave the root. Falls back to realpath + prefix check on kernels without openat2. */
static int files_open_beneath(const char *root, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	char rroot[PATH_MAX], rfile[PATH_MAX], *joined = NULL;
	int dfd, fd = -1;
	size_t rl;

	dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof how);
	if (fd >= 0 || errno != ENOSYS)
		goto out;
	if (!realpath(root, rroot) || asprintf(&joined, "%s/%s", rroot, rel) < 0) {
		joined = NULL;
		goto out;
	}
	if (!realpath(joined, rfile))
		goto out;
	rl = strlen(rroot);
	if (strncmp(rfile, rroot, rl) != 0 || rfile[rl] != '/') {
		errno = EXDEV;
		goto out;
	}
	fd = open(rfile, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
out:
	{
		int e = errno;
		close(dfd);
		free(joined);
		errno = e;
	}
	return fd;
}

enum result files_open(const char *root, const char *rel, int *fd_out, size_t *size,
                       char *err, size_t errlen)
{
	struct stat st;
	enum result r = RESULT_NOT_FOUND;
	int fd = -1;

	*fd_out = -1;
	if (!root || !*root) {
		snprintf(err, errlen, "no files directory configured");
		goto out;
	}
	if (!files_path_ok(rel)) {
		r = RESULT_INVALID;
		snprintf(err, errlen, "invalid file path");
		goto out;
	}
	fd = files_open_beneath(root, rel);
	if (fd < 0) {
		if (errno == EXDEV || errno == ELOOP) {
			r = RESULT_FORBIDDEN;
			snprintf(err, errlen, "path leaves the files directory");
		} else if (errno == EACCES || errno == EPERM) {
			r = RESULT_FORBIDDEN;
			snprintf(err, errlen, "forbidden");
		} else {
			snprintf(err, errlen, "no such file");
		}
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "no such file");
		goto out;
	}
	*size = (size_t)st.st_size;
	*fd_out = fd;
	fd = -1;
	r = RESULT_OK;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

const char *files_content_type(const char *name)
{
	static const struct { const char *ext, *type; } types[] = {
		{ "txt", "text/plain; charset=utf-8" }, { "csv", "text/csv" },
		{ "html", "text/html" }, { "json", "application/json" },
		{ "pdf", "application/pdf" }, { "png", "image/png" }, { "jpg", "image/jpeg" },
		{ "jpeg", "image/jpeg" }, { "gif", "image/gif" }, { "svg", "image/svg+xml" },
		{ "webp", "image/webp" }, { "zip", "application/zip" }, { "xml", "application/xml" },
	};
	const char *dot = strrchr(name, '.');

	if (dot && !strchr(dot, '/'))
		for (size_t i = 0; i < sizeof types / sizeof *types; i++)
			if (!strcasecmp(dot + 1, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}
