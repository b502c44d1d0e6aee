//! The audit trail an auditor is handed: the hash chain (`accessbot audit verify` catching an
//! edited, a rewritten, a deleted and a moved record in the raw sled tree, and naming where),
//! the one-off chaining of records an older version wrote, `accessbot audit export` in JSON
//! lines and CSV (columns, escaping, the formula guard, filters), and `/history` over the signed
//! robot path (admins only, newest first, pages that fit a DingTalk message).
use crate::support::{bot_env_newtype, ding_user, BotEnv};
use accessbot::chat::text::{HISTORY_MAX_BYTES, HISTORY_PAGE_ROWS};
use accessbot::domain::audit::{
    Actor, AuditEvent, AuditQuery, AuditRecord, AuditSubject, BreakKind,
};
use accessbot::domain::ids::{DingUserId, OrderId};
use accessbot::store::audit::{chain_hash, Audit, ChainWalk};
use accessbot::store::Store;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;

const BIN: &str = env!("CARGO_BIN_EXE_accessbot");
const T0: &str = "2026-11-22T02:00:00Z";

fn at(min: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + SignedDuration::from_mins(min)
}

fn rec(min: i64, order: &str, event: AuditEvent, host: &str, reason: &str) -> AuditRecord {
    let mut r = AuditRecord::new(
        at(min),
        Some(OrderId::new(order)),
        Actor::User(DingUserId::new("boss01")),
        event,
        "",
    );
    r.subject = Some(AuditSubject {
        requester: DingUserId::new("alice01"),
        requester_name: "张三".into(),
        jms_username: "alice".into(),
        hosts: vec![host.into()],
        role: Some("ops".into()),
        logins: vec!["ops".into()],
        until: Some(at(min + 240)),
        reason: reason.into(),
    });
    r
}

/// A data directory holding `n` records (orders R1..Rn, one record each), closed again.
fn trail(dir: &Path, n: usize) {
    let store = Store::open(dir).unwrap();
    let audit = Audit::new(&store).unwrap();
    for i in 1..=n {
        let host = if i % 2 == 0 { "10.1.2.3" } else { "web-01" };
        audit
            .append(&rec(
                i as i64,
                &format!("R261122-{i:03}"),
                AuditEvent::Approved,
                host,
                "hotfix",
            ))
            .unwrap();
    }
    store.db().flush().unwrap();
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn verify(dir: &Path) -> (bool, String) {
    let (ok, out, err) = run(&["audit", "verify", "--data-dir", dir.to_str().unwrap()]);
    (ok, format!("{out}{err}"))
}

/// Runs `f` on the raw chain tree (tests reach into sled for this one purpose: tampering).
fn tamper(dir: &Path, f: impl FnOnce(&sled::Tree)) {
    let store = Store::open(dir).unwrap();
    let chain = store.tree("audit_chain").unwrap();
    f(&chain);
    store.db().flush().unwrap();
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

#[test]
fn verify_says_ok_then_names_an_edited_and_a_deleted_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    trail(&db, 6);
    let (ok, out) = verify(&db);
    assert!(ok, "{out}");
    assert!(out.starts_with("OK: 6 audit records"), "{out}");
    let head = Audit::new(&Store::open(&db).unwrap())
        .unwrap()
        .verify()
        .unwrap()
        .head_hash
        .unwrap();
    assert!(out.contains(&format!("head #6 {head}")), "{out}");

    // Edit record 3's bytes: the reason in its JSON body.
    tamper(&db, |chain| {
        let v = chain.get(key(3)).unwrap().unwrap().to_vec();
        let s = String::from_utf8_lossy(&v[72..]).replace("hotfix", "hotfiX");
        let mut edited = v[..72].to_vec();
        edited.extend_from_slice(s.as_bytes());
        chain.insert(key(3), edited).unwrap();
    });
    let (ok, out) = verify(&db);
    assert!(!ok, "{out}");
    assert!(
        out.contains("edited: record #3 at 2026-11-22T02:03:00+00:00 order R261122-003"),
        "{out}"
    );
    assert!(
        out.contains("1 problem(s)"),
        "one edit is one finding: {out}"
    );

    // Delete record 5 as well.
    tamper(&db, |chain| {
        chain.remove(key(5)).unwrap();
    });
    let (ok, out) = verify(&db);
    assert!(!ok);
    assert!(out.contains("edited: record #3"), "{out}");
    assert!(
        out.contains(
            "deleted: record #5 order R261122-005 (written between 2026-11-22T02:04:00+00:00 and 2026-11-22T02:06:00+00:00): record #5 is missing between #4 and #6"
        ),
        "the index still names the order of the deleted record: {out}"
    );
    assert!(out.contains("2 problem(s) in 5 audit records"), "{out}");
}

#[test]
fn verify_catches_a_record_rewritten_with_a_fresh_hash_a_move_and_a_cut_tail() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    trail(&db, 8);
    // Record 2 rewritten by someone who knows the scheme: its own hash is right again, but
    // record 3 was chained to the original.
    tamper(&db, |chain| {
        let v = chain.get(key(2)).unwrap().unwrap().to_vec();
        let body = String::from_utf8_lossy(&v[72..]).replace("boss01", "boss02");
        let prev: [u8; 32] = v[8..40].try_into().unwrap();
        let hash = chain_hash(2, &prev, body.as_bytes());
        let mut new = v[..40].to_vec();
        new.extend_from_slice(&hash);
        new.extend_from_slice(body.as_bytes());
        chain.insert(key(2), new).unwrap();
        // Records 5 and 6 swapped.
        let five = chain.get(key(5)).unwrap().unwrap();
        let six = chain.get(key(6)).unwrap().unwrap();
        chain.insert(key(5), six).unwrap();
        chain.insert(key(6), five).unwrap();
        // The newest record dropped.
        chain.remove(key(8)).unwrap();
    });
    let store = Store::open(&db).unwrap();
    let report = Audit::new(&store).unwrap().verify().unwrap();
    drop(store);
    let kinds: Vec<(BreakKind, u64)> = report.breaks.iter().map(|b| (b.kind, b.seq)).collect();
    assert_eq!(
        kinds,
        vec![
            (BreakKind::Edited, 2),
            (BreakKind::Reordered, 5),
            (BreakKind::Reordered, 6),
            (BreakKind::Deleted, 8),
        ],
        "{report:#?}"
    );
    let (ok, out) = verify(&db);
    assert!(!ok);
    assert!(out.contains("edited: record #2 at 2026-11-22T02:02:00+00:00 order R261122-002: record #3 was chained to"), "{out}");
    assert!(out.contains("reordered: record #5"), "{out}");
    assert!(out.contains("the newest record #8 is missing"), "{out}");
}

#[test]
fn records_written_before_the_chain_are_chained_once_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        // The layout of the previous version: `audit` keyed by time (sign-flipped ms, then a
        // sled id), `audit_by_order` `<order>/<key>`, JSON records without a subject.
        let raw = sled::open(&db).unwrap();
        let audit = raw.open_tree("audit").unwrap();
        let by_order = raw.open_tree("audit_by_order").unwrap();
        for (i, min) in [(1u64, 30i64), (2, 10), (3, 20)] {
            let r = AuditRecord::new(
                at(min),
                Some(OrderId::new("R261122-001")),
                Actor::System,
                AuditEvent::Note,
                format!("old {min}"),
            );
            let mut k = ((at(min).as_millisecond() as u64) ^ (1 << 63))
                .to_be_bytes()
                .to_vec();
            k.extend_from_slice(&i.to_be_bytes());
            audit.insert(&k, serde_json::to_vec(&r).unwrap()).unwrap();
            let mut ok = b"R261122-001/".to_vec();
            ok.extend_from_slice(&k);
            by_order.insert(ok, &[][..]).unwrap();
        }
        raw.flush().unwrap();
    }
    let store = Store::open(&db).unwrap();
    let audit = Audit::new(&store).unwrap();
    let all = audit.query(&AuditQuery::default()).unwrap();
    let details: Vec<&str> = all
        .records
        .iter()
        .map(|c| c.record.detail.as_str())
        .collect();
    assert_eq!(details[..3], ["old 10", "old 20", "old 30"], "time order");
    assert_eq!(all.total, 4);
    let last = &all.records[3];
    assert_eq!(last.record.event, AuditEvent::TrailMigrated);
    assert!(
        last.record.detail.contains("chained 3 record(s)"),
        "{}",
        last.record.detail
    );
    assert!(audit.verify().unwrap().is_intact());
    assert_eq!(
        audit
            .list_for_order(&OrderId::new("R261122-001"))
            .unwrap()
            .len(),
        3
    );
    assert!(store.tree("audit").unwrap().is_empty());
    assert!(store.tree("audit_by_order").unwrap().is_empty());
    drop((audit, store));
    // Opening again chains nothing more.
    let store = Store::open(&db).unwrap();
    assert_eq!(Audit::new(&store).unwrap().len(), 4);
}

#[test]
fn export_writes_jsonl_and_csv_with_stable_columns_filters_and_no_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let store = Store::open(&db).unwrap();
        let audit = Audit::new(&store).unwrap();
        audit
            .append(&rec(
                0,
                "R261122-001",
                AuditEvent::Requested,
                "10.1.2.3",
                "=HYPERLINK(\"http://x\")",
            ))
            .unwrap();
        audit
            .append(&rec(
                5,
                "R261122-001",
                AuditEvent::Approved,
                "10.1.2.3",
                "fix, \"now\"\nplease",
            ))
            .unwrap();
        audit
            .append(&rec(
                60 * 48,
                "R261124-001",
                AuditEvent::Granted,
                "web-01",
                "@ops +1 -x",
            ))
            .unwrap();
        store.db().flush().unwrap();
    }
    let d = db.to_str().unwrap();

    let (ok, out, err) = run(&["audit", "export", "--data-dir", d, "--format", "jsonl"]);
    assert!(ok, "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    let first = out.lines().next().unwrap();
    let places: Vec<usize> = accessbot::audit_cli::COLUMNS
        .iter()
        .map(|c| first.find(&format!("\"{c}\":")).unwrap_or(usize::MAX))
        .collect();
    assert!(
        places.windows(2).all(|w| w[0] < w[1]),
        "JSON keys in column order: {first}"
    );
    assert_eq!(
        rows[0].as_object().unwrap().len(),
        accessbot::audit_cli::COLUMNS.len()
    );
    assert_eq!(rows[0]["time"], "2026-11-22T02:00:00+00:00");
    assert_eq!(rows[0]["seq"], 1);
    assert_eq!(rows[0]["event"], "requested");
    assert_eq!(rows[0]["actor"], "user:boss01");
    assert_eq!(rows[0]["hosts"], serde_json::json!(["10.1.2.3"]));
    assert_eq!(rows[0]["until"], "2026-11-22T06:00:00+00:00");
    // JSON keeps the text exactly; only CSV guards against formulas.
    assert_eq!(rows[0]["reason"], "=HYPERLINK(\"http://x\")");
    assert_eq!(rows[1]["prev_hash"], rows[0]["hash"]);

    let (ok, out, err) = run(&["audit", "export", "--data-dir", d, "--format", "csv"]);
    assert!(ok, "{err}");
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let head: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(head, accessbot::audit_cli::COLUMNS);
    let recs: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 3);
    let reason = head.iter().position(|h| h == "reason").unwrap();
    assert_eq!(&recs[0][reason], "'=HYPERLINK(\"http://x\")");
    assert_eq!(
        &recs[1][reason], "fix, \"now\"\nplease",
        "quotes, comma and newline survive"
    );
    assert_eq!(&recs[2][reason], "'@ops +1 -x");
    assert_eq!(&recs[2][0], "2026-11-24T02:00:00+00:00");

    // Filters: order, host, user, time (a bare --until date runs to the end of that day).
    let count = |extra: &[&str]| {
        let mut a = vec!["audit", "export", "--data-dir", d, "--format", "jsonl"];
        a.extend_from_slice(extra);
        let (ok, out, err) = run(&a);
        assert!(ok, "{extra:?}: {err}");
        out.lines().count()
    };
    assert_eq!(count(&["--order", "r261122-001"]), 2);
    assert_eq!(count(&["--host", "WEB-01"]), 1);
    assert_eq!(count(&["--user", "alice"]), 3);
    assert_eq!(count(&["--user", "nobody"]), 0);
    assert_eq!(count(&["--since", "2026-11-23"]), 1);
    assert_eq!(count(&["--until", "2026-11-22"]), 2);
    assert_eq!(
        count(&["--since", "2026-11-22T02:03:00Z", "--until", "2026-11-23"]),
        1
    );
    let (ok, _, err) = run(&[
        "audit",
        "export",
        "--data-dir",
        d,
        "--format",
        "csv",
        "--since",
        "last week",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--since") && err.contains("neither a date"),
        "{err}"
    );
    let (ok, _, err) = run(&["audit", "verify", "--data-dir", "/nonexistent/accessbot"]);
    assert!(!ok);
    assert!(err.contains("not an accessbot data directory"), "{err}");
}

// ------------------------------------------------------------------ /history ----------

const ALICE: &str = "alice01";
const BOB: &str = "bob01";
const BOSS: &str = "boss01";
const ADMIN: &str = "admin01";

struct Env(BotEnv);
bot_env_newtype!(Env);

impl Env {
    async fn new(lang: &str) -> Env {
        let users = [
            (ALICE, "张三", "fx-alice@example.com"),
            (BOB, "赵六", "fx-bob@example.com"),
            (BOSS, "李四", "boss01@example.com"),
            (ADMIN, "管理员", "admin01@example.com"),
        ]
        .map(|(id, name, mail)| ding_user(id, name, mail));
        let lang = lang.to_owned();
        Env(BotEnv::new(
            users,
            |_, _| {},
            move |cfg| {
                cfg.approval.default_approvers = vec![BOSS.into()];
                cfg.policy.admins = vec![ADMIN.into()];
                cfg.workflow.max_new_orders_per_user = 0;
                if lang == "en" {
                    cfg.chat.language = accessbot::chat::text::Lang::En;
                }
            },
        )
        .await)
    }

    async fn say(&self, user: &str, text: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg_id = format!("hist-msg{n}");
        self.push_robot_text(user, &msg_id, text).await;
        msg_id
    }

    /// The text of the bot's answer to `user`'s message.
    async fn ask(&self, user: &str, text: &str) -> String {
        let s = self.say(user, text).await;
        let raw = self.reply(&s).await;
        let v: Value = serde_json::from_str(&raw).unwrap();
        v["text"]["content"]
            .as_str()
            .or(v["markdown"]["text"].as_str())
            .unwrap_or(&raw)
            .to_owned()
    }

    /// `user` asks for 10.10.1.11 and gets the new order's id.
    async fn request(&self, user: &str) -> OrderId {
        let before = self.orders_of(user).len();
        let r = self
            .ask(user, "申请主机 10.10.1.11 只读 4h 原因：排查线上问题")
            .await;
        let orders = self.orders_of(user);
        assert_eq!(orders.len(), before + 1, "no order created; reply: {r}");
        self.drain().await;
        orders[0].id.clone()
    }
}

#[tokio::test]
async fn history_shows_admins_the_trail_newest_first_in_pages_and_refuses_others() {
    let env = Env::new("zh").await;
    let granted = env.request(ALICE).await;
    env.say(BOSS, &format!("同意 {granted}")).await;
    env.drain().await;
    env.drain().await;
    assert_eq!(
        env.order(&granted).state,
        accessbot::domain::order::State::Active
    );

    // Not an admin: refused, and nothing about the trail leaks.
    let r = env.ask(ALICE, &format!("/history {granted}")).await;
    assert!(r.contains("仅限管理员"), "{r}");
    assert!(!r.contains("批准"), "{r}");

    // By order: newest first, who did what.
    let r = env.ask(ADMIN, &format!("历史 {granted}")).await;
    let lines: Vec<&str> = r.lines().filter(|l| l.contains('•')).collect();
    assert!(r.contains(&format!("“{granted}”的操作记录")), "{r}");
    let approved = lines
        .iter()
        .position(|l| l.contains("· 批准 · 李四 ·"))
        .expect(&r);
    let requested = lines
        .iter()
        .position(|l| l.contains("· 申请 · "))
        .expect(&r);
    let granted_at = lines
        .iter()
        .position(|l| l.contains("· 已开通 ·"))
        .expect(&r);
    assert!(
        granted_at < approved && approved < requested,
        "newest first: {r}"
    );
    assert!(lines[granted_at].contains("10.10.1.11"), "{r}");
    assert!(lines[granted_at].contains("只读"), "{r}");
    assert!(
        lines[granted_at].contains("至 11-22"),
        "until in the zone: {r}"
    );

    // More records on the host than one page holds: withdrawn requests by two people.
    for user in [ALICE, BOB].iter().cycle().take(10) {
        let id = env.request(user).await;
        env.say(user, &format!("取消 {id}")).await;
        env.drain().await;
    }
    let r = env.ask(ADMIN, "/history 10.10.1.11").await;
    let head = r.lines().next().unwrap();
    assert!(head.contains("第 1/"), "{r}");
    assert_eq!(
        r.lines().filter(|l| l.starts_with('•')).count(),
        HISTORY_PAGE_ROWS,
        "{r}"
    );
    assert!(r.len() <= HISTORY_MAX_BYTES);
    let footer = r.lines().last().unwrap();
    assert!(
        footer.contains("条更早的记录未列出") && footer.contains("历史 10.10.1.11 2"),
        "{r}"
    );
    assert!(
        r.lines().nth(1).unwrap().contains("撤回"),
        "the newest is the last withdrawal: {r}"
    );

    let r2 = env.ask(ADMIN, "历史 10.10.1.11 第2页").await;
    assert!(r2.lines().next().unwrap().contains("第 2/"), "{r2}");
    assert!(
        r2.contains("· 已开通 ·"),
        "the grant is on an older page: {r2}"
    );

    // By user (DingTalk userid or JumpServer username) and unknown subjects.
    let by_user = env.ask(ADMIN, "/history bob01").await;
    let bobs: Vec<String> = env
        .orders_of(BOB)
        .iter()
        .map(|o| o.id.to_string())
        .collect();
    assert_eq!(bobs.len(), 5);
    for l in by_user.lines().filter(|l| l.starts_with('•')) {
        assert!(
            bobs.iter().any(|b| l.contains(b.as_str())),
            "not bob's: {l}"
        );
    }
    assert!(by_user.contains("（共 15 条"), "{by_user}");
    let by_jms = env.ask(ADMIN, "/history fx-bob").await;
    // The JumpServer username is on the records from the request's preparation on; the
    // request records before it are found through the requester it belongs to.
    assert!(by_jms.contains("（共 15 条"), "{by_jms}");
    assert!(by_jms.contains("· 申请 · "), "{by_jms}");
    let none = env.ask(ADMIN, "/history 10.99.99.99").await;
    assert!(none.contains("没有“10.99.99.99”的操作记录"), "{none}");
    let bad = env.ask(ADMIN, "/history 10.10.1.11 next").await;
    assert!(bad.contains("不是页码"), "{bad}");
    let help = env.ask(ADMIN, "帮助").await;
    assert!(help.contains("历史"), "{help}");
    let help = env.ask(ALICE, "帮助").await;
    assert!(!help.contains("操作记录"), "{help}");
}

#[tokio::test]
async fn history_in_english() {
    let env = Env::new("en").await;
    let id = env.request(ALICE).await;
    env.say(BOSS, &format!("/reject {id} use staging")).await;
    env.drain().await;
    let r = env.ask(ADMIN, &format!("/history {id}")).await;
    assert!(r.starts_with(&format!("Audit trail of `{id}`")), "{r}");
    assert!(
        r.contains("· rejected · 李四 ·") && r.contains("use staging"),
        "{r}"
    );
    assert!(r.contains("· requested · "), "{r}");
    let r = env.ask(BOB, &format!("/history {id}")).await;
    assert!(r.contains("administrators only"), "{r}");
}

#[test]
fn concurrent_writers_extend_one_chain_without_forking_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db")).unwrap();
    let audit = Audit::new(&store).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let audit = audit.clone();
            s.spawn(move || {
                for i in 0..25 {
                    let order = format!("R2611{t:02}-{i:03}");
                    audit
                        .append(&rec(i, &order, AuditEvent::Note, "web-01", "x"))
                        .unwrap();
                }
            });
        }
    });
    let report = audit.verify().unwrap();
    assert!(report.is_intact(), "{report:#?}");
    assert_eq!((report.count, report.head_seq), (100, Some(100)));
    let page = audit
        .query(&AuditQuery {
            host: Some("WEB-01".into()),
            newest_first: true,
            offset: 90,
            limit: 20,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(page.total, 100);
    let seqs: Vec<u64> = page.records.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=10).rev().collect::<Vec<_>>(),
        "the last page, newest first"
    );
}

/// The console walks the chain once, then only what was appended (`Audit::verify_from`): going
/// on from a walk must say exactly what a whole walk says, intact or not.
#[test]
fn a_walk_resumed_after_appends_reports_what_a_whole_walk_reports() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    trail(&db, 5);
    // A trail with a finding in the part already walked (record 2 edited), then appended to.
    tamper(&db, |chain| {
        let v = chain.get(key(2)).unwrap().unwrap().to_vec();
        let s = String::from_utf8_lossy(&v[72..]).replace("hotfix", "hotfiX");
        let mut edited = v[..72].to_vec();
        edited.extend_from_slice(s.as_bytes());
        chain.insert(key(2), edited).unwrap();
    });
    let store = Store::open(&db).unwrap();
    let audit = Audit::new(&store).unwrap();
    let (first, walk) = audit.verify_from(ChainWalk::default()).unwrap();
    assert_eq!(first, audit.verify().unwrap());
    assert_eq!(first.count, 5);
    for i in 6..=9 {
        audit
            .append(&rec(
                i,
                &format!("R261122-{i:03}"),
                AuditEvent::Approved,
                "web-01",
                "later",
            ))
            .unwrap();
    }
    let (resumed, walk) = audit.verify_from(walk).unwrap();
    let whole = audit.verify().unwrap();
    assert_eq!(resumed, whole);
    assert_eq!(resumed.count, 9);
    assert_eq!(
        resumed.breaks.len(),
        1,
        "the edit is still reported: {resumed:#?}"
    );
    assert_eq!(resumed.head_seq, Some(9));
    // Nothing appended: the same report again, without reading a record.
    assert_eq!(audit.verify_from(walk).unwrap().0, whole);
}

/// `list_since` walks back from the newest record and stops an hour before `since`: it must
/// return what filtering the whole trail returns, a record appended a little out of time order
/// included, and only the oldest `limit` of them.
#[test]
fn records_since_a_time_are_those_a_whole_walk_finds() {
    let store = Store::temporary().unwrap();
    let audit = Audit::new(&store).unwrap();
    // Minutes 0, 10, …, 590, then one stamped 25 minutes before the last (a commit that raced).
    for i in 0..60 {
        audit
            .append(&rec(
                i * 10,
                &format!("R{i:03}"),
                AuditEvent::Approved,
                "web-01",
                "x",
            ))
            .unwrap();
    }
    audit
        .append(&rec(565, "R-late", AuditEvent::Approved, "web-01", "x"))
        .unwrap();
    let all = audit.list_since(Timestamp::MIN, usize::MAX).unwrap();
    assert_eq!(all.len(), 61);
    for since in [0, 1, 200, 560, 565, 566, 590, 591, 10_000] {
        let want: Vec<_> = all.iter().filter(|r| r.at >= at(since)).cloned().collect();
        assert_eq!(
            audit.list_since(at(since), usize::MAX).unwrap(),
            want,
            "since minute {since}"
        );
    }
    let first_two = audit.list_since(at(560), 2).unwrap();
    let orders: Vec<_> = first_two
        .iter()
        .filter_map(|r| r.order_id.as_ref().map(|o| o.to_string()))
        .collect();
    assert_eq!(
        orders,
        ["R056", "R057"],
        "the oldest two, in the trail's order"
    );
}
