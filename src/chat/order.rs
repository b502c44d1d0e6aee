//! How an order reads, from the order and the policy alone (no IO): its targets and role, the
//! request and the JumpServer change an approver sees, its status line, its approval card and its
//! OA form. Replies, notices, cards and forms about an order are all built here, so a request is
//! described in one place ([`OrderText::request_view`]).
use crate::chat::card::{self, ApprovalProgress, ApprovalStatus, CardVars};
use crate::chat::message::{Button, Message};
use crate::chat::readback;
use crate::chat::text::{self, Lang, RequestView, StatusView};
use crate::domain::command::{display_word, CommandKind, Role};
use crate::domain::duration::AccessDuration;
use crate::domain::order::{Order, Request, State};
use crate::domain::policy::Policy;
use crate::domain::target::Target;
use jiff::tz::TimeZone;

/// The language, time zone and policy an order is described with.
#[derive(Clone, Copy)]
pub struct OrderText<'a> {
    pub lang: Lang,
    pub tz: &'a TimeZone,
    pub policy: &'a Policy,
}

impl<'a> OrderText<'a> {
    /// The order's targets, systems recognised (`Policy::known_targets`).
    pub fn targets(&self, o: &Order) -> Vec<Target> {
        self.policy.known_targets(o.request.targets())
    }

    /// The order's role; an account order has none and shows as read-only where one is shown.
    pub fn role(o: &Order) -> Role {
        o.request.role().unwrap_or(Role::Readonly)
    }

    /// The role's label in the configured language (`运维`), for logins in words.
    pub fn role_label(&self, o: &Order) -> &'a str {
        self.policy.role(Self::role(o)).label(self.lang)
    }

    /// A permission's accounts in words (`运维账号 ops`), each username labelled with the role
    /// that grants it; raw markers such as `@SPEC` never reach a person.
    pub fn logins(&self, accounts: &[String]) -> String {
        let policy = self.policy;
        let lang = self.lang;
        let label_of = |u: &str| -> String {
            Role::ALL
                .into_iter()
                .map(|r| policy.role(r))
                .find(|rp| rp.accounts.iter().any(|a| a == u))
                .map(|rp| rp.label(lang).to_owned())
                .unwrap_or_default()
        };
        readback::accounts(lang, &label_of, accounts)
    }

    pub fn status_label(&self, o: &Order) -> &'static str {
        text::status_label(self.lang, o.status())
    }

    /// The order as one row of `/my`, `/status` and `/who-has`.
    pub fn status_view<'b>(&self, o: &'b Order, targets: &'b [Target]) -> StatusView<'b> {
        let expires_at = match o.state {
            State::Approved | State::Provisioning | State::Active | State::FailedRetrying => {
                o.window.map(|w| w.end)
            }
            _ => None,
        };
        StatusView {
            order: &o.id,
            status: o.status(),
            targets,
            role: Self::role(o),
            holder: &o.requester_name,
            expires_at,
        }
    }

    /// One line about an order, for `/my` and `/status`.
    pub fn status_line(&self, o: &Order) -> String {
        if let Request::Account { .. } = o.request {
            return text::account_order_line(
                self.lang,
                &o.id,
                self.status_label(o),
                &o.jms_username,
            );
        }
        let targets = self.targets(o);
        text::status_line(self.lang, &self.status_view(o, &targets), self.tz)
    }

    /// The request as requester and approvers see it.
    pub fn request_view<'b>(
        &self,
        o: &'b Order,
        targets: &'b [Target],
        duration: AccessDuration,
    ) -> RequestView<'b> {
        let reason = o.request.reason();
        RequestView {
            order: &o.id,
            requester_name: &o.requester_name,
            username: &o.jms_username,
            targets,
            role: Self::role(o),
            duration,
            window: self.window_words(o),
            reason: (!reason.is_empty()).then_some(reason),
        }
    }

    /// When the access ends, in words: the window's end once it is open, the end the
    /// requester named (`到周五`), else that it runs from approval.
    pub fn window_words(&self, o: &Order) -> String {
        let end = o.window.map(|w| w.end).or(o.request.ends_at());
        match end {
            Some(end) => text::words::until(self.lang, end, self.tz, o.created_at),
            None => text::from_approval(self.lang).to_string(),
        }
    }

    /// The JumpServer change of a host order in words (from the stored preview).
    pub fn change(&self, o: &Order) -> Option<String> {
        let p = o.preview.as_ref()?;
        if let Request::Account { .. } = o.request {
            return None;
        }
        Some(text::change_preview(
            self.lang,
            &text::ChangeView {
                username: &o.jms_username,
                user_exists: p.user_exists,
                user_active: p.user_active,
                will_create_user: self.policy.auto_create_user && o.requester_email.is_some(),
                node: &p.node,
                whole_node: p.whole_node,
                hosts_existing: &p.hosts_existing,
                hosts_to_create: &p.hosts_to_create,
                accounts: &p.accounts,
                actions: &p.actions,
                duration: o.request.access_duration(),
                already: &p.already,
                unavailable: p.unavailable.as_deref(),
                role_label: self.role_label(o),
                user_matched: p.user_matched.as_ref().map(|(u, e)| (u.as_str(), *e)),
                missing_logins: &p.missing_logins,
                permission_name: &p.permission_name,
                permission_repair: p.permission_repair,
                name_conflicts: &p.name_conflicts,
                hosts_renamed: &p.hosts_renamed,
                ambiguous: &p.ambiguous,
            },
            self.tz,
        ))
    }

    /// `base` followed by the change, when there is one.
    fn with_change(&self, o: &Order, base: String) -> String {
        match self.change(o) {
            Some(c) => format!("{base}\n{c}"),
            None => base,
        }
    }

    /// The request for approvers, with the change and how to decide by text.
    pub fn request(&self, o: &Order) -> String {
        let lang = self.lang;
        if let Request::Account { .. } = o.request {
            return text::account_request_view(lang, &o.id, &o.requester_name, &o.jms_username);
        }
        let targets = self.targets(o);
        let base = match o.request.access_duration() {
            Some(d) => text::approval_request(lang, &self.request_view(o, &targets, d)),
            None => String::new(),
        };
        self.with_change(o, base)
    }

    /// The requester's "submitted, waiting for …" message.
    pub fn submitted(&self, o: &Order, approver_names: &[&str]) -> String {
        let targets = self.targets(o);
        let base = match o.request.access_duration() {
            Some(d) => text::request_submitted(
                self.lang,
                &self.request_view(o, &targets, d),
                approver_names,
            ),
            None => text::account_submitted(self.lang, &o.id, &o.jms_username, approver_names),
        };
        self.with_change(o, base)
    }

    /// The approval request to an approver when no card template is configured: the request
    /// with two buttons that send `/approve` and `/reject` (the reason typed after it).
    pub fn approval_prompt(&self, o: &Order) -> Message {
        let lang = self.lang;
        let approve = format!("{} {}", display_word(CommandKind::Approve, lang), o.id);
        // The reason is typed after the prefilled text, so it ends with a space.
        let reject = format!("{} {} ", display_word(CommandKind::Reject, lang), o.id);
        Message::Prompt {
            title: text::approval_title(lang, &o.requester_name, &o.id),
            text: self.request(o),
            buttons: vec![
                Button::new(text::approve_button(lang), approve),
                Button::new(text::reject_button(lang), reject),
            ],
        }
    }

    /// The approval card variables of `o` as it stands now; `decider` is the display name of
    /// whoever decided or closed it (unused while it is pending).
    pub fn card_vars(&self, o: &Order, decider: &str) -> CardVars {
        let lang = self.lang;
        let status = ApprovalStatus::of(o);
        let decided_by = match status {
            ApprovalStatus::Pending => String::new(),
            _ => match o.decided_at.or(o.closure.as_ref().map(|c| c.at)) {
                Some(t) => format!("{decider} · {}", text::time(t, self.tz)),
                None => decider.to_owned(),
            },
        };
        let reject_reason = o.decision_reason.clone().unwrap_or_default();
        let Some(duration) = o
            .request
            .access_duration()
            .or_else(|| AccessDuration::from_minutes(60).ok())
        else {
            return CardVars::new();
        };
        let targets = self.targets(o);
        let change = self.change(o).unwrap_or_default();
        let mut vars = card::approval_vars_with_change(
            lang,
            &self.request_view(o, &targets, duration),
            &ApprovalProgress {
                status,
                approvals_required: self.policy.approvals_required,
                approvals_done: u32::try_from(o.approvals.len()).unwrap_or(u32::MAX),
                decided_by: &decided_by,
                reject_reason: &reject_reason,
            },
            &change,
        );
        if let Request::Account { .. } = o.request {
            vars.insert(
                "targets".into(),
                text::account_target(lang, &o.jms_username),
            );
            for k in ["role_label", "duration_text", "duration", "role"] {
                vars.insert(k.into(), "-".into());
            }
        }
        vars
    }

    /// The OA form: `(label, value)` pairs; the order-id field is what a later search matches.
    pub fn oa_form(&self, o: &Order) -> Vec<(String, String)> {
        let lang = self.lang;
        let targets = self.targets(o);
        let label = |f: text::OaField| text::oa_label(lang, f).to_string();
        let mut form = vec![
            (label(text::OaField::Order), o.id.to_string()),
            (label(text::OaField::Requester), o.requester_name.clone()),
            (label(text::OaField::JmsUser), o.jms_username.clone()),
        ];
        if let (Some(role), Some(d)) = (o.request.role(), o.request.access_duration()) {
            form.push((label(text::OaField::Hosts), text::targets(lang, &targets)));
            form.push((
                label(text::OaField::Access),
                text::role(lang, role).to_string(),
            ));
            form.push((label(text::OaField::Duration), text::duration(lang, d)));
        }
        form.push((label(text::OaField::Reason), o.request.reason().to_string()));
        if let Some(c) = self.change(o) {
            // The form field already carries the "JumpServer 变更" label; drop the heading line.
            let body = c.split_once('\n').map_or(c.as_str(), |(_, rest)| rest);
            form.push((label(text::OaField::Change), body.to_owned()));
        }
        form
    }
}
