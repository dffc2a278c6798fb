//! ACL request signing, as the Java `AclClientRPCHook` does it (protocol.md Appendix A). Pure:
//! no sockets, clocks or threads.
//!
//! Every request a client originates carries `AccessKey` (and `SecurityToken` when one is set)
//! in its ext fields, and a `Signature`:
//!
//! 1. the values of every ext field except `Signature`, in key order, concatenated as UTF-8
//!    (keys are not signed, and there are no separators);
//! 2. then the body bytes;
//! 3. HMAC over that with the secret key (SHA-1 unless another [`SignatureAlgorithm`] is
//!    chosen), in standard base64 with padding.
//!
//! Keys are ordered as Java's `String.compareTo` orders them (a `TreeMap`). That is the byte
//! order of their UTF-8 for every key this protocol uses (ASCII); the two orders differ only
//! between a character in U+E000..=U+FFFF and one above U+FFFF.
//!
//! Responses are not signed, nor are the requests a broker sends to a client; the
//! END_TRANSACTION a client sends in answer to a check is a request of its own, and is signed.
//! A field added after signing breaks the signature.
//!
//! [`Credentials`] holds the keys. Its `Debug` never prints the secret key or the security
//! token, and nothing in this crate logs them.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{KeyInit, Mac};

use super::frame::ExtFields;

/// The ext field that carries the access key.
pub const ACCESS_KEY: &str = "AccessKey";
/// The ext field that carries the signature.
pub const SIGNATURE: &str = "Signature";
/// The ext field that carries the security token (temporary credentials).
pub const SECURITY_TOKEN: &str = "SecurityToken";

/// The HMAC a request is signed with. The broker must be configured with the same one
/// (RocketMQ brokers use HmacSHA1 unless told otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// HMAC-SHA1, the default of the Java client and broker.
    #[default]
    HmacSha1,
    /// HMAC-SHA256.
    HmacSha256,
}

impl SignatureAlgorithm {
    /// The Java name (`HmacSHA1`, `HmacSHA256`).
    pub fn name(self) -> &'static str {
        match self {
            SignatureAlgorithm::HmacSha1 => "HmacSHA1",
            SignatureAlgorithm::HmacSha256 => "HmacSHA256",
        }
    }

    /// The algorithm for a name: the Java names in any case, with or without `-`/`_`, or
    /// `sha1`/`sha256`.
    pub fn from_name(name: &str) -> Option<SignatureAlgorithm> {
        let folded: String = name
            .trim()
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match folded.as_str() {
            "hmacsha1" | "sha1" => Some(SignatureAlgorithm::HmacSha1),
            "hmacsha256" | "sha256" => Some(SignatureAlgorithm::HmacSha256),
            _ => None,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A secret string (a secret key, a security token). `Debug` prints `"<redacted>"`; there is
/// no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A keyed HMAC, ready to be cloned for each signature (the key is hashed once).
#[derive(Clone)]
enum KeyedMac {
    Sha1(hmac::Hmac<sha1::Sha1>),
    Sha256(hmac::Hmac<sha2::Sha256>),
}

impl KeyedMac {
    fn new(algorithm: SignatureAlgorithm, key: &[u8]) -> Self {
        // HMAC takes keys of any length (longer ones are hashed first): `new_from_slice` has no
        // error case for it, whatever the key.
        const ANY_KEY: &str = "HMAC accepts keys of any length";
        match algorithm {
            SignatureAlgorithm::HmacSha1 => {
                KeyedMac::Sha1(hmac::Hmac::new_from_slice(key).expect(ANY_KEY))
            }
            SignatureAlgorithm::HmacSha256 => {
                KeyedMac::Sha256(hmac::Hmac::new_from_slice(key).expect(ANY_KEY))
            }
        }
    }
}

/// The access key, secret key and optional security token a client signs its requests with.
///
/// `Debug` shows the access key and the algorithm only.
#[derive(Clone)]
pub struct Credentials {
    access_key: String,
    secret_key: Secret,
    security_token: Option<Secret>,
    algorithm: SignatureAlgorithm,
    keyed: KeyedMac,
}

impl Credentials {
    /// Credentials signing with HMAC-SHA1 and no security token.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        let secret_key = Secret::new(secret_key);
        let algorithm = SignatureAlgorithm::default();
        Credentials {
            access_key: access_key.into(),
            keyed: KeyedMac::new(algorithm, secret_key.expose().as_bytes()),
            secret_key,
            security_token: None,
            algorithm,
        }
    }

    /// Sets the security token (builder style).
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(Secret::new(token));
        self
    }

    /// Sets the algorithm (builder style).
    pub fn with_algorithm(mut self, algorithm: SignatureAlgorithm) -> Self {
        self.algorithm = algorithm;
        self.keyed = KeyedMac::new(algorithm, self.secret_key.expose().as_bytes());
        self
    }

    /// The access key.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret key.
    pub fn secret_key(&self) -> &Secret {
        &self.secret_key
    }

    /// The security token, if one is set.
    pub fn security_token(&self) -> Option<&Secret> {
        self.security_token.as_ref()
    }

    /// The HMAC algorithm.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// Signs a request: sets `AccessKey` (and `SecurityToken`) in `fields`, then `Signature`
    /// over every field and `body`. An earlier `Signature` is replaced.
    pub fn sign(&self, fields: &mut ExtFields, body: &[u8]) {
        fields.insert(ACCESS_KEY, &self.access_key);
        if let Some(token) = &self.security_token {
            fields.insert(SECURITY_TOKEN, token.expose());
        }
        let mut signer = self.signer();
        // `ExtFields` iterates in key order.
        for (k, v) in fields.iter() {
            if k != SIGNATURE {
                signer.update(v.as_bytes());
            }
        }
        signer.update(body);
        fields.insert(SIGNATURE, signer.finish().as_str());
    }

    /// An incremental signer keyed with the secret key, for an encoder that writes the fields
    /// itself: feed it the field values in key order (`AccessKey`, then `SecurityToken` if
    /// set, then the others), then the body.
    pub fn signer(&self) -> Signer {
        Signer(self.keyed.clone())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        self.access_key == other.access_key
            && self.secret_key == other.secret_key
            && self.security_token == other.security_token
            && self.algorithm == other.algorithm
    }
}

impl Eq for Credentials {}

/// An HMAC under way: the content is fed in pieces, then [`Signer::finish`] gives the
/// signature. No allocation.
#[derive(Clone)]
pub struct Signer(KeyedMac);

impl Signer {
    /// Feeds the next bytes of the content.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            KeyedMac::Sha1(m) => m.update(bytes),
            KeyedMac::Sha256(m) => m.update(bytes),
        }
    }

    /// The signature of everything fed, in standard base64.
    pub fn finish(self) -> SignatureText {
        let mut text = SignatureText {
            buf: [0; 44],
            len: 0,
        };
        let written = match self.0 {
            KeyedMac::Sha1(m) => STANDARD.encode_slice(m.finalize().into_bytes(), &mut text.buf),
            KeyedMac::Sha256(m) => STANDARD.encode_slice(m.finalize().into_bytes(), &mut text.buf),
        };
        // 44 bytes hold the base64 of 32 bytes (SHA-256), the longest digest here.
        text.len = written.unwrap_or(0);
        text
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer")
    }
}

/// A signature in base64, on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignatureText {
    buf: [u8; 44],
    len: usize,
}

impl SignatureText {
    /// The base64 text.
    pub fn as_str(&self) -> &str {
        // Base64 output is ASCII.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Debug for SignatureText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The signature of a request with these ext fields (in any order; `Signature` is left out)
/// and body, as a broker computes it to check a request.
pub fn signature<'a>(
    algorithm: SignatureAlgorithm,
    secret_key: &str,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
) -> String {
    let mut sorted: Vec<(&str, &str)> = fields
        .into_iter()
        .filter(|(k, _)| *k != SIGNATURE)
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut signer = Signer(KeyedMac::new(algorithm, secret_key.as_bytes()));
    for (_, v) in sorted {
        signer.update(v.as_bytes());
    }
    signer.update(body);
    signer.finish().as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The expected values come from Python's standard library, independently of this code:
    //
    //   python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
    //       KEY, CONTENT, hashlib.sha1).digest()).decode())"
    //
    // with KEY and CONTENT as each test says (CONTENT is the sorted values, then the body).

    /// protocol.md Appendix A, first vector: KEY b'12345678', CONTENT b'rocketmq2TopicTest'.
    #[test]
    fn appendix_a_vector_without_body() {
        let mut fields = ExtFields::new();
        fields.insert("topic", "TopicTest");
        Credentials::new("rocketmq2", "12345678").sign(&mut fields, b"");
        assert_eq!(fields.get(ACCESS_KEY), Some("rocketmq2"));
        assert_eq!(fields.get(SIGNATURE), Some("GeeGoP9mRvDhoVp4PD5omX0prgE="));
        assert_eq!(fields.get(SECURITY_TOKEN), None);
        assert_eq!(
            signature(
                SignatureAlgorithm::HmacSha1,
                "12345678",
                [("topic", "TopicTest"), ("AccessKey", "rocketmq2")],
                b""
            ),
            "GeeGoP9mRvDhoVp4PD5omX0prgE="
        );
    }

    /// Appendix A, second vector: KEY b'12345678', CONTENT b'rocketmq2TopicTesthello'.
    #[test]
    fn appendix_a_vector_with_body() {
        let mut fields = ExtFields::new();
        fields.insert("topic", "TopicTest");
        // A stale signature is neither signed nor kept.
        fields.insert(SIGNATURE, "stale");
        Credentials::new("rocketmq2", "12345678").sign(&mut fields, b"hello");
        assert_eq!(fields.get(SIGNATURE), Some("VCoakk8D+zaEPRCyxQHvWUF4988="));
    }

    /// HMAC-SHA256 (hashlib.sha256 in the one-liner): KEY b'12345678',
    /// CONTENT b'rocketmq2TopicTesthello'.
    #[test]
    fn sha256_vector() {
        let creds = Credentials::new("rocketmq2", "12345678")
            .with_algorithm(SignatureAlgorithm::HmacSha256);
        let mut fields = ExtFields::new();
        fields.insert("topic", "TopicTest");
        creds.sign(&mut fields, b"hello");
        assert_eq!(
            fields.get(SIGNATURE),
            Some("rXTWRpXWTPDcMCxsqBV2cdKHyFyaNJZ4tzXk3XGB4+M=")
        );
    }

    /// A security token, non-ASCII values and key, a binary body, keys inserted out of order:
    /// KEY 's3cr✓t'.encode(), CONTENT 'akTOK-1'.encode() + b'3' + 'Tö'.encode() +
    /// bytes([0, 1, 255]) (AccessKey, SecurityToken, queueId, topic).
    #[test]
    fn security_token_and_utf8_vector() {
        let creds = Credentials::new("ak", "s3cr✓t").with_security_token("TOK-1");
        let mut fields = ExtFields::new();
        fields.insert("topic", "Tö");
        fields.insert("queueId", "3");
        creds.sign(&mut fields, &[0, 1, 255]);
        assert_eq!(fields.get(SECURITY_TOKEN), Some("TOK-1"));
        assert_eq!(fields.get(SIGNATURE), Some("YkEZeHgpFIWmm1QH0txW92DgBJk="));
        // The incremental signer over the same pieces agrees.
        let mut s = creds.signer();
        for piece in [&b"ak"[..], b"TOK-1", b"3", "Tö".as_bytes(), &[0, 1, 255]] {
            s.update(piece);
        }
        assert_eq!(s.finish().as_str(), "YkEZeHgpFIWmm1QH0txW92DgBJk=");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let creds = Credentials::new("my-access", "very-secret-key").with_security_token("tok-9");
        let shown = format!(
            "{creds:?} {:?} {:?}",
            creds.secret_key(),
            creds.security_token()
        );
        assert!(shown.contains("my-access"), "{shown}");
        assert!(!shown.contains("very-secret-key"), "{shown}");
        assert!(!shown.contains("tok-9"), "{shown}");
        assert_eq!(creds.secret_key().expose(), "very-secret-key");
    }

    #[test]
    fn algorithm_names() {
        for (name, alg) in [
            ("HmacSHA1", SignatureAlgorithm::HmacSha1),
            ("hmac-sha1", SignatureAlgorithm::HmacSha1),
            ("SHA256", SignatureAlgorithm::HmacSha256),
            ("HMAC_SHA256", SignatureAlgorithm::HmacSha256),
        ] {
            assert_eq!(SignatureAlgorithm::from_name(name), Some(alg), "{name}");
        }
        assert_eq!(SignatureAlgorithm::from_name("md5"), None);
        assert_eq!(SignatureAlgorithm::HmacSha256.to_string(), "HmacSHA256");
    }
}
