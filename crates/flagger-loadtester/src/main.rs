//! The `flagger-loadtester` binary: the load tester's HTTP API until SIGTERM/SIGINT, or
//! `flagger-loadtester hey [options...] <url>` to run the built-in load generator once.

use std::ffi::OsString;
use std::net::{Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use flagger_loadtester::cli::{self, Cli, GateStoreKind};
use flagger_loadtester::{Config, FLAGGER_LOADTESTER_VERSION, GateStore, LoadTester, hey};
use flagger_telemetry::{LogFormat, LogLevel};
use kube::config::{KubeConfigOptions, Kubeconfig};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "hey") {
        return hey_once(&args[2..]);
    }
    let args = match cli::normalize_args(args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\n\nRun 'flagger-loadtester --help' for the list of flags.");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    if cli.version {
        println!(
            "flagger-loadtester {} (flagger-rs, drop-in for Flagger's load tester {FLAGGER_LOADTESTER_VERSION})",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let (Some(format), Some(level)) = (
        LogFormat::from_zap_encoding(&cli.zap_encoding),
        LogLevel::from_flagger(&cli.log_level),
    ) else {
        eprintln!(
            "error: invalid -zap-encoding {:?} or -log-level {:?}",
            cli.zap_encoding, cli.log_level
        );
        return ExitCode::from(2);
    };
    if let Err(e) = flagger_telemetry::logging::init(format, level) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn gate_store(cli: &Cli) -> Result<GateStore, String> {
    match cli.gate_store {
        GateStoreKind::Memory => Ok(GateStore::memory()),
        GateStoreKind::Kubernetes => {
            let config = if cli.kubeconfig.is_empty() {
                kube::Config::infer().await.map_err(|e| e.to_string())?
            } else {
                let kubeconfig = Kubeconfig::read_from(&cli.kubeconfig).map_err(|e| e.to_string())?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| e.to_string())?
            };
            let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
            let namespace = if !cli.gate_store_namespace.is_empty() {
                cli.gate_store_namespace.clone()
            } else {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| client.default_namespace().to_owned())
            };
            tracing::info!(
                "gates are stored in ConfigMap {namespace}/{}",
                cli.gate_store_configmap
            );
            Ok(GateStore::kubernetes(
                client,
                &namespace,
                &cli.gate_store_configmap,
            ))
        }
    }
}

async fn serve(cli: Cli) -> Result<(), String> {
    let port: u16 = cli
        .port
        .parse()
        .map_err(|_| format!("invalid -port {:?}", cli.port))?;
    let namespace_regexp = if cli.namespace_regexp.is_empty() {
        None
    } else {
        Some(
            regex::Regex::new(&cli.namespace_regexp)
                .map_err(|e| format!("invalid -namespace-regexp: {e}"))?,
        )
    };
    let gates = gate_store(&cli).await.map_err(|e| format!("gate store: {e}"))?;
    // Go's ":port" listens on every address, IPv6 and IPv4; fall back to IPv4 where IPv6 is off.
    let listener = match tokio::net::TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))).await
    {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
            .await
            .map_err(|e| format!("cannot listen on port {port}: {e}"))?,
    };
    let config = Config {
        listen: listener.local_addr().map_err(|e| e.to_string())?,
        timeout: cli.timeout,
        namespace_regexp,
        gates,
    };
    let tester = LoadTester::serve(listener, config).map_err(|e| e.to_string())?;
    tracing::info!(
        "Starting load tester v{} API on port {}",
        env!("CARGO_PKG_VERSION"),
        tester.addr().port()
    );
    wait_for_signal().await?;
    tracing::info!("shutting down the task runner");
    tester
        .shutdown()
        .await
        .map_err(|e| format!("HTTP server graceful shutdown failed {e}"))
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| e.to_string()),
        _ = term.recv() => Ok(()),
    }
}

fn hey_once(args: &[OsString]) -> ExitCode {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let opts = match hey::parse(&args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            eprintln!("hey: -o is not supported by the built-in hey");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let ctrl_c = stop.clone();
    let report = runtime.block_on(async move {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                ctrl_c.cancel();
            }
        });
        hey::run(&opts, &stop).await
    });
    match report {
        Ok(report) => {
            print!("{}", report.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
