#!/usr/bin/env bash
# End-to-end benchmark: `restage refresh` against `pg_dump -Fd -j | pg_restore -j` and
# `pgcopydb clone` on the same generated database, in one run, and the ratios.
#
#   benches/e2e.sh                 # SCALE=50 JOBS=2 RUNS=3
#   SCALE=100 JOBS=4 benches/e2e.sh
#   MANY=0 benches/e2e.sh          # without the many-small-tables case
#   SCALE=0 benches/e2e.sh         # only the many-small-tables case
#   SOURCE=mydb SCALE=1000 benches/e2e.sh   # time against a database generated before (kept)
#   SUBSET=0 benches/e2e.sh        # without the 10% subset run
#
# It builds the release binary, generates the demo's production database at SCALE (1 ≈ 2,000
# users, 8,000 orders, 40,000 events; the events table is the big one), then times, each into a
# fresh database on the same local server:
#   1. restage refresh with keep-only rules (strict: off, no rules);
#   2. restage refresh with the demo's full rule set (rules/demo.yaml, tsvector recompute);
#   3. restage refresh with a 10% subset of users (and everything that follows them);
#   4. pg_dump -Fd -jJOBS into a directory, then createdb + pg_restore -jJOBS;
#   5. pgcopydb clone --table-jobs JOBS --index-jobs JOBS (the Debian package `pgcopydb`,
#      installed with apt-get when missing; skipped with a note when it cannot be).
# Then the many-small-tables case: MANY (default 1000) tables of 10 rows each (a primary key,
# a text column), keep-only restage against pg_dump -Fc to a file + pg_restore -jJOBS.
# With BEFORE=<a restage binary> (for example one built from an earlier commit), the keep-only
# and demo-rules refreshes and the many-tables refresh also run with it, interleaved, so that
# a change is measured against its base in the same run.
# Each is run RUNS times, interleaved, and the best and median times are printed (a shared VM's
# timings vary by ±30% from run to run). Peak RSS of each restage run comes from /usr/bin/time.
# Databases it makes are dropped at the end. With SOURCE=<db>, that database is the production
# one: generated at SCALE when it does not exist yet, reused as it is when it does, and kept at
# the end (at scale 1000 the generation alone takes most of an hour).
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-50}
JOBS=${JOBS:-2}
RUNS=${RUNS:-3}
MANY=${MANY:-1000}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
SUBSET=${SUBSET:-1}
PREFIX=restage_bench_$$
SRC=${SOURCE:-${PREFIX}_prod}
WORK=$(mktemp -d)
trap 'for db in $(psql -d postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE '"'"'${PREFIX}%'"'"'"); do dropdb --force "$db"; done; rm -rf "$WORK"' EXIT

# BIN: a restage binary to time (default: this checkout's, built here).
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/restage
fi
if ! command -v pgcopydb >/dev/null 2>&1; then
    echo "installing pgcopydb (apt-get) ..."
    { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgcopydb >/dev/null 2>&1; } ||
        echo "note: pgcopydb could not be installed; its baseline is skipped"
fi
HAVE_PGCOPYDB=$(command -v pgcopydb >/dev/null 2>&1 && echo 1 || echo 0)
URI_BASE="postgresql://$PGUSER@$PGHOST:$PGPORT"

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }

# best and median seconds, max RSS: "best median rss"
stats() { sort -n "$WORK/times.$1" | awk '{ t[NR] = $1; if ($2 > r) r = $2 } END { printf "%.2f %.2f %d", t[1], t[int((NR + 1) / 2)], r }'; }
mkdir -p "$WORK/empty-rules"

config() { # $1 = target db, $2 = extra yaml
    cat > "$WORK/restage.yaml" <<YAML
source: { url: "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$SRC" }
target: { url: "host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres", database: $1, keep: 0 }
jobs: $JOBS
secret: benchmark-secret-0123456789
$2
YAML
}

run_restage() { # $1 = label, $2 = target db, $3 = extra yaml
    config "$2" "$3"
    local t0 t1
    t0=$(now)
    /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" -q --progress never -c "$WORK/restage.yaml" refresh --report "$WORK/$2.json" >/dev/null
    t1=$(now)
    echo "$(elapsed "$t0" "$t1") $(( $(cat "$WORK/rss") / 1024 ))" >> "$WORK/times.$4"
    cp "$WORK/$2.json" "$WORK/$4.$(wc -l < "$WORK/times.$4").json"
}

run_baseline() {
    rm -rf "$WORK/dump"
    dropdb --if-exists --force "${PREFIX}_baseline"
    local t0 t1
    t0=$(now)
    pg_dump -Fd -j "$JOBS" -f "$WORK/dump" "$SRC"
    createdb "${PREFIX}_baseline"
    pg_restore -j "$JOBS" -d "${PREFIX}_baseline" "$WORK/dump"
    t1=$(now)
    echo "$(elapsed "$t0" "$t1") 0" >> "$WORK/times.base"
}

run_pgcopydb() { # $1 = source db, $2 = target db, $3 = times file
    rm -rf "$WORK/pgcopydb"
    dropdb --if-exists --force "$2"
    local t0 t1
    t0=$(now)
    createdb "$2"
    pgcopydb clone --source "$URI_BASE/$1" --target "$URI_BASE/$2" --table-jobs "$JOBS" \
        --index-jobs "$JOBS" --dir "$WORK/pgcopydb" >"$WORK/pgcopydb.log" 2>&1 ||
        { tail -20 "$WORK/pgcopydb.log"; exit 1; }
    t1=$(now)
    echo "$(elapsed "$t0" "$t1") 0" >> "$WORK/times.$3"
}

RULES_YAML="rules: $PWD/rules/demo.yaml
search:
  tsvector:
    - { table: public.users, column: search, expression: \"to_tsvector('simple', first_name || ' ' || last_name)\" }"
main_case() {
if [ -n "${SOURCE:-}" ] && psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$SOURCE'" | grep -q 1; then
    echo "reusing the production database $SOURCE (SOURCE); SCALE is not checked against it"
else
    echo "generating the demo production database at scale $SCALE ..."
    t0=$(now)
    "$BIN" -q demo --generate-only --scale "$SCALE" --source-db "$SRC"
    psql -d "$SRC" -Atqc "VACUUM ANALYZE"
    printf 'generated in %.0f s\n' "$(elapsed "$t0" "$(now)")"
fi
SIZE=$(psql -d "$SRC" -Atc "SELECT pg_size_pretty(pg_database_size(current_database()))")
ROWS=$(psql -d "$SRC" -Atc "SELECT sum(n_live_tup) FROM pg_stat_user_tables")
echo "source: $SIZE, $ROWS rows"

for run in $(seq 1 "$RUNS"); do
    echo "run $run of $RUNS ..."
    run_restage "keep-only" "${PREFIX}_keep" "strict: off
rules: $WORK/empty-rules" keep
    run_restage "demo rules" "${PREFIX}_anon" "$RULES_YAML" anon
    if [ -n "${BEFORE:-}" ]; then
        BIN=$BEFORE run_restage "keep-only (before)" "${PREFIX}_keep" "strict: off
rules: $WORK/empty-rules" keep_before
        BIN=$BEFORE run_restage "demo rules (before)" "${PREFIX}_anon" "$RULES_YAML" anon_before
    fi
    if [ "$SUBSET" != 0 ]; then
        run_restage "10% subset" "${PREFIX}_subset" "$RULES_YAML
sample:
  tables:
    public.users: { percent: 10 }" subset
    fi
    run_baseline
    if [ "$HAVE_PGCOPYDB" = 1 ]; then run_pgcopydb "$SRC" "${PREFIX}_pgcopydb" pgcopydb; fi
done

read -r T_keep M_keep R_keep <<< "$(stats keep)"
read -r T_anon M_anon R_anon <<< "$(stats anon)"
if [ "$SUBSET" != 0 ]; then read -r T_subset M_subset R_subset <<< "$(stats subset)"; fi
read -r T_base M_base _ <<< "$(stats base)"
echo
printf '%-40s %8s %8s %10s\n' "" "best" "median" "peak RSS"
printf '%-40s %7.2fs %7.2fs %6d MiB\n' "restage refresh (keep-only)" "$T_keep" "$M_keep" "$R_keep"
printf '%-40s %7.2fs %7.2fs %6d MiB\n' "restage refresh (demo rules)" "$T_anon" "$M_anon" "$R_anon"
if [ "$SUBSET" != 0 ]; then
    printf '%-40s %7.2fs %7.2fs %6d MiB\n' "restage refresh (10% subset, demo rules)" "$T_subset" "$M_subset" "$R_subset"
fi
printf '%-40s %7.2fs %7.2fs\n' "pg_dump -Fd -j$JOBS | pg_restore -j$JOBS" "$T_base" "$M_base"
if [ "$HAVE_PGCOPYDB" = 1 ]; then
    read -r T_pgc M_pgc _ <<< "$(stats pgcopydb)"
    printf '%-40s %7.2fs %7.2fs\n' "pgcopydb clone (table/index jobs $JOBS)" "$T_pgc" "$M_pgc"
fi
if [ -n "${BEFORE:-}" ]; then
    read -r T_kb M_kb R_kb <<< "$(stats keep_before)"
    read -r T_ab M_ab R_ab <<< "$(stats anon_before)"
    printf '%-40s %7.2fs %7.2fs %6d MiB\n' "BEFORE: keep-only" "$T_kb" "$M_kb" "$R_kb"
    printf '%-40s %7.2fs %7.2fs %6d MiB\n' "BEFORE: demo rules" "$T_ab" "$M_ab" "$R_ab"
    if [ "$HAVE_PGCOPYDB" = 1 ]; then
        printf 'BEFORE: ratio keep-only / pgcopydb:   %.2f\n' "$(echo "$T_kb / $T_pgc" | bc -l)"
        printf 'BEFORE: ratio demo rules / pgcopydb:  %.2f\n' "$(echo "$T_ab / $T_pgc" | bc -l)"
    fi
fi
echo
printf '(ratios of best times)\nratio keep-only / baseline:   %.2f\n' "$(echo "$T_keep / $T_base" | bc -l)"
printf 'ratio demo rules / baseline:  %.2f\n' "$(echo "$T_anon / $T_base" | bc -l)"
printf 'anonymization overhead:       %+.1f%% of the keep-only refresh\n' "$(echo "($T_anon - $T_keep) * 100 / $T_keep" | bc -l)"
if [ "$SUBSET" != 0 ]; then printf 'ratio 10%% subset / full:      %.2f\n' "$(echo "$T_subset / $T_anon" | bc -l)"; fi
printf 'ratio demo rules / keep-only: %.2f\n' "$(echo "$T_anon / $T_keep" | bc -l)"
if [ "$HAVE_PGCOPYDB" = 1 ]; then
    printf 'ratio keep-only / pgcopydb:   %.2f\n' "$(echo "$T_keep / $T_pgc" | bc -l)"
    printf 'ratio demo rules / pgcopydb:  %.2f\n' "$(echo "$T_anon / $T_pgc" | bc -l)"
fi
echo
echo "stage timings of the first run (seconds):"
python3 - "$WORK/keep.1.json" "$WORK/anon.1.json" "$WORK/subset.1.json" <<'PY'
import json, os, sys
runs = [json.load(open(p)) if os.path.exists(p) else {"stages": [], "seconds": 0.0} for p in sys.argv[1:]]
stages = []
for r in runs:
    for s in r["stages"]:
        if s["stage"] not in stages:
            stages.append(s["stage"])
print("  %-22s %10s %10s %10s" % ("stage", "keep-only", "rules", "subset"))
for st in stages:
    row = [next((s["seconds"] for s in r["stages"] if s["stage"] == st), 0.0) for r in runs]
    print("  %-22s %10.2f %10.2f %10.2f" % (st, *row))
print("  %-22s %10.2f %10.2f %10.2f" % ("total", *[r["seconds"] for r in runs]))
PY
}

# Many small tables: the fixed cost per table.
many_case() {
    local many=${PREFIX}_many
    echo "generating $MANY tables of 10 rows ..."
    createdb "$many"
    python3 -c '
import sys
for i in range(int(sys.argv[1])):
    print(f"CREATE TABLE t{i:04} (id int PRIMARY KEY, label text NOT NULL);")
    print(f"INSERT INTO t{i:04} SELECT g, $$row $$ || g FROM generate_series(1, 10) g;")
' "$MANY" | psql -q -d "$many" -v ON_ERROR_STOP=1 >/dev/null
    psql -d "$many" -Atqc "VACUUM ANALYZE"
    local run t0 t1
    for run in $(seq 1 "$RUNS"); do
        echo "many tables, run $run of $RUNS ..."
        SRC=$many run_restage "keep-only" "${PREFIX}_many_keep" "strict: off
rules: $WORK/empty-rules" many_keep
        if [ -n "${BEFORE:-}" ]; then
            SRC=$many BIN=$BEFORE run_restage "keep-only (before)" "${PREFIX}_many_keep" "strict: off
rules: $WORK/empty-rules" many_keep_before
        fi
        rm -f "$WORK/many.dump"
        dropdb --if-exists --force "${PREFIX}_many_base"
        t0=$(now)
        pg_dump -Fc -f "$WORK/many.dump" "$many"
        createdb "${PREFIX}_many_base"
        pg_restore -j "$JOBS" -d "${PREFIX}_many_base" "$WORK/many.dump"
        t1=$(now)
        echo "$(elapsed "$t0" "$t1") 0" >> "$WORK/times.many_base"
        if [ "$HAVE_PGCOPYDB" = 1 ]; then run_pgcopydb "$many" "${PREFIX}_many_pgcopydb" many_pgcopydb; fi
    done
    read -r T_mk M_mk R_mk <<< "$(stats many_keep)"
    read -r T_mb M_mb _ <<< "$(stats many_base)"
    echo
    printf '%-40s %8s %8s %10s\n' "$MANY tables x 10 rows" "best" "median" "peak RSS"
    printf '%-40s %7.2fs %7.2fs %6d MiB\n' "restage refresh (keep-only)" "$T_mk" "$M_mk" "$R_mk"
    printf '%-40s %7.2fs %7.2fs\n' "pg_dump -Fc | pg_restore -j$JOBS" "$T_mb" "$M_mb"
    if [ "$HAVE_PGCOPYDB" = 1 ]; then
        read -r T_mp M_mp _ <<< "$(stats many_pgcopydb)"
        printf '%-40s %7.2fs %7.2fs\n' "pgcopydb clone" "$T_mp" "$M_mp"
        printf 'ratio keep-only / pgcopydb:                 %.2f\n' "$(echo "$T_mk / $T_mp" | bc -l)"
    fi
    printf 'ratio keep-only / pg_dump -Fc | pg_restore: %.2f\n' "$(echo "$T_mk / $T_mb" | bc -l)"
    if [ -n "${BEFORE:-}" ]; then
        read -r T_mkb M_mkb _ <<< "$(stats many_keep_before)"
        printf '%-40s %7.2fs %7.2fs\n' "BEFORE: restage refresh (keep-only)" "$T_mkb" "$M_mkb"
        printf 'BEFORE: ratio keep-only / pg_dump -Fc | pg_restore: %.2f\n' "$(echo "$T_mkb / $T_mb" | bc -l)"
        echo "stage timings of the first BEFORE keep-only run (seconds):"
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); [print("  %-22s %8.2f" % (s["stage"], s["seconds"])) for s in r["stages"]]' "$WORK/many_keep_before.1.json"
    fi
    echo "stage timings of the first keep-only run (seconds):"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); [print("  %-22s %8.2f" % (s["stage"], s["seconds"])) for s in r["stages"]]' "$WORK/many_keep.1.json"
}

if [ "$SCALE" != 0 ]; then main_case; fi
if [ "$MANY" != 0 ]; then many_case; fi
