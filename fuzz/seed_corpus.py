#!/usr/bin/env python3
"""Seeds a corpus for each cargo-fuzz target from the captured real-broker frames in tests/data/.

usage: python3 fuzz/seed_corpus.py OUT_DIR    (writes OUT_DIR/<target>/<name>; keep OUT_DIR outside
the repository, e.g. /work/fuzz-corpus)

- frame_decoder: the first byte is the feeding chunk size - 1, the rest the stream: every frame
  fed whole, in 7-byte pieces, twice back to back byte by byte, as a binary (ROCKETMQ) header
  version (extFields in order and reversed), and all frames in one stream.
- json_header: the JSON header of every frame.
- message_codec: every body (stored messages, batch, heartbeat, route JSON), every properties
  string of a send request, and stored messages with IPv6 hosts, a V2 (long) topic, two records.
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


def binary_frame(h, body, reverse=False):
    lang = h.get("language", "JAVA")
    lang = LANG.get(lang, 7) if isinstance(lang, str) else lang
    out = struct.pack(">hBhii", h["code"], lang, h.get("version", 0), h.get("opaque", 0),
                      h.get("flag", 0))
    remark = (h.get("remark") or "").encode()
    out += struct.pack(">i", len(remark)) + remark
    fields = b""
    items = list((h.get("extFields") or {}).items())
    for k, v in reversed(items) if reverse else items:
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
        # Keys out of order take the decoder's other path (sorting, duplicates).
        put("frame_decoder", f"{name}_bin_unsorted_c256",
            b"\xff" + binary_frame(h, body, reverse=True))
        ext = h.get("extFields") or {}
        for k in ("i", "properties"):
            if k in ext:
                put("message_codec", f"{name}_props", ext[k].encode())
    if body:
        put("message_codec", f"{name}_body", body)
put("frame_decoder", "all_fixtures_c64", b"\x3f" + b"".join(frames.values()))


def stored_fields(rec):
    """The fields of one V1/V2, IPv4/IPv6 stored-message record (protocol.md 9.5)."""
    magic, crc, qid, flag, qoff, phys, sys_flag, born_ts = struct.unpack(">IiiiqqiQ", rec[4:48])
    pos = 48
    born_len = 20 if sys_flag & 0x10 else 8
    born = rec[pos:pos + born_len]
    pos += born_len
    store_ts = rec[pos:pos + 8]
    pos += 8
    store_len = 20 if sys_flag & 0x20 else 8
    store = rec[pos:pos + store_len]
    pos += store_len
    tail = rec[pos:pos + 12]  # RECONSUMETIMES, PREPARED TRANSACTION OFFSET
    pos += 12
    body_len = struct.unpack(">i", rec[pos:pos + 4])[0]
    body = rec[pos + 4:pos + 4 + body_len]
    pos += 4 + body_len
    if magic == 0xDAA320A7:
        topic_len = rec[pos]
        pos += 1
    else:
        topic_len = struct.unpack(">h", rec[pos:pos + 2])[0]
        pos += 2
    topic = rec[pos:pos + topic_len]
    pos += topic_len
    props_len = struct.unpack(">h", rec[pos:pos + 2])[0]
    props = rec[pos + 2:pos + 2 + props_len]
    return dict(head=rec[8:36], sys_flag=sys_flag, born_ts=rec[40:48], born=born,
                store_ts=store_ts, store=store, tail=tail, body=body, topic=topic, props=props)


def stored_record(f, v6=False, topic=None):
    """A stored-message record from `f`, with IPv6 hosts and/or another topic (V2 if long)."""
    topic = f["topic"] if topic is None else topic
    sys_flag = f["sys_flag"] | 0x30 if v6 else f["sys_flag"]

    def host(h):
        return (b"\0" * 10 + b"\xff\xff" + h[:4] + h[4:]) if v6 and len(h) == 8 else h
    v2 = len(topic) > 127
    out = f["head"] + struct.pack(">i", sys_flag) + f["born_ts"] + host(f["born"])
    out += f["store_ts"] + host(f["store"]) + f["tail"]
    out += struct.pack(">i", len(f["body"])) + f["body"]
    out += (struct.pack(">h", len(topic)) if v2 else bytes([len(topic)])) + topic
    out += struct.pack(">h", len(f["props"])) + f["props"]
    magic = 0xDAA320AB if v2 else 0xDAA320A7
    return struct.pack(">iI", 8 + len(out), magic) + out


# Stored-message layouts the captured frames do not show: a fuzzer rarely reaches them, since
# TOTALSIZE and every length must stay consistent.
view = frames["view_message_response"]
header_len = struct.unpack(">I", view[4:8])[0] & 0xFFFFFF
fields = stored_fields(view[8 + header_len:])
v4 = stored_record(fields)
put("message_codec", "stored_ipv6_hosts", stored_record(fields, v6=True))
put("message_codec", "stored_v2_long_topic", stored_record(fields, topic=b"T" * 200))
put("message_codec", "stored_two_records", v4 + stored_record(fields, v6=True))
print({t: len(os.listdir(os.path.join(OUT, t))) for t in TARGETS})
