//! Variables for the two DingTalk card templates documented in `cards/` (request form, approval),
//! and reading what their buttons and inputs send back. DingTalk requires every `cardParamMap`
//! value to be a string (booleans `"true"`/`"false"`, lists JSON-encoded), so the maps here are
//! `String → String`; `cards/*.json` lists the same keys and a test keeps the two in step.
use crate::chat::text::request::RequestView;
use crate::chat::text::words::{self as text, Lang};
use crate::domain::command::{self, ApplyDraft, CommandError, Role};
use crate::domain::duration;
use crate::domain::ids::OrderId;
use crate::domain::order::{Order, State};
use crate::domain::policy::Policy;
use crate::domain::target;
use std::collections::BTreeMap;
use thiserror::Error;

/// DingTalk limit on one card value (dingtalk.md §5.1: value ≤ 1 KB).
pub const MAX_VALUE_BYTES: usize = 1024;

pub type CardVars = BTreeMap<String, String>;

/// Cuts a value to DingTalk's size limit on a character boundary, marking the cut.
pub fn cap(s: &str) -> String {
    fit(s)
}

fn fit(s: &str) -> String {
    if s.len() <= MAX_VALUE_BYTES {
        return s.to_string();
    }
    let mut end = MAX_VALUE_BYTES - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn put(m: &mut CardVars, k: &str, v: impl AsRef<str>) {
    m.insert(k.to_string(), fit(v.as_ref()));
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// The request form card, prefilled from whatever the user already typed.
pub fn request_form_vars(lang: Lang, draft: &ApplyDraft, policy: &Policy) -> CardVars {
    let mut m = CardVars::new();
    put(
        &mut m,
        "title",
        match lang {
            Lang::ZhCn => "JumpServer 主机权限申请",
            Lang::En => "JumpServer host access request",
        },
    );
    put(&mut m, "lang", lang_tag(lang));
    let targets: Vec<String> = draft.targets.iter().map(|t| t.to_string()).collect();
    put(&mut m, "targets", targets.join(", "));
    put(&mut m, "role", draft.role.map(Role::key).unwrap_or(""));
    let options: Vec<serde_json::Value> = Role::ALL
        .iter()
        .map(|r| serde_json::json!({"value": r.key(), "text": policy.role(*r).label(lang)}))
        .collect();
    put(
        &mut m,
        "role_options",
        serde_json::Value::Array(options).to_string(),
    );
    put(
        &mut m,
        "duration",
        draft.duration.map(|d| d.short()).unwrap_or_default(),
    );
    let longest = Role::ALL
        .iter()
        .map(|r| policy.role(*r).max_duration)
        .max()
        .map(|d| text::duration(lang, d))
        .unwrap_or_default();
    put(
        &mut m,
        "duration_hint",
        match lang {
            Lang::ZhCn => format!("例如 4小时、3天；最长 {longest}"),
            Lang::En => format!("e.g. 4h, 3d; at most {longest}"),
        },
    );
    put(&mut m, "reason", draft.reason.as_deref().unwrap_or(""));
    put(&mut m, "reason_required", bool_str(policy.reason_required));
    put(&mut m, "submitted", "false");
    put(&mut m, "status_text", "");
    put(&mut m, "order_id", "");
    m
}

/// Update for the form card once the request became an order.
pub fn request_form_submitted_vars(lang: Lang, order: &OrderId) -> CardVars {
    let mut m = CardVars::new();
    put(&mut m, "submitted", "true");
    put(&mut m, "order_id", order.as_str());
    put(
        &mut m,
        "status_text",
        match lang {
            Lang::ZhCn => format!("已提交，单号 {order}"),
            Lang::En => format!("Submitted as {order}"),
        },
    );
    m
}

/// Where an approval card stands; drives which parts of the card show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Cancelled,
    Expired,
}

impl ApprovalStatus {
    /// Where an order's approval stands, from its state: a cancel nobody made (the timeout)
    /// shows as timed out, and everything after a decision to approve as approved.
    pub fn of(o: &Order) -> Self {
        match o.state {
            State::Draft | State::PendingApproval => ApprovalStatus::Pending,
            State::Rejected => ApprovalStatus::Rejected,
            State::Cancelled if o.closure.as_ref().is_some_and(|c| c.by.is_none()) => {
                ApprovalStatus::Expired
            }
            State::Cancelled => ApprovalStatus::Cancelled,
            _ => ApprovalStatus::Approved,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Cancelled => "cancelled",
            ApprovalStatus::Expired => "expired",
        }
    }
    fn text(self, lang: Lang) -> &'static str {
        match (lang, self) {
            (Lang::ZhCn, ApprovalStatus::Pending) => "待审批",
            (Lang::ZhCn, ApprovalStatus::Approved) => "已同意",
            (Lang::ZhCn, ApprovalStatus::Rejected) => "已拒绝",
            (Lang::ZhCn, ApprovalStatus::Cancelled) => "申请人已撤回",
            (Lang::ZhCn, ApprovalStatus::Expired) => "已超时",
            (Lang::En, ApprovalStatus::Pending) => "Waiting for approval",
            (Lang::En, ApprovalStatus::Approved) => "Approved",
            (Lang::En, ApprovalStatus::Rejected) => "Rejected",
            (Lang::En, ApprovalStatus::Cancelled) => "Withdrawn by the requester",
            (Lang::En, ApprovalStatus::Expired) => "Timed out",
        }
    }
}

/// Progress of the approval shown on the card.
#[derive(Clone, Debug)]
pub struct ApprovalProgress<'a> {
    pub status: ApprovalStatus,
    pub approvals_required: u32,
    pub approvals_done: u32,
    /// Display name of whoever decided last (empty while pending).
    pub decided_by: &'a str,
    pub reject_reason: &'a str,
}

/// The approval card sent to approvers.
pub fn approval_vars(lang: Lang, r: &RequestView<'_>, p: &ApprovalProgress<'_>) -> CardVars {
    let mut m = CardVars::new();
    put(
        &mut m,
        "title",
        match lang {
            Lang::ZhCn => format!("{} 申请主机权限", r.requester_name),
            Lang::En => format!("{} asks for host access", r.requester_name),
        },
    );
    put(&mut m, "lang", lang_tag(lang));
    put(&mut m, "order_id", r.order.as_str());
    put(&mut m, "requester_name", r.requester_name);
    put(&mut m, "jms_username", r.username);
    put(&mut m, "targets", text::targets(lang, r.targets));
    let list: Vec<String> = r.targets.iter().map(|t| t.to_string()).collect();
    put(
        &mut m,
        "targets_json",
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()),
    );
    put(&mut m, "target_count", r.targets.len().to_string());
    put(&mut m, "role", r.role.key());
    put(&mut m, "role_label", text::role(lang, r.role));
    put(&mut m, "duration", r.duration.short());
    // The window in words travels with the length, so a card reads "3天（至 12月5日（周五）18:00）".
    put(
        &mut m,
        "duration_text",
        match lang {
            Lang::ZhCn => format!("{}（{}）", text::duration(lang, r.duration), r.window),
            Lang::En => format!("{} ({})", text::duration(lang, r.duration), r.window),
        },
    );
    put(&mut m, "reason", r.reason.unwrap_or(""));
    put(&mut m, "status", p.status.key());
    put(&mut m, "status_text", p.status.text(lang));
    put(
        &mut m,
        "approvals_required",
        p.approvals_required.to_string(),
    );
    put(&mut m, "approvals_done", p.approvals_done.to_string());
    put(&mut m, "decided_by", p.decided_by);
    put(&mut m, "reject_reason", p.reject_reason);
    put(
        &mut m,
        "buttons_visible",
        bool_str(p.status == ApprovalStatus::Pending),
    );
    m
}

/// The approval card with the JumpServer change the grant will make (`change`, see
/// `cards/approval.json`); empty while no preview exists.
pub fn approval_vars_with_change(
    lang: Lang,
    r: &RequestView<'_>,
    p: &ApprovalProgress<'_>,
    change: &str,
) -> CardVars {
    let mut m = approval_vars(lang, r, p);
    put(&mut m, "change", change);
    m
}

fn lang_tag(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "zh-CN",
        Lang::En => "en",
    }
}

// ------------------------------------------------------------ callbacks ----------

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CardInputError {
    #[error("card callback has no `{0}`")]
    Missing(&'static str),
    #[error("unknown card action `{0}`")]
    UnknownAction(String),
    #[error("`{0}` is not a role (ops or readonly)")]
    BadRole(String),
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// What the request form's buttons send (`cardPrivateData.params`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormAction {
    Submit(ApplyDraft),
    Cancel,
}

/// Reads the request form callback with the same parsers as typed commands; empty inputs stay
/// `None` so the dialog asks for them.
pub fn read_form(params: &BTreeMap<String, String>) -> Result<FormAction, CardInputError> {
    let get = |k: &str| params.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    match get("action").unwrap_or("submit") {
        "cancel" => return Ok(FormAction::Cancel),
        "submit" => {}
        other => {
            return Err(CardInputError::UnknownAction(
                other.chars().take(40).collect(),
            ))
        }
    }
    let mut draft = ApplyDraft::default();
    if let Some(t) = get("targets") {
        let norm = command::normalize(t);
        draft.targets = target::parse_list(target::split_list(&norm), target::PARSE_MAX_TARGETS)
            .map_err(CommandError::Target)?;
    }
    if let Some(r) = get("role") {
        let bad = || CardInputError::BadRole(r.chars().take(32).collect());
        draft.role = Some(Role::from_word(r).ok_or_else(bad)?);
    }
    if let Some(d) = get("duration") {
        // The form's duration field takes what the chat takes, "until Friday" included.
        match crate::domain::until::parse(d) {
            Some(u) => draft.until = Some(u),
            None => draft.duration = Some(duration::parse(d).map_err(CommandError::Duration)?),
        }
    }
    draft.reason = get("reason").map(str::to_string);
    Ok(FormAction::Submit(draft))
}

/// What an approval card's buttons send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalAction {
    Approve(OrderId),
    Reject { order: OrderId, reason: String },
}

pub fn read_approval(params: &BTreeMap<String, String>) -> Result<ApprovalAction, CardInputError> {
    let get = |k: &str| params.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let action = get("action").ok_or(CardInputError::Missing("action"))?;
    let order_text = get("order_id").ok_or(CardInputError::Missing("order_id"))?;
    if order_text.contains(char::is_whitespace) {
        return Err(CommandError::BadOrderId {
            kind: command::CommandKind::Approve,
            given: order_text.chars().take(64).collect(),
        }
        .into());
    }
    // Reuse the command parser's order-id rules by parsing the equivalent command.
    match action {
        "approve" => match command::parse(&format!("/approve {order_text}"))? {
            command::Command::Approve(order) => Ok(ApprovalAction::Approve(order)),
            _ => Err(CardInputError::Missing("order_id")),
        },
        "reject" => {
            let reason = get("reject_reason").ok_or(CardInputError::Missing("reject_reason"))?;
            match command::parse(&format!("/reject {order_text} {reason}"))? {
                command::Command::Reject { order, reason } => {
                    Ok(ApprovalAction::Reject { order, reason })
                }
                _ => Err(CardInputError::Missing("order_id")),
            }
        }
        other => Err(CardInputError::UnknownAction(
            other.chars().take(40).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let s = "原".repeat(1000);
        let f = fit(&s);
        assert!(f.len() <= MAX_VALUE_BYTES);
        assert!(f.ends_with('…'));
    }

    fn documented(json: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        v.get("variables")
            .and_then(|x| x.as_object())
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn policy() -> Policy {
        let mut cfg = crate::domain::policy::PolicyConfig::default();
        cfg.approval.default_approvers = vec!["boss".into()];
        match Policy::from_config(&cfg) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn request_form_vars_match_the_documented_template() {
        let m = request_form_vars(Lang::ZhCn, &ApplyDraft::default(), &policy());
        let mut keys: Vec<String> = m.keys().cloned().collect();
        let mut doc = documented(include_str!("../../cards/request_form.json"));
        keys.sort();
        doc.sort();
        assert_eq!(keys, doc);
        let after = request_form_submitted_vars(Lang::En, &OrderId::new("A1"));
        assert!(after.keys().all(|k| doc.contains(k)));
    }

    #[test]
    fn approval_vars_match_the_documented_template() {
        let order = OrderId::new("R261122-007");
        let targets = [crate::domain::target::Target::Hostname("web1".into())];
        let view = RequestView {
            order: &order,
            requester_name: "张三",
            username: "zhangsan",
            targets: &targets,
            role: Role::Ops,
            duration: duration::parse("3d").unwrap_or_else(|e| panic!("{e}")),
            window: "批准后起算".into(),
            reason: Some("fix"),
        };
        let progress = ApprovalProgress {
            status: ApprovalStatus::Pending,
            approvals_required: 1,
            approvals_done: 0,
            decided_by: "",
            reject_reason: "",
        };
        let m = approval_vars_with_change(Lang::ZhCn, &view, &progress, "JumpServer 变更：");
        let mut keys: Vec<String> = m.keys().cloned().collect();
        let mut doc = documented(include_str!("../../cards/approval.json"));
        keys.sort();
        doc.sort();
        assert_eq!(keys, doc);
        assert_eq!(m.get("buttons_visible").map(String::as_str), Some("true"));
        assert_eq!(
            m.get("targets_json").map(String::as_str),
            Some("[\"web1\"]")
        );
    }
}
