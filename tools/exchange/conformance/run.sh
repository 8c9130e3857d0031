#!/usr/bin/env bash
# Third-party clients against genesis-exchange: pinned ccxt and python-binance from PyPI, in a
# virtual environment (kept in target/ and rebuilt when requirements.txt changes), run the
# conformance suites against target/release/genesis-exchange. Exit status non-zero on any
# failure; the last line is `conformance: N passed, M failed (T s)`.
#
#   tools/exchange/conformance/run.sh [ccxt|python-binance|limits ...]
#   GENESIS_EXCHANGE=path/to/binary CONFORMANCE_VENV=dir tools/exchange/conformance/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
binary="${GENESIS_EXCHANGE:-$root/target/release/genesis-exchange}"
venv="${CONFORMANCE_VENV:-$root/target/conformance-venv}"

if [ ! -x "$binary" ]; then
    echo "conformance: no server binary at $binary (cargo build --release -p genesis-exchange)" >&2
    exit 2
fi
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "conformance: creating $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
    echo "$want" > "$venv/.requirements.sha256"
fi
"$venv/bin/python" -c 'import ccxt, binance; print("conformance: ccxt", ccxt.__version__, "python-binance", binance.__version__)'
exec "$venv/bin/python" "$here/conformance.py" "$binary" "$@"
