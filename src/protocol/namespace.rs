//! Namespaces: a topic or group `name` of a client with namespace `ns` is `ns%name` on the
//! brokers, as the Java client's `NamespaceUtil` has it.
//!
//! - [`wrap`] never wraps twice (a name already starting with `ns%`, after a `%RETRY%` or
//!   `%DLQ%` prefix, stays as it is) and leaves system resources alone: the system topics
//!   (`TBW102`, `SCHEDULE_TOPIC_XXXX`, `RMQ_SYS_TRANS_HALF_TOPIC`, ... and any name starting
//!   with `rmq_sys_`) and system groups (`CID_RMQ_SYS_` prefix). A retry or DLQ prefix stays
//!   in front: `%RETRY%ns%name`.
//! - [`strip`] gives back what the user named: `ns%name` becomes `name`; names of another
//!   namespace, or none, are left alone.

use std::borrow::Cow;

/// What separates a namespace from a name.
pub const SEPARATOR: char = '%';
/// The prefix of retry topics.
pub const RETRY_PREFIX: &str = "%RETRY%";
/// The prefix of dead-letter topics.
pub const DLQ_PREFIX: &str = "%DLQ%";
/// The prefix of system topics created by users of the broker (Java's `SYSTEM_TOPIC_PREFIX`).
pub const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";
/// The prefix of system consumer groups (Java's `CID_RMQ_SYS_PREFIX`).
pub const SYSTEM_GROUP_PREFIX: &str = "CID_RMQ_SYS_";

/// Java's `TopicValidator` system topics.
pub const SYSTEM_TOPICS: [&str; 10] = [
    "TBW102",
    "SCHEDULE_TOPIC_XXXX",
    "SCHEDULE_TOPIC_XXXX_V2",
    "BenchmarkTest",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRACE_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

/// Whether `name` is a system topic or group, which no namespace applies to.
pub fn is_system_resource(name: &str) -> bool {
    SYSTEM_TOPICS.contains(&name)
        || name.starts_with(SYSTEM_TOPIC_PREFIX)
        || name.starts_with(SYSTEM_GROUP_PREFIX)
}

/// `(prefix, rest)`: a `%RETRY%` or `%DLQ%` prefix split off, or `("", name)`.
fn split_prefix(name: &str) -> (&str, &str) {
    for prefix in [RETRY_PREFIX, DLQ_PREFIX] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return (prefix, rest);
        }
    }
    ("", name)
}

/// Whether `rest` starts with `namespace%`.
fn has_namespace(rest: &str, namespace: &str) -> bool {
    rest.strip_prefix(namespace)
        .is_some_and(|r| r.starts_with(SEPARATOR))
}

/// `name` as it is on the brokers for a client with `namespace`: `namespace%name`, unless the
/// namespace is empty, the name is empty or a system resource, or it is wrapped already.
pub fn wrap<'a>(namespace: &str, name: &'a str) -> Cow<'a, str> {
    if namespace.is_empty() || name.is_empty() || is_system_resource(name) {
        return Cow::Borrowed(name);
    }
    let (prefix, rest) = split_prefix(name);
    if has_namespace(rest, namespace) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(format!("{prefix}{namespace}{SEPARATOR}{rest}"))
}

/// `name` as the user of a client with `namespace` knows it: the namespace taken off, when
/// `name` carries that namespace (after a retry or DLQ prefix, which stays).
pub fn strip<'a>(namespace: &str, name: &'a str) -> Cow<'a, str> {
    if namespace.is_empty() || is_system_resource(name) {
        return Cow::Borrowed(name);
    }
    let (prefix, rest) = split_prefix(name);
    match rest
        .strip_prefix(namespace)
        .and_then(|r| r.strip_prefix(SEPARATOR))
    {
        Some(bare) if prefix.is_empty() => Cow::Borrowed(bare),
        Some(bare) => Cow::Owned(format!("{prefix}{bare}")),
        None => Cow::Borrowed(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_like_java() {
        let cases = [
            ("ns", "Orders", "ns%Orders"),
            ("ns", "ns%Orders", "ns%Orders"),
            ("ns", "nsX%Orders", "ns%nsX%Orders"),
            ("ns", "other%Orders", "ns%other%Orders"),
            ("ns", "%RETRY%GID", "%RETRY%ns%GID"),
            ("ns", "%RETRY%ns%GID", "%RETRY%ns%GID"),
            ("ns", "%DLQ%GID", "%DLQ%ns%GID"),
            ("ns", "TBW102", "TBW102"),
            ("ns", "RMQ_SYS_TRACE_TOPIC", "RMQ_SYS_TRACE_TOPIC"),
            ("ns", "rmq_sys_mine", "rmq_sys_mine"),
            ("ns", "CID_RMQ_SYS_x", "CID_RMQ_SYS_x"),
            ("", "Orders", "Orders"),
            ("ns", "", ""),
        ];
        for (ns, name, wrapped) in cases {
            assert_eq!(wrap(ns, name), wrapped, "wrap({ns:?}, {name:?})");
        }
    }

    #[test]
    fn strip_like_java() {
        let cases = [
            ("ns", "ns%Orders", "Orders"),
            ("ns", "Orders", "Orders"),
            ("ns", "other%Orders", "other%Orders"),
            ("ns", "nsX%Orders", "nsX%Orders"),
            ("ns", "%RETRY%ns%GID", "%RETRY%GID"),
            ("ns", "%DLQ%ns%GID", "%DLQ%GID"),
            ("ns", "TBW102", "TBW102"),
            ("", "ns%Orders", "ns%Orders"),
        ];
        for (ns, name, bare) in cases {
            assert_eq!(strip(ns, name), bare, "strip({ns:?}, {name:?})");
        }
        for name in ["Orders", "%RETRY%G", "rmq_sys_x", "a%b"] {
            assert_eq!(strip("ns", &wrap("ns", name)), name);
        }
    }
}
