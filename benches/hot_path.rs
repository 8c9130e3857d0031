//! Criterion benches of the hot path. Quick mode in CI: `cargo bench --bench hot_path -- --test`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use genesis::domain::command;
use genesis::domain::money::{average_price, round_down_to_step, slippage_percent, Decimal};
use genesis::domain::order::{ExchangeOrderType, Order, OrderRole, Side};
use genesis::events::{Event, EventKind};
use genesis::exchange::binance::sign::{Secret, Signer};
use genesis::exchange::binance::user_data;
use genesis::exchange::sim::{SimConfig, SimGateway, Simulator};
use genesis::exchange::{Exchange, NewOrder};
use genesis::store::{Store, Write};
use std::hint::black_box;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn parsing(c: &mut Criterion) {
    c.bench_function("parse command 'buy BTCUSDT 0.001'", |b| {
        b.iter(|| command::parse(black_box("buy BTCUSDT 0.001")))
    });
    let rules = Simulator::new(SimConfig::default()).rules("BTCUSDT").cloned().unwrap();
    c.bench_function("parse and validate against BTCUSDT's filters", |b| {
        b.iter(|| {
            let Ok(Some(command::Command::Buy { quantity: Some(q), .. })) =
                command::parse(black_box("buy BTCUSDT 0.001"))
            else {
                unreachable!()
            };
            rules.check_quantity(q).unwrap();
            rules.check_notional(q, d("65000.01")).unwrap();
        })
    });
}

/// A TRADE pushed on the user data stream, with every field Binance sends.
const EXECUTION_PUSH: &str = r#"{"subscriptionId":0,"event":{"e":"executionReport","E":1764062469130,"s":"BTCUSDT","c":"gabc123-E1-0-0123456789abcdef0123","S":"BUY","o":"MARKET","f":"GTC","q":"0.00100000","p":"0.00000000","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE","X":"FILLED","r":"NONE","i":4293153,"l":"0.00100000","z":"0.00100000","L":"65000.01000000","n":"0.00000100","N":"BTC","T":1764062469129,"t":1234567,"I":8641984,"w":false,"m":false,"M":true,"O":1764062469129,"Z":"65.00001000","Y":"65.00001000","Q":"0.00000000","W":1764062469129,"V":"EXPIRE_MAKER"}}"#;

fn stream_parsing(c: &mut Criterion) {
    c.bench_function("parse an executionReport pushed on the user data stream", |b| {
        b.iter(|| user_data::parse_ws_message(black_box(EXECUTION_PUSH)).unwrap())
    });
}

fn signing(c: &mut Criterion) {
    let signer = Signer::new(&Secret::new("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"));
    let query = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&newClientOrderId=gabc123-E1-0-0123456789abcdef0123&newOrderRespType=FULL&recvWindow=5000&timestamp=1764062469123";
    c.bench_function("sign an order request (HMAC-SHA256, hex)", |b| {
        b.iter(|| signer.sign(black_box(query.as_bytes()), b""))
    });
}

/// One order through the exchange boundary on a zero-latency simulator (placement and
/// verification query), beside a bare crossbeam channel round trip between two threads: the
/// price of one hop between stages.
fn order_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("round trip");
    let mut gateway = SimGateway::new(Simulator::new(SimConfig::default()));
    let mut n = 0u64;
    g.bench_function("place + query on the simulator (zero latency)", |b| {
        b.iter(|| {
            n += 1;
            let side = if n.is_multiple_of(2) { Side::Sell } else { Side::Buy };
            let order = NewOrder {
                symbol: "SOLUSDT".into(),
                side,
                order_type: ExchangeOrderType::Market,
                quantity: d("0.1"),
                price: None,
                stop_price: None,
                client_order_id: format!("bench-{n}"),
            };
            gateway.place_order(&order).unwrap();
            gateway.query_order("SOLUSDT", &order.client_order_id).unwrap()
        })
    });
    let (to_worker, from_main) = crossbeam_channel::bounded::<u64>(1);
    let (to_main, from_worker) = crossbeam_channel::bounded::<u64>(1);
    let worker = std::thread::spawn(move || {
        for v in from_main {
            if to_main.send(v).is_err() {
                break;
            }
        }
    });
    g.bench_function("bare crossbeam channel round trip between two threads (baseline)", |b| {
        b.iter(|| {
            to_worker.send(black_box(1)).unwrap();
            from_worker.recv().unwrap()
        })
    });
    g.finish();
    drop(to_worker);
    let _ = worker.join();
}

fn money(c: &mut Criterion) {
    let mut g = c.benchmark_group("money");
    g.bench_function("round down to step", |b| {
        b.iter(|| round_down_to_step(black_box(d("0.0007856509")), black_box(d("0.00001"))))
    });
    g.bench_function("slippage percent", |b| {
        b.iter(|| slippage_percent(black_box(d("65000.01")), black_box(d("65012.37"))))
    });
    g.bench_function("average price", |b| b.iter(|| average_price(black_box(d("65.01237")), black_box(d("0.001")))));
    g.finish();
}

fn persistence(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("bench.db")).unwrap();
    let mut id = 0i64;
    c.bench_function("persist one order (WAL, synchronous=NORMAL)", |b| {
        b.iter_batched(
            || {
                id += 1;
                Order::new(
                    id,
                    format!("gbench-E{id}"),
                    "BTCUSDT".into(),
                    Side::Buy,
                    OrderRole::Entry,
                    ExchangeOrderType::Market,
                    d("0.001"),
                    0,
                )
            },
            |order| store.write_batch(&[Write::Order(&order)]).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

/// The stdout writer's work per event in `--json` mode, on an `order_filled` with its usual fields.
fn event_lines(c: &mut Criterion) {
    let event =
        Event::new(EventKind::OrderFilled, "1 BUY 0.001 BTCUSDT filled at 65000.01 (expected 65000, slippage 0.00%)")
            .order(1, "gabc123-E1")
            .field("symbol", "BTCUSDT")
            .field("side", "BUY")
            .field("status", "FILLED")
            .money("quantity", d("0.001"))
            .money("filled_quantity", d("0.001"))
            .money("avg_price", d("65000.01"))
            .money("expected_price", d("65000"))
            .money("slippage_percent", d("0.0000153846"))
            .money("commission", d("0.000001"))
            .field("commission_asset", "BTC")
            .field("latency_ms", 0.021)
            .field("exchange_order_id", 4293153)
            .field("stages_us", serde_json::json!({"intake": 3, "sign": 0, "round_trip": 11, "total": 21}));
    c.bench_function("an order_filled event as its JSON line", |b| b.iter(|| black_box(&event).to_json_line()));
}

criterion_group!(benches, parsing, stream_parsing, signing, money, order_round_trip, persistence, event_lines);
criterion_main!(benches);
