//! `flagger run`: the operator process.
//!
//! Startup order: logs, then the HTTP server (`/metrics`, `/healthz`, `/readyz` on `-port`), then the
//! Kubernetes client, then leader election (with `-enable-leader-election`), then the controller.
//! `/readyz` turns ready once the controller runs (for a standby replica: once it is a healthy candidate).
//! Losing the lease stops every write at once and ends the process with status 1, as Flagger does, so
//! the Deployment restarts it as a fresh candidate.

use std::process::ExitCode;
use std::sync::Arc;

use flagger_controller::alerts::Alerts;
use flagger_controller::analysis::Analysis;
use flagger_controller::gate::WriteGate;
use flagger_controller::{ControllerConfig, Runtime};
use flagger_core::primary::WorkloadOptions;
use flagger_leader::{LeaderElection, LeaderElectionConfig, Outcome};
use flagger_notify::{AlertSender, GlobalNotifierSettings, NotifierConfig, SenderConfig};
use flagger_telemetry::http::Readiness;
use flagger_telemetry::logging::{self, LogFormat, LogLevel};
use flagger_telemetry::metrics::OperatorMetrics;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::config::{GlobalNotifier, Settings};

/// The process's exit status for a lost lease (Flagger exits 1).
const LOST_LEASE: u8 = 1;

/// How long open HTTP connections may delay the exit.
const HTTP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the operator until SIGTERM/SIGINT or a lost lease.
pub fn run(settings: Settings, version: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_async(settings, version))
}

async fn client(settings: &Settings) -> anyhow::Result<Client> {
    let mut config = match &settings.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    if let Some(master) = &settings.master {
        config.cluster_url = master.parse()?;
    }
    Ok(Client::try_from(config)?)
}

fn notifier(settings: &Settings) -> Option<NotifierConfig> {
    let global = match &settings.notifier {
        GlobalNotifier::None => return None,
        GlobalNotifier::Slack {
            url,
            token,
            proxy_url,
            user,
            channel,
        } => GlobalNotifierSettings {
            slack_url: url.clone(),
            slack_token: token.clone(),
            slack_proxy_url: proxy_url.clone(),
            slack_user: user.clone(),
            slack_channel: channel.clone(),
            ..GlobalNotifierSettings::default()
        },
        GlobalNotifier::MsTeams { url, proxy_url } => GlobalNotifierSettings {
            msteams_url: url.clone(),
            msteams_proxy_url: proxy_url.clone(),
            ..GlobalNotifierSettings::default()
        },
    };
    global.config()
}

fn controller_config(settings: &Settings, identity: &str) -> ControllerConfig {
    let mut config = ControllerConfig::new(settings.mesh_provider.clone());
    config.metrics_server.clone_from(&settings.metrics_server);
    config.namespace.clone_from(&settings.namespace);
    config.workload = WorkloadOptions {
        selector_labels: settings.selector_labels.clone(),
        include_label_prefixes: settings.include_label_prefixes.clone(),
    };
    config.enable_config_tracking = settings.enable_config_tracking;
    config.no_cross_namespace_refs = settings.no_cross_namespace_refs;
    config.event_webhook.clone_from(&settings.event_webhook);
    config.notifier = notifier(settings);
    config.cluster_name.clone_from(&settings.cluster_name);
    config.control_loop_interval = settings.control_loop_interval;
    config.instance = identity.to_owned();
    config
        .ingress_annotations_prefix
        .clone_from(&settings.ingress_annotations_prefix);
    config.ingress_class.clone_from(&settings.ingress_class);
    config
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

async fn run_async(settings: Settings, version: &str) -> ExitCode {
    let format = LogFormat::from_zap_encoding(&settings.zap_encoding).unwrap_or(LogFormat::Json);
    let level = LogLevel::from_flagger(&settings.log_level).unwrap_or(LogLevel::Info);
    let _log = match logging::init(format, level) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(version, "Starting flagger-rs");

    let mut registry = Registry::default();
    let metrics = OperatorMetrics::register(&mut registry);
    flagger_telemetry::process::register(&mut registry);
    metrics.set_info(version, &settings.mesh_provider.to_string());
    let readiness = Readiness::new();
    let shutdown = CancellationToken::new();

    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", settings.port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("listening on port {}: {e}", settings.port);
            return ExitCode::FAILURE;
        }
    };
    let app = flagger_telemetry::http::router(Arc::new(registry), readiness.clone());
    let http_stop = shutdown.clone();
    let http = tokio::spawn(async move {
        flagger_telemetry::http::serve(listener, app, async move { http_stop.cancelled().await }).await
    });

    let client = match client(&settings).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("Error building kubeconfig: {e}");
            return ExitCode::FAILURE;
        }
    };

    // SIGTERM/SIGINT: stop the controller, release the lease, stop the HTTP server.
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("Shutting down");
        on_signal.cancel();
    });

    let identity = flagger_leader::default_identity();
    let (gate, leader) = match &settings.leader_election_namespace {
        None => {
            metrics.set_leader(true);
            (WriteGate::open(), None)
        }
        Some(ns) => {
            let t = settings.lease_timings;
            let config = LeaderElectionConfig::flagger(ns.clone())
                .with_identity(identity.clone())
                .with_timings(t.lease_duration, t.renew_deadline, t.retry_period);
            let (leading, handle) = LeaderElection::start(client.clone(), config);
            readiness.set_ready(true);
            let mut wait = leading.clone();
            tracing::info!(lease = %format!("{ns}/{}", flagger_leader::LEASE_NAME), identity, "Waiting for the leader lease");
            tokio::select! {
                r = wait.wait_for(|leading| *leading) => if r.is_err() {
                    tracing::error!("leader election stopped");
                    return ExitCode::FAILURE;
                },
                () = shutdown.cancelled() => return ExitCode::SUCCESS,
            }
            tracing::info!(identity, "Acquired the leader lease");
            metrics.set_leader(true);
            (WriteGate::new(leading), Some(handle))
        }
    };
    if let Some(handle) = &leader {
        let lost = handle.lost();
        let stop = shutdown.clone();
        let leader_metric = metrics.clone();
        tokio::spawn(async move {
            lost.cancelled().await;
            leader_metric.set_leader(false);
            stop.cancel();
        });
    }

    let config = controller_config(&settings, &identity);
    let analysis = match Analysis::new(
        client.clone(),
        config.mesh_provider.clone(),
        config.metrics_server.clone(),
        metrics.clone(),
    ) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (sender, alert_task) = AlertSender::start(SenderConfig::default());
    let alerts = Alerts::new(client.clone(), &config, sender, metrics.clone());
    let rt = Runtime {
        client,
        config,
        gate: gate.clone(),
        metrics: metrics.clone(),
        alerts,
        analysis,
        readiness: readiness.clone(),
    };
    let result = flagger_controller::run(rt, shutdown.clone()).await;
    tracing::info!("Controller stopped");
    shutdown.cancel();
    alert_task.abort();
    readiness.set_ready(false);
    let mut code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    };
    if let Some(handle) = leader {
        let lost = handle.lost().is_cancelled();
        match handle.release().await {
            Ok(Outcome::Lost) => code = ExitCode::from(LOST_LEASE),
            Ok(Outcome::Released) if lost => code = ExitCode::from(LOST_LEASE),
            Ok(Outcome::Released) => {}
            Err(e) => tracing::error!("releasing the lease: {e}"),
        }
        if code == ExitCode::from(LOST_LEASE) {
            tracing::error!("Leader election lost");
        }
    }
    // Open keep-alive connections (a scraper) must not keep the process alive.
    if tokio::time::timeout(HTTP_GRACE, http).await.is_err() {
        tracing::debug!("HTTP connections still open after {HTTP_GRACE:?}; closing them");
    }
    tracing::info!("Stopped");
    code
}
