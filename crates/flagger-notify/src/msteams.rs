//! Microsoft Teams incoming webhooks with a legacy MessageCard (Flagger's `teams.go`).

use serde::Serialize;

use crate::http::{Endpoint, HttpOptions, parse_address};
use crate::{Alert, NotifierConfig, NotifyError, Severity};

/// A MessageCard (Flagger's `MSTeamsPayload`).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct MsTeamsPayload {
    /// Always `MessageCard`.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Always `http://schema.org/extensions`.
    #[serde(rename = "@context")]
    pub context: String,
    /// `FF0000` for errors, `0076D7` otherwise.
    #[serde(rename = "themeColor")]
    pub theme_color: String,
    /// `<canary>.<namespace>`.
    pub summary: String,
    /// One section.
    pub sections: Vec<MsTeamsSection>,
}

/// A MessageCard section.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct MsTeamsSection {
    /// The message.
    #[serde(rename = "activityTitle")]
    pub activity_title: String,
    /// `<canary>.<namespace>`.
    #[serde(rename = "activitySubtitle")]
    pub activity_subtitle: String,
    /// The alert's fields (an empty list when there are none).
    pub facts: Vec<MsTeamsFact>,
}

/// A MessageCard fact.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct MsTeamsFact {
    /// Field name.
    pub name: String,
    /// Field value.
    pub value: String,
}

/// Posts MessageCards to Teams. The token is not sent; the channel and user name are not used.
#[derive(Clone, Debug)]
pub struct MsTeams {
    pub(crate) endpoint: Endpoint,
}

impl MsTeams {
    /// Validates like Flagger's `NewMSTeams`: an absolute URL.
    pub fn new(config: &NotifierConfig, options: &HttpOptions) -> Result<Self, NotifyError> {
        let url = parse_address("MS Teams webhook", &config.address)?;
        Ok(Self {
            endpoint: Endpoint::new(url, None, config.proxy.as_deref(), options)?,
        })
    }

    /// The JSON body for `alert`.
    pub fn payload(&self, alert: &Alert) -> MsTeamsPayload {
        let subject = alert.subject();
        MsTeamsPayload {
            type_: "MessageCard".to_owned(),
            context: "http://schema.org/extensions".to_owned(),
            theme_color: if alert.severity == Severity::Error {
                "FF0000"
            } else {
                "0076D7"
            }
            .to_owned(),
            summary: subject.clone(),
            sections: vec![MsTeamsSection {
                activity_title: alert.message.clone(),
                activity_subtitle: subject,
                facts: alert
                    .fields
                    .iter()
                    .map(|f| MsTeamsFact {
                        name: f.name.clone(),
                        value: f.value.clone(),
                    })
                    .collect(),
            }],
        }
    }

    /// Posts `alert`.
    pub async fn post(&self, alert: &Alert) -> Result<(), NotifyError> {
        self.endpoint.post_json(&self.payload(alert)).await
    }
}
