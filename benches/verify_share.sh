#!/usr/bin/env bash
# Verification's share of an anonymized refresh (issue 13), before and after: the demo's full
# rule set (as in benches/e2e.sh, run 2) refreshed with two binaries, interleaved, RUNS times
# each, from one generated production database; stage timings from the JSON report.
#
#   BEFORE=/path/to/old/restage AFTER=target/release/restage SCALE=10 RUNS=3 benches/verify_share.sh
#
# Before issue 13, verification was the "leak sample" stage (after the data) and the "verify"
# stage (every text column read back from the new database). After, it is the "leak sample"
# (before the data), the probe and the identity check inside the "data" stage, "verify
# (stream)" (the verdicts) and "verify" (the foreign keys only). The in-stream cost is not a
# stage of its own: it is read as the data stage's growth over the old binary's, medians.
#
# The old binary's data stage differs in more than verification once other work lands in it
# (since the fourth round, a table's indexes and ANALYZE run during the copy). For the
# in-stream cost alone, BEFORE may be the *same* commit built with a one-line benchmark-only
# patch that leaves the row plans without their checks, and BEFORE_ENV the environment that
# turns the patch on (benches/README.md, "Verification's share", has the patch):
#
#   BEFORE=/tmp/restage-nocheck BEFORE_ENV=RESTAGE_BENCH_NO_STREAM_CHECK=1 benches/verify_share.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-10}
JOBS=${JOBS:-2}
RUNS=${RUNS:-3}
BEFORE=${BEFORE:?the old binary}
BEFORE_ENV=${BEFORE_ENV:-}
AFTER=${AFTER:-target/release/restage}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
PREFIX=restage_vshare_$$
SRC=${PREFIX}_prod
WORK=$(mktemp -d)
trap 'for db in $(psql -d postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE '"'"'${PREFIX}%'"'"'"); do dropdb --force "$db"; done; rm -rf "$WORK"' EXIT

"$AFTER" -q demo --generate-only --scale "$SCALE" --source-db "$SRC"
psql -d "$SRC" -Atqc "VACUUM ANALYZE"
echo "source: $(psql -d "$SRC" -Atc "SELECT pg_size_pretty(pg_database_size(current_database()))"), $(psql -d "$SRC" -Atc "SELECT sum(n_live_tup) FROM pg_stat_user_tables") rows"

run() { # $1 = binary, $2 = label, $3 = run (BEFORE_ENV applies to the "before" runs)
    cat > "$WORK/restage.yaml" <<YAML
source: { url: "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$SRC" }
target: { url: "host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres", database: ${PREFIX}_$2, keep: 0 }
jobs: $JOBS
secret: benchmark-secret-0123456789
rules: $PWD/rules/demo.yaml
search:
  tsvector:
    - { table: public.users, column: search, expression: "to_tsvector('simple', first_name || ' ' || last_name)" }
YAML
    local env=()
    if [ "$2" = before ] && [ -n "$BEFORE_ENV" ]; then read -ra env <<< "$BEFORE_ENV"; fi
    env "${env[@]}" "$1" -q --progress never -c "$WORK/restage.yaml" refresh --report "$WORK/$2.$3.json" >/dev/null
}
for r in $(seq 1 "$RUNS"); do
    run "$BEFORE" before "$r"
    run "$AFTER" after "$r"
done
python3 - "$WORK" "$RUNS" <<'PY'
import json, sys, statistics
work, runs = sys.argv[1], int(sys.argv[2])
def load(label):
    return [json.load(open(f"{work}/{label}.{r}.json")) for r in range(1, runs + 1)]
def stage(rep, name):
    return sum(s["seconds"] for s in rep["stages"] if s["stage"] == name)
med = statistics.median
b, a = load("before"), load("after")
names = ["data", "leak sample", "verify (stream)", "verify"]
print("%-18s %10s %10s   (medians of %d runs, seconds)" % ("stage", "before", "after", runs))
for n in names + ["total"]:
    f = (lambda r: r["seconds"]) if n == "total" else (lambda r, n=n: stage(r, n))
    print("%-18s %10.2f %10.2f" % (n, med(map(f, b)), med(map(f, a))))
tb, ta = med(r["seconds"] for r in b), med(r["seconds"] for r in a)
vb = med(stage(r, "leak sample") + stage(r, "verify") for r in b)
va = med(stage(r, "leak sample") + stage(r, "verify (stream)") + stage(r, "verify") for r in a)
grown = max(0.0, med(stage(r, "data") for r in a) - med(stage(r, "data") for r in b))
print("verification before: %.2f s = %.1f%% of %.2f s" % (vb, 100 * vb / tb, tb))
print("verification after:  %.2f s stages + %.2f s in-stream (data stage growth) = %.1f%% of %.2f s"
      % (va, grown, 100 * (va + grown) / ta, ta))
PY
