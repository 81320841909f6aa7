#!/bin/sh
# Profiles the gateway under wrk proxy-small load: CPU and alloc profiles into
# bench/results/profile/, then `go tool pprof -top` of each. Same as
# `go run ./bench -profile`; extra flags pass through (e.g. -profile-seconds 20).
set -eu
cd "$(dirname "$0")/../.."
exec go run ./bench -profile "$@"
