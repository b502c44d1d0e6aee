//! Every sentence a user reads, in one place: zh-CN (default) and English, chosen by [`Lang`].
//! Plain functions, no i18n crate: the two languages sit side by side in each `match`, which
//! makes a missing translation a compile error rather than a blank message.
pub use crate::domain::command::Lang;
use crate::domain::command::{display_word, spec, CommandError, CommandKind, Role};
use crate::domain::dialog::{Field, Problem, Reply};
use crate::domain::duration::{AccessDuration, DurationError};
use crate::domain::identity::IdentityError;
use crate::domain::ids::OrderId;
/// Things that can go wrong after a decision, in words a requester understands.
pub use crate::domain::notice::FailureKind as Failure;
use crate::domain::order::Status;
use crate::domain::policy::{Denied, PolicyViolation};
use crate::domain::target::{Target, TargetError};
use jiff::tz::TimeZone;
use jiff::Timestamp;

fn pick(lang: Lang, zh: String, en: String) -> String {
    match lang {
        Lang::ZhCn => zh,
        Lang::En => en,
    }
}

/// `3天4小时` / `3 days 4 hours`.
pub fn duration(lang: Lang, d: AccessDuration) -> String {
    let p = d.parts();
    let mut zh = String::new();
    let mut en: Vec<String> = Vec::new();
    for (n, z, e) in [
        (p.weeks, "周", "week"),
        (p.days, "天", "day"),
        (p.hours, "小时", "hour"),
        (p.minutes, "分钟", "minute"),
    ] {
        if n > 0 {
            zh.push_str(&format!("{n}{z}"));
            en.push(format!("{n} {e}{}", if n == 1 { "" } else { "s" }));
        }
    }
    pick(lang, zh, en.join(" "))
}

/// Minutes as text (for limits that are not an `AccessDuration`).
fn minutes(lang: Lang, m: u64) -> String {
    match AccessDuration::from_minutes(m) {
        Ok(d) => duration(lang, d),
        Err(_) => m.to_string(),
    }
}

/// A moment in the configured time zone: `2026-11-22 18:00 (Asia/Shanghai)`.
pub fn time(ts: Timestamp, tz: &TimeZone) -> String {
    let local = ts
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    match tz.iana_name() {
        Some(name) => format!("{local} ({name})"),
        None => local,
    }
}

pub fn role(lang: Lang, r: Role) -> &'static str {
    match (lang, r) {
        (Lang::ZhCn, Role::Ops) => "运维",
        (Lang::ZhCn, Role::Readonly) => "只读",
        (Lang::En, Role::Ops) => "ops",
        (Lang::En, Role::Readonly) => "read-only",
    }
}

/// `10.1.2.3、web1、支付系统（系统）`.
pub fn targets(lang: Lang, ts: &[Target]) -> String {
    let items: Vec<String> = ts
        .iter()
        .map(|t| match t {
            Target::System(s) => pick(lang, format!("{s}（系统）"), format!("{s} (system)")),
            other => other.to_string(),
        })
        .collect();
    items.join(if lang == Lang::ZhCn { "、" } else { ", " })
}

fn example(lang: Lang, kind: CommandKind) -> &'static str {
    let s = spec(kind);
    match lang {
        Lang::ZhCn => s.example_zh,
        Lang::En => s.example_en,
    }
}

pub fn help(lang: Lang, is_admin: bool) -> String {
    crate::domain::command::help_text(lang, is_admin)
}

// ------------------------------------------------------------------ errors ----------

pub fn duration_error(lang: Lang, e: &DurationError) -> String {
    match e {
        DurationError::Empty => pick(lang, "没有填写时长。".into(), "No duration given.".into()),
        DurationError::Zero => pick(
            lang,
            "时长必须大于 0。".into(),
            "The duration must be longer than zero.".into(),
        ),
        DurationError::Negative => pick(
            lang,
            "时长不能是负数。".into(),
            "The duration cannot be negative.".into(),
        ),
        DurationError::TooLong { max_minutes } => pick(
            lang,
            format!("时长太长，最多 {}。", minutes(lang, *max_minutes)),
            format!("That is too long; at most {}.", minutes(lang, *max_minutes)),
        ),
        DurationError::UnknownUnit { unit } => pick(
            lang,
            format!("看不懂时间单位“{unit}”，请用 分钟/小时/天/周（或 m/h/d/w）。"),
            format!("`{unit}` is not a unit of time; use m, h, d or w."),
        ),
        DurationError::MissingUnit { number } => pick(
            lang,
            format!("“{number}”缺少单位，例如 {number}小时 或 {number}天。"),
            format!("`{number}` has no unit; write e.g. {number}h or {number}d."),
        ),
        DurationError::Garbage { text } => pick(
            lang,
            format!("“{text}”不是时长，例如 30分钟、4小时、3天、1周。"),
            format!("`{text}` is not a duration; e.g. 30m, 4h, 3d, 1w."),
        ),
    }
}

pub fn target_error(lang: Lang, e: &TargetError) -> String {
    match e {
        TargetError::Empty => pick(
            lang,
            "没有填写主机。请发送 IP、主机名或系统名，多个用逗号或空格分隔。".into(),
            "No host given. Send IP addresses, host names or a system name, separated by commas or spaces."
                .into(),
        ),
        TargetError::BadAddress(a) => pick(
            lang,
            format!("“{a}”不是有效的 IP 地址（每段 0–255，例如 10.1.2.3）。"),
            format!("`{a}` is not a valid IP address (each part 0–255, e.g. 10.1.2.3)."),
        ),
        TargetError::Range(r) => pick(
            lang,
            format!("“{r}”是地址段，不支持按网段申请。请逐个列出主机，或申请它们所属的系统。"),
            format!("`{r}` is an address range, which cannot be requested. List the hosts one by one, or ask for their system."),
        ),
        TargetError::ZoneId(a) => pick(
            lang,
            format!("“{a}”带有网卡标识（%…），它指的是本机网卡而不是主机。请去掉 % 及其后的部分。"),
            format!("`{a}` carries a zone id (%…), which names a local interface, not a host. Leave out the % and what follows."),
        ),
        TargetError::BadHostname(h) => pick(
            lang,
            format!("“{h}”不是有效的主机名（字母、数字、连字符和点）。"),
            format!("`{h}` is not a valid host name (letters, digits, hyphens and dots)."),
        ),
        TargetError::UnknownSystem(s) => pick(
            lang,
            format!("没有名为“{s}”的系统。请检查名称，或直接填写 IP / 主机名。"),
            format!("There is no system called `{s}`. Check the name, or give IP addresses / host names."),
        ),
        TargetError::TooMany { count, max } => pick(
            lang,
            format!("一次申请了 {count} 台主机，最多 {max} 台。请分批申请或申请整个系统。"),
            format!("{count} hosts in one request; at most {max}. Split the request or ask for the whole system."),
        ),
    }
}

/// The answer to a message that is not a valid command: what was wrong, and an example.
pub fn command_error(lang: Lang, e: &CommandError) -> String {
    let with_example = |msg: String, kind: CommandKind| -> String {
        pick(
            lang,
            format!("{msg}\n例如：{}", example(lang, kind)),
            format!("{msg}\nFor example: {}", example(lang, kind)),
        )
    };
    match e {
        CommandError::Empty => pick(
            lang,
            "请发送命令，发送“帮助”查看全部命令。".into(),
            "Send a command; send /help to see them all.".into(),
        ),
        CommandError::TooLong { max } => pick(
            lang,
            format!("消息太长（超过 {max} 字），请精简后再发。"),
            format!("That message is too long (over {max} characters)."),
        ),
        CommandError::Unknown { word, suggestion } => match suggestion {
            Some(k) => pick(
                lang,
                format!(
                    "不认识“{word}”。你是想用“{}”（{}）吗？\n例如：{}",
                    display_word(*k, Lang::ZhCn),
                    display_word(*k, Lang::En),
                    example(lang, *k)
                ),
                format!(
                    "I don't know `{word}`. Did you mean {}?\nFor example: {}",
                    display_word(*k, Lang::En),
                    example(lang, *k)
                ),
            ),
            None => pick(
                lang,
                format!("不认识“{word}”。发送“帮助”查看可用命令。"),
                format!("I don't know `{word}`. Send /help to see the commands."),
            ),
        },
        CommandError::ApplyWhat => pick(
            lang,
            format!(
                "要申请什么？\n• 账号：{}\n• 主机：{}",
                example(lang, CommandKind::ApplyAccount),
                example(lang, CommandKind::ApplyHost)
            ),
            format!(
                "Apply for what?\n• an account: {}\n• hosts: {}",
                example(lang, CommandKind::ApplyAccount),
                example(lang, CommandKind::ApplyHost)
            ),
        ),
        CommandError::MissingOrderId { kind } => with_example(
            pick(
                lang,
                "缺少单号。单号在提交申请时的回复里，也可以发送“我的权限”查看。".into(),
                "The order id is missing. It is in the reply to your request; /my lists them."
                    .into(),
            ),
            *kind,
        ),
        CommandError::BadOrderId { kind, given } => with_example(
            pick(
                lang,
                format!("“{given}”不是单号（形如 R261122-007）。"),
                format!("`{given}` is not an order id (they look like R261122-007)."),
            ),
            *kind,
        ),
        CommandError::MissingReason { kind } => with_example(
            pick(
                lang,
                "请写明原因，申请人会看到。".into(),
                "Please give a reason; the requester will see it.".into(),
            ),
            *kind,
        ),
        CommandError::MissingSubject { kind } => with_example(
            pick(
                lang,
                "请写明要查询的主机或用户。".into(),
                "Say which host or user to look up.".into(),
            ),
            *kind,
        ),
        CommandError::TwoRoles => with_example(
            pick(
                lang,
                "同时写了“运维”和“只读”，请只选一个。".into(),
                "Both ops and read-only were given; pick one.".into(),
            ),
            CommandKind::ApplyHost,
        ),
        CommandError::Target(t) => with_example(target_error(lang, t), CommandKind::ApplyHost),
        CommandError::Duration(d) => with_example(duration_error(lang, d), CommandKind::ApplyHost),
    }
}

pub fn policy_violation(lang: Lang, v: &PolicyViolation) -> String {
    match v {
        PolicyViolation::NotAllowedToRequest => pick(
            lang,
            "你不在可申请权限的名单中，请联系管理员。".into(),
            "You are not on the list of people who may request access; ask an administrator."
                .into(),
        ),
        PolicyViolation::NoTargets => target_error(lang, &TargetError::Empty),
        PolicyViolation::TooManyAddresses { count, max } => target_error(
            lang,
            &TargetError::TooMany {
                count: *count,
                max: *max,
            },
        ),
        PolicyViolation::DurationTooLong {
            requested,
            max,
            role: r,
            system,
        } => {
            let scope_zh = system
                .as_ref()
                .map(|s| format!("系统“{s}”的"))
                .unwrap_or_default();
            let scope_en = system
                .as_ref()
                .map(|s| format!(" on system `{s}`"))
                .unwrap_or_default();
            pick(
                lang,
                format!(
                    "申请时长 {} 超过了{scope_zh}{}权限上限 {}。",
                    duration(lang, *requested),
                    role(lang, *r),
                    duration(lang, *max)
                ),
                format!(
                    "{} is longer than the {} allowed for {} access{scope_en}.",
                    duration(lang, *requested),
                    duration(lang, *max),
                    role(lang, *r)
                ),
            )
        }
        PolicyViolation::ReasonMissing => pick(
            lang,
            "需要填写申请原因。".into(),
            "A reason is required.".into(),
        ),
        PolicyViolation::UnknownSystem(s) => {
            target_error(lang, &TargetError::UnknownSystem(s.clone()))
        }
    }
}

pub fn denied(lang: Lang, d: &Denied, order: &OrderId) -> String {
    match d {
        Denied::NotApprover => pick(
            lang,
            format!("你不是申请 {order} 的审批人，无法处理。"),
            format!("You are not an approver of {order}."),
        ),
        Denied::SelfApproval => pick(
            lang,
            format!("不能审批自己的申请 {order}，请等待其他审批人处理。"),
            format!("You cannot approve your own request {order}; another approver has to."),
        ),
        Denied::AlreadyDecided => pick(
            lang,
            format!("你已经同意过申请 {order}，正在等待其他审批人。"),
            format!("You already approved {order}; waiting for the other approvers."),
        ),
    }
}

pub fn identity_error(lang: Lang, e: &IdentityError) -> String {
    match e {
        IdentityError::MissingField { field, .. } => pick(
            lang,
            format!("你的钉钉资料里没有 {field}，无法确定 JumpServer 用户名。请联系管理员补全资料或配置映射。"),
            format!("Your DingTalk profile has no {field}, so your JumpServer username cannot be worked out. Ask an administrator to fill it in or add a mapping."),
        ),
        IdentityError::NotMapped { .. } => pick(
            lang,
            "管理员还没有为你配置 JumpServer 用户名，请联系管理员。".into(),
            "No JumpServer username is configured for you yet; ask an administrator.".into(),
        ),
        IdentityError::Unusable { raw, field } => pick(
            lang,
            format!("无法从 {field}（“{raw}”）生成 JumpServer 用户名，请联系管理员配置映射。"),
            format!("No JumpServer username can be made from {field} (`{raw}`); ask an administrator to add a mapping."),
        ),
    }
}

/// Answer to a card submission that could not be read.
pub fn card_input_error(lang: Lang, e: &crate::chat::card::CardInputError) -> String {
    use crate::chat::card::CardInputError as E;
    match e {
        E::Command(c) => command_error(lang, c),
        E::BadRole(r) => pick(
            lang,
            format!("“{r}”不是权限类型，请选择“运维”或“只读”。"),
            format!("`{r}` is not an access type; choose ops or read-only."),
        ),
        E::Missing("reject_reason") => pick(
            lang,
            "拒绝时请填写原因。".into(),
            "Please give a reason to reject.".into(),
        ),
        E::Missing(_) | E::UnknownAction(_) => pick(
            lang,
            "卡片数据不完整，请刷新后重试，或直接发送命令。".into(),
            "The card sent incomplete data; reload it or send the command instead.".into(),
        ),
    }
}

pub fn admin_only(lang: Lang) -> String {
    pick(
        lang,
        "该命令仅限管理员使用。".into(),
        "That command is for administrators only.".into(),
    )
}

// ------------------------------------------------------------------ dialog ----------

fn problem(lang: Lang, p: &Problem) -> String {
    match p {
        Problem::Target(e) => target_error(lang, e),
        Problem::Duration(e) => duration_error(lang, e),
        Problem::NotARole(w) => pick(
            lang,
            format!("“{w}”不是权限类型。"),
            format!("`{w}` is not an access type."),
        ),
        Problem::ReasonEmpty => pick(
            lang,
            "原因不能为空。".into(),
            "The reason cannot be empty.".into(),
        ),
        Problem::ReasonTooLong { max } => pick(
            lang,
            format!("原因太长，请控制在 {max} 字以内。"),
            format!("The reason is too long; keep it under {max} characters."),
        ),
        Problem::Policy(v) => policy_violation(lang, v),
        Problem::Input(e) => command_error(lang, e),
    }
}

/// The question for one missing field.
pub fn ask(lang: Lang, field: Field, max_duration: Option<AccessDuration>) -> String {
    let q = match field {
        Field::Targets => pick(
            lang,
            "要访问哪些主机？请发送 IP、主机名或系统名，多个用逗号或空格分隔。".into(),
            "Which hosts? Send IP addresses, host names or a system name, separated by commas or spaces."
                .into(),
        ),
        Field::Role => pick(
            lang,
            "需要什么权限？回复“运维”（可上传下载）或“只读”（仅终端）。".into(),
            "What access? Reply `ops` (file transfer allowed) or `readonly` (terminal only).".into(),
        ),
        Field::Duration => {
            let max_zh = max_duration
                .map(|m| format!("，最长 {}", duration(lang, m)))
                .unwrap_or_default();
            let max_en = max_duration
                .map(|m| format!("; at most {}", duration(lang, m)))
                .unwrap_or_default();
            pick(
                lang,
                format!("需要多长时间？例如 4小时、3天{max_zh}。"),
                format!("For how long? e.g. 4h, 3d{max_en}."),
            )
        }
        Field::Reason => pick(
            lang,
            "请说明申请原因（审批人会看到）。".into(),
            "Why do you need it? (the approver will see this)".into(),
        ),
    };
    let tail = pick(
        lang,
        "（发送“取消”结束）".into(),
        " (send `cancel` to stop)".into(),
    );
    format!("{q}{tail}")
}

/// The text for a dialog reply; `None` for replies the caller renders itself (`Complete` → the
/// submitted message with the order id; `Command` → that command's own answer).
pub fn dialog_reply(lang: Lang, reply: &Reply, dropped_idle: bool) -> Option<String> {
    let body = match reply {
        Reply::Ask {
            field,
            problem: p,
            max_duration,
        } => {
            let q = ask(lang, *field, *max_duration);
            match p {
                Some(p) => format!("{}\n{q}", problem(lang, p)),
                None => q,
            }
        }
        Reply::Cancelled => pick(
            lang,
            "好的，已取消本次申请。".into(),
            "OK, request cancelled.".into(),
        ),
        Reply::NothingToCancel => pick(
            lang,
            "当前没有进行中的申请。要撤回已提交的申请，请发送“取消 <单号>”。".into(),
            "Nothing in progress. To withdraw a submitted request, send /cancel <order>.".into(),
        ),
        Reply::Error(e) => command_error(lang, e),
        Reply::Complete | Reply::Command(_) => return None,
    };
    if dropped_idle {
        Some(format!("{}\n{body}", dialog_expired(lang)))
    } else {
        Some(body)
    }
}

pub fn dialog_expired(lang: Lang) -> String {
    pick(
        lang,
        "（上一次未完成的申请已超时，需要重新开始。）".into(),
        "(Your unfinished request timed out; starting over.)".into(),
    )
}

/// The stored dialog could not be read (written by another version, or damaged).
pub fn dialog_unreadable(lang: Lang) -> String {
    pick(
        lang,
        "（上一次未完成的申请无法读取，需要重新开始。）".into(),
        "(Your unfinished request could not be read; starting over.)".into(),
    )
}

// ------------------------------------------------------------------ workflow ----------

/// What a request is, as shown to the requester and the approvers.
#[derive(Clone, Debug)]
pub struct RequestView<'a> {
    pub order: &'a OrderId,
    pub requester_name: &'a str,
    /// JumpServer username the grant goes to (shown to approvers, per design).
    pub username: &'a str,
    pub targets: &'a [Target],
    pub role: Role,
    pub duration: AccessDuration,
    pub reason: Option<&'a str>,
}

fn request_lines(lang: Lang, r: &RequestView<'_>) -> String {
    let reason = r.reason.unwrap_or("-");
    pick(
        lang,
        format!(
            "单号：{}\n申请人：{}（JumpServer 用户 {}）\n主机：{}\n权限：{}\n时长：{}\n原因：{reason}",
            r.order,
            r.requester_name,
            r.username,
            targets(lang, r.targets),
            role(lang, r.role),
            duration(lang, r.duration)
        ),
        format!(
            "Order: {}\nRequester: {} (JumpServer user {})\nHosts: {}\nAccess: {}\nFor: {}\nReason: {reason}",
            r.order,
            r.requester_name,
            r.username,
            targets(lang, r.targets),
            role(lang, r.role),
            duration(lang, r.duration)
        ),
    )
}

pub fn request_submitted(lang: Lang, r: &RequestView<'_>, approver_names: &[&str]) -> String {
    let who = approver_names.join(if lang == Lang::ZhCn { "、" } else { ", " });
    pick(
        lang,
        format!(
            "申请已提交，等待 {who} 审批。\n{}\n查询进度：状态 {}",
            request_lines(lang, r),
            r.order
        ),
        format!(
            "Request submitted; waiting for {who} to approve.\n{}\nTrack it: /status {}",
            request_lines(lang, r),
            r.order
        ),
    )
}

/// Text for approvers (also the fallback when a card cannot be delivered).
pub fn approval_request(lang: Lang, r: &RequestView<'_>) -> String {
    pick(
        lang,
        format!(
            "{} 申请主机访问权限，请审批：\n{}\n同意：同意 {}\n拒绝：拒绝 {} <原因>",
            r.requester_name,
            request_lines(lang, r),
            r.order,
            r.order
        ),
        format!(
            "{} asks for host access:\n{}\nApprove: /approve {}\nReject: /reject {} <reason>",
            r.requester_name,
            request_lines(lang, r),
            r.order,
            r.order
        ),
    )
}

pub fn approval_reminder(
    lang: Lang,
    order: &OrderId,
    requester_name: &str,
    waiting: AccessDuration,
) -> String {
    pick(
        lang,
        format!(
            "提醒：{requester_name} 的申请 {order} 已等待 {}，请尽快处理。",
            duration(lang, waiting)
        ),
        format!(
            "Reminder: {requester_name}'s request {order} has been waiting {}.",
            duration(lang, waiting)
        ),
    )
}

pub fn approval_timed_out(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 长时间无人审批，已自动关闭。如仍需要，请重新申请。"),
        format!(
            "Nobody decided on {order} in time, so it was closed. Ask again if you still need it."
        ),
    )
}

/// What was granted and until when.
#[derive(Clone, Debug)]
pub struct GrantView<'a> {
    pub order: &'a OrderId,
    pub targets: &'a [Target],
    /// JumpServer username to log in with.
    pub username: &'a str,
    pub role: Role,
    pub expires_at: Timestamp,
    /// JumpServer web address, when configured.
    pub jms_url: Option<&'a str>,
}

pub fn granted(lang: Lang, g: &GrantView<'_>, approver_name: &str, tz: &TimeZone) -> String {
    let url_zh = g
        .jms_url
        .map(|u| format!("\n登录：{u}"))
        .unwrap_or_default();
    let url_en = g
        .jms_url
        .map(|u| format!("\nLog in: {u}"))
        .unwrap_or_default();
    pick(
        lang,
        format!(
            "✅ {approver_name} 已同意申请 {}，权限已开通。\n主机：{}\n账号：{}（{}）\n到期：{}{url_zh}",
            g.order,
            targets(lang, g.targets),
            g.username,
            role(lang, g.role),
            time(g.expires_at, tz)
        ),
        format!(
            "✅ {approver_name} approved {}; access is ready.\nHosts: {}\nAccount: {} ({})\nExpires: {}{url_en}",
            g.order,
            targets(lang, g.targets),
            g.username,
            role(lang, g.role),
            time(g.expires_at, tz)
        ),
    )
}

pub fn approved_waiting_more(
    lang: Lang,
    order: &OrderId,
    approver_name: &str,
    remaining: u32,
) -> String {
    pick(
        lang,
        format!("{approver_name} 已同意申请 {order}，还需要 {remaining} 位审批人同意。"),
        format!("{approver_name} approved {order}; {remaining} more approval(s) needed."),
    )
}

pub fn approved_provisioning(lang: Lang, order: &OrderId, approver_name: &str) -> String {
    pick(
        lang,
        format!("{approver_name} 已同意申请 {order}，正在开通权限，完成后通知你。"),
        format!("{approver_name} approved {order}; setting up access now, I'll tell you when it is ready."),
    )
}

pub fn rejected(lang: Lang, order: &OrderId, approver_name: &str, reason: &str) -> String {
    pick(
        lang,
        format!("❌ {approver_name} 拒绝了申请 {order}。\n原因：{reason}"),
        format!("❌ {approver_name} rejected {order}.\nReason: {reason}"),
    )
}

pub fn decision_recorded(lang: Lang, order: &OrderId, approved: bool) -> String {
    match (lang, approved) {
        (Lang::ZhCn, true) => format!("已同意申请 {order}。"),
        (Lang::ZhCn, false) => format!("已拒绝申请 {order}，申请人会收到原因。"),
        (Lang::En, true) => format!("Approved {order}."),
        (Lang::En, false) => format!("Rejected {order}; the requester will see your reason."),
    }
}

pub fn already_decided(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 已经处理过了。"),
        format!("{order} has already been decided."),
    )
}

pub fn cancelled(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 已撤回。"),
        format!("Request {order} withdrawn."),
    )
}

pub fn order_not_found(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("找不到单号 {order}。发送“我的权限”查看你的申请。"),
        format!("No order {order}. Send /my to list yours."),
    )
}

pub fn expiry_reminder(
    lang: Lang,
    order: &OrderId,
    ts: &[Target],
    expires_at: Timestamp,
    left: AccessDuration,
    tz: &TimeZone,
) -> String {
    pick(
        lang,
        format!(
            "⏰ 申请 {order} 的权限将在 {} 后到期（{}）。\n主机：{}\n需要延长请联系管理员续期，或重新申请。",
            duration(lang, left),
            time(expires_at, tz),
            targets(lang, ts)
        ),
        format!(
            "⏰ Access from {order} ends in {} ({}).\nHosts: {}\nAsk an administrator to renew it, or request again.",
            duration(lang, left),
            time(expires_at, tz),
            targets(lang, ts)
        ),
    )
}

pub fn expired(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 的权限已到期并收回。"),
        format!("Access from {order} has expired and was removed."),
    )
}

pub fn revoked(lang: Lang, order: &OrderId, by_name: &str) -> String {
    pick(
        lang,
        format!("申请 {order} 的权限已被 {by_name} 提前收回。"),
        format!("Access from {order} was revoked by {by_name}."),
    )
}

pub fn renewed(lang: Lang, order: &OrderId, expires_at: Timestamp, tz: &TimeZone) -> String {
    pick(
        lang,
        format!(
            "申请 {order} 的权限已续期，新的到期时间：{}。",
            time(expires_at, tz)
        ),
        format!(
            "Access from {order} renewed; it now ends {}.",
            time(expires_at, tz)
        ),
    )
}

pub fn account_ready(lang: Lang, username: &str, jms_url: Option<&str>) -> String {
    let url = jms_url.unwrap_or("");
    pick(
        lang,
        format!(
            "JumpServer 账号已就绪：{username}。{}",
            if url.is_empty() {
                String::new()
            } else {
                format!("登录地址：{url}")
            }
        ),
        format!(
            "Your JumpServer account is ready: {username}.{}",
            if url.is_empty() {
                String::new()
            } else {
                format!(" Log in at {url}")
            }
        ),
    )
}

pub fn account_exists(lang: Lang, username: &str) -> String {
    pick(
        lang,
        format!("你已经有 JumpServer 账号：{username}。"),
        format!("You already have a JumpServer account: {username}."),
    )
}

pub fn nothing_active(lang: Lang) -> String {
    pick(
        lang,
        "你目前没有申请或有效权限。".into(),
        "You have no requests or active access.".into(),
    )
}

pub fn sync_started(lang: Lang) -> String {
    pick(
        lang,
        "已开始从 JumpServer 同步用户、主机和授权，完成后告诉你结果。".into(),
        "Sync from JumpServer started (users, hosts, permissions); I'll tell you the result when done.".into(),
    )
}

/// `/sync` while one is queued or running: the same sync, not a second one.
pub fn sync_already_running(lang: Lang) -> String {
    pick(
        lang,
        "同步已在进行中，完成后会告诉发起人结果，无需重复发起。".into(),
        "A sync is already running; whoever started it gets the result, no need to start another."
            .into(),
    )
}

/// Figures of a finished `/sync` (the index now in use).
#[derive(Clone, Copy, Debug)]
pub struct SyncView {
    pub users: usize,
    pub hosts: usize,
    pub permissions: usize,
    pub valid_permissions: usize,
    pub duration_ms: u64,
    pub synced_at: Timestamp,
}

pub fn sync_done(lang: Lang, v: &SyncView, tz: &TimeZone) -> String {
    let secs = format!("{:.1}", v.duration_ms as f64 / 1000.0);
    let at = time(v.synced_at, tz);
    pick(
        lang,
        format!(
            "✅ 同步完成（{at}）：用户 {} 个，主机 {} 台，授权 {} 条（当前有效 {} 条），耗时 {secs} 秒。现在“谁有权限”按本地索引回答。",
            v.users, v.hosts, v.permissions, v.valid_permissions
        ),
        format!(
            "✅ Sync done ({at}): {} users, {} hosts, {} permissions ({} valid now), took {secs} s. /who-has now answers from the local index.",
            v.users, v.hosts, v.permissions, v.valid_permissions
        ),
    )
}

pub fn sync_failed(lang: Lang, detail: &str) -> String {
    pick(
        lang,
        format!("⚠️ 同步失败，仍使用上一次同步的数据：{detail}"),
        format!("⚠️ Sync failed; the previous sync's data stays in use: {detail}"),
    )
}

pub fn status_label(lang: Lang, k: Status) -> &'static str {
    match (lang, k) {
        (Lang::ZhCn, Status::PendingApproval) => "待审批",
        (Lang::ZhCn, Status::Approved) => "已同意",
        (Lang::ZhCn, Status::Provisioning) => "开通中",
        (Lang::ZhCn, Status::Active) => "生效中",
        (Lang::ZhCn, Status::Expired) => "已到期",
        (Lang::ZhCn, Status::Revoked) => "已收回",
        (Lang::ZhCn, Status::Rejected) => "已拒绝",
        (Lang::ZhCn, Status::Cancelled) => "已撤回",
        (Lang::ZhCn, Status::Retrying) => "开通失败，重试中",
        (Lang::ZhCn, Status::Failed) => "开通失败",
        (Lang::ZhCn, Status::ApprovalFailed) => "审批发起失败",
        (Lang::En, Status::PendingApproval) => "waiting for approval",
        (Lang::En, Status::Approved) => "approved",
        (Lang::En, Status::Provisioning) => "being set up",
        (Lang::En, Status::Active) => "active",
        (Lang::En, Status::Expired) => "expired",
        (Lang::En, Status::Revoked) => "revoked",
        (Lang::En, Status::Rejected) => "rejected",
        (Lang::En, Status::Cancelled) => "withdrawn",
        (Lang::En, Status::Retrying) => "setup failed, retrying",
        (Lang::En, Status::Failed) => "failed",
        (Lang::En, Status::ApprovalFailed) => "approval could not start",
    }
}

/// One order in `/status`, `/my` and `/who-has` answers.
#[derive(Clone, Debug)]
pub struct StatusView<'a> {
    pub order: &'a OrderId,
    pub status: Status,
    pub targets: &'a [Target],
    pub role: Role,
    /// Who holds or asked for the access (display name; used by `/who-has`).
    pub holder: &'a str,
    /// End of access for approved/active orders.
    pub expires_at: Option<Timestamp>,
}

/// `R261122-007 · 生效中 · 10.1.2.3 · 运维 · 到期 2026-11-25 10:00 (Asia/Shanghai)`.
pub fn status_line(lang: Lang, v: &StatusView<'_>, tz: &TimeZone) -> String {
    let mut parts = vec![
        v.order.to_string(),
        status_label(lang, v.status).to_string(),
        targets(lang, v.targets),
        role(lang, v.role).to_string(),
    ];
    if let Some(t) = v.expires_at {
        parts.push(pick(
            lang,
            format!("到期 {}", time(t, tz)),
            format!("until {}", time(t, tz)),
        ));
    }
    parts.join(" · ")
}

/// Answer to `/my`.
pub fn my_orders(lang: Lang, orders: &[StatusView<'_>], tz: &TimeZone) -> String {
    if orders.is_empty() {
        return nothing_active(lang);
    }
    let head = pick(lang, "你的申请：".into(), "Your requests:".into());
    let lines: Vec<String> = orders
        .iter()
        .map(|v| format!("• {}", status_line(lang, v, tz)))
        .collect();
    format!("{head}\n{}", lines.join("\n"))
}

/// Answer to `/who-has <subject>`.
pub fn who_has(lang: Lang, subject: &str, rows: &[StatusView<'_>], tz: &TimeZone) -> String {
    if rows.is_empty() {
        return pick(
            lang,
            format!("“{subject}”目前没有通过本机器人授予的有效权限。"),
            format!("Nobody has access to `{subject}` through this bot right now."),
        );
    }
    let head = pick(
        lang,
        format!("“{subject}”的有效权限："),
        format!("Active access for `{subject}`:"),
    );
    let lines: Vec<String> = rows
        .iter()
        .map(|v| format!("• {} · {}", v.holder, status_line(lang, v, tz)))
        .collect();
    format!("{head}\n{}", lines.join("\n"))
}

pub fn failure(lang: Lang, order: &OrderId, f: Failure, detail: Option<&str>) -> String {
    let (zh, en) = match f {
        Failure::JumpServerUnavailable => (
            "暂时连不上 JumpServer，正在自动重试，成功后通知你。",
            "JumpServer cannot be reached right now; retrying automatically, I'll tell you when it works.",
        ),
        Failure::UserCreateFailed => (
            "无法为你创建 JumpServer 用户，已通知管理员处理。",
            "Your JumpServer user could not be created; the administrators have been told.",
        ),
        Failure::UserMissing => (
            "你还没有 JumpServer 账号，请先发送“申请账号”或联系管理员。",
            "You have no JumpServer account yet; send /apply account first or ask an administrator.",
        ),
        Failure::HostNotFound => (
            "有主机在 JumpServer 中找不到，请确认地址是否正确。",
            "Some hosts are not in JumpServer; check the addresses.",
        ),
        Failure::GrantFailed => (
            "JumpServer 拒绝了授权，已通知管理员处理。",
            "JumpServer refused the grant; the administrators have been told.",
        ),
        Failure::ApprovalStartFailed => (
            "审批流程发起失败，正在重试。",
            "The approval could not be started; retrying.",
        ),
        Failure::NotifyFailed => (
            "消息发送失败，正在重试。",
            "A message could not be delivered; retrying.",
        ),
        Failure::Internal => (
            "处理时出了问题，已记录并通知管理员。",
            "Something went wrong on our side; it is logged and the administrators were told.",
        ),
    };
    let detail = detail.map(|d| format!("\n({d})")).unwrap_or_default();
    pick(
        lang,
        format!("⚠️ 申请 {order}：{zh}{detail}"),
        format!("⚠️ Request {order}: {en}{detail}"),
    )
}

/// Answer to a picture, file or voice message: the bot reads text only.
pub fn text_only(lang: Lang) -> String {
    match lang {
        Lang::ZhCn => "目前只能读文字消息，请用文字告诉我你需要什么，发送「帮助」查看用法。".into(),
        Lang::En => {
            "I can only read text messages. Please type your request, or send `help` for usage."
                .into()
        }
    }
}

// ------------------------------------------------------------------ workflow (more) ----------

/// A message whose sender has no `senderStaffId` (external contact, unpublished robot).
pub fn cannot_identify(lang: Lang) -> String {
    pick(
        lang,
        "抱歉，无法识别你的钉钉身份（外部联系人或机器人未发布），所以不能为你办理申请。请用企业内部账号与我单聊。".into(),
        "Sorry, I cannot tell who you are (external contact, or the robot is not published), so I cannot take requests from you. Please message me from your company account.".into(),
    )
}

/// No approver is left for a request (everyone who could approve is the requester).
pub fn no_approvers(lang: Lang) -> String {
    pick(
        lang,
        "没有可以审批这个申请的人（审批人不能是你自己），请联系管理员配置审批人。".into(),
        "Nobody can approve this request (approvers cannot be yourself); ask an administrator to configure approvers.".into(),
    )
}

pub fn request_received(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("收到，申请单号 {order}，正在核对 JumpServer 信息，稍后告诉你审批人。"),
        format!("Got it: request {order}. Checking JumpServer now; I'll tell you who approves it."),
    )
}

/// The requester asked again for what one of their open orders already asks for; nothing new
/// was created. `waiting_for`: the approvers' names while the order awaits a decision.
pub fn same_request_open(
    lang: Lang,
    order: &OrderId,
    status: &str,
    waiting_for: Option<&[String]>,
) -> String {
    match waiting_for {
        Some(names) => {
            let who = names.join(if lang == Lang::ZhCn { "、" } else { ", " });
            pick(
                lang,
                format!(
                    "你已有相同的申请 {order}，正在等待 {who} 审批，这次没有重复提交。\n查询进度：状态 {order}；要改申请内容，先撤回：取消 {order}"
                ),
                format!(
                    "You already have the same request open: {order}, waiting for {who} to approve; it was not submitted again.\nTrack it: /status {order}; to change it, withdraw it first: /cancel {order}"
                ),
            )
        }
        None => pick(
            lang,
            format!("你已有相同的申请 {order}（{status}），这次没有重复提交。\n查询进度：状态 {order}"),
            format!(
                "You already have the same request: {order} ({status}); it was not submitted again.\nTrack it: /status {order}"
            ),
        ),
    }
}

/// The requester reached the per-user limit of new requests; `retry_at` is when one more fits.
pub fn too_many_requests(
    lang: Lang,
    max: u32,
    window_minutes: u64,
    retry_at: Timestamp,
    tz: &TimeZone,
) -> String {
    let window = minutes(lang, window_minutes);
    let at = time(retry_at, tz);
    let requests = if max == 1 { "request" } else { "requests" };
    pick(
        lang,
        format!(
            "你在 {window}内已提交 {max} 个申请，达到上限，这次没有提交。请在 {at} 之后再试；已有的申请可用“我的权限”查看。"
        ),
        format!(
            "You have made {max} {requests} within {window}, the most allowed; this one was not submitted. Try again after {at}; /my lists the ones you have."
        ),
    )
}

pub fn not_your_order(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("你无权查看或操作申请 {order}。"),
        format!("You may not see or change request {order}."),
    )
}

pub fn not_pending(lang: Lang, order: &OrderId, status: &str) -> String {
    pick(
        lang,
        format!("申请 {order} 当前状态为“{status}”，不能撤回。"),
        format!("Request {order} is {status}; it can no longer be withdrawn."),
    )
}

pub fn not_active(lang: Lang, order: &OrderId, status: &str) -> String {
    pick(
        lang,
        format!("申请 {order} 当前状态为“{status}”，不是生效中的权限。"),
        format!("Request {order} is {status}, not active access."),
    )
}

pub fn already_decided_by(
    lang: Lang,
    order: &OrderId,
    status: &str,
    by: &str,
    at: Option<Timestamp>,
    tz: &TimeZone,
) -> String {
    let when = at.map(|t| time(t, tz)).unwrap_or_default();
    pick(
        lang,
        format!("申请 {order} 已由 {by} 处理（{status}，{when}），无需再操作。"),
        format!("{order} was already decided by {by} ({status}, {when}); nothing to do."),
    )
}

pub fn approval_recorded_waiting(lang: Lang, order: &OrderId, remaining: u32) -> String {
    pick(
        lang,
        format!("已记录你对 {order} 的同意，还需要 {remaining} 位审批人同意。"),
        format!("Your approval of {order} is recorded; {remaining} more needed."),
    )
}

/// The decision of another approver, sent to every approver in text mode.
pub fn decided_notice(
    lang: Lang,
    order: &OrderId,
    by: &str,
    approved: bool,
    reason: &str,
) -> String {
    match (lang, approved) {
        (Lang::ZhCn, true) => format!("申请 {order} 已由 {by} 同意。"),
        (Lang::ZhCn, false) => format!("申请 {order} 已由 {by} 拒绝。原因：{reason}"),
        (Lang::En, true) => format!("{order} was approved by {by}."),
        (Lang::En, false) => format!("{order} was rejected by {by}. Reason: {reason}"),
    }
}

/// Who decided when the decision came from a DingTalk OA approval (approver not named there).
pub fn oa_decider(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "钉钉审批",
        Lang::En => "the DingTalk approval",
    }
}

pub fn system_actor(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "系统",
        Lang::En => "the system",
    }
}

pub fn oa_refused_reason(lang: Lang) -> String {
    pick(
        lang,
        "钉钉审批未通过".into(),
        "refused in the DingTalk approval".into(),
    )
}

pub fn withdrawn_in_oa(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 的钉钉审批已被撤销，申请已关闭。"),
        format!("The DingTalk approval of {order} was withdrawn; the request is closed."),
    )
}

pub fn left_org_closed(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请人已离职，申请 {order} 已关闭并收回权限。"),
        format!("The requester left the organisation; {order} was closed and its access removed."),
    )
}

/// The exact change the grant will make in JumpServer, for approvers (and the requester).
#[derive(Clone, Debug)]
pub struct ChangeView<'a> {
    pub username: &'a str,
    pub user_exists: bool,
    pub user_active: bool,
    /// `false` when the user is missing and policy does not create users.
    pub will_create_user: bool,
    pub node: &'a str,
    pub whole_node: bool,
    pub hosts_existing: &'a [String],
    pub hosts_to_create: &'a [String],
    pub accounts: &'a [String],
    pub actions: &'a [String],
    pub duration: Option<AccessDuration>,
    pub already: &'a [(String, Option<Timestamp>)],
    pub unavailable: Option<&'a str>,
    /// The role's label, for the accounts in words (`运维账号 ops`).
    pub role_label: &'a str,
    /// `(username, by_email)`: the existing user the grant goes to instead of `username`.
    pub user_matched: Option<(&'a str, bool)>,
    pub missing_logins: &'a [(String, String)],
    pub permission_name: &'a str,
    pub permission_repair: bool,
    pub name_conflicts: &'a [String],
    pub hosts_renamed: &'a [(String, String)],
    pub ambiguous: &'a [(String, Vec<String>)],
}

pub fn change_preview(lang: Lang, c: &ChangeView<'_>, tz: &TimeZone) -> String {
    let sep = if lang == Lang::ZhCn { "、" } else { ", " };
    let none = pick(lang, "无".into(), "none".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            none.clone()
        } else {
            v.join(sep)
        }
    };
    let mut lines = Vec::new();
    lines.push(pick(
        lang,
        "JumpServer 变更：".into(),
        "JumpServer change:".into(),
    ));
    if let Some(why) = c.unavailable {
        lines.push(pick(
            lang,
            format!("• 暂时无法查询 JumpServer（{why}），以下为计划内容"),
            format!("• JumpServer could not be checked ({why}); this is the plan"),
        ));
    }
    let user = match (c.user_exists, c.user_active, c.will_create_user) {
        (true, true, _) => pick(lang, "已存在".into(), "exists".into()),
        (true, false, _) => pick(
            lang,
            "已存在但已禁用".into(),
            "exists but is disabled".into(),
        ),
        (false, _, true) => pick(lang, "将新建".into(), "will be created".into()),
        (false, _, false) => pick(
            lang,
            "不存在（策略不允许自动创建，授权会失败）".into(),
            "missing (policy does not create users; the grant will fail)".into(),
        ),
    };
    match c.user_matched {
        Some((found, true)) => lines.push(pick(
            lang,
            format!(
                "• 用户：{found}（已存在；邮箱与申请人相同，{} 未使用，授权给 {found}）",
                c.username
            ),
            format!(
                "• User: {found} (exists; same e-mail as the requester, {} is not used; the grant goes to {found})",
                c.username
            ),
        )),
        Some((found, false)) => lines.push(pick(
            lang,
            format!("• 用户：{found}（已存在，与 {} 仅大小写不同）", c.username),
            format!("• User: {found} (exists; {} in another letter case)", c.username),
        )),
        None => lines.push(pick(
            lang,
            format!("• 用户：{}（{user}）", c.username),
            format!("• User: {} ({user})", c.username),
        )),
    }
    if c.whole_node {
        lines.push(pick(
            lang,
            format!("• 节点：{}（整个节点授权）", c.node),
            format!("• Node: {} (the whole node is granted)", c.node),
        ));
    } else {
        lines.push(pick(
            lang,
            format!("• 节点：{}", c.node),
            format!("• Node: {}", c.node),
        ));
        lines.push(pick(
            lang,
            format!("• 已有主机：{}", list(c.hosts_existing)),
            format!("• Existing hosts: {}", list(c.hosts_existing)),
        ));
        lines.push(pick(
            lang,
            format!("• 将新建主机：{}", list(c.hosts_to_create)),
            format!("• Hosts to create: {}", list(c.hosts_to_create)),
        ));
        for (addr, name) in c.hosts_renamed {
            lines.push(pick(
                lang,
                format!("• 名称 {addr} 已被另一台主机占用：新主机将命名为 {name}"),
                format!(
                    "• The name {addr} belongs to another host: the new host will be named {name}"
                ),
            ));
        }
    }
    let label = |_: &str| c.role_label.to_owned();
    let accounts = crate::chat::readback::accounts(lang, &label, c.accounts);
    lines.push(pick(
        lang,
        format!("• 账号：{accounts}；动作：{}", list(c.actions)),
        format!("• Logins: {accounts}; actions: {}", list(c.actions)),
    ));
    for (host, candidates) in c.ambiguous {
        lines.push(pick(
            lang,
            format!(
                "⚠️ {host} 对应多台主机（{}）：请按地址申请",
                candidates.join(sep)
            ),
            format!(
                "⚠️ {host} matches several hosts ({}): ask by address",
                candidates.join(sep)
            ),
        ));
    }
    let mut by_host: Vec<(&str, Vec<&str>)> = Vec::new();
    for (h, u) in c.missing_logins {
        match by_host.iter_mut().find(|(x, _)| *x == h.as_str()) {
            Some((_, us)) => us.push(u),
            None => by_host.push((h, vec![u])),
        }
    }
    for (h, us) in by_host {
        let us = us.join(sep);
        lines.push(pick(
            lang,
            format!("⚠️ {h} 上没有 {us} 账号：此授权在该主机上不会提供可用登录（需管理员先添加该账号）"),
            format!("⚠️ {h} has no {us} account: the grant would give no usable login there (an administrator must add it first)"),
        ));
    }
    if c.permission_repair {
        lines.push(pick(
            lang,
            format!("• 授权 {} 已存在（本单上次未完成），将按以上内容修复", c.permission_name),
            format!("• Permission {} exists from an earlier attempt of this order; it will be made to match the above", c.permission_name),
        ));
    }
    if !c.name_conflicts.is_empty() {
        lines.push(pick(
            lang,
            format!(
                "⚠️ JumpServer 中已有授权 {}（非本机器人创建），不会修改它；本单将使用名称 {}",
                c.name_conflicts.join(sep),
                c.permission_name
            ),
            format!(
                "⚠️ JumpServer already has permission {} (not made by accessbot); it will not be touched, and this order will use the name {}",
                c.name_conflicts.join(sep),
                c.permission_name
            ),
        ));
    }
    if let Some(d) = c.duration {
        lines.push(pick(
            lang,
            format!("• 时间窗口：批准时开始，持续 {}", duration(lang, d)),
            format!("• Window: starts at approval, lasts {}", duration(lang, d)),
        ));
    }
    for (host, until) in c.already {
        let until = until
            .map(|t| time(t, tz))
            .unwrap_or_else(|| pick(lang, "长期".into(), "no end".into()));
        lines.push(pick(
            lang,
            format!("• 注意：申请人已可访问 {host}，至 {until}"),
            format!("• Note: the requester can already reach {host} until {until}"),
        ));
    }
    lines.join("\n")
}

/// A user's display, marked when they cannot connect now (disabled or expired in JumpServer).
pub fn user_marked(lang: Lang, who: &str, can_connect: bool) -> String {
    if can_connect {
        who.to_owned()
    } else {
        pick(
            lang,
            format!("{who}（已禁用）"),
            format!("{who} (disabled)"),
        )
    }
}

/// `/who-has <user>` for a user who cannot connect now.
pub fn who_has_user_disabled(lang: Lang, username: &str) -> String {
    pick(
        lang,
        format!("JumpServer 用户 {username} 已被禁用或已过期，目前无法连接任何主机。加上“全部”可查看其授权。"),
        format!("JumpServer user {username} is disabled or expired and cannot connect anywhere now. Add `all` to see their grants."),
    )
}

/// Rows left out of `/who-has` because those users cannot connect now.
pub fn who_has_hidden(lang: Lang, n: usize) -> String {
    pick(
        lang,
        format!("另有 {n} 条属于已禁用的用户，未列出（加上“全部”查看）。"),
        format!("{n} more belong to disabled users and are not shown (add `all` to see them)."),
    )
}

/// One row of a live `/who-has` answer (straight from JumpServer).
#[derive(Clone, Debug)]
pub struct LiveAccess<'a> {
    pub who: &'a str,
    pub what: &'a str,
    /// The logins in words (`运维账号 ops`), never raw markers.
    pub accounts: String,
    pub until: Option<Timestamp>,
}

pub fn who_has_live(lang: Lang, subject: &str, rows: &[LiveAccess<'_>], tz: &TimeZone) -> String {
    if rows.is_empty() {
        return pick(
            lang,
            format!("JumpServer 中“{subject}”目前没有有效的授权。"),
            format!("JumpServer shows no valid access for `{subject}` right now."),
        );
    }
    let head = pick(
        lang,
        format!("JumpServer 中“{subject}”的有效授权："),
        format!("Valid access for `{subject}` in JumpServer:"),
    );
    format!("{head}\n{}", access_lines(lang, rows, tz).join("\n"))
}

fn access_lines(lang: Lang, rows: &[LiveAccess<'_>], tz: &TimeZone) -> Vec<String> {
    rows.iter()
        .map(|r| {
            let mut parts = vec![r.who.to_string(), r.what.to_string()];
            if !r.accounts.is_empty() {
                parts.push(r.accounts.clone());
            }
            if let Some(t) = r.until {
                let t = time(t, tz);
                parts.push(pick(lang, format!("至 {t}"), format!("until {t}")));
            }
            format!("• {}", parts.join(" · "))
        })
        .collect()
}

/// `/who-has` answered from the local index (`as_of` = when it was synced).
pub fn who_has_indexed(
    lang: Lang,
    subject: &str,
    rows: &[LiveAccess<'_>],
    as_of: Timestamp,
    tz: &TimeZone,
) -> String {
    let at = time(as_of, tz);
    if rows.is_empty() {
        return pick(
            lang,
            format!("截至 {at}（上次同步），“{subject}”没有有效的授权。"),
            format!("As of {at} (last sync), nobody has valid access for `{subject}`."),
        );
    }
    let head = pick(
        lang,
        format!("截至 {at}（上次同步），“{subject}”的有效授权："),
        format!("Valid access for `{subject}` as of {at} (last sync):"),
    );
    let shown = rows.get(..WHO_HAS_MAX_ROWS).unwrap_or(rows);
    let mut lines = access_lines(lang, shown, tz);
    if rows.len() > shown.len() {
        let more = rows.len() - shown.len();
        lines.push(pick(
            lang,
            format!("…另有 {more} 条未列出"),
            format!("… and {more} more"),
        ));
    }
    format!("{head}\n{}", lines.join("\n"))
}

/// Most rows one `/who-has` answer lists; a DingTalk text message has a size limit.
pub const WHO_HAS_MAX_ROWS: usize = 50;

/// Hosts of one grant: the first few, then how many more.
pub fn hosts_summary(lang: Lang, shown: &[String], total: usize) -> String {
    let sep = if lang == Lang::ZhCn { "、" } else { ", " };
    let list = shown.join(sep);
    match total.saturating_sub(shown.len()) {
        0 => list,
        more => pick(
            lang,
            format!("{list} 等共 {total} 台（另 {more} 台未列出）"),
            format!("{list} and {more} more ({total} hosts)"),
        ),
    }
}

/// The index is synced but knows no user or host by that name.
pub fn who_has_unknown(lang: Lang, subject: &str, as_of: Timestamp, tz: &TimeZone) -> String {
    let at = time(as_of, tz);
    pick(
        lang,
        format!("截至 {at}（上次同步），JumpServer 中没有名为“{subject}”的用户或主机。"),
        format!("As of {at} (last sync), JumpServer has no user or host named `{subject}`."),
    )
}

/// The bot's own active orders for a host, appended to `/who-has <host>`.
pub fn who_has_bot_orders(lang: Lang, rows: &[StatusView<'_>], tz: &TimeZone) -> String {
    if rows.is_empty() {
        return pick(
            lang,
            "本机器人没有为它开通中的申请。".into(),
            "No active request through this bot.".into(),
        );
    }
    let head = pick(
        lang,
        "本机器人开通的有效申请：".into(),
        "Active requests through this bot:".into(),
    );
    let lines: Vec<String> = rows
        .iter()
        .map(|v| format!("• {} · {}", v.holder, status_line(lang, v, tz)))
        .collect();
    format!("{head}\n{}", lines.join("\n"))
}

pub fn who_has_failed(lang: Lang, detail: &str) -> String {
    pick(
        lang,
        format!("查询 JumpServer 失败：{detail}"),
        format!("Could not ask JumpServer: {detail}"),
    )
}

/// `/status` details beyond the status line.
pub fn status_detail(
    lang: Lang,
    line: &str,
    requester: &str,
    approvers: &[String],
    decided_by: Option<&str>,
    note: Option<&str>,
) -> String {
    let sep = if lang == Lang::ZhCn { "、" } else { ", " };
    let mut out = vec![
        line.to_string(),
        pick(
            lang,
            format!("申请人：{requester}"),
            format!("Requester: {requester}"),
        ),
        pick(
            lang,
            format!("审批人：{}", approvers.join(sep)),
            format!("Approvers: {}", approvers.join(sep)),
        ),
    ];
    if let Some(d) = decided_by {
        out.push(pick(
            lang,
            format!("处理人：{d}"),
            format!("Decided by: {d}"),
        ));
    }
    if let Some(n) = note {
        out.push(n.to_string());
    }
    out.join("\n")
}

pub fn renew_button(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "一键续期",
        Lang::En => "Renew",
    }
}

pub fn approve_button(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "同意",
        Lang::En => "Approve",
    }
}

pub fn reject_button(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "拒绝（需填原因）",
        Lang::En => "Reject (add a reason)",
    }
}

pub fn account_request_view(
    lang: Lang,
    order: &OrderId,
    requester: &str,
    username: &str,
) -> String {
    pick(
        lang,
        format!("{requester} 申请 JumpServer 账号 {username}。\n单号：{order}\n同意：同意 {order}\n拒绝：拒绝 {order} <原因>"),
        format!("{requester} asks for the JumpServer account {username}.\nOrder: {order}\nApprove: /approve {order}\nReject: /reject {order} <reason>"),
    )
}

/// A renewal that would not move the end: the grant already runs to the longest window.
pub fn renew_at_limit(lang: Lang, max: AccessDuration) -> String {
    pick(
        lang,
        format!(
            "已达到该角色的最长时限（从现在起 {}），无法再延长",
            duration(lang, max)
        ),
        format!(
            "it already runs to the longest allowed window ({} from now)",
            duration(lang, max)
        ),
    )
}

pub fn renew_refused(lang: Lang, order: &OrderId, detail: &str) -> String {
    pick(
        lang,
        format!("申请 {order} 不能续期：{detail}"),
        format!("{order} cannot be renewed: {detail}"),
    )
}

pub fn card_unknown(lang: Lang) -> String {
    pick(
        lang,
        "这张卡片对应的申请已不存在。".into(),
        "The request behind this card no longer exists.".into(),
    )
}

/// Answer to `/my` from already rendered status lines.
pub fn my_lines(lang: Lang, lines: &[String]) -> String {
    if lines.is_empty() {
        return nothing_active(lang);
    }
    let head = pick(lang, "你的申请：".into(), "Your requests:".into());
    let body: Vec<String> = lines.iter().map(|l| format!("• {l}")).collect();
    format!("{head}\n{}", body.join("\n"))
}

/// `/approve` typed for an order whose approval runs as a DingTalk OA instance.
pub fn decide_in_oa(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 走钉钉 OA 审批，请在钉钉“审批”中处理。"),
        format!("{order} is approved in DingTalk OA; decide it in the DingTalk approval app."),
    )
}

pub fn account_request_done(lang: Lang, order: &OrderId) -> String {
    request_received(lang, order)
}

pub fn revoke_done(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("已收回申请 {order} 的权限，正在从 JumpServer 删除授权。"),
        format!("Revoking {order}; the JumpServer permission is being removed."),
    )
}

/// A request closed before approval, with what stopped it.
pub fn request_not_taken(lang: Lang, order: &OrderId, detail: &str) -> String {
    pick(
        lang,
        format!("⚠️ 申请 {order} 无法办理：{detail}"),
        format!("⚠️ Request {order} cannot proceed: {detail}"),
    )
}

/// A host name that matches several JumpServer hosts (names differing only in case).
pub fn ambiguous_host(lang: Lang, name: &str, candidates: &[String]) -> String {
    pick(
        lang,
        format!(
            "{name} 对应 JumpServer 中的多台主机（{}），无法确定是哪一台；请按地址重新申请。",
            candidates.join("、")
        ),
        format!(
            "{name} matches several JumpServer hosts ({}); ask again by address.",
            candidates.join(", ")
        ),
    )
}

/// `missing_login = "refuse"`: hosts without the role's login.
pub fn missing_logins_refused(lang: Lang, pairs: &[(String, String)]) -> String {
    let zh: Vec<String> = pairs
        .iter()
        .map(|(h, u)| format!("{h} 上没有账号 {u}"))
        .collect();
    let en: Vec<String> = pairs
        .iter()
        .map(|(h, u)| format!("{h} has no account {u}"))
        .collect();
    pick(
        lang,
        format!(
            "{}，授权后无法登录。已通知管理员添加账号，添加后请重新申请。",
            zh.join("；")
        ),
        format!(
            "{}: the grant would give no usable login. The administrators were told to add the accounts; ask again once they exist.",
            en.join("; ")
        ),
    )
}

pub fn identity_failed(lang: Lang, order: &OrderId, detail: &str) -> String {
    pick(
        lang,
        format!("⚠️ 申请 {order} 无法办理：{detail}\n请联系管理员在 [identity] 中配置你的 JumpServer 用户名。"),
        format!("⚠️ Request {order} cannot proceed: {detail}\nAsk an administrator to map your JumpServer username in [identity]."),
    )
}

pub fn admin_failure(lang: Lang, order: &OrderId, requester: &str, detail: &str) -> String {
    pick(
        lang,
        format!("⚠️ 申请 {order}（{requester}）开通失败：{detail}"),
        format!("⚠️ Request {order} ({requester}) failed: {detail}"),
    )
}

pub fn no_window(lang: Lang) -> String {
    pick(
        lang,
        "账号申请没有时间窗口".into(),
        "an account request has no time window".into(),
    )
}

pub fn not_in_directory(lang: Lang, detail: &str) -> String {
    pick(
        lang,
        format!("在钉钉通讯录中查不到你（{detail}）"),
        format!("you are not found in the DingTalk directory ({detail})"),
    )
}

pub fn approval_title(lang: Lang, requester: &str, order: &OrderId) -> String {
    pick(
        lang,
        format!("{requester} 的权限申请 {order}"),
        format!("Access request {order} from {requester}"),
    )
}

pub fn expiry_title(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("权限即将到期 {order}"),
        format!("Access ending soon {order}"),
    )
}

pub fn no_email_for_user(lang: Lang) -> String {
    pick(
        lang,
        "钉钉资料中没有邮箱，无法创建 JumpServer 用户".into(),
        "no e-mail in the DingTalk profile to create the user with".into(),
    )
}

pub fn gave_up(lang: Lang, reason: &str) -> String {
    pick(
        lang,
        format!("多次重试后仍失败：{reason}"),
        format!("still failing after retries: {reason}"),
    )
}

pub fn account_submitted(
    lang: Lang,
    order: &OrderId,
    username: &str,
    approvers: &[&str],
) -> String {
    pick(
        lang,
        format!(
            "账号申请 {order} 已提交（JumpServer 用户 {username}），等待 {} 审批。",
            approvers.join("、")
        ),
        format!(
            "Account request {order} submitted (JumpServer user {username}); waiting for {}.",
            approvers.join(", ")
        ),
    )
}

pub fn account_order_line(lang: Lang, order: &OrderId, status: &str, username: &str) -> String {
    pick(
        lang,
        format!("{order} · {status} · JumpServer 账号 {username}"),
        format!("{order} · {status} · JumpServer account {username}"),
    )
}

/// Labels of the OA approval form's components; the OA template must use exactly these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OaField {
    Order,
    Requester,
    JmsUser,
    Hosts,
    Access,
    Duration,
    Reason,
    Change,
}

pub fn oa_label(lang: Lang, f: OaField) -> &'static str {
    match (lang, f) {
        (Lang::ZhCn, OaField::Order) => "申请单号",
        (Lang::ZhCn, OaField::Requester) => "申请人",
        (Lang::ZhCn, OaField::JmsUser) => "JumpServer 用户",
        (Lang::ZhCn, OaField::Hosts) => "主机",
        (Lang::ZhCn, OaField::Access) => "权限",
        (Lang::ZhCn, OaField::Duration) => "时长",
        (Lang::ZhCn, OaField::Reason) => "原因",
        (Lang::ZhCn, OaField::Change) => "JumpServer 变更",
        (Lang::En, OaField::Order) => "Order",
        (Lang::En, OaField::Requester) => "Requester",
        (Lang::En, OaField::JmsUser) => "JumpServer user",
        (Lang::En, OaField::Hosts) => "Hosts",
        (Lang::En, OaField::Access) => "Access",
        (Lang::En, OaField::Duration) => "Duration",
        (Lang::En, OaField::Reason) => "Reason",
        (Lang::En, OaField::Change) => "JumpServer change",
    }
}

/// A request mixing a whole system with other systems or single hosts.
pub fn one_scope_per_request(lang: Lang) -> String {
    pick(
        lang,
        "一个申请只能是一个系统，或者若干台主机。请把系统和主机分开申请。".into(),
        "One request covers one system or some hosts, not both; please send them separately."
            .into(),
    )
}

/// What an account request shows where a host request shows hosts.
pub fn account_target(lang: Lang, username: &str) -> String {
    pick(
        lang,
        format!("JumpServer 账号 {username}"),
        format!("JumpServer account {username}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let d = |m| AccessDuration::from_minutes(m).unwrap_or_else(|_| unreachable!());
        assert_eq!(duration(Lang::ZhCn, d(3 * 24 * 60 + 240)), "3天4小时");
        assert_eq!(duration(Lang::En, d(3 * 24 * 60 + 240)), "3 days 4 hours");
        assert_eq!(duration(Lang::En, d(7 * 24 * 60)), "1 week");
        assert_eq!(duration(Lang::ZhCn, d(30)), "30分钟");
    }

    #[test]
    fn time_is_shown_in_the_configured_zone() {
        let ts: Timestamp = "2026-11-22T10:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let tz = TimeZone::get("Asia/Shanghai").unwrap_or(TimeZone::UTC);
        assert_eq!(time(ts, &tz), "2026-11-22 18:00 (Asia/Shanghai)");
    }
}
