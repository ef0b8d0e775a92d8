#!/usr/bin/env bash
# Archives: `restage dump` + `restage restore` against a direct `restage refresh` of the same
# generated database (wall times), and the archive's size against `pg_dump -Fd` of the same
# data, in one run.
#
#   benches/dump.sh                    # SCALE=10 JOBS=2 RUNS=3
#   SCALE=50 RUNS=1 benches/dump.sh
#
# It builds the release binary, generates the demo's production database at SCALE (1 ≈ 2,000
# users, 8,000 orders, 40,000 events; see benches/e2e.sh), then RUNS times, interleaved, each
# into a fresh database on the same local server, with the demo's full rule set
# (rules/demo.yaml, the tsvector recompute):
#   1. restage refresh;
#   2. restage dump --to DIR (zstd level 3, the default), then restage restore --from DIR
#      (timed apart and together);
#   3. pg_dump -Fd -jJOBS of the source (its default compression), then createdb +
#      pg_restore -jJOBS (the unanonymized baseline: what a plain dump/restore costs).
# Sizes are `du -sb` of the archive folder and of pg_dump's folder. The best and median time
# of each are printed. Databases and folders it makes are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-10}
JOBS=${JOBS:-2}
RUNS=${RUNS:-3}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
PREFIX=restage_dbench_$$
SRC=${PREFIX}_prod
WORK=$(mktemp -d)
trap 'for db in $(psql -d postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE '"'"'${PREFIX}%'"'"'"); do dropdb --force "$db"; done; rm -rf "$WORK"' EXIT

# BIN: a restage binary to time (default: this checkout's, built here).
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/restage
fi

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
# best and median seconds of a times file
stats() { sort -n "$WORK/times.$1" | awk '{ t[NR] = $1 } END { printf "%.2f %.2f", t[1], t[int((NR + 1) / 2)] }'; }

config() { # $1 = target db, $2 = archive folder
    cat > "$WORK/restage.yaml" <<YAML
source: { url: "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$SRC" }
target: { url: "host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres", database: $1, keep: 0 }
jobs: $JOBS
secret: benchmark-secret-0123456789
rules: $PWD/rules/demo.yaml
search:
  tsvector:
    - { table: public.users, column: search, expression: "to_tsvector('simple', first_name || ' ' || last_name)" }
dump:
  destination: $2
  keep: 1
YAML
}

echo "generating the demo production database at scale $SCALE ..."
"$BIN" -q demo --generate-only --scale "$SCALE" --source-db "$SRC"
psql -d "$SRC" -Atqc "VACUUM ANALYZE"
SIZE=$(psql -d "$SRC" -Atc "SELECT pg_size_pretty(pg_database_size(current_database()))")
ROWS=$(psql -d "$SRC" -Atc "SELECT sum(n_live_tup) FROM pg_stat_user_tables")
echo "source: $SIZE, $ROWS rows"

for run in $(seq 1 "$RUNS"); do
    echo "run $run of $RUNS ..."
    config "${PREFIX}_refresh" "$WORK/archives"
    t0=$(now)
    "$BIN" -q --progress never -c "$WORK/restage.yaml" refresh >/dev/null
    t1=$(now)
    echo "$(elapsed "$t0" "$t1")" >> "$WORK/times.refresh"

    rm -rf "$WORK/archives"
    config "${PREFIX}_restored" "$WORK/archives"
    t0=$(now)
    "$BIN" -q --progress never -c "$WORK/restage.yaml" dump >/dev/null
    t1=$(now)
    "$BIN" -q --progress never -c "$WORK/restage.yaml" restore >/dev/null
    t2=$(now)
    echo "$(elapsed "$t0" "$t1")" >> "$WORK/times.dump"
    echo "$(elapsed "$t1" "$t2")" >> "$WORK/times.restore"
    echo "$(elapsed "$t0" "$t2")" >> "$WORK/times.both"
    du -sb "$WORK"/archives/restage-* | awk '{ print $1 }' > "$WORK/size.archive"

    rm -rf "$WORK/pgdump"
    dropdb --if-exists --force "${PREFIX}_baseline"
    t0=$(now)
    pg_dump -Fd -j "$JOBS" -f "$WORK/pgdump" "$SRC"
    t1=$(now)
    createdb "${PREFIX}_baseline"
    pg_restore -j "$JOBS" -d "${PREFIX}_baseline" "$WORK/pgdump"
    t2=$(now)
    echo "$(elapsed "$t0" "$t1")" >> "$WORK/times.pgdump"
    echo "$(elapsed "$t0" "$t2")" >> "$WORK/times.pgboth"
    du -sb "$WORK/pgdump" | awk '{ print $1 }' > "$WORK/size.pgdump"
done

# The restored database equals the refreshed one: every table's exact row count and an md5 of
# its rows in a fixed order. (Before, this compared pg_stat_user_tables.n_live_tup after an
# ANALYZE: an estimate from a sample on big tables, which differs between two physically
# different copies of the same rows, so it could say NO for equal databases.) restage's own
# `_restage` schema is left out: it records each database's own run.
digests() {
    psql -d "$1" -Atc "
        SELECT string_agg(format('%s.%s=%s', n.nspname, c.relname,
                   (xpath('/row/d/text()', query_to_xml(format(
                       'SELECT count(*) || '':'' || coalesce(md5(string_agg(t::text, E''\\n'' ORDER BY t::text)), '''') AS d FROM %I.%I t',
                       n.nspname, c.relname), false, true, '')))[1]::text), ',' ORDER BY n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname <> '_restage'"
}
D_ref=$(digests "${PREFIX}_refresh")
D_res=$(digests "${PREFIX}_restored")
if [ "$D_ref" = "$D_res" ]; then SAME=yes; else
    SAME=NO
    diff <(tr , '\n' <<< "$D_ref") <(tr , '\n' <<< "$D_res") >&2 || true
fi

read -r T_ref M_ref <<< "$(stats refresh)"
read -r T_dump M_dump <<< "$(stats dump)"
read -r T_rest M_rest <<< "$(stats restore)"
read -r T_both M_both <<< "$(stats both)"
read -r T_pgd M_pgd <<< "$(stats pgdump)"
read -r T_pgb M_pgb <<< "$(stats pgboth)"
A=$(cat "$WORK/size.archive")
P=$(cat "$WORK/size.pgdump")
echo
printf '%-46s %8s %8s\n' "scale $SCALE ($SIZE, $ROWS rows), jobs $JOBS" "best" "median"
printf '%-46s %7.2fs %7.2fs\n' "restage refresh (demo rules)" "$T_ref" "$M_ref"
printf '%-46s %7.2fs %7.2fs\n' "restage dump (demo rules)" "$T_dump" "$M_dump"
printf '%-46s %7.2fs %7.2fs\n' "restage restore" "$T_rest" "$M_rest"
printf '%-46s %7.2fs %7.2fs\n' "restage dump + restore" "$T_both" "$M_both"
printf '%-46s %7.2fs %7.2fs\n' "pg_dump -Fd -j$JOBS (no anonymization)" "$T_pgd" "$M_pgd"
printf '%-46s %7.2fs %7.2fs\n' "pg_dump -Fd -j$JOBS + pg_restore -j$JOBS" "$T_pgb" "$M_pgb"
echo
printf 'ratio dump + restore / refresh:        %.2f\n' "$(echo "$T_both / $T_ref" | bc -l)"
printf 'ratio dump + restore / pg_dump + pg_restore: %.2f\n' "$(echo "$T_both / $T_pgb" | bc -l)"
printf 'archive size: restage %s bytes (%.1f MiB), pg_dump -Fd %s bytes (%.1f MiB), ratio %.2f\n' \
    "$A" "$(echo "$A / 1048576" | bc -l)" "$P" "$(echo "$P / 1048576" | bc -l)" "$(echo "$A / $P" | bc -l)"
echo "restored database has the refreshed one's rows (exact counts and md5 of every table): $SAME"
