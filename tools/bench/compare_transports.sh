#!/usr/bin/env bash
# genesis-bench over --transport rest, ws (HMAC-signed requests) and ws-ed25519 (a session
# logged on with an Ed25519 key), and ccxt's create_order + fetch_order
# (tools/bench/ccxt_latency.py), alternated ROUNDS times on the same machine, each against its
# own fresh genesis-exchange started the same way, at the same pace. Prints one line per run,
# p50 and p99 in µs:
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

# A throwaway Ed25519 key pair for the ws-ed25519 runs (the server is given the public key).
openssl genpkey -algorithm ed25519 -out "$out/ed25519.pem" 2>/dev/null
chmod 600 "$out/ed25519.pem"
openssl pkey -in "$out/ed25519.pem" -pubout -out "$out/ed25519.pub.pem" 2>/dev/null

for round in $(seq 1 "$rounds"); do
    for run in rest ws ws-ed25519; do
        transport="${run%-ed25519}"
        if [ "$run" = ws-ed25519 ]; then
            env=(BINANCE_ED25519_KEY_FILE="$out/ed25519.pem" BINANCE_ED25519_API_KEY=bench-ed25519
                 GENESIS_EXCHANGE_ED25519_API_KEY=bench-ed25519
                 GENESIS_EXCHANGE_ED25519_PUBLIC_KEY_FILE="$out/ed25519.pub.pem")
        else
            env=(GENESIS_BENCH_RUN="$run")   # a harmless variable: env needs at least one
        fi
        env "${env[@]}" "$bin/genesis-bench" --exchange binance --orders "$orders" --rate "$rate" \
            --transport "$transport" --out "$out/$run" > /dev/null
        "$venv/bin/python" - "$out/$run/report.json" "$run" "$round" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
u = d["user_visible_us"]
print(f"round {sys.argv[3]} {sys.argv[2]:10}: line → order_filled − pipe p50 {u['minus_pipe']['p50']} µs, "
      f"p99 {u['minus_pipe']['p99']} µs; bare REST place+query p50 {d['baseline']['latency_us']['pair']['p50']} µs")
PY
    done
    printf 'round %s ccxt      : ' "$round"
    "$venv/bin/python" "$here/ccxt_latency.py" --server "$bin/genesis-exchange" --orders "$orders" --rate "$rate"
done
