/* result: the one error vocabulary of domain functions. A domain function (conflict
 * resolution, a retry, a settings change, a rows page, a file lookup...) returns an enum
 * result and, when not RESULT_OK, a message in its caller's err buffer; it never returns an
 * HTTP status or CLI wording. The edges map results: the HTTP edge with result_http_status(),
 * the CLI edge with result_exit_code(). */
#ifndef TDGL_RESULT_H
#define TDGL_RESULT_H

enum result {
	RESULT_OK = 0,
	RESULT_INVALID,     /* the request is malformed or names an impossible value */
	RESULT_NOT_FOUND,   /* the thing named does not exist */
	RESULT_CONFLICT,    /* valid, but the current state forbids it (already resolved...) */
	RESULT_TOO_LARGE,   /* over a configured size limit */
	RESULT_BUSY,        /* try again later (a lock is held, a queue is full) */
	RESULT_UNAVAILABLE, /* a dependency (the database, the primary) cannot be reached */
	RESULT_NO_MEMORY,   /* an allocation failed */
	RESULT_INTERNAL,    /* a bug or an unexpected database error; logged where it happened */
	RESULT_FORBIDDEN,   /* valid, but outside what may be reached (a path leaving its root) */
	RESULT_UNAUTHORIZED /* the caller did not prove who it is (a bad signature) */
};

/* 200, 400, 401, 403, 404, 409, 413, 503 (busy and unavailable), 500 (no memory,
 * internal). */
unsigned result_http_status(enum result r);
/* 0 for RESULT_OK, 2 for a value the caller must correct (invalid, too large: the CLI's
 * usage error), 1 for everything else: an unknown name, a refused state change ("already
 * resolved") and failures are runtime errors, as the CLI has always answered them. */
int result_exit_code(enum result r);
/* A short lowercase name ("not found"), never NULL; for logs. */
const char *result_name(enum result r);

#endif
