//! Behaviour of the simulator, one rule per test.

use super::*;
use crate::domain::money::Decimal;
use crate::domain::order::{ExchangeOrderType, ExchangeStatus, OrderReport, Side};
use crate::domain::symbol::SymbolRules;
use crate::exchange::{Exchange, ExchangeError, NewOrder};
use std::path::Path;
use ExchangeOrderType::{Limit, LimitMaker, Market, StopLoss, StopLossLimit, TakeProfit};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn sim() -> Simulator {
    Simulator::new(SimConfig::default())
}

fn rich_sim() -> Simulator {
    let mut config = SimConfig::default();
    config.starting_balances.insert("USDT".into(), d("10000000"));
    config.starting_balances.insert("BTC".into(), d("100"));
    Simulator::new(config)
}

fn order(symbol: &str, side: Side, order_type: ExchangeOrderType, qty: &str, client: &str) -> NewOrder {
    NewOrder {
        symbol: symbol.into(),
        side,
        order_type,
        quantity: d(qty),
        price: None,
        stop_price: None,
        client_order_id: client.into(),
    }
}

fn market(symbol: &str, side: Side, qty: &str, client: &str) -> NewOrder {
    order(symbol, side, Market, qty, client)
}

fn limit(symbol: &str, side: Side, qty: &str, price: &str, client: &str) -> NewOrder {
    NewOrder { price: Some(d(price)), ..order(symbol, side, Limit, qty, client) }
}

fn stop_limit(symbol: &str, side: Side, qty: &str, stop: &str, price: &str, client: &str) -> NewOrder {
    NewOrder { price: Some(d(price)), stop_price: Some(d(stop)), ..order(symbol, side, StopLossLimit, qty, client) }
}

fn stop_market(symbol: &str, side: Side, qty: &str, stop: &str, client: &str) -> NewOrder {
    NewOrder { stop_price: Some(d(stop)), ..order(symbol, side, StopLoss, qty, client) }
}

fn free(sim: &Simulator, asset: &str) -> Decimal {
    sim.balance(asset).unwrap().free
}

fn locked(sim: &Simulator, asset: &str) -> Decimal {
    sim.balance(asset).unwrap().locked
}

fn refusal<T: std::fmt::Debug>(result: Result<T, SimError>) -> (u16, i64, String) {
    let e = result.unwrap_err();
    (e.http_status, e.code, e.msg)
}

fn avg_price(r: &OrderReport) -> Decimal {
    r.cum_quote_qty / r.executed_qty
}

// ---- market orders --------------------------------------------------------------------

#[test]
fn market_buy_fills_at_the_ask_and_debits_the_quote_balance() {
    let mut sim = sim();
    let r = sim.place(&market("BTCUSDT", Side::Buy, "0.01", "b1")).unwrap();
    assert_eq!(r.status, ExchangeStatus::Filled);
    assert_eq!(r.fills.len(), 1);
    assert_eq!(r.fills[0].price, d("65000.00"));
    assert_eq!(r.executed_qty, d("0.01"));
    assert_eq!(r.cum_quote_qty, d("650"));
    assert_eq!(free(&sim, "USDT"), d("99350"));
}

#[test]
fn market_buy_pays_commission_in_the_base_asset() {
    let mut sim = sim();
    let r = sim.place(&market("BTCUSDT", Side::Buy, "0.01", "b1")).unwrap();
    assert_eq!(r.fills[0].commission, d("0.00001"));
    assert_eq!(r.fills[0].commission_asset, "BTC");
    assert_eq!(free(&sim, "BTC"), d("1.00999"));
}

#[test]
fn market_sell_pays_commission_in_the_quote_asset() {
    let mut sim = sim();
    let r = sim.place(&market("BTCUSDT", Side::Sell, "0.01", "s1")).unwrap();
    assert_eq!(r.fills[0].price, d("64999.99"));
    assert_eq!(r.fills[0].commission, d("0.6499999"));
    assert_eq!(r.fills[0].commission_asset, "USDT");
    assert_eq!(free(&sim, "BTC"), d("0.99"));
    assert_eq!(free(&sim, "USDT"), d("100000") + d("649.9999") - d("0.6499999"));
}

#[test]
fn large_market_buy_walks_the_book_and_slips() {
    let mut sim = rich_sim();
    let r = sim.place(&market("BTCUSDT", Side::Buy, "2", "big")).unwrap();
    assert_eq!(r.status, ExchangeStatus::Filled);
    assert!(r.fills.len() > 2, "{} fills", r.fills.len());
    assert!(r.fills.windows(2).all(|w| w[1].price > w[0].price));
    assert!(avg_price(&r) > d("65000"));
    let sum: Decimal = r.fills.iter().map(|f| f.price * f.qty).sum();
    assert_eq!(r.cum_quote_qty, sum);
}

#[test]
fn market_order_larger_than_the_book_expires_partly_filled() {
    let mut sim = rich_sim();
    let book_asks: Decimal = sim.depth("BTCUSDT", 100).unwrap().1.iter().map(|l| l.1).sum();
    let r = sim.place(&market("BTCUSDT", Side::Buy, "50", "huge")).unwrap();
    assert_eq!(r.status, ExchangeStatus::Expired);
    assert_eq!(r.expiry_reason.as_deref(), Some("INSUFFICIENT_LIQUIDITY"));
    assert_eq!(r.executed_qty, book_asks);
    assert!(r.executed_qty < r.orig_qty);
    assert_eq!(r.fills.len(), LEVELS);
}

#[test]
fn liquidity_taken_by_a_market_order_is_replenished() {
    let mut sim = rich_sim();
    let before = sim.depth("BTCUSDT", 20).unwrap();
    sim.place(&market("BTCUSDT", Side::Buy, "1", "b")).unwrap();
    assert_eq!(sim.depth("BTCUSDT", 20).unwrap(), before);
}

#[test]
fn book_has_levels_a_dollar_apart_around_a_one_tick_spread() {
    let sim = sim();
    let (bids, asks) = sim.depth("BTCUSDT", 5).unwrap();
    assert_eq!(bids.len(), 5);
    assert_eq!(asks[0].0 - bids[0].0, d("0.01"));
    assert_eq!(asks[1].0 - asks[0].0, d("1"));
    assert!(asks.iter().all(|l| l.1 >= d("0.05") && l.1 <= d("0.5")));
}

#[test]
fn trades_are_listed_with_account_wide_increasing_ids() {
    let mut sim = sim();
    sim.place(&market("BTCUSDT", Side::Buy, "0.01", "a")).unwrap();
    sim.place(&market("ETHUSDT", Side::Buy, "0.1", "b")).unwrap();
    sim.place(&market("BTCUSDT", Side::Sell, "0.01", "c")).unwrap();
    let trades = sim.my_trades("BTCUSDT").unwrap();
    assert_eq!(trades.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 3]);
    assert!(trades[0].is_buyer && !trades[1].is_buyer);
    assert_eq!(trades[0].quote_qty, d("650"));
}

// ---- knobs ------------------------------------------------------------------------------

#[test]
fn extra_slippage_prices_fills_worse_by_the_given_bps() {
    let mut sim = Simulator::new(SimConfig { extra_slippage_bps: d("10"), ..SimConfig::default() });
    let r = sim.place(&market("BTCUSDT", Side::Buy, "0.01", "b")).unwrap();
    assert_eq!(r.fills[0].price, d("65065.00"));
}

#[test]
fn extra_slippage_prices_a_sell_lower_by_the_given_bps_rounded_down_to_the_tick() {
    let mut sim = Simulator::new(SimConfig { extra_slippage_bps: d("10"), ..SimConfig::default() });
    let r = sim.place(&market("BTCUSDT", Side::Sell, "0.01", "s")).unwrap();
    // 64999.99 - 0.1 % = 64934.99001
    assert_eq!(r.fills[0].price, d("64934.99"));
}

#[test]
fn extra_slippage_never_prices_a_limit_buy_above_its_limit() {
    let mut sim = Simulator::new(SimConfig { extra_slippage_bps: d("10"), ..SimConfig::default() });
    let r = sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "65010.00", "l")).unwrap();
    assert_eq!(r.status, ExchangeStatus::Filled);
    assert_eq!(r.fills[0].price, d("65010.00"));
}

#[test]
fn extra_slippage_never_prices_a_limit_sell_below_its_limit() {
    let mut sim = Simulator::new(SimConfig { extra_slippage_bps: d("10"), ..SimConfig::default() });
    let r = sim.place(&limit("BTCUSDT", Side::Sell, "0.01", "64990.00", "l")).unwrap();
    assert_eq!(r.status, ExchangeStatus::Filled);
    assert_eq!(r.fills[0].price, d("64990.00"));
}

#[test]
fn partial_fill_knob_makes_market_orders_expire_part_filled() {
    let mut sim = Simulator::new(SimConfig { partial_fill_probability: 1.0, ..SimConfig::default() });
    let r = sim.place(&market("BTCUSDT", Side::Buy, "0.1", "b")).unwrap();
    assert_eq!(r.status, ExchangeStatus::Expired);
    assert!(r.executed_qty > Decimal::ZERO && r.executed_qty < d("0.1"));
}

#[test]
fn reject_knob_refuses_valid_orders_with_2010() {
    let mut sim = Simulator::new(SimConfig { reject_probability: 1.0, ..SimConfig::default() });
    let (status, code, _) = refusal(sim.place(&market("BTCUSDT", Side::Buy, "0.01", "b")));
    assert_eq!((status, code), (400, -2010));
    assert!(sim.all_orders("BTCUSDT").unwrap().is_empty());
}

// ---- refusals -----------------------------------------------------------------------------

#[test]
fn unknown_symbol_is_invalid() {
    let r = sim().place(&market("DOGEUSDT", Side::Buy, "1", "x"));
    assert_eq!(refusal(r), (400, -1121, "Invalid symbol.".into()));
}

#[test]
fn stop_loss_on_btcusdt_is_not_supported() {
    let r = sim().place(&stop_market("BTCUSDT", Side::Sell, "0.01", "60000.00", "s"));
    assert_eq!(refusal(r), (400, -2010, "Stop loss orders are not supported for this symbol.".into()));
}

#[test]
fn quantity_off_the_step_fails_lot_size() {
    let r = sim().place(&market("BTCUSDT", Side::Buy, "0.000015", "x"));
    assert_eq!(refusal(r), (400, -1013, "Filter failure: LOT_SIZE".into()));
}

#[test]
fn quantity_below_min_qty_fails_lot_size() {
    let r = sim().place(&market("ETHUSDT", Side::Buy, "0", "x"));
    assert_eq!(refusal(r), (400, -1013, "Filter failure: LOT_SIZE".into()));
}

#[test]
fn quantity_above_max_qty_fails_lot_size() {
    let r = sim().place(&market("BTCUSDT", Side::Buy, "9000.1", "x"));
    assert_eq!(refusal(r), (400, -1013, "Filter failure: LOT_SIZE".into()));
}

#[test]
fn price_off_the_tick_fails_price_filter() {
    let r = sim().place(&limit("BTCUSDT", Side::Buy, "0.01", "60000.001", "x"));
    assert_eq!(refusal(r), (400, -1013, "Filter failure: PRICE_FILTER".into()));
}

#[test]
fn stop_price_off_the_tick_fails_price_filter() {
    let r = sim().place(&stop_limit("BTCUSDT", Side::Sell, "0.01", "60000.005", "59000", "x"));
    assert_eq!(refusal(r), (400, -1013, "Filter failure: PRICE_FILTER".into()));
}

#[test]
fn market_notional_below_minimum_fails_notional() {
    let r = sim().place(&market("BTCUSDT", Side::Buy, "0.00007", "x"));
    assert_eq!(refusal(r), (400, -1013, "Filter failure: NOTIONAL".into()));
}

#[test]
fn limit_notional_uses_the_limit_price() {
    let r = sim().place(&limit("SOLUSDT", Side::Buy, "1", "4.99", "x"));
    assert_eq!(refusal(r), (400, -1013, "Filter failure: NOTIONAL".into()));
}

#[test]
fn buy_beyond_the_quote_balance_is_refused() {
    let r = sim().place(&market("BTCUSDT", Side::Buy, "1.6", "x"));
    assert_eq!(refusal(r), (400, -2010, "Account has insufficient balance for requested action.".into()));
}

#[test]
fn sell_beyond_the_base_balance_is_refused() {
    let r = sim().place(&market("BTCUSDT", Side::Sell, "1.00001", "x"));
    assert_eq!(refusal(r), (400, -2010, "Account has insufficient balance for requested action.".into()));
}

#[test]
fn sell_stop_above_the_bid_would_trigger_immediately() {
    let r = sim().place(&stop_limit("BTCUSDT", Side::Sell, "0.01", "65000.00", "64900.00", "s"));
    assert_eq!(refusal(r), (400, -2010, "Order would trigger immediately.".into()));
}

#[test]
fn buy_stop_below_the_ask_would_trigger_immediately() {
    let r = sim().place(&stop_market("ETHUSDT", Side::Buy, "0.1", "2999.00", "s"));
    assert_eq!(refusal(r), (400, -2010, "Order would trigger immediately.".into()));
}

#[test]
fn sixth_open_stop_on_a_symbol_fails_max_num_algo_orders() {
    let mut sim = sim();
    for i in 0..5 {
        sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.01", "60000.00", "59900.00", &format!("s{i}"))).unwrap();
    }
    let r = sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.01", "60000.00", "59900.00", "s5"));
    assert_eq!(refusal(r), (400, -1013, "Filter failure: MAX_NUM_ALGO_ORDERS".into()));
}

#[test]
fn algo_limit_is_per_symbol() {
    let mut sim = sim();
    for i in 0..5 {
        sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.01", "60000.00", "59900.00", &format!("s{i}"))).unwrap();
    }
    let r = sim.place(&stop_market("ETHUSDT", Side::Sell, "0.1", "2900.00", "e"));
    assert_eq!(r.unwrap().status, ExchangeStatus::New);
}

#[test]
fn duplicate_client_id_is_refused_while_the_first_order_is_open() {
    let mut sim = sim();
    sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "60000.00", "dup")).unwrap();
    let r = sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "60000.00", "dup"));
    assert_eq!(refusal(r), (400, -2010, "Duplicate order sent.".into()));
}

#[test]
fn client_id_can_be_reused_once_the_first_order_is_filled() {
    let mut sim = sim();
    let first = sim.place(&market("BTCUSDT", Side::Buy, "0.01", "again")).unwrap();
    let second = sim.place(&market("BTCUSDT", Side::Buy, "0.01", "again")).unwrap();
    assert!(second.exchange_order_id > first.exchange_order_id);
}

#[test]
fn client_id_can_be_reused_once_the_first_order_is_cancelled() {
    let mut sim = sim();
    sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "60000.00", "again")).unwrap();
    sim.cancel("BTCUSDT", OrderRef::ClientOrderId("again")).unwrap();
    let r = sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "60000.00", "again"));
    assert_eq!(r.unwrap().status, ExchangeStatus::New);
}

#[test]
fn illegal_client_id_is_refused() {
    let r = sim().place(&market("BTCUSDT", Side::Buy, "0.01", "has.dot"));
    assert_eq!(refusal(r).1, -1100);
}

#[test]
fn empty_client_id_is_refused() {
    let r = sim().place(&market("BTCUSDT", Side::Buy, "0.01", ""));
    assert_eq!(refusal(r), (400, -1118, "New client order ID was empty.".into()));
}

#[test]
fn market_order_with_a_price_is_refused_as_an_unneeded_parameter() {
    let r = sim().place(&NewOrder { price: Some(d("65000.00")), ..market("BTCUSDT", Side::Buy, "0.01", "m") });
    assert_eq!(refusal(r), (400, -1106, "Parameter 'price' sent when not required.".into()));
}

#[test]
fn stop_selling_more_than_the_free_base_is_refused_and_locks_nothing() {
    let mut sim = sim();
    let r = sim.place(&stop_limit("BTCUSDT", Side::Sell, "1.5", "60000.00", "59900.00", "s"));
    assert_eq!(refusal(r), (400, -2010, "Account has insufficient balance for requested action.".into()));
    assert_eq!(locked(&sim, "BTC"), Decimal::ZERO);
}

#[test]
fn limit_maker_that_would_take_is_refused() {
    let r =
        sim().place(&NewOrder { price: Some(d("65000.00")), ..order("BTCUSDT", Side::Buy, LimitMaker, "0.01", "m") });
    assert_eq!(refusal(r), (400, -2010, "Order would immediately match and take.".into()));
}

#[test]
fn limit_without_a_price_is_malformed() {
    let r = sim().place(&order("BTCUSDT", Side::Buy, Limit, "0.01", "l"));
    assert_eq!(refusal(r).1, -1102);
}

#[test]
fn query_of_an_unknown_order_says_it_does_not_exist() {
    let e = sim().query("BTCUSDT", OrderRef::ClientOrderId("nope")).unwrap_err();
    assert_eq!((e.code, e.msg.as_str()), (-2013, "Order does not exist."));
}

#[test]
fn cancel_of_an_unknown_order_is_unknown_order_sent() {
    let e = sim().cancel("BTCUSDT", OrderRef::OrderId(77)).unwrap_err();
    assert_eq!((e.code, e.msg.as_str()), (-2011, "Unknown order sent."));
}

#[test]
fn cancel_of_a_filled_order_is_unknown_order_sent() {
    let mut sim = sim();
    sim.place(&market("BTCUSDT", Side::Buy, "0.01", "m")).unwrap();
    let e = sim.cancel("BTCUSDT", OrderRef::ClientOrderId("m")).unwrap_err();
    assert_eq!(e.code, -2011);
}

#[test]
fn cancel_open_orders_with_nothing_open_is_unknown_order_sent() {
    let e = sim().cancel_open_orders("BTCUSDT").unwrap_err();
    assert_eq!((e.code, e.msg.as_str()), (-2011, "Unknown order sent."));
}

#[test]
fn refusals_convert_to_rejected_exchange_errors() {
    let e: ExchangeError = SimError::rejected(-2010, "Order would trigger immediately.").into();
    assert!(e.would_trigger_immediately());
    assert_eq!(
        e,
        ExchangeError::Rejected { http_status: 400, code: -2010, msg: "Order would trigger immediately.".into() }
    );
}

#[test]
fn a_refusal_reads_with_its_http_status_and_code() {
    assert_eq!(
        SimError::rejected(-2013, "Order does not exist.").to_string(),
        "HTTP 400 (-2013): Order does not exist."
    );
}

// ---- resting orders, stops and price moves ------------------------------------------------

#[test]
fn resting_sell_stop_locks_its_base_quantity() {
    let mut sim = sim();
    sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.4", "60000.00", "59900.00", "s")).unwrap();
    assert_eq!(locked(&sim, "BTC"), d("0.4"));
    assert_eq!(free(&sim, "BTC"), d("0.6"));
}

#[test]
fn cancelling_a_stop_releases_its_lock() {
    let mut sim = sim();
    sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.4", "60000.00", "59900.00", "s")).unwrap();
    let r = sim.cancel("BTCUSDT", OrderRef::ClientOrderId("s")).unwrap();
    assert_eq!(r.status, ExchangeStatus::Canceled);
    assert_eq!(locked(&sim, "BTC"), Decimal::ZERO);
    assert_eq!(free(&sim, "BTC"), d("1"));
}

#[test]
fn cancel_replace_releases_a_stop_and_sells_its_coins_in_one_request() {
    let mut sim = sim();
    sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.8", "60000.00", "59900.00", "s")).unwrap();
    let r = sim.cancel_replace("s", &market("BTCUSDT", Side::Sell, "0.8", "m")).unwrap();
    let SimReplaced::Both { cancelled, placed } = r else { panic!("both parts expected: {r:?}") };
    assert_eq!(cancelled.status, ExchangeStatus::Canceled);
    assert_eq!(placed.status, ExchangeStatus::Filled);
    assert_eq!(placed.executed_qty, d("0.8"));
    assert_eq!(locked(&sim, "BTC"), Decimal::ZERO);
}

#[test]
fn cancel_replace_of_an_order_that_is_gone_does_not_attempt_the_new_one() {
    let mut sim = sim();
    let r = sim.cancel_replace("nothing", &market("BTCUSDT", Side::Sell, "0.1", "m")).unwrap();
    let SimReplaced::CancelRefused(error) = r else { panic!("cancel refused expected: {r:?}") };
    assert_eq!(error.code, -2011);
    assert_eq!(refusal(sim.query("BTCUSDT", OrderRef::ClientOrderId("m"))).1, -2013);
}

#[test]
fn cancel_replace_whose_new_order_is_refused_still_cancels() {
    let mut sim = sim();
    sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.4", "60000.00", "59900.00", "s")).unwrap();
    let r = sim.cancel_replace("s", &market("BTCUSDT", Side::Sell, "2", "m")).unwrap();
    let SimReplaced::PlaceRefused { cancelled, error } = r else { panic!("new order refused expected: {r:?}") };
    assert_eq!(cancelled.status, ExchangeStatus::Canceled);
    assert_eq!(error.code, -2010);
    assert_eq!(locked(&sim, "BTC"), Decimal::ZERO);
}

#[test]
fn cancel_replace_failing_a_filter_changes_nothing() {
    let mut sim = sim();
    sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.4", "60000.00", "59900.00", "s")).unwrap();
    let r = sim.cancel_replace("s", &market("BTCUSDT", Side::Sell, "0.000001", "m"));
    assert_eq!(refusal(r).1, -1013);
    assert_eq!(locked(&sim, "BTC"), d("0.4"), "the stop is still there");
}

#[test]
fn cancel_replace_is_journaled_as_one_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.4", "60000.00", "59900.00", "s")).unwrap();
    sim.cancel_replace("s", &market("BTCUSDT", Side::Sell, "0.4", "m")).unwrap();
    drop(sim);
    let reopened = Simulator::open(&path, SimConfig::default()).unwrap();
    assert_eq!(reopened.query("BTCUSDT", OrderRef::ClientOrderId("s")).unwrap().status, ExchangeStatus::Canceled);
    assert_eq!(reopened.query("BTCUSDT", OrderRef::ClientOrderId("m")).unwrap().status, ExchangeStatus::Filled);
}

#[test]
fn locked_base_cannot_be_sold_again() {
    let mut sim = sim();
    sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.8", "60000.00", "59900.00", "s")).unwrap();
    let r = sim.place(&market("BTCUSDT", Side::Sell, "0.5", "m"));
    assert_eq!(refusal(r).1, -2010);
}

#[test]
fn stop_loss_limit_triggers_when_the_bid_falls_to_it_and_fills() {
    let mut sim = sim();
    sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.01", "64000.00", "63900.00", "s")).unwrap();
    let changed = sim.set_price("BTCUSDT", d("63950.00"), d("63950.01")).unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].status, ExchangeStatus::Filled);
    assert_eq!(changed[0].fills[0].price, d("63950.00"));
    let q = sim.query("BTCUSDT", OrderRef::ClientOrderId("s")).unwrap();
    assert_eq!(q.status, ExchangeStatus::Filled);
    assert_eq!(locked(&sim, "BTC"), Decimal::ZERO);
    assert_eq!(free(&sim, "BTC"), d("0.99"));
}

#[test]
fn stop_loss_limit_does_nothing_while_the_bid_stays_above() {
    let mut sim = sim();
    sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.01", "64000.00", "63900.00", "s")).unwrap();
    let changed = sim.set_price("BTCUSDT", d("64000.01"), d("64000.02")).unwrap();
    assert!(changed.is_empty());
    assert_eq!(sim.open_orders(Some("BTCUSDT")).unwrap().len(), 1);
}

#[test]
fn triggered_stop_limit_rests_when_the_book_gapped_below_its_price() {
    let mut sim = sim();
    sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.01", "64000.00", "63900.00", "s")).unwrap();
    let changed = sim.set_price("BTCUSDT", d("63000.00"), d("63000.01")).unwrap();
    assert_eq!(changed[0].status, ExchangeStatus::New);
    assert!(changed[0].fills.is_empty());
    let later = sim.set_price("BTCUSDT", d("63950.00"), d("63950.01")).unwrap();
    assert_eq!(later[0].status, ExchangeStatus::Filled);
    assert_eq!(later[0].fills[0].price, d("63900.00"));
}

#[test]
fn stop_loss_on_ethusdt_becomes_a_market_sell_when_triggered() {
    let mut sim = sim();
    sim.place(&stop_market("ETHUSDT", Side::Sell, "1", "2900.00", "s")).unwrap();
    let changed = sim.set_price("ETHUSDT", d("2899.00"), d("2899.01")).unwrap();
    assert_eq!(changed[0].status, ExchangeStatus::Filled);
    assert_eq!(changed[0].fills[0].price, d("2899.00"));
    assert_eq!(free(&sim, "ETH"), d("9"));
}

#[test]
fn take_profit_sell_becomes_a_market_sell_when_the_bid_rises_to_it() {
    let mut sim = sim();
    sim.place(&NewOrder { stop_price: Some(d("3100.00")), ..order("ETHUSDT", Side::Sell, TakeProfit, "1", "tp") })
        .unwrap();
    let changed = sim.set_price("ETHUSDT", d("3100.00"), d("3100.01")).unwrap();
    assert_eq!(changed[0].status, ExchangeStatus::Filled);
    assert_eq!(changed[0].fills[0].price, d("3100.00"));
    assert_eq!(free(&sim, "ETH"), d("9"));
}

#[test]
fn take_profit_buy_becomes_a_market_buy_when_the_ask_falls_to_it() {
    let mut sim = sim();
    sim.place(&NewOrder { stop_price: Some(d("2900.00")), ..order("ETHUSDT", Side::Buy, TakeProfit, "0.1", "tp") })
        .unwrap();
    assert_eq!(locked(&sim, "USDT"), d("290"));
    let changed = sim.set_price("ETHUSDT", d("2899.99"), d("2900.00")).unwrap();
    assert_eq!(changed[0].status, ExchangeStatus::Filled);
    assert_eq!(changed[0].fills[0].price, d("2900.00"));
    assert_eq!(free(&sim, "USDT"), d("99710"));
    assert_eq!(locked(&sim, "USDT"), Decimal::ZERO);
}

/// A simulator whose account holds only `usdt` of the quote asset.
fn sim_with_usdt(usdt: &str) -> Simulator {
    let mut config = SimConfig::default();
    config.starting_balances.insert("USDT".into(), d(usdt));
    Simulator::new(config)
}

#[test]
fn triggered_stop_buy_buys_only_what_the_free_balance_pays_for() {
    let mut sim = sim_with_usdt("15100");
    sim.place(&stop_market("SOLUSDT", Side::Buy, "100", "151.00", "s")).unwrap();
    // The market gaps through the stop: 100 SOL now cost more than the 15100 locked for them.
    let changed = sim.set_price("SOLUSDT", d("159.99"), d("160.00")).unwrap();
    let r = &changed[0];
    assert_eq!(r.status, ExchangeStatus::Expired);
    assert!(r.executed_qty > Decimal::ZERO && r.executed_qty < d("100"), "{}", r.executed_qty);
    assert!(r.fills.len() > 1, "the plan walked more than one level");
    assert_eq!(free(&sim, "USDT"), d("15100") - r.cum_quote_qty);
    let last_price = r.fills.last().unwrap().price;
    assert!(free(&sim, "USDT") < last_price * d("0.001"), "less than one more step is left unspent");
    assert_eq!(locked(&sim, "USDT"), Decimal::ZERO);
}

#[test]
fn triggered_stop_buy_that_cannot_pay_for_one_step_expires_with_nothing_bought() {
    let mut sim = sim_with_usdt("5.1017");
    sim.place(&stop_market("ETHUSDT", Side::Buy, "0.0017", "3001.00", "s")).unwrap();
    // At 60000 the 5.1017 locked at the stop price no longer pays for one step (0.0001 ETH).
    let changed = sim.set_price("ETHUSDT", d("59999.99"), d("60000.00")).unwrap();
    assert_eq!(changed[0].status, ExchangeStatus::Expired);
    assert_eq!(changed[0].expiry_reason.as_deref(), Some("INSUFFICIENT_LIQUIDITY"));
    assert_eq!(changed[0].executed_qty, Decimal::ZERO);
    assert!(changed[0].fills.is_empty());
    assert_eq!(free(&sim, "USDT"), d("5.1017"));
    assert_eq!(locked(&sim, "USDT"), Decimal::ZERO);
}

#[test]
fn resting_limit_buy_fills_at_its_price_when_the_ask_falls_to_it() {
    let mut sim = sim();
    let r = sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "64000.00", "l")).unwrap();
    assert_eq!(r.status, ExchangeStatus::New);
    assert_eq!(locked(&sim, "USDT"), d("640"));
    let changed = sim.set_price("BTCUSDT", d("63899.99"), d("63900.00")).unwrap();
    assert_eq!(changed[0].status, ExchangeStatus::Filled);
    assert_eq!(changed[0].fills[0].price, d("64000.00"));
    assert_eq!(locked(&sim, "USDT"), Decimal::ZERO);
    assert_eq!(free(&sim, "USDT"), d("99360"));
}

#[test]
fn marketable_limit_buy_fills_at_book_prices_up_to_its_limit() {
    let mut sim = rich_sim();
    let r = sim.place(&limit("BTCUSDT", Side::Buy, "100", "65002.00", "l")).unwrap();
    assert_eq!(r.status, ExchangeStatus::PartiallyFilled);
    assert_eq!(r.fills.len(), 3);
    assert!(r.fills.iter().all(|f| f.price <= d("65002.00")));
}

#[test]
fn set_price_refuses_a_bid_at_or_above_the_ask() {
    let e = sim().set_price("BTCUSDT", d("65000"), d("65000")).unwrap_err();
    assert_eq!(e.http_status, 400);
}

#[test]
fn random_walk_moves_prices_and_keeps_the_spread() {
    let mut sim = sim();
    let before = sim.book_ticker("BTCUSDT").unwrap();
    for _ in 0..10 {
        sim.random_walk_step().unwrap();
    }
    let after = sim.book_ticker("BTCUSDT").unwrap();
    assert_ne!(after.bid, before.bid);
    assert_eq!(after.ask - after.bid, before.ask - before.bid);
}

#[test]
fn random_walk_never_moves_a_bid_below_one_tick() {
    let mut sim = sim();
    sim.set_price("SOLUSDT", d("0.01"), d("0.02")).unwrap();
    for _ in 0..30 {
        sim.random_walk_step().unwrap();
        let top = sim.book_ticker("SOLUSDT").unwrap();
        assert!(top.bid >= d("0.01"), "bid {}", top.bid);
        assert_eq!(top.ask - top.bid, d("0.01"));
    }
}

#[test]
fn depth_lists_no_bid_level_at_or_below_zero() {
    let mut sim = sim();
    sim.set_price("SOLUSDT", d("0.01"), d("0.02")).unwrap();
    let (bids, asks) = sim.depth("SOLUSDT", 20).unwrap();
    assert_eq!(bids.iter().map(|l| l.0).collect::<Vec<_>>(), vec![d("0.01")]);
    assert_eq!(asks.len(), 20);
}

// ---- queries -------------------------------------------------------------------------------

#[test]
fn query_finds_an_order_by_client_id_and_by_order_id() {
    let mut sim = sim();
    let r = sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "60000.00", "q")).unwrap();
    let by_client = sim.query("BTCUSDT", OrderRef::ClientOrderId("q")).unwrap();
    let by_id = sim.query("BTCUSDT", OrderRef::OrderId(r.exchange_order_id)).unwrap();
    assert_eq!(by_client, by_id);
    assert!(by_client.fills.is_empty());
}

#[test]
fn cancel_open_orders_cancels_only_that_symbol() {
    let mut sim = sim();
    sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "60000.00", "a")).unwrap();
    sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "60000.00", "b")).unwrap();
    sim.place(&limit("ETHUSDT", Side::Buy, "0.1", "2000.00", "c")).unwrap();
    let cancelled = sim.cancel_open_orders("BTCUSDT").unwrap();
    assert_eq!(cancelled.len(), 2);
    assert!(cancelled.iter().all(|r| r.status == ExchangeStatus::Canceled));
    assert_eq!(sim.open_orders(None).unwrap().len(), 1);
    assert_eq!(locked(&sim, "USDT"), d("200"));
}

#[test]
fn all_orders_lists_open_and_closed_orders_by_id() {
    let mut sim = sim();
    sim.place(&market("BTCUSDT", Side::Buy, "0.01", "a")).unwrap();
    sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "60000.00", "b")).unwrap();
    let all = sim.all_orders("BTCUSDT").unwrap();
    let ids: Vec<&str> = all.iter().map(|o| o.client_order_id.as_str()).collect();
    assert_eq!(ids, vec!["a", "b"]);
}

#[test]
fn closed_order_history_is_bounded() {
    let mut sim = Simulator::new(SimConfig {
        starting_balances: [("USDT".to_string(), d("1000000000"))].into_iter().collect(),
        ..SimConfig::default()
    });
    for i in 0..CLOSED_ORDERS_KEPT + 5 {
        sim.place(&market("SOLUSDT", Side::Buy, "0.1", &format!("o{i}"))).unwrap();
    }
    assert_eq!(sim.all_orders("SOLUSDT").unwrap().len(), CLOSED_ORDERS_KEPT);
    assert!(sim.query("SOLUSDT", OrderRef::ClientOrderId("o0")).is_err());
    assert!(sim.query("SOLUSDT", OrderRef::ClientOrderId("o9")).is_ok());
    assert_eq!(sim.my_trades("SOLUSDT").unwrap().len(), TRADES_KEPT);
}

// ---- determinism and persistence ----------------------------------------------------------

fn script(sim: &mut Simulator) -> Vec<OrderReport> {
    let mut out = vec![
        sim.place(&market("BTCUSDT", Side::Buy, "0.7", "a")).unwrap(),
        sim.place(&market("ETHUSDT", Side::Sell, "3", "b")).unwrap(),
        sim.place(&stop_limit("BTCUSDT", Side::Sell, "0.5", "64000.00", "63000.00", "c")).unwrap(),
        sim.place(&limit("SOLUSDT", Side::Buy, "10", "149.50", "d")).unwrap(),
    ];
    for _ in 0..50 {
        out.extend(sim.random_walk_step().unwrap());
    }
    out.extend(sim.set_price("BTCUSDT", d("63500.00"), d("63500.01")).unwrap());
    out
}

fn without_times(mut reports: Vec<OrderReport>) -> Vec<OrderReport> {
    for r in &mut reports {
        r.time_ms = 0;
        for fill in &mut r.fills {
            fill.time_ms = 0;
        }
    }
    reports
}

#[test]
fn same_seed_and_orders_give_the_same_fills() {
    let config = SimConfig { partial_fill_probability: 0.5, seed: 7, ..SimConfig::default() };
    let a = script(&mut Simulator::new(config.clone()));
    let b = script(&mut Simulator::new(config));
    assert_eq!(without_times(a), without_times(b));
}

#[test]
fn different_seeds_give_different_books() {
    let a = Simulator::new(SimConfig { seed: 1, ..SimConfig::default() });
    let b = Simulator::new(SimConfig { seed: 2, ..SimConfig::default() });
    assert_ne!(a.depth("BTCUSDT", 20).unwrap(), b.depth("BTCUSDT", 20).unwrap());
}

/// Everything observable, for comparing two simulators.
fn state(sim: &Simulator) -> String {
    let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
    let mut out = format!("{:?}\n", sim.balances());
    for s in symbols {
        out += &format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n",
            sim.depth(s, 20).unwrap(),
            sim.all_orders(s).unwrap(),
            sim.open_orders(Some(s)).unwrap(),
            sim.my_trades(s).unwrap()
        );
    }
    out
}

#[test]
fn reopened_exchange_has_the_state_it_was_left_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    script(&mut sim);
    let before = state(&sim);
    drop(sim);
    let mut reopened = Simulator::open(&path, SimConfig::default()).unwrap();
    assert_eq!(state(&reopened), before);
    let next = reopened.place(&market("BTCUSDT", Side::Buy, "0.01", "z")).unwrap();
    assert_eq!(next.exchange_order_id, 5);
}

#[test]
fn reopened_exchange_continues_the_random_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut straight = Simulator::new(SimConfig::default());
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    straight.random_walk_step().unwrap();
    sim.random_walk_step().unwrap();
    drop(sim);
    let mut reopened = Simulator::open(&path, SimConfig::default()).unwrap();
    straight.random_walk_step().unwrap();
    reopened.random_walk_step().unwrap();
    assert_eq!(state(&reopened), state(&straight));
}

#[test]
fn journal_survives_without_a_snapshot_refresh_and_ignores_a_torn_last_line() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    script(&mut sim);
    let before = state(&sim);
    // As after `kill -9`: no compaction ran, and a write was cut short.
    std::mem::forget(sim);
    let journal = journal_path(&path);
    assert!(std::fs::metadata(&journal).unwrap().len() > 0);
    let mut file = std::fs::OpenOptions::new().append(true).open(&journal).unwrap();
    file.write_all(br#"{"seq":999,"rng_word_pos":"0","next_order_id":9"#).unwrap();
    drop(file);
    let reopened = Simulator::open(&path, SimConfig::default()).unwrap();
    assert_eq!(state(&reopened), before);
}

#[test]
fn compaction_folds_the_journal_into_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let config = SimConfig { compact_every: 3, ..SimConfig::default() };
    let mut sim = Simulator::open(&path, config.clone()).unwrap();
    script(&mut sim);
    let before = state(&sim);
    sim.wait_for_snapshot();
    assert!(!path.with_extension("json.journal.old").exists());
    std::mem::forget(sim);
    let reopened = Simulator::open(&path, config).unwrap();
    assert_eq!(state(&reopened), before);
}

#[test]
fn kill_during_a_background_snapshot_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    script(&mut sim);
    let before = state(&sim);
    std::mem::forget(sim);
    // As if killed after rotating the journal, before the new snapshot was in place: the old
    // snapshot, the rotated journal, and a new (here empty) journal.
    let old = path.with_extension("json.journal.old");
    std::fs::rename(journal_path(&path), &old).unwrap();
    let reopened = Simulator::open(&path, SimConfig::default()).unwrap();
    assert_eq!(state(&reopened), before);
    assert!(!old.exists());
}

#[test]
fn corrupt_journal_line_before_the_end_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    sim.place(&market("BTCUSDT", Side::Buy, "0.01", "a")).unwrap();
    std::mem::forget(sim);
    let journal = journal_path(&path);
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, format!("garbage\n{text}")).unwrap();
    assert!(matches!(Simulator::open(&path, SimConfig::default()), Err(SimStoreError::Corrupt { .. })));
}

fn open_error(path: &Path) -> SimStoreError {
    match Simulator::open(path, SimConfig::default()) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

/// Changes the snapshot by hand, as a damaged or hand-edited state file would be changed.
fn edit_snapshot(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    // Opening folds the journal into the snapshot.
    drop(Simulator::open(path, SimConfig::default()).unwrap());
    let mut snapshot: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut snapshot);
    std::fs::write(path, snapshot.to_string()).unwrap();
}

fn append_to(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

#[test]
fn blank_lines_in_the_journal_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    sim.place(&market("BTCUSDT", Side::Buy, "0.01", "a")).unwrap();
    append_to(&journal_path(&path), "\n");
    sim.place(&market("BTCUSDT", Side::Buy, "0.01", "b")).unwrap();
    let before = state(&sim);
    drop(sim);
    assert_eq!(state(&Simulator::open(&path, SimConfig::default()).unwrap()), before);
}

#[test]
fn a_garbled_last_journal_line_is_ignored_as_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    sim.place(&market("BTCUSDT", Side::Buy, "0.01", "a")).unwrap();
    let before = state(&sim);
    drop(sim);
    append_to(&journal_path(&path), "{\"seq\":2,\"rng\n");
    assert_eq!(state(&Simulator::open(&path, SimConfig::default()).unwrap()), before);
}

#[test]
fn a_journal_record_that_cannot_be_replayed_is_corrupt_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    sim.place(&market("BTCUSDT", Side::Buy, "0.01", "a")).unwrap();
    drop(sim);
    let journal = journal_path(&path);
    append_to(&journal, "{\"seq\":2,\"rng_word_pos\":\"x\",\"next_order_id\":3,\"next_trade_id\":3}\n");
    let e = open_error(&path);
    assert!(
        matches!(&e, SimStoreError::Corrupt { path: p, line: 2, reason } if *p == journal && reason == "bad RNG position 'x'"),
        "{e}"
    );
}

#[test]
fn a_state_path_that_cannot_be_read_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    std::fs::create_dir(&path).unwrap();
    let e = open_error(&path);
    assert!(matches!(&e, SimStoreError::Io { path: p, .. } if *p == path), "{e}");
    assert!(e.to_string().starts_with(&format!("exchange state {}: ", path.display())), "{e}");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn an_old_journal_that_cannot_be_opened_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let old = path.with_extension("json.journal.old");
    // A link to itself: opening it fails with "too many levels of symbolic links".
    std::os::unix::fs::symlink(&old, &old).unwrap();
    let e = open_error(&path);
    assert!(matches!(&e, SimStoreError::Io { path: p, .. } if *p == old), "{e}");
}

#[test]
fn a_snapshot_that_is_not_json_is_corrupt_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    std::fs::write(&path, "{\n  not json").unwrap();
    let e = open_error(&path);
    assert!(matches!(&e, SimStoreError::Corrupt { line: 2, .. }), "{e}");
    assert!(e.to_string().starts_with(&format!("exchange state {} is corrupt at line 2: ", path.display())), "{e}");
    assert!(std::error::Error::source(&e).is_none());
}

#[test]
fn a_snapshot_of_an_unknown_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    edit_snapshot(&path, |s| s["version"] = 2.into());
    let e = open_error(&path);
    assert!(matches!(&e, SimStoreError::Corrupt { reason, .. } if reason == "unknown snapshot version 2"), "{e}");
}

#[test]
fn a_restored_resting_order_without_a_limit_price_never_trades() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    sim.place(&limit("BTCUSDT", Side::Sell, "0.01", "70000.00", "l")).unwrap();
    drop(sim);
    edit_snapshot(&path, |s| s["open"][0]["report"]["price"] = "0".into());
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    assert!(sim.set_price("BTCUSDT", d("65000.00"), d("65000.01")).unwrap().is_empty());
    assert!(sim.my_trades("BTCUSDT").unwrap().is_empty());
    assert_eq!(sim.open_orders(Some("BTCUSDT")).unwrap().len(), 1);
}

#[test]
fn a_restored_open_order_with_nothing_left_to_fill_never_trades() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    sim.place(&limit("BTCUSDT", Side::Buy, "0.01", "60000.00", "l")).unwrap();
    drop(sim);
    edit_snapshot(&path, |s| s["open"][0]["report"]["executed_qty"] = "0.01".into());
    let mut sim = Simulator::open(&path, SimConfig::default()).unwrap();
    assert!(sim.set_price("BTCUSDT", d("59000.00"), d("59000.01")).unwrap().is_empty());
    assert!(sim.my_trades("BTCUSDT").unwrap().is_empty());
}

#[test]
fn a_journal_write_failure_is_an_internal_error_though_the_order_was_placed() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Simulator::open(&dir.path().join("exchange.json"), SimConfig::default()).unwrap();
    sim.break_journal();
    let e = sim.place(&market("BTCUSDT", Side::Buy, "0.01", "b")).unwrap_err();
    assert_eq!((e.http_status, e.code), (500, -1000));
    assert!(
        e.msg.starts_with("An unknown error occurred while processing the request. (journal write failed: "),
        "{e}"
    );
    assert_eq!(sim.query("BTCUSDT", OrderRef::ClientOrderId("b")).unwrap().status, ExchangeStatus::Filled);
}

#[test]
fn the_random_walk_keeps_stepping_after_a_journal_write_failure() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Simulator::open(&dir.path().join("exchange.json"), SimConfig::default()).unwrap();
    sim.break_journal();
    let shared = Arc::new(Mutex::new(sim));
    start_random_walk(&shared, Duration::from_millis(1));
    let bid = || shared.lock().book_ticker("BTCUSDT").unwrap().bid;
    // Every step fails to journal; a second move means the walk went on after a failure.
    let mut bids = vec![bid()];
    let deadline = Instant::now() + Duration::from_secs(30);
    while bids.len() < 3 {
        assert!(Instant::now() < deadline, "the walk stopped after {} moves", bids.len() - 1);
        let now = bid();
        if Some(&now) != bids.last() {
            bids.push(now);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_order_is_still_placed_and_journaled_when_the_journal_cannot_be_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let mut sim = Simulator::open(&path, SimConfig { compact_every: 1, ..SimConfig::default() }).unwrap();
    // A directory where the rotated journal goes: the journal cannot be renamed to it.
    std::fs::create_dir(path.with_extension("json.journal.old")).unwrap();
    let r = sim.place(&market("BTCUSDT", Side::Buy, "0.01", "b")).unwrap();
    assert_eq!(r.status, ExchangeStatus::Filled);
    assert!(std::fs::metadata(journal_path(&path)).unwrap().len() > 0);
}

#[test]
fn a_failed_background_snapshot_keeps_the_old_journal_for_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exchange.json");
    let config = SimConfig { compact_every: 1, ..SimConfig::default() };
    let mut sim = Simulator::open(&path, config.clone()).unwrap();
    // A directory where the snapshot goes: the background writer cannot rename its file over it.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    sim.place(&market("BTCUSDT", Side::Buy, "0.01", "b")).unwrap();
    let before = state(&sim);
    sim.wait_for_snapshot();
    assert!(path.with_extension("json.journal.old").exists());
    drop(sim);
    std::fs::remove_dir(&path).unwrap();
    assert_eq!(state(&Simulator::open(&path, config).unwrap()), before);
}

// ---- gateway ---------------------------------------------------------------------------------

#[test]
fn gateway_cancel_open_orders_with_nothing_open_is_an_empty_list() {
    let mut gw = SimGateway::new(sim());
    assert_eq!(gw.cancel_open_orders("BTCUSDT"), Ok(vec![]));
}

#[test]
fn gateway_maps_refusals_to_rejected() {
    let mut gw = SimGateway::new(sim());
    let e = gw.query_order("BTCUSDT", "nope").unwrap_err();
    assert!(e.is_no_such_order());
}

#[test]
fn gateway_reports_a_journal_failure_as_an_unknown_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Simulator::open(&dir.path().join("exchange.json"), SimConfig::default()).unwrap();
    sim.break_journal();
    let mut gw = SimGateway::new(sim);
    let e = gw.place_order(&market("BTCUSDT", Side::Buy, "0.01", "b")).unwrap_err();
    assert!(matches!(&e, ExchangeError::Unknown { reason } if reason.starts_with("(-1000) An unknown error")), "{e}");
}

#[test]
fn gateway_waits_out_the_configured_latency() {
    let mut gw = SimGateway::new(Simulator::new(SimConfig { latency_us: 2_000, ..SimConfig::default() }));
    let start = std::time::Instant::now();
    gw.book_ticker("BTCUSDT").unwrap();
    assert!(start.elapsed() >= std::time::Duration::from_micros(2_000));
    assert!(gw.last_timing().round_trip_ns >= 2_000_000);
}

#[test]
fn gateway_shares_the_simulator_with_other_threads() {
    let mut gw = SimGateway::new(sim());
    let shared = gw.shared();
    std::thread::spawn(move || {
        shared.lock().set_price("BTCUSDT", d("70000.00"), d("70000.01")).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(gw.book_ticker("BTCUSDT").unwrap().bid, d("70000.00"));
}

/// `cargo test --release --lib exchange::sim::tests::bench -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_place_and_query() {
    const N: usize = 10_000;
    let run = |sim: Simulator, label: &str| {
        let mut gw = SimGateway::new(sim);
        gw.shared().lock().set_price("BTCUSDT", d("64999.99"), d("65000.00")).unwrap();
        let ids: Vec<String> = (0..N).map(|i| format!("bench-{i}")).collect();
        let orders: Vec<NewOrder> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
                market("BTCUSDT", side, "0.001", id)
            })
            .collect();
        let mut worst = std::time::Duration::ZERO;
        let start = std::time::Instant::now();
        for o in &orders {
            let pair = std::time::Instant::now();
            gw.place_order(o).unwrap();
            gw.query_order("BTCUSDT", &o.client_order_id).unwrap();
            worst = worst.max(pair.elapsed());
        }
        let per = start.elapsed() / N as u32;
        println!("{label}: place+query {per:?} per pair over {N} orders (worst {worst:?})");
    };
    run(sim(), "in memory");
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::open(&dir.path().join("bench.json"), SimConfig::default()).unwrap();
    run(sim, "journaled");
}

#[test]
fn a_deadline_within_the_spin_window_is_waited_out_by_spinning() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_micros(200);
    wait_until(deadline, std::time::Duration::from_secs(1));
    assert!(std::time::Instant::now() >= deadline);
}

#[test]
fn a_deadline_beyond_the_spin_window_sleeps_first() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2);
    wait_until(deadline, std::time::Duration::from_micros(100));
    assert!(std::time::Instant::now() >= deadline);
}

#[test]
fn a_fresh_exchange_numbers_orders_and_trades_from_the_configured_first_ids() {
    let mut sim = Simulator::new(SimConfig {
        first_order_id: 7_000_000_000,
        first_trade_id: 900_000_000,
        ..SimConfig::default()
    });
    let first = sim.place(&market("SOLUSDT", Side::Buy, "1", "first")).unwrap();
    let second = sim.place(&market("BTCUSDT", Side::Buy, "0.001", "second")).unwrap();
    assert_eq!((first.exchange_order_id, second.exchange_order_id), (7_000_000_000, 7_000_000_001));
    assert_eq!(sim.my_trades("SOLUSDT").unwrap()[0].id, 900_000_000);
}

#[test]
fn a_test_order_is_checked_against_the_filters_and_places_nothing() {
    let sim = sim();
    assert_eq!(sim.check_order(&market("BTCUSDT", Side::Buy, "0.001", "t1")), Ok(()));
    let err = sim.check_order(&market("BTCUSDT", Side::Buy, "0.000001", "t2")).unwrap_err();
    assert_eq!((err.code, err.msg.as_str()), (-1013, "Filter failure: LOT_SIZE"));
    assert!(sim.open_orders(None).unwrap().is_empty());
    assert!(sim.all_orders("BTCUSDT").unwrap().is_empty());
}

#[test]
fn trades_since_and_last_trade_read_one_symbol_from_the_newest_end() {
    let mut sim = sim();
    assert_eq!(sim.last_trade("SOLUSDT").unwrap(), None);
    sim.place(&market("SOLUSDT", Side::Buy, "1", "a")).unwrap();
    sim.place(&market("BTCUSDT", Side::Buy, "0.001", "b")).unwrap();
    let sol = sim.my_trades("SOLUSDT").unwrap();
    let since = sol[0].time_ms;
    let recent: Vec<i64> = sim.trades_since("SOLUSDT", since).unwrap().iter().map(|t| t.id).collect();
    assert_eq!(recent, sol.iter().map(|t| t.id).collect::<Vec<_>>());
    assert!(sim.trades_since("SOLUSDT", since + 60_000).unwrap().is_empty());
    assert_eq!(sim.last_trade("SOLUSDT").unwrap().map(|t| t.id), sol.last().map(|t| t.id));
    assert!(sim.trades_since("NOPE", 0).is_err() && sim.last_trade("NOPE").is_err());
}

#[test]
fn a_simulator_with_given_markets_trades_those_symbols_from_their_starting_books() {
    let rules = |symbol: &str, base: &str, tick: &str, step: &str| SymbolRules {
        symbol: symbol.into(),
        base_asset: base.into(),
        quote_asset: "USDC".into(),
        trading: true,
        tick_size: d(tick),
        min_price: d(tick),
        max_price: d("100000"),
        step_size: d(step),
        min_qty: d(step),
        max_qty: d("1000000"),
        min_notional: d("1"),
        order_types: vec![Market, Limit],
        max_num_algo_orders: None,
    };
    let specs = [
        MarketSpec { rules: rules("AAAUSDC", "AAA", "0.001", "0.1"), bid: d("2.500"), ask: d("2.501") },
        // No tick or step rule: levels and quantities fall back to 1e-8.
        MarketSpec { rules: rules("BBBUSDC", "BBB", "0", "0"), bid: d("10"), ask: d("10.5") },
    ];
    let mut config = SimConfig::default();
    config.starting_balances.insert("USDC".into(), d("1000"));
    let mut sim = Simulator::with_markets(config, &specs);
    assert_eq!(sim.exchange_info().iter().map(|r| r.symbol.as_str()).collect::<Vec<_>>(), ["AAAUSDC", "BBBUSDC"]);
    assert!(sim.book_ticker("BTCUSDT").is_err());
    let top = sim.book_ticker("AAAUSDC").unwrap();
    assert_eq!((top.bid, top.ask), (d("2.500"), d("2.501")));
    let (bids, _) = sim.depth("AAAUSDC", 2).unwrap();
    assert_eq!(bids[1].0, d("2.499"));
    let filled = sim.place(&market("AAAUSDC", Side::Buy, "10", "a1")).unwrap();
    assert_eq!((filled.status, filled.executed_qty), (ExchangeStatus::Filled, d("10")));
    assert_eq!(free(&sim, "AAA"), d("9.99"));
    let (bids, _) = sim.depth("BBBUSDC", 2).unwrap();
    assert_eq!(bids[1].0, d("9.99999999"));
}
