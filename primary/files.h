/* files: attachment files under a root directory. No request can reach outside the root:
 * absolute paths, "..", "." and empty components, control bytes and NULs are refused, and the
 * file is opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) so symlinks cannot
 * escape either (realpath + prefix check where openat2 is unavailable). */
#ifndef TDGL_PRIMARY_FILES_H
#define TDGL_PRIMARY_FILES_H
#include <stddef.h>

/* Opens root/rel for reading. Returns an fd (caller closes) and its size, or -1 with an HTTP
 * status (400, 403, 404) in *status and a message in err. */
int files_open(const char *root, const char *rel, size_t *size, unsigned *status,
               char *err, size_t errlen);
/* A content type guessed from the file name's extension. */
const char *files_content_type(const char *name);
#endif
