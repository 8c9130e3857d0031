#!/usr/bin/env bash
# genesis-bench over --transport rest and ws, and ccxt's create_order + fetch_order
# (tools/bench/ccxt_latency.py), alternated ROUNDS times on the same machine, each against its
# own fresh genesis-exchange started the same way, at the same pace. Prints one line per run
# and the p50 of every run, in µs:
#   rest/ws: line written → order_filled read, minus the pipe round trip; bare: a bare REST
#   client's placement + query measured inside the same genesis-bench run.
#
#   tools/bench/compare_transports.sh [ROUNDS] [ORDERS] [RATE]
#   BIN=target/release VENV=target/conformance-venv tools/bench/compare_transports.sh 3 1000 500
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${BIN:-$root/target/release}"
venv="${VENV:-$root/target/conformance-venv}"
rounds="${1:-3}"
orders="${2:-1000}"
rate="${3:-500}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for round in $(seq 1 "$rounds"); do
    for transport in rest ws; do
        "$bin/genesis-bench" --exchange binance --orders "$orders" --rate "$rate" --transport "$transport" \
            --out "$out/$transport" > /dev/null
        "$venv/bin/python" - "$out/$transport/report.json" "$transport" "$round" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
u = d["user_visible_us"]
print(f"round {sys.argv[3]} {sys.argv[2]:4}: line → order_filled − pipe p50 {u['minus_pipe']['p50']} µs, "
      f"p99 {u['minus_pipe']['p99']} µs; bare REST place+query p50 {d['baseline']['latency_us']['pair']['p50']} µs")
EOF
    done
    printf 'round %s ccxt: ' "$round"
    "$venv/bin/python" "$here/ccxt_latency.py" --server "$bin/genesis-exchange" --orders "$orders" --rate "$rate"
done
