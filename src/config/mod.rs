//! Layered configuration: built-in defaults → TOML file → `ACCESSBOT_<SECTION>__<KEY>` environment
//! variables → `<key>_file` indirection for secrets. Loading never stops at the first mistake:
//! `load` returns every problem it can find, each with the key it belongs to, so an operator fixes
//! a deployment file in one pass.
//!
//! Longer than 600 lines on purpose: every section, its defaults, the environment overlay and the
//! validation that names each key are one table to keep in step with the example file; the
//! unit tests are at the end.
mod diagnose;

use crate::dingtalk::DingTalkConfig;
use crate::domain::identity::IdentityConfig;
use crate::domain::policy::{
    ApprovalConfig, ChatConfig, PolicyConfig, PolicySection, RolesConfig, SystemConfig,
};
use crate::jumpserver::config::JumpServerConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The example configuration, every option commented. Kept as a file so operators can copy it;
/// `accessbot config example` prints the same bytes.
pub const EXAMPLE: &str = include_str!("../../config/accessbot.example.toml");

/// Prefix of environment overrides: `ACCESSBOT_DINGTALK__APP_KEY` sets `[dingtalk] app_key`.
pub const ENV_PREFIX: &str = "ACCESSBOT_";

/// `ACCESSBOT_*` variables the binary reads for itself, not configuration overrides: the
/// override scanner must neither warn about them nor make `check-config` fail on them.
pub const NOT_CONFIG_ENV: &[&str] = &[crate::logging::LOG_ENV];

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub dingtalk: DingTalkConfig,
    pub jumpserver: JumpServerConfig,
    // The sections below are the access policy; `policy_config()` hands them to the domain.
    pub approval: ApprovalConfig,
    pub policy: PolicySection,
    pub roles: RolesConfig,
    pub systems: Vec<SystemConfig>,
    pub chat: ChatConfig,
    pub identity: IdentityConfig,
    pub cards: CardsConfig,
    pub workflow: WorkflowConfig,
    /// `[console]`: the access console web pages (see `console::config`).
    pub console: crate::console::config::ConsoleConfig,
}

/// `[cards]`: DingTalk interactive card templates (variables documented in `cards/README.md`).
/// Empty template ids make the bot fall back to markdown / action-card messages with `dtmd://`
/// buttons, so it works with no card template at all.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CardsConfig {
    /// Template of the approval card sent to each approver (and the requester's status card).
    pub approval_template_id: String,
    /// Template of the request form card sent for a bare `/apply`.
    pub request_template_id: String,
    /// Route key registered for HTTP card callbacks; empty = callbacks over Stream mode, so it
    /// is required in HTTP mode as soon as a template is set (`validate` says so).
    pub callback_route_key: String,
}

/// `[workflow]`: timings of the request → approval → grant flow.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct WorkflowConfig {
    /// JumpServer node (a child of the org root) that hosts outside every `[[systems]]` entry
    /// are created in.
    pub default_node: String,
    /// JumpServer web address shown to users; empty = `jumpserver.url`.
    pub jms_web_url: String,
    /// Transient failures (JumpServer or DingTalk down) are retried with backoff this long.
    pub retry_hours: u64,
    /// A request nobody decides is closed after this long.
    pub approval_timeout_hours: u64,
    /// Approvers get one reminder after this long; 0 = never.
    pub approval_reminder_minutes: u64,
    /// The requester is told this long before access ends; 0 = never.
    pub expiry_reminder_minutes: u64,
    /// Parallel outbox jobs (JumpServer and DingTalk both rate-limit).
    pub max_concurrent_jobs: usize,
    /// Run the outbox and deadline workers in the background. `false` is for tests and
    /// step-by-step demos, which drive them with `Bot::run_outbox_once` / `fire_deadlines`.
    pub run_workers: bool,
    /// A requested host lacks the role's login (`ops` on a host without an `ops` account):
    /// `warn` = ask for approval anyway, naming the host on the card and in the result, and
    /// tell the admins what to add; `refuse` = close the request before approval, saying why.
    pub missing_login: MissingLogin,
    /// How a revoke, give-back or expiry ends the permission in JumpServer: `deactivate`
    /// (`is_active: false`, kept in JumpServer for its own records) or `delete`.
    pub revoke_mode: RevokeModeConfig,
    /// On revoke and at expiry, ask JumpServer's terminals to end the holder's live sessions
    /// on the order's hosts.
    pub end_sessions: bool,
    /// New orders one requester may create per `rate_window_minutes`; 0 = no limit. Every
    /// order reaches approvers, so a flood from one person (seen: 22 in 50 s) is theirs to
    /// wade through. Counted from the stored orders, so a restart does not reset it.
    pub max_new_orders_per_user: u32,
    /// The sliding window of `max_new_orders_per_user`, in minutes.
    pub rate_window_minutes: u64,
}

/// `[workflow] missing_login`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingLogin {
    #[default]
    Warn,
    Refuse,
}

/// `[workflow] revoke_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeModeConfig {
    #[default]
    Deactivate,
    Delete,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            default_node: "accessbot".into(),
            jms_web_url: String::new(),
            retry_hours: 24,
            approval_timeout_hours: 24,
            approval_reminder_minutes: 120,
            expiry_reminder_minutes: 60,
            max_concurrent_jobs: 8,
            run_workers: true,
            missing_login: MissingLogin::Warn,
            revoke_mode: RevokeModeConfig::Deactivate,
            end_sessions: true,
            max_new_orders_per_user: 5,
            rate_window_minutes: 10,
        }
    }
}

/// Upper bound of `server.max_connections`: more sockets than any open-file limit allows.
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Address the HTTP server binds to.
    pub listen: String,
    /// Largest request body accepted, in bytes. DingTalk's payloads are a few KiB; anything
    /// much larger is not DingTalk.
    pub max_body_bytes: usize,
    /// Per-request deadline in milliseconds. DingTalk wants the event reply within 1500 ms
    /// (reference §2.4), so the handlers only verify, store and enqueue.
    pub request_timeout_ms: u64,
    /// How long delivery keys are remembered for dedupe, in hours. DingTalk's redelivery
    /// window is undocumented; failed pushes are kept about a week (reference §2.6). Every key
    /// remembered is also held in memory (~30–60 bytes each, see store/dedupe.rs).
    pub dedupe_ttl_hours: u64,
    /// A connection must deliver a complete request head within this long after it opens or
    /// after its previous response, in milliseconds; else it is closed. So it also bounds how
    /// long an idle keep-alive connection is kept. DingTalk sends its whole request at once.
    pub header_read_timeout_ms: u64,
    /// A connection on which no byte moves either way for this long is closed, whatever it is
    /// doing (a client that stops reading our answer, a stalled body), in milliseconds. Longer
    /// than `request_timeout_ms`, so a request being handled is never cut.
    pub idle_timeout_ms: u64,
    /// Open connections at most. Beyond it new connections get an immediate 503 with
    /// Retry-After instead of an open socket, so idle or hostile connections cannot use up the
    /// process's file descriptors (often 1024) and starve DingTalk.
    pub max_connections: usize,
    /// Where `/metrics` is served: `None` (the default) serves it on `listen`; an address
    /// serves it there only (e.g. loopback for a local Prometheus agent), and not on `listen`,
    /// which DingTalk and so the internet reach.
    pub metrics_listen: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            request_timeout_ms: 1500,
            dedupe_ttl_hours: 7 * 24,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 512,
            metrics_listen: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// Directory of the sled database.
    pub path: PathBuf,
    /// sled's page cache in MiB. sled defaults to 1 GiB, which a large `/sync` fills; the bot's
    /// working set (orders, outbox, dialogs, the index pages a query touches) is far smaller.
    /// 8 by default: the 10k-user / 50k-host `/sync` peaked at 145 MB with it, 276 MB with 64,
    /// and `/who-has` was no slower (docs/benchmarks.md).
    pub cache_capacity_mb: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./data"),
            cache_capacity_mb: crate::store::DEFAULT_CACHE_BYTES >> 20,
        }
    }
}

/// One thing wrong with the configuration, tied to the key that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
    /// Unknown keys are warnings: the server still starts, `check-config` still fails.
    pub warning_only: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.warning_only {
            "warning"
        } else {
            "error"
        };
        write!(f, "{kind}: {}: {}", self.key, self.message)
    }
}

impl Problem {
    fn error(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            warning_only: false,
        }
    }
}

/// Where the configuration comes from. Environment variables are passed in, not read from the
/// process, so tests can exercise overrides without touching global state.
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
    pub env: BTreeMap<String, String>,
}

impl Sources<'_> {
    pub fn from_process(file: Option<&Path>) -> Sources<'_> {
        Sources {
            file,
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with(ENV_PREFIX))
                .collect(),
        }
    }
}

/// Loads and validates. `Ok` carries the config and its warnings; `Err` carries every error
/// found (plus the warnings), never just the first.
pub fn load(sources: &Sources<'_>) -> Result<(Config, Vec<Problem>), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut doc = match sources.file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => match text.parse::<toml::Table>() {
                Ok(t) => t,
                Err(e) => {
                    // `file:line:column`, the way editors and compilers point at a spot.
                    let at = match e.span() {
                        Some(span) => {
                            let (line, col) = diagnose::line_col(&text, span.start);
                            format!("{}:{line}:{col}", path.display())
                        }
                        None => path.display().to_string(),
                    };
                    return Err(vec![Problem::error(
                        at,
                        format!("not valid TOML: {}", e.message().trim()),
                    )]);
                }
            },
            Err(e) => {
                return Err(vec![Problem::error(
                    path.display().to_string(),
                    format!("cannot read the config file: {e}"),
                )])
            }
        },
        None => toml::Table::new(),
    };

    let env_keys = apply_env(&mut doc, &sources.env, &mut problems);
    resolve_files(&mut doc, "", &mut problems);
    problems.extend(diagnose::placeholders(&doc));

    // serde stops at the first ill-typed key; report it, drop it, and go on, so one run of
    // `check-config` names every ill-typed key rather than one per run.
    let mut unknown = std::collections::BTreeSet::new();
    let mut ill_typed = Vec::new();
    let parsed = loop {
        let attempt: Result<Config, _> =
            serde_ignored::deserialize(toml::Value::Table(doc.clone()), |path| {
                unknown.insert(path.to_string());
            });
        match attempt {
            Ok(c) => break Some(c),
            Err(e) => {
                let (key, message) = type_problem(&e);
                let removed = key.as_deref().is_some_and(|k| remove_path(&mut doc, k));
                ill_typed.push(Problem::error(
                    key.unwrap_or_else(|| "config".into()),
                    message,
                ));
                if !removed || ill_typed.len() > 100 {
                    break None;
                }
            }
        }
    };
    for key in unknown {
        let message = match diagnose::did_you_mean(&key) {
            Some(k) => format!("unknown key (ignored); did you mean `{k}`?"),
            None => "unknown key (ignored); check its spelling against `accessbot config example`"
                .into(),
        };
        problems.push(Problem {
            key,
            message,
            warning_only: true,
        });
    }
    for p in ill_typed.iter_mut() {
        p.message = diagnose::plain_words(&p.message);
    }
    let config = match parsed {
        Some(c) if ill_typed.is_empty() => c,
        Some(c) => {
            // A dropped key would read as "is required"; its type problem says it better.
            problems.extend(
                c.validate()
                    .into_iter()
                    .filter(|p| !ill_typed.iter().any(|t| t.key == p.key)),
            );
            problems.extend(ill_typed);
            diagnose::blame_env(&mut problems, &env_keys);
            return Err(problems);
        }
        None => {
            problems.extend(ill_typed);
            diagnose::blame_env(&mut problems, &env_keys);
            return Err(problems);
        }
    };
    problems.extend(config.validate());
    // An empty `<key>_file` was reported as such; "<key> is required" would only repeat it.
    let empty_files: Vec<String> = problems
        .iter()
        .filter_map(|p| p.key.strip_suffix("_file").map(str::to_owned))
        .collect();
    problems.retain(|p| !(p.message == "is required" && empty_files.contains(&p.key)));
    diagnose::blame_env(&mut problems, &env_keys);
    if problems.iter().any(|p| !p.warning_only) {
        Err(problems)
    } else {
        Ok((config, problems))
    }
}

impl Config {
    /// The policy sections as the domain's `PolicyConfig`.
    pub fn policy_config(&self) -> PolicyConfig {
        PolicyConfig {
            approval: self.approval.clone(),
            policy: self.policy.clone(),
            roles: self.roles.clone(),
            systems: self.systems.clone(),
            chat: self.chat.clone(),
            identity: self.identity.clone(),
        }
    }

    /// Semantic checks that serde cannot express. Each problem names its key.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        for (key, message) in self.console.problems(&self.server.listen) {
            p.push(Problem::error(key, message));
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(Problem::error(
                "server.listen",
                format!(
                    "`{}` is not an address like 127.0.0.1:8080",
                    self.server.listen
                ),
            ));
        }
        if let Some(m) = &self.server.metrics_listen {
            if m.parse::<std::net::SocketAddr>().is_err() {
                p.push(Problem::error(
                    "server.metrics_listen",
                    format!("`{m}` is not an address like 127.0.0.1:9464"),
                ));
            } else if *m == self.server.listen {
                p.push(Problem::error(
                    "server.metrics_listen",
                    "must differ from server.listen (leave it out to serve /metrics there)",
                ));
            }
        }
        if self.server.max_body_bytes < 1024 {
            p.push(Problem::error(
                "server.max_body_bytes",
                "must be at least 1024: DingTalk's own payloads are larger than that",
            ));
        }
        if self.server.request_timeout_ms == 0 {
            p.push(Problem::error(
                "server.request_timeout_ms",
                "must be above 0",
            ));
        }
        if self.server.header_read_timeout_ms == 0 {
            p.push(Problem::error(
                "server.header_read_timeout_ms",
                "must be above 0: without it a silent connection is kept forever",
            ));
        }
        if self.server.idle_timeout_ms <= self.server.request_timeout_ms {
            p.push(Problem::error(
                "server.idle_timeout_ms",
                format!(
                    "must be longer than server.request_timeout_ms ({} ms), or requests being \
                     handled would be cut",
                    self.server.request_timeout_ms
                ),
            ));
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.server.max_connections) {
            p.push(Problem::error(
                "server.max_connections",
                format!(
                    "must be between 1 and {MAX_CONNECTIONS_LIMIT}; keep it well below the \
                     process's open-file limit (ulimit -n)"
                ),
            ));
        }
        if !self.cards.callback_route_key.trim().is_empty()
            && self.dingtalk.card_callback_secret.is_empty()
        {
            p.push(Problem::error(
                "cards.callback_route_key",
                "HTTP card callbacks need dingtalk.card_callback_secret (unsigned taps are refused)",
            ));
        }
        // Without a route key cards are created with callbackType STREAM: in HTTP mode nothing
        // listens on that socket, so every tap on an approval or request form card is lost.
        if self.dingtalk.mode == crate::dingtalk::ListenerMode::Http
            && self.cards.callback_route_key.trim().is_empty()
        {
            for (key, id) in [
                (
                    "cards.approval_template_id",
                    &self.cards.approval_template_id,
                ),
                ("cards.request_template_id", &self.cards.request_template_id),
            ] {
                if !id.trim().is_empty() {
                    p.push(Problem::error(
                        "cards.callback_route_key",
                        format!(
                            "is required in HTTP mode when {key} is set: without it cards are \
                             created with callbackType STREAM and taps never reach this bot. Set \
                             it to the callbackRouteKey you registered for \
                             https://<your host>/dingtalk/cards with DingTalk's \
                             POST /v1.0/card/callbacks/register (whose apiSecret goes in \
                             dingtalk.card_callback_secret), or set dingtalk.mode = \"stream\""
                        ),
                    ));
                    break;
                }
            }
        }
        let w = &self.workflow;
        if crate::jumpserver::api::validate_node_value(&w.default_node).is_err() {
            p.push(Problem::error(
                "workflow.default_node",
                "must be a plain node name (no `/`), e.g. accessbot",
            ));
        }
        for (key, v) in [
            ("workflow.retry_hours", w.retry_hours),
            ("workflow.approval_timeout_hours", w.approval_timeout_hours),
            ("workflow.max_concurrent_jobs", w.max_concurrent_jobs as u64),
        ] {
            if v == 0 {
                p.push(Problem::error(key, "must be at least 1"));
            }
        }
        if w.max_new_orders_per_user > 0 && w.rate_window_minutes == 0 {
            p.push(Problem::error(
                "workflow.rate_window_minutes",
                "must be at least 1 (or set workflow.max_new_orders_per_user = 0 for no limit)",
            ));
        }
        if self.storage.cache_capacity_mb == 0 {
            p.push(Problem::error(
                "storage.cache_capacity_mb",
                "must be at least 1 (MiB of sled page cache)",
            ));
        }
        if self.storage.path.as_os_str().is_empty() {
            p.push(Problem::error("storage.path", "must not be empty"));
        }
        // The domain reports `key: message`; keep the key apart so every problem reads alike.
        for text in self
            .jumpserver
            .validate()
            .into_iter()
            .chain(self.policy_config().validate())
        {
            let (key, message) = text.split_once(": ").unwrap_or(("policy", text.as_str()));
            p.push(Problem::error(key, message));
        }
        let d = &self.dingtalk;
        // Stream mode connects out with app_key/app_secret; only HTTP event push needs the
        // subscription's token and AES key.
        let http = d.mode == crate::dingtalk::ListenerMode::Http;
        for (key, empty) in [
            ("dingtalk.app_key", d.app_key.is_empty()),
            ("dingtalk.app_secret", d.app_secret.is_empty()),
            (
                "dingtalk.callback_token",
                http && d.callback_token.is_empty(),
            ),
            (
                "dingtalk.callback_aes_key",
                http && d.callback_aes_key.is_empty(),
            ),
        ] {
            if empty {
                p.push(Problem::error(key, "is required"));
            }
        }
        if !d.callback_aes_key.is_empty() && d.callback_aes_key.expose().len() != 43 {
            p.push(Problem::error(
                "dingtalk.callback_aes_key",
                format!(
                    "must be 43 characters (the console's aes_key), got {}",
                    d.callback_aes_key.expose().len()
                ),
            ));
        }
        for (key, url) in [
            ("dingtalk.api_base", &d.api_base),
            ("dingtalk.oapi_base", &d.oapi_base),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                p.push(Problem::error(key, "must start with http:// or https://"));
            }
        }
        p
    }
}

/// `ACCESSBOT_A__B__C=v` sets `a.b.c = v`. Values that read as TOML booleans, numbers or arrays
/// take that type (ports, limits, lists); everything else is a string. Quote a value to force
/// a string: `ACCESSBOT_DINGTALK__APP_KEY='"123"'`.
fn apply_env(
    doc: &mut toml::Table,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    // dotted key → the variable that set it, so a problem with it is blamed on the variable.
    let mut set_by = BTreeMap::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if NOT_CONFIG_ENV.contains(&name.as_str()) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.len() < 2 || path.iter().any(|s| s.is_empty()) {
            problems.push(Problem {
                key: name.clone(),
                message: "environment overrides look like ACCESSBOT_<SECTION>__<KEY>; ignored"
                    .into(),
                warning_only: true,
            });
            continue;
        }
        if let Err(seg) = set_path(doc, &path, env_value_for(&path, raw)) {
            problems.push(Problem::error(
                name.clone(),
                format!("`{seg}` is not a section, cannot set a key inside it"),
            ));
            continue;
        }
        let dotted = path.join(".");
        // An override replaces the file's value in whichever spelling the file used, so the
        // value-and-file conflict below is only ever within one layer.
        let (base, other, twin_var) = match dotted.strip_suffix("_file") {
            Some(base) => (
                base.to_owned(),
                base.to_owned(),
                name.strip_suffix("_FILE").unwrap_or(name).to_owned(),
            ),
            None => (
                dotted.clone(),
                format!("{dotted}_file"),
                format!("{name}_FILE"),
            ),
        };
        if !env.contains_key(&twin_var) {
            remove_path(doc, &other);
        }
        set_by.insert(base, name.clone());
        set_by.insert(dotted, name.clone());
    }
    set_by
}

/// Sets `path` (at least one segment) to `value`, creating sections on the way. Fails with the
/// segment that exists but is not a section.
fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Ok(()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => match table
            .entry(first.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(inner) => set_path(inner, rest, value),
            _ => Err(first.clone()),
        },
    }
}

/// `env_value`, except that a value which only reads as a number or boolean is kept a string
/// where the key holds a string: a numeric callback token or app secret is still a string.
/// The schema is asked by deserializing a config holding only this key, both ways.
fn env_value_for(path: &[String], raw: &str) -> toml::Value {
    let typed = env_value(raw);
    if typed.is_str() {
        return typed;
    }
    let accepts = |v: toml::Value| {
        let mut t = toml::Table::new();
        set_path(&mut t, path, v).is_ok() && Config::deserialize(toml::Value::Table(t)).is_ok()
    };
    let string = toml::Value::String(raw.to_owned());
    if !accepts(typed.clone()) && accepts(string.clone()) {
        string
    } else {
        typed
    }
}

/// Key and message of a deserialization error. The offending value is left out of the message:
/// the key may hold a secret, and the key name is what the operator needs.
fn type_problem(e: &toml::de::Error) -> (Option<String>, String) {
    let text = e.to_string();
    let key = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .map(str::to_owned);
    let message = e.message();
    // serde's "invalid type: integer `123`, expected a string": keep the kind, drop the value.
    let redacted = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|prefix| {
            let rest = message.strip_prefix(prefix)?;
            let kind = rest.split([' ', ',']).next()?;
            let (_, expected) = rest.rsplit_once(", expected ")?;
            Some(format!("{prefix}{kind}, expected {expected}"))
        });
    (key, redacted.unwrap_or_else(|| message.to_owned()))
}

/// Removes the dotted `key` from `doc`; `false` when it is not there.
fn remove_path(doc: &mut toml::Table, key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    let Some((last, sections)) = parts.split_last() else {
        return false;
    };
    let mut t = doc;
    for s in sections {
        match t.get_mut(*s) {
            Some(toml::Value::Table(inner)) => t = inner,
            _ => return false,
        }
    }
    t.remove(*last).is_some()
}

fn env_value(raw: &str) -> toml::Value {
    let t = raw.trim();
    let typed = t == "true"
        || t == "false"
        || t.starts_with('[')
        || t.starts_with('"')
        || t.parse::<i64>().is_ok()
        || (t.parse::<f64>().is_ok() && t.contains('.'));
    if typed {
        if let Ok(table) = format!("v = {t}").parse::<toml::Table>() {
            if let Some(v) = table.get("v") {
                return v.clone();
            }
        }
    }
    toml::Value::String(raw.to_owned())
}

/// Replaces every `<key>_file = "/path"` with `<key> = <file contents>` (one trailing newline
/// stripped), so secrets can come from mounted files instead of the config or the environment.
fn resolve_files(table: &mut toml::Table, prefix: &str, problems: &mut Vec<Problem>) {
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let Some(toml::Value::Table(inner)) = table.get_mut(&key) {
            resolve_files(inner, &full, problems);
            continue;
        }
        let Some(target) = key.strip_suffix("_file") else {
            continue;
        };
        let Some(toml::Value::String(path)) = table.remove(&key) else {
            problems.push(Problem::error(full, "must be a file path (a string)"));
            continue;
        };
        if table.contains_key(target) {
            // Which one wins would be a guess; an operator who set both meant one of them.
            let base = full.strip_suffix("_file").unwrap_or(&full).to_owned();
            problems.push(Problem::error(
                full.clone(),
                format!("both `{base}` and `{full}` are set: keep one"),
            ));
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(content) => {
                let content = content
                    .strip_suffix("\r\n")
                    .or_else(|| content.strip_suffix('\n'))
                    .unwrap_or(&content)
                    .to_owned();
                if content.trim().is_empty() {
                    // Not "is required": the key is set, the file it names is empty.
                    problems.push(Problem::error(full, format!("the file `{path}` is empty")));
                    continue;
                }
                table.insert(target.to_owned(), toml::Value::String(content));
            }
            // The path is not a secret; the content is, and is never printed.
            Err(e) => problems.push(Problem::error(full, format!("cannot read `{path}`: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn minimal_env() -> BTreeMap<String, String> {
        env(&[
            ("ACCESSBOT_DINGTALK__APP_KEY", "dingappkey"),
            ("ACCESSBOT_DINGTALK__APP_SECRET", "appsecret"),
            ("ACCESSBOT_DINGTALK__CALLBACK_TOKEN", "tok123"),
            (
                "ACCESSBOT_DINGTALK__CALLBACK_AES_KEY",
                "k2x9bum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus",
            ),
            ("ACCESSBOT_JUMPSERVER__URL", "http://127.0.0.1:1"),
            (
                "ACCESSBOT_JUMPSERVER__PRIVATE_TOKEN",
                "0123456789abcdef0123456789abcdef01234567",
            ),
            ("ACCESSBOT_APPROVAL__DEFAULT_APPROVERS", "[\"boss01\"]"),
        ])
    }

    #[test]
    fn env_overrides_and_types() {
        let mut e = minimal_env();
        e.insert("ACCESSBOT_SERVER__MAX_BODY_BYTES".into(), "4096".into());
        e.insert("ACCESSBOT_DINGTALK__APP_KEY".into(), "\"12345\"".into());
        let (c, warnings) = load(&Sources { file: None, env: e }).unwrap();
        assert_eq!(c.server.max_body_bytes, 4096);
        assert_eq!(c.dingtalk.app_key, "12345");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn secrets_from_files_and_every_problem_reported() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "from-file\n").unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nlisten = \"nope\"\n[dingtalk]\napp_secret_file = \"{}\"\ncallback_aes_key = \"short\"\nbogus = 1\n[jumpserver]\nbogus2 = 1\n",
                secret.display()
            ),
        )
        .unwrap();
        let problems = load(&Sources {
            file: Some(&cfg),
            env: BTreeMap::new(),
        })
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"server.listen"), "{keys:?}");
        assert!(keys.contains(&"dingtalk.app_key"), "{keys:?}");
        assert!(keys.contains(&"dingtalk.callback_aes_key"), "{keys:?}");
        assert!(keys.contains(&"dingtalk.bogus"), "{keys:?}");
        assert!(keys.contains(&"jumpserver.bogus2"), "{keys:?}");
        assert!(keys.contains(&"jumpserver.url"), "{keys:?}");
        assert!(!keys.contains(&"dingtalk.app_secret"), "{keys:?}");
        assert!(!problems.iter().any(|p| p.to_string().contains("from-file")));
    }

    #[test]
    fn example_config_is_valid_apart_from_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, EXAMPLE).unwrap();
        // As shipped, every placeholder is refused by key, and nothing else is wrong.
        let problems = load(&Sources {
            file: Some(&cfg),
            env: BTreeMap::new(),
        })
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "dingtalk.app_key",
                "dingtalk.app_secret",
                "dingtalk.callback_aes_key",
                "dingtalk.callback_token",
                "dingtalk.corp_id",
                "jumpserver.access_key_secret",
            ],
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| p.message.contains("placeholder")));
        // With real values in their place it loads without a warning.
        let env = env(&[
            ("ACCESSBOT_DINGTALK__APP_KEY", "dingrealappkey"),
            ("ACCESSBOT_DINGTALK__APP_SECRET", "s3cret"),
            ("ACCESSBOT_DINGTALK__CORP_ID", "dingrealcorp"),
            ("ACCESSBOT_DINGTALK__CALLBACK_TOKEN", "tok"),
            (
                "ACCESSBOT_DINGTALK__CALLBACK_AES_KEY",
                "k2x9bum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus",
            ),
            ("ACCESSBOT_JUMPSERVER__ACCESS_KEY_SECRET", "s3cret"),
        ]);
        let (c, warnings) = load(&Sources {
            file: Some(&cfg),
            env,
        })
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.server.listen, "127.0.0.1:8080");
    }

    #[test]
    fn problems_point_at_the_line_the_variable_and_the_likely_key() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            "[server]\nlisten = \"127.0.0.1:8080\"\nmax_body_bytes = = 3\n",
        )
        .unwrap();
        let problems = load(&Sources {
            file: Some(&cfg),
            env: minimal_env(),
        })
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].key.ends_with("c.toml:3:18"),
            "{}",
            problems[0].key
        );
        // A bad value from the environment is blamed on the variable, in plain words.
        let mut e = minimal_env();
        e.insert("ACCESSBOT_SERVER__MAX_BODY_BYTES".into(), "lots".into());
        e.insert("ACCESSBOT_DINGTALK__APP_SECRTE".into(), "x".into());
        let problems = load(&Sources { file: None, env: e }).unwrap_err();
        let bad = problems
            .iter()
            .find(|p| p.key == "ACCESSBOT_SERVER__MAX_BODY_BYTES")
            .expect("blamed on the variable");
        assert!(bad.message.contains("whole number"), "{}", bad.message);
        assert!(!bad.message.contains("usize"), "{}", bad.message);
        let typo = problems
            .iter()
            .find(|p| p.key == "ACCESSBOT_DINGTALK__APP_SECRTE")
            .expect("unknown key blamed on the variable");
        assert!(
            typo.message.contains("did you mean `dingtalk.app_secret`"),
            "{}",
            typo.message
        );
    }

    #[test]
    fn a_value_and_its_file_both_set_or_an_empty_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "\n").unwrap();
        let mut e = minimal_env();
        e.insert(
            "ACCESSBOT_DINGTALK__APP_SECRET_FILE".into(),
            secret.display().to_string(),
        );
        let problems = load(&Sources {
            file: None,
            env: e.clone(),
        })
        .unwrap_err();
        assert!(
            problems.iter().any(|p| p
                .message
                .contains("both `dingtalk.app_secret` and `dingtalk.app_secret_file` are set")),
            "{problems:?}"
        );
        e.remove("ACCESSBOT_DINGTALK__APP_SECRET");
        let problems = load(&Sources { file: None, env: e }).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("is empty"), "{problems:?}");
        assert_eq!(problems[0].key, "ACCESSBOT_DINGTALK__APP_SECRET_FILE");
    }

    #[test]
    fn a_rate_window_of_zero_is_refused_unless_the_limit_is_off() {
        let mut e = minimal_env();
        e.insert("ACCESSBOT_WORKFLOW__RATE_WINDOW_MINUTES".into(), "0".into());
        let problems = load(&Sources {
            file: None,
            env: e.clone(),
        })
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        // Set through the environment: the problem names the variable.
        assert_eq!(keys, ["ACCESSBOT_WORKFLOW__RATE_WINDOW_MINUTES"]);
        assert!(problems[0]
            .message
            .contains("`workflow.rate_window_minutes`"));
        e.insert(
            "ACCESSBOT_WORKFLOW__MAX_NEW_ORDERS_PER_USER".into(),
            "0".into(),
        );
        let (c, warnings) = load(&Sources { file: None, env: e }).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.workflow.max_new_orders_per_user, 0);
    }

    #[test]
    fn connection_limits_are_validated_with_their_keys() {
        let mut e = minimal_env();
        e.insert(
            "ACCESSBOT_SERVER__HEADER_READ_TIMEOUT_MS".into(),
            "0".into(),
        );
        e.insert("ACCESSBOT_SERVER__IDLE_TIMEOUT_MS".into(), "1500".into());
        e.insert("ACCESSBOT_SERVER__MAX_CONNECTIONS".into(), "0".into());
        let problems = load(&Sources { file: None, env: e }).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "ACCESSBOT_SERVER__HEADER_READ_TIMEOUT_MS",
            "ACCESSBOT_SERVER__IDLE_TIMEOUT_MS",
            "ACCESSBOT_SERVER__MAX_CONNECTIONS",
        ] {
            assert!(keys.contains(&key), "{key}: {keys:?}");
        }
        let (c, _) = load(&Sources {
            file: None,
            env: minimal_env(),
        })
        .unwrap();
        assert_eq!(
            (
                c.server.header_read_timeout_ms,
                c.server.idle_timeout_ms,
                c.server.max_connections
            ),
            (10_000, 60_000, 512)
        );
    }

    #[test]
    fn numeric_looking_secrets_from_env_stay_strings() {
        let mut e = minimal_env();
        e.insert("ACCESSBOT_DINGTALK__APP_SECRET".into(), "12345678".into());
        e.insert("ACCESSBOT_DINGTALK__CALLBACK_TOKEN".into(), "true".into());
        e.insert("ACCESSBOT_DINGTALK__AGENT_ID".into(), "4000000001".into());
        let (c, warnings) = load(&Sources { file: None, env: e }).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.dingtalk.app_secret.expose(), "12345678");
        assert_eq!(c.dingtalk.callback_token.expose(), "true");
        assert_eq!(c.dingtalk.agent_id, Some(4_000_000_001));
    }

    #[test]
    fn every_ill_typed_key_is_named_without_its_value() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            "[server]
max_body_bytes = \"lots\"
[dingtalk]
app_secret = 918273645
callback_token = 5.5
",
        )
        .unwrap();
        let problems = load(&Sources {
            file: Some(&cfg),
            env: minimal_env()
                .into_iter()
                .filter(|(k, _)| !k.ends_with("APP_SECRET") && !k.ends_with("CALLBACK_TOKEN"))
                .collect(),
        })
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "server.max_body_bytes",
            "dingtalk.app_secret",
            "dingtalk.callback_token",
        ] {
            assert_eq!(
                keys.iter().filter(|k| **k == key).count(),
                1,
                "{key}: {keys:?}"
            );
        }
        let all: String = problems.iter().map(|p| format!("{p}\n")).collect();
        for value in ["918273645", "5.5", "lots"] {
            assert!(!all.contains(value), "{all}");
        }
    }
}
