//! A small load driver standing in for a mesh data plane: it splits requests between a primary and a canary
//! address by weights read before every request, at a fixed rate, bounded in count and time.
//!
//! ```no_run
//! # async fn demo(primary: std::net::SocketAddr, canary: std::net::SocketAddr) -> anyhow::Result<()> {
//! use testkit::load::{Load, Weights};
//! let (tx, rx) = tokio::sync::watch::channel((100, 0));
//! let running = Load::new(primary, Some(canary)).rate(100.0).requests(1000).spawn(Weights::watch(rx))?;
//! tx.send((90, 10))?; // e.g. copied from a routing object's weights as the canary advances
//! let report = running.join().await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// Where the `(primary, canary)` weights come from; read before every request.
pub struct Weights(Box<dyn FnMut() -> (u32, u32) + Send>);

impl Weights {
    pub fn fixed(primary: u32, canary: u32) -> Self {
        Self(Box::new(move || (primary, canary)))
    }

    /// The latest value of a watch channel, e.g. one a test updates from a routing object.
    pub fn watch(rx: watch::Receiver<(u32, u32)>) -> Self {
        Self(Box::new(move || *rx.borrow()))
    }

    pub fn from_fn(f: impl FnMut() -> (u32, u32) + Send + 'static) -> Self {
        Self(Box::new(f))
    }
}

/// What one destination received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Any other status.
    pub other: u64,
    /// Connection errors and timeouts.
    pub failed: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub primary: Counts,
    pub canary: Counts,
    /// Request slots skipped because both weights were 0.
    pub unrouted: u64,
    pub elapsed: Duration,
    /// Whether the run ended at `max_duration` (or a stop) before sending `max_requests`.
    pub timed_out: bool,
}

impl Report {
    pub fn sent(&self) -> u64 {
        self.primary.sent + self.canary.sent
    }
}

/// A load run's parameters. Build with [`Load::new`] and the setters, then [`Load::run`] or [`Load::spawn`].
#[derive(Debug, Clone)]
pub struct Load {
    primary: SocketAddr,
    canary: Option<SocketAddr>,
    path: String,
    rate: f64,
    max_requests: u64,
    max_duration: Duration,
    concurrency: usize,
    request_timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Dest {
    Primary,
    Canary,
}

impl Load {
    /// Defaults: 50 requests/s, at most 500 requests and 30 s, 16 in flight, path `/`, 5 s per request.
    pub fn new(primary: SocketAddr, canary: Option<SocketAddr>) -> Self {
        Self {
            primary,
            canary,
            path: "/".to_string(),
            rate: 50.0,
            max_requests: 500,
            max_duration: Duration::from_secs(30),
            concurrency: 16,
            request_timeout: Duration::from_secs(5),
        }
    }

    /// Requests per second (request slots, including unrouted ones).
    pub fn rate(mut self, per_second: f64) -> Self {
        self.rate = per_second;
        self
    }

    /// Stop after this many request slots.
    pub fn requests(mut self, n: u64) -> Self {
        self.max_requests = n;
        self
    }

    /// Stop sending after this long, whatever the count.
    pub fn duration(mut self, d: Duration) -> Self {
        self.max_duration = d;
        self
    }

    /// At most this many requests in flight; the rate drops when answers are slower than that allows.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_string();
        self
    }

    fn validate(&self) -> Result<()> {
        for addr in std::iter::once(self.primary).chain(self.canary) {
            if !addr.ip().is_loopback() {
                bail!("refusing to send load to {addr}: only loopback addresses are allowed");
            }
        }
        if !(self.rate.is_finite() && self.rate > 0.0) || self.concurrency == 0 {
            bail!(
                "rate must be positive and concurrency at least 1 (got {} and {})",
                self.rate,
                self.concurrency
            );
        }
        Ok(())
    }

    /// Runs in the background; [`Running::stop`] ends it early, [`Running::join`] returns the report.
    pub fn spawn(self, weights: Weights) -> Result<Running> {
        self.validate()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(self.drive(weights, stop_rx));
        Ok(Running { stop: stop_tx, task })
    }

    /// Runs to completion: `max_requests` slots or `max_duration`, whichever comes first, then waits for the
    /// requests in flight.
    pub async fn run(self, weights: Weights) -> Result<Report> {
        self.validate()?;
        let (_stop_tx, stop_rx) = watch::channel(false);
        self.drive(weights, stop_rx).await
    }

    async fn drive(self, mut weights: Weights, mut stop: watch::Receiver<bool>) -> Result<Report> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(self.request_timeout)
            .build()
            .context("cannot build the HTTP client")?;
        let urls = [
            format!("http://{}{}", self.primary, self.path),
            self.canary
                .map(|c| format!("http://{c}{}", self.path))
                .unwrap_or_default(),
        ];
        let urls = Arc::new(urls);
        let limit = Arc::new(Semaphore::new(self.concurrency));
        let mut inflight: JoinSet<(Dest, Outcome)> = JoinSet::new();
        let mut report = Report::default();
        let mut router = SmoothRoundRobin::default();
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + self.max_duration);
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);

        let mut slots = 0;
        while slots < self.max_requests {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = tokio::time::sleep_until(deadline) => { report.timed_out = true; break; }
                _ = stop.changed() => { report.timed_out = true; break; }
            }
            slots += 1;
            let (wp, wc) = if self.canary.is_some() {
                (weights.0)()
            } else {
                (1, 0)
            };
            let Some(dest) = router.pick(wp, wc) else {
                report.unrouted += 1;
                continue;
            };
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => p.context("semaphore closed")?,
                _ = tokio::time::sleep_until(deadline) => { report.timed_out = true; break; }
            };
            let (http, urls) = (http.clone(), urls.clone());
            inflight.spawn(async move {
                let url = match dest {
                    Dest::Primary => &urls[0],
                    Dest::Canary => &urls[1],
                };
                let outcome = match http.get(url).send().await {
                    Ok(r) if r.status().is_success() => Outcome::Ok,
                    Ok(r) if r.status().is_server_error() => Outcome::ServerError,
                    Ok(_) => Outcome::Other,
                    Err(_) => Outcome::Failed,
                };
                drop(permit);
                (dest, outcome)
            });
            while let Some(done) = inflight.try_join_next() {
                tally(&mut report, done.context("load request task panicked")?);
            }
        }
        while let Some(done) = inflight.join_next().await {
            tally(&mut report, done.context("load request task panicked")?);
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Ok,
    ServerError,
    Other,
    Failed,
}

fn tally(report: &mut Report, (dest, outcome): (Dest, Outcome)) {
    let counts = match dest {
        Dest::Primary => &mut report.primary,
        Dest::Canary => &mut report.canary,
    };
    counts.sent += 1;
    match outcome {
        Outcome::Ok => counts.ok += 1,
        Outcome::ServerError => counts.server_errors += 1,
        Outcome::Other => counts.other += 1,
        Outcome::Failed => counts.failed += 1,
    }
}

/// Nginx's smooth weighted round-robin over two destinations: exact proportions over every run of
/// `primary + canary` picks, interleaved evenly. Restarts when the weights change.
#[derive(Debug, Default)]
struct SmoothRoundRobin {
    weights: (u32, u32),
    current: (i64, i64),
}

impl SmoothRoundRobin {
    fn pick(&mut self, primary: u32, canary: u32) -> Option<Dest> {
        if (primary, canary) != self.weights {
            *self = Self {
                weights: (primary, canary),
                current: (0, 0),
            };
        }
        let (wp, wc) = (i64::from(primary), i64::from(canary));
        if wp + wc == 0 {
            return None;
        }
        self.current.0 += wp;
        self.current.1 += wc;
        if self.current.0 >= self.current.1 {
            self.current.0 -= wp + wc;
            Some(Dest::Primary)
        } else {
            self.current.1 -= wp + wc;
            Some(Dest::Canary)
        }
    }
}

/// A load run in the background.
pub struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<Report>>,
}

impl Running {
    /// Stops issuing requests; in-flight ones finish. Use [`Running::join`] for the report.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    pub async fn join(self) -> Result<Report> {
        self.task.await.context("load task panicked")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testapp::{Config, spawn};

    #[test]
    fn smooth_round_robin_is_exact_and_interleaved() {
        let mut rr = SmoothRoundRobin::default();
        let picks: Vec<_> = (0..10).map(|_| rr.pick(80, 20)).collect();
        let canary: Vec<usize> = picks
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(d, Some(Dest::Canary)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(canary.len(), 2);
        assert!(canary[1] - canary[0] == 5, "{canary:?}");
        assert!(rr.pick(0, 0).is_none());
        assert!((0..7).all(|_| matches!(rr.pick(0, 3), Some(Dest::Canary))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn splits_by_weights_and_follows_changes() {
        let primary = spawn(Config::default()).await.unwrap();
        let canary = spawn(Config {
            error_rate: 0.5,
            ..Config::default()
        })
        .await
        .unwrap();
        let report = Load::new(primary.addr(), Some(canary.addr()))
            .rate(500.0)
            .requests(200)
            .run(Weights::fixed(75, 25))
            .await
            .unwrap();
        assert_eq!((report.primary.sent, report.canary.sent), (150, 50), "{report:?}");
        assert_eq!(
            (report.primary.ok, report.canary.ok, report.canary.server_errors),
            (150, 25, 25)
        );
        assert_eq!((primary.request_count(), canary.request_count()), (150, 50));
        assert!(!report.timed_out);

        // Weights flip after 100 slots: the second half goes to the canary only.
        let mut n = 0;
        let flip = Weights::from_fn(move || {
            n += 1;
            if n <= 100 { (100, 0) } else { (0, 100) }
        });
        let report = Load::new(primary.addr(), Some(canary.addr()))
            .rate(500.0)
            .requests(200)
            .run(flip)
            .await
            .unwrap();
        assert_eq!(
            (report.primary.sent, report.canary.sent),
            (100, 100),
            "{report:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stops_at_its_time_bound_and_on_request() {
        let app = spawn(Config::default()).await.unwrap();
        let (_tx, rx) = watch::channel((0, 0));
        let report = Load::new(app.addr(), Some(app.addr()))
            .rate(50.0)
            .requests(1_000_000)
            .duration(Duration::from_millis(300))
            .run(Weights::watch(rx))
            .await
            .unwrap();
        assert!(report.timed_out);
        assert_eq!(report.sent(), 0);
        assert!(report.unrouted > 0 && report.unrouted < 30, "{report:?}");
        assert!(report.elapsed < Duration::from_secs(2), "{report:?}");

        let running = Load::new(app.addr(), None)
            .rate(100.0)
            .requests(1_000_000)
            .spawn(Weights::fixed(1, 0))
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while app.request_count() < 5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        running.stop();
        let report = running.join().await.unwrap();
        assert!(report.timed_out && report.primary.sent >= 5, "{report:?}");
        assert_eq!(report.primary.sent, app.request_count());
        assert!(
            Load::new("10.0.0.1:80".parse().unwrap(), None)
                .spawn(Weights::fixed(1, 0))
                .is_err()
        );
    }
}
