//! Alerts to people, compatible with Flagger's AlertProviders (`pkg/notifier`, `events.go alert()`).
//!
//! - [`Alert`] and the catalogue [`AlertEvent`]: the message, its severity and its fields (`Cluster`,
//!   then the metadata fields Target, Failed checks threshold, Progress deadline, Traffic routing).
//! - [`routing`]: the severity filter, the global notifier fallback and the provider settings read from
//!   an AlertProvider and its Secret.
//! - One notifier per provider type ([`Slack`], [`MsTeams`], [`Discord`], [`Rocket`], [`GChat`]),
//!   posting Flagger's exact JSON, behind the [`Notifier`] trait and the [`AnyNotifier`] enum.
//! - [`GlobalNotifierSettings`]: the `-slack-*`/`-msteams-*` flags and their environment overrides.
//! - [`AlertSender`]: delivery in the background, bounded queues, bounded retries, counters.

mod alert;
mod discord;
mod gchat;
mod global;
mod http;
mod msteams;
mod notifier;
mod rocket;
pub mod routing;
mod sender;
mod slack;

pub use alert::{Alert, AlertEvent, Field, Severity, metadata_fields};
pub use discord::Discord;
pub use gchat::{GChat, GChatCard, GChatHeader, GChatPayload, GChatSection, GChatText, GChatWidget};
pub use global::{ENV_OVERRIDES, GlobalNotifierSettings};
pub use http::{DEFAULT_TIMEOUT, HttpOptions, redact};
pub use msteams::{MsTeams, MsTeamsFact, MsTeamsPayload, MsTeamsSection};
pub use notifier::{AnyNotifier, Notifier, NotifierConfig, NotifyError};
pub use rocket::Rocket;
pub use sender::{AlertCounters, AlertSender, Delivery, DeliveryCounts, SenderConfig, SenderTask};
pub use slack::{Slack, SlackAttachment, SlackField, SlackPayload};
