//! `/lang` · `语言`: which language a person reads.
use crate::chat::text::words::Lang;

pub fn lang_set(lang: Lang) -> String {
    match lang {
        Lang::ZhCn => "好的，之后用中文回复你。（英文：/lang en）".into(),
        Lang::En => "OK, I'll answer you in English from now on. (中文：语言 中文)".into(),
    }
}

pub fn lang_which(lang: Lang) -> String {
    match lang {
        Lang::ZhCn => "请说明语言：“语言 中文”或“语言 英文”（/lang zh、/lang en）。".into(),
        Lang::En => "Which language? /lang en or /lang zh (语言 中文 / 语言 英文).".into(),
    }
}
