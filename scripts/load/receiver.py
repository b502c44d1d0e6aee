"""The seed-style DingTalk event receiver, for comparison with the bot (scripts/load.sh).

Flask + pycryptodome, run under gunicorn with 2 workers. For each POST to /dingtalk/events it
does what the seed did: check the SHA-1 signature over (token, timestamp, nonce, encrypt),
decrypt the AES-256-CBC payload, check the owner key, parse the JSON, and answer the encrypted,
signed `success` (reference §2.4). No dedupe, no storage: the bot does more than this per event.

Keys come from the environment: DT_TOKEN, DT_AES_KEY (43 chars), DT_OWNER_KEY (AppKey).
"""
import base64
import hashlib
import hmac
import json
import os
import secrets
import string
import time

from Crypto.Cipher import AES
from flask import Flask, jsonify, request

TOKEN = os.environ["DT_TOKEN"]
KEY = base64.b64decode(os.environ["DT_AES_KEY"] + "=")
IV = KEY[:16]
OWNER = os.environ["DT_OWNER_KEY"].encode()
ALNUM = string.ascii_letters + string.digits

app = Flask(__name__)


def signature(*parts):
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def encrypt(text):
    msg = text.encode()
    raw = "".join(secrets.choice(ALNUM) for _ in range(16)).encode()
    raw += len(msg).to_bytes(4, "big") + msg + OWNER
    pad = 32 - len(raw) % 32
    raw += bytes([pad]) * pad
    return base64.b64encode(AES.new(KEY, AES.MODE_CBC, IV).encrypt(raw)).decode()


def decrypt(b64):
    plain = AES.new(KEY, AES.MODE_CBC, IV).decrypt(base64.b64decode(b64))
    body = plain[: -plain[-1]]
    n = int.from_bytes(body[16:20], "big")
    if not hmac.compare_digest(body[20 + n :], OWNER):
        raise ValueError("owner key mismatch")
    return body[20 : 20 + n].decode()


@app.post("/dingtalk/events")
def events():
    sig = request.args.get("msg_signature") or request.args.get("signature", "")
    ts = request.args.get("timestamp") or request.args.get("timeStamp", "")
    nonce = request.args.get("nonce", "")
    enc = (request.get_json(silent=True) or {}).get("encrypt", "")
    if not hmac.compare_digest(signature(TOKEN, ts, nonce, enc), sig):
        return jsonify(error="bad signature"), 401
    try:
        event = json.loads(decrypt(enc))
    except Exception:
        return jsonify(error="cannot decrypt"), 400
    _ = event.get("EventType")
    now = str(int(time.time() * 1000))
    reply_nonce = "".join(secrets.choice(ALNUM) for _ in range(16))
    out = encrypt("success")
    return jsonify(
        msg_signature=signature(TOKEN, now, reply_nonce, out),
        timeStamp=now,
        nonce=reply_nonce,
        encrypt=out,
    )
