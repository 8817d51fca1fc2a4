#!/usr/bin/env python3
"""Writes vectors/franking.json and vectors/franking_frames.json: message-franking test vectors computed with Python's own
hmac and hashlib (an implementation independent of sealcore's), checked by
harness/sealcore/tests/franking.rs in both directions. Layouts: docs/PROTOCOL.md §6 and §6.1
(the frames: a franked SEND, its DELIVER with the relay's stamp, a REPORT, REPORT_RESULTs).

    commitment = HMAC-SHA256(franking_key, message)
    stamp      = HMAC-SHA256(relay_secret, commitment || sender u64 LE || recipient u64 LE || time_ns u64 LE)
"""
import hashlib, hmac, json, struct
from pathlib import Path

CASES = [
    # (franking key, message, relay secret, sender, recipient, time_ns)
    (bytes(range(32)), b"", bytes([0xFF] * 32), 0, 0, 0),
    (bytes([0x42] * 32), b"hello, relay: you cannot read this", bytes(range(32, 64)), 1, 2, 1_700_000_000_123_456_789),
    (bytes(range(31, -1, -1)), bytes(range(256)) * 4, bytes([0x5A] * 32), 2**64 - 1, 12345, 42),
]

out = []
for fk, msg, secret, sender, recipient, t in CASES:
    c = hmac.new(fk, msg, hashlib.sha256).digest()
    ctx = struct.pack("<QQQ", sender, recipient, t)
    s = hmac.new(secret, c + ctx, hashlib.sha256).digest()
    out.append({"franking_key": fk.hex(), "message": msg.hex(), "commitment": c.hex(), "relay_secret": secret.hex(),
                "sender": sender, "recipient": recipient, "time_ns": t, "stamp": s.hex()})
Path(__file__).with_name("franking.json").write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(out)} vectors")

# Franking on the wire (docs/PROTOCOL.md §6.1): a franked SEND, the DELIVER the relay makes
# of it (time and stamp filled in the trailer), a REPORT of it, and the REPORT_RESULTs.
FLAG_ACK, FLAG_FRANKED = 0x01, 0x08
fk, message, secret = bytes([0x42] * 32), b"hello, relay: you cannot read this", bytes(range(32, 64))
sender, recipient, t = 42, 43, 1_700_000_000_123_456_789
body = bytes([2]) + struct.pack("<I", 1) + bytes.fromhex("0000000000000000") + bytes(range(0xa0, 0xb0))
c = hmac.new(fk, message, hashlib.sha256).digest()
s = hmac.new(secret, c + struct.pack("<QQQ", sender, recipient, t), hashlib.sha256).digest()
send = bytes([1, 0x02]) + struct.pack("<QBQ", 7, FLAG_ACK | FLAG_FRANKED, recipient) + body + c + bytes(40)
deliver = bytes([1, 0x82]) + struct.pack("<QBQ", sender, FLAG_FRANKED, 0) + body + c + struct.pack("<Q", t) + s
report = bytes([1, 0x0A]) + struct.pack("<QQQQ", 9, sender, recipient, t) + c + s + fk + message
results = [bytes([1, 0x88]) + struct.pack("<QB", 9, r) for r in (0, 1, 2)]
frames = {"franking_key": fk.hex(), "message": message.hex(), "relay_secret": secret.hex(), "sender": sender,
          "recipient": recipient, "time_ns": t, "e2e_body": body.hex(), "commitment": c.hex(), "stamp": s.hex(),
          "send": send.hex(), "deliver": deliver.hex(), "report": report.hex(),
          "report_results": [r.hex() for r in results]}
Path(__file__).with_name("franking_frames.json").write_text(json.dumps(frames, indent=1) + "\n")
print("wrote franking_frames.json")
