#!/usr/bin/env bash
# Read-path benchmark: Reelgraph against PostGraphile 5, side by side, on one generated dataset.
#
#   bench/read/run.sh [--duration 10] [--runs 2] [--warmup 5] [--connections 32] [--threads 1]
#                     [--creators 200] [--videos-per-creator 100] [--moments-per-video 5]
#                     [--segments-per-video 12] [--viewers 5000] [--only video,creators]
#                     [--max-load 1.5] [--sql extra.sql] [--churn 0] [--keep]
#
# It creates a fresh PostgreSQL database, migrates it with the production build of Reelgraph,
# generates the dataset in SQL (seed.sql), creates a read-only role for PostGraphile, starts
# the servers on free ports — Reelgraph twice, with its read cache (the default) and without
# it (REELGRAPH_READ_CACHE_SECS=0) — checks that all give the same answers to every query, then
# drives each with wrk at a fixed concurrency, alternating runs (bench.mjs). --churn N updates N
# videos a second (psql, a no-op UPDATE that fires the change triggers) during the runs, so
# that the cache keeps being emptied, as content changing under a read load would empty it. Results go to
# bench/read/results/<time>/ (summary.md, results.json, server logs). The servers, the
# database and the role are removed on exit, also on failure or Ctrl-C (--keep keeps the
# database). --max-load waits (up to 15 min) for the 1-minute load average to drop below it
# before timing; --sql runs an extra SQL file on the database after the dataset is loaded (to
# try an index, say). Exit status: 0, or 1 on any failure (different answers included), or 3
# when a query could not be measured because Reelgraph cannot answer it.
#
# Needs: a PostgreSQL server that trusts local connections (PG_BASE_URL, default
# postgres://postgres@127.0.0.1:5432), psql, cargo, npm (Node 22 and PostGraphile come from
# the npm registry into bench/read/node_modules), and wrk (installed with apt-get when missing
# and running as root). REELGRAPH_BIN=path/to/reelgraph skips the build and uses that binary.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

duration=10
runs=2
warmup=5
connections=32
threads=1
creators=200
videos_per_creator=100
moments_per_video=5
segments_per_video=12
viewers=5000
only=""
extra_sql=""
max_load=""
keep=false
churn=0
pg_base="${PG_BASE_URL:-postgres://postgres@127.0.0.1:5432}"

die() {
  echo "run.sh: $*" >&2
  exit 1
}
say() { echo "==> $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --creators) creators="$2"; shift 2 ;;
    --videos-per-creator) videos_per_creator="$2"; shift 2 ;;
    --moments-per-video) moments_per_video="$2"; shift 2 ;;
    --segments-per-video) segments_per_video="$2"; shift 2 ;;
    --viewers) viewers="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --max-load) max_load="$2"; shift 2 ;;
    --sql) extra_sql="$2"; shift 2 ;;
    --churn) churn="$2"; shift 2 ;;
    --keep) keep=true; shift ;;
    -h | --help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[[ $churn =~ ^[0-9]+$ ]] || die "--churn takes a whole number of updates a second (got $churn)"

# ---- tools -------------------------------------------------------------------------------------
command -v psql >/dev/null || die "psql is missing (apt-get install postgresql-client)"
command -v cargo >/dev/null || die "cargo is missing (install Rust 1.95 with rustup)"
command -v npm >/dev/null || die "npm is missing (apt-get install npm); it installs Node 22 and PostGraphile"
command -v curl >/dev/null || die "curl is missing (apt-get install curl); it waits for both servers to answer"
if ! command -v wrk >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing wrk (apt-get)"
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  fi
  command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
fi
psql -X -w -q "$pg_base/postgres" -c 'SELECT 1' >/dev/null 2>&1 ||
  die "cannot reach PostgreSQL at $pg_base (start it, or set PG_BASE_URL)"

if [[ ! -x "$here/node_modules/.bin/node" || ! -d "$here/node_modules/postgraphile" ||
  "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  say "installing Node 22, PostGraphile 5 and pg into bench/read/node_modules (npm ci)"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in $here"
fi
node22="$here/node_modules/.bin/node"
"$node22" -e 'if (+process.versions.node.split(".")[0] < 22) process.exit(1)' ||
  die "$node22 is not Node 22 or newer (PostGraphile 5 needs it)"

if [[ -n ${REELGRAPH_BIN:-} ]]; then
  reelgraph="$REELGRAPH_BIN"
  [[ -x $reelgraph ]] || die "REELGRAPH_BIN=$reelgraph is not an executable"
  say "using the Reelgraph binary $reelgraph (not building)"
else
  say "building Reelgraph (production profile: release with LTO; the first build takes 10+ minutes)"
  (cd "$root" && cargo build --profile production --quiet --bin reelgraph) ||
    die "cargo build --profile production failed"
  reelgraph="$root/target/production/reelgraph"
fi

# ---- clean-up ------------------------------------------------------------------------------------
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
db="rg_bench_read_$(date -u +%s)_$$"
role="${db}_ro"
work="$(mktemp -d -t rg-bench-read.XXXXXX)"
results="$here/results/$stamp"
mkdir -p "$results"
rg_pid=""
rg2_pid=""
pgl_pid=""
churn_pid=""

cleanup() {
  local status=$?
  set +e
  # The churn loop's pipeline (its loop and psql) first, then the loop's shell.
  [[ -n $churn_pid ]] && pkill -P "$churn_pid" 2>/dev/null
  for pid in $churn_pid $rg_pid $rg2_pid $pgl_pid; do
    kill "$pid" 2>/dev/null
  done
  for pid in $churn_pid $rg_pid $rg2_pid $pgl_pid; do
    wait "$pid" 2>/dev/null
  done
  [[ -f "$work/reelgraph.log" ]] && cp "$work/reelgraph.log" "$results/"
  [[ -f "$work/reelgraph-nocache.log" ]] && cp "$work/reelgraph-nocache.log" "$results/"
  [[ -f "$work/postgraphile.log" ]] && cp "$work/postgraphile.log" "$results/"
  if [[ $keep == true ]]; then
    say "kept database $db (drop it with: psql $pg_base/postgres -c 'DROP DATABASE $db WITH (FORCE)' -c 'DROP ROLE $role')"
  else
    psql -X -q "$pg_base/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    psql -X -q "$pg_base/postgres" -c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- database ------------------------------------------------------------------------------------
say "creating database $db"
psql -X -q "$pg_base/postgres" -c "CREATE DATABASE $db" >/dev/null
db_url="$pg_base/$db"

jwt_secret="bench-read-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export JWT_SECRET="$jwt_secret" RUST_LOG=warn REELGRAPH_DATA_DIR="$work/data"
DATABASE_URL="$db_url" "$reelgraph" migrate >"$work/migrate.log" 2>&1 ||
  { cat "$work/migrate.log" >&2; die "migration failed"; }

say "generating the dataset ($creators creators × $videos_per_creator videos, $moments_per_video key moments and highlights per video)"
seed_start=$SECONDS
psql -X -q -v ON_ERROR_STOP=1 \
  -v creators="$creators" -v videos_per_creator="$videos_per_creator" \
  -v moments_per_video="$moments_per_video" -v segments_per_video="$segments_per_video" \
  -v viewers="$viewers" -f "$here/seed.sql" "$db_url" >"$results/dataset.txt" ||
  die "seeding failed (see $results/dataset.txt)"
say "dataset loaded in $((SECONDS - seed_start)) s"
# seed.sql ends with VACUUM so counts can be index-only scans, as on a settled production
# table; but VACUUM marks a page all-visible only when no open snapshot predates its rows, and
# an autovacuum worker analysing the fresh tables can hold one (seen: highlights and
# creator_follows left with no all-visible page, their counts reading the heap). Repeat until
# every table's visibility map is set.
seeded_tables="'users','creators','creator_members','creator_follows','videos','video_consents','transcript_segments','key_moments','highlights'"
for attempt in $(seq 1 10); do
  behind=$(psql -X -qAt "$db_url" -c "SELECT string_agg(relname, ' ') FROM pg_class
    WHERE relname IN ($seeded_tables) AND relnamespace = 'public'::regnamespace
      AND relallvisible < relpages")
  [[ -z $behind ]] && break
  [[ $attempt -eq 10 ]] && { say "warning: not all-visible after 10 VACUUMs: $behind"; break; }
  sleep 2
  for table in $behind; do psql -X -q "$db_url" -c "VACUUM (ANALYZE) \"$table\"" >/dev/null; done
done
if [[ -n $extra_sql ]]; then
  [[ -f $extra_sql ]] || die "--sql $extra_sql: no such file"
  say "running $extra_sql"
  psql -X -q -v ON_ERROR_STOP=1 -f "$extra_sql" "$db_url" || die "$extra_sql failed"
  cp "$extra_sql" "$results/"
fi

# PostGraphile reads through a role that can only read.
psql -X -q -v ON_ERROR_STOP=1 "$db_url" >/dev/null <<SQL
CREATE ROLE $role LOGIN;
ALTER ROLE $role SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE $db TO $role;
GRANT USAGE ON SCHEMA public TO $role;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO $role;
SQL

# ---- servers -------------------------------------------------------------------------------------
free_port() {
  "$node22" -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
wait_for() { # name url body pid
  local name="$1" url="$2" body="$3" pid="$4"
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (log: $results/$name.log)"
    if curl -sf -o /dev/null -H 'content-type: application/json' -d "$body" "$url"; then
      return 0
    fi
    sleep 0.5
  done
  die "$name did not answer on $url within 60 s (log: $results/$name.log)"
}

rg_port="$(free_port)"
say "starting Reelgraph on 127.0.0.1:$rg_port"
# Both servers talk to PostgreSQL the same way: plain TCP on loopback. (sqlx's default,
# sslmode=prefer, would encrypt Reelgraph's connections with TLS when the server offers it,
# while node-postgres does not; that alone costs Reelgraph about a third of its CPU here.)
DATABASE_URL="$db_url?sslmode=disable" REELGRAPH_LISTEN="127.0.0.1:$rg_port" \
  REELGRAPH_STORAGE_DIR="$work/objects" REELGRAPH_NO_WORKER=true \
  "$reelgraph" serve >"$work/reelgraph.log" 2>&1 &
rg_pid=$!
wait_for reelgraph "http://127.0.0.1:$rg_port/graphql" '{"query":"{ __typename }"}' "$rg_pid"
rg2_port="$(free_port)"
say "starting Reelgraph without its read cache on 127.0.0.1:$rg2_port"
DATABASE_URL="$db_url?sslmode=disable" REELGRAPH_LISTEN="127.0.0.1:$rg2_port" \
  REELGRAPH_STORAGE_DIR="$work/objects" REELGRAPH_NO_WORKER=true REELGRAPH_READ_CACHE_SECS=0 \
  "$reelgraph" serve >"$work/reelgraph-nocache.log" 2>&1 &
rg2_pid=$!
wait_for reelgraph-nocache "http://127.0.0.1:$rg2_port/graphql" '{"query":"{ __typename }"}' "$rg2_pid"

# PostGraphile connects as the read-only role (trust authentication: no password).
ro_url="$(sed -E "s#^(postgres(ql)?://)([^@/]*@)?#\1$role@#" <<<"$pg_base")/$db?sslmode=disable"
pgl_port="$(free_port)"
say "starting PostGraphile 5 (amber preset) on 127.0.0.1:$pgl_port as $role"
(cd "$here" && exec env GRAPHILE_ENV=production "$node22" node_modules/.bin/postgraphile \
  --preset postgraphile/presets/amber -c "$ro_url" -s public \
  -n 127.0.0.1 --port "$pgl_port" >"$work/postgraphile.log" 2>&1) &
pgl_pid=$!
wait_for postgraphile "http://127.0.0.1:$pgl_port/graphql" '{"query":"{ __typename }"}' "$pgl_pid"

# ---- quiet machine? ----------------------------------------------------------------------------
load_now() { cut -d' ' -f1 /proc/loadavg; }
if [[ -n $max_load ]]; then
  for _ in $(seq 1 90); do
    awk -v l="$(load_now)" -v m="$max_load" 'BEGIN { exit !(l <= m) }' && break
    say "load average $(load_now) is above $max_load; waiting for a quiet machine"
    sleep 10
  done
fi
say "load average before timing: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "load average before timing: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc)" >"$results/machine.txt"

# ---- measure ---------------------------------------------------------------------------------------
if [[ $churn != 0 ]]; then
  say "updating $churn videos a second during the runs"
  pause="$(awk -v n="$churn" 'BEGIN { printf "%.4f", 1 / n }')"
  # One psql session, fed one statement at a time (a psql per update would cost more CPU
  # than the updates).
  (
    while true; do
      echo "UPDATE videos SET updated_at = updated_at
        WHERE id = (SELECT id FROM videos OFFSET floor(random() * 1000) LIMIT 1);"
      sleep "$pause"
    done | psql -X -q -v ON_ERROR_STOP=1 "$db_url" >/dev/null 2>"$results/churn.log"
  ) &
  churn_pid=$!
fi
# How many updates the videos table took during the runs (the churn's, with --churn).
updated() {
  psql -X -qAt "$db_url" -c "SELECT pg_stat_clear_snapshot(); SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'videos'" | tail -1
}
updates_before="$(updated)"
measure_start=$SECONDS
status=0
RG_URL="http://127.0.0.1:$rg_port/graphql" RG_NOCACHE_URL="http://127.0.0.1:$rg2_port/graphql" \
  RG_NOCACHE_PID="$rg2_pid" CHURN="$churn" PG_URL="http://127.0.0.1:$pgl_port/graphql" \
  DB_URL="$db_url" DB_NAME="$db" RG_PID="$rg_pid" PG_PID="$pgl_pid" RESULTS_DIR="$results" \
  DURATION="$duration" WARMUP="$warmup" RUNS="$runs" CONNECTIONS="$connections" \
  THREADS="$threads" ONLY="$only" \
  "$node22" "$here/bench.mjs" || status=$?
echo "load average after timing: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$results/machine.txt"
if [[ $churn != 0 ]]; then
  sleep 1 # statistics are reported by the backends within a second
  churned="$(( $(updated) - updates_before ))"
  say "churn: $churned video updates in $((SECONDS - measure_start)) s (asked: $churn a second)"
  echo "churn: $churned video updates in $((SECONDS - measure_start)) s (asked: $churn a second)" >>"$results/machine.txt"
fi
say "results in ${results#"$root"/}"
exit "$status"
