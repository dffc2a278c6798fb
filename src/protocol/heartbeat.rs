//! The HEART_BEAT body (protocol.md section 5).
//!
//! ```
//! use rocketmq_mio::protocol::heartbeat::HeartbeatData;
//! let hb = HeartbeatData::for_producer("10.0.0.7@4711#1", "orders");
//! assert_eq!(
//!     String::from_utf8(hb.to_json()).unwrap(),
//!     r#"{"clientID":"10.0.0.7@4711#1","consumerDataSet":[],"producerDataSet":[{"groupName":"orders"}]}"#
//! );
//! assert_eq!(HeartbeatData::from_json(&hb.to_json()).unwrap(), hb);
//! ```

use serde_json::Value;

use super::frame::{write_json_str, CodecError};

/// What a client tells a broker in HEART_BEAT (34): who it is and which groups it serves.
///
/// A producer-only client sends its producer groups and no consumer groups. Consumer entries are
/// written with their `groupName` only (this crate has no consumers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeartbeatData {
    /// The client id (`clientID`, capital `ID`).
    pub client_id: String,
    /// Producer groups (`producerDataSet[].groupName`).
    pub producer_groups: Vec<String>,
    /// Consumer groups (`consumerDataSet[].groupName`).
    pub consumer_groups: Vec<String>,
}

impl HeartbeatData {
    /// A heartbeat for one producer group.
    pub fn for_producer(client_id: impl Into<String>, group: impl Into<String>) -> Self {
        HeartbeatData {
            client_id: client_id.into(),
            producer_groups: vec![group.into()],
            consumer_groups: Vec::new(),
        }
    }

    /// The body: `{"clientID":…,"consumerDataSet":[…],"producerDataSet":[{"groupName":…}]}`,
    /// keys sorted as fastjson writes them.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + 32 * self.producer_groups.len());
        out.extend_from_slice(b"{\"clientID\":");
        write_json_str(&mut out, &self.client_id);
        out.extend_from_slice(b",\"consumerDataSet\":");
        write_groups(&mut out, &self.consumer_groups);
        out.extend_from_slice(b",\"producerDataSet\":");
        write_groups(&mut out, &self.producer_groups);
        out.push(b'}');
        out
    }

    /// Parses a body (the mock broker needs it). Unknown keys are ignored; missing data sets
    /// are empty.
    ///
    /// # Errors
    /// [`CodecError::Json`] if the body is not a JSON object, [`CodecError::MissingField`] for
    /// a missing `clientID`, [`CodecError::InvalidField`] for a data set that is not an array of
    /// objects with a string `groupName`.
    pub fn from_json(body: &[u8]) -> Result<Self, CodecError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| CodecError::Json(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(CodecError::Json(
                "heartbeat body is not a JSON object".into(),
            ));
        };
        let client_id = match obj.get("clientID") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => return Err(CodecError::MissingField("clientID")),
            Some(other) => return Err(CodecError::invalid("clientID", &other.to_string())),
        };
        Ok(HeartbeatData {
            client_id,
            producer_groups: read_groups(obj.get("producerDataSet"), "producerDataSet")?,
            consumer_groups: read_groups(obj.get("consumerDataSet"), "consumerDataSet")?,
        })
    }
}

fn write_groups(out: &mut Vec<u8>, groups: &[String]) {
    out.push(b'[');
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"groupName\":");
        write_json_str(out, g);
        out.push(b'}');
    }
    out.push(b']');
}

fn read_groups(value: Option<&Value>, key: &'static str) -> Result<Vec<String>, CodecError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item.get("groupName") {
                Some(Value::String(g)) => Ok(g.clone()),
                _ => Err(CodecError::invalid(key, &item.to_string())),
            })
            .collect(),
        Some(other) => Err(CodecError::invalid(key, &other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_shape_with_extra_keys() {
        let body = br#"{"clientID":"192.168.1.5@12345#81726354912345","consumerDataSet":[],"heartbeatFingerprint":0,
 "producerDataSet":[{"groupName":"my_producer_group"},{"groupName":"CLIENT_INNER_PRODUCER"}],
 "withoutSub":false}"#;
        let hb = HeartbeatData::from_json(body).unwrap();
        assert_eq!(hb.client_id, "192.168.1.5@12345#81726354912345");
        assert_eq!(
            hb.producer_groups,
            ["my_producer_group", "CLIENT_INNER_PRODUCER"]
        );
        assert!(hb.consumer_groups.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            HeartbeatData::from_json(br#"{"producerDataSet":[]}"#),
            Err(CodecError::MissingField("clientID"))
        );
        assert!(matches!(
            HeartbeatData::from_json(br#"{"clientID":"c","producerDataSet":[{"x":1}]}"#),
            Err(CodecError::InvalidField {
                field: "producerDataSet",
                ..
            })
        ));
        assert!(matches!(
            HeartbeatData::from_json(b"[1]"),
            Err(CodecError::Json(_))
        ));
    }

    #[test]
    fn escapes_round_trip() {
        let hb = HeartbeatData {
            client_id: "a\"b\\c\u{1}ü".into(),
            producer_groups: vec!["g1".into(), "g\n2".into()],
            consumer_groups: vec!["c".into()],
        };
        assert_eq!(HeartbeatData::from_json(&hb.to_json()).unwrap(), hb);
    }
}
