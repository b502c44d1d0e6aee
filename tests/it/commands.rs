//! Chat commands, dialogs, policy, identity and the texts users read, through the public API.
use accessbot::chat::text::{self, Lang};
use accessbot::domain::command::{
    help_text, parse, ApplyDraft, Command, CommandError, CommandKind, Role, COMMANDS,
};
use accessbot::domain::dialog::{self, DialogState, DialogStep, Field, Problem, Reply};
use accessbot::domain::duration::{self, DurationError};
use accessbot::domain::identity::{
    jms_username, DirectoryEntry, IdentityConfig, IdentityError, IdentityRule,
};
use accessbot::domain::ids::{DingUserId, OrderId};
use accessbot::domain::order::Status;
use accessbot::domain::policy::{
    AccessRequest, DecisionSubject, Denied, Policy, PolicyConfig, PolicyViolation,
};
use accessbot::domain::target::{Target, TargetError};
use proptest::prelude::*;

const CONFIG: &str = r#"
[approval]
mode = "card"
default_approvers = ["boss"]

[policy]
admins = ["admin1"]
max_addresses = 5

[roles.ops]
max_duration = "3d"

[roles.readonly]
accounts = ["@ALL"]
label_en = "viewer"

[[systems]]
name = "支付系统"
aliases = ["payments", "pay"]
node = "/Default/Payments"
addresses = ["10.9.0.0/16"]
hostnames = ["pay-db-01"]
approvers = ["payboss", "payboss2"]
max_duration = { ops = "4h" }

[chat]
dialog_idle_minutes = 10

[identity]
rule = "email_local_part"

[identity.map]
u_odd = "odd.user"
"#;

fn config() -> PolicyConfig {
    toml::from_str(CONFIG).unwrap_or_else(|e| panic!("test config: {e}"))
}

fn policy() -> Policy {
    Policy::from_config(&config()).unwrap_or_else(|e| panic!("{e}"))
}

fn ip(s: &str) -> Target {
    Target::Address(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
}

fn dur(s: &str) -> duration::AccessDuration {
    duration::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn draft(text: &str) -> ApplyDraft {
    match parse(text) {
        Ok(Command::ApplyHost(d)) => d,
        other => panic!("{text}: expected apply host, got {other:?}"),
    }
}

fn order(s: &str) -> OrderId {
    OrderId::new(s)
}

// ------------------------------------------------------------------ commands ----------

#[test]
fn help_in_both_languages_and_odd_spellings() {
    for t in [
        "/help",
        "help",
        "HELP",
        "帮助",
        "／ｈｅｌｐ",
        "  @accessbot /help",
        "\u{3000}帮助",
    ] {
        assert_eq!(parse(t), Ok(Command::Help), "{t:?}");
    }
}

#[test]
fn apply_account_in_both_languages() {
    for t in [
        "/apply account",
        "Apply Account",
        "申请账号",
        "申请 账号",
        "/申请帐号",
    ] {
        assert_eq!(parse(t), Ok(Command::ApplyAccount), "{t:?}");
    }
}

#[test]
fn apply_host_complete_in_english() {
    let d = draft("/apply host 10.1.2.3 ops 3d reason: hotfix");
    assert_eq!(d.targets, vec![ip("10.1.2.3")]);
    assert_eq!(d.role, Some(Role::Ops));
    assert_eq!(d.duration, Some(dur("3d")));
    assert_eq!(d.reason.as_deref(), Some("hotfix"));
}

#[test]
fn apply_host_complete_in_chinese_with_full_width_colon() {
    let d = draft("申请主机 10.1.2.3 运维 3天 原因：修复");
    assert_eq!(d.targets, vec![ip("10.1.2.3")]);
    assert_eq!(d.role, Some(Role::Ops));
    assert_eq!(d.duration, Some(dur("72h")));
    assert_eq!(d.reason.as_deref(), Some("修复"));
}

#[test]
fn apply_host_partial_and_list_forms() {
    let d = draft("申请 主机 10.1.2.3，10.1.2.4、10.1.2.3 只读");
    assert_eq!(d.targets, vec![ip("10.1.2.3"), ip("10.1.2.4")]);
    assert_eq!(d.role, Some(Role::Readonly));
    assert_eq!((d.duration, d.reason), (None, None));

    assert_eq!(draft("申请主机"), ApplyDraft::default());
    assert_eq!(draft("apply host fe80::1").targets, vec![ip("fe80::1")]);
    // Bare `申请` followed by an address is read as a host request.
    assert_eq!(draft("申请 10.1.2.3 运维").targets, vec![ip("10.1.2.3")]);
}

#[test]
fn apply_host_free_text_reason_after_role_and_duration() {
    let d = draft("/apply host Web-01 readonly 4h deploying release 42");
    assert_eq!(d.targets, vec![Target::Hostname("web-01".into())]);
    assert_eq!(d.duration, Some(dur("4h")));
    assert_eq!(d.reason.as_deref(), Some("deploying release 42"));
    let d = draft("申请主机 支付系统 3天 只读 排查对账问题");
    assert_eq!(d.targets, vec![Target::System("支付系统".into())]);
    assert_eq!(d.reason.as_deref(), Some("排查对账问题"));
}

#[test]
fn everyday_commands_in_both_languages() {
    let a = order("R261122-007");
    let cases: Vec<(&str, Command)> = vec![
        ("/my", Command::My),
        ("我的权限", Command::My),
        ("/status R261122-007", Command::Status(a.clone())),
        ("状态 r261122-007", Command::Status(a.clone())),
        ("cancel R261122-007", Command::Cancel(Some(a.clone()))),
        ("取消 R261122-007", Command::Cancel(Some(a.clone()))),
        ("取消", Command::Cancel(None)),
        ("/cancel", Command::Cancel(None)),
        ("/approve R261122-007", Command::Approve(a.clone())),
        ("同意 R261122-007", Command::Approve(a.clone())),
        ("批准 R261122-007", Command::Approve(a.clone())),
        (
            "/reject R261122-007 use staging",
            Command::Reject {
                order: a.clone(),
                reason: "use staging".into(),
            },
        ),
        (
            "拒绝 R261122-007 原因：请用测试环境",
            Command::Reject {
                order: a.clone(),
                reason: "请用测试环境".into(),
            },
        ),
    ];
    for (t, want) in cases {
        assert_eq!(parse(t), Ok(want), "{t:?}");
    }
}

#[test]
fn admin_commands_in_both_languages() {
    let a = order("R261122-007");
    let cases: Vec<(&str, Command)> = vec![
        ("/sync", Command::Sync),
        ("同步", Command::Sync),
        (
            "/who-has 10.1.2.3",
            Command::WhoHas {
                subject: "10.1.2.3".into(),
                all: false,
                from: 1,
            },
        ),
        (
            "who has alice",
            Command::WhoHas {
                subject: "alice".into(),
                all: false,
                from: 1,
            },
        ),
        (
            "谁有权限 10.1.2.3",
            Command::WhoHas {
                subject: "10.1.2.3".into(),
                all: false,
                from: 1,
            },
        ),
        (
            "谁有权限 10.1.2.3 全部",
            Command::WhoHas {
                subject: "10.1.2.3".into(),
                all: true,
                from: 1,
            },
        ),
        (
            "/who-has alice all",
            Command::WhoHas {
                subject: "alice".into(),
                all: true,
                from: 1,
            },
        ),
        ("/revoke R261122-007", Command::Revoke(a.clone())),
        ("撤销 R261122-007", Command::Revoke(a.clone())),
        (
            "/renew R261122-007",
            Command::Renew {
                order: a.clone(),
                duration: None,
            },
        ),
        (
            "续期 R261122-007 1天",
            Command::Renew {
                order: a.clone(),
                duration: Some(dur("1d")),
            },
        ),
    ];
    for (t, want) in cases {
        // Requesters renew their own grants: `/renew` is in everyone's help (the command
        // checks whose order it is).
        let admin_only = !matches!(want, Command::Renew { .. });
        let got = parse(t);
        assert_eq!(got, Ok(want), "{t:?}");
        assert_eq!(got.is_ok_and(|c| c.is_admin_only()), admin_only, "{t:?}");
    }
    assert!(parse("/my").is_ok_and(|c| !c.is_admin_only()));
}

// ------------------------------------------------------------------ command errors ----------

/// Each error with the message a user would read, in both languages.
fn says(e: &CommandError, zh: &[&str], en: &[&str]) {
    let z = text::command_error(Lang::ZhCn, e);
    let n = text::command_error(Lang::En, e);
    for w in zh {
        assert!(z.contains(w), "zh reply {z:?} lacks {w:?}");
    }
    for w in en {
        assert!(n.contains(w), "en reply {n:?} lacks {w:?}");
    }
}

#[test]
fn unknown_command_with_did_you_mean() {
    let e = parse("/hepl").err().unwrap_or(CommandError::Empty);
    assert_eq!(
        e,
        CommandError::Unknown {
            word: "hepl".into(),
            suggestion: Some(CommandKind::Help),
            args: String::new(),
        }
    );
    says(&e, &["hepl", "帮助"], &["hepl", "Did you mean /help"]);
    let e = parse("申清主机 10.1.2.3")
        .err()
        .unwrap_or(CommandError::Empty);
    assert!(matches!(
        e,
        CommandError::Unknown {
            suggestion: Some(CommandKind::ApplyHost),
            ..
        }
    ));
    // With arguments, the corrected command itself is offered (sent by a one-tap button).
    says(
        &e,
        &["你是想说 申请主机 吗？", "申请主机 10.1.2.3"],
        &["Did you mean /apply host?", "/apply host 10.1.2.3"],
    );
}

#[test]
fn unknown_command_without_suggestion() {
    let e = parse("hello there").err().unwrap_or(CommandError::Empty);
    assert_eq!(
        e,
        CommandError::Unknown {
            word: "hello".into(),
            suggestion: None,
            args: String::new(),
        }
    );
    says(&e, &["hello", "帮助"], &["hello", "/help"]);
}

#[test]
fn bad_address_range_and_host_name() {
    let e = parse("/apply host 10.1.2.300 ops")
        .err()
        .unwrap_or(CommandError::Empty);
    assert_eq!(
        e,
        CommandError::Target(TargetError::BadAddress("10.1.2.300".into()))
    );
    says(
        &e,
        &["10.1.2.300", "0–255", "例如"],
        &["10.1.2.300", "not a valid IP", "For example"],
    );

    let e = parse("申请主机 10.0.0.0/24")
        .err()
        .unwrap_or(CommandError::Empty);
    assert_eq!(
        e,
        CommandError::Target(TargetError::Range("10.0.0.0/24".into()))
    );
    says(&e, &["地址段"], &["address range"]);

    let e = parse("申请主机 web_01!")
        .err()
        .unwrap_or(CommandError::Empty);
    assert!(matches!(
        e,
        CommandError::Target(TargetError::BadHostname(_))
    ));
    says(&e, &["主机名"], &["host name"]);
}

#[test]
fn bad_durations() {
    let cases = [
        (
            "/apply host 10.1.2.3 ops 0h",
            DurationError::Zero,
            "大于 0",
            "longer than zero",
        ),
        (
            "/apply host 10.1.2.3 ops 3",
            DurationError::MissingUnit { number: "3".into() },
            "缺少单位",
            "no unit",
        ),
    ];
    for (t, want, zh, en) in cases {
        let e = parse(t).err().unwrap_or(CommandError::Empty);
        assert_eq!(e, CommandError::Duration(want), "{t}");
        says(&e, &[zh], &[en]);
    }
    let e = parse("申请主机 10.1.2.3 400天")
        .err()
        .unwrap_or(CommandError::Empty);
    assert!(matches!(
        e,
        CommandError::Duration(DurationError::TooLong { .. })
    ));
    says(&e, &["太长", "366天"], &["too long"]);
    let e = parse("/renew A1 soon").err().unwrap_or(CommandError::Empty);
    assert!(matches!(
        e,
        CommandError::Duration(DurationError::Garbage { .. })
    ));
    says(&e, &["不是时长"], &["not a duration"]);
}

#[test]
fn missing_and_bad_order_ids_missing_reason_and_subject() {
    let e = parse("/status").err().unwrap_or(CommandError::Empty);
    assert_eq!(
        e,
        CommandError::MissingOrderId {
            kind: CommandKind::Status
        }
    );
    says(
        &e,
        &["缺少单号", "状态 R261122-007"],
        &["order id is missing", "/status R261122-007"],
    );

    let e = parse("同意 你好").err().unwrap_or(CommandError::Empty);
    assert_eq!(
        e,
        CommandError::BadOrderId {
            kind: CommandKind::Approve,
            given: "你好".into()
        }
    );
    says(&e, &["你好", "不是单号"], &["not an order id"]);

    let e = parse("/reject R261122-007")
        .err()
        .unwrap_or(CommandError::Empty);
    assert_eq!(
        e,
        CommandError::MissingReason {
            kind: CommandKind::Reject
        }
    );
    says(&e, &["原因", "拒绝 R261122-007"], &["reason", "/reject"]);

    let e = parse("谁有权限").err().unwrap_or(CommandError::Empty);
    assert_eq!(
        e,
        CommandError::MissingSubject {
            kind: CommandKind::WhoHas
        }
    );
    says(&e, &["主机或用户"], &["host or user"]);
}

#[test]
fn apply_what_two_roles_empty_and_too_long() {
    let e = parse("/apply").err().unwrap_or(CommandError::Empty);
    assert_eq!(e, CommandError::ApplyWhat);
    says(
        &e,
        &["申请账号", "申请主机"],
        &["/apply account", "/apply host"],
    );
    let e = parse("申请主机 10.1.2.3 运维 只读")
        .err()
        .unwrap_or(CommandError::Empty);
    assert_eq!(e, CommandError::TwoRoles);
    says(&e, &["只选一个"], &["pick one"]);
    assert_eq!(parse("   "), Err(CommandError::Empty));
    assert_eq!(parse("@bot"), Err(CommandError::Empty));
    let long = "x".repeat(5000);
    assert!(matches!(parse(&long), Err(CommandError::TooLong { .. })));
}

#[test]
fn help_is_generated_from_the_table() {
    for lang in [Lang::ZhCn, Lang::En] {
        let user = help_text(lang, false);
        let admin = help_text(lang, true);
        for s in COMMANDS {
            let word = match lang {
                Lang::ZhCn => s.zh[0].to_string(),
                Lang::En => format!("/{}", s.en[0]),
            };
            let about = match lang {
                Lang::ZhCn => s.about_zh,
                Lang::En => s.about_en,
            };
            assert!(admin.contains(&word) && admin.contains(about), "{word}");
            assert_eq!(user.contains(&word), !s.admin, "{word}");
        }
    }
    assert!(help_text(Lang::ZhCn, false).starts_with("可用命令"));
    assert!(help_text(Lang::En, false).contains("Example: /apply host"));
}

// ------------------------------------------------------------------ dialog ----------

const T0: i64 = 1_800_000_000_000;
const MIN: i64 = 60_000;

fn asks(step: &DialogStep) -> Option<Field> {
    match &step.reply {
        Reply::Ask { field, .. } => Some(*field),
        _ => None,
    }
}

fn problem(step: &DialogStep) -> Option<&Problem> {
    match &step.reply {
        Reply::Ask { problem, .. } => problem.as_ref(),
        _ => None,
    }
}

#[test]
fn dialog_asks_one_thing_at_a_time_and_completes() {
    let p = policy();
    let s = dialog::step(None, "申请主机", &p, T0);
    assert_eq!(asks(&s), Some(Field::Targets));
    let txt = text::dialog_reply(Lang::ZhCn, &s.reply, s.dropped_idle).unwrap_or_default();
    assert!(txt.contains("哪些主机") && txt.contains("取消"), "{txt}");

    let s = dialog::step(s.new_state, "10.1.2.3 10.1.2.4", &p, T0 + MIN);
    assert_eq!(asks(&s), Some(Field::Role));

    let s = dialog::step(s.new_state, "运维", &p, T0 + 2 * MIN);
    assert_eq!(asks(&s), Some(Field::Duration));
    assert!(matches!(s.reply, Reply::Ask { max_duration: Some(m), .. } if m == dur("3d")));
    let txt = text::dialog_reply(Lang::ZhCn, &s.reply, false).unwrap_or_default();
    assert!(txt.contains("最长 3天"), "{txt}");

    // Over the role's limit: says why and asks again.
    let s = dialog::step(s.new_state, "5天", &p, T0 + 3 * MIN);
    assert_eq!(asks(&s), Some(Field::Duration));
    assert!(matches!(
        problem(&s),
        Some(Problem::Policy(PolicyViolation::DurationTooLong { .. }))
    ));
    let txt = text::dialog_reply(Lang::En, &s.reply, false).unwrap_or_default();
    assert!(
        txt.contains("5 days is longer than the 3 days allowed for ops"),
        "{txt}"
    );

    let s = dialog::step(s.new_state, "2天", &p, T0 + 4 * MIN);
    assert_eq!(asks(&s), Some(Field::Reason));

    // A reason that starts like a command word is still the answer.
    let s = dialog::step(s.new_state, "同步数据库", &p, T0 + 5 * MIN);
    assert_eq!(s.reply, Reply::Complete);
    assert_eq!(s.new_state, None);
    assert_eq!(
        s.done,
        Some(AccessRequest {
            targets: vec![ip("10.1.2.3"), ip("10.1.2.4")],
            role: Role::Ops,
            duration: dur("2d"),
            ends_at: None,
            on_behalf_of: None,
            reason: Some("同步数据库".into()),
        })
    );
}

#[test]
fn dialog_complete_command_finishes_at_once() {
    let p = policy();
    let s = dialog::step(None, "/apply host 10.1.2.3 ops 3d reason: hotfix", &p, T0);
    assert_eq!(s.reply, Reply::Complete);
    assert!(s
        .done
        .is_some_and(|r| r.reason.as_deref() == Some("hotfix")));
}

#[test]
fn dialog_bad_answers_are_explained_and_asked_again() {
    let p = policy();
    let s = dialog::step(None, "申请主机", &p, T0);
    let s = dialog::step(s.new_state, "10.1.2.300", &p, T0 + 1);
    assert_eq!(asks(&s), Some(Field::Targets));
    assert_eq!(
        problem(&s),
        Some(&Problem::Target(TargetError::BadAddress(
            "10.1.2.300".into()
        )))
    );
    let txt = text::dialog_reply(Lang::ZhCn, &s.reply, false).unwrap_or_default();
    assert!(
        txt.contains("10.1.2.300") && txt.contains("哪些主机"),
        "{txt}"
    );

    let s = dialog::step(s.new_state, "10.1.2.3", &p, T0 + 2);
    let s = dialog::step(s.new_state, "admin", &p, T0 + 3);
    assert_eq!(asks(&s), Some(Field::Role));
    assert_eq!(problem(&s), Some(&Problem::NotARole("admin".into())));

    let s = dialog::step(s.new_state, "只读", &p, T0 + 4);
    let s = dialog::step(s.new_state, "tomorrow", &p, T0 + 5);
    assert_eq!(asks(&s), Some(Field::Duration));
    assert!(matches!(
        problem(&s),
        Some(Problem::Duration(DurationError::Garbage { .. }))
    ));
    let s = dialog::step(s.new_state, "4h", &p, T0 + 6);
    assert_eq!(asks(&s), Some(Field::Reason));
    let s = dialog::step(s.new_state, &"很".repeat(400), &p, T0 + 7);
    assert_eq!(asks(&s), Some(Field::Reason));
    assert!(matches!(problem(&s), Some(Problem::ReasonTooLong { .. })));
}

#[test]
fn dialog_targets_answer_may_carry_the_rest() {
    let p = policy();
    let s = dialog::step(None, "申请主机", &p, T0);
    let s = dialog::step(s.new_state, "web-01 只读 4小时 原因：看日志", &p, T0 + 1);
    assert_eq!(s.reply, Reply::Complete);
    assert!(s
        .done
        .is_some_and(|r| r.role == Role::Readonly && r.duration == dur("4h")));
}

#[test]
fn dialog_system_limits_and_unknown_systems() {
    let p = policy();
    // `payments` is an alias: resolved to the system, whose ops limit (4h) is below the role's.
    let s = dialog::step(None, "/apply host payments ops 8h reason: x", &p, T0);
    assert_eq!(asks(&s), Some(Field::Duration));
    assert!(matches!(
        problem(&s),
        Some(Problem::Policy(PolicyViolation::DurationTooLong { system: Some(sys), .. })) if sys == "支付系统"
    ));
    assert_eq!(
        s.new_state.as_ref().map(|st| st.draft.targets.clone()),
        Some(vec![Target::System("支付系统".into())])
    );
    let txt = text::dialog_reply(Lang::ZhCn, &s.reply, false).unwrap_or_default();
    assert!(txt.contains("系统“支付系统”的运维权限上限 4小时"), "{txt}");

    let s = dialog::step(None, "申请主机 订单系统 运维", &p, T0);
    assert_eq!(asks(&s), Some(Field::Targets));
    assert_eq!(
        problem(&s),
        Some(&Problem::Target(TargetError::UnknownSystem(
            "订单系统".into()
        )))
    );
}

#[test]
fn dialog_refuses_too_many_addresses() {
    let p = policy();
    let s = dialog::step(
        None,
        "/apply host 10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6",
        &p,
        T0,
    );
    assert_eq!(asks(&s), Some(Field::Targets));
    assert_eq!(
        problem(&s),
        Some(&Problem::Target(TargetError::TooMany { count: 6, max: 5 }))
    );
}

#[test]
fn dialog_cancel_and_nothing_to_cancel() {
    let p = policy();
    let s = dialog::step(None, "申请主机 10.1.2.3", &p, T0);
    assert!(s.new_state.is_some());
    for word in ["取消", "cancel", "/cancel", "ＣＡＮＣＥＬ"] {
        let c = dialog::step(s.new_state.clone(), word, &p, T0 + 1);
        assert_eq!((c.reply, c.new_state), (Reply::Cancelled, None), "{word}");
    }
    let n = dialog::step(None, "取消", &p, T0);
    assert_eq!(n.reply, Reply::NothingToCancel);
    let txt = text::dialog_reply(Lang::En, &n.reply, false).unwrap_or_default();
    assert!(txt.contains("Nothing in progress"), "{txt}");
}

#[test]
fn dialog_idle_drop() {
    let p = policy();
    let s = dialog::step(None, "申请主机 10.1.2.3", &p, T0);
    assert_eq!(asks(&s), Some(Field::Role));
    let state = s.new_state;
    // Within the idle window the answer continues the dialog.
    let ok = dialog::step(state.clone(), "运维", &p, T0 + 9 * MIN);
    assert_eq!((asks(&ok), ok.dropped_idle), (Some(Field::Duration), false));
    // After it, the dialog is gone and the answer is read as a fresh (unknown) message.
    let late = dialog::step(state.clone(), "运维", &p, T0 + 10 * MIN);
    assert!(late.dropped_idle);
    assert!(matches!(
        late.reply,
        Reply::Error(CommandError::Unknown { .. })
    ));
    assert_eq!(late.new_state, None);
    let txt = text::dialog_reply(Lang::ZhCn, &late.reply, late.dropped_idle).unwrap_or_default();
    assert!(txt.contains("超时"), "{txt}");
    assert!(state.is_some_and(|st| dialog::is_idle(&st, &p, T0 + 10 * MIN)));
}

#[test]
fn dialog_passes_other_commands_through_and_keeps_state() {
    let p = policy();
    let s = dialog::step(None, "申请主机 10.1.2.3", &p, T0);
    let m = dialog::step(s.new_state.clone(), "/my", &p, T0 + MIN);
    assert_eq!(m.reply, Reply::Command(Command::My));
    assert_eq!(
        m.new_state.as_ref().map(|st| st.last_activity_ms),
        Some(T0 + MIN)
    );
    let h = dialog::step(s.new_state.clone(), "帮助", &p, T0 + MIN);
    assert_eq!(h.reply, Reply::Command(Command::Help));
    assert!(h.new_state.is_some());
    assert_eq!(text::dialog_reply(Lang::ZhCn, &h.reply, false), None);
    // A new /apply host restarts the dialog with the new draft.
    let r = dialog::step(s.new_state, "/apply host 10.7.7.7 readonly", &p, T0 + MIN);
    assert_eq!(asks(&r), Some(Field::Duration));
    assert_eq!(
        r.new_state.map(|st| st.draft.targets),
        Some(vec![ip("10.7.7.7")])
    );
    // Outside a dialog, commands come back for the caller to run.
    let c = dialog::step(None, "/status A1", &p, T0);
    assert_eq!(c.reply, Reply::Command(Command::Status(order("A1"))));
}

#[test]
fn dialog_without_required_reason_and_from_a_form_draft() {
    let mut cfg = config();
    cfg.policy.reason_required = false;
    let p = Policy::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let s = dialog::step(None, "/apply host 10.1.2.3 ops 1h", &p, T0);
    assert_eq!(s.reply, Reply::Complete);
    assert!(s.done.is_some_and(|r| r.reason.is_none()));

    let d = ApplyDraft {
        targets: vec![ip("10.1.2.3")],
        role: Some(Role::Ops),
        ..Default::default()
    };
    assert_eq!(
        asks(&dialog::from_draft(d, &policy(), T0)),
        Some(Field::Duration)
    );
}

#[test]
fn dialog_state_survives_serde() {
    let p = policy();
    let s = dialog::step(None, "申请主机 pay-db-01 运维", &p, T0);
    let st = s.new_state.unwrap_or_else(|| panic!("state expected"));
    let json = serde_json::to_string(&st).unwrap_or_default();
    let back: DialogState = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(back, st);
    let next = dialog::step(Some(back), "2h", &p, T0 + 1);
    assert_eq!(asks(&next), Some(Field::Reason));
}

// ------------------------------------------------------------------ policy ----------

fn uid(s: &str) -> DingUserId {
    DingUserId::new(s)
}

#[test]
fn routing_by_system_address_hostname_and_default() {
    let p = policy();
    let pay = vec![uid("payboss"), uid("payboss2")];
    assert_eq!(p.route_approvers(&[ip("10.9.3.4")]), pay);
    assert_eq!(
        p.route_approvers(&[Target::Hostname("pay-db-01".into())]),
        pay
    );
    assert_eq!(p.route_approvers(&[Target::System("支付系统".into())]), pay);
    assert_eq!(p.route_approvers(&[ip("10.1.2.3")]), vec![uid("boss")]);
    assert_eq!(
        p.route_approvers(&[ip("10.1.2.3"), ip("10.9.0.1"), ip("10.1.2.4")]),
        vec![uid("boss"), uid("payboss"), uid("payboss2")]
    );
    assert_eq!(
        p.systems_for(&[ip("10.9.0.1")])
            .first()
            .and_then(|s| s.node.as_deref()),
        Some("/Default/Payments")
    );
}

#[test]
fn request_limits() {
    let p = policy();
    let me = uid("alice");
    let req = |targets: Vec<Target>, role, d: &str, reason: Option<&str>| AccessRequest {
        targets,
        role,
        duration: dur(d),
        ends_at: None,
        on_behalf_of: None,
        reason: reason.map(str::to_string),
    };
    assert_eq!(
        p.check_request(&me, &req(vec![ip("10.1.2.3")], Role::Ops, "3d", Some("x"))),
        Ok(())
    );
    assert_eq!(
        p.check_request(&me, &req(vec![ip("10.9.2.3")], Role::Ops, "5h", Some("x"))),
        Err(PolicyViolation::DurationTooLong {
            requested: dur("5h"),
            max: dur("4h"),
            role: Role::Ops,
            system: Some("支付系统".into())
        })
    );
    // The system limits ops only; read-only keeps the role default (30 days).
    assert_eq!(
        p.check_request(
            &me,
            &req(vec![ip("10.9.2.3")], Role::Readonly, "30d", Some("x"))
        ),
        Ok(())
    );
    assert_eq!(
        p.check_request(&me, &req(vec![ip("10.1.2.3")], Role::Ops, "1h", Some("  "))),
        Err(PolicyViolation::ReasonMissing)
    );
    let six: Vec<Target> = (1..=6).map(|i| ip(&format!("10.0.0.{i}"))).collect();
    assert_eq!(
        p.check_request(&me, &req(six, Role::Ops, "1h", Some("x"))),
        Err(PolicyViolation::TooManyAddresses { count: 6, max: 5 })
    );
    assert_eq!(
        p.check_request(&me, &req(vec![], Role::Ops, "1h", Some("x"))),
        Err(PolicyViolation::NoTargets)
    );

    let mut cfg = config();
    cfg.policy.requesters = vec!["bob".into()];
    let only_bob = Policy::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        only_bob.check_request(&me, &req(vec![ip("10.1.2.3")], Role::Ops, "1h", Some("x"))),
        Err(PolicyViolation::NotAllowedToRequest)
    );
    let msg = text::policy_violation(Lang::ZhCn, &PolicyViolation::NotAllowedToRequest);
    assert!(msg.contains("联系管理员"));
}

#[test]
fn deciding_self_approval_and_multiple_approvals() {
    let p = policy();
    let subject = DecisionSubject {
        requester: uid("payboss"),
        approvers: vec![uid("payboss"), uid("payboss2")],
        decided_by: vec![],
    };
    assert_eq!(p.can_decide(&uid("payboss2"), &subject), Ok(()));
    assert_eq!(
        p.can_decide(&uid("mallory"), &subject),
        Err(Denied::NotApprover)
    );
    assert_eq!(
        p.can_decide(&uid("payboss"), &subject),
        Err(Denied::SelfApproval)
    );
    let txt = text::denied(Lang::ZhCn, &Denied::SelfApproval, &order("A1"));
    assert!(txt.contains("不能审批自己的申请 A1"), "{txt}");

    let mut cfg = config();
    cfg.policy.self_approval = true;
    cfg.policy.approvals_required = 2;
    let lenient = Policy::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lenient.can_decide(&uid("payboss"), &subject), Ok(()));
    let once = DecisionSubject {
        decided_by: vec![uid("payboss2")],
        ..subject.clone()
    };
    assert_eq!(
        lenient.can_decide(&uid("payboss2"), &once),
        Err(Denied::AlreadyDecided)
    );
    assert!(!lenient.approvals_complete(&once));
    let twice = DecisionSubject {
        decided_by: vec![uid("payboss2"), uid("payboss")],
        ..subject
    };
    assert!(lenient.approvals_complete(&twice));
    assert!(p.approvals_complete(&once));
}

#[test]
fn admins_and_role_settings() {
    let p = policy();
    assert!(p.is_admin(&uid("admin1")));
    assert!(!p.is_admin(&uid("alice")));
    assert_eq!(p.role(Role::Readonly).accounts, vec!["@ALL".to_string()]);
    assert_eq!(p.role(Role::Readonly).label(Lang::En), "viewer");
    assert_eq!(
        p.role(Role::Ops).accounts,
        vec!["@SPEC".to_string(), "ops".to_string()]
    );
    assert_eq!(p.role(Role::Ops).max_duration, dur("3d"));
    assert_eq!(p.dialog_idle_ms, 10 * MIN);
}

#[test]
fn invalid_config_lists_every_problem_by_key() {
    let bad = r#"
[approval]
mode = "oa"
[policy]
approvals_required = 0
[roles.ops]
actions = ["connect", "read"]
max_duration = "forever"
[[systems]]
name = "a"
addresses = ["10.0.0.0/40"]
hostnames = ["bad host"]
max_duration = { admin = "1h" }
[[systems]]
name = "b"
aliases = ["A"]
[chat]
timezone = "Mars/Olympus"
[identity.map]
u1 = "Not Valid!"
"#;
    let cfg: PolicyConfig = toml::from_str(bad).unwrap_or_else(|e| panic!("{e}"));
    let problems = cfg.validate();
    for key in [
        "approval.process_code",
        "approval.default_approvers",
        "policy.approvals_required",
        "roles.ops.actions: `read`",
        "roles.ops.max_duration",
        "systems[0].addresses",
        "systems[0].hostnames",
        "systems[0].max_duration.admin",
        "systems[1]: name or alias `A`",
        "chat.timezone",
        "identity.map.u1",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(key)),
            "no problem for {key}: {problems:#?}"
        );
    }
    assert!(Policy::from_config(&cfg).is_err_and(|e| e.problems == problems));
    assert_eq!(config().validate(), Vec::<String>::new());
}

// ------------------------------------------------------------------ identity ----------

fn entry() -> DirectoryEntry {
    DirectoryEntry {
        userid: uid("u123"),
        name: "张三".into(),
        email: Some("Zhang.San+jms@example.com".into()),
        org_email: Some("zs@corp.example.com".into()),
        job_number: Some("E-00042".into()),
        mobile: Some("+86-13800000000".into()),
    }
}

#[test]
fn identity_rules() {
    let cfg = |rule| IdentityConfig {
        rule,
        ..Default::default()
    };
    assert_eq!(
        jms_username(&cfg(IdentityRule::EmailLocalPart), &entry()),
        Ok("zhang.san".into())
    );
    assert_eq!(
        jms_username(&cfg(IdentityRule::OrgEmailLocalPart), &entry()),
        Ok("zs".into())
    );
    assert_eq!(
        jms_username(&cfg(IdentityRule::JobNumber), &entry()),
        Ok("e-00042".into())
    );
    assert_eq!(
        jms_username(&cfg(IdentityRule::Mobile), &entry()),
        Ok("13800000000".into())
    );
    assert_eq!(
        jms_username(&cfg(IdentityRule::Map), &entry()),
        Err(IdentityError::NotMapped {
            userid: uid("u123")
        })
    );
}

#[test]
fn identity_map_wins_and_missing_fields_are_named() {
    let mut c = IdentityConfig {
        rule: IdentityRule::JobNumber,
        ..Default::default()
    };
    c.map.insert("u123".into(), "zhangsan".into());
    assert_eq!(jms_username(&c, &entry()), Ok("zhangsan".into()));

    let c = IdentityConfig {
        rule: IdentityRule::OrgEmailLocalPart,
        ..Default::default()
    };
    let e = DirectoryEntry {
        org_email: Some("  ".into()),
        ..entry()
    };
    let err = jms_username(&c, &e);
    assert_eq!(
        err,
        Err(IdentityError::MissingField {
            userid: uid("u123"),
            field: "org_email"
        })
    );
    let txt = err
        .map_err(|e| text::identity_error(Lang::ZhCn, &e))
        .err()
        .unwrap_or_default();
    assert!(txt.contains("org_email"), "{txt}");

    let c = IdentityConfig::default();
    let e = DirectoryEntry {
        email: Some("张三@example.com".into()),
        ..entry()
    };
    assert!(matches!(
        jms_username(&c, &e),
        Err(IdentityError::Unusable { .. })
    ));
    let cfg: PolicyConfig = toml::from_str(CONFIG).unwrap_or_default();
    let odd = DirectoryEntry {
        userid: uid("u_odd"),
        ..entry()
    };
    assert_eq!(jms_username(&cfg.identity, &odd), Ok("odd.user".into()));
}

// ------------------------------------------------------------------ texts ----------

#[test]
fn workflow_texts_show_order_hosts_account_and_local_expiry() {
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC);
    let o = order("R261122-007");
    let targets = [ip("10.1.2.3"), Target::System("支付系统".into())];
    let expires: jiff::Timestamp = "2026-11-25T02:00:00Z"
        .parse()
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let g = text::GrantView {
        order: &o,
        targets: &targets,
        username: "zhangsan",
        role: Role::Ops,
        expires_at: expires,
        jms_url: Some("https://jms.example.com"),
    };
    let zh = text::granted(Lang::ZhCn, &g, "李四", &tz);
    for w in [
        "李四",
        "R261122-007",
        "10.1.2.3、支付系统（系统）",
        "zhangsan",
        "2026-11-25 10:00 (Asia/Shanghai)",
        "https://jms.example.com",
    ] {
        assert!(zh.contains(w), "{zh} lacks {w}");
    }
    let en = text::granted(Lang::En, &g, "Li Si", &tz);
    assert!(
        en.contains("Expires: until Wed 25 Nov 10:00 · 2026-11-25 10:00 (Asia/Shanghai)"),
        "{en}"
    );

    let view = text::RequestView {
        order: &o,
        requester_name: "张三",
        username: "zhangsan",
        targets: &targets,
        role: Role::Readonly,
        duration: dur("3d"),
        window: "批准后起算".into(),
        reason: Some("修复"),
    };
    let sub = text::request_submitted(Lang::ZhCn, &view, &["李四", "王五"]);
    assert!(
        sub.contains("李四、王五") && sub.contains("状态 R261122-007") && sub.contains("3天"),
        "{sub}"
    );
    let ask = text::approval_request(Lang::En, &view);
    assert!(
        ask.contains("/approve R261122-007") && ask.contains("JumpServer user zhangsan"),
        "{ask}"
    );
    let rej = text::rejected(Lang::ZhCn, &o, "李四", "请用测试环境");
    assert!(rej.contains("原因：请用测试环境"));
    let rem = text::expiry_reminder(Lang::En, &o, &targets, expires, dur("1h"), &tz);
    assert!(
        rem.contains("ends in 1 hour") && rem.contains("10:00"),
        "{rem}"
    );
    assert!(text::revoked(Lang::ZhCn, &o, "管理员").contains("提前收回"));
    let f = text::failure(Lang::ZhCn, &o, text::Failure::JumpServerUnavailable, None);
    assert!(
        f.contains("连不上 JumpServer") && f.contains("R261122-007"),
        "{f}"
    );
}

// ------------------------------------------------------------------ never panics ----------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn parse_never_panics(s in any::<String>()) {
        let _ = parse(&s);
        let _ = duration::parse(&s);
        let _ = accessbot::domain::target::classify(&s);
    }

    #[test]
    fn parse_never_panics_on_command_like_input(
        word in prop::sample::select(vec!["/apply host", "申请主机", "拒绝", "续期", "/renew", "取消", "谁有权限", "申请", "/status"]),
        rest in "[ 0-9a-zA-Z.:/,，：、\\-天小时分钟周原因运维只读]{0,60}",
    ) {
        let r = parse(&format!("{word} {rest}"));
        // Every error renders to a non-empty answer in both languages.
        if let Err(e) = r {
            prop_assert!(!text::command_error(Lang::ZhCn, &e).is_empty());
            prop_assert!(!text::command_error(Lang::En, &e).is_empty());
        }
    }

    #[test]
    fn card_readers_never_panic(targets in any::<String>(), role in any::<String>(), d in any::<String>(), action in "(submit|cancel|approve|reject|[a-z]{0,8})", order_id in any::<String>()) {
        let params: std::collections::BTreeMap<String, String> = [
            ("action", action), ("targets", targets), ("role", role), ("duration", d),
            ("reason", "x".into()), ("order_id", order_id), ("reject_reason", "no".into()),
        ].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let _ = accessbot::chat::card::read_form(&params);
        let _ = accessbot::chat::card::read_approval(&params);
    }

    #[test]
    fn dialog_step_never_panics(inputs in prop::collection::vec(any::<String>(), 1..6), start in any::<bool>()) {
        let p = policy();
        let mut state = if start { dialog::step(None, "申请主机", &p, T0).new_state } else { None };
        for (i, input) in inputs.iter().enumerate() {
            let s = dialog::step(state, input, &p, T0 + i as i64 * MIN);
            let _ = text::dialog_reply(Lang::En, &s.reply, s.dropped_idle);
            state = s.new_state;
        }
    }
}

#[test]
fn dialog_role_answer_may_carry_duration_and_order_commands_pass_through() {
    let p = policy();
    let s = dialog::step(None, "申请主机 10.1.2.3", &p, T0);
    let r = dialog::step(s.new_state.clone(), "运维 2小时 原因：查日志", &p, T0 + 1);
    assert_eq!(r.reply, Reply::Complete);
    assert!(r
        .done
        .is_some_and(|d| d.duration == dur("2h") && d.reason.as_deref() == Some("查日志")));
    // An approver deciding someone else's order mid-dialog: handled as a command, dialog kept.
    let a = dialog::step(s.new_state.clone(), "同意 R261122-007", &p, T0 + 2);
    assert_eq!(
        a.reply,
        Reply::Command(Command::Approve(order("R261122-007")))
    );
    assert_eq!(a.new_state.map(|st| st.asking), Some(Field::Role));
    // Two roles in one answer: the reason is said, the question repeated.
    let s = dialog::step(None, "申请主机", &p, T0);
    let t = dialog::step(s.new_state, "10.1.2.3 运维 只读", &p, T0 + 1);
    assert_eq!(problem(&t), Some(&Problem::Input(CommandError::TwoRoles)));
    let txt = text::dialog_reply(Lang::ZhCn, &t.reply, false).unwrap_or_default();
    assert!(
        txt.contains("只选一个") && txt.contains("哪些主机"),
        "{txt}"
    );
}

#[test]
fn suggestion_names_both_spellings() {
    let e = parse("/stauts A1").err().unwrap_or(CommandError::Empty);
    let zh = text::command_error(Lang::ZhCn, &e);
    assert!(zh.contains("你是想说 状态 吗？（/status）"), "{zh}");
    let help = help_text(Lang::ZhCn, false);
    assert!(
        help.contains("• 状态（/status）<单号> — 查看某个申请的进度"),
        "{help}"
    );
}

#[test]
fn bare_user_commands_mid_dialog_and_unresolved_system_names_route() {
    let p = policy();
    let s = dialog::step(None, "申请主机 10.1.2.3", &p, T0);
    let m = dialog::step(s.new_state.clone(), "我的权限", &p, T0 + 1);
    assert_eq!(m.reply, Reply::Command(Command::My));
    assert!(m.new_state.is_some());
    let a = dialog::step(s.new_state.clone(), "申请账号", &p, T0 + 1);
    assert_eq!(a.reply, Reply::Command(Command::ApplyAccount));
    // `同步` is an admin command and a plausible answer: mid-dialog it is the answer.
    let r = dialog::step(s.new_state, "同步", &p, T0 + 1);
    assert_eq!(problem(&r), Some(&Problem::NotARole("同步".into())));

    assert_eq!(
        p.route_approvers(&[Target::Hostname("payments".into())]),
        vec![uid("payboss"), uid("payboss2")]
    );
}

#[test]
fn status_my_and_who_has_texts() {
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC);
    let o = order("R261122-007");
    let targets = [ip("10.1.2.3")];
    let expires: jiff::Timestamp = "2026-11-25T02:00:00Z"
        .parse()
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let v = text::StatusView {
        order: &o,
        status: Status::Active,
        targets: &targets,
        role: Role::Ops,
        holder: "张三",
        expires_at: Some(expires),
    };
    assert_eq!(
        text::status_line(Lang::ZhCn, &v, &tz),
        "R261122-007 · 生效中 · 10.1.2.3 · 运维 · 到期 2026-11-25 10:00 (Asia/Shanghai)"
    );
    let my = text::my_orders(Lang::En, std::slice::from_ref(&v), &tz);
    assert!(
        my.starts_with("Your requests:\n• R261122-007 · active"),
        "{my}"
    );
    assert_eq!(
        text::my_orders(Lang::ZhCn, &[], &tz),
        text::nothing_active(Lang::ZhCn)
    );
    let who = text::who_has(Lang::ZhCn, "10.1.2.3", &[v], &tz);
    assert!(who.contains("• 张三 · R261122-007"), "{who}");
    assert!(text::who_has(Lang::En, "10.1.2.3", &[], &tz).contains("Nobody"));
}

#[test]
fn requesters_never_approve_themselves_through_routing() {
    let p = policy();
    let pay = [ip("10.9.0.1")];
    // payboss asks for the system they approve: only the other system approver is asked.
    assert_eq!(
        p.approvers_for(&uid("payboss"), &pay),
        vec![uid("payboss2")]
    );
    assert_eq!(
        p.approvers_for(&uid("alice"), &pay),
        vec![uid("payboss"), uid("payboss2")]
    );
    // The only default approver asks: the admins decide instead.
    assert_eq!(
        p.approvers_for(&uid("boss"), &[ip("10.1.2.3")]),
        vec![uid("admin1")]
    );
    let mut cfg = config();
    cfg.policy.self_approval = true;
    let lenient = Policy::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        lenient.approvers_for(&uid("boss"), &[ip("10.1.2.3")]),
        vec![uid("boss")]
    );
}

#[test]
fn card_callbacks_use_the_command_parsers() {
    use accessbot::chat::card::{
        read_approval, read_form, ApprovalAction, CardInputError, FormAction,
    };
    let m = |kv: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let form = read_form(&m(&[
        ("targets", "10.1.2.3，web-01"),
        ("role", "只读"),
        ("duration", "3天"),
        ("reason", " "),
    ]));
    let Ok(FormAction::Submit(d)) = form else {
        panic!("{form:?}")
    };
    assert_eq!(
        d.targets,
        vec![ip("10.1.2.3"), Target::Hostname("web-01".into())]
    );
    assert_eq!(
        (d.role, d.duration, d.reason),
        (Some(Role::Readonly), Some(dur("3d")), None)
    );
    // Empty inputs are left for the dialog to ask.
    assert_eq!(
        asks(&dialog::from_draft(
            ApplyDraft { reason: None, ..d },
            &policy(),
            T0
        )),
        Some(Field::Reason)
    );
    assert_eq!(
        read_form(&m(&[("targets", "10.1.2.300")])),
        Err(CardInputError::Command(CommandError::Target(
            TargetError::BadAddress("10.1.2.300".into())
        )))
    );
    assert_eq!(
        read_form(&m(&[("action", "cancel")])),
        Ok(FormAction::Cancel)
    );

    assert_eq!(
        read_approval(&m(&[("action", "approve"), ("order_id", "R261122-007")])),
        Ok(ApprovalAction::Approve(order("R261122-007")))
    );
    assert_eq!(
        read_approval(&m(&[
            ("action", "reject"),
            ("order_id", "R261122-007"),
            ("reject_reason", "用测试环境")
        ])),
        Ok(ApprovalAction::Reject {
            order: order("R261122-007"),
            reason: "用测试环境".into()
        })
    );
    assert_eq!(
        read_approval(&m(&[("action", "reject"), ("order_id", "A1")])),
        Err(CardInputError::Missing("reject_reason"))
    );
    let txt = text::card_input_error(Lang::ZhCn, &CardInputError::Missing("reject_reason"));
    assert_eq!(txt, "拒绝时请填写原因。");
    assert!(matches!(
        read_approval(&m(&[("action", "approve"), ("order_id", "A1 /sync")])),
        Err(CardInputError::Command(CommandError::BadOrderId { .. }))
    ));
    assert_eq!(
        read_approval(&m(&[("action", "escalate"), ("order_id", "A1")])),
        Err(CardInputError::UnknownAction("escalate".into()))
    );
}
