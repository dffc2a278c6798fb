//! The JSON header reader: the flat reader first (the layout brokers write), then the fast
//! reader, and when both give up, the general reader through `serde_json::Value`, whose results
//! and errors are the reference.

use serde_json::Value;

use super::ext_fields::intern_key;
use super::{
    json_fast, json_flat, json_memo, CodecError, ExtFields, RemotingCommand, SerializeType,
};
use crate::protocol::codes::LanguageCode;

impl RemotingCommand {
    /// The JSON header reader (through this thread's layout memo), as the decoder reads a
    /// header (with an empty body).
    #[cfg(test)]
    pub(super) fn read_json_header(header: &[u8]) -> Result<Self, CodecError> {
        json_memo::decode_json(header, &[])
    }

    /// The general JSON header reader, through `serde_json::Value`: the reference semantics, and
    /// the path for everything [`json_fast`] does not take (and for every error).
    pub(super) fn read_json_header_value(header: &[u8]) -> Result<Self, CodecError> {
        let value: Value =
            serde_json::from_slice(header).map_err(|e| CodecError::Json(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(CodecError::Json("header is not a JSON object".into()));
        };
        let int = |key: &'static str, default: i64| -> Result<i64, CodecError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .ok_or_else(|| CodecError::invalid(key, &n.to_string())),
                Some(Value::String(s)) => s.parse().map_err(|_| CodecError::invalid(key, s)),
                Some(other) => Err(CodecError::invalid(key, &other.to_string())),
            }
        };
        let to_i32 = |key: &'static str, v: i64| -> Result<i32, CodecError> {
            i32::try_from(v).map_err(|_| CodecError::invalid(key, &v.to_string()))
        };
        let code = to_i32("code", int("code", -1)?)?;
        if !obj.contains_key("code") {
            return Err(CodecError::MissingField("code"));
        }
        let language = match obj.get("language") {
            None | Some(Value::Null) => LanguageCode::JAVA,
            Some(Value::String(s)) => LanguageCode::from_name(s).unwrap_or(LanguageCode::OTHER),
            // A code as its name would decode: one without a name is OTHER, like an unknown
            // name (a JSON header can only carry it back as "OTHER").
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .and_then(|n| LanguageCode::from_name(LanguageCode(n).name()))
                .ok_or_else(|| CodecError::invalid("language", &n.to_string()))?,
            Some(other) => return Err(CodecError::invalid("language", &other.to_string())),
        };
        let remark = match obj.get("remark") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let mut ext_fields = ExtFields::new();
        match obj.get("extFields") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                ext_fields = ExtFields::with_capacity(map.len());
                for (k, v) in map {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    ext_fields.insert(intern_key(k), v);
                }
            }
            Some(other) => return Err(CodecError::invalid("extFields", &other.to_string())),
        }
        Ok(RemotingCommand {
            code,
            language,
            version: to_i32("version", int("version", 0)?)?,
            opaque: to_i32("opaque", int("opaque", 0)?)?,
            flag: to_i32("flag", int("flag", 0)?)?,
            remark,
            ext_fields,
            body: Vec::new(),
            serialize_type: SerializeType::Json,
        })
    }
}

/// Fuzzing hook: the fast JSON header reader must agree with the `serde_json::Value` reader
/// whenever it gives an answer. Not gated on `cfg(fuzzing)`, so that `tests/fuzz_replay.rs`
/// replays saved inputs through it on stable.
#[doc(hidden)]
pub fn json_header_differential(header: &[u8]) {
    let flat = json_flat::parse_flat(header);
    // The layout memo answers what the flat reader answers (twice: the second time through
    // the memo this header left).
    assert_eq!(json_memo::parse_flat_memo(header), flat);
    assert_eq!(json_memo::parse_flat_memo(header), flat);
    if let Some(flat) = flat {
        assert_eq!(RemotingCommand::read_json_header_value(header), Ok(flat));
    }
    if let Some(fast) = json_fast::parse_header(header) {
        assert_eq!(RemotingCommand::read_json_header_value(header), Ok(fast));
    }
}
