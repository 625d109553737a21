//! Our CRDs must carry every schema path and constraint of Flagger's CRDs.
//!
//! `testdata/flagger-crd-schema.txt` lists the facts of Flagger's `artifacts/flagger/crd.yaml` (see its
//! header for the format). Extra paths and stricter constraints on our side are fine: `integer` where
//! Flagger says `number`, a subset of an enum, more required fields, tighter bounds.

use std::{collections::BTreeSet, path::PathBuf};

use serde_json::Value;

const FACTS: &str = "testdata/flagger-crd-schema.txt";

/// One line of the facts file.
struct Fact {
    crd: String,
    path: String,
    constraints: Vec<(String, Option<String>)>,
}

fn facts() -> Vec<Fact> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(FACTS);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let mut cols = line.split('\t');
            let crd = cols.next().expect("plural").to_owned();
            let path = cols
                .next()
                .unwrap_or_else(|| panic!("no path in {line:?}"))
                .to_owned();
            let constraints = cols
                .map(|c| match c.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (c.to_owned(), None),
                })
                .collect();
            Fact {
                crd,
                path,
                constraints,
            }
        })
        .collect()
}

/// Our CRDs as JSON, keyed by plural.
fn our_schemas() -> Vec<(String, Value)> {
    flagger_api::crds()
        .into_iter()
        .map(|crd| {
            let plural = crd.spec.names.plural.clone();
            let value = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema to JSON");
            (plural, value["openAPIV3Schema"].clone())
        })
        .collect()
}

/// The subschema at a facts-file path (`.`, `a.b`, `a[]`, `a{}`).
fn schema_at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path == "." {
        return Some(root);
    }
    let mut current = root;
    for segment in path.split('.') {
        let mut name = segment;
        let mut suffixes = Vec::new();
        while let Some(rest) = name.strip_suffix("[]").or_else(|| name.strip_suffix("{}")) {
            suffixes.push(&name[rest.len()..]);
            name = rest;
        }
        current = current.get("properties")?.get(name)?;
        for suffix in suffixes.iter().rev() {
            current = current.get(if *suffix == "[]" {
                "items"
            } else {
                "additionalProperties"
            })?;
        }
    }
    Some(current)
}

/// JSON with descriptions dropped and `required` lists sorted, printed compactly with sorted keys.
fn canonical(v: &Value) -> String {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| k.as_str() != "description")
                    .map(|(k, x)| {
                        let x = match (k.as_str(), x) {
                            ("required", Value::Array(items)) => {
                                let mut items = items.clone();
                                items.sort_by_key(ToString::to_string);
                                Value::Array(items)
                            }
                            _ => strip(x),
                        };
                        (k.clone(), x)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&strip(v)).expect("JSON")
}

fn number(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

/// Why `ours` does not carry Flagger's constraint `key[=expected]`, or `None` when it does.
fn lacks(ours: &Value, key: &str, expected: Option<&str>) -> Option<String> {
    let expected_str = expected.unwrap_or_default();
    let ok = match key {
        "type" => {
            let t = ours.get("type").and_then(Value::as_str);
            t == Some(expected_str) || (expected_str == "number" && t == Some("integer"))
        }
        "pattern" | "format" => ours.get(key).and_then(Value::as_str) == Some(expected_str),
        "enum" => {
            let theirs: BTreeSet<String> = parse_list(expected_str);
            ours.get("enum").and_then(Value::as_array).is_some_and(|values| {
                !values.is_empty() && values.iter().all(|v| theirs.contains(&v.to_string()))
            })
        }
        "default" => ours.get("default").map(canonical).as_deref() == Some(expected_str),
        "required" => {
            let have: BTreeSet<&str> = ours
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            expected_str.split(',').all(|f| have.contains(f))
        }
        "oneOf" | "anyOf" => ours.get(key).map(canonical).as_deref() == Some(expected_str),
        "validations" => ours.get("x-kubernetes-validations").map(canonical).as_deref() == Some(expected_str),
        "minimum" | "minLength" | "minItems" => {
            let want: f64 = expected_str.parse().expect("number");
            number(ours.get(key)).is_some_and(|have| have >= want)
        }
        "maximum" | "maxLength" | "maxItems" => {
            let want: f64 = expected_str.parse().expect("number");
            number(ours.get(key)).is_some_and(|have| have <= want)
        }
        "int-or-string" => ours.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)),
        "preserve-unknown-fields" => {
            ours.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        }
        other => return Some(format!("unknown constraint {other:?} in {FACTS}")),
    };
    if ok {
        return None;
    }
    let have = match key {
        "int-or-string" => ours.get("x-kubernetes-int-or-string"),
        "preserve-unknown-fields" => ours.get("x-kubernetes-preserve-unknown-fields"),
        "validations" => ours.get("x-kubernetes-validations"),
        k => ours.get(k),
    };
    Some(format!(
        "lacks {key}{}{expected_str} (ours: {})",
        if expected.is_some() { "=" } else { "" },
        have.map_or_else(|| "none".to_owned(), canonical)
    ))
}

fn parse_list(json: &str) -> BTreeSet<String> {
    let values: Vec<Value> = serde_json::from_str(json).expect("enum list");
    values.iter().map(ToString::to_string).collect()
}

/// Facts of Flagger's CRD that we deliberately express differently: (plural, path, constraint, how we
/// express it instead, a check of that).
type Deviation = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    fn(&Value) -> bool,
);
const DEVIATIONS: &[Deviation] = &[(
    "canaries",
    "spec.service.mirror",
    "required",
    "Flagger puts `required: [backendRef]` on the array, where JSON Schema ignores it; each item requires \
     backendRef instead, which is what it means",
    |mirror| {
        mirror["items"]["required"]
            .as_array()
            .is_some_and(|r| r.contains(&"backendRef".into()))
    },
)];

/// Every way our CRDs fall short of the facts, one message each.
fn shortfalls(schemas: &[(String, Value)], facts: &[Fact]) -> Vec<String> {
    let mut out = Vec::new();
    for fact in facts {
        let Some((_, root)) = schemas.iter().find(|(plural, _)| *plural == fact.crd) else {
            out.push(format!("{} (no such CRD)", fact.crd));
            continue;
        };
        let Some(ours) = schema_at(root, &fact.path) else {
            out.push(format!("{} {}: missing path", fact.crd, fact.path));
            continue;
        };
        for (key, expected) in &fact.constraints {
            let deviation = DEVIATIONS
                .iter()
                .find(|(c, p, k, _, _)| *c == fact.crd && *p == fact.path && k == key);
            if let Some((_, _, _, instead, check)) = deviation {
                if !check(ours) {
                    out.push(format!(
                        "{} {}: lacks the replacement of {key}: {instead}",
                        fact.crd, fact.path
                    ));
                }
                continue;
            }
            if let Some(why) = lacks(ours, key, expected.as_deref()) {
                out.push(format!("{} {}: {why}", fact.crd, fact.path));
            }
        }
    }
    out
}

#[test]
fn our_crds_carry_every_path_and_constraint_of_flaggers() {
    let facts = facts();
    let constraints: usize = facts.iter().map(|f| f.constraints.len()).sum();
    assert!(
        facts.len() > 300 && constraints > 400,
        "{FACTS} looks truncated: {} paths",
        facts.len()
    );
    let missing = shortfalls(&our_schemas(), &facts);
    assert!(
        missing.is_empty(),
        "our CRDs lack {} of Flagger's {} schema facts ({} paths):\n{}",
        missing.len(),
        constraints,
        facts.len(),
        missing.join("\n")
    );
}

#[test]
fn the_checker_reports_a_removed_enum_a_loosened_bound_and_a_missing_path() {
    let facts = facts();
    let mut schemas = our_schemas();
    let canaries = &mut schemas
        .iter_mut()
        .find(|(p, _)| p == "canaries")
        .expect("canaries")
        .1;
    let spec = &mut canaries["properties"]["spec"]["properties"];
    spec["targetRef"]["properties"]["kind"]
        .as_object_mut()
        .expect("object")
        .remove("enum");
    spec["service"]["properties"]["gatewayRefs"]["maxItems"] = 64.into();
    spec["service"]["properties"]
        .as_object_mut()
        .expect("object")
        .remove("unmanagedMetadata");
    let found = shortfalls(&schemas, &facts);
    let expected = [
        "canaries spec.targetRef.kind: lacks enum=",
        "canaries spec.service.gatewayRefs: lacks maxItems=32",
        "canaries spec.service.unmanagedMetadata: missing path",
        "canaries spec.service.unmanagedMetadata.labels[]: missing path",
    ];
    for e in expected {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "expected a shortfall {e:?}, got {found:#?}"
        );
    }
    assert_eq!(found.len(), 7, "{found:#?}");
}
