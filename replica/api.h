/* api: the replica's admin HTTP API. Everything but GET /health and POST /api/notify needs
 * "Authorization: Bearer <TDGL_ADMIN_TOKEN>" (compared in constant time); without it: 401
 * JSON. /api/notify is authenticated by its HMAC signature instead; the web console's files
 * (common/console.h: "/" and "/console/...", no data in them) are served to anyone. Bad input:
 * 4xx JSON. */
#ifndef TDGL_REPLICA_API_H
#define TDGL_REPLICA_API_H
#include "common/db.h"
#include "common/http.h"
#include "replica/scheduler.h"

struct api {
	struct db_pool *pool;
	struct sched   *sched;
	const char     *admin_token;
	const char     *key_material;
};

void api_handle(struct http_req *req, void *ctx);   /* ctx: struct api * */
/* A pooled connection for a handler (waits up to 5 s; give it back with db_pool_put), or
 * NULL after answering 503 "database unavailable". */
PGconn *api_db(struct api *a, struct http_req *req);

#endif
