//! `--transport ws` with an Ed25519 key: the session is logged on (`session.logon`) once per
//! connection and its requests carry no signature; the key file must be its owner's alone.

use crate::support::server::*;
use crate::support::*;
use genesis::domain::order::{ExchangeOrderType, Side};
use genesis::exchange::binance::ed25519::{Ed25519Key, Ed25519Login};
use genesis::exchange::binance::ws_api::WsApiGateway;
use genesis::exchange::binance::BinanceConfig;
use genesis::exchange::{Exchange, NewOrder};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

/// RFC 8032's test 1 key pair (PKCS#8 and SPKI PEM).
const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";
const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n";
const ED_KEY: &str = "ed25519-test-key";

/// The private key at `mode` and the public key, in `work`.
fn key_files(work: &Workdir, mode: u32) -> (PathBuf, PathBuf) {
    let private = work.dir.path().join("ed25519.pem");
    let public = work.dir.path().join("ed25519.pub.pem");
    std::fs::write(&private, PRIVATE).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::write(&public, PUBLIC).unwrap();
    (private, public)
}

fn ed_server(public: &std::path::Path) -> Server {
    Server::start(&["--ed25519-api-key", ED_KEY, "--ed25519-public-key-file", public.to_str().unwrap()])
}

fn run_ed(server: &Server, work: &Workdir, private: &std::path::Path, input: &str) -> Session {
    let mut all: Vec<String> = server.engine_args();
    all.extend(["--no-confirm", "--tilt", "off", "--transport", "ws"].map(String::from));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let env = [
        ("BINANCE_API_KEY", KEY),
        ("BINANCE_API_SECRET", SECRET),
        ("BINANCE_ED25519_API_KEY", ED_KEY),
        ("BINANCE_ED25519_KEY_FILE", private.to_str().unwrap()),
        ("RUST_LOG", "genesis::exchange=debug"),
    ];
    run_piped_env(work, &refs, input, &env)
}

#[test]
fn the_story_over_a_session_logged_on_with_ed25519_buy_filled_stop() {
    let work = Workdir::new();
    let (private, public) = key_files(&work, 0o600);
    let server = ed_server(&public);
    let s = run_ed(&server, &work, &private, "buy ETHUSDT 0.01\nsell ETHUSDT 0.0099\n");
    assert!(s.status.success(), "{}", s.stderr);
    assert_eq!(s.of_kind("order_filled").len(), 2, "{}", s.stdout);
    assert_eq!(s.of_kind("stop_loss_placed").len(), 1, "{}", s.stdout);
    assert!(s.stderr.contains("session.logon (logon 1)"), "{}", s.stderr);
    for method in ["order.place", "order.cancelReplace"] {
        assert!(s.stderr.contains(&format!("ws-api: {method} -> 200")), "{method} not over ws:\n{}", s.stderr);
    }
    assert!(!s.stderr.contains("MC4CAQ") && !s.stdout.contains("MC4CAQ"), "the key is never printed");
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_placement_whose_answer_is_lost_on_an_ed25519_session_is_resolved_by_query() {
    let work = Workdir::new();
    let (private, public) = key_files(&work, 0o600);
    let server = ed_server(&public);
    server.fault("place:drop-after-execute");
    let s = run_ed(&server, &work, &private, "buy ETHUSDT 0.01\n");
    assert!(s.status.success(), "{}", s.stderr);
    assert_eq!(server.faults_fired(), 1);
    assert_eq!(s.of_kind("order_filled").len(), 1, "{}", s.stdout);
    assert!(s.stderr.contains("session.logon (logon 2)"), "the new connection logged on:\n{}", s.stderr);
    let entries = server.orders(&["ETHUSDT"]).values().filter(|o| o.order_type == ExchangeOrderType::Market).count();
    assert_eq!(entries, 1, "the market order was placed once");
    assert_server_and_database_agree(&server, &work);
}

#[test]
fn a_renewed_connection_logs_on_again_and_a_wrong_key_is_refused() {
    let work = Workdir::new();
    let (_, public) = key_files(&work, 0o600);
    let server = ed_server(&public);
    let login = |api_key: &str| {
        let mut config = BinanceConfig::new(server.url.clone(), KEY, SECRET);
        config.ed25519 = Some(Ed25519Login { api_key: api_key.into(), key: Ed25519Key::from_pem(PRIVATE).unwrap() });
        let mut gateway = WsApiGateway::new(config).unwrap();
        patiently(|| gateway.sync_time());
        gateway
    };
    let mut ws = login(ED_KEY);
    let buy = NewOrder {
        symbol: "ETHUSDT".into(),
        side: Side::Buy,
        order_type: ExchangeOrderType::Market,
        quantity: "0.01".parse().unwrap(),
        price: None,
        stop_price: None,
        client_order_id: "ed-E1".into(),
    };
    ws.place_order(&buy).expect("placed on a logged-on session");
    ws.set_max_connection_age(Duration::ZERO);
    assert!(ws.query_order("ETHUSDT", "ed-E1").is_ok());
    ws.query_order("ETHUSDT", "ed-E1").expect("queried on a renewed session");
    assert_eq!((ws.connections(), ws.logons()), (2, 2));
    let e = login("not-the-key").open().unwrap_err();
    assert!(e.to_string().contains("-2015"), "{e}");
}

#[test]
fn a_key_file_others_can_read_is_refused_in_one_line() {
    let work = Workdir::new();
    let (private, public) = key_files(&work, 0o644);
    let server = ed_server(&public);
    let s = run_ed(&server, &work, &private, "buy ETHUSDT 0.01\n");
    assert!(!s.status.success());
    assert!(s.stderr.contains("can be read by group or others (mode 644); chmod 600 it"), "{}", s.stderr);
    assert!(!s.stderr.contains("MC4CAQ"), "{}", s.stderr);
    assert!(s.of_kind("order_filled").is_empty());
}

#[test]
fn an_ed25519_key_without_the_websocket_transport_is_refused_in_one_line() {
    let work = Workdir::new();
    let (private, public) = key_files(&work, 0o600);
    let server = ed_server(&public);
    let mut all: Vec<String> = server.engine_args();
    all.extend(["--no-confirm", "--transport", "rest"].map(String::from));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let env = [
        ("BINANCE_API_KEY", KEY),
        ("BINANCE_API_SECRET", SECRET),
        ("BINANCE_ED25519_API_KEY", ED_KEY),
        ("BINANCE_ED25519_KEY_FILE", private.to_str().unwrap()),
    ];
    let s = run_piped_env(&work, &refs, "buy ETHUSDT 0.01\n", &env);
    assert!(!s.status.success());
    assert!(
        s.stderr.contains("--ed25519-key-file logs on a WebSocket API session: it needs --transport ws"),
        "{}",
        s.stderr
    );
}
