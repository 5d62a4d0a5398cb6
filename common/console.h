/* console: the admin web console's files (console/ directory: .html, .css, .js; embedded in the
 * binaries at build time like the SQL), served by the server they belong to.
 *
 * GET or HEAD "/" answers the role's page; "/console/<file>" the shared and the role's
 * scripts and style sheet. Every answer carries Cache-Control: no-cache, a
 * Content-Security-Policy that allows only this origin's own scripts, styles and
 * connections (no inline script, no framing: frame-ancestors 'none'), X-Frame-Options: DENY,
 * Referrer-Policy: no-referrer and (from common/http) X-Content-Type-Options: nosniff; no
 * CORS header is ever sent. The pages hold no data: everything comes from the JSON API with
 * the admin token the user types in. */
#ifndef TDGL_CONSOLE_H
#define TDGL_CONSOLE_H
#include "common/http.h"

enum console_role { CONSOLE_REPLICA, CONSOLE_PRIMARY };

/* 1 when path is one of the console's (then a reply is queued: the file, or 405 JSON for a
 * method other than GET/HEAD), else 0 and nothing is queued. */
int console_handle(struct http_req *req, enum console_role role);

/* The security headers of every console answer, for replies made elsewhere. */
void console_security_headers(struct http_req *req);

#endif
