-- Hashes of rows (tdgl_replica.verify_exprs, tdgl_replica.verify_bucket_expr) and the bucket and
-- key queries (tdgl_replica.verify_buckets_query, tdgl_replica.verify_keys_query): the primary's
-- own (sql/verify.sql, appended to both roles' scripts by the build).

-- The local table of p_tbl, its key, and the columns of p_cols it has (its own
-- non-generated columns when p_cols is NULL), sorted by name. 42P01 when missing here.
CREATE OR REPLACE FUNCTION tdgl_replica.verify_local_table(p_tbl text, p_cols text[],
	OUT rel regclass, OUT pk text[], OUT cols text[])
LANGUAGE plpgsql STABLE AS $$
BEGIN
	SELECT k.rel, k.pk INTO rel, pk FROM tdgl_replica.keyed_table(p_tbl) k;
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
	EXECUTE tdgl_replica.verify_buckets_query(tdgl_replica.qualified(t.rel), e.kh, e.rh,
		tdgl_replica.verify_bucket_expr(p_bits), tdgl_replica.verify_bucket_expr(p_prefix_bits))
	INTO res USING NULL::jsonb, p_prefix_bits, p_prefixes;
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
	EXECUTE tdgl_replica.verify_keys_query(tdgl_replica.qualified(t.rel), e.kh, e.rh, e.kobj,
		tdgl_replica.verify_bucket_expr(p_prefix_bits))
	INTO res USING NULL::jsonb, p_prefix_bits, p_prefixes;
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
-- alone. Returns the counts summed as {"synced","skipped","conflicts","failed"}: they go
-- into the verify report as they are.
CREATE OR REPLACE FUNCTION tdgl_replica.verify_repair(p_source text, p_run_id bigint, p_tbl text,
	p_items json) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
	prev text := current_setting('tdgl.applying', true);
	ups  tdgl_replica.change[];
	dels tdgl_replica.change[];
	res  tdgl_replica.apply_result := ROW(0, 0, 0, 0, 0, 0, '{}', NULL, 0);
BEGIN
	PERFORM set_config('tdgl.applying', 'on', true);
	SELECT array_agg(ROW(i.ord::int, NULL, 'Repair', i.j->'key', NULL, i.j->'row', NULL)::tdgl_replica.change
	                 ORDER BY i.ord) FILTER (WHERE i.j->>'kind' IN ('missing', 'different')),
	       array_agg(ROW(i.ord::int, NULL, 'Delete', i.j->'key', NULL, NULL, NULL)::tdgl_replica.change
	                 ORDER BY i.ord) FILTER (WHERE i.j->>'kind' = 'extra')
	INTO ups, dels FROM json_array_elements(p_items) WITH ORDINALITY AS i(j, ord);
	IF ups IS NOT NULL THEN
		res := tdgl_replica.apply_add(res, tdgl_replica.apply_safely(p_source, p_run_id, p_tbl, 'U', ups, false));
	END IF;
	IF dels IS NOT NULL THEN
		res := tdgl_replica.apply_add(res, tdgl_replica.apply_safely(p_source, p_run_id, p_tbl, 'D', dels, false));
	END IF;
	res.fetched := coalesce(cardinality(ups), 0) + coalesce(cardinality(dels), 0);
	PERFORM tdgl_replica.run_count(p_run_id, res);
	PERFORM set_config('tdgl.applying', coalesce(prev, ''), true);
	RETURN json_build_object('synced', res.synced, 'skipped', res.skipped,
	                         'conflicts', res.conflicts, 'failed', res.failed);
END $$;
