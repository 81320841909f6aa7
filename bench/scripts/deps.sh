#!/bin/sh
# Installs the bench suite's peers and load generator from Debian packages:
# wrk, nginx and haproxy. Does nothing for those already installed. Needs root
# or sudo. Used by `make bench-deps`; `make bench` never installs anything.
set -eu

missing=""
for tool in wrk nginx haproxy; do
	if command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ]; then
		continue
	fi
	missing="$missing $tool"
done
if [ -z "$missing" ]; then
	echo "bench-deps: wrk, nginx and haproxy are installed"
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "bench-deps: missing:$missing; install them with your package manager" >&2
	exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo"
fi
echo "bench-deps: installing$missing"
$sudo apt-get update -qq
# nginx's package starts a system service on port 80 where an init system
# runs; the suite never uses it: it starts its own nginx on a free port.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
