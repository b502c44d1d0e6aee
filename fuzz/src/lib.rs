//! Fuzz target bodies: each takes arbitrary bytes, drives one surface that reads untrusted input
//! and checks what must hold for every input: no panic, and the properties written in each body.
//! The libFuzzer binaries in `fuzz/fuzz_targets/` call these (`scripts/fuzz.sh` runs them for
//! minutes); `tests/it/fuzz_corpus.rs` compiles this same file into the main test binary and
//! replays every committed corpus and regression input in seconds, so `cargo test` keeps
//! proving what the fuzzers found.
use accessbot::chat::card::{read_approval, read_form};
use accessbot::chat::text::{self, Lang};
use accessbot::dingtalk::crypto::{CallbackCrypto, PushQuery};
use accessbot::dingtalk::parse::{self, DecryptedEvent};
use accessbot::dingtalk::stream_frame::{self, FrameKind, StreamFrame};
use accessbot::domain::command::{self, Command};
use accessbot::domain::dialog::{self, DialogState};
use accessbot::domain::policy::{Policy, PolicyConfig};
use accessbot::domain::target::{self, AddrBlock, Target};
use accessbot::inbound::Inbound;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;

/// The known-answer vectors' subscription (tests/fixtures/dingtalk_callback_crypto.json,
/// `bpms_instance_change_finish_utf8`): seeds encrypted with it decrypt for real.
const TOKEN: &str = "jmsbotToken1";
const AES_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
const OWNER_KEY: &str = "dingjmsbotappkey01";

/// A policy with a system that has its own approvers, limits, host names and an IPv6 block, so
/// the command and target bodies reach system routing, not only the defaults.
const POLICY: &str = r#"
[approval]
default_approvers = ["manager01"]
[policy]
admins = ["admin01"]
max_addresses = 20
[[systems]]
name = "支付系统"
aliases = ["payments", "pay"]
node = "/Default/Payments"
addresses = ["10.9.0.0/16", "fd00:9::/32"]
hostnames = ["pay-db-01"]
approvers = ["pay-owner01"]
max_duration = { ops = "1d", readonly = "7d" }
[[systems]]
name = "hr"
addresses = ["::ffff:10.20.0.0/112"]
approvers = ["hr-owner01"]
"#;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let cfg: PolicyConfig = toml::from_str(POLICY).unwrap_or_else(|e| panic!("{e}"));
        Policy::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn crypto() -> &'static CallbackCrypto {
    static C: OnceLock<CallbackCrypto> = OnceLock::new();
    C.get_or_init(|| {
        CallbackCrypto::new(TOKEN, AES_KEY, OWNER_KEY).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn text_of(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Every user-facing rendering of a parsed event must work (it is what a log or reply shows).
fn use_event(ev: &DecryptedEvent) {
    if let DecryptedEvent::Event(inbound) = ev {
        let _ = inbound.dedupe_key();
        let _ = serde_json::to_string(inbound);
    }
}

/// Event-push callback decryption. The first byte picks what the rest is:
/// 0. the `encrypt` field as sent (base64 of ciphertext), decrypted with the vectors' key;
/// 1. the raw decrypted block (random16, length, message, owner key, padding) — what a sender
///    holding the key controls — encrypted here and decrypted: reaches every layout check;
/// 2. a plaintext message: encrypt → push body → decrypt must give it back exactly;
/// 3. a whole push, query line then body: query parsing, body parsing, signature check.
///    Whatever decrypts is parsed as an event.
pub fn callback_decrypt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let c = crypto();
    match mode % 4 {
        0 => {
            if let Ok(plain) = c.decrypt(&text_of(rest)) {
                if let Ok(ev) = parse::parse_event(&plain) {
                    use_event(&ev);
                }
            }
        }
        1 => {
            let whole = rest.len() - rest.len() % 16;
            let Some(block) = rest.get(..whole).filter(|b| !b.is_empty()) else {
                return;
            };
            let b64 = encrypt_raw(block);
            if let Ok(plain) = c.decrypt(&b64) {
                // Whatever decrypt returns is the message field of the block, nothing else.
                let len = block
                    .get(16..20)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_be_bytes)
                    .and_then(|n| usize::try_from(n).ok());
                let msg = len.and_then(|n| block.get(20..20usize.saturating_add(n)));
                assert_eq!(
                    Some(plain.as_bytes()),
                    msg,
                    "decrypt returned bytes it did not find"
                );
                if let Ok(ev) = parse::parse_event(&plain) {
                    use_event(&ev);
                }
            }
        }
        2 => {
            let plain = text_of(rest);
            let enc = c.encrypt_with_random(&plain, b"0123456789abcdef");
            let body = serde_json::json!({ "encrypt": enc }).to_string();
            let got = parse::parse_push_body(body.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|e| c.decrypt(&e).map_err(|e| e.to_string()));
            assert_eq!(
                got.as_deref(),
                Ok(plain.as_str()),
                "encrypt/decrypt round trip"
            );
            if let Ok(ev) = parse::parse_event(&plain) {
                use_event(&ev);
            }
        }
        _ => {
            let s = text_of(rest);
            let (query, body) = s.split_once('\n').unwrap_or((s.as_str(), ""));
            let Some(q) = PushQuery::parse(query) else {
                return;
            };
            let Ok(enc) = parse::parse_push_body(body.as_bytes()) else {
                return;
            };
            if c.verify_signature(&q.signature, &q.timestamp, &q.nonce, &enc)
                .is_ok()
            {
                if let Ok(plain) = c.decrypt(&enc) {
                    if let Ok(ev) = parse::parse_event(&plain) {
                        use_event(&ev);
                    }
                }
            }
            let _ = c.success_reply_with_random(&q.timestamp, &q.nonce, b"0123456789abcdef");
        }
    }
}

/// AES-256-CBC without padding under the vectors' key (IV = first 16 key bytes), base64.
fn encrypt_raw(block: &[u8]) -> String {
    use cbc::cipher::block_padding::NoPadding;
    use cbc::cipher::{BlockEncryptMut, KeyIvInit};
    let key = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(AES_KEY)
        .unwrap_or_default();
    let (Ok(k), Some(iv)) = (<[u8; 32]>::try_from(key.as_slice()), key.get(..16)) else {
        panic!("vector key must decode to 32 bytes");
    };
    let Ok(iv) = <[u8; 16]>::try_from(iv) else {
        panic!("iv");
    };
    let ct = cbc::Encryptor::<aes::Aes256>::new(&k.into(), &iv.into())
        .encrypt_padded_vec_mut::<NoPadding>(block);
    base64::engine::general_purpose::STANDARD.encode(ct)
}

/// What the bot does with a parsed chat message that needs no IO: dedupe key, command, dialog.
fn use_chat_text(t: &str) {
    let p = policy();
    if let Err(e) = command::parse(t) {
        let _ = text::command_error(Lang::ZhCn, &e);
        let _ = text::command_error(Lang::En, &e);
    }
    let step = dialog::step(None, t, p, 0);
    let _ = text::dialog_reply(Lang::ZhCn, &step.reply, step.dropped_idle);
}

/// A robot message body (HTTP POST body, or Stream `data`), then the command it carries.
pub fn robot_message(data: &[u8]) {
    if let Ok(msg) = parse::parse_robot_message(data) {
        let _ = Inbound::Chat(msg.clone()).dedupe_key();
        if let Some(t) = &msg.text {
            use_chat_text(t);
        }
    }
}

/// Card params as the workflow reads them: strings as they are, anything else as JSON text.
fn string_params(m: &serde_json::Map<String, serde_json::Value>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

/// A card callback body, then the form and approval readers over its params.
pub fn card_callback(data: &[u8]) {
    if let Ok(action) = parse::parse_card_callback(data) {
        let _ = Inbound::CardAction(action.clone()).dedupe_key();
        let params = string_params(&action.params);
        match read_form(&params) {
            Ok(accessbot::chat::card::FormAction::Submit(draft)) => {
                let step = dialog::from_draft(draft, policy(), 0);
                let _ = text::dialog_reply(Lang::En, &step.reply, false);
            }
            Ok(_) => {}
            Err(e) => {
                let _ = text::card_input_error(Lang::ZhCn, &e);
            }
        }
        if let Err(e) = read_approval(&params) {
            let _ = text::card_input_error(Lang::En, &e);
        }
    }
}

/// A Stream frame as received on the socket: envelope, kind, the data parser it routes to, and
/// the ACK it is answered with (which must serialise and name the frame's message id).
pub fn stream_frame(data: &[u8]) {
    let Ok(f) = StreamFrame::parse(&text_of(data)) else {
        return;
    };
    let id = f.message_id().to_string();
    assert!(!id.is_empty(), "a parsed frame always has a message id");
    match f.kind() {
        FrameKind::Event {
            event_type,
            event_id,
        } => {
            if let Ok(ev) = parse::parse_event_data(&event_type, event_id.as_deref(), &f.data) {
                use_event(&ev);
            }
        }
        FrameKind::BotMessage => robot_message(f.data.as_bytes()),
        FrameKind::CardCallback => card_callback(f.data.as_bytes()),
        FrameKind::Ping | FrameKind::Disconnect { .. } => {
            let ack = stream_frame::system_echo_ack(&f);
            assert_eq!(ack.headers.message_id, id);
        }
        FrameKind::Unhandled => {}
    }
    let ack = stream_frame::default_ack(&f);
    assert_eq!(ack.headers.message_id, id);
    let json = ack.to_json();
    assert!(
        serde_json::from_str::<serde_json::Value>(&json).is_ok(),
        "ACK is not JSON"
    );
}

/// Target parsing and canonicalisation. For every token that classifies:
/// - the canonical form is a fixed point (classifying what an order records gives the same
///   target back), so the grant names what policy judged;
/// - an address is never an IPv4 address spelled as IPv6;
/// - other spellings of an IPv4 address (mapped, trailing dot) classify to the same target and
///   get the same approvers and ceiling.
///
/// The whole input is also read as a list, resolved against the policy and routed, and as a
/// configured address block.
pub fn target(data: &[u8]) {
    let s = text_of(data);
    let p = policy();
    for token in target::split_list(&s).take(64) {
        let Ok(t) = target::classify(token) else {
            continue;
        };
        let shown = t.to_string();
        assert_eq!(
            target::classify(&shown).as_ref(),
            Ok(&t),
            "canonical form {shown:?} of {token:?} is not a fixed point"
        );
        if let Target::Address(ip) = &t {
            assert_eq!(
                target::canonical_ip(*ip),
                *ip,
                "{token:?} kept a v4-in-v6 spelling"
            );
            if let IpAddr::V4(v4) = ip {
                let one = std::slice::from_ref(&t);
                let mut others = vec![format!("::ffff:{v4}"), format!("{v4}.")];
                // `::0.0.0.0` and `::0.0.0.1` are `::` and `::1`, IPv6's own addresses.
                if u32::from(*v4) > 1 {
                    others.push(format!("[::{v4}]"));
                }
                for other in others {
                    let o = target::classify(&other);
                    assert_eq!(o.as_ref(), Ok(&t), "{other:?} is not {t}");
                }
                let mapped = [Target::Address(IpAddr::V6(v4.to_ipv6_mapped()))];
                assert_eq!(p.route_approvers(&mapped), p.route_approvers(one));
                assert_eq!(
                    p.max_duration(accessbot::domain::command::Role::Ops, &mapped),
                    p.max_duration(accessbot::domain::command::Role::Ops, one)
                );
            }
        }
    }
    if let Ok(list) = target::parse_list(target::split_list(&s), target::PARSE_MAX_TARGETS) {
        if let Ok(resolved) = target::resolve(&list, p) {
            let _ = p.route_approvers(&resolved);
            let _ = p.check_targets(&resolved);
        }
    }
    if let Some(b) = AddrBlock::parse(&s) {
        if let Ok(Target::Address(ip)) = target::classify(s.trim()) {
            let _ = b.contains(&ip);
        }
    }
}

/// The chat command parser and the request dialog: each line of the input is one message from
/// the same user, the dialog state carried between them (and through JSON, as sled keeps it).
/// A completed request must pass the policy that let the dialog finish, and name canonical
/// targets only.
pub fn command(data: &[u8]) {
    let s = text_of(data);
    let p = policy();
    let mut state: Option<DialogState> = None;
    for (i, line) in s.split('\n').take(16).enumerate() {
        if let Ok(Command::ApplyHost(d)) = command::parse(line) {
            for t in &d.targets {
                assert_eq!(target::classify(&t.to_string()).as_ref(), Ok(t));
            }
        }
        let now = i64::try_from(i).unwrap_or(0) * 1000;
        let step = dialog::step(state.take(), line, p, now);
        let _ = text::dialog_reply(Lang::ZhCn, &step.reply, step.dropped_idle);
        if let Some(req) = &step.done {
            let requester = accessbot::domain::ids::DingUserId::new("alice01");
            assert_eq!(
                p.check_request(&requester, req),
                Ok(()),
                "the dialog completed a request the policy refuses"
            );
        }
        state = step.new_state.and_then(|st| {
            let json = serde_json::to_value(&st).ok()?;
            serde_json::from_value(json).ok()
        });
    }
}
