"""Runs every conformance suite, each against its own fresh genesis-exchange, and prints one
summary line. Exit status 1 on any failure (or a suite that could not run).

    python conformance.py path/to/genesis-exchange
"""

import sys
import time
import traceback

import check_ccxt
import check_limits
import check_python_binance
from harness import Server

# (name, run, the server's extra flags)
SUITES = [
    ("ccxt", check_ccxt.run, ()),
    ("python-binance", check_python_binance.run, ()),
    ("limits", check_limits.run, check_limits.FLAGS),
]


def main():
    binary = sys.argv[1]
    only = sys.argv[2:]
    passed, failed = 0, []
    start = time.monotonic()
    for name, run, flags in SUITES:
        if only and name not in only:
            continue
        server = Server(binary, flags)
        try:
            tally = run(server.url)
            passed += tally.passed
            failed += [f"{name}: {f}" for f in tally.failed]
        except Exception:  # noqa: BLE001 - a suite that crashed is one failure, reported
            traceback.print_exc()
            failed.append(f"{name}: suite crashed")
        finally:
            server.stop()
    for f in failed:
        print(f"failed: {f}")
    print(f"conformance: {passed} passed, {len(failed)} failed ({time.monotonic() - start:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
