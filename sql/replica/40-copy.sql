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
-- table, then the apply core's ONE statement over it (copy_apply). NULL: the table is missing here or
-- has no key (the JSON path reports that row by row). 'json' (without columns): a two-way
-- table, copied in JSON pages, which carry each row's version. Also lists the local columns
-- a copy may set: {"mode":..., "columns":[...]}.
CREATE OR REPLACE FUNCTION tdgl_replica.copy_plan(p_source text, p_tbl text, p_resync bool)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
	rel    regclass := tdgl_replica.local_table(p_tbl);
	cfg    tdgl_replica.source_tables := tdgl_replica.table_config(p_source, p_tbl);
	empty  bool;
BEGIN
	IF rel IS NULL OR tdgl_replica.pk_columns(rel) IS NULL THEN
		RETURN NULL;
	END IF;
	IF tdgl_replica.two_way(p_tbl) THEN
		-- JSON pages, which carry each row's version (tdgl_replica.apply_rows)
		RETURN json_build_object('mode', 'json');
	END IF;
	EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s)', tdgl_replica.qualified(rel)) INTO empty;
	RETURN json_build_object(
		'mode', CASE WHEN empty AND NOT p_resync AND cfg.filter IS NULL
		              AND cfg.insert_enabled AND cardinality(cfg.attach_columns) = 0
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
-- and only counted; a staged page is applied by the apply core (tdgl_replica.apply_statement over
-- pg_temp.tdgl_copy_stage) with an initial sync's semantics: filter, local edits ->
-- conflicts, insert/update switches, unchanged rows skipped, only non-Synced outcomes
-- logged, a row that left the subset removed, attachment values listed, and for a re-sync
-- its keys remembered for tdgl_replica.finish_resync(). Adds the counts to run p_run_id.
-- JIT is off: compiling the staged statement took ~85 ms of a ~500 ms page of 20k rows.
CREATE OR REPLACE FUNCTION tdgl_replica.copy_apply(p_source text, p_run_id bigint, p_tbl text,
	p_cols text[], p_direct bool, p_resync bool, p_n bigint) RETURNS tdgl_replica.apply_result
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
	rel  regclass := tdgl_replica.local_table(p_tbl);
	cfg  tdgl_replica.source_tables := tdgl_replica.table_config(p_source, p_tbl);
	flt  jsonb;
	res  tdgl_replica.apply_result := ROW(p_n, p_n, 0, 0, 0, 0, '{}', NULL, 0);
BEGIN
	IF NOT p_direct THEN
		-- the primary filtered on every key of the filter; here only the copied columns can
		-- be checked (the JSON path checks the primary's whole row)
		SELECT jsonb_object_agg(k, v) INTO flt FROM jsonb_each(cfg.filter) AS f(k, v)
		WHERE k = ANY (p_cols);
		EXECUTE tdgl_replica.apply_statement(rel, tdgl_replica.pk_columns(rel), p_cols, 'U', 'stage', false)
		INTO res
		USING NULL::tdgl_replica.change[], flt, p_tbl, cfg.insert_enabled, cfg.update_enabled, false,
			cfg.update_without_changes, p_source, p_run_id, true, cfg.attach_columns,
			cfg.delete_enabled, p_resync;
	END IF;
	PERFORM tdgl_replica.run_count(p_run_id, res);
	RETURN res;
END $$;
