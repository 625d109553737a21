//! Routers: how traffic is split between the primary and the canary, one module per provider.
//!
//! A router has Flagger's four operations: [`AnyRouter::reconcile`] creates or takes over the routing
//! objects (a no-op when the watch cache already shows them as desired), [`AnyRouter::get_routes`] reads
//! the current weights (from the watch cache), [`AnyRouter::set_routes`] applies new weights and
//! [`AnyRouter::finalize`] restores what a user had before (revertOnDeletion). Routers are chosen by
//! [`AnyRouter::for_provider`], an enum rather than a string factory.
//!
//! Every write goes through [`RouteCx::gate`], so a process that lost the leader lease writes nothing.

pub mod apisix;
pub mod appmesh;
pub mod contour;
pub mod cookies;
pub mod gatewayapi;
pub mod gloo;
pub mod istio;
pub mod knative;
pub mod kubernetes;
pub mod kuma;
pub mod nginx;
pub mod skipper;
pub mod smi;
pub mod takeover;
pub mod traefik;

use flagger_api::Canary;
use flagger_core::machine::Routes;
use flagger_core::provider::MeshProvider;
use kube::Client;

use crate::cache::{CacheError, Caches};
use crate::gate::{NotLeader, WriteGate};

/// What a router works with.
pub struct RouteCx<'a> {
    /// The API client (writes).
    pub client: &'a Client,
    /// The watch caches (reads).
    pub caches: &'a Caches,
    /// The canary being routed.
    pub canary: &'a Canary,
    /// The leader gate: check it before every write.
    pub gate: &'a WriteGate,
}

/// A router operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// An API request failed.
    #[error("{action} {kind} {namespace}/{name}: {source}")]
    Kube {
        /// What was being done (`create`, `update`, `read`).
        action: &'static str,
        /// The kind of object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The kind cannot be watched (its CRD is missing).
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The routing object is not in the shape the router needs (Flagger's messages, e.g. `TrafficSplit
    /// podinfo.test does not contain routes for podinfo-primary and podinfo-canary`).
    #[error("{0}")]
    Invalid(String),
    /// The process lost leadership.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
}

impl RouterError {
    /// For `map_err`: the error of a failed API request (`action`) on the `kind` object `namespace/name`.
    pub fn kube(
        action: &'static str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> Self {
        let (kind, namespace, name) = (kind.to_owned(), namespace.to_owned(), name.to_owned());
        move |source| Self::Kube {
            action,
            kind,
            namespace,
            name,
            source,
        }
    }

    /// Whether trying again later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kube { source, .. } => match source {
                kube::Error::Api(status) => matches!(status.code, 409 | 429) || status.code >= 500,
                _ => true,
            },
            Self::Cache(_) | Self::Invalid(_) => true,
            Self::NotLeader(_) => false,
        }
    }
}

/// The router of one provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyRouter {
    /// `kubernetes`: no routing objects; traffic switches at promotion.
    Kubernetes,
    /// `knative`: the traffic of a Knative Service.
    Knative,
    /// `linkerd`, `osm`, `smi:*`: an SMI TrafficSplit.
    Smi(smi::SmiRouter),
    /// `gatewayapi:v1`, `gatewayapi:v1beta1`: a Gateway API HTTPRoute.
    GatewayApi(gatewayapi::GatewayApiRouter),
    /// `istio`: an Istio VirtualService and two DestinationRules.
    Istio,
    /// `traefik`: a Traefik TraefikService.
    Traefik(traefik::TraefikRouter),
    /// `kuma`: a Kuma TrafficRoute.
    Kuma(kuma::KumaRouter),
    /// `apisix`: an APISIX ApisixRoute.
    Apisix(apisix::ApisixRouter),
    /// `gloo*`: Gloo Upstreams and a RouteTable.
    Gloo(gloo::GlooRouter),
    /// `appmesh:v1beta2*`, `appmesh`: App Mesh virtual nodes, routers and services.
    AppMesh(appmesh::AppMeshRouter),
    /// `nginx`: the canary Ingress of the NGINX ingress controller.
    Nginx(nginx::NginxRouter),
    /// `skipper`: the canary Ingress of Skipper.
    Skipper(skipper::SkipperRouter),
    /// `contour`: a Contour HTTPProxy.
    Contour(contour::ContourRouter),
}

impl AnyRouter {
    /// The router for a provider.
    pub fn for_provider(provider: &MeshProvider) -> Self {
        Self::with_options(provider, &RouterOptions::default())
    }

    /// The router for a provider, with the operator's ingress flags.
    pub fn with_options(provider: &MeshProvider, ingress: &RouterOptions) -> Self {
        match provider {
            MeshProvider::Kubernetes => Self::Kubernetes,
            MeshProvider::Istio => Self::Istio,
            MeshProvider::Knative => Self::Knative,
            MeshProvider::Linkerd | MeshProvider::Osm | MeshProvider::Smi { .. } => {
                Self::Smi(smi::SmiRouter::for_provider(provider))
            }
            MeshProvider::GatewayApiV1 => {
                Self::GatewayApi(gatewayapi::GatewayApiRouter::new(gatewayapi::RouteVersion::V1))
            }
            MeshProvider::GatewayApiV1beta1 => Self::GatewayApi(gatewayapi::GatewayApiRouter::new(
                gatewayapi::RouteVersion::V1beta1,
            )),
            MeshProvider::Traefik => Self::Traefik(traefik::TraefikRouter),
            MeshProvider::Kuma => Self::Kuma(kuma::KumaRouter),
            MeshProvider::Apisix => Self::Apisix(apisix::ApisixRouter),
            MeshProvider::Gloo => Self::Gloo(gloo::GlooRouter),
            MeshProvider::AppMesh | MeshProvider::AppMeshV1beta2 => {
                let version = if *provider == MeshProvider::AppMeshV1beta2 {
                    appmesh::AppMeshVersion::V1beta2
                } else {
                    appmesh::AppMeshVersion::V1beta1
                };
                Self::AppMesh(
                    appmesh::AppMeshRouter::new(version)
                        .with_selector_labels(ingress.selector_labels.clone()),
                )
            }
            MeshProvider::Nginx => Self::Nginx(nginx::NginxRouter::new(&ingress.annotations_prefix)),
            MeshProvider::Skipper => Self::Skipper(skipper::SkipperRouter),
            MeshProvider::Contour => Self::Contour(contour::ContourRouter::new(&ingress.class)),
        }
    }

    /// Creates or takes over the routing objects.
    pub async fn reconcile(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        match self {
            Self::Kubernetes => Ok(()),
            Self::Knative => knative::reconcile(cx).await,
            Self::Smi(r) => r.reconcile(cx).await,
            Self::GatewayApi(r) => r.reconcile(cx).await,
            Self::Istio => istio::reconcile(cx).await,
            Self::Nginx(r) => r.reconcile(cx).await,
            Self::Skipper(r) => r.reconcile(cx).await,
            Self::Contour(r) => r.reconcile(cx).await,
            Self::AppMesh(r) => r.reconcile(cx).await,
            Self::Traefik(r) => r.reconcile(cx).await,
            Self::Kuma(r) => r.reconcile(cx).await,
            Self::Apisix(r) => r.reconcile(cx).await,
            Self::Gloo(r) => r.reconcile(cx).await,
        }
    }

    /// The current weights.
    pub async fn get_routes(&self, cx: &RouteCx<'_>) -> Result<Routes, RouterError> {
        match self {
            Self::Kubernetes => Ok(kubernetes::get_routes(cx.canary)),
            Self::Knative => knative::get_routes(cx).await,
            Self::Smi(r) => r.get_routes(cx).await,
            Self::GatewayApi(r) => r.get_routes(cx).await,
            Self::Istio => istio::get_routes(cx).await,
            Self::Nginx(r) => r.get_routes(cx).await,
            Self::Skipper(r) => r.get_routes(cx).await,
            Self::Contour(r) => r.get_routes(cx).await,
            Self::AppMesh(r) => r.get_routes(cx).await,
            Self::Traefik(r) => r.get_routes(cx).await,
            Self::Kuma(r) => r.get_routes(cx).await,
            Self::Apisix(r) => r.get_routes(cx).await,
            Self::Gloo(r) => r.get_routes(cx).await,
        }
    }

    /// Applies weights.
    pub async fn set_routes(&self, cx: &RouteCx<'_>, routes: Routes) -> Result<(), RouterError> {
        match self {
            Self::Kubernetes => Ok(()),
            Self::Knative => knative::set_routes(cx, routes).await,
            Self::Smi(r) => r.set_routes(cx, routes).await,
            Self::GatewayApi(r) => r.set_routes(cx, routes).await,
            Self::Istio => istio::set_routes(cx, routes).await,
            Self::Nginx(r) => r.set_routes(cx, routes).await,
            Self::Skipper(r) => r.set_routes(cx, routes).await,
            Self::Contour(r) => r.set_routes(cx, routes).await,
            Self::AppMesh(r) => r.set_routes(cx, routes).await,
            Self::Traefik(r) => r.set_routes(cx, routes).await,
            Self::Kuma(r) => r.set_routes(cx, routes).await,
            Self::Apisix(r) => r.set_routes(cx, routes).await,
            Self::Gloo(r) => r.set_routes(cx, routes).await,
        }
    }

    /// Restores the routing a user had before the canary (revertOnDeletion).
    pub async fn finalize(&self, cx: &RouteCx<'_>) -> Result<(), RouterError> {
        match self {
            Self::Kubernetes => Ok(()),
            Self::Knative => knative::finalize(cx).await,
            Self::Smi(r) => r.finalize(cx).await,
            Self::GatewayApi(r) => r.finalize(cx).await,
            Self::Istio => istio::finalize(cx).await,
            Self::Nginx(r) => r.finalize(cx).await,
            Self::Skipper(r) => r.finalize(cx).await,
            Self::Contour(r) => r.finalize(cx).await,
            Self::AppMesh(r) => r.finalize(cx).await,
            Self::Traefik(r) => r.finalize(cx).await,
            Self::Kuma(r) => r.finalize(cx).await,
            Self::Apisix(r) => r.finalize(cx).await,
            Self::Gloo(r) => r.finalize(cx).await,
        }
    }
}

/// The path prefix a route matches (App Mesh, Contour): `service.match[0].uri.prefix`, or `/`.
pub(crate) fn route_prefix(canary: &Canary) -> String {
    canary
        .spec
        .service
        .match_
        .as_deref()
        .and_then(|m| m.first())
        .and_then(|m| m.uri.as_ref())
        .and_then(|u| u.prefix.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_owned())
}

/// The operator flags routers need: `-ingress-annotations-prefix` (NGINX), `-ingress-class` (Contour) and
/// `-selector-labels` (App Mesh's pod selectors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterOptions {
    /// `-ingress-annotations-prefix` (NGINX).
    pub annotations_prefix: String,
    /// `-ingress-class` (Contour's `spec.ingressClassName`; empty: not set).
    pub class: String,
    /// `-selector-labels`, in order of preference.
    pub selector_labels: Vec<String>,
}

impl Default for RouterOptions {
    /// Flagger's defaults.
    fn default() -> Self {
        Self {
            annotations_prefix: nginx::DEFAULT_ANNOTATIONS_PREFIX.to_owned(),
            class: String::new(),
            selector_labels: flagger_core::primary::WorkloadOptions::default().selector_labels,
        }
    }
}

impl RouterOptions {
    /// The router flags of an operator's settings.
    pub fn from_config(config: &crate::config::ControllerConfig) -> Self {
        Self {
            annotations_prefix: config.ingress_annotations_prefix.clone(),
            class: config.ingress_class.clone(),
            selector_labels: config.workload.selector_labels.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_select_the_router_and_its_version() {
        let router = |p: &str| AnyRouter::for_provider(&MeshProvider::parse(p).unwrap());
        let appmesh = |p| match router(p) {
            AnyRouter::AppMesh(r) => Some(r.version()),
            _ => None,
        };
        assert_eq!(appmesh("appmesh:v1beta2"), Some(appmesh::AppMeshVersion::V1beta2));
        assert_eq!(
            appmesh("appmesh:v1beta2x"),
            Some(appmesh::AppMeshVersion::V1beta2)
        );
        assert_eq!(appmesh("appmesh"), Some(appmesh::AppMeshVersion::V1beta1));
        assert_eq!(appmesh("linkerd"), None);
        let gateway = |p| match router(p) {
            AnyRouter::GatewayApi(r) => Some(r.version()),
            _ => None,
        };
        assert_eq!(gateway("gatewayapi:v1"), Some(gatewayapi::RouteVersion::V1));
        assert_eq!(
            gateway("gatewayapi:v1beta1"),
            Some(gatewayapi::RouteVersion::V1beta1)
        );
        assert_eq!(gateway("linkerd"), None);
    }
}
