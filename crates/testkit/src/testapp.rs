//! Spawning the test app (crate `testapp`) in-process, optionally scraped by the test environment's Prometheus.

use std::ops::Deref;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::load::{Load, Weights};
use crate::prometheus::{Prometheus, Target};
pub use testapp::{Config, ErrorMode, Labels, Latency, Telemetry, TestApp, VERSION_HEADER};

/// How long a new target may take to be discovered and scraped (file_sd changes apply within ~5s).
pub const SCRAPE_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// A namespace label value no other test (or earlier run) uses.
pub fn unique_namespace(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// The labels of the canary `podinfo` in `namespace`, named the way each provider's canary objects name it
/// (service and ingress `podinfo`, the nginx upstream, the envoy cluster, the kuma service).
pub fn podinfo_canary_labels(namespace: &str) -> Labels {
    Labels {
        service: "podinfo".to_string(),
        ingress: "podinfo".to_string(),
        nginx_canary: format!("{namespace}-podinfo-canary-80"),
        envoy_cluster: format!("{namespace}_podinfo-canary_80"),
        kuma_service: Some(format!("podinfo-canary_{namespace}_svc_80")),
        ..Labels::new(namespace, "podinfo")
    }
}

/// Starts a test app on a free loopback port in the current runtime.
pub async fn spawn(config: Config) -> Result<TestApp> {
    TestApp::spawn(config).await.context("cannot start the test app")
}

/// A test app that Prometheus scrapes. Derefs to the [`TestApp`]; dropping it deregisters and stops the app.
pub struct ScrapedApp {
    // Deregistered before the app stops, so Prometheus does not record a failed scrape first.
    pub target: Target,
    pub app: TestApp,
}

impl ScrapedApp {
    /// Drives `requests` requests at `rate` per second at the app (all to it, as the primary) and waits up
    /// to `timeout` until Prometheus has scraped every one of them.
    pub async fn load_until_scraped(
        &self,
        prometheus: &Prometheus,
        requests: u64,
        rate: f64,
        timeout: Duration,
    ) -> Result<()> {
        let report = Load::new(self.addr(), None)
            .rate(rate)
            .requests(requests)
            .duration(Duration::from_secs(60))
            .run(Weights::fixed(1, 0))
            .await?;
        ensure!(
            report.sent() == requests && report.primary.failed == 0,
            "load did not complete: {report:?}"
        );
        ensure!(
            self.request_count() == requests,
            "app saw {} of {requests} requests",
            self.request_count()
        );
        let q = format!("sum(testapp_requests_total{{{}}})", self.target.selector());
        #[allow(clippy::cast_precision_loss)]
        let expected = requests as f64;
        prometheus
            .wait_for_query(&q, timeout, |s| s.len() == 1 && s[0].value == expected)
            .await
            .context("Prometheus did not scrape every request")?;
        Ok(())
    }
}

impl Deref for ScrapedApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// Starts a test app, registers it as a scrape target (labels `app=<workload>`, `version=<version>` and
/// `testkit_target`), and waits until Prometheus has scraped it.
pub async fn spawn_scraped(prometheus: &Prometheus, config: Config) -> Result<ScrapedApp> {
    let name = format!("{}-{}", config.labels.namespace, config.labels.pod);
    let labels = [
        ("app", config.labels.workload.clone()),
        ("version", config.version.clone()),
    ];
    let app = spawn(config).await?;
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target = prometheus.register_target(&name, app.addr(), &labels)?;
    target.wait_until_up(SCRAPE_UP_TIMEOUT).await?;
    Ok(ScrapedApp { target, app })
}
