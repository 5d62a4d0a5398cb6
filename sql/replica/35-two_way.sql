-- Two-way sync (docs/design.md "Two-way sync"): a site that runs both roles on one database
-- pulls a table from a peer that also pulls it from this site. What the apply core needs
-- for such a table: whether it is two-way, the policy for its conflicts, and the outcome of
-- one change from the versions.

-- This site's identity (sql/site.sql).
CREATE OR REPLACE FUNCTION tdgl_replica.site() RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (SELECT s.id FROM tdgl_replica.site_identity s);
END $$;

-- Whether table p_tbl (as sources name it) is two-way here: the primary role of this
-- database tracks it under the same name.
CREATE OR REPLACE FUNCTION tdgl_replica.two_way(p_tbl text) RETURNS bool
LANGUAGE plpgsql STABLE AS $$
BEGIN
	IF to_regclass('tdgl.tracked_tables') IS NULL THEN
		RETURN false;
	END IF;
	RETURN EXISTS (SELECT FROM tdgl.tracked_tables t WHERE t.name = p_tbl AND t.enabled);
END $$;

-- Whether any table of source p_source is two-way: its pulls then ask as a peer
-- (GET /api/changes?peer=<this site>), and this database keeps its rows' versions indexed.
CREATE OR REPLACE FUNCTION tdgl_replica.source_two_way(p_source text) RETURNS bool
LANGUAGE plpgsql AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM tdgl_replica.source_tables st
	               WHERE st.source = p_source AND tdgl_replica.two_way(st.tbl)) THEN
		RETURN false;
	END IF;
	PERFORM tdgl.enable_row_versions();
	RETURN true;
END $$;

-- The conflict policy of a source's table (its own, else the source's).
CREATE OR REPLACE FUNCTION tdgl_replica.conflict_policy(p_source text, p_tbl text) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT st.conflict_policy FROM tdgl_replica.source_tables st
	                 WHERE st.source = p_source AND st.tbl = p_tbl),
	                (SELECT s.conflict_policy FROM tdgl_replica.sources s WHERE s.name = p_source),
	                'manual')
$$;

-- What to do with a peer's change of key p_key (the capture's json text) of table p_tbl,
-- made as version p_v ({"origin", "id", "at", "base"}), given the version of the row here
-- (its last change in this site's log, tdgl.row_version):
--   NULL              apply: nothing here yet, or the change was made on the version held here
--   'already applied' this very version is the one held here (it came by another path), or
--                     a later one of the same origin (a change the initial copy already
--                     held, streamed again from the copy's starting point)
--   'conflict'        concurrent (policy manual): stays open, the row here stays
--   'source wins' / 'local wins'  concurrent, decided by policy p_policy; latest-wins
--                     compares (origin time, origin site) of both versions, so both sites
--                     pick the same winner
-- A row with no history here (it predates tracking, or its history was purged: see the
-- retention note in docs/operations.md) takes the change. A change made on no version (the
-- peer holds no history of the row) is based on the version held here when that version is
-- the peer's own row as this site's copy took it (logged as this site's, via that peer).
CREATE OR REPLACE FUNCTION tdgl_replica.two_way_outcome(p_tbl text, p_key json, p_v json,
	p_policy text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
	cur  record;
	mine uuid;
	org  uuid := (p_v ->> 'origin')::uuid;
	base json := p_v -> 'base';
BEGIN
	IF p_v IS NULL OR p_key IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT * INTO cur FROM tdgl.row_version(p_tbl, p_key::text, NULL);
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	mine := coalesce(cur.origin, tdgl_replica.site());
	-- an origin's changes of one row are logged there in id order (each waits for the
	-- row lock the one before held)
	IF mine = org AND cur.id >= (p_v ->> 'id')::bigint THEN
		RETURN 'already applied';
	END IF;
	IF json_typeof(base) = 'object' AND (base ->> 'origin')::uuid = mine
	   AND (base ->> 'id')::bigint = cur.id THEN
		RETURN NULL;
	END IF;
	IF (base IS NULL OR json_typeof(base) = 'null') AND cur.origin IS NULL
	   AND EXISTS (SELECT FROM tdgl.change_log l WHERE l.id = cur.id
	               AND l.via = nullif(current_setting('tdgl.via', true), '')::uuid) THEN
		RETURN NULL;
	END IF;
	RETURN CASE p_policy
		WHEN 'source-wins' THEN 'source wins'
		WHEN 'local-wins' THEN 'local wins'
		WHEN 'latest-wins' THEN
			CASE WHEN ((p_v ->> 'at')::timestamptz, org::text) > (cur.at, mine::text)
			     THEN 'source wins' ELSE 'local wins' END
		ELSE 'conflict' END;
END $$;

-- Holds off local writers of a two-way table for the rest of the apply transaction (a lock
-- that conflicts with theirs, SHARE ROW EXCLUSIVE, not with reads): the lock waits for the
-- writers in flight, so every local change is committed and in the log the outcome reads,
-- and no local write of a row can slip between the decision and the write (a row lock cannot
-- cover a key being inserted). Local writers wait for the page to commit (milliseconds).
-- Applies from several peers (a hub) into one table queue for it first on an advisory lock,
-- without a time limit: they are each other's writers too. The wait for local writers is
-- capped below deadlock_timeout (1 s by default), so in a lock cycle with a local
-- transaction writing several two-way tables the apply gives way (55P03: the pull applies
-- the page again) and the application's transaction goes on.
CREATE OR REPLACE FUNCTION tdgl_replica.two_way_lock(p_rel regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	prev text := current_setting('lock_timeout');
BEGIN
	-- the key: ('tdgl two-way' in two bytes, the table's oid)
	PERFORM pg_advisory_xact_lock(x'7477'::int, p_rel::oid::int);
	PERFORM set_config('lock_timeout', '500ms', true);
	EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', p_rel);
	PERFORM set_config('lock_timeout', prev, true);
END $$;
