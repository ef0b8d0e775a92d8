#!/usr/bin/env bash
# `restage copy` of a ~1 GB live staging database: how long the copy takes, and how long
# staging refused new connections (the `refused_ms` restage reports).
#
#   ROWS=12000000 RUNS=3 benches/copy.sh          # ~1 GB (the default)
#
# Builds a source database of ROWS rows (generate_series), refreshes staging from it with
# restage (no rules: strict off), then runs `restage copy` RUNS times (each copy dropped
# after), printing each run's seconds and refused_ms. Uses the PG* variables (default: the
# local trust-auth server) and target/release/restage if it exists, else target/debug.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-12000000}
RUNS=${RUNS:-3}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
BIN=target/release/restage
[ -x "$BIN" ] || BIN=target/debug/restage
SRC=bench_copy_src
STG=bench_copy_stg
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $SRC" -c "CREATE DATABASE $SRC"
psql -X -q -d "$SRC" -c "CREATE TABLE events (id bigint PRIMARY KEY, a text, b text, at timestamptz);
  INSERT INTO events SELECT g, md5(g::text), md5((g * 7)::text), now() - g * interval '1 second'
    FROM generate_series(1, $ROWS) g;"
cat >"$WORK/restage.yaml" <<EOF
source:
  url: postgres://$PGUSER@$PGHOST:$PGPORT/$SRC
target:
  url: postgres://$PGUSER@$PGHOST:$PGPORT/postgres
  database: $STG
  keep: 0
secret: bench-secret-0123456789abcdef
strict: off
EOF
"$BIN" -c "$WORK/restage.yaml" -q refresh >/dev/null
echo "live staging: $(psql -X -At -d postgres -c "SELECT pg_size_pretty(pg_database_size('$STG'))")"
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s.%N)
  out=$("$BIN" -c "$WORK/restage.yaml" --json copy "${STG}_qa$i")
  end=$(date +%s.%N)
  echo "run $i: $(echo "$end - $start" | bc) s wall; $(echo "$out" | grep -E '"(refused_ms|copy_seconds|bytes)"' | tr -d ' \n')"
  "$BIN" -c "$WORK/restage.yaml" -q copies drop "${STG}_qa$i" >/dev/null
done
