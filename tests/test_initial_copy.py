"""Initial sync in COPY pages (GET /api/rows?format=copy, replica/copy.c): the page format,
exact values both ways in (straight into an empty table, and through the staging table),
the initial-sync semantics kept on the staging path (local edits -> conflicts, schema
drift), the fall back to JSON pages, and bad parameters."""
import json
import urllib.parse

import pytest

from test_attack_primary import assert_json_error, auth, canary_intact, raw_request, site  # noqa: F401
from harness import StubHTTP
from test_replica import CUSTOMER, pair, pull, rows_md5


def copy_page(site, **params):
    r = site.get("/api/rows", site.key, site.secret, format="copy", **params)
    assert r.status_code == 200, r.text
    head, _, data = r.content.partition(b"\n")
    return json.loads(head), data


def test_copy_pages_carry_columns_rows_and_next_in_key_order(site):
    site.sql("INSERT INTO customer SELECT g, 'c' || g, g % 3 FROM generate_series(1, 23) g")
    lines, after = [], None
    while True:
        params = {"table": "customer", "limit": 5, "columns": '["name", "id", "nope"]'}
        if after is not None:
            params["after"] = after
        h, data = copy_page(site, **params)
        assert h["columns"] == ["name", "id"]          # a column the table lacks is left out
        assert h["rows"] == data.count(b"\n")
        lines += data.decode().splitlines()
        after = h["next"]
        if after is None:
            break
        assert json.loads(after) == {"id": int(lines[-1].split("\t")[1])}
    assert lines == [f"c{g}\t{g}" for g in range(1, 24)]
    h, data = copy_page(site, table="customer", filter='{"docstatus": 1}')
    assert h["columns"] == ["id", "name", "docstatus"] and h["next"] is None
    assert data.decode().splitlines() == [f"{g}\tc{g}\t1" for g in range(1, 24) if g % 3 == 1]


def test_copy_page_escapes_values_like_copy(site):
    site.sql("INSERT INTO customer VALUES (1, E'tab\\there\\nnew\\rcr \\\\ back', 0), "
             "(2, NULL, 0), (3, '\\N', 0)")
    h, data = copy_page(site, table="customer", columns='["id","name"]')
    assert data == b"1\ttab\\there\\nnew\\rcr \\\\ back\n2\t\\N\n3\t\\\\N\n"


def test_copy_page_ends_at_its_byte_limit(site):
    # 3 MB rows: the page stops once it holds 4 MiB, whatever the limit
    site.sql("INSERT INTO customer SELECT g, repeat('x', 3000000), 0 FROM generate_series(1, 4) g")
    h, data = copy_page(site, table="customer", columns='["id","name"]', limit=10)
    assert h["rows"] == 2 and json.loads(h["next"]) == {"id": 2}
    assert len(data) < 7000000


def _bad_copy_params():
    c = {"table": "customer", "format": "copy"}
    return [
        {"table": "customer", "format": "csv"},
        {"table": "customer", "format": ""},
        {"table": "customer", "columns": '["id"]'},                     # columns without copy
        {"table": "customer", "format": "json", "columns": '["id"]'},
        dict(c, columns=""),
        dict(c, columns="id,name"),
        dict(c, columns="[]"),
        dict(c, columns='["id",1]'),
        dict(c, columns='["id",null]'),
        dict(c, columns='[""]'),
        dict(c, columns='["id","id"]'),
        dict(c, columns='["' + "x" * 64 + '"]'),
        dict(c, columns='{"id":1}'),
        dict(c, columns='["id"'),
        dict(c, columns="[" * 5000 + "]" * 5000),
        dict(c, columns=json.dumps([f"c{i}" for i in range(1601)])),
        dict(c, limit="0"),
        dict(c, limit="50001"),
        dict(c, limit="x"),
        dict(c, after='{"id":"abc"}'),
        dict(c, after="[1]"),
        dict(c, filter='{"nope":1}'),
        dict(c, filter="[]"),
        dict(c, table="canary"),
        dict(c, table="tdgl.api_keys"),
    ]


def test_copy_params_that_are_bad_get_400_json(site):
    site.sql("INSERT INTO customer SELECT g, 'c' || g, 0 FROM generate_series(1, 5) g")
    failures = []
    for params in _bad_copy_params():
        q = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in params.items())
        status, hdrs, body = raw_request(site.url, "GET", f"/api/rows?{q}",
                                         auth(site.key, site.secret))
        try:
            assert status == 400, status
            assert hdrs.get("content-type", "").startswith("application/json")
            assert json.loads(body)["error"]
        except (AssertionError, ValueError) as e:
            failures.append((params, status, body[:200], e))
    assert not failures, failures
    canary_intact(site)


def test_copy_column_names_are_identifiers_not_sql(site):
    site.sql("INSERT INTO customer VALUES (1, 'a', 0)")
    for evil in ['id" FROM canary; --', "id, (SELECT v FROM canary LIMIT 1)", "ctid", "tableoid"]:
        h, data = copy_page(site, table="customer", columns=json.dumps(["id", evil]))
        assert h["columns"] == ["id"] and data == b"1\n", (evil, h, data)
    canary_intact(site)


TYPES = """CREATE TABLE typed (
    id bigint PRIMARY KEY, n numeric, n2 numeric(20,6), b bytea, arr int[], tarr text[],
    j jsonb, js json, ts timestamptz, tl timestamp, d date, f8 float8, f4 float4, u text,
    iv interval, uu uuid, bo boolean, ip inet, nested int[][])"""
TYPED_ROWS = """INSERT INTO typed VALUES
  (1, 1.500, 12345678901234.123456, '\\x00ff10', '{1,2,NULL}', '{"a b","c,d","é","x\\\\y",NULL}',
   '{"k": [1, 2.50, "x"], "n": null}', '{"z": 1,  "a":2}', '2024-03-10 01:59:59.123456+00',
   '2024-01-01 00:00:00.5', '2024-02-29', '-0', '-0',
   E'héllo ✓ 𝄞 "quoted" \\\\ back\\ttab\\nline\\rcr', '1 day 02:03:04',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, '10.0.0.1/24', '{{1,2},{3,4}}'),
  (2, 'NaN', NULL, '\\x', '{}', '{}', 'null', 'null', 'infinity', '-infinity', 'infinity',
   'NaN', 'Infinity', '', NULL, NULL, false, '::1', NULL),
  (3, '-0.000', 0, NULL, NULL, NULL, '{"big": 12345678901234567890}', ' [1, null] ', NULL,
   NULL, NULL, '-Infinity', '1.17549435e-38', '\\N', NULL, NULL, NULL, NULL, NULL),
  (9007199254740993, 1e-30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   1.7976931348623157e308, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"""


@pytest.mark.parametrize("way", ["direct", "staging"])
def test_copy_keeps_every_value_exactly(primary, replica, way):
    """Every value arrives as its own text, through both ways in; unlike the JSON path,
    a json value null stays the JSON null (not SQL NULL)."""
    primary.sql(TYPES)
    primary.sql(TYPED_ROWS)
    primary.sql("INSERT INTO typed (id) SELECT g FROM generate_series(10, 2500) g")  # 2 pages
    replica.sql(TYPES)
    if way == "staging":     # a row here already: the copy goes through the staging table
        replica.sql("BEGIN; SET LOCAL tdgl.applying = on; "
                    "INSERT INTO typed (id, u) VALUES (1, 'old'); COMMIT")
    pair(primary, replica, [], ["typed"], replica_ddl=[])
    p = replica.cli("pull", "main")
    assert json.loads(p.stdout)["status"] == "Success", p.stdout
    assert ("straight into the empty table" if way == "direct" else "through a staging table") \
        in p.stderr, p.stderr[-2000:]
    assert rows_md5(replica, "typed") == rows_md5(primary, "typed")
    assert replica.sql("SELECT j::text, js::text FROM typed WHERE id = 2") == [("null", "null")]
    assert replica.one("SELECT f8::text FROM typed WHERE id = 1") == "-0"


def test_copy_into_rows_edited_here_opens_conflicts_and_keeps_them(primary, replica):
    primary.sql(CUSTOMER)
    primary.sql("INSERT INTO customer SELECT g, 'p' || g, 'X', g FROM generate_series(1, 3000) g")
    pair(primary, replica, [], ["customer"], replica_ddl=[CUSTOMER])
    replica.sql("INSERT INTO customer VALUES (5, 'local', 'L', 0)")      # a local edit
    replica.sql("BEGIN; SET LOCAL tdgl.applying = on; "
                "INSERT INTO customer VALUES (6, 'p6', 'X', 6), (7, 'stale', 'X', 7); COMMIT")
    r = pull(replica)
    assert r["status"] == "Success" and r["conflicts"] == 1, r
    assert replica.one("SELECT name FROM customer WHERE id = 5") == "local"
    assert replica.one("SELECT name FROM customer WHERE id = 7") == "p7"
    assert replica.one("SELECT count(*) FROM customer") == 3000
    c = replica.sql("SELECT pk::text, status, primary_row->>'name' FROM tdgl_replica.conflicts")
    assert c == [('{"id": 5}', "Open", "p5")]
    log = dict(replica.sql("SELECT pk->>'id', reason FROM tdgl_replica.sync_entries WHERE status = 'Skipped'"))
    assert log == {"5": "conflict: row edited locally", "6": "no changes"}
    assert replica.one("SELECT synced FROM tdgl_replica.runs WHERE trigger = 'Initial'") == 2998


def test_copy_takes_the_columns_both_sites_have(primary, replica):
    primary.sql("CREATE TABLE item (id int PRIMARY KEY, name text, gone text, qty int)")
    primary.sql("INSERT INTO item SELECT g, 'i' || g, 'x', g FROM generate_series(1, 50) g")
    replica.sql("CREATE TABLE item (id int PRIMARY KEY, qty int, name text, "
                "extra text DEFAULT 'kept', twice int GENERATED ALWAYS AS (qty * 2) STORED)")
    pair(primary, replica, [], ["item"], replica_ddl=[])
    assert pull(replica)["status"] == "Success"
    assert replica.sql("SELECT id, qty, name, extra, twice FROM item WHERE id IN (1, 50) "
                       "ORDER BY id") == [(1, 1, "i1", "kept", 2), (50, 50, "i50", "kept", 100)]


def test_copy_page_the_table_refuses_continues_in_json_pages(primary, replica):
    """A row the local table refuses fails the COPY (straight and staged); that table then
    goes on in JSON pages, which log the failing row and apply the others."""
    primary.sql("CREATE TABLE item (id int PRIMARY KEY, qty text)")
    primary.sql("INSERT INTO item SELECT g, g::text FROM generate_series(1, 1500) g")
    primary.sql("UPDATE item SET qty = 'five' WHERE id = 1200")
    replica.sql("CREATE TABLE item (id int PRIMARY KEY, qty int CHECK (qty <> 7))")
    pair(primary, replica, [], ["item"], replica_ddl=[])
    p = replica.cli("pull", "main")
    r = json.loads(p.stdout)
    assert "continues in JSON pages" in p.stderr, p.stderr[-2000:]
    assert r["status"] == "Partial" and r["failed"] == 2, r
    assert replica.one("SELECT count(*) FROM item") == 1498
    errs = sorted(e for (e,) in replica.sql(
        "SELECT error FROM tdgl_replica.sync_entries WHERE status = 'Failed'"))
    assert "check constraint" in errs[1] and "five" in errs[0], errs
    assert replica.one("SELECT cursor IS NOT NULL FROM tdgl_replica.sources") is True


def test_direct_page_that_fails_is_redone_through_staging(primary, replica):
    """A page COPYed straight into the table can fail on a row inserted here meanwhile; it is
    then redone, and the rest of the table goes, through staging. Here a trigger refuses the
    first row once, standing in for that race."""
    primary.sql(CUSTOMER)
    primary.sql("INSERT INTO customer SELECT g, 'p' || g, 'X', g FROM generate_series(1, 5000) g")
    pair(primary, replica, [], ["customer"], replica_ddl=[
        CUSTOMER, "CREATE SEQUENCE refused",
        "CREATE FUNCTION refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF nextval('refused') = 1 THEN RAISE unique_violation USING MESSAGE = 'taken here'; "
        "END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_once BEFORE INSERT ON customer FOR EACH ROW "
        "EXECUTE FUNCTION refuse_once()",
        # the apply session runs as replica: only an ALWAYS trigger fires there
        "ALTER TABLE customer ENABLE ALWAYS TRIGGER refuse_once"])
    p = replica.cli("pull", "main")
    r = json.loads(p.stdout)
    assert "straight into the empty table" in p.stderr, p.stderr[-2000:]
    assert "goes through staging from here" in p.stderr, p.stderr[-2000:]
    assert "JSON pages" not in p.stderr, p.stderr[-2000:]
    assert r["status"] == "Success" and r["synced"] == 5000 and r["failed"] == 0, r
    assert rows_md5(replica, "customer") == rows_md5(primary, "customer")


class CopyPrimary(StubHTTP):
    """A primary whose COPY pages are whatever the test sets; its JSON pages hold one row."""

    ANSWERS = {"/health": b'{"status":"ok"}', "/api/snapshot": b'{"cursor":"c0"}',
               "/api/changes": b'{"changes":[],"cursor":"c0","more":false}',
               "/api/rows": b'{"rows":[{"id":1,"name":"from json","company":"X",'
                            b'"amount":1}],"next":null}'}

    def __init__(self):
        self.copy = (200, b"")
        super().__init__(self._answer)

    def _answer(self, req):
        if req.path == "/api/rows" and req.query.get("format") == ["copy"]:
            return self.copy
        return 200, self.ANSWERS[req.path]


def _copy_body(data, rows=1, columns=("id", "name"), next_=None):
    head = {"columns": list(columns), "rows": rows, "next": next_}
    return json.dumps(head).encode() + b"\n" + data


def test_bad_copy_pages_from_primary_are_not_applied(replica):
    """A COPY page that is not what its header says applies nothing: the table is copied
    through JSON pages instead."""
    fake = CopyPrimary()
    bad = {
        "no header line": b"1\tcopy\n",
        "header not JSON": b"{rows\n1\tcopy\n",
        "fewer lines than rows": _copy_body(b"1\tcopy\n", rows=2),
        "end-of-data marker inside": _copy_body(b"\\.\n7\tcopy\n", rows=2),
        "a generated column": _copy_body(b"1\t5\n", columns=("id", "g")),
        "no key column": _copy_body(b"copy\n", columns=("name",)),
        "a column twice": _copy_body(b"1\t1\n", columns=("id", "id")),
        "an unknown column": _copy_body(b"1\t1\n", columns=("id", "nope")),
        "an extra field": _copy_body(b"1\tcopy\textra\n"),
        "not UTF-8": _copy_body(b"1\t\xff\xfe\n"),
        "next without rows": _copy_body(b"", rows=0, next_='{"id": 1}'),
        "next a number": _copy_body(b"1\tcopy\n", next_=5),
        "a server error": b'{"error":"database error"}',
    }
    try:
        replica.sql(CUSTOMER[:-1] + ", g int GENERATED ALWAYS AS (id * 2) STORED)")
        replica.cli("source", "add", "main", "--url", fake.url, "--key", "k" * 32,
                    "--secret", "s" * 64, "--tables", "customer")
        for name, body in bad.items():
            fake.copy = (500 if name == "a server error" else 200, body)
            replica.sql("BEGIN; SET LOCAL tdgl.applying = on; DELETE FROM customer; "
                        "UPDATE tdgl_replica.sources SET cursor = NULL; COMMIT")
            p = replica.cli("pull", "main", check=False)
            assert json.loads(p.stdout)["status"] == "Success", (name, p.stdout, p.stderr[-1500:])
            assert "continues in JSON pages" in p.stderr, (name, p.stderr[-1500:])
            assert replica.sql("SELECT id, name FROM customer") == [(1, "from json")], name
    finally:
        fake.close()
