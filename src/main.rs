//! The engine binary: flags → Config → run → exit code. Errors become exit codes here only.

use clap::Parser;
use genesis::config::{Cli, Config};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_cli(cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("genesis: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.output.log_json);
    match genesis::pipeline::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("genesis: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; RUST_LOG sets the level (default: warn); --log-json makes each line JSON.
fn init_logging(json: bool) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    builder.target(env_logger::Target::Stderr);
    // At trace level ureq dumps raw request bytes, API key header included: never that.
    builder.filter_module("ureq", log::LevelFilter::Info);
    builder.filter_module("ureq_proto", log::LevelFilter::Info);
    // Its trace lines carry whole frames: the user data stream's subscription has the key.
    builder.filter_module("tungstenite", log::LevelFilter::Info);
    if json {
        builder.format(|buf, record| {
            use std::io::Write;
            let line = serde_json::json!({
                "ts": genesis::domain::format_ts(genesis::domain::now_us()),
                "level": record.level().to_string(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}
