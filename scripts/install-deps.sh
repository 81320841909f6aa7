#!/usr/bin/env bash
# Installs, from Debian packages, the programs the tests use when they are
# missing (the bench suite's are bench/scripts/deps.sh). Idempotent; quiet
# when all is there.
set -euo pipefail
want=(promtool:prometheus redis-server:redis-server)
missing=()
for pair in "${want[@]}"; do
  bin=${pair%%:*} pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing ${missing[*]} and no apt-get: install them by hand" >&2; exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing ${missing[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the services it installs; the tests and the bench suite start
# their own on free ports, so stop the system ones.
for svc in nginx haproxy redis-server; do
  $sudo service "$svc" stop >/dev/null 2>&1 || true
done
