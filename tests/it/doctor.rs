//! `accessbot doctor` against the simulators: all green with a right configuration, then each
//! credential wrong in turn (app secret, JumpServer key, process code, card template id, a form
//! field missing) fails its own line with the console setting to change. Once through the
//! binary for the printed checklist and the exit code.
use crate::support::{ding_user, filled_example, BotEnv};
use accessbot::chat::text::{oa_label, OaField};
use accessbot::config::Config;
use accessbot::doctor::{self, Verdict};
use accessbot::domain::command::Lang;
use accessbot::domain::policy::ApprovalMode;
use accessbot::secret::Secret;

const ADMIN: &str = "admin01";
const CODE: &str = "PROC-ACCESS";

async fn env() -> BotEnv {
    BotEnv::new(
        [ding_user(ADMIN, "管理员", "admin01@example.com")],
        |dt, _| {
            dt.add_process("JumpServer 访问申请", CODE);
            let labels: Vec<&str> = OaField::ALL
                .iter()
                .map(|f| oa_label(Lang::ZhCn, *f))
                .collect();
            dt.set_process_form(CODE, &labels);
            dt.add_card_template("tpl-approval.schema");
            dt.add_card_template("tpl-form.schema");
        },
        |cfg| {
            cfg.policy.admins = vec![ADMIN.into()];
            cfg.approval.default_approvers = vec![ADMIN.into()];
            cfg.approval.mode = ApprovalMode::Oa;
            cfg.approval.process_code = Some(CODE.into());
            cfg.cards.approval_template_id = "tpl-approval.schema".into();
            cfg.cards.request_template_id = "tpl-form.schema".into();
            cfg.cards.callback_route_key = "accessbot".into();
        },
    )
    .await
}

/// The doctor's verdict on `name`, with its detail and fix.
async fn check(cfg: &Config, name: &str) -> (Verdict, String, String) {
    let r = doctor::run(cfg).await;
    let c = r
        .get(name)
        .unwrap_or_else(|| panic!("no check {name} in:\n{r}"));
    (
        c.verdict,
        c.detail.clone(),
        c.fix.clone().unwrap_or_default(),
    )
}

#[tokio::test]
async fn doctor_is_all_green_against_the_simulators() {
    let env = env().await;
    let r = doctor::run(&env.cfg).await;
    assert!(r.passed(), "{r}");
    for name in [
        "dingtalk token",
        "dingtalk user lookup",
        "dingtalk approval template",
        "dingtalk card route key",
        "dingtalk card approval_template_id",
        "dingtalk card request_template_id",
        "jumpserver auth",
        "jumpserver version",
        "jumpserver org and root node",
        "jumpserver platform",
        "jumpserver right: read users",
        "jumpserver right: read hosts",
        "jumpserver right: read permissions",
        "jumpserver right: read user assets (read-back)",
        "jumpserver right: read sessions",
    ] {
        assert_eq!(
            r.get(name).map(|c| c.verdict),
            Some(Verdict::Pass),
            "{name}:\n{r}"
        );
    }
    // What cannot be probed says so instead of passing.
    assert_eq!(r.get("dingtalk robot").unwrap().verdict, Verdict::Skip);
    let writes = r.get("jumpserver write rights").unwrap();
    assert_eq!(writes.verdict, Verdict::Skip);
    assert!(writes.detail.contains("perms.add_assetpermission"), "{r}");
    // The template probe delivered nothing to anyone.
    assert!(env
        .dt
        .messages_to(&accessbot::domain::ids::DingUserId::new(ADMIN))
        .is_empty());
}

#[tokio::test]
async fn each_wrong_credential_fails_its_line_with_the_fix() {
    let env = env().await;

    let mut cfg = env.cfg.clone();
    cfg.dingtalk.app_secret = Secret::new("not-the-app-secret");
    let (v, _, fix) = check(&cfg, "dingtalk token").await;
    assert_eq!(v, Verdict::Fail);
    assert!(
        fix.contains("凭证与基础信息") && fix.contains("app_secret"),
        "{fix}"
    );

    let mut cfg = env.cfg.clone();
    cfg.jumpserver.access_key_secret = Secret::new("not-the-jumpserver-key");
    let r = doctor::run(&cfg).await;
    assert!(!r.passed());
    let c = r.get("jumpserver auth").unwrap();
    assert_eq!(c.verdict, Verdict::Fail, "{r}");
    assert!(c.detail.contains("refused our credentials"), "{r}");
    assert!(c.fix.as_deref().unwrap().contains("API Key"), "{r}");
    assert!(
        !r.to_string().contains("not-the-jumpserver-key"),
        "secret printed:\n{r}"
    );
    // The DingTalk side is still judged on its own.
    assert_eq!(r.get("dingtalk token").unwrap().verdict, Verdict::Pass);

    let mut cfg = env.cfg.clone();
    cfg.approval.process_code = Some("PROC-WRONG".into());
    let (v, detail, fix) = check(&cfg, "dingtalk approval template").await;
    assert_eq!(v, Verdict::Fail);
    assert!(detail.contains("PROC-WRONG"), "{detail}");
    assert!(fix.contains("approval.process_code"), "{fix}");

    let mut cfg = env.cfg.clone();
    cfg.cards.approval_template_id = "tpl-typo.schema".into();
    let (v, detail, fix) = check(&cfg, "dingtalk card approval_template_id").await;
    assert_eq!(v, Verdict::Fail);
    assert!(detail.contains("templateNotExist"), "{detail}");
    assert!(
        fix.contains("卡片平台") && fix.contains("cards.approval_template_id"),
        "{fix}"
    );
    let (v, _, _) = check(&cfg, "dingtalk card request_template_id").await;
    assert_eq!(v, Verdict::Pass);

    // The template exists but lacks a field the bot fills.
    env.dt.set_process_form(CODE, &["申请单号", "申请人"]);
    let (v, detail, fix) = check(&env.cfg, "dingtalk approval template").await;
    assert_eq!(v, Verdict::Fail);
    assert!(detail.contains("“原因”"), "{detail}");
    assert!(fix.contains("表单管理") && fix.contains("“主机”"), "{fix}");
}

#[tokio::test]
async fn doctor_binary_prints_the_checklist_and_exits_by_it() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |cfg_text: String, vars: Vec<(&'static str, String)>| {
        let path = dir.path().join("accessbot.toml");
        std::fs::write(&path, cfg_text).unwrap();
        tokio::task::spawn_blocking(move || {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_accessbot"));
            c.args(["doctor", "--config"]).arg(&path);
            for (k, _) in std::env::vars() {
                if k.starts_with("ACCESSBOT_") {
                    c.env_remove(k);
                }
            }
            c.envs(vars);
            c.output().unwrap()
        })
    };
    // The example with its placeholders filled, pointed at the simulators by environment.
    let d = &env.cfg.dingtalk;
    let j = &env.cfg.jumpserver;
    let vars = [
        ("ACCESSBOT_DINGTALK__APP_KEY", d.app_key.clone()),
        (
            "ACCESSBOT_DINGTALK__APP_SECRET",
            d.app_secret.expose().to_owned(),
        ),
        ("ACCESSBOT_DINGTALK__API_BASE", d.api_base.clone()),
        ("ACCESSBOT_DINGTALK__OAPI_BASE", d.oapi_base.clone()),
        ("ACCESSBOT_JUMPSERVER__URL", j.url.clone()),
        (
            "ACCESSBOT_JUMPSERVER__ACCESS_KEY_ID",
            j.access_key_id.clone(),
        ),
        (
            "ACCESSBOT_JUMPSERVER__ACCESS_KEY_SECRET",
            j.access_key_secret.expose().to_owned(),
        ),
    ];
    // The example's admin, unknown to the directory: its line fails, exit 1.
    let out = run(filled_example(), vars.to_vec()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("✓ dingtalk token"), "{stdout}");
    assert!(stdout.contains("✓ jumpserver auth"), "{stdout}");
    assert!(stdout.contains("✗ dingtalk user lookup"), "{stdout}");
    assert!(stdout.contains("    fix: developer console"), "{stdout}");
    assert!(stdout.contains("– jumpserver write rights"), "{stdout}");
    assert!(stdout.ends_with("1 check(s) failed\n"), "{stdout}");
    assert!(!stdout.contains(d.app_secret.expose()), "secret printed");

    // With the admin in the directory everything passes: exit 0.
    env.dt.add_user(ding_user(
        "ops-lead01",
        "运维负责人",
        "ops-lead01@example.com",
    ));
    let out = run(filled_example(), vars.to_vec()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.ends_with("all checks passed\n"), "{stdout}");
}
