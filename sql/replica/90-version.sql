-- The schema versions this script brings an installation to (each step's statements are in
-- the files above, marked "Version N"; every statement may run again).
INSERT INTO tdgl_replica.schema_version (version) VALUES (5) ON CONFLICT DO NOTHING;
INSERT INTO tdgl_replica.schema_version (version) VALUES (6) ON CONFLICT DO NOTHING;
INSERT INTO tdgl_replica.schema_version (version) VALUES (7) ON CONFLICT DO NOTHING;
INSERT INTO tdgl_replica.schema_version (version) VALUES (8) ON CONFLICT DO NOTHING;
INSERT INTO tdgl_replica.schema_version (version) VALUES (9) ON CONFLICT DO NOTHING;

-- What both roles share (sql/verify.sql, sql/site.sql, appended by the build) is created
-- unqualified: in this role's own schema.
SET LOCAL search_path = tdgl_replica, pg_catalog;
