//! What failed and what to fix, when a job gives up: the requester's notice, the admins' notice
//! with the setting to change, derived from DingTalk's error codes where they say enough.
use crate::chat::text::words::{pick, Lang};
use crate::domain::ids::OrderId;

/// The setting an administrator must change for a failed approval start, from the error text
/// DingTalk answered (its codes are stable: `processCodeError`, `param.templateNotExist`, …).
pub fn approval_fix(lang: Lang, reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    if r.contains("process_code is not set") {
        pick(
            lang,
            "在配置中设置 [approval] process_code（钉钉审批模板的 processCode）".into(),
            "set [approval] process_code (the DingTalk approval template's processCode)".into(),
        )
    } else if r.contains("processcode") || r.contains("process code") {
        pick(
            lang,
            "检查 [approval] process_code：在钉钉管理后台 → 审批 → 对应模板的设置中复制正确的 processCode，并确认应用有该模板的权限".into(),
            "check [approval] process_code: copy the right processCode from the DingTalk admin console (Approval → the template's settings) and make sure the app may use that template".into(),
        )
    } else if r.contains("templatenotexist") || r.contains("template") {
        pick(
            lang,
            "检查 [cards] approval_template_id：在钉钉开发者后台 → 卡片平台 用 cards/ 目录中的模板创建卡片模板，并把模板 ID 填入配置".into(),
            "check [cards] approval_template_id: create the card template from the files in cards/ in the DingTalk developer console (card platform) and put its id in the config".into(),
        )
    } else if r.contains("permission") || r.contains("forbidden") || r.contains("denied") {
        pick(
            lang,
            "在钉钉开发者后台为应用开通所需接口权限（审批、互动卡片、机器人消息、通讯录只读）".into(),
            "grant the app the API permissions it needs in the DingTalk developer console (approvals, interactive cards, robot messages, contacts read)".into(),
        )
    } else if r.contains("userid") || r.contains("user not") || r.contains("staff") {
        pick(
            lang,
            "检查审批人的钉钉 userid（[approval] default_approvers、[[systems]] approvers）是否存在且在职".into(),
            "check that the approvers' DingTalk userids ([approval] default_approvers, [[systems]] approvers) exist and are active".into(),
        )
    } else {
        pick(
            lang,
            "查看日志中的这条错误，修正配置后请申请人重新申请".into(),
            "read this error in the log, fix the configuration, then have the requester ask again"
                .into(),
        )
    }
}

/// To the requester: nobody could be asked, the request is closed.
pub fn approval_failed(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("❌ 申请 {order} 的审批未能发起，申请已关闭。管理员已收到通知，修复后请重新申请。"),
        format!("❌ The approval of {order} could not be started, so the request is closed. The administrators were told; ask again once they have fixed it."),
    )
}

/// To the admins: the approval of an order could not be started, why, and what to change.
pub fn admin_approval_failed(
    lang: Lang,
    order: &OrderId,
    requester: &str,
    reason: &str,
    cleanup: Option<&str>,
) -> String {
    let fix = approval_fix(lang, reason);
    let cleanup = cleanup.map(|c| format!("\n{c}")).unwrap_or_default();
    pick(
        lang,
        format!("❌ {requester} 的申请 {order} 审批未能发起：{reason}\n修复：{fix}{cleanup}"),
        format!("❌ The approval of {requester}'s request {order} could not be started: {reason}\nFix: {fix}{cleanup}"),
    )
}

/// To the admins: one approver could not be reached; the others still can decide.
pub fn admin_approver_unreachable(
    lang: Lang,
    order: &OrderId,
    approver: &str,
    reason: &str,
) -> String {
    let fix = approval_fix(lang, reason);
    pick(
        lang,
        format!("⚠️ 申请 {order}：审批请求无法送达 {approver}：{reason}\n修复：{fix}\n其他审批人仍可审批。"),
        format!("⚠️ Order {order}: the approval request could not reach {approver}: {reason}\nFix: {fix}\nThe other approvers can still decide."),
    )
}

/// The cleanup line of an OA start that gave up.
pub fn oa_cleanup(lang: Lang, instance: Option<&str>) -> String {
    match instance {
        Some(i) => pick(
            lang,
            format!("已撤销钉钉中为此发起的审批实例 {i}。"),
            format!("The DingTalk approval instance {i} started for it was terminated."),
        ),
        None => pick(
            lang,
            "钉钉中可能已有此单的审批实例（发起结果未知）：请在审批后台按单号搜索并撤销，它不会再被处理。".into(),
            "DingTalk may hold an approval instance for this order (its start's answer was lost): search the approval console for the order id and terminate it; it will not be acted on.".into(),
        ),
    }
}

/// To the admins: a leaver's JumpServer user could not be disabled.
pub fn admin_leaver_not_disabled(lang: Lang, username: &str, reason: &str) -> String {
    pick(
        lang,
        format!("❌ 离职人员的 JumpServer 用户 {username} 未能禁用：{reason}\n请立即在 JumpServer 中手工禁用该用户。"),
        format!("❌ The JumpServer user {username} of someone who left could not be disabled: {reason}\nDisable it in JumpServer by hand now."),
    )
}

/// To the admins: a message about an order could not be delivered.
pub fn admin_notice_undelivered(
    lang: Lang,
    order: &OrderId,
    requester: &str,
    detail: &str,
) -> String {
    pick(
        lang,
        format!("⚠️ 申请 {order}（{requester}）的一条通知未能送达（{detail}）。请检查机器人消息权限，并告知相关人员。"),
        format!("⚠️ A notice about {order} ({requester}) could not be delivered ({detail}). Check the robot's messaging permissions and tell the people concerned."),
    )
}

/// To the admins: cards could not be updated or an OA instance withdrawn.
pub fn admin_cleanup_failed(lang: Lang, order: &OrderId, detail: &str) -> String {
    pick(
        lang,
        format!("⚠️ 申请 {order}：审批卡片或钉钉审批实例未能更新/撤销（{detail}）。审批人看到的可能仍是旧状态，请在钉钉中手工处理。"),
        format!("⚠️ Order {order}: its approval cards or DingTalk approval instance could not be updated / withdrawn ({detail}). Approvers may still see the old state; handle it in DingTalk by hand."),
    )
}
