//! The DingTalk OA approval form: the label of each field, in either language.
use crate::chat::text::words::Lang;

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

impl OaField {
    /// Every field the bot may fill (`Change` only when a grant preview exists).
    pub const ALL: [OaField; 8] = [
        OaField::Order,
        OaField::Requester,
        OaField::JmsUser,
        OaField::Hosts,
        OaField::Access,
        OaField::Duration,
        OaField::Reason,
        OaField::Change,
    ];
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
