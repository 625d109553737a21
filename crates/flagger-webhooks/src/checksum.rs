//! The `checksum` field of webhook payloads.
//!
//! Flagger sends `ComputeHash(struct{TrackedConfigs *map[string]string; LastAppliedSpec string})`: FNV-32a
//! over a `spew` dump of the Go struct, encoded with Kubernetes' `SafeEncodeString`. That dump is defined by
//! Go's reflection and formatting and cannot be reproduced sensibly outside Go, so flagger-rs uses its own
//! stable hash, the same scheme as its revision hashes ([`flagger_core::hash::spec_hash`]), recognisable by
//! the `frs1-` prefix:
//!
//! ```text
//! frs1-<first 8 bytes of SHA-256(canonical JSON), as 16 lowercase hex digits>
//! ```
//!
//! The canonical JSON is the compact serde_json encoding of
//! `{"lastAppliedSpec": <string>, "trackedConfigs": <object with sorted keys, or null>}`; keys are sorted
//! at every level and there is no whitespace. The value depends only on its two inputs, so it is the same
//! across restarts, replicas and versions of flagger-rs that keep the `frs1` scheme. Like Flagger's, it
//! distinguishes an absent `trackedConfigs` (`null`) from an empty one (`{}`).
//!
//! Receivers that only compare checksums for equality (the documented use: "identify a Canary for a
//! specific configuration") keep working; a receiver that stored a Flagger checksum sees one change when
//! the operator is switched to flagger-rs.

use std::collections::BTreeMap;

use flagger_api::Canary;
use flagger_core::hash::spec_hash;
use serde::Serialize;

/// The prefix of flagger-rs checksums (scheme version 1, shared with the revision hashes).
pub use flagger_core::hash::SPEC_HASH_PREFIX as CHECKSUM_PREFIX;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChecksumInput<'a> {
    // Field order is alphabetical so the encoding is canonical without a separate sorting pass.
    last_applied_spec: &'a str,
    tracked_configs: Option<&'a BTreeMap<String, String>>,
}

/// The webhook checksum of a canary's `status.trackedConfigs` and `status.lastAppliedSpec`.
pub fn checksum(tracked_configs: Option<&BTreeMap<String, String>>, last_applied_spec: &str) -> String {
    let input = ChecksumInput {
        last_applied_spec,
        tracked_configs,
    };
    // Serialising a string and a string map cannot fail; an empty checksum rather than a panic if it did.
    spec_hash(&input).unwrap_or_default()
}

/// The webhook checksum of a canary, from its status (absent status: no tracked configs, empty spec).
pub fn canary_checksum(canary: &Canary) -> String {
    let status = canary.status.as_ref();
    checksum(
        status.and_then(|s| s.tracked_configs.as_ref()),
        status.and_then(|s| s.last_applied_spec.as_deref()).unwrap_or(""),
    )
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn format_is_prefix_and_sixteen_hex_digits() {
        let sum = checksum(None, "");
        let hex = sum.strip_prefix(CHECKSUM_PREFIX).expect("prefix");
        assert_eq!(hex.len(), 16);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{sum}"
        );
    }

    #[test]
    fn pinned_values() {
        // Pinned so that an accidental change of the scheme (field names, order, encoding) fails loudly:
        // receivers compare these values across operator restarts and upgrades.
        // sha256(b"{\"lastAppliedSpec\":\"\",\"trackedConfigs\":null}")
        assert_eq!(
            checksum(None, ""),
            expected(r#"{"lastAppliedSpec":"","trackedConfigs":null}"#)
        );
        let tracked = configs(&[("secret/db", "b"), ("configmap/app", "a")]);
        assert_eq!(
            checksum(Some(&tracked), "5d8f7b9c"),
            expected(
                r#"{"lastAppliedSpec":"5d8f7b9c","trackedConfigs":{"configmap/app":"a","secret/db":"b"}}"#
            )
        );
        assert_eq!(checksum(None, ""), "frs1-c7e60f956665fb17");
    }

    fn expected(canonical: &str) -> String {
        let digest = Sha256::digest(canonical.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{CHECKSUM_PREFIX}{hex}")
    }

    #[test]
    fn distinguishes_inputs() {
        let a = configs(&[("configmap/app", "a")]);
        let b = configs(&[("configmap/app", "b")]);
        let empty = BTreeMap::new();
        let sums = [
            checksum(None, ""),
            checksum(Some(&empty), ""),
            checksum(Some(&a), ""),
            checksum(Some(&b), ""),
            checksum(Some(&a), "spec1"),
            checksum(None, "spec1"),
        ];
        for (i, x) in sums.iter().enumerate() {
            for y in &sums[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(checksum(Some(&a), "spec1"), checksum(Some(&a.clone()), "spec1"));
    }

    #[test]
    fn canary_checksum_reads_the_status() {
        let mut canary: Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}}
        }))
        .expect("canary");
        assert_eq!(canary_checksum(&canary), checksum(None, ""));
        let tracked = configs(&[("configmap/app", "a")]);
        canary.status = Some(flagger_api::CanaryStatus {
            tracked_configs: Some(tracked.clone()),
            last_applied_spec: Some("abc".into()),
            ..Default::default()
        });
        assert_eq!(canary_checksum(&canary), checksum(Some(&tracked), "abc"));
    }
}
