use super::*;
use crate::domain::money::Decimal;
use crate::domain::order::{ExchangeOrderType, ExchangeStatus, Fill, OrderReport, Side};
use crate::domain::symbol::SymbolRules;
use crate::exchange::{Balance, BookTicker, NewOrder};
use serde_json::{json, Value};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

const FULL: &str = r#"{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,"clientOrderId":"6gCrw2kRUAF9CvJDGP16IP","transactTime":1507725176595,
 "price":"0.00000000","origQty":"10.00000000","executedQty":"10.00000000","origQuoteOrderQty":"0.000000",
 "cummulativeQuoteQty":"10.00000000","status":"FILLED","timeInForce":"GTC","type":"MARKET","side":"SELL",
 "workingTime":1507725176595,"selfTradePreventionMode":"NONE",
 "fills":[
{"price":"4000.00000000","qty":"1.00000000","commission":"4.00000000","commissionAsset":"USDT","tradeId":56},
{"price":"3999.00000000","qty":"5.00000000","commission":"19.99500000","commissionAsset":"USDT","tradeId":57}]}"#;

const GET_ORDER: &str = r#"{"symbol":"LTCBTC","orderId":1,"orderListId":-1,"clientOrderId":"myOrder1","price":"0.1","origQty":"1.0",
 "executedQty":"0.0","cummulativeQuoteQty":"0.0","status":"NEW","timeInForce":"GTC","type":"LIMIT","side":"BUY",
 "stopPrice":"0.0","icebergQty":"0.0","time":1499827319559,"updateTime":1499827319559,"isWorking":true,
 "workingTime":1499827319559,"origQuoteOrderQty":"0.000000","selfTradePreventionMode":"NONE"}"#;

const CANCEL: &str = r#"{"symbol":"LTCBTC","origClientOrderId":"myOrder1","orderId":4,"orderListId":-1,"clientOrderId":"cancelMyOrder1",
 "transactTime":1684804350068,"price":"2.00000000","origQty":"1.00000000","executedQty":"0.00000000",
 "origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"0.00000000","status":"CANCELED","timeInForce":"GTC",
 "type":"LIMIT","side":"BUY","selfTradePreventionMode":"NONE"}"#;

const DELETE_OPEN: &str = r#"[{"symbol":"BTCUSDT","origClientOrderId":"E6APeyTJvkMvLMYMqu1KQ4","orderId":11,"orderListId":-1,
  "clientOrderId":"pXLV6Hz6mprAcVYpVMTGgx","transactTime":1684804350068,"price":"0.089853","origQty":"0.178622",
  "executedQty":"0.000000","origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"0.000000","status":"CANCELED",
  "timeInForce":"GTC","type":"LIMIT","side":"BUY","selfTradePreventionMode":"NONE"},
 {"orderListId":1929,"contingencyType":"OCO","listStatusType":"ALL_DONE","listOrderStatus":"ALL_DONE",
  "listClientOrderId":"2inzWQdDvZLHbbAmAozX2N","transactionTime":1585230948299,"symbol":"BTCUSDT",
  "orders":[{"symbol":"BTCUSDT","orderId":20,"clientOrderId":"CwOOIPHSmYywx6jZX77TdL"}],
  "orderReports":[{"symbol":"BTCUSDT","origClientOrderId":"GEOUqKl4bD0SJtgZWuI4Qr","orderId":20,"orderListId":1929,
"clientOrderId":"pXLV6Hz6mprAcVYpVMTGgx","transactTime":1585230948299,"price":"10.00000000","origQty":"1.00000000",
"executedQty":"0.00000000","cummulativeQuoteQty":"0.00000000","status":"CANCELED","timeInForce":"GTC",
"type":"STOP_LOSS_LIMIT","side":"SELL","stopPrice":"10.50000000","icebergQty":"0.00000000"},
{"...":"elided"}]}]"#;

const BTCUSDT: &str = r#"{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","baseAssetPrecision":8,"quoteAsset":"USDT",
 "quotePrecision":8,"quoteAssetPrecision":8,"baseCommissionPrecision":8,"quoteCommissionPrecision":8,
 "orderTypes":["LIMIT","LIMIT_MAKER","MARKET","STOP_LOSS_LIMIT","TAKE_PROFIT_LIMIT"],
 "icebergAllowed":true,"ocoAllowed":true,"quoteOrderQtyMarketAllowed":true,"allowTrailingStop":true,
 "cancelReplaceAllowed":true,"isSpotTradingAllowed":true,"isMarginTradingAllowed":true,
 "filters":[
  {"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"0.01000000"},
  {"filterType":"LOT_SIZE","minQty":"0.00001000","maxQty":"9000.00000000","stepSize":"0.00001000"},
  {"filterType":"ICEBERG_PARTS","limit":10},
  {"filterType":"MARKET_LOT_SIZE","minQty":"0.00000000","maxQty":"128.52621715","stepSize":"0.00000000"},
  {"filterType":"TRAILING_DELTA","minTrailingAboveDelta":10,"maxTrailingAboveDelta":2000,"minTrailingBelowDelta":10,"maxTrailingBelowDelta":2000},
  {"filterType":"PERCENT_PRICE_BY_SIDE","bidMultiplierUp":"5","bidMultiplierDown":"0.2","askMultiplierUp":"5","askMultiplierDown":"0.2","avgPriceMins":5},
  {"filterType":"NOTIONAL","minNotional":"5.00000000","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5},
  {"filterType":"MAX_NUM_ORDERS","maxNumOrders":200},
  {"filterType":"MAX_NUM_ALGO_ORDERS","maxNumAlgoOrders":5}],
 "permissions":["SPOT","MARGIN","TRD_GRP_004"],
 "defaultSelfTradePreventionMode":"EXPIRE_MAKER","allowedSelfTradePreventionModes":["EXPIRE_TAKER","EXPIRE_MAKER","EXPIRE_BOTH"]}"#;

const ACCOUNT: &str = r#"{"makerCommission":15,"takerCommission":15,"buyerCommission":0,"sellerCommission":0,
 "commissionRates":{"maker":"0.00150000","taker":"0.00150000","buyer":"0.00000000","seller":"0.00000000"},
 "canTrade":true,"canWithdraw":true,"canDeposit":true,"brokered":false,"requireSelfTradePrevention":false,
 "preventSor":false,"updateTime":123456789,"accountType":"SPOT",
 "balances":[{"asset":"BTC","free":"4723846.89208129","locked":"0.00000000"}],"permissions":["SPOT"],"uid":354937868}"#;

fn market_sell() -> NewOrder {
    NewOrder {
        symbol: "BTCUSDT".into(),
        side: Side::Sell,
        order_type: ExchangeOrderType::Market,
        quantity: d("10"),
        price: None,
        stop_price: None,
        client_order_id: "6gCrw2kRUAF9CvJDGP16IP".into(),
    }
}

#[test]
fn full_placement_response_parses_with_fills_and_decimal_amounts() {
    let r = parse_order(FULL).unwrap();
    assert_eq!(r.symbol, "BTCUSDT");
    assert_eq!(r.exchange_order_id, 28);
    assert_eq!(r.client_order_id, "6gCrw2kRUAF9CvJDGP16IP");
    assert_eq!(r.side, Side::Sell);
    assert_eq!(r.order_type, ExchangeOrderType::Market);
    assert_eq!(r.status, ExchangeStatus::Filled);
    assert_eq!(r.orig_qty, d("10"));
    assert_eq!(r.executed_qty, d("10"));
    assert_eq!(r.cum_quote_qty, d("10"));
    assert_eq!(r.price, Decimal::ZERO);
    assert_eq!(r.stop_price, Decimal::ZERO);
    assert_eq!(r.time_ms, 1507725176595);
    assert_eq!(r.fills.len(), 2);
    assert_eq!(r.fills[1], Fill::new(d("3999"), d("5"), d("19.995"), "USDT", 57));
    assert_eq!(r.commission_in("USDT"), d("23.995"));
}

#[test]
fn ack_placement_response_takes_the_rest_from_the_order_sent() {
    let ack = r#"{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,"clientOrderId":"6gCrw2kRUAF9CvJDGP16IP","transactTime":1507725176595}"#;
    let r = parse_placement(ack, &market_sell()).unwrap();
    assert_eq!(r.status, ExchangeStatus::New);
    assert_eq!(r.side, Side::Sell);
    assert_eq!(r.orig_qty, d("10"));
    assert_eq!(r.executed_qty, Decimal::ZERO);
    assert!(r.fills.is_empty());
    // Without the order sent, an ACK is not a full report.
    assert!(parse_order(ack).is_err());
}

#[test]
fn get_order_response_parses_with_stop_price_and_update_time() {
    let r = parse_order(GET_ORDER).unwrap();
    assert_eq!(r.client_order_id, "myOrder1");
    assert_eq!(r.status, ExchangeStatus::New);
    assert_eq!(r.order_type, ExchangeOrderType::Limit);
    assert_eq!(r.price, d("0.1"));
    assert_eq!(r.orig_qty, d("1"));
    assert_eq!(r.stop_price, Decimal::ZERO);
    assert_eq!(r.time_ms, 1499827319559);
    assert!(r.fills.is_empty());
}

#[test]
fn cancel_response_reports_the_orders_client_id_not_the_cancels() {
    let r = parse_order(CANCEL).unwrap();
    assert_eq!(r.client_order_id, "myOrder1");
    assert_eq!(r.exchange_order_id, 4);
    assert_eq!(r.status, ExchangeStatus::Canceled);
    assert_eq!(r.time_ms, 1684804350068);
}

#[test]
fn delete_open_orders_flattens_order_lists_into_their_reports() {
    let orders = parse_orders(DELETE_OPEN).unwrap();
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0].client_order_id, "E6APeyTJvkMvLMYMqu1KQ4");
    assert_eq!(orders[0].orig_qty, d("0.178622"));
    assert_eq!(orders[1].client_order_id, "GEOUqKl4bD0SJtgZWuI4Qr");
    assert_eq!(orders[1].order_type, ExchangeOrderType::StopLossLimit);
    assert_eq!(orders[1].stop_price, d("10.5"));
    assert_eq!(parse_orders("[]").unwrap(), vec![]);
}

#[test]
fn btcusdt_exchange_info_entry_gives_filters_and_no_plain_stop_loss() {
    let value: Value = serde_json::from_str(BTCUSDT).unwrap();
    let r = parse_symbol(&value).unwrap();
    assert_eq!(r.symbol, "BTCUSDT");
    assert_eq!(r.base_asset, "BTC");
    assert_eq!(r.quote_asset, "USDT");
    assert!(r.trading);
    assert_eq!(r.tick_size, d("0.01"));
    assert_eq!(r.min_price, d("0.01"));
    assert_eq!(r.max_price, d("1000000"));
    assert_eq!(r.step_size, d("0.00001"));
    assert_eq!(r.min_qty, d("0.00001"));
    assert_eq!(r.max_qty, d("9000"));
    assert_eq!(r.min_notional, d("5"));
    assert_eq!(r.max_num_algo_orders, Some(5));
    assert!(!r.allows(ExchangeOrderType::StopLoss));
    assert!(r.allows(ExchangeOrderType::StopLossLimit));
    assert!(r.allows(ExchangeOrderType::Market));
    assert_eq!(r.order_types.len(), 5);
}

#[test]
fn legacy_min_notional_is_read_and_halted_symbols_are_not_trading() {
    let value = json!({
        "symbol": "OLDBTC", "status": "HALT", "baseAsset": "OLD", "quoteAsset": "BTC",
        "orderTypes": ["MARKET", "SOMETHING_NEW"],
        "filters": [{"filterType": "MIN_NOTIONAL", "minNotional": "0.00010000",
                     "applyToMarket": true, "avgPriceMins": 5}]
    });
    let r = parse_symbol(&value).unwrap();
    assert!(!r.trading);
    assert_eq!(r.min_notional, d("0.0001"));
    assert_eq!(r.order_types, vec![ExchangeOrderType::Market]);
    assert_eq!(r.max_num_algo_orders, None);
}

#[test]
fn exchange_info_reads_rate_limits_and_skips_malformed_symbols() {
    let body = format!(
        r#"{{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[
          {{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000}},
          {{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100}},
          {{"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":200000}}],
          "exchangeFilters":[],"symbols":[{BTCUSDT},{{"symbol":"BAD","status":"TRADING"}}]}}"#
    );
    let info = parse_exchange_info(&body).unwrap();
    assert_eq!(info.server_time_ms, 1565246363776);
    assert_eq!(info.symbols.len(), 1);
    assert_eq!(info.symbols[0].symbol, "BTCUSDT");
    let modes = ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"].map(String::from).to_vec();
    assert_eq!(info.allowed_stp_modes, vec![("BTCUSDT".to_string(), modes)]);
    assert_eq!(find_rate_limit(&info.rate_limits, "ORDERS", "SECOND", 10), Some(100));
    assert_eq!(find_rate_limit(&info.rate_limits, "REQUEST_WEIGHT", "MINUTE", 1), Some(6000));
    assert!(parse_exchange_info(r#"{"rateLimits":[]}"#).is_err());
}

#[test]
fn account_and_book_ticker_and_time_parse() {
    assert_eq!(
        parse_account(ACCOUNT).unwrap(),
        vec![Balance { asset: "BTC".into(), free: d("4723846.89208129"), locked: Decimal::ZERO }]
    );
    let t = parse_book_ticker(
        r#"{"symbol":"LTCBTC","bidPrice":"4.00000000","bidQty":"431.00000000","askPrice":"4.00000200","askQty":"9.00000000"}"#,
    )
    .unwrap();
    assert_eq!(t.bid, d("4"));
    assert_eq!(t.ask, d("4.000002"));
    assert_eq!(t.ask_qty, d("9"));
    assert_eq!(parse_server_time(r#"{"serverTime": 1499827319559}"#).unwrap(), 1499827319559);
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    for body in [
        "",
        "null",
        "{}",
        "[1,2]",
        "<html>502</html>",
        r#"{"symbol":"X","orderId":"not a number","clientOrderId":"a"}"#,
        r#"{"symbol":"X","orderId":1,"clientOrderId":"a","status":"WEIRD","side":"BUY","type":"LIMIT","origQty":"1"}"#,
        r#"{"symbol":"X","orderId":1,"clientOrderId":"a","status":"NEW","side":"BUY","type":"LIMIT","origQty":1.5}"#,
        r#"{"symbol":"X","orderId":1,"clientOrderId":"a","status":"NEW","side":"BUY","type":"LIMIT","origQty":"abc"}"#,
    ] {
        assert!(parse_order(body).is_err(), "{body}");
        assert!(parse_placement(body, &market_sell()).is_err() || body == "{}");
    }
    assert!(parse_orders("{}").is_err());
    assert!(parse_orders(r#"[{"orderId":1}]"#).is_err());
    assert!(parse_account(r#"{"balances":[{"asset":"BTC","free":1}]}"#).is_err());
    assert!(parse_book_ticker("[]").is_err());
    assert!(parse_server_time(r#"{"serverTime":"now"}"#).is_err());
    assert_eq!(parse_error("<html/>"), None);
}

#[test]
fn every_wire_error_reads_as_one_sentence_and_only_malformed_json_has_a_source() {
    use std::error::Error;
    let malformed = parse_order("{").unwrap_err();
    assert!(malformed.to_string().starts_with("malformed order: "), "{malformed}");
    assert!(malformed.source().unwrap().downcast_ref::<serde_json::Error>().is_some());
    let unknown = parse_order(r#"{"symbol":"X","orderId":1,"clientOrderId":"a","side":"UP"}"#).unwrap_err();
    assert_eq!(unknown.to_string(), "unknown side 'UP'");
    let parts = |a: &str, b: &str| (a.to_string(), b.to_string());
    let (cancel_result, new_order_result) = parts("SUCCESS", "FAILURE");
    assert_eq!(
        WireError::CancelReplaceNotDone { cancel_result, new_order_result }.to_string(),
        "cancel-replace answered 2xx with cancelResult SUCCESS and newOrderResult FAILURE"
    );
    let (cancel_result, new_order_result) = parts("FAILURE", "FAILURE");
    assert_eq!(
        WireError::CancelReplaceNotStopOnFailure { cancel_result, new_order_result }.to_string(),
        "cancel-replace error with cancelResult FAILURE and newOrderResult FAILURE (not STOP_ON_FAILURE)"
    );
    assert_eq!(WireError::EventWithoutType.to_string(), "event without a type");
    assert_eq!(WireError::NeitherEventNorResponse.to_string(), "message is neither an event nor a response");
    assert!(unknown.source().is_none());
}

#[test]
fn an_order_missing_a_field_only_an_ack_may_omit_is_an_error_naming_it() {
    let head = r#""symbol":"X","orderId":1,"clientOrderId":"a""#;
    for (fields, missing) in [
        (r#""side":"BUY""#, "order without type"),
        (r#""side":"BUY","type":"LIMIT""#, "order without status"),
        (r#""side":"BUY","type":"LIMIT","status":"NEW""#, "order without origQty"),
    ] {
        let body = format!("{{{head},{fields}}}");
        assert_eq!(parse_order(&body).unwrap_err().to_string(), missing, "{body}");
    }
}

#[test]
fn error_bodies_parse_to_code_and_message() {
    assert_eq!(
        parse_error(r#"{"code":-2011,"msg":"Unknown order sent."}"#),
        Some((-2011, "Unknown order sent.".to_string()))
    );
    let v = error_json(-1121, "Invalid symbol.");
    assert_eq!(parse_error(&v.to_string()), Some((-1121, "Invalid symbol.".to_string())));
}

#[test]
fn decimals_are_written_with_eight_decimals_like_binance() {
    assert_eq!(fmt_decimal(d("0.001")), "0.00100000");
    assert_eq!(fmt_decimal(d("65000")), "65000.00000000");
    assert_eq!(fmt_decimal(d("0.123456789")), "0.12345679");
    assert_eq!(fmt_decimal(Decimal::ZERO), "0.00000000");
    assert_eq!(fmt_decimal(d("-1")), "-1.00000000");
    // Too large for 8 more digits: no panic, as many decimals as fit.
    assert!(fmt_decimal(Decimal::MAX).starts_with("79228162514264337593543950335"));
}

fn report(order_type: ExchangeOrderType, status: ExchangeStatus) -> OrderReport {
    OrderReport {
        symbol: "BTCUSDT".into(),
        exchange_order_id: 9_780_331_417,
        client_order_id: "g1a2b3c-Eabcdef0123456789abcdef0123".into(),
        side: Side::Buy,
        order_type,
        status,
        orig_qty: d("0.001"),
        executed_qty: d("0.001"),
        cum_quote_qty: d("65.00037"),
        price: d("0"),
        stop_price: d("63700.36"),
        fills: vec![Fill::new(d("65000.37"), d("0.001"), d("0.000001"), "BTC", 12345)],
        time_ms: 1737635557417,
        expiry_reason: None,
    }
}

#[test]
fn an_expired_orders_shapes_carry_its_expiry_reason_and_parse_back() {
    let r = OrderReport {
        expiry_reason: Some("INSUFFICIENT_LIQUIDITY".into()),
        ..report(ExchangeOrderType::Market, ExchangeStatus::Expired)
    };
    for shape in [order_json(&r, true), order_query_json(&r), cancel_json(&r, "c")] {
        assert_eq!(shape["expiryReason"], "INSUFFICIENT_LIQUIDITY");
        assert_eq!(parse_order(&shape.to_string()).unwrap().expiry_reason, r.expiry_reason);
    }
    // Only "when an order has expired".
    let filled = OrderReport { status: ExchangeStatus::Filled, ..r };
    assert!(order_json(&filled, true).get("expiryReason").is_none());
}

#[test]
fn order_json_round_trips_every_shape() {
    let r = report(ExchangeOrderType::StopLossLimit, ExchangeStatus::Filled);
    assert_eq!(parse_order(&order_json(&r, true).to_string()).unwrap(), r);

    let no_fills = OrderReport { fills: vec![], ..r.clone() };
    assert_eq!(parse_order(&order_json(&r, false).to_string()).unwrap(), no_fills);
    assert_eq!(parse_order(&order_query_json(&r).to_string()).unwrap(), no_fills);
    let cancel = cancel_json(&r, "cancel-1");
    assert_eq!(cancel["clientOrderId"], "cancel-1");
    assert_eq!(cancel["origClientOrderId"], r.client_order_id.as_str());
    assert_eq!(parse_order(&cancel.to_string()).unwrap(), no_fills);

    let list = Value::Array(vec![order_query_json(&r), order_query_json(&no_fills)]);
    assert_eq!(parse_orders(&list.to_string()).unwrap(), vec![no_fills.clone(), no_fills]);
    let ack = order_ack_json(&r);
    assert_eq!(ack["transactTime"], 1737635557417i64);
    assert!(ack.get("status").is_none());
}

#[test]
fn order_json_writes_binance_field_names_and_decimal_strings() {
    let r = report(ExchangeOrderType::Market, ExchangeStatus::Filled);
    let v = order_json(&r, true);
    assert_eq!(v["cummulativeQuoteQty"], "65.00037000");
    assert_eq!(v["origQty"], "0.00100000");
    assert_eq!(v["orderId"], 9_780_331_417i64);
    assert_eq!(v["type"], "MARKET");
    assert_eq!(v["fills"][0]["tradeId"], 12345);
    assert_eq!(v["fills"][0]["commissionAsset"], "BTC");
    // No stopPrice on a market order's placement response.
    assert!(v.get("stopPrice").is_none());
    let pending = report(ExchangeOrderType::Market, ExchangeStatus::PendingNew);
    assert_eq!(order_json(&pending, false)["workingTime"], -1);
}

#[test]
fn exchange_info_json_round_trips_symbol_rules_and_rate_limits() {
    let rules = vec![
        parse_symbol(&serde_json::from_str(BTCUSDT).unwrap()).unwrap(),
        SymbolRules {
            symbol: "ETHUSDT".into(),
            base_asset: "ETH".into(),
            quote_asset: "USDT".into(),
            trading: false,
            tick_size: d("0.01"),
            min_price: d("0.01"),
            max_price: d("100000"),
            step_size: d("0.0001"),
            min_qty: d("0.0001"),
            max_qty: d("9000"),
            min_notional: d("5"),
            order_types: vec![ExchangeOrderType::Market, ExchangeOrderType::StopLoss],
            max_num_algo_orders: None,
        },
    ];
    let limits = default_rate_limits();
    let body = exchange_info_json(&rules, &limits, 42).to_string();
    let info = parse_exchange_info(&body).unwrap();
    assert_eq!(info.symbols, rules);
    assert_eq!(info.rate_limits, limits);
    assert_eq!(info.server_time_ms, 42);
}

#[test]
fn book_ticker_account_and_time_json_round_trip() {
    let t = BookTicker {
        symbol: "BTCUSDT".into(),
        bid: d("65000.01"),
        bid_qty: d("1.5"),
        ask: d("65000.02"),
        ask_qty: d("0.25"),
    };
    assert_eq!(parse_book_ticker(&book_ticker_json(&t).to_string()).unwrap(), t);
    let balances = vec![
        Balance { asset: "BTC".into(), free: d("0.5"), locked: d("0.001") },
        Balance { asset: "USDT".into(), free: d("10000"), locked: Decimal::ZERO },
    ];
    assert_eq!(parse_account(&account_json(&balances).to_string()).unwrap(), balances);
    assert_eq!(parse_server_time(&server_time_json(7).to_string()).unwrap(), 7);
}

/// Binance's documented cancelReplace answers (STOP_ON_FAILURE), with a FULL new order.
const REPLACED: &str = r#"{"cancelResult":"SUCCESS","newOrderResult":"SUCCESS",
 "cancelResponse":{"symbol":"BTCUSDT","origClientOrderId":"DnLo3vTAQcjha43lAZhZ0y","orderId":9,"orderListId":-1,
  "clientOrderId":"osxN3JXAtJvKvCqGeMWMVR","transactTime":1684804350068,"price":"0.01000000","origQty":"0.00010000",
  "executedQty":"0.00000000","origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"0.00000000","status":"CANCELED",
  "timeInForce":"GTC","type":"STOP_LOSS_LIMIT","side":"SELL","stopPrice":"0.01100000","selfTradePreventionMode":"NONE"},
 "newOrderResponse":{"symbol":"BTCUSDT","orderId":10,"orderListId":-1,"clientOrderId":"6gCrw2kRUAF9CvJDGP16IP",
  "transactTime":1684804350070,"price":"0.00000000","origQty":"10.00000000","executedQty":"10.00000000",
  "origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"40000.00000000","status":"FILLED","timeInForce":"GTC",
  "type":"MARKET","side":"SELL","workingTime":1684804350070,"selfTradePreventionMode":"NONE",
  "fills":[{"price":"4000.00000000","qty":"10.00000000","commission":"4.00000000","commissionAsset":"USDT","tradeId":56}]}}"#;

const CANCEL_REFUSED: &str = r#"{"code":-2022,"msg":"Order cancel-replace failed.","data":{"cancelResult":"FAILURE",
 "newOrderResult":"NOT_ATTEMPTED","cancelResponse":{"code":-2011,"msg":"Unknown order sent."},"newOrderResponse":null}}"#;

fn place_refused() -> String {
    let cancel: Value = serde_json::from_str(REPLACED).map(|v: Value| v["cancelResponse"].clone()).unwrap();
    json!({"code": -2021, "msg": "Order cancel-replace partially failed.", "data": {
        "cancelResult": "SUCCESS",
        "newOrderResult": "FAILURE",
        "cancelResponse": cancel,
        "newOrderResponse": {"code": -2010, "msg": "Account has insufficient balance for requested action."},
    }})
    .to_string()
}

#[test]
fn cancel_replace_success_reads_the_cancel_as_a_cancel_and_the_new_order_as_a_placement() {
    let (cancelled, placed) = parse_cancel_replace(REPLACED, &market_sell()).unwrap();
    assert_eq!(cancelled.client_order_id, "DnLo3vTAQcjha43lAZhZ0y", "the order's id, not the cancel's");
    assert_eq!((cancelled.status, cancelled.order_type), (ExchangeStatus::Canceled, ExchangeOrderType::StopLossLimit));
    assert_eq!(cancelled.stop_price, d("0.011"));
    assert_eq!(placed.client_order_id, "6gCrw2kRUAF9CvJDGP16IP");
    assert_eq!((placed.status, placed.executed_qty), (ExchangeStatus::Filled, d("10")));
    assert_eq!(placed.fills.len(), 1);
    // An ACK new order takes the rest from the order sent, as a placement does.
    let mut v: Value = serde_json::from_str(REPLACED).unwrap();
    v["newOrderResponse"] = json!({"symbol":"BTCUSDT","orderId":10,"orderListId":-1,
        "clientOrderId":"6gCrw2kRUAF9CvJDGP16IP","transactTime":1_684_804_350_070_i64});
    let (_, placed) = parse_cancel_replace(&v.to_string(), &market_sell()).unwrap();
    assert_eq!((placed.status, placed.orig_qty, placed.side), (ExchangeStatus::New, d("10"), Side::Sell));
}

#[test]
fn cancel_replace_failures_say_which_part_failed() {
    assert_eq!(
        parse_cancel_replace_failure(CANCEL_REFUSED).unwrap(),
        CancelReplaceFailure::CancelRefused { code: -2011, msg: "Unknown order sent.".into() }
    );
    let Ok(CancelReplaceFailure::PlaceRefused { cancelled, code, msg }) =
        parse_cancel_replace_failure(&place_refused())
    else {
        panic!("a refused new order expected");
    };
    assert_eq!(
        (cancelled.client_order_id.as_str(), cancelled.status),
        ("DnLo3vTAQcjha43lAZhZ0y", ExchangeStatus::Canceled)
    );
    assert_eq!((code, msg.as_str()), (-2010, "Account has insufficient balance for requested action."));
    // A missing newOrderResponse reads as null.
    let without: String = CANCEL_REFUSED.replace(r#","newOrderResponse":null"#, "");
    assert!(matches!(parse_cancel_replace_failure(&without), Ok(CancelReplaceFailure::CancelRefused { .. })));
}

#[test]
fn garbled_cancel_replace_answers_are_errors_not_panics() {
    let mut results_failed: Value = serde_json::from_str(REPLACED).unwrap();
    results_failed["newOrderResult"] = json!("FAILURE");
    let mut cancel_not_an_order: Value = serde_json::from_str(REPLACED).unwrap();
    cancel_not_an_order["cancelResponse"] = json!({"code": -2011, "msg": "Unknown order sent."});
    let mut new_order_null: Value = serde_json::from_str(REPLACED).unwrap();
    new_order_null["newOrderResponse"] = Value::Null;
    for body in [
        String::new(),
        "{}".into(),
        "<html>oops</html>".into(),
        CANCEL_REFUSED.into(),
        results_failed.to_string(),
        cancel_not_an_order.to_string(),
        new_order_null.to_string(),
    ] {
        assert!(parse_cancel_replace(&body, &market_sell()).is_err(), "{body}");
    }

    let failure = |data: Value| json!({"code": -2021, "msg": "x", "data": data}).to_string();
    let refused_cancel = json!({"code": -2011, "msg": "Unknown order sent."});
    let v: Value = serde_json::from_str(REPLACED).unwrap();
    for body in [
        String::new(),
        r#"{"code":-2022,"msg":"Order cancel-replace failed."}"#.into(),
        r#"{"code":-2022,"msg":"x","data":null}"#.into(),
        REPLACED.into(),
        // ALLOW_FAILURE shapes, or both parts failed: not what STOP_ON_FAILURE answers.
        failure(json!({"cancelResult":"FAILURE","newOrderResult":"SUCCESS",
            "cancelResponse":refused_cancel,"newOrderResponse":v["newOrderResponse"]})),
        failure(json!({"cancelResult":"FAILURE","newOrderResult":"FAILURE",
            "cancelResponse":refused_cancel,"newOrderResponse":refused_cancel})),
        // A refused cancel whose response is no error; a done cancel whose response is none.
        failure(json!({"cancelResult":"FAILURE","newOrderResult":"NOT_ATTEMPTED",
            "cancelResponse":{"msg":"no code"},"newOrderResponse":null})),
        failure(json!({"cancelResult":"SUCCESS","newOrderResult":"FAILURE",
            "cancelResponse":refused_cancel,"newOrderResponse":refused_cancel})),
        failure(json!({"cancelResult":"SUCCESS","newOrderResult":"FAILURE",
            "cancelResponse":v["cancelResponse"],"newOrderResponse":null})),
    ] {
        assert!(parse_cancel_replace_failure(&body).is_err(), "{body}");
    }
}
