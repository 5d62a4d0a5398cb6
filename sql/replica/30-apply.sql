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

-- Version 6: one apply core. Every way a row reaches a local table (a streamed page, an
-- initial copy's JSON or staged COPY page, a retry, Accept Primary, a dry run, a repair)
-- goes through ONE statement generator, tdgl_replica.apply_statement, and every apply function
-- answers with the typed tdgl_replica.apply_result (decoded in C by apply_summary_read), not JSON.
-- The functions of versions up to 5 that answered json are dropped here (CREATE OR REPLACE
-- cannot change a result type).
DO $$
DECLARE
	f regprocedure;
BEGIN
	IF to_regtype('tdgl_replica.apply_result') IS NULL THEN
		CREATE TYPE tdgl_replica.apply_result AS (fetched int, synced int, failed int, skipped int,
			conflicts int, ignored int, files text[], replica_role bool, resolved int);
	END IF;
	-- Version 8: conflicts decided by a policy (resolved) counted apart from those left open
	IF NOT EXISTS (SELECT FROM pg_attribute a JOIN pg_type t ON t.typrelid = a.attrelid
	               WHERE t.oid = 'tdgl_replica.apply_result'::regtype AND a.attname = 'resolved'
	                 AND NOT a.attisdropped) THEN
		ALTER TYPE tdgl_replica.apply_result ADD ATTRIBUTE resolved int;
	END IF;
	FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
	         WHERE p.pronamespace = 'tdgl_replica'::regnamespace AND p.prorettype = 'json'::regtype
	           AND p.proname IN ('apply_run', 'apply_safely', 'apply_runs', 'apply_page',
	                             'apply_rows', 'copy_apply') LOOP
		EXECUTE format('DROP FUNCTION %s', f);
	END LOOP;
END $$;

-- The class of an operation: 'D' delete, 'R' rename (the key moves), 'U' upsert (Create,
-- Update, Submit, Cancel, Update After Submit, Repair). Streamed changes are classed once in
-- C when the page is cut into runs (page_op_class in replica/page.c, sent along with the
-- page); this is the definition for changes stored in the database (a retried change, a
-- conflict's change, a dry run's). The two are the same table of three lines.
CREATE OR REPLACE FUNCTION tdgl_replica.op_class(p_op text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE p_op WHEN 'Delete' THEN 'D' WHEN 'Rename' THEN 'R' ELSE 'U' END
$$;

-- A source table's settings; a table the source does not configure (a conflict resolved
-- after its table was removed) gets the defaults: everything enabled, no filter.
CREATE OR REPLACE FUNCTION tdgl_replica.table_config(p_source text, p_tbl text)
RETURNS tdgl_replica.source_tables LANGUAGE plpgsql STABLE AS $$
DECLARE
	cfg tdgl_replica.source_tables;
BEGIN
	SELECT * INTO cfg FROM tdgl_replica.source_tables WHERE source = p_source AND tbl = p_tbl;
	IF NOT FOUND THEN
		cfg.source := p_source; cfg.tbl := p_tbl;
		cfg.insert_enabled := true; cfg.update_enabled := true; cfg.delete_enabled := true;
		cfg.update_without_changes := false; cfg.attach_columns := '{}';
	END IF;
	RETURN cfg;
END $$;

-- When a Failed change is retried: p_retries retries after its first failure (0: the first
-- retry), base * 2^retries seconds from now, with the source's retry_base_s as base. The
-- only backoff in SQL; it is backoff_delay()'s formula (replica/backoff.c) without a cap and
-- without jitter: written here because both writers of next_retry_at are SQL statements
-- (the page's change-by-change fallback, and the retry's update of its log row).
CREATE OR REPLACE FUNCTION tdgl_replica.retry_due_at(p_base_s int, p_retries int) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
	SELECT now() + make_interval(secs => coalesce(p_base_s, 300) * power(2, p_retries))
$$;

-- p_fmt formatted with each column of p_cols (as %1$I, %1$L...), joined by p_sep: the
-- column lists, key joins and key objects of generated statements. plpgsql, like the
-- other helpers the apply calls per run: a sql function with a FROM is parsed and planned
-- again in every transaction, a plpgsql one keeps its plan for the session.
CREATE OR REPLACE FUNCTION tdgl_replica.each_col(p_cols text[], p_fmt text, p_sep text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	RETURN (SELECT string_agg(format(p_fmt, x), p_sep ORDER BY o)
	        FROM unnest(p_cols) WITH ORDINALITY u(x, o));
END $$;

-- Two apply results added up (counts summed, files concatenated).
CREATE OR REPLACE FUNCTION tdgl_replica.apply_add(a tdgl_replica.apply_result, b tdgl_replica.apply_result)
RETURNS tdgl_replica.apply_result LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	a.fetched := coalesce(a.fetched, 0) + coalesce(b.fetched, 0);
	a.synced := coalesce(a.synced, 0) + coalesce(b.synced, 0);
	a.failed := coalesce(a.failed, 0) + coalesce(b.failed, 0);
	a.skipped := coalesce(a.skipped, 0) + coalesce(b.skipped, 0);
	a.conflicts := coalesce(a.conflicts, 0) + coalesce(b.conflicts, 0);
	a.resolved := coalesce(a.resolved, 0) + coalesce(b.resolved, 0);
	a.ignored := coalesce(a.ignored, 0) + coalesce(b.ignored, 0);
	a.files := coalesce(a.files, '{}') || coalesce(b.files, '{}');
	a.replica_role := coalesce(b.replica_role, a.replica_role);
	RETURN a;
END $$;

-- THE apply statement: for local table p_rel (key p_pk), op class p_cls ('U' upsert, 'D'
-- delete, 'R' rename) and an input relation, ONE statement that classifies every input row
-- (filter, local edit -> conflict, insert/update/delete switches, unchanged rows), opens or
-- refreshes conflicts, removes rows that left the filtered subset (unless edited here),
-- applies the rest, supersedes older Failed entries of the rows it applied, remembers a
-- re-sync's keys, logs the outcomes, and answers one tdgl_replica.apply_result row.
-- p_input: 'changes' ($1 tdgl_replica.change[], no key twice unless p_repeats; p_cols: the columns
-- the snapshots and the table share) or 'stage' (pg_temp.tdgl_copy_stage of a COPY page,
-- upserts only; p_cols: its columns). p_repeats: an upsert run that may hold a key several
-- times, in order (tdgl_replica.apply_runs merges the runs of a hot row so): each change gets the
-- outcome it would get one by one (a later change equal to the one before is 'no changes',
-- each change of a locally edited row refreshes its conflict), the row takes its last
-- applied snapshot, the conflict its last change.
-- Parameters of the statement: $1 changes, $2 filter (jsonb), $3 table (sync name),
-- $4 insert_enabled, $5 update_enabled, $6 force (a conflict resolution: no filter, switch
-- or local-edit checks), $7 update_without_changes, $8 source, $9 run id, $10 initial (log
-- only what is not Synced), $11 attachment columns, $12 delete_enabled, $13 re-sync,
-- $14 the conflict policy of a two-way table.
-- p_two_way (a two-way table, 'changes' input; docs/design.md "Two-way sync"): a change
-- conflicts when its version's base is not the row's version here (tdgl_replica.two_way_outcome,
-- instead of the local-edit test), the policy decides it (a decided conflict is recorded
-- Resolved with the winner), and every change applied is logged in this site's change log
-- with its origin's version and the peer it came from (tdgl.via), to be passed on to the
-- other peers.
DROP FUNCTION IF EXISTS tdgl_replica.apply_statement(regclass, text[], text[], text, text, bool);
CREATE OR REPLACE FUNCTION tdgl_replica.apply_statement(p_rel regclass, p_pk text[], p_cols text[],
	p_cls text, p_input text, p_repeats bool, p_two_way bool DEFAULT false) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
	t      text := tdgl_replica.qualified(p_rel);
	stage  bool := p_input = 'stage';
	upd    text[];     -- columns an update may set (not GENERATED ALWAYS identities)
	head   text;       -- the input's columns in w0
	src    text;       -- the input relation: ch (the change) and p (its populated record)
	snap   text;       -- a w row's snapshot as json
	keyp   text;       -- jsonb_build_object over p's key
	edited text := 'EXISTS (SELECT 1 FROM tdgl_replica.local_edits e WHERE e.tbl = $3 AND e.pk = %s)';
	filt   text;       -- the filter test in w0
	ckey   text := CASE p_cls WHEN 'R' THEN 'w.opk' ELSE 'w.lpk' END;  -- the row addressed
	ljoin  text;       -- the local row l a w row addresses (a rename: its old key)
	ptxt   text;       -- p's columns as text, for 'no changes'
	jkey   text;       -- p's key as the primary role's capture writes it (json_build_object,
	jokey  text;       -- key columns in order: the change log finds versions by its text); o's
	tw     text := 'NULL::text';   -- the two-way outcome of a change (x.tw)
	w0     text;
	q      text;
	cached text;       -- the session's copy of this very statement (a custom setting)
BEGIN
	IF (stage AND p_cls <> 'U') OR p_cls NOT IN ('U', 'D', 'R')
	   OR (p_repeats AND (stage OR p_cls <> 'U')) OR (p_two_way AND (stage OR p_repeats)) THEN
		RAISE EXCEPTION 'apply_statement: no % statement for %', p_cls, p_input;
	END IF;
	SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO upd FROM pg_attribute a
	WHERE a.attrelid = p_rel AND a.attname = ANY (p_cols) AND a.attnum > 0
	  AND NOT a.attisdropped AND a.attidentity <> 'a';
	-- Generating costs about as much as planning the statement, and a pull applies the same
	-- few statements page after page: the text is kept for the session under everything it
	-- is made of (a table renamed, a column added or made an identity is another key).
	cached := 'tdgl_replica.stmt_' || md5(concat_ws('|', t, p_pk::text, p_cols::text, upd::text, p_cls,
	                                         p_input, p_repeats, p_two_way));
	q := current_setting(cached, true);
	IF q <> '' THEN
		RETURN q;
	END IF;
	keyp := 'jsonb_build_object(' || tdgl_replica.each_col(p_pk, '%1$L, p.%1$I', ', ') || ')';
	ptxt := 'ROW(' || tdgl_replica.each_col(p_cols, 'p.%1$I::text', ', ') || ')';
	jkey := 'json_build_object(' || tdgl_replica.each_col(p_pk, '%1$L, p.%1$I', ', ') || ')';
	jokey := 'json_build_object(' || tdgl_replica.each_col(p_pk, '%1$L, o.%1$I', ', ') || ')';
	IF stage THEN
		head := 'NULL::int AS ord, NULL::bigint AS id, ''Create''::text AS op, NULL::json AS "row", '
		        'p AS rec, NULL::json AS v, NULL::json AS jpk, NULL::text AS tw';
		src := 'pg_temp.tdgl_copy_stage p';
		snap := 'row_to_json(w.rec)';
		filt := 'to_jsonb(p)';
	ELSE
		head := format('ch.ord, ch.id, ch.op, ch."row", ROW(p.*)::%s AS rec, ch.v, %s AS jpk, x.tw',
		               t, jkey);
		IF p_two_way THEN
			tw := format('tdgl_replica.two_way_outcome($3, %s, ch.v, $14)',
			             CASE p_cls WHEN 'R' THEN jokey ELSE jkey END);
			-- the local-edit test gives way to the versions: concurrent or not (format()
			-- ignores the key it is given)
			edited := 'x.tw = ''conflict''';
		END IF;
		src := format('unnest($1::tdgl_replica.change[]) ch CROSS JOIN LATERAL json_populate_record(NULL::%s, %s) p',
		              t, CASE p_cls WHEN 'D' THEN 'coalesce(ch.pk, ch."row")' ELSE 'ch."row"' END);
		snap := 'w."row"';
		filt := 'ch."row"::jsonb';
	END IF;
	filt := format('$2::jsonb IS NOT NULL AND NOT (%s @> $2::jsonb)', filt);
	ljoin := tdgl_replica.each_col(p_pk, 'l.%1$I = (w.' || CASE p_cls WHEN 'R' THEN 'orec' ELSE 'rec' END
	                       || ').%1$I', ' AND ');

	IF p_cls = 'U' THEN
		w0 := format($q$
	SELECT %1$s, NULL::json AS old_pk, NULL::json AS jopk, %2$s AS lpk,
	       l.ctid IS NOT NULL AS present, false AS new_present,
	       CASE
	         WHEN $6 THEN NULL
	         WHEN %3$s THEN 'filter'
	         WHEN %4$s THEN 'conflict'
	         WHEN x.tw = 'already applied' THEN x.tw
	         WHEN x.tw = 'local wins' THEN 'conflict: local wins'
	         WHEN l.ctid IS NULL AND NOT $4 THEN 'insert disabled'
	         WHEN l.ctid IS NOT NULL AND NOT $5 THEN 'update disabled'
	         WHEN l.ctid IS NOT NULL AND NOT $7 AND (%5$s) IS NOT DISTINCT FROM (%6$s)
	           THEN 'no changes'
	       END AS skip%7$s
	FROM %8$s
	LEFT JOIN %9$s l ON %10$s
	CROSS JOIN LATERAL (SELECT %11$s AS tw) x$q$,
			head, keyp, filt, format(edited, keyp),
			'ROW(' || tdgl_replica.each_col(p_cols, 'l.%1$I::text', ', ') || ')', ptxt,
			CASE WHEN p_repeats THEN ', ' || ptxt || ' AS ptxt' ELSE '' END,
			src, t, tdgl_replica.each_col(p_pk, 'l.%1$I = p.%1$I', ' AND '), tw);
	ELSIF p_cls = 'D' THEN
		w0 := format($q$
	SELECT %1$s, NULL::json AS old_pk, NULL::json AS jopk, %2$s AS lpk,
	       l.ctid IS NOT NULL AS present, false AS new_present,
	       CASE
	         WHEN l.ctid IS NULL THEN 'already deleted'
	         WHEN $6 THEN NULL
	         WHEN %3$s THEN 'conflict'
	         WHEN x.tw = 'already applied' THEN x.tw
	         WHEN x.tw = 'local wins' THEN 'conflict: local wins'
	         WHEN NOT $12 THEN 'delete disabled'
	       END AS skip
	FROM %4$s
	LEFT JOIN %5$s l ON %6$s
	CROSS JOIN LATERAL (SELECT %7$s AS tw) x$q$,
			head, keyp, format(edited, keyp), src, t,
			tdgl_replica.each_col(p_pk, 'l.%1$I = p.%1$I', ' AND '), tw);
	ELSE
		-- a rename: the row at old_pk takes the new key and snapshot; missing -> inserted
		w0 := format($q$
	SELECT %1$s, ch.old_pk, %9$s AS jopk, ROW(o.*)::%2$s AS orec, %3$s AS lpk, %4$s AS opk,
	       l.ctid IS NOT NULL AS present, ln.ctid IS NOT NULL AS new_present,
	       CASE
	         WHEN $6 THEN NULL
	         WHEN %5$s THEN 'filter'
	         WHEN %10$s THEN 'conflict'
	         WHEN x.tw = 'already applied' THEN x.tw
	         -- two-way, the old key's row won here: the rename is a removal of the old key
	         -- (lost: the row stays) and an insert of the new one (made: see mv, dup, up),
	         -- which is what the other site, deciding the same way, ends up with too
	         WHEN NOT $5 THEN 'update disabled'
	       END AS skip
	FROM %6$s
	CROSS JOIN LATERAL json_populate_record(NULL::%2$s, ch.old_pk) o
	LEFT JOIN %2$s l ON %7$s
	LEFT JOIN %2$s ln ON %8$s
	CROSS JOIN LATERAL (SELECT %11$s AS tw) x$q$,
			head, t, keyp, 'jsonb_build_object(' || tdgl_replica.each_col(p_pk, '%1$L, o.%1$I', ', ') || ')',
			filt, src, tdgl_replica.each_col(p_pk, 'l.%1$I = o.%1$I', ' AND '),
			tdgl_replica.each_col(p_pk, 'ln.%1$I = p.%1$I', ' AND '), jokey,
			CASE WHEN p_two_way THEN 'x.tw = ''conflict'''
			     ELSE 'EXISTS (SELECT 1 FROM tdgl_replica.local_edits e WHERE e.tbl = $3 '
			          'AND e.pk IN (' || keyp || ', jsonb_build_object('
			          || tdgl_replica.each_col(p_pk, '%1$L, o.%1$I', ', ') || ')))' END, tw);
	END IF;

	-- (w0's classification is named once: a column repeated here would be computed twice)
	q := 'WITH w0 AS (' || w0 || E'\n), w AS (\n\t' || CASE WHEN p_repeats THEN
		-- w0's outcome holds for a key's first change (and a conflict for all); a later one
		-- changes nothing when its snapshot equals the one before (the row then holds that
		-- one, applied or equal)
		'SELECT ord, id, op, "row", rec, old_pk, lpk, present, new_present, '
		'CASE WHEN row_number() OVER k = 1 OR skip = ''conflict'' THEN skip '
		'WHEN NOT $7 AND lag(ptxt) OVER k IS NOT DISTINCT FROM ptxt THEN ''no changes'' END '
		'AS skip, count(*) OVER (PARTITION BY lpk) AS cnt FROM w0 '
		'WINDOW k AS (PARTITION BY lpk ORDER BY ord)'
		ELSE 'SELECT w0.*, 1 AS cnt FROM w0' END || E'\n)';
	-- conflicts: opened, or refreshed with the newest primary snapshot and local row (only
	-- a key's last change writes it when the run repeats keys)
	q := q || format($q$, conf AS (
	INSERT INTO tdgl_replica.conflicts AS k (source, tbl, pk, change_id, op, old_pk, primary_row,
	                                 local_row, refreshed, version)
	SELECT %1$s $8, $3, %2$s, w.id, w.op, w.old_pk, %3$s,
	       (SELECT row_to_json(l.*) FROM %4$s l WHERE %5$s),  -- only for conflicts: costly
	       w.cnt - 1, %7$s
	FROM w WHERE w.skip = 'conflict' %6$s
	ON CONFLICT (tbl, pk) WHERE status = 'Open' DO UPDATE
	SET change_id = EXCLUDED.change_id, op = EXCLUDED.op, primary_row = EXCLUDED.primary_row,
	    local_row = EXCLUDED.local_row, source = EXCLUDED.source, old_pk = EXCLUDED.old_pk,
	    version = EXCLUDED.version,
	    refreshed = k.refreshed + EXCLUDED.refreshed + 1, updated_at = now()
	RETURNING 1
)$q$,
		CASE WHEN p_repeats THEN 'DISTINCT ON (w.lpk)' ELSE '' END, ckey, snap, t, ljoin,
		CASE WHEN p_repeats THEN 'ORDER BY w.lpk, w.ord DESC' ELSE '' END,
		CASE WHEN p_two_way THEN 'w.v' ELSE 'NULL::json' END);
	IF p_cls <> 'D' THEN
		-- a row that left the subset is removed, unless it was edited here
		q := q || format($q$, gone AS (
	DELETE FROM %1$s l USING w
	WHERE w.skip = 'filter' AND w.present AND %2$s
	  AND NOT EXISTS (SELECT 1 FROM tdgl_replica.local_edits e WHERE e.tbl = $3 AND e.pk = %3$s)
	RETURNING 1
)$q$, t, ljoin, ckey);
	END IF;
	IF p_cls = 'D' THEN
		q := q || format($q$, del AS (
	DELETE FROM %1$s l USING w WHERE w.skip IS NULL AND %2$s
	RETURNING 1
)$q$, t, ljoin);
	ELSIF p_cls = 'R' THEN
		q := q || format($q$, mv AS (
	UPDATE %1$s l SET %2$s FROM w
	WHERE w.skip IS NULL AND w.present AND NOT w.new_present AND %3$s
	  AND w.tw IS DISTINCT FROM 'local wins'
	RETURNING 1
), dup AS (
	-- the new key is already here (a replay over an initial copy that saw the rename):
	-- the old row goes, the new one takes the snapshot below
	DELETE FROM %1$s l USING w WHERE w.skip IS NULL AND w.present AND w.new_present AND %3$s
	  AND w.tw IS DISTINCT FROM 'local wins'
	RETURNING 1
)$q$, t, tdgl_replica.each_col(upd, '%1$I = (w.rec).%1$I', ', '), ljoin);
	END IF;
	IF p_cls <> 'D' THEN
		q := q || format($q$, up AS (
	INSERT INTO %1$s AS l (%2$s) OVERRIDING SYSTEM VALUE
	SELECT %3$s %4$s FROM w WHERE w.skip IS NULL %5$s %6$s
	ON CONFLICT (%7$s) DO %8$s
	RETURNING 1
)$q$, t, tdgl_replica.each_col(p_cols, '%1$I', ', '),
			CASE WHEN p_repeats THEN 'DISTINCT ON (w.lpk)' ELSE '' END,
			tdgl_replica.each_col(p_cols, '(w.rec).%1$I', ', '),
			CASE WHEN p_cls = 'R' THEN 'AND (NOT w.present OR w.new_present '
			                           'OR w.tw = ''local wins'')' ELSE '' END,
			CASE WHEN p_repeats THEN 'ORDER BY w.lpk, w.ord DESC' ELSE '' END,
			tdgl_replica.each_col(p_pk, '%1$I', ', '),
			coalesce('UPDATE SET ' || tdgl_replica.each_col(
				(SELECT array_agg(x) FROM unnest(upd) x WHERE x <> ALL (p_pk)),
				'%1$I = EXCLUDED.%1$I', ', '), 'NOTHING'));
	END IF;
	IF p_two_way THEN
		-- a conflict the policy decided is recorded resolved, with the winner; then what was
		-- applied goes into this site's change log with its origin's version, from the peer
		-- (tdgl.via): served on to the other peers, never back to it or to its origin. A
		-- change equal to the row here (no changes), or a delete of a row already gone, is
		-- logged too when it won or did not conflict: the row now holds that version (else
		-- the winner's site would see this site's next change as concurrent with its own,
		-- and a site that always wins would refuse it forever). Statements of a WITH run to completion in order after the main query, so
		-- these ids are taken after the rows above were written (per-row id order), and
		-- apply_run locked the table against local writers before (two_way_lock).
		q := q || format($q$, auto AS (
	INSERT INTO tdgl_replica.conflicts (source, tbl, pk, change_id, op, old_pk, primary_row,
	                                    local_row, version, status, resolution, decided_by,
	                                    resolved_at)
	SELECT $8, $3, %1$s, w.id, w.op, w.old_pk, %2$s,
	       (SELECT row_to_json(l.*) FROM %3$s l WHERE %4$s), w.v, 'Resolved',
	       CASE w.tw WHEN 'source wins' THEN 'Accept Primary' ELSE 'Keep Local' END, $14, now()
	FROM w WHERE w.tw IN ('source wins', 'local wins') AND NOT $6
	RETURNING 1
), fwd AS (
	INSERT INTO tdgl.change_log (tbl, op, pk, old_pk, "row", origin, origin_id, origin_at, via)
	-- (a rename whose old key's row won here made only its new key: logged as that insert)
	SELECT $3, CASE WHEN w.tw = 'local wins' THEN 'Create' ELSE w.op END, w.jpk,
	       CASE WHEN w.tw = 'local wins' THEN NULL ELSE w.jopk END, w."row",
	       (w.v ->> 'origin')::uuid, (w.v ->> 'id')::bigint,
	       (w.v ->> 'at')::timestamptz, nullif(current_setting('tdgl.via', true), '')::uuid
	FROM w WHERE w.v IS NOT NULL
	  AND (w.skip IS NULL OR w.skip = 'no changes'
	       OR (w.skip = 'already deleted' AND (w.tw IS NULL OR w.tw = 'source wins')))
	ORDER BY w.ord
	RETURNING 1
)$q$, ckey, snap, t, ljoin);
	END IF;
	IF NOT stage THEN
		-- a change applied (or, a delete, found done) supersedes older Failed entries of its row
		q := q || format($q$, sup AS (
	UPDATE tdgl_replica.sync_log s SET status = 'Skipped', reason = 'superseded by change ' || w.id,
	       next_retry_at = NULL
	FROM w WHERE %s AND w.id IS NOT NULL
	  AND s.status = 'Failed' AND s.source = $8 AND s.tbl = $3 AND s.pk = w.lpk
	  AND s.change_id < w.id
	RETURNING 1
)$q$, CASE p_cls WHEN 'D' THEN '(w.skip IS NULL OR w.skip = ''already deleted'')'
		             ELSE 'w.skip IS NULL' END);
	ELSE
		q := q || $q$, seen AS (
	INSERT INTO tdgl_replica.resync_seen (source, tbl, pk)
	SELECT $8, $3, w.lpk FROM w WHERE $13
	ON CONFLICT DO NOTHING
	RETURNING 1
)$q$;
	END IF;
	-- the log: what the statement synced is ONE row (its changes' ids, keys and ops side by
	-- side: a row per change was ~15 % of the statement), anything else (Skipped, or
	-- Synced with a reason: a conflict a two-way policy decided) a row per change
	q := q || format($q$, lr AS (
	SELECT w.ord, w.id, w.lpk, w.op, w.skip,
	       CASE WHEN w.skip = 'filter' AND w.present THEN 'filter: left the subset'%2$s
	            WHEN w.skip = 'conflict' THEN 'conflict: row edited locally'
	            ELSE w.skip END AS reason
	FROM w WHERE NOT $10 OR w.skip IS NOT NULL
), lg AS (
	INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status, reason, run_id,
	                                   change_ids, pks, ops, entries)
	(SELECT $8, lr.id, $3, lr.lpk, lr.op, CASE WHEN lr.skip IS NULL THEN 'Synced' ELSE 'Skipped' END,
	        lr.reason, $9, NULL::bigint[], NULL::jsonb[], NULL::text[], 1
	 FROM lr WHERE lr.reason IS NOT NULL ORDER BY lr.ord)
	UNION ALL
	-- (one sort for the three arrays: the aggregates read a sorted subquery in its order)
	(SELECT $8, NULL, $3, NULL, min(s.op), 'Synced', NULL, $9, array_agg(s.id), array_agg(s.lpk),
	        CASE WHEN min(s.op) <> max(s.op) THEN array_agg(s.op) END, count(*)::int
	 FROM (SELECT lr.id, lr.lpk, lr.op FROM lr WHERE lr.reason IS NULL ORDER BY lr.ord) s
	 HAVING count(*) > 0)
	RETURNING 1
)
SELECT count(*)::int, (count(*) FILTER (WHERE skip IS NULL))::int, 0,
       (count(*) FILTER (WHERE skip IS NOT NULL))::int,
       (count(*) FILTER (WHERE skip = 'conflict'))::int, 0, %1$s, NULL::bool, %3$s
FROM w$q$,
		CASE WHEN p_cls = 'D' THEN '''{}''::text[]' ELSE format(
			'ARRAY(SELECT DISTINCT x.v FROM w, unnest($11::text[]) col, '
			'LATERAL (SELECT %s ->> col AS v) x WHERE w.skip IS NULL AND x.v LIKE ''/files/%%'')',
			snap) END,
		CASE WHEN p_two_way THEN $r$
	            WHEN w.skip = 'conflict' THEN 'conflict: edited here meanwhile'
	            WHEN w.tw = 'source wins' THEN 'conflict: ' || $14 || ', source won'
	            WHEN w.skip = 'conflict: local wins' THEN 'conflict: ' || $14 || ', local won'
	            WHEN w.tw = 'local wins' THEN 'conflict: ' || $14 || ', the old key stayed'$r$
		ELSE '' END,
		CASE WHEN p_two_way THEN '(count(*) FILTER (WHERE tw IN (''source wins'', ''local wins'')))::int'
		     ELSE '0' END);
	PERFORM set_config(cached, q, false);
	RETURN q;
END $$;

-- Version 9: the statements apply_run runs, planned once per session. PL/pgSQL keeps the
-- plan of a static statement for the session, and EXECUTE parses and plans its text at every
-- run: two thirds of the CPU of applying a page of 60 changes (BENCHMARKS.md). So each session
-- gets one function of its own, pg_temp.tdgl_apply, whose body holds every statement the
-- session ran so far as static SQL, chosen by its key (the md5 of its text, the 15th
-- argument); a statement not in it yet is added by replacing the function. apply_run calls it
-- as a plain expression: the change array is handed over by reference, not copied (EXECUTE
-- copied it into the plan, and a function called through EXECUTE copied it again). The plans
-- are generic: they must hold for a run of one change and of thousands, and for a table that
-- grows under them while the session lives, so they are made without hash or merge joins and
-- without sequential scans where an index serves: every local row is found by its key (what
-- the plans made per run chose for runs of any size too); and without Memoize, whose cache of
-- key lookups a run's distinct keys never hit (only a merged hot-row run repeats a key). The
-- session's keys and statements (each without its closing "FROM w") are custom settings,
-- transactional like the function: a rolled-back transaction takes back both. Adding a
-- statement recompiles the function and drops the plans of those it held, so a session's
-- warm-up grows with the square of its statements (measured: 20 statements 0.3 s, 100 4.8 s,
-- 400 88 s): the function holds the first 32 a session runs, and a statement past them is
-- planned at every run, as before version 9. Returns the key of the statement for these
-- arguments, NULL for a statement left out.
CREATE OR REPLACE FUNCTION tdgl_replica.apply_function(p_rel regclass, p_pk text[], p_cols text[],
	p_cls text, p_repeats bool, p_two_way bool) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	q    text := tdgl_replica.apply_statement(p_rel, p_pk, p_cols, p_cls, 'changes', p_repeats,
	                                          p_two_way);
	k    text := md5(q);
	keys text := coalesce(current_setting('tdgl_replica.apply_keys', true), '');
	body text := '';
	key  text;
BEGIN
	IF to_regprocedure('pg_temp.tdgl_apply(tdgl_replica.change[], jsonb, text, bool, bool, bool, '
	                   'bool, text, bigint, bool, text[], bool, bool, text, text)') IS NULL THEN
		keys := '';         -- the function is gone (a new session, DISCARD TEMP)
	ELSIF position(k IN keys) > 0 THEN
		RETURN k;
	ELSIF array_length(string_to_array(keys, ' '), 1) >= 32 THEN
		RETURN NULL;        -- full: this statement is planned at every run, as before
	END IF;
	-- the statement's result row goes INTO the function's variable (its only INTO: the others
	-- follow INSERT), before the "FROM w" apply_statement ends every statement with
	IF right(q, 7) <> E'\nFROM w' THEN
		RAISE EXCEPTION 'apply_function: statement % does not end with its result''s FROM w', k;
	END IF;
	PERFORM set_config('tdgl_replica.apply_q_' || k, left(q, -7), false);
	keys := ltrim(keys || ' ' || k);
	FOREACH key IN ARRAY string_to_array(keys, ' ') LOOP
		body := body || format(E'\tWHEN %L THEN\n%s\nINTO tdgl_res FROM w;\n', key,
		                       current_setting('tdgl_replica.apply_q_' || key));
	END LOOP;
	EXECUTE format('CREATE OR REPLACE FUNCTION pg_temp.tdgl_apply(tdgl_replica.change[], jsonb, '
	               'text, bool, bool, bool, bool, text, bigint, bool, text[], bool, bool, text, text) '
	               'RETURNS tdgl_replica.apply_result LANGUAGE plpgsql '
	               'SET plan_cache_mode = force_generic_plan SET enable_hashjoin = off '
	               'SET enable_mergejoin = off SET enable_seqscan = off SET enable_memoize = off AS %L',
	               E'DECLARE\n\ttdgl_res tdgl_replica.apply_result;\nBEGIN\n\tCASE $15\n' || body
	               || E'\tEND CASE;\n\tRETURN tdgl_res;\nEND');
	PERFORM set_config('tdgl_replica.apply_keys', keys, false);
	RETURN k;
END $$;

-- Applies one run of changes (one table, one op class, no key twice unless p_repeats) with
-- tdgl_replica.apply_statement. Raises when anything fails; tdgl_replica.apply_safely then goes change by
-- change. p_initial: rows of an initial sync (only non-Synced outcomes are logged).
-- p_force: a conflict resolution (no filter, switch or local-edit checks).
CREATE OR REPLACE FUNCTION tdgl_replica.apply_run(p_source text, p_run_id bigint, p_tbl text,
	p_cls text, p_ch tdgl_replica.change[], p_initial bool DEFAULT false, p_force bool DEFAULT false,
	p_repeats bool DEFAULT false)
RETURNS tdgl_replica.apply_result LANGUAGE plpgsql
-- (its catalog lookups, and apply_statement's, were planned at every call: ~0.25 ms a run)
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
	t    record := tdgl_replica.keyed_table(p_tbl);
	rel  regclass := t.rel;
	pk   text[] := t.pk;
	cfg  tdgl_replica.source_tables := tdgl_replica.table_config(p_source, p_tbl);
	cols text[];        -- columns both the snapshots and the local table have
	keys text[];
	n    int := cardinality(p_ch);
	c    text;
	stmt text;         -- the key of the run's statement in pg_temp.tdgl_apply
	policy text;       -- a two-way table's conflict policy
	res  tdgl_replica.apply_result;
	-- a two-way table's changes come with versions (a one-way primary sends none)
	two  bool := EXISTS (SELECT FROM unnest(p_ch) x WHERE x.v IS NOT NULL)
	             AND tdgl_replica.two_way(p_tbl);
BEGIN
	IF p_repeats AND NOT (cfg.filter IS NULL AND cfg.insert_enabled AND cfg.update_enabled
	                      AND NOT p_force) THEN
		RAISE EXCEPTION 'a run repeating keys needs a table without filter or switches off';
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
	SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO cols
	FROM pg_attribute a
	WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
	  AND (p_cls = 'D' OR a.attname = ANY (keys));
	FOREACH c IN ARRAY pk LOOP
		IF p_cls <> 'D' AND NOT (c = ANY (coalesce(cols, '{}'))) THEN
			RAISE EXCEPTION 'snapshot of % lacks key column %', p_tbl, c USING ERRCODE = '42703';
		END IF;
	END LOOP;
	IF two THEN
		PERFORM tdgl_replica.two_way_lock(rel);
		policy := tdgl_replica.conflict_policy(p_source, p_tbl);
	END IF;
	-- (the key first: the call is planned when it first runs, after the function exists)
	stmt := tdgl_replica.apply_function(rel, pk, cols, p_cls, p_repeats, two);
	IF stmt IS NULL THEN
		EXECUTE tdgl_replica.apply_statement(rel, pk, cols, p_cls, 'changes', p_repeats, two)
		INTO res USING p_ch, cfg.filter, p_tbl, cfg.insert_enabled, cfg.update_enabled, p_force,
			cfg.update_without_changes, p_source, p_run_id, p_initial, cfg.attach_columns,
			cfg.delete_enabled, false, policy;
		RETURN res;
	END IF;
	RETURN pg_temp.tdgl_apply(p_ch, cfg.filter, p_tbl, cfg.insert_enabled, cfg.update_enabled,
		p_force, cfg.update_without_changes, p_source, p_run_id, p_initial, cfg.attach_columns,
		cfg.delete_enabled, false, policy, stmt);
END $$;

-- Applies a run in one statement; when that fails, change by change under savepoints so
-- that only the failing changes are logged Failed (with the database's error, the change
-- itself for the retry, and its first retry time) and the rest applied.
CREATE OR REPLACE FUNCTION tdgl_replica.apply_safely(p_source text, p_run_id bigint, p_tbl text,
	p_cls text, p_ch tdgl_replica.change[], p_initial bool, p_repeats bool DEFAULT false)
RETURNS tdgl_replica.apply_result LANGUAGE plpgsql AS $$
DECLARE
	res    tdgl_replica.apply_result := ROW(0, 0, 0, 0, 0, 0, '{}', NULL, 0);
	ch     tdgl_replica.change;
	msg    text;
	st     text;
	base_s int;
BEGIN
	BEGIN
		RETURN tdgl_replica.apply_run(p_source, p_run_id, p_tbl, p_cls, p_ch, p_initial, false,
		                      p_repeats);
	EXCEPTION
		WHEN SQLSTATE '40P01' OR SQLSTATE '40001' OR SQLSTATE '55P03' THEN RAISE;
		WHEN OTHERS THEN NULL;  -- fall through to change-by-change
	END;
	SELECT retry_base_s INTO base_s FROM tdgl_replica.sources WHERE name = p_source;
	FOREACH ch IN ARRAY p_ch LOOP
		BEGIN
			res := tdgl_replica.apply_add(res, tdgl_replica.apply_run(p_source, p_run_id, p_tbl, p_cls,
			                                          ARRAY[ch], p_initial));
		EXCEPTION
			WHEN SQLSTATE '40P01' OR SQLSTATE '40001' OR SQLSTATE '55P03' THEN RAISE;
			WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, st = RETURNED_SQLSTATE;
				INSERT INTO tdgl_replica.sync_log (source, change_id, tbl, pk, op, status, error, sqlstate,
				                           next_retry_at, change, run_id)
				VALUES (p_source, ch.id, p_tbl, ch.pk::jsonb, ch.op, 'Failed', msg, st,
				        tdgl_replica.retry_due_at(base_s, 0),
				        json_build_object('id', ch.id, 'table', p_tbl, 'op', ch.op, 'pk', ch.pk,
				                          'old_pk', ch.old_pk, 'row', ch."row", 'version', ch.v),
				        p_run_id);
				res.fetched := res.fetched + 1;
				res.failed := res.failed + 1;
		END;
	END LOOP;
	RETURN res;
END $$;

-- Applies the runs of a page in run order (p_runs: the run of each change, p_classes: its
-- op class, both from replica/page.c). A change of a table the source does not configure
-- (or without a table) is ignored. p_merge (the runs are cut by table): consecutive upsert
-- runs of one table are the n-th changes of the keys of one stretch (page_runs); for a
-- table without filter, with inserts and updates enabled, they go in one statement
-- (apply_statement's p_repeats), so a row changed by every transaction of the page (a
-- balance) costs one statement, not one per change.
DROP FUNCTION IF EXISTS tdgl_replica.apply_runs(text, bigint, bigint[], text[], text[], json[], json[],
	json[], int[]);
DROP FUNCTION IF EXISTS tdgl_replica.apply_runs(text, bigint, bigint[], text[], text[], text[],
	json[], json[], json[], int[], bool);
CREATE OR REPLACE FUNCTION tdgl_replica.apply_runs(p_source text, p_run_id bigint, p_ids bigint[],
	p_tbls text[], p_ops text[], p_classes text[], p_pks json[], p_old_pks json[],
	p_rows json[], p_runs int[], p_merge bool DEFAULT false, p_versions json[] DEFAULT NULL)
RETURNS tdgl_replica.apply_result LANGUAGE plpgsql AS $$
DECLARE
	r     record;
	res   tdgl_replica.apply_result := ROW(0, 0, 0, 0, 0, 0, '{}', NULL, 0);
	pend  tdgl_replica.change[];     -- upsert runs of table ptbl, merged
	ptbl  text;
	prep  bool;              -- pend holds more than one run
	last  bool := false;
BEGIN
	FOR r IN
		SELECT u.run, min(u.tbl) AS tbl, min(u.cls) AS cls,
		       array_agg(ROW(u.ord::int, u.id, u.op, u.pk, u.old_pk, u."row", u.v)::tdgl_replica.change
		                 ORDER BY u.ord) AS chs,
		       -- (a two-way table's changes are checked against the versions one by one:
		       -- its runs are never merged)
		       (SELECT st.filter IS NULL AND st.insert_enabled AND st.update_enabled
		               AND (p_versions IS NULL OR NOT tdgl_replica.two_way(st.tbl))
		        FROM tdgl_replica.source_tables st
		        WHERE st.source = p_source AND st.tbl = min(u.tbl)) AS plain
		FROM unnest(p_ids, p_tbls, p_ops, p_classes, p_pks, p_old_pks, p_rows, p_runs, p_versions)
		     WITH ORDINALITY AS u(id, tbl, op, cls, pk, old_pk, "row", run, v, ord)
		GROUP BY u.run
		UNION ALL
		SELECT NULL::int, NULL::text, NULL::text, NULL::tdgl_replica.change[], NULL::bool  -- the end
		ORDER BY 1 NULLS LAST
	LOOP
		last := r.run IS NULL;
		IF NOT last AND r.plain IS NULL THEN       -- not configured
			res.ignored := res.ignored + cardinality(r.chs);
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
			res := tdgl_replica.apply_add(res, tdgl_replica.apply_safely(p_source, p_run_id, ptbl, 'U', pend,
			                                             false, prep));
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
		res := tdgl_replica.apply_add(res, tdgl_replica.apply_safely(p_source, p_run_id, r.tbl, r.cls, r.chs,
		                                             false));
	END LOOP;
	RETURN res;
END $$;

-- Adds an apply's counts to run p_run_id (fetched and one page).
CREATE OR REPLACE FUNCTION tdgl_replica.run_count(p_run_id bigint, r tdgl_replica.apply_result) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE tdgl_replica.runs SET fetched = fetched + r.fetched, synced = synced + r.synced,
	       failed = failed + r.failed, skipped = skipped + r.skipped,
	       conflicts = conflicts + r.conflicts, resolved = resolved + coalesce(r.resolved, 0),
	       pages = pages + 1
	WHERE id = p_run_id;
END $$;

-- Applies one page of GET /api/changes and moves the source's cursor from p_prev_cursor to
-- p_cursor, all in the caller's transaction: applies and cursor commit together, so a crash
-- neither loses nor repeats a change. Raises 40001 when the cursor is no longer p_prev_cursor
-- (another pull got there first). Adds the counts to run p_run_id. The page comes split into
-- parallel arrays, one element per change in page order (replica/page.c): pk, old_pk and row
-- are the primary's JSON text verbatim (NULL unless an object); a change without a table is
-- ignored. Two cuts into runs come along (page_runs): p_table_runs groups each table's
-- changes of the whole page, p_runs only consecutive changes of one table; p_classes is each
-- change's op class (page_op_class).
-- With the replica role (tdgl_replica.replica_role; the pull's session keeps it) no foreign key or
-- ordinary trigger links rows of different tables, so p_table_runs applies: a page of
-- transactions that each touch several tables takes a few statements per table.
-- Without it (the fallback) the page keeps the primary's order across tables (p_runs), with
-- deferrable constraints deferred over the page (a child before its parent in the page is
-- fine) and checked before the cursor moves; when that check fails, the page is applied
-- again with every constraint checked at once, so that only the failing changes are logged
-- Failed rather than the commit failing (and the page being pulled again) forever.
-- A page a peer served to this site as a two-way peer has p_versions (each change's version,
-- apply_statement) and p_via (the peer's identity, set as tdgl.via for the change log); a
-- one-way page has neither.
DROP FUNCTION IF EXISTS tdgl_replica.apply_page(text, bigint[], text[], text[], json[], json[],
	json[], text[], int[], int[], text[], text, text, bigint);
CREATE OR REPLACE FUNCTION tdgl_replica.apply_page(p_source text, p_ids bigint[], p_tbls text[],
	p_ops text[], p_pks json[], p_old_pks json[], p_rows json[], p_changed_at text[],
	p_runs int[], p_table_runs int[], p_classes text[], p_prev_cursor text, p_cursor text,
	p_run_id bigint, p_versions json[] DEFAULT NULL, p_via uuid DEFAULT NULL)
RETURNS tdgl_replica.apply_result LANGUAGE plpgsql AS $$
DECLARE
	prev     text := current_setting('tdgl.applying', true);
	rr       bool;
	checking bool := false;
	in_order bool := true;     -- apply the page's runs in page order (p_runs)
	res      tdgl_replica.apply_result;
	newest   timestamptz;
BEGIN
	PERFORM set_config('tdgl.applying', 'on', true);
	PERFORM set_config('tdgl.via', coalesce(p_via::text, ''), true);
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
		-- By table (page_runs) rows of different keys are applied out of page order. A
		-- page where that made a change fail (another unique constraint than the key: a
		-- value freed by one row and taken by another) is applied again in page order, so
		-- only what fails one by one is Failed (P0T01: the savepoint's way back).
		IF p_table_runs IS NOT NULL THEN
			BEGIN
				res := tdgl_replica.apply_runs(p_source, p_run_id, p_ids, p_tbls, p_ops, p_classes,
				                       p_pks, p_old_pks, p_rows, p_table_runs, true, p_versions);
				IF res.failed > 0 THEN
					RAISE EXCEPTION 'a page by table failed a change' USING ERRCODE = 'P0T01';
				END IF;
				in_order := false;
			EXCEPTION WHEN SQLSTATE 'P0T01' THEN
				in_order := true;
			END;
		END IF;
		IF in_order THEN
			res := tdgl_replica.apply_runs(p_source, p_run_id, p_ids, p_tbls, p_ops, p_classes,
			                       p_pks, p_old_pks, p_rows, p_runs, false, p_versions);
		END IF;
	ELSE
		BEGIN
			SET CONSTRAINTS ALL DEFERRED;
			res := tdgl_replica.apply_runs(p_source, p_run_id, p_ids, p_tbls, p_ops, p_classes, p_pks,
			                       p_old_pks, p_rows, p_runs, false, p_versions);
			checking := true;
			SET CONSTRAINTS ALL IMMEDIATE;
		EXCEPTION WHEN OTHERS THEN
			IF NOT checking THEN
				RAISE;
			END IF;
			SET CONSTRAINTS ALL IMMEDIATE;
			res := tdgl_replica.apply_runs(p_source, p_run_id, p_ids, p_tbls, p_ops, p_classes, p_pks,
			                       p_old_pks, p_rows, p_runs, false, p_versions);
		END;
	END IF;
	res.fetched := coalesce(cardinality(p_ids), 0);   -- ignored changes were fetched too
	res.replica_role := rr;
	PERFORM tdgl_replica.run_count(p_run_id, res);
	PERFORM set_config('tdgl.applying', coalesce(prev, ''), true);
	RETURN res;
END $$;

-- Applies one page of GET /api/rows (the raw body's "rows" array, as json) for an initial
-- sync, as upserts through the same path. p_resync: remember the keys seen so that
-- tdgl_replica.finish_resync() can remove rows deleted on the primary while the cursor was expired
-- (every row of the page, a failed one too: its local row stays until a retry applies it).
-- p_versions, p_via: a two-way table's page as its peer p_via serves it (GET /api/rows?peer=,
-- each row's version there, null for a row without history): every row applied goes into
-- this site's change log as that version, received from p_via (docs/design.md "Two-way
-- sync"): passed on to the other peers like a streamed change, and the base of this site's
-- next change of the row, so the peer sees that change as made on its version. A row without
-- history at the peer is logged as this site's (origin NULL) so it is passed on all the same.
DROP FUNCTION IF EXISTS tdgl_replica.apply_rows(text, text, json, bigint, bool);
CREATE OR REPLACE FUNCTION tdgl_replica.apply_rows(p_source text, p_tbl text, p_rows json,
	p_run_id bigint, p_resync bool DEFAULT false, p_versions json DEFAULT NULL,
	p_via uuid DEFAULT NULL) RETURNS tdgl_replica.apply_result
LANGUAGE plpgsql AS $$
DECLARE
	prev text := current_setting('tdgl.applying', true);
	chs  tdgl_replica.change[];
	res  tdgl_replica.apply_result := ROW(0, 0, 0, 0, 0, 0, '{}', NULL, 0);
	rel  regclass := tdgl_replica.local_table(p_tbl);
	logv bool := json_typeof(p_versions) = 'array' AND p_via IS NOT NULL AND rel IS NOT NULL
	             AND tdgl_replica.two_way(p_tbl);   -- log the rows applied as their versions
	head bigint;                                    -- the log before the page (logv)
BEGIN
	PERFORM set_config('tdgl.applying', 'on', true);
	IF logv THEN
		SELECT coalesce(max(l.id), 0) INTO head FROM tdgl_replica.sync_log l;
	END IF;
	SELECT array_agg(ROW(t.ord::int, NULL, 'Create', NULL, NULL, t.x, NULL)::tdgl_replica.change ORDER BY t.ord)
	INTO chs FROM json_array_elements(p_rows) WITH ORDINALITY AS t(x, ord)
	WHERE json_typeof(t.x) = 'object';
	IF chs IS NULL THEN
		RETURN res;
	END IF;
	res := tdgl_replica.apply_safely(p_source, p_run_id, p_tbl, 'U', chs, true);
	IF logv THEN
		-- the rows applied: those the page logged no outcome for (an initial sync logs only
		-- what was not Synced)
		EXECUTE format($q$
	INSERT INTO tdgl.change_log (tbl, op, pk, "row", origin, origin_id, origin_at, via)
	SELECT $1, 'Create', json_build_object(%1$s), x.x, (v.v ->> 'origin')::uuid,
	       (v.v ->> 'id')::bigint, (v.v ->> 'at')::timestamptz, $2
	FROM json_array_elements($3) WITH ORDINALITY AS x(x, ord)
	JOIN json_array_elements($4) WITH ORDINALITY AS v(v, ord) USING (ord)
	CROSS JOIN LATERAL json_populate_record(NULL::%2$s, x.x) p
	WHERE json_typeof(x.x) = 'object'
	  AND jsonb_build_object(%1$s) NOT IN (SELECT l.pk FROM tdgl_replica.sync_log l
	          WHERE l.id > $5 AND l.run_id = $6 AND l.tbl = $1 AND l.pk IS NOT NULL)
	ORDER BY x.ord$q$,
			tdgl_replica.each_col(tdgl_replica.pk_columns(rel), '%1$L, p.%1$I', ', '),
			tdgl_replica.qualified(rel))
		USING p_tbl, p_via, p_rows, p_versions, head, p_run_id;
	END IF;
	IF p_resync AND rel IS NOT NULL AND tdgl_replica.pk_columns(rel) IS NOT NULL THEN
		EXECUTE format('INSERT INTO tdgl_replica.resync_seen (source, tbl, pk) '
		               'SELECT $1, $2, jsonb_build_object(%s) FROM json_array_elements($3) x '
		               'CROSS JOIN LATERAL json_populate_record(NULL::%s, x) p '
		               'ON CONFLICT DO NOTHING',
		               tdgl_replica.each_col(tdgl_replica.pk_columns(rel), '%1$L, p.%1$I', ', '),
		               tdgl_replica.qualified(rel))
		USING p_source, p_tbl, p_rows;
	END IF;
	res.fetched := cardinality(chs);
	PERFORM tdgl_replica.run_count(p_run_id, res);
	PERFORM set_config('tdgl.applying', coalesce(prev, ''), true);
	RETURN res;
END $$;
