//! Flagger-compatible webhooks: what Flagger 1.44 sends to a Canary's `analysis.webhooks` and to its event
//! webhooks, and how it decides whether a call succeeded.
//!
//! - [`payload`]: [`CanaryWebhookPayload`] (Flagger's exact JSON), [`EventWebhookPayload`] for event
//!   webhooks, and [`event_webhooks`], the rule that picks which hooks receive an event.
//! - [`mod@checksum`]: the payload's `checksum` field. Flagger hashes `{TrackedConfigs, LastAppliedSpec}` with
//!   a Go-only struct hash; we use SHA-256 over canonical JSON instead (see [`checksum()`]).
//! - [`client`]: [`WebhookClient`], the HTTP contract: `POST` JSON, Flagger's timeout rules, retries as
//!   hashicorp `retryablehttp` does them, and success iff the status is at most 202.
//! - [`error`]: [`WebhookError`], which names the hook, says what went wrong, gives Flagger's error text
//!   ([`WebhookError::flagger_message`]) and a [`ErrorCategory`] for metrics.

pub mod checksum;
pub mod client;
pub mod error;
pub mod payload;

pub use checksum::{canary_checksum, checksum};
pub use client::{
    BuildError, DEFAULT_TIMEOUT, RetryPolicy, WebhookClient, event_hook_timeout, hook_retries, hook_timeout,
};
pub use error::{ErrorCategory, Failure, WebhookError};
pub use payload::{
    CanaryWebhookPayload, EVENT_WEBHOOK_NAME, EventType, EventWebhookPayload, event_webhooks,
    global_event_webhook_url,
};
