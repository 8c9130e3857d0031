//! The stdin command language. Parsing is pure: a line becomes a `Command` or an error that
//! names the problem in one sentence. Checks that need a symbol's rules happen in intake.

use super::money::{parse_positive, AmountError, Decimal};

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

/// Why a line is not a command. Its `Display` is the one sentence the user sees (intake
/// prefixes the line number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The first word names no command.
    UnknownCommand(String),
    /// A known command with arguments of the wrong shape; holds the usage after `usage: `.
    Usage(String),
    /// A command that takes no arguments got some.
    UnexpectedArguments {
        verb: String,
        args: String,
    },
    /// `sell SYMBOL` (a buy may leave the quantity to the position rule).
    MissingQuantity {
        verb: String,
    },
    MissingSymbolAndQuantity {
        verb: String,
    },
    TooManyArguments {
        verb: String,
    },
    BadSymbol(String),
    /// An amount (`what`: quantity, bid, ask) that is not a plain positive number.
    BadAmount {
        what: &'static str,
        source: AmountError,
    },
    BidNotBelowAsk {
        bid: Decimal,
        ask: Decimal,
    },
    /// A count (`what`: slices, seconds) that is not a whole number.
    NotAWholeNumber {
        what: &'static str,
        text: String,
    },
    SlicesOutOfRange(u32),
    SecondsOutOfRange(u32),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::UnknownCommand(word) => write!(f, "unknown command '{word}' (expected one of: {COMMANDS})"),
            ParseError::Usage(usage) => write!(f, "usage: {usage}"),
            ParseError::UnexpectedArguments { verb, args } => write!(f, "'{verb}' takes no arguments, got '{args}'"),
            ParseError::MissingQuantity { verb } => write!(f, "missing quantity: usage: {verb} SYMBOL QTY"),
            ParseError::MissingSymbolAndQuantity { verb } => {
                write!(f, "missing symbol and quantity: usage: {verb} SYMBOL QTY")
            }
            ParseError::TooManyArguments { verb } => write!(f, "too many arguments: usage: {verb} SYMBOL QTY"),
            ParseError::BadSymbol(text) => {
                write!(f, "bad symbol '{text}' (expected letters and digits, e.g. BTCUSDT)")
            }
            ParseError::BadAmount { what, source } => write!(f, "bad {what}: {source}"),
            ParseError::BidNotBelowAsk { bid, ask } => write!(f, "bad price: bid {bid} must be below ask {ask}"),
            ParseError::NotAWholeNumber { what, text } => write!(f, "bad {what}: '{text}' is not a whole number"),
            ParseError::SlicesOutOfRange(n) => write!(f, "bad slices: {n} (an iceberg takes 2 to {MAX_SLICES} slices)"),
            ParseError::SecondsOutOfRange(n) => {
                write!(f, "bad seconds: {n} (a TWAP runs 1 to {MAX_TWAP_SECONDS} seconds)")
            }
        }
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ParseError::BadAmount { source, .. } => Some(source),
            _ => None,
        }
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

fn usage<T>(text: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError::Usage(text.into()))
}

fn amount(what: &'static str, text: &str) -> Result<Decimal, ParseError> {
    parse_positive(text).map_err(|source| ParseError::BadAmount { what, source })
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
            _ => return usage("confirm ID (answer one confirmation) or confirm on|off"),
        },
        "reject" => match args {
            [id] => Command::Answer { id: id.to_string(), accept: false },
            _ => return usage("reject ID"),
        },
        "status" => match args {
            [id] => Command::Status { id: id.to_string() },
            _ => return usage("status ID (an order_id or client_order_id)"),
        },
        "iceberg" | "twap" => parse_sliced(&verb, args)?,
        "account" => no_args(&verb, args, Command::Account)?,
        "stats" => no_args(&verb, args, Command::Stats)?,
        "halt" => no_args(&verb, args, Command::Halt)?,
        "resume" => no_args(&verb, args, Command::Resume)?,
        "price" => match args {
            [symbol, bid, ask] => {
                let symbol = parse_symbol(symbol)?;
                let bid = amount("bid", bid)?;
                let ask = amount("ask", ask)?;
                if bid >= ask {
                    return Err(ParseError::BidNotBelowAsk { bid, ask });
                }
                Command::Price { symbol, bid, ask }
            }
            _ => return usage("price SYMBOL BID ASK"),
        },
        "orders" => no_args(&verb, args, Command::Orders)?,
        "positions" => no_args(&verb, args, Command::Positions)?,
        "cancel-all" => no_args(&verb, args, Command::CancelAll)?,
        "help" => Command::Help,
        "quit" | "exit" => no_args(&verb, args, Command::Quit)?,
        _ => return Err(ParseError::UnknownCommand(words[0].to_string())),
    };
    Ok(Some(command))
}

fn no_args(verb: &str, args: &[&str], command: Command) -> Result<Command, ParseError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(ParseError::UnexpectedArguments { verb: verb.to_string(), args: args.join(" ") })
    }
}

fn parse_order(verb: &str, args: &[&str]) -> Result<Command, ParseError> {
    let (symbol, quantity) = match args {
        [symbol] if verb == "buy" => (symbol, None),
        [_] => return Err(ParseError::MissingQuantity { verb: verb.to_string() }),
        [symbol, quantity] => (symbol, Some(*quantity)),
        [] => return Err(ParseError::MissingSymbolAndQuantity { verb: verb.to_string() }),
        _ => return Err(ParseError::TooManyArguments { verb: verb.to_string() }),
    };
    let symbol = parse_symbol(symbol)?;
    let quantity = match quantity {
        Some(text) => Some(amount("quantity", text)?),
        None => None,
    };
    Ok(match (verb, quantity) {
        ("buy", quantity) => Command::Buy { symbol, quantity },
        (_, Some(quantity)) => Command::Sell { symbol, quantity },
        (_, None) => return Err(ParseError::MissingQuantity { verb: verb.to_string() }),
    })
}

fn parse_sliced(verb: &str, args: &[&str]) -> Result<Command, ParseError> {
    let (last, what) = if verb == "iceberg" { ("SLICES", "slices") } else { ("SECONDS", "seconds") };
    let [symbol, quantity, count] = args else {
        return usage(format!("{verb} SYMBOL QTY {last}"));
    };
    let symbol = parse_symbol(symbol)?;
    let quantity = amount("quantity", quantity)?;
    let count: u32 = count.parse().map_err(|_| ParseError::NotAWholeNumber { what, text: count.to_string() })?;
    if verb == "iceberg" {
        if !(2..=MAX_SLICES).contains(&count) {
            return Err(ParseError::SlicesOutOfRange(count));
        }
        Ok(Command::Iceberg { symbol, quantity, slices: count })
    } else {
        if !(1..=MAX_TWAP_SECONDS).contains(&count) {
            return Err(ParseError::SecondsOutOfRange(count));
        }
        Ok(Command::Twap { symbol, quantity, seconds: count })
    }
}

fn parse_symbol(text: &str) -> Result<String, ParseError> {
    if text.is_empty() || text.len() > 20 || !text.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ParseError::BadSymbol(text.to_string()));
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
        parse(line).unwrap_err().to_string()
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
    fn a_bad_amount_keeps_the_amount_error_as_its_source() {
        use std::error::Error;
        let error = parse("buy BTCUSDT abc").unwrap_err();
        assert_eq!(error, ParseError::BadAmount { what: "quantity", source: AmountError::NotANumber("abc".into()) });
        assert_eq!(error.source().unwrap().to_string(), "'abc' is not a number");
        assert!(parse("byu").unwrap_err().source().is_none());
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
