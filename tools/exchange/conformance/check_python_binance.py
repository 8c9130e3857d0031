"""python-binance's `Client`, unchanged but for its API_URL, against genesis-exchange: every
REST call Genesis relies on, the market data a user would look at, and Binance's error codes
(exact codes: python-binance hands them over as `BinanceAPIException.code`)."""

from decimal import Decimal

from binance.client import Client
from binance.exceptions import BinanceAPIException

from harness import API_KEY, API_SECRET, Tally, public, signed


def client(url, key=API_KEY):
    c = Client(key, API_SECRET, ping=False)
    c.API_URL = f"{url}/api"
    return c


def code_is(code):
    def expect(e):
        assert isinstance(e, BinanceAPIException), f"{type(e).__name__}: {e}"
        assert e.code == code, f"code {e.code} ({e.message}), expected {code}"

    return expect


def on_tick(text, tick="0.01"):
    return Decimal(text) % Decimal(tick) == 0


def below(c, symbol, fraction):
    """A price `fraction` of the bid, on the tick."""
    bid = Decimal(c.get_orderbook_ticker(symbol=symbol)["bidPrice"])
    return str((bid * Decimal(fraction)).quantize(Decimal("0.01")))


def run(url):
    t = Tally("python-binance")
    c = client(url)

    t.check("ping", lambda: c.ping() == {} or None)
    t.check("get_server_time", lambda: c.get_server_time()["serverTime"] > 1_600_000_000_000 or None)

    def exchange_info():
        info = c.get_exchange_info()
        limits = {(r["rateLimitType"], r["interval"], r["intervalNum"]) for r in info["rateLimits"]}
        for want in [("REQUEST_WEIGHT", "MINUTE", 1), ("ORDERS", "SECOND", 10), ("ORDERS", "DAY", 1),
                     ("RAW_REQUESTS", "MINUTE", 5)]:
            assert want in limits, (want, limits)
        btc = c.get_symbol_info("BTCUSDT")
        kinds = {f["filterType"] for f in btc["filters"]}
        for want in ["PRICE_FILTER", "PERCENT_PRICE_BY_SIDE", "LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL",
                     "MAX_NUM_ORDERS", "MAX_NUM_ALGO_ORDERS"]:
            assert want in kinds, (want, kinds)
        assert btc["cancelReplaceAllowed"] is True, btc

    t.check("get_exchange_info (rateLimits, filters, cancelReplaceAllowed)", exchange_info)

    def price_ticker():
        p = c.get_symbol_ticker(symbol="BTCUSDT")
        assert on_tick(p["price"]), p
        assert len(c.get_symbol_ticker()) == 3

    t.check("get_symbol_ticker (on the tick)", price_ticker)

    def ticker_24hr():
        tk = c.get_ticker(symbol="ETHUSDT")
        for k in ["priceChange", "lastPrice", "bidPrice", "askPrice", "volume", "openTime", "closeTime", "count"]:
            assert k in tk, (k, tk)
        assert Decimal(tk["bidPrice"]) < Decimal(tk["askPrice"]), tk

    t.check("get_ticker (ticker/24hr)", ticker_24hr)
    t.check("get_orderbook_ticker", lambda: Decimal(c.get_orderbook_ticker(symbol="SOLUSDT")["bidPrice"]) > 0 or None)

    def depth():
        book = c.get_order_book(symbol="BTCUSDT", limit=5)
        assert len(book["bids"]) == 5 and len(book["asks"]) == 5, book
        assert Decimal(book["bids"][0][0]) < Decimal(book["asks"][0][0]), book

    t.check("get_order_book", depth)

    def avg_price():
        a = c.get_avg_price(symbol="BTCUSDT")
        assert a["mins"] == 5 and Decimal(a["price"]) > 0, a

    t.check("get_avg_price", avg_price)

    def klines():
        k = c.get_klines(symbol="BTCUSDT", interval=Client.KLINE_INTERVAL_1MINUTE, limit=4)
        assert len(k) == 4 and all(len(row) == 12 for row in k), k
        assert k[1][0] - k[0][0] == 60_000, k

    t.check("get_klines", klines)

    def test_orders():
        assert c.create_test_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001") == {}
        rates = c.create_test_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001",
                                    computeCommissionRates="true")
        assert rates["standardCommissionForOrder"]["taker"] == "0.00100000", rates
        assert c.get_open_orders(symbol="BTCUSDT") == [] and c.get_all_orders(symbol="BTCUSDT") == []

    t.check("create_test_order (+ computeCommissionRates), nothing placed", test_orders)
    t.raises("create_test_order LOT_SIZE violation -> -1013",
             lambda: c.create_test_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.000001"),
             code_is(-1013))

    bought = {}

    def market_buy():
        o = c.order_market_buy(symbol="BTCUSDT", quantity="0.001")
        assert o["status"] == "FILLED" and o["executedQty"] == "0.00100000", o
        assert o["orderId"] > 1_000_000_000, o["orderId"]
        assert o["fills"] and o["fills"][0]["commissionAsset"] == "BTC", o["fills"]
        bought.update(o)

    t.check("order_market_buy (FULL, fills)", market_buy)

    def ids_across_symbols():
        o = c.order_market_buy(symbol="SOLUSDT", quantity="0.1")
        assert o["orderId"] != bought["orderId"], (o["orderId"], bought["orderId"])

    t.check("order ids unique across symbols", ids_across_symbols)

    def query():
        o = c.get_order(symbol="BTCUSDT", orderId=bought["orderId"])
        assert o["status"] == "FILLED" and o["clientOrderId"] == bought["clientOrderId"], o

    t.check("get_order", query)

    def my_trades():
        trades = c.get_my_trades(symbol="BTCUSDT", orderId=bought["orderId"])
        assert sum(Decimal(tr["qty"]) for tr in trades) == Decimal("0.001"), trades
        assert all(tr["isBuyer"] and tr["commissionAsset"] == "BTC" for tr in trades), trades

    t.check("get_my_trades", my_trades)

    def market_trades():
        recent = c.get_recent_trades(symbol="BTCUSDT")
        agg = c.get_aggregate_trades(symbol="BTCUSDT")
        assert recent and agg, (recent, agg)
        assert sum(Decimal(a["q"]) for a in agg) == sum(Decimal(r["qty"]) for r in recent), (recent, agg)

    t.check("get_recent_trades, get_aggregate_trades", market_trades)

    resting = {}

    def limit_buy():
        o = c.order_limit_buy(symbol="BTCUSDT", quantity="0.001", price=below(c, "BTCUSDT", "0.95"))
        assert o["status"] == "NEW", o
        assert [x["orderId"] for x in c.get_open_orders(symbol="BTCUSDT")] == [o["orderId"]]
        resting.update(o)

    t.check("order_limit_buy rests, get_open_orders", limit_buy)

    replaced = {}

    def cancel_replace_by_id():
        r = c.cancel_replace_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.002",
                                   price=below(c, "BTCUSDT", "0.94"), cancelReplaceMode="STOP_ON_FAILURE",
                                   cancelOrderId=resting["orderId"])
        assert (r["cancelResult"], r["newOrderResult"]) == ("SUCCESS", "SUCCESS"), r
        assert r["cancelResponse"]["status"] == "CANCELED", r
        replaced.update(r["newOrderResponse"])

    t.check("cancel_replace_order by cancelOrderId", cancel_replace_by_id)

    def allow_failure():
        try:
            c.cancel_replace_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
                                   price=below(c, "BTCUSDT", "0.93"), cancelReplaceMode="ALLOW_FAILURE",
                                   cancelOrderId=1)
        except BinanceAPIException as e:
            assert (e.status_code, e.code) == (409, -2021), (e.status_code, e.code, e.message)
            return
        raise AssertionError("no 409")

    t.check("cancel_replace_order ALLOW_FAILURE, unknown cancelOrderId -> 409 -2021, placed", allow_failure)

    def cancel_all():
        assert len(c.get_open_orders(symbol="BTCUSDT")) == 2
        cancelled = c.cancel_all_open_orders(symbol="BTCUSDT")
        assert sorted(x["status"] for x in cancelled) == ["CANCELED", "CANCELED"], cancelled
        assert c.get_open_orders(symbol="BTCUSDT") == []

    t.check("cancel_all_open_orders", cancel_all)
    t.raises("cancel_all_open_orders with none open -> -2011",
             lambda: c.cancel_all_open_orders(symbol="BTCUSDT"), code_is(-2011))

    def history():
        orders = c.get_all_orders(symbol="BTCUSDT")
        statuses = {o["orderId"]: o["status"] for o in orders}
        assert statuses[bought["orderId"]] == "FILLED" and statuses[resting["orderId"]] == "CANCELED", statuses
        first = c.get_recent_trades(symbol="BTCUSDT")[0]["id"]
        assert c.get_historical_trades(symbol="BTCUSDT", fromId=first)[0]["id"] == first

    t.check("get_all_orders, get_historical_trades", history)

    def stop_then_cancel():
        o = c.create_order(symbol="ETHUSDT", side="SELL", type="STOP_LOSS", quantity="0.01",
                           stopPrice=below(c, "ETHUSDT", "0.9"))
        assert o["orderId"] > 0 and "fills" not in o, o  # ACK by default for stops
        q = c.get_order(symbol="ETHUSDT", orderId=o["orderId"])
        assert (q["type"], q["status"]) == ("STOP_LOSS", "NEW"), q
        cancelled = c.cancel_order(symbol="ETHUSDT", orderId=o["orderId"])
        assert cancelled["status"] == "CANCELED", cancelled

    t.check("STOP_LOSS order, query, cancel_order", stop_then_cancel)

    def ioc_fok():
        ask = Decimal(c.get_orderbook_ticker(symbol="SOLUSDT")["askPrice"])
        ioc = c.order_limit_buy(symbol="SOLUSDT", quantity="1", price=str(ask - 1), timeInForce="IOC")
        assert (ioc["status"], ioc["executedQty"], ioc["timeInForce"]) == ("EXPIRED", "0.00000000", "IOC"), ioc
        fok = c.order_limit_buy(symbol="SOLUSDT", quantity="1", price=str(ask + 1), timeInForce="FOK")
        assert (fok["status"], fok["executedQty"]) == ("FILLED", "1.00000000"), fok
        q = c.get_order(symbol="SOLUSDT", orderId=ioc["orderId"])
        assert (q["status"], q["timeInForce"], q["price"]) == ("EXPIRED", "IOC", f"{ask - 1:.8f}"), q
        assert ioc["expiryReason"] == q["expiryReason"] == "UNFILLED_IOC_QUANTITY_EXPIRED", (ioc, q)
        assert "expiryReason" not in fok, fok

    t.check("LIMIT IOC expires (expiryReason), FOK fills", ioc_fok)

    def stop_limit_ioc():
        o = c.create_order(symbol="ETHUSDT", side="SELL", type="STOP_LOSS_LIMIT", timeInForce="IOC",
                           quantity="0.01", price=below(c, "ETHUSDT", "0.89"), stopPrice=below(c, "ETHUSDT", "0.9"))
        q = c.get_order(symbol="ETHUSDT", orderId=o["orderId"])
        assert (q["status"], q["timeInForce"]) == ("NEW", "IOC"), q
        assert c.cancel_order(symbol="ETHUSDT", orderId=o["orderId"])["status"] == "CANCELED"

    t.check("STOP_LOSS_LIMIT with timeInForce IOC", stop_limit_ioc)

    def stp_modes():
        default = c.get_symbol_info("SOLUSDT")["defaultSelfTradePreventionMode"]
        assert default == "EXPIRE_MAKER", default
        o = c.order_market_buy(symbol="SOLUSDT", quantity="0.1")
        assert o["selfTradePreventionMode"] == default, o
        o = c.order_market_buy(symbol="SOLUSDT", quantity="0.1", selfTradePreventionMode="EXPIRE_TAKER")
        assert o["selfTradePreventionMode"] == "EXPIRE_TAKER", o
        q = c.get_order(symbol="SOLUSDT", orderId=o["orderId"])
        assert q["selfTradePreventionMode"] == "EXPIRE_TAKER", q

    t.check("selfTradePreventionMode: the symbol's default, or the one sent, in every answer", stp_modes)

    def balances():
        acct = c.get_account()
        assert acct["canTrade"] is True, acct
        btc = c.get_asset_balance(asset="BTC")
        assert Decimal(btc["free"]) > Decimal("1"), btc  # bought 0.001 less the fee

    t.check("get_account, get_asset_balance", balances)

    # Errors: the exact codes of errors.md.
    t.raises("get_order unknown orderId -> -2013", lambda: c.get_order(symbol="BTCUSDT", orderId=1), code_is(-2013))
    t.raises("cancel_order unknown orderId -> -2011", lambda: c.cancel_order(symbol="BTCUSDT", orderId=1),
             code_is(-2011))
    t.raises("unknown symbol -> -1121", lambda: c.get_symbol_ticker(symbol="NOPEUSDT"), code_is(-1121))
    t.raises("unknown parameter -> -1104",
             lambda: c.order_market_buy(symbol="SOLUSDT", quantity="0.1", notAParam="x"), code_is(-1104))
    t.raises("invalid selfTradePreventionMode -> -1130",
             lambda: c.order_market_buy(symbol="SOLUSDT", quantity="0.1", selfTradePreventionMode="NOPE"),
             code_is(-1130))
    t.raises("over-precise quantity -> -1111",
             lambda: c.order_market_buy(symbol="SOLUSDT", quantity="0.1000000001"), code_is(-1111))
    t.raises("quantity off the step -> -1013 LOT_SIZE",
             lambda: c.order_market_buy(symbol="SOLUSDT", quantity="0.1001"), code_is(-1013))
    t.raises("icebergQty -> -2010 not supported",
             lambda: c.order_limit_buy(symbol="SOLUSDT", quantity="1", price="100.00", icebergQty="0.5"),
             code_is(-2010))
    t.raises("LIMIT without timeInForce -> -1102",
             lambda: c.create_order(symbol="SOLUSDT", side="BUY", type="LIMIT", quantity="1", price="100.00"),
             code_is(-1102))
    t.raises("wrong API key -> -2015", lambda: client(url, key="wrong").get_account(), code_is(-2015))

    def missing_key():
        status, body = signed(url, "GET", "/api/v3/account", {}, api_key=None)
        assert (status, body["code"]) == (401, -2014), (status, body)

    t.check("missing API key -> 401 -2014 (raw)", missing_key)

    def bad_signature():
        status, body = signed(url, "GET", "/api/v3/account", {}, raw_query="timestamp=1&signature=00", sign=False)
        assert (status, body["code"]) == (400, -1022), (status, body)

    t.check("bad signature -> -1022 (raw)", bad_signature)

    def weight_header():
        status, _, headers = public(url, "/api/v3/ping")
        assert status == 200 and int(headers["X-MBX-USED-WEIGHT-1M"]) > 0, headers

    t.check("X-MBX-USED-WEIGHT-1M header", weight_header)
    return t
