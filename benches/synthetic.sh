#!/usr/bin/env bash
# Synthetic data throughput (issue 18): `restage generate` of one table of ROWS rows
# (default 10 M) against a keep-only `restage refresh` of the same schema holding COPY_ROWS
# rows (default 2 M), both into fresh databases on the local server. Prints the data stage's
# seconds and rows per second of each, from their --report JSON.
#
#   ROWS=10000000 COPY_ROWS=2000000 JOBS=2 benches/synthetic.sh
#
# Needs a release build (cargo build --release) and PostgreSQL at PGHOST/PGPORT/PGUSER
# (default 127.0.0.1:5432, postgres, trust).
set -euo pipefail
ROWS=${ROWS:-10000000}
COPY_ROWS=${COPY_ROWS:-2000000}
JOBS=${JOBS:-2}
BIN=${BIN:-target/release/restage}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
SRC=restage_bench_syn_src
STG=restage_bench_syn_stg
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

psql -q -d postgres -c "DROP DATABASE IF EXISTS $SRC WITH (FORCE)" -c "CREATE DATABASE $SRC"
psql -q -d $SRC <<SQL
CREATE TYPE status AS ENUM ('new', 'paid', 'shipped', 'returned');
CREATE TABLE customers (id bigint PRIMARY KEY, code text NOT NULL UNIQUE, created_at timestamptz NOT NULL);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status status NOT NULL,
    amount numeric(10,2) NOT NULL CHECK (amount >= 0),
    placed_at timestamptz NOT NULL,
    note text
);
INSERT INTO customers SELECT g, 'c' || g, now() - g * interval '1 minute' FROM generate_series(1, 10000) g;
INSERT INTO orders SELECT g, 1 + g % 10000, (ARRAY['new','paid','shipped','returned']::status[])[1 + g % 4],
       (g % 50000) / 100.0, now() - (g % 100000) * interval '1 minute', 'order ' || (g % 1000)
  FROM generate_series(1, $COPY_ROWS) g;
ANALYZE;
SQL

config() {
  cat > "$WORK/restage.yaml" <<YAML
source:
  url: postgres://$PGUSER@$PGHOST:$PGPORT/$SRC
  mode: $1
target:
  url: postgres://$PGUSER@$PGHOST:$PGPORT/postgres
  database: $STG
  keep: 0
jobs: $JOBS
secret: bench-secret-0123456789abcdef
strict: off
rules: rules/
YAML
  mkdir -p "$WORK/rules"
  printf 'synthetic:\n  public.orders: { rows: %s }\n' "$ROWS" > "$WORK/rules/synthetic.yaml"
}

rate() { # report.json table
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
data = next(s["seconds"] for s in r["stages"] if s["stage"] == "data")
rows = next(t["rows_written"] for t in r["tables"] if t["table"] == sys.argv[2])
total = r["seconds"]
print(f"{rows} rows of {sys.argv[2]}: data stage {data:.2f} s, {rows / data:,.0f} rows/s (whole run {total:.2f} s)")
PY
}

config production
echo "== keep-only refresh ($COPY_ROWS rows of orders)"
/usr/bin/time -f "peak RSS %M KiB" "$BIN" -q -c "$WORK/restage.yaml" refresh --report "$WORK/refresh.json"
rate "$WORK/refresh.json" public.orders

config synthetic
echo "== restage generate ($ROWS rows of orders)"
/usr/bin/time -f "peak RSS %M KiB" "$BIN" -q -c "$WORK/restage.yaml" generate --report "$WORK/generate.json"
rate "$WORK/generate.json" public.orders

# Clean up: the source, staging and restage's generations and control database of it.
for db in $(psql -Atq -d postgres -c "SELECT datname FROM pg_database WHERE datname LIKE 'restage\_bench\_syn\_%'"); do
  psql -q -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
done
