#!/bin/sh
# Container entrypoint: `primary` or `replica`. Migrates, sets up the sample deployment the
# same way `make demo` does, then execs the server (PID 1 gets SIGTERM from docker stop).
# The API credentials travel from the primary to the replica through the shared volume
# /shared (0600 file); in a real two-site deployment you copy them by hand instead.
# The paths and the peers' URLs have defaults for the compose file; tests/test_deploy.py
# overrides them to run this script against local clusters. For two-way sync
# (deploy/docker-compose.two-way.yml) each site runs both roles: TDGL_CREDS_FILE names the
# pair's credentials, TDGL_SOURCE_NAME the source, TDGL_CONFLICT_POLICY its policy; an empty
# TDGL_REPLICA_URL adds no push target and an empty TDGL_PUSH_SECRET makes the source
# long-poll instead.
set -eu
role=${1:?usage: tdgl-entrypoint primary|replica}
SAMPLE=${TDGL_SAMPLE_SQL:-/usr/local/share/tdgl/sample.sql}
CREDS=${TDGL_CREDS_FILE:-${TDGL_SHARED_DIR:-/shared}/replica.credentials}
PRIMARY_URL=${TDGL_PRIMARY_URL:-http://primary:8080}
REPLICA_URL=${TDGL_REPLICA_URL-http://replica:8081}
SOURCE=${TDGL_SOURCE_NAME:-main}

until pg_isready -q -d "$TDGL_DB"; do sleep 1; done
case "$role" in
primary)
  tdgl-primary migrate
  psql -X -q -v ON_ERROR_STOP=1 "$TDGL_DB" -f "$SAMPLE"
  tdgl-primary tables | grep -qw customer || tdgl-primary track customer
  if [ ! -s "$CREDS" ]; then
    umask 077
    tdgl-primary keygen --label replica >"$CREDS.tmp" && mv "$CREDS.tmp" "$CREDS"
  fi
  if [ -n "$REPLICA_URL" ]; then
    tdgl-primary push list | grep -qF "$REPLICA_URL" ||
      tdgl-primary push add "$REPLICA_URL"    # the secret: TDGL_PUSH_SECRET, not argv
  fi
  exec tdgl-primary serve ;;
replica)
  tdgl-replica migrate
  psql -X -q -v ON_ERROR_STOP=1 "$TDGL_DB" -f "$SAMPLE"
  until [ -s "$CREDS" ]; do sleep 1; done
  key=$(sed -n 's/^key: //p' "$CREDS")
  set -- --tables customer --poll-interval 30
  if [ -n "${TDGL_CONFLICT_POLICY:-}" ]; then
    set -- "$@" --conflict-policy "$TDGL_CONFLICT_POLICY"
  fi
  # secrets on stdin, never on a command line (every local user sees those in ps)
  if ! tdgl-replica source list | grep -qw "$SOURCE"; then
    if [ -n "${TDGL_PUSH_SECRET:-}" ]; then
      sed -n 's/^secret: //p' "$CREDS" |
      tdgl-replica source add "$SOURCE" --url "$PRIMARY_URL" --key "$key" --secret - "$@" \
        --push-secret-file /proc/self/fd/3 3<<EOF
$TDGL_PUSH_SECRET
EOF
    else
      sed -n 's/^secret: //p' "$CREDS" |
      tdgl-replica source add "$SOURCE" --url "$PRIMARY_URL" --key "$key" --secret - "$@" \
        --long-poll
    fi
  fi
  exec tdgl-replica serve ;;
*) echo "tdgl-entrypoint: unknown role '$role' (primary|replica)" >&2; exit 2 ;;
esac
