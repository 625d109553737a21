//! SMI TrafficSplit router (`linkerd`, `osm`, `smi:<version>[:<mesh>]`), Flagger's `SmiRouter`,
//! `Smiv1alpha2Router` and `Smiv1alpha3Router` in one type parameterised by the API version.
//!
//! The TrafficSplit is named after the apex Service and lives in the canary's namespace:
//!
//! ```yaml
//! spec:
//!   service: <service.hosts[0] or apex>
//!   backends:
//!   - {service: <apex>-canary, weight: 0}
//!   - {service: <apex>-primary, weight: 100}
//! ```
//!
//! `v1alpha1` weights are Kubernetes quantities (`"100"`), `v1alpha2`/`v1alpha3` weights are integers.
//! Flagger's rules, kept here:
//!
//! - the object is created with a controller owner reference to the Canary and, when the target mesh is
//!   `istio` and `service.gateways` is set, the annotation [`ISTIO_GATEWAYS_ANNOTATION`];
//! - an existing object is updated only when its spec differs from the desired one **ignoring the weights**
//!   (as Go decodes it: unknown spec fields are not compared). The update replaces the whole spec, so the
//!   weights go back to canary 0 / primary 100 — Flagger does exactly that — and leaves metadata alone;
//! - `get_routes` reads the backends (the last backend of each name wins) and fails when both weights are 0;
//!   traffic is never mirrored;
//! - `set_routes` replaces the backends with the two weighted ones;
//! - `finalize` does nothing.
//!
//! Reads come from the watch cache, so an unchanged TrafficSplit costs no API request. Writes are a create
//! (POST) or an update (PUT guarded by the cached `resourceVersion`) of the whole spec, and a JSON merge
//! patch of `spec.backends` for the weights, all under the field manager [`FIELD_MANAGER`] and each after
//! checking the leader gate.

use std::collections::BTreeMap;

use flagger_api::Canary;
use flagger_core::machine::Routes;
use flagger_core::provider::{MeshProvider, SmiVersion};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams, TypeMeta,
};
use kube::core::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};

use super::{RouteCx, RouterError};

/// The API group of TrafficSplits.
pub const GROUP: &str = "split.smi-spec.io";
/// The kind.
pub const KIND: &str = "TrafficSplit";
/// The resource (plural) name.
pub const PLURAL: &str = "trafficsplits";
/// The field manager of every TrafficSplit write.
pub const FIELD_MANAGER: &str = "flagger/router";
/// The annotation that binds the TrafficSplit to Istio gateways (target mesh `istio` only).
pub const ISTIO_GATEWAYS_ANNOTATION: &str = "VirtualService.v1alpha3.networking.istio.io/spec.gateways";

/// The SMI router of one TrafficSplit API version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmiRouter {
    version: SmiVersion,
    /// Flagger's `targetMesh`; only `istio` changes anything.
    target_mesh: Option<String>,
}

impl SmiRouter {
    /// The router for `linkerd` (v1alpha1), `osm` (v1alpha2) or `smi:<version>[:<mesh>]`. Any other
    /// provider gets a v1alpha1 router without target mesh (the router enum never asks for one).
    pub fn for_provider(provider: &MeshProvider) -> Self {
        let (version, target_mesh) = match provider {
            MeshProvider::Linkerd => (SmiVersion::V1alpha1, Some("linkerd".to_owned())),
            MeshProvider::Osm => (SmiVersion::V1alpha2, Some("osm".to_owned())),
            MeshProvider::Smi { version, mesh } => (*version, mesh.clone()),
            _ => (SmiVersion::V1alpha1, None),
        };
        Self { version, target_mesh }
    }

    /// The TrafficSplit API version this router writes.
    pub fn version(&self) -> SmiVersion {
        self.version
    }

    /// Whether the target mesh is Istio (`smi:<version>:istio`).
    fn targets_istio(&self) -> bool {
        self.target_mesh.as_deref() == Some("istio")
    }

    /// The TrafficSplit Flagger creates for `canary`: name, namespace, gateway annotation, controller owner
    /// reference and the spec with all traffic on the primary.
    pub fn desired(&self, canary: &Canary) -> DynamicObject {
        let resource = api_resource(self.version);
        let gateways = canary.spec.service.gateways.as_deref().unwrap_or_default();
        let annotations = (self.targets_istio() && !gateways.is_empty())
            .then(|| BTreeMap::from([(ISTIO_GATEWAYS_ANNOTATION.to_owned(), go_json_strings(gateways))]));
        DynamicObject {
            types: Some(TypeMeta {
                api_version: resource.api_version,
                kind: resource.kind,
            }),
            metadata: ObjectMeta {
                name: Some(canary.service_name().to_owned()),
                namespace: canary.metadata.namespace.clone(),
                annotations,
                // Go's metav1.NewControllerRef also blocks the owner's deletion.
                owner_references: flagger_k8s::owner_reference(canary).map(|r| {
                    vec![OwnerReference {
                        block_owner_deletion: Some(true),
                        ..r
                    }]
                }),
                ..ObjectMeta::default()
            },
            data: json!({ "spec": desired_spec(self.version, canary) }),
        }
    }

    /// Creates the TrafficSplit, or updates its spec when it differs ignoring the weights. Nothing is sent
    /// when the cached object is already as desired.
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let apex = canary.service_name();
        let resource = api_resource(self.version);
        let store = cx.caches.dynamic(&resource, true).await?;
        let desired = self.desired(canary);
        let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, &resource);
        let cached = store.get(&ObjectRef::new_with(apex, resource.clone()).within(ns));
        let current = match cached {
            Some(current) => current.as_ref().clone(),
            None => {
                cx.gate.check()?;
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                };
                match api.create(&params, &desired).await {
                    Ok(_) => {
                        tracing::info!(canary = %canary.key(), "TrafficSplit {apex}.{ns} created");
                        return Ok(());
                    }
                    // The cache has not seen an object that exists: compare with the live one.
                    Err(kube::Error::Api(status)) if status.is_already_exists() => api
                        .get(apex)
                        .await
                        .map_err(RouterError::kube("read", KIND, ns, apex))?,
                    Err(e) => return Err(RouterError::kube("create", KIND, ns, apex)(e)),
                }
            }
        };
        self.update(cx, &api, current, &desired).await
    }

    /// Replaces the spec of `current` by the desired one when they differ ignoring the weights. A conflict
    /// (the cache was behind) is retried once against the live object.
    async fn update(
        &self,
        cx: &RouteCx<'_>,
        api: &Api<DynamicObject>,
        mut current: DynamicObject,
        desired: &DynamicObject,
    ) -> Result<(), RouterError> {
        let ns = namespace(cx.canary)?;
        let apex = cx.canary.service_name();
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let mut retried = false;
        loop {
            let differs = spec_differs(self.version, &desired.data, &current.data).map_err(|e| {
                RouterError::Invalid(format!("TrafficSplit {apex}.{ns} get query error: {e}"))
            })?;
            if !differs {
                return Ok(());
            }
            let mut next = current.clone();
            next.types = desired.types.clone();
            next.metadata.managed_fields = None;
            next.data["spec"] = desired.data["spec"].clone();
            cx.gate.check()?;
            match api.replace(apex, &params, &next).await {
                Ok(_) => {
                    tracing::info!(canary = %cx.canary.key(), "TrafficSplit {apex}.{ns} updated");
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.is_conflict() && !retried => {
                    retried = true;
                    current = api
                        .get(apex)
                        .await
                        .map_err(RouterError::kube("read", KIND, ns, apex))?;
                }
                Err(e) => return Err(RouterError::kube("update", KIND, ns, apex)(e)),
            }
        }
    }

    /// Reads the weights from the cached TrafficSplit.
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let apex = canary.service_name();
        let resource = api_resource(self.version);
        let store = cx.caches.dynamic(&resource, true).await?;
        match store.get(&ObjectRef::new_with(apex, resource.clone()).within(ns)) {
            Some(split) => Ok(read_routes(self.version, canary, &split)?),
            None => Err(RouterError::Invalid(format!(
                "TrafficSplit {apex}.{ns} get query error {PLURAL}.{GROUP} \"{apex}\" not found"
            ))),
        }
    }

    /// Writes the weights: `spec.backends` becomes the canary and the primary backend with `routes`'
    /// weights (mirroring is not supported and ignored).
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        let canary = cx.canary;
        let ns = namespace(canary)?;
        let apex = canary.service_name();
        let resource = api_resource(self.version);
        let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, &resource);
        let patch = json!({ "spec": { "backends": backends(self.version, canary, routes) } });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        cx.gate.check()?;
        api.patch(apex, &params, &Patch::Merge(&patch))
            .await
            .map_err(RouterError::kube("update", KIND, ns, apex))?;
        Ok(())
    }

    /// Nothing to restore: Flagger's SMI routers do not finalize.
    pub async fn finalize(&self, _cx: &RouteCx<'_>) -> Result<(), RouterError> {
        Ok(())
    }
}

/// The TrafficSplit resource of `version` (`split.smi-spec.io/<version>`, `trafficsplits`).
pub fn api_resource(version: SmiVersion) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, version.as_str(), KIND), PLURAL)
}

/// A TrafficSplit (or the canary) is not in the shape the router needs; the message is Flagger's where
/// Flagger has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SplitError(pub String);

impl From<SplitError> for RouterError {
    fn from(e: SplitError) -> Self {
        Self::Invalid(e.0)
    }
}

fn namespace(canary: &Canary) -> Result<&str, SplitError> {
    canary
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| SplitError(format!("Canary {} has no namespace", canary.key())))
}

/// The desired spec: `service` is `service.hosts[0]` (when there are hosts) or the apex name, and all
/// traffic goes to the primary. Serialised as Flagger's Go types do: `v1alpha1` and `v1alpha2` omit an
/// empty `service`, `v1alpha3` always writes it.
pub fn desired_spec(version: SmiVersion, canary: &Canary) -> Value {
    let host = match canary.spec.service.hosts.as_deref() {
        Some([first, ..]) => first.as_str(),
        _ => canary.service_name(),
    };
    let mut spec = serde_json::Map::new();
    if !host.is_empty() || version == SmiVersion::V1alpha3 {
        spec.insert("service".to_owned(), Value::from(host));
    }
    spec.insert("backends".to_owned(), backends(version, canary, Routes::PRIMARY));
    Value::Object(spec)
}

/// The two backends Flagger writes, canary first: `[{service: <apex>-canary, weight}, {service:
/// <apex>-primary, weight}]`.
pub fn backends(version: SmiVersion, canary: &Canary, routes: Routes) -> Value {
    json!([
        { "service": canary.canary_service_name(), "weight": weight_json(version, routes.canary) },
        { "service": canary.primary_service_name(), "weight": weight_json(version, routes.primary) },
    ])
}

/// A weight as Flagger serialises it: a quantity string for `v1alpha1` (`resource.NewQuantity(w,
/// DecimalExponent)`), an integer otherwise.
pub fn weight_json(version: SmiVersion, weight: i32) -> Value {
    match version {
        SmiVersion::V1alpha1 => Value::from(decimal_exponent_quantity(i64::from(weight))),
        SmiVersion::V1alpha2 | SmiVersion::V1alpha3 => Value::from(weight),
    }
}

/// The canonical string of a Go `resource.Quantity` holding the integer `value` in `DecimalExponent`
/// format: trailing zeros become an exponent that is a multiple of 3 (`0`, `60`, `100`, `1e3`, `10e3`).
pub fn decimal_exponent_quantity(value: i64) -> String {
    if value == 0 {
        return "0".to_owned();
    }
    let mut mantissa = value;
    let mut zeros = 0u32;
    while mantissa % 10 == 0 {
        mantissa /= 10;
        zeros += 1;
    }
    let exponent = zeros - zeros % 3;
    for _ in 0..zeros % 3 {
        mantissa *= 10;
    }
    if exponent == 0 {
        mantissa.to_string()
    } else {
        format!("{mantissa}e{exponent}")
    }
}

/// `strings` as Go's `json.Marshal` writes them (HTML-sensitive characters escaped).
pub fn go_json_strings(strings: &[String]) -> String {
    // Serialising strings cannot fail.
    flagger_core::hash::go_json(&strings).unwrap_or_default()
}

/// A string that is not a Kubernetes quantity (the errors of Go's `resource.ParseQuantity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not have the shape of a quantity.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    /// The number cannot be parsed.
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The suffix is not one of the known ones.
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// Parses `text` as Go's `resource.ParseQuantity` does and returns what `Quantity.AsInt64` would:
/// `Some(value)` for a quantity held exactly as an integer (`"100"`, `"1k"`, `"1Ki"`, `"1e2"`), `None`
/// when Go cannot convert it quickly (fractions such as `"100m"` or `"1.0"`, more than 18 digits, overflow)
/// — Flagger then reads the weight as 0.
pub fn quantity_as_int64(text: &str) -> Result<Option<i64>, QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Format);
    }
    if text == "0" {
        return Ok(Some(0));
    }
    let (positive, rest) = match text.as_bytes()[0] {
        b'-' => (false, &text[1..]),
        b'+' => (true, &text[1..]),
        _ => (true, text),
    };
    let rest = rest.trim_start_matches('0');
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, rest) = rest.split_at(digits(rest));
    let num = if num.is_empty() { "0" } else { num };
    let (denom, suffix) = match rest.strip_prefix('.') {
        Some(after) => after.split_at(digits(after)),
        None => ("", rest),
    };
    let letters = suffix.bytes().take_while(|c| b"eEinumkKMGTP".contains(c)).count();
    let tail = &suffix[letters..];
    let tail = tail.strip_prefix(['+', '-']).unwrap_or(tail);
    if !tail.bytes().all(|c| c.is_ascii_digit()) {
        return Err(QuantityError::Format);
    }
    let (binary, exponent) = suffix_exponent(suffix).ok_or(QuantityError::Suffix)?;

    let len = |s: &str| i32::try_from(s.len()).unwrap_or(i32::MAX);
    let (mut scale, precision, multiplier) = if !binary {
        (
            exponent,
            18i32.saturating_sub(len(num).saturating_add(len(denom))),
            1i64,
        )
    } else if exponent >= 0 && denom.is_empty() {
        // Go: 15 - len(num) - int32(float32(exponent)*3/10) - 1
        let approx = exponent * 3 / 10;
        (
            0,
            15i32
                .saturating_sub(len(num))
                .saturating_sub(approx)
                .saturating_sub(1),
            1i64 << exponent,
        )
    } else {
        (0, -1, 1)
    };
    if precision < 0 {
        return Ok(None);
    }
    scale -= len(denom);
    if scale < -9 {
        return Ok(None);
    }
    let value: i64 = format!("{num}{denom}")
        .parse()
        .map_err(|_| QuantityError::Numeric)?;
    let Some(amount) = value.checked_mul(multiplier) else {
        return Ok(None);
    };
    let amount = if positive { amount } else { -amount };
    // int64Amount.AsInt64: exact only for a non-negative scale.
    Ok(match scale {
        0 => Some(amount),
        s if s < 0 => None,
        s => (0..s).try_fold(amount, |v, _| v.checked_mul(10)),
    })
}

/// Go's quantity suffixes: `(binary, exponent)` of `""`, `n`…`E`, `Ki`…`Ei` and `e<n>`/`E<n>`.
fn suffix_exponent(suffix: &str) -> Option<(bool, i32)> {
    let decimal = match suffix {
        "n" => -9,
        "u" => -6,
        "m" => -3,
        "" => 0,
        "k" => 3,
        "M" => 6,
        "G" => 9,
        "T" => 12,
        "P" => 15,
        "E" => 18,
        "Ki" => return Some((true, 10)),
        "Mi" => return Some((true, 20)),
        "Gi" => return Some((true, 30)),
        "Ti" => return Some((true, 40)),
        "Pi" => return Some((true, 50)),
        "Ei" => return Some((true, 60)),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            // Go truncates the parsed int64 to int32.
            s[1..].parse::<i64>().ok()? as i32
        }
        _ => return None,
    };
    Some((false, decimal))
}

/// A TrafficSplit spec as Flagger's Go types decode it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Split {
    service: String,
    backends: Option<Vec<Backend>>,
    /// `v1alpha3` only; other versions do not know the field.
    matches: Option<Vec<Value>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Backend {
    service: String,
    /// `None` only for a `v1alpha1` backend without weight (a nil `*resource.Quantity`); a quantity Go
    /// cannot read as an integer is `Some(0)`.
    weight: Option<i64>,
}

impl Split {
    /// Decodes the `spec` of a TrafficSplit's data (everything but apiVersion, kind and metadata).
    fn decode(version: SmiVersion, data: &Value) -> Result<Self, String> {
        let spec = match data.get("spec") {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(spec)) => spec,
            Some(other) => return Err(format!("spec: expected an object, found {other}")),
        };
        let service = string_field(spec.get("service"), "spec.service")?;
        let backends = match spec.get("backends") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Backend::decode(version, item, i))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => return Err(format!("spec.backends: expected an array, found {other}")),
        };
        let matches = match spec.get("matches") {
            _ if version != SmiVersion::V1alpha3 => None,
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => return Err(format!("spec.matches: expected an array, found {other}")),
        };
        Ok(Self {
            service,
            backends,
            matches,
        })
    }

    /// Whether two specs are equal ignoring the weights (Go's `cmp.Diff` with the weights ignored: a nil
    /// and a set `v1alpha1` weight still differ).
    fn same_ignoring_weights(&self, other: &Self) -> bool {
        let same_backends = match (&self.backends, &other.backends) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(a, b)| a.service == b.service && a.weight.is_some() == b.weight.is_some())
            }
            _ => false,
        };
        self.service == other.service && same_backends && self.matches == other.matches
    }
}

impl Backend {
    fn decode(version: SmiVersion, item: &Value, index: usize) -> Result<Self, String> {
        let path = format!("spec.backends[{index}]");
        let backend = match item {
            // Go decodes null into the zero backend.
            Value::Null => {
                return Ok(Self {
                    service: String::new(),
                    weight: decode_weight(version, None, &path)?,
                });
            }
            Value::Object(backend) => backend,
            other => return Err(format!("{path}: expected an object, found {other}")),
        };
        Ok(Self {
            service: string_field(backend.get("service"), &format!("{path}.service"))?,
            weight: decode_weight(version, backend.get("weight"), &path)?,
        })
    }
}

/// A backend's weight as Go decodes it: a `*resource.Quantity` read with `AsInt64` for `v1alpha1`, an
/// `int` otherwise.
fn decode_weight(version: SmiVersion, weight: Option<&Value>, path: &str) -> Result<Option<i64>, String> {
    let quantity = |text: &str| {
        quantity_as_int64(text)
            .map(|w| Some(w.unwrap_or(0)))
            .map_err(|e| format!("{path}.weight: {e}"))
    };
    match (version, weight) {
        (SmiVersion::V1alpha1, None | Some(Value::Null)) => Ok(None),
        (SmiVersion::V1alpha1, Some(Value::String(s))) => quantity(s.trim()),
        (SmiVersion::V1alpha1, Some(Value::Number(n))) => match n.as_i64() {
            Some(n) => Ok(Some(n)),
            None => quantity(&n.to_string()),
        },
        (SmiVersion::V1alpha1, Some(other)) => {
            Err(format!("{path}.weight: cannot read {other} as a quantity"))
        }
        (_, None | Some(Value::Null)) => Ok(Some(0)),
        (_, Some(Value::Number(n))) if n.as_i64().is_some() => Ok(n.as_i64()),
        (_, Some(other)) => Err(format!("{path}.weight: cannot unmarshal {other} into an int")),
    }
}

fn string_field(value: Option<&Value>, path: &str) -> Result<String, String> {
    match value {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{path}: expected a string, found {other}")),
    }
}

/// Whether the spec of `current` (a TrafficSplit's data) differs from the `desired` one ignoring the
/// weights, as Flagger decides whether to update. `Err` when the current spec cannot be decoded.
pub fn spec_differs(version: SmiVersion, desired: &Value, current: &Value) -> Result<bool, String> {
    let desired = Split::decode(version, desired)?;
    let current = Split::decode(version, current)?;
    Ok(!desired.same_ignoring_weights(&current))
}

/// The weights of a TrafficSplit for `canary`: the weight of the last backend named `<apex>-primary` and
/// of the last named `<apex>-canary`. Flagger's error when both are 0 (or missing).
pub fn read_routes(
    version: SmiVersion,
    canary: &Canary,
    split: &DynamicObject,
) -> Result<Routes, SplitError> {
    let apex = canary.service_name();
    let ns = split.metadata.namespace.as_deref().unwrap_or_default();
    let (primary_name, canary_name) = (canary.primary_service_name(), canary.canary_service_name());
    let decoded = Split::decode(version, &split.data)
        .map_err(|e| SplitError(format!("TrafficSplit {apex}.{ns} get query error {e}")))?;
    let clamp = |w: i64| i32::try_from(w).unwrap_or(if w < 0 { i32::MIN } else { i32::MAX });
    let (mut primary, mut canary_weight) = (0, 0);
    for backend in decoded.backends.iter().flatten() {
        let weight = clamp(backend.weight.unwrap_or(0));
        if backend.service == primary_name {
            primary = weight;
        }
        if backend.service == canary_name {
            canary_weight = weight;
        }
    }
    if primary == 0 && canary_weight == 0 {
        return Err(SplitError(format!(
            "TrafficSplit {apex}.{ns} does not contain routes for {primary_name} and {canary_name}"
        )));
    }
    Ok(Routes {
        primary,
        canary: canary_weight,
        mirrored: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(service: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "5d1b4c4e-0000-4000-8000-000000000001"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": service,
            },
        }))
        .unwrap()
    }

    fn owner() -> Value {
        json!([{
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "name": "podinfo",
            "uid": "5d1b4c4e-0000-4000-8000-000000000001",
            "controller": true,
            "blockOwnerDeletion": true,
        }])
    }

    fn router(provider: &str) -> SmiRouter {
        SmiRouter::for_provider(&MeshProvider::parse(provider).unwrap())
    }

    fn desired_json(provider: &str, canary: &Canary) -> Value {
        serde_json::to_value(router(provider).desired(canary)).unwrap()
    }

    fn split(data: Value) -> DynamicObject {
        let mut obj: DynamicObject = serde_json::from_value(data).unwrap();
        obj.metadata.namespace = Some("test".into());
        obj
    }

    #[test]
    fn providers_select_the_version_and_target_mesh() {
        assert_eq!(router("linkerd").version(), SmiVersion::V1alpha1);
        assert_eq!(router("osm").version(), SmiVersion::V1alpha2);
        assert_eq!(router("smi:v1alpha1").version(), SmiVersion::V1alpha1);
        assert_eq!(router("smi:v1alpha2:istio").version(), SmiVersion::V1alpha2);
        assert_eq!(router("smi:v1alpha3:istio").version(), SmiVersion::V1alpha3);
        assert!(router("smi:v1alpha3:istio").targets_istio());
        assert!(!router("smi:v1alpha3").targets_istio());
        // Flagger trims the prefix `smi:v1alpha3:` only: `smi:v1alpha3istio` is not the istio mesh.
        assert!(!router("smi:v1alpha3istio").targets_istio());
        assert!(!router("linkerd").targets_istio());
    }

    #[test]
    fn the_resource_of_each_version() {
        let r = api_resource(SmiVersion::V1alpha2);
        assert_eq!(r.api_version, "split.smi-spec.io/v1alpha2");
        assert_eq!(r.kind, "TrafficSplit");
        assert_eq!(r.plural, "trafficsplits");
        assert_eq!(api_resource(SmiVersion::V1alpha1).version, "v1alpha1");
        assert_eq!(api_resource(SmiVersion::V1alpha3).version, "v1alpha3");
    }

    #[test]
    fn linkerd_writes_a_v1alpha1_split_with_quantity_weights() {
        let c = canary(json!({"port": 9898}));
        assert_eq!(
            desired_json("linkerd", &c),
            json!({
                "apiVersion": "split.smi-spec.io/v1alpha1",
                "kind": "TrafficSplit",
                "metadata": {"name": "podinfo", "namespace": "test", "ownerReferences": owner()},
                "spec": {
                    "service": "podinfo",
                    "backends": [
                        {"service": "podinfo-canary", "weight": "0"},
                        {"service": "podinfo-primary", "weight": "100"},
                    ],
                },
            })
        );
    }

    #[test]
    fn osm_writes_a_v1alpha2_split_with_integer_weights_named_after_the_apex_service() {
        let c = canary(json!({"port": 9898, "name": "frontend", "hosts": ["app.example.com", "other"]}));
        assert_eq!(
            desired_json("osm", &c),
            json!({
                "apiVersion": "split.smi-spec.io/v1alpha2",
                "kind": "TrafficSplit",
                "metadata": {"name": "frontend", "namespace": "test", "ownerReferences": owner()},
                "spec": {
                    "service": "app.example.com",
                    "backends": [
                        {"service": "frontend-canary", "weight": 0},
                        {"service": "frontend-primary", "weight": 100},
                    ],
                },
            })
        );
    }

    #[test]
    fn v1alpha3_always_writes_the_service_and_v1alpha1_2_omit_an_empty_one() {
        // hosts[0] is used even when empty, as Flagger does; Go's omitempty then drops it in v1alpha1/2.
        let c = canary(json!({"port": 9898, "hosts": [""]}));
        assert_eq!(desired_json("smi:v1alpha3", &c)["spec"]["service"], json!(""));
        assert!(desired_json("smi:v1alpha2", &c)["spec"].get("service").is_none());
        assert!(desired_json("linkerd", &c)["spec"].get("service").is_none());
        let spec = desired_json("smi:v1alpha3", &canary(json!({"port": 80})))["spec"].clone();
        assert_eq!(
            spec,
            json!({
                "service": "podinfo",
                "backends": [
                    {"service": "podinfo-canary", "weight": 0},
                    {"service": "podinfo-primary", "weight": 100},
                ],
            })
        );
    }

    #[test]
    fn the_istio_gateways_annotation_only_for_the_istio_mesh_with_gateways() {
        let with_gateways = canary(json!({"port": 80, "gateways": ["istio-system/public", "mesh"]}));
        for provider in ["smi:v1alpha1:istio", "smi:v1alpha2:istio", "smi:v1alpha3:istio"] {
            assert_eq!(
                desired_json(provider, &with_gateways)["metadata"]["annotations"],
                json!({ISTIO_GATEWAYS_ANNOTATION: "[\"istio-system/public\",\"mesh\"]"}),
                "{provider}"
            );
        }
        for provider in ["linkerd", "osm", "smi:v1alpha3", "smi:v1alpha3:linkerd"] {
            assert!(
                desired_json(provider, &with_gateways)["metadata"]
                    .get("annotations")
                    .is_none(),
                "{provider}"
            );
        }
        let empty = canary(json!({"port": 80, "gateways": []}));
        assert!(
            desired_json("smi:v1alpha3:istio", &empty)["metadata"]
                .get("annotations")
                .is_none()
        );
        assert!(
            desired_json("smi:v1alpha3:istio", &canary(json!({"port": 80})))["metadata"]
                .get("annotations")
                .is_none()
        );
    }

    #[test]
    fn gateways_are_encoded_like_go_json_marshal() {
        let g = |v: &[&str]| go_json_strings(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(g(&["a", "b/c"]), r#"["a","b/c"]"#);
        assert_eq!(g(&["<a>&\"q\""]), r#"["\u003ca\u003e\u0026\"q\""]"#);
        assert_eq!(g(&["\u{2028}"]), r#"["\u2028"]"#);
    }

    #[test]
    fn without_uid_there_is_no_owner_reference() {
        let mut c = canary(json!({"port": 80}));
        c.metadata.uid = None;
        assert!(
            desired_json("linkerd", &c)["metadata"]
                .get("ownerReferences")
                .is_none()
        );
        c.metadata.namespace = None;
        assert_eq!(
            namespace(&c),
            Err(SplitError("Canary podinfo. has no namespace".into()))
        );
    }

    #[test]
    fn weights_are_serialised_like_go_quantities_or_ints() {
        let c = canary(json!({"port": 80}));
        let routes = Routes {
            primary: 60,
            canary: 40,
            mirrored: true,
        };
        assert_eq!(
            backends(SmiVersion::V1alpha1, &c, routes),
            json!([{"service": "podinfo-canary", "weight": "40"}, {"service": "podinfo-primary", "weight": "60"}])
        );
        assert_eq!(
            backends(SmiVersion::V1alpha2, &c, routes),
            json!([{"service": "podinfo-canary", "weight": 40}, {"service": "podinfo-primary", "weight": 60}])
        );
        for (value, text) in [
            (0, "0"),
            (5, "5"),
            (10, "10"),
            (60, "60"),
            (100, "100"),
            (1000, "1e3"),
            (10_000, "10e3"),
            (120_000, "120e3"),
            (-100, "-100"),
            (-2000, "-2e3"),
        ] {
            assert_eq!(decimal_exponent_quantity(value), text, "{value}");
        }
    }

    #[test]
    fn quantities_read_like_go_as_int64() {
        for (text, expected) in [
            ("0", Some(0)),
            ("100", Some(100)),
            ("060", Some(60)),
            ("+7", Some(7)),
            ("-5", Some(-5)),
            ("000", Some(0)),
            ("1k", Some(1000)),
            ("1e2", Some(100)),
            ("1E2", Some(100)),
            ("10e3", Some(10_000)),
            ("1Ki", Some(1024)),
            ("3Mi", Some(3 << 20)),
            ("100m", None),
            ("1.0", None),
            ("0.5", None),
            ("1.5Ki", None),
            ("1e-1", None),
            ("100000000000000000", Some(100_000_000_000_000_000)),
            ("1000000000000000000", None),
            ("9E", Some(9_000_000_000_000_000_000)),
            ("10E", None),
            ("9P", Some(9_000_000_000_000_000)),
        ] {
            assert_eq!(quantity_as_int64(text), Ok(expected), "{text}");
        }
        for (text, err) in [
            ("", QuantityError::Format),
            ("abc", QuantityError::Format),
            ("1x", QuantityError::Format),
            ("1.5.5", QuantityError::Format),
            ("1e", QuantityError::Suffix),
            ("1Ka", QuantityError::Format),
            ("1Kn", QuantityError::Suffix),
            ("1kk", QuantityError::Suffix),
        ] {
            assert_eq!(quantity_as_int64(text), Err(err), "{text}");
        }
    }

    #[test]
    fn routes_are_read_from_the_backends() {
        let c = canary(json!({"port": 80}));
        let v1 = split(json!({"metadata": {"name": "podinfo"}, "spec": {"backends": [
            {"service": "podinfo-canary", "weight": "40"},
            {"service": "podinfo-primary", "weight": 60},
            {"service": "other", "weight": "1"},
        ]}}));
        assert_eq!(
            read_routes(SmiVersion::V1alpha1, &c, &v1).unwrap(),
            Routes {
                primary: 60,
                canary: 40,
                mirrored: false
            }
        );
        let v2 = split(json!({"metadata": {"name": "podinfo"}, "spec": {"backends": [
            {"service": "podinfo-primary", "weight": 100},
            {"service": "podinfo-canary"},
        ]}}));
        assert_eq!(
            read_routes(SmiVersion::V1alpha3, &c, &v2).unwrap(),
            Routes::PRIMARY
        );
        // A fraction is read as 0 (Go's AsInt64 fails), so is a missing weight.
        let fraction = split(json!({"metadata": {"name": "podinfo"}, "spec": {"backends": [
            {"service": "podinfo-primary", "weight": "99500m"},
            {"service": "podinfo-canary", "weight": "100"},
        ]}}));
        assert_eq!(
            read_routes(SmiVersion::V1alpha1, &c, &fraction).unwrap().primary,
            0
        );
    }

    #[test]
    fn routes_without_weights_fail_with_flaggers_message() {
        let c = canary(json!({"port": 80}));
        let message =
            "TrafficSplit podinfo.test does not contain routes for podinfo-primary and podinfo-canary";
        for data in [
            json!({"metadata": {"name": "podinfo"}, "spec": {"backends": [
                {"service": "podinfo-canary", "weight": "0"}, {"service": "podinfo-primary", "weight": "0"}]}}),
            json!({"metadata": {"name": "podinfo"}, "spec": {"backends": [{"service": "other", "weight": "100"}]}}),
            json!({"metadata": {"name": "podinfo"}, "spec": {}}),
            json!({"metadata": {"name": "podinfo"}}),
        ] {
            match read_routes(SmiVersion::V1alpha1, &c, &split(data)) {
                Err(SplitError(m)) => assert_eq!(m, message),
                other => panic!("expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn undecodable_weights_fail_the_read() {
        let c = canary(json!({"port": 80}));
        let bad = split(json!({"metadata": {"name": "podinfo"}, "spec": {"backends": [
            {"service": "podinfo-primary", "weight": "60"}]}}));
        match read_routes(SmiVersion::V1alpha2, &c, &bad) {
            Err(SplitError(m)) => {
                assert!(m.starts_with("TrafficSplit podinfo.test get query error "), "{m}")
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let bad_quantity = split(json!({"metadata": {"name": "podinfo"}, "spec": {"backends": [
            {"service": "podinfo-primary", "weight": "lots"}]}}));
        assert!(read_routes(SmiVersion::V1alpha1, &c, &bad_quantity).is_err());
    }

    #[test]
    fn updates_are_needed_only_when_the_spec_differs_ignoring_weights() {
        let c = canary(json!({"port": 80}));
        for version in [SmiVersion::V1alpha1, SmiVersion::V1alpha2, SmiVersion::V1alpha3] {
            let desired = json!({ "spec": desired_spec(version, &c) });
            assert!(!spec_differs(version, &desired, &desired).unwrap());
            let mut moved = desired.clone();
            moved["spec"]["backends"] = backends(
                version,
                &c,
                Routes {
                    primary: 30,
                    canary: 70,
                    mirrored: false,
                },
            );
            // Fields Go does not know are not compared.
            moved["spec"]["somethingElse"] = json!(true);
            assert!(!spec_differs(version, &desired, &moved).unwrap(), "{version:?}");

            let mut other_service = desired.clone();
            other_service["spec"]["service"] = json!("podinfo.example.com");
            assert!(spec_differs(version, &desired, &other_service).unwrap());

            let mut swapped = desired.clone();
            swapped["spec"]["backends"] = json!([
                desired["spec"]["backends"][1].clone(),
                desired["spec"]["backends"][0].clone()
            ]);
            assert!(spec_differs(version, &desired, &swapped).unwrap());

            let mut extra = desired.clone();
            extra["spec"]["backends"]
                .as_array_mut()
                .unwrap()
                .push(json!({"service": "x", "weight": 0}));
            assert!(spec_differs(version, &desired, &extra).unwrap());

            assert!(spec_differs(version, &desired, &json!({})).unwrap());
        }
        // v1alpha1: a backend without weight (a nil quantity) differs from one with a weight.
        let desired = json!({ "spec": desired_spec(SmiVersion::V1alpha1, &c) });
        let mut unweighted = desired.clone();
        unweighted["spec"]["backends"][0]
            .as_object_mut()
            .unwrap()
            .remove("weight");
        assert!(spec_differs(SmiVersion::V1alpha1, &desired, &unweighted).unwrap());
        let desired2 = json!({ "spec": desired_spec(SmiVersion::V1alpha2, &c) });
        let mut unweighted2 = desired2.clone();
        unweighted2["spec"]["backends"][0]
            .as_object_mut()
            .unwrap()
            .remove("weight");
        assert!(!spec_differs(SmiVersion::V1alpha2, &desired2, &unweighted2).unwrap());

        // v1alpha3 knows `matches`: any value (even an empty list) differs from none; other versions ignore it.
        let desired3 = json!({ "spec": desired_spec(SmiVersion::V1alpha3, &c) });
        let mut matched = desired3.clone();
        matched["spec"]["matches"] = json!([]);
        assert!(spec_differs(SmiVersion::V1alpha3, &desired3, &matched).unwrap());
        matched["spec"]["matches"] = json!(null);
        assert!(!spec_differs(SmiVersion::V1alpha3, &desired3, &matched).unwrap());
        let mut matched2 = desired2.clone();
        matched2["spec"]["matches"] = json!([{"kind": "HTTPRouteGroup", "name": "x"}]);
        assert!(!spec_differs(SmiVersion::V1alpha2, &desired2, &matched2).unwrap());

        let mut broken = desired2.clone();
        broken["spec"]["service"] = json!(7);
        assert!(spec_differs(SmiVersion::V1alpha2, &desired2, &broken).is_err());
    }
}
