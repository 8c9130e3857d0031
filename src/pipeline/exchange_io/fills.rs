//! The trades of our orders: read when a report carries none, fees valued in the quote asset,
//! and what a part of a sell is booked at. The exchange's trades are the truth for quantities,
//! fees and P&L (a query's answer has no commission: never assume zero).

use super::*;

/// Binance's highest spot taker fee (0.1 %): what a fill whose trades could not be read is taken
/// to have paid, so that a stop never covers more than the account holds and a loss is never
/// understated.
pub(super) const ASSUMED_FEE_RATE: Decimal = Decimal::from_parts(1, 0, 0, false, 3);

/// Fees of `order` in its quote asset, from its trades; a part whose trades could not be read
/// counts at [`ASSUMED_FEE_RATE`], never as free.
pub(super) fn fees_in_quote(order: &Order) -> Decimal {
    order.fees_in_quote() + unaccounted(order) * order.avg_price.unwrap_or_default() * ASSUMED_FEE_RATE
}

/// The filled quantity no trade seen accounts for.
pub(super) fn unaccounted(order: &Order) -> Decimal {
    (order.filled_quantity - order.fills_quantity()).max(Decimal::ZERO)
}

/// One part of a sell, booked against the positions it closes.
#[derive(Debug, Clone, Copy)]
pub(super) struct SoldPart {
    pub(super) quantity: Decimal,
    pub(super) price: Decimal,
    /// Its fees, in the quote asset.
    pub(super) fees: Decimal,
}

impl SoldPart {
    /// The whole of a sell.
    pub(super) fn all_of(sell: &Order) -> SoldPart {
        SoldPart {
            quantity: sell.filled_quantity,
            price: sell.avg_price.unwrap_or_default(),
            fees: fees_in_quote(sell),
        }
    }
}

impl ExchangeIo {
    /// Reads the trades of a fill learnt without them (a query's or a listing's report):
    /// `myTrades?orderId=` (weight 5). A read that fails leaves the part unaccounted, which
    /// counts at the assumed fee rate.
    pub(super) fn complete_fills(&mut self, order: &mut Order) {
        if let (false, Some(exchange_order_id)) = (order.fills_complete(), order.exchange_order_id) {
            match self.gateway.order_trades(&order.symbol, exchange_order_id) {
                Ok(trades) => {
                    order.add_fills(&trades, now_us() / 1000);
                }
                Err(e) => {
                    let (id, missing) = (&order.client_order_id, unaccounted(order));
                    log::warn!(
                        "{id}: trades not read ({e}); {missing} of its fill counts at the {ASSUMED_FEE_RATE} rate"
                    );
                }
            }
        }
        self.value_fees(order);
    }

    /// Values in the quote asset every fee not valued yet: exactly for the base and quote
    /// assets, at this moment's bid for a third asset (BNB).
    pub(super) fn value_fees(&mut self, order: &mut Order) {
        let rules = Arc::clone(&self.rules);
        let Some(rules) = rules.get(&order.symbol) else { return };
        for fill in order.fills.iter_mut().filter(|f| f.commission_quote.is_none()) {
            fill.commission_quote = fill.exact_commission_quote(&rules.base_asset, &rules.quote_asset);
            if fill.commission_quote.is_some() {
                continue;
            }
            // A third asset: its bid now, cached if intake asked for it, else one bookTicker.
            let pair = format!("{}{}", fill.commission_asset, rules.quote_asset);
            let bid = match self.quotes.top_of_book(&pair) {
                Some(top) => Some(top.bid),
                None => self.gateway.book_ticker(&pair).ok().map(|top| top.bid),
            };
            if bid.is_none() {
                log::error!("trade {}: no {pair} quote to value its fee in", fill.trade_id);
            }
            fill.commission_quote = bid.map(|bid| fill.commission * bid);
        }
    }
}
