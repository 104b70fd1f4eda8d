//! The FHIR server's configuration (`fhir.yaml`): one serde struct with [`Default`] and
//! [`FhirConfig::validate`], units in the field names (`_bytes`, `_ms`, `_s`), as the peer's
//! and orderer's configs (STYLE: Config).

use std::net::SocketAddr;
use std::path::PathBuf;

use ehr_chaincode::model::Purpose;
use serde::{Deserialize, Serialize};

/// Why a configuration is refused: the field (dotted path) and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fhir config: {field}: {reason}")]
pub struct ConfigError {
    /// Dotted field path, e.g. `limits.max_body_bytes`.
    pub field: &'static str,
    /// The rule it breaks.
    pub reason: &'static str,
}

/// The FHIR server of one organization (ADR 0039).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FhirConfig {
    /// Address the HTTPS listener binds, `HOST:PORT` (default `0.0.0.0:7443`).
    pub listen: String,
    /// The API's public base URL, ending in `/fhir` without a slash (default
    /// `https://localhost:7443/fhir`): links and the token endpoint's `aud`
    /// (`<base_url>/auth/token`).
    pub base_url: String,
    /// The server's TLS certificate chain, PEM.
    pub tls_cert: PathBuf,
    /// The server's TLS private key, PEM (PKCS#8).
    pub tls_key: PathBuf,
    /// The organization's TLS root CA, PEM. Client certificates of mutual TLS chain to the
    /// MSP folder's `tlscacerts/`; every certificate here must be one of those, else the
    /// server refuses to start (it cannot widen whom mutual TLS trusts).
    pub client_tls_ca: PathBuf,
    /// The organization's MSP folder (`cacerts/`, `intermediatecerts/`, `crls/`): token
    /// assertions' enrollment certificates are validated against it (`medledger_msp`).
    pub msp_dir: PathBuf,
    /// The organization's MSP id; every caller belongs to it.
    pub msp_id: String,
    /// How often `<msp_dir>/crls` is checked for changes, ms (default 2000, 100-60 000): on a
    /// change the MSP and the TLS configuration are reloaded, so a published revocation
    /// ends tokens, open mutual-TLS connections and new handshakes within one poll.
    pub crl_poll_ms: u64,
    /// The organization's gateway.
    pub gateway: GatewayEndpoint,
    /// Channel of the EHR chaincode (default `ehr`).
    pub channel: String,
    /// Name of the EHR chaincode (default `ehr`).
    pub chaincode: String,
    /// Delegate enrollments, `<wallet_dir>/<enrollment id>/{cert.pem,key.pem}` (ADR 0039).
    pub wallet_dir: PathBuf,
    /// Request limits.
    pub limits: Limits,
    /// Bearer tokens and the assertions that obtain them.
    pub tokens: Tokens,
    /// Purpose of use of reads when the credential names none (`treatment`).
    pub default_purpose: Purpose,
}

/// The organization's gateway (`gateway.Gateway` gRPC service of one of its peers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayEndpoint {
    /// `https://HOST:PORT` (or `http://` without TLS); default `https://localhost:7051`.
    pub endpoint: String,
    /// Server name expected in the gateway's TLS certificate, if not the endpoint's host.
    pub tls_host: Option<String>,
    /// The gateway's TLS root CA, PEM.
    pub tls_ca: Option<PathBuf>,
    /// Client TLS certificate for mutual TLS with the gateway, PEM.
    pub tls_cert: Option<PathBuf>,
    /// Its key, PEM.
    pub tls_key: Option<PathBuf>,
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, bytes (default 1 100 000: a 1 MiB Bundle and some slack);
    /// larger → 413 `too-long`.
    pub max_body_bytes: usize,
    /// Most entries of a transaction/batch Bundle (default 500, the chaincode's).
    pub max_bundle_entries: usize,
    /// Time a request may take, ms (default 30 000), else 504.
    pub request_timeout_ms: u64,
    /// Requests served at once (default 64).
    pub concurrency: usize,
    /// Default search page size (default 50).
    pub page_size: u32,
    /// Largest `_count` (default 200).
    pub max_page_size: u32,
}

/// Bearer tokens (SMART Backend Services) and their assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tokens {
    /// Lifetime of an access token, seconds (default 300).
    pub lifetime_s: u64,
    /// Longest `exp - now` of a client assertion, seconds (default 300).
    pub assertion_max_lifetime_s: u64,
    /// Tolerated clock skew on `iat`/`nbf`/`exp`, seconds (default 60).
    pub clock_skew_s: u64,
    /// Most `(iss, jti)` pairs remembered against replay (default 100 000); a full cache
    /// refuses new assertions rather than forget an unexpired one.
    pub replay_cache_entries: usize,
}

impl Default for FhirConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:7443".into(),
            base_url: "https://localhost:7443/fhir".into(),
            tls_cert: "tls/server.crt".into(),
            tls_key: "tls/server.key".into(),
            client_tls_ca: "tls/ca.crt".into(),
            msp_dir: "msp".into(),
            msp_id: "Org1MSP".into(),
            crl_poll_ms: 2000,
            gateway: GatewayEndpoint::default(),
            channel: "ehr".into(),
            chaincode: "ehr".into(),
            wallet_dir: "wallet".into(),
            limits: Limits::default(),
            tokens: Tokens::default(),
            default_purpose: Purpose::Treatment,
        }
    }
}

impl Default for GatewayEndpoint {
    fn default() -> Self {
        Self {
            endpoint: "https://localhost:7051".into(),
            tls_host: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1_100_000,
            max_bundle_entries: ehr_chaincode::fhir::MAX_BUNDLE_ENTRIES,
            request_timeout_ms: 30_000,
            concurrency: 64,
            page_size: 50,
            max_page_size: 200,
        }
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            lifetime_s: 300,
            assertion_max_lifetime_s: 300,
            clock_skew_s: 60,
            replay_cache_entries: 100_000,
        }
    }
}

impl FhirConfig {
    /// Parses `fhir.yaml` (YAML; absent fields take their defaults, unknown fields are
    /// refused) and validates it.
    ///
    /// # Errors
    /// A message naming the YAML error's position (the file holds no PHI), or
    /// [`ConfigError`]'s.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let config: FhirConfig = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// The token endpoint's URL, `<base_url>/auth/token`: the `aud` an assertion must name.
    pub fn token_url(&self) -> String {
        format!("{}/auth/token", self.base_url)
    }

    /// Checks the rules each field's doc states.
    ///
    /// # Errors
    /// The first [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason| Err(ConfigError { field, reason });
        if self.listen.parse::<SocketAddr>().is_err() {
            return bad("listen", "not an IP address and port");
        }
        let scheme_ok =
            self.base_url.starts_with("https://") || self.base_url.starts_with("http://");
        if !scheme_ok || !self.base_url.ends_with("/fhir") {
            return bad("base_url", "must be http(s)://HOST[:PORT][/PATH]/fhir");
        }
        if self.msp_id.is_empty() {
            return bad("msp_id", "empty");
        }
        if !(100..=60_000).contains(&self.crl_poll_ms) {
            return bad("crl_poll_ms", "must be 100-60 000 ms");
        }
        if !(self.gateway.endpoint.starts_with("https://")
            || self.gateway.endpoint.starts_with("http://"))
        {
            return bad(
                "gateway.endpoint",
                "must be https://HOST:PORT or http://HOST:PORT",
            );
        }
        if self.gateway.tls_cert.is_some() != self.gateway.tls_key.is_some() {
            return bad("gateway.tls_cert", "tls_cert and tls_key go together");
        }
        if self.channel.is_empty() || self.chaincode.is_empty() {
            return bad("channel", "channel and chaincode must be named");
        }
        let l = &self.limits;
        if l.max_body_bytes == 0 {
            return bad("limits.max_body_bytes", "must be positive");
        }
        if l.max_bundle_entries == 0
            || l.max_bundle_entries > ehr_chaincode::fhir::MAX_BUNDLE_ENTRIES
        {
            return bad(
                "limits.max_bundle_entries",
                "must be 1 to the chaincode's 500",
            );
        }
        if l.request_timeout_ms == 0 || l.concurrency == 0 {
            return bad(
                "limits.request_timeout_ms",
                "timeout and concurrency must be positive",
            );
        }
        if l.page_size == 0 || l.page_size > l.max_page_size || l.max_page_size > 200 {
            return bad(
                "limits.page_size",
                "must be 1 ≤ page_size ≤ max_page_size ≤ 200",
            );
        }
        let t = &self.tokens;
        if t.lifetime_s == 0 || t.lifetime_s > 3600 {
            return bad("tokens.lifetime_s", "must be 1-3600 s");
        }
        if t.assertion_max_lifetime_s == 0 || t.assertion_max_lifetime_s > 3600 {
            return bad("tokens.assertion_max_lifetime_s", "must be 1-3600 s");
        }
        if t.clock_skew_s > 300 {
            return bad("tokens.clock_skew_s", "must be at most 300 s");
        }
        if t.replay_cache_entries == 0 {
            return bad("tokens.replay_cache_entries", "must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The defaults as `fhir.yaml` spells them: a change here is a change of documented
    /// behaviour (docs/fhir.md).
    const SNAPSHOT: &str = "\
listen: 0.0.0.0:7443
base_url: https://localhost:7443/fhir
tls_cert: tls/server.crt
tls_key: tls/server.key
client_tls_ca: tls/ca.crt
msp_dir: msp
msp_id: Org1MSP
crl_poll_ms: 2000
gateway:
  endpoint: https://localhost:7051
  tls_host: null
  tls_ca: null
  tls_cert: null
  tls_key: null
channel: ehr
chaincode: ehr
wallet_dir: wallet
limits:
  max_body_bytes: 1100000
  max_bundle_entries: 500
  request_timeout_ms: 30000
  concurrency: 64
  page_size: 50
  max_page_size: 200
tokens:
  lifetime_s: 300
  assertion_max_lifetime_s: 300
  clock_skew_s: 60
  replay_cache_entries: 100000
default_purpose: treatment
";

    #[test]
    fn defaults_match_the_snapshot_and_validate() {
        let d = FhirConfig::default();
        assert_eq!(serde_yaml_ng::to_string(&d).unwrap(), SNAPSHOT);
        d.validate().unwrap();
        assert_eq!(FhirConfig::from_yaml(SNAPSHOT).unwrap(), d);
        assert_eq!(FhirConfig::from_yaml("{}").unwrap(), d);
        assert_eq!(d.token_url(), "https://localhost:7443/fhir/auth/token");
    }

    #[test]
    fn bad_values_name_their_field() {
        type Change = Box<dyn Fn(&mut FhirConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("listen", Box::new(|c| c.listen = "localhost".into())),
            (
                "base_url",
                Box::new(|c| c.base_url = "https://h/fhir/".into()),
            ),
            ("msp_id", Box::new(|c| c.msp_id.clear())),
            ("crl_poll_ms", Box::new(|c| c.crl_poll_ms = 0)),
            (
                "gateway.endpoint",
                Box::new(|c| c.gateway.endpoint = "h:1".into()),
            ),
            (
                "limits.max_body_bytes",
                Box::new(|c| c.limits.max_body_bytes = 0),
            ),
            (
                "limits.max_bundle_entries",
                Box::new(|c| c.limits.max_bundle_entries = 501),
            ),
            ("limits.page_size", Box::new(|c| c.limits.page_size = 201)),
            ("tokens.lifetime_s", Box::new(|c| c.tokens.lifetime_s = 0)),
            (
                "tokens.clock_skew_s",
                Box::new(|c| c.tokens.clock_skew_s = 301),
            ),
        ];
        for (field, change) in cases {
            let mut c = FhirConfig::default();
            change(&mut c);
            assert_eq!(c.validate().unwrap_err().field, field);
        }
        assert!(
            FhirConfig::from_yaml("listen_port: 1").is_err(),
            "unknown fields refused"
        );
    }
}
