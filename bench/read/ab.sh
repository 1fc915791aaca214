#!/usr/bin/env bash
# A/B of two Reelgraph binaries on the read benchmark's data: which serves the same requests
# with less CPU. Reelgraph only (PostGraphile is not involved), one server at a time.
#
#   bench/read/ab.sh --db URL --bodies DIR [--pairs 4] [--duration 8] [--warmup 2]
#                    [--connections 32] [--queries video,creators,highlights,creator_page]
#                    BIN_A BIN_B
#
# --db is a database that `run.sh --keep` left (migrated and seeded; without `?sslmode`);
# --bodies a results folder
# of that run (bench/read/results/<time>), whose <query>.reelgraph.jsonl request bodies are
# replayed. For each query it runs --pairs pairs, A first in odd pairs and B first in even
# ones, each run on a freshly started server: --warmup s of load, then --duration s timed with
# wrk (post.lua). It prints, per run, requests/s and the server process's CPU time per
# request (utime + stime from /proc/<pid>/stat over the timed part), then per query the range
# of each binary and in how many pairs B used less CPU than A. CPU per request is the steadier
# figure on a shared machine: it does not depend on how much CPU the rest of the machine
# leaves the server. Needs wrk and curl.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pairs=4
duration=8
warmup=2
connections=32
queries="video,creators,highlights,creator_page"
db=""
bodies=""

die() {
  echo "ab.sh: $*" >&2
  exit 1
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --db) db="$2"; shift 2 ;;
    --bodies) bodies="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --queries) queries="$2"; shift 2 ;;
    -h | --help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[[ $# -eq 2 ]] || die "give two binaries, A and B (see --help)"
bin_a="$1"
bin_b="$2"
[[ -x $bin_a && -x $bin_b ]] || die "both binaries must be executable"
[[ -n $db ]] || die "--db is required (a database run.sh --keep left)"
[[ -d $bodies ]] || die "--bodies must be a results folder of run.sh"
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
command -v python3 >/dev/null || die "python3 is missing (apt-get install python3)"

ticks=$(getconf CLK_TCK)
port=18480
work="$(mktemp -d -t rg-ab.XXXXXX)"
server=""
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cpu_ticks() { # pid → utime + stime
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# One run: starts `bin`, loads it, times it; prints "req/s cpu_ms_per_request".
run_one() {
  local bin="$1" body_file="$2"
  # Plain TCP, as run.sh (sqlx's default sslmode=prefer would add TLS to every statement).
  # The read cache off: this compares what a request costs to run, not cache hits (a build
  # without the setting ignores it).
  REELGRAPH_READ_CACHE_SECS=0 JWT_SECRET="ab-$(date +%s)-bench-secret-of-32-bytes-or-more" \
    DATABASE_URL="$db?sslmode=disable" REELGRAPH_STORAGE_DIR="$work/objects" \
    REELGRAPH_LISTEN="127.0.0.1:$port" REELGRAPH_NO_WORKER=true RUST_LOG=warn \
    REELGRAPH_DATA_DIR="$work/data" "$bin" serve >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
    kill -0 "$server" 2>/dev/null || die "$bin exited at start-up: $(cat "$work/server.log")"
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" ||
    die "$bin did not answer /healthz within 10 s: $(tail -20 "$work/server.log")"
  BODIES="$body_file" wrk -t1 -c"$connections" -d"${warmup}s" -s "$here/post.lua" \
    "http://127.0.0.1:$port/graphql" >/dev/null
  local before after out
  before=$(cpu_ticks "$server")
  out=$(BODIES="$body_file" wrk -t1 -c"$connections" -d"${duration}s" -s "$here/post.lua" \
    "http://127.0.0.1:$port/graphql")
  after=$(cpu_ticks "$server")
  kill "$server" && wait "$server" 2>/dev/null || true
  server=""
  local result
  result=$(grep '^WRK_RESULT ' <<<"$out" | sed 's/^WRK_RESULT //')
  [[ -n $result ]] || die "wrk printed no result: $out"
  python3 - "$result" "$before" "$after" "$ticks" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
before, after, ticks = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if r["bad"] or any(r["errors"].values()):
    sys.exit(f"bad answers or socket errors: {r}")
rps = r["requests"] / (r["duration_us"] / 1e6)
cpu_ms = (after - before) / ticks * 1000 / r["requests"]
print(f"{rps:.0f} {cpu_ms:.4f}")
PY
}

IFS=',' read -r -a names <<<"$queries"
for name in "${names[@]}"; do
  body_file="$bodies/$name.reelgraph.jsonl"
  [[ -f $body_file ]] || die "no $body_file"
  a_results=()
  b_results=()
  b_less=0
  for pair in $(seq 1 "$pairs"); do
    if ((pair % 2 == 1)); then
      a=$(run_one "$bin_a" "$body_file")
      b=$(run_one "$bin_b" "$body_file")
    else
      b=$(run_one "$bin_b" "$body_file")
      a=$(run_one "$bin_a" "$body_file")
    fi
    a_results+=("$a")
    b_results+=("$b")
    read -r _ a_cpu <<<"$a"
    read -r _ b_cpu <<<"$b"
    if python3 -c "import sys; sys.exit(0 if $b_cpu < $a_cpu else 1)"; then
      b_less=$((b_less + 1))
    fi
    echo "$name pair $pair: A ${a% *} req/s ${a#* } ms/req | B ${b% *} req/s ${b#* } ms/req"
  done
  python3 - "$name" "$b_less" "$pairs" "${a_results[*]}" "${b_results[*]}" <<'PY'
import sys
name, b_less, pairs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def parse(s):
    v = s.split()
    return [(float(v[i]), float(v[i + 1])) for i in range(0, len(v), 2)]
a, b = parse(sys.argv[4]), parse(sys.argv[5])
def rng(xs, i, f):
    return f"{f.format(min(x[i] for x in xs))}–{f.format(max(x[i] for x in xs))}"
print(f"== {name}: A {rng(a, 0, '{:.0f}')} req/s, {rng(a, 1, '{:.3f}')} ms/req | "
      f"B {rng(b, 0, '{:.0f}')} req/s, {rng(b, 1, '{:.3f}')} ms/req | "
      f"B used less CPU in {b_less} of {pairs} pairs")
PY
done
