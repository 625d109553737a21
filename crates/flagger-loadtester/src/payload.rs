//! The request body of every endpoint: Flagger's webhook payload, decoded as leniently as Go decodes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// Flagger's `CanaryWebhookPayload` as the load tester reads it.
///
/// `flagger_webhooks::CanaryWebhookPayload` is the operator's side of the same contract, but it is strict
/// where Flagger's load tester is not: Go's `json.Unmarshal` accepts a body with any of the fields missing
/// or `null`, and any string as the phase. This type accepts the same bodies; a value of the wrong type
/// (a number where a string belongs, a metadata value that is not a string) is still an error, as in Go.
#[derive(Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// Name of the canary.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Namespace of the canary.
    #[serde(default, deserialize_with = "null_as_default")]
    pub namespace: String,
    /// Phase of the canary (any string).
    #[serde(default, deserialize_with = "null_as_default")]
    pub phase: String,
    /// Checksum of the canary's configuration.
    #[serde(default, deserialize_with = "null_as_default")]
    pub checksum: String,
    /// The webhook's metadata: the task for `/`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
}

impl Payload {
    /// Parses a request body.
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// `<name>.<namespace>`, the key Flagger's load tester uses for gates and task de-duplication.
    pub fn canary(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_go_decodes() {
        let p = Payload::from_slice(
            br#"{"name":"podinfo","namespace":"test","phase":"Whatever","metadata":{"cmd":"x"},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(p.canary(), "podinfo.test");
        assert_eq!(p.phase, "Whatever");
        assert_eq!(p.metadata["cmd"], "x");
        let p = Payload::from_slice(br#"{"name":null,"metadata":null}"#).unwrap();
        assert_eq!(p, Payload::default());
        assert!(Payload::from_slice(br#"{"metadata":{"cmd":1}}"#).is_err());
        assert!(Payload::from_slice(b"not json").is_err());
        assert!(Payload::from_slice(br#"{"name":1}"#).is_err());
    }
}
