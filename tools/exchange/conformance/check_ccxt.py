"""ccxt's `binance` exchange, unchanged but for its URLs, against genesis-exchange: what a new
user of ccxt would call first."""

from decimal import Decimal

import ccxt

from harness import API_KEY, API_SECRET, Tally, signed


def client(url):
    ex = ccxt.binance(
        {
            "apiKey": API_KEY,
            "secret": API_SECRET,
            "enableRateLimit": False,
            "timeout": 10000,
            "options": {
                # Spot only: the futures and margin hosts are not Binance Spot's API.
                "fetchMarkets": {"types": ["spot"]},
                "fetchMargins": False,
                "fetchCurrencies": False,
                "warnOnFetchOpenOrdersWithoutSymbol": False,
            },
        }
    )
    ex.urls["api"]["public"] = f"{url}/api/v3"
    ex.urls["api"]["private"] = f"{url}/api/v3"
    return ex


def on_tick(value, tick):
    return (Decimal(str(value)) % Decimal(tick)) == 0


def run(url):
    t = Tally("ccxt")
    ex = client(url)

    def load():
        markets = ex.load_markets()
        for s in ("BTC/USDT", "ETH/USDT", "SOL/USDT"):
            assert s in markets, f"{s} missing"
        btc = markets["BTC/USDT"]
        assert btc["spot"] and btc["active"], btc
        assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 0.00001, btc["precision"]
        assert btc["limits"]["cost"]["min"] == 5, btc["limits"]

    t.check("load_markets", load)
    t.check("fetch_time", lambda: ex.fetch_time() > 1_600_000_000_000 or None)

    def ticker():
        tk = ex.fetch_ticker("BTC/USDT")
        assert tk["bid"] < tk["ask"], tk
        assert tk["last"] is not None and on_tick(tk["last"], "0.01"), tk["last"]
        assert tk["baseVolume"] is not None, tk

    t.check("fetch_ticker (ticker/24hr)", ticker)

    def tickers():
        tks = ex.fetch_tickers(["BTC/USDT", "ETH/USDT"])
        assert set(tks) == {"BTC/USDT", "ETH/USDT"}, list(tks)

    t.check("fetch_tickers", tickers)

    def book():
        ob = ex.fetch_order_book("BTC/USDT", 5)
        assert len(ob["bids"]) == 5 and len(ob["asks"]) == 5, ob
        assert ob["bids"][0][0] < ob["asks"][0][0], ob

    t.check("fetch_order_book", book)

    def ohlcv():
        candles = ex.fetch_ohlcv("BTC/USDT", "1m", limit=3)
        assert len(candles) == 3, candles
        assert candles[0][0] < candles[1][0] < candles[2][0], candles

    t.check("fetch_ohlcv (klines)", ohlcv)

    def balance():
        b = ex.fetch_balance()
        assert b["USDT"]["free"] == 100000, b["USDT"]
        assert b["BTC"]["free"] == 1, b["BTC"]

    t.check("fetch_balance", balance)

    bought = {}

    def market_buy():
        o = ex.create_order("BTC/USDT", "market", "buy", 0.001)
        assert o["status"] == "closed" and o["filled"] == 0.001, o
        assert int(o["id"]) > 1_000_000, f"order id {o['id']} does not look like Binance's"
        bought.update(o)

    t.check("create_order market buy", market_buy)

    def fetch_bought():
        o = ex.fetch_order(bought["id"], "BTC/USDT")
        assert o["status"] == "closed" and o["filled"] == 0.001, o

    t.check("fetch_order", fetch_bought)

    def my_trades():
        trades = ex.fetch_my_trades("BTC/USDT")
        mine = [tr for tr in trades if tr["order"] == bought["id"]]
        assert mine, trades
        assert sum(tr["amount"] for tr in mine) == 0.001, mine
        assert mine[0]["fee"]["currency"] == "BTC", mine[0]["fee"]

    t.check("fetch_my_trades", my_trades)

    def public_trades():
        trades = ex.fetch_trades("BTC/USDT")
        assert any(tr["amount"] > 0 for tr in trades), trades

    t.check("fetch_trades", public_trades)

    def buy_with_cost():
        o = ex.create_market_buy_order_with_cost("SOL/USDT", 20)
        assert o["status"] == "closed" and 0 < o["cost"] <= 20, o
        assert o["info"]["type"] == "MARKET", o["info"]

    t.check("create_market_buy_order_with_cost (quoteOrderQty)", buy_with_cost)

    resting = {}

    def limit_buy():
        bid = ex.fetch_order_book("BTC/USDT", 5)["bids"][0][0]
        price = float(ex.price_to_precision("BTC/USDT", bid * 0.95))
        o = ex.create_order("BTC/USDT", "limit", "buy", 0.001, price)
        assert o["status"] == "open", o
        resting.update(o, price=price)

    t.check("create_order limit buy (rests)", limit_buy)

    def open_orders():
        ids = [o["id"] for o in ex.fetch_open_orders("BTC/USDT")]
        assert resting["id"] in ids, ids

    t.check("fetch_open_orders", open_orders)

    edited = {}

    def edit():
        price = float(ex.price_to_precision("BTC/USDT", resting["price"] * 0.99))
        o = ex.edit_order(resting["id"], "BTC/USDT", "limit", "buy", 0.002, price)
        assert o["id"] != resting["id"] and o["status"] == "open", o
        assert o["amount"] == 0.002, o
        assert ex.fetch_order(resting["id"], "BTC/USDT")["status"] == "canceled"
        edited.update(o)

    t.check("edit_order (cancelReplace)", edit)

    def cancel():
        o = ex.cancel_order(edited["id"], "BTC/USDT")
        assert o["status"] == "canceled", o

    t.check("cancel_order", cancel)

    def stop_order():
        bid = ex.fetch_ticker("ETH/USDT")["bid"]
        trigger = float(ex.price_to_precision("ETH/USDT", bid * 0.9))
        o = ex.create_order("ETH/USDT", "market", "sell", 0.01, None, {"triggerPrice": trigger})
        assert o["status"] == "open", o
        got = ex.fetch_order(o["id"], "ETH/USDT")
        assert got["info"]["type"] == "STOP_LOSS" and float(got["info"]["stopPrice"]) == trigger, got["info"]

    t.check("create_order stop (STOP_LOSS)", stop_order)

    def cancel_all():
        bid = ex.fetch_ticker("ETH/USDT")["bid"]
        ex.create_order("ETH/USDT", "limit", "buy", 0.01, float(ex.price_to_precision("ETH/USDT", bid * 0.9)))
        ex.cancel_all_orders("ETH/USDT")
        assert ex.fetch_open_orders("ETH/USDT") == []

    t.check("cancel_all_orders", cancel_all)

    def all_orders():
        orders = ex.fetch_orders("BTC/USDT")
        statuses = {o["id"]: o["status"] for o in orders}
        assert statuses.get(bought["id"]) == "closed" and statuses.get(edited["id"]) == "canceled", statuses

    t.check("fetch_orders (allOrders)", all_orders)

    def ioc():
        ask = ex.fetch_ticker("SOL/USDT")["ask"]
        price = float(ex.price_to_precision("SOL/USDT", ask * 0.9))
        o = ex.create_order("SOL/USDT", "limit", "buy", 1, price, {"timeInForce": "IOC"})
        assert o["status"] == "expired" and o["filled"] == 0, o

    t.check("create_order limit IOC (expires unfilled)", ioc)

    # Errors, as ccxt maps Binance's codes.
    t.raises("fetch_order unknown id -> OrderNotFound", lambda: ex.fetch_order("1", "BTC/USDT"),
             lambda e: isinstance(e, ccxt.OrderNotFound))
    t.raises("cancel_order unknown id -> OrderNotFound", lambda: ex.cancel_order("1", "BTC/USDT"),
             lambda e: isinstance(e, ccxt.OrderNotFound))
    t.raises("create_order below minNotional -> -1013 NOTIONAL",
             lambda: ex.create_order("SOL/USDT", "market", "buy", 0.001),
             lambda e: isinstance(e, ccxt.BadRequest) and "-1013" in str(e) and "NOTIONAL" in str(e))
    t.raises("create_order unknown parameter -> -1104",
             lambda: ex.create_order("SOL/USDT", "market", "buy", 1, None, {"notAParam": "1"}),
             lambda e: isinstance(e, ccxt.BadRequest) and "-1104" in str(e))
    t.raises("unknown symbol on the wire -> BadSymbol (-1121)",
             lambda: ex.public_get_ticker_price({"symbol": "NOPEUSDT"}),
             lambda e: isinstance(e, ccxt.BadSymbol) and "-1121" in str(e))
    t.raises("insufficient balance -> InsufficientFunds",
             lambda: ex.create_order("BTC/USDT", "market", "sell", 5),
             lambda e: isinstance(e, ccxt.InsufficientFunds))

    def wrong_key():
        bad = client(url)
        bad.apiKey = "not-the-key"
        bad.fetch_balance()

    t.raises("wrong API key -> AuthenticationError (-2015)", wrong_key,
             lambda e: isinstance(e, ccxt.AuthenticationError) and "-2015" in str(e))

    def duplicated():
        status, body = signed(url, "GET", "/api/v3/openOrders", {}, raw_query="symbol=BTCUSDT&symbol=ETHUSDT&timestamp=%d"
                              % ex.milliseconds())
        assert (status, body["code"]) == (400, -1101), (status, body)

    t.check("duplicated parameter -> -1101 (raw)", duplicated)
    return t
