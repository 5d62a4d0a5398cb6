-- Capture of local edits: a trigger on every synced table records the key of each row
-- changed by anyone but the apply session (tdgl_replica.local_edits), so a primary change of it opens
-- a conflict instead of overwriting it.

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

