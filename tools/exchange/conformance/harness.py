"""Shared by the conformance suites: the server under test, the pass/fail tally, and a raw
signed request for the cases a client library will not send (missing key, duplicated
parameters)."""

import hashlib
import hmac
import json
import subprocess
import time
import traceback
import urllib.error
import urllib.request

API_KEY = "conformance-key"
API_SECRET = "conformance-secret"


class Server:
    """`genesis-exchange --port 0` with a known key pair; the first stdout line is the URL."""

    def __init__(self, binary, flags=()):
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--api-key", API_KEY, "--api-secret", API_SECRET, *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        marker = "listening on "
        if marker not in line:
            self.stop()
            raise RuntimeError(f"genesis-exchange did not start: {line!r}")
        self.url = line.split(marker, 1)[1]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Tally:
    """Runs named checks; a check fails on any exception (an `assert` included)."""

    def __init__(self, suite):
        self.suite = suite
        self.passed = 0
        self.failed = []

    def check(self, name, fn):
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the suite
            self.failed.append(name)
            print(f"FAIL {self.suite}: {name}: {type(e).__name__}: {e}", flush=True)
            if not isinstance(e, AssertionError):
                traceback.print_exc(limit=3)
            return None
        self.passed += 1
        print(f"ok   {self.suite}: {name}", flush=True)
        return result

    def raises(self, name, fn, expect):
        """`fn` must raise; `expect(exception)` must hold (it may assert)."""

        def run():
            try:
                value = fn()
            except Exception as e:  # noqa: BLE001
                ok = expect(e)
                assert ok is None or ok, f"unexpected error {type(e).__name__}: {e}"
                return
            raise AssertionError(f"no error; got {value!r}")

        self.check(name, run)


def signed(url, method, path, params, api_key=API_KEY, sign=True, raw_query=None):
    """A request signed as Binance documents (HMAC-SHA256 over the query string). Returns
    (HTTP status, JSON body). `raw_query` is sent as it is (e.g. a duplicated name)."""
    query = raw_query
    if query is None:
        params = dict(params)
        params.setdefault("timestamp", int(time.time() * 1000))
        query = "&".join(f"{k}={v}" for k, v in params.items())
    if sign:
        sig = hmac.new(API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
        query = f"{query}&signature={sig}"
    req = urllib.request.Request(f"{url}{path}?{query}", method=method)
    if api_key is not None:
        req.add_header("X-MBX-APIKEY", api_key)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def public(url, path, query=""):
    try:
        with urllib.request.urlopen(f"{url}{path}?{query}", timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)
