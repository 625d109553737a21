//! The test environment's Prometheus: instant queries, file_sd target registration, and polling waits.
//!
//! Contract with `cargo xtask testenv`: `TESTENV_PROMETHEUS_URL` (e.g. `http://127.0.0.1:PORT`) and
//! `TESTENV_PROMETHEUS_SD_DIR` (a directory Prometheus watches for `*.json` file_sd target files, scraped every
//! second with `honor_labels: true`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const HOW_TO_START: &str = "start Prometheus with `cargo xtask testenv up --with-prometheus` and export \
                            `cargo xtask testenv env` (or run the tests through `cargo xtask test`)";

/// How often [`Prometheus::wait_for_query`] re-evaluates.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The label every registered target carries, with the registration's unique name as value.
pub const TARGET_LABEL: &str = "testkit_target";

/// One element of an instant-vector result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A client of the test environment's Prometheus.
#[derive(Debug, Clone)]
pub struct Prometheus {
    url: String,
    sd_dir: PathBuf,
    http: reqwest::Client,
}

impl Prometheus {
    /// From `TESTENV_PROMETHEUS_URL` and `TESTENV_PROMETHEUS_SD_DIR`; fails with how to start it when unset.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(
            std::env::var("TESTENV_PROMETHEUS_URL").ok(),
            std::env::var("TESTENV_PROMETHEUS_SD_DIR").ok(),
        )
    }

    fn from_vars(url: Option<String>, sd_dir: Option<String>) -> Result<Self> {
        let (Some(url), Some(sd_dir)) = (url.filter(|u| !u.is_empty()), sd_dir.filter(|d| !d.is_empty()))
        else {
            bail!("TESTENV_PROMETHEUS_URL and TESTENV_PROMETHEUS_SD_DIR are not both set: {HOW_TO_START}");
        };
        let host = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default();
        let loopback = host.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback())
            || host.strip_prefix("localhost:").is_some();
        if !loopback {
            bail!("TESTENV_PROMETHEUS_URL={url} is not an http:// loopback address; tests only use loopback");
        }
        let sd_dir = PathBuf::from(sd_dir);
        if !sd_dir.is_dir() {
            bail!(
                "TESTENV_PROMETHEUS_SD_DIR={} is not a directory: {HOW_TO_START}",
                sd_dir.display()
            );
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            sd_dir,
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Evaluates an instant query now. Scalars come back as one sample without labels; a range vector
    /// (matrix) is an error, as it is for Flagger's provider.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>> {
        let response = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
            .with_context(|| format!("cannot reach Prometheus at {}: {HOW_TO_START}", self.url))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .context("Prometheus answered with non-JSON")?;
        if !status.is_success() || body["status"] != "success" {
            bail!(
                "query failed ({status}): {} {}: {promql}",
                body["errorType"],
                body["error"]
            );
        }
        parse_result(&body["data"]).with_context(|| format!("unexpected result for {promql}: {body}"))
    }

    /// Polls `promql` until `accept` holds for its result, and returns that result. On timeout the error names
    /// the query, the last result (or error) and how long it waited.
    pub async fn wait_for_query<F>(
        &self,
        promql: &str,
        timeout: Duration,
        mut accept: F,
    ) -> Result<Vec<Sample>>
    where
        F: FnMut(&[Sample]) -> bool,
    {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = match self.query(promql).await {
                Ok(samples) if accept(&samples) => return Ok(samples),
                Ok(samples) => format!("{samples:?}"),
                Err(e) => format!("error: {e:#}"),
            };
            if Instant::now() + POLL_INTERVAL > deadline {
                bail!(
                    "timed out after {:.1}s ({attempts} evaluations) waiting for `{promql}` to satisfy the \
                     condition; last result: {last}",
                    started.elapsed().as_secs_f64()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until `query` returns exactly one sample and returns its value.
    pub async fn wait_for_value(&self, promql: &str, timeout: Duration) -> Result<f64> {
        let samples = self
            .wait_for_query(promql, timeout, |s| s.len() == 1 && !s[0].value.is_nan())
            .await?;
        Ok(samples[0].value)
    }

    /// Writes a file_sd target file that makes Prometheus scrape `http://addr/metrics` with `labels` plus
    /// `testkit_target=<unique name>`. The file is removed when the returned registration drops.
    pub fn register_target(&self, name: &str, addr: SocketAddr, labels: &[(&str, &str)]) -> Result<Target> {
        if !addr.ip().is_loopback() {
            bail!("refusing to register {addr}: tests only scrape loopback addresses");
        }
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let unique = format!(
            "{clean}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut all: BTreeMap<&str, &str> = labels.iter().copied().collect();
        all.insert(TARGET_LABEL, &unique);
        let group = serde_json::json!([{ "targets": [addr.to_string()], "labels": all }]);
        let path = self.sd_dir.join(format!("{unique}.json"));
        // Written aside and renamed, so Prometheus never reads half a file; `.tmp` does not match `*.json`.
        let tmp = self.sd_dir.join(format!("{unique}.json.tmp"));
        std::fs::write(&tmp, group.to_string()).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Target {
            name: unique,
            path,
            prometheus: self.clone(),
        })
    }
}

/// A registered scrape target; dropping it removes its file_sd file.
#[derive(Debug)]
pub struct Target {
    name: String,
    path: PathBuf,
    prometheus: Prometheus,
}

impl Target {
    /// The unique `testkit_target` label value.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn file(&self) -> &Path {
        &self.path
    }

    /// A label matcher selecting this target's series: `testkit_target="<name>"`.
    pub fn selector(&self) -> String {
        format!("{TARGET_LABEL}=\"{}\"", self.name)
    }

    /// Waits until Prometheus has discovered and successfully scraped the target (`up == 1`). Discovery
    /// applies new file_sd targets within about 5 seconds.
    pub async fn wait_until_up(&self, timeout: Duration) -> Result<()> {
        let q = format!("up{{{}}}", self.selector());
        self.prometheus
            .wait_for_query(&q, timeout, |s| s.len() == 1 && s[0].value == 1.0)
            .await
            .with_context(|| {
                format!(
                    "target {} (file {}) never came up",
                    self.name,
                    self.path.display()
                )
            })?;
        Ok(())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn parse_result(data: &serde_json::Value) -> Result<Vec<Sample>> {
    let value = |v: &serde_json::Value| -> Result<f64> {
        let text = v
            .get(1)
            .and_then(serde_json::Value::as_str)
            .context("sample without a value")?;
        // Prometheus writes NaN, +Inf and -Inf in the forms Rust parses.
        text.parse::<f64>()
            .with_context(|| format!("bad sample value {text:?}"))
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .context("vector without result")?
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    })
                    .into_iter()
                    .flatten()
                    .collect();
                Ok(Sample {
                    labels,
                    value: value(&s["value"])?,
                })
            })
            .collect(),
        Some("scalar") => Ok(vec![Sample {
            labels: BTreeMap::new(),
            value: value(&data["result"])?,
        }]),
        other => bail!("result type {other:?} is not an instant vector or scalar"),
    }
}

/// Renders one of Flagger's builtin query templates (`{{ namespace }}`, `{{ target }}`, `{{ service }}`,
/// `{{ ingress }}`, `{{ interval }}`) and collapses whitespace as Flagger's Prometheus provider does.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{{ {name} }}}}"), value);
    }
    let mut collapsed = String::with_capacity(out.len());
    for word in out.split_whitespace() {
        if !collapsed.is_empty() {
            collapsed.push(' ');
        }
        let _ = write!(collapsed, "{word}");
    }
    collapsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_env_says_how_to_start() {
        let err = Prometheus::from_vars(None, None).unwrap_err().to_string();
        assert!(err.contains("cargo xtask testenv up --with-prometheus"), "{err}");
        let err =
            Prometheus::from_vars(Some("http://10.0.0.1:9090".into()), Some("/tmp".into())).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(Prometheus::from_vars(Some("http://127.0.0.1:9090".into()), Some("/tmp".into())).is_ok());
    }

    #[test]
    fn parses_vectors_and_scalars() {
        let vector = serde_json::json!({"resultType": "vector", "result": [
            {"metric": {"job": "a"}, "value": [1.5, "90.5"]},
            {"metric": {}, "value": [1.5, "NaN"]},
        ]});
        let samples = parse_result(&vector).unwrap();
        assert_eq!(samples[0].labels["job"], "a");
        assert_eq!(samples[0].value, 90.5);
        assert!(samples[1].value.is_nan());
        let scalar = serde_json::json!({"resultType": "scalar", "result": [1.5, "1"]});
        assert_eq!(parse_result(&scalar).unwrap()[0].value, 1.0);
        assert!(parse_result(&serde_json::json!({"resultType": "matrix", "result": []})).is_err());
    }

    #[test]
    fn renders_and_collapses_like_flagger() {
        let q = render(
            "sum(\n\trate(\n\t\tx{\n\t\t\tns=\"{{ namespace }}\",\n\t\t\tw=~\"{{ target }}\"\n\t\t}[{{ interval }}]\n\t)\n)",
            &[("namespace", "test"), ("target", "podinfo"), ("interval", "1m")],
        );
        assert_eq!(q, "sum( rate( x{ ns=\"test\", w=~\"podinfo\" }[1m] ) )");
    }
}
