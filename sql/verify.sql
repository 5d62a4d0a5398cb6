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

