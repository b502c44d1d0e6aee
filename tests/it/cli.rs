//! The `accessbot` binary as an operator runs it: `config example`, `check-config` (every
//! problem with its key, environment overrides and `*_FILE` secrets) and a short `serve` run
//! with JSON logs, driven over HTTP like DingTalk. No secret may appear in any of its output.
use accessbot::config::{self, Sources};
use accessbot::dingtalk::crypto::CallbackCrypto;
use accessbot::sandbox::dingtalk::driver::{
    card_callback_body, card_signature_headers, encrypted_event_request, robot_text_message,
    signed_robot_headers, RobotSender,
};
use accessbot::sandbox::dingtalk::{SimDingTalk, SimDingTalkOptions};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_accessbot");

/// Distinct secret values, so any of them showing up in output is a leak, not a coincidence.
const APP_SECRET: &str = "appSecret-L3ak-Canary-41";
const CALLBACK_TOKEN: &str = "cbTokenCanary77";
const AES_KEY: &str = "Zq8RmT3vXw5yA7bC9dEfGhJkLmNpQrStUvWxYz01234"; // 43 characters
const CARD_SECRET: &str = "cardSecret-Canary-93";
const JMS_SECRET: &str = "jmsAkSecret-Canary-58";
const SECRETS: [&str; 5] = [APP_SECRET, CALLBACK_TOKEN, AES_KEY, CARD_SECRET, JMS_SECRET];

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The binary with a clean `ACCESSBOT_*` environment plus `env`.
fn accessbot(args: &[&str], config: Option<&Path>, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    if let Some(p) = config {
        c.arg("--config").arg(p);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("ACCESSBOT_") {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn run(args: &[&str], config: Option<&Path>, env: &[(&str, &str)]) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = accessbot(args, config, env).output().unwrap();
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn assert_no_secret(output: &str) {
    for s in SECRETS {
        assert!(!output.contains(s), "secret leaked: {output}");
    }
}

/// The example with every secret coming from outside the file: the environment and `*_FILE`.
fn secret_env(files: &Files) -> Vec<(String, String)> {
    let app = files.write("app_secret", &format!("{APP_SECRET}\n"));
    let aes = files.write("aes_key", AES_KEY);
    vec![
        (
            "ACCESSBOT_DINGTALK__APP_SECRET_FILE".into(),
            app.display().to_string(),
        ),
        (
            "ACCESSBOT_DINGTALK__CALLBACK_AES_KEY_FILE".into(),
            aes.display().to_string(),
        ),
        (
            "ACCESSBOT_DINGTALK__CALLBACK_TOKEN".into(),
            CALLBACK_TOKEN.into(),
        ),
        (
            "ACCESSBOT_DINGTALK__CARD_CALLBACK_SECRET".into(),
            CARD_SECRET.into(),
        ),
        (
            "ACCESSBOT_JUMPSERVER__ACCESS_KEY_SECRET".into(),
            JMS_SECRET.into(),
        ),
    ]
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn config_example_prints_the_example_file() {
    let (ok, out, err) = run(&["config", "example"], None, &[]);
    assert!(ok, "{err}");
    let file = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/accessbot.example.toml"),
    )
    .unwrap();
    assert_eq!(out, file);
}

#[test]
fn check_config_accepts_the_example_once_its_placeholders_are_filled() {
    let files = Files::new();
    let (_, example, _) = run(&["config", "example"], None, &[]);
    // As printed, the placeholders are refused, each by its key.
    let raw = files.write("raw.toml", &example);
    let (ok, out, _) = run(&["check-config"], Some(&raw), &[]);
    assert!(!ok, "{out}");
    for key in ["dingtalk.app_secret", "jumpserver.access_key_secret"] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!(": {key}: ")) && l.contains("placeholder")),
            "{key}: {out}"
        );
    }
    let cfg = files.write("accessbot.toml", &crate::support::filled_example());
    let (ok, out, err) = run(&["check-config"], Some(&cfg), &[]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), format!("{}: ok", cfg.display()));
}

#[test]
fn check_config_prints_every_problem_with_its_key() {
    let files = Files::new();
    let cfg = files.write(
        "broken.toml",
        "[server]\nlisten = \"everywhere\"\nmax_body_bytes = 10\nrequest_timeout_ms = \"soon\"\n\
         [dingtalk]\napp_key = \"dingk\"\ncallback_aes_key = \"short\"\napi_base = \"ftp://x\"\nspeling = 1\n",
    );
    let (ok, out, _) = run(&["check-config"], Some(&cfg), &[]);
    assert!(!ok, "{out}");
    let problems: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("error: ") || l.starts_with("warning: "))
        .collect();
    for key in [
        "server.listen",
        "server.max_body_bytes",
        "server.request_timeout_ms",
        "dingtalk.app_secret",
        "dingtalk.callback_token",
        "dingtalk.callback_aes_key",
        "dingtalk.api_base",
        "dingtalk.speling",
        "jumpserver.url",
        "approval.default_approvers",
    ] {
        assert!(
            problems.iter().any(|l| l.contains(&format!(": {key}: "))),
            "{key} missing from:\n{out}"
        );
    }
    assert!(
        out.contains(&format!("{} problem(s)", problems.len())),
        "{out}"
    );

    // A file that is not TOML at all is one problem naming the file.
    let junk = files.write("junk.toml", "[server\nlisten =");
    let (ok, out, _) = run(&["check-config"], Some(&junk), &[]);
    assert!(!ok);
    assert!(out.contains(&junk.display().to_string()), "{out}");
    // And a missing file.
    let (ok, out, _) = run(&["check-config"], Some(&files.path("absent.toml")), &[]);
    assert!(!ok);
    assert!(out.contains("cannot read the config file"), "{out}");
}

/// `ACCESSBOT_LOG` is the log filter, not a configuration override: `check-config` passes
/// with it set and says nothing about it, while a real malformed override is still reported.
#[test]
fn check_config_is_not_confused_by_the_log_filter_variable() {
    let files = Files::new();
    let cfg = files.write("accessbot.toml", &crate::support::filled_example());
    for filter in ["debug", "trace,cookie_store=debug", "info"] {
        let (ok, out, err) = run(&["check-config"], Some(&cfg), &[("ACCESSBOT_LOG", filter)]);
        assert!(ok, "ACCESSBOT_LOG={filter}: {out}{err}");
        assert_eq!(out.trim(), format!("{}: ok", cfg.display()));
        assert!(!err.contains("ACCESSBOT_LOG"), "{err}");
    }
    // One underscore short of an override: still a warning, and still a failed check.
    let (ok, out, _) = run(
        &["check-config"],
        Some(&cfg),
        &[
            ("ACCESSBOT_LOG", "debug"),
            ("ACCESSBOT_DINGTALK_APP_KEY", "x"),
        ],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("warning: ACCESSBOT_DINGTALK_APP_KEY: environment overrides look like"),
        "{out}"
    );
    assert!(!out.contains("ACCESSBOT_LOG"), "{out}");
    assert!(out.contains("1 problem(s)"), "{out}");
}

/// HTTP mode with a card template but no callback route key: DingTalk would create the cards
/// with callbackType STREAM and no tap would ever reach the bot. `check-config` refuses it and
/// says what to set; the same file passes with a route key, or in Stream mode.
#[test]
fn check_config_refuses_http_card_templates_without_a_callback_route_key() {
    let files = Files::new();
    let example = crate::support::filled_example();
    let cfg = files.write("accessbot.toml", &example);
    let secret = [("ACCESSBOT_DINGTALK__CARD_CALLBACK_SECRET", CARD_SECRET)];
    for template in [
        "ACCESSBOT_CARDS__APPROVAL_TEMPLATE_ID",
        "ACCESSBOT_CARDS__REQUEST_TEMPLATE_ID",
    ] {
        let env = [(template, "tpl-1234"), secret[0]];
        let (ok, out, _) = run(&["check-config"], Some(&cfg), &env);
        assert!(!ok, "{template}: {out}");
        let line = out
            .lines()
            .find(|l| l.starts_with("error: cards.callback_route_key: "))
            .unwrap_or_else(|| panic!("{template}: {out}"));
        let key = template
            .trim_start_matches("ACCESSBOT_CARDS__")
            .to_ascii_lowercase();
        for needle in [
            format!("cards.{key}"),
            "callbackType STREAM".into(),
            "/dingtalk/cards".into(),
            "/v1.0/card/callbacks/register".into(),
            "dingtalk.card_callback_secret".into(),
            "dingtalk.mode = \"stream\"".into(),
        ] {
            assert!(line.contains(&needle), "{needle} missing: {line}");
        }
        assert!(out.contains("1 problem(s)"), "{out}");
        assert_no_secret(&out);

        // Fixed either way: a route key (with its secret), or Stream mode.
        let fixed = [
            (template, "tpl-1234"),
            secret[0],
            ("ACCESSBOT_CARDS__CALLBACK_ROUTE_KEY", "accessbot"),
        ];
        let (ok, out, err) = run(&["check-config"], Some(&cfg), &fixed);
        assert!(ok, "{out}{err}");
        let stream = [
            (template, "tpl-1234"),
            ("ACCESSBOT_DINGTALK__MODE", "stream"),
        ];
        let (ok, out, err) = run(&["check-config"], Some(&cfg), &stream);
        assert!(ok, "{out}{err}");
    }
}

#[test]
fn env_overrides_and_file_secrets_reach_the_binary_and_never_its_output() {
    let files = Files::new();
    let example = crate::support::filled_example();
    let cfg = files.write("accessbot.toml", &example);
    let base = secret_env(&files);
    let (ok, out, err) = run(&["check-config"], Some(&cfg), &as_refs(&base));
    assert!(ok, "{out}{err}");
    assert_no_secret(&out);
    assert_no_secret(&err);

    // Env wins over the file: a bad override is blamed on the variable, naming its key.
    let mut bad = base.clone();
    bad.push(("ACCESSBOT_SERVER__LISTEN".into(), "not-an-address".into()));
    let (ok, out, _) = run(&["check-config"], Some(&cfg), &as_refs(&bad));
    assert!(!ok);
    assert!(
        out.contains("error: ACCESSBOT_SERVER__LISTEN: `not-an-address`")
            && out.contains("sets `server.listen`"),
        "{out}"
    );

    // `_FILE` wins over the file's value: a 42-character key read from a file is refused by
    // length, and the key itself is not printed.
    let short = files.write("short_aes", &AES_KEY[..42]);
    let mut bad = base.clone();
    bad.push((
        "ACCESSBOT_DINGTALK__CALLBACK_AES_KEY_FILE".into(),
        short.display().to_string(),
    ));
    let (ok, out, _) = run(&["check-config"], Some(&cfg), &as_refs(&bad));
    assert!(!ok);
    assert!(
        out.contains("error: ACCESSBOT_DINGTALK__CALLBACK_AES_KEY_FILE: must be 43 characters")
            && out.contains("got 42"),
        "{out}"
    );
    assert!(!out.contains(&AES_KEY[..42]), "{out}");

    // A `_FILE` that cannot be read names the key and the path, never a value.
    let mut bad = base.clone();
    bad.push((
        "ACCESSBOT_DINGTALK__APP_SECRET_FILE".into(),
        files.path("nope").display().to_string(),
    ));
    let (ok, out, _) = run(&["check-config"], Some(&cfg), &as_refs(&bad));
    assert!(!ok);
    assert!(
        out.contains("error: ACCESSBOT_DINGTALK__APP_SECRET_FILE: cannot read"),
        "{out}"
    );

    // A secret put where a number belongs, through the environment, is named but not shown.
    let mut bad = base.clone();
    bad.push(("ACCESSBOT_SERVER__MAX_BODY_BYTES".into(), APP_SECRET.into()));
    let (ok, out, _) = run(&["check-config"], Some(&cfg), &as_refs(&bad));
    assert!(!ok);
    assert!(
        out.contains("error: ACCESSBOT_SERVER__MAX_BODY_BYTES:") && out.contains("whole number"),
        "{out}"
    );
    assert_no_secret(&out);

    // The values really arrive: loaded the same way, they are the secrets, yet Debug hides them.
    let env: BTreeMap<String, String> = base.into_iter().collect();
    let (config, _) = config::load(&Sources {
        file: Some(&cfg),
        env,
    })
    .unwrap();
    assert_eq!(config.dingtalk.app_secret.expose(), APP_SECRET);
    assert_eq!(config.dingtalk.callback_aes_key.expose(), AES_KEY);
    assert_eq!(config.dingtalk.callback_token.expose(), CALLBACK_TOKEN);
    assert_no_secret(&format!("{config:?}"));
    assert_no_secret(&format!("{config:#?}"));
}

/// `accessbot --log-format json serve --config <cfg>` with `env`, its stderr collected line by
/// line; `start` returns once it listens.
struct Served {
    child: std::process::Child,
    reader: std::thread::JoinHandle<Vec<String>>,
    url: String,
}

impl Served {
    async fn start(cfg: &Path, env: &[(&str, &str)]) -> Served {
        let mut child = accessbot(&["--log-format", "json", "serve"], Some(cfg), env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = Vec::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line.clone());
                all.push(line);
            }
            all
        });
        let addr = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .expect("serve did not start")
                .expect("serve exited before listening");
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["message"] == "accessbot listening" {
                break v["addr"].as_str().unwrap().to_owned();
            }
        };
        Served {
            child,
            reader,
            url: format!("http://{addr}"),
        }
    }

    /// Graceful stop on SIGTERM, as a container runtime does it; every line it logged.
    async fn stop(self) -> Vec<String> {
        let Served {
            mut child, reader, ..
        } = self;
        let pid = child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status}");
        reader.join().unwrap()
    }
}

/// `serve` with JSON logs at debug level: reached over HTTP with secrets that only came from
/// the environment and files, stopped with SIGTERM; every log line is JSON and none holds a
/// secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_json_logs_works_with_outside_secrets_and_never_logs_them() {
    let sim = SimDingTalk::start(SimDingTalkOptions {
        app_secret: APP_SECRET.into(),
        ..SimDingTalkOptions::default()
    })
    .await
    .unwrap();
    let app_key = sim.options().app_key.clone();
    let files = Files::new();
    let example = crate::support::filled_example();
    let cfg = files.write("accessbot.toml", &example);
    let mut env = secret_env(&files);
    let data = files.path("data").display().to_string();
    for (k, v) in [
        ("ACCESSBOT_SERVER__LISTEN", "127.0.0.1:0"),
        ("ACCESSBOT_STORAGE__PATH", data.as_str()),
        ("ACCESSBOT_DINGTALK__APP_KEY", app_key.as_str()),
        ("ACCESSBOT_DINGTALK__API_BASE", sim.base_url()),
        ("ACCESSBOT_DINGTALK__OAPI_BASE", sim.base_url()),
        ("ACCESSBOT_LOG", "debug"),
    ] {
        env.push((k.into(), v.into()));
    }
    let served = Served::start(&cfg, &as_refs(&env)).await;
    let url = served.url.clone();
    let http = reqwest::Client::new();
    let now = || jiff::Timestamp::now().as_millisecond();

    // check_url with the token and aes key that came from the environment and a file.
    let crypto = CallbackCrypto::new(CALLBACK_TOKEN, AES_KEY, &app_key).unwrap();
    let (q, body) = encrypted_event_request(
        &crypto,
        r#"{"EventType":"check_url"}"#,
        &now().to_string(),
        "nonce1",
    );
    let r = http
        .post(format!("{url}/dingtalk/events?{q}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let reply: Value = r.json().await.unwrap();
    let s = |k: &str| reply[k].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        crypto.verify_signature(
            &s("msg_signature"),
            &s("timeStamp"),
            &s("nonce"),
            &s("encrypt")
        ),
        Ok(())
    );
    assert_eq!(crypto.decrypt(&s("encrypt")).as_deref(), Ok("success"));

    // A robot message signed with the app secret read from a file is answered with help.
    let sender = RobotSender {
        staff_id: Some("u1"),
        nick: "张三",
        group: false,
        conversation_id: "cid-cli",
        session_webhook: "unused",
        robot_code: &app_key,
    };
    let mut msg = robot_text_message(&sender, "msgCli1", "help", now());
    let (hook, expires) = sim.session_webhook("msgCli1");
    msg["sessionWebhook"] = json!(hook);
    msg["sessionWebhookExpiredTime"] = json!(expires);
    let post_robot = |headers: [(String, String); 2]| {
        let mut req = http
            .post(format!("{url}/dingtalk/robot"))
            .body(msg.to_string());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let r = post_robot(signed_robot_headers(APP_SECRET, now()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post_robot(signed_robot_headers("forged", now()))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut replies = Vec::new();
    for _ in 0..500 {
        replies = sim.webhook_messages("msgCli1");
        if !replies.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(replies.len(), 1, "{replies:?}");

    // A card tap signed with the card secret from the environment.
    let mut params = Map::new();
    params.insert("requestId".into(), json!("REQ-1"));
    let mut req = http
        .post(format!("{url}/dingtalk/cards"))
        .body(card_callback_body("REQ-1", "boss01", &["approve"], params).to_string());
    for (k, v) in card_signature_headers(CARD_SECRET, now()) {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);

    let lines = served.stop().await;
    assert!(lines.len() > 3, "{lines:?}");
    for line in &lines {
        let v: Result<Value, _> = serde_json::from_str(line);
        assert!(
            v.is_ok_and(|v| v.is_object()),
            "not a JSON log line: {line}"
        );
        assert_no_secret(line);
    }
    assert!(
        lines.iter().any(|l| l.contains("refused inbound request")),
        "{lines:?}"
    );
    // ACCESSBOT_LOG=debug applied (debug lines are there) and was not taken for a malformed
    // config override.
    assert!(
        lines.iter().any(|l| l.contains(r#""level":"DEBUG""#)),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("ACCESSBOT_LOG")),
        "{lines:?}"
    );
}

#[test]
fn serve_refuses_a_broken_config_naming_each_key_in_json_logs() {
    let files = Files::new();
    let cfg = files.write(
        "broken.toml",
        "[server]\nlisten = \"everywhere\"\n[dingtalk]\napp_key = \"k\"\n",
    );
    let (ok, out, err) = run(&["--log-format", "json", "serve"], Some(&cfg), &[]);
    assert!(!ok, "{out}{err}");
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let keys: Vec<&str> = lines.iter().filter_map(|l| l["key"].as_str()).collect();
    for key in ["server.listen", "dingtalk.app_secret", "jumpserver.url"] {
        assert!(keys.contains(&key), "{key}: {lines:?}");
    }
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .unwrap_or("")
            .contains("configuration problem")),
        "{lines:?}"
    );
}

/// Credentials of the bot's JumpServer account in password and MFA modes (canaries too).
const JMS_PASSWORD: &str = "jmsPassw0rd-Canary-26";
/// Base32 of "abcdefghijklmnopqrst": valid for TOTP, and nothing else prints it.
const OTP_SEED: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";
const REQUESTER: &str = "alice01";
const APPROVER: &str = "boss01";

/// Simulated DingTalk and JumpServer (whose service account logs in with a password, plus a
/// TOTP code when `mfa`), and a config file pointing `serve` at both; secrets come only from
/// the environment and files.
struct PasswordModeRig {
    dt: SimDingTalk,
    jms: accessbot::sandbox::jumpserver::SimJumpServer,
    files: Files,
    cfg: PathBuf,
    env: Vec<(String, String)>,
}

impl PasswordModeRig {
    async fn new(mfa: bool, log_filter: &str) -> Self {
        use accessbot::sandbox::jumpserver::{SimJmsOptions, SimJumpServer, SimLoginUser};
        use accessbot::secret::Secret;
        let dt = SimDingTalk::start(SimDingTalkOptions {
            app_secret: APP_SECRET.into(),
            qps_limit: None,
            ..SimDingTalkOptions::default()
        })
        .await
        .unwrap();
        dt.add_user(crate::support::ding_user(
            REQUESTER,
            "张三",
            "fx-alice@example.com",
        ));
        dt.add_user(crate::support::example_user(APPROVER, "李四"));
        let mut opts = SimJmsOptions::new(std::sync::Arc::new(accessbot::clock::SystemClock));
        opts.login_users = vec![SimLoginUser {
            username: "fx-bot".into(),
            name: "Fx Bot".into(),
            email: "fx-bot@example.com".into(),
            password: Secret::new(JMS_PASSWORD),
            otp_seed: mfa.then(|| Secret::new(OTP_SEED)),
        }];
        let jms = SimJumpServer::start(opts).await.unwrap();
        jms.seed_demo().unwrap();
        let files = Files::new();
        let cfg = files.write(
            "accessbot.toml",
            &format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"{data}\"\n\
                 [dingtalk]\napp_key = \"{key}\"\napi_base = \"{dt}\"\noapi_base = \"{dt}\"\n\
                 [jumpserver]\nurl = \"{jms}\"\nusername = \"fx-bot\"\n\
                 [approval]\ndefault_approvers = [\"{APPROVER}\"]\n",
                data = files.path("data").display(),
                key = dt.options().app_key,
                dt = dt.base_url(),
                jms = jms.url(),
            ),
        );
        let app_secret = files.write("app_secret", APP_SECRET);
        let password = files.write("jms_password", &format!("{JMS_PASSWORD}\n"));
        let mut env: Vec<(String, String)> = [
            (
                "ACCESSBOT_DINGTALK__APP_SECRET_FILE",
                app_secret.display().to_string(),
            ),
            ("ACCESSBOT_DINGTALK__CALLBACK_TOKEN", CALLBACK_TOKEN.into()),
            ("ACCESSBOT_DINGTALK__CALLBACK_AES_KEY", AES_KEY.into()),
            (
                "ACCESSBOT_DINGTALK__CARD_CALLBACK_SECRET",
                CARD_SECRET.into(),
            ),
            (
                "ACCESSBOT_JUMPSERVER__PASSWORD_FILE",
                password.display().to_string(),
            ),
            ("ACCESSBOT_LOG", log_filter.into()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into();
        if mfa {
            env.push(("ACCESSBOT_JUMPSERVER__OTP_SEED".into(), OTP_SEED.into()));
        }
        Self {
            dt,
            jms,
            files,
            cfg,
            env,
        }
    }

    async fn serve(&self) -> Served {
        Served::start(&self.cfg, &as_refs(&self.env)).await
    }

    /// `user`'s signed 1:1 message to the running bot.
    async fn say(&self, served: &Served, user: &str, msg_id: &str, text: &str) {
        let now = jiff::Timestamp::now().as_millisecond();
        let app_key = self.dt.options().app_key.clone();
        let sender = RobotSender {
            staff_id: Some(user),
            nick: user,
            group: false,
            conversation_id: &format!("cid-{user}"),
            session_webhook: "unused",
            robot_code: &app_key,
        };
        let mut msg = robot_text_message(&sender, msg_id, text, now);
        let (hook, expires) = self.dt.session_webhook(msg_id);
        msg["sessionWebhook"] = json!(hook);
        msg["sessionWebhookExpiredTime"] = json!(expires);
        let mut req = reqwest::Client::new()
            .post(format!("{}/dingtalk/robot", served.url))
            .body(msg.to_string());
        for (k, v) in signed_robot_headers(APP_SECRET, now) {
            req = req.header(k, v);
        }
        assert_eq!(req.send().await.unwrap().status(), 200);
    }

    /// Texts of the robot messages `user` received.
    fn texts_to(&self, user: &str) -> Vec<String> {
        self.dt
            .messages_to(&accessbot::domain::ids::DingUserId::new(user))
            .into_iter()
            .map(|m| m.param.to_string())
            .collect()
    }

    /// Every credential of this run: the configured secrets, and what the simulators issued
    /// (JumpServer session cookies and Bearer tokens, DingTalk access tokens).
    fn credentials(&self) -> Vec<String> {
        let mut all: Vec<String> = [
            APP_SECRET,
            CALLBACK_TOKEN,
            AES_KEY,
            CARD_SECRET,
            JMS_PASSWORD,
            OTP_SEED,
        ]
        .map(String::from)
        .into();
        all.extend(self.jms.issued_credentials());
        let mut tokens: Vec<String> = self
            .dt
            .calls()
            .into_iter()
            .filter_map(|c| c.token)
            .filter(|t| !t.is_empty())
            .collect();
        tokens.sort();
        tokens.dedup();
        all.extend(tokens);
        all
    }
}

/// Polls `probe` until it gives a value. The bound only keeps a broken run from hanging; it is
/// generous because CI machines are shared (no speed is asserted).
async fn eventually<T>(what: &str, probe: impl Fn() -> Option<T>) -> T {
    for _ in 0..6000 {
        if let Some(v) = probe() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// The first order id (`R261122-001`) in `text`.
fn order_id_in(text: &str) -> Option<String> {
    let b = text.as_bytes();
    (0..b.len()).find_map(|i| {
        let digits = |r: std::ops::Range<usize>| {
            b.get(r.clone())
                .is_some_and(|s| !s.is_empty() && s.iter().all(u8::is_ascii_digit))
        };
        let end = (i + 11..=b.len())
            .take_while(|&e| digits(i + 8..e))
            .last()?;
        (b[i] == b'R' && digits(i + 1..i + 7) && b.get(i + 7) == Some(&b'-'))
            .then(|| text[i..end].to_owned())
    })
}

/// The whole flow — login (password, or password + TOTP), a request, the approval card, the
/// approval, the grant — with `ACCESSBOT_LOG=trace`, the level the docs point operators at and
/// beyond. No credential may appear in any log line: not the configured secrets, not the
/// JumpServer session cookie (cookie_store logs each Set-Cookie at debug), not a Bearer token,
/// not a DingTalk access token.
async fn no_credential_in_trace_logs(mfa: bool) {
    let rig = PasswordModeRig::new(mfa, "trace").await;
    let served = rig.serve().await;
    rig.say(
        &served,
        REQUESTER,
        "msgTrace1",
        "申请主机 10.10.1.11 只读 4h 原因：排查线上问题",
    )
    .await;
    let order = eventually("the approver is asked", || {
        rig.texts_to(APPROVER).iter().find_map(|t| order_id_in(t))
    })
    .await;
    rig.say(&served, APPROVER, "msgTrace2", &format!("同意 {order}"))
        .await;
    eventually("the requester is told access is granted", || {
        rig.texts_to(REQUESTER)
            .iter()
            .find(|t| t.contains("权限已开通"))
            .cloned()
    })
    .await;
    let lines = served.stop().await;

    // The run did what it had to: it logged in the way this mode logs in, got a session cookie
    // and a Bearer token, used DingTalk tokens, and logged at trace and debug level.
    let auth = "/api/v1/authentication/";
    assert_eq!(
        rig.jms.calls_to("POST", &format!("{auth}mfa/")),
        usize::from(mfa)
    );
    assert!(rig.jms.calls_to("POST", &format!("{auth}auth/")) >= 1);
    assert!(rig.jms.issued_credentials().len() >= 2);
    assert!(rig.dt.token_requests() >= 1);
    assert!(lines.iter().any(|l| l.contains(r#""level":"DEBUG""#)));
    let credentials = rig.credentials();
    for line in &lines {
        for c in &credentials {
            assert!(
                !line.contains(c.as_str()),
                "credential {c:?} logged: {line}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_mode_at_trace_logs_no_credential() {
    no_credential_in_trace_logs(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_mode_at_trace_logs_no_credential() {
    no_credential_in_trace_logs(true).await;
}

/// The other side of the quiet defaults: an operator who names a quiet crate gets its logs, so
/// a filter can still reach them on purpose. It also shows what the defaults hold back —
/// cookie_store at debug prints the JumpServer session cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_a_quiet_crate_in_the_filter_lifts_its_default() {
    let rig = PasswordModeRig::new(false, "info,cookie_store=debug").await;
    let served = rig.serve().await;
    // The bot logs in at start (it warms the JumpServer caches).
    eventually("the bot logs in", || {
        (rig.jms.calls_to("GET", "/api/v1/assets/nodes/") > 0).then_some(())
    })
    .await;
    let lines = served.stop().await;
    let sessions = rig.jms.issued_credentials();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cookie_store") && sessions.iter().any(|s| l.contains(s.as_str()))),
        "{lines:?}"
    );
    drop(rig.files);
}
