//! Google Chat incoming webhooks with a cards v1 message (Flagger's `gchat.go`).

use serde::Serialize;

use crate::http::{Endpoint, HttpOptions, parse_address};
use crate::{Alert, NotifierConfig, NotifyError};

/// A Google Chat message (Flagger's `GChatPayload`).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct GChatPayload {
    /// One card.
    pub cards: Vec<GChatCard>,
}

/// A card.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct GChatCard {
    /// `Flagger`, `<canary>.<namespace>` and Flagger's icon.
    pub header: GChatHeader,
    /// The message, then one section per field.
    pub sections: Vec<GChatSection>,
}

/// A card header.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct GChatHeader {
    /// Always `Flagger`.
    pub title: String,
    /// `<canary>.<namespace>`.
    pub subtitle: String,
    /// Always `https://flagger.app/favicon.png`.
    #[serde(rename = "imageUrl")]
    pub image_url: String,
}

/// A card section.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct GChatSection {
    /// One text paragraph.
    pub widgets: Vec<GChatWidget>,
}

/// A widget.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct GChatWidget {
    /// The text.
    #[serde(rename = "textParagraph")]
    pub text_paragraph: GChatText,
}

/// A text paragraph.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct GChatText {
    /// HTML-formatted text.
    pub text: String,
}

/// Posts cards to Google Chat. The token is not sent; the channel and user name are not used.
#[derive(Clone, Debug)]
pub struct GChat {
    pub(crate) endpoint: Endpoint,
}

const GREY_BOLD_OPEN: &str = "<font color=#848484><strong>";
const GREY_BOLD_CLOSE: &str = "</strong></font>";

fn paragraph(text: String) -> GChatSection {
    GChatSection {
        widgets: vec![GChatWidget {
            text_paragraph: GChatText { text },
        }],
    }
}

impl GChat {
    /// Validates like Flagger's `NewGChat`: an absolute URL.
    pub fn new(config: &NotifierConfig, options: &HttpOptions) -> Result<Self, NotifyError> {
        let url = parse_address("Google Chat webhook", &config.address)?;
        Ok(Self {
            endpoint: Endpoint::new(url, None, config.proxy.as_deref(), options)?,
        })
    }

    /// The JSON body for `alert`. Severity does not change it.
    pub fn payload(&self, alert: &Alert) -> GChatPayload {
        let mut sections = Vec::with_capacity(alert.fields.len() + 1);
        sections.push(paragraph(format!(
            "{GREY_BOLD_OPEN}{}{GREY_BOLD_CLOSE}",
            alert.message
        )));
        sections.extend(alert.fields.iter().map(|f| {
            paragraph(format!(
                "{}<br>{GREY_BOLD_OPEN}{}{GREY_BOLD_CLOSE}",
                f.name, f.value
            ))
        }));
        GChatPayload {
            cards: vec![GChatCard {
                header: GChatHeader {
                    title: "Flagger".to_owned(),
                    subtitle: alert.subject(),
                    image_url: "https://flagger.app/favicon.png".to_owned(),
                },
                sections,
            }],
        }
    }

    /// Posts `alert`.
    pub async fn post(&self, alert: &Alert) -> Result<(), NotifyError> {
        self.endpoint.post_json(&self.payload(alert)).await
    }
}
