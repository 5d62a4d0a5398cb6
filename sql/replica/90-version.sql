-- The schema versions this script brings an installation to (each step's statements are in
-- the files above, marked "Version N"; every statement may run again).
INSERT INTO tdgl.schema_version (version) VALUES (5) ON CONFLICT DO NOTHING;
INSERT INTO tdgl.schema_version (version) VALUES (6) ON CONFLICT DO NOTHING;
