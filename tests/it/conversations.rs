//! Issue 12 over real HTTP: conversations people don't have to learn. Several simulated
//! employees and approvers send signed robot messages in Chinese and English; every table row
//! is a phrasing a person would type, and every reply is read as that person would read it.
//! Approvals are text-mode (no card template): prompts with `dtmd://` buttons, so a tap is the
//! button's text sent back as the tapper.
use crate::support::{bot_env_newtype, ding_user, BotEnv};
use accessbot::domain::ids::OrderId;
use accessbot::domain::order::{Order, State};
use jiff::tz::TimeZone;
use jiff::SignedDuration;
use serde_json::Value;
use std::sync::atomic::Ordering;

/// Writes Chinese.
const ZHANG: &str = "zhangsan01";
/// Writes English.
const ALICE: &str = "alice01";
/// Approvers.
const LISI: &str = "boss01";
const WANGWU: &str = "boss02";
const ADMIN: &str = "admin01";
/// Neither requester nor approver of the orders below.
const MALLORY: &str = "mallory01";

struct Env(BotEnv);
bot_env_newtype!(Env);

impl Env {
    async fn new() -> Env {
        let users = [
            (ZHANG, "张三", "zhangsan@example.com"),
            (ALICE, "Alice", "fx-alice@example.com"),
            (LISI, "李四", "boss01@example.com"),
            (WANGWU, "王五", "boss02@example.com"),
            (ADMIN, "管理员", "admin01@example.com"),
            (MALLORY, "路人", "mallory@example.com"),
        ]
        .map(|(id, name, mail)| ding_user(id, name, mail));
        Env(BotEnv::new(
            users,
            |_, _| {},
            |cfg| {
                cfg.approval.default_approvers = vec![LISI.into(), WANGWU.into()];
                cfg.policy.admins = vec![ADMIN.into()];
                cfg.policy.team_leads = vec![WANGWU.into()];
                // The tables below file many requests from one person.
                cfg.workflow.max_new_orders_per_user = 0;
            },
        )
        .await)
    }

    /// A message; returns the session its replies go to.
    async fn say(&self, user: &str, text: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg_id = format!("conv{n}x{}", user.len());
        self.push_robot_text(user, &msg_id, text).await;
        msg_id
    }

    /// A message and the whole reply body as JSON text (text, markdown or action card).
    async fn ask(&self, user: &str, text: &str) -> String {
        let s = self.say(user, text).await;
        self.reply(&s).await
    }

    /// The reply's message as JSON.
    async fn ask_json(&self, user: &str, text: &str) -> Value {
        let s = self.say(user, text).await;
        self.reply(&s).await;
        self.dt.webhook_messages(&s).remove(0)
    }

    /// Waits until the command's state change is stored (its reply comes after the commit).
    async fn newest(&self, user: &str, before: usize) -> Order {
        let orders = self.orders_of(user);
        assert_eq!(orders.len(), before + 1, "no new order for {user}");
        orders[0].clone()
    }

    fn all_texts_to(&self, user: &str) -> String {
        self.texts_to(user).join("\n")
    }

    /// `user` asks for read-only access to an existing host and an approver approves by text;
    /// returns the active order.
    async fn granted(&self, user: &str, text: &str) -> OrderId {
        let before = self.orders_of(user).len();
        self.ask(user, text).await;
        let id = self.newest(user, before).await.id;
        self.drain().await;
        assert_eq!(self.order(&id).state, State::PendingApproval);
        self.ask(LISI, &format!("同意 {id}")).await;
        self.drain().await;
        assert_eq!(self.order(&id).state, State::Active);
        id
    }
}

/// The texts a `dtmd://` link in `body` sends, decoded.
fn dtmd_texts(body: &str) -> Vec<String> {
    const PREFIX: &str = "dtmd://dingtalkclient/sendMessage?content=";
    body.match_indices(PREFIX)
        .map(|(i, _)| {
            let rest = &body[i + PREFIX.len()..];
            let end = rest.find([')', '"', '\\']).unwrap_or(rest.len());
            percent_encoding::percent_decode_str(&rest[..end])
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

fn shanghai() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap()
}

// ------------------------------------------------------------------ durations ----------

/// What a duration phrasing must become. The clock starts on Sunday 2026-11-22 10:00 in
/// Shanghai; the end of the working day is 18:00.
enum Want {
    Minutes(u64),
    /// The named end, local time `MM-DD HH:MM`, and its echo in words.
    Until(&'static str, &'static str),
}

const DURATIONS: &[(&str, Want)] = &[
    ("3 天", Want::Minutes(3 * 24 * 60)),
    ("2 hours", Want::Minutes(120)),
    ("1.5h", Want::Minutes(90)),
    ("半天", Want::Minutes(12 * 60)),
    ("一个月", Want::Minutes(30 * 24 * 60)),
    ("2 days", Want::Minutes(2 * 24 * 60)),
    (
        "到周五",
        Want::Until("11-27 18:00", "至 11月27日（周五）18:00"),
    ),
    (
        "到今晚",
        Want::Until("11-22 23:59", "至 11月22日（周日）23:59"),
    ),
    (
        "明天下班前",
        Want::Until("11-23 18:00", "至 11月23日（周一）18:00"),
    ),
    (
        "until Friday 6pm",
        Want::Until("11-27 18:00", "until Fri 27 Nov 18:00"),
    ),
];

fn check_duration(o: &Order, phrase: &str, want: &Want) {
    let d = o.request.access_duration().expect("a host request");
    match want {
        Want::Minutes(m) => {
            assert_eq!(d.minutes(), *m, "{phrase}");
            assert_eq!(o.request.ends_at(), None, "{phrase}");
        }
        Want::Until(local, _) => {
            let end = o
                .request
                .ends_at()
                .unwrap_or_else(|| panic!("{phrase}: no end"));
            let shown = end.to_zoned(shanghai()).strftime("%m-%d %H:%M").to_string();
            assert_eq!(&shown, local, "{phrase}");
            let start = o.created_at;
            assert_eq!(
                d.minutes(),
                u64::try_from((end.as_second() - start.as_second()).div_euclid(60)).unwrap(),
                "{phrase}: the length is the time to the end"
            );
        }
    }
}

#[tokio::test]
async fn durations_people_type_are_taken_in_apply_and_in_the_dialog() {
    let env = Env::new().await;
    for (i, (phrase, want)) in DURATIONS.iter().enumerate() {
        // Typed in one message, in the writer's language.
        let (user, text) = if phrase.is_ascii() {
            (
                ALICE,
                format!("/apply host 10.10.9.{i} readonly {phrase} reason: check the disk"),
            )
        } else {
            (
                ZHANG,
                format!("申请主机 10.10.9.{i} 只读 {phrase} 原因：排查磁盘"),
            )
        };
        let before = env.orders_of(user).len();
        let r = env.ask(user, &text).await;
        let o = env.newest(user, before).await;
        assert!(r.contains(o.id.as_str()), "{phrase}: {r}");
        check_duration(&o, phrase, want);
        // The "submitted" message says when it ends, in words.
        if let Want::Until(_, echo) = want {
            env.drain().await;
            let told = env.all_texts_to(user);
            assert!(told.contains(echo), "{phrase}: {told}");
        }

        // Answered to the dialog's duration question.
        let before = env.orders_of(ZHANG).len();
        let q = env.ask(ZHANG, &format!("申请主机 10.10.8.{i} 只读")).await;
        assert!(q.contains("多长时间"), "{q}");
        // "2 hours" is English: the next question comes in English.
        let q = env.ask(ZHANG, phrase).await;
        assert!(
            q.contains("原因") || q.contains("Why do you need it?"),
            "{phrase}: the dialog moved on to the reason: {q}"
        );
        env.ask(ZHANG, "排查磁盘").await;
        let o = env.newest(ZHANG, before).await;
        check_duration(&o, phrase, want);
    }
}

#[tokio::test]
async fn the_window_is_echoed_in_words_before_and_after_approval() {
    let env = Env::new().await;
    // Chinese: until Friday; the submitted message and the approval request say when it ends,
    // the grant ends then in JumpServer, and the granted message says it in words.
    let id = env
        .granted(ZHANG, "申请主机 10.10.1.11 只读 到周五 原因：排查")
        .await;
    let zh = env.all_texts_to(ZHANG);
    assert!(zh.contains("至 11月27日（周五）18:00"), "{zh}");
    assert!(zh.contains("有效期：至 11月27日（周五）18:00"), "{zh}");
    let boss = env.all_texts_to(LISI);
    assert!(boss.contains("至 11月27日（周五）18:00"), "{boss}");
    let o = env.order(&id);
    let end = o.window.unwrap().end;
    assert_eq!(
        end.to_zoned(shanghai()).strftime("%a %H:%M").to_string(),
        "Fri 18:00"
    );
    let perm = env
        .jms
        .permissions()
        .into_iter()
        .find(|p| p.name == o.permission_name())
        .unwrap();
    assert_eq!(perm.date_expired.as_second(), end.as_second());

    // English, a plain length: from approval before, the end in words after.
    let id = env
        .granted(
            ALICE,
            "/apply host 10.10.1.12 readonly 2 hours reason: look at the logs",
        )
        .await;
    let en = env.all_texts_to(ALICE);
    assert!(en.contains("2 hours (from approval)"), "{en}");
    assert!(en.contains("Valid until Sun 22 Nov 12:00"), "{en}");
    assert_eq!(env.order(&id).state, State::Active);

    // An end already past is refused with the reason, and nothing is created.
    env.clock.advance(SignedDuration::from_hours(4));
    let before = env.orders_of(ZHANG).len();
    let r = env
        .ask(ZHANG, "申请主机 10.10.1.13 只读 到今天中午 原因：排查")
        .await;
    assert!(r.contains("已经过去"), "{r}");
    assert_eq!(env.orders_of(ZHANG).len(), before);
}

// ------------------------------------------------------------------ typos ----------

#[tokio::test]
async fn typos_get_the_nearest_command_and_a_one_tap_correction() {
    let env = Env::new().await;
    // (who, typed, the reply says, the button sends)
    let rows: &[(&str, &str, &[&str], Option<&str>)] = &[
        (
            ZHANG,
            "申清主机 10.10.1.11 只读 3天",
            &["不认识“申清主机”", "你是想说 申请主机 吗？"],
            Some("申请主机 10.10.1.11 只读 3天"),
        ),
        (ZHANG, "帮主", &["你是想说 帮助 吗？"], None),
        (
            ALICE,
            "aply host 10.10.1.11 readonly 3d",
            &["I don't know `aply`", "Did you mean /apply host?"],
            Some("/apply host 10.10.1.11 readonly 3d"),
        ),
        (ALICE, "hepl", &["Did you mean /help?"], None),
        (
            ALICE,
            "stauts R261122-001",
            &["Did you mean /status?"],
            Some("/status R261122-001"),
        ),
        (ALICE, "pendign", &["Did you mean /pending?"], None),
        (ZHANG, "你好啊", &["不认识“你好啊”", "帮助"], None),
        (
            ALICE,
            "hello there",
            &["I don't know `hello`", "/help"],
            None,
        ),
    ];
    for (who, typed, says, sends) in rows {
        let m = env.ask_json(who, typed).await;
        let body = m.to_string();
        for s in *says {
            assert!(body.contains(s), "{typed}: {body} lacks {s}");
        }
        match sends {
            Some(cmd) => {
                assert_eq!(m["msgtype"], "actionCard", "{typed}: {body}");
                assert_eq!(dtmd_texts(&body), vec![cmd.to_string()], "{typed}");
            }
            None => assert_eq!(m["msgtype"], "text", "{typed}: {body}"),
        }
    }
    assert!(env.orders_of(ZHANG).is_empty() && env.orders_of(ALICE).is_empty());
    // Tapping the button sends the corrected command as the person: it is an ordinary request.
    let r = env.ask(ALICE, "/apply host 10.10.1.11 readonly 3d").await;
    assert!(r.contains("Why do you need it?"), "{r}");
}

// ------------------------------------------------------------------ pending ----------

#[tokio::test]
async fn approvers_see_what_waits_for_them_and_decide_in_one_tap() {
    let env = Env::new().await;
    let mut ids = Vec::new();
    for (user, text) in [
        (ZHANG, "申请主机 10.10.1.11 只读 4小时 原因：排查"),
        (
            ALICE,
            "/apply host 10.10.1.12 readonly 2h reason: read the logs",
        ),
    ] {
        let before = env.orders_of(user).len();
        env.ask(user, text).await;
        ids.push(env.newest(user, before).await.id);
    }
    env.drain().await;
    env.clock.advance(SignedDuration::from_mins(90));
    // 王五 reads English.
    env.ask(WANGWU, "/lang en").await;

    // (who, command, sees both orders, with decision links, says)
    let rows: &[(&str, &str, bool, bool, &str)] = &[
        (LISI, "待我审批", true, true, "等待你审批的申请（2 条"),
        (
            WANGWU,
            "/pending",
            true,
            true,
            "Waiting for your decision (2,",
        ),
        (ADMIN, "待审批", true, false, "全部待审批的申请（2 条"),
        (MALLORY, "待我审批", false, false, "没有等待你审批的申请"),
        (ZHANG, "/pending", false, false, "没有等待你审批的申请"),
        (
            ALICE,
            "/pending",
            false,
            false,
            "Nothing is waiting for your decision",
        ),
    ];
    for (who, cmd, sees, links, says) in rows {
        let m = env.ask_json(who, cmd).await;
        let body = m.to_string();
        assert!(body.contains(says), "{who} {cmd}: {body}");
        for id in &ids {
            assert_eq!(body.contains(id.as_str()), *sees, "{who} {cmd}: {body}");
        }
        if *sees {
            assert!(
                body.contains("1小时30分钟") || body.contains("1 hour 30 minutes"),
                "the age is shown: {body}"
            );
        }
        assert_eq!(!dtmd_texts(&body).is_empty(), *links, "{who} {cmd}: {body}");
    }

    // 李四 taps "同意" on the first: the link's text, sent as 李四, decides it once.
    let body = env.ask_json(LISI, "待我审批").await.to_string();
    let links = dtmd_texts(&body);
    assert_eq!(links[0], format!("同意 {}", ids[0]));
    assert_eq!(links[1], format!("拒绝 {} ", ids[0]));
    let r = env.ask(LISI, &links[0]).await;
    assert!(r.contains("已同意"), "{r}");
    let r = env.ask(LISI, &links[0]).await;
    assert!(
        !r.contains("已同意申请"),
        "a second tap decides nothing: {r}"
    );
    env.drain().await;
    assert_eq!(env.order(&ids[0]).state, State::Active);
    assert_eq!(env.count_granted(ZHANG), 1);
    // The same link from someone who is not an approver changes nothing.
    env.ask(MALLORY, &format!("同意 {}", ids[1])).await;
    assert_eq!(env.order(&ids[1]).state, State::PendingApproval);
    // What was decided leaves the list.
    let body = env.ask_json(WANGWU, "/pending").await.to_string();
    assert!(
        !body.contains(ids[0].as_str()) && body.contains(ids[1].as_str()),
        "{body}"
    );
}

#[tokio::test]
async fn long_lists_stop_within_a_message_and_say_how_to_see_the_rest() {
    let env = Env::new().await;
    for i in 0..23 {
        let user = if i % 2 == 0 { ZHANG } else { MALLORY };
        env.ask(
            user,
            &format!("申请主机 10.10.7.{i} 只读 4小时 原因：排查第 {i} 台"),
        )
        .await;
    }
    env.drain().await;
    env.ask(WANGWU, "/lang en").await;
    let body = env.ask_json(LISI, "待我审批").await.to_string();
    assert!(
        body.contains("另有 3 条未显示，发送“待我审批 21”查看"),
        "{body}"
    );
    assert!(
        body.len() < accessbot::chat::text::lists::MAX_LIST_BYTES + 2000,
        "{}",
        body.len()
    );
    let rest = env.ask_json(LISI, "待我审批 21").await.to_string();
    assert!(!rest.contains("未显示"), "{rest}");
    assert_eq!(dtmd_texts(&rest).len(), 3 * 2, "{rest}");
    let en = env.ask_json(WANGWU, "/pending").await.to_string();
    assert!(
        en.contains("3 more not shown; send `/pending 21` to see them"),
        "{en}"
    );
}

// ------------------------------------------------------------------ give back ----------

#[tokio::test]
async fn holders_give_access_back_and_others_cannot() {
    let env = Env::new().await;
    let zid = env
        .granted(ZHANG, "申请主机 10.10.1.11 只读 4小时 原因：排查")
        .await;
    let aid = env
        .granted(
            ALICE,
            "/apply host 10.10.1.12 readonly 4h reason: read the logs",
        )
        .await;

    // Someone else's order: refused, nothing changes.
    for (who, cmd, says) in [
        (MALLORY, format!("归还 {zid}"), "只能归还自己的权限"),
        (
            ALICE,
            format!("/done {zid}"),
            "you can only give back your own",
        ),
        (LISI, format!("/done {aid}"), "只能归还自己的权限"),
    ] {
        let r = env.ask(who, &cmd).await;
        assert!(r.contains(says), "{who} {cmd}: {r}");
    }
    env.drain().await;
    assert_eq!(env.order(&zid).state, State::Active);
    assert_eq!(env.order(&aid).state, State::Active);

    // The holders: by order id in Chinese, alone in English (their only grant).
    for (who, cmd, id, says) in [
        (ZHANG, format!("归还 {zid}"), &zid, "正在归还"),
        (ALICE, "/done".to_string(), &aid, "giving back"),
    ] {
        let r = env.ask(who, &cmd).await;
        assert!(r.contains(says), "{cmd}: {r}");
        env.drain().await;
        let o = env.order(id);
        assert_eq!(o.state, State::Revoked, "{cmd}");
        assert_eq!(
            env.active_permissions_named(&o.permission_name()),
            0,
            "{cmd}"
        );
    }
    // The approver who granted each hears it, in their language; the holders read the result.
    let boss = env.all_texts_to(LISI);
    assert!(
        boss.contains(&format!("张三 已提前归还你批准的申请 {zid}")),
        "{boss}"
    );
    assert!(
        boss.contains(&format!("提前归还你批准的申请 {aid}")),
        "{boss}"
    );
    assert!(
        env.all_texts_to(ZHANG).contains("已停用"),
        "{}",
        env.all_texts_to(ZHANG)
    );
    assert!(
        env.all_texts_to(ALICE).contains("deactivated"),
        "{}",
        env.all_texts_to(ALICE)
    );
    // Nothing left to give back.
    let r = env.ask(ZHANG, "归还").await;
    assert!(r.contains("没有生效中的主机权限"), "{r}");
}

// ------------------------------------------------------------------ renew, status ----------

#[tokio::test]
async fn requesters_renew_their_own_and_status_names_people() {
    let env = Env::new().await;
    for (who, cmd, says) in [
        (ZHANG, "帮助", "续期（/renew）"),
        (ALICE, "help please", "/renew (续期)"),
    ] {
        let r = env.ask(who, cmd).await;
        assert!(r.contains(says), "{who}: {r}");
        assert!(
            !r.contains("管理员命令") && !r.contains("Admin commands"),
            "{r}"
        );
    }
    let id = env
        .granted(ZHANG, "申请主机 10.10.1.11 只读 4小时 原因：排查")
        .await;
    let end = env.order(&id).window.unwrap().end;
    let r = env.ask(MALLORY, &format!("续期 {id} 2小时")).await;
    assert!(r.contains("你无权"), "{r}");
    // The requester's answer is the outbox's "renewed" message.
    env.say(ZHANG, &format!("续期 {id} 2小时")).await;
    env.drain().await;
    assert!(env.all_texts_to(ZHANG).contains("已续期"));
    assert_eq!(
        env.order(&id).window.unwrap().end,
        end + SignedDuration::from_hours(2)
    );

    // /status names the approvers and the decider as DingTalk does, for each reader.
    for (who, cmd, says) in [
        (ZHANG, format!("状态 {id}"), "审批人：李四、王五"),
        (ZHANG, format!("状态 {id}"), "处理人：李四"),
        (ADMIN, format!("status {id}"), "Approvers: 李四, 王五"),
    ] {
        let r = env.ask(who, &cmd).await;
        assert!(r.contains(says), "{cmd}: {r}");
        assert!(!r.contains(LISI), "{cmd}: no user id: {r}");
    }
    // After a restart (no names remembered) the directory is asked.
    let mut env = env;
    env.crash_and_restart().await;
    let r = env.ask(ZHANG, &format!("状态 {id}")).await;
    assert!(r.contains("审批人：李四、王五"), "{r}");
}

// ------------------------------------------------------------------ language ----------

#[tokio::test]
async fn each_person_is_answered_in_their_language_and_can_choose_it() {
    let env = Env::new().await;
    // (who, says, reply contains)
    let rows: &[(&str, &str, &str)] = &[
        (ALICE, "help me", "Commands (the slash is optional"),
        (ZHANG, "帮助", "可用命令"),
        // A slash command with only ids and short forms keeps the language they last used.
        (ALICE, "/my", "You have no requests"),
        (ZHANG, "/my", "没有"),
        // Chosen explicitly: kept even when they write the other language.
        (ALICE, "/lang zh", "之后用中文回复你"),
        (ALICE, "help me", "可用命令"),
        (ALICE, "语言 英文", "in English from now on"),
        (ALICE, "帮助", "Commands (the slash is optional"),
        (ZHANG, "/lang", "语言 中文"),
    ];
    for (who, says, want) in rows {
        let r = env.ask(who, says).await;
        assert!(r.contains(want), "{who} {says}: {r}");
    }
    // Notices use each person's language: Alice (English) and 张三 (Chinese) are both
    // granted by 李四.
    env.granted(
        ALICE,
        "/apply host 10.10.1.11 readonly 4h reason: read the logs",
    )
    .await;
    env.granted(ZHANG, "申请主机 10.10.1.12 只读 4小时 原因：排查")
        .await;
    let en = env.all_texts_to(ALICE);
    assert!(
        en.contains("access is ready") && !en.contains("权限已开通"),
        "{en}"
    );
    let zh = env.all_texts_to(ZHANG);
    assert!(
        zh.contains("权限已开通") && !zh.contains("access is ready"),
        "{zh}"
    );
}

impl Env {
    fn count_granted(&self, user: &str) -> usize {
        self.texts_to(user)
            .iter()
            .filter(|t| t.contains("权限已开通") || t.contains("access is ready"))
            .count()
    }
}

// ------------------------------------------------------------------ on behalf ----------

#[tokio::test]
async fn admins_and_team_leads_ask_for_someone_else_and_both_are_told() {
    let env = Env::new().await;
    // (filer, message, for whom, the filer reads)
    let rows: &[(&str, &str, &str, &str)] = &[
        (
            ADMIN,
            "/apply for zhangsan01 host 10.10.1.11 readonly 4h reason: new joiner setup",
            ZHANG,
            "for zhangsan01",
        ),
        (
            WANGWU,
            "申请 给 alice01 10.10.1.12 只读 4小时 原因：新同事入职",
            ALICE,
            "已为 alice01 提交申请",
        ),
    ];
    for (filer, msg, target, says) in rows {
        let before = env.orders_of(target).len();
        let r = env.ask(filer, msg).await;
        assert!(r.contains(says), "{msg}: {r}");
        let o = env.newest(target, before).await;
        assert_eq!(o.requester.as_str(), *target, "{msg}");
        assert_eq!(o.filed_by.as_ref().map(|u| u.as_str()), Some(*filer));
        assert!(
            env.orders_of(filer).is_empty(),
            "the order is not the filer's"
        );
        env.drain().await;
        // Approved like any other request: by the target's approvers.
        assert_eq!(env.order(&o.id).state, State::PendingApproval);
        env.ask(LISI, &format!("同意 {}", o.id)).await;
        env.drain().await;
        let o = env.order(&o.id);
        assert_eq!(o.state, State::Active, "{msg}");
        // The JumpServer user is the target's (from their directory mail), not the filer's.
        let want = if *target == ZHANG {
            "zhangsan"
        } else {
            "fx-alice"
        };
        assert_eq!(o.jms_username, want, "{msg}");
        for who in [*filer, *target] {
            assert_eq!(env.count_granted(who), 1, "{who} told of {msg}");
        }
    }
    // Anyone else is refused, and nothing is created.
    let r = env
        .ask(
            MALLORY,
            "申请 给 zhangsan01 10.10.1.13 只读 4小时 原因：帮忙",
        )
        .await;
    assert!(r.contains("只有管理员和团队负责人"), "{r}");
    assert!(env.orders_of(MALLORY).is_empty());
    assert_eq!(env.orders_of(ZHANG).len(), 1);
}
