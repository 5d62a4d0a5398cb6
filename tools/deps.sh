#!/bin/sh
# deps.sh [PACKAGE...]: install the Debian packages tdgl-streaming builds and tests with, and
# any named here (fuzz.mk names the fuzzers' compiler), when missing.
set -e
PKGS="gcc make libmicrohttpd-dev libcurl4-openssl-dev libcjson-dev libpq-dev libssl-dev
      postgresql-15 python3 python3-pytest python3-psycopg2 python3-requests python3-yaml python3-pytest-xdist faketime curl docker-compose haproxy
      chromium chromium-driver python3-selenium"
PKGS="$PKGS $*"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
