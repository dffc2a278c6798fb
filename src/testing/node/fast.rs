//! The fast path of the common request, a plain `SEND_MESSAGE` / `SEND_MESSAGE_V2`, answered
//! straight from the frame's bytes: a scanner specialised for the send header finds the fields
//! the broker uses (borrowed from the frame, unescaped into a reused buffer only when they
//! hold escapes), the shared send path stores the message, and the response is written into
//! the connection's output without building a command. No `RemotingCommand`, no `ExtFields`,
//! no copy of the body unless the message is kept.
//!
//! It takes only what it is sure the general path would answer the same way, and says no
//! (`None`, having changed nothing) to anything else, which then goes through
//! [`crate::protocol::FrameDecoder`]-style decoding and `Dispatch::dispatch` as before:
//! a binary header, a response, a batch, a transactional or non-canonical properties string,
//! a header key it does not know, a repeated key or field, a null, a number that is not a plain
//! i32, a string with a raw control character or an escaped surrogate, invalid UTF-8, trailing
//! bytes; and every node with ACL on or a fault scripted. `tests` below compares both paths
//! on the same frames.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::send::{offset_id_into, scan_properties, SendFields, Sent, MAX_OFFSET_ID_LEN};
use super::{response, Node};
use crate::protocol::{RequestCode, ResponseCode};
use crate::testing::reply::encode_send_ok;
use crate::testing::server::Conn;

/// Most ext fields a fast send header may have (a client sends 14, with ACL 17).
const MAX_FIELDS: usize = 32;

/// Where a scanned string is: in the header as it came, or unescaped in the scratch buffer.
#[derive(Clone, Copy)]
enum Span {
    Header(usize, usize),
    Scratch(usize, usize),
}

/// A send request's header, scanned.
struct SendHeader {
    code: i32,
    opaque: i32,
    flag: i32,
    fields: [(Span, Span); MAX_FIELDS],
    n: usize,
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    scratch: &'a mut String,
}

impl Scanner<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A string with no escapes (keys and the header's own string values), the cursor on its
    /// opening quote.
    fn plain_string(&mut self) -> Option<(usize, usize)> {
        self.ws();
        if self.b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let len = self.b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        let end = start + len;
        if self.b[end] != b'"' {
            return None;
        }
        self.pos = end + 1;
        Some((start, end))
    }

    /// A string value, unescaped into the scratch buffer if it has escapes.
    fn string(&mut self) -> Option<Span> {
        self.ws();
        if self.b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let len = self.b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        let mut at = start + len;
        match self.b[at] {
            b'"' => {
                self.pos = at + 1;
                return Some(Span::Header(start, at));
            }
            b'\\' => {}
            _ => return None,
        }
        // Escapes: the plain run so far, then character by character.
        let from = self.scratch.len();
        // The header is valid UTF-8 and the run ends at an ASCII byte: a char boundary.
        self.scratch
            .push_str(std::str::from_utf8(&self.b[start..at]).ok()?);
        loop {
            match *self.b.get(at)? {
                b'"' => {
                    self.pos = at + 1;
                    return Some(Span::Scratch(from, self.scratch.len()));
                }
                b'\\' => {
                    let c = match *self.b.get(at + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.b.get(at + 2..at + 6)?;
                            let mut v = 0u32;
                            for &d in hex {
                                v = v * 16 + char::from(d).to_digit(16)?;
                            }
                            at += 4;
                            // A surrogate (half of a pair, or lone): the general path decides.
                            char::from_u32(v)?
                        }
                        _ => return None,
                    };
                    self.scratch.push(c);
                    at += 2;
                }
                c if c < 0x20 => return None,
                _ => {
                    // Up to the next quote, escape or control character, as it is.
                    let len = self.b[at..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
                    self.scratch
                        .push_str(std::str::from_utf8(&self.b[at..at + len]).ok()?);
                    at += len;
                }
            }
        }
    }

    /// A plain i32: `-?(0|[1-9][0-9]*)`, nothing after it but a delimiter.
    fn int(&mut self) -> Option<i32> {
        self.ws();
        let neg = self.b.get(self.pos) == Some(&b'-');
        if neg {
            self.pos += 1;
        }
        let start = self.pos;
        let mut v: i64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.b.get(self.pos) {
            v = v * 10 + i64::from(d - b'0');
            if v > 1 << 31 {
                return None;
            }
            self.pos += 1;
        }
        let digits = self.pos - start;
        if digits == 0 || (digits > 1 && self.b[start] == b'0') || (neg && v == 0) {
            return None;
        }
        if !matches!(
            self.b.get(self.pos),
            Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
        ) {
            return None;
        }
        i32::try_from(if neg { -v } else { v }).ok()
    }

    /// The header object.
    fn header(&mut self) -> Option<SendHeader> {
        let mut h = SendHeader {
            code: 0,
            opaque: 0,
            flag: 0,
            fields: [(Span::Header(0, 0), Span::Header(0, 0)); MAX_FIELDS],
            n: 0,
        };
        let mut seen = 0u8;
        let mut once = |bit: u8| {
            let fresh = seen & bit == 0;
            seen |= bit;
            fresh.then_some(())
        };
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return None;
        }
        loop {
            let (ks, ke) = self.plain_string()?;
            if !self.eat(b':') {
                return None;
            }
            match &self.b[ks..ke] {
                b"code" => {
                    once(1)?;
                    h.code = self.int()?;
                }
                b"opaque" => {
                    once(2)?;
                    h.opaque = self.int()?;
                }
                b"flag" => {
                    once(4)?;
                    h.flag = self.int()?;
                }
                b"version" => {
                    once(8)?;
                    self.int()?;
                }
                b"language" => {
                    once(16)?;
                    self.plain_string()?;
                }
                b"serializeTypeCurrentRPC" => {
                    once(32)?;
                    self.plain_string()?;
                }
                b"remark" => {
                    once(64)?;
                    self.plain_string()?;
                }
                b"extFields" => {
                    once(128)?;
                    self.ext_fields(&mut h)?;
                }
                _ => return None,
            }
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                break;
            }
            return None;
        }
        self.ws();
        // `code` is required.
        (self.pos == self.b.len() && seen & 1 != 0).then_some(h)
    }

    fn ext_fields(&mut self, h: &mut SendHeader) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let (ks, ke) = self.plain_string()?;
            if !self.eat(b':') {
                return None;
            }
            let value = self.string()?;
            if h.n == MAX_FIELDS {
                return None;
            }
            h.fields[h.n] = (Span::Header(ks, ke), value);
            h.n += 1;
            if self.eat(b',') {
                continue;
            }
            return self.eat(b'}').then_some(());
        }
    }
}

/// Which send field a key names (V1 and V2 spellings alike), as a bit; 0 for the others.
fn field_bit(key: &str) -> u16 {
    match key {
        "a" | "producerGroup" => 1,
        "b" | "topic" => 1 << 1,
        "c" | "defaultTopic" => 1 << 2,
        "d" | "defaultTopicQueueNums" => 1 << 3,
        "e" | "queueId" => 1 << 4,
        "f" | "sysFlag" => 1 << 5,
        "g" | "bornTimestamp" => 1 << 6,
        "h" | "flag" => 1 << 7,
        "i" | "properties" => 1 << 8,
        "j" | "reconsumeTimes" => 1 << 9,
        _ => 0,
    }
}

impl Node {
    /// Answers a plain send straight from its frame (without the length prefix), appending
    /// the response to `out`; `false` if the frame is not one it takes, and then nothing
    /// happened. `scratch` is a buffer the connection keeps for unescaped values.
    pub(super) fn send_fast(
        &self,
        conn: &Arc<Conn>,
        frame: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut String,
    ) -> bool {
        let Some(broker) = &self.broker else {
            return false;
        };
        if self.acl.is_some() || self.any_fault.load(Ordering::Acquire) {
            return false;
        }
        let Some(proto) = frame.get(..4) else {
            return false;
        };
        let proto = u32::from_be_bytes([proto[0], proto[1], proto[2], proto[3]]);
        let header_len = (proto & 0x00FF_FFFF) as usize;
        // JSON headers only.
        if proto >> 24 != 0 || header_len > frame.len() - 4 {
            return false;
        }
        let (header, body) = frame[4..].split_at(header_len);
        let Ok(text) = std::str::from_utf8(header) else {
            return false;
        };
        scratch.clear();
        let mut scanner = Scanner {
            b: header,
            pos: 0,
            scratch,
        };
        let Some(h) = scanner.header() else {
            return false;
        };
        if !matches!(
            h.code,
            RequestCode::SEND_MESSAGE | RequestCode::SEND_MESSAGE_V2
        ) || h.flag & crate::protocol::frame::FLAG_RESPONSE != 0
        {
            return false;
        }
        let scratch: &str = scratch;
        let resolve = |span: Span| match span {
            Span::Header(s, e) => &text[s..e],
            Span::Scratch(s, e) => &scratch[s..e],
        };
        let mut fields: [(&str, &str); MAX_FIELDS] = [("", ""); MAX_FIELDS];
        let mut seen = 0u16;
        let mut group = None;
        for (slot, &(k, v)) in fields.iter_mut().zip(&h.fields[..h.n]) {
            let (k, v) = (resolve(k), resolve(v));
            let bit = field_bit(k);
            if seen & bit != 0 {
                // A field named twice (or in both spellings): which one wins depends on the
                // decoded map's order; the general path decides.
                return false;
            }
            seen |= bit;
            if bit == 1 {
                group = Some(v);
            }
            *slot = (k, v);
        }
        let fields = &fields[..h.n];
        let f = match SendFields::read(fields.iter().copied()) {
            Ok(f) => {
                let scan = scan_properties(f.properties);
                if scan.transactional || !scan.canonical {
                    return false;
                }
                Ok(f)
            }
            Err(e) => Err(e),
        };
        // Taken: from here on, what `Dispatch::dispatch` does with this request.
        self.count(h.code);
        let oneway = h.flag & crate::protocol::frame::FLAG_ONEWAY != 0;
        let reply = match f {
            Err(e) => response(ResponseCode::SYSTEM_ERROR, h.opaque, &e).into(),
            Ok(f) => match broker.send(conn, h.opaque, &f, group, false, Cow::Borrowed(body)) {
                Sent::Stored(s) => {
                    if !oneway {
                        let mut id = [0u8; MAX_OFFSET_ID_LEN];
                        let n = offset_id_into(&mut id, s.store_host, s.commit_log_offset);
                        // Hex digits: ASCII.
                        let id = std::str::from_utf8(&id[..n]).unwrap_or_default();
                        encode_send_ok(
                            out,
                            h.opaque,
                            id,
                            s.queue_id,
                            s.queue_offset,
                            s.uniq,
                        );
                    }
                    return true;
                }
                Sent::Reply(r) => r,
            },
        };
        if !oneway && reply.encode(out).is_err() {
            log::error!("mock broker: cannot encode a response");
        }
        true
    }
}
