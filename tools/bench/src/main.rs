//! `genesis-bench`: drives the real engine end to end (optionally against the Binance-compatible
//! `genesis-exchange` server), measures a bare baseline of the same exchange requests, and
//! reports where every microsecond goes.
//!
//! - [`args`]: the flags.
//! - [`workload`]: the seeded order stream (quantities as exact decimal strings).
//! - [`run`]: the processes: server, engine, memory sampler, idle CPU.
//! - [`baseline`]: the same exchange requests sent bare through the engine's own gateway.
//! - [`quote_age`]: the age of each order's quote at the decision.
//! - [`pipe`]: the pipe round trip (a child echoing lines), subtracted from what the user sees.
//! - [`report`]: statistics, targets, the table and the JSON.
//! - [`plot`]: the hand-written SVG.

mod args;
mod baseline;
mod pipe;
mod plot;
mod quote_age;
mod report;
mod run;
mod workload;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = args::Args::parse();
    match bench(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("genesis-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything; `Ok(false)` when the engine lost orders or failed.
fn bench(args: &args::Args) -> Result<bool, String> {
    let setup = args.resolve()?;
    let server = match args.exchange {
        args::ExchangeKind::Binance => {
            Some(run::Server::start(&setup.server, args.seed, &quote_age::server_flags(args))?)
        }
        args::ExchangeKind::Sim => None,
    };
    let mut bare = baseline::Bare::start(args, server.as_ref())?;
    let paced = args.rate > 0.0;
    let mut echo = if paced { Some(pipe::Echo::start(args.rate)?) } else { None };
    let mut echo_error = None;
    let mut engine = match bare.as_mut().filter(|_| paced) {
        // A paced run: the baseline's and the pipe's blocks go between the engine's.
        Some(bare) => {
            let blocks = run::block_ranges(args.orders as usize, args.blocks).len() as u64;
            let per_block = args.baseline.div_ceil(blocks).div_ceil(2) * 2;
            let per_echo = args.orders.div_ceil(blocks) as usize;
            let mut between = || {
                bare.paced_block(per_block);
                if let Some(echo) = echo.as_mut() {
                    if let Err(e) = echo.paced_block(per_echo) {
                        echo_error.get_or_insert(e);
                    }
                }
            };
            let interleave = run::Interleave { blocks: args.blocks, between: &mut between };
            run::run_engine(args, &setup, server.as_ref(), Some(interleave))?
        }
        None => run::run_engine(args, &setup, server.as_ref(), None)?,
    };
    if let Some(echo) = echo.as_mut().filter(|e| e.blocks == 0) {
        // No blocks in between: the pipe after the engine, as many lines as it was sent.
        echo.paced_block(engine.sent.min(2000) as usize)?;
    }
    if let Some(e) = echo_error {
        return Err(e);
    }
    let pipe = echo.as_mut().map(|e| std::mem::take(&mut e.rtt)).unwrap_or_default();
    drop(echo);
    let baseline = match bare {
        Some(mut bare) => {
            if !paced {
                engine.baseline_window.measure(|| bare.paced_block(args.baseline));
            }
            bare.back_to_back(args.baseline);
            bare.finish()
        }
        None => baseline::Baseline::default(),
    };
    drop(server);
    let report = report::Report::build(args, &setup, &engine, &baseline, &pipe);
    let files = report.write(&args.out)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json).map_err(|e| e.to_string())?);
    } else {
        print!("{}", report.text);
        for file in &files {
            println!("wrote {}", file.display());
        }
    }
    Ok(engine.healthy())
}
