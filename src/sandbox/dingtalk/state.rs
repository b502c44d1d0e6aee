//! The simulator's state: its options, what it records for tests (calls, messages, cards,
//! approvals), the faults armed by `fail_next`, and the shared state behind the router.
use super::*;
use crate::clock::{ManualClock, SharedClock};
use crate::dingtalk::client::DingUser;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Lifetime of a session webhook opened with `session_webhook` (sim-chosen: 90 minutes).
pub const SESSION_WEBHOOK_TTL_MS: i64 = 90 * 60 * 1000;

#[derive(Clone, Debug)]
pub struct SimDingTalkOptions {
    pub app_key: String,
    pub app_secret: String,
    pub agent_id: i64,
    pub token_ttl_secs: i64,
    /// Calls per second per API before `QpsLimitForAppkeyAndApi`; `None` disables the limit.
    pub qps_limit: Option<u32>,
    /// Base time; `None` uses the system clock. Either way `advance()` moves the sim's time.
    pub clock: Option<ManualClock>,
    /// Seconds after start before an approval may be terminated (reference §6.3: 15 s).
    pub min_terminate_after_secs: i64,
    /// Organisation id (`ding…`), sent in events and card callbacks.
    pub corp_id: String,
    /// Event subscription `token` the sim signs pushes with (the console's value).
    pub callback_token: String,
    /// Event subscription `aes_key` (43 characters) the sim encrypts pushes with.
    pub callback_aes_key: String,
    /// Owner key inside every ciphertext; empty means `app_key` (console subscriptions).
    pub callback_owner_key: String,
    /// `apiSecret` the sim signs card callbacks with when no registration names one.
    pub card_api_secret: String,
}

impl Default for SimDingTalkOptions {
    fn default() -> Self {
        Self {
            app_key: "dingsimappkey0001".into(),
            app_secret: "sim-app-secret-0001".into(),
            agent_id: 41605932,
            token_ttl_secs: 7200,
            qps_limit: Some(20),
            clock: None,
            min_terminate_after_secs: 15,
            corp_id: "dingsandboxcorp".into(),
            callback_token: "sim-callback-token".into(),
            callback_aes_key: "c2ltQWVzS2V5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI".into(),
            callback_owner_key: String::new(),
            card_api_secret: "sim-card-api-secret".into(),
        }
    }
}

/// What `fail_next` makes the matching calls answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// 403 `Forbidden.AccessDenied.QpsLimitForAppkeyAndApi` / errcode 90018.
    Throttle,
    /// 500 `systemError` / errcode -1.
    ServerError,
    /// 403 `Forbidden.AccessDenied.AccessTokenPermissionDenied` / errcode 60011.
    PermissionDenied,
    /// 400 `InvalidAuthentication` / errcode 88 sub_code 40014.
    InvalidToken,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// The JSON body; a body that is not JSON is kept as a string.
    pub body: Value,
    /// The token as presented (header for `/v1.0`, `access_token` query for oapi).
    pub token: Option<String>,
    pub at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SimChannel {
    RobotOneToOne,
    Group,
    WorkNotice,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimMessage {
    pub channel: SimChannel,
    /// `msgKey` for robot sends, `msgtype` for work notices.
    pub msg_key: String,
    /// The decoded `msgParam` (robot) or `msg` (work notice).
    pub param: Value,
    pub at_ms: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimCard {
    pub template_id: String,
    pub open_space_id: String,
    pub params: BTreeMap<String, String>,
    /// `privateData`: per-userid variables.
    pub private: BTreeMap<String, BTreeMap<String, String>>,
    pub callback_type: Option<String>,
    pub callback_route_key: Option<String>,
    pub update_count: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimApproval {
    pub instance_id: String,
    pub process_code: String,
    pub originator: String,
    pub dept_id: Option<i64>,
    pub approvers: Vec<String>,
    pub form: Vec<(String, String)>,
    /// `RUNNING`, `COMPLETED` or `TERMINATED`.
    pub status: String,
    /// `agree` / `refuse` once completed.
    pub result: Option<String>,
    pub create_ms: i64,
    pub finish_ms: Option<i64>,
    pub remark: Option<String>,
    /// `operationRecords` as the instance GET lists them, oldest first.
    pub records: Vec<SimOpRecord>,
}

/// One `operationRecords` entry (reference §6.2).
#[derive(Clone, Debug, Serialize)]
pub struct SimOpRecord {
    pub user_id: String,
    pub date_ms: i64,
    /// `EXECUTE_TASK_NORMAL`, ...
    pub kind: String,
    /// `AGREE`, `REFUSE` or `NONE`.
    pub result: String,
    pub remark: Option<String>,
}

pub(super) struct Fault {
    pub(super) prefix: String,
    pub(super) remaining: u32,
    pub(super) kind: FaultKind,
    /// The call takes effect first and only its answer is replaced (a response lost on the
    /// way back: DingTalk did the work, the caller cannot know).
    pub(super) after_effect: bool,
}

#[derive(Default)]
pub(super) struct Sim {
    pub(super) tokens: HashMap<String, i64>,
    pub(super) current_token: Option<String>,
    pub(super) users: BTreeMap<String, DingUser>,
    pub(super) groups: HashSet<String>,
    pub(super) sessions: HashMap<String, Vec<Value>>,
    pub(super) session_expiry: HashMap<String, i64>,
    pub(super) robot_msgs: BTreeMap<String, Vec<SimMessage>>,
    pub(super) group_msgs: BTreeMap<String, Vec<SimMessage>>,
    pub(super) cards: BTreeMap<String, SimCard>,
    pub(super) approvals: BTreeMap<String, SimApproval>,
    pub(super) calls: Vec<RecordedCall>,
    pub(super) faults: Vec<Fault>,
    pub(super) qps: HashMap<String, (i64, u32)>,
    pub(super) flow_controlled: HashSet<String>,
    /// route key → (callback URL, apiSecret)
    pub(super) card_callbacks: BTreeMap<String, (String, Option<String>)>,
    /// template name → processCode; when non-empty, only these codes can be started.
    pub(super) processes: BTreeMap<String, String>,
    /// Card template ids the org has; when non-empty, others are `param.templateNotExist`.
    pub(super) card_templates: BTreeSet<String>,
    /// processCode → the labels of its form components (`forms/schemas/processCodes`).
    pub(super) process_forms: BTreeMap<String, Vec<String>>,
    pub(super) seq: u64,
    /// session id → the user whose message opened it, so webhook replies land in their chat.
    pub(super) session_owner: HashMap<String, String>,
    /// Everything said in every chat, in order (see `actor`).
    pub(super) log: Vec<actor::ConvEntry>,
    /// The instance `approval_start` just created, for the start event.
    pub(super) last_started: Option<String>,
    /// Pushes the sim made on its own (approval start / finish / terminate) and their outcome.
    pub(super) pushes: Vec<actor::PushRecord>,
}

pub(super) struct Shared {
    pub(super) opts: SimDingTalkOptions,
    pub(super) base_clock: SharedClock,
    pub(super) offset_ms: AtomicI64,
    pub(super) sim: Mutex<Sim>,
    pub(super) bot_base_url: Mutex<Option<String>>,
    /// Client for what the sim sends to the bot (events, robot messages, card callbacks).
    pub(super) http: reqwest::Client,
    /// Timestamps of signed pushes: distinct even when the test clock stands still.
    pub(super) stamps: crate::sandbox::dingtalk::driver::Stamps,
}

impl Shared {
    pub(super) fn now_ms(&self) -> i64 {
        self.base_clock.now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
    pub(super) fn lock(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(|e| e.into_inner())
    }
}
