//! Criterion benches of the hot path. Quick mode in CI: `cargo bench --bench hot_path -- --test`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use genesis::domain::command;
use genesis::domain::money::{average_price, round_down_to_step, slippage_percent, Decimal};
use genesis::domain::order::{ExchangeOrderType, Order, OrderRole, Side};
use genesis::store::{Store, Write};
use std::hint::black_box;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn parsing(c: &mut Criterion) {
    c.bench_function("parse command 'buy BTCUSDT 0.001'", |b| {
        b.iter(|| command::parse(black_box("buy BTCUSDT 0.001")))
    });
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

criterion_group!(benches, parsing, money, persistence);
criterion_main!(benches);
