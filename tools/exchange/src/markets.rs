//! `--markets FILE`: the symbols to trade, from an `exchangeInfo` document (the shape of
//! rest-api.md "Exchange information", read by the engine's own parser: PRICE_FILTER,
//! LOT_SIZE, NOTIONAL / MIN_NOTIONAL, MAX_NUM_ALGO_ORDERS, `orderTypes`, `status`; other
//! filters are accepted and not enforced). `exchangeInfo` carries no prices, so each book
//! starts at a price derived from the symbol's PRICE_FILTER (see [`starting_book`]).

use genesis::domain::money::Decimal;
use genesis::domain::symbol::SymbolRules;
use genesis::exchange::binance::wire::parse_exchange_info;
use genesis::exchange::sim::MarketSpec;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

/// Ticks above zero where a book starts (capped by `maxPrice`, raised to `minPrice`).
const START_TICKS: i64 = 100_000;

/// Bid and ask of a fresh book: `START_TICKS` ticks (at least `minPrice`, below `maxPrice`),
/// one tick apart. A symbol without a tick rule starts at 1 / 1.00000001.
pub fn starting_book(rules: &SymbolRules) -> (Decimal, Decimal) {
    let tick = if rules.tick_size.is_zero() { Decimal::new(1, 8) } else { rules.tick_size };
    let mut bid = tick * Decimal::from(START_TICKS);
    if rules.tick_size.is_zero() {
        bid = Decimal::ONE;
    }
    if !rules.max_price.is_zero() && bid + tick > rules.max_price {
        bid = rules.max_price - tick;
    }
    if bid < rules.min_price {
        bid = rules.min_price;
    }
    (bid, bid + tick)
}

/// What the engine's parser leaves out of a document's symbol and this server still uses: its
/// STP modes and its filters as written.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolDoc {
    pub symbol: String,
    pub default_stp: Option<String>,
    pub allowed_stp: Vec<String>,
    pub filters: Vec<Value>,
}

/// What else the server reads of a document: each symbol's [`SymbolDoc`], the exchange filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub symbols: Vec<SymbolDoc>,
    pub exchange_filters: Vec<Value>,
}

/// The markets of an `exchangeInfo` document, and what else the server reads of it. Refused:
/// a file that cannot be read or parsed, no symbols, a symbol listed twice.
pub fn load(path: &Path) -> Result<(Vec<MarketSpec>, Document), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--markets {}: {e}", path.display()))?;
    let specs = parse(&text).map_err(|e| format!("--markets {}: {e}", path.display()))?;
    Ok((specs, document(&text)))
}

fn document(text: &str) -> Document {
    let doc: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    Document {
        symbols: symbol_docs(&doc),
        exchange_filters: doc["exchangeFilters"].as_array().cloned().unwrap_or_default(),
    }
}

fn symbol_docs(doc: &Value) -> Vec<SymbolDoc> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map_or(Vec::new(), |a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
    };
    doc["symbols"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|s| SymbolDoc {
            symbol: s["symbol"].as_str().unwrap_or_default().to_string(),
            default_stp: s["defaultSelfTradePreventionMode"].as_str().map(str::to_string),
            allowed_stp: strings(&s["allowedSelfTradePreventionModes"]),
            filters: s["filters"].as_array().cloned().unwrap_or_default(),
        })
        .collect()
}

fn parse(text: &str) -> Result<Vec<MarketSpec>, String> {
    let info = parse_exchange_info(text).map_err(|e| e.to_string())?;
    if info.symbols.is_empty() {
        return Err("no symbols".into());
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(info.symbols.len());
    for rules in info.symbols {
        if !seen.insert(rules.symbol.clone()) {
            return Err(format!("symbol {} is listed twice", rules.symbol));
        }
        let (bid, ask) = starting_book(&rules);
        out.push(MarketSpec { rules, bid, ask });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(symbols: &[(&str, &str, &str)]) -> String {
        let items: Vec<String> = symbols
            .iter()
            .map(|(symbol, tick, max)| {
                format!(
                    r#"{{"symbol":"{symbol}","status":"TRADING","baseAsset":"{base}","quoteAsset":"USDT",
                        "orderTypes":["LIMIT","MARKET"],"filters":[
                        {{"filterType":"PRICE_FILTER","minPrice":"{tick}","maxPrice":"{max}","tickSize":"{tick}"}},
                        {{"filterType":"LOT_SIZE","minQty":"0.001","maxQty":"1000","stepSize":"0.001"}},
                        {{"filterType":"ICEBERG_PARTS","limit":10}},
                        {{"filterType":"NOTIONAL","minNotional":"5","applyMinToMarket":true,"maxNotional":"9000000",
                          "applyMaxToMarket":false,"avgPriceMins":5}}]}}"#,
                    base = symbol.trim_end_matches("USDT")
                )
            })
            .collect();
        format!(
            r#"{{"timezone":"UTC","serverTime":1,"rateLimits":[],"exchangeFilters":[],"symbols":[{}]}}"#,
            items.join(",")
        )
    }

    #[test]
    fn an_exchange_info_document_becomes_markets_with_books_on_their_ticks() {
        let markets = parse(&doc(&[("AAAUSDT", "0.01", "1000000"), ("BBBUSDT", "0.1", "50")])).unwrap();
        assert_eq!(markets.len(), 2);
        assert_eq!(markets[0].rules.symbol, "AAAUSDT");
        assert_eq!(markets[0].rules.min_notional, Decimal::from(5));
        assert_eq!((markets[0].bid, markets[0].ask), ("1000.00".parse().unwrap(), "1000.01".parse().unwrap()));
        // Capped below maxPrice.
        assert_eq!((markets[1].bid, markets[1].ask), ("49.9".parse().unwrap(), "50.0".parse().unwrap()));
    }

    #[test]
    fn starting_books_respect_min_price_and_a_missing_tick() {
        let mut rules = parse(&doc(&[("AAAUSDT", "0.01", "0")])).unwrap().remove(0).rules;
        rules.min_price = Decimal::from(5000);
        assert_eq!(starting_book(&rules), (Decimal::from(5000), "5000.01".parse().unwrap()));
        rules.tick_size = Decimal::ZERO;
        rules.min_price = Decimal::ZERO;
        assert_eq!(starting_book(&rules), (Decimal::ONE, "1.00000001".parse().unwrap()));
    }

    #[test]
    fn each_symbols_stp_modes_and_filters_are_read_as_written() {
        let text = doc(&[("AAAUSDT", "0.01", "0")]).replace(
            r#""orderTypes""#,
            r#""defaultSelfTradePreventionMode":"EXPIRE_TAKER","allowedSelfTradePreventionModes":["EXPIRE_TAKER","NONE"],"orderTypes""#,
        );
        let docs = document(&text).symbols;
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].default_stp.as_deref(), Some("EXPIRE_TAKER"));
        assert_eq!(docs[0].allowed_stp, ["EXPIRE_TAKER", "NONE"]);
        assert_eq!(docs[0].filters.len(), 4);
        assert_eq!(document(&doc(&[("AAAUSDT", "0.01", "0")])).symbols[0].default_stp, None);
    }

    #[test]
    fn bad_documents_are_refused_with_a_reason() {
        assert!(parse("not json").unwrap_err().contains("exchangeInfo"));
        assert_eq!(parse(&doc(&[])).unwrap_err(), "no symbols");
        let twice = doc(&[("AAAUSDT", "0.01", "0"), ("AAAUSDT", "0.01", "0")]);
        assert_eq!(parse(&twice).unwrap_err(), "symbol AAAUSDT is listed twice");
        let missing = load(Path::new("/nonexistent/markets.json")).map(|_| ()).unwrap_err();
        assert!(missing.starts_with("--markets /nonexistent/markets.json:"), "{missing}");
    }
}
