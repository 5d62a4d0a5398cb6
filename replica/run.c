/* run: tdgl_replica.runs records, their events and their summary line; see run.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/db.h"
#include "common/json.h"
#include "common/log.h"
#include "replica/events.h"
#include "replica/metrics.h"
#include "replica/run.h"

static const char Q_RUN_START[] =
	"INSERT INTO tdgl_replica.runs (source, trigger, dry_run) VALUES ($1, $2, $3::bool) RETURNING id";
static const char Q_RUN_TRIGGER[] = "UPDATE tdgl_replica.runs SET trigger = $2 WHERE id = $1";
static const char Q_RUN_ADD[] =
	"UPDATE tdgl_replica.runs SET fetched = fetched + $2, synced = synced + $3, failed = failed + $4, "
	"skipped = skipped + $5, conflicts = conflicts + $6 WHERE id = $1";
static const char Q_RUN_END[] =
	"UPDATE tdgl_replica.runs SET ended_at = clock_timestamp(), status = $2, error = $3 WHERE id = $1";
static const char Q_RUN_INTERRUPTED[] = "SELECT tdgl_replica.close_interrupted_runs()";
static const char Q_RUN_GET[] =
	"SELECT json_build_object('id', id, 'source', source, 'trigger', trigger, "
	"'started_at', started_at, 'ended_at', ended_at, "
	"'duration_ms', round(extract(epoch FROM ended_at - started_at) * 1000), "
	"'status', status, 'fetched', fetched, 'synced', synced, 'failed', failed, "
	"'skipped', skipped, 'conflicts', conflicts, 'resolved', resolved, 'pages', pages, "
	"'dry_run', dry_run, "
	"'error', error)::text FROM tdgl_replica.runs WHERE id = $1";
static const char Q_SOURCE_STATUS[] =
	"UPDATE tdgl_replica.sources SET last_run_at = now(), last_status = $2, last_error = $3 "
	"WHERE name = $1";
static const char Q_RUN_DROP[] = "DELETE FROM tdgl_replica.runs WHERE id = $1";
/* The conflicts a run opened or refreshed: its log rows say "conflict: ..." for them. */
static const char Q_RUN_CONFLICTS[] =
	"SELECT json_build_object('id', k.id, 'source', k.source, 'table', k.tbl, 'pk', k.pk, "
	"'op', k.op, 'change_id', k.change_id, 'refreshed', k.refreshed, 'run_id', $1::bigint)::text "
	"FROM tdgl_replica.conflicts k WHERE k.status = 'Open' AND EXISTS (SELECT 1 FROM tdgl_replica.sync_log l "
	"WHERE l.run_id = $1 AND l.status = 'Skipped' AND l.reason LIKE 'conflict%' "
	"AND l.tbl = k.tbl AND l.pk = k.pk) ORDER BY k.id LIMIT 1000";

long run_start(PGconn *c, const char *source, const char *trigger, int flags)
{
	int dry_run = (flags & RUN_DRY_RUN) != 0;
	const char *p[3] = { source, trigger, dry_run ? "true" : "false" };
	PGresult *res = db_exec(c, "run start", Q_RUN_START, 3, p);
	cJSON *ev;
	long id = 0;

	if (!res)
		return 0;
	id = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (flags & RUN_QUIET)
		return id;
	ev = cJSON_CreateObject();
	cJSON_AddNumberToObject(ev, "run_id", (double)id);
	cJSON_AddStringToObject(ev, "source", source);
	cJSON_AddStringToObject(ev, "trigger", trigger);
	cJSON_AddBoolToObject(ev, "dry_run", dry_run);
	events_publish("run.started", ev);
	return id;
}

void run_set_trigger(PGconn *c, long id, const char *trigger)
{
	char rid[32];
	const char *p[2] = { rid, trigger };

	snprintf(rid, sizeof rid, "%ld", id);
	db_run(c, "run trigger", Q_RUN_TRIGGER, 2, p);
}

void run_add(PGconn *c, long id, long fetched, long synced, long failed, long skipped,
             long conflicts)
{
	char v[6][32];
	const char *p[6] = { v[0], v[1], v[2], v[3], v[4], v[5] };

	snprintf(v[0], sizeof v[0], "%ld", id);
	snprintf(v[1], sizeof v[1], "%ld", fetched);
	snprintf(v[2], sizeof v[2], "%ld", synced);
	snprintf(v[3], sizeof v[3], "%ld", failed);
	snprintf(v[4], sizeof v[4], "%ld", skipped);
	snprintf(v[5], sizeof v[5], "%ld", conflicts);
	db_run(c, "run counts", Q_RUN_ADD, 6, p);
}

cJSON *run_get(PGconn *c, long id)
{
	char rid[32];
	const char *p[1] = { rid };
	PGresult *res;
	cJSON *o = NULL;

	snprintf(rid, sizeof rid, "%ld", id);
	res = db_exec(c, "run get", Q_RUN_GET, 1, p);
	if (res && PQntuples(res) == 1)
		o = cJSON_Parse(PQgetvalue(res, 0, 0));
	PQclear(res);
	return o;
}

static long run_num(const cJSON *o, const char *k)
{
	return (long)json_get_int(o, k, 0);
}

int run_close_interrupted(PGconn *c)
{
	PGresult *res = db_exec(c, "close interrupted runs", Q_RUN_INTERRUPTED, 0, NULL);
	int n = -1;

	if (!res)
		goto out;
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		long id = atol(PQgetvalue(res, i, 0));
		cJSON *row = run_get(c, id);

		if (!row)
			continue;
		log_warn("run %ld of source %s was interrupted (its process stopped): closed as "
		         "Interrupted with fetched=%ld synced=%ld failed=%ld skipped=%ld "
		         "conflicts=%ld resolved=%ld pages=%ld", id, json_get_string(row, "source"),
		         run_num(row, "fetched"), run_num(row, "synced"), run_num(row, "failed"),
		         run_num(row, "skipped"), run_num(row, "conflicts"), run_num(row, "resolved"),
		         run_num(row, "pages"));
		metrics_add(M_RUNS_INTERRUPTED, 1);
		events_publish("run.failed", row);   /* takes row */
	}
out:
	PQclear(res);
	return n;
}

cJSON *run_finish(PGconn *c, long id, const char *status, const char *error)
{
	char rid[32];
	const char *p[3] = { rid, status, error };
	cJSON *row = NULL;
	const char *source, *trigger;

	snprintf(rid, sizeof rid, "%ld", id);
	if (db_run(c, "run end", Q_RUN_END, 3, p) < 0 || !(row = run_get(c, id)))
		goto out;
	source = json_get_string(row, "source");
	trigger = json_get_string(row, "trigger");
	if (!json_get_bool(row, "dry_run", 0)) {
		const char *sp[3] = { source, status, error };

		db_run(c, "source status", Q_SOURCE_STATUS, 3, sp);
	}
	/* The seeds' run summary, on one line (key=value, also inside a JSON log's msg). */
	log_msg(strcmp(status, "Failed") ? LOG_INFO : LOG_WARN,
	        "run summary: source=%s run=%ld trigger=%s status=%s%s fetched=%ld synced=%ld "
	        "failed=%ld skipped=%ld conflicts=%ld resolved=%ld pages=%ld duration_ms=%ld%s%.300s",
	        source ? source : "?", id, trigger ? trigger : "?", status,
	        json_get_bool(row, "dry_run", 0) ? " dry_run=true" : "", run_num(row, "fetched"),
	        run_num(row, "synced"), run_num(row, "failed"), run_num(row, "skipped"),
	        run_num(row, "conflicts"), run_num(row, "resolved"), run_num(row, "pages"),
	        run_num(row, "duration_ms"),
	        error ? " error=" : "", error ? error : "");
	events_publish(strcmp(status, "Failed") ? "run.completed" : "run.failed",
	               cJSON_Duplicate(row, 1));
out:
	return row;
}

void run_publish_conflicts(PGconn *c, long id)
{
	char rid[32];
	const char *p[1] = { rid };
	PGresult *res;

	snprintf(rid, sizeof rid, "%ld", id);
	if (!(res = db_exec(c, "run conflicts", Q_RUN_CONFLICTS, 1, p)))
		return;
	for (int i = 0; i < PQntuples(res); i++)
		events_publish("conflict.created", cJSON_Parse(PQgetvalue(res, i, 0)));
	PQclear(res);
}

void run_drop(PGconn *c, long id)
{
	char rid[32];
	const char *p[1] = { rid };

	snprintf(rid, sizeof rid, "%ld", id);
	db_run(c, "run drop", Q_RUN_DROP, 1, p);
}
