//! Change detection hashes.
//!
//! - [`spec_hash`]: the revision of a target (its pod template, or a Service spec), stored in
//!   `status.lastAppliedSpec` and `status.lastPromotedSpec`. Flagger's own hash is an FNV-32a over a Go
//!   struct dump that cannot be reproduced outside Go, so flagger-rs writes its own, with the recognisable
//!   prefix [`SPEC_HASH_PREFIX`]. A stored value without that prefix came from Go Flagger (see
//!   [`is_own_spec_hash`] and docs/migration.md).
//! - [`config_checksum`]: the checksum of a tracked ConfigMap's or Secret's data, stored in
//!   `status.trackedConfigs`. This one is bit-for-bit Flagger's: the first 8 bytes of the SHA-256 of the
//!   data marshalled as Go's `encoding/json` does, in hex.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The version prefix of flagger-rs spec hashes.
pub const SPEC_HASH_PREFIX: &str = "frs1-";

/// The key Flagger adds to a DaemonSet's nodeSelector to scale it to zero; it is not part of a revision.
pub const SCALE_TO_ZERO_NODE_SELECTOR: &str = "flagger.app/scale-to-zero";

/// Errors of hashing: only serialisation can fail, for values that are not JSON-representable.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialise the value to hash: {0}")]
pub struct HashError(#[from] serde_json::Error);

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The flagger-rs revision hash of a value: `frs1-` and 16 hex digits of the SHA-256 of its canonical JSON
/// (object keys sorted, so the order fields were written in does not matter).
pub fn spec_hash<T: Serialize>(value: &T) -> Result<String, HashError> {
    // A serde_json::Value keeps object keys sorted (the workspace never enables `preserve_order`).
    let canonical = serde_json::to_vec(&serde_json::to_value(value)?)?;
    let digest = Sha256::digest(&canonical);
    Ok(format!("{SPEC_HASH_PREFIX}{}", hex(&digest[..8])))
}

/// The revision hash of a DaemonSet pod template. Flagger leaves the scale-to-zero nodeSelector out and
/// treats a missing nodeSelector like an empty one, so scaling a DaemonSet to zero and back is not a new
/// revision.
pub fn daemonset_template_hash(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
) -> Result<String, HashError> {
    let mut template = template.clone();
    if let Some(spec) = template.spec.as_mut() {
        let mut selector = spec.node_selector.take().unwrap_or_default();
        selector.remove(SCALE_TO_ZERO_NODE_SELECTOR);
        spec.node_selector = Some(selector);
    }
    spec_hash(&template)
}

/// Whether a stored `lastAppliedSpec`/`lastPromotedSpec` was written by flagger-rs (and so can be compared
/// with [`spec_hash`]), rather than by Go Flagger.
pub fn is_own_spec_hash(stored: &str) -> bool {
    stored.starts_with(SPEC_HASH_PREFIX)
}

/// Flagger's checksum of a ConfigMap's `data` (a string map) or a Secret's `data` (a map of byte strings,
/// which marshal as base64): `hex(sha256(json)[:8])`, with Go's JSON encoding.
pub fn config_checksum<T: Serialize>(data: &T) -> Result<String, HashError> {
    let json = go_json(data)?;
    Ok(hex(&Sha256::digest(json.as_bytes())[..8]))
}

/// JSON as Go's `encoding/json` marshals it: sorted map keys (as serde_json), and additionally `<`, `>`,
/// `&`, U+2028 and U+2029 escaped. Those characters can only occur inside strings in JSON text, so escaping
/// them wherever they appear is exact.
pub fn go_json<T: Serialize>(value: &T) -> Result<String, HashError> {
    let json = serde_json::to_string(&serde_json::to_value(value)?)?;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};

    use super::*;

    // The expected checksums were computed with Go 1.26's encoding/json and crypto/sha256, exactly as
    // Flagger's config tracker computes them.
    #[test]
    fn config_checksums_are_flaggers() {
        assert_eq!(
            config_checksum(&None::<BTreeMap<String, String>>).unwrap(),
            "74234e98afe7498f"
        );
        assert_eq!(
            config_checksum(&BTreeMap::<String, String>::new()).unwrap(),
            "44136fa355b3678a"
        );
        let simple = BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        assert_eq!(config_checksum(&simple).unwrap(), "21f76dfbfe6dfe21");
        let html = BTreeMap::from([(
            "page.html".to_string(),
            "<p>a & b</p>\n\t\"q\" \\ \u{2028} é \u{8} \u{c} \u{1} \u{7f}".to_string(),
        )]);
        assert_eq!(config_checksum(&html).unwrap(), "411b4fa0d12dd830");
        let secret = BTreeMap::from([
            ("password".to_string(), ByteString(b"s3cr3t".to_vec())),
            ("bin".to_string(), ByteString(vec![0, 255, 10])),
        ]);
        assert_eq!(config_checksum(&secret).unwrap(), "12a2a21ff994cbd3");
    }

    #[test]
    fn go_json_escapes_like_go() {
        let html = BTreeMap::from([("k".to_string(), "<a>&\u{2028}".to_string())]);
        assert_eq!(go_json(&html).unwrap(), r#"{"k":"\u003ca\u003e\u0026\u2028"}"#);
    }

    fn template(node_selector: Option<&[(&str, &str)]>) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                node_selector: node_selector
                    .map(|kv| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn spec_hashes_are_prefixed_stable_and_key_order_independent() {
        let a: serde_json::Value = serde_json::from_str(r#"{"x": 1, "y": {"b": 2, "a": 1}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"y": {"a": 1, "b": 2}, "x": 1}"#).unwrap();
        let h = spec_hash(&a).unwrap();
        assert_eq!(h, spec_hash(&b).unwrap());
        assert!(is_own_spec_hash(&h), "{h}");
        assert_eq!(h.len(), SPEC_HASH_PREFIX.len() + 16);
        let c: serde_json::Value = serde_json::from_str(r#"{"x": 2, "y": {"a": 1, "b": 2}}"#).unwrap();
        assert_ne!(h, spec_hash(&c).unwrap());
    }

    #[test]
    fn go_flagger_hashes_are_recognised_as_foreign() {
        assert!(!is_own_spec_hash("5f6bd8c4d7"));
        assert!(!is_own_spec_hash(""));
    }

    #[test]
    fn daemonset_scale_to_zero_is_not_a_revision() {
        let plain = daemonset_template_hash(&template(None)).unwrap();
        assert_eq!(plain, daemonset_template_hash(&template(Some(&[]))).unwrap());
        assert_eq!(
            plain,
            daemonset_template_hash(&template(Some(&[(SCALE_TO_ZERO_NODE_SELECTOR, "true")]))).unwrap()
        );
        assert_ne!(
            plain,
            daemonset_template_hash(&template(Some(&[("disk", "ssd")]))).unwrap()
        );
    }
}
