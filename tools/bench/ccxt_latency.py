#!/usr/bin/env python3
"""ccxt's `create_order` + `fetch_order` against genesis-exchange, timed per pair: the figure
genesis-bench's line → order_filled is compared with (a placement, then its verification query).

The server is started as genesis-bench starts it (`--seed 42`, order and weight limits out of
the way) on a free loopback port; market orders alternate buy and sell of the same quantity, one
pair every 1/RATE s on a schedule (a late pair goes at once), as genesis-bench paces its lines.
Times are the script's own (`perf_counter_ns` before `create_order`, after `fetch_order`).

    target/conformance-venv/bin/python tools/bench/ccxt_latency.py \
        --server target/release/genesis-exchange --orders 1000 --rate 500

The venv is the conformance step's (tools/exchange/conformance/run.sh builds it, pinned ccxt).
Prints one line: `ccxt <version> create_order + fetch_order: N pairs at R/s, p50 X µs, ...`;
`--json` prints the same as one JSON object.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import ccxt

API_KEY = "bench-key"
API_SECRET = "bench-secret"


def start_server(binary):
    proc = subprocess.Popen(
        [binary, "--port", "0", "--seed", "42", "--order-limit", "100000000", "--weight-limit", "100000000",
         "--api-key", API_KEY, "--api-secret", API_SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline().strip()
    marker = "listening on "
    if marker not in line:
        proc.kill()
        sys.exit(f"ccxt_latency: genesis-exchange did not start: {line!r}")
    return proc, line.split(marker, 1)[1]


def client(url):
    ex = ccxt.binance({
        "apiKey": API_KEY,
        "secret": API_SECRET,
        "enableRateLimit": False,
        "timeout": 10000,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False},
    })
    ex.urls["api"]["public"] = f"{url}/api/v3"
    ex.urls["api"]["private"] = f"{url}/api/v3"
    return ex


def percentile(sorted_us, q):
    return sorted_us[min(len(sorted_us) - 1, int(q * len(sorted_us)))]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_server = os.path.join(here, "..", "..", "target", "release", "genesis-exchange")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=os.environ.get("GENESIS_EXCHANGE", default_server))
    p.add_argument("--orders", type=int, default=1000, help="create_order + fetch_order pairs")
    p.add_argument("--rate", type=float, default=500, help="pairs per second on a schedule; 0: back to back")
    p.add_argument("--symbol", default="BTC/USDT")
    p.add_argument("--amount", default="0.001")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    proc, url = start_server(args.server)
    try:
        ex = client(url)
        ex.load_markets()
        # Warm-up: the first requests open the connection and fill ccxt's caches.
        for side in ("buy", "sell"):
            order = ex.create_order(args.symbol, "market", side, float(args.amount))
            ex.fetch_order(order["id"], args.symbol)
        interval_ns = int(1e9 / args.rate) if args.rate > 0 else 0
        samples = []
        start = time.perf_counter_ns()
        for i in range(args.orders):
            due = start + i * interval_ns
            while time.perf_counter_ns() < due:
                time.sleep(max(0.0, (due - time.perf_counter_ns()) / 1e9 - 0.0002))
            side = "buy" if i % 2 == 0 else "sell"
            t0 = time.perf_counter_ns()
            order = ex.create_order(args.symbol, "market", side, float(args.amount))
            fetched = ex.fetch_order(order["id"], args.symbol)
            t1 = time.perf_counter_ns()
            if fetched["status"] != "closed":
                sys.exit(f"ccxt_latency: order {order['id']} is {fetched['status']}, not filled")
            samples.append((t1 - t0) // 1000)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    samples.sort()
    result = {
        "client": f"ccxt {ccxt.__version__}",
        "pairs": len(samples),
        "rate": args.rate,
        "p50_us": percentile(samples, 0.50),
        "p90_us": percentile(samples, 0.90),
        "p99_us": percentile(samples, 0.99),
        "max_us": samples[-1],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['client']} create_order + fetch_order: {result['pairs']} pairs at {args.rate:g}/s, "
              f"p50 {result['p50_us']} µs, p90 {result['p90_us']} µs, p99 {result['p99_us']} µs, "
              f"max {result['max_us']} µs")


if __name__ == "__main__":
    main()
