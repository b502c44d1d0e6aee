//! Long lists (`/pending`, `/who-has`) within what one DingTalk message can carry: as many
//! rows as fit, then how many were left out and the command that shows the rest.
use crate::chat::text::words::{pick, Lang};

/// DingTalk documents 15 000 bytes for a robot message's `msgParam` (reference/dingtalk.md
/// §4.2c, `groupMessages/send`); the same list may go out through any robot channel, so a list
/// stops well short of it, leaving room for the JSON envelope, its escaping and the footer.
pub const MAX_LIST_BYTES: usize = 12_000;

/// Past a screenful a list stops being read; the rest is one command away.
pub const MAX_LIST_ROWS: usize = 20;

/// How many of `rows` (from the first) fit under `head` in one message; at least one, so a
/// list always moves on.
pub fn fit(head: &str, rows: &[String]) -> usize {
    // Reserve room for the "N more: send …" footer.
    let mut used = head.len() + 200;
    let mut n = 0;
    for r in rows.iter().take(MAX_LIST_ROWS) {
        used += r.len() + 2;
        if used > MAX_LIST_BYTES && n > 0 {
            break;
        }
        n += 1;
    }
    n
}

/// `另有 5 条未显示，发送“待我审批 21”查看。`
pub fn left_out(lang: Lang, n: usize, next: &str) -> String {
    pick(
        lang,
        format!("另有 {n} 条未显示，发送“{next}”查看。"),
        format!("{n} more not shown; send `{next}` to see them."),
    )
}

/// Where a listing starts and the command that lists again (without the starting number):
/// `谁有权限 10.1.2.3 全部`.
pub struct Paging<'a> {
    /// 1 = from the first row.
    pub from: usize,
    pub again: &'a str,
}

/// `head`, then the rows from `paging.from` that fit, then how many were left out and the
/// command that shows them.
pub fn page(lang: Lang, head: &str, rows: &[String], paging: &Paging<'_>) -> String {
    let skip = paging.from.saturating_sub(1).min(rows.len());
    let rest = &rows[skip..];
    let shown = fit(head, rest);
    let mut out = format!("{head}\n{}", rest[..shown].join("\n"));
    let left = rest.len() - shown;
    if left > 0 {
        let next = format!("{} {}", paging.again, skip + shown + 1);
        out.push('\n');
        out.push_str(&left_out(lang, left, &next));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_stop_by_rows_and_by_bytes() {
        let small: Vec<String> = (0..50).map(|i| format!("row {i}")).collect();
        assert_eq!(fit("head", &small), MAX_LIST_ROWS);
        let big: Vec<String> = (0..10).map(|_| "x".repeat(5000)).collect();
        assert_eq!(fit("head", &big), 2);
        let huge = vec!["x".repeat(MAX_LIST_BYTES * 2)];
        assert_eq!(fit("head", &huge), 1);
    }
}
