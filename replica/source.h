/* source: the primaries a replica pulls from (tdgl_replica.sources, tdgl_replica.source_tables).
 * API and push secrets are sealed at rest with crypto_seal under TDGL_SECRET_KEY and only
 * opened in memory here; nothing in this module prints or logs a secret.
 * All returned structs/strings are owned by the caller (source_free / free). */
#ifndef TDGL_REPLICA_SOURCE_H
#define TDGL_REPLICA_SOURCE_H
#include <libpq-fe.h>
#include <cjson/cJSON.h>
#include "common/result.h"

#define SOURCE_MAX_TABLES 64

struct source_spec {
	const char *name, *url, *key, *secret, *push_secret;
	const char *tables;                 /* "t1,t2" */
	const char *filters[SOURCE_MAX_TABLES];   /* "t1={...}" each */
	int nfilters;
	const char *attach[SOURCE_MAX_TABLES];    /* "t1=col1,col2" each */
	int nattach;
	long batch_size, poll_interval;     /* 0: default */
	int long_poll;
	const char *conflict_policy;        /* two-way tables' (settings.h); NULL: manual */
};

struct source {
	char *name, *url, *api_key;
	char *api_secret, *push_secret;   /* opened (source_open_secrets); NULL until then */
	char *api_sealed, *push_sealed;   /* as stored; push_sealed NULL: no push secret */
	char *cron, *tz;                  /* NULL: every poll_interval seconds */
	double rate_limit;                /* requests per second to the primary; 0: unlimited */
	char *cursor;            /* NULL: initial sync pending */
	int needs_resync;
	int batch_size, poll_interval, long_poll, enabled;
	char *tables;            /* "t1,t2" as configured */
	int ntables;
	char *table[SOURCE_MAX_TABLES];   /* pointers into their own strings (malloc'd) */
	char *filter[SOURCE_MAX_TABLES];  /* JSON text or NULL */
};

/* Validates spec, seals secrets with key_material, inserts the source and its tables and
 * installs local-edit triggers on the tables that exist. RESULT_OK, or with err (naming
 * the spec's field, not a CLI flag or a JSON key: the edges word their own):
 * RESULT_INVALID bad input, RESULT_CONFLICT the name exists, RESULT_INTERNAL. */
enum result source_add(PGconn *c, const struct source_spec *spec, const char *key_material,
                       char *err, size_t errlen);
/* Parses a POST /api/sources body into spec (strings point into obj). 0 or -1 with err. */
int source_spec_from_json(const cJSON *obj, struct source_spec *spec, char *err, size_t errlen);
/* 1 removed, 0 unknown, -1 error. */
int source_remove(PGconn *c, const char *name);
/* Loads one source's settings and tables without opening its secrets (the scheduler's
 * reload: nothing is decrypted every 2 s). 0, 1 when unknown, -1 with err. */
int source_load_settings(PGconn *c, const char *name, struct source *s, char *err,
                         size_t errlen);
/* Opens the sealed secrets of a loaded source (what a pull needs). 0, or -1 with err. */
int source_open_secrets(struct source *s, const char *key_material, char *err, size_t errlen);
/* source_load_settings + source_open_secrets. 0, 1 when unknown, -1 with err. */
int source_load(PGconn *c, const char *name, const char *key_material, struct source *s,
                char *err, size_t errlen);
void source_free(struct source *s);
/* The list for `source list` / GET /api/sources: no secrets. NULL on error. */
cJSON *source_list_json(PGconn *c);
/* Names of enabled sources; *names malloc'd array of malloc'd strings. Returns count or -1. */
int source_enabled_names(PGconn *c, char ***names);
/* 1 when sealed secrets exist (start-up then needs the key), 0 none, -1 error. */
int source_any_sealed(PGconn *c);
/* Installs missing local-edit triggers for every source (start-up). */
void source_watch_all(PGconn *c);

#endif
