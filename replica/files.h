/* files: attachment files referenced by synced rows ("/files/<path>") fetched from the
 * primary's /api/files/<path> into the replica's files directory (TDGL_FILES_DIR). A path
 * never leaves that directory: "..", ".", empty components, absolute paths, control bytes
 * and backslashes are refused, every directory is opened with O_NOFOLLOW via openat, and the
 * file is written to a temporary name and renamed into place.
 * tdgl_replica.files records the size and SHA-256 of each fetched file: a file still present with
 * that size and hash is not fetched again. */
#ifndef TDGL_REPLICA_FILES_H
#define TDGL_REPLICA_FILES_H
#include <libpq-fe.h>
#include "common/result.h"
#include "replica/upstream.h"

/* 1 when value is a relative file URL this module accepts ("/files/a/b.pdf"), else 0. */
int files_path_ok(const char *value);
/* Fetches value ("/files/...") from u's primary (upstream_file; u's stop flag abandons it)
 * unless present and unchanged. RESULT_OK fetched or already present; else (logged)
 * RESULT_INVALID (a path refused), RESULT_NOT_FOUND (the primary has no such file),
 * RESULT_UNAVAILABLE (no answer, or another status), RESULT_INTERNAL (not written). */
enum result files_fetch(PGconn *c, struct upstream *u, const char *files_dir,
                        const char *value);

#endif
