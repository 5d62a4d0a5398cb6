-- Retention (replica/retention.c): the replica's own logs are purged in batches, each call
-- one short transaction of at most p_limit rows taken in primary-key order after p_after
-- (the caller passes back last_id), so millions of rows never hold locks for long and never
-- block an apply: nothing else locks Synced/Skipped entries or finished runs. Ids follow
-- created_at (both taken when the row is inserted), so no index on the time is needed: the
-- walk is done at the first batch without a row older than p_before. What stays:
--   - Failed entries (retried, and shown until someone looks at them);
--   - a Synced entry a Failed one of the same row may still need: a retry checks for a later
--     Synced entry before it applies (replica/retry.c), a key-less Failed entry (initial
--     copy) is matched by its snapshot; a Synced row of a whole statement (version 8) is
--     kept while it holds such a row's key;
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
	-- deleted counts entries: a Synced row holds every change its statement synced
	WITH d AS (
	DELETE FROM tdgl_replica.sync_log l
	WHERE l.id > p_after AND l.id <= last_id AND l.created_at < p_before
	  AND l.status IN ('Synced', 'Skipped')
	  AND NOT (l.status = 'Synced' AND EXISTS (
	        SELECT 1 FROM tdgl_replica.sync_log f
	        WHERE f.status = 'Failed' AND f.source = l.source AND f.tbl = l.tbl
	          AND f.pk = ANY (coalesce(l.pks, ARRAY[l.pk])) AND f.id < l.id))
	  AND NOT (l.status = 'Synced' AND EXISTS (
	        SELECT 1 FROM tdgl_replica.sync_log f
	        WHERE f.status = 'Failed' AND f.source = l.source AND f.tbl = l.tbl
	          AND f.pk IS NULL AND f.id < l.id
	          AND EXISTS (SELECT 1 FROM unnest(coalesce(l.pks, ARRAY[l.pk])) k
	                      WHERE (f.change -> 'row')::jsonb @> k)))
	  AND NOT (l.status = 'Skipped' AND l.reason LIKE 'conflict%' AND EXISTS (
	        SELECT 1 FROM tdgl_replica.conflicts k
	        WHERE k.status = 'Open' AND k.tbl = l.tbl AND k.pk = l.pk))
	RETURNING l.entries)
	SELECT coalesce(sum(d.entries), 0) INTO deleted FROM d;
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

