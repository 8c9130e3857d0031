//! A `--markets` document's filters, enforced with its values and shown as written.

use super::*;
use genesis::exchange::sim::SimConfig;

const NOW: i64 = 1_700_000_040_000;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A book whose BTCUSDT has `filters` (and the exchange filters `exchange`).
fn book(filters: Value, exchange: Value) -> FilterBook {
    let doc = SymbolDoc {
        symbol: "BTCUSDT".into(),
        default_stp: None,
        allowed_stp: Vec::new(),
        filters: filters.as_array().unwrap().clone(),
    };
    FilterBook::from_doc(&[doc], exchange.as_array().unwrap())
}

fn order(order_type: ExchangeOrderType, side: Side, qty: &str, price: Option<Decimal>) -> NewOrder {
    NewOrder {
        symbol: "BTCUSDT".into(),
        side,
        order_type,
        quantity: d(qty),
        price,
        stop_price: None,
        client_order_id: "x".into(),
    }
}

fn failed(book: &FilterBook, sim: &Simulator, order: &NewOrder) -> Option<String> {
    book.check(order, sim, NOW).err().map(|e| e.msg)
}

#[test]
fn a_documents_price_lot_and_notional_filters_are_enforced_with_its_values() {
    let sim = Simulator::new(SimConfig::default());
    let avg = crate::market_data::average_price(&sim, "BTCUSDT", NOW).unwrap();
    let percent = book(
        json!([{"filterType":"PERCENT_PRICE","multiplierUp":"1.1","multiplierDown":"0.9","avgPriceMins":5}]),
        json!([]),
    );
    let limit = |price| order(ExchangeOrderType::Limit, Side::Buy, "0.001", Some(price));
    assert_eq!(failed(&percent, &sim, &limit(avg * d("1.2"))).as_deref(), Some("Filter failure: PERCENT_PRICE"));
    assert_eq!(failed(&percent, &sim, &limit(avg)), None);
    // The built-in x5 / x0.2 of PERCENT_PRICE_BY_SIDE does not apply to a document's symbol.
    assert_eq!(failed(&percent, &sim, &limit(avg * d("0.95"))), None);

    let lot =
        book(json!([{"filterType":"MARKET_LOT_SIZE","minQty":"0.01","maxQty":"2","stepSize":"0.00000000"}]), json!([]));
    let market = |qty| order(ExchangeOrderType::Market, Side::Buy, qty, None);
    assert_eq!(failed(&lot, &sim, &market("0.001")).as_deref(), Some("Filter failure: MARKET_LOT_SIZE"));
    assert_eq!(failed(&lot, &sim, &market("0.0123")), None, "stepSize 0: any step");

    let notional = book(
        json!([{"filterType":"NOTIONAL","minNotional":"5","applyMinToMarket":true,"maxNotional":"100","applyMaxToMarket":true,"avgPriceMins":5}]),
        json!([]),
    );
    assert_eq!(failed(&notional, &sim, &market("0.01")).as_deref(), Some("Filter failure: NOTIONAL"));
    assert_eq!(failed(&notional, &sim, &market("0.001")), None);
}

#[test]
fn max_position_counts_the_base_held_and_open_buys() {
    let mut sim = Simulator::new(SimConfig::default());
    let held: Decimal = sim.balances().iter().filter(|b| b.asset == "BTC").map(|b| b.free + b.locked).sum();
    let max = held + d("0.01");
    let book = book(json!([{"filterType":"MAX_POSITION","maxPosition":max.to_string()}]), json!([]));
    let bid = sim.book_ticker("BTCUSDT").unwrap().bid;
    let resting = order(ExchangeOrderType::Limit, Side::Buy, "0.006", Some(bid));
    assert_eq!(failed(&book, &sim, &resting), None);
    sim.place(&NewOrder { client_order_id: "r1".into(), ..resting.clone() }).unwrap();
    assert_eq!(failed(&book, &sim, &resting).as_deref(), Some("Filter failure: MAX_POSITION"));
    // Sells do not grow the position.
    let sell = order(ExchangeOrderType::Market, Side::Sell, "0.006", None);
    assert_eq!(failed(&book, &sim, &sell), None);
}

#[test]
fn exchange_filters_count_open_orders_across_symbols() {
    let sim = Simulator::new(SimConfig::default());
    let none = book(json!([]), json!([{"filterType":"EXCHANGE_MAX_NUM_ORDERS","maxNumOrders":0}]));
    let market = order(ExchangeOrderType::Market, Side::Buy, "0.001", None);
    assert_eq!(failed(&none, &sim, &market).as_deref(), Some("Filter failure: EXCHANGE_MAX_NUM_ORDERS"));
    let algo = book(json!([]), json!([{"filterType":"EXCHANGE_MAX_NUM_ALGO_ORDERS","maxNumAlgoOrders":0}]));
    assert_eq!(failed(&algo, &sim, &market), None, "only algo orders count");
    let stop = NewOrder { stop_price: Some(d("1")), ..order(ExchangeOrderType::StopLoss, Side::Sell, "0.001", None) };
    assert_eq!(failed(&algo, &sim, &stop).as_deref(), Some("Filter failure: EXCHANGE_MAX_NUM_ALGO_ORDERS"));
}

#[test]
fn exchange_info_shows_a_documents_filters_as_written_and_the_built_in_ones_elsewhere() {
    let notional = json!({"filterType":"NOTIONAL","minNotional":"5","applyMinToMarket":true,"maxNotional":"100","applyMaxToMarket":true,"avgPriceMins":5});
    let percent = json!({"filterType":"PERCENT_PRICE","multiplierUp":"1.1","multiplierDown":"0.9","avgPriceMins":5});
    let iceberg = json!({"filterType":"ICEBERG_PARTS","limit":10});
    let exchange = json!([{"filterType":"EXCHANGE_MAX_NUM_ORDERS","maxNumOrders":1000}]);
    let book = book(json!([notional, percent, iceberg]), exchange.clone());
    let mut info = json!({"symbols": [
        {"symbol": "BTCUSDT", "filters": [{"filterType":"NOTIONAL","minNotional":"5"}]},
        {"symbol": "ETHUSDT", "filters": [{"filterType":"PRICE_FILTER"},{"filterType":"LOT_SIZE","minQty":"1","maxQty":"2","stepSize":"1"}]},
    ]});
    book.decorate(&mut info);
    assert_eq!(info["exchangeFilters"], exchange);
    assert_eq!(
        info["symbols"][0]["filters"],
        json!([notional, percent]),
        "ICEBERG_PARTS is not enforced, so not shown"
    );
    let kinds: Vec<&str> =
        info["symbols"][1]["filters"].as_array().unwrap().iter().map(|f| f["filterType"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["PRICE_FILTER", "PERCENT_PRICE_BY_SIDE", "LOT_SIZE", "MARKET_LOT_SIZE", "MAX_NUM_ORDERS"]);
}
