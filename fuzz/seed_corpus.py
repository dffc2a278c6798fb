#!/usr/bin/env python3
"""Seeds a corpus for each cargo-fuzz target from the captured real-broker frames in tests/data/.

usage: python3 fuzz/seed_corpus.py OUT_DIR    (writes OUT_DIR/<target>/<name>; keep OUT_DIR outside
the repository, e.g. /work/fuzz-corpus)

- frame_decoder: the first byte is the feeding chunk size - 1, the rest the stream: every frame
  fed whole, in 7-byte pieces, twice back to back byte by byte, as a binary (ROCKETMQ) header
  version, and all frames in one stream.
- json_header: the JSON header of every frame.
- message_codec: every body (stored messages, batch, heartbeat, route JSON) and every properties
  string of a send request.
"""
import json
import os
import struct
import sys

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
OUT = sys.argv[1]
TARGETS = ("frame_decoder", "json_header", "message_codec")
LANG = {"JAVA": 0, "CPP": 1, "DOTNET": 2, "PYTHON": 3, "OTHER": 7, "GO": 9, "RUST": 12}


def put(target, name, data):
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def binary_frame(h, body):
    lang = h.get("language", "JAVA")
    lang = LANG.get(lang, 7) if isinstance(lang, str) else lang
    out = struct.pack(">hBhii", h["code"], lang, h.get("version", 0), h.get("opaque", 0),
                      h.get("flag", 0))
    remark = (h.get("remark") or "").encode()
    out += struct.pack(">i", len(remark)) + remark
    fields = b""
    for k, v in (h.get("extFields") or {}).items():
        k, v = k.encode(), str(v).encode()
        fields += struct.pack(">h", len(k)) + k + struct.pack(">i", len(v)) + v
    out += struct.pack(">i", len(fields)) + fields
    return struct.pack(">iI", 4 + len(out) + len(body), (1 << 24) | len(out)) + out + body


for t in TARGETS:
    os.makedirs(os.path.join(OUT, t), exist_ok=True)
frames = {}
for n in sorted(os.listdir(DATA)):
    if n.endswith(".bin"):
        with open(os.path.join(DATA, n), "rb") as f:
            frames[n[:-4]] = f.read()
for name, f in frames.items():
    proto = struct.unpack(">I", f[4:8])[0]
    header_len = proto & 0xFFFFFF
    header, body = f[8:8 + header_len], f[8 + header_len:]
    put("frame_decoder", f"{name}_c256", b"\xff" + f)
    put("frame_decoder", f"{name}_c7", b"\x06" + f)
    put("frame_decoder", f"{name}_c1_twice", b"\x00" + f + f)
    if proto >> 24 == 0:
        put("json_header", name, header)
        h = json.loads(header)
        put("frame_decoder", f"{name}_bin_c256", b"\xff" + binary_frame(h, body))
        ext = h.get("extFields") or {}
        for k in ("i", "properties"):
            if k in ext:
                put("message_codec", f"{name}_props", ext[k].encode())
    if body:
        put("message_codec", f"{name}_body", body)
put("frame_decoder", "all_fixtures_c64", b"\x3f" + b"".join(frames.values()))
print({t: len(os.listdir(os.path.join(OUT, t))) for t in TARGETS})
