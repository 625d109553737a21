//! Errors of webhook calls.

use std::error::Error as _;
use std::fmt;

use flagger_core::duration::DurationError;

/// Why a webhook call failed. Every variant names the hook; [`Display`](fmt::Display) says what went wrong
/// in our words, [`WebhookError::flagger_message`] gives the text Flagger puts in its events and logs.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The hook's `timeout` is not a Go duration.
    InvalidTimeout {
        /// Name of the hook.
        hook: String,
        /// The timeout as written.
        timeout: String,
        /// What is wrong with it.
        #[source]
        source: DurationError,
    },
    /// The hook's `url` cannot be called (not a URL, or not `http`/`https`).
    InvalidUrl {
        /// Name of the hook.
        hook: String,
        /// The URL as written.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The receiver answered with a status that is neither success (≤ 202) nor retried.
    Rejected {
        /// Name of the hook.
        hook: String,
        /// The URL called (password redacted).
        url: String,
        /// The HTTP status.
        status: u16,
        /// The response body, which is Flagger's error text.
        body: String,
        /// How many requests were sent (more than one when earlier attempts were retried).
        attempts: u32,
    },
    /// The call failed on its last attempt: a retryable status (429, 5xx except 501) or a transport error.
    GaveUp {
        /// Name of the hook.
        hook: String,
        /// The URL called (password redacted).
        url: String,
        /// How many requests were sent (retries + 1 when all retries were used).
        attempts: u32,
        /// What the last attempt ran into.
        #[source]
        last: Failure,
    },
    /// The response arrived but its body could not be read (e.g. the timeout hit while reading it).
    Body {
        /// Name of the hook.
        hook: String,
        /// The URL called (password redacted).
        url: String,
        /// The HTTP status of the response.
        status: u16,
        /// How many requests were sent.
        attempts: u32,
        /// The read error.
        #[source]
        source: reqwest::Error,
    },
}

/// What the last attempt of a call that gave up ran into.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A retryable status: 429 or 5xx other than 501.
    #[error("status {0}")]
    Status(u16),
    /// The request or response did not complete within the hook's timeout.
    #[error("timed out: {}", chain(.0))]
    Timeout(#[source] reqwest::Error),
    /// The server's TLS certificate was not accepted (never retried).
    #[error("TLS certificate rejected: {}", chain(.0))]
    Tls(#[source] reqwest::Error),
    /// Any other transport error: connection refused or reset, DNS, redirect loop, ...
    #[error("{}", chain(.0))]
    Transport(#[source] reqwest::Error),
}

/// A coarse classification of [`WebhookError`] for metric labels and event reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// The hook's definition is unusable (timeout, URL).
    InvalidConfig,
    /// The receiver answered with a non-success, non-retryable status.
    Rejected,
    /// The receiver kept answering 429 or 5xx.
    Unavailable,
    /// The call timed out.
    Timeout,
    /// The TLS certificate was rejected.
    Tls,
    /// The connection failed.
    Transport,
    /// The response body could not be read.
    Body,
}

impl ErrorCategory {
    /// A short snake_case name, suitable as a metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidConfig => "invalid_config",
            Self::Rejected => "rejected",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Tls => "tls",
            Self::Transport => "transport",
            Self::Body => "body",
        }
    }
}

impl fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl WebhookError {
    /// Name of the hook that failed.
    pub fn hook(&self) -> &str {
        match self {
            Self::InvalidTimeout { hook, .. }
            | Self::InvalidUrl { hook, .. }
            | Self::Rejected { hook, .. }
            | Self::GaveUp { hook, .. }
            | Self::Body { hook, .. } => hook,
        }
    }

    /// The category of the failure.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::InvalidTimeout { .. } | Self::InvalidUrl { .. } => ErrorCategory::InvalidConfig,
            Self::Rejected { .. } => ErrorCategory::Rejected,
            Self::GaveUp { last, .. } => match last {
                Failure::Status(_) => ErrorCategory::Unavailable,
                Failure::Timeout(_) => ErrorCategory::Timeout,
                Failure::Tls(_) => ErrorCategory::Tls,
                Failure::Transport(_) => ErrorCategory::Transport,
            },
            Self::Body { source, .. } if source.is_timeout() => ErrorCategory::Timeout,
            Self::Body { .. } => ErrorCategory::Body,
        }
    }

    /// The HTTP status of the last response, if one arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } | Self::Body { status, .. } => Some(*status),
            Self::GaveUp {
                last: Failure::Status(status),
                ..
            } => Some(*status),
            _ => None,
        }
    }

    /// How many requests were sent (0 when the hook was invalid).
    pub fn attempts(&self) -> u32 {
        match self {
            Self::InvalidTimeout { .. } | Self::InvalidUrl { .. } => 0,
            Self::GaveUp { attempts, .. } | Self::Rejected { attempts, .. } | Self::Body { attempts, .. } => {
                *attempts
            }
        }
    }

    /// The error text Flagger 1.44 produces for the same failure, for event messages such as
    /// `Halt podinfo.test advancement pre-rollout check <hook> failed <text>`:
    ///
    /// - a non-retryable status: the response body;
    /// - retries used up on 429/5xx: `POST <url> giving up after <n> attempt(s)`;
    /// - a transport error: `POST <url> giving up after <n> attempt(s): Post "<url>": <error>` (the error
    ///   wording is reqwest's, not Go's);
    /// - an unreadable body: `error reading body: <error>`;
    /// - an invalid timeout: `time: <Go's ParseDuration message>`.
    pub fn flagger_message(&self) -> String {
        match self {
            Self::InvalidTimeout { source, .. } => format!("time: {source}"),
            Self::InvalidUrl { url, reason, .. } => format!("parse {url:?}: {reason}"),
            Self::Rejected { body, .. } => body.clone(),
            Self::GaveUp {
                url, attempts, last, ..
            } => match last {
                Failure::Status(_) => format!("POST {url} giving up after {attempts} attempt(s)"),
                Failure::Timeout(e) | Failure::Tls(e) | Failure::Transport(e) => {
                    format!(
                        "POST {url} giving up after {attempts} attempt(s): Post {url:?}: {}",
                        chain(e)
                    )
                }
            },
            Self::Body { source, .. } => format!("error reading body: {}", chain(source)),
        }
    }
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTimeout {
                hook,
                timeout,
                source,
            } => {
                write!(f, "webhook {hook}: invalid timeout {timeout:?}: {source}")
            }
            Self::InvalidUrl { hook, url, reason } => {
                write!(f, "webhook {hook}: invalid URL {url:?}: {reason}")
            }
            Self::Rejected {
                hook,
                url,
                status,
                body,
                ..
            } => write!(f, "webhook {hook}: POST {url} answered {status}: {body}"),
            Self::GaveUp {
                hook,
                url,
                attempts,
                last,
            } => write!(
                f,
                "webhook {hook}: POST {url} giving up after {attempts} attempt(s), last: {last}"
            ),
            Self::Body {
                hook,
                url,
                status,
                source,
                ..
            } => write!(
                f,
                "webhook {hook}: POST {url} answered {status} but reading the body failed: {}",
                chain(source)
            ),
        }
    }
}

/// An error and its sources, joined with `: ` (reqwest's own message is terse: "error sending request").
/// Consecutive duplicates are skipped; some layers repeat their inner error's message.
pub(crate) fn chain(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(err) = source {
        let text = err.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = err.source();
    }
    parts.join(": ")
}
