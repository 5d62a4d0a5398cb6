/* api: the primary's HTTP routes (/api/changes, /api/snapshot, /api/rows, /api/row,
 * /api/files/..., /health, /metrics): authentication, input checks (every bad input gets a
 * 4xx JSON error), JSON replies. */
#ifndef TDGL_PRIMARY_API_H
#define TDGL_PRIMARY_API_H
#include <stdatomic.h>
#include "common/db.h"
#include "common/http.h"
#include "primary/admission.h"
#include "primary/auth.h"
#include "primary/flight.h"
#include "primary/heads.h"
#include "primary/quota.h"
#include "primary/watch.h"

struct api {
	struct db_pool *pool;
	struct watch   *watch;
	struct auth    *auth;
	struct quota   *quota;           /* per-key caps (quota.h) */
	struct flight  *flight;          /* requests for the same page share its query */
	struct heads   *heads;           /* where recent pages ended (long-polls back there wait) */
	struct admission *admission;     /* the cap on page queries running at once */
	const char     *files_dir;       /* NULL: /api/files answers 404 */
	int             metrics_public;
	atomic_int     *stopping;        /* set on shutdown: long-polls end */
	const char     *admin_token;     /* NULL: the console and /api/admin/... answer 404 */
	struct push    *push;            /* set (atomically) once push runs; NULL before */
};

void api_handle(struct http_req *req, void *ctx);   /* ctx: struct api * */
/* Frees a page of changes shared through api->flight: the flight's free_value. */
void api_page_free(void *page);
#endif
