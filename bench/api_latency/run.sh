#!/usr/bin/env bash
# API read latency under load: `rota serve` over a store of many finished runs, loaded by
# wrk on loopback. See README.md in this directory.
#
#   bench/api_latency/run.sh                       # seeds 1,000,000 runs (about 10 min)
#   RUNS=20000 bench/api_latency/run.sh            # a quick look
#   REUSE=1 BENCH_HOME=/tmp/rota-api-latency bench/api_latency/run.sh   # keep the seeded store
#
# Environment: RUNS (1000000), STEPS (10), BENCH_HOME (/tmp/rota-api-latency), REUSE (0: reseed),
# DURATION (20s), THREADS (2), CONNECTIONS (8), FOLLOW (pages of next_cursor to follow, 200),
# ROTA_BIN and SEED_BIN (prebuilt binaries; then nothing is built).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/bench/api_latency"
RUNS=${RUNS:-1000000}
STEPS=${STEPS:-10}
BENCH_HOME=${BENCH_HOME:-/tmp/rota-api-latency}
REUSE=${REUSE:-0}
DURATION=${DURATION:-20s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-8}
FOLLOW=${FOLLOW:-200}
HOME_DIR="$BENCH_HOME/home"

for tool in wrk curl jq sqlite3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y $tool)" >&2; exit 2; }
done

cd "$ROOT"
if [[ -z "${ROTA_BIN:-}" ]]; then
  cargo build --release -p rota-cli
  cargo build --release -p rota-store --example seed_runs
fi
ROTA=${ROTA_BIN:-$ROOT/target/release/rota}
SEED=${SEED_BIN:-$ROOT/target/release/examples/seed_runs}

if [[ "$REUSE" != 1 || ! -f "$HOME_DIR/rota.db" ]]; then
  rm -rf "$HOME_DIR"
  mkdir -p "$BENCH_HOME"
  echo "== seeding $RUNS runs of $STEPS steps into $HOME_DIR"
  start=$(date +%s)
  "$SEED" --home "$HOME_DIR" --runs "$RUNS" --steps "$STEPS" \
    2> >(awk 'NR % 50 == 0' >&2)
  echo "seeding took $(( $(date +%s) - start )) s"
fi
echo "runs in store: $(sqlite3 "file:$HOME_DIR/rota.db?mode=ro" 'SELECT COUNT(*) FROM runs')"
du -sh "$HOME_DIR"

rm -f "$HOME_DIR/serve.addr"
"$ROTA" --home "$HOME_DIR" serve --listen 127.0.0.1:0 >"$BENCH_HOME/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  [[ -s "$HOME_DIR/serve.addr" ]] && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$BENCH_HOME/serve.log" >&2; exit 1; }
  sleep 0.1
done
ADDR=$(tr -d '[:space:]' <"$HOME_DIR/serve.addr")
case "$ADDR" in
  127.0.0.1:*) ;;
  *) echo "server address $ADDR is not on loopback" >&2; exit 1 ;;
esac
BASE="http://$ADDR"
TOKEN=$(tr -d '[:space:]' <"$HOME_DIR/admin.token")
AUTH="Authorization: Bearer $TOKEN"
echo "== server at $BASE (token auth), pid $SERVER"

get() { curl -sf -H "$AUTH" "$1"; }

# A deep cursor found the way a client finds it: following next_cursor page after page.
cursor=""
for _ in $(seq 1 "$FOLLOW"); do
  cursor=$(get "$BASE/api/v1/runs?limit=50${cursor:+&cursor=$cursor}" | jq -r .next_cursor)
done
FOLLOWED="$BASE/api/v1/runs?limit=50&cursor=$cursor"
# Deeper ones built from the cursor format (`<created_at µs>.<run id>`) at the middle and
# near the end of the listing.
cursor_at() {
  sqlite3 "file:$HOME_DIR/rota.db?mode=ro" \
    "SELECT created_at || '.' || id FROM runs ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET $1"
}
TOTAL=$(sqlite3 "file:$HOME_DIR/rota.db?mode=ro" 'SELECT COUNT(*) FROM runs')
MIDDLE="$BASE/api/v1/runs?limit=50&cursor=$(cursor_at $((TOTAL / 2)))"
LAST="$BASE/api/v1/runs?limit=50&cursor=$(cursor_at $((TOTAL - 100)))"
FIRST="$BASE/api/v1/runs?limit=50"
NAMESPACE="$BASE/api/v1/runs?limit=50&namespace=default&cursor=$(cursor_at $((TOTAL / 2)))"

# Run ids for the by-id test, spread over the whole table.
IDS_FILE="$BENCH_HOME/ids.txt"
sqlite3 "file:$HOME_DIR/rota.db?mode=ro" \
  "SELECT id FROM runs WHERE rowid % $(( TOTAL / 1000 > 0 ? TOTAL / 1000 : 1 )) = 0" >"$IDS_FILE"
ONE="$BASE/api/v1/runs/$(head -n 1 "$IDS_FILE")"

for url in "$FIRST" "$FOLLOWED" "$MIDDLE" "$LAST" "$NAMESPACE"; do
  n=$(get "$url" | jq '.items | length')
  steps=$(get "$url" | jq '.items[0].steps | length')
  echo "check: $n runs of $steps steps from ${url#"$BASE"}"
  [[ "$n" == 50 ]] || { echo "expected 50 runs" >&2; exit 1; }
done
[[ $(get "$ONE" | jq '.steps | length') == "$STEPS" ]] || { echo "bad run" >&2; exit 1; }

WRK=(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
bench() {
  local name=$1
  shift
  echo
  echo "== $name: ${WRK[*]} ${*//$TOKEN/\$TOKEN}"
  "${WRK[@]}" "$@" | tee "$BENCH_HOME/wrk-$name.txt" |
    grep -E 'Latency|50%|90%|99%|Requests/sec|requests in|Non-2xx|Socket errors'
}
bench first-page -H "$AUTH" "$FIRST"
bench followed-cursor -H "$AUTH" "$FOLLOWED"
bench middle-cursor -H "$AUTH" "$MIDDLE"
bench last-cursor -H "$AUTH" "$LAST"
bench namespace-middle-cursor -H "$AUTH" "$NAMESPACE"
export IDS_FILE TOKEN
bench run-by-id -s "$HERE/byid.lua" "$BASE"

# One client at a time: the time one request takes, without queueing behind the others.
WRK=(wrk -t1 -c1 -d"$DURATION" --latency)
bench first-page-1-client -H "$AUTH" "$FIRST"
bench middle-cursor-1-client -H "$AUTH" "$MIDDLE"
bench run-by-id-1-client -s "$HERE/byid.lua" "$BASE"

echo
echo "server peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$SERVER/status")"
