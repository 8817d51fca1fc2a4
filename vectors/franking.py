#!/usr/bin/env python3
"""Writes vectors/franking.json: message-franking test vectors computed with Python's own
hmac and hashlib (an implementation independent of sealcore's), checked by
harness/sealcore/tests/franking.rs in both directions. Layouts: docs/PROTOCOL.md §6.

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
