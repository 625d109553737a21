//! Schema pieces that `#[derive(JsonSchema)]` attributes cannot express, and the transform that turns
//! kube's generated CRDs into CRDs as strict as Flagger's.
//!
//! Two kinds of rules live here:
//! - `schema_with` functions for fields whose schema is not the plain schema of their Rust type
//!   (int-or-string, timestamps, the restricted A/B `match` list);
//! - [`apply_flagger_rules`], run on each generated CRD: rules that depend on *where* a shared type is
//!   used (e.g. the `kind` enum of each object reference), rules kube's structural rewriter would mangle
//!   (a `oneOf` whose branches name properties), and clean-ups (`nullable`, `listKind`).

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

/// The OpenAPI pattern Flagger's CRD puts on `analysis.interval`, `metrics[].interval` and
/// `webhooks[].timeout` (anchored only at the start, as in Flagger).
pub const INTERVAL_PATTERN: &str = "^[0-9]+(m|s)";

/// Schema of an int-or-string field (a port number or name).
pub(crate) fn int_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-int-or-string": true })
}

/// Schema of a timestamp (RFC 3339).
pub(crate) fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}

/// Schema of `analysis.match`: the same Rust type as `service.match`, but Flagger's CRD only lets
/// `headers`, `queryParams` and `sourceLabels` through, and header matches must name exactly one of
/// `exact`, `prefix`, `suffix` and `regex`.
pub(crate) fn analysis_match(_: &mut SchemaGenerator) -> Schema {
    let string_match = |description: &str| {
        json!({
            "type": "object",
            "properties": {
                "exact": {"type": "string", "format": "string", "description": "The value must equal this string."},
                "prefix": {"type": "string", "format": "string", "description": "The value must start with this string."},
                "regex": {
                    "type": "string", "format": "string",
                    "description": "The value must match this RE2 regular expression (https://github.com/google/re2/wiki/Syntax)."
                }
            },
            "description": description
        })
    };
    let mut header =
        string_match("How the header value is compared: exactly one of exact, prefix, suffix, regex.");
    header["properties"]["suffix"] =
        json!({"type": "string", "format": "string", "description": "The value must end with this string."});
    header["oneOf"] = json!([
        {"required": ["exact"]}, {"required": ["prefix"]}, {"required": ["suffix"]}, {"required": ["regex"]}
    ]);
    let mut query = string_match("How the parameter value is compared: at most one of exact, prefix, regex.");
    query["oneOf"] = at_most_one_of(&["exact", "prefix", "regex"]);
    json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "description": "Conditions a request must meet to reach the canary; all conditions of one entry must hold.",
            "properties": {
                "headers": {
                    "type": "object",
                    "description": "Matches request headers by name (lower-case); `cookie` matches the Cookie header.",
                    "additionalProperties": header
                },
                "queryParams": {
                    "type": "object",
                    "description": "Matches query parameters by name.",
                    "additionalProperties": query
                },
                "sourceLabels": {
                    "type": "object",
                    "description": "Matches the labels of the calling workload; only with the `mesh` gateway.",
                    "additionalProperties": {"type": "string", "format": "string"}
                }
            }
        }
    })
}

/// A `oneOf` accepting objects with at most one of `fields`: none of them, or exactly one.
fn at_most_one_of(fields: &[&str]) -> Value {
    let each: Vec<Value> = fields.iter().map(|f| json!({"required": [f]})).collect();
    let mut branches = vec![json!({"not": {"anyOf": each.clone()}})];
    branches.extend(each);
    Value::Array(branches)
}

/// A rule that depends on where in the Canary schema a shared type is used.
struct PathRule {
    /// Dotted path from the root schema; `[]` steps into array items, e.g. `spec.service.match[]`.
    path: &'static str,
    /// Keys set on the schema at `path` (replacing what was there).
    set: fn() -> Value,
}

/// Location-dependent rules of the Canary schema.
const CANARY_RULES: &[PathRule] = &[
    PathRule {
        path: "spec.targetRef.kind",
        set: || json!({"enum": ["DaemonSet", "Deployment", "Service"]}),
    },
    PathRule {
        path: "spec.ingressRef.kind",
        set: || json!({"enum": ["Ingress"]}),
    },
    PathRule {
        path: "spec.routeRef.kind",
        set: || json!({"enum": ["ApisixRoute"]}),
    },
    PathRule {
        path: "spec.upstreamRef.kind",
        set: || json!({"enum": ["Upstream"]}),
    },
    PathRule {
        path: "spec.upstreamRef",
        set: || json!({"required": ["apiVersion", "kind", "name"]}),
    },
    PathRule {
        // kube's structural rewriter would hoist the properties of these branches, so this is added last.
        path: "spec.service.trafficPolicy.loadBalancer",
        set: || {
            json!({"oneOf": [
                {"required": ["simple"]},
                {
                    "properties": {"consistentHash": {"oneOf": [
                        {"required": ["httpHeaderName"]},
                        {"required": ["httpCookie"]},
                        {"required": ["useSourceIp"]},
                        {"required": ["httpQueryParameterName"]}
                    ]}},
                    "required": ["consistentHash"]
                }
            ]})
        },
    },
];

/// Makes a generated CRD (as JSON) match Flagger's: `listKind`, no `nullable` (Flagger's schemas have
/// none, and an explicit `null` is not a value Flagger accepts), no unsigned integer formats (not
/// OpenAPI formats), and the location-dependent rules of the Canary.
pub(crate) fn apply_flagger_rules(crd: &mut Value) {
    if let Some(names) = crd.pointer_mut("/spec/names")
        && let Some(kind) = names.get("kind").and_then(Value::as_str).map(str::to_owned)
    {
        names["listKind"] = Value::String(format!("{kind}List"));
    }
    let is_canary = crd.pointer("/spec/names/kind").and_then(Value::as_str) == Some("Canary");
    let Some(versions) = crd.pointer_mut("/spec/versions").and_then(Value::as_array_mut) else {
        return;
    };
    for version in versions {
        let Some(root) = version.pointer_mut("/schema/openAPIV3Schema") else {
            continue;
        };
        clean_schema(root);
        add_type_meta(root);
        if is_canary {
            for rule in CANARY_RULES {
                if let (Some(target), Value::Object(set)) = (schema_at(root, rule.path), (rule.set)()) {
                    merge(target, set);
                }
            }
        }
    }
}

/// Declares `apiVersion`, `kind` and `metadata` at the root, as every Kubernetes CRD schema does (kube's
/// generated root leaves them out).
fn add_type_meta(root: &mut Value) {
    let Some(Value::Object(props)) = root.get_mut("properties") else {
        return;
    };
    props.entry("apiVersion").or_insert_with(|| {
        json!({
            "type": "string",
            "description": "Versioned schema of this object (`flagger.app/v1beta1`)."
        })
    });
    props
        .entry("kind")
        .or_insert_with(|| json!({"type": "string", "description": "Kind of this object."}));
    props
        .entry("metadata")
        .or_insert_with(|| json!({"type": "object"}));
}

fn merge(target: &mut Value, set: Map<String, Value>) {
    if let Value::Object(target) = target {
        target.extend(set);
    }
}

/// The subschema at a dotted path (`a.b[]`: property `b` of property `a`, then its items).
fn schema_at<'a>(root: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut current = root;
    for segment in path.split('.') {
        let (name, items) = match segment.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (segment, false),
        };
        current = current.get_mut("properties")?.get_mut(name)?;
        if items {
            current = current.get_mut("items")?;
        }
    }
    Some(current)
}

/// Removes `nullable` and unsigned integer formats everywhere in a schema.
fn clean_schema(schema: &mut Value) {
    let Value::Object(obj) = schema else {
        return;
    };
    obj.remove("nullable");
    if obj
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f.starts_with("uint"))
    {
        obj.remove("format");
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.values_mut().for_each(clean_schema);
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = obj.get_mut(key) {
            clean_schema(sub);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(subs)) = obj.get_mut(key) {
            subs.iter_mut().for_each(clean_schema);
        }
    }
}
