//! A message as chat renders it, before any platform's wire format: plain text, or a prompt
//! with buttons that each send a command back as the user. The workflow turns it into the
//! platform's message (DingTalk: a text message, or an action card with `dtmd://` links).

/// A rendered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Text(String),
    /// A titled text with buttons; each button sends `sends` as if the user had typed it.
    Prompt {
        title: String,
        text: String,
        buttons: Vec<Button>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Button {
    pub label: String,
    /// The command the button sends (prefilled text).
    pub sends: String,
}

impl Button {
    pub fn new(label: impl Into<String>, sends: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            sends: sends.into(),
        }
    }
}
