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
			ch := ROW(i, NULL, 'Create', NULL, NULL, x, NULL)::tdgl_replica.change;
		ELSE
			v_tbl := x ->> 'table';
			ch := ROW(i, (x ->> 'id')::bigint, x ->> 'op',
			          CASE WHEN json_typeof(x -> 'pk') = 'object' THEN x -> 'pk' END,
			          CASE WHEN json_typeof(x -> 'old_pk') = 'object' THEN x -> 'old_pk' END,
			          CASE WHEN json_typeof(x -> 'row') = 'object' THEN x -> 'row' END,
			          CASE WHEN json_typeof(x -> 'version') = 'object' THEN x -> 'version' END
			         )::tdgl_replica.change;
		END IF;
		cls := tdgl_replica.op_class(ch.op);
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

