#!/usr/bin/env python3
"""Writes exchange-info-2000.json: an `exchangeInfo` document (rest-api.md "Exchange
information") with BTCUSDT, ETHUSDT, SOLUSDT and 2,000 generated symbols, each carrying every
symbol filter filters.md defines, plus every exchange filter. Deterministic (seeded), so the
committed file is reproducible:

    python3 tools/exchange/markets/generate.py > tools/exchange/markets/exchange-info-2000.json
"""

import json
import random
import string

GENERATED = 2000
QUOTES = ["USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB", "TRY", "EUR"]
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]
STP = ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT", "TRANSFER"]


def dec(exp):
    """10**exp as Binance writes it (8 decimals)."""
    return f"{10 ** exp:.8f}"


def symbol(name, base, quote, tick_exp, step_exp, status="TRADING", min_notional="5.00000000"):
    return {
        "symbol": name,
        "status": status,
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "opoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "pegInstructionsAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": dec(tick_exp), "maxPrice": "1000000.00000000",
             "tickSize": dec(tick_exp)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "5", "multiplierDown": "0.2", "avgPriceMins": 5},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
             "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
            {"filterType": "LOT_SIZE", "minQty": dec(step_exp), "maxQty": "9000000.00000000",
             "stepSize": dec(step_exp)},
            {"filterType": "MIN_NOTIONAL", "minNotional": min_notional, "applyToMarket": True, "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": min_notional, "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "900000.00000000",
             "stepSize": "0.00000000"},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            {"filterType": "MAX_NUM_ICEBERG_ORDERS", "maxNumIcebergOrders": 5},
            {"filterType": "MAX_POSITION", "maxPosition": "9000000.00000000"},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
             "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
            {"filterType": "MAX_NUM_ORDER_AMENDS", "maxNumOrderAmends": 10},
            {"filterType": "MAX_NUM_ORDER_LISTS", "maxNumOrderLists": 20},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": STP,
    }


def main():
    rng = random.Random(23)
    symbols = [
        symbol("BTCUSDT", "BTC", "USDT", -2, -5),
        symbol("ETHUSDT", "ETH", "USDT", -2, -4),
        symbol("SOLUSDT", "SOL", "USDT", -2, -3),
    ]
    letters = string.ascii_uppercase
    for i in range(GENERATED):
        base = "Z" + "".join(letters[(i // 26 ** k) % 26] for k in (2, 1, 0))
        quote = QUOTES[i % len(QUOTES)]
        tick_exp = rng.randint(-8, 0)
        step_exp = rng.randint(-8, 0)
        status = "TRADING" if i % 50 else rng.choice(["BREAK", "HALT"])
        min_notional = "0.00010000" if quote in ("BTC", "ETH", "BNB") else "5.00000000"
        symbols.append(symbol(base + quote, base, quote, tick_exp, step_exp, status, min_notional))
    info = {
        "timezone": "UTC",
        "serverTime": 1_700_000_000_000,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
        ],
        "exchangeFilters": [
            {"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": 1000},
            {"filterType": "EXCHANGE_MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 200},
            {"filterType": "EXCHANGE_MAX_NUM_ICEBERG_ORDERS", "maxNumIcebergOrders": 10000},
            {"filterType": "EXCHANGE_MAX_NUM_ORDER_LISTS", "maxNumOrderLists": 20},
        ],
        "symbols": symbols,
    }
    print(json.dumps(info, separators=(",", ":")))


if __name__ == "__main__":
    main()
