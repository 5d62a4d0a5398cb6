-- tdgl-replica schema, version 8. Idempotent: every statement may run again, and an older
-- version is upgraded by running it again (new columns are added with ADD COLUMN IF NOT EXISTS,
-- each version's steps are marked "Version N" where they stand).
-- Applied by `tdgl-replica migrate` (db_migrate, under an advisory lock).
--
-- The script is sql/replica/*.sql concatenated in name order (Makefile), one file a concern:
--   10-schema       tables, types, naming helpers, schema steps of later versions
--   20-local_edits  capture of local edits (the trigger every synced table gets)
--   30-apply        the apply core: tdgl_replica.apply_statement (the only statement that
--                   applies rows) and the functions that feed it a page, a run, a rows page
--   35-two_way      what the core asks about a two-way table (versions, policies)
--   40-copy         the initial copy's COPY path (staged pages go through the apply core)
--   50-conflicts    listing and resolving conflicts (Accept Primary applies through the core)
--   55-dryrun       what a page would do (the core, rolled back)
--   60-retention    purge of the sync log and runs, interrupted runs
--   70-verify       the replica's side of verify and repair (repair applies through the core)
--   90-version      the schema_version stamp
-- then sql/verify.sql and sql/site.sql, what both roles share (in each role's own schema).

-- Version 7: the replica's state moved from schema tdgl to tdgl_replica, so that one database
-- can hold both roles (a site of a two-way sync runs tdgl-primary and tdgl-replica on its own
-- database). A replica database of version <= 6 is renamed in place; every function is then
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
	batch_size         int  NOT NULL DEFAULT 2000 CHECK (batch_size BETWEEN 1 AND 5000),
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

-- The local table of sync name p_tbl and its key, for what needs both (apply, verify):
-- 42P01 when the table is missing here, 42P10 when it has no primary key.
CREATE OR REPLACE FUNCTION tdgl_replica.keyed_table(p_tbl text, OUT rel regclass, OUT pk text[])
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

-- Version 7, two-way sync (docs/design.md "Two-way sync"). A table is two-way on this site
-- when the primary role of the same database tracks it too (tdgl_replica.two_way): its
-- local writes are then changes for the peers, not local edits, and a peer's change
-- conflicts only when it was made on a version of the row other than the one held here.
-- conflict_policy decides such a conflict: manual (it stays open for an admin, the local row
-- stays), source-wins, local-wins, latest-wins (the version made last, by its origin's
-- clock; ties by site identity). Per source, overridable per table (NULL: the source's).
ALTER TABLE tdgl_replica.sources ADD COLUMN IF NOT EXISTS conflict_policy text NOT NULL
	DEFAULT 'manual' CHECK (conflict_policy IN ('manual', 'source-wins', 'local-wins',
	                                            'latest-wins'));
ALTER TABLE tdgl_replica.source_tables ADD COLUMN IF NOT EXISTS conflict_policy text
	CHECK (conflict_policy IN ('manual', 'source-wins', 'local-wins', 'latest-wins'));
-- The peer's version of a conflicting change (for Accept Primary to pass it on), and the
-- policy that decided it (NULL: open, or resolved by an admin).
ALTER TABLE tdgl_replica.conflicts ADD COLUMN IF NOT EXISTS version json;
ALTER TABLE tdgl_replica.conflicts ADD COLUMN IF NOT EXISTS decided_by text;
-- A streamed change's version ({"origin", "id", "at", "base"}: what the peer served it with;
-- NULL from a one-way primary).
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_attribute a JOIN pg_type t ON t.typrelid = a.attrelid
	               WHERE t.oid = 'tdgl_replica.change'::regtype AND a.attname = 'v'
	                 AND NOT a.attisdropped) THEN
		ALTER TYPE tdgl_replica.change ADD ATTRIBUTE v json;
	END IF;
END $$;

-- Version 8: a run counts the conflicts its policy decided (resolved) apart from those it
-- left open for an admin (conflicts).
ALTER TABLE tdgl_replica.runs ADD COLUMN IF NOT EXISTS resolved int NOT NULL DEFAULT 0;

-- Version 8, too: Synced outcomes are kept per applied statement, not per change. Writing
-- one sync_log row (and its two index entries) per applied change was ~15 % of the apply
-- statement's time (BENCHMARKS.md); now the changes one apply statement synced are ONE row,
-- status Synced: change_ids, pks (jsonb[]) and ops (NULL when every op is `op`) side by
-- side, in change order, and entries = how many (1 for every other row). Failed and Skipped
-- outcomes, and a two-way Synced one with a reason (a conflict its policy decided), stay
-- one row per change. Rows written before version 8 stay as they are (change_ids NULL).
-- tdgl_replica.sync_entries is the log one entry per change, for every reader that asks
-- about changes or keys (the log pages, GET /api/log, `tdgl-replica log`).
ALTER TABLE tdgl_replica.sync_log ADD COLUMN IF NOT EXISTS change_ids bigint[];
ALTER TABLE tdgl_replica.sync_log ADD COLUMN IF NOT EXISTS pks jsonb[];
ALTER TABLE tdgl_replica.sync_log ADD COLUMN IF NOT EXISTS ops text[];
ALTER TABLE tdgl_replica.sync_log ADD COLUMN IF NOT EXISTS entries int NOT NULL DEFAULT 1;
-- A 500-change row is ~15 kB of arrays: lz4 compresses it in ~0.07 ms, pglz (the default)
-- in ~0.3-0.45 ms, a fifth of what the row saves. A server built without lz4 keeps pglz.
DO $$
BEGIN
	ALTER TABLE tdgl_replica.sync_log ALTER COLUMN change_ids SET COMPRESSION lz4,
		ALTER COLUMN pks SET COMPRESSION lz4, ALTER COLUMN ops SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
	RAISE NOTICE 'sync_log: no lz4 here, arrays compressed with pglz';
END $$;

-- One row per change: a Synced row of a statement expanded (its entries share its id, seq
-- is their order in it), every other row as it is (seq 1).
CREATE OR REPLACE VIEW tdgl_replica.sync_entries AS
SELECT l.id, l.source, e.change_id, l.tbl, e.pk, e.op, l.status, l.reason, l.error, l.sqlstate,
       l.attempts, l.next_retry_at, l.change, l.run_id, l.created_at, e.seq
FROM tdgl_replica.sync_log l
CROSS JOIN LATERAL (
	SELECT l.change_id, l.pk, l.op, 1::bigint AS seq WHERE l.change_ids IS NULL
	UNION ALL
	SELECT u.id, u.pk, coalesce(u.op, l.op), u.seq
	FROM unnest(l.change_ids, l.pks, l.ops) WITH ORDINALITY u(id, pk, op, seq)
	WHERE l.change_ids IS NOT NULL) e;

-- The window of a log page (replica/browse.c): the lowest id x >= p_floor such that the log
-- rows in [x, p_hi) hold at most p_entries entries (one row at least). Every row holds one
-- id, so ids count entries but for the statement rows' extra ones, which this index lists
-- (one entry per statement): a page never expands more than p_entries entries, and a log of
-- rows of one change each is bounded by id arithmetic alone, as before schema 8.
CREATE INDEX IF NOT EXISTS sync_log_statement_idx ON tdgl_replica.sync_log (id) INCLUDE (entries)
	WHERE entries > 1;
CREATE OR REPLACE FUNCTION tdgl_replica.log_window(p_hi bigint, p_floor bigint, p_entries int)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
	r     record;
	extra bigint := 0;     -- entries past the first of the statement rows in [lo, p_hi)
	lo    bigint := greatest(p_floor, p_hi - p_entries);
BEGIN
	FOR r IN SELECT s.id, s.entries FROM tdgl_replica.sync_log s
	         WHERE s.entries > 1 AND s.id < p_hi AND s.id >= lo ORDER BY s.id DESC LOOP
		EXIT WHEN r.id < lo;
		IF p_hi - r.id + extra + r.entries - 1 > p_entries THEN
			RETURN least(greatest(r.id + 1, lo), p_hi - 1);    -- r does not fit
		END IF;
		extra := extra + r.entries - 1;
		lo := greatest(p_floor, p_hi - p_entries + extra);
	END LOOP;
	RETURN lo;
END $$;

-- Version 8, too: pages of up to 5000 changes (common/limits.h; the primary also ends a page
-- at 8 MiB of rows), 2000 by default: a page's fixed cost amortised over 4x the changes.
-- Sources at the old default (500) move to the new one, once.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM tdgl_replica.schema_version WHERE version = 8) THEN
		ALTER TABLE tdgl_replica.sources DROP CONSTRAINT IF EXISTS sources_batch_size_check;
		ALTER TABLE tdgl_replica.sources ADD CONSTRAINT sources_batch_size_check
			CHECK (batch_size BETWEEN 1 AND 5000);
		ALTER TABLE tdgl_replica.sources ALTER COLUMN batch_size SET DEFAULT 2000;
		UPDATE tdgl_replica.sources SET batch_size = 2000 WHERE batch_size = 500;
	END IF;
END $$;
