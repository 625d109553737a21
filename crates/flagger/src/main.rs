//! The `flagger` binary.

mod cli;
mod config;
mod run;
mod validate;

use std::{io::Write, process::ExitCode};

use clap::Parser;

use crate::{
    cli::{Cli, Command},
    config::Settings,
};

/// flagger-rs's version and the Flagger release it replaces.
const VERSION: &str = env!("CARGO_PKG_VERSION");
const FLAGGER_COMPATIBLE: &str = "1.44";

fn main() -> ExitCode {
    let args = match cli::normalize_args(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\n\nRun 'flagger --help' for the list of flags.");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    if cli.version {
        let revision = option_env!("FLAGGER_REVISION").unwrap_or("unknown");
        println!(
            "Flagger version {VERSION} revision {revision} (flagger-rs, drop-in for Flagger {FLAGGER_COMPATIBLE})"
        );
        return ExitCode::SUCCESS;
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.flags),
        Command::Crds => crds(),
        Command::Validate(args) => validate::run(&cli.flags, &args),
    }
}

fn crds() -> ExitCode {
    let yaml = flagger_api::crds_yaml();
    let mut out = std::io::stdout().lock();
    match out.write_all(yaml.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the CRDs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(flags: &cli::Flags) -> ExitCode {
    let settings = match Settings::from_flags(flags, |var| std::env::var(var).ok()) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("error: invalid configuration:");
            for e in errors {
                eprintln!("  {e}");
            }
            return ExitCode::from(2);
        }
    };
    run::run(settings, VERSION)
}
