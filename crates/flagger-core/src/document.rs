//! Checking one manifest document (a YAML or JSON object) that may be a Canary, a MetricTemplate or an
//! AlertProvider: parse it into the typed API with field paths on errors, report fields the types do not
//! know, then run the semantic validation.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::validate::{
    FieldError, ValidationContext, validate_alert_provider, validate_canary, validate_metric_template,
};

/// The API group of Flagger's kinds.
pub const GROUP: &str = "flagger.app";
/// The only served version of Flagger's kinds.
pub const VERSION: &str = "v1beta1";

/// What checking a document found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DocumentReport {
    /// Not a `flagger.app` object: not checked.
    Skipped {
        /// The document's `apiVersion` (empty if missing).
        api_version: String,
        /// The document's `kind` (empty if missing).
        kind: String,
    },
    /// A `flagger.app` object (or something that should have been one), with its problems.
    Checked {
        /// The kind, as written (or `?` when missing).
        kind: String,
        /// `metadata.name`, or `(unnamed)`.
        name: String,
        /// Every problem found; empty when the object is valid.
        problems: Vec<FieldError>,
    },
}

impl DocumentReport {
    /// The problems of a checked document; none for a skipped one.
    pub fn problems(&self) -> &[FieldError] {
        match self {
            Self::Skipped { .. } => &[],
            Self::Checked { problems, .. } => problems,
        }
    }
}

fn str_field<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Value::as_str)
}

/// Checks one document, looking into the `items` of a `v1` `List` (what `kubectl get -o yaml` prints):
/// one report per object, the paths of list items starting with `items[N].`.
pub fn check_documents(doc: &Value, ctx: &ValidationContext) -> Vec<DocumentReport> {
    let is_list = str_field(doc, "apiVersion") == Some("v1")
        && str_field(doc, "kind").is_some_and(|k| k.ends_with("List"));
    let Some(items) = doc.get("items").and_then(Value::as_array).filter(|_| is_list) else {
        return vec![check_document(doc, ctx)];
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match check_document(item, ctx) {
            DocumentReport::Checked { kind, name, problems } => DocumentReport::Checked {
                kind,
                name,
                problems: problems
                    .into_iter()
                    .map(|p| {
                        let path = if p.path == "." {
                            format!("items[{i}]")
                        } else {
                            format!("items[{i}].{}", p.path)
                        };
                        FieldError::new(path, p.message)
                    })
                    .collect(),
            },
            skipped => skipped,
        })
        .collect()
}

/// Checks one document. `ctx.default_namespace` stands in for a missing `metadata.namespace`.
pub fn check_document(doc: &Value, ctx: &ValidationContext) -> DocumentReport {
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("(unnamed)")
        .to_owned();
    let Value::Object(_) = doc else {
        let found = match doc {
            Value::Array(_) => "a sequence",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return DocumentReport::Checked {
            kind: "?".to_owned(),
            name,
            problems: vec![FieldError::new(
                ".",
                format!("expected a Kubernetes object (a mapping with apiVersion and kind), found {found}"),
            )],
        };
    };
    let api_version = str_field(doc, "apiVersion").unwrap_or_default();
    let kind = str_field(doc, "kind").unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    if group != GROUP {
        if api_version.is_empty() || kind.is_empty() {
            let mut problems = Vec::new();
            if api_version.is_empty() {
                problems.push(FieldError::new("apiVersion", "required"));
            }
            if kind.is_empty() {
                problems.push(FieldError::new("kind", "required"));
            }
            let kind = if kind.is_empty() { "?" } else { kind };
            return DocumentReport::Checked {
                kind: kind.to_owned(),
                name,
                problems,
            };
        }
        return DocumentReport::Skipped {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        };
    }
    let report = |problems| DocumentReport::Checked {
        kind: if kind.is_empty() {
            "?".to_owned()
        } else {
            kind.to_owned()
        },
        name: name.clone(),
        problems,
    };
    if version != VERSION {
        return report(vec![FieldError::new(
            "apiVersion",
            format!("{api_version:?} is not served; Flagger's kinds are {GROUP}/{VERSION}"),
        )]);
    }
    let mut problems = Vec::new();
    if doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        problems.push(FieldError::new("metadata.name", "required"));
    }
    problems.extend(match kind {
        "Canary" => typed::<flagger_api::Canary>(doc, |c| validate_canary(c, ctx)),
        "MetricTemplate" => typed::<flagger_api::MetricTemplate>(doc, validate_metric_template),
        "AlertProvider" => typed::<flagger_api::AlertProvider>(doc, validate_alert_provider),
        "" => vec![FieldError::new("kind", "required")],
        other => vec![FieldError::new(
            "kind",
            format!("unknown kind {other:?} in {GROUP}; expected Canary, MetricTemplate or AlertProvider"),
        )],
    });
    report(problems)
}

/// Parses `doc` as `T`, reporting the first type error with its path, then every field `T` does not
/// keep, then the semantic problems.
fn typed<T: DeserializeOwned + Serialize>(
    doc: &Value,
    validate: impl FnOnce(&T) -> Result<(), Vec<FieldError>>,
) -> Vec<FieldError> {
    let parsed: T = match serde_path_to_error::deserialize(doc) {
        Ok(parsed) => parsed,
        Err(e) => {
            let path = e.path().to_string();
            return vec![FieldError::new(path, e.into_inner().to_string())];
        }
    };
    let mut problems = match serde_json::to_value(&parsed) {
        Ok(round_trip) => unknown_fields(doc, &round_trip)
            .into_iter()
            .map(|path| FieldError::new(path, "unknown field"))
            .collect(),
        Err(e) => vec![FieldError::new(
            ".",
            format!("cannot be represented as JSON: {e}"),
        )],
    };
    if let Err(semantic) = validate(&parsed) {
        problems.extend(semantic);
    }
    problems
}

/// The paths of fields present (and not null) in `original` but absent from `round_trip`: fields the
/// typed API drops, like the API server prunes fields its schema does not know. Sorted.
pub fn unknown_fields(original: &Value, round_trip: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(original, round_trip, &mut String::new(), &mut out);
    // Independent of the map order serde_json happens to be built with.
    out.sort();
    out
}

fn walk(original: &Value, round_trip: &Value, path: &mut String, out: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                if value.is_null() {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match b.get(key) {
                    Some(other) => walk(value, other, path, out),
                    None => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (value, other)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(value, other, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unknown_fields_are_found_at_any_depth() {
        let original = json!({
            "spec": {"analysis": {"stepweight": 5, "metrics": [{"name": "a", "intervall": "1m"}]}, "gone": null},
            "kind": "Canary"
        });
        let round_trip = json!({"spec": {"analysis": {"metrics": [{"name": "a"}]}}, "kind": "Canary"});
        assert_eq!(
            unknown_fields(&original, &round_trip),
            vec![
                "spec.analysis.metrics[0].intervall".to_owned(),
                "spec.analysis.stepweight".to_owned()
            ]
        );
    }

    #[test]
    fn other_groups_are_skipped() {
        let report = check_document(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}),
            &ValidationContext::default(),
        );
        assert_eq!(
            report,
            DocumentReport::Skipped {
                api_version: "apps/v1".into(),
                kind: "Deployment".into()
            }
        );
    }

    #[test]
    fn objects_without_api_version_or_kind_are_problems() {
        let report = check_document(&json!({"metadata": {"name": "x"}}), &ValidationContext::default());
        assert_eq!(
            report,
            DocumentReport::Checked {
                kind: "?".into(),
                name: "x".into(),
                problems: vec![
                    FieldError::new("apiVersion", "required"),
                    FieldError::new("kind", "required")
                ],
            }
        );
        let report = check_document(&json!(["a"]), &ValidationContext::default());
        assert_eq!(report.problems().len(), 1);
    }

    #[test]
    fn list_items_are_checked_one_by_one() {
        let list = json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}},
                {"apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider", "metadata": {"name": "a"},
                 "spec": {"type": "slack"}}
            ]
        });
        let reports = check_documents(&list, &ValidationContext::default());
        assert_eq!(reports.len(), 2);
        assert_eq!(
            reports[0],
            DocumentReport::Skipped {
                api_version: "v1".into(),
                kind: "Service".into()
            }
        );
        assert_eq!(
            reports[1].problems(),
            [FieldError::new(
                "items[1].spec",
                "one of address or secretRef (a Secret with an address key) is required"
            )]
        );
        // Anything that is not a v1 List is a single document.
        assert_eq!(
            check_documents(
                &json!({"apiVersion": "v1", "kind": "ConfigMap"}),
                &ValidationContext::default()
            )
            .len(),
            1
        );
    }

    #[test]
    fn flagger_objects_need_a_name() {
        let doc = json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "AlertProvider",
            "metadata": {"namespace": "x"},
            "spec": {"type": "slack", "address": "https://hooks.slack.com/services/x"}
        });
        assert_eq!(
            check_document(&doc, &ValidationContext::default()),
            DocumentReport::Checked {
                kind: "AlertProvider".into(),
                name: "(unnamed)".into(),
                problems: vec![FieldError::new("metadata.name", "required")],
            }
        );
    }

    #[test]
    fn old_versions_and_unknown_kinds_of_the_group_are_problems() {
        let report = check_document(
            &json!({"apiVersion": "flagger.app/v1alpha3", "kind": "Canary", "metadata": {"name": "x"}}),
            &ValidationContext::default(),
        );
        assert_eq!(report.problems()[0].path, "apiVersion");
        let report = check_document(
            &json!({"apiVersion": "flagger.app/v1beta1", "kind": "Rollout", "metadata": {"name": "x"}}),
            &ValidationContext::default(),
        );
        assert_eq!(report.problems()[0].path, "kind");
    }
}
