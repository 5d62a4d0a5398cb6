-- verify.sql: what both roles hash rows with (appended by the build to sql/primary.sql and
-- sql/replica.sql: one definition, so the two sites can never hash differently; each role's
-- script ends with a search_path of its own schema, so the names below land there). A row is
-- hashed over the columns both sites have, sorted by name, each value its type's output text
-- under the fixed settings of the calling functions' SET clauses:
--   kh = first 64 bits of md5(ROW(key columns)::text)   (which bucket the row falls in)
--   rh = first 64 bits of md5(ROW(shared columns)::text) (what the row holds)

-- kh, rh (see above) of alias t, and the key as a JSON object.
CREATE OR REPLACE FUNCTION verify_exprs(pk text[], cols text[], OUT kh text,
	OUT rh text, OUT kobj text)
LANGUAGE sql IMMUTABLE AS $$
	SELECT format($f$('x' || left(md5(ROW(%s)::text), 16))::bit(64)::bigint$f$,
	              (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(pk) c)),
	       format($f$('x' || left(md5(ROW(%s)::text), 16))::bit(64)::bigint$f$,
	              (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(cols) c)),
	       format('json_build_object(%s)',
	              (SELECT string_agg(format('%1$L, t.%1$I', c), ', ') FROM unnest(pk) c))
$$;

-- "the top `bits` bits of kh" (0 bits: one bucket, 0).
CREATE OR REPLACE FUNCTION verify_bucket_expr(p_bits int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN p_bits = 0 THEN '0::bigint'
	       ELSE format('((kh >> %s) & %s::bigint)', 64 - p_bits, (1::bigint << p_bits) - 1) END
$$;


-- The two queries both sites answer, so both hash the same rows the same way. Over relation
-- rel (kh, rh, kobj: verify_exprs'; bucket, prefix: verify_bucket_expr's for the bucket bits
-- and the prefix bits), $1 a JSON filter (NULL: every row), $2 the prefix bits (0: every
-- bucket), $3 the prefixes asked for.
-- Buckets: [[bucket, rows, "hash hex"], ...] in bucket order (empty buckets left out).
CREATE OR REPLACE FUNCTION verify_buckets_query(p_rel text, p_kh text, p_rh text,
	p_bucket text, p_prefix text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT format($q$
SELECT coalesce(json_agg(json_build_array(b, n, lpad(to_hex(h), 16, '0')) ORDER BY b), '[]')
FROM (SELECT %4$s AS b, count(*) AS n, bit_xor(rh) AS h
      FROM (SELECT %2$s AS kh, %3$s AS rh FROM %1$s t
            WHERE $1::jsonb IS NULL OR row_to_json(t.*)::jsonb @> $1::jsonb) s
      WHERE $2 = 0 OR %5$s = ANY ($3)
      GROUP BY 1) g$q$, p_rel, p_kh, p_rh, p_bucket, p_prefix)
$$;

-- Rows: [["kh hex", {key}, "rh hex"], ...] in kh order.
CREATE OR REPLACE FUNCTION verify_keys_query(p_rel text, p_kh text, p_rh text, p_kobj text,
	p_prefix text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT format($q$
SELECT coalesce(json_agg(json_build_array(lpad(to_hex(kh), 16, '0'), k,
                                          lpad(to_hex(rh), 16, '0')) ORDER BY kh), '[]')
FROM (SELECT %2$s AS kh, %3$s AS rh, %4$s AS k FROM %1$s t
      WHERE $1::jsonb IS NULL OR row_to_json(t.*)::jsonb @> $1::jsonb) s
WHERE $2 = 0 OR %5$s = ANY ($3)$q$, p_rel, p_kh, p_rh, p_kobj, p_prefix)
$$;
