//! Every sentence a user reads, by topic: zh-CN (default) and English, chosen by [`Lang`].
//! Plain functions, no i18n crate: the two languages sit side by side in each `match`, which
//! makes a missing translation a compile error rather than a blank message. Everything is
//! re-exported here, so callers write `text::granted` whatever file it lives in; files inside
//! `chat` import the topic file itself (`text::words::time`), so no file depends on this one
//! that this one depends on.
mod access;
mod change;
pub mod console;
pub mod decision;
pub mod dialog;
pub mod errors;
mod give_back;
mod help;
mod history;
mod lang;
pub mod lists;
mod oa;
mod pending;
pub mod request;
pub mod status;
mod sync;
mod who_has;
pub mod words;

pub use access::*;
pub use change::*;
pub use decision::*;
pub use dialog::*;
pub use errors::*;
pub use give_back::*;
pub use help::*;
pub use history::*;
pub use lang::*;
pub use oa::*;
pub use pending::*;
pub use request::*;
pub use status::*;
pub use sync::*;
pub use who_has::*;
pub use words::{duration, role, targets, time, Lang};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::duration::AccessDuration;
    use jiff::tz::TimeZone;
    use jiff::Timestamp;

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
