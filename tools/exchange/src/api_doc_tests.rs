//! The behaviours issue 23 brought in line with Binance's documentation (rest-api.md,
//! errors.md, filters.md), one per test.

use super::*;

fn order(params: &[(&str, &str)]) -> Call {
    signed("POST", "/api/v3/order", params, NOW)
}

fn sol_limit(side: &str, price: &str, tif: &str, id: &str) -> Call {
    order(&[
        ("symbol", "SOLUSDT"),
        ("side", side),
        ("type", "LIMIT"),
        ("timeInForce", tif),
        ("quantity", "1"),
        ("price", price),
        ("newClientOrderId", id),
    ])
}

/// The app's limits as `change` leaves them.
fn with_limits(app: &App, change: impl FnOnce(&mut crate::limits::LimitConfig)) {
    let mut config = app.limits.lock().config();
    change(&mut config);
    app.set_limits(config);
}

fn code(app: &App, call: &Call) -> (u16, i64) {
    let (reply, v) = send(app, call, NOW);
    (reply.status, v["code"].as_i64().unwrap_or(0))
}

#[test]
fn order_ids_come_from_the_configured_first_id_across_symbols() {
    let app = App::new(
        Simulator::new(SimConfig { first_order_id: 40_000_000_001, ..SimConfig::default() }),
        Credentials { api_key: KEY.into(), api_secret: SECRET.into() },
        50,
        Vec::new(),
        7,
    );
    let (_, btc) = send(&app, &market("m1"), NOW);
    let (_, sol) = send(&app, &sol_limit("BUY", "151.00", "GTC", "m2"), NOW);
    assert_eq!((btc["orderId"].as_i64(), sol["orderId"].as_i64()), (Some(40_000_000_001), Some(40_000_000_002)));
    let unknown = signed("GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("orderId", "1")], NOW);
    assert_eq!(code(&app, &unknown), (400, -2013));
}

#[test]
fn limit_ioc_trades_what_crosses_and_expires_the_rest() {
    let app = app(50, &[]);
    let (_, v) = send(&app, &sol_limit("BUY", "149.00", "IOC", "i1"), NOW);
    assert_eq!(
        (v["status"].as_str(), v["executedQty"].as_str(), v["timeInForce"].as_str()),
        (Some("EXPIRED"), Some("0.00000000"), Some("IOC"))
    );
    assert_eq!(v["expiryReason"], "UNFILLED_IOC_QUANTITY_EXPIRED");
    let (_, q) =
        send(&app, &signed("GET", "/api/v3/order", &[("symbol", "SOLUSDT"), ("origClientOrderId", "i1")], NOW), NOW);
    assert_eq!(
        (q["status"].as_str(), q["timeInForce"].as_str(), q["price"].as_str()),
        (Some("EXPIRED"), Some("IOC"), Some("149.00000000"))
    );
    assert_eq!(q["expiryReason"], "UNFILLED_IOC_QUANTITY_EXPIRED");
    let (_, v) = send(&app, &sol_limit("BUY", "151.00", "IOC", "i2"), NOW);
    assert_eq!((v["status"].as_str(), v["executedQty"].as_str()), (Some("FILLED"), Some("1.00000000")));
    let (_, open) = send(&app, &signed("GET", "/api/v3/openOrders", &[("symbol", "SOLUSDT")], NOW), NOW);
    assert_eq!(open, json!([]));
}

#[test]
fn limit_fok_fills_whole_or_expires_with_nothing_traded_at_its_own_price() {
    let app = app(50, &[]);
    let (_, v) = send(&app, &sol_limit("BUY", "151.00", "FOK", "f1"), NOW);
    assert_eq!((v["status"].as_str(), v["executedQty"].as_str()), (Some("FILLED"), Some("1.00000000")));
    // More than the book holds up to 150.00: nothing trades.
    let big = order(&[
        ("symbol", "SOLUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "FOK"),
        ("quantity", "600"),
        ("price", "150.00"),
        ("newClientOrderId", "f2"),
    ]);
    let (_, v) = send(&app, &big, NOW);
    assert_eq!(
        (v["status"].as_str(), v["executedQty"].as_str(), v["price"].as_str(), v["timeInForce"].as_str()),
        (Some("EXPIRED"), Some("0.00000000"), Some("150.00000000"), Some("FOK"))
    );
    assert_eq!(v["expiryReason"], "UNFILLED_FOK_ORDER_EXPIRED");
    assert!(v["fills"].as_array().unwrap().is_empty());
}

/// A BTCUSDT stop-limit sell (stop 60100, limit 60000, 0.5 BTC) with `tif`.
fn stop_limit_with(tif: &str, id: &str) -> Call {
    order(&[
        ("symbol", "BTCUSDT"),
        ("side", "SELL"),
        ("type", "STOP_LOSS_LIMIT"),
        ("timeInForce", tif),
        ("quantity", "0.5"),
        ("price", "60000"),
        ("stopPrice", "60100"),
        ("newClientOrderId", id),
    ])
}

#[test]
fn a_stop_limit_ioc_trades_what_crosses_when_triggered_and_expires_the_rest() {
    let app = app(50, &[]);
    let (_, v) = send(&app, &stop_limit_with("IOC", "s1"), NOW);
    assert!(v["orderId"].as_i64().is_some(), "{v}");
    assert_eq!(send(&app, &query("s1"), NOW).1["timeInForce"], "IOC");
    // The bid falls through the stop to one tick above the limit: two levels cannot fill 0.5 BTC.
    let (_, changed) = control(&app, "POST", "/sim/price", r#"{"symbol":"BTCUSDT","bid":"60000.01","ask":"60000.02"}"#);
    assert_eq!(changed[0]["status"], "EXPIRED", "{changed}");
    let (_, q) = send(&app, &query("s1"), NOW);
    assert_eq!((q["status"].as_str(), q["timeInForce"].as_str()), (Some("EXPIRED"), Some("IOC")));
    assert_eq!(q["expiryReason"], "UNFILLED_IOC_QUANTITY_EXPIRED");
    let executed: Decimal = q["executedQty"].as_str().unwrap().parse().unwrap();
    assert!(executed > Decimal::ZERO && executed < "0.5".parse().unwrap(), "{q}");
    let (_, open) = send(&app, &signed("GET", "/api/v3/openOrders", &[("symbol", "BTCUSDT")], NOW), NOW);
    assert_eq!(open, json!([]));
}

#[test]
fn a_stop_limit_fok_cancelled_before_its_trigger_stays_canceled() {
    let app = app(50, &[]);
    send(&app, &stop_limit_with("FOK", "s1"), NOW);
    let cancel = signed("DELETE", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "s1")], NOW);
    assert_eq!(send(&app, &cancel, NOW).1["status"], "CANCELED");
    let (_, q) = send(&app, &query("s1"), NOW);
    assert_eq!((q["status"].as_str(), q["timeInForce"].as_str()), (Some("CANCELED"), Some("FOK")));
    assert!(q.get("expiryReason").is_none());
    assert_eq!(code(&app, &stop_limit_with("GTD", "s2")), (400, -1115));
}

#[test]
fn cancel_replace_names_the_order_by_cancel_order_id() {
    let app = app(50, &[]);
    let (_, stop) = send(&app, &stop_limit("s1"), NOW);
    let id = stop["orderId"].as_i64().unwrap().to_string();
    let call =
        cancel_replace_with("", "0.001", "m1", &[("cancelOrigClientOrderId", None), ("cancelOrderId", Some(&id))]);
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(v["cancelResponse"]["origClientOrderId"], "s1");
    // Both named, not the same order: the cancel fails.
    let (_, other) = send(&app, &stop_limit("s2"), NOW);
    let other_id = other["orderId"].as_i64().unwrap().to_string();
    let call = cancel_replace_with("s1", "0.001", "m2", &[("cancelOrderId", Some(&other_id))]);
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-2022)));
    assert_eq!(v["data"]["cancelResponse"]["code"], -2011);
}

#[test]
fn cancel_replace_allow_failure_places_even_when_the_cancel_fails() {
    let app = app(50, &[]);
    let call = cancel_replace_with("nope", "0.001", "m1", &[("cancelReplaceMode", Some("ALLOW_FAILURE"))]);
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (409, Some(-2021)), "{}", reply.body);
    assert_eq!(
        (v["data"]["cancelResult"].as_str(), v["data"]["newOrderResult"].as_str()),
        (Some("FAILURE"), Some("SUCCESS"))
    );
    assert_eq!(v["data"]["newOrderResponse"]["status"], "FILLED");
    // Counted, and uncounted again: its new order traded at once.
    assert_eq!(reply.header("X-MBX-ORDER-COUNT-10S"), Some("0"));
    // Both fail: 400 -2022, both results FAILURE (selling 5 BTC of 1).
    let call = cancel_replace_with("nope", "5", "m2", &[("cancelReplaceMode", Some("ALLOW_FAILURE"))]);
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-2022)));
    assert_eq!(
        (v["data"]["cancelResult"].as_str(), v["data"]["newOrderResult"].as_str()),
        (Some("FAILURE"), Some("FAILURE"))
    );
    assert_eq!(v["data"]["newOrderResponse"]["code"], -2010);
}

#[test]
fn cancel_replace_refuses_a_bad_rate_limit_mode_and_takes_an_ioc_new_order() {
    let app = app(50, &[]);
    send(&app, &stop_limit("s1"), NOW);
    let call = cancel_replace_with("s1", "0.001", "m1", &[("orderRateLimitExceededMode", Some("NOPE"))]);
    assert_eq!(code(&app, &call), (400, -1100));
    let call = cancel_replace_with(
        "s1",
        "0.001",
        "m1",
        &[("type", Some("LIMIT")), ("price", Some("65000")), ("timeInForce", Some("IOC"))],
    );
    // Above the bid: nothing crosses, the new order expires at once.
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!(reply.status, 200, "{v}");
    let placed = &v["newOrderResponse"];
    assert_eq!((placed["status"].as_str(), placed["timeInForce"].as_str()), (Some("EXPIRED"), Some("IOC")));
    assert_eq!(placed["expiryReason"], "UNFILLED_IOC_QUANTITY_EXPIRED");
    assert_eq!(send(&app, &query("s1"), NOW).1["status"], "CANCELED");
    assert_eq!(send(&app, &query("m1"), NOW).1["timeInForce"], "IOC");
    // Nothing left to cancel, ALLOW_FAILURE: the IOC is placed anyway (409 -2021).
    let again = cancel_replace_with(
        "s1",
        "0.001",
        "m2",
        &[
            ("type", Some("LIMIT")),
            ("price", Some("65000")),
            ("timeInForce", Some("FOK")),
            ("cancelReplaceMode", Some("ALLOW_FAILURE")),
        ],
    );
    let (reply, v) = send(&app, &again, NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (409, Some(-2021)), "{v}");
    assert_eq!(v["data"]["newOrderResponse"]["timeInForce"], "FOK");
}

#[test]
fn test_order_checks_the_filters_and_computes_commission_rates() {
    let app = app(50, &[]);
    let test = |qty: &str, extra: &[(&str, &str)]| {
        let mut params = vec![("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", qty)];
        params.extend_from_slice(extra);
        signed("POST", "/api/v3/order/test", &params, NOW)
    };
    assert_eq!(send(&app, &test("0.001", &[]), NOW).1, json!({}));
    let (_, v) = send(&app, &test("0.000001", &[]), NOW);
    assert_eq!(v, json!({"code": -1013, "msg": "Filter failure: LOT_SIZE"}));
    let (_, v) = send(&app, &test("0.001", &[("computeCommissionRates", "true")]), NOW);
    assert_eq!(v["standardCommissionForOrder"], json!({"maker": "0.00100000", "taker": "0.00100000"}));
    assert_eq!(v["discount"]["discountAsset"], "BNB");
    assert_eq!(code(&app, &test("0.001", &[("computeCommissionRates", "maybe")])), (400, -1100));
    let (_, open) = send(&app, &signed("GET", "/api/v3/allOrders", &[("symbol", "BTCUSDT")], NOW), NOW);
    assert_eq!(open, json!([]));
}

#[test]
fn unknown_and_duplicated_parameters_are_refused() {
    let app = app(50, &[]);
    let call =
        order(&[("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.001"), ("foo", "1")]);
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-1104)));
    assert_eq!(v["msg"], "Not all sent parameters were read; read '6' parameter(s) but was sent '7'.");
    let (reply, v) = send(&app, &public("/api/v3/depth", "symbol=BTCUSDT&symbol=ETHUSDT"), NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (400, Some(-1101)));
    assert_eq!(code(&app, &public("/api/v3/ping", "x=1")), (400, -1104));
    // The same name in the query and in the body is not a duplicate: the query string wins.
    assert_eq!(send(&app, &public("/api/v3/ping", ""), NOW).0.status, 200);
}

#[test]
fn order_parameters_binance_checks_before_the_matching_engine() {
    let app = app(50, &[]);
    let with = |extra: (&str, &str)| {
        order(&[("symbol", "SOLUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "1"), extra])
    };
    assert_eq!(code(&app, &with(("selfTradePreventionMode", "NOPE"))), (400, -1130));
    assert_eq!(send(&app, &with(("selfTradePreventionMode", "EXPIRE_TAKER")), NOW).0.status, 200);
    assert_eq!(code(&app, &with(("icebergQty", "0.5"))), (400, -2010));
    assert_eq!(code(&app, &with(("trailingDelta", "100"))), (400, -2010));
    assert_eq!(code(&app, &with(("pegPriceType", "PRIMARY_PEG"))), (400, -2010));
    let precise = order(&[("symbol", "SOLUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "1.000000001")]);
    let (_, v) = send(&app, &precise, NOW);
    assert_eq!(v, json!({"code": -1111, "msg": "Parameter 'quantity' has too much precision."}));
}

#[test]
fn percent_price_by_side_and_max_num_orders_are_enforced() {
    let app = app(1000, &[]);
    // Five times the average (150) is the most a buy may bid.
    assert_eq!(
        send(&app, &sol_limit("BUY", "751.00", "GTC", "p1"), NOW).1["msg"],
        "Filter failure: PERCENT_PRICE_BY_SIDE"
    );
    assert_eq!(
        send(&app, &sol_limit("SELL", "29.00", "GTC", "p2"), NOW).1["msg"],
        "Filter failure: PERCENT_PRICE_BY_SIDE"
    );
    for i in 0..crate::filters::MAX_NUM_ORDERS {
        let (reply, _) = send(&app, &sol_limit("BUY", "100.00", "GTC", &format!("r{i}")), NOW);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(send(&app, &sol_limit("BUY", "100.00", "GTC", "over"), NOW).1["msg"], "Filter failure: MAX_NUM_ORDERS");
}

#[test]
fn exchange_info_carries_the_documented_filters_rate_limits_and_cancel_replace() {
    let app = app(50, &[]);
    let (_, v) = send(&app, &public("/api/v3/exchangeInfo", "symbol=BTCUSDT"), NOW);
    let s = &v["symbols"][0];
    assert_eq!(s["cancelReplaceAllowed"], true);
    let kinds: Vec<&str> = s["filters"].as_array().unwrap().iter().map(|f| f["filterType"].as_str().unwrap()).collect();
    for kind in ["PRICE_FILTER", "PERCENT_PRICE_BY_SIDE", "LOT_SIZE", "NOTIONAL", "MARKET_LOT_SIZE", "MAX_NUM_ORDERS"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let market_lot = s["filters"].as_array().unwrap().iter().find(|f| f["filterType"] == "MARKET_LOT_SIZE").unwrap();
    assert_eq!(market_lot["stepSize"], "0.00001000");
    let limits = v["rateLimits"].as_array().unwrap();
    assert!(limits.contains(&json!({"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":200000})));
    assert!(limits.contains(&json!({"rateLimitType":"RAW_REQUESTS","interval":"MINUTE","intervalNum":5,"limit":61000})));
    // The engine's own parser still reads it.
    let info = genesis::exchange::binance::wire::parse_exchange_info(&v.to_string()).unwrap();
    assert_eq!(info.symbols[0].symbol, "BTCUSDT");
}

#[test]
fn missing_api_key_is_minus_2014() {
    let app = app(50, &[]);
    let mut call = signed("GET", "/api/v3/account", &[], NOW);
    call.key = None;
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (401, Some(-2014)));
}

#[test]
fn ticker_24hr_avg_price_and_trade_lists_follow_the_accounts_trades() {
    let app = app(50, &[]);
    let (_, before) = send(&app, &public("/api/v3/ticker/24hr", "symbol=BTCUSDT"), NOW);
    assert_eq!((before["count"].as_i64(), before["firstId"].as_i64()), (Some(0), Some(-1)));
    assert_eq!(before["lastPrice"], "64999.99000000");
    send(&app, &market("m1"), NOW);
    let (_, t) = send(&app, &public("/api/v3/ticker/24hr", "symbol=BTCUSDT"), NOW);
    assert_eq!((t["lastPrice"].as_str(), t["volume"].as_str()), (Some("65000.00000000"), Some("0.00100000")));
    assert_eq!(t["askPrice"], "65000.00000000");
    assert_eq!(t["count"], 1);
    let (_, mini) = send(&app, &public("/api/v3/ticker/24hr", "symbol=BTCUSDT&type=MINI"), NOW);
    assert!(mini.get("bidPrice").is_none() && mini.get("lastPrice").is_some());
    let (_, all) = send(&app, &public("/api/v3/ticker/24hr", ""), NOW);
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(code(&app, &public("/api/v3/ticker/24hr", "symbol=BTCUSDT&symbols=%5B%5D")), (400, -1128));
    assert_eq!(code(&app, &public("/api/v3/ticker/24hr", "type=BIG")), (400, -1130));
    let (_, p) = send(&app, &public("/api/v3/ticker/price", "symbol=BTCUSDT"), NOW);
    assert_eq!(p["price"], "65000.00000000");
    let (_, avg) = send(&app, &public("/api/v3/avgPrice", "symbol=BTCUSDT"), NOW);
    assert_eq!((avg["mins"].as_i64(), avg["price"].as_str()), (Some(5), Some("65000.00000000")));
    let (_, trades) = send(&app, &public("/api/v3/trades", "symbol=BTCUSDT"), NOW);
    assert_eq!(trades[0]["isBuyerMaker"], false);
    assert_eq!(trades[0]["qty"], "0.00100000");
    let id = trades[0]["id"].as_i64().unwrap();
    let (_, from) = send(&app, &public("/api/v3/historicalTrades", &format!("symbol=BTCUSDT&fromId={}", id + 1)), NOW);
    assert_eq!(from, json!([]));
    let (_, agg) = send(&app, &public("/api/v3/aggTrades", "symbol=BTCUSDT"), NOW);
    assert_eq!(
        (agg[0]["a"].as_i64(), agg[0]["q"].as_str(), agg[0]["m"].as_bool()),
        (Some(id), Some("0.00100000"), Some(false))
    );
    assert_eq!(code(&app, &public("/api/v3/trades", "symbol=BTCUSDT&limit=5000")), (400, -1130));
}

#[test]
fn klines_are_one_candle_per_interval_flat_where_nothing_traded() {
    let app = app(50, &[]);
    let (_, k) = send(&app, &public("/api/v3/klines", "symbol=SOLUSDT&interval=1m&limit=3"), NOW);
    let k = k.as_array().unwrap();
    assert_eq!(k.len(), 3);
    assert_eq!(k[2][0].as_i64(), Some(NOW - NOW % 60_000));
    assert_eq!(k[0][6].as_i64(), Some(k[0][0].as_i64().unwrap() + 59_999));
    assert_eq!(
        (k[0][1].as_str(), k[0][4].as_str(), k[0][5].as_str()),
        (Some("149.99000000"), Some("149.99000000"), Some("0.00000000"))
    );
    let (_, k) = send(
        &app,
        &public("/api/v3/uiKlines", &format!("symbol=SOLUSDT&interval=1h&startTime={}", NOW - 7_200_000)),
        NOW,
    );
    assert_eq!(k.as_array().unwrap().len(), 3);
    assert_eq!(code(&app, &public("/api/v3/klines", "symbol=SOLUSDT&interval=7m")), (400, -1120));
    assert_eq!(code(&app, &public("/api/v3/klines", "symbol=SOLUSDT")), (400, -1102));
}

#[test]
fn ignoring_429s_leads_to_a_418_ban_with_retry_after() {
    let app = app(50, &[]);
    with_limits(&app, |l| l.weight_1m = 1);
    assert_eq!(send(&app, &public("/api/v3/ping", ""), NOW).0.status, 200);
    for _ in 0..crate::limits::IGNORED_429S_BEFORE_BAN {
        assert_eq!(code(&app, &public("/api/v3/ping", "")), (429, -1003));
    }
    let (reply, v) = send(&app, &public("/api/v3/ping", ""), NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (418, Some(-1003)));
    assert_eq!(reply.header("Retry-After"), Some("120"));
    // Still banned in the next minute, until the ban ends.
    assert_eq!(send(&app, &public("/api/v3/ping", ""), NOW + 60_000).0.status, 418);
    assert_eq!(send(&app, &public("/api/v3/ping", ""), NOW + 120_000).0.status, 200);
}

#[test]
fn over_the_order_limit_cancel_only_still_cancels_and_do_nothing_does_not() {
    let app = app(1, &[]);
    send(&app, &stop_limit("s1"), NOW);
    let (reply, v) = send(&app, &cancel_replace("s1", "0.001", "m1"), NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (429, Some(-1015)));
    assert_eq!(send(&app, &query("s1"), NOW).1["status"], "NEW");
    let call = cancel_replace_with("s1", "0.001", "m1", &[("orderRateLimitExceededMode", Some("CANCEL_ONLY"))]);
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (429, Some(-2021)), "{}", reply.body);
    assert!(reply.header("Retry-After").is_some());
    assert_eq!(
        (v["data"]["cancelResult"].as_str(), v["data"]["newOrderResult"].as_str()),
        (Some("SUCCESS"), Some("FAILURE"))
    );
    assert_eq!(v["data"]["newOrderResponse"]["code"], -1015);
    assert_eq!(send(&app, &query("s1"), NOW).1["status"], "CANCELED");
    assert_eq!(send(&app, &query("m1"), NOW).1["code"], -2013);
    // Nothing left to cancel: -2022, the new order not attempted.
    let (reply, v) = send(&app, &call, NOW);
    assert_eq!((reply.status, v["code"].as_i64()), (429, Some(-2022)));
    assert_eq!(v["data"]["newOrderResult"], "NOT_ATTEMPTED");
}

#[test]
fn a_repeat_offender_is_banned_for_twice_as_long() {
    let app = app(50, &[]);
    with_limits(&app, |l| l.weight_1m = 1);
    let ping = public("/api/v3/ping", "");
    let mut bans = Vec::new();
    let mut now = NOW;
    for _ in 0..3 {
        assert_eq!(send(&app, &ping, now).0.status, 200);
        for _ in 0..crate::limits::IGNORED_429S_BEFORE_BAN {
            assert_eq!(send(&app, &ping, now).0.status, 429);
        }
        let (reply, _) = send(&app, &ping, now);
        assert_eq!(reply.status, 418);
        let secs: i64 = reply.header("Retry-After").unwrap().parse().unwrap();
        bans.push(secs);
        now += secs * 1000;
    }
    assert_eq!(bans, [120, 240, 480]);
}

#[test]
fn past_the_raw_request_limit_requests_get_429_until_the_five_minutes_end() {
    let app = app(50, &[]);
    with_limits(&app, |l| l.raw_requests_5m = 3);
    let ping = public("/api/v3/ping", "");
    let start = NOW - NOW % 300_000;
    for _ in 0..3 {
        assert_eq!(send(&app, &ping, start).0.status, 200);
    }
    let (reply, v) = send(&app, &ping, start + 60_000);
    assert_eq!((reply.status, v["code"].as_i64()), (429, Some(-1003)));
    assert_eq!(v["msg"], "Too many requests; current limit is 3 requests per 5 MINUTE.");
    assert_eq!(reply.header("Retry-After"), Some("240"));
    assert_eq!(send(&app, &ping, start + 300_000).0.status, 200);
}

#[test]
fn past_the_daily_order_limit_orders_get_429_minus_1015_per_day() {
    let app = app(50, &[]);
    with_limits(&app, |l| l.orders_1d = 1);
    let (_, info) = send(&app, &public("/api/v3/exchangeInfo", ""), NOW);
    let limits = info["rateLimits"].as_array().unwrap();
    assert!(limits.contains(&json!({"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":1})));
    let (reply, _) = send(&app, &stop_limit("s1"), NOW);
    assert_eq!(reply.header("X-MBX-ORDER-COUNT-1D"), Some("1"));
    let (reply, v) = send(&app, &stop_limit("s2"), NOW + 1_000);
    assert_eq!((reply.status, v["code"].as_i64()), (429, Some(-1015)));
    assert_eq!(v["msg"], "Too many new orders; current limit is 1 orders per DAY.");
    let day_end = NOW - NOW % 86_400_000 + 86_400_000;
    assert_eq!(reply.header("Retry-After"), Some(((day_end - NOW - 1_000) / 1000).to_string().as_str()));
}

#[test]
fn order_responses_show_the_stp_mode_in_effect_the_symbols_default_when_none_was_sent() {
    let app = app(50, &[]);
    let (_, info) = send(&app, &public("/api/v3/exchangeInfo", "symbol=BTCUSDT"), NOW);
    assert_eq!(info["symbols"][0]["defaultSelfTradePreventionMode"], "EXPIRE_MAKER");
    let (_, v) = send(&app, &market("m1"), NOW);
    assert_eq!(v["selfTradePreventionMode"], "EXPIRE_MAKER");
    let taker = order(&[
        ("symbol", "BTCUSDT"),
        ("side", "SELL"),
        ("type", "STOP_LOSS_LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.001"),
        ("price", "60000"),
        ("stopPrice", "60100"),
        ("newClientOrderId", "s1"),
        ("newOrderRespType", "RESULT"),
        ("selfTradePreventionMode", "EXPIRE_TAKER"),
    ]);
    assert_eq!(send(&app, &taker, NOW).1["selfTradePreventionMode"], "EXPIRE_TAKER");
    assert_eq!(send(&app, &query("s1"), NOW).1["selfTradePreventionMode"], "EXPIRE_TAKER");
    assert_eq!(send(&app, &query("m1"), NOW).1["selfTradePreventionMode"], "EXPIRE_MAKER");
    let cancel = signed("DELETE", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "s1")], NOW);
    assert_eq!(send(&app, &cancel, NOW).1["selfTradePreventionMode"], "EXPIRE_TAKER");
}

#[test]
fn an_stp_mode_the_symbol_does_not_allow_is_minus_1130() {
    let mut app = app(50, &[]);
    let mut stp = crate::stp::StpBook::default();
    stp.set_symbol("BTCUSDT", "EXPIRE_MAKER", &["EXPIRE_MAKER", "EXPIRE_BOTH"]);
    app.stp = Arc::new(stp);
    let call = order(&[
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.001"),
        ("selfTradePreventionMode", "EXPIRE_TAKER"),
    ]);
    assert_eq!(code(&app, &call), (400, -1130));
    let (_, info) = send(&app, &public("/api/v3/exchangeInfo", "symbol=BTCUSDT"), NOW);
    assert_eq!(info["symbols"][0]["allowedSelfTradePreventionModes"], json!(["EXPIRE_MAKER", "EXPIRE_BOTH"]));
}

#[test]
fn stream_events_carry_each_orders_time_in_force_stp_mode_and_expiry_reason() {
    let app = app(50, &[]);
    let events = subscribe(&app);
    send(&app, &sol_limit("BUY", "149.00", "IOC", "i1"), NOW);
    let taker = order(&[
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.001"),
        ("selfTradePreventionMode", "EXPIRE_TAKER"),
    ]);
    send(&app, &taker, NOW);
    let pushed: Vec<Value> =
        events.try_iter().map(|m| serde_json::from_str::<Value>(&m).unwrap()["event"].clone()).collect();
    let ioc: Vec<&Value> = pushed.iter().filter(|e| e["c"] == "i1").collect();
    assert!(ioc.iter().all(|e| e["f"] == "IOC" && e["V"] == "EXPIRE_MAKER"), "{ioc:?}");
    assert_eq!(ioc.last().unwrap()["eR"], "UNFILLED_IOC_QUANTITY_EXPIRED");
    let market = pushed.iter().find(|e| e["s"] == "BTCUSDT").unwrap();
    assert_eq!((market["f"].as_str(), market["V"].as_str()), (Some("GTC"), Some("EXPIRE_TAKER")));
}
