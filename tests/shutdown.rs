//! A signal stops the engine gracefully, through the real binary.

use crate::support::*;
use std::time::Duration;

#[test]
fn sigterm_stops_taking_commands_finishes_and_exits_cleanly() {
    let work = Workdir::new();
    let mut live = Live::start(&work, &["--no-confirm"]);
    live.send("buy BTCUSDT 0.001");
    let filled = live.wait_for("order_filled", Duration::from_secs(10));
    let status = std::process::Command::new("kill").args(["-TERM", &live.pid().to_string()]).status().unwrap();
    assert!(status.success());
    live.wait_for("shutting_down", Duration::from_secs(10));
    assert!(live.finish().success());
    let cid = filled["client_order_id"].as_str().unwrap();
    let conn = work.conn();
    assert_eq!(order_field(&conn, cid, "status").as_deref(), Some("FILLED"));
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM event_log WHERE event = 'shutting_down'"), 1);
}
