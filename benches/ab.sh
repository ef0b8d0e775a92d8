#!/usr/bin/env bash
# Two binaries, interleaved, on one generated demo database: the median wall time and the
# median of every stage of the JSON reports, side by side. For changes whose gain is smaller
# than the run-to-run spread of benches/e2e.sh (the machine's moods move a single run by
# ±20 %): interleaving puts both binaries in the same moods.
#
#   BEFORE=/path/to/old/restage AFTER=target/release/restage SCALE=100 RUNS=3 MODE=rules benches/ab.sh
#
# MODE=rules: the demo rules and the users' tsvector recomputed (as e2e.sh's second run);
# MODE=keep: keep-only (strict off, no rules).
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-10}
JOBS=${JOBS:-2}
RUNS=${RUNS:-3}
MODE=${MODE:-rules}
BEFORE=${BEFORE:?the old binary}
AFTER=${AFTER:-target/release/restage}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
PREFIX=restage_ab_$$
SRC=${PREFIX}_prod
WORK=$(mktemp -d)
trap 'for db in $(psql -d postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE '"'"'${PREFIX}%'"'"'"); do dropdb --force "$db"; done; rm -rf "$WORK"' EXIT

"$AFTER" -q demo --generate-only --scale "$SCALE" --source-db "$SRC"
psql -d "$SRC" -Atqc "VACUUM ANALYZE"
echo "source: $(psql -d "$SRC" -Atc "SELECT pg_size_pretty(pg_database_size(current_database()))"), $(psql -d "$SRC" -Atc "SELECT sum(n_live_tup) FROM pg_stat_user_tables") rows; mode $MODE"
: > "$WORK/empty-rules"

run() { # $1 = binary, $2 = label, $3 = run
    local extra
    if [ "$MODE" = keep ]; then
        extra="strict: off
rules: $WORK/empty-rules"
    else
        extra="rules: $PWD/rules/demo.yaml
search:
  tsvector:
    - { table: public.users, column: search, expression: \"to_tsvector('simple', first_name || ' ' || last_name)\" }"
    fi
    cat > "$WORK/restage.yaml" <<YAML
source: { url: "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$SRC" }
target: { url: "host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres", database: ${PREFIX}_$2, keep: 0 }
jobs: $JOBS
secret: benchmark-secret-0123456789
$extra
YAML
    "$1" -q --progress never -c "$WORK/restage.yaml" refresh --report "$WORK/$2.$3.json" >/dev/null
}

for r in $(seq 1 "$RUNS"); do
    run "$BEFORE" before "$r"
    run "$AFTER" after "$r"
done
python3 - "$WORK" "$RUNS" <<'PY'
import json, re, sys, statistics
work, runs = sys.argv[1], int(sys.argv[2])
def load(label):
    return [json.load(open(f"{work}/{label}.{r}.json")) for r in range(1, runs + 1)]
# Stage names that carry counts ("indexes + analyze, 9 tables, …") are compared by their kind.
def kind(name):
    return re.sub(r"\d+ ", "N ", name)
def stage(rep, name):
    return sum(s["seconds"] for s in rep["stages"] if kind(s["stage"]) == name)
b, a = load("before"), load("after")
names = []
for rep in b + a:
    for s in rep["stages"]:
        if kind(s["stage"]) not in names:
            names.append(kind(s["stage"]))
med = statistics.median
print("%-52s %9s %9s   (medians of %d runs, seconds)" % ("stage", "before", "after", runs))
for n in names:
    print("%-52s %9.2f %9.2f" % (n, med(stage(r, n) for r in b), med(stage(r, n) for r in a)))
tb, ta = med(r["seconds"] for r in b), med(r["seconds"] for r in a)
print("%-52s %9.2f %9.2f   after / before = %.3f" % ("total", tb, ta, ta / tb))
print("totals, each run: before %s, after %s" % (
    " ".join("%.2f" % r["seconds"] for r in b), " ".join("%.2f" % r["seconds"] for r in a)))
PY
