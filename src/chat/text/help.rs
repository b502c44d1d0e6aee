//! `/help` and the short answers to messages that are not a command (no text, no sender).
use crate::chat::text::words::{pick, Lang};

pub fn help(lang: Lang, is_admin: bool) -> String {
    crate::domain::command::help_text(lang, is_admin)
}

pub fn admin_only(lang: Lang) -> String {
    pick(
        lang,
        "该命令仅限管理员使用。".into(),
        "That command is for administrators only.".into(),
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

/// A message whose sender has no `senderStaffId` (external contact, unpublished robot).
pub fn cannot_identify(lang: Lang) -> String {
    pick(
        lang,
        "抱歉，无法识别你的钉钉身份（外部联系人或机器人未发布），所以不能为你办理申请。请用企业内部账号与我单聊。".into(),
        "Sorry, I cannot tell who you are (external contact, or the robot is not published), so I cannot take requests from you. Please message me from your company account.".into(),
    )
}
