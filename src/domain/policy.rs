//! Who may ask for what, for how long, and who decides: the `[approval]`, `[policy]`, `[roles.*]`,
//! `[[systems]]`, `[chat]` and `[identity]` config sections (serde, with defaults) and the pure
//! rules built from them ([`Policy`]). Config problems are collected as sentences naming the key,
//! so `check-config` can print all of them at once.
//!
//! Longer than 600 lines on purpose: the config sections and the rules checked against them are
//! one vocabulary (a key's meaning and its rule change together); its unit tests are at the end.
use crate::domain::command::{Lang, Role};
use crate::domain::duration::{self, AccessDuration};
use crate::domain::identity::IdentityConfig;
use crate::domain::ids::DingUserId;
use crate::domain::target::{self, AddrBlock, SystemLookup, Target, PARSE_MAX_TARGETS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// JumpServer permission actions (v3/v4 names, jumpserver.md §4.6); anything else is a 400 there.
pub const JMS_ACTIONS: &[&str] = &[
    "all", "connect", "upload", "download", "copy", "paste", "delete", "share",
];

/// Every policy key with its default or an example, for `config/accessbot.example.toml` and
/// `print example config`; a test keeps it valid.
pub const EXAMPLE_TOML: &str = r#"
[approval]
mode = "card"                     # "card": approval card from the bot; "oa": DingTalk OA approval
# process_code = "PROC-XXXX"      # OA template code, required when mode = "oa"
default_approvers = ["manager01"] # DingTalk userids; approve hosts no [[systems]] entry claims

[policy]
admins = ["ops-lead01"]           # DingTalk userids allowed to run /sync, /who-has, /revoke, /pending (all), /apply for; anyone renews or gives back their own grant, admins anyone's
self_approval = false             # may an approver approve their own request?
approvals_required = 1            # distinct approvals before access is granted
reason_required = true            # every host request must say why
auto_create_user = true           # create the JumpServer user on first grant
max_addresses = 50                # most hosts/systems in one request
requesters = []                   # when non-empty, only these userids may ask
team_leads = []                   # besides admins, these userids may ask for someone else (/apply for <user> …)

[roles.ops]
accounts = ["@SPEC", "ops"]       # JumpServer account spec; ["@ALL"] for every account
actions = ["connect", "upload", "download", "copy", "paste"]
max_duration = "7d"
label_zh = "运维"
label_en = "ops"

[roles.readonly]
accounts = ["@SPEC", "readonly"]
actions = ["connect"]
max_duration = "30d"
label_zh = "只读"
label_en = "read-only"

[[systems]]
name = "支付系统"
aliases = ["payments", "pay"]
node = "/Default/Payments"        # JumpServer node granted when the whole system is asked for
addresses = ["10.9.0.0/16"]       # addresses or CIDR blocks that belong to the system
hostnames = ["pay-db-01"]
approvers = ["pay-owner01"]
max_duration = { ops = "1d", readonly = "7d" }

[chat]
language = "zh-CN"                # "zh-CN" or "en"
timezone = "Asia/Shanghai"        # times are shown in this zone, stored in UTC
dialog_idle_minutes = 10          # an unfinished request dialog is forgotten after this
workday_end = "18:00"             # "until Friday" / 明天下班前 ends at this time of day

[identity]
rule = "email_local_part"         # email_local_part | org_email_local_part | job_number | mobile | map

[identity.map]                    # DingTalk userid → JumpServer username, applied first
# "manager01" = "li.si"
"#;

// ---------------------------------------------------------------- config (serde) ----------

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct PolicyConfig {
    pub approval: ApprovalConfig,
    pub policy: PolicySection,
    pub roles: RolesConfig,
    pub systems: Vec<SystemConfig>,
    pub chat: ChatConfig,
    pub identity: IdentityConfig,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// Interactive approval card sent to the approvers by the bot.
    #[default]
    Card,
    /// DingTalk OA approval instance (needs `process_code`).
    Oa,
}

/// `[approval]`
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ApprovalConfig {
    pub mode: ApprovalMode,
    /// OA template code (`PROC-…`); required for `mode = "oa"`.
    pub process_code: Option<String>,
    /// DingTalk userids who approve requests no `[[systems]]` entry claims.
    pub default_approvers: Vec<String>,
}

/// `[policy]`
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct PolicySection {
    /// DingTalk userids allowed to run admin commands.
    pub admins: Vec<String>,
    /// May a requester approve their own request when they are also an approver?
    pub self_approval: bool,
    /// Distinct approvals needed before access is granted.
    pub approvals_required: u32,
    /// Must every host request carry a reason?
    pub reason_required: bool,
    /// Create the JumpServer user on first grant when it does not exist.
    pub auto_create_user: bool,
    /// Most targets (addresses, host names, systems) in one request.
    pub max_addresses: usize,
    /// When non-empty, only these DingTalk userids may ask for access.
    pub requesters: Vec<String>,
    /// DingTalk userids who may ask on someone else's behalf (`/apply for <user> …`), besides
    /// the admins: team leads filing for a new joiner.
    pub team_leads: Vec<String>,
}

impl Default for PolicySection {
    fn default() -> Self {
        Self {
            admins: Vec::new(),
            self_approval: false,
            approvals_required: 1,
            reason_required: true,
            auto_create_user: true,
            max_addresses: 50,
            requesters: Vec::new(),
            team_leads: Vec::new(),
        }
    }
}

/// `[roles.ops]` / `[roles.readonly]`; a missing field takes the role's default (see
/// [`RolePolicy::default_for`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct RoleConfig {
    /// JumpServer account spec, e.g. `["@SPEC", "ops"]` or `["@ALL"]`.
    pub accounts: Option<Vec<String>>,
    /// JumpServer actions, e.g. `["connect"]`.
    pub actions: Option<Vec<String>>,
    /// Longest grant, e.g. `"7d"`.
    pub max_duration: Option<String>,
    pub label_zh: Option<String>,
    pub label_en: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct RolesConfig {
    pub ops: RoleConfig,
    pub readonly: RoleConfig,
}

/// `[[systems]]`: a named group of hosts with its own approvers and limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct SystemConfig {
    pub name: String,
    pub aliases: Vec<String>,
    /// JumpServer node value (e.g. `/Default/Payments`) granted when the whole system is asked for.
    pub node: Option<String>,
    /// Addresses or CIDR blocks that belong to the system (`10.1.2.0/24`).
    pub addresses: Vec<String>,
    /// Host names that belong to the system.
    pub hostnames: Vec<String>,
    /// DingTalk userids who approve requests for this system.
    pub approvers: Vec<String>,
    /// Per-role ceiling, e.g. `{ ops = "1d", readonly = "7d" }`.
    pub max_duration: BTreeMap<String, String>,
}

/// `[chat]`
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ChatConfig {
    pub language: Lang,
    pub timezone: String,
    /// An unfinished request dialog is forgotten after this many idle minutes.
    pub dialog_idle_minutes: u32,
    /// When "until Friday" / 明天下班前 ends (`HH:MM` in `timezone`): the end of the working day.
    pub workday_end: String,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            language: Lang::ZhCn,
            timezone: "Asia/Shanghai".into(),
            dialog_idle_minutes: 10,
            workday_end: "18:00".into(),
        }
    }
}

impl PolicyConfig {
    /// Every problem found, each naming the key (`roles.ops.max_duration: …`). Empty = valid.
    pub fn validate(&self) -> Vec<String> {
        build(self).err().unwrap_or_default()
    }
}

// ---------------------------------------------------------------- resolved policy ----------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolePolicy {
    pub role: Role,
    pub accounts: Vec<String>,
    pub actions: Vec<String>,
    pub max_duration: AccessDuration,
    pub label_zh: String,
    pub label_en: String,
}

impl RolePolicy {
    /// Defaults: ops logs in as the `ops` account with file transfer and clipboard for 7 days at
    /// most; readonly logs in as `readonly`, terminal only, for 30 days at most.
    pub fn default_for(role: Role) -> (Vec<String>, Vec<String>, u64, &'static str, &'static str) {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match role {
            Role::Ops => (
                v(&["@SPEC", "ops"]),
                v(&["connect", "upload", "download", "copy", "paste"]),
                7 * duration::DAY,
                "运维",
                "ops",
            ),
            Role::Readonly => (
                v(&["@SPEC", "readonly"]),
                v(&["connect"]),
                30 * duration::DAY,
                "只读",
                "read-only",
            ),
        }
    }
    pub fn label(&self, lang: Lang) -> &str {
        match lang {
            Lang::ZhCn => &self.label_zh,
            Lang::En => &self.label_en,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemPolicy {
    pub name: String,
    pub aliases: Vec<String>,
    pub node: Option<String>,
    pub blocks: Vec<AddrBlock>,
    pub hostnames: Vec<String>,
    pub approvers: Vec<DingUserId>,
    pub max_duration: BTreeMap<Role, AccessDuration>,
}

impl SystemPolicy {
    /// Name or alias, case-insensitive: an unresolved `Hostname("payments")` still routes.
    fn is_named(&self, n: &str) -> bool {
        self.name.eq_ignore_ascii_case(n) || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(n))
    }
    fn covers(&self, t: &Target) -> bool {
        match t {
            Target::Address(ip) => self.blocks.iter().any(|b| b.contains(ip)),
            Target::Hostname(h) => {
                self.hostnames.iter().any(|x| x == h.key()) || self.is_named(h.key())
            }
            Target::System(s) => self.name == *s,
        }
    }
}

/// A complete access request, as the dialog hands it over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub targets: Vec<Target>,
    pub role: Role,
    pub duration: AccessDuration,
    /// The end the requester named (`到周五`), when they named one; `duration` is its length
    /// at the time of asking.
    pub ends_at: Option<jiff::Timestamp>,
    /// Asked for this person by the sender (`/apply for <user> …`): the order is theirs.
    pub on_behalf_of: Option<DingUserId>,
    pub reason: Option<String>,
}

/// What the policy needs to know about an order to judge a decision on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionSubject {
    pub requester: DingUserId,
    /// Approvers recorded on the order when it was routed (config may have changed since).
    pub approvers: Vec<DingUserId>,
    /// Who has already approved.
    pub decided_by: Vec<DingUserId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PolicyViolation {
    #[error("this user may not request access")]
    NotAllowedToRequest,
    #[error("no hosts in the request")]
    NoTargets,
    #[error("{count} hosts requested, at most {max} allowed")]
    TooManyAddresses { count: usize, max: usize },
    #[error("{requested:?} is longer than the {max:?} allowed for {role:?}")]
    DurationTooLong {
        requested: AccessDuration,
        max: AccessDuration,
        role: Role,
        /// The system whose limit applies; `None` for the role's own limit.
        system: Option<String>,
    },
    #[error("a reason is required")]
    ReasonMissing,
    #[error("`{0}` is not a configured system")]
    UnknownSystem(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Denied {
    #[error("not an approver for this request")]
    NotApprover,
    #[error("requesters may not approve their own request")]
    SelfApproval,
    #[error("already approved by this person")]
    AlreadyDecided,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid policy configuration: {}", problems.join("; "))]
pub struct PolicyError {
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub approval_mode: ApprovalMode,
    pub process_code: Option<String>,
    pub default_approvers: Vec<DingUserId>,
    pub admins: BTreeSet<DingUserId>,
    pub requesters: BTreeSet<DingUserId>,
    /// May file requests on someone else's behalf (as admins may).
    pub team_leads: BTreeSet<DingUserId>,
    pub self_approval: bool,
    pub approvals_required: u32,
    pub reason_required: bool,
    pub auto_create_user: bool,
    pub max_addresses: usize,
    pub ops: RolePolicy,
    pub readonly: RolePolicy,
    pub systems: Vec<SystemPolicy>,
    pub lang: Lang,
    pub timezone: jiff::tz::TimeZone,
    pub timezone_name: String,
    pub dialog_idle_ms: i64,
    /// The end of the working day, where "until <day>" ends unless a time is named.
    pub workday_end: jiff::civil::Time,
    pub identity: IdentityConfig,
}

impl Policy {
    pub fn from_config(cfg: &PolicyConfig) -> Result<Policy, PolicyError> {
        build(cfg).map_err(|problems| PolicyError { problems })
    }

    pub fn is_admin(&self, user: &DingUserId) -> bool {
        self.admins.contains(user)
    }

    /// May `user` ask on someone else's behalf? Admins and the configured team leads.
    pub fn may_file_for_others(&self, user: &DingUserId) -> bool {
        self.is_admin(user) || self.team_leads.contains(user)
    }

    /// An order's targets with every name that is a configured system read as that system.
    /// New orders record systems as such already (the dialog resolved them); orders stored
    /// before targets were typed recorded plain words, which read back as host names.
    pub fn known_targets(&self, targets: &[Target]) -> Vec<Target> {
        targets
            .iter()
            .map(|t| match t {
                Target::Address(_) => t.clone(),
                Target::Hostname(h) => self
                    .system_named(h.as_typed())
                    .map_or_else(|| t.clone(), Target::System),
                Target::System(s) => Target::System(self.system_named(s).unwrap_or(s.clone())),
            })
            .collect()
    }

    pub fn role(&self, role: Role) -> &RolePolicy {
        match role {
            Role::Ops => &self.ops,
            Role::Readonly => &self.readonly,
        }
    }

    /// Systems any of the targets belong to, in config order.
    pub fn systems_for(&self, targets: &[Target]) -> Vec<&SystemPolicy> {
        self.systems
            .iter()
            .filter(|s| targets.iter().any(|t| s.covers(t)))
            .collect()
    }

    /// Approvers for a request: each target's system approvers, or the default approvers for a
    /// target no system (with approvers) claims; de-duplicated, first-seen order.
    pub fn route_approvers(&self, targets: &[Target]) -> Vec<DingUserId> {
        let mut out: Vec<DingUserId> = Vec::new();
        let mut push = |u: &DingUserId| {
            if !out.contains(u) {
                out.push(u.clone());
            }
        };
        for t in targets {
            let mut claimed = false;
            for s in self.systems.iter().filter(|s| s.covers(t)) {
                if !s.approvers.is_empty() {
                    claimed = true;
                    s.approvers.iter().for_each(&mut push);
                }
            }
            if !claimed {
                self.default_approvers.iter().for_each(&mut push);
            }
        }
        out
    }

    /// Approvers to ask for `requester`'s request: [`Self::route_approvers`] without the
    /// requester (unless self-approval is allowed); when that leaves nobody, the default
    /// approvers, then the admins, again without the requester. Empty only when nobody else
    /// exists to decide, which the caller must report instead of waiting forever.
    pub fn approvers_for(&self, requester: &DingUserId, targets: &[Target]) -> Vec<DingUserId> {
        let others = |v: Vec<DingUserId>| -> Vec<DingUserId> {
            v.into_iter()
                .filter(|u| self.self_approval || u != requester)
                .collect()
        };
        let routed = others(self.route_approvers(targets));
        if !routed.is_empty() {
            return routed;
        }
        let defaults = others(self.default_approvers.clone());
        if !defaults.is_empty() {
            return defaults;
        }
        others(self.admins.iter().cloned().collect())
    }

    /// The longest allowed duration for `role` on these targets and, when a system's limit is
    /// the binding one, that system's name.
    pub fn max_duration(&self, role: Role, targets: &[Target]) -> (AccessDuration, Option<String>) {
        let mut best = (self.role(role).max_duration, None);
        for s in self.systems_for(targets) {
            if let Some(m) = s.max_duration.get(&role) {
                if *m < best.0 {
                    best = (*m, Some(s.name.clone()));
                }
            }
        }
        best
    }

    pub fn check_targets(&self, targets: &[Target]) -> Result<(), PolicyViolation> {
        if targets.is_empty() {
            return Err(PolicyViolation::NoTargets);
        }
        if targets.len() > self.max_addresses {
            return Err(PolicyViolation::TooManyAddresses {
                count: targets.len(),
                max: self.max_addresses,
            });
        }
        for t in targets {
            if let Target::System(s) = t {
                if !self.systems.iter().any(|x| x.name == *s) {
                    return Err(PolicyViolation::UnknownSystem(s.clone()));
                }
            }
        }
        Ok(())
    }

    pub fn check_duration(
        &self,
        role: Role,
        targets: &[Target],
        requested: AccessDuration,
    ) -> Result<(), PolicyViolation> {
        let (max, system) = self.max_duration(role, targets);
        if requested > max {
            return Err(PolicyViolation::DurationTooLong {
                requested,
                max,
                role,
                system,
            });
        }
        Ok(())
    }

    pub fn check_reason(&self, reason: Option<&str>) -> Result<(), PolicyViolation> {
        if self.reason_required && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(PolicyViolation::ReasonMissing);
        }
        Ok(())
    }

    /// All request rules, in the order a user would fix them.
    pub fn check_request(
        &self,
        requester: &DingUserId,
        req: &AccessRequest,
    ) -> Result<(), PolicyViolation> {
        if !self.requesters.is_empty() && !self.requesters.contains(requester) {
            return Err(PolicyViolation::NotAllowedToRequest);
        }
        self.check_targets(&req.targets)?;
        self.check_duration(req.role, &req.targets, req.duration)?;
        self.check_reason(req.reason.as_deref())
    }

    /// May `approver` approve or reject this order?
    pub fn can_decide(
        &self,
        approver: &DingUserId,
        subject: &DecisionSubject,
    ) -> Result<(), Denied> {
        if !subject.approvers.contains(approver) {
            return Err(Denied::NotApprover);
        }
        if *approver == subject.requester && !self.self_approval {
            return Err(Denied::SelfApproval);
        }
        if subject.decided_by.contains(approver) {
            return Err(Denied::AlreadyDecided);
        }
        Ok(())
    }

    /// Enough distinct approvals? Self-approvals count only when self-approval is allowed.
    pub fn approvals_complete(&self, subject: &DecisionSubject) -> bool {
        let n = subject
            .decided_by
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|u| self.self_approval || **u != subject.requester)
            .count();
        n >= self.approvals_required as usize
    }
}

impl SystemLookup for Policy {
    fn system_named(&self, name: &str) -> Option<String> {
        let n = name.trim();
        self.systems
            .iter()
            .find(|s| {
                s.name.eq_ignore_ascii_case(n)
                    || s.aliases.iter().any(|a| a.eq_ignore_ascii_case(n))
            })
            .map(|s| s.name.clone())
    }
}

fn users(v: &[String]) -> Vec<DingUserId> {
    let mut out: Vec<DingUserId> = Vec::new();
    for u in v.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let id = DingUserId::new(u);
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

fn build(cfg: &PolicyConfig) -> Result<Policy, Vec<String>> {
    let mut p: Vec<String> = Vec::new();

    if cfg.approval.mode == ApprovalMode::Oa
        && cfg
            .approval
            .process_code
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
    {
        p.push("approval.process_code: required when approval.mode = \"oa\"".into());
    }
    let default_approvers = users(&cfg.approval.default_approvers);
    if default_approvers.is_empty() {
        p.push(
            "approval.default_approvers: empty; requests for hosts outside [[systems]] would have \
             nobody to approve them"
                .into(),
        );
    }
    let pol = &cfg.policy;
    if pol.approvals_required == 0 {
        p.push("policy.approvals_required: must be at least 1".into());
    }
    if pol.max_addresses == 0 || pol.max_addresses > PARSE_MAX_TARGETS {
        p.push(format!(
            "policy.max_addresses: must be between 1 and {PARSE_MAX_TARGETS}"
        ));
    }

    let mut role = |r: Role, c: &RoleConfig| -> Option<RolePolicy> {
        let (acc, act, max, zh, en) = RolePolicy::default_for(r);
        let key = format!("roles.{}", r.key());
        let accounts = c.accounts.clone().unwrap_or(acc);
        if accounts.iter().all(|a| a.trim().is_empty() || a == "@SPEC") {
            p.push(format!(
                "{key}.accounts: names no account (e.g. [\"@SPEC\", \"{}\"] or [\"@ALL\"])",
                r.key()
            ));
        }
        let actions = c.actions.clone().unwrap_or(act);
        if actions.is_empty() {
            p.push(format!("{key}.actions: empty; use e.g. [\"connect\"]"));
        }
        for a in &actions {
            if !JMS_ACTIONS.contains(&a.as_str()) {
                p.push(format!(
                    "{key}.actions: `{a}` is not a JumpServer action ({})",
                    JMS_ACTIONS.join(", ")
                ));
            }
        }
        let max_duration = match &c.max_duration {
            None => AccessDuration::from_minutes(max).ok(),
            Some(s) => match duration::parse(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    p.push(format!("{key}.max_duration: `{s}`: {e}"));
                    None
                }
            },
        }?;
        Some(RolePolicy {
            role: r,
            accounts,
            actions,
            max_duration,
            label_zh: c.label_zh.clone().unwrap_or_else(|| zh.into()),
            label_en: c.label_en.clone().unwrap_or_else(|| en.into()),
        })
    };
    let ops = role(Role::Ops, &cfg.roles.ops);
    let readonly = role(Role::Readonly, &cfg.roles.readonly);

    let mut names = BTreeSet::new();
    let mut systems = Vec::new();
    for (i, s) in cfg.systems.iter().enumerate() {
        let key = format!("systems[{i}]");
        if s.name.trim().is_empty() {
            p.push(format!("{key}.name: empty"));
        }
        for n in std::iter::once(&s.name).chain(s.aliases.iter()) {
            if !n.trim().is_empty() && !names.insert(n.trim().to_lowercase()) {
                p.push(format!("{key}: name or alias `{n}` is used twice"));
            }
        }
        let mut blocks = Vec::new();
        for a in &s.addresses {
            match AddrBlock::parse(a) {
                Some(b) => blocks.push(b),
                None => p.push(format!(
                    "{key}.addresses: `{a}` is not an address or CIDR block"
                )),
            }
        }
        let mut hostnames = Vec::new();
        for h in &s.hostnames {
            // The same canonical form as a requested name (lower case, no trailing dot), so
            // the comparison in `covers` is plain equality.
            match target::classify(h) {
                Ok(Target::Hostname(n)) => hostnames.push(n.key().to_string()),
                _ => p.push(format!("{key}.hostnames: `{h}` is not a host name")),
            }
        }
        let approvers = users(&s.approvers);
        if approvers.is_empty() && default_approvers.is_empty() {
            p.push(format!(
                "{key}.approvers: empty and no approval.default_approvers"
            ));
        }
        let mut max_duration = BTreeMap::new();
        for (r, v) in &s.max_duration {
            let Some(role) = Role::from_word(r).filter(|x| x.key() == r) else {
                p.push(format!(
                    "{key}.max_duration.{r}: unknown role (ops or readonly)"
                ));
                continue;
            };
            match duration::parse(v) {
                Ok(d) => {
                    max_duration.insert(role, d);
                }
                Err(e) => p.push(format!("{key}.max_duration.{r}: `{v}`: {e}")),
            }
        }
        systems.push(SystemPolicy {
            name: s.name.trim().to_string(),
            aliases: s.aliases.iter().map(|a| a.trim().to_string()).collect(),
            node: s.node.clone().filter(|n| !n.trim().is_empty()),
            blocks,
            hostnames,
            approvers,
            max_duration,
        });
    }

    let timezone = match jiff::tz::TimeZone::get(&cfg.chat.timezone) {
        Ok(tz) => Some(tz),
        Err(_) => {
            p.push(format!(
                "chat.timezone: `{}` is not a known IANA time zone (e.g. Asia/Shanghai)",
                cfg.chat.timezone
            ));
            None
        }
    };
    if cfg.chat.dialog_idle_minutes == 0 {
        p.push("chat.dialog_idle_minutes: must be at least 1".into());
    }
    let workday_end = match cfg.chat.workday_end.trim().parse::<jiff::civil::Time>() {
        Ok(t) => t,
        Err(_) => {
            p.push(format!(
                "chat.workday_end: `{}` is not a time of day (write e.g. \"18:00\")",
                cfg.chat.workday_end
            ));
            jiff::civil::Time::midnight()
        }
    };
    p.extend(cfg.identity.validate());

    match (ops, readonly, timezone) {
        (Some(ops), Some(readonly), Some(timezone)) if p.is_empty() => Ok(Policy {
            approval_mode: cfg.approval.mode,
            process_code: cfg.approval.process_code.clone(),
            default_approvers,
            admins: users(&pol.admins).into_iter().collect(),
            requesters: users(&pol.requesters).into_iter().collect(),
            team_leads: users(&pol.team_leads).into_iter().collect(),
            self_approval: pol.self_approval,
            approvals_required: pol.approvals_required,
            reason_required: pol.reason_required,
            auto_create_user: pol.auto_create_user,
            max_addresses: pol.max_addresses,
            ops,
            readonly,
            systems,
            lang: cfg.chat.language,
            timezone,
            timezone_name: cfg.chat.timezone.clone(),
            dialog_idle_ms: i64::from(cfg.chat.dialog_idle_minutes) * 60_000,
            workday_end,
            identity: cfg.identity.clone(),
        }),
        _ => Err(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_is_valid_and_matches_the_defaults() {
        let cfg: PolicyConfig = match toml::from_str(EXAMPLE_TOML) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cfg.validate(), Vec::<String>::new());
        let mut plain = PolicyConfig::default();
        plain.approval.default_approvers = vec!["manager01".into()];
        plain.policy.admins = vec!["ops-lead01".into()];
        let (a, b) = (Policy::from_config(&cfg), Policy::from_config(&plain));
        let (Ok(a), Ok(b)) = (a, b) else {
            panic!("both must build")
        };
        // The example spells out the defaults: same roles and [policy] values.
        assert_eq!((a.ops, a.readonly), (b.ops, b.readonly));
        assert_eq!(
            (
                a.approvals_required,
                a.reason_required,
                a.max_addresses,
                a.self_approval
            ),
            (
                b.approvals_required,
                b.reason_required,
                b.max_addresses,
                b.self_approval
            )
        );
    }

    #[test]
    fn defaults_need_only_default_approvers() {
        let mut cfg = PolicyConfig::default();
        assert_eq!(cfg.validate().len(), 1);
        cfg.approval.default_approvers = vec!["boss".into()];
        assert_eq!(cfg.validate(), Vec::<String>::new());
        let p = Policy::from_config(&cfg);
        assert!(p.as_ref().is_ok_and(|p| p.reason_required
            && !p.self_approval
            && p.approvals_required == 1
            && p.max_addresses == 50));
    }
    const SYSTEMS: &str = r#"
[approval]
default_approvers = ["manager01"]
[[systems]]
name = "支付系统"
aliases = ["payments"]
addresses = ["10.9.0.0/16"]
hostnames = ["pay-db-01."]
approvers = ["pay-owner01"]
max_duration = { ops = "1d" }
"#;

    /// Everything policy decides about a request for `targets`: approvers, ceiling and the
    /// system it applies for, the systems involved, and the verdict on 3 days of ops.
    type Decision = (
        Vec<DingUserId>,
        (AccessDuration, Option<String>),
        Vec<String>,
        Result<(), PolicyViolation>,
    );

    fn decision(p: &Policy, targets: &[Target]) -> Decision {
        let three_days = duration::parse("3d").unwrap_or_else(|e| panic!("{e}"));
        (
            p.approvers_for(&DingUserId::new("alice01"), targets),
            p.max_duration(Role::Ops, targets),
            p.systems_for(targets)
                .iter()
                .map(|s| s.name.clone())
                .collect(),
            p.check_duration(Role::Ops, targets, three_days),
        )
    }

    #[test]
    fn every_spelling_of_a_host_gets_the_same_decision() {
        use crate::domain::command::{self, Command};
        use crate::domain::dialog::{self, Problem, Reply};
        use crate::domain::target::SPELLINGS_OF_10_9_96_7;
        let cfg: PolicyConfig = toml::from_str(SYSTEMS).unwrap_or_else(|e| panic!("{e}"));
        let p = Policy::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let names = [
            "pay-db-01",
            "Pay-DB-01",
            "pay-db-01.",
            "ＰＡＹ－ＤＢ－０１",
            "pay-db-01。",
        ];
        for (reference, spellings) in [
            ("10.9.96.7", SPELLINGS_OF_10_9_96_7),
            ("pay-db-01", &names[..]),
        ] {
            let want_targets =
                target::parse_list([reference], 50).unwrap_or_else(|e| panic!("{e}"));
            let want = decision(&p, &want_targets);
            // The reference itself is the strict one: the system's approvers and its 1-day limit.
            assert_eq!(want.0, vec![DingUserId::new("pay-owner01")]);
            assert_eq!(want.2, vec!["支付系统".to_string()]);
            assert!(matches!(
                &want.3,
                Err(PolicyViolation::DurationTooLong { system: Some(s), .. }) if s == "支付系统"
            ));
            for s in spellings {
                let targets = match command::parse(&format!("/apply host {s} ops 3d")) {
                    Ok(Command::ApplyHost(d)) => d.targets,
                    other => panic!("{s:?}: {other:?}"),
                };
                assert_eq!(targets, want_targets, "{s:?}");
                assert_eq!(decision(&p, &targets), want, "{s:?}");
                // The dialog (what the chat path runs) refuses 3 days with the system's limit…
                let step = dialog::step(None, &format!("申请主机 {s} 运维 3天 原因：排查"), &p, 0);
                assert!(
                    matches!(
                        &step.reply,
                        Reply::Ask { problem: Some(Problem::Policy(PolicyViolation::DurationTooLong { system: Some(n), .. })), .. } if n == "支付系统"
                    ),
                    "{s:?}: {:?}",
                    step.reply
                );
                // …and hands over 1 day with the canonical target the order will record.
                let step = dialog::step(None, &format!("申请主机 {s} 运维 1天 原因：排查"), &p, 0);
                let done = step
                    .done
                    .unwrap_or_else(|| panic!("{s:?}: {:?}", step.reply));
                assert_eq!(done.targets, want_targets, "{s:?}");
                assert_eq!(done.targets[0].to_string().to_ascii_lowercase(), reference);
                assert_eq!(decision(&p, &done.targets), want, "{s:?}");
            }
        }
    }
}
