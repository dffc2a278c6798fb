//! Optional ACL verification of a mock broker: accounts with secret keys and topic
//! permissions, checked the way a RocketMQ broker with `authenticationEnabled` and
//! `authorizationEnabled` checks them, so a test can see its signing configuration accepted or
//! refused.
//!
//! # Rules
//!
//! - **Authentication**, every request (name server role included): the `AccessKey` ext field
//!   must name an account, and `Signature` must be the signature of the request with that
//!   account's secret key ([`crate::protocol::acl::signature`]: every ext field but
//!   `Signature` in key order, then the body; HMAC-SHA1 unless the account says otherwise).
//! - **Authorization**, sends (SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE) and
//!   END_TRANSACTION: an admin account may do anything; otherwise the account's permission on
//!   the topic (its [`AclAccount::topic_perm`] entry, else its
//!   [`AclAccount::default_topic_perm`], `DENY` unless set) must include `PUB`. Heartbeats,
//!   unregisters and route lookups need no topic permission.
//!
//! A refusal is answered with `NO_PERMISSION` (16) and the remark a RocketMQ-Rust broker gives
//! (`Authentication credentials are invalid`, `Permission was denied`), as it does (oneway
//! requests get no answer), and the request is not carried out: nothing is stored, no
//! transaction is ended. [`MockCounters::acl_refusals`](super::MockCounters::acl_refusals)
//! counts refusals per request code.

use std::fmt;

use crate::protocol::acl::{self, Secret, SignatureAlgorithm};
use crate::protocol::{RemotingCommand, RequestCode};

/// A permission on a topic, as in a Java `plain_acl.yml` (`DENY`, `PUB`, `SUB`, `PUB|SUB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AclPerm {
    /// Nothing (the default for a topic an account has no entry for).
    #[default]
    Deny,
    /// Publish.
    Pub,
    /// Subscribe.
    Sub,
    /// Publish and subscribe.
    PubSub,
}

impl AclPerm {
    /// Whether this permission lets an account publish.
    pub fn can_publish(self) -> bool {
        matches!(self, AclPerm::Pub | AclPerm::PubSub)
    }

    /// The permission for a `plain_acl.yml` value (`DENY`, `PUB`, `SUB`, `PUB|SUB`, `SUB|PUB`).
    pub fn from_name(name: &str) -> Option<AclPerm> {
        let mut publish = false;
        let mut subscribe = false;
        for part in name.split('|').map(str::trim) {
            match part.to_ascii_uppercase().as_str() {
                "PUB" => publish = true,
                "SUB" => subscribe = true,
                "DENY" => {}
                _ => return None,
            }
        }
        Some(match (publish, subscribe) {
            (true, true) => AclPerm::PubSub,
            (true, false) => AclPerm::Pub,
            (false, true) => AclPerm::Sub,
            (false, false) => AclPerm::Deny,
        })
    }
}

/// One account of a mock broker's ACL.
///
/// ```
/// use rocketmq_mio::testing::{AclAccount, AclPerm};
///
/// let orders_only = AclAccount::new("orders-app", "s3cret")
///     .topic_perm("orders", AclPerm::Pub)
///     .default_topic_perm(AclPerm::Deny);
/// let ops = AclAccount::new("ops", "0ps-s3cret").admin(true);
/// # let _ = (orders_only, ops);
/// ```
#[derive(Clone)]
pub struct AclAccount {
    pub(super) access_key: String,
    secret_key: Secret,
    algorithm: SignatureAlgorithm,
    admin: bool,
    default_topic_perm: AclPerm,
    topic_perms: Vec<(String, AclPerm)>,
}

impl AclAccount {
    /// An account that may do nothing on any topic until given permissions (signed requests
    /// that need no topic permission pass).
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        AclAccount {
            access_key: access_key.into(),
            secret_key: Secret::new(secret_key),
            algorithm: SignatureAlgorithm::default(),
            admin: false,
            default_topic_perm: AclPerm::Deny,
            topic_perms: Vec::new(),
        }
    }

    /// An admin account may do anything (`admin: true`).
    pub fn admin(mut self, on: bool) -> Self {
        self.admin = on;
        self
    }

    /// The permission on topics without their own entry (`defaultTopicPerm`; default `DENY`).
    pub fn default_topic_perm(mut self, perm: AclPerm) -> Self {
        self.default_topic_perm = perm;
        self
    }

    /// The permission on one topic (a `topicPerms` entry `topic=PERM`), as the topic is named
    /// on the wire (with its namespace, if any).
    pub fn topic_perm(mut self, topic: impl Into<String>, perm: AclPerm) -> Self {
        let topic = topic.into();
        self.topic_perms.retain(|(t, _)| *t != topic);
        self.topic_perms.push((topic, perm));
        self
    }

    /// The HMAC this account's requests must be signed with (default HMAC-SHA1).
    pub fn signature_algorithm(mut self, algorithm: SignatureAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    fn perm_on(&self, topic: &str) -> AclPerm {
        self.topic_perms
            .iter()
            .find(|(t, _)| t == topic)
            .map_or(self.default_topic_perm, |(_, p)| *p)
    }
}

impl fmt::Debug for AclAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclAccount")
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key)
            .field("algorithm", &self.algorithm)
            .field("admin", &self.admin)
            .field("default_topic_perm", &self.default_topic_perm)
            .field("topic_perms", &self.topic_perms)
            .finish()
    }
}

/// The remark of an authentication refusal (the RocketMQ-Rust broker's words).
pub(crate) const AUTHENTICATION_REFUSED: &str = "Authentication credentials are invalid";

/// The remark of an authorization refusal (the RocketMQ-Rust broker's words).
pub(crate) const AUTHORIZATION_REFUSED: &str = "Permission was denied";

/// The accounts a node checks requests against.
#[derive(Debug, Clone, Default)]
pub(crate) struct MockAcl {
    accounts: Vec<AclAccount>,
}

impl MockAcl {
    pub(crate) fn new(accounts: Vec<AclAccount>) -> Self {
        MockAcl { accounts }
    }

    /// `Err(remark)` if `request` may not be carried out.
    pub(crate) fn check(&self, request: &RemotingCommand) -> Result<(), String> {
        let fields = &request.ext_fields;
        let (Some(access_key), Some(signature)) =
            (fields.get(acl::ACCESS_KEY), fields.get(acl::SIGNATURE))
        else {
            return Err(AUTHENTICATION_REFUSED.into());
        };
        let Some(account) = self.accounts.iter().find(|a| a.access_key == access_key) else {
            return Err(AUTHENTICATION_REFUSED.into());
        };
        let expected = acl::signature(
            account.algorithm,
            account.secret_key.expose(),
            fields.iter(),
            &request.body,
        );
        if expected != signature {
            return Err(AUTHENTICATION_REFUSED.into());
        }
        if account.admin {
            return Ok(());
        }
        let topic = match request.code {
            RequestCode::SEND_MESSAGE_V2 | RequestCode::SEND_BATCH_MESSAGE => {
                fields.get("b").or_else(|| fields.get("topic"))
            }
            RequestCode::SEND_MESSAGE | RequestCode::END_TRANSACTION => fields.get("topic"),
            _ => return Ok(()),
        };
        match topic {
            Some(t) if account.perm_on(t).can_publish() => Ok(()),
            Some(_) => Err(AUTHORIZATION_REFUSED.into()),
            // An END_TRANSACTION without a topic (an older client) names no resource.
            None if request.code == RequestCode::END_TRANSACTION => Ok(()),
            None => Err(AUTHORIZATION_REFUSED.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::acl::Credentials;

    fn send(topic: &str) -> RemotingCommand {
        let mut r = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2).with_body("body");
        r.ext_fields.insert("a", "G");
        r.ext_fields.insert("b", topic);
        r
    }

    #[test]
    fn authentication_and_topic_permissions() {
        let acl = MockAcl::new(vec![
            AclAccount::new("app", "app-secret").topic_perm("T", AclPerm::PubSub),
            AclAccount::new("reader", "r").default_topic_perm(AclPerm::Sub),
            AclAccount::new("root", "root-secret").admin(true),
        ]);
        let signed = |creds: &Credentials, mut r: RemotingCommand| {
            creds.sign(&mut r.ext_fields, &r.body.clone());
            r
        };
        let app = Credentials::new("app", "app-secret");
        assert_eq!(acl.check(&signed(&app, send("T"))), Ok(()));
        assert_eq!(
            acl.check(&signed(&app, send("Other"))),
            Err(AUTHORIZATION_REFUSED.into())
        );
        // Unsigned, an unknown key, a wrong secret, a tampered body.
        assert_eq!(acl.check(&send("T")), Err(AUTHENTICATION_REFUSED.into()));
        let stranger = Credentials::new("nobody", "app-secret");
        assert!(acl.check(&signed(&stranger, send("T"))).is_err());
        let wrong = Credentials::new("app", "guess");
        assert!(acl.check(&signed(&wrong, send("T"))).is_err());
        let mut tampered = signed(&app, send("T"));
        tampered.body = b"other".to_vec();
        assert!(acl.check(&tampered).is_err());
        // SUB is not PUB; admin may publish anywhere; a heartbeat needs no topic permission.
        let reader = Credentials::new("reader", "r");
        assert!(acl.check(&signed(&reader, send("T"))).is_err());
        let hb = RemotingCommand::request(RequestCode::HEART_BEAT).with_body("{}");
        assert_eq!(acl.check(&signed(&reader, hb)), Ok(()));
        let root = Credentials::new("root", "root-secret");
        assert_eq!(acl.check(&signed(&root, send("Any"))), Ok(()));
        // An account's algorithm must match.
        let sha256 = MockAcl::new(vec![AclAccount::new("app", "app-secret")
            .admin(true)
            .signature_algorithm(SignatureAlgorithm::HmacSha256)]);
        assert!(sha256.check(&signed(&app, send("T"))).is_err());
        let app256 = app.with_algorithm(SignatureAlgorithm::HmacSha256);
        assert_eq!(sha256.check(&signed(&app256, send("T"))), Ok(()));
    }

    #[test]
    fn perm_names() {
        assert_eq!(AclPerm::from_name("PUB|SUB"), Some(AclPerm::PubSub));
        assert_eq!(AclPerm::from_name("sub"), Some(AclPerm::Sub));
        assert_eq!(AclPerm::from_name("DENY"), Some(AclPerm::Deny));
        assert_eq!(AclPerm::from_name("ALL"), None);
        let shown = format!("{:?}", AclAccount::new("ak", "hidden-sk-1"));
        assert!(!shown.contains("hidden-sk-1"), "{shown}");
    }
}
