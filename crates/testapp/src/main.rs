//! `testapp`: see `testapp --help` and the library docs.

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use testapp::TestApp;
use testapp::cli::Args;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Args::parse().into_config();
    let app = TestApp::spawn(config).await?;
    // The first stdout line is the bound address, for a parent process to read.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", app.addr()).context("cannot write the address to stdout")?;
    stdout.flush()?;
    drop(stdout);
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    app.shutdown().await?;
    Ok(())
}
