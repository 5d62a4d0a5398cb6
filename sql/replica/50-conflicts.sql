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
		PERFORM tdgl_replica.apply_run(c.source, NULL, c.tbl, tdgl_replica.op_class(c.op),
			ARRAY[ROW(1, c.change_id, c.op, c.pk::json, c.old_pk, c.primary_row,
			          c.version)::tdgl_replica.change],
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

