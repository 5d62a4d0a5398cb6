#!/usr/bin/env bash
# demo.sh start|stop: two local sites (two PostgreSQL clusters, tdgl-primary, tdgl-replica with
# push wired), a stream of sample changes arriving on the replica, a conflict created and
# resolved. TWO_WAY=1 (make demo TWO_WAY=1) then makes it two-way: the replica site tracks the
# table too and the primary site pulls it back, latest-wins both ways (docs/operations.md
# "Two-way and hub-and-spoke"). Everything lives under $DEMO_DIR (default .demo/); both sites
# keep running until `make demo-stop`. Works as root (PostgreSQL then runs as the postgres
# user) and as a user.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO_DIR=${DEMO_DIR:-$ROOT/.demo}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
BIN=${TDGL_BIN:-$ROOT/bin}
P_PG=${DEMO_PRIMARY_PG_PORT:-25432}
R_PG=${DEMO_REPLICA_PG_PORT:-25433}
P_HTTP=${DEMO_PRIMARY_PORT:-28080}
R_HTTP=${DEMO_REPLICA_PORT:-28081}
TWO_WAY=${TWO_WAY:-0}
B_HTTP=${DEMO_SITE_B_PRIMARY_PORT:-28082}   # two-way: the replica site's own tdgl-primary
A_HTTP=${DEMO_SITE_A_REPLICA_PORT:-28083}   # two-way: the primary site's own tdgl-replica
ADMIN_TOKEN_FILE=$DEMO_DIR/admin-token

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# The clusters take a password (scram-sha-256): on 127.0.0.1 every local account could
# otherwise connect as their superuser. The password is in a 0600 passfile, never on a
# command line or in a conninfo string.
PASSFILE=$DEMO_DIR/pgpass
PRIMARY_DB="host=127.0.0.1 port=$P_PG user=postgres dbname=postgres passfile=$PASSFILE"
REPLICA_DB="host=127.0.0.1 port=$R_PG user=postgres dbname=postgres passfile=$PASSFILE"
psql_p() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PRIMARY_DB" "$@"; }
psql_r() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$REPLICA_DB" "$@"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  t=$1; what=$2; shift 2; i=0
  while ! "$@" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt $((t * 10)) ] && die "timed out waiting for $what"
    sleep 0.1
  done
}

start_cluster() { # start_cluster NAME PORT
  dir=$DEMO_DIR/$1
  if [ ! -d "$dir/data" ]; then
    mkdir -p "$dir"
    (umask 077; sed -n 's/^[^:]*:[^:]*:[^:]*:[^:]*://p' "$PASSFILE" | head -1 >"$dir/pw")
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir" "$dir/pw"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 \
      --pwfile="$dir/pw" -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$dir/pw"
    printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n" "$2" \
      >>"$dir/data/postgresql.conf"
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w start >/dev/null
}

stop_all() {
  for s in site-a-replica site-b-primary replica primary; do
    if [ -f "$DEMO_DIR/$s.pid" ]; then
      kill "$(cat "$DEMO_DIR/$s.pid")" 2>/dev/null || true
      rm -f "$DEMO_DIR/$s.pid"
    fi
  done
  for c in replica-site primary-site; do
    [ -d "$DEMO_DIR/$c/data" ] && as_pg "$PG_BIN/pg_ctl" -D "$DEMO_DIR/$c/data" -m fast -w stop >/dev/null 2>&1 || true
  done
}

case "${1:-start}" in
stop)
  stop_all
  rm -rf "$DEMO_DIR"
  echo "demo stopped and removed ($DEMO_DIR)"
  exit 0 ;;
start) ;;
*) die "usage: demo.sh start|stop" ;;
esac

# On a failure: what went wrong is in the logs written so far; show their ends.
failed() {
  echo "demo failed." >&2
  found=0
  for f in "$DEMO_DIR"/*.log "$DEMO_DIR"/*/postgres.log; do
    [ -s "$f" ] || continue
    found=1; printf '\n--- last lines of %s ---\n' "$f" >&2; tail -n 15 "$f" >&2
  done
  [ $found -eq 1 ] || echo "(no server had started: the message above says why)" >&2
  stop_all
}

[ -x "$BIN/tdgl-primary" ] || die "build first: make"
[ -f "$DEMO_DIR/primary.pid" ] && die "a demo is already running; make demo-stop first"
# every port is checked before anything starts, so a busy one stops the demo cleanly
port_busy "$P_PG" && die "port $P_PG is in use: set DEMO_PRIMARY_PG_PORT to a free port"
port_busy "$R_PG" && die "port $R_PG is in use: set DEMO_REPLICA_PG_PORT to a free port"
port_busy "$P_HTTP" && die "port $P_HTTP is in use: set DEMO_PRIMARY_PORT to a free port"
port_busy "$R_HTTP" && die "port $R_HTTP is in use: set DEMO_REPLICA_PORT to a free port"
if [ "$TWO_WAY" = 1 ]; then
  port_busy "$B_HTTP" && die "port $B_HTTP is in use: set DEMO_SITE_B_PRIMARY_PORT to a free port"
  port_busy "$A_HTTP" && die "port $A_HTTP is in use: set DEMO_SITE_A_REPLICA_PORT to a free port"
fi
stop_all; rm -rf "$DEMO_DIR"; mkdir -p "$DEMO_DIR"
trap failed EXIT INT TERM
(umask 077; printf '127.0.0.1:*:*:postgres:%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
  >"$PASSFILE")

say "starting the primary site's PostgreSQL (port $P_PG) and the replica site's (port $R_PG)"
start_cluster primary-site "$P_PG"
start_cluster replica-site "$R_PG"
psql_p -f deploy/sample.sql
psql_r -f deploy/sample.sql

ADMIN_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
SECRET_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
PUSH_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# secrets travel in 0600 files and the environment, never on a command line (ps shows those)
umask 077
printf '%s\n' "$ADMIN_TOKEN" >"$ADMIN_TOKEN_FILE"
printf 'TDGL_SECRET_KEY=%s\n' "$SECRET_KEY" >"$DEMO_DIR/replica.env"
od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$DEMO_DIR/primary-secret-key"
printf '%s\n' "$PUSH_SECRET" >"$DEMO_DIR/push-secret"
umask 022

say "primary: migrate, track customer, create an API key"
export TDGL_DB="$PRIMARY_DB"
P_SECRET_KEY=$(cat "$DEMO_DIR/primary-secret-key")   # seals the push secret at rest
"$BIN/tdgl-primary" migrate
"$BIN/tdgl-primary" track customer
creds=$("$BIN/tdgl-primary" keygen --label demo-replica)
KEY=$(printf '%s\n' "$creds" | sed -n 's/^key: //p')
(umask 077; printf '%s\n' "$creds" | sed -n 's/^secret: //p' >"$DEMO_DIR/api-secret")
mkdir -p "$DEMO_DIR/files-primary" "$DEMO_DIR/files-replica"
TDGL_ADMIN_TOKEN="$ADMIN_TOKEN" TDGL_SECRET_KEY="$P_SECRET_KEY" TDGL_FILES_DIR="$DEMO_DIR/files-primary" \
  nohup "$BIN/tdgl-primary" serve --listen "127.0.0.1:$P_HTTP" \
  >"$DEMO_DIR/primary.log" 2>&1 &
echo $! >"$DEMO_DIR/primary.pid"
wait_for 20 "tdgl-primary" curl -sf "http://127.0.0.1:$P_HTTP/health"

say "replica: migrate, add the primary as a source (secret stored encrypted), serve"
export TDGL_DB="$REPLICA_DB" TDGL_ADMIN_TOKEN="$ADMIN_TOKEN" TDGL_SECRET_KEY="$SECRET_KEY"
"$BIN/tdgl-replica" migrate
"$BIN/tdgl-replica" source add main --url "http://127.0.0.1:$P_HTTP" --key "$KEY" \
  --secret-file "$DEMO_DIR/api-secret" --tables customer \
  --push-secret-file "$DEMO_DIR/push-secret" --poll-interval 30
TDGL_FILES_DIR="$DEMO_DIR/files-replica" nohup "$BIN/tdgl-replica" serve --listen "127.0.0.1:$R_HTTP" \
  >"$DEMO_DIR/replica.log" 2>&1 &
echo $! >"$DEMO_DIR/replica.pid"
wait_for 20 "tdgl-replica" curl -sf "http://127.0.0.1:$R_HTTP/health"

say "primary: push new changes to the replica (now that it listens)"
TDGL_DB="$PRIMARY_DB" TDGL_SECRET_KEY="$P_SECRET_KEY" "$BIN/tdgl-primary" push add "http://127.0.0.1:$R_HTTP" \
  --secret-file "$DEMO_DIR/push-secret"

say "writing 200 sample changes on the primary (inserts, updates, a submit, a delete)"
psql_p <<'SQL'
INSERT INTO customer (id, name, email, balance, tags, data)
SELECT g, 'Customer ' || g, 'c' || g || '@example.com', g * 1.5, ARRAY['demo'], jsonb_build_object('n', g)
FROM generate_series(1, 100) g;
UPDATE customer SET balance = balance + 10 WHERE id % 2 = 0;
UPDATE customer SET docstatus = 1 WHERE id = 7;
DELETE FROM customer WHERE id = 100;
SQL
n_rows() { "$PG_BIN/psql" -X -tA "$1" -c "SELECT count(*) || ':' || coalesce(sum(balance),0) FROM customer"; }
caught_up() { [ "$(n_rows "$REPLICA_DB")" = "$(n_rows "$PRIMARY_DB")" ]; }
wait_for 30 "the replica to catch up" caught_up
echo "primary: $(n_rows "$PRIMARY_DB")   replica: $(n_rows "$REPLICA_DB")   (rows:sum of balances)"

say "a conflict: customer 1 edited on the replica, then on the primary"
psql_r -c "UPDATE customer SET name = 'edited on the replica' WHERE id = 1"
psql_p -c "UPDATE customer SET name = 'edited on the primary' WHERE id = 1"
AUTH="Authorization: Bearer $ADMIN_TOKEN"
open_conflicts() { curl -sf -H "$AUTH" "http://127.0.0.1:$R_HTTP/api/conflicts?status=open"; }
has_conflict() { open_conflicts | grep -q '"id"'; }
wait_for 30 "the conflict" has_conflict
open_conflicts; echo
CID=$(open_conflicts | sed -n 's/.*"id":[ ]*\([0-9][0-9]*\).*/\1/p' | head -1)
say "resolving conflict $CID with Accept Primary"
curl -sf -X POST -H "$AUTH" -H 'Content-Type: application/json' \
  -d '{"resolution":"Accept Primary"}' "http://127.0.0.1:$R_HTTP/api/conflicts/$CID/resolve"; echo
echo "replica now has: $("$PG_BIN/psql" -X -tA "$REPLICA_DB" -c 'SELECT name FROM customer WHERE id = 1')"

if [ "$TWO_WAY" = 1 ]; then
  say "two-way: the replica site (B) tracks customer too, the primary site (A) pulls it back"
  TDGL_DB="$REPLICA_DB" "$BIN/tdgl-primary" migrate
  TDGL_DB="$REPLICA_DB" "$BIN/tdgl-primary" track customer
  creds=$(TDGL_DB="$REPLICA_DB" "$BIN/tdgl-primary" keygen --label site-a)
  KEY_B=$(printf '%s\n' "$creds" | sed -n 's/^key: //p')
  (umask 077; printf '%s\n' "$creds" | sed -n 's/^secret: //p' >"$DEMO_DIR/api-secret-b")
  TDGL_DB="$REPLICA_DB" TDGL_SECRET_KEY="$P_SECRET_KEY" TDGL_ADMIN_TOKEN="$ADMIN_TOKEN" \
    nohup "$BIN/tdgl-primary" serve --listen "127.0.0.1:$B_HTTP" >"$DEMO_DIR/site-b-primary.log" 2>&1 &
  echo $! >"$DEMO_DIR/site-b-primary.pid"
  wait_for 20 "site B's tdgl-primary" curl -sf "http://127.0.0.1:$B_HTTP/health"
  TDGL_DB="$PRIMARY_DB" "$BIN/tdgl-replica" migrate
  TDGL_DB="$PRIMARY_DB" "$BIN/tdgl-replica" source add site-b --url "http://127.0.0.1:$B_HTTP" \
    --key "$KEY_B" --secret-file "$DEMO_DIR/api-secret-b" --tables customer --long-poll \
    --conflict-policy latest-wins
  "$BIN/tdgl-replica" source set main --conflict-policy latest-wins     # site B's source
  TDGL_DB="$PRIMARY_DB" nohup "$BIN/tdgl-replica" serve --listen "127.0.0.1:$A_HTTP" \
    >"$DEMO_DIR/site-a-replica.log" 2>&1 &
  echo $! >"$DEMO_DIR/site-a-replica.pid"
  wait_for 20 "site A's tdgl-replica" curl -sf "http://127.0.0.1:$A_HTTP/health"
  say "an edit on site B (the replica site) reaches site A"
  psql_r -c "UPDATE customer SET name = 'edited on site B' WHERE id = 2"
  on_a() { [ "$("$PG_BIN/psql" -X -tA "$PRIMARY_DB" -c 'SELECT name FROM customer WHERE id = 2')" = "edited on site B" ]; }
  wait_for 30 "site A to get site B's edit" on_a
  echo "site A now has: $("$PG_BIN/psql" -X -tA "$PRIMARY_DB" -c 'SELECT name FROM customer WHERE id = 2')"
  echo "site identities: A $(TDGL_DB="$PRIMARY_DB" "$BIN/tdgl-replica" status | sed -n 's/^site: //p')" \
       " B $("$BIN/tdgl-replica" status | sed -n 's/^site: //p')"
fi

trap - EXIT INT TERM
STOP="make demo-stop"
[ "$DEMO_DIR" = "$ROOT/.demo" ] || STOP="DEMO_DIR=$DEMO_DIR make demo-stop"
cat <<EOF

Both sites are running.
  primary API    http://127.0.0.1:$P_HTTP   (PostgreSQL: $PRIMARY_DB)
  replica admin  http://127.0.0.1:$R_HTTP   (PostgreSQL: $REPLICA_DB)
  admin token    $ADMIN_TOKEN   (also in $ADMIN_TOKEN_FILE)
  web consoles   http://127.0.0.1:$R_HTTP/ (replica), http://127.0.0.1:$P_HTTP/ (primary): sign in with the admin token
  logs           $DEMO_DIR/primary.log, $DEMO_DIR/replica.log

Try:
  $PG_BIN/psql "$PRIMARY_DB" -c "UPDATE customer SET balance = balance + 1 WHERE id = 5"
  $PG_BIN/psql "$REPLICA_DB" -c "SELECT id, balance FROM customer WHERE id = 5"
  curl -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:$R_HTTP/api/status
  curl -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:$R_HTTP/api/runs
  TDGL_DB="$REPLICA_DB" $BIN/tdgl-replica status
  $STOP
EOF
if [ "$TWO_WAY" = 1 ]; then
  cat <<EOF

Two-way (latest-wins both ways): site A = $PRIMARY_DB
                                 site B = $REPLICA_DB
  site B's tdgl-primary http://127.0.0.1:$B_HTTP, site A's tdgl-replica http://127.0.0.1:$A_HTTP
  logs $DEMO_DIR/site-b-primary.log, $DEMO_DIR/site-a-replica.log
Edit on both sites, then compare:
  $PG_BIN/psql "$PRIMARY_DB" -c "UPDATE customer SET balance = balance + 1 WHERE id = 5"
  $PG_BIN/psql "$REPLICA_DB" -c "UPDATE customer SET balance = balance + 100 WHERE id = 6"
  $PG_BIN/psql "$REPLICA_DB" -c "INSERT INTO customer (id, name) VALUES (1001, 'made on site B')"
  $PG_BIN/psql "$PRIMARY_DB" -c "SELECT id, name, balance FROM customer WHERE id IN (5, 6, 1001)"
  $PG_BIN/psql "$REPLICA_DB" -c "SELECT id, name, balance FROM customer WHERE id IN (5, 6, 1001)"
A concurrent edit of one row on both sites: the one made last wins on both
  (tdgl-replica conflicts --status resolved shows the decision).
EOF
fi
