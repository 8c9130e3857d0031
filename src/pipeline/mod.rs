//! The pipeline: one OS thread per stage, joined by bounded crossbeam channels.
//!
//! Set-up: open the store, connect the gateway, load the symbols' rules and what the database
//! knows (positions, resting orders), spawn the stages. Run: intake reads a line and runs it
//! through exchange I/O on its own thread, up to the fill's line on stdout (the order path runs
//! to completion there), then records the execution and places the stop-loss on the same
//! thread; records go to persist, events to the stdout writer.
//! Shutdown is a drop cascade: end of input (or `quit`) ends intake, which drops its sender;
//! exchange I/O finishes what is in flight (verification and stop-loss included) and drops
//! its senders; persist drains and stops; the writer flushes.

pub mod account;
pub mod exchange_io;
pub mod guard;
pub mod input;
pub mod intake;
pub mod msg;
pub mod persist;
pub mod placement;
pub mod record;
pub mod slots;
pub mod startup;
pub mod stats;

use crate::config::{Config, ExchangeKind};
use crate::domain::ids::IdGen;
use crate::domain::symbol::SymbolRules;
use crate::events::{self, Bus, Event, EventKind, Format};
use crate::exchange::{Connected, ExchangeError};
use crate::store::{Store, StoreError};
use crossbeam_channel::bounded;
use msg::Timing;
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

/// Capacity of the queue from intake to exchange I/O's thread. Intake now runs its commands
/// through the stage itself (see `exchange_io::inline`) and the queue only tells, by closing,
/// that intake has ended; before, one slot let intake prepare the next order while exchange I/O
/// sent this one, and a deeper queue only lengthened the flood's tail (figures: docs/perf/journal.md).
const ORDER_PATH_QUEUE: usize = 1;

/// How often a checkpoint round starts (see `store::run_checkpoints`). The WAL holds about one
/// round of writes and its index, mapped into our memory, as much as the largest round needed:
/// a shorter round keeps resident memory lower at no cost in latency (figures:
/// docs/perf/journal.md).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Every symbol's rules, by symbol; loaded once at start, then read-only.
pub type Rules = HashMap<String, SymbolRules>;

/// Busy-waits up to `spin` until `ready()` (the opt-in alternative to parking: waking a parked
/// thread costs more than the order's compute; docs/perf/journal.md).
pub(crate) fn spin_until(spin: std::time::Duration, ready: impl Fn() -> bool) {
    if spin.is_zero() {
        return;
    }
    let until = Instant::now() + spin;
    while !ready() && Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Errors that stop the engine from starting or running.
#[derive(Debug)]
pub enum RunError {
    Store(StoreError),
    Exchange(ExchangeError),
    Config(String),
    Thread(String),
    /// Asked to stop (`quit`, SIGINT, SIGTERM) before start-up completed: a clean exit.
    Stopped,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Store(e) => write!(f, "{e}"),
            RunError::Exchange(e) => write!(f, "exchange: {e}"),
            RunError::Config(e) => write!(f, "{e}"),
            RunError::Thread(e) => write!(f, "thread: {e}"),
            RunError::Stopped => write!(f, "stopped before start-up completed"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        RunError::Store(e)
    }
}

impl From<ExchangeError> for RunError {
    fn from(e: ExchangeError) -> Self {
        RunError::Exchange(e)
    }
}

/// One order's latency breakdown, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLatency {
    pub intake_us: u64,
    pub sign_us: u64,
    pub round_trip_us: u64,
    pub verify_query_us: u64,
    pub verify_us: u64,
    pub total_us: u64,
}

fn micros(from: Instant, to: Option<Instant>) -> u64 {
    to.map(|t| t.saturating_duration_since(from).as_micros() as u64).unwrap_or(0)
}

impl OrderLatency {
    pub fn of(t: &Timing) -> OrderLatency {
        OrderLatency {
            intake_us: micros(t.read_at, Some(t.ready_at)),
            sign_us: t.sign_ns / 1000,
            round_trip_us: t.sent_at.map(|s| micros(s, t.placed_at)).unwrap_or(0),
            verify_query_us: t.placed_at.map(|p| micros(p, t.queried_at)).unwrap_or(0),
            verify_us: t.queried_at.map(|q| micros(q, t.verified_at)).unwrap_or(0),
            total_us: micros(t.read_at, t.verified_at),
        }
    }
}

/// The gateway and the quote source for the configured exchange; its reads go through `reads`.
fn connect(
    config: &Config,
    placement: &placement::Placement,
    reads: &mut startup::StartupReads<'_>,
) -> Result<Connected, RunError> {
    match config.exchange {
        ExchangeKind::Sim => crate::exchange::sim::connect_embedded(config).map_err(RunError::Config),
        ExchangeKind::Binance => connect_binance(config, placement, reads),
    }
}

impl From<startup::StartupError> for RunError {
    fn from(e: startup::StartupError) -> Self {
        match e {
            startup::StartupError::Stopped => RunError::Stopped,
            startup::StartupError::Refused(e) => RunError::Exchange(e),
        }
    }
}

impl From<exchange_io::reconcile::ReconcileError> for RunError {
    fn from(e: exchange_io::reconcile::ReconcileError) -> Self {
        match e {
            exchange_io::reconcile::ReconcileError::Store(e) => RunError::Store(e),
            exchange_io::reconcile::ReconcileError::Startup(e) => e.into(),
        }
    }
}

/// Keys come from the environment only, so they never sit in a shell history or `ps`. The quote
/// poller runs on the background core (see the layout in [`run`]).
fn connect_binance(
    config: &Config,
    placement: &placement::Placement,
    reads: &mut startup::StartupReads<'_>,
) -> Result<Connected, RunError> {
    use crate::exchange::binance::{quotes::BinanceQuotes, BinanceConfig, BinanceGateway};
    let key = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| RunError::Config(format!("--exchange binance needs the {name} environment variable")))
    };
    let mut binance =
        BinanceConfig::new(config.binance.base_url.clone(), key("BINANCE_API_KEY")?, key("BINANCE_API_SECRET")?);
    binance.connect_timeout = config.binance.connect_timeout;
    binance.read_timeout = config.binance.read_timeout;
    binance.max_retry_after_wait = config.binance.max_entry_retry_wait;
    if let Some(path) = &config.binance.ed25519_key_file {
        use crate::exchange::binance::ed25519::{Ed25519Key, Ed25519Login, API_KEY_ENV};
        if config.binance.transport != crate::config::Transport::Ws {
            return Err(RunError::Config(
                "--ed25519-key-file logs on a WebSocket API session: it needs --transport ws".into(),
            ));
        }
        let private = Ed25519Key::from_file(path).map_err(RunError::Config)?;
        binance.ed25519 = Some(Ed25519Login { api_key: key(API_KEY_ENV)?.into(), key: private });
    }
    let book = match config.binance.quotes {
        crate::config::QuoteSource::Rest => None,
        crate::config::QuoteSource::Stream => {
            let pin = placement.hook("market-stream", placement.background);
            let started = crate::exchange::binance::market_stream::start_engine(&binance.base_url, move || {
                pin();
            });
            Some(started.map_err(|e| RunError::Thread(format!("market stream: {e}")))?)
        }
    };
    let pin = placement.hook("quotes", placement.background);
    let quotes = BinanceQuotes::start(binance.clone(), config.binance.quote_refresh, book, move || {
        pin();
    })?;
    let stream = config.binance.stream.then(|| crate::exchange::binance::stream::StreamConfig {
        url: crate::exchange::binance::user_data::ws_api_url(&binance.base_url),
        api_key: binance.api_key.clone(),
        api_secret: binance.api_secret.clone(),
        connect_timeout: binance.connect_timeout,
        clock: Default::default(),
    });
    // The server time only: the rules are read once, by `run`.
    if config.binance.transport == crate::config::Transport::Ws {
        let mut gateway = crate::exchange::binance::ws_api::WsApiGateway::new(binance)?;
        reads.read("time", startup::weight::TIME, || gateway.sync_time())?;
        if let Err(e) = gateway.open() {
            log::warn!("WebSocket API: {e}; the first order connects again");
        }
        let stream = stream.map(|s| crate::exchange::binance::stream::StreamConfig { clock: gateway.clock(), ..s });
        return Ok(Connected { gateway: Box::new(gateway), quotes, stream: push_source(stream) });
    }
    let mut gateway = BinanceGateway::new(binance)?;
    reads.read("time", startup::weight::TIME, || gateway.sync_time())?;
    let stream = stream.map(|s| crate::exchange::binance::stream::StreamConfig { clock: gateway.clock(), ..s });
    Ok(Connected { gateway: Box::new(gateway), quotes, stream: push_source(stream) })
}

fn push_source(
    stream: Option<crate::exchange::binance::stream::StreamConfig>,
) -> Option<Box<dyn crate::exchange::PushSource>> {
    stream.map(|s| Box::new(s) as Box<dyn crate::exchange::PushSource>)
}

/// The account: tier (flag, else saved, else SNIPER; a flag is saved), limits, today's
/// realized P&L from the database, balances from the exchange.
/// (The balances come with reconciliation, the one `account` read of a start.)
fn open_account(config: &Config, store: &mut Store) -> Result<account::Account, RunError> {
    use crate::domain::risk::{DailyPnl, Tier, DAY_US};
    use crate::store::Write;
    let saved = store.setting("tier")?.and_then(|t| Tier::parse(&t));
    let tier = config.risk.tier.or(saved).unwrap_or_default();
    if config.risk.tier.is_some() && config.risk.tier != saved {
        store.write_batch(&[Write::Setting("tier", tier.as_str())])?;
    }
    let mut limits = config.risk.limits.clone();
    if let Some(limit) = config.risk.daily_loss_limit_override {
        match tier {
            Tier::Sniper => limits.daily_loss_limit.sniper = limit,
            Tier::Hunter => limits.daily_loss_limit.hunter = limit,
            Tier::Strategist => limits.daily_loss_limit.strategist = limit,
        }
    }
    let now = crate::domain::now_us();
    let today_start = now.div_euclid(DAY_US) * DAY_US;
    let quote = "USDT";
    let daily = DailyPnl::from_records(quote, store.realized_since(today_start)?, now);
    let account = account::Account::new(tier, limits, quote, daily);
    account.set_halted(store.setting("halted")?.as_deref() == Some("on"));
    Ok(account)
}

/// Runs the engine on stdin/stdout until end of input or `quit`.
pub fn run(config: Config) -> Result<(), RunError> {
    // The layout is explained where the stages are spawned.
    let placement = placement::Placement::plan(config.tuning.pin)?;
    let (order_path_core, background_core) = (placement.order_path, placement.background);
    let mut store = Store::open(&config.db)?;
    store.disable_auto_checkpoint()?;
    let meta = store.load_meta()?;
    // Before any request: until this run stops cleanly, its orders may go unrecorded.
    let run_started_us = crate::domain::now_us();
    let history = store.begin_run(run_started_us)?;
    let ids = Arc::new(IdGen::new(meta.prefix.clone(), meta.last_order_id));
    let confirm = config.confirm.from_flag.or(meta.confirm).unwrap_or(true);
    // The exchange's order limit is set once `exchangeInfo` is read.
    let guard = Arc::new(guard::ExchangeGuard::new(u32::MAX));
    let stats = Arc::new(stats::Stats::default());
    let account = Arc::new(open_account(&config, &mut store)?);
    let (from_signals, to_intake) =
        std::os::unix::net::UnixStream::pair().map_err(|e| RunError::Thread(format!("signal pipe: {e}")))?;
    let mut input = input::Input::stdin(from_signals).map_err(|e| RunError::Config(format!("stdin: {e}")))?;
    // From here a signal reaches intake's wake-up pipe, and start-up's waits.
    watch_signals(to_intake)?;

    let cap = config.tuning.channel_capacity;
    let format = if config.output.json { Format::Json } else { Format::Text };
    // Exchange I/O writes an order's fill to stdout itself when it can (see `events::Sink`).
    let stdout =
        std::io::stdout().as_fd().try_clone_to_owned().map_err(|e| RunError::Config(format!("stdout: {e}")))?;
    let (to_stdout, from_bus) = events::stdout_lanes_to(cap, cap / 4, events::Sink::on(stdout, format));
    let (to_persist, from_stages) = bounded(cap);
    // A short queue on the order path: a backlog waits in the producer's pipe, not inside the
    // engine, so a command's latency is the engine's own time and memory stays flat.
    let (to_exchange, from_intake) = bounded(ORDER_PATH_QUEUE);
    let bus = Bus::new(to_stdout.clone(), Some(to_persist.clone()));

    // The layout below, and the measurements behind each choice, are in docs/perf/journal.md
    // ("numbers moved out of code comments", and the 2026-12-03 entries).
    //
    // Intake and exchange I/O share one core (the last): intake hands an order over and blocks
    // in poll at once, so exchange I/O runs on the same core after a plain context switch
    // instead of a cross-core wake-up (pinning them to distinct cores was worse than not
    // pinning). The record step runs on the order path's thread after the fill's line; it was a
    // thread of its own until 2026-12-06, and a sell right behind its buy waited for the buy's
    // round trip through it.
    //
    // Over HTTP too, although a floating exchange I/O could follow the thread that answers it.
    // Floating, it went wherever its last waker ran: a fill's hand-back for its stop-loss and
    // the user stream's reports moved it to the idle first core. The next order's wake-up
    // then queued it there, behind persist, the user stream or the server, and in `SCHED_BATCH`
    // it waits for them to block or for the tick. The price of pinning is the loopback server's
    // thread, which sometimes settles on the other core; a remote exchange answers through the
    // network.
    //
    // Persist and the WAL checkpoint, whose long commits and copying would otherwise land on
    // the order path's core and hold it for a whole scheduler slice, are kept on the first
    // core. So are the user stream and the quote poller (binance): floating, the stream's thread
    // woke beside exchange I/O after each placement to parse its pushes, and exchange I/O, which
    // cannot preempt it, waited. The stdout writer floats: on the first core it fell behind
    // persist in the flood.
    let background_yields = config.exchange == ExchangeKind::Binance;
    // Dropped after the stages are joined: the checkpoint thread then closes the last
    // connection, and SQLite removes the WAL file.
    let (stop_checkpoints, checkpoints_stopped) = bounded::<()>(1);
    let checkpoint_due = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkpoints = {
        let (path, due) = (config.db.clone(), Arc::clone(&checkpoint_due));
        let pin = placement.hook("checkpoint", background_core);
        thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                if !pin() {
                    return;
                }
                if background_yields {
                    placement::yield_to_everything("checkpoint");
                }
                crate::store::run_checkpoints(&path, CHECKPOINT_EVERY, &checkpoints_stopped, || {
                    due.store(true, std::sync::atomic::Ordering::Relaxed)
                })
            })
            .map_err(|e| RunError::Thread(format!("checkpoint: {e}")))?
    };

    let mut handles = Vec::new();
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        thread::Builder::new().name(name.to_string()).spawn(f).map_err(|e| RunError::Thread(format!("{name}: {e}")))
    };

    handles.push(spawn("stdout", Box::new(move || events::run_stdout_writer(from_bus)))?);
    let persist = persist::Persist {
        store,
        account: Arc::clone(&account),
        stats: Arc::clone(&stats),
        guard: Arc::clone(&guard),
        bus: Bus::new(to_stdout.clone(), None),
        checkpoint_due,
    };
    let pin = placement.hook("persist", background_core);
    handles.push(spawn(
        "persist",
        Box::new(move || {
            if !pin() {
                return;
            }
            if background_yields {
                placement::yield_to_everything("persist");
            }
            persist.run(from_stages)
        }),
    )?);
    // `--pin on`: every thread so far is where it belongs before the first request.
    placement.confirm()?;
    // Start-up: connect, read the rules, reconcile. Each read is retried until it answers;
    // meanwhile no command is taken, and `quit` or a signal ends the process cleanly.
    let started = {
        let mut reads = startup::StartupReads::new(bus.clone(), Box::new(|wait| input.wait_for_stop(wait)));
        let parts = StartupParts {
            account: Arc::clone(&account),
            stats: Arc::clone(&stats),
            ids: Arc::clone(&ids),
            guard: Arc::clone(&guard),
            bus: bus.clone(),
            to_persist: to_persist.clone(),
        };
        start_up(&config, &placement, history, parts, &mut reads)
    };
    let (mut exchange_io, rules, quotes, stream) = match started {
        Ok(started) => started,
        Err(RunError::Stopped) => {
            bus.publish(Event::new(
                EventKind::Stopped,
                "stopped before ready: nothing was traded; the next start reconciles",
            ));
            drop((bus, to_stdout, to_persist, to_exchange, input));
            return join_stages(handles, stop_checkpoints, checkpoints);
        }
        Err(e) => return Err(e),
    };
    stats.set_quotes(Arc::clone(&quotes));
    // Everything before this run is now in the database: a later start reads from here on.
    let _ = to_persist
        .send(msg::ToPersist::Setting { key: crate::store::UNRECORDED_SINCE, value: run_started_us.to_string() });
    // After reconciliation, so the first `Subscribed` poll covers everything since. The stream
    // thread is not joined: it holds only its channel to exchange I/O and stops when that goes.
    if let Some(stream) = stream {
        let pin = placement.hook("user-stream", background_core);
        let link = stream
            .start(
                cap,
                Box::new(move || {
                    pin();
                }),
            )
            .map_err(|e| RunError::Thread(format!("user-stream: {e}")))?;
        exchange_io.set_stream(link);
    }
    // Intake runs each command through exchange I/O on its own thread; the stage's thread
    // keeps what can wait (stop-losses, the stream, the watch, balance syncs).
    let exchange_io = exchange_io::inline::Shared::new(exchange_io);
    let shared_io = Arc::clone(&exchange_io);
    let pin = placement.hook("exchange-io", order_path_core);
    handles.push(spawn(
        "exchange-io",
        Box::new(move || {
            if pin() {
                placement::no_wakeup_preemption("exchange-io");
                exchange_io::inline::run(shared_io, from_intake)
            }
        }),
    )?);
    // Before intake takes a command, which runs through exchange I/O.
    placement.confirm()?;
    let intake = intake::Intake::new(
        Arc::clone(&rules),
        quotes,
        ids,
        guard,
        Arc::clone(&account),
        confirm,
        &config,
        bus.clone(),
        to_exchange,
        to_persist,
    )
    .running_exchange_io(exchange_io);
    let pin = placement.hook("intake", order_path_core);
    handles.push(spawn(
        "intake",
        Box::new(move || {
            if pin() {
                intake.run(input)
            }
        }),
    )?);
    placement.confirm()?;

    bus.publish(
        Event::new(
            EventKind::Ready,
            format!(
                "genesis ready: exchange {:?}, database {}, confirmations {}, {} symbols",
                config.exchange,
                config.db.display(),
                if confirm { format!("on ({} s)", config.confirm.timeout.as_secs()) } else { "off".into() },
                rules.len()
            ),
        )
        .field("exchange", format!("{:?}", config.exchange).to_lowercase())
        .field("confirm", confirm)
        .field("client_id_prefix", meta.prefix.as_str()),
    );
    drop(bus);
    drop(to_stdout);

    join_stages(handles, stop_checkpoints, checkpoints)?;
    // Every stage drained without a panic: every order sent is recorded.
    Store::open(&config.db)?.mark_clean_stop()?;
    Ok(())
}

/// What exchange I/O is built from, besides the gateway start-up connects.
struct StartupParts {
    account: Arc<account::Account>,
    stats: Arc<stats::Stats>,
    ids: Arc<IdGen>,
    guard: Arc<guard::ExchangeGuard>,
    bus: Bus,
    to_persist: crossbeam_channel::Sender<msg::ToPersist>,
}

/// Connects, reads the rules (one `exchangeInfo`), builds exchange I/O and reconciles it with
/// the exchange. Returns exchange I/O ready to run, the rules, the quotes and the stream.
type Started = (
    exchange_io::ExchangeIo,
    Arc<Rules>,
    Arc<dyn crate::exchange::Quotes>,
    Option<Box<dyn crate::exchange::PushSource>>,
);

fn start_up(
    config: &Config,
    placement: &placement::Placement,
    history: crate::store::HistoryScan,
    parts: StartupParts,
    reads: &mut startup::StartupReads<'_>,
) -> Result<Started, RunError> {
    let Connected { mut gateway, quotes, stream } = connect(config, placement, reads)?;
    let rules: Arc<Rules> = Arc::new(
        reads
            .read("exchangeInfo", startup::weight::EXCHANGE_INFO, || gateway.exchange_info())?
            .into_iter()
            .map(|r| (r.symbol.clone(), r))
            .collect(),
    );
    // The limiter follows what the exchange reports; the embedded simulator reports no limit.
    if let Some(limit) = gateway.order_limit_10s() {
        parts.guard.set_order_limit_10s(limit.min(u64::from(u32::MAX)) as u32);
    }
    let mut exchange_io = exchange_io::ExchangeIo::new(
        gateway,
        parts.account,
        Arc::clone(&quotes),
        parts.stats,
        Arc::clone(&rules),
        parts.ids,
        parts.guard,
        config,
        parts.bus,
        parts.to_persist,
    );
    // Before the first command: the database and the exchange agree, every position is protected.
    exchange_io.reconcile(&Store::open_reader(&config.db)?, history, reads)?;
    Ok((exchange_io, rules, quotes, stream))
}

/// Joins the stages (the last spawned first), then the checkpoint thread.
fn join_stages(
    handles: Vec<thread::JoinHandle<()>>,
    stop_checkpoints: crossbeam_channel::Sender<()>,
    checkpoints: thread::JoinHandle<()>,
) -> Result<(), RunError> {
    for handle in handles.into_iter().rev() {
        let name = handle.thread().name().unwrap_or("?").to_string();
        if handle.join().is_err() {
            return Err(RunError::Thread(format!("the {name} stage panicked")));
        }
    }
    drop(stop_checkpoints);
    if checkpoints.join().is_err() {
        return Err(RunError::Thread("the checkpoint thread panicked".into()));
    }
    Ok(())
}

/// SIGINT / SIGTERM: the first stops taking commands (what is in flight finishes, the
/// database is flushed, exit 0); a second exits at once (the next start reconciles).
/// (The thread holds only the write end of intake's wake-up pipe, so it keeps no stage alive.)
fn watch_signals(to_intake: std::os::unix::net::UnixStream) -> Result<(), RunError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| RunError::Thread(format!("signal handler: {e}")))?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for _ in signals.forever() {
                seen += 1;
                if seen > 1 {
                    eprintln!("genesis: second signal: exiting now; the next start reconciles");
                    std::process::exit(130);
                }
                let _ = (&to_intake).write(&[1]);
            }
        })
        .map_err(|e| RunError::Thread(format!("signals: {e}")))?;
    Ok(())
}
