//! `accessbot doctor`: checks each credential and right against the real DingTalk and JumpServer
//! and prints a checklist, one line per check (✓ passed, ✗ failed, – cannot be checked without a
//! side effect), and under each failure the exact console setting to change.
//!
//! Only reads, plus one harmless write per card template: a card instance created from it and
//! delivered to nobody (DingTalk has no read of a template). Writes to JumpServer (create a
//! grant, a user, a host) cannot be tried without changing something, so their lines say so and
//! point at the first real grant instead.
use crate::chat::text::{oa_label, OaField};
use crate::config::Config;
use crate::dingtalk::client::DingTalkClient;
use crate::dingtalk::ListenerMode;
use crate::domain::ids::DingUserId;
use crate::domain::policy::ApprovalMode;
use crate::jumpserver::client::JmsClient;
use crate::jumpserver::error::JmsError;
use std::fmt;

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Not checkable without a side effect, or not needed with this configuration.
    Skip,
}

#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
    /// For a failure: what to change, and where.
    pub fix: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail)
    }

    /// The check called `name`.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Verdict::Pass, detail.into(), None);
    }
    fn fail(&mut self, name: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Verdict::Fail, detail.into(), Some(fix.into()));
    }
    fn skip(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Verdict::Skip, detail.into(), None);
    }
    fn push(&mut self, name: &str, verdict: Verdict, detail: String, fix: Option<String>) {
        self.checks.push(Check {
            name: name.to_owned(),
            verdict,
            detail,
            fix,
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let mark = match c.verdict {
                Verdict::Pass => "✓",
                Verdict::Fail => "✗",
                Verdict::Skip => "–",
            };
            writeln!(f, "{mark} {}: {}", c.name, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(f, "    fix: {fix}")?;
            }
        }
        let failed = self.failed().count();
        if failed == 0 {
            writeln!(f, "all checks passed")
        } else {
            writeln!(f, "{failed} check(s) failed")
        }
    }
}

const DT_CREDENTIALS: &str = "DingTalk developer console (open-dev.dingtalk.com) → 应用开发 → \
企业内部应用 → your app → 凭证与基础信息: copy AppKey and AppSecret into dingtalk.app_key and \
dingtalk.app_secret";

/// Runs every check for `config`; never panics on what the services answer.
pub async fn run(config: &Config) -> Report {
    let mut r = Report::default();
    let clock: crate::clock::SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
    let dt = DingTalkClient::new(&config.dingtalk, clock.clone());
    dingtalk(config, &dt, &mut r).await;
    match JmsClient::new(config.jumpserver.clone(), clock) {
        Ok(jms) => jumpserver(config, &jms, &mut r).await,
        Err(e) => r.fail(
            "jumpserver config",
            e.to_string(),
            "fix [jumpserver] in the config file (accessbot check-config lists the problems)",
        ),
    }
    r
}

async fn dingtalk(config: &Config, dt: &DingTalkClient, r: &mut Report) {
    let d = &config.dingtalk;
    if let Err(e) = dt.check_token().await {
        r.fail("dingtalk token", e.to_string(), DT_CREDENTIALS);
        r.skip(
            "dingtalk checks",
            "skipped: every DingTalk call needs the token",
        );
        return;
    }
    r.pass("dingtalk token", format!("AppKey {} accepted", d.app_key));

    // A person the bot must find: an admin, else a default approver.
    let who = config
        .policy
        .admins
        .first()
        .or(config.approval.default_approvers.first());
    match who {
        None => r.skip(
            "dingtalk user lookup",
            "no policy.admins or approval.default_approvers to look up",
        ),
        Some(id) => match dt.get_user(&DingUserId::new(id)).await {
            Ok(u) => r.pass("dingtalk user lookup", format!("{id} is {}", u.name)),
            Err(e) => r.fail(
                "dingtalk user lookup",
                format!("{id}: {e}"),
                "developer console → your app → 权限管理: grant 通讯录个人信息读权限 \
                 (qyapi_get_member) and 成员信息读权限; and check that the userid is right and the \
                 person is inside the app's 可见范围 (版本管理与发布 → 可使用范围)",
            ),
        },
    }

    r.skip(
        "dingtalk robot",
        format!(
            "robot code {} cannot be checked without sending a message: send 帮助 to the bot \
             in a 1:1 chat (a wrong robot code fails the first reply; developer console → your \
             app → 应用能力 → 机器人)",
            d.robot_code()
        ),
    );

    // The OA approval template and the labels the bot fills.
    let oa = config.approval.mode == ApprovalMode::Oa;
    match config
        .approval
        .process_code
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        None if oa => r.fail(
            "dingtalk approval template",
            "approval.mode is \"oa\" but approval.process_code is empty",
            "DingTalk admin console (oa.dingtalk.com) → 审批 → 表单管理 → your template → the \
             URL holds processCode=PROC-…: copy it into approval.process_code",
        ),
        None => r.skip(
            "dingtalk approval template",
            "not used (approval.mode is \"card\" and no process_code)",
        ),
        Some(code) => match dt.form_labels(code).await {
            Err(e) => r.fail(
                "dingtalk approval template",
                format!("{code}: {e}"),
                "DingTalk admin console (oa.dingtalk.com) → 审批 → 表单管理: copy the template's \
                 processCode into approval.process_code; developer console → your app → 权限管理: \
                 grant 审批流程读权限 (Workflow) if the code is right",
            ),
            Ok(labels) => {
                let lang = config.chat.language;
                let missing: Vec<&str> = OaField::ALL
                    .iter()
                    .map(|f| oa_label(lang, *f))
                    .filter(|l| !labels.iter().any(|have| have == l))
                    .collect();
                if missing.is_empty() {
                    r.pass(
                        "dingtalk approval template",
                        format!("{code}: every field the bot fills is on the form"),
                    );
                } else {
                    r.fail(
                        "dingtalk approval template",
                        format!(
                            "{code}: the form lacks {} (it has: {})",
                            quoted(&missing),
                            quoted(&labels.iter().map(String::as_str).collect::<Vec<_>>())
                        ),
                        format!(
                            "DingTalk admin console → 审批 → 表单管理 → edit the template: add \
                             text fields (单行/多行输入框) labelled exactly {}, then publish",
                            quoted(&missing)
                        ),
                    );
                }
            }
        },
    }

    // Card templates and the callback route key.
    let http = d.mode == ListenerMode::Http;
    let route_key = config.cards.callback_route_key.trim();
    let templates = [
        ("approval_template_id", &config.cards.approval_template_id),
        ("request_template_id", &config.cards.request_template_id),
    ];
    let any_template = templates.iter().any(|(_, t)| !t.is_empty());
    if any_template && http {
        if route_key.is_empty() {
            r.fail(
                "dingtalk card route key",
                "cards.callback_route_key is empty in HTTP mode: card taps would reach nobody",
                "set cards.callback_route_key (any short word, e.g. \"accessbot\"); the bot \
                 registers it with its callback URL at start",
            );
        } else {
            r.pass(
                "dingtalk card route key",
                format!("cards.callback_route_key = {route_key}"),
            );
        }
    }
    let stamp = jiff::Timestamp::now().as_millisecond();
    for (key, id) in templates {
        let name = format!("dingtalk card {key}");
        if id.is_empty() {
            r.skip(&name, format!("cards.{key} not set"));
            continue;
        }
        let track = format!("accessbot-doctor-{stamp}-{key}");
        let route = (http && !route_key.is_empty()).then_some(route_key);
        match dt.create_undelivered_card(id, &track, route).await {
            Ok(()) => r.pass(
                &name,
                format!("{id} exists (a card was created from it, delivered to nobody)"),
            ),
            Err(e) => r.fail(
                &name,
                format!("{id}: {e}"),
                format!(
                    "developer console → 卡片平台 → 模板列表: publish the template (cards/ in \
                     this repository) and copy its id (…​.schema) into cards.{key}; 权限管理: grant \
                     Card.Instance.Write if the id is right"
                ),
            ),
        }
    }
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("“{s}”"))
        .collect::<Vec<_>>()
        .join(", ")
}

const JMS_ROLE: &str = "JumpServer → 系统设置 → 角色列表 (or 组织设置 → 组织角色) → the bot \
account's role → 权限: tick";

async fn jumpserver(config: &Config, jms: &JmsClient, r: &mut Report) {
    let c = &config.jumpserver;
    let user = match jms.profile().await {
        Ok(u) => {
            r.pass("jumpserver auth", format!("{} as {u}", c.url));
            u
        }
        Err(e) => {
            let fix = match &e {
                JmsError::Transport(_) => format!(
                    "check jumpserver.url ({}) and that this host reaches it",
                    c.url
                ),
                _ => "JumpServer → 个人信息 → API Key of the bot account (or create one): copy \
                      its ID and Secret into jumpserver.access_key_id and access_key_secret"
                    .to_owned(),
            };
            r.fail("jumpserver auth", e.to_string(), fix);
            r.skip(
                "jumpserver checks",
                "skipped: every JumpServer call needs the credentials",
            );
            return;
        }
    };
    match jms.detect_version().await {
        Ok(v) => r.pass("jumpserver version", v.to_string()),
        Err(e) => r.fail(
            "jumpserver version",
            e.to_string(),
            "accessbot needs JumpServer v2 or later on jumpserver.url",
        ),
    }
    match jms.root_node().await {
        Ok(n) => r.pass(
            "jumpserver org and root node",
            format!("org {}: root node {}", c.org, n.value),
        ),
        Err(e) => r.fail(
            "jumpserver org and root node",
            format!("org {}: {e}", c.org),
            format!(
                "set jumpserver.org to the id of the org the bot works in (JumpServer → 组织管理) \
                 and add the bot account to it; {JMS_ROLE} assets.view_node"
            ),
        ),
    }
    match jms.platform_id(&c.default_platform).await {
        Ok(id) => r.pass(
            "jumpserver platform",
            format!("{} (id {id})", c.default_platform),
        ),
        Err(e) => r.fail(
            "jumpserver platform",
            format!("{}: {e}", c.default_platform),
            "set jumpserver.default_platform to a platform name listed under JumpServer → \
             资产管理 → 平台列表 (e.g. Linux)",
        ),
    }
    // One read per endpoint family the bot uses (docs/setup-jumpserver.md has the table).
    let own = match jms.find_user_by_username(&user).await {
        Ok(Some(u)) => Some(u.id),
        _ => None,
    };
    let granted_path = own
        .as_ref()
        .map(|id| format!("/api/v1/perms/users/{id}/assets/"));
    let mut reads: Vec<(&str, String, &str)> = vec![
        ("users", "/api/v1/users/users/".into(), "users.view_user"),
        ("hosts", "/api/v1/assets/hosts/".into(), "assets.view_asset"),
        ("nodes", "/api/v1/assets/nodes/".into(), "assets.view_node"),
        (
            "platforms",
            "/api/v1/assets/platforms/".into(),
            "assets.view_platform",
        ),
        (
            "accounts",
            "/api/v1/accounts/accounts/".into(),
            "accounts.view_account",
        ),
        (
            "permissions",
            "/api/v1/perms/asset-permissions/".into(),
            "perms.view_assetpermission",
        ),
    ];
    if let Some(p) = granted_path {
        reads.push(("user assets (read-back)", p, "perms.view_userassets"));
    }
    if config.workflow.end_sessions {
        reads.push((
            "sessions",
            "/api/v1/terminal/sessions/".into(),
            "terminal.view_session",
        ));
    }
    for (family, path, right) in reads {
        let name = format!("jumpserver right: read {family}");
        match jms.probe_read(&path, &[]).await {
            Ok(()) => r.pass(&name, format!("GET {path} ({right})")),
            Err(e) => r.fail(
                &name,
                format!("GET {path}: {e}"),
                format!("{JMS_ROLE} {right}"),
            ),
        }
    }
    let mut writes = vec![
        "perms.add_assetpermission",
        "perms.change_assetpermission",
        "users.change_user",
        "assets.add_node",
        "assets.add_host",
    ];
    if config.policy.auto_create_user {
        writes.push("users.add_user");
    }
    r.skip(
        "jumpserver write rights",
        format!(
            "not probed (a write cannot be tried without changing JumpServer): {}; the first \
             grant shows a missing one, and docs/setup-jumpserver.md lists what each is for",
            writes.join(", ")
        ),
    );
}
