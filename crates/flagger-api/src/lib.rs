//! The `flagger.app/v1beta1` API: [`Canary`], [`MetricTemplate`] and [`AlertProvider`], wire-compatible
//! with Flagger 1.44, and their CustomResourceDefinitions.
//!
//! Field names, enums and validation rules follow Flagger's CRDs exactly. Optional fields are `Option`s
//! that are skipped when unset, so reading a manifest and writing it back gives the same JSON; defaults
//! live in accessor methods (e.g. [`CanaryAnalysis::interval`], [`Canary::progress_deadline_seconds`]).
//!
//! The CRDs are generated from these types by [`crds`] (YAML: [`crds_yaml`]); `deploy/crds.yaml` holds the
//! committed copy.

mod alert;
mod canary;
mod duration;
pub mod gateway;
pub mod istio;
mod metric;
pub mod schema;
mod status;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use alert::*;
pub use canary::*;
pub use metric::*;
pub use status::*;

/// The API group of all three resources.
pub const GROUP: &str = "flagger.app";
/// The API version of all three resources.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` of all three resources.
pub const API_VERSION: &str = "flagger.app/v1beta1";

/// The three CRDs, in a stable order: Canary, MetricTemplate, AlertProvider.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [Canary::crd(), MetricTemplate::crd(), AlertProvider::crd()]
        .into_iter()
        .map(flaggerize)
        .collect()
}

/// The three CRDs as one multi-document YAML stream (what `flagger crds` prints and `deploy/crds.yaml`
/// holds).
pub fn crds_yaml() -> String {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        // A CRD is plain data (maps, lists, strings, numbers), which always serialises.
        out.push_str(&serde_saphyr::to_string(&crd).expect("a CRD serialises to YAML"));
    }
    out
}

/// Applies [`schema::apply_flagger_rules`] to a generated CRD.
fn flaggerize(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let mut value = serde_json::to_value(&crd).expect("a CRD serialises to JSON");
    schema::apply_flagger_rules(&mut value);
    serde_json::from_value(value)
        .unwrap_or_else(|e| panic!("the schema rules of {name} produce a valid CRD: {e}"))
}
