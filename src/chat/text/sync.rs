//! `/sync`: started, already running, done (with the figures), failed.
use crate::chat::text::words::{pick, time, Lang};
use jiff::tz::TimeZone;
use jiff::Timestamp;

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
    /// JumpServer requests the sync took.
    pub calls: u64,
}

/// How far a running sync got.
#[derive(Clone, Copy, Debug)]
pub struct SyncProgressView {
    pub rows: u64,
    /// The lists' own counts, as far as the walk has seen them (grows as it reaches a list).
    pub rows_expected: u64,
    pub calls: u64,
}

pub fn sync_progress(lang: Lang, v: &SyncProgressView) -> String {
    pick(
        lang,
        format!(
            "⏳ 同步进行中：已读取 {} / {} 条记录，已调用 JumpServer {} 次。完成后告诉你结果。",
            v.rows, v.rows_expected, v.calls
        ),
        format!(
            "⏳ Sync running: {} of {} records read so far, {} JumpServer calls. I'll tell you when it's done.",
            v.rows, v.rows_expected, v.calls
        ),
    )
}

pub fn sync_done(lang: Lang, v: &SyncView, tz: &TimeZone) -> String {
    let secs = format!("{:.1}", v.duration_ms as f64 / 1000.0);
    let at = time(v.synced_at, tz);
    pick(
        lang,
        format!(
            "✅ 同步完成（{at}）：用户 {} 个，主机 {} 台，授权 {} 条（当前有效 {} 条），耗时 {secs} 秒，调用 JumpServer {} 次。现在“谁有权限”按本地索引回答。",
            v.users, v.hosts, v.permissions, v.valid_permissions, v.calls
        ),
        format!(
            "✅ Sync done ({at}): {} users, {} hosts, {} permissions ({} valid now), took {secs} s and {} JumpServer calls. /who-has now answers from the local index.",
            v.users, v.hosts, v.permissions, v.valid_permissions, v.calls
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
