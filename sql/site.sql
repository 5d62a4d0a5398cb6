-- site.sql: the site's identity, which both roles share (appended by the build to each role's
-- script, after a search_path of the role's own schema: the table lands there). A site is one
-- database; its identity is a random UUID made by the first role migrated there and copied by
-- the other, so both roles of a site name it the same way. Two-way sync marks every change
-- with the identity of the site it was made on (its origin). A database copied to make a new
-- site (pg_dump, a base backup) carries the old identity: give it a new one (docs/operations.md).
CREATE TABLE IF NOT EXISTS site_identity (
	one        bool PRIMARY KEY DEFAULT true CHECK (one),
	id         uuid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
	s text;
	v uuid;
BEGIN
	IF EXISTS (SELECT FROM site_identity) THEN
		RETURN;
	END IF;
	FOREACH s IN ARRAY ARRAY['tdgl', 'tdgl_replica'] LOOP
		IF v IS NULL AND to_regclass(format('%I.site_identity', s)) IS NOT NULL THEN
			EXECUTE format('SELECT id FROM %I.site_identity', s) INTO v;
		END IF;
	END LOOP;
	INSERT INTO site_identity (id) VALUES (coalesce(v, gen_random_uuid()));
END $$;
