/* copy: initial sync in COPY pages, with the JSON pages of /api/rows as the fallback. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/db.h"
#include "common/httpc.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "replica/apply.h"
#include "replica/copy.h"
#include "replica/fkorder.h"

/* Pages start small (the first rows arrive at once) and double up to the primary's maximum;
 * the primary also ends a page at 4 MiB of data, and a page it ended so stays that size. */
#define COPY_FIRST_ROWS 1000
#define COPY_MAX_ROWS 50000
/* JSON pages (a two-way table's copy, with versions; the fallback): 2000 rows copied a
 * 50k-row two-way table in 1.3 s, 500 in 1.5-1.9 s. */
#define COPY_JSON_ROWS 2000
#define COPY_TIMEOUT_MS 120000

static const char Q_SET_START_CURSOR[] =
	"UPDATE tdgl_replica.sources SET cursor = $2, needs_resync = false "
	"WHERE name = $1 AND cursor IS NULL";
static const char Q_RESYNC_BEGIN[] = "DELETE FROM tdgl_replica.resync_seen WHERE source = $1";
static const char Q_SOURCE_FKS[] =
	"SELECT child, parent, is_deferrable FROM tdgl_replica.source_fks($1)";
static const char Q_APPLY_MODE[] = "SELECT tdgl_replica.apply_mode()";
/* as each copy page (apply.c): the cursor's later synchronous commit covers it */
static const char Q_GROUP_ASYNC[] = "SET LOCAL synchronous_commit = off";

/* One fetched page of GET /api/rows?format=copy. */
struct copy_page {
	struct httpc_resp resp;
	long status;               /* HTTP status; -1: no answer (error says why) */
	char *after;               /* the key it starts after (JSON text; NULL: the table's start) */
	char *columns;             /* JSON array of the columns in data */
	const char *data;          /* the COPY lines, inside resp.body */
	size_t len;
	long rows;
	char *next;                /* the key to continue after; NULL on the last page */
	char error[512];           /* set when unusable: no answer, or a bad body */
};

/* The thread fetching one table's pages ahead of the apply: at most one page waits. */
struct copy_feed {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct upstream f;         /* its own copy: its error is per call */
	char *table;               /* what it asks for (copies): table, filter, columns */
	char *filter;
	char *columns;
	const atomic_int *stop;
	struct copy_page *ready;
	int done, cancel;
};

/* One initial sync across its tables: what its committed pages did, and while a group of
 * tables is copied in one transaction (nested), the summaries of its pages, handed on
 * (counted, files fetched) once that transaction commits. */
struct copy_ctx {
	const struct copy_env *e;
	int nested;
	struct apply_summary *held; /* page summaries of the open group (nheld, owned) */
	int nheld;
	long synced, skipped, failed;
};

static int copy_stopping(const struct copy_env *e)
{
	return e->stop && *e->stop;
}

static void copy_page_free(struct copy_page *pg)
{
	if (!pg)
		return;
	httpc_resp_free(&pg->resp);
	free(pg->after);
	free(pg->columns);
	free(pg->next);
	free(pg);
}

/* Checks a 200 body: the header line, then exactly `rows` lines. Sets pg->error if bad. */
static void copy_page_parse(struct copy_page *pg)
{
	const char *body = pg->resp.body, *nl = body ? memchr(body, '\n', pg->resp.len) : NULL;
	const cJSON *cols, *rows, *next, *it;
	char jerr[128];
	cJSON *h = NULL;
	long lines = 0;

	if (!nl) {
		snprintf(pg->error, sizeof pg->error, "no header line");
		goto out;
	}
	h = json_parse_strict(body, (size_t)(nl - body), jerr, sizeof jerr);
	cols = cJSON_GetObjectItemCaseSensitive(h, "columns");
	rows = cJSON_GetObjectItemCaseSensitive(h, "rows");
	next = cJSON_GetObjectItemCaseSensitive(h, "next");
	if (!cJSON_IsArray(cols) || !cols->child || !cJSON_IsNumber(rows) || rows->valuedouble < 0 ||
	    !(cJSON_IsString(next) || cJSON_IsNull(next))) {
		snprintf(pg->error, sizeof pg->error, "bad header line%s%s", h ? "" : ": ",
		         h ? "" : jerr);
		goto out;
	}
	cJSON_ArrayForEach(it, cols) {
		if (!cJSON_IsString(it)) {
			snprintf(pg->error, sizeof pg->error, "bad header line: columns");
			goto out;
		}
	}
	pg->data = nl + 1;
	pg->len = pg->resp.len - (size_t)(pg->data - body);
	for (const char *p = pg->data; (p = memchr(p, '\n', pg->len - (size_t)(p - pg->data)));
	     p++)
		lines++;
	pg->rows = (long)rows->valuedouble;
	if (lines != pg->rows || (pg->len && pg->data[pg->len - 1] != '\n')) {
		snprintf(pg->error, sizeof pg->error, "%ld lines for %ld rows", lines, pg->rows);
		goto out;
	}
	if (cJSON_IsString(next) && (pg->rows == 0 || (pg->after && !strcmp(next->valuestring,
	                                                                      pg->after)))) {
		snprintf(pg->error, sizeof pg->error, "next does not move on");
		goto out;
	}
	pg->columns = json_print(cols);
	pg->next = cJSON_IsString(next) ? strdup(next->valuestring) : NULL;
out:
	cJSON_Delete(h);
}

static struct copy_page *copy_page_fetch(struct copy_feed *fd, char *after, long limit)
{
	struct copy_page *pg = calloc(1, sizeof *pg);

	if (!pg)
		abort();    /* out of memory: as buf does */
	pg->after = after;
	pg->status = upstream_rows(&fd->f, fd->table, fd->filter, after, limit, fd->columns,
	                           COPY_TIMEOUT_MS, &pg->resp);
	if (pg->status < 0)
		snprintf(pg->error, sizeof pg->error, "%s", fd->f.error);
	else if (pg->status == 200)
		copy_page_parse(pg);
	return pg;
}

/* Fetches pages until the last one, an unusable one, a stop or a cancel. */
static void *copy_feed_run(void *arg)
{
	struct copy_feed *fd = arg;
	char *after = NULL;
	long limit = COPY_FIRST_ROWS, cap = COPY_MAX_ROWS;

	while (!(fd->stop && *fd->stop)) {
		struct copy_page *pg = copy_page_fetch(fd, after, limit);
		int last = pg->status != 200 || pg->error[0] || !pg->next;

		after = NULL;
		if (!last) {
			after = strdup(pg->next);
			if (pg->rows < limit)       /* the primary's byte limit ended it */
				cap = pg->rows > 0 ? pg->rows : 1;
			limit = limit * 2 < cap ? limit * 2 : cap;
		}
		pthread_mutex_lock(&fd->mu);
		while (fd->ready && !fd->cancel)
			pthread_cond_wait(&fd->cv, &fd->mu);
		if (!fd->cancel) {
			fd->ready = pg;
			pg = NULL;
			pthread_cond_broadcast(&fd->cv);
		}
		pthread_mutex_unlock(&fd->mu);
		if (pg) {                      /* cancelled */
			copy_page_free(pg);
			break;
		}
		if (last)
			break;
	}
	free(after);
	pthread_mutex_lock(&fd->mu);
	fd->done = 1;
	pthread_cond_broadcast(&fd->cv);
	pthread_mutex_unlock(&fd->mu);
	return NULL;
}

/* The next page in key order, or NULL when the feed stopped (shutdown) without one. */
static struct copy_page *copy_feed_take(struct copy_feed *fd)
{
	struct copy_page *pg;

	pthread_mutex_lock(&fd->mu);
	while (!fd->ready && !fd->done)
		pthread_cond_wait(&fd->cv, &fd->mu);
	pg = fd->ready;
	fd->ready = NULL;
	pthread_cond_broadcast(&fd->cv);
	pthread_mutex_unlock(&fd->mu);
	return pg;
}

static int copy_feed_start(struct copy_feed *fd, const struct copy_env *e, int t,
                           const char *columns)
{
	memset(fd, 0, sizeof *fd);
	fd->f = *e->f;
	fd->stop = e->stop;
	fd->table = mem_strdup(e->s->table[t], "copy feed");
	fd->columns = mem_strdup(columns, "copy feed");
	fd->filter = mem_strdup(e->s->filter[t], "copy feed");
	pthread_mutex_init(&fd->mu, NULL);
	pthread_cond_init(&fd->cv, NULL);
	if (pthread_create(&fd->thread, NULL, copy_feed_run, fd) != 0) {
		fd->done = -1;
		return -1;
	}
	return 0;
}

/* Stops the thread (after its current request) and frees what it holds; also after a failed
 * copy_feed_start. */
static void copy_feed_end(struct copy_feed *fd)
{
	if (fd->done != -1) {
		pthread_mutex_lock(&fd->mu);
		fd->cancel = 1;
		pthread_cond_broadcast(&fd->cv);
		pthread_mutex_unlock(&fd->mu);
		pthread_join(fd->thread, NULL);
	}
	copy_page_free(fd->ready);
	pthread_mutex_destroy(&fd->mu);
	pthread_cond_destroy(&fd->cv);
	free(fd->table);
	free(fd->columns);
	free(fd->filter);
}

/* Records a non-200 answer as the copy's error. */
static void copy_http_error(const struct copy_env *e, const char *what,
                            const struct httpc_resp *resp)
{
	char jerr[64];
	cJSON *j = resp->body ? json_parse_strict(resp->body, resp->len, jerr, sizeof jerr) : NULL;
	const char *msg = j ? json_get_string(j, "error") : NULL;

	snprintf(e->error, e->errlen, "%s: primary answered %ld%s%.200s", what, resp->status,
	         msg ? ": " : "", msg ? msg : "");
	cJSON_Delete(j);
}

/* A page committed (or, nested, is held until its group commits). */
static void copy_page_done(struct copy_ctx *x, const struct apply_summary *sum)
{
	if (x->nested) {
		struct apply_summary *h = realloc(x->held, (size_t)(x->nheld + 1) * sizeof *h);

		if (!h)
			abort();
		x->held = h;
		memset(&h[x->nheld], 0, sizeof *h);
		apply_summary_add(&h[x->nheld++], sum);
		return;
	}
	x->synced += sum->synced;
	x->skipped += sum->skipped;
	x->failed += sum->failed;
	if (x->e->page_done)
		x->e->page_done(x->e->ctx, sum);
}

/* Copies table t from after `from` (NULL: the start) in JSON pages (tdgl_replica.apply_rows).
 * 0, or -1 with the error set. */
static int copy_json_table(struct copy_ctx *x, int t, const char *from)
{
	const struct copy_env *e = x->e;
	struct upstream f = *e->f;
	struct httpc_resp resp = { 0 };
	struct apply_summary sum = { 0 };
	cJSON *j = NULL;
	char *after = from ? strdup(from) : NULL;
	char *next = NULL, jerr[128], err[512];
	const char *tbl = e->s->table[t];
	int rc = -1;

	for (;;) {
		const cJSON *rows;
		long st;

		st = upstream_rows(&f, tbl, e->s->filter[t], after, COPY_JSON_ROWS, NULL,
		                   COPY_TIMEOUT_MS, &resp);
		if (st < 0) {
			snprintf(e->error, e->errlen, "%s", f.error);
			goto out;
		}
		if (st != 200) {
			copy_http_error(e, tbl, &resp);
			goto out;
		}
		if (copy_stopping(e)) {
			snprintf(e->error, e->errlen, "stopping");
			goto out;
		}
		cJSON_Delete(j);
		/* rows embed json column values verbatim: duplicate keys are legal there */
		j = json_parse_embedded(resp.body, resp.len, jerr, sizeof jerr);
		rows = j ? cJSON_GetObjectItemCaseSensitive(j, "rows") : NULL;
		if (!cJSON_IsArray(rows)) {
			snprintf(e->error, e->errlen, "rows of %s: bad answer: %s", tbl,
			         j ? "no rows array" : jerr);
			goto out;
		}
		apply_summary_free(&sum);
		free(next);
		if (apply_rows(e->c, e->s->name, tbl, resp.body, e->run_id, e->s->needs_resync,
		               x->nested, &sum, &next, err, sizeof err) < 0) {
			snprintf(e->error, e->errlen, "applying rows of %.60s: %.400s", tbl, err);
			goto out;
		}
		copy_page_done(x, &sum);
		if (!next || cJSON_GetArraySize(rows) == 0)
			break;
		free(after);
		after = next;
		next = NULL;
	}
	rc = 0;
out:
	cJSON_Delete(j);
	apply_summary_free(&sum);
	httpc_resp_free(&resp);
	free(after);
	free(next);
	return rc;
}

/* Applies one page: direct (then staged, should the table not take it as it is) or staged.
 * 0, or -1 with err. */
static int copy_apply_page(struct copy_ctx *x, int t, const struct copy_page *pg,
                           int *direct, char *err, size_t errlen)
{
	const struct copy_env *e = x->e;
	struct apply_copy_page a = { .source = e->s->name, .tbl = e->s->table[t],
	                             .columns = pg->columns, .data = pg->data, .len = pg->len,
	                             .rows = pg->rows, .direct = *direct,
	                             .resync = e->s->needs_resync, .nested = x->nested,
	                             .run_id = e->run_id };
	struct apply_summary sum = { 0 };
	int rc = apply_copy(e->c, &a, &sum, err, errlen);

	if (rc < 0 && *direct) {
		/* e.g. a row inserted here meanwhile: its key is taken. Staging handles that. */
		log_info("source %s: copy of %s goes through staging from here (%s)", e->s->name,
		         a.tbl, err);
		*direct = a.direct = 0;
		rc = apply_copy(e->c, &a, &sum, err, errlen);
	}
	if (rc == 0)
		copy_page_done(x, &sum);
	apply_summary_free(&sum);
	return rc;
}

/* Copies table t in COPY pages; a page the COPY path cannot take sends the rest of the table
 * through the JSON path. 0, or -1 with the error set. */
static int copy_table(struct copy_ctx *x, int t)
{
	const struct copy_env *e = x->e;
	struct copy_feed fd;
	struct copy_page *pg = NULL;
	cJSON *plan = NULL;
	char *plan_text = apply_copy_plan(e->c, e->s->name, e->s->table[t], e->s->needs_resync);
	char *columns = NULL, *fallback = NULL, err[512];
	const char *tbl = e->s->table[t];
	int rc = -1, direct, started = 0, json = 0;

	plan = plan_text ? cJSON_Parse(plan_text) : NULL;
	if (!plan || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(plan, "columns"))) {
		rc = copy_json_table(x, t, NULL);
		goto out;
	}
	direct = !strcmp(json_get_string(plan, "mode") ? json_get_string(plan, "mode") : "", "direct");
	columns = json_print(cJSON_GetObjectItemCaseSensitive(plan, "columns"));
	log_info("source %s: copying %s %s", e->s->name, tbl,
	         direct ? "straight into the empty table" : "through a staging table");
	started = 1;
	if (copy_feed_start(&fd, e, t, columns) < 0) {
		snprintf(e->error, e->errlen, "copy of %s: cannot start a thread", tbl);
		goto out;
	}
	for (;;) {
		pg = copy_feed_take(&fd);
		if (!pg || copy_stopping(e)) {
			snprintf(e->error, e->errlen, "stopping");
			goto out;
		}
		if (pg->status < 0) {
			snprintf(e->error, e->errlen, "%s", pg->error);
			goto out;
		}
		if (pg->status != 200 || pg->error[0]) {
			log_warn("source %s: copy of %s continues in JSON pages: primary answered %ld%s%s",
			         e->s->name, tbl, pg->status, pg->error[0] ? ": " : "", pg->error);
			json = 1;
			break;
		}
		if (copy_apply_page(x, t, pg, &direct, err, sizeof err) < 0) {
			log_warn("source %s: copy of %s continues in JSON pages: %s", e->s->name, tbl, err);
			json = 1;
			break;
		}
		if (!pg->next)
			break;
		copy_page_free(pg);
		pg = NULL;
	}
	if (json) {
		fallback = pg->after ? strdup(pg->after) : NULL;
		copy_feed_end(&fd);
		started = 0;
		rc = copy_json_table(x, t, fallback);
		goto out;
	}
	rc = 0;
out:
	if (started)
		copy_feed_end(&fd);
	copy_page_free(pg);
	cJSON_Delete(plan);
	free(plan_text);
	free(columns);
	free(fallback);
	return rc;
}

/* The copy's order (fkorder.h) from the foreign keys between the source's local tables.
 * Returns the number of groups, or -1 on a database error. */
static int copy_order(const struct copy_env *e, int *order, struct fk_group *groups)
{
	const char *p[1] = { e->s->name };
	PGresult *res = db_exec(e->c, "copy order", Q_SOURCE_FKS, 1, p);
	struct fk_edge *edges;
	int m = 0, n;

	if (!res)
		return -1;
	edges = calloc((size_t)PQntuples(res) + 1, sizeof *edges);
	if (!edges)
		abort();
	for (int i = 0; i < PQntuples(res); i++) {
		struct fk_edge ed = { -1, -1, !strcmp(PQgetvalue(res, i, 2), "t") };

		for (int t = 0; t < e->s->ntables; t++) {
			if (!strcmp(e->s->table[t], PQgetvalue(res, i, 0)))
				ed.child = t;
			if (!strcmp(e->s->table[t], PQgetvalue(res, i, 1)))
				ed.parent = t;
		}
		if (ed.child >= 0 && ed.parent >= 0)
			edges[m++] = ed;
	}
	PQclear(res);
	n = fk_order(e->s->ntables, edges, m, order, groups);
	free(edges);
	return n;
}

/* Copies tables that reference each other, every key among them DEFERRABLE, in ONE
 * transaction with the checks deferred to its end: no order of their rows satisfies
 * immediate checks (a cycle, a row pointing to a later one). Their pages are counted once it
 * committed. 0, or -1 with everything rolled back (the error set when the cause was not the
 * final check). */
static int copy_group(struct copy_ctx *x, const int *tables, int n)
{
	const struct copy_env *e = x->e;
	int rc = -1;

	if (db_run(e->c, "copy group", "BEGIN", 0, NULL) < 0)
		return -1;
	if (db_run(e->c, "copy group", Q_APPLY_MODE, 0, NULL) < 0 ||
	    db_run(e->c, "copy group", Q_GROUP_ASYNC, 0, NULL) < 0 ||
	    db_run(e->c, "copy group", "SET CONSTRAINTS ALL DEFERRED", 0, NULL) < 0)
		goto out;
	x->nested = 1;
	for (int i = 0; i < n; i++)
		if (copy_table(x, tables[i]) < 0)
			goto out;
	if (db_run(e->c, "copy group: check keys", "SET CONSTRAINTS ALL IMMEDIATE", 0, NULL) < 0) {
		snprintf(e->error, e->errlen, "%s", db_last_error());
		goto out;
	}
	rc = db_run(e->c, "copy group", "COMMIT", 0, NULL);
out:
	if (rc < 0)
		db_run(e->c, "copy group", "ROLLBACK", 0, NULL);
	x->nested = 0;
	for (int i = 0; i < x->nheld; i++) {
		if (rc == 0)
			copy_page_done(x, &x->held[i]);
		apply_summary_free(&x->held[i]);
	}
	free(x->held);
	x->held = NULL;
	x->nheld = 0;
	return rc;
}

int copy_initial(const struct copy_env *e)
{
	struct upstream f = *e->f;
	struct httpc_resp resp = { 0 };
	struct copy_ctx x = { .e = e };
	struct retry_counts fixed = { 0 };
	struct fk_group *groups = NULL;
	cJSON *j = NULL;
	char *start = NULL, jerr[128];
	const char *params[2] = { e->s->name, NULL };
	int rc = -1, resync = e->s->needs_resync, rr, ngroups, *order = NULL;
	long st;

	log_info("source %s: initial sync%s", e->s->name, resync ? " (re-sync)" : "");
	/* the replica role for this session (apply_replica_role), or the fallback: the order
	 * of the tables and of their rows must then satisfy the replica's foreign keys */
	if ((rr = apply_replica_role(e->c)) < 0)
		goto dberr;
	order = malloc((size_t)(e->s->ntables + 1) * sizeof *order);
	groups = malloc((size_t)(e->s->ntables + 1) * sizeof *groups);
	if (!order || !groups)
		abort();
	if ((ngroups = copy_order(e, order, groups)) < 0)
		goto dberr;
	st = upstream_snapshot(&f, &resp);
	if (st < 0) {
		snprintf(e->error, e->errlen, "%s", f.error);
		goto out;
	}
	if (st != 200) {
		copy_http_error(e, "snapshot", &resp);
		goto out;
	}
	j = json_parse_strict(resp.body, resp.len, jerr, sizeof jerr);
	if (!j || !json_get_string(j, "cursor")) {
		snprintf(e->error, e->errlen, "snapshot: bad answer from primary");
		goto out;
	}
	start = strdup(json_get_string(j, "cursor"));
	if (resync && db_run(e->c, "re-sync: begin", Q_RESYNC_BEGIN, 1, params) < 0)
		goto dberr;
	/* parents first: with the replica role any order would do, but this one also leaves
	 * no child without its parent when nothing changes on the primary meanwhile */
	for (int g = 0; g < ngroups; g++) {
		const struct fk_group *gr = &groups[g];

		if (!rr && gr->cyclic && gr->deferrable) {
			if (copy_group(&x, order + gr->first, gr->n) == 0)
				continue;
			if (copy_stopping(e))
				goto out;
			log_warn("source %s: copying %s and the tables it references in one transaction "
			         "failed (%s): copying them page by page", e->s->name,
			         e->s->table[order[gr->first]], e->error);
		}
		for (int i = gr->first; i < gr->first + gr->n; i++)
			if (copy_table(&x, order[i]) < 0)
				goto out;
		/* without the replica role, rows refused because a row they point to came later
		 * (a table referencing itself, a cycle of keys not deferrable) go in now, before
		 * the tables that reference them */
		if (!rr && gr->cyclic && x.failed > 0) {
			struct retry_counts n = { 0 };

			if (retry_run_keys(e->c, e->run_id, &n) < 0)
				goto dberr;
			if (n.tried)
				log_info("source %s: %ld rows of %s first refused by a foreign key went in "
				         "once the rows they point to were copied", e->s->name, n.tried,
				         e->s->table[order[gr->first]]);
			x.synced += n.synced;
			x.skipped += n.skipped;
			x.failed -= n.tried;
			fixed.tried += n.tried;
			fixed.synced += n.synced;
			fixed.skipped += n.skipped;
		}
	}
	if (e->retried)
		*e->retried = fixed;
	/* a re-sync removes what the copy did not see, children before their parents */
	for (int i = e->s->ntables - 1; resync && i >= 0; i--) {
		long n = apply_finish_resync(e->c, e->s->name, e->s->table[order[i]]);

		if (n < 0)
			goto dberr;
		if (n > 0)
			log_info("source %s: re-sync removed %ld rows of %s gone from the primary",
			         e->s->name, n, e->s->table[order[i]]);
	}
	params[1] = start;
	if (db_run(e->c, "initial sync: store cursor", Q_SET_START_CURSOR, 2, params) < 0)
		goto dberr;
	free(e->s->cursor);
	e->s->cursor = start;
	start = NULL;
	e->s->needs_resync = 0;
	/* what went in, not what was fetched: skipped rows (unchanged, edited here, switched
	 * off) and failed ones are named apart */
	if (x.failed)
		log_warn("source %s: initial sync copied %ld rows (%ld skipped, %ld failed: "
		         "`tdgl-replica log --status Failed`); streaming changes from its starting "
		         "cursor", e->s->name, x.synced, x.skipped, x.failed);
	else if (x.skipped)
		log_info("source %s: initial sync copied %ld rows (%ld skipped); streaming changes "
		         "from its starting cursor", e->s->name, x.synced, x.skipped);
	else
		log_info("source %s: initial sync copied %ld rows; streaming changes from its "
		         "starting cursor", e->s->name, x.synced);
	rc = 0;
	goto out;
dberr:
	snprintf(e->error, e->errlen, "database: %s", db_last_error());
out:
	cJSON_Delete(j);
	httpc_resp_free(&resp);
	free(start);
	free(order);
	free(groups);
	return rc;
}
