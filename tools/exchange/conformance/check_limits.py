"""Binance's rate limits as both clients meet them, on a server whose limits are lowered by
its flags (rest-api.md "LIMITS"): the daily ORDERS limit (429 -1015), RAW_REQUESTS (429
-1003), and the 418 ban that ignoring those 429s brings, each raised as the client's own
exception."""

import ccxt
from binance.exceptions import BinanceAPIException

import check_ccxt
import check_python_binance
from harness import Tally, public

ORDERS_PER_DAY = 3
RAW_REQUESTS = 40
FLAGS = ("--daily-order-limit", str(ORDERS_PER_DAY), "--raw-request-limit", str(RAW_REQUESTS))


def run(url):
    t = Tally("limits")
    c = check_python_binance.client(url)
    ex = check_ccxt.client(url)

    def daily_orders_python_binance():
        # Unfilled orders count (an order that fills leaves the count): stops far below.
        for _ in range(ORDERS_PER_DAY):
            c.create_order(symbol="ETHUSDT", side="SELL", type="STOP_LOSS", quantity="0.01", stopPrice="1000.00")
        assert c.response.headers["X-MBX-ORDER-COUNT-1D"] == str(ORDERS_PER_DAY), dict(c.response.headers)
        try:
            c.order_market_buy(symbol="BTCUSDT", quantity="0.001")
        except BinanceAPIException as e:
            assert (e.status_code, e.code) == (429, -1015), (e.status_code, e.code, e.message)
            assert e.message == f"Too many new orders; current limit is {ORDERS_PER_DAY} orders per DAY.", e.message
            assert int(e.response.headers["Retry-After"]) > 0, dict(e.response.headers)
            return
        raise AssertionError("no 429")

    t.check("python-binance: past the daily ORDERS limit -> 429 -1015 per DAY", daily_orders_python_binance)

    def daily_orders_ccxt():
        ex.load_markets()
        try:
            ex.create_order("BTC/USDT", "market", "buy", 0.001)
        except ccxt.DDoSProtection as e:  # ccxt's class for HTTP 429 (RateLimitExceeded's parent)
            assert "-1015" in str(e), e
            return
        raise AssertionError("no DDoSProtection")

    t.check("ccxt: past the daily ORDERS limit -> DDoSProtection -1015", daily_orders_ccxt)

    def raw_requests_then_ban():
        # The suite's earlier requests count too: ping until the first 429.
        status, body, _ = public(url, "/api/v3/ping")
        for _ in range(RAW_REQUESTS):
            if status == 429:
                break
            status, body, _ = public(url, "/api/v3/ping")
        assert (status, body["code"]) == (429, -1003) and "5 MINUTE" in body["msg"], (status, body)
        # Four more refusals are tolerated; the fifth one ignored bans.
        statuses = [public(url, "/api/v3/ping")[0] for _ in range(4)]
        status, body, headers = public(url, "/api/v3/ping")
        assert statuses == [429] * 4 and (status, body["code"]) == (418, -1003), (statuses, status, body)
        assert "IP banned until" in body["msg"] and headers["Retry-After"] == "120", (body, headers)

    t.check("RAW_REQUESTS: 429 -1003, then ignoring 429s -> 418 ban of 2 minutes", raw_requests_then_ban)

    def banned_clients():
        try:
            c.get_server_time()
        except BinanceAPIException as e:
            assert (e.status_code, e.code) == (418, -1003), (e.status_code, e.code)
        else:
            raise AssertionError("python-binance: no 418")
        try:
            ex.fetch_time()
        except ccxt.DDoSProtection:  # ccxt's class for 418 (RateLimitExceeded is its subclass)
            return
        raise AssertionError("ccxt: no DDoSProtection")

    t.check("banned: python-binance 418 -1003, ccxt DDoSProtection", banned_clients)
    return t
