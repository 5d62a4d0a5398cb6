/* files: safe fetch of attachment files under the files directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/buf.h"
#include "common/crypto.h"
#include "common/db.h"
#include "common/httpc.h"
#include "common/log.h"
#include "replica/files.h"

#define FILES_PREFIX "/files/"
#define FILES_MAX_PATH 1024

static const char Q_KNOWN[] = "SELECT size, sha256 FROM tdgl_replica.files WHERE path = $1";
static const char Q_RECORD[] =
	"INSERT INTO tdgl_replica.files (path, size, sha256) VALUES ($1, $2::bigint, $3) "
	"ON CONFLICT (path) DO UPDATE SET size = EXCLUDED.size, sha256 = EXCLUDED.sha256, "
	"fetched_at = now()";

int files_path_ok(const char *value)
{
	const char *rel, *p;
	size_t len;

	if (!value || strncmp(value, FILES_PREFIX, strlen(FILES_PREFIX)))
		return 0;
	rel = value + strlen(FILES_PREFIX);
	len = strlen(rel);
	if (len == 0 || len > FILES_MAX_PATH)
		return 0;
	for (p = rel; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\' || *p == '?' || *p == '#')
			return 0;
	/* every component non-empty and neither "." nor ".." */
	p = rel;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		if (!slash)
			break;
		p = slash + 1;
		if (!*p)
			return 0;  /* trailing slash */
	}
	return 1;
}

/* Opens (creating when asked) the directory chain of rel under root without following
 * symlinks; returns the fd of the last directory and sets *leaf to the file name. */
static int files_open_parent(const char *root, const char *rel, int create, const char **leaf)
{
	char comp[FILES_MAX_PATH + 1];
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const char *p = rel;

	if (fd < 0 && create && errno == ENOENT) {
		if (mkdir(root, 0755) < 0 && errno != EEXIST)
			return -1;
		fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	while (fd >= 0) {
		const char *slash = strchr(p, '/');
		int next;

		if (!slash) {
			*leaf = p;
			return fd;
		}
		memcpy(comp, p, (size_t)(slash - p));
		comp[slash - p] = '\0';
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && create && errno == ENOENT) {
			if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
				close(fd);
				return -1;
			}
			next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		close(fd);
		fd = next;
		p = slash + 1;
	}
	return -1;
}

/* Size and SHA-256 of root/rel as it is now; 0, or -1 when absent/unreadable. */
static int files_local_sum(const char *root, const char *rel, long long *size, char sum[65])
{
	const char *leaf = NULL;
	int dfd = files_open_parent(root, rel, 0, &leaf), fd = -1, rc = -1;
	struct buf b = { 0 };
	char chunk[65536];
	ssize_t n;

	if (dfd < 0)
		goto out;
	fd = openat(dfd, leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		goto out;
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		buf_append(&b, chunk, (size_t)n);
	if (n < 0)
		goto out;
	*size = (long long)b.len;
	crypto_sha256_hex(b.data ? b.data : "", b.len, sum);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	buf_free(&b);
	return rc;
}

static int files_write(const char *root, const char *rel, const char *data, size_t len)
{
	const char *leaf = NULL;
	char tmp[FILES_MAX_PATH + 64];
	int dfd = files_open_parent(root, rel, 1, &leaf), fd = -1, rc = -1;
	size_t off = 0;

	if (dfd < 0)
		goto out;
	snprintf(tmp, sizeof tmp, ".tdgl-tmp-%d-%s", (int)getpid(), leaf);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		goto out;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, leaf) < 0)
		goto out;
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlinkat(dfd, tmp, 0);
	}
	if (dfd >= 0)
		close(dfd);
	return rc;
}

enum result files_fetch(PGconn *c, struct upstream *u, const char *files_dir,
                        const char *value)
{
	const char *rel = value + strlen(FILES_PREFIX);
	const char *p[3] = { value, NULL, NULL };
	struct httpc_resp resp = { 0 };
	PGresult *res = NULL;
	long long have_size = -1;
	char have_sum[65], sum[65], size[32];
	enum result rc = RESULT_INVALID;
	long st;

	if (!files_path_ok(value)) {
		log_warn("file %s: refused (not a safe relative /files/ path)", value);
		goto out;
	}
	res = db_exec(c, "files: known", Q_KNOWN, 1, p);
	if (res && PQntuples(res) == 1 &&
	    files_local_sum(files_dir, rel, &have_size, have_sum) == 0 &&
	    have_size == atoll(PQgetvalue(res, 0, 0)) && !strcmp(have_sum, PQgetvalue(res, 0, 1))) {
		rc = RESULT_OK;  /* present and unchanged */
		goto out;
	}
	rc = RESULT_UNAVAILABLE;
	st = upstream_file(u, rel, &resp);
	if (st < 0) {
		log_warn("file %s: fetch failed: %s", value, u->error);
		goto out;
	}
	if (st != 200) {
		rc = st == 404 ? RESULT_NOT_FOUND : RESULT_UNAVAILABLE;
		log_warn("file %s: primary answered %ld", value, st);
		goto out;
	}
	rc = RESULT_INTERNAL;
	if (files_write(files_dir, rel, resp.body ? resp.body : "", resp.len) < 0) {
		log_warn("file %s: cannot write under %s: %s", value, files_dir, strerror(errno));
		goto out;
	}
	crypto_sha256_hex(resp.body ? resp.body : "", resp.len, sum);
	snprintf(size, sizeof size, "%zu", resp.len);
	p[1] = size;
	p[2] = sum;
	db_run(c, "files: record", Q_RECORD, 3, p);
	log_info("file %s fetched (%zu bytes)", value, resp.len);
	rc = RESULT_OK;
out:
	PQclear(res);
	httpc_resp_free(&resp);
	return rc;
}
