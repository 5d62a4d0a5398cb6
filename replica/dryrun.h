/* dryrun: a pull that only reports. It fetches what a pull would (an initial sync's rows
 * when the source has none yet, then pages of changes from the cursor) and hands each page
 * to tdgl_replica.dry_run_page() inside ONE transaction that is rolled back: changes are applied one
 * by one through the same SQL as a pull, described (insert; update with each changed column
 * old -> new; delete; rename; conflict; skip and why; fail and the database's error), and
 * then undone. No user row, conflict, log entry or cursor move survives; the run is
 * recorded with status Skipped and dry_run true. Returned cJSON is owned by the caller. */
#ifndef TDGL_REPLICA_DRYRUN_H
#define TDGL_REPLICA_DRYRUN_H
#include <stddef.h>
#include <libpq-fe.h>
#include <cjson/cJSON.h>
#include "common/result.h"

#define DRYRUN_ROWS_MAX 5000   /* rows listed in a report; counts cover everything */

/* Dry-runs source `name` (trigger: Manual, API). Returns RESULT_OK with *report =
 * {"source","run_id","dry_run":true,"status":"Skipped"|"Failed","fetched","summary":{action:
 * count},"rows":[...],"truncated", "error"?} (the caller deletes it), RESULT_NOT_FOUND for
 * an unknown source, else RESULT_INTERNAL with err. */
enum result dryrun_run(PGconn *c, const char *name, const char *trigger, const char *key_material,
                    cJSON **report, char *err, size_t errlen);

#endif
