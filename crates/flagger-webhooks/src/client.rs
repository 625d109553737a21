//! The HTTP side of webhooks, following Flagger's `callWebhook` and hashicorp `retryablehttp`.
//!
//! - `POST` the JSON payload with `Content-Type: application/json`.
//! - Timeout per attempt: the hook's `timeout` as a Go duration ([`hook_timeout`], [`event_hook_timeout`]);
//!   it covers connecting, sending and reading the whole response.
//! - `retries` extra attempts ([`hook_retries`]) after a transport error, a 429 or a 5xx other than 501,
//!   waiting 1 s, 2 s, 4 s, ... up to 30 s between attempts ([`RetryPolicy`]); a `Retry-After` header on a
//!   429 or 503 replaces the wait (capped at the policy's maximum). Certificate errors, redirect loops and
//!   malformed requests are not retried.
//! - Success iff the final status is at most 202; otherwise the body is the error text.
//! - `disableTLS: true` accepts any server certificate.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use flagger_api::CanaryWebhook;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use crate::error::{Failure, WebhookError};
use crate::payload::{CanaryWebhookPayload, EventWebhookPayload};

/// The timeout of a hook with none (or, for canary hooks, one shorter than 2 characters).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect timeout of both HTTP clients (Go's default dialer uses 30 s); the hook timeout still applies.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The timeout of a canary hook, as Flagger's `CallWebhook` computes it: [`DEFAULT_TIMEOUT`] when `timeout`
/// is unset or shorter than 2 bytes (so `"5"` and `"0"` mean 10 s), else the Go duration. `None` means no
/// timeout: Go's `http.Client` treats a zero or negative timeout (`"0s"`) that way.
pub fn hook_timeout(hook: &CanaryWebhook) -> Result<Option<Duration>, WebhookError> {
    match hook.timeout.as_deref() {
        None => Ok(Some(DEFAULT_TIMEOUT)),
        Some(t) if t.len() < 2 => Ok(Some(DEFAULT_TIMEOUT)),
        Some(t) => parse_timeout(hook, t),
    }
}

/// The timeout of an event hook, as Flagger's `CallEventWebhook` computes it: only an unset or empty
/// `timeout` means [`DEFAULT_TIMEOUT`]; `"5"` is an error (missing unit) and `"0"` means no timeout.
pub fn event_hook_timeout(hook: &CanaryWebhook) -> Result<Option<Duration>, WebhookError> {
    match hook.timeout.as_deref() {
        None | Some("") => Ok(Some(DEFAULT_TIMEOUT)),
        Some(t) => parse_timeout(hook, t),
    }
}

fn parse_timeout(hook: &CanaryWebhook, timeout: &str) -> Result<Option<Duration>, WebhookError> {
    let nanos = flagger_core::duration::parse_go_duration_nanos(timeout).map_err(|source| {
        WebhookError::InvalidTimeout {
            hook: hook.name.clone(),
            timeout: timeout.to_owned(),
            source,
        }
    })?;
    Ok(u64::try_from(nanos)
        .ok()
        .filter(|&n| n > 0)
        .map(Duration::from_nanos))
}

/// How many times a failed attempt is retried: `retries`, with unset or negative meaning none.
pub fn hook_retries(hook: &CanaryWebhook) -> u32 {
    hook.retries.and_then(|r| u32::try_from(r).ok()).unwrap_or(0)
}

/// The waits between attempts: `min_wait * 2^n`, capped at `max_wait` (retryablehttp's `DefaultBackoff`
/// with `RetryWaitMin` 1 s and `RetryWaitMax` 30 s). Tests inject small values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the first retry.
    pub min_wait: Duration,
    /// The longest wait, also the cap on `Retry-After`.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The waits before each of `retries` retries, in order.
    pub fn backoff(&self, retries: u32) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_wait)
            .with_max_delay(self.max_wait)
            .with_factor(2.0)
            .with_max_times(usize::try_from(retries).unwrap_or(usize::MAX))
            .build()
    }
}

/// Why a client could not be built (TLS initialisation).
#[derive(Debug, thiserror::Error)]
#[error("building the webhook HTTP client: {0}")]
pub struct BuildError(#[from] reqwest::Error);

/// Calls webhooks. Build one and share it (it is cheap to clone): it keeps connection pools for a
/// certificate-verifying client and for `disableTLS` hooks.
#[derive(Clone, Debug)]
pub struct WebhookClient {
    verifying: reqwest::Client,
    insecure: reqwest::Client,
    retry: RetryPolicy,
}

/// What one attempt ended with, when it is not a response to hand back.
#[derive(Debug)]
enum AttemptError {
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    Transport(reqwest::Error),
}

impl AttemptError {
    /// retryablehttp's `DefaultRetryPolicy`: transport errors except certificate errors, redirect loops and
    /// malformed requests (reqwest builder errors); statuses are only turned into errors when retryable.
    fn retryable(&self) -> bool {
        match self {
            Self::Status { .. } => true,
            Self::Transport(e) => !(e.is_redirect() || e.is_builder() || is_certificate_error(e)),
        }
    }
}

impl WebhookClient {
    /// A client with Flagger's retry waits (1 s doubling up to 30 s).
    pub fn new() -> Result<Self, BuildError> {
        Self::with_retry_policy(RetryPolicy::default())
    }

    /// A client with other retry waits (tests use milliseconds).
    pub fn with_retry_policy(retry: RetryPolicy) -> Result<Self, BuildError> {
        let verifying = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        // Flagger gives disableTLS hooks a bare `http.Transport`: no proxy from the environment and HTTP/1.1.
        let insecure = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tls_danger_accept_invalid_certs(true)
            .no_proxy()
            .http1_only()
            .build()?;
        Ok(Self {
            verifying,
            insecure,
            retry,
        })
    }

    /// The retry waits in use.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Calls a canary hook (`confirm-rollout`, `pre-rollout`, `rollout`, `confirm-traffic-increase`,
    /// `confirm-promotion`, `post-rollout`, `rollback`) with Flagger's `CallWebhook` rules. `Ok` means the
    /// receiver answered 200–202.
    pub async fn call(
        &self,
        hook: &CanaryWebhook,
        payload: &CanaryWebhookPayload,
    ) -> Result<(), WebhookError> {
        let timeout = hook_timeout(hook)?;
        self.post(hook, payload, timeout).await
    }

    /// Sends an event to an event hook (see [`crate::event_webhooks`]) with Flagger's `CallEventWebhook`
    /// rules: the payload of [`EventWebhookPayload::to_payload`], and [`event_hook_timeout`].
    pub async fn call_event(
        &self,
        hook: &CanaryWebhook,
        event: &EventWebhookPayload,
    ) -> Result<(), WebhookError> {
        let timeout = event_hook_timeout(hook)?;
        self.post(hook, &event.to_payload(hook), timeout).await
    }

    async fn post(
        &self,
        hook: &CanaryWebhook,
        payload: &CanaryWebhookPayload,
        timeout: Option<Duration>,
    ) -> Result<(), WebhookError> {
        let (url, shown) = parse_url(hook)?;
        // A payload of strings and a string map always serialises.
        let body = serde_json::to_vec(payload).unwrap_or_default();
        let client = if hook.disable_tls == Some(true) {
            &self.insecure
        } else {
            &self.verifying
        };
        let attempts = AtomicU32::new(0);
        let max_wait = self.retry.max_wait;

        let attempt = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            let mut request = client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            let response = request
                .send()
                .await
                .map_err(|e| AttemptError::Transport(e.without_url()))?;
            let status = response.status().as_u16();
            if status == 429 || status == 0 || (status >= 500 && status != 501) {
                let retry_after = match status {
                    429 | 503 => retry_after(response.headers(), jiff::Timestamp::now()),
                    _ => None,
                };
                return Err(AttemptError::Status { status, retry_after });
            }
            Ok(response)
        };

        let result = attempt
            .retry(self.retry.backoff(hook_retries(hook)))
            .sleep(tokio::time::sleep)
            .when(AttemptError::retryable)
            .adjust(|err, wait| match (err, wait) {
                (
                    AttemptError::Status {
                        retry_after: Some(after),
                        ..
                    },
                    Some(_),
                ) => Some((*after).min(max_wait)),
                _ => wait,
            })
            .await;

        let response = match result {
            Ok(response) => response,
            Err(err) => {
                let last = match err {
                    AttemptError::Status { status, .. } => Failure::Status(status),
                    AttemptError::Transport(e) if e.is_timeout() => Failure::Timeout(e),
                    AttemptError::Transport(e) if is_certificate_error(&e) => Failure::Tls(e),
                    AttemptError::Transport(e) => Failure::Transport(e),
                };
                return Err(WebhookError::GaveUp {
                    hook: hook.name.clone(),
                    url: shown,
                    attempts: attempts.load(Ordering::Relaxed),
                    last,
                });
            }
        };

        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| WebhookError::Body {
            hook: hook.name.clone(),
            url: shown.clone(),
            status,
            attempts: attempts.load(Ordering::Relaxed),
            source: e.without_url(),
        })?;
        if status <= 202 {
            return Ok(());
        }
        Err(WebhookError::Rejected {
            hook: hook.name.clone(),
            url: shown,
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            attempts: attempts.load(Ordering::Relaxed),
        })
    }
}

/// The URL to call and the URL to show in errors (as written, or with its password replaced by `xxxxx`
/// as Go's `URL.Redacted` does).
fn parse_url(hook: &CanaryWebhook) -> Result<(reqwest::Url, String), WebhookError> {
    let invalid = |reason: String| WebhookError::InvalidUrl {
        hook: hook.name.clone(),
        url: hook.url.clone(),
        reason,
    };
    let url = reqwest::Url::parse(&hook.url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("unsupported protocol scheme {:?}", url.scheme())));
    }
    let shown = if url.password().is_some() {
        let mut redacted = url.clone();
        // Setting a password only fails for URLs that cannot have one, and this one has one.
        let _ = redacted.set_password(Some("xxxxx"));
        redacted.to_string()
    } else {
        hook.url.clone()
    };
    Ok((url, shown))
}

/// `Retry-After` as retryablehttp reads it: whole seconds (not negative), or an HTTP date in the future.
fn retry_after(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<i64>() {
        return u64::try_from(seconds).ok().map(Duration::from_secs);
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = now.duration_until(at);
    Duration::try_from(wait).ok().filter(|d| !d.is_zero())
}

/// Whether the TLS handshake failed because the server's certificate was not accepted.
fn is_certificate_error(error: &reqwest::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = current {
        if is_rustls_certificate_error(err) {
            return true;
        }
        // `io::Error::source()` skips the error it wraps (it returns that error's source), and hyper nests
        // io::Errors; step into the wrapped error instead.
        current = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

fn is_rustls_certificate_error(err: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        err.downcast_ref::<rustls::Error>(),
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidCertRevocationList(_))
    )
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn hook(timeout: Option<&str>) -> CanaryWebhook {
        CanaryWebhook {
            name: "gate".into(),
            url: "http://127.0.0.1:1/".into(),
            timeout: timeout.map(str::to_owned),
            ..CanaryWebhook::default()
        }
    }

    #[test]
    fn canary_hook_timeout_rules() {
        let ten = Ok(Some(DEFAULT_TIMEOUT));
        assert_eq!(hook_timeout(&hook(None)).map_err(|e| e.to_string()), ten);
        for short in ["", "5", "0", "s"] {
            assert_eq!(
                hook_timeout(&hook(Some(short))).map_err(|e| e.to_string()),
                ten,
                "{short:?}"
            );
        }
        assert_eq!(
            hook_timeout(&hook(Some("1m"))).ok(),
            Some(Some(Duration::from_secs(60)))
        );
        assert_eq!(
            hook_timeout(&hook(Some("250ms"))).ok(),
            Some(Some(Duration::from_millis(250)))
        );
        assert_eq!(
            hook_timeout(&hook(Some("1m30s"))).ok(),
            Some(Some(Duration::from_secs(90)))
        );
        assert_eq!(hook_timeout(&hook(Some("0s"))).ok(), Some(None));
        assert_eq!(hook_timeout(&hook(Some("-5s"))).ok(), Some(None));
    }

    #[test]
    fn event_hook_timeout_rules() {
        assert_eq!(event_hook_timeout(&hook(None)).ok(), Some(Some(DEFAULT_TIMEOUT)));
        assert_eq!(
            event_hook_timeout(&hook(Some(""))).ok(),
            Some(Some(DEFAULT_TIMEOUT))
        );
        assert_eq!(event_hook_timeout(&hook(Some("0"))).ok(), Some(None));
        assert_eq!(
            event_hook_timeout(&hook(Some("3s"))).ok(),
            Some(Some(Duration::from_secs(3)))
        );
        let err = event_hook_timeout(&hook(Some("5"))).expect_err("missing unit");
        assert_eq!(err.flagger_message(), r#"time: missing unit in duration "5""#);
    }

    #[test]
    fn invalid_timeout_names_the_hook() {
        let err = hook_timeout(&hook(Some("soon"))).expect_err("invalid");
        assert!(matches!(err, WebhookError::InvalidTimeout { .. }));
        assert_eq!(err.hook(), "gate");
        assert_eq!(err.category(), crate::ErrorCategory::InvalidConfig);
        assert_eq!(err.attempts(), 0);
        assert_eq!(
            err.to_string(),
            r#"webhook gate: invalid timeout "soon": invalid duration "soon""#
        );
        assert_eq!(err.flagger_message(), r#"time: invalid duration "soon""#);
        let err = hook_timeout(&hook(Some("10 seconds"))).expect_err("invalid");
        assert_eq!(
            err.flagger_message(),
            r#"time: unknown unit " seconds" in duration "10 seconds""#
        );
    }

    #[test]
    fn retries_default_to_zero() {
        let with = |r| CanaryWebhook {
            retries: r,
            ..hook(None)
        };
        assert_eq!(hook_retries(&with(None)), 0);
        assert_eq!(hook_retries(&with(Some(-3))), 0);
        assert_eq!(hook_retries(&with(Some(4))), 4);
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_thirty() {
        let waits: Vec<u64> = RetryPolicy::default().backoff(8).map(|d| d.as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(RetryPolicy::default().backoff(0).count(), 0);
        let fast = RetryPolicy {
            min_wait: Duration::from_millis(1),
            max_wait: Duration::from_millis(5),
        };
        let waits: Vec<u128> = fast.backoff(5).map(|d| d.as_millis()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn retry_after_header() {
        let now = jiff::Timestamp::new(1_795_867_200, 0).expect("now");
        let headers = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_static(v));
            h
        };
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
        assert_eq!(retry_after(&headers("7"), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers("0"), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("-1"), now), None);
        assert_eq!(retry_after(&headers("soon"), now), None);
        // 2026-11-28T12:00:00Z is a Saturday.
        assert_eq!(
            retry_after(&headers("Sat, 28 Nov 2026 12:00:45 GMT"), now),
            Some(Duration::from_secs(45))
        );
        assert_eq!(retry_after(&headers("Sat, 28 Nov 2026 11:59:00 GMT"), now), None);
    }

    #[test]
    fn urls() {
        let with = |url: &str| CanaryWebhook {
            url: url.into(),
            ..hook(None)
        };
        let (_, shown) = parse_url(&with("http://user:secret@hooks.test/gate")).expect("url");
        assert_eq!(shown, "http://user:xxxxx@hooks.test/gate");
        let (_, shown) = parse_url(&with("http://hooks.test:8080/gate/check")).expect("url");
        assert_eq!(shown, "http://hooks.test:8080/gate/check");
        for bad in ["", "hooks.test/gate", "ftp://hooks.test/x"] {
            let err = parse_url(&with(bad)).expect_err(bad);
            assert_eq!(err.category(), crate::ErrorCategory::InvalidConfig, "{bad}");
            assert_eq!(err.hook(), "gate");
        }
    }
}
