//! Provider names: the traffic (mesh/ingress) providers of `spec.provider` and `-mesh-provider`, the metric
//! providers of `MetricTemplate.spec.provider.type`, and the alert providers of `AlertProvider.spec.type`.
//!
//! Flagger matches mesh provider strings in its router factory partly by prefix (`appmesh:v1beta2…`,
//! `smi:v1alphaN…`, `gloo…`, `gatewayapi:v1beta1…`, `gatewayapi:v1…`) and sends every string it does not
//! recognise to Istio with only a log line. [`MeshProvider::parse`] applies the same rules but reports an
//! unrecognised string as an error instead.

use std::fmt;

/// An SMI `TrafficSplit` API version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SmiVersion {
    /// `split.smi-spec.io/v1alpha1`
    V1alpha1,
    /// `split.smi-spec.io/v1alpha2`
    V1alpha2,
    /// `split.smi-spec.io/v1alpha3`
    V1alpha3,
}

impl SmiVersion {
    /// The version as written in provider strings, e.g. `v1alpha2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1alpha1 => "v1alpha1",
            Self::V1alpha2 => "v1alpha2",
            Self::V1alpha3 => "v1alpha3",
        }
    }
}

/// The traffic management provider that routes a canary's traffic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MeshProvider {
    /// `apisix`: Apache APISIX `ApisixRoute`.
    Apisix,
    /// `appmesh`: AWS App Mesh `appmesh.k8s.aws/v1beta1`.
    AppMesh,
    /// `appmesh:v1beta2` (and any string starting with it): AWS App Mesh `appmesh.k8s.aws/v1beta2`.
    AppMeshV1beta2,
    /// `contour`: Contour `HTTPProxy`.
    Contour,
    /// `gatewayapi:v1` (and any other string starting with it except `gatewayapi:v1beta1…`): Gateway API
    /// `HTTPRoute` `v1`.
    GatewayApiV1,
    /// `gatewayapi:v1beta1` (and any string starting with it): Gateway API `HTTPRoute` `v1beta1`.
    GatewayApiV1beta1,
    /// `gloo` (and any string starting with it): Gloo Edge `RouteTable` and `Upstream`s.
    Gloo,
    /// `istio`: Istio `VirtualService` and `DestinationRule`s.
    Istio,
    /// `knative`: the traffic block of a Knative `Service`.
    Knative,
    /// `kubernetes`: no traffic routing (blue/green only).
    Kubernetes,
    /// `kuma`: Kuma `TrafficRoute`.
    Kuma,
    /// `linkerd`: SMI `TrafficSplit` v1alpha1 for Linkerd.
    Linkerd,
    /// `nginx`: a canary NGINX `Ingress`.
    Nginx,
    /// `osm`: SMI `TrafficSplit` v1alpha2 for Open Service Mesh.
    Osm,
    /// `skipper`: a canary Skipper `Ingress`.
    Skipper,
    /// `smi:<version>` or `smi:<version>:<mesh>`: an SMI `TrafficSplit` of that version.
    Smi {
        /// The `TrafficSplit` API version.
        version: SmiVersion,
        /// The mesh named after the version, as in `smi:v1alpha3:istio`.
        mesh: Option<String>,
    },
    /// `traefik`: Traefik `TraefikService`.
    Traefik,
}

/// The exact provider values the Canary CRD accepts in `spec.provider`.
pub const CANARY_PROVIDER_VALUES: [&str; 19] = [
    "apisix",
    "appmesh",
    "appmesh:v1beta2",
    "contour",
    "gatewayapi:v1",
    "gatewayapi:v1beta1",
    "gloo",
    "istio",
    "knative",
    "kubernetes",
    "kuma",
    "linkerd",
    "nginx",
    "osm",
    "skipper",
    "smi:v1alpha1",
    "smi:v1alpha2",
    "smi:v1alpha3",
    "traefik",
];

/// A provider string Flagger does not recognise (and would silently replace by Istio).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {value:?}; Flagger would silently use istio instead; expected one of: {}", CANARY_PROVIDER_VALUES.join(", "))]
pub struct UnknownProvider {
    /// The string as given.
    pub value: String,
}

impl MeshProvider {
    /// Parses a provider string with the rules of Flagger's router factory, in the same order: the prefix
    /// `appmesh:v1beta2`, then the exact names `appmesh`, `linkerd`, `istio`, then the prefixes
    /// `smi:v1alpha1`/`2`/`3`, the exact names `contour`, `knative`, the prefix `gloo`, the exact names
    /// `nginx`, `skipper`, `traefik`, `apisix`, `osm`, `kuma`, the prefixes `gatewayapi:v1beta1` and
    /// `gatewayapi:v1`, and the exact name `kubernetes`. Anything else (including plain `gatewayapi`,
    /// `smi`, an empty string, or a different letter case) is an error.
    pub fn parse(value: &str) -> Result<Self, UnknownProvider> {
        let smi = |version: SmiVersion| {
            let rest = &value["smi:".len() + version.as_str().len()..];
            let mesh = rest.strip_prefix(':').map(str::to_owned);
            Self::Smi { version, mesh }
        };
        let provider = match value {
            v if v.starts_with("appmesh:v1beta2") => Self::AppMeshV1beta2,
            "appmesh" => Self::AppMesh,
            "linkerd" => Self::Linkerd,
            "istio" => Self::Istio,
            v if v.starts_with("smi:v1alpha1") => smi(SmiVersion::V1alpha1),
            v if v.starts_with("smi:v1alpha2") => smi(SmiVersion::V1alpha2),
            v if v.starts_with("smi:v1alpha3") => smi(SmiVersion::V1alpha3),
            "contour" => Self::Contour,
            "knative" => Self::Knative,
            v if v.starts_with("gloo") => Self::Gloo,
            "nginx" => Self::Nginx,
            "skipper" => Self::Skipper,
            "traefik" => Self::Traefik,
            "apisix" => Self::Apisix,
            "osm" => Self::Osm,
            "kuma" => Self::Kuma,
            v if v.starts_with("gatewayapi:v1beta1") => Self::GatewayApiV1beta1,
            v if v.starts_with("gatewayapi:v1") => Self::GatewayApiV1,
            "kubernetes" => Self::Kubernetes,
            _ => {
                return Err(UnknownProvider {
                    value: value.to_owned(),
                });
            }
        };
        Ok(provider)
    }

    /// Whether this provider is a Gateway API `HTTPRoute` provider.
    pub fn is_gateway_api(&self) -> bool {
        matches!(self, Self::GatewayApiV1 | Self::GatewayApiV1beta1)
    }
}

impl std::str::FromStr for MeshProvider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for MeshProvider {
    /// The canonical spelling, e.g. `gatewayapi:v1`, `smi:v1alpha3:istio`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Apisix => "apisix",
            Self::AppMesh => "appmesh",
            Self::AppMeshV1beta2 => "appmesh:v1beta2",
            Self::Contour => "contour",
            Self::GatewayApiV1 => "gatewayapi:v1",
            Self::GatewayApiV1beta1 => "gatewayapi:v1beta1",
            Self::Gloo => "gloo",
            Self::Istio => "istio",
            Self::Knative => "knative",
            Self::Kubernetes => "kubernetes",
            Self::Kuma => "kuma",
            Self::Linkerd => "linkerd",
            Self::Nginx => "nginx",
            Self::Osm => "osm",
            Self::Skipper => "skipper",
            Self::Traefik => "traefik",
            Self::Smi { version, mesh } => {
                write!(f, "smi:{}", version.as_str())?;
                if let Some(mesh) = mesh {
                    write!(f, ":{mesh}")?;
                }
                return Ok(());
            }
        };
        f.write_str(name)
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $err:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in the order of the CRD's enum.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as written in manifests.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the exact (case-sensitive) value.
            pub fn parse(value: &str) -> Result<Self, $err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err($err { value: value.to_owned() }),
                }
            }

            fn expected() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $err;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        #[doc = concat!("An unknown ", $what, ".")]
        #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
        #[error("unknown {} {:?}; expected one of: {}", $what, .value, $name::expected())]
        pub struct $err {
            /// The value as given.
            pub value: String,
        }
    };
}

string_enum!(
    /// `MetricTemplate.spec.provider.type`: where a custom metric is queried.
    MetricProviderType, UnknownMetricProviderType, "metric provider type", {
        /// Prometheus HTTP API.
        Prometheus => "prometheus",
        /// InfluxDB v2 (Flux).
        Influxdb => "influxdb",
        /// Datadog metrics API.
        Datadog => "datadog",
        /// The Kubernetes external metrics API.
        ExternalMetrics => "externalmetrics",
        /// Google Cloud Monitoring (MQL).
        Stackdriver => "stackdriver",
        /// AWS CloudWatch `GetMetricData`.
        Cloudwatch => "cloudwatch",
        /// New Relic Insights (NRQL).
        Newrelic => "newrelic",
        /// Graphite render API.
        Graphite => "graphite",
        /// Dynatrace metrics API v2.
        Dynatrace => "dynatrace",
        /// Keptn metrics and analyses.
        Keptn => "keptn",
        /// Splunk Observability (SignalFx SignalFlow).
        Splunk => "splunk",
    }
);

string_enum!(
    /// `AlertProvider.spec.type`: where alerts are posted.
    AlertProviderType, UnknownAlertProviderType, "alert provider type", {
        /// Slack incoming webhook or API.
        Slack => "slack",
        /// Microsoft Teams incoming webhook.
        Msteams => "msteams",
        /// Discord (Slack-compatible webhook).
        Discord => "discord",
        /// Rocket.Chat.
        Rocket => "rocket",
        /// Google Chat.
        Gchat => "gchat",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crd_value_parses_and_displays_unchanged() {
        for value in CANARY_PROVIDER_VALUES {
            let parsed = MeshProvider::parse(value).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed.to_string(), value);
        }
    }

    #[test]
    fn prefix_rules_follow_the_router_factory() {
        assert_eq!(
            MeshProvider::parse("appmesh:v1beta2x"),
            Ok(MeshProvider::AppMeshV1beta2)
        );
        assert_eq!(MeshProvider::parse("gloo-edge"), Ok(MeshProvider::Gloo));
        assert_eq!(
            MeshProvider::parse("gatewayapi:v1beta1"),
            Ok(MeshProvider::GatewayApiV1beta1)
        );
        assert_eq!(
            MeshProvider::parse("gatewayapi:v1alpha2"),
            Ok(MeshProvider::GatewayApiV1)
        );
        assert_eq!(
            MeshProvider::parse("smi:v1alpha3:istio"),
            Ok(MeshProvider::Smi {
                version: SmiVersion::V1alpha3,
                mesh: Some("istio".into())
            })
        );
        assert_eq!(
            MeshProvider::parse("smi:v1alpha1"),
            Ok(MeshProvider::Smi {
                version: SmiVersion::V1alpha1,
                mesh: None
            })
        );
        assert_eq!(
            MeshProvider::parse("smi:v1alpha2:osm").map(|p| p.to_string()),
            Ok("smi:v1alpha2:osm".to_owned())
        );
    }

    #[test]
    fn strings_flagger_would_turn_into_istio_are_errors() {
        for value in [
            "",
            "gatewayapi",
            "smi",
            "Istio",
            "linkerd2",
            "appmesh:v1beta1",
            "nginx ",
            "traefik:v2",
        ] {
            let err = MeshProvider::parse(value).expect_err(value);
            assert_eq!(err.value, value);
            assert!(err.to_string().contains("would silently use istio"), "{err}");
        }
    }

    #[test]
    fn metric_provider_types() {
        assert_eq!(MetricProviderType::ALL.len(), 11);
        for t in MetricProviderType::ALL {
            assert_eq!(MetricProviderType::parse(t.as_str()), Ok(*t));
        }
        let err = MetricProviderType::parse("Prometheus").expect_err("case-sensitive");
        assert!(err.to_string().starts_with(
            "unknown metric provider type \"Prometheus\"; expected one of: prometheus, influxdb,"
        ));
    }

    #[test]
    fn alert_provider_types() {
        assert_eq!(AlertProviderType::ALL.len(), 5);
        assert_eq!(AlertProviderType::parse("gchat"), Ok(AlertProviderType::Gchat));
        assert_eq!(
            AlertProviderType::parse("teams").map_err(|e| e.to_string()),
            Err("unknown alert provider type \"teams\"; expected one of: slack, msteams, discord, rocket, gchat"
                .to_owned())
        );
    }
}
