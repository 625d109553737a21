//! Session-affinity cookies (`analysis.sessionAffinity`), shared by the routers that support it (Istio and
//! Gateway API).
//!
//! flagger-rs does not write cookies into the Canary's status (the router runs before the status write of
//! the same tick, and a second write would race it). Instead the cookie of a run is derived from the Canary's
//! uid and `lastAppliedSpec` — the same for a whole run of one revision, new for the next — and the cookie to
//! expire is read back from the routing object. Cookies Go Flagger left in the status are used when present.

use flagger_api::Canary;
use sha2::{Digest, Sha256};

/// The session-affinity cookies (`name=value`) one weight change works with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cookies {
    /// The canary cookie of the current run (used while the canary has traffic).
    pub canary: String,
    /// The primary cookie of the current run (with `primaryCookieName`).
    pub primary: String,
    /// The cookie of the finished run, expired once the canary has no traffic.
    pub previous: Option<String>,
}

const COOKIE_LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Ten letters derived from the canary's uid, its `lastAppliedSpec` and `role`: the same for one run of one
/// revision, different for the next.
fn derived_value(canary: &Canary, role: &str) -> String {
    let uid = canary.metadata.uid.as_deref().unwrap_or_default();
    let spec = canary
        .status
        .as_ref()
        .and_then(|s| s.last_applied_spec.as_deref())
        .unwrap_or_default();
    let digest = Sha256::digest(format!("{uid}/{spec}/{role}").as_bytes());
    digest
        .iter()
        .take(10)
        .map(|b| char::from(COOKIE_LETTERS[usize::from(*b) % COOKIE_LETTERS.len()]))
        .collect()
}

/// The `name=value` part of a `Set-Cookie` header value when it sets the cookie `name` (and, with `expired`,
/// only when it expires it).
pub fn set_cookie_value(header: &str, name: &str, expired: bool) -> Option<String> {
    let cookie = header.split(';').next()?.trim();
    (cookie.starts_with(&format!("{name}=")) && (!expired || header.contains("Max-Age=-1")))
        .then(|| cookie.to_owned())
}

/// The cookies of the next weight change: the status' cookies when Go Flagger left them, else the cookies
/// derived for this run. `in_route` finds, for a cookie name, the canary cookie the routing object hands out
/// or expires now: that is the cookie to expire.
pub fn cookies(canary: &Canary, in_route: impl FnOnce(&str) -> Option<String>) -> Cookies {
    let Some(affinity) = canary.analysis().and_then(|a| a.session_affinity.as_ref()) else {
        return Cookies::default();
    };
    let status = canary.status.clone().unwrap_or_default();
    let stored = |s: &Option<String>| s.clone().filter(|c| !c.is_empty());
    let canary_cookie = stored(&status.session_affinity_cookie)
        .unwrap_or_else(|| format!("{}={}", affinity.cookie_name, derived_value(canary, "canary")));
    let primary_cookie = stored(&status.primary_session_affinity_cookie).unwrap_or_else(|| {
        format!(
            "{}={}",
            affinity.primary_cookie_name.as_deref().unwrap_or_default(),
            derived_value(canary, "primary")
        )
    });
    let previous = in_route(&affinity.cookie_name)
        .or_else(|| stored(&status.session_affinity_cookie))
        .or_else(|| stored(&status.previous_session_affinity_cookie));
    Cookies {
        canary: canary_cookie,
        primary: primary_cookie,
        previous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_values_are_matched_by_name_and_expiry() {
        let live = "flagger-cookie=abc; Max-Age=21600";
        assert_eq!(
            set_cookie_value(live, "flagger-cookie", false).as_deref(),
            Some("flagger-cookie=abc")
        );
        assert_eq!(set_cookie_value(live, "flagger-cookie", true), None);
        assert_eq!(set_cookie_value(live, "other", false), None);
        let expired = "flagger-cookie=abc; Max-Age=-1";
        assert_eq!(
            set_cookie_value(expired, "flagger-cookie", true).as_deref(),
            Some("flagger-cookie=abc")
        );
    }
}
