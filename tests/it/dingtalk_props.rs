//! Property tests for the DingTalk wire core: nothing panics on arbitrary input, and
//! encryption round-trips any UTF-8 message (Chinese included) with any owner key.
use accessbot::dingtalk::crypto::{CallbackCrypto, CryptoError};
use accessbot::dingtalk::parse::{
    parse_card_callback, parse_event, parse_event_data, parse_robot_message,
};
use accessbot::dingtalk::sign::{
    robot_sign, verify_card_request, verify_robot_request, SignError, CARD_WINDOW_MS,
};
use accessbot::dingtalk::stream_frame::{default_ack, StreamFrame};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::prelude::*;

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";

fn crypto(owner: &str) -> CallbackCrypto {
    CallbackCrypto::new("jmsbotToken1", KEY, owner).expect("valid key")
}

/// Mixed ASCII, JSON punctuation and CJK, so generated strings often look almost like payloads.
fn texty() -> impl Strategy<Value = String> {
    prop::string::string_regex(r#"[a-zA-Z0-9 {}\[\]":,.\\中文申请审批张三🙂\n]{0,200}"#)
        .expect("regex")
}

/// JSON objects with the keys the parsers look for, holding values of random types.
fn near_json() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "EventType",
        "eventId",
        "processInstanceId",
        "type",
        "result",
        "staffId",
        "finishTime",
        "userId",
        "UserId",
        "msgId",
        "conversationType",
        "conversationId",
        "msgtype",
        "text",
        "createAt",
        "outTrackId",
        "content",
        "cardPrivateData",
        "actionIds",
        "params",
        "headers",
        "data",
        "messageId",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)),
        prop::sample::select(vec![
            "bpms_instance_change",
            "user_leave_org",
            "user_modify_org",
            "check_url",
            "1",
            "2",
            "text",
            "finish",
            "agree",
            "{\"cardPrivateData\":{\"actionIds\":[1],\"params\":[]}}",
            "",
        ])
        .prop_map(serde_json::Value::from),
        texty().prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "content",
                    "cardPrivateData",
                    "actionIds",
                    "params",
                    "x"
                ])
                .prop_map(str::to_owned),
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(keys.prop_map(str::to_owned), value, 0..8)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()).to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decrypt_never_panics_on_strings(s in texty()) {
        let _ = crypto("o").decrypt(&s);
    }

    #[test]
    fn decrypt_never_panics_on_random_ciphertext(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        // Valid base64 of random bytes reaches the AES and layout checks.
        let r = crypto("owner").decrypt(&STANDARD.encode(&bytes));
        if bytes.is_empty() || bytes.len() % 16 != 0 {
            prop_assert_eq!(r, Err(CryptoError::BadCiphertextLength));
        }
    }

    #[test]
    fn aes_key_constructor_never_panics(key in texty()) {
        let _ = CallbackCrypto::new("t", &key, "o");
    }

    #[test]
    fn encrypt_decrypt_round_trips_utf8(msg in any::<String>(), owner in "[a-zA-Z0-9]{0,40}",
                                        random in any::<[u8; 16]>()) {
        let c = crypto(&owner);
        let enc = c.encrypt_with_random(&msg, &random);
        prop_assert_eq!(STANDARD.decode(&enc).map(|b| b.len() % 32), Ok(0));
        prop_assert_eq!(c.decrypt(&enc), Ok(msg.clone()));
        let enc2 = c.encrypt(&msg);
        prop_assert_eq!(c.decrypt(&enc2), Ok(msg));
    }

    #[test]
    fn chinese_round_trips_and_other_owner_is_refused(msg in "[申请审批主机权限张三李四 0-9a-z]{0,120}") {
        let c = crypto("dingjmsbotappkey01");
        let enc = c.encrypt(&msg);
        prop_assert_eq!(c.decrypt(&enc), Ok(msg));
        prop_assert_eq!(crypto("dingOTHER").decrypt(&enc), Err(CryptoError::OwnerKeyMismatch));
    }

    #[test]
    fn signature_verifies_only_itself(ts in "[0-9]{10,13}", nonce in "[a-zA-Z0-9]{1,16}", enc in texty(),
                                      flip in 0usize..40) {
        let c = crypto("o");
        let sig = c.signature(&ts, &nonce, &enc);
        prop_assert_eq!(c.verify_signature(&sig, &ts, &nonce, &enc), Ok(()));
        let mut bad: Vec<char> = sig.chars().collect();
        if let Some(ch) = bad.get_mut(flip) {
            *ch = if *ch == '0' { '1' } else { '0' };
        }
        let bad: String = bad.into_iter().collect();
        prop_assert_eq!(c.verify_signature(&bad, &ts, &nonce, &enc), Err(CryptoError::SignatureMismatch));
    }

    #[test]
    fn parse_event_never_panics(s in prop_oneof![texty(), near_json()]) {
        let _ = parse_event(&s);
        let _ = parse_event_data("bpms_instance_change", Some("e"), &s);
        let _ = parse_event_data("user_leave_org", None, &s);
    }

    #[test]
    fn parse_robot_message_never_panics(b in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        near_json().prop_map(String::into_bytes),
    ]) {
        let _ = parse_robot_message(&b);
    }

    #[test]
    fn parse_card_callback_never_panics(b in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        near_json().prop_map(String::into_bytes),
    ]) {
        let _ = parse_card_callback(&b);
    }

    #[test]
    fn stream_frame_parsing_never_panics(s in prop_oneof![texty(), near_json()],
                                          ty in prop::sample::select(vec!["SYSTEM", "EVENT", "CALLBACK", "X"]),
                                          topic in prop::sample::select(vec!["ping", "disconnect", "*",
                                              "/v1.0/im/bot/messages/get", "/v1.0/card/instances/callback"])) {
        if let Ok(f) = StreamFrame::parse(&s) {
            let _ = default_ack(&f).to_json();
        }
        // A well-formed envelope around arbitrary data: parse, classify and ACK all succeed.
        let framed = serde_json::json!({"specVersion":"1.0","type":ty,
            "headers":{"topic":topic,"messageId":"m1"},"data":s}).to_string();
        let f = StreamFrame::parse(&framed);
        prop_assert!(f.is_ok());
        if let Ok(f) = f {
            let _ = f.kind();
            let _ = f.data_json();
            prop_assert_eq!(default_ack(&f).headers.message_id, "m1");
        }
    }

    #[test]
    fn header_verifiers_never_panic(ts in prop::option::of(texty()), sig in prop::option::of(texty()),
                                    now in any::<i64>(), window in any::<i64>()) {
        let _ = verify_robot_request(ts.as_deref(), sig.as_deref(), "secret", now);
        let _ = verify_card_request(ts.as_deref(), sig.as_deref(), "secret", now, window);
    }

    #[test]
    fn robot_sign_accepts_fresh_own_signature(ts in 0i64..4_000_000_000_000, skew in -3_600_000i64..=3_600_000,
                                              secret in "[ -~]{1,64}") {
        let t = ts.to_string();
        let sig = robot_sign(&t, &secret);
        prop_assert_eq!(verify_robot_request(Some(&t), Some(&sig), &secret, ts + skew), Ok(()));
        prop_assert_eq!(
            verify_card_request(Some(&t), Some(&sig), &secret, ts, CARD_WINDOW_MS),
            Err(SignError::Mismatch)
        );
    }
}
