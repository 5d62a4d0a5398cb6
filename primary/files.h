/* files: attachment files under a root directory. No request can reach outside the root:
 * absolute paths, "..", "." and empty components, control bytes and NULs are refused, and the
 * file is opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) so symlinks cannot
 * escape either (realpath + prefix check where openat2 is unavailable). */
#ifndef TDGL_PRIMARY_FILES_H
#define TDGL_PRIMARY_FILES_H
#include <stddef.h>
#include "common/result.h"

/* Opens root/rel for reading: RESULT_OK with *fd (caller closes) and its size; else
 * RESULT_INVALID (a path refused as such), RESULT_FORBIDDEN (it leaves the root, or no
 * permission), RESULT_NOT_FOUND, with a message in err. */
enum result files_open(const char *root, const char *rel, int *fd, size_t *size,
                       char *err, size_t errlen);
/* A content type guessed from the file name's extension. */
const char *files_content_type(const char *name);
#endif
