//! Who receives an alert (pure functions of `events.go alert()`): the severity filter, the global
//! notifier fallback, the provider's namespace, and a provider's settings after its Secret was read.

use std::collections::BTreeMap;

use flagger_api::{AlertProviderSpec, AlertSeverity, Canary, CanaryAlert};
use flagger_core::provider::{AlertProviderType, UnknownAlertProviderType};
use k8s_openapi::ByteString;

use crate::{NotifierConfig, Severity};

/// Whether an `analysis.alerts[]` entry subscribed at `subscriber` receives a message of `message`
/// severity: info (and unset or `""`) gets everything, warn gets warn and error, error gets error.
///
/// Flagger never sends to `severity: ""` or a missing severity although its documentation says the
/// default is info; flagger-rs treats both as info.
pub fn subscriber_accepts(subscriber: Option<AlertSeverity>, message: Severity) -> bool {
    match subscriber.unwrap_or_default() {
        AlertSeverity::Unset | AlertSeverity::Info => true,
        AlertSeverity::Warn => matches!(message, Severity::Warn | Severity::Error),
        AlertSeverity::Error => message == Severity::Error,
    }
}

/// Who receives a canary's alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipients<'a> {
    /// The canary has no `analysis.alerts`: the global notifier (`-slack-*`/`-msteams-*`), with no
    /// severity filter.
    Global,
    /// The canary's alerts whose severity accepts the message, in manifest order (possibly none: the
    /// global notifier is then *not* used).
    Providers(Vec<&'a CanaryAlert>),
}

/// Who receives an alert of `severity` about `canary`.
pub fn recipients(canary: &Canary, severity: Severity) -> Recipients<'_> {
    let alerts = canary.analysis().map(|a| a.alerts()).unwrap_or_default();
    if alerts.is_empty() {
        return Recipients::Global;
    }
    Recipients::Providers(
        alerts
            .iter()
            .filter(|alert| subscriber_accepts(alert.severity, severity))
            .collect(),
    )
}

/// The namespace of the AlertProvider (and of its Secret) an alert refers to: `providerRef.namespace`
/// when set and not empty, else the canary's.
pub fn provider_namespace<'a>(alert: &'a CanaryAlert, canary_namespace: &'a str) -> &'a str {
    alert.provider_ref.namespace_or(canary_namespace)
}

/// Why an AlertProvider cannot be turned into a notifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// `spec.type` is not one of the five.
    #[error("provider {} not supported", .0.value)]
    UnknownType(#[from] UnknownAlertProviderType),
    /// `secretRef` is set but the caller has no Secret data.
    #[error("secretRef {0} was not read")]
    SecretNotRead(String),
    /// The Secret lacks the required `address` key.
    #[error("secret does not contain an address")]
    SecretWithoutAddress,
    /// A Secret value is not UTF-8.
    #[error("secret key {0} is not valid UTF-8")]
    SecretNotUtf8(&'static str),
}

/// The settings of an AlertProvider: `type`, `address` (replaced by the Secret's `address`, required,
/// when `secretRef` is set), the Secret's optional `token`, `proxy`, and `channel`/`username` with their
/// defaults `general`/`flagger`. `secret` is the data of the Secret named by `secretRef`, read by the
/// caller in the provider's namespace; it is ignored without `secretRef`.
pub fn provider_config(
    spec: &AlertProviderSpec,
    secret: Option<&BTreeMap<String, ByteString>>,
) -> Result<NotifierConfig, ProviderError> {
    let provider = AlertProviderType::parse(&spec.type_)?;
    let mut address = spec.address.clone().unwrap_or_default();
    let mut token = None;
    if let Some(secret_ref) = &spec.secret_ref {
        let data = secret.ok_or_else(|| ProviderError::SecretNotRead(secret_ref.name.clone()))?;
        let value = |key: &'static str| -> Result<Option<String>, ProviderError> {
            data.get(key)
                .map(|v| String::from_utf8(v.0.clone()).map_err(|_| ProviderError::SecretNotUtf8(key)))
                .transpose()
        };
        address = value("address")?.ok_or(ProviderError::SecretWithoutAddress)?;
        token = value("token")?.filter(|t| !t.is_empty());
    }
    Ok(NotifierConfig {
        provider,
        address,
        token,
        proxy: spec.proxy.clone().filter(|p| !p.is_empty()),
        username: spec.username().to_owned(),
        channel: spec.channel().to_owned(),
    })
}
