//! Known-answer tests for the DingTalk wire core: every case of the callback-crypto, robot-sign,
//! card-sign and Stream-frame vector files in tests/fixtures/ (copied from the shared reference).
use accessbot::dingtalk::crypto::{CallbackCrypto, CryptoError, PushQuery};
use accessbot::dingtalk::parse::{
    parse_card_callback, parse_event, parse_event_data, parse_push_body, parse_robot_message,
    DecryptedEvent,
};
use accessbot::dingtalk::sign::{
    card_sign, robot_sign, verify_card_request, verify_robot_request, SignError, CARD_WINDOW_MS,
    ROBOT_WINDOW_MS,
};
use accessbot::dingtalk::stream_frame::{
    callback_ack, default_ack, event_ack, system_echo_ack, AckFrame, EventAck, FrameKind,
    FrameType, StreamFrame,
};
use accessbot::domain::ids::DingUserId;
use accessbot::inbound::{
    ApprovalEventKind, ApprovalOutcome, ConversationKind, Inbound, OrgEventKind,
};
use accessbot::sandbox::dingtalk::driver::encrypted_event_request;
use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("vector field {key} missing in {v}"))
}

fn n(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("vector field {key} missing in {v}"))
}

fn crypto_vectors() -> Vec<Value> {
    fixture("dingtalk_callback_crypto.json")["vectors"]
        .as_array()
        .expect("vectors array")
        .clone()
}

fn crypto_for(v: &Value) -> CallbackCrypto {
    CallbackCrypto::new(s(v, "token"), s(v, "aes_key"), s(v, "owner_key"))
        .unwrap_or_else(|e| panic!("{}: key refused: {e}", s(v, "id")))
}

/// Decrypts with the vector's own key bytes through the raw AES crate, independently of the
/// code under test, to confirm the padded block the vector describes.
fn raw_decrypt(key_hex: &str, iv_hex: &str, encrypt: &str) -> Vec<u8> {
    let key = hex::decode(key_hex).expect("key hex");
    let iv = hex::decode(iv_hex).expect("iv hex");
    let mut ct = STANDARD.decode(encrypt).expect("ciphertext b64");
    cbc::Decryptor::<Aes256>::new_from_slices(&key, &iv)
        .expect("key/iv sizes")
        .decrypt_padded_mut::<NoPadding>(&mut ct)
        .expect("block multiple")
        .to_vec()
}

#[test]
fn every_crypto_vector_kind_is_covered() {
    let kinds: Vec<String> = crypto_vectors()
        .iter()
        .map(|v| s(v, "kind").to_owned())
        .collect();
    assert_eq!(kinds.len(), 11);
    for k in &kinds {
        assert!(
            ["decrypt", "encrypt_and_decrypt", "expect_error"].contains(&k.as_str()),
            "unknown vector kind {k}: extend the tests"
        );
    }
}

#[test]
fn official_decrypt_vectors() {
    let mut seen = 0;
    for v in crypto_vectors()
        .iter()
        .filter(|v| s(v, "kind") == "decrypt")
    {
        let id = s(v, "id");
        let c = crypto_for(v);
        let (ts, nonce, enc) = (s(v, "timestamp"), s(v, "nonce"), s(v, "encrypt"));
        assert_eq!(c.signature(ts, nonce, enc), s(v, "signature"), "{id}");
        assert_eq!(
            c.verify_signature(s(v, "signature"), ts, nonce, enc),
            Ok(()),
            "{id}"
        );
        let plain = c.decrypt(enc);
        assert_eq!(plain.as_deref(), Ok(s(v, "expected_plaintext")), "{id}");
        // The key really is non-canonical base64: a strict decoder refuses it.
        assert_eq!(v["aes_key_is_canonical_base64"], json!(false), "{id}");
        assert!(
            STANDARD.decode(format!("{}=", s(v, "aes_key"))).is_err(),
            "{id}"
        );
        // Our derived key matches the vector's bytes: decrypting raw with them agrees.
        let raw = raw_decrypt(s(v, "aes_key_bytes_hex"), s(v, "iv_hex"), enc);
        let owner = s(v, "owner_key").as_bytes();
        let pad = usize::from(*raw.last().expect("non-empty"));
        assert!(raw[..raw.len() - pad].ends_with(owner), "{id}");
        seen += 1;
    }
    assert_eq!(seen, 2);
}

#[test]
fn official_check_url_vector_parses_as_check_url() {
    let v = crypto_vectors()
        .into_iter()
        .find(|v| s(v, "id") == "official_crypto_repo_check_url")
        .expect("vector present");
    let plain = crypto_for(&v).decrypt(s(&v, "encrypt")).expect("decrypts");
    assert_eq!(parse_event(&plain), Ok(DecryptedEvent::CheckUrl));
}

#[test]
fn deterministic_encrypt_vectors_are_byte_exact() {
    let mut seen = 0;
    for v in crypto_vectors()
        .iter()
        .filter(|v| s(v, "kind") == "encrypt_and_decrypt")
    {
        let id = s(v, "id");
        let c = crypto_for(v);
        let (ts, nonce, enc, plain) = (
            s(v, "timestamp"),
            s(v, "nonce"),
            s(v, "encrypt"),
            s(v, "plaintext"),
        );
        let random: [u8; 16] = s(v, "random16_ascii")
            .as_bytes()
            .try_into()
            .expect("16 ascii bytes");
        assert_eq!(c.encrypt_with_random(plain, &random), enc, "{id}: encrypt");
        assert_eq!(c.decrypt(enc).as_deref(), Ok(plain), "{id}: decrypt");
        assert_eq!(c.signature(ts, nonce, enc), s(v, "signature"), "{id}: sig");
        assert_eq!(
            c.verify_signature(s(v, "signature"), ts, nonce, enc),
            Ok(()),
            "{id}"
        );

        // The sort order the vector documents is the one a plain byte sort gives.
        let mut sorted = vec![s(v, "token"), ts, nonce, enc];
        sorted.sort();
        let documented: Vec<&str> = v["signature_input_sorted"]
            .as_array()
            .expect("sorted inputs")
            .iter()
            .map(|x| x.as_str().expect("string"))
            .collect();
        assert_eq!(sorted, documented, "{id}: sort");

        // The padded plaintext block, length prefix and padding length are exactly as stated.
        let raw = raw_decrypt(s(v, "aes_key_bytes_hex"), s(v, "iv_hex"), enc);
        assert_eq!(
            hex::encode(&raw),
            s(v, "padded_plain_block_hex"),
            "{id}: block"
        );
        assert_eq!(raw.len() % 32, 0, "{id}: 32-byte blocks");
        assert_eq!(
            u64::from(*raw.last().expect("byte")),
            n(v, "padding_len"),
            "{id}"
        );
        let len = u32::from_be_bytes(raw[16..20].try_into().expect("4 bytes"));
        assert_eq!(
            u64::from(len),
            n(v, "plaintext_utf8_len"),
            "{id}: byte length"
        );
        assert_eq!(
            u64::try_from(plain.len()).ok(),
            Some(n(v, "plaintext_utf8_len")),
            "{id}"
        );

        if let Some(reply) = v.get("reply_json").filter(|r| !r.is_null()) {
            let ours = c.success_reply_with_random(ts, nonce, &random);
            assert_eq!(
                serde_json::to_value(&ours).expect("serialize"),
                *reply,
                "{id}"
            );
            assert_eq!(plain, "success", "{id}: reply vectors encrypt `success`");
        }
        seen += 1;
    }
    assert_eq!(seen, 7);
}

#[test]
fn negative_vectors_fail_with_the_right_variant() {
    let mut seen = 0;
    for v in crypto_vectors()
        .iter()
        .filter(|v| s(v, "kind") == "expect_error")
    {
        let id = s(v, "id");
        let c = crypto_for(v);
        let (ts, nonce, enc, sig) = (
            s(v, "timestamp"),
            s(v, "nonce"),
            s(v, "encrypt"),
            s(v, "signature"),
        );
        // The full inbound path: verify, then decrypt; the first failing step names the error.
        let outcome = c
            .verify_signature(sig, ts, nonce, enc)
            .and_then(|()| c.decrypt(enc));
        let expected = match s(v, "error") {
            "signature_mismatch" => CryptoError::SignatureMismatch,
            "owner_key_mismatch" => CryptoError::OwnerKeyMismatch,
            other => panic!("{id}: unknown expected error {other}"),
        };
        assert_eq!(outcome, Err(expected), "{id}");
        seen += 1;
    }
    assert_eq!(seen, 2);
}

#[test]
fn fresh_success_reply_verifies_and_decrypts() {
    let v = crypto_vectors()
        .into_iter()
        .find(|v| s(v, "id") == "reply_success_appkey_owner")
        .expect("vector present");
    let c = crypto_for(&v);
    let reply = c.success_reply("1700000009999", "fresh");
    assert_eq!(
        c.verify_signature(
            &reply.msg_signature,
            &reply.time_stamp,
            &reply.nonce,
            &reply.encrypt
        ),
        Ok(())
    );
    assert_eq!(c.decrypt(&reply.encrypt).as_deref(), Ok("success"));
    let j = serde_json::to_value(&reply).expect("serialize");
    assert_eq!(j["timeStamp"], json!("1700000009999"));
    assert!(j.get("time_stamp").is_none());
    // Two replies differ: the random prefix is fresh each time.
    assert_ne!(
        c.success_reply("1", "n").encrypt,
        c.success_reply("1", "n").encrypt
    );
}

#[test]
fn malformed_ciphertexts_get_distinct_errors() {
    let v = &crypto_vectors()[2];
    let c = crypto_for(v);
    let enc = s(v, "encrypt");
    assert_eq!(c.decrypt("not base64!"), Err(CryptoError::Base64));
    // 15 bytes: valid base64, not a block multiple.
    assert_eq!(
        c.decrypt(&STANDARD.encode([0u8; 15])),
        Err(CryptoError::BadCiphertextLength)
    );
    // Dropping the first block shifts the layout: the random prefix is gone, so the length
    // prefix now reads message bytes.
    let mut ct = STANDARD.decode(enc).expect("b64");
    ct.drain(..16);
    assert!(matches!(
        c.decrypt(&STANDARD.encode(&ct)),
        Err(CryptoError::BadLength | CryptoError::OwnerKeyMismatch | CryptoError::BadPadding)
    ));
    assert_eq!(
        CallbackCrypto::new("t", "tooShort", "o").err(),
        Some(CryptoError::BadAesKey)
    );
    assert_eq!(
        CallbackCrypto::new("t", &"A".repeat(64), "o").err(),
        Some(CryptoError::BadAesKey)
    );
}

#[test]
fn decrypted_vector_events_parse_to_typed_inbound() {
    let vs = crypto_vectors();
    let plain = |id: &str| -> String {
        let v = vs.iter().find(|v| s(v, "id") == id).expect("vector");
        crypto_for(v).decrypt(s(v, "encrypt")).expect("decrypt")
    };

    match parse_event(&plain("bpms_instance_change_finish_utf8")) {
        Ok(DecryptedEvent::Event(Inbound::Approval(a))) => {
            assert_eq!(a.process_instance_id, "9Qgx5QqjR7axMwAAAA");
            assert_eq!(a.process_code.as_deref(), Some("PROC-JMS-ACCESS-01"));
            assert_eq!(a.kind, ApprovalEventKind::Finish);
            assert_eq!(a.result, Some(ApprovalOutcome::Agree));
            assert_eq!(a.staff_id, Some(DingUserId::from("manager7675")));
            assert_eq!(a.finish_time_ms, Some(1_700_000_000_000));
            assert_eq!(
                a.event_id.as_deref(),
                Some("c7c7120f2c07419aaaaebdba0318c8")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        parse_event(&plain("check_url_event_appkey_owner")),
        Ok(DecryptedEvent::CheckUrl)
    );
    match parse_event(&plain("bpms_task_change_start")) {
        Ok(DecryptedEvent::Event(Inbound::Other { event_type, .. })) => {
            assert_eq!(event_type, "bpms_task_change")
        }
        other => panic!("unexpected {other:?}"),
    }
    match parse_event(&plain("user_leave_org_corpid_owner_legacy_registration")) {
        Ok(DecryptedEvent::Event(Inbound::Org(o))) => {
            assert_eq!(o.kind, OrgEventKind::UserLeft);
            assert_eq!(
                o.user_ids,
                vec![DingUserId::from("user1"), DingUserId::from("user2")]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    match parse_event(&plain("user_add_org_noncanonical_key")) {
        Ok(DecryptedEvent::Event(Inbound::Org(o))) => {
            assert_eq!(o.kind, OrgEventKind::UserAdded);
            assert_eq!(o.user_ids, vec![DingUserId::from("u3")]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn robot_sign_vectors() {
    let f = fixture("dingtalk_robot_http_sign.json");
    let vs = f["vectors"].as_array().expect("vectors");
    assert_eq!(vs.len(), 3);
    for v in vs {
        let (ts, secret, expected) = (s(v, "timestamp"), s(v, "app_secret"), s(v, "expected_sign"));
        assert_eq!(robot_sign(ts, secret), expected, "{ts}");
        let t: i64 = ts.parse().expect("numeric");
        assert_eq!(
            verify_robot_request(Some(ts), Some(expected), secret, t),
            Ok(())
        );
        assert_eq!(
            verify_robot_request(Some(ts), Some(expected), secret, t + ROBOT_WINDOW_MS),
            Ok(())
        );
        assert_eq!(
            verify_robot_request(Some(ts), Some(expected), secret, t + ROBOT_WINDOW_MS + 1),
            Err(SignError::Stale)
        );
        assert_eq!(
            verify_robot_request(Some(ts), Some(expected), secret, t - ROBOT_WINDOW_MS - 1),
            Err(SignError::Stale)
        );
        assert_eq!(
            verify_robot_request(Some(ts), Some(expected), "other secret", t),
            Err(SignError::Mismatch)
        );
        // A URL-encoded header value is a different string and must not match.
        let encoded = expected
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        if encoded != expected {
            assert_eq!(
                verify_robot_request(Some(ts), Some(&encoded), secret, t),
                Err(SignError::Mismatch)
            );
        }
        assert_eq!(
            verify_robot_request(Some(ts), None, secret, t),
            Err(SignError::Missing)
        );
        assert_eq!(
            verify_robot_request(Some("17x"), Some(expected), secret, t),
            Err(SignError::Malformed)
        );
    }
}

#[test]
fn card_sign_vectors() {
    let f = fixture("dingtalk_card_callback_sign.json");
    let vs = f["vectors"].as_array().expect("vectors");
    assert_eq!(vs.len(), 3);
    for v in vs {
        let (secret, ts, expected) = (
            s(v, "api_secret"),
            s(v, "timestamp_header"),
            s(v, "expected_x_ddpaas_signature"),
        );
        assert_eq!(card_sign(ts, secret), expected, "{ts}");
        let t: i64 = ts.parse().expect("numeric");
        assert_eq!(
            verify_card_request(Some(ts), Some(expected), secret, t, CARD_WINDOW_MS),
            Ok(())
        );
        assert_eq!(
            verify_card_request(
                Some(ts),
                Some(expected),
                secret,
                t + CARD_WINDOW_MS + 1,
                CARD_WINDOW_MS
            ),
            Err(SignError::Stale)
        );
        assert_eq!(
            verify_card_request(Some(ts), Some(expected), "nope", t, CARD_WINDOW_MS),
            Err(SignError::Mismatch)
        );
        assert_eq!(
            verify_card_request(None, Some(expected), secret, t, CARD_WINDOW_MS),
            Err(SignError::Missing)
        );
        // The robot scheme over the same inputs is a different signature.
        assert_ne!(robot_sign(ts, secret), expected);
    }
}

fn frame_vectors() -> (Value, Vec<Value>) {
    let f = fixture("dingtalk_stream_frames.json");
    let frames = f["frames"].as_array().expect("frames").clone();
    (f, frames)
}

fn sdk_ack(v: &Value) -> AckFrame {
    let acks = v["sdk_ack_frames"].as_array().expect("acks");
    assert_eq!(acks.len(), 1);
    serde_json::from_value(acks[0].clone()).expect("ack frame shape")
}

fn data_value(ack: &AckFrame) -> Value {
    serde_json::from_str(&ack.data).expect("ack data is a JSON string")
}

#[test]
fn stream_frames_parse_and_ack() {
    let (file, frames) = frame_vectors();
    assert_eq!(frames.len(), 5);
    let protocol_event_ack: AckFrame =
        serde_json::from_value(file["protocol_event_ack_example"].clone()).expect("ack example");
    for v in &frames {
        let id = s(v, "id");
        let text = v["inbound_frame"].to_string();
        let frame = StreamFrame::parse(&text).unwrap_or_else(|e| panic!("{id}: {e}"));
        let sdk = sdk_ack(v);
        let ours = default_ack(&frame);
        assert_eq!(frame.message_id(), sdk.headers.message_id, "{id}");
        assert_eq!(
            frame.spec_version.as_deref(),
            v["inbound_frame"]["specVersion"].as_str()
        );
        // Every ACK addresses the frame and uses the same envelope as the SDK.
        assert_eq!(ours.headers, sdk.headers, "{id}");
        assert_eq!(ours.code, sdk.code, "{id}");
        assert!(
            frame.data_json().is_ok(),
            "{id}: data is double-encoded JSON"
        );
        // Our serialized ACK is a JSON object with exactly the wire keys.
        let wire: Value = serde_json::from_str(&ours.to_json()).expect("ack JSON");
        let mut keys: Vec<&str> = wire
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(keys, ["code", "data", "headers", "message"], "{id}");

        match id {
            "system_ping" => {
                assert_eq!(frame.frame_type, FrameType::System);
                assert_eq!(frame.kind(), FrameKind::Ping);
                // Ping echo is byte-exact with the SDK.
                assert_eq!(ours, sdk);
                assert_eq!(system_echo_ack(&frame), sdk);
            }
            "system_disconnect" => {
                assert_eq!(
                    frame.kind(),
                    FrameKind::Disconnect {
                        reason: Some("connection is expired".into())
                    }
                );
                assert_eq!(ours, sdk);
                assert_eq!(v["sdk_route_result"], json!("disconnect"));
            }
            "event_bpms_instance_change" => {
                let FrameKind::Event {
                    event_type,
                    event_id,
                } = frame.kind()
                else {
                    panic!("{id}: not an event")
                };
                assert_eq!(event_type, "bpms_instance_change");
                assert_eq!(frame.topic(), "*");
                // Follow the protocol document, not the SDK's echo.
                assert_eq!(ours.code, protocol_event_ack.code);
                assert_eq!(ours.message, protocol_event_ack.message);
                assert_eq!(data_value(&ours), data_value(&protocol_event_ack));
                assert_eq!(ours.headers, protocol_event_ack.headers);
                assert_eq!(data_value(&ours)["status"], json!("SUCCESS"));
                let later = event_ack(frame.message_id(), EventAck::Later);
                assert_eq!(data_value(&later)["status"], json!("LATER"));
                // Unknown headers are kept.
                assert_eq!(
                    frame.header("eventUnifiedAppId"),
                    Some("bbb381b6-f01x-58daac")
                );
                match parse_event_data(&event_type, event_id.as_deref(), &frame.data) {
                    Ok(DecryptedEvent::Event(Inbound::Approval(a))) => {
                        assert_eq!(a.process_instance_id, "9Qgx5QqjR7axMwAAAA");
                        assert_eq!(a.kind, ApprovalEventKind::Finish);
                        assert_eq!(a.result, Some(ApprovalOutcome::Agree));
                        assert_eq!(
                            a.event_id.as_deref(),
                            Some("c7c7120f2c07419aaaaebdba0318c8")
                        );
                    }
                    other => panic!("{id}: {other:?}"),
                }
            }
            "callback_bot_message" => {
                assert_eq!(frame.kind(), FrameKind::BotMessage);
                // The SDK answers {"response":"OK"}; the protocol allows anything: we send null.
                assert_eq!(data_value(&ours), json!({"response": null}));
                assert!(data_value(&sdk).get("response").is_some());
                let m = parse_robot_message(frame.data.as_bytes()).expect("robot message");
                assert_eq!(m.text.as_deref(), Some("申请 jumpserver 10.0.0.5 7d"));
                assert_eq!(m.conversation, ConversationKind::OneToOne);
                assert_eq!(m.sender_staff_id, Some(DingUserId::from("manager7675")));
                assert_eq!(m.sender_nick, "张三");
                assert_eq!(m.create_at_ms, Some(1_690_362_101_894));
                assert_eq!(m.session_webhook_expires_ms, Some(1_690_367_502_152));
                assert_eq!(m.robot_code.as_deref(), Some("dingclientid"));
            }
            "callback_card_action" => {
                assert_eq!(frame.kind(), FrameKind::CardCallback);
                let response = data_value(&sdk)["response"].clone();
                let with_update = callback_ack(frame.message_id(), response);
                assert_eq!(data_value(&with_update), data_value(&sdk));
                assert_eq!(with_update.headers, sdk.headers);
                let c = parse_card_callback(frame.data.as_bytes()).expect("card callback");
                assert_eq!(c.out_track_id, "req-20231115-0001");
                assert_eq!(c.user_id, DingUserId::from("boss01"));
                assert_eq!(c.action_ids, vec!["approve".to_owned()]);
                assert_eq!(c.params.get("requestId"), Some(&json!("r1")));
                assert_eq!(c.corp_id.as_deref(), Some("ding9f50b15bxxxx16741"));
            }
            other => panic!("unknown frame vector {other}: extend the tests"),
        }
    }
}

#[test]
fn push_query_accepts_both_spellings_and_keeps_values_raw() {
    let q = PushQuery::parse("signature=abc&timestamp=1783610513&nonce=380320111");
    assert_eq!(
        q,
        Some(PushQuery {
            signature: "abc".into(),
            timestamp: "1783610513".into(),
            nonce: "380320111".into()
        })
    );
    let q = PushQuery::parse("signature=old&msg_signature=new&timestamp=1&timeStamp=2&nonce=n%2Bx")
        .expect("complete query");
    assert_eq!(
        (q.signature.as_str(), q.timestamp.as_str(), q.nonce.as_str()),
        ("new", "2", "n+x")
    );
    assert_eq!(PushQuery::parse("msg_signature=a&timestamp=1"), None);
    assert_eq!(PushQuery::parse("msg_signature=&timestamp=1&nonce=n"), None);
}

#[test]
fn driver_push_request_is_accepted_by_the_receiving_side() {
    let v = crypto_vectors()
        .into_iter()
        .find(|v| s(v, "id") == "bpms_instance_change_finish_utf8")
        .expect("vector present");
    let c = crypto_for(&v);
    let (query, body) = encrypted_event_request(&c, s(&v, "plaintext"), "1700000000789", "xyz");
    let q = PushQuery::parse(&query).expect("query");
    assert!(query.starts_with("msg_signature="), "{query}");
    let encrypt = parse_push_body(body.as_bytes()).expect("body");
    assert_eq!(
        c.verify_signature(&q.signature, &q.timestamp, &q.nonce, &encrypt),
        Ok(())
    );
    assert_eq!(c.decrypt(&encrypt).as_deref(), Ok(s(&v, "plaintext")));
    // The same request against a subscription with another token is refused.
    let other =
        CallbackCrypto::new("otherToken", s(&v, "aes_key"), s(&v, "owner_key")).expect("key");
    assert_eq!(
        other.verify_signature(&q.signature, &q.timestamp, &q.nonce, &encrypt),
        Err(CryptoError::SignatureMismatch)
    );
    assert!(matches!(
        parse_push_body(b"{\"encrypt\":1}"),
        Err(accessbot::dingtalk::parse::ParseError::InvalidField {
            field: "encrypt",
            ..
        })
    ));
    assert_eq!(
        parse_push_body(b"{}"),
        Err(accessbot::dingtalk::parse::ParseError::MissingField(
            "encrypt"
        ))
    );
}
