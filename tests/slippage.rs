//! Slippage alerts, through the real binary on the simulator's slippage knob.

use crate::support::*;
use rust_decimal::Decimal;

#[test]
fn a_fill_beyond_the_slippage_threshold_raises_an_alert_and_a_logged_warning() {
    let work = Workdir::new();
    // The simulator fills every taker order 1 % worse than the book: twice the 0.5 % threshold.
    let s = run_piped(&work, &["--no-confirm", "--sim-slippage-bps", "100"], "buy BTCUSDT 0.001\n");
    assert!(s.status.success(), "{}", s.stderr);
    let filled = s.first("order_filled");
    let alert = s.first("slippage_alert");
    let cid = filled["client_order_id"].as_str().unwrap();
    assert_eq!(alert["client_order_id"], cid);
    assert_eq!(alert["threshold_percent"], "0.5");
    assert_eq!(alert["slippage_percent"], filled["slippage_percent"]);
    assert!(dec(&alert["slippage_percent"]) > Decimal::new(5, 1), "{alert}");
    assert_eq!(alert["avg_price"], filled["avg_price"]);
    assert_eq!(alert["expected_price"], filled["expected_price"]);
    // The warning names the order, like every log line about one.
    let warning = s.stderr.lines().find(|l| l.contains("adverse slippage")).expect("a warning on stderr");
    assert!(warning.contains(cid), "{warning}");
}
