//! The TLS settings of a producer: getters, setters, environment variables and checks.
//!
//! One set of settings serves every connection (name servers and brokers). Turning TLS on
//! needs the crate feature `tls`; without it [`build`](ProducerConfigBuilder::build) says so.

use std::path::{Path, PathBuf};

use super::env::parse_bool;
use super::{ProducerConfig, ProducerConfigBuilder};
use crate::error::Result;
use crate::remoting::TlsConfig;

/// The environment variables of the TLS settings (part of [`ENV_VARS`](super::ENV_VARS)).
pub(super) const TLS_ENV_VARS: [&str; 6] = [
    "ROCKETMQ_TLS",
    "ROCKETMQ_TLS_CA_FILE",
    "ROCKETMQ_TLS_SERVER_NAME",
    "ROCKETMQ_TLS_INSECURE_SKIP_VERIFY_FOR_TESTING",
    "ROCKETMQ_TLS_CLIENT_CERT",
    "ROCKETMQ_TLS_CLIENT_KEY",
];

/// The TLS settings as given (checked by `build`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct TlsSettings {
    on: bool,
    ca_file: Option<PathBuf>,
    server_name: Option<String>,
    insecure_skip_verify_for_testing: bool,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

impl ProducerConfig {
    /// Whether every connection (name servers and brokers) uses TLS (`useTLS`). Default off.
    /// Needs the crate feature `tls`.
    pub fn tls(&self) -> bool {
        self.tls.on
    }

    /// The PEM file of the CA certificates that server certificates are verified against.
    /// Default `None`: the operating system's trust store.
    pub fn tls_ca_file(&self) -> Option<&Path> {
        self.tls.ca_file.as_deref()
    }

    /// The name every server certificate must carry. Default `None`: the host of the address
    /// each server is reached at (an IP address for brokers, as name servers list them).
    pub fn tls_server_name(&self) -> Option<&str> {
        self.tls.server_name.as_deref()
    }

    /// Whether server certificates are accepted without any verification. Default off. For
    /// self-signed test clusters (RocketMQ's TLS "test mode") only: with it on, anyone on the
    /// path can read and change the traffic.
    pub fn tls_insecure_skip_verify_for_testing(&self) -> bool {
        self.tls.insecure_skip_verify_for_testing
    }

    /// The PEM file of the client certificate chain presented to servers that ask for one
    /// (mutual TLS). Default `None`.
    pub fn tls_client_cert(&self) -> Option<&Path> {
        self.tls.client_cert.as_deref()
    }

    /// The PEM file of the client certificate's private key. Default `None`.
    pub fn tls_client_key(&self) -> Option<&Path> {
        self.tls.client_key.as_deref()
    }

    /// The remoting TLS settings these amount to, or `None` when TLS is off.
    pub fn tls_config(&self) -> Option<TlsConfig> {
        let s = &self.tls;
        if !s.on {
            return None;
        }
        let mut tls = TlsConfig::new();
        if let Some(ca) = &s.ca_file {
            tls = tls.ca_file(ca);
        }
        if s.insecure_skip_verify_for_testing {
            tls = tls.insecure_skip_verify_for_testing();
        }
        if let Some(name) = &s.server_name {
            tls = tls.server_name(name);
        }
        if let (Some(cert), Some(key)) = (&s.client_cert, &s.client_key) {
            tls = tls.client_cert(cert, key);
        }
        Some(tls)
    }
}

impl ProducerConfigBuilder {
    /// Turns TLS on or off for every connection; see [`ProducerConfig::tls`].
    pub fn tls(mut self, on: bool) -> Self {
        self.config.tls.on = on;
        self.set_by_code("tls")
    }

    /// Verifies servers against the CA certificates of this PEM file; see
    /// [`ProducerConfig::tls_ca_file`].
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.tls.ca_file = Some(path.into());
        self.set_by_code("tls_ca_file")
    }

    /// Sets the name server certificates must carry; see [`ProducerConfig::tls_server_name`].
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.config.tls.server_name = Some(name.into());
        self.set_by_code("tls_server_name")
    }

    /// Accepts server certificates without verification, for self-signed test clusters only;
    /// see [`ProducerConfig::tls_insecure_skip_verify_for_testing`].
    pub fn tls_insecure_skip_verify_for_testing(mut self, on: bool) -> Self {
        self.config.tls.insecure_skip_verify_for_testing = on;
        self.set_by_code("tls_insecure_skip_verify_for_testing")
    }

    /// Presents this client certificate chain and key (PEM files) to servers that ask for one;
    /// see [`ProducerConfig::tls_client_cert`].
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.config.tls.client_cert = Some(cert.into());
        self.config.tls.client_key = Some(key.into());
        self.set_by_code("tls_client_cert")
            .set_by_code("tls_client_key")
    }

    /// Reads the `ROCKETMQ_TLS*` variables (see the [module docs](super)).
    pub(super) fn tls_from_env(
        &mut self,
        get: &dyn Fn(&'static str) -> Result<Option<String>>,
    ) -> Result<()> {
        let [on, ca, name, insecure, cert, key] = TLS_ENV_VARS;
        if let Some(v) = get(on)? {
            self.config.tls.on = parse_bool(on, &v)?;
            self.set_by_env("tls", on);
        }
        if let Some(v) = get(ca)? {
            self.config.tls.ca_file = Some(v.into());
            self.set_by_env("tls_ca_file", ca);
        }
        if let Some(v) = get(name)? {
            self.config.tls.server_name = Some(v);
            self.set_by_env("tls_server_name", name);
        }
        if let Some(v) = get(insecure)? {
            self.config.tls.insecure_skip_verify_for_testing = parse_bool(insecure, &v)?;
            self.set_by_env("tls_insecure_skip_verify_for_testing", insecure);
        }
        if let Some(v) = get(cert)? {
            self.config.tls.client_cert = Some(v.into());
            self.set_by_env("tls_client_cert", cert);
        }
        if let Some(v) = get(key)? {
            self.config.tls.client_key = Some(v.into());
            self.set_by_env("tls_client_key", key);
        }
        Ok(())
    }

    /// Checks the TLS settings (files are read when the producer starts).
    pub(super) fn check_tls(&self) -> Result<()> {
        let s = &self.config.tls;
        if !s.on {
            let set = [
                ("tls_ca_file", s.ca_file.is_some()),
                ("tls_server_name", s.server_name.is_some()),
                (
                    "tls_insecure_skip_verify_for_testing",
                    s.insecure_skip_verify_for_testing,
                ),
                ("tls_client_cert", s.client_cert.is_some()),
                ("tls_client_key", s.client_key.is_some()),
            ];
            if let Some((setting, _)) = set.iter().find(|(_, set)| *set) {
                return Err(self.err(setting, "is set but TLS is off: turn tls on, or unset it"));
            }
            return Ok(());
        }
        if !cfg!(feature = "tls") {
            return Err(self.err(
                "tls",
                "this build of rocketmq-mio has no TLS support: enable its cargo feature `tls`",
            ));
        }
        if s.insecure_skip_verify_for_testing && s.ca_file.is_some() {
            return Err(self.err(
                "tls_insecure_skip_verify_for_testing",
                "cannot be combined with tls_ca_file (which verifies servers): unset one",
            ));
        }
        match (&s.client_cert, &s.client_key) {
            (Some(_), None) => {
                return Err(self.err("tls_client_key", "a client certificate needs its key"))
            }
            (None, Some(_)) => {
                return Err(self.err("tls_client_cert", "a client key needs its certificate"))
            }
            _ => {}
        }
        for (setting, path) in [
            ("tls_ca_file", &s.ca_file),
            ("tls_client_cert", &s.client_cert),
            ("tls_client_key", &s.client_key),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(self.err(setting, "is an empty path"));
            }
        }
        if let Some(name) = &s.server_name {
            check_server_name(name).map_err(|r| self.err("tls_server_name", r))?;
        }
        Ok(())
    }
}

/// A DNS name or an IP address.
fn check_server_name(name: &str) -> std::result::Result<(), String> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a DNS name or an IP address"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::test_support::{base, setting_of};
    use crate::config::ENV_VARS;
    #[cfg(feature = "tls")]
    use crate::remoting::TlsTrust;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn off_by_default() {
        let c = base().build().unwrap();
        assert!(!c.tls());
        assert_eq!((c.tls_ca_file(), c.tls_server_name()), (None, None));
        assert!(!c.tls_insecure_skip_verify_for_testing());
        assert_eq!((c.tls_client_cert(), c.tls_client_key()), (None, None));
        assert_eq!(c.tls_config(), None);
    }

    #[test]
    fn every_tls_variable_is_listed() {
        for var in TLS_ENV_VARS {
            assert!(ENV_VARS.contains(&var), "{var}");
        }
    }

    #[test]
    fn settings_off_need_tls_on() {
        let e = base().tls_ca_file("/ca.pem").build().unwrap_err();
        assert_eq!(setting_of(e), "tls_ca_file");
        let e = base()
            .tls_insecure_skip_verify_for_testing(true)
            .build()
            .unwrap_err();
        assert_eq!(setting_of(e), "tls_insecure_skip_verify_for_testing");
        // From the environment: the error names the variable.
        let e = base()
            .from_env_map(env(&[("ROCKETMQ_TLS_SERVER_NAME", "broker.internal")]))
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(setting_of(e), "ROCKETMQ_TLS_SERVER_NAME");
    }

    #[test]
    fn env_parse_errors_name_the_variable() {
        let e = base()
            .from_env_map(env(&[("ROCKETMQ_TLS", "maybe")]))
            .unwrap_err();
        assert_eq!(setting_of(e), "ROCKETMQ_TLS");
        let e = base()
            .from_env_map(env(&[(
                "ROCKETMQ_TLS_INSECURE_SKIP_VERIFY_FOR_TESTING",
                "sure",
            )]))
            .unwrap_err();
        assert_eq!(
            setting_of(e),
            "ROCKETMQ_TLS_INSECURE_SKIP_VERIFY_FOR_TESTING"
        );
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_without_the_feature_is_a_clear_error() {
        let e = base().tls(true).build().unwrap_err();
        assert!(e.to_string().contains("cargo feature `tls`"), "{e}");
        assert_eq!(setting_of(e), "tls");
        // The remoting client refuses too.
        let e = crate::remoting::RemotingClient::new(crate::remoting::RemotingConfig {
            tls: Some(TlsConfig::new()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(setting_of(e), "tls");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_settings_from_code_and_env() {
        let c = base()
            .tls(true)
            .tls_ca_file("/etc/ca.pem")
            .tls_server_name("broker.internal")
            .tls_client_cert("/c.pem", "/k.pem")
            .build()
            .unwrap();
        let tls = c.tls_config().unwrap();
        assert_eq!(tls.trust(), &TlsTrust::CaFile("/etc/ca.pem".into()));
        assert_eq!(tls.server_name_override(), Some("broker.internal"));
        assert_eq!(
            tls.client_cert_files(),
            Some((Path::new("/c.pem"), Path::new("/k.pem")))
        );
        assert_eq!(c.to_builder().build().unwrap(), c);

        let c = base()
            .from_env_map(env(&[
                ("ROCKETMQ_TLS", "on"),
                ("ROCKETMQ_TLS_SERVER_NAME", "10.0.0.7"),
                ("ROCKETMQ_TLS_INSECURE_SKIP_VERIFY_FOR_TESTING", "true"),
                ("ROCKETMQ_TLS_CLIENT_CERT", "/c.pem"),
                ("ROCKETMQ_TLS_CLIENT_KEY", "/k.pem"),
            ]))
            .unwrap()
            .build()
            .unwrap();
        assert!(c.tls() && c.tls_insecure_skip_verify_for_testing());
        assert_eq!(c.tls_server_name(), Some("10.0.0.7"));
        assert_eq!(
            c.tls_config().unwrap().trust(),
            &TlsTrust::InsecureSkipVerifyForTesting
        );
        assert_eq!(c.tls_client_key(), Some(Path::new("/k.pem")));

        let c = base()
            .from_env_map(env(&[
                ("ROCKETMQ_TLS", "1"),
                ("ROCKETMQ_TLS_CA_FILE", "/ca.pem"),
            ]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.tls_ca_file(), Some(Path::new("/ca.pem")));
        // Unset: the system roots.
        let c = base().tls(true).build().unwrap();
        assert_eq!(c.tls_config().unwrap().trust(), &TlsTrust::SystemRoots);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn contradictions_and_halves_are_errors() {
        let on = || base().tls(true);
        let e = on()
            .tls_ca_file("/ca.pem")
            .tls_insecure_skip_verify_for_testing(true)
            .build()
            .unwrap_err();
        assert_eq!(setting_of(e), "tls_insecure_skip_verify_for_testing");
        let e = on()
            .from_env_map(env(&[("ROCKETMQ_TLS_CLIENT_CERT", "/c.pem")]))
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(setting_of(e), "tls_client_key");
        let e = on()
            .from_env_map(env(&[("ROCKETMQ_TLS_CLIENT_KEY", "/k.pem")]))
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(setting_of(e), "tls_client_cert");
        for bad in ["", "bad name", "-x.example", "a..b"] {
            let e = on().tls_server_name(bad).build().unwrap_err();
            assert_eq!(setting_of(e), "tls_server_name", "{bad:?}");
        }
        for good in ["localhost", "broker-1.internal", "127.0.0.1", "::1"] {
            on().tls_server_name(good).build().unwrap();
        }
        let e = on().tls_ca_file("").build().unwrap_err();
        assert_eq!(setting_of(e), "tls_ca_file");
    }
}
