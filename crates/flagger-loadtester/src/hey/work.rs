//! Sending the load: `-c` workers, each sending `-n / -c` requests (or until `-z` expires), each paced at
//! `-q` requests per second with the first request one period after the start, as hey's workers are.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;

use super::Options;
use super::report::{MAX_RESULTS, Report};

/// hey's cap on idle connections per host.
const MAX_IDLE_CONNS: u64 = 500;

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A header name or value that HTTP does not allow.
    #[error("hey: invalid header {0:?}")]
    Header(String),
    /// The HTTP client could not be built.
    #[error("hey: {0}")]
    Client(#[from] reqwest::Error),
}

#[derive(Default)]
struct Tally {
    responses: u64,
    latencies: Vec<f64>,
    latency_sum: f64,
    ok_count: u64,
    size_total: u64,
    status_codes: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
}

struct Shared {
    client: reqwest::Client,
    method: reqwest::Method,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Vec<u8>,
    basic_auth: Option<(String, String)>,
    recorded: AtomicUsize,
    error_prefix: String,
}

fn client(opts: &Options) -> Result<reqwest::Client, RunError> {
    let idle = if opts.disable_keepalive {
        0
    } else {
        opts.concurrency.min(MAX_IDLE_CONNS)
    };
    let mut builder = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .pool_max_idle_per_host(usize::try_from(idle).unwrap_or(usize::MAX))
        .tcp_nodelay(true);
    builder = match &opts.proxy {
        Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy.as_str())?),
        None => builder.no_proxy(),
    };
    if let Some(timeout) = opts.timeout {
        builder = builder.timeout(timeout);
    }
    if opts.disable_redirects {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    builder = if !opts.h2 {
        builder.http1_only()
    } else if opts.url.scheme() == "http" {
        builder.http2_prior_knowledge()
    } else {
        builder
    };
    Ok(builder.build()?)
}

fn headers(opts: &Options) -> Result<HeaderMap, RunError> {
    let mut map = HeaderMap::new();
    for (name, value) in &opts.headers {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| RunError::Header(name.clone()))?;
        let v = HeaderValue::from_str(value).map_err(|_| RunError::Header(format!("{name}: {value}")))?;
        map.insert(n, v);
    }
    if let Some(host) = &opts.host {
        let v = HeaderValue::from_str(host).map_err(|_| RunError::Header(format!("Host: {host}")))?;
        map.insert(reqwest::header::HOST, v);
    }
    if !opts.disable_compression {
        // Go's transport asks for gzip unless compression is disabled.
        map.insert(reqwest::header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(map)
}

/// Go's `url.Error` operation name: `Get`, `Post`, ...
fn go_op(method: &str) -> String {
    let mut chars = method.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".to_owned();
    }
    let mut innermost: &dyn std::error::Error = e;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

async fn request(shared: &Shared, tally: &mut Tally) {
    let start = Instant::now();
    let mut req = shared
        .client
        .request(shared.method.clone(), shared.url.clone())
        .headers(shared.headers.clone());
    if !shared.body.is_empty() {
        req = req.body(shared.body.clone());
    }
    if let Some((user, pass)) = &shared.basic_auth {
        req = req.basic_auth(user, Some(pass));
    }
    let outcome = match req.send().await {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let size = resp.content_length();
            let mut failed = None;
            loop {
                match resp.chunk().await {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => Ok((status, size)),
                Some(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let elapsed = start.elapsed().as_secs_f64();
    tally.responses += 1;
    match outcome {
        Ok((status, size)) => {
            tally.ok_count += 1;
            tally.latency_sum += elapsed;
            if shared.recorded.fetch_add(1, Ordering::Relaxed) < MAX_RESULTS {
                tally.latencies.push(elapsed);
            }
            *tally.status_codes.entry(status).or_default() += 1;
            tally.size_total += size.unwrap_or(0);
        }
        Err(e) => {
            let message = format!("{}{}", shared.error_prefix, describe(&e));
            *tally.errors.entry(message).or_default() += 1;
        }
    }
}

async fn worker(shared: Arc<Shared>, n: u64, qps: f64, stop: CancellationToken) -> Tally {
    let mut tally = Tally::default();
    let mut throttle = (qps > 0.0).then(|| {
        // hey: time.Tick(1e6/qps microseconds); the first tick comes one period after the start.
        let period = Duration::from_micros((1e6 / qps).max(1.0) as u64);
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    for _ in 0..n {
        if stop.is_cancelled() {
            break;
        }
        if let Some(throttle) = throttle.as_mut() {
            tokio::select! {
                _ = throttle.tick() => {}
                () = stop.cancelled() => break,
            }
        }
        request(&shared, &mut tally).await;
    }
    tally
}

/// Runs the load described by `opts` until it is done, `-z` expires or `stop` fires (requests in flight
/// are finished, as hey does), and returns the report.
pub async fn run(opts: &Options, stop: &CancellationToken) -> Result<Report, RunError> {
    let shared = Arc::new(Shared {
        client: client(opts)?,
        method: reqwest::Method::from_bytes(opts.method.as_bytes())
            .map_err(|_| RunError::Header(format!("method {}", opts.method)))?,
        url: opts.url.clone(),
        headers: headers(opts)?,
        body: opts.body.clone(),
        basic_auth: opts.basic_auth.clone(),
        recorded: AtomicUsize::new(0),
        error_prefix: format!("{} {:?}: ", go_op(&opts.method), opts.url.as_str()),
    });
    let stop = stop.child_token();
    let timer = opts.duration.map(|d| {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            stop.cancel();
        })
    });
    let start = Instant::now();
    let per_worker = opts.requests / opts.concurrency.max(1);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.concurrency {
        workers.spawn(worker(shared.clone(), per_worker, opts.qps, stop.clone()));
    }
    let mut report = Report::default();
    while let Some(done) = workers.join_next().await {
        let Ok(t) = done else { continue };
        report.responses += t.responses;
        report.latency_sum += t.latency_sum;
        report.ok_count += t.ok_count;
        report.size_total += t.size_total;
        report.latencies.extend(t.latencies);
        for (code, n) in t.status_codes {
            *report.status_codes.entry(code).or_default() += n;
        }
        for (e, n) in t.errors {
            *report.errors.entry(e).or_default() += n;
        }
    }
    report.total = start.elapsed();
    if let Some(timer) = timer {
        timer.abort();
    }
    Ok(report)
}
