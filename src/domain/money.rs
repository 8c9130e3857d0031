//! Exact decimal money maths: rounding to exchange steps, slippage, notional.
//!
//! Everything here is `Decimal`; there is no floating point on a money path.

pub use rust_decimal::Decimal;
use rust_decimal::RoundingStrategy;
use std::str::FromStr;

/// Most decimals any Binance spot quantity or price carries.
pub const MAX_SCALE: u32 = 8;

/// A decimal string that is not a plain positive number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountError {
    NotANumber(String),
    NotPositive(String),
    TooManyDecimals(String),
}

impl std::fmt::Display for AmountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AmountError::NotANumber(s) => write!(f, "'{s}' is not a number"),
            AmountError::NotPositive(s) => write!(f, "'{s}' must be greater than zero"),
            AmountError::TooManyDecimals(s) => {
                write!(f, "'{s}' has more than {MAX_SCALE} decimals")
            }
        }
    }
}

impl std::error::Error for AmountError {}

/// Parses a user-typed amount: plain decimal notation only (no exponent, no sign games),
/// strictly positive, at most 8 decimals.
pub fn parse_positive(text: &str) -> Result<Decimal, AmountError> {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().filter(|&c| c == '.').count() <= 1
        && text.chars().any(|c| c.is_ascii_digit());
    if !plain {
        if text.starts_with('-') && Decimal::from_str(text).is_ok() {
            return Err(AmountError::NotPositive(text.to_string()));
        }
        return Err(AmountError::NotANumber(text.to_string()));
    }
    let value = Decimal::from_str(text).map_err(|_| AmountError::NotANumber(text.to_string()))?;
    if value.is_zero() {
        return Err(AmountError::NotPositive(text.to_string()));
    }
    if value.normalize().scale() > MAX_SCALE {
        return Err(AmountError::TooManyDecimals(text.to_string()));
    }
    Ok(value)
}

// Step and tick rounding: the one implementation the engine, the risk rules, the simulator and
// the exchange server call. A zero step means "no rule". Checked: a value too large to count in
// steps (only an absurd input gets there) is returned as it is, never a panic; the exchange's
// filter then refuses it.

/// Rounds `value` toward zero to a whole number of `step`s, normalized (`1.50` → `1.5`).
pub fn round_down_to_step(value: Decimal, step: Decimal) -> Decimal {
    if step.is_zero() {
        return value;
    }
    value
        .checked_div(step)
        .and_then(|steps| steps.round_dp_with_strategy(0, RoundingStrategy::ToZero).checked_mul(step))
        .map_or(value, |rounded| rounded.normalize())
}

/// Rounds `value` up to a whole number of `step`s, at the step's scale (`65065.001` by `0.01` →
/// `65065.01`; not normalized, so a price keeps its tick's decimals).
pub fn round_up_to_step(value: Decimal, step: Decimal) -> Decimal {
    if step.is_zero() {
        return value;
    }
    value.checked_div(step).and_then(|steps| steps.ceil().checked_mul(step)).unwrap_or(value)
}

/// True when `value` is a whole number of `step`s (or there is no step rule).
pub fn is_multiple_of_step(value: Decimal, step: Decimal) -> bool {
    step.is_zero() || value.checked_rem(step).is_some_and(|r| r.is_zero())
}

/// `value` reduced by `percent` %, e.g. `below_by_percent(100, 2) == 98`.
pub fn below_by_percent(value: Decimal, percent: Decimal) -> Decimal {
    value - value * percent / Decimal::ONE_HUNDRED
}

/// Slippage in percent, signed: (actual − expected) / expected × 100, 4 decimal places.
/// `None` when there is no meaningful expected price.
pub fn slippage_percent(expected: Decimal, actual: Decimal) -> Option<Decimal> {
    if expected <= Decimal::ZERO {
        return None;
    }
    Some(
        ((actual - expected) / expected * Decimal::ONE_HUNDRED)
            .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero),
    )
}

/// Average fill price: quote filled / quantity filled, at most 8 decimals.
pub fn average_price(cum_quote: Decimal, filled: Decimal) -> Option<Decimal> {
    if filled <= Decimal::ZERO || cum_quote < Decimal::ZERO {
        return None;
    }
    Some((cum_quote / filled).round_dp_with_strategy(MAX_SCALE, RoundingStrategy::MidpointNearestEven).normalize())
}

/// A USD (quote) value for display and limits: 2 decimal places.
pub fn usd(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Parses a decimal from the wire or the database (any sign, any scale).
pub fn parse_wire(text: &str) -> Option<Decimal> {
    Decimal::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros_free::d;

    mod rust_decimal_macros_free {
        pub fn d(s: &str) -> super::Decimal {
            s.parse().unwrap()
        }
    }

    #[test]
    fn parse_positive_accepts_plain_decimals() {
        assert_eq!(parse_positive("0.001"), Ok(d("0.001")));
        assert_eq!(parse_positive("12"), Ok(d("12")));
        assert_eq!(parse_positive(".5"), Ok(d("0.5")));
    }

    #[test]
    fn parse_positive_refuses_zero_negative_and_garbage() {
        assert_eq!(parse_positive("0"), Err(AmountError::NotPositive("0".into())));
        assert_eq!(parse_positive("0.000"), Err(AmountError::NotPositive("0.000".into())));
        assert_eq!(parse_positive("-1"), Err(AmountError::NotPositive("-1".into())));
        assert_eq!(parse_positive("abc"), Err(AmountError::NotANumber("abc".into())));
        assert_eq!(parse_positive("1e3"), Err(AmountError::NotANumber("1e3".into())));
        assert_eq!(parse_positive("1.2.3"), Err(AmountError::NotANumber("1.2.3".into())));
        assert_eq!(parse_positive(""), Err(AmountError::NotANumber("".into())));
        assert_eq!(parse_positive("."), Err(AmountError::NotANumber(".".into())));
        assert_eq!(parse_positive("NaN"), Err(AmountError::NotANumber("NaN".into())));
    }

    #[test]
    fn parse_positive_refuses_more_than_eight_decimals() {
        assert_eq!(parse_positive("0.000000001"), Err(AmountError::TooManyDecimals("0.000000001".into())));
        assert_eq!(parse_positive("0.100000000"), Ok(d("0.1")));
    }

    #[test]
    fn amount_errors_read_as_sentences_quoting_the_input() {
        assert_eq!(AmountError::NotANumber("abc".into()).to_string(), "'abc' is not a number");
        assert_eq!(AmountError::NotPositive("0".into()).to_string(), "'0' must be greater than zero");
        assert_eq!(
            AmountError::TooManyDecimals("0.000000001".into()).to_string(),
            "'0.000000001' has more than 8 decimals"
        );
    }

    #[test]
    fn parse_positive_accepts_exactly_eight_decimals() {
        assert_eq!(parse_positive("0.00000001"), Ok(d("0.00000001")));
        assert_eq!(parse_positive("1.12345678"), Ok(d("1.12345678")));
    }

    #[test]
    fn parse_positive_refuses_numbers_too_large_for_decimal() {
        assert!(parse_positive("99999999999999999999999999999999999").is_err());
    }

    #[test]
    fn round_down_to_step_truncates_never_rounds_up() {
        assert_eq!(round_down_to_step(d("0.0007856"), d("0.00001")), d("0.00078"));
        assert_eq!(round_down_to_step(d("55.329"), d("0.01")), d("55.32"));
        assert_eq!(round_down_to_step(d("1.5"), d("0.5")), d("1.5"));
        assert_eq!(round_down_to_step(d("1.49"), d("0.5")), d("1"));
        assert_eq!(round_down_to_step(d("0.3"), d("0")), d("0.3"));
    }

    #[test]
    fn rounding_up_to_a_step_takes_the_next_whole_step() {
        assert_eq!(round_up_to_step(d("65065.001"), d("0.01")), d("65065.01"));
        assert_eq!(round_up_to_step(d("65065.00"), d("0.01")), d("65065.00"));
    }

    #[test]
    fn rounding_up_to_a_zero_step_keeps_the_value() {
        assert_eq!(round_up_to_step(d("65065.001"), Decimal::ZERO), d("65065.001"));
    }

    #[test]
    fn rounding_keeps_the_steps_scale_up_and_normalizes_down() {
        assert_eq!(round_up_to_step(d("1.001"), d("0.10")).to_string(), "1.10");
        assert_eq!(round_down_to_step(d("1.501"), d("0.10")).to_string(), "1.5");
    }

    #[test]
    fn a_value_too_large_to_count_in_steps_is_kept_as_it_is() {
        assert_eq!(round_up_to_step(Decimal::MAX, d("0.01")), Decimal::MAX);
        assert_eq!(round_down_to_step(Decimal::MAX, d("0.01")), Decimal::MAX);
        assert_eq!(round_down_to_step(Decimal::MIN, d("0.0000001")), Decimal::MIN);
    }

    #[test]
    fn multiple_of_step_detects_excess_decimals() {
        assert!(is_multiple_of_step(d("0.001"), d("0.00001")));
        assert!(!is_multiple_of_step(d("0.000001"), d("0.00001")));
        assert!(is_multiple_of_step(d("0.000001"), Decimal::ZERO));
    }

    #[test]
    fn slippage_is_signed_percent_with_four_decimals() {
        assert_eq!(slippage_percent(d("100"), d("100")), Some(d("0")));
        assert_eq!(slippage_percent(d("100"), d("100.3")), Some(d("0.3")));
        assert_eq!(slippage_percent(d("100"), d("99.5")), Some(d("-0.5")));
        assert_eq!(slippage_percent(d("3"), d("3.00001")), Some(d("0.0003")));
        assert_eq!(slippage_percent(d("0"), d("1")), None);
    }

    #[test]
    fn average_price_is_quote_over_quantity() {
        assert_eq!(average_price(d("9.08"), d("0.1")), Some(d("90.8")));
        assert_eq!(average_price(d("1"), d("3")), Some(d("0.33333333")));
        assert_eq!(average_price(d("1"), d("0")), None);
        assert_eq!(average_price(d("-1"), d("1")), None);
    }

    #[test]
    fn average_price_of_a_fill_with_zero_quote_is_zero_not_unknown() {
        // Only a negative quote total is nonsense; zero quote over a real quantity averages 0.
        assert_eq!(average_price(d("0"), d("0.5")), Some(d("0")));
    }

    #[test]
    fn below_by_percent_takes_a_percentage_off() {
        assert_eq!(below_by_percent(d("65000"), d("2")), d("63700"));
        assert_eq!(below_by_percent(d("100"), d("0.5")), d("99.5"));
    }

    #[test]
    fn parse_wire_reads_any_sign_and_scale_and_refuses_garbage() {
        assert_eq!(parse_wire("65000.12000000"), Some(d("65000.12")));
        assert_eq!(parse_wire("-0.00012300"), Some(d("-0.000123")));
        assert_eq!(parse_wire("0.1234567891"), Some(d("0.1234567891")));
        assert_eq!(parse_wire("abc"), None);
        assert_eq!(parse_wire(""), None);
    }

    #[test]
    fn usd_rounds_to_cents() {
        assert_eq!(usd(d("10.005")), d("10.01"));
        assert_eq!(usd(d("-3.333")), d("-3.33"));
    }

    /// A decimal of up to 18 digits with up to 8 decimals, like exchange amounts.
    fn amount() -> impl proptest::strategy::Strategy<Value = Decimal> {
        use proptest::strategy::Strategy;
        (0i64..1_000_000_000_000_000_000, 0u32..=8).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale))
    }

    /// A step of one unit at a power of ten from 10^-8 to 10^2, or 5 of them (Binance's shapes).
    fn step() -> impl proptest::strategy::Strategy<Value = Decimal> {
        use proptest::strategy::Strategy;
        (0u32..=10, proptest::bool::ANY).prop_map(|(exp, five)| {
            let unit = Decimal::new(if five { 5 } else { 1 }, 0) * Decimal::new(100, 0);
            unit / Decimal::new(10i64.pow(exp), 0)
        })
    }

    proptest::proptest! {
        /// Down: the largest multiple of the step not above the value.
        #[test]
        fn rounding_down_lands_on_the_last_step_at_or_below(value in amount(), step in step()) {
            let rounded = round_down_to_step(value, step);
            proptest::prop_assert!(rounded <= value && value - rounded < step, "{value} by {step}: {rounded}");
            proptest::prop_assert!(is_multiple_of_step(rounded, step));
        }

        /// Up: the smallest multiple of the step not below the value.
        #[test]
        fn rounding_up_lands_on_the_first_step_at_or_above(value in amount(), step in step()) {
            let rounded = round_up_to_step(value, step);
            proptest::prop_assert!(rounded >= value && rounded - value < step, "{value} by {step}: {rounded}");
            proptest::prop_assert!(is_multiple_of_step(rounded, step));
        }

        /// The checked forms give what the unchecked ones did, wherever those did not overflow.
        #[test]
        fn the_checked_rounding_matches_the_plain_arithmetic(value in amount(), step in step()) {
            let down = ((value / step).round_dp_with_strategy(0, RoundingStrategy::ToZero) * step).normalize();
            proptest::prop_assert_eq!(round_down_to_step(value, step), down);
            proptest::prop_assert_eq!(round_up_to_step(value, step).to_string(), ((value / step).ceil() * step).to_string());
            proptest::prop_assert_eq!(is_multiple_of_step(value, step), (value % step).is_zero());
        }

        /// No pair of decimals makes step rounding panic.
        #[test]
        fn no_input_makes_step_rounding_panic(
            value in proptest::num::i128::ANY, vs in 0u32..=28, step in proptest::num::i128::ANY, ss in 0u32..=28
        ) {
            let clamp = |m: i128| m % (1i128 << 95);
            let (value, step) = (Decimal::from_i128_with_scale(clamp(value), vs), Decimal::from_i128_with_scale(clamp(step), ss));
            let _ = (round_down_to_step(value, step), round_up_to_step(value, step), is_multiple_of_step(value, step));
        }
    }
}
