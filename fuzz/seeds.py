#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target into fuzz/corpus/<target>/seed-*, from the
known-answer vectors in tests/fixtures/ (callback crypto, Stream frames with their robot and card
payloads) and from the chat examples the tests use. Re-run after a fixture changes; the output is
deterministic, so an unchanged fixture gives an unchanged corpus.

    python3 fuzz/seeds.py
"""
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
OUT = ROOT / "fuzz" / "corpus"

# The subscription fuzz/src/lib.rs decrypts with (vector bpms_instance_change_finish_utf8).
OWNER_KEY = "dingjmsbotappkey01"

COMMANDS = [
    "/help", "帮助", "／ｈｅｌｐ", "申请账号", "/apply account",
    "/apply host 10.1.2.3 ops 3d reason: hotfix",
    "申请主机 10.1.2.3 运维 3天 原因：修复线上问题",
    "申请主机 10.9.96.7 运维 3天 原因：排查",
    "申请主机 ::ffff:10.9.96.7 运维 1天 原因：排查",
    "申请主机 １０．９．９６．７ 运维 1天 原因：排查",
    "申请主机 pay-db-01、Web-01.Prod，10.1.2.4 只读 4小时",
    "申请主机 支付系统 只读 7天 原因：对账",
    "/apply host payments readonly 1w",
    "我的权限", "/my", "状态 R261122-007", "/status R261122-007",
    "取消 R261122-007", "取消", "同意 R261122-007", "/approve R261122-007",
    "拒绝 R261122-007 请使用测试环境", "/reject R261122-007 use staging",
    "同步", "谁有权限 10.1.2.3", "/who-has zhang.san", "撤销 R261122-007",
    "续期 R261122-007 1天", "/renew R261122-007 2h", "  @accessbot /help",
    "申请主机\n10.9.96.7\n运维\n1天\n排查线上问题",
    "申请\n10.1.2.3, 10.1.2.4\n只读\n30分钟\n原因：看日志",
    "/apply host\nfe80::1%eth0\n10.0.0.0/24\n0x0a.9.96.7\n010.9.96.7\nops 3d\n1d\nwhy",
    "申请主机 10.1.2.300 运维", "hepl", "申清主机 10.1.2.3",
]

TARGETS = [
    "10.9.96.7", "10.9.96.7.", "010.9.96.7", "::ffff:10.9.96.7", "::FFFF:a09:6007",
    "[::ffff:10.9.96.7]", "::10.9.96.7", "::ffff:0:10.9.96.7", "64:ff9b::10.9.96.7",
    "１０．９．９６．７", "１０。９。９６。７", "：：ｆｆｆｆ：１０．９．９６．７",
    "fe80::1%eth0", "[fe80::1%25eth0]", "fd00:9::1", "::1", "::", "2002:a09:6007::1",
    "0x0a.9.96.7", "0x0a090607", "167337991", "10.9.24583", "10.0.0.0/24", "10.0.0.1-20",
    "Pay-DB-01", "pay-db-01.", "ＰＡＹ－ＤＢ－０１", "web-01.prod", "支付系统", "payments",
    "hr", "10.20.1.1", "::ffff:10.20.1.1",
    "10.1.2.3, 10.1.2.4，web1、WEB1 10.1.2.5;pay-db-01；支付系统",
    "10.9.0.0/16", "::ffff:10.9.0.0/112", "::/0",
]


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


def layout(msg, owner):
    """The decrypted block: random16 | u32be len | msg | owner, PKCS#7-padded to 32."""
    m = msg.encode()
    body = b"0123456789abcdef" + struct.pack(">I", len(m)) + m + owner.encode()
    pad = 32 - len(body) % 32
    return body + bytes([pad]) * pad


def main():
    crypto = json.loads((FIX / "dingtalk_callback_crypto.json").read_text())
    for v in crypto["vectors"]:
        vid = v["id"]
        write("callback_decrypt", f"{vid}-ciphertext", b"\x00" + v["encrypt"].encode())
        query = f"msg_signature={v['signature']}&timestamp={v['timestamp']}&nonce={v['nonce']}"
        body = json.dumps({"encrypt": v["encrypt"]})
        write("callback_decrypt", f"{vid}-push", b"\x03" + f"{query}\n{body}".encode())
        plain = v.get("expected_plaintext")
        if plain:
            write("callback_decrypt", f"{vid}-plaintext", b"\x02" + plain.encode())
            write("callback_decrypt", f"{vid}-block", b"\x01" + layout(plain, OWNER_KEY))

    frames = json.loads((FIX / "dingtalk_stream_frames.json").read_text())
    robot = card = None
    for f in frames["frames"]:
        frame = f["inbound_frame"]
        write("stream_frame", f["id"], json.dumps(frame, ensure_ascii=False))
        topic = frame["headers"].get("topic")
        if topic == "/v1.0/im/bot/messages/get":
            robot = json.loads(frame["data"])
        if topic == "/v1.0/card/instances/callback":
            card = json.loads(frame["data"])
    if robot is None or card is None:
        raise SystemExit("the Stream fixture lost its robot or card frame")

    write("robot_message", "fixture", json.dumps(robot, ensure_ascii=False))
    for i, text in enumerate(COMMANDS):
        m = dict(robot, text={"content": text}, msgId=f"seed{i}")
        write("robot_message", f"text{i:02}", json.dumps(m, ensure_ascii=False))
        write("command", f"{i:02}", text)
    write("robot_message", "group", json.dumps(dict(robot, conversationType="2")))
    write("robot_message", "picture", json.dumps(dict(robot, msgtype="picture", text=None)))

    def card_with(name, params, action_ids):
        private = {"cardPrivateData": {"actionIds": action_ids, "params": params}}
        c = dict(card, content=json.dumps(private, ensure_ascii=False))
        write("card_callback", name, json.dumps(c, ensure_ascii=False))
        frame = {"specVersion": "1.0", "type": "CALLBACK",
                 "headers": {"messageId": f"seed-{name}", "topic": "/v1.0/card/instances/callback"},
                 "data": json.dumps(c, ensure_ascii=False)}
        write("stream_frame", f"card-{name}", json.dumps(frame, ensure_ascii=False))

    write("card_callback", "fixture", json.dumps(card, ensure_ascii=False))
    card_with("approve", {"action": "approve", "order_id": "R261122-007"}, ["approve"])
    card_with("reject", {"action": "reject", "order_id": "R261122-007", "reason": "太晚了"}, ["reject"])
    card_with("reject-empty", {"action": "reject", "order_id": "R261122-007", "reason": ""}, ["reject"])
    card_with("form", {"action": "submit", "targets": "::ffff:10.9.96.7，pay-db-01",
                       "role": "运维", "duration": "1天", "reason": "排查"}, ["submit"])
    card_with("form-cancel", {"action": "cancel"}, ["cancel"])

    for i, text in enumerate(TARGETS):
        write("target", f"{i:02}", text)


if __name__ == "__main__":
    main()
