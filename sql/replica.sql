-- tdgl-replica schema, version 6. Idempotent: every statement may run again, and an older
-- version is upgraded by running it again (new columns are added with ADD COLUMN IF NOT EXISTS).
-- Applied by `tdgl-replica migrate` (db_migrate, under an advisory lock).
--
-- The apply path lives here, set-based: tdgl_replica.apply_page() takes the primary's page split into
-- arrays, snapshots as `json` (exact text: float -0, NaN, numeric scale, bytea hex survive),
-- cuts it into runs
-- (consecutive changes of one table and one op class, no key twice) and applies each run in
-- ONE statement; a failing run is re-applied change by change under savepoints so that only
-- the failing change is logged Failed. The source's cursor moves in the same transaction.

-- Version 6: the replica's state moved from schema tdgl to tdgl_replica, so that one database
-- can hold both roles (a site of a two-way sync runs tdgl-primary and tdgl-replica on its own
-- database). A replica database of version <= 5 is renamed in place; every function is then
-- replaced below (their bodies named tdgl.*), and what refers to objects by oid (triggers,
-- foreign keys, types in signatures, sequences of defaults) follows the rename by itself.
DO $$
BEGIN
	IF to_regnamespace('tdgl_replica') IS NULL AND to_regclass('tdgl.sources') IS NOT NULL
	   AND to_regclass('tdgl.change_log') IS NULL THEN
		ALTER SCHEMA tdgl RENAME TO tdgl_replica;
	END IF;
END $$;

CREATE SCHEMA IF NOT EXISTS tdgl_replica;

CREATE TABLE IF NOT EXISTS tdgl_replica.schema_version (
	version    int PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tdgl_replica.sources (
	name               text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
	url                text NOT NULL,
	api_key            text NOT NULL,
	api_secret_sealed  text NOT NULL,          -- crypto_seal(TDGL_SECRET_KEY, secret)
	cursor             text,                   -- NULL: initial sync pending
	needs_resync       bool NOT NULL DEFAULT false, -- the cursor expired (410): sweep after copy
	batch_size         int  NOT NULL DEFAULT 500 CHECK (batch_size BETWEEN 1 AND 500),
	poll_interval      int  NOT NULL DEFAULT 60 CHECK (poll_interval >= 1),
	cron               text,                   -- 5-field cron (issue 4); NULL: interval
	tz                 text,
	push_secret_sealed text,                   -- HMAC secret of /api/notify, sealed too
	long_poll          bool NOT NULL DEFAULT false,
	enabled            bool NOT NULL DEFAULT true,
	retry_base_s       int  NOT NULL DEFAULT 300,  -- Failed change retry base delay
	max_retries        int  NOT NULL DEFAULT 3,
	rate_limit         double precision,           -- requests/s to the primary; NULL: none
	last_run_at        timestamptz,
	last_status        text,
	last_error         text,
	created_at         timestamptz NOT NULL DEFAULT now()
);

-- Observability: the primary's capture time of the newest change applied (lag is now minus
-- this) and when the cursor last moved; read by /metrics and `tdgl-replica status`.
ALTER TABLE tdgl_replica.sources ADD COLUMN IF NOT EXISTS last_change_at timestamptz;
ALTER TABLE tdgl_replica.sources ADD COLUMN IF NOT EXISTS cursor_moved_at timestamptz;

-- Version 2: pages of 500 by default (each page has a fixed cost on both sites: 100-change
-- pages caught up ~5x slower). Existing sources keep the size they were given.
ALTER TABLE tdgl_replica.sources ALTER COLUMN batch_size SET DEFAULT 500;

CREATE TABLE IF NOT EXISTS tdgl_replica.source_tables (
	source                 text NOT NULL REFERENCES tdgl_replica.sources(name) ON DELETE CASCADE,
	tbl                    text NOT NULL,      -- as the primary names it: "t" or "schema.t"
	filter                 jsonb CHECK (filter IS NULL OR jsonb_typeof(filter) = 'object'),
	insert_enabled         bool NOT NULL DEFAULT true,
	update_enabled         bool NOT NULL DEFAULT true,
	delete_enabled         bool NOT NULL DEFAULT true,
	update_without_changes bool NOT NULL DEFAULT false,
	attach_columns         text[] NOT NULL DEFAULT '{}',
	PRIMARY KEY (source, tbl)
);

CREATE TABLE IF NOT EXISTS tdgl_replica.runs (
	id          bigserial PRIMARY KEY,
	source      text NOT NULL,
	trigger     text NOT NULL CHECK (trigger IN
	            ('Scheduler', 'Webhook', 'Manual', 'API', 'Initial', 'Retry', 'LongPoll')),
	started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
	ended_at    timestamptz,
	status      text NOT NULL DEFAULT 'Running' CHECK (status IN
	            ('Running', 'Success', 'Partial', 'Failed', 'Skipped')),
	fetched     int NOT NULL DEFAULT 0,
	synced      int NOT NULL DEFAULT 0,
	failed      int NOT NULL DEFAULT 0,
	skipped     int NOT NULL DEFAULT 0,
	conflicts   int NOT NULL DEFAULT 0,
	pages       int NOT NULL DEFAULT 0,
	dry_run     bool NOT NULL DEFAULT false,
	error       text
);
CREATE INDEX IF NOT EXISTS runs_source_idx ON tdgl_replica.runs (source, id);

CREATE TABLE IF NOT EXISTS tdgl_replica.sync_log (
	id            bigserial PRIMARY KEY,
	source        text NOT NULL,
	change_id     bigint,                  -- NULL for rows copied by an initial sync
	tbl           text NOT NULL,
	pk            jsonb,
	op            text NOT NULL,
	status        text NOT NULL CHECK (status IN ('Synced', 'Failed', 'Skipped')),
	reason        text,                    -- why Skipped
	error         text,                    -- database error of a Failed change
	sqlstate      text,
	attempts      int NOT NULL DEFAULT 1,
	next_retry_at timestamptz,             -- Failed: when the retry is due
	change        json,                    -- Failed: the change itself, for the retry
	run_id        bigint,
	created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS sync_log_run_idx ON tdgl_replica.sync_log (run_id);
-- Failed entries are few; this lets an applied change supersede them cheaply.
CREATE INDEX IF NOT EXISTS sync_log_failed_idx ON tdgl_replica.sync_log (source, tbl, pk)
	WHERE status = 'Failed';

CREATE TABLE IF NOT EXISTS tdgl_replica.local_edits (
	tbl       text NOT NULL,
	pk        jsonb NOT NULL,
	op        text NOT NULL,
	edited_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tbl, pk)
);

CREATE TABLE IF NOT EXISTS tdgl_replica.conflicts (
	id          bigserial PRIMARY KEY,
	source      text NOT NULL,
	tbl         text NOT NULL,
	pk          jsonb NOT NULL,
	change_id   bigint,
	op          text NOT NULL,
	old_pk      json,                 -- Rename: the key the primary renamed from
	primary_row json,                 -- newest primary snapshot, exact text
	local_row   json,                 -- the local row when the conflict was (re)freshed
	status      text NOT NULL DEFAULT 'Open' CHECK (status IN ('Open', 'Resolved')),
	resolution  text CHECK (resolution IN ('Accept Primary', 'Keep Local')),
	refreshed   int NOT NULL DEFAULT 0,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	resolved_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS conflicts_open_idx ON tdgl_replica.conflicts (tbl, pk)
	WHERE status = 'Open';

-- Attachment files fetched into the files directory: a file present with the recorded size
-- and SHA-256 is not fetched again.
CREATE TABLE IF NOT EXISTS tdgl_replica.files (
	path       text PRIMARY KEY,
	size       bigint NOT NULL,
	sha256     text NOT NULL,
	fetched_at timestamptz NOT NULL DEFAULT now()
);

-- Re-sync after a 410: keys seen by the copy, so rows deleted meanwhile can be swept.
CREATE UNLOGGED TABLE IF NOT EXISTS tdgl_replica.resync_seen (
	source text NOT NULL,
	tbl    text NOT NULL,
	pk     jsonb NOT NULL,
	PRIMARY KEY (source, tbl, pk)
);

DO $$
BEGIN
	IF to_regtype('tdgl_replica.change') IS NULL THEN
		CREATE TYPE tdgl_replica.change AS (ord int, id bigint, op text, pk json, old_pk json, "row" json);
	END IF;
END $$;

-- "customer" -> public.customer, "s.t" -> s.t; NULL when the table does not exist.
CREATE OR REPLACE FUNCTION tdgl_replica.local_table(p_tbl text) RETURNS regclass
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN strpos(p_tbl, '.') = 0
		THEN to_regclass(format('public.%I', p_tbl))
		ELSE to_regclass(format('%I.%I', split_part(p_tbl, '.', 1),
		                        substr(p_tbl, strpos(p_tbl, '.') + 1))) END
$$;

-- The sync name of a local table (inverse of local_table).
CREATE OR REPLACE FUNCTION tdgl_replica.table_name(p_rel regclass) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_rel
$$;

-- Schema-qualified, quoted name: also usable as a type name (NULL::public.line is the
-- table's row type, while NULL::line would be PostgreSQL's geometric type).
-- plpgsql, not sql, here and in pk_columns: a sql function with a FROM is parsed and
-- planned on every call (it cannot be inlined), a plpgsql one keeps its plan per session;
-- both run on every apply of a run.
CREATE OR REPLACE FUNCTION tdgl_replica.qualified(p_rel regclass) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (SELECT format('%I.%I', n.nspname, c.relname)
	        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_rel);
END $$;

-- Primary-key columns of a table, in key order (NULL when it has none).
CREATE OR REPLACE FUNCTION tdgl_replica.pk_columns(p_rel regclass) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
	        FROM pg_index i
	        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
	        WHERE i.indrelid = p_rel AND i.indisprimary);
END $$;

-- Apply sessions run with session_replication_role = replica when the database role may
-- set it (a superuser, or on PostgreSQL 15+ a role granted SET ON PARAMETER
-- session_replication_role): the replica's foreign-key checks and its ordinary triggers do
-- not fire for applied rows, as in PostgreSQL's logical replication workers (and Slony-I,
-- Bucardo). The primary already checked its keys, and its cascades arrive as the changes
-- they made. p_session: for the rest of the session (a pull's own connection: set once,
-- since every change of the setting resets the session's plan cache), else for the caller's
-- transaction. Returns whether it is in effect; false is the fallback (foreign keys are
-- checked during apply, docs/operations.md).
CREATE OR REPLACE FUNCTION tdgl_replica.replica_role(p_session bool) RETURNS bool
LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('session_replication_role') = 'replica' THEN
		RETURN true;
	END IF;
	BEGIN
		PERFORM set_config('session_replication_role', 'replica', NOT p_session);
	EXCEPTION WHEN insufficient_privilege THEN
		RETURN false;
	END;
	RETURN true;
END $$;

-- Apply mode for the caller's transaction (a copy page, a retry, a conflict resolution, a
-- dry run): tdgl.applying on (the local-edit triggers skip it), the replica role when
-- permitted; without it every constraint is checked when its statement ends (SET
-- CONSTRAINTS ALL IMMEDIATE), so a violated deferrable key fails the change, which is then
-- logged, rather than the commit of the whole transaction. Returns tdgl_replica.replica_role's answer.
CREATE OR REPLACE FUNCTION tdgl_replica.apply_mode() RETURNS bool
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('tdgl.applying', 'on', true);
	IF tdgl_replica.replica_role(false) THEN
		RETURN true;
	END IF;
	SET CONSTRAINTS ALL IMMEDIATE;
	RETURN false;
END $$;

-- Foreign keys between the local tables of a source's configured tables (sync names), for
-- the initial sync's table order (replica/fkorder.h).
CREATE OR REPLACE FUNCTION tdgl_replica.source_fks(p_source text)
RETURNS TABLE (child text, parent text, is_deferrable bool) LANGUAGE sql STABLE AS $$
	WITH t AS (SELECT tbl, tdgl_replica.local_table(tbl) AS rel FROM tdgl_replica.source_tables
	           WHERE source = p_source)
	SELECT c.tbl, p.tbl, k.condeferrable
	FROM pg_constraint k JOIN t c ON c.rel = k.conrelid JOIN t p ON p.rel = k.confrelid
	WHERE k.contype = 'f'
	ORDER BY 1, 2
$$;

-- Local-edit trigger: TG_ARGV[0] = sync table name, TG_ARGV[1..] = key columns.
-- Skipped in the apply session, so re-applying a primary row never looks like a local edit.
CREATE OR REPLACE FUNCTION tdgl_replica.local_edit_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	r  jsonb;
	k  jsonb;
	ko jsonb;
	i  int;
BEGIN
	IF current_setting('tdgl.applying', true) IS NOT DISTINCT FROM 'on' THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'DELETE' THEN r := to_jsonb(OLD); ELSE r := to_jsonb(NEW); END IF;
	k := '{}';
	FOR i IN 1 .. TG_NARGS - 1 LOOP
		k := k || jsonb_build_object(TG_ARGV[i], r -> TG_ARGV[i]);
	END LOOP;
	INSERT INTO tdgl_replica.local_edits (tbl, pk, op) VALUES (TG_ARGV[0], k, TG_OP)
	ON CONFLICT (tbl, pk) DO UPDATE SET op = EXCLUDED.op, edited_at = now();
	IF TG_OP = 'UPDATE' THEN
		-- a key change protects the old key too
		r := to_jsonb(OLD);
		ko := '{}';
		FOR i IN 1 .. TG_NARGS - 1 LOOP
			ko := ko || jsonb_build_object(TG_ARGV[i], r -> TG_ARGV[i]);
		END LOOP;
		IF ko <> k THEN
			INSERT INTO tdgl_replica.local_edits (tbl, pk, op) VALUES (TG_ARGV[0], ko, TG_OP)
			ON CONFLICT (tbl, pk) DO UPDATE SET op = EXCLUDED.op, edited_at = now();
		END IF;
	END IF;
	RETURN NULL;
END $$;

-- Installs (or refreshes) the local-edit trigger on a synced table.
CREATE OR REPLACE FUNCTION tdgl_replica.watch_table(p_rel regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	pk text[] := tdgl_replica.pk_columns(p_rel);
	args text;
BEGIN
	IF pk IS NULL THEN
		RAISE EXCEPTION 'table % has no primary key; it cannot be synced', p_rel
			USING ERRCODE = '42P10';
	END IF;
	SELECT string_agg(quote_literal(x), ', ') INTO args
	FROM unnest(tdgl_replica.table_name(p_rel) || pk) AS x;
	-- the WHEN clause skips the apply session without calling PL/pgSQL at all (measured:
	-- the call alone doubled the cost of applying a page)
	EXECUTE format('CREATE OR REPLACE TRIGGER tdgl_local_edit AFTER INSERT OR UPDATE OR DELETE '
	               'ON %s FOR EACH ROW WHEN (current_setting(''tdgl.applying'', true) '
	               'IS DISTINCT FROM ''on'') EXECUTE FUNCTION tdgl_replica.local_edit_trigger(%s)',
	               p_rel, args);
	-- ALWAYS: an edit is local whatever session_replication_role its session runs with
	-- (another replication tool, a script loading rows without FK checks); only tdgl's
	-- apply session (tdgl.applying) is not a local edit. That takes the table's owner
	-- (creating the trigger only the TRIGGER privilege): for another role it stays an
	-- ordinary trigger, which misses only the edits of sessions running as replica.
	BEGIN
		EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER tdgl_local_edit', p_rel);
	EXCEPTION WHEN insufficient_privilege THEN
		RAISE WARNING 'tdgl_local_edit on %: not the table''s owner, so edits made by sessions '
		              'running as replica are not recorded as local edits', p_rel;
	END;
END $$;

-- Watches every configured table of a source that exists locally; returns the tables that
-- do not exist (yet) on the replica.
CREATE OR REPLACE FUNCTION tdgl_replica.watch_source(p_source text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
	t text;
	missing text[] := '{}';
BEGIN
	FOR t IN SELECT tbl FROM tdgl_replica.source_tables WHERE source = p_source ORDER BY tbl LOOP
		IF tdgl_replica.local_table(t) IS NULL THEN
			missing := missing || t;
		ELSE
			PERFORM tdgl_replica.watch_table(tdgl_replica.local_table(t));
		END IF;
	END LOOP;
	RETURN missing;
END $$;

-- Applies one run: changes of one table, one op class ('U' upsert, 'D' delete, 'R' rename),
-- no key twice. Everything (classification, conflicts, subset removal, the apply itself,
-- the log) is ONE statement. Raises when anything fails; the caller then retries change by
-- change. p_initial: rows of an initial sync (only non-Synced outcomes are logged).
-- p_force: a conflict resolution (no filter, flag or local-edit checks).
-- p_repeats: an upsert run that may hold a key several times, in page order (apply_runs
-- merges the runs of a stretch so; only for a table without filter, with inserts and updates
-- enabled): each change gets the outcome it would get applied one by one (a later change of
-- a row that changes nothing is 'no changes', every change of a locally edited row is a
-- conflict, refreshing it once each), the row takes its last applied snapshot, the conflict
-- its last change. The intermediate versions exist only inside the transaction either way.
-- Returns {"synced","skipped","conflicts","files":[...]}.
DROP FUNCTION IF EXISTS tdgl_replica.apply_run(text, bigint, text, text, tdgl_replica.change[], bool, bool);
CREATE OR REPLACE FUNCTION tdgl_replica.apply_run(p_source text, p_run_id bigint, p_tbl text,
	p_cls text, p_ch tdgl_replica.change[], p_initial bool DEFAULT false, p_force bool DEFAULT false,
	p_repeats bool DEFAULT false)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
	rel     regclass := tdgl_replica.local_table(p_tbl);
	qrel    text := tdgl_replica.qualified(rel);
	cfg     tdgl_replica.source_tables;
	pk      text[];
	cols    text[];        -- columns both the snapshots and the local table have
	upd     text[];        -- of those, the ones an update may set
	keys    text[];
	n       int := cardinality(p_ch);
	q       text;
	pkjoin  text;          -- l.<pk> = p.<pk>, inside CTE w
	pkobj   text;          -- jsonb_build_object over the populated record's key
	wjoin   text;          -- l.<pk> = (w.rec).<pk>, in the CTEs that modify the table
	ptxt    text;          -- the populated record's columns as text, for 'no changes'
	c       text;
	res     json;
BEGIN
	IF rel IS NULL THEN
		RAISE EXCEPTION 'relation "%" does not exist on the replica', p_tbl USING ERRCODE = '42P01';
	END IF;
	SELECT * INTO cfg FROM tdgl_replica.source_tables WHERE source = p_source AND tbl = p_tbl;
	IF NOT FOUND THEN
		cfg.insert_enabled := true; cfg.update_enabled := true; cfg.delete_enabled := true;
		cfg.update_without_changes := false; cfg.attach_columns := '{}';
	END IF;
	pk := tdgl_replica.pk_columns(rel);
	IF pk IS NULL THEN
		RAISE EXCEPTION 'table % has no primary key on the replica', p_tbl USING ERRCODE = '42P10';
	END IF;
	-- Keys every snapshot of the run has. Snapshots taken under one table definition share
	-- one key set, so the first and last are compared and only a run that straddles DDL on
	-- the primary reads them all (each read parses the whole snapshot).
	IF p_cls <> 'D' THEN
		SELECT array_agg(k ORDER BY k) INTO keys
		FROM json_object_keys(p_ch[array_lower(p_ch, 1)]."row") k;
		IF n > 1 AND keys IS DISTINCT FROM (SELECT array_agg(k ORDER BY k)
		              FROM json_object_keys(p_ch[array_upper(p_ch, 1)]."row") k) THEN
			SELECT array_agg(k) INTO keys FROM (
				SELECT k FROM unnest(p_ch) ch, json_object_keys(ch."row") k
				WHERE ch."row" IS NOT NULL GROUP BY k HAVING count(*) = n) s;
		END IF;
	END IF;
	SELECT array_agg(a.attname::text ORDER BY a.attnum),
	       array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attidentity <> 'a')
	INTO cols, upd
	FROM pg_attribute a
	WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
	  AND (p_cls = 'D' OR a.attname = ANY (keys));
	FOREACH c IN ARRAY pk LOOP
		IF p_cls <> 'D' AND NOT (c = ANY (coalesce(cols, '{}'))) THEN
			RAISE EXCEPTION 'snapshot of % lacks key column %', p_tbl, c USING ERRCODE = '42703';
		END IF;
	END LOOP;
	SELECT string_agg(format('l.%1$I = p.%1$I', x), ' AND '),
	       string_agg(format('%1$L, p.%1$I', x), ', '),
	       string_agg(format('l.%1$I = (w.rec).%1$I', x), ' AND ')
	INTO pkjoin, pkobj, wjoin FROM unnest(pk) x;

	IF p_cls = 'U' THEN
		IF p_repeats AND NOT (cfg.filter IS NULL AND cfg.insert_enabled AND cfg.update_enabled
		                      AND NOT p_force) THEN
			RAISE EXCEPTION 'a run repeating keys needs a table without filter or switches off';
		END IF;
		SELECT 'ROW(' || string_agg(format('p.%I::text', x), ', ') || ')' INTO ptxt
		FROM unnest(cols) x;
		-- tdgl_replica.copy_apply repeats the conf, gone and up CTEs below over its staged rows
		-- (another input relation and parameters): a change to either belongs in both.
		-- With p_repeats, w0's outcome holds for a key's first change (and a conflict for
		-- all); a later one changes nothing when its snapshot equals the one before (the
		-- row then holds that one, applied or equal), and only a key's last change with an
		-- outcome writes the row or the conflict.
		q := format($q$
WITH w0 AS (
	SELECT ch.ord, ch.id, ch.op, ch."row", ROW(p.*)::%1$s AS rec,
	       jsonb_build_object(%3$s) AS lpk,
	       l.ctid IS NOT NULL AS present,
	       CASE
	         WHEN $6 THEN NULL
	         WHEN $2::jsonb IS NOT NULL AND NOT (ch."row"::jsonb @> $2::jsonb) THEN 'filter'
	         WHEN EXISTS (SELECT 1 FROM tdgl_replica.local_edits e
	                      WHERE e.tbl = $3 AND e.pk = jsonb_build_object(%3$s)) THEN 'conflict'
	         WHEN l.ctid IS NULL AND NOT $4 THEN 'insert disabled'
	         WHEN l.ctid IS NOT NULL AND NOT $5 THEN 'update disabled'
	         WHEN l.ctid IS NOT NULL AND NOT $7 AND (%4$s) IS NOT DISTINCT FROM (%5$s)
	           THEN 'no changes'
	       END AS skip%11$s
	FROM unnest($1::tdgl_replica.change[]) ch
	CROSS JOIN LATERAL json_populate_record(NULL::%1$s, ch."row") p
	LEFT JOIN %1$s l ON %2$s
), w AS (
	SELECT %12$s FROM w0 %15$s
), conf AS (
	INSERT INTO tdgl_replica.conflicts AS k (source, tbl, pk, change_id, op, primary_row, local_row,
	                                 refreshed)
	SELECT %13$s $8, $3, w.lpk, w.id, w.op, w."row",
	       (SELECT row_to_json(l.*) FROM %1$s l WHERE %10$s),  -- only for conflicts: costly
	       w.cnt - 1
	FROM w WHERE w.skip = 'conflict' %14$s
	ON CONFLICT (tbl, pk) WHERE status = 'Open' DO UPDATE
	SET change_id = EXCLUDED.change_id, op = EXCLUDED.op, primary_row = EXCLUDED.primary_row,
	    local_row = EXCLUDED.local_row, source = EXCLUDED.source, old_pk = NULL,
	    refreshed = k.refreshed + EXCLUDED.refreshed + 1, updated_at = now()
	RETURNING 1
), gone AS (
	-- a row that left the subset is removed, unless it was edited here
	DELETE FROM %1$s l USING w
	WHERE w.skip = 'filter' AND w.present AND %10$s
	  AND NOT EXISTS (SELECT 1 FROM tdgl_replica.local_edits e WHERE e.tbl = $3 AND e.pk = w.lpk)
	RETURNING 1
), up AS (
	INSERT INTO %1$s AS l (%6$s) OVERRIDING SYSTEM VALUE
	SELECT %13$s %7$s FROM w WHERE w.skip IS NULL %14$s
	ON CONFLICT (%8$s) DO %9$s
	RETURNING 1
), sup AS (
	UPDATE tdgl_replica.sync_log s SET status = 'Skipped', reason = 'superseded by change ' || w.id,
	       next_retry_at = NULL
	FROM w WHERE w.skip IS NULL AND w.id IS NOT NULL AND s.status = 'Failed'
	  AND s.source = $8 AND s.tbl = $3 AND s.pk = w.lpk AND s.change_id < w.id
	RETURNING 1
), lg AS (
	INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status, reason, run_id)
	SELECT $8, w.id, $3, w.lpk, w.op,
	       CASE WHEN w.skip IS NULL THEN 'Synced' ELSE 'Skipped' END,
	       CASE WHEN w.skip = 'filter' AND w.present THEN 'filter: left the subset'
	            WHEN w.skip = 'conflict' THEN 'conflict: row edited locally'
	            ELSE w.skip END,
	       $9
	FROM w WHERE NOT $10 OR w.skip IS NOT NULL
	ORDER BY w.ord
	RETURNING 1
)
SELECT json_build_object(
	'synced', count(*) FILTER (WHERE skip IS NULL),
	'skipped', count(*) FILTER (WHERE skip IS NOT NULL),
	'conflicts', count(*) FILTER (WHERE skip = 'conflict'),
	'files', (SELECT coalesce(json_agg(DISTINCT v), '[]') FROM w, unnest($11::text[]) col,
	          LATERAL (SELECT w."row" ->> col AS v) x
	          WHERE w.skip IS NULL AND x.v LIKE '/files/%%'))
FROM w
$q$,
			qrel, pkjoin, pkobj,
			(SELECT 'ROW(' || string_agg(format('l.%I::text', x), ', ') || ')' FROM unnest(cols) x),
			ptxt,
			(SELECT string_agg(format('%I', x), ', ') FROM unnest(cols) x),
			(SELECT string_agg(format('(w.rec).%I', x), ', ') FROM unnest(cols) x),
			(SELECT string_agg(format('%I', x), ', ') FROM unnest(pk) x),
			CASE WHEN (SELECT count(*) FROM unnest(upd) x WHERE x <> ALL (pk)) = 0 THEN 'NOTHING'
			     ELSE 'UPDATE SET ' || (SELECT string_agg(format('%1$I = EXCLUDED.%1$I', x), ', ')
			                           FROM unnest(upd) x WHERE x <> ALL (pk)) END,
			wjoin,
			CASE WHEN p_repeats THEN ', ' || ptxt || ' AS ptxt' ELSE '' END,
			CASE WHEN p_repeats THEN
				'ord, id, op, "row", rec, lpk, present, '
				'CASE WHEN row_number() OVER k = 1 OR skip = ''conflict'' THEN skip '
				'WHEN NOT $7 AND lag(ptxt) OVER k IS NOT DISTINCT FROM ptxt '
				'THEN ''no changes'' END AS skip, count(*) OVER (PARTITION BY lpk) AS cnt'
			     ELSE '*, 1 AS cnt' END,
			CASE WHEN p_repeats THEN 'DISTINCT ON (w.lpk)' ELSE '' END,
			CASE WHEN p_repeats THEN 'ORDER BY w.lpk, w.ord DESC' ELSE '' END,
			CASE WHEN p_repeats THEN 'WINDOW k AS (PARTITION BY lpk ORDER BY ord)' ELSE '' END);
		EXECUTE q INTO res USING p_ch, cfg.filter, p_tbl, cfg.insert_enabled, cfg.update_enabled,
			p_force, cfg.update_without_changes, p_source, p_run_id, p_initial,
			cfg.attach_columns;

	ELSIF p_cls = 'D' THEN
		q := format($q$
WITH w AS (
	SELECT ch.ord, ch.id, ch.op, ch."row", ROW(p.*)::%1$s AS rec,
	       jsonb_build_object(%3$s) AS lpk,
	       CASE
	         WHEN l.ctid IS NULL THEN 'already deleted'
	         WHEN $6 THEN NULL
	         WHEN EXISTS (SELECT 1 FROM tdgl_replica.local_edits e
	                      WHERE e.tbl = $3 AND e.pk = jsonb_build_object(%3$s)) THEN 'conflict'
	         WHEN NOT $4 THEN 'delete disabled'
	       END AS skip
	FROM unnest($1::tdgl_replica.change[]) ch
	CROSS JOIN LATERAL json_populate_record(NULL::%1$s, coalesce(ch.pk, ch."row")) p
	LEFT JOIN %1$s l ON %2$s
), conf AS (
	INSERT INTO tdgl_replica.conflicts AS k (source, tbl, pk, change_id, op, primary_row, local_row)
	SELECT $8, $3, w.lpk, w.id, w.op, w."row",
	       (SELECT row_to_json(l.*) FROM %1$s l WHERE %4$s)
	FROM w WHERE w.skip = 'conflict'
	ON CONFLICT (tbl, pk) WHERE status = 'Open' DO UPDATE
	SET change_id = EXCLUDED.change_id, op = EXCLUDED.op, primary_row = EXCLUDED.primary_row,
	    local_row = EXCLUDED.local_row, source = EXCLUDED.source, old_pk = NULL,
	    refreshed = k.refreshed + 1, updated_at = now()
	RETURNING 1
), del AS (
	DELETE FROM %1$s l USING w WHERE w.skip IS NULL AND %4$s
	RETURNING 1
), sup AS (
	UPDATE tdgl_replica.sync_log s SET status = 'Skipped', reason = 'superseded by change ' || w.id,
	       next_retry_at = NULL
	FROM w WHERE (w.skip IS NULL OR w.skip = 'already deleted') AND w.id IS NOT NULL
	  AND s.status = 'Failed' AND s.source = $8 AND s.tbl = $3 AND s.pk = w.lpk
	  AND s.change_id < w.id
	RETURNING 1
), lg AS (
	INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status, reason, run_id)
	SELECT $8, w.id, $3, w.lpk, w.op,
	       CASE WHEN w.skip IS NULL THEN 'Synced' ELSE 'Skipped' END,
	       CASE WHEN w.skip = 'conflict' THEN 'conflict: row edited locally' ELSE w.skip END,
	       $9
	FROM w ORDER BY w.ord
	RETURNING 1
)
SELECT json_build_object(
	'synced', count(*) FILTER (WHERE skip IS NULL),
	'skipped', count(*) FILTER (WHERE skip IS NOT NULL),
	'conflicts', count(*) FILTER (WHERE skip = 'conflict'),
	'files', '[]'::json)
FROM w
$q$,
			qrel, pkjoin, pkobj, wjoin);
		EXECUTE q INTO res USING p_ch, NULL::jsonb, p_tbl, cfg.delete_enabled, NULL::bool,
			p_force, NULL::bool, p_source, p_run_id;

	ELSIF p_cls = 'R' THEN
		-- rename: the row at old_pk takes the new key and snapshot; missing -> inserted
		q := format($q$
WITH w AS (
	SELECT ch.ord, ch.id, ch.op, ch."row", ch.old_pk, ROW(p.*)::%1$s AS rec, ROW(o.*)::%1$s AS orec,
	       jsonb_build_object(%3$s) AS lpk,
	       jsonb_build_object(%4$s) AS opk,
	       lo.ctid IS NOT NULL AS present,
	       ln.ctid IS NOT NULL AS new_present,
	       CASE
	         WHEN $6 THEN NULL
	         WHEN $2::jsonb IS NOT NULL AND NOT (ch."row"::jsonb @> $2::jsonb) THEN 'filter'
	         WHEN EXISTS (SELECT 1 FROM tdgl_replica.local_edits e WHERE e.tbl = $3
	                      AND e.pk IN (jsonb_build_object(%3$s), jsonb_build_object(%4$s)))
	           THEN 'conflict'
	         WHEN NOT $5 THEN 'update disabled'
	       END AS skip
	FROM unnest($1::tdgl_replica.change[]) ch
	CROSS JOIN LATERAL json_populate_record(NULL::%1$s, ch."row") p
	CROSS JOIN LATERAL json_populate_record(NULL::%1$s, ch.old_pk) o
	LEFT JOIN %1$s lo ON %2$s
	LEFT JOIN %1$s ln ON %11$s
), conf AS (
	INSERT INTO tdgl_replica.conflicts AS k (source, tbl, pk, change_id, op, old_pk, primary_row, local_row)
	SELECT $8, $3, w.opk, w.id, w.op, w.old_pk, w."row",
	       (SELECT row_to_json(lo.*) FROM %1$s lo WHERE %10$s)
	FROM w WHERE w.skip = 'conflict'
	ON CONFLICT (tbl, pk) WHERE status = 'Open' DO UPDATE
	SET change_id = EXCLUDED.change_id, op = EXCLUDED.op, primary_row = EXCLUDED.primary_row,
	    local_row = EXCLUDED.local_row, source = EXCLUDED.source, old_pk = EXCLUDED.old_pk,
	    refreshed = k.refreshed + 1, updated_at = now()
	RETURNING 1
), gone AS (
	DELETE FROM %1$s lo USING w WHERE w.skip = 'filter' AND w.present AND %10$s
	RETURNING 1
), mv AS (
	UPDATE %1$s lo SET %5$s FROM w
	WHERE w.skip IS NULL AND w.present AND NOT w.new_present AND %10$s
	RETURNING 1
), dup AS (
	-- the new key is already here (a replay over an initial copy that saw the rename):
	-- the old row goes, the new one takes the snapshot below
	DELETE FROM %1$s lo USING w WHERE w.skip IS NULL AND w.present AND w.new_present AND %10$s
	RETURNING 1
), ins AS (
	INSERT INTO %1$s AS l (%6$s) OVERRIDING SYSTEM VALUE
	SELECT %7$s FROM w WHERE w.skip IS NULL AND (NOT w.present OR w.new_present)
	ON CONFLICT (%8$s) DO %9$s
	RETURNING 1
), lg AS (
	INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status, reason, run_id)
	SELECT $8, w.id, $3, w.lpk, w.op,
	       CASE WHEN w.skip IS NULL THEN 'Synced' ELSE 'Skipped' END,
	       CASE WHEN w.skip = 'conflict' THEN 'conflict: row edited locally' ELSE w.skip END,
	       $9
	FROM w ORDER BY w.ord
	RETURNING 1
)
SELECT json_build_object(
	'synced', count(*) FILTER (WHERE skip IS NULL),
	'skipped', count(*) FILTER (WHERE skip IS NOT NULL),
	'conflicts', count(*) FILTER (WHERE skip = 'conflict'),
	'files', '[]'::json)
FROM w
$q$,
			qrel,
			(SELECT string_agg(format('lo.%1$I = o.%1$I', x), ' AND ') FROM unnest(pk) x),
			pkobj,
			(SELECT string_agg(format('%1$L, o.%1$I', x), ', ') FROM unnest(pk) x),
			(SELECT string_agg(format('%1$I = (w.rec).%1$I', x), ', ') FROM unnest(upd) x),
			(SELECT string_agg(format('%I', x), ', ') FROM unnest(cols) x),
			(SELECT string_agg(format('(w.rec).%I', x), ', ') FROM unnest(cols) x),
			(SELECT string_agg(format('%I', x), ', ') FROM unnest(pk) x),
			CASE WHEN (SELECT count(*) FROM unnest(upd) x WHERE x <> ALL (pk)) = 0 THEN 'NOTHING'
			     ELSE 'UPDATE SET ' || (SELECT string_agg(format('%1$I = EXCLUDED.%1$I', x), ', ')
			                           FROM unnest(upd) x WHERE x <> ALL (pk)) END,
			(SELECT string_agg(format('lo.%1$I = (w.orec).%1$I', x), ' AND ') FROM unnest(pk) x),
			(SELECT string_agg(format('ln.%1$I = p.%1$I', x), ' AND ') FROM unnest(pk) x));
		EXECUTE q INTO res USING p_ch, cfg.filter, p_tbl, NULL::bool, cfg.update_enabled,
			p_force, NULL::bool, p_source, p_run_id;
	ELSE
		RAISE EXCEPTION 'unknown op class %', p_cls;
	END IF;
	RETURN res;
END $$;

-- Applies a run in one statement; when that fails, change by change under savepoints so
-- that only the failing changes are logged Failed (with the database's error) and the rest
-- applied. Returns {"synced","skipped","conflicts","failed","files"}.
DROP FUNCTION IF EXISTS tdgl_replica.apply_safely(text, bigint, text, text, tdgl_replica.change[], bool);
CREATE OR REPLACE FUNCTION tdgl_replica.apply_safely(p_source text, p_run_id bigint, p_tbl text,
	p_cls text, p_ch tdgl_replica.change[], p_initial bool, p_repeats bool DEFAULT false) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
	res    json;
	ch     tdgl_replica.change;
	msg    text;
	st     text;
	syn    int := 0;
	skp    int := 0;
	cnf    int := 0;
	fld    int := 0;
	files  jsonb := '[]';
	base_s int;
BEGIN
	BEGIN
		RETURN tdgl_replica.apply_run(p_source, p_run_id, p_tbl, p_cls, p_ch, p_initial, false,
		                      p_repeats)::jsonb || '{"failed":0}';
	EXCEPTION
		WHEN SQLSTATE '40P01' OR SQLSTATE '40001' OR SQLSTATE '55P03' THEN RAISE;
		WHEN OTHERS THEN NULL;  -- fall through to change-by-change
	END;
	SELECT retry_base_s INTO base_s FROM tdgl_replica.sources WHERE name = p_source;
	FOREACH ch IN ARRAY p_ch LOOP
		BEGIN
			res := tdgl_replica.apply_run(p_source, p_run_id, p_tbl, p_cls, ARRAY[ch], p_initial);
			syn := syn + (res->>'synced')::int;
			skp := skp + (res->>'skipped')::int;
			cnf := cnf + (res->>'conflicts')::int;
			files := files || (res->'files')::jsonb;
		EXCEPTION
			WHEN SQLSTATE '40P01' OR SQLSTATE '40001' OR SQLSTATE '55P03' THEN RAISE;
			WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, st = RETURNED_SQLSTATE;
				INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status, error, sqlstate,
				                           next_retry_at, change, run_id)
				VALUES (p_source, ch.id, p_tbl, ch.pk::jsonb, ch.op, 'Failed', msg, st,
				        now() + make_interval(secs => coalesce(base_s, 300)),
				        json_build_object('id', ch.id, 'table', p_tbl, 'op', ch.op, 'pk', ch.pk,
				                          'old_pk', ch.old_pk, 'row', ch."row"),
				        p_run_id);
				fld := fld + 1;
		END;
	END LOOP;
	RETURN json_build_object('synced', syn, 'skipped', skp, 'conflicts', cnf, 'failed', fld,
	                         'files', files);
END $$;

-- Applies the runs of a page in run order (p_runs: the run of each change, replica/page.c).
-- A change without a table, or of a table the source does not configure, is ignored.
-- p_merge (the runs are cut by table): consecutive upsert runs of one table are the n-th
-- changes of the keys of one stretch (page_runs); for a table without filter, with inserts
-- and updates enabled, they go in one statement (apply_run's p_repeats), so a row changed by
-- every transaction of the page (a balance) costs one statement, not one per change.
-- Returns {"synced","failed","skipped","conflicts","ignored","files":[...]}.
DROP FUNCTION IF EXISTS tdgl_replica.apply_runs(text, bigint, bigint[], text[], text[], json[], json[],
	json[], int[]);
CREATE OR REPLACE FUNCTION tdgl_replica.apply_runs(p_source text, p_run_id bigint, p_ids bigint[],
	p_tbls text[], p_ops text[], p_pks json[], p_old_pks json[], p_rows json[], p_runs int[],
	p_merge bool DEFAULT false)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
	r     record;
	res   json;
	syn   int := 0;
	fld   int := 0;
	skp   int := 0;
	cnf   int := 0;
	ign   int := 0;
	files jsonb := '[]';
	pend  tdgl_replica.change[];     -- upsert runs of table ptbl, merged
	ptbl  text;
	prep  bool;              -- pend holds more than one run
	last  bool := false;
BEGIN
	FOR r IN
		SELECT u.run, min(u.tbl) AS tbl,
		       CASE min(u.op) WHEN 'Delete' THEN 'D' WHEN 'Rename' THEN 'R' ELSE 'U' END AS cls,
		       array_agg(ROW(u.ord::int, u.id, u.op, u.pk, u.old_pk, u."row")::tdgl_replica.change
		                 ORDER BY u.ord) AS chs,
		       (SELECT st.filter IS NULL AND st.insert_enabled AND st.update_enabled
		        FROM tdgl_replica.source_tables st
		        WHERE st.source = p_source AND st.tbl = min(u.tbl)) AS plain
		FROM unnest(p_ids, p_tbls, p_ops, p_pks, p_old_pks, p_rows, p_runs)
		     WITH ORDINALITY AS u(id, tbl, op, pk, old_pk, "row", run, ord)
		GROUP BY u.run
		UNION ALL
		SELECT NULL::int, NULL::text, NULL::text, NULL::tdgl_replica.change[], NULL::bool  -- the end
		ORDER BY 1 NULLS LAST
	LOOP
		last := r.run IS NULL;
		IF NOT last AND r.plain IS NULL THEN       -- not configured
			ign := ign + cardinality(r.chs);
			CONTINUE;
		END IF;
		IF NOT last AND pend IS NOT NULL AND r.cls = 'U' AND r.tbl = ptbl THEN
			pend := pend || r.chs;
			prep := true;
			CONTINUE;
		END IF;
		IF pend IS NOT NULL THEN
			IF prep THEN
				SELECT array_agg(c ORDER BY c.ord) INTO pend FROM unnest(pend) c;
			END IF;
			res := tdgl_replica.apply_safely(p_source, p_run_id, ptbl, 'U', pend, false, prep);
			syn := syn + (res->>'synced')::int;
			skp := skp + (res->>'skipped')::int;
			cnf := cnf + (res->>'conflicts')::int;
			fld := fld + (res->>'failed')::int;
			files := files || (res->'files')::jsonb;
			pend := NULL;
		END IF;
		IF last THEN
			EXIT;
		END IF;
		IF p_merge AND r.cls = 'U' AND r.plain THEN
			pend := r.chs;
			ptbl := r.tbl;
			prep := false;
			CONTINUE;
		END IF;
		res := tdgl_replica.apply_safely(p_source, p_run_id, r.tbl, r.cls, r.chs, false);
		syn := syn + (res->>'synced')::int;
		skp := skp + (res->>'skipped')::int;
		cnf := cnf + (res->>'conflicts')::int;
		fld := fld + (res->>'failed')::int;
		files := files || (res->'files')::jsonb;
	END LOOP;
	RETURN json_build_object('synced', syn, 'failed', fld, 'skipped', skp, 'conflicts', cnf,
	                         'ignored', ign, 'files', files);
END $$;

-- Applies one page of GET /api/changes and moves the source's cursor from p_prev_cursor to
-- p_cursor, all in the caller's transaction: applies and cursor commit together, so a crash
-- neither loses nor repeats a change. Raises 40001 when the cursor is no longer p_prev_cursor
-- (another pull got there first). Adds the counts to run p_run_id. The page comes split into
-- parallel arrays, one element per change in page order (replica/page.c): pk, old_pk and row
-- are the primary's JSON text verbatim (NULL unless an object); a change without a table is
-- ignored. Two cuts into runs come along (page_runs): p_table_runs groups each table's
-- changes of the whole page, p_runs only consecutive changes of one table.
-- With the replica role (tdgl_replica.replica_role; the pull's session keeps it) no foreign key or
-- ordinary trigger links rows of different tables, so p_table_runs applies: a page of
-- transactions that each touch several tables takes a few statements per table.
-- Without it (the fallback) the page keeps the primary's order across tables (p_runs), with
-- deferrable constraints deferred over the page (a child before its parent in the page is
-- fine) and checked before the cursor moves; when that check fails, the page is applied
-- again with every constraint checked at once, so that only the failing changes are logged
-- Failed rather than the commit failing (and the page being pulled again) forever.
-- Returns {"fetched","synced","failed","skipped","conflicts","ignored","files":[...],
-- "replica_role"}.
DROP FUNCTION IF EXISTS tdgl_replica.apply_page(text, json, text, text, bigint);
DROP FUNCTION IF EXISTS tdgl_replica.apply_page(text, bigint[], text[], text[], json[], json[], json[],
	text[], text, text, bigint);
DROP FUNCTION IF EXISTS tdgl_replica.apply_page(text, bigint[], text[], text[], json[], json[], json[],
	text[], int[], text, text, bigint);
CREATE OR REPLACE FUNCTION tdgl_replica.apply_page(p_source text, p_ids bigint[], p_tbls text[],
	p_ops text[], p_pks json[], p_old_pks json[], p_rows json[], p_changed_at text[],
	p_runs int[], p_table_runs int[], p_prev_cursor text, p_cursor text, p_run_id bigint)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
	prev     text := current_setting('tdgl.applying', true);
	rr       bool;
	checking bool := false;
	res      jsonb;
	fch      int := coalesce(cardinality(p_ids), 0);
	newest   timestamptz;
BEGIN
	PERFORM set_config('tdgl.applying', 'on', true);
	rr := tdgl_replica.replica_role(true);
	SELECT max(x::timestamptz) INTO newest FROM unnest(p_changed_at) x;
	UPDATE tdgl_replica.sources SET cursor = p_cursor, cursor_moved_at = now(),
	       last_change_at = greatest(last_change_at, newest)
	WHERE name = p_source AND cursor IS NOT DISTINCT FROM p_prev_cursor;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'cursor of source "%" moved: another pull applied this page', p_source
			USING ERRCODE = '40001';
	END IF;
	IF rr THEN
		res := tdgl_replica.apply_runs(p_source, p_run_id, p_ids, p_tbls, p_ops, p_pks, p_old_pks,
		                       p_rows, coalesce(p_table_runs, p_runs), p_table_runs IS NOT NULL);
	ELSE
		BEGIN
			SET CONSTRAINTS ALL DEFERRED;
			res := tdgl_replica.apply_runs(p_source, p_run_id, p_ids, p_tbls, p_ops, p_pks, p_old_pks,
			                       p_rows, p_runs);
			checking := true;
			SET CONSTRAINTS ALL IMMEDIATE;
		EXCEPTION WHEN OTHERS THEN
			IF NOT checking THEN
				RAISE;
			END IF;
			SET CONSTRAINTS ALL IMMEDIATE;
			res := tdgl_replica.apply_runs(p_source, p_run_id, p_ids, p_tbls, p_ops, p_pks, p_old_pks,
			                       p_rows, p_runs);
		END;
	END IF;
	UPDATE tdgl_replica.runs SET fetched = fetched + fch, synced = synced + (res->>'synced')::int,
	       failed = failed + (res->>'failed')::int, skipped = skipped + (res->>'skipped')::int,
	       conflicts = conflicts + (res->>'conflicts')::int, pages = pages + 1
	WHERE id = p_run_id;
	PERFORM set_config('tdgl.applying', coalesce(prev, ''), true);
	RETURN res || jsonb_build_object('fetched', fch, 'replica_role', rr);
END $$;

-- Applies one page of GET /api/rows (the raw body's "rows" array, as json) for an initial
-- sync, as upserts through the same path. p_resync: remember the keys seen so that
-- tdgl_replica.finish_resync() can remove rows deleted on the primary while the cursor was expired.
CREATE OR REPLACE FUNCTION tdgl_replica.apply_rows(p_source text, p_tbl text, p_rows json,
	p_run_id bigint, p_resync bool DEFAULT false) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
	prev text := current_setting('tdgl.applying', true);
	chs  tdgl_replica.change[];
	res  json;
	rel  regclass := tdgl_replica.local_table(p_tbl);
BEGIN
	PERFORM set_config('tdgl.applying', 'on', true);
	SELECT array_agg(ROW(t.ord::int, NULL, 'Create', NULL, NULL, t.x)::tdgl_replica.change ORDER BY t.ord)
	INTO chs FROM json_array_elements(p_rows) WITH ORDINALITY AS t(x, ord)
	WHERE json_typeof(t.x) = 'object';
	IF chs IS NULL THEN
		RETURN '{"fetched":0,"synced":0,"failed":0,"skipped":0,"conflicts":0,"files":[]}';
	END IF;
	res := tdgl_replica.apply_safely(p_source, p_run_id, p_tbl, 'U', chs, true);
	IF p_resync AND rel IS NOT NULL AND tdgl_replica.pk_columns(rel) IS NOT NULL THEN
		EXECUTE format('INSERT INTO tdgl_replica.resync_seen (source, tbl, pk) '
		               'SELECT $1, $2, jsonb_build_object(%s) FROM json_array_elements($3) x '
		               'CROSS JOIN LATERAL json_populate_record(NULL::%s, x) p '
		               'ON CONFLICT DO NOTHING',
		               (SELECT string_agg(format('%1$L, p.%1$I', k), ', ')
		                  FROM unnest(tdgl_replica.pk_columns(rel)) k), tdgl_replica.qualified(rel))
		USING p_source, p_tbl, p_rows;
	END IF;
	UPDATE tdgl_replica.runs SET fetched = fetched + cardinality(chs),
	       synced = synced + (res->>'synced')::int, failed = failed + (res->>'failed')::int,
	       skipped = skipped + (res->>'skipped')::int,
	       conflicts = conflicts + (res->>'conflicts')::int, pages = pages + 1
	WHERE id = p_run_id;
	PERFORM set_config('tdgl.applying', coalesce(prev, ''), true);
	RETURN res::jsonb || jsonb_build_object('fetched', cardinality(chs));
END $$;

-- After a re-sync copied a table: removes local rows the copy did not see (deleted on the
-- primary while the cursor was expired, or outside the subset), except rows edited here.
CREATE OR REPLACE FUNCTION tdgl_replica.finish_resync(p_source text, p_tbl text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	prev text := current_setting('tdgl.applying', true);
	rel  regclass := tdgl_replica.local_table(p_tbl);
	obj  text;
	n    bigint := 0;
BEGIN
	IF rel IS NOT NULL AND tdgl_replica.pk_columns(rel) IS NOT NULL THEN
		PERFORM set_config('tdgl.applying', 'on', true);
		SELECT string_agg(format('%1$L, l.%1$I', k), ', ') INTO obj
		FROM unnest(tdgl_replica.pk_columns(rel)) k;
		EXECUTE format('DELETE FROM %s l WHERE NOT EXISTS (SELECT 1 FROM tdgl_replica.resync_seen s '
		               'WHERE s.source = $1 AND s.tbl = $2 AND s.pk = jsonb_build_object(%2$s)) '
		               'AND NOT EXISTS (SELECT 1 FROM tdgl_replica.local_edits e '
		               'WHERE e.tbl = $2 AND e.pk = jsonb_build_object(%2$s))', tdgl_replica.qualified(rel), obj)
		USING p_source, p_tbl;
		GET DIAGNOSTICS n = ROW_COUNT;
		PERFORM set_config('tdgl.applying', coalesce(prev, ''), true);
	END IF;
	DELETE FROM tdgl_replica.resync_seen WHERE source = p_source AND tbl = p_tbl;
	RETURN n;
END $$;

-- The COPY path of an initial sync (replica/copy.c): pages of GET /api/rows?format=copy,
-- i.e. rows in COPY text (each value its type's own output text, so it round-trips through
-- the local type's input function like json_populate_record's strings do).
-- copy_plan says how a table's pages go in: 'direct' = COPY straight into the table, when
-- nothing could make a row anything but Synced (the table is empty, nothing edited here, no
-- filter, no attachments, inserts enabled, not a re-sync); 'stage' = COPY into a temporary
-- table, then ONE statement with apply_run's semantics. NULL: the table is missing here or
-- has no key (the JSON path reports that row by row). Also lists the local columns a copy
-- may set: {"mode":..., "columns":[...]}.
CREATE OR REPLACE FUNCTION tdgl_replica.copy_plan(p_source text, p_tbl text, p_resync bool)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
	rel    regclass := tdgl_replica.local_table(p_tbl);
	cfg    tdgl_replica.source_tables;
	empty  bool;
BEGIN
	IF rel IS NULL OR tdgl_replica.pk_columns(rel) IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT * INTO cfg FROM tdgl_replica.source_tables WHERE source = p_source AND tbl = p_tbl;
	EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s)', tdgl_replica.qualified(rel)) INTO empty;
	RETURN json_build_object(
		'mode', CASE WHEN empty AND NOT p_resync AND cfg.filter IS NULL
		              AND coalesce(cfg.insert_enabled, true)
		              AND coalesce(cardinality(cfg.attach_columns), 0) = 0
		              AND NOT EXISTS (SELECT 1 FROM tdgl_replica.local_edits e WHERE e.tbl = p_tbl)
		         THEN 'direct' ELSE 'stage' END,
		'columns', (SELECT json_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
		            WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
		              AND a.attgenerated = ''));
END $$;

-- Starts a copy page in the caller's transaction and returns the COPY statement for its
-- data: into the table itself (p_direct), or into pg_temp.tdgl_copy_stage, created here with
-- the local types of p_cols and dropped at commit. p_cols (from the primary's answer) must
-- be local non-generated columns, distinct, holding the whole key.
CREATE OR REPLACE FUNCTION tdgl_replica.copy_start(p_tbl text, p_cols text[], p_direct bool)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	rel  regclass := tdgl_replica.local_table(p_tbl);
	cl   text;
BEGIN
	IF rel IS NULL OR cardinality(p_cols) IS NULL
	   OR cardinality(p_cols) <> (SELECT count(DISTINCT x) FROM unnest(p_cols) x)
	   OR EXISTS (SELECT 1 FROM unnest(p_cols) x WHERE NOT EXISTS (
	              SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = x
	                AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''))
	   OR NOT (tdgl_replica.pk_columns(rel) <@ p_cols) THEN
		RAISE EXCEPTION 'copy of %: columns % do not fit the local table', p_tbl, p_cols
			USING ERRCODE = '42703';
	END IF;
	SELECT string_agg(format('%I', x), ', ' ORDER BY o) INTO cl
	FROM unnest(p_cols) WITH ORDINALITY AS u(x, o);
	IF p_direct THEN
		RETURN format('COPY %s (%s) FROM STDIN', tdgl_replica.qualified(rel), cl);
	END IF;
	EXECUTE format('CREATE TEMP TABLE tdgl_copy_stage ON COMMIT DROP AS SELECT %s FROM %s '
	               'WITH NO DATA', cl, tdgl_replica.qualified(rel));
	RETURN format('COPY pg_temp.tdgl_copy_stage (%s) FROM STDIN', cl);
END $$;

-- Finishes a copy page of p_n rows after its COPY: a direct page is in the table already
-- and only counted; a staged page is applied in ONE statement with the semantics of
-- apply_run's upsert for an initial sync (filter, local edits -> conflicts, insert/update
-- switches, unchanged rows skipped, only non-Synced outcomes logged, a row that left the
-- subset removed, attachment values listed) and, for a re-sync, its keys remembered for
-- tdgl_replica.finish_resync(). Adds the counts to run p_run_id. Returns
-- {"fetched","synced","failed","skipped","conflicts","files":[...]}.
-- JIT is off: compiling the staged statement took ~85 ms of a ~500 ms page of 20k rows.
CREATE OR REPLACE FUNCTION tdgl_replica.copy_apply(p_source text, p_run_id bigint, p_tbl text,
	p_cols text[], p_direct bool, p_resync bool, p_n bigint) RETURNS json
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
	rel  regclass := tdgl_replica.local_table(p_tbl);
	qrel text := tdgl_replica.qualified(rel);
	pk   text[] := tdgl_replica.pk_columns(rel);
	cfg  tdgl_replica.source_tables;
	flt  jsonb;
	upd  text[];
	res  json;
BEGIN
	IF p_direct THEN
		res := json_build_object('fetched', p_n, 'synced', p_n, 'failed', 0, 'skipped', 0,
		                         'conflicts', 0, 'files', '[]'::json);
	ELSE
		SELECT * INTO cfg FROM tdgl_replica.source_tables WHERE source = p_source AND tbl = p_tbl;
		IF NOT FOUND THEN
			cfg.insert_enabled := true; cfg.update_enabled := true;
			cfg.update_without_changes := false; cfg.attach_columns := '{}';
		END IF;
		-- the primary filtered on every key of the filter; here only the copied columns can
		-- be checked (the JSON path checks the primary's whole row)
		SELECT jsonb_object_agg(k, v) INTO flt FROM jsonb_each(cfg.filter) AS f(k, v)
		WHERE k = ANY (p_cols);
		SELECT array_agg(a.attname::text) INTO upd FROM pg_attribute a
		WHERE a.attrelid = rel AND a.attname = ANY (p_cols) AND a.attidentity <> 'a'
		  AND a.attname <> ALL (pk);
		EXECUTE format($q$
WITH w AS (
	SELECT s AS rec, jsonb_build_object(%2$s) AS lpk, l.ctid IS NOT NULL AS present,
	       CASE
	         WHEN $1::jsonb IS NOT NULL AND NOT (to_jsonb(s) @> $1::jsonb) THEN 'filter'
	         WHEN EXISTS (SELECT 1 FROM tdgl_replica.local_edits e
	                      WHERE e.tbl = $2 AND e.pk = jsonb_build_object(%2$s)) THEN 'conflict'
	         WHEN l.ctid IS NULL AND NOT $3 THEN 'insert disabled'
	         WHEN l.ctid IS NOT NULL AND NOT $4 THEN 'update disabled'
	         WHEN l.ctid IS NOT NULL AND NOT $5 AND (%4$s) IS NOT DISTINCT FROM (%5$s)
	           THEN 'no changes'
	       END AS skip
	FROM pg_temp.tdgl_copy_stage s
	LEFT JOIN %1$s l ON %3$s
), conf AS (
	INSERT INTO tdgl_replica.conflicts AS k (source, tbl, pk, change_id, op, primary_row, local_row)
	SELECT $6, $2, w.lpk, NULL, 'Create', row_to_json(w.rec),
	       (SELECT row_to_json(l.*) FROM %1$s l WHERE %6$s)
	FROM w WHERE w.skip = 'conflict'
	ON CONFLICT (tbl, pk) WHERE status = 'Open' DO UPDATE
	SET change_id = EXCLUDED.change_id, op = EXCLUDED.op, primary_row = EXCLUDED.primary_row,
	    local_row = EXCLUDED.local_row, source = EXCLUDED.source, old_pk = NULL,
	    refreshed = k.refreshed + 1, updated_at = now()
	RETURNING 1
), gone AS (
	-- a row that left the subset is removed, unless it was edited here
	DELETE FROM %1$s l USING w
	WHERE w.skip = 'filter' AND w.present AND %6$s
	  AND NOT EXISTS (SELECT 1 FROM tdgl_replica.local_edits e WHERE e.tbl = $2 AND e.pk = w.lpk)
	RETURNING 1
), up AS (
	INSERT INTO %1$s AS l (%7$s) OVERRIDING SYSTEM VALUE
	SELECT %8$s FROM w WHERE w.skip IS NULL
	ON CONFLICT (%9$s) DO %10$s
	RETURNING 1
), seen AS (
	INSERT INTO tdgl_replica.resync_seen (source, tbl, pk)
	SELECT $6, $2, w.lpk FROM w WHERE $8
	ON CONFLICT DO NOTHING
	RETURNING 1
), lg AS (
	INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status, reason, run_id)
	SELECT $6, NULL, $2, w.lpk, 'Create', 'Skipped',
	       CASE WHEN w.skip = 'filter' AND w.present THEN 'filter: left the subset'
	            WHEN w.skip = 'conflict' THEN 'conflict: row edited locally'
	            ELSE w.skip END,
	       $7
	FROM w WHERE w.skip IS NOT NULL
	RETURNING 1
)
SELECT json_build_object(
	'fetched', count(*),
	'synced', count(*) FILTER (WHERE skip IS NULL),
	'failed', 0,
	'skipped', count(*) FILTER (WHERE skip IS NOT NULL),
	'conflicts', count(*) FILTER (WHERE skip = 'conflict'),
	'files', (SELECT coalesce(json_agg(DISTINCT v), '[]') FROM w, unnest($9::text[]) col,
	          LATERAL (SELECT to_jsonb(w.rec) ->> col AS v) x
	          WHERE w.skip IS NULL AND x.v LIKE '/files/%%'))
FROM w
$q$,
			qrel,
			(SELECT string_agg(format('%1$L, s.%1$I', x), ', ') FROM unnest(pk) x),
			(SELECT string_agg(format('l.%1$I = s.%1$I', x), ' AND ') FROM unnest(pk) x),
			(SELECT 'ROW(' || string_agg(format('l.%I::text', x), ', ') || ')' FROM unnest(p_cols) x),
			(SELECT 'ROW(' || string_agg(format('s.%I::text', x), ', ') || ')' FROM unnest(p_cols) x),
			(SELECT string_agg(format('l.%1$I = (w.rec).%1$I', x), ' AND ') FROM unnest(pk) x),
			(SELECT string_agg(format('%I', x), ', ') FROM unnest(p_cols) x),
			(SELECT string_agg(format('(w.rec).%I', x), ', ') FROM unnest(p_cols) x),
			(SELECT string_agg(format('%I', x), ', ') FROM unnest(pk) x),
			CASE WHEN upd IS NULL THEN 'NOTHING'
			     ELSE 'UPDATE SET ' || (SELECT string_agg(format('%1$I = EXCLUDED.%1$I', x), ', ')
			                           FROM unnest(upd) x) END)
		INTO res
		USING flt, p_tbl, cfg.insert_enabled, cfg.update_enabled, cfg.update_without_changes,
			p_source, p_run_id, p_resync, cfg.attach_columns;
	END IF;
	UPDATE tdgl_replica.runs SET fetched = fetched + (res->>'fetched')::int,
	       synced = synced + (res->>'synced')::int, skipped = skipped + (res->>'skipped')::int,
	       conflicts = conflicts + (res->>'conflicts')::int, pages = pages + 1
	WHERE id = p_run_id;
	RETURN res;
END $$;

-- Resolves an open conflict. 'Accept Primary' applies the stored primary snapshot (as the
-- apply session) and clears the local-edit marker, so later primary changes apply again.
-- 'Keep Local' keeps the local row AND its local-edit marker: the row stays protected, and
-- a later primary change of it opens a new conflict rather than overwriting it silently.
-- Errors: P0002 unknown id, 55000 already resolved, 22023 bad resolution.
-- A conflict as the admin API and CLI show it (one shape for the list and for resolve).
CREATE OR REPLACE FUNCTION tdgl_replica.conflict_json(c tdgl_replica.conflicts) RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('id', c.id, 'source', c.source, 'table', c.tbl, 'pk', c.pk,
		'change_id', c.change_id, 'op', c.op, 'old_pk', c.old_pk,
		'primary_row', c.primary_row, 'local_row', c.local_row, 'status', c.status,
		'resolution', c.resolution, 'refreshed', c.refreshed, 'created_at', c.created_at,
		'updated_at', c.updated_at, 'resolved_at', c.resolved_at)
$$;

CREATE OR REPLACE FUNCTION tdgl_replica.resolve_conflict(p_id bigint, p_resolution text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
	prev text := current_setting('tdgl.applying', true);
	c    tdgl_replica.conflicts;
	cls  text;
	rel  regclass;
	npk  jsonb;
BEGIN
	IF p_resolution IS NULL OR p_resolution NOT IN ('Accept Primary', 'Keep Local') THEN
		RAISE EXCEPTION 'resolution must be "Accept Primary" or "Keep Local"'
			USING ERRCODE = '22023';
	END IF;
	SELECT * INTO c FROM tdgl_replica.conflicts WHERE id = p_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'conflict % not found', p_id USING ERRCODE = 'P0002';
	END IF;
	IF c.status <> 'Open' THEN
		RAISE EXCEPTION 'conflict % is already resolved (%)', p_id, c.resolution
			USING ERRCODE = '55000';
	END IF;
	IF p_resolution = 'Accept Primary' THEN
		PERFORM tdgl_replica.apply_mode();
		cls := CASE c.op WHEN 'Delete' THEN 'D' WHEN 'Rename' THEN 'R' ELSE 'U' END;
		PERFORM tdgl_replica.apply_run(c.source, NULL, c.tbl, cls,
			ARRAY[ROW(1, c.change_id, c.op, c.pk::json, c.old_pk, c.primary_row)::tdgl_replica.change],
			false, true);
		DELETE FROM tdgl_replica.local_edits WHERE tbl = c.tbl AND pk = c.pk;
		rel := tdgl_replica.local_table(c.tbl);
		IF c.primary_row IS NOT NULL AND rel IS NOT NULL THEN
			SELECT jsonb_object_agg(k, c.primary_row::jsonb -> k) INTO npk
			FROM unnest(tdgl_replica.pk_columns(rel)) k;
			DELETE FROM tdgl_replica.local_edits WHERE tbl = c.tbl AND pk = npk;
		END IF;
		PERFORM set_config('tdgl.applying', coalesce(prev, ''), true);
	END IF;
	UPDATE tdgl_replica.conflicts SET status = 'Resolved', resolution = p_resolution,
	       resolved_at = now(), updated_at = now()
	WHERE id = p_id RETURNING * INTO c;
	RETURN tdgl_replica.conflict_json(c);
END $$;

-- Dry run (issue 4): what a page would do, per change, without keeping anything. The caller
-- runs this inside a transaction it rolls back: every change is really applied, one at a
-- time and through the same tdgl_replica.apply_run as a pull (so later changes of a row see the
-- earlier ones and the decisions are exactly a pull's), and the local row is read before
-- and after to describe the effect. p_changes: the "changes" array of a GET /api/changes
-- page, or the "rows" array of a GET /api/rows page when p_rows_of names the table.
-- Returns [{"change_id","table","op","pk","action","reason","error","changes":[...]}],
-- action: insert | update | delete | rename | conflict | skip | fail | ignore.
CREATE OR REPLACE FUNCTION tdgl_replica.dry_run_page(p_source text, p_changes json, p_run_id bigint,
	p_rows_of text DEFAULT NULL) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
	x       json;
	ch      tdgl_replica.change;
	v_tbl     text;
	cls     text;
	rel     regclass;
	pk      text[];
	getrow  text;
	before  jsonb;
	before2 jsonb;
	after   jsonb;
	lpk     jsonb;
	lg      record;
	head    bigint;
	msg     text;
	act     text;
	diff    json;
	out     json[] := '{}';
	i       int := 0;
BEGIN
	PERFORM tdgl_replica.apply_mode();      -- as a pull applies (the replica role when permitted)
	FOR x IN SELECT e FROM json_array_elements(p_changes) e LOOP
		i := i + 1;
		IF p_rows_of IS NOT NULL THEN
			v_tbl := p_rows_of;
			ch := ROW(i, NULL, 'Create', NULL, NULL, x)::tdgl_replica.change;
		ELSE
			v_tbl := x ->> 'table';
			ch := ROW(i, (x ->> 'id')::bigint, x ->> 'op',
			          CASE WHEN json_typeof(x -> 'pk') = 'object' THEN x -> 'pk' END,
			          CASE WHEN json_typeof(x -> 'old_pk') = 'object' THEN x -> 'old_pk' END,
			          CASE WHEN json_typeof(x -> 'row') = 'object' THEN x -> 'row' END)::tdgl_replica.change;
		END IF;
		cls := CASE ch.op WHEN 'Delete' THEN 'D' WHEN 'Rename' THEN 'R' ELSE 'U' END;
		rel := tdgl_replica.local_table(v_tbl);
		pk := CASE WHEN rel IS NULL THEN NULL ELSE tdgl_replica.pk_columns(rel) END;
		before := NULL; before2 := NULL; after := NULL; lpk := ch.pk::jsonb;
		act := NULL; msg := NULL; diff := NULL; lg := NULL;
		IF NOT EXISTS (SELECT 1 FROM tdgl_replica.source_tables st
		               WHERE st.source = p_source AND st.tbl = v_tbl) THEN
			out := out || json_build_object('change_id', ch.id, 'table', v_tbl, 'op', ch.op,
				'pk', ch.pk, 'action', 'ignore', 'reason', 'table not configured');
			CONTINUE;
		END IF;
		IF rel IS NOT NULL AND pk IS NOT NULL THEN
			getrow := format('SELECT row_to_json(l)::jsonb FROM %s l WHERE %s', tdgl_replica.qualified(rel),
				(SELECT string_agg(format('l.%1$I = (json_populate_record(NULL::%2$s, $1)).%1$I',
				                          k, tdgl_replica.qualified(rel)), ' AND ') FROM unnest(pk) k));
			IF cls = 'D' THEN
				EXECUTE getrow INTO before USING coalesce(ch.pk, ch."row");
			ELSIF cls = 'R' THEN
				EXECUTE getrow INTO before USING ch.old_pk;
			ELSE
				EXECUTE getrow INTO before USING ch."row";
			END IF;
			IF ch."row" IS NOT NULL THEN
				SELECT jsonb_object_agg(k, ch."row"::jsonb -> k) INTO lpk FROM unnest(pk) k;
			END IF;
		END IF;
		SELECT coalesce(max(id), 0) INTO head FROM tdgl_replica.sync_log;
		BEGIN
			PERFORM tdgl_replica.apply_run(p_source, p_run_id, v_tbl, cls, ARRAY[ch], false);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
			act := 'fail';
		END;
		IF act IS NULL THEN
			SELECT status, reason INTO lg FROM tdgl_replica.sync_log
			WHERE run_id = p_run_id AND id > head ORDER BY id DESC LIMIT 1;
			IF rel IS NOT NULL AND pk IS NOT NULL THEN
				IF cls = 'D' THEN
					EXECUTE getrow INTO after USING coalesce(ch.pk, ch."row");
				ELSE
					EXECUTE getrow INTO after USING ch."row";
				END IF;
			END IF;
			IF lg.status = 'Skipped' AND lg.reason LIKE 'conflict%' THEN
				act := 'conflict';
			ELSIF lg.status = 'Skipped' AND lg.reason LIKE 'filter%' AND before IS NOT NULL
			      AND after IS NULL THEN
				act := 'delete';   -- the row left the subset
			ELSIF lg.status = 'Skipped' THEN
				act := 'skip';
			ELSIF cls = 'R' THEN
				act := CASE WHEN before IS NULL THEN 'insert' ELSE 'rename' END;
			ELSIF before IS NULL AND after IS NOT NULL THEN
				act := 'insert';
			ELSIF before IS NOT NULL AND after IS NULL THEN
				act := 'delete';
			ELSE
				act := 'update';
			END IF;
			IF act IN ('update', 'rename') THEN
				SELECT coalesce(json_agg(json_build_object('column', a.attname,
				         'old', before -> a.attname::text, 'new', after -> a.attname::text)
				         ORDER BY a.attnum), '[]')
				INTO diff
				FROM pg_attribute a
				WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
				  AND before -> a.attname::text IS DISTINCT FROM after -> a.attname::text;
			END IF;
		END IF;
		out := out || json_build_object('change_id', ch.id, 'table', v_tbl, 'op', ch.op,
			'pk', coalesce(lpk, ch.pk::jsonb), 'action', act,
			'reason', CASE WHEN act IN ('skip', 'conflict') OR (act = 'delete' AND cls <> 'D')
			               THEN lg.reason END,
			'error', msg, 'changes', diff);
	END LOOP;
	RETURN array_to_json(out);
END $$;

-- Retention (replica/retention.c): the replica's own logs are purged in batches, each call
-- one short transaction of at most p_limit rows taken in primary-key order after p_after
-- (the caller passes back last_id), so millions of rows never hold locks for long and never
-- block an apply: nothing else locks Synced/Skipped entries or finished runs. Ids follow
-- created_at (both taken when the row is inserted), so no index on the time is needed: the
-- walk is done at the first batch without a row older than p_before. What stays:
--   - Failed entries (retried, and shown until someone looks at them);
--   - a Synced entry a Failed one of the same row may still need: a retry checks for a later
--     Synced entry before it applies (replica/retry.c), a key-less Failed entry (initial
--     copy) is matched by its snapshot;
--   - the "conflict: ..." entry of a row whose conflict is still Open;
--   - runs not finished, and runs an entry still refers to (GET /api/log shows its run).
-- jit off: the per-row checks make the estimate cross jit_above_cost, and compiling took
-- ~30 ms of a ~80 ms batch.
CREATE OR REPLACE FUNCTION tdgl_replica.purge_log_batch(p_before timestamptz, p_after bigint,
	p_limit int, OUT deleted bigint, OUT last_id bigint, OUT done bool)
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
	n   int;
	old bool;
BEGIN
	SELECT count(*), max(id), coalesce(bool_or(created_at < p_before), false)
	INTO n, last_id, old
	FROM (SELECT id, created_at FROM tdgl_replica.sync_log WHERE id > p_after ORDER BY id
	      LIMIT p_limit) b;
	done := n < p_limit OR NOT old;
	deleted := 0;
	IF NOT old THEN
		RETURN;
	END IF;
	DELETE FROM tdgl_replica.sync_log l
	WHERE l.id > p_after AND l.id <= last_id AND l.created_at < p_before
	  AND l.status IN ('Synced', 'Skipped')
	  AND NOT (l.status = 'Synced' AND EXISTS (
	        SELECT 1 FROM tdgl_replica.sync_log f
	        WHERE f.status = 'Failed' AND f.source = l.source AND f.tbl = l.tbl
	          AND f.pk = l.pk AND f.id < l.id))
	  AND NOT (l.status = 'Synced' AND EXISTS (
	        SELECT 1 FROM tdgl_replica.sync_log f
	        WHERE f.status = 'Failed' AND f.source = l.source AND f.tbl = l.tbl
	          AND f.pk IS NULL AND f.id < l.id AND (f.change -> 'row')::jsonb @> l.pk))
	  AND NOT (l.status = 'Skipped' AND l.reason LIKE 'conflict%' AND EXISTS (
	        SELECT 1 FROM tdgl_replica.conflicts k
	        WHERE k.status = 'Open' AND k.tbl = l.tbl AND k.pk = l.pk));
	GET DIAGNOSTICS deleted = ROW_COUNT;
END $$;

CREATE OR REPLACE FUNCTION tdgl_replica.purge_runs_batch(p_before timestamptz, p_after bigint,
	p_limit int, OUT deleted bigint, OUT last_id bigint, OUT done bool)
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
	n   int;
	old bool;
BEGIN
	SELECT count(*), max(id), coalesce(bool_or(started_at < p_before), false)
	INTO n, last_id, old
	FROM (SELECT id, started_at FROM tdgl_replica.runs WHERE id > p_after ORDER BY id
	      LIMIT p_limit) b;
	done := n < p_limit OR NOT old;
	deleted := 0;
	IF NOT old THEN
		RETURN;
	END IF;
	DELETE FROM tdgl_replica.runs r
	WHERE r.id > p_after AND r.id <= last_id AND r.ended_at < p_before
	  AND r.status <> 'Running'
	  AND NOT EXISTS (SELECT 1 FROM tdgl_replica.sync_log l WHERE l.run_id = r.id);
	GET DIAGNOSTICS deleted = ROW_COUNT;
END $$;

-- Version 3: a run records the database session that runs it (its backend's pid and start
-- time), so a run whose process was killed or crashed is recognised (no such session any
-- more) and closed as Interrupted, with the counts it had, instead of staying Running.
-- Runs of an older version carry no session: they count as interrupted when found Running.
CREATE OR REPLACE FUNCTION tdgl_replica.backend_start() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
	SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid())
$$;
ALTER TABLE tdgl_replica.runs ADD COLUMN IF NOT EXISTS backend_pid int DEFAULT pg_backend_pid();
ALTER TABLE tdgl_replica.runs ADD COLUMN IF NOT EXISTS backend_start timestamptz
	DEFAULT tdgl_replica.backend_start();
ALTER TABLE tdgl_replica.runs DROP CONSTRAINT IF EXISTS runs_status_check;
ALTER TABLE tdgl_replica.runs ADD CONSTRAINT runs_status_check CHECK (status IN
	('Running', 'Success', 'Partial', 'Failed', 'Skipped', 'Interrupted'));
CREATE INDEX IF NOT EXISTS runs_running_idx ON tdgl_replica.runs (id) WHERE status = 'Running';

-- Closes every Running run whose session is gone; returns their ids. A source whose last
-- recorded run is older than such a run gets it as its last status.
CREATE OR REPLACE FUNCTION tdgl_replica.close_interrupted_runs() RETURNS SETOF bigint
LANGUAGE sql AS $$
	WITH closed AS (
		UPDATE tdgl_replica.runs r SET status = 'Interrupted', ended_at = clock_timestamp(),
		       error = 'interrupted: the process running it stopped (killed or crashed)'
		WHERE r.status = 'Running'
		  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
		                  WHERE a.pid = r.backend_pid AND a.backend_start = r.backend_start)
		RETURNING r.id, r.source, r.started_at, r.ended_at, r.error, r.dry_run),
	latest AS (
		SELECT DISTINCT ON (source) * FROM closed WHERE NOT dry_run ORDER BY source, id DESC),
	marked AS (
		UPDATE tdgl_replica.sources s SET last_status = 'Interrupted', last_error = l.error,
		       last_run_at = l.ended_at
		FROM latest l
		WHERE s.name = l.source AND (s.last_run_at IS NULL OR s.last_run_at <= l.started_at)
		RETURNING s.name)
	SELECT id FROM closed ORDER BY id   -- `marked` runs all the same (a writing CTE)
$$;

-- Version 4: the local-edit triggers fire whatever session_replication_role a session runs
-- with (tdgl_replica.watch_table); apply sessions run as replica (tdgl_replica.replica_role). Triggers a
-- version-3 replica installed are switched here (by their table's owner: a migration run
-- by another role warns and leaves them; `source add` or a later migrate switches them).
DO $$
DECLARE
	t regclass;
BEGIN
	FOR t IN SELECT tgrelid::regclass FROM pg_trigger
	         WHERE tgname = 'tdgl_local_edit' AND tgenabled <> 'A' LOOP
		BEGIN
			EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER tdgl_local_edit', t);
		EXCEPTION WHEN insufficient_privilege THEN
			RAISE WARNING 'tdgl_local_edit on %: not its owner, left as it is', t;
		END;
	END LOOP;
END $$;

-- Version 5: verify and repair (replica/verify.c; the primary's side is GET /api/hashes,
-- tdgl_replica.verify_* in sql/primary.sql). A repair is a run with trigger 'Repair'.
ALTER TABLE tdgl_replica.runs DROP CONSTRAINT IF EXISTS runs_trigger_check;
ALTER TABLE tdgl_replica.runs ADD CONSTRAINT runs_trigger_check CHECK (trigger IN
	('Scheduler', 'Webhook', 'Manual', 'API', 'Initial', 'Retry', 'LongPoll', 'Repair'));

-- One row per table verified: the last one per (source, tbl) is what the console shows.
-- status: identical, different (something differs), failed (the check could not finish).
CREATE TABLE IF NOT EXISTS tdgl_replica.verifications (
	id          bigserial PRIMARY KEY,
	source      text NOT NULL,
	tbl         text NOT NULL,
	status      text NOT NULL CHECK (status IN ('identical', 'different', 'failed')),
	missing     int NOT NULL DEFAULT 0,     -- on the primary, not here
	extra       int NOT NULL DEFAULT 0,     -- here, not on the primary
	different   int NOT NULL DEFAULT 0,     -- on both, some shared column differs
	kept_local  int NOT NULL DEFAULT 0,     -- differs, but edited here or in an open conflict
	in_flight   int NOT NULL DEFAULT 0,     -- differs while changes of it are still streaming
	repaired    int,                        -- rows a repair applied (NULL: no repair)
	repair_run  bigint,                     -- its tdgl_replica.runs id
	bytes       bigint NOT NULL DEFAULT 0,  -- exchanged with the primary
	requests    int NOT NULL DEFAULT 0,
	report      json NOT NULL DEFAULT '{}', -- the table's part of the verify report
	error       text,
	started_at  timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS verifications_tbl_idx ON tdgl_replica.verifications (source, tbl, id);

-- Hashes of rows: tdgl_replica.verify_exprs and tdgl_replica.verify_bucket_expr, the primary's own
-- (sql/verify.sql, appended to both roles' scripts by the build).

-- The local table of p_tbl, its key, and the columns of p_cols it has (its own
-- non-generated columns when p_cols is NULL), sorted by name. 42P01 when missing here.
CREATE OR REPLACE FUNCTION tdgl_replica.verify_local_table(p_tbl text, p_cols text[],
	OUT rel regclass, OUT pk text[], OUT cols text[])
LANGUAGE plpgsql STABLE AS $$
BEGIN
	rel := tdgl_replica.local_table(p_tbl);
	IF rel IS NULL THEN
		RAISE EXCEPTION 'relation "%" does not exist on the replica', p_tbl USING ERRCODE = '42P01';
	END IF;
	pk := tdgl_replica.pk_columns(rel);
	IF pk IS NULL THEN
		RAISE EXCEPTION 'table % has no primary key on the replica', p_tbl USING ERRCODE = '42P10';
	END IF;
	SELECT array_agg(a.attname::text ORDER BY a.attname::text COLLATE "C") INTO cols
	FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
	  AND a.attgenerated = '' AND (p_cols IS NULL OR a.attname = ANY (p_cols));
END $$;

-- How many bits the first level of buckets has: about p_per rows a bucket (the planner's
-- row estimate; an exact count when the table was never analyzed), at most 20.
CREATE OR REPLACE FUNCTION tdgl_replica.verify_bits(p_tbl text, p_per int) RETURNS int
LANGUAGE plpgsql STABLE AS $$
DECLARE
	rel regclass := tdgl_replica.local_table(p_tbl);
	n   float8;
BEGIN
	SELECT reltuples INTO n FROM pg_class WHERE oid = rel;
	IF n IS NULL OR n < 0 THEN
		EXECUTE format('SELECT count(*) FROM %s', tdgl_replica.qualified(rel)) INTO n;
	END IF;
	RETURN least(20, greatest(0, ceil(log(2::numeric, (greatest(n, 1) / p_per)::numeric))::int));
END $$;

-- The local side of tdgl_replica.verify_buckets (same answer shape: [[bucket, rows, "hash"], ...]).
-- Every local row counts: the replica is supposed to hold exactly the primary's rows that
-- pass the filter (rows edited here are sorted out at row level, as kept local).
CREATE OR REPLACE FUNCTION tdgl_replica.verify_local_buckets(p_tbl text, p_cols text[],
	p_prefix_bits int, p_prefixes bigint[], p_bits int) RETURNS json
LANGUAGE plpgsql STABLE
SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET jit = off AS $$
DECLARE
	t   record := tdgl_replica.verify_local_table(p_tbl, p_cols);
	e   record := tdgl_replica.verify_exprs(t.pk, t.cols);
	res json;
BEGIN
	EXECUTE format($q$
SELECT coalesce(json_agg(json_build_array(b, n, lpad(to_hex(h), 16, '0')) ORDER BY b), '[]')
FROM (SELECT %4$s AS b, count(*) AS n, bit_xor(rh) AS h
      FROM (SELECT %2$s AS kh, %3$s AS rh FROM %1$s t) s
      WHERE $1 = 0 OR %5$s = ANY ($2)
      GROUP BY 1) g$q$,
		tdgl_replica.qualified(t.rel), e.kh, e.rh, tdgl_replica.verify_bucket_expr(p_bits),
		tdgl_replica.verify_bucket_expr(p_prefix_bits))
	INTO res USING p_prefix_bits, p_prefixes;
	RETURN res;
END $$;

-- The local side of tdgl_replica.verify_keys: [["kh", {key}, "rh"], ...].
CREATE OR REPLACE FUNCTION tdgl_replica.verify_local_keys(p_tbl text, p_cols text[],
	p_prefix_bits int, p_prefixes bigint[]) RETURNS json
LANGUAGE plpgsql STABLE
SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET jit = off AS $$
DECLARE
	t   record := tdgl_replica.verify_local_table(p_tbl, p_cols);
	e   record := tdgl_replica.verify_exprs(t.pk, t.cols);
	res json;
BEGIN
	EXECUTE format($q$
SELECT coalesce(json_agg(json_build_array(lpad(to_hex(kh), 16, '0'), k,
                                          lpad(to_hex(rh), 16, '0')) ORDER BY kh), '[]')
FROM (SELECT %2$s AS kh, %3$s AS rh, %4$s AS k FROM %1$s t) s
WHERE $1 = 0 OR %5$s = ANY ($2)$q$,
		tdgl_replica.qualified(t.rel), e.kh, e.rh, e.kobj, tdgl_replica.verify_bucket_expr(p_prefix_bits))
	INTO res USING p_prefix_bits, p_prefixes;
	RETURN res;
END $$;

-- Buckets whose count or hash differ between the two answers: [[bucket, larger count], ...].
CREATE OR REPLACE FUNCTION tdgl_replica.verify_diff_buckets(p_primary json, p_local json) RETURNS json
LANGUAGE sql IMMUTABLE AS $$
	SELECT coalesce(json_agg(json_build_array(coalesce(p.b, l.b), greatest(p.n, l.n))
	                         ORDER BY coalesce(p.b, l.b)), '[]')
	FROM (SELECT (x->>0)::bigint b, (x->>1)::bigint n, x->>2 h FROM json_array_elements(p_primary) x) p
	FULL JOIN (SELECT (x->>0)::bigint b, (x->>1)::bigint n, x->>2 h
	           FROM json_array_elements(p_local) x) l ON l.b = p.b
	WHERE p.b IS NULL OR l.b IS NULL OR p.n <> l.n OR p.h <> l.h
$$;

-- Keys whose row differs or exists on one side only: a JSON array of key objects.
CREATE OR REPLACE FUNCTION tdgl_replica.verify_diff_keys(p_primary json, p_local json) RETURNS json
LANGUAGE sql IMMUTABLE AS $$
	SELECT coalesce(json_agg(coalesce(p.k, l.k) ORDER BY coalesce(p.kh, l.kh)), '[]')
	FROM (SELECT x->>0 kh, x->1 k, x->>2 rh FROM json_array_elements(p_primary) x) p
	FULL JOIN (SELECT x->>0 kh, x->1 k, x->>2 rh FROM json_array_elements(p_local) x) l
	  ON l.kh = p.kh
	WHERE p.kh IS NULL OR l.kh IS NULL OR p.rh <> l.rh
$$;

-- The local rows of keys p_keys (JSON array of key objects): [[{key}, "rh"|null, kept_local,
-- row|null], ...]. kept_local: the row was edited here (tdgl_replica.local_edits) or has an open
-- conflict. STABLE: it reads with the caller's snapshot, so a caller that reads the source's
-- cursor in the same statement gets rows and cursor of one moment (apply commits both).
CREATE OR REPLACE FUNCTION tdgl_replica.verify_local_rows(p_tbl text, p_cols text[], p_keys json)
RETURNS json
LANGUAGE plpgsql STABLE
SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET jit = off AS $$
DECLARE
	t   record := tdgl_replica.verify_local_table(p_tbl, p_cols);
	e   record := tdgl_replica.verify_exprs(t.pk, t.cols);
	res json;
BEGIN
	EXECUTE format($q$
SELECT coalesce(json_agg(json_build_array(k.tdgl_key, r.rh,
	EXISTS (SELECT 1 FROM tdgl_replica.local_edits le WHERE le.tbl = $2 AND le.pk = k.tdgl_key::jsonb)
	OR EXISTS (SELECT 1 FROM tdgl_replica.conflicts c WHERE c.tbl = $2 AND c.pk = k.tdgl_key::jsonb
	           AND c.status = 'Open'), r.snap) ORDER BY k.tdgl_ord), '[]')
FROM (SELECT g.tdgl_ord, %3$s AS tdgl_key, %4$s
      FROM json_array_elements($1) WITH ORDINALITY AS g(j, tdgl_ord)
      CROSS JOIN LATERAL json_populate_record(NULL::%1$s, g.j) t) k
LEFT JOIN LATERAL (SELECT lpad(to_hex(%2$s), 16, '0') AS rh, row_to_json(t.*) AS snap
                   FROM %1$s t WHERE %5$s) r ON true$q$,
		tdgl_replica.qualified(t.rel), e.rh, e.kobj,
		(SELECT string_agg(format('t.%I', c), ', ') FROM unnest(t.pk) c),
		(SELECT string_agg(format('t.%1$I = k.%1$I', c), ' AND ') FROM unnest(t.pk) c))
	INTO res USING p_keys, p_tbl;
	RETURN res;
END $$;

-- Sorts the keys of two verify_*rows answers (same keys, same order) into
-- [{"key", "kind", "columns"?, "row"?}] for the rows that differ. kind: missing (primary
-- only), extra (here only), different (columns: the shared columns whose values differ),
-- kept_local (edited here or in an open conflict), in_flight (the primary has a change of it
-- the replica's cursor has not reached). row: the primary's snapshot (missing, different).
CREATE OR REPLACE FUNCTION tdgl_replica.verify_classify(p_tbl text, p_cols text[], p_local json,
	p_primary json) RETURNS json
LANGUAGE plpgsql STABLE
SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
DECLARE
	t   record := tdgl_replica.verify_local_table(p_tbl, p_cols);
	res json;
BEGIN
	EXECUTE format($q$
WITH x AS (
	SELECT l.j->0 AS k, l.j->>1 AS lrh, (l.j->>2)::bool AS kept, l.j->3 AS lrow,
	       p.j->>1 AS prh, (p.j->>2)::bool AS pending, p.j->3 AS prow
	FROM json_array_elements($1) WITH ORDINALITY AS l(j, ord)
	JOIN json_array_elements($2) WITH ORDINALITY AS p(j, ord) ON p.ord = l.ord
	WHERE l.j->>1 IS DISTINCT FROM p.j->>1
), y AS (
	SELECT x.*, CASE WHEN kept THEN 'kept_local' WHEN pending THEN 'in_flight'
	                 WHEN lrh IS NULL THEN 'missing' WHEN prh IS NULL THEN 'extra'
	                 ELSE 'different' END AS kind
	FROM x
)
SELECT coalesce(json_agg(json_strip_nulls(json_build_object('key', y.k, 'kind', y.kind,
	'columns', CASE WHEN y.kind = 'different' THEN (
		SELECT coalesce(json_agg(tdgl_u.tdgl_col ORDER BY tdgl_u.tdgl_col), '[]')
		FROM unnest($3::text[]) tdgl_u(tdgl_col)
		WHERE (SELECT to_jsonb(tdgl_l.*) -> tdgl_u.tdgl_col
		       FROM json_populate_record(NULL::%1$s, y.lrow) tdgl_l)
		      IS DISTINCT FROM
		      (SELECT to_jsonb(tdgl_p.*) -> tdgl_u.tdgl_col
		       FROM json_populate_record(NULL::%1$s, y.prow) tdgl_p))
		END,
	'row', CASE WHEN y.kind IN ('missing', 'different') THEN y.prow END))), '[]')
FROM y$q$, tdgl_replica.qualified(t.rel))
	INTO res USING p_local, p_primary, t.cols;
	RETURN res;
END $$;

-- Repairs rows of p_tbl through the apply path (tdgl_replica.apply_safely, as a pull would, in run
-- p_run_id): the primary's snapshots of p_items with kind missing/different are upserted
-- (logged op 'Repair'), keys of kind extra deleted (op 'Delete'). Other kinds are left
-- alone. Returns apply_safely's counts summed: {"synced","skipped","conflicts","failed"}.
CREATE OR REPLACE FUNCTION tdgl_replica.verify_repair(p_source text, p_run_id bigint, p_tbl text,
	p_items json) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
	prev text := current_setting('tdgl.applying', true);
	ups  tdgl_replica.change[];
	dels tdgl_replica.change[];
	res  json;
	syn  int := 0;
	skp  int := 0;
	cnf  int := 0;
	fld  int := 0;
	n    int := 0;
BEGIN
	PERFORM set_config('tdgl.applying', 'on', true);
	SELECT array_agg(ROW(i.ord::int, NULL, 'Repair', i.j->'key', NULL, i.j->'row')::tdgl_replica.change
	                 ORDER BY i.ord) FILTER (WHERE i.j->>'kind' IN ('missing', 'different')),
	       array_agg(ROW(i.ord::int, NULL, 'Delete', i.j->'key', NULL, NULL)::tdgl_replica.change
	                 ORDER BY i.ord) FILTER (WHERE i.j->>'kind' = 'extra')
	INTO ups, dels FROM json_array_elements(p_items) WITH ORDINALITY AS i(j, ord);
	FOREACH res IN ARRAY ARRAY[
		CASE WHEN ups IS NOT NULL THEN tdgl_replica.apply_safely(p_source, p_run_id, p_tbl, 'U', ups, false) END,
		CASE WHEN dels IS NOT NULL THEN tdgl_replica.apply_safely(p_source, p_run_id, p_tbl, 'D', dels, false) END]
	LOOP
		CONTINUE WHEN res IS NULL;
		syn := syn + (res->>'synced')::int;
		skp := skp + (res->>'skipped')::int;
		cnf := cnf + (res->>'conflicts')::int;
		fld := fld + (res->>'failed')::int;
	END LOOP;
	n := coalesce(cardinality(ups), 0) + coalesce(cardinality(dels), 0);
	UPDATE tdgl_replica.runs SET fetched = fetched + n, synced = synced + syn, failed = failed + fld,
	       skipped = skipped + skp, conflicts = conflicts + cnf, pages = pages + 1
	WHERE id = p_run_id;
	PERFORM set_config('tdgl.applying', coalesce(prev, ''), true);
	RETURN json_build_object('synced', syn, 'skipped', skp, 'conflicts', cnf, 'failed', fld);
END $$;

INSERT INTO tdgl_replica.schema_version (version) VALUES (6) ON CONFLICT DO NOTHING;

-- What both roles share (sql/verify.sql, appended by the build) is created unqualified:
-- in this role's own schema.
SET LOCAL search_path = tdgl_replica, pg_catalog;
