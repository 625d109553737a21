//! The compatibility corpus (`testdata/corpus`): every valid manifest parses, validates and round-trips
//! through the typed API; every invalid manifest makes `flagger validate` print exactly its `.expected`
//! lines.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use flagger_api::{AlertProvider, Canary, MetricTemplate};
use flagger_core::provider::{AlertProviderType, CANARY_PROVIDER_VALUES, MetricProviderType};
use serde_json::Value;

const FLAGGER: &str = env!("CARGO_BIN_EXE_flagger");

fn corpus(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corpus")
        .join(dir)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn flagger_docs(path: &Path) -> Vec<Value> {
    documents(path)
        .into_iter()
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("flagger.app/"))
        })
        .collect()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn corpus_is_large_enough() {
    let valid = yaml_files(&corpus("valid")).len();
    let invalid = yaml_files(&corpus("invalid")).len();
    assert!(valid >= 40, "only {valid} valid manifests");
    assert!(invalid >= 25, "only {invalid} invalid manifests");
}

#[test]
fn valid_manifests_validate_without_output() {
    let files = yaml_files(&corpus("valid"));
    let out = Command::new(FLAGGER)
        .arg("validate")
        .args(&files)
        .output()
        .expect("run flagger");
    assert_eq!(stdout(&out), "", "problems in the valid corpus");
    assert_eq!(stderr(&out), "");
    assert_eq!(out.status.code(), Some(0));
}

/// Numbers compare by value (`99` equals `99.0`, which is what an `f64` field writes back).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> Value {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("does not parse: {e}"));
    serde_json::to_value(&typed).expect("serialises")
}

#[test]
fn valid_manifests_round_trip_without_losing_a_field() {
    let mut checked = 0;
    for path in yaml_files(&corpus("valid")) {
        for doc in flagger_docs(&path) {
            let back = match doc["kind"].as_str() {
                Some("Canary") => round_trip::<Canary>(&doc),
                Some("MetricTemplate") => round_trip::<MetricTemplate>(&doc),
                Some("AlertProvider") => round_trip::<AlertProvider>(&doc),
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            };
            assert!(
                same_json(&doc, &back),
                "{} does not round-trip\noriginal:   {doc}\nround trip: {back}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} documents checked");
}

#[test]
fn valid_corpus_covers_every_provider_strategy_webhook_metric_and_alert_type() {
    let mut providers = BTreeSet::new();
    let mut hooks = BTreeSet::new();
    let mut metric_types = BTreeSet::new();
    let mut alert_types = BTreeSet::new();
    let mut strategies = BTreeSet::new();
    for path in yaml_files(&corpus("valid")) {
        for doc in flagger_docs(&path) {
            let spec = &doc["spec"];
            match doc["kind"].as_str() {
                Some("Canary") => {
                    if let Some(p) = spec["provider"].as_str() {
                        providers.insert(p.to_owned());
                    }
                    let a = &spec["analysis"];
                    let matches = a["match"].as_array().map(Vec::as_slice).unwrap_or_default();
                    let header_names: Vec<&String> = matches
                        .iter()
                        .filter_map(|m| m["headers"].as_object())
                        .flat_map(|h| h.keys())
                        .collect();
                    if a["stepWeight"].is_number() {
                        strategies.insert("canary stepWeight");
                    }
                    if a["stepWeights"].is_array() {
                        strategies.insert("canary stepWeights");
                    }
                    if a["iterations"].is_number() && matches.is_empty() {
                        strategies.insert("blue/green");
                    }
                    if a["iterations"].is_number() && header_names.iter().any(|h| *h != "cookie") {
                        strategies.insert("A/B headers");
                    }
                    if a["iterations"].is_number() && header_names.iter().any(|h| *h == "cookie") {
                        strategies.insert("A/B cookie");
                    }
                    if a["mirror"] == Value::Bool(true) {
                        strategies.insert("mirroring");
                    }
                    if a["sessionAffinity"].is_object() {
                        strategies.insert("session affinity");
                    }
                    for hook in a["webhooks"].as_array().into_iter().flatten() {
                        hooks.insert(hook["type"].as_str().unwrap_or("rollout").to_owned());
                    }
                }
                Some("MetricTemplate") => {
                    metric_types.insert(spec["provider"]["type"].as_str().unwrap_or_default().to_owned());
                }
                Some("AlertProvider") => {
                    alert_types.insert(spec["type"].as_str().unwrap_or_default().to_owned());
                }
                _ => {}
            }
        }
    }
    let expected: BTreeSet<String> = CANARY_PROVIDER_VALUES.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(providers, expected, "providers");
    let expected: BTreeSet<String> = [
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-promotion",
        "post-rollout",
        "event",
        "rollback",
        "confirm-traffic-increase",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(hooks, expected, "webhook types");
    let expected: BTreeSet<String> = MetricProviderType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(metric_types, expected, "metric provider types");
    let expected: BTreeSet<String> = AlertProviderType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(alert_types, expected, "alert provider types");
    let expected: BTreeSet<&str> = [
        "canary stepWeight",
        "canary stepWeights",
        "blue/green",
        "A/B headers",
        "A/B cookie",
        "mirroring",
        "session affinity",
    ]
    .into_iter()
    .collect();
    assert_eq!(strategies, expected, "strategies");
}

/// The extra arguments of an invalid manifest: `NAME.args`, one per line.
fn extra_args(yaml: &Path) -> Vec<String> {
    std::fs::read_to_string(yaml.with_extension("args"))
        .map(|text| {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn invalid_manifests_print_exactly_the_expected_problems() {
    let dir = corpus("invalid");
    let mut failures = Vec::new();
    for path in yaml_files(&dir) {
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let expected_path = path.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (every invalid manifest needs one)",
                expected_path.display()
            )
        });
        assert!(!expected.trim().is_empty(), "{name}: the .expected file is empty");
        let out = Command::new(FLAGGER)
            .current_dir(&dir)
            .arg("validate")
            .args(extra_args(&path))
            .arg(&name)
            .output()
            .expect("run flagger");
        if stdout(&out) != expected || out.status.code() != Some(1) || !stderr(&out).is_empty() {
            failures.push(format!(
                "{name}: exit {:?}\n--- expected\n{expected}--- got\n{}--- stderr\n{}",
                out.status.code(),
                stdout(&out),
                stderr(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_file_belongs_to_a_manifest() {
    for entry in std::fs::read_dir(corpus("invalid")).expect("invalid corpus") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "expected" || e == "args") {
            assert!(
                path.with_extension("yaml").exists(),
                "{} has no manifest",
                path.display()
            );
        }
    }
}

#[test]
fn every_invalid_manifest_line_names_file_document_kind_and_field() {
    for path in yaml_files(&corpus("invalid")) {
        let expected = std::fs::read_to_string(path.with_extension("expected")).expect("expected file");
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        for line in expected.lines() {
            assert!(line.starts_with(&format!("{name}:")), "{line}");
            let rest = &line[name.len() + 1..];
            if rest.starts_with(" invalid YAML: ") {
                continue;
            }
            let mut parts = rest.splitn(4, ": ");
            let index = parts.next().unwrap_or_default();
            assert!(index.parse::<usize>().is_ok(), "document index in {line}");
            let object = parts.next().unwrap_or_default();
            assert!(object.contains('/'), "KIND/NAME in {line}");
            assert!(
                parts.next().is_some_and(|p| !p.is_empty()),
                "field path in {line}"
            );
            assert!(parts.next().is_some_and(|m| !m.is_empty()), "message in {line}");
        }
    }
}
