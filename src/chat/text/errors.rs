//! Why something typed was not understood or not allowed: durations, targets, commands,
//! policy, approvals, identity, card inputs.
use crate::chat::card::CardInputError;
use crate::chat::text::words::{duration, minutes, pick, role, Lang};
use crate::domain::command::{display_word, spec, CommandError, CommandKind};
use crate::domain::duration::DurationError;
use crate::domain::identity::IdentityError;
use crate::domain::ids::OrderId;
use crate::domain::policy::{Denied, PolicyViolation};
use crate::domain::target::TargetError;

fn example(lang: Lang, kind: CommandKind) -> &'static str {
    let s = spec(kind);
    match lang {
        Lang::ZhCn => s.example_zh,
        Lang::En => s.example_en,
    }
}

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
            format!("看不懂时间单位“{unit}”，请用 分钟/小时/天/周/月（或 m/h/d/w）。"),
            format!("`{unit}` is not a unit of time; use m, h, d, w or months."),
        ),
        DurationError::MissingUnit { number } => pick(
            lang,
            format!("“{number}”缺少单位，例如 {number}小时 或 {number}天。"),
            format!("`{number}` has no unit; write e.g. {number}h or {number}d."),
        ),
        DurationError::Garbage { text } => pick(
            lang,
            format!("“{text}”不是时长，例如 30分钟、4小时、3天、1周、到周五。"),
            format!("`{text}` is not a duration; e.g. 30m, 4h, 3d, 1w, until Friday."),
        ),
        DurationError::Past => pick(
            lang,
            "这个时间已经过去了，请给一个将来的时间。".into(),
            "That time has already passed; give one in the future.".into(),
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
        CommandError::MissingSubject { kind } if *kind == CommandKind::History => with_example(
            pick(
                lang,
                "请写明要查询的主机、用户或单号。".into(),
                "Say which host, user or order to look up.".into(),
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
        CommandError::BadPage { kind, given } => with_example(
            pick(
                lang,
                format!("“{given}”不是页码，请写一个数字，如 2。"),
                format!("`{given}` is not a page number; give a number such as 2."),
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
pub fn card_input_error(lang: Lang, e: &CardInputError) -> String {
    use CardInputError as E;
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
