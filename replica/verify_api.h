/* verify_api: the verify routes of the admin API, behind api.c's token check:
 *   POST /api/sources/<name>/verify   body (optional) {"tables":["t",...],"repair":bool}:
 *                                     verifies (and repairs) now, answers the report
 *   GET  /api/verifications[?source=NAME]   the last verification of each table
 * Bad input: 4xx JSON. */
#ifndef TDGL_REPLICA_VERIFY_API_H
#define TDGL_REPLICA_VERIFY_API_H
#include "common/http.h"
#include "replica/api.h"

/* Handles req and returns 1 when it is one of the routes above, else 0 (api.c routes it). */
int verify_api_handle(struct api *a, struct http_req *req);

#endif
