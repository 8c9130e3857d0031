//! The stdin command language. Parsing is pure: a line becomes a `Command` or an error that
//! names the problem in one sentence. Checks that need a symbol's rules happen in intake.

use super::money::{parse_positive, Decimal};

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Market buy; `None` sizes the order to the position rule.
    Buy {
        symbol: String,
        quantity: Option<Decimal>,
    },
    Sell {
        symbol: String,
        quantity: Decimal,
    },
    /// A buy split into `slices` market orders sent one after another (HUNTER and above).
    Iceberg {
        symbol: String,
        quantity: Decimal,
        slices: u32,
    },
    /// A buy split into market orders spread evenly over `seconds` (STRATEGIST and above).
    Twap {
        symbol: String,
        quantity: Decimal,
        seconds: u32,
    },
    /// Tier, balances, equity, the day's P&L and the tilt guard.
    Account,
    /// Latency per stage, counts, the circuit breaker.
    Stats,
    /// Kill switch: cancel every open order and refuse new entries until `resume`.
    Halt,
    Resume,
    /// Set the simulator's top of book (tests and demos).
    Price {
        symbol: String,
        bid: Decimal,
        ask: Decimal,
    },
    /// `y` / `n`: answer the oldest pending confirmation.
    AnswerOldest {
        accept: bool,
    },
    /// `confirm ID` / `reject ID`.
    Answer {
        id: String,
        accept: bool,
    },
    Status {
        id: String,
    },
    Orders,
    Positions,
    CancelAll,
    SetConfirm {
        on: bool,
    },
    Help,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub const COMMANDS: &str =
    "buy, sell, iceberg, twap, y, n, confirm, reject, status, orders, positions, account, stats, price, cancel-all, halt, resume, help, quit";

pub const HELP: &str = "commands: buy SYMBOL [QTY] | sell SYMBOL QTY | iceberg SYMBOL QTY SLICES | \
twap SYMBOL QTY SECONDS | y | n | confirm ID | reject ID | status ID | orders | positions | account | stats | price SYMBOL BID ASK | \
cancel-all | halt | resume | confirm on|off | help | quit";

/// Most slices an iceberg or TWAP may be split into.
pub const MAX_SLICES: u32 = 100;
/// Longest TWAP, seconds (a day).
pub const MAX_TWAP_SECONDS: u32 = 86_400;

fn err<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

/// Parses one line. `Ok(None)` for blank lines and `#` comments.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let verb = words[0].to_ascii_lowercase();
    let args = &words[1..];
    let command = match verb.as_str() {
        "buy" | "sell" => parse_order(&verb, args)?,
        "y" | "yes" => no_args(&verb, args, Command::AnswerOldest { accept: true })?,
        "n" | "no" => no_args(&verb, args, Command::AnswerOldest { accept: false })?,
        "confirm" => match args {
            [flag] if flag.eq_ignore_ascii_case("on") => Command::SetConfirm { on: true },
            [flag] if flag.eq_ignore_ascii_case("off") => Command::SetConfirm { on: false },
            [id] => Command::Answer { id: id.to_string(), accept: true },
            _ => return err("usage: confirm ID (answer one confirmation) or confirm on|off"),
        },
        "reject" => match args {
            [id] => Command::Answer { id: id.to_string(), accept: false },
            _ => return err("usage: reject ID"),
        },
        "status" => match args {
            [id] => Command::Status { id: id.to_string() },
            _ => return err("usage: status ID (an order_id or client_order_id)"),
        },
        "iceberg" | "twap" => parse_sliced(&verb, args)?,
        "account" => no_args(&verb, args, Command::Account)?,
        "stats" => no_args(&verb, args, Command::Stats)?,
        "halt" => no_args(&verb, args, Command::Halt)?,
        "resume" => no_args(&verb, args, Command::Resume)?,
        "price" => match args {
            [symbol, bid, ask] => {
                let symbol = parse_symbol(symbol)?;
                let bid = parse_positive(bid).map_err(|e| ParseError(format!("bad bid: {e}")))?;
                let ask = parse_positive(ask).map_err(|e| ParseError(format!("bad ask: {e}")))?;
                if bid >= ask {
                    return err(format!("bad price: bid {bid} must be below ask {ask}"));
                }
                Command::Price { symbol, bid, ask }
            }
            _ => return err("usage: price SYMBOL BID ASK"),
        },
        "orders" => no_args(&verb, args, Command::Orders)?,
        "positions" => no_args(&verb, args, Command::Positions)?,
        "cancel-all" => no_args(&verb, args, Command::CancelAll)?,
        "help" => Command::Help,
        "quit" | "exit" => no_args(&verb, args, Command::Quit)?,
        _ => return err(format!("unknown command '{}' (expected one of: {COMMANDS})", words[0])),
    };
    Ok(Some(command))
}

fn no_args(verb: &str, args: &[&str], command: Command) -> Result<Command, ParseError> {
    if args.is_empty() {
        Ok(command)
    } else {
        err(format!("'{verb}' takes no arguments, got '{}'", args.join(" ")))
    }
}

fn parse_order(verb: &str, args: &[&str]) -> Result<Command, ParseError> {
    let (symbol, quantity) = match args {
        [symbol] if verb == "buy" => (symbol, None),
        [_] => return err(format!("missing quantity: usage: {verb} SYMBOL QTY")),
        [symbol, quantity] => (symbol, Some(*quantity)),
        [] => return err(format!("missing symbol and quantity: usage: {verb} SYMBOL QTY")),
        _ => return err(format!("too many arguments: usage: {verb} SYMBOL QTY")),
    };
    let symbol = parse_symbol(symbol)?;
    let quantity = match quantity {
        Some(text) => Some(parse_positive(text).map_err(|e| ParseError(format!("bad quantity: {e}")))?),
        None => None,
    };
    Ok(match (verb, quantity) {
        ("buy", quantity) => Command::Buy { symbol, quantity },
        (_, Some(quantity)) => Command::Sell { symbol, quantity },
        (_, None) => return err(format!("missing quantity: usage: {verb} SYMBOL QTY")),
    })
}

fn parse_sliced(verb: &str, args: &[&str]) -> Result<Command, ParseError> {
    let last = if verb == "iceberg" { "SLICES" } else { "SECONDS" };
    let [symbol, quantity, count] = args else {
        return err(format!("usage: {verb} SYMBOL QTY {last}"));
    };
    let symbol = parse_symbol(symbol)?;
    let quantity = parse_positive(quantity).map_err(|e| ParseError(format!("bad quantity: {e}")))?;
    let count: u32 = count
        .parse()
        .map_err(|_| ParseError(format!("bad {}: '{count}' is not a whole number", last.to_lowercase())))?;
    if verb == "iceberg" {
        if !(2..=MAX_SLICES).contains(&count) {
            return err(format!("bad slices: {count} (an iceberg takes 2 to {MAX_SLICES} slices)"));
        }
        Ok(Command::Iceberg { symbol, quantity, slices: count })
    } else {
        if !(1..=MAX_TWAP_SECONDS).contains(&count) {
            return err(format!("bad seconds: {count} (a TWAP runs 1 to {MAX_TWAP_SECONDS} seconds)"));
        }
        Ok(Command::Twap { symbol, quantity, seconds: count })
    }
}

fn parse_symbol(text: &str) -> Result<String, ParseError> {
    if text.is_empty() || text.len() > 20 || !text.chars().all(|c| c.is_ascii_alphanumeric()) {
        return err(format!("bad symbol '{text}' (expected letters and digits, e.g. BTCUSDT)"));
    }
    Ok(text.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn parse_err(line: &str) -> String {
        parse(line).unwrap_err().0
    }

    #[test]
    fn buy_and_sell_parse_symbol_and_quantity() {
        assert_eq!(
            parse("buy BTCUSDT 0.001"),
            Ok(Some(Command::Buy { symbol: "BTCUSDT".into(), quantity: Some(d("0.001")) }))
        );
        assert_eq!(
            parse("  SELL btcusdt 0.0005 "),
            Ok(Some(Command::Sell { symbol: "BTCUSDT".into(), quantity: d("0.0005") }))
        );
    }

    #[test]
    fn buy_without_quantity_asks_for_rule_sizing() {
        assert_eq!(parse("buy ETHUSDT"), Ok(Some(Command::Buy { symbol: "ETHUSDT".into(), quantity: None })));
    }

    #[test]
    fn blank_lines_and_comments_are_ignored() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("# buy BTCUSDT 1"), Ok(None));
    }

    #[test]
    fn unknown_command_names_the_word_and_the_choices() {
        assert_eq!(parse_err("byu BTCUSDT 1"), format!("unknown command 'byu' (expected one of: {COMMANDS})"));
    }

    #[test]
    fn a_parse_error_displays_as_its_one_sentence() {
        let error = parse("buy BTCUSDT 0").unwrap_err();
        assert_eq!(error.to_string(), "bad quantity: '0' must be greater than zero");
    }

    #[test]
    fn bad_quantities_are_refused_with_the_reason() {
        assert_eq!(parse_err("buy BTCUSDT 0"), "bad quantity: '0' must be greater than zero");
        assert_eq!(parse_err("buy BTCUSDT -1"), "bad quantity: '-1' must be greater than zero");
        assert_eq!(parse_err("buy BTCUSDT abc"), "bad quantity: 'abc' is not a number");
        assert_eq!(parse_err("sell BTCUSDT"), "missing quantity: usage: sell SYMBOL QTY");
        assert_eq!(parse_err("buy"), "missing symbol and quantity: usage: buy SYMBOL QTY");
        assert_eq!(parse_err("buy BTCUSDT 1 2"), "too many arguments: usage: buy SYMBOL QTY");
    }

    #[test]
    fn bad_symbol_is_refused() {
        assert_eq!(parse_err("buy BTC/USDT 1"), "bad symbol 'BTC/USDT' (expected letters and digits, e.g. BTCUSDT)");
    }

    #[test]
    fn confirmation_answers_parse() {
        assert_eq!(parse("y"), Ok(Some(Command::AnswerOldest { accept: true })));
        assert_eq!(parse("n"), Ok(Some(Command::AnswerOldest { accept: false })));
        assert_eq!(parse("confirm 12"), Ok(Some(Command::Answer { id: "12".into(), accept: true })));
        assert_eq!(parse("reject g1-Eab"), Ok(Some(Command::Answer { id: "g1-Eab".into(), accept: false })));
        assert_eq!(parse("confirm off"), Ok(Some(Command::SetConfirm { on: false })));
        assert_eq!(parse("confirm ON"), Ok(Some(Command::SetConfirm { on: true })));
        assert!(parse("confirm").is_err());
    }

    #[test]
    fn queries_and_controls_parse() {
        assert_eq!(parse("status 7"), Ok(Some(Command::Status { id: "7".into() })));
        assert_eq!(parse("orders"), Ok(Some(Command::Orders)));
        assert_eq!(parse("positions"), Ok(Some(Command::Positions)));
        assert_eq!(parse("cancel-all"), Ok(Some(Command::CancelAll)));
        assert_eq!(parse("help"), Ok(Some(Command::Help)));
        assert_eq!(parse("quit"), Ok(Some(Command::Quit)));
        assert_eq!(parse_err("orders now"), "'orders' takes no arguments, got 'now'");
    }

    #[test]
    fn iceberg_and_twap_parse_with_their_counts() {
        assert_eq!(
            parse("iceberg BTCUSDT 0.01 5"),
            Ok(Some(Command::Iceberg { symbol: "BTCUSDT".into(), quantity: d("0.01"), slices: 5 }))
        );
        assert_eq!(
            parse("twap ETHUSDT 1 60"),
            Ok(Some(Command::Twap { symbol: "ETHUSDT".into(), quantity: d("1"), seconds: 60 }))
        );
        assert_eq!(parse_err("iceberg BTCUSDT 0.01"), "usage: iceberg SYMBOL QTY SLICES");
        assert_eq!(parse_err("iceberg BTCUSDT 0.01 1"), "bad slices: 1 (an iceberg takes 2 to 100 slices)");
        assert_eq!(parse_err("twap BTCUSDT 0.01 x"), "bad seconds: 'x' is not a whole number");
        assert_eq!(parse_err("twap BTCUSDT 0.01 0"), "bad seconds: 0 (a TWAP runs 1 to 86400 seconds)");
    }

    #[test]
    fn price_parses_and_checks_bid_below_ask() {
        assert_eq!(
            parse("price BTCUSDT 60000 60000.01"),
            Ok(Some(Command::Price { symbol: "BTCUSDT".into(), bid: d("60000"), ask: d("60000.01") }))
        );
        assert_eq!(parse_err("price BTCUSDT 2 1"), "bad price: bid 2 must be below ask 1");
        assert_eq!(parse_err("price BTCUSDT 2"), "usage: price SYMBOL BID ASK");
    }

    #[test]
    fn account_parses() {
        assert_eq!(parse("account"), Ok(Some(Command::Account)));
        assert_eq!(parse("halt"), Ok(Some(Command::Halt)));
        assert_eq!(parse("resume"), Ok(Some(Command::Resume)));
    }

    #[test]
    fn a_sell_without_quantity_is_refused_for_the_quantity_before_the_symbol_is_checked() {
        assert_eq!(parse_err("sell BTC/USDT"), "missing quantity: usage: sell SYMBOL QTY");
    }

    #[test]
    fn symbols_of_up_to_20_characters_are_accepted() {
        let symbol = "A".repeat(20);
        assert_eq!(
            parse(&format!("sell {symbol} 1")),
            Ok(Some(Command::Sell { symbol: symbol.clone(), quantity: d("1") }))
        );
    }

    #[test]
    fn symbols_longer_than_20_characters_are_refused() {
        let symbol = "A".repeat(21);
        assert_eq!(
            parse_err(&format!("sell {symbol} 1")),
            format!("bad symbol '{symbol}' (expected letters and digits, e.g. BTCUSDT)")
        );
    }

    #[test]
    fn stats_parses() {
        assert_eq!(parse("stats"), Ok(Some(Command::Stats)));
    }

    #[test]
    fn no_line_panics_the_parser() {
        for line in
            ["\u{0}", "buy \u{1F600} 1", "buy BTCUSDT 1e999", "status", "y y", "sell A 99999999999999999999999999999"]
        {
            let _ = parse(line);
        }
    }
}
