//! What Flagger POSTs to webhooks, and which hooks receive events.

use std::collections::BTreeMap;

use flagger_api::{Canary, CanaryPhase, CanaryWebhook, HookType};
use serde::{Deserialize, Serialize};

use crate::checksum::canary_checksum;

/// The body of every webhook call (Flagger's `CanaryWebhookPayload`).
///
/// Serialises exactly as Flagger does: `{"name", "namespace", "phase", "checksum", "metadata"}` in that
/// order, `phase` as Flagger's phase name (`""` when unset), and `metadata` with sorted keys, left out when
/// empty (Go's `omitempty`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CanaryWebhookPayload {
    /// Name of the canary.
    pub name: String,
    /// Namespace of the canary.
    pub namespace: String,
    /// Phase of the canary analysis (which phase is sent depends on the hook type).
    pub phase: CanaryPhase,
    /// Identifies the canary's configuration; see [`crate::checksum()`].
    pub checksum: String,
    /// The hook's `metadata`, or the event fields for event webhooks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl CanaryWebhookPayload {
    /// The payload Flagger sends to `hook` for `canary` in `phase`: the canary's name, namespace and
    /// checksum, and the hook's metadata.
    pub fn new(canary: &Canary, phase: CanaryPhase, hook: &CanaryWebhook) -> Self {
        Self {
            name: canary.metadata.name.clone().unwrap_or_default(),
            namespace: canary.metadata.namespace.clone().unwrap_or_default(),
            phase,
            checksum: canary_checksum(canary),
            metadata: hook.metadata.clone().unwrap_or_default(),
        }
    }
}

/// The Kubernetes event type of a recorded event, as sent in `metadata.eventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `Normal` (Flagger's `recordEventInfof`).
    Normal,
    /// `Warning` (Flagger's `recordEventWarningf` and `recordEventErrorf`).
    Warning,
}

impl EventType {
    /// `Normal` or `Warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metadata key of the event message.
pub const EVENT_MESSAGE_KEY: &str = "eventMessage";
/// Metadata key of the event type.
pub const EVENT_TYPE_KEY: &str = "eventType";
/// Metadata key of the event time.
pub const TIMESTAMP_KEY: &str = "timestamp";

/// One recorded event, to be sent to event webhooks (Flagger's `CallEventWebhook`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventWebhookPayload {
    /// Name of the canary.
    pub name: String,
    /// Namespace of the canary.
    pub namespace: String,
    /// The canary's status phase when the event was recorded.
    pub phase: CanaryPhase,
    /// The canary's checksum; see [`crate::checksum()`].
    pub checksum: String,
    /// The formatted event message.
    pub message: String,
    /// `Normal` or `Warning`.
    pub event_type: EventType,
    /// When the event was recorded.
    pub time: jiff::Timestamp,
}

impl EventWebhookPayload {
    /// The event for `canary` (name, namespace, status phase, checksum) recorded at `time`.
    pub fn new(
        canary: &Canary,
        message: impl Into<String>,
        event_type: EventType,
        time: jiff::Timestamp,
    ) -> Self {
        Self {
            name: canary.metadata.name.clone().unwrap_or_default(),
            namespace: canary.metadata.namespace.clone().unwrap_or_default(),
            phase: canary.status.as_ref().map(|s| s.phase()).unwrap_or_default(),
            checksum: canary_checksum(canary),
            message: message.into(),
            event_type,
            time,
        }
    }

    /// `time` as Flagger writes it: Unix milliseconds (truncated towards zero, as Go's
    /// `UnixNano()/1000000`) in decimal.
    pub fn timestamp(&self) -> String {
        (self.time.as_nanosecond() / 1_000_000).to_string()
    }

    /// The payload sent to `hook`: metadata holds `eventMessage`, `eventType` and `timestamp`, plus the
    /// hook's own metadata keys that don't collide with those three (the event fields win).
    pub fn to_payload(&self, hook: &CanaryWebhook) -> CanaryWebhookPayload {
        let mut metadata = BTreeMap::from([
            (EVENT_MESSAGE_KEY.to_owned(), self.message.clone()),
            (EVENT_TYPE_KEY.to_owned(), self.event_type.as_str().to_owned()),
            (TIMESTAMP_KEY.to_owned(), self.timestamp()),
        ]);
        for (key, value) in hook.metadata.iter().flatten() {
            metadata.entry(key.clone()).or_insert_with(|| value.clone());
        }
        CanaryWebhookPayload {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            phase: self.phase,
            checksum: self.checksum.clone(),
            metadata,
        }
    }
}

/// Name of the hook built from the global `-event-webhook` URL.
pub const EVENT_WEBHOOK_NAME: &str = "events";

/// The hooks that receive an event of a canary whose webhooks are `canary_hooks`: every hook of type
/// `event`; if there is none, the global event webhook `{name: "events", url}` when `global_url` is set
/// and not empty; otherwise none.
pub fn event_webhooks(canary_hooks: &[CanaryWebhook], global_url: Option<&str>) -> Vec<CanaryWebhook> {
    let own: Vec<CanaryWebhook> = canary_hooks
        .iter()
        .filter(|hook| hook.hook_type() == HookType::Event)
        .cloned()
        .collect();
    if !own.is_empty() {
        return own;
    }
    match global_url {
        Some(url) if !url.is_empty() => vec![CanaryWebhook {
            name: EVENT_WEBHOOK_NAME.to_owned(),
            url: url.to_owned(),
            ..CanaryWebhook::default()
        }],
        _ => Vec::new(),
    }
}

/// The global event webhook URL as Flagger picks it: the `EVENT_WEBHOOK_URL` environment variable when it is
/// set and not empty, else the `-event-webhook` flag; `None` when neither gives a URL.
pub fn global_event_webhook_url(flag: Option<&str>, env: Option<&str>) -> Option<String> {
    [env, flag]
        .into_iter()
        .flatten()
        .find(|url| !url.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canary(status: serde_json::Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}},
            "status": status,
        }))
        .expect("canary")
    }

    fn hook(name: &str, type_: Option<HookType>, metadata: &[(&str, &str)]) -> CanaryWebhook {
        CanaryWebhook {
            name: name.to_owned(),
            type_,
            url: format!("http://hooks.test/{name}"),
            metadata: (!metadata.is_empty()).then(|| {
                metadata
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            }),
            ..CanaryWebhook::default()
        }
    }

    #[test]
    fn payload_json_matches_flagger() {
        let c = canary(json!({"phase": "Progressing", "lastAppliedSpec": "abc"}));
        let h = hook("load", None, &[("cmd", "hey -z 1m"), ("a", "b")]);
        let payload = CanaryWebhookPayload::new(&c, CanaryPhase::Progressing, &h);
        let text = serde_json::to_string(&payload).expect("json");
        assert_eq!(
            text,
            format!(
                r#"{{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"{}","metadata":{{"a":"b","cmd":"hey -z 1m"}}}}"#,
                crate::checksum(None, "abc")
            )
        );
    }

    #[test]
    fn metadata_is_omitted_when_empty() {
        let c = canary(json!({}));
        for h in [
            hook("none", None, &[]),
            CanaryWebhook {
                metadata: Some(BTreeMap::new()),
                ..hook("empty", None, &[])
            },
        ] {
            let value = serde_json::to_value(CanaryWebhookPayload::new(&c, CanaryPhase::Initialized, &h))
                .expect("json");
            assert_eq!(
                value,
                json!({"name": "podinfo", "namespace": "test", "phase": "Initialized", "checksum": crate::checksum(None, "")})
            );
        }
        let unset = CanaryWebhookPayload {
            phase: CanaryPhase::Unset,
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(unset).expect("json")["phase"], json!(""));
    }

    #[test]
    fn event_payload_shape() {
        let c = canary(json!({"phase": "Waiting"}));
        // 2026-11-28T12:00:00.123456789Z
        let time = jiff::Timestamp::new(1_795_867_200, 123_456_789).expect("time");
        let event = EventWebhookPayload::new(
            &c,
            "New revision detected! Scaling up podinfo.test",
            EventType::Normal,
            time,
        );
        let h = hook(
            "ev",
            Some(HookType::Event),
            &[("team", "sre"), ("eventType", "overridden?"), ("timestamp", "0")],
        );
        let value = serde_json::to_value(event.to_payload(&h)).expect("json");
        assert_eq!(
            value,
            json!({
                "name": "podinfo",
                "namespace": "test",
                "phase": "Waiting",
                "checksum": crate::checksum(None, ""),
                "metadata": {
                    "eventMessage": "New revision detected! Scaling up podinfo.test",
                    "eventType": "Normal",
                    "timestamp": "1795867200123",
                    "team": "sre",
                }
            })
        );
        let warning = EventWebhookPayload {
            event_type: EventType::Warning,
            ..event
        };
        assert_eq!(
            warning.to_payload(&hook("g", None, &[])).metadata["eventType"],
            "Warning"
        );
    }

    #[test]
    fn timestamp_truncates_towards_zero_like_go() {
        let c = canary(json!({}));
        let at = |s, ns| {
            EventWebhookPayload::new(
                &c,
                "m",
                EventType::Normal,
                jiff::Timestamp::new(s, ns).expect("time"),
            )
            .timestamp()
        };
        assert_eq!(at(0, 999_999), "0");
        assert_eq!(at(1, 1_000_000), "1001");
        assert_eq!(at(-1, 0), "-1000");
        assert_eq!(at(-1, 500_000), "-999");
    }

    #[test]
    fn event_routing() {
        let rollout = hook("load", Some(HookType::Rollout), &[]);
        let ev1 = hook("ev1", Some(HookType::Event), &[]);
        let ev2 = hook("ev2", Some(HookType::Event), &[]);
        let unset = hook("unset", None, &[]);

        // Canary event hooks win and suppress the global one, in order.
        let hooks = [rollout.clone(), ev1.clone(), unset.clone(), ev2.clone()];
        assert_eq!(
            event_webhooks(&hooks, Some("http://global")),
            vec![ev1.clone(), ev2.clone()]
        );
        assert_eq!(event_webhooks(&hooks, None), vec![ev1, ev2]);

        // No event hooks: the global hook, named "events", with defaults.
        let global = event_webhooks(&[rollout.clone(), unset], Some("http://global/ev"));
        assert_eq!(
            global,
            vec![CanaryWebhook {
                name: "events".into(),
                url: "http://global/ev".into(),
                ..Default::default()
            }]
        );
        assert!(event_webhooks(std::slice::from_ref(&rollout), None).is_empty());
        assert!(event_webhooks(&[rollout], Some("")).is_empty());
        assert!(event_webhooks(&[], None).is_empty());
    }

    #[test]
    fn global_url_env_wins_when_set() {
        assert_eq!(
            global_event_webhook_url(Some("http://flag"), Some("http://env")).as_deref(),
            Some("http://env")
        );
        assert_eq!(
            global_event_webhook_url(Some("http://flag"), Some("")).as_deref(),
            Some("http://flag")
        );
        assert_eq!(
            global_event_webhook_url(Some("http://flag"), None).as_deref(),
            Some("http://flag")
        );
        assert_eq!(
            global_event_webhook_url(None, Some("http://env")).as_deref(),
            Some("http://env")
        );
        assert_eq!(global_event_webhook_url(Some(""), None), None);
        assert_eq!(global_event_webhook_url(None, None), None);
    }
}
