#!/usr/bin/env bash
# Cache warming throughput: keys per second written to Redis from a 100,000-row query.
#
#   benches/warm.sh            # ROWS=100000 REDIS=redis://127.0.0.1:6379/0
#
# It generates the demo's production database with enough users, refreshes a staging database
# from it (keep-only, to get there fast), then runs `restage warm` three times with one json
# entry (`bench:<pid>:user:{id}`, TTL 1h), a hash entry and a column entry in turn, and prints
# keys/s. Keys are flushed by prefix at the start of each run and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-100000}
REDIS=${REDIS:-redis://127.0.0.1:6379/0}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
PREFIX=restage_warm_$$
KEYS="bench:$$:"
WORK=$(mktemp -d)
trap 'for db in $(psql -d postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE '"'"'${PREFIX}%'"'"'"); do dropdb --force "$db"; done; redis-cli -u "$REDIS" --scan --pattern "${KEYS}*" | xargs -r redis-cli -u "$REDIS" unlink >/dev/null; rm -rf "$WORK"' EXIT

cargo build --release --quiet
BIN=target/release/restage
SCALE=$(echo "$ROWS / 2000 + 1" | bc)
"$BIN" -q demo --generate-only --scale "$SCALE" --source-db "${PREFIX}_prod"
mkdir -p "$WORK/rules"
for value in json hash email; do
    cat > "$WORK/restage.yaml" <<YAML
source: { url: "host=$PGHOST port=$PGPORT user=$PGUSER dbname=${PREFIX}_prod" }
target: { url: "host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres", database: ${PREFIX}_stg, keep: 0 }
strict: off
rules: $WORK/rules
cache:
  url: $REDIS
  flush: ["${KEYS}"]
  warm:
    - query: SELECT id, email, first_name, last_name FROM users ORDER BY id LIMIT $ROWS
      key: "${KEYS}user:{id}"
      value: $value
      ttl: 1h
YAML
    if [ "$value" = json ]; then
        "$BIN" -q --progress never -c "$WORK/restage.yaml" refresh >/dev/null
    fi
    "$BIN" -q --progress never --json -c "$WORK/restage.yaml" warm > "$WORK/warm.json"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("value: %-6s %7d keys in %.2f s: %8.0f keys/s (flushed %d)" % (sys.argv[2], r["written_keys"], r["seconds"], r["keys_per_second"], r["flushed_keys"]))' "$WORK/warm.json" "$value"
done
