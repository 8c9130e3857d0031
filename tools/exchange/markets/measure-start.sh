#!/usr/bin/env bash
# The engine's start-up against genesis-exchange: milliseconds from launch to its `ready` line
# and its peak RSS, with the built-in 3 symbols or the symbols of an exchangeInfo document.
#
#   tools/exchange/markets/measure-start.sh [tools/exchange/markets/exchange-info-2000.json]
# Needs the release binaries (cargo build --release --workspace; BIN_DIR=dir for another target
# directory's) and GNU time (/usr/bin/time).
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
bin="${BIN_DIR:-$root/target/release}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
args=(--port 0 --api-key k --api-secret s)
if [ -n "${1:-}" ]; then args+=(--markets "$1"); fi
coproc SERVER { "$bin/genesis-exchange" "${args[@]}" 2>/dev/null; }
read -r line <&"${SERVER[0]}"
url="${line##* }"
start=$(date +%s%N)
BINANCE_API_KEY=k BINANCE_API_SECRET=s /usr/bin/time -f "peak_rss_kb=%M" -o "$work/time" \
    "$bin/genesis" --json --db "$work/engine.db" --exchange binance --base-url "$url" \
    --no-confirm </dev/null 2>"$work/stderr" |
    while IFS= read -r event; do
        case "$event" in *'"ready"'*) echo "ready_after_ms=$((($(date +%s%N) - start) / 1000000))" ;; esac
    done
cat "$work/time"
kill "$SERVER_PID"
