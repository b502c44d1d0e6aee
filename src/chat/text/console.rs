//! The access console's words (page titles, column heads, buttons, errors) and the names of
//! audit events, in zh-CN and English. One table, each key with both languages side by side, so
//! a missing translation is visible in review; the templates read them as `t.<key>`.
use crate::chat::text::words::Lang;
use crate::domain::audit::AuditEvent;
use std::collections::BTreeMap;

/// `(key, zh-CN, English)`.
const CONSOLE: &[(&str, &str, &str)] = &[
    ("app", "权限控制台", "Access console"),
    ("now", "当前权限", "Now"),
    ("history", "历史记录", "History"),
    ("pending", "待审批", "Pending"),
    ("order", "申请单", "Order"),
    ("logout", "退出登录", "Log out"),
    ("login", "登录", "Log in"),
    ("login_title", "用钉钉登录", "Log in with DingTalk"),
    (
        "login_hint",
        "用钉钉扫码登录；在钉钉里打开会自动登录。",
        "Scan the QR code with DingTalk; inside the DingTalk app you are logged in automatically.",
    ),
    (
        "login_button",
        "钉钉扫码登录",
        "Log in with DingTalk (QR code)",
    ),
    ("login_failed", "登录失败", "Login failed"),
    ("login_again", "重新登录", "Log in again"),
    ("role_employee", "员工", "employee"),
    ("role_approver", "审批人", "approver"),
    ("role_admin", "管理员 / 审计", "admin / auditor"),
    ("as_of", "数据截至", "As of"),
    (
        "index_missing",
        "还没有同步过 JumpServer（管理员发送 /sync）。",
        "JumpServer has not been synced yet (an admin sends /sync).",
    ),
    ("host", "主机", "Host"),
    ("user", "用户", "User"),
    ("person", "人员", "Person"),
    ("system", "系统", "System"),
    ("state", "状态", "State"),
    ("event", "事件", "Event"),
    ("from", "从", "From"),
    ("to", "到", "To"),
    ("time", "时间", "Time"),
    ("actor", "操作人", "By"),
    ("detail", "说明", "Detail"),
    ("filter", "筛选", "Filter"),
    ("reset", "清除", "Clear"),
    ("export_csv", "导出 CSV", "Export CSV"),
    ("newest_first", "最新在前", "Newest first"),
    ("oldest_first", "最早在前", "Oldest first"),
    ("sort", "排序", "Sort"),
    ("prev", "上一页", "Previous"),
    ("next", "下一页", "Next"),
    ("page", "页", "Page"),
    ("of", "共", "of"),
    ("rows", "条", "rows"),
    ("nothing", "没有记录。", "Nothing here."),
    (
        "who_can_reach",
        "谁能访问这台主机",
        "Who can reach this host",
    ),
    (
        "what_user_reaches",
        "这个人能访问什么",
        "What this person can reach",
    ),
    ("my_access", "我能访问的主机", "What I can reach"),
    ("search", "查询", "Search"),
    ("host_placeholder", "IP 或主机名", "address or host name"),
    (
        "user_placeholder",
        "JumpServer 用户名",
        "JumpServer username",
    ),
    ("requested_by", "申请人", "Requested by"),
    ("approved_by", "审批人", "Approved by"),
    ("reason", "理由", "Reason"),
    ("until", "到期", "Until"),
    ("accounts", "账号", "Accounts"),
    ("permission", "授权规则", "Permission"),
    (
        "not_by_bot",
        "不是通过机器人开通的",
        "not granted through the bot",
    ),
    ("no_end", "不过期", "no end"),
    ("requester", "申请人", "Requester"),
    ("targets", "目标", "Targets"),
    ("role", "角色", "Role"),
    ("duration", "时长", "Duration"),
    ("created", "提交时间", "Requested at"),
    ("window", "访问时段", "Access window"),
    ("approvers", "审批人", "Approvers"),
    ("decided_by", "决定人", "Decided by"),
    ("decision_reason", "审批意见", "Decision note"),
    ("timeline", "时间线", "Timeline"),
    ("age", "已等待", "Waiting for"),
    ("waits_for_you", "等你审批", "waits for you"),
    ("chain", "审计链", "Audit chain"),
    (
        "chain_missing",
        "审计记录尚未加上哈希链，无法校验是否被改动。",
        "The audit trail has no hash chain yet: it cannot be checked for tampering.",
    ),
    ("chain_ok", "哈希链完整", "hash chain verified"),
    ("chain_broken", "哈希链断裂", "hash chain BROKEN"),
    ("approve", "同意", "Approve"),
    ("reject", "拒绝", "Reject"),
    ("give_back", "提前归还", "Give back"),
    (
        "not_found",
        "找不到这个页面，或者你没有权限查看。",
        "Not found, or not yours to see.",
    ),
    ("bad_request", "请求无效", "Bad request"),
    (
        "too_many",
        "登录尝试太多，请一分钟后再试。",
        "Too many login attempts; try again in a minute.",
    ),
    ("all", "全部", "all"),
    ("language", "English", "中文"),
    ("system_actor", "机器人", "the bot"),
    ("you", "你", "you"),
];

/// Every console word in `lang`, for the templates.
pub fn console_words(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    CONSOLE
        .iter()
        .map(|(k, zh, en)| {
            (
                *k,
                match lang {
                    Lang::ZhCn => *zh,
                    Lang::En => *en,
                },
            )
        })
        .collect()
}

/// One console word (the key itself when unknown, which a test rules out for the keys used).
pub fn console_word(lang: Lang, key: &str) -> &'static str {
    CONSOLE
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, zh, en)| match lang {
            Lang::ZhCn => *zh,
            Lang::En => *en,
        })
        .unwrap_or("")
}

pub fn audit_event_label(lang: Lang, e: AuditEvent) -> &'static str {
    use AuditEvent::*;
    let (zh, en) = match e {
        Requested => ("提交申请", "requested"),
        Submitted => ("送审", "sent for approval"),
        Approved => ("同意", "approved"),
        Rejected => ("拒绝", "rejected"),
        Cancelled => ("撤回", "withdrawn"),
        TimedOut => ("审批超时", "approval timed out"),
        ProvisioningStarted => ("开始开通", "setup started"),
        Granted => ("已开通", "granted"),
        ProvisioningFailed => ("开通失败", "setup failed"),
        ApprovalFailed => ("审批发起失败", "approval could not start"),
        Revoked => ("收回", "revoked"),
        Expired => ("到期", "expired"),
        Renewed => ("续期", "renewed"),
        Reminded => ("提醒", "reminded"),
        JobGaveUp => ("任务放弃重试", "job gave up"),
        Note => ("备注", "note"),
        TrailMigrated => ("审计记录接入哈希链", "audit trail chained"),
    };
    match lang {
        Lang::ZhCn => zh,
        Lang::En => en,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_both_languages_are_filled() {
        let mut seen = std::collections::BTreeSet::new();
        for (k, zh, en) in CONSOLE {
            assert!(seen.insert(*k), "duplicate key {k}");
            assert!(!zh.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(console_word(Lang::En, "history"), "History");
        assert_eq!(console_word(Lang::ZhCn, "history"), "历史记录");
    }
}
