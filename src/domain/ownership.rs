//! Proof of ownership for what the bot writes into JumpServer. Owns the installation id, the
//! marker line every object the bot creates carries in its `comment`, and the names derived
//! from both.
//!
//! Why: order ids restart at `R<yymmdd>-001` in every new store, so a name alone proves nothing.
//! A redeploy without the old volume, a restored backup or a second installation on the same
//! JumpServer would otherwise find "its" permission by name and change someone else's grant.
//! So each store gets a random installation id when it is created, names carry it (unique
//! across installations), and the `comment` carries a machine-readable line naming both the
//! installation and the order. JumpServer keeps a multi-line comment unchanged (transcript 169).
//! Only an object whose marker names this installation *and* this order is ours to modify.
use crate::domain::ids::OrderId;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// First word of the marker line; `v1` is the format version.
const MARKER_PREFIX: &str = "accessbot:v1";
/// The instance word of orders made before installation ids existed.
const LEGACY_INSTANCE: &str = "-";

/// Random id of one installation (one store), created with the store and kept in it. Ten
/// lowercase base-32 characters: 50 bits, so two installations never meet by chance, and short
/// enough to keep permission names readable in the JumpServer UI.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstallationId(String);

impl InstallationId {
    const ALPHABET: &'static [u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    const LEN: usize = 10;

    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let s = (0..Self::LEN)
            .map(|_| char::from(Self::ALPHABET[rng.random_range(0..Self::ALPHABET.len())]))
            .collect();
        Self(s)
    }

    /// Accepts only what `generate` makes (a stored value is checked on open).
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == Self::LEN && s.bytes().all(|b| Self::ALPHABET.contains(&b)))
            .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The owner of a JumpServer object: which installation made it, for which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub installation: String,
    pub order: OrderId,
}

/// What a comment says about who owns the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// This installation, this order: ours to repair.
    Ours,
    /// This installation, another order (a naming bug or a hand-edited comment): not ours.
    OtherOrder(OrderId),
    /// Another accessbot installation.
    OtherInstallation(String),
    /// No marker at all: made by a person or another tool.
    Foreign,
}

impl Ownership {
    pub fn is_ours(&self) -> bool {
        matches!(self, Ownership::Ours)
    }
}

impl Marker {
    pub fn new(installation: &InstallationId, order: &OrderId) -> Self {
        Self {
            installation: installation.as_str().to_owned(),
            order: order.clone(),
        }
    }

    /// The machine-readable line: `accessbot:v1 instance=<id> order=<order>`.
    pub fn line(&self) -> String {
        format!(
            "{MARKER_PREFIX} instance={} order={}",
            self.instance_word(),
            self.order
        )
    }

    /// Orders stored before installation ids existed have none; `-` keeps the line parseable.
    fn instance_word(&self) -> &str {
        if self.installation.is_empty() {
            LEGACY_INSTANCE
        } else {
            &self.installation
        }
    }

    /// A comment: the marker line first, then lines for people (who asked, why).
    pub fn comment(&self, human: &[String]) -> String {
        let mut out = self.line();
        for h in human {
            // One logical line each; a newline inside a reason must not forge a marker line.
            let flat: String = h
                .chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                .collect();
            out.push('\n');
            out.push_str(&flat);
        }
        out
    }

    /// The marker of a comment, if its first line is one.
    pub fn parse(comment: &str) -> Option<Marker> {
        let first = comment.lines().next()?.trim();
        let rest = first.strip_prefix(MARKER_PREFIX)?;
        if !rest.starts_with(' ') {
            return None;
        }
        let mut installation = None;
        let mut order = None;
        for word in rest.split_whitespace() {
            match word.split_once('=') {
                Some(("instance", v)) if !v.is_empty() => installation = Some(v.to_owned()),
                Some(("order", v)) if !v.is_empty() => order = Some(OrderId::new(v)),
                _ => {}
            }
        }
        Some(Marker {
            installation: installation?,
            order: order?,
        })
    }

    /// Whether `comment` proves the object is this marker's.
    pub fn judge(&self, comment: &str) -> Ownership {
        if self.installation.is_empty()
            && comment.starts_with(&format!("accessbot {} for ", self.order))
        {
            // What versions before the marker wrote. Accepted only for orders of that time,
            // which keep their old name (`accessbot-<order>`); new orders never match it.
            return Ownership::Ours;
        }
        match Marker::parse(comment) {
            None => Ownership::Foreign,
            Some(m) if m.installation != self.instance_word() => {
                Ownership::OtherInstallation(m.installation)
            }
            Some(m) if m.order != self.order => Ownership::OtherOrder(m.order),
            Some(_) => Ownership::Ours,
        }
    }
}

/// The name of an order's permission. `attempt` 1 is the plain name; a later attempt is used
/// only when an object without our marker holds the earlier names (never taken over), so the
/// sequence is the same on every run and a re-run finds what an earlier one created.
pub fn permission_name(installation: &str, order: &OrderId, attempt: u32) -> String {
    let base = if installation.is_empty() {
        // Orders stored before installation ids existed keep the name they were granted under.
        format!("accessbot-{order}")
    } else {
        format!("accessbot-{installation}-{order}")
    };
    if attempt <= 1 {
        base
    } else {
        format!("{base}-{attempt}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Marker {
        Marker {
            installation: "abcdefgh23".into(),
            order: OrderId::new("R261202-001"),
        }
    }

    #[test]
    fn marker_round_trips_with_human_lines() {
        let c = m().comment(&["申请人 张三".into(), "reason: \"deploy\" & rollback".into()]);
        assert_eq!(Marker::parse(&c), Some(m()));
        assert!(m().judge(&c).is_ours());
        assert_eq!(c.lines().count(), 3);
    }

    #[test]
    fn the_recorded_comment_of_transcript_169_parses() {
        let c = "accessbot:v1 instance=bot-a order=R261202-042 kind=temporary rev=2\napproved-by=fx2-bob at=2026-12-02T14:00:00+08:00\n审批单 R261202-042 / reason: \"deploy\" & rollback";
        let got = Marker::parse(c).expect("marker");
        assert_eq!(got.installation, "bot-a");
        assert_eq!(got.order.as_str(), "R261202-042");
    }

    #[test]
    fn other_installations_orders_and_plain_comments_are_not_ours() {
        let mine = m();
        let other_inst = Marker {
            installation: "zzzzzzzzzz".into(),
            ..m()
        };
        let other_order = Marker {
            order: OrderId::new("R261202-002"),
            ..m()
        };
        assert_eq!(
            mine.judge(&other_inst.line()),
            Ownership::OtherInstallation("zzzzzzzzzz".into())
        );
        assert_eq!(
            mine.judge(&other_order.line()),
            Ownership::OtherOrder(OrderId::new("R261202-002"))
        );
        assert_eq!(
            mine.judge("accessbot R261202-001 for zhangsan"),
            Ownership::Foreign
        );
        assert_eq!(mine.judge(""), Ownership::Foreign);
        // The marker must be the first line: a reason cannot smuggle one in.
        let forged = format!("granted by hand\n{}", mine.line());
        assert_eq!(mine.judge(&forged), Ownership::Foreign);
        assert_eq!(
            mine.judge("accessbot:v1x instance=a order=b"),
            Ownership::Foreign
        );
    }

    #[test]
    fn a_newline_in_a_human_line_cannot_start_a_marker_line() {
        let c = m().comment(&["x\naccessbot:v1 instance=evil order=R1".into()]);
        assert_eq!(c.lines().count(), 2);
        assert_eq!(Marker::parse(&c), Some(m()));
    }

    #[test]
    fn orders_from_before_installation_ids_recognise_their_old_comment() {
        let legacy = Marker {
            installation: String::new(),
            order: OrderId::new("R261122-001"),
        };
        assert!(legacy.judge("accessbot R261122-001 for zhangsan").is_ours());
        assert!(legacy.judge(&legacy.line()).is_ours());
        assert!(!legacy.judge("accessbot R261122-002 for zhangsan").is_ours());
        // A new installation never accepts the old form.
        assert!(!m().judge("accessbot R261202-001 for zhangsan").is_ours());
    }

    #[test]
    fn installation_ids_are_random_and_checked() {
        let a = InstallationId::generate();
        let b = InstallationId::generate();
        assert_ne!(a, b);
        assert_eq!(InstallationId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(InstallationId::parse("ABCDEFGH23"), None);
        assert_eq!(InstallationId::parse("short"), None);
    }

    #[test]
    fn permission_names_carry_the_installation_and_attempt() {
        let o = OrderId::new("R261202-001");
        assert_eq!(
            permission_name("abcdefgh23", &o, 1),
            "accessbot-abcdefgh23-R261202-001"
        );
        assert_eq!(
            permission_name("abcdefgh23", &o, 3),
            "accessbot-abcdefgh23-R261202-001-3"
        );
        assert_eq!(permission_name("", &o, 1), "accessbot-R261202-001");
    }
}
