//! The token endpoint's logic (SMART Backend Services, RFC 7523 client assertions): verifying
//! a `private_key_jwt` assertion, issuing and checking opaque bearer tokens.
//!
//! Assertion rules (build plan §3): header as [`super::jws::parse`] demands; the `x5c`
//! enrollment certificate validated by the organization's MSP (chains to its CA, valid now, not
//! on its CRL) and whose key verifies the signature; `iss` = `sub` = `<MSP id>:<enrollment
//! id>` of that certificate; `aud` = the token URL exactly; `exp` required, not past (skew
//! allowed) and at most `assertion_max_lifetime_s` ahead; `iat` / `nbf` not in the future
//! beyond the skew; `jti` required and never seen before (remembered until its `exp`).
//! Tokens are 32 random bytes (base64url), kept in memory for `lifetime_s`; each use re-checks
//! the certificate against the MSP (expiry, CRL).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use aws_lc_rs::rand::SecureRandom as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ehr_chaincode::model::Purpose;
use lru::LruCache;
use medledger_msp::cert::Certificate;
use medledger_msp::msp::{Msp, MspConfig};
use serde::Deserialize;

use super::jws;
use crate::backend::{AuthMethod, Caller, valid_enrollment_id};
use crate::config::Tokens;
use crate::outcome::FhirError;

/// `client_assertion_type` of RFC 7523 §2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An assertion's claims (RFC 7519 §4.1; SMART Backend Services).
#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
    /// IHE IUA-style purpose of use (a v3 PurposeOfUse code, e.g. `TREAT`).
    purpose_of_use: Option<String>,
}

/// An issued token.
#[derive(Debug, Clone)]
struct Issued {
    caller: Caller,
    certificate: Certificate,
    expires_at_s: i64,
}

/// A token answer (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The opaque bearer token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in_s: u64,
    /// The caller it acts as.
    pub caller: Caller,
}

/// Verifies assertions, issues tokens, resolves them. Shared by every request.
#[derive(Debug, Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    msp_id: String,
    /// Replaced whole when the CRLs change ([`TokenService::set_msp`],
    /// [`TokenService::reload`]).
    msp: RwLock<Arc<Msp>>,
    /// Serials listed by the MSP's CRLs (DER contents of `serialNumber`): TLS certificates
    /// are checked against them ([`TokenService::check_tls_certificate`]).
    revoked_serials: RwLock<Arc<HashSet<Vec<u8>>>>,
    token_url: String,
    rules: Tokens,
    /// `(iss, jti)` → the assertion's `exp`.
    seen: Mutex<LruCache<(String, String), i64>>,
    tokens: Mutex<HashMap<String, Issued>>,
}

/// The serials (`serialNumber` contents) every CRL of `crls` (DER) lists.
fn crl_serials(crls: &[Vec<u8>]) -> Result<HashSet<Vec<u8>>, medledger_msp::Error> {
    use x509_parser::prelude::{CertificateRevocationList, FromDer as _};
    let mut serials = HashSet::new();
    for der in crls {
        let (_, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| medledger_msp::Error::InvalidCrl(format!("DER: {e}")))?;
        serials.extend(
            crl.iter_revoked_certificates()
                .map(|r| r.raw_serial().to_vec()),
        );
    }
    Ok(serials)
}

/// The HL7 v3 PurposeOfUse code's purpose.
fn purpose_of_v3(code: &str) -> Option<Purpose> {
    [
        Purpose::Treatment,
        Purpose::Payment,
        Purpose::Research,
        Purpose::Operations,
        Purpose::PublicHealth,
    ]
    .into_iter()
    .find(|p| p.v3_code() == code)
}

impl TokenService {
    /// A service for identities of `msp`, whose assertions name `token_url` as `aud`.
    pub fn new(msp: Msp, token_url: impl Into<String>, rules: Tokens) -> Self {
        let cap = std::num::NonZeroUsize::new(rules.replay_cache_entries)
            .unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            inner: Arc::new(Inner {
                msp_id: msp.id().to_owned(),
                msp: RwLock::new(Arc::new(msp)),
                revoked_serials: RwLock::new(Arc::new(HashSet::new())),
                token_url: token_url.into(),
                rules,
                seen: Mutex::new(LruCache::new(cap)),
                tokens: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The organization's MSP id.
    pub fn msp_id(&self) -> &str {
        &self.inner.msp_id
    }

    /// Replaces the organization's MSP (e.g. with new CRLs): later assertions and every later
    /// use of an issued token are checked against it.
    ///
    /// # Errors
    /// [`FhirError::Value`] if `msp` is another organization's.
    pub fn set_msp(&self, msp: Msp) -> Result<(), FhirError> {
        if msp.id() != self.inner.msp_id {
            return Err(FhirError::Value("the MSP is another organization's"));
        }
        let mut current = self
            .inner
            .msp
            .write()
            .map_err(|_| FhirError::Internal("MSP lock poisoned"))?;
        *current = Arc::new(msp);
        Ok(())
    }

    /// A service for the MSP of `config` (as [`Self::new`]) that also knows the serials its
    /// CRLs list, for [`Self::check_tls_certificate`].
    ///
    /// # Errors
    /// [`medledger_msp::Error`] if the MSP refuses `config` (e.g. a CRL not signed by one
    /// of its CAs) or a CRL does not parse.
    pub fn from_msp_config(
        config: MspConfig,
        token_url: impl Into<String>,
        rules: Tokens,
    ) -> Result<Self, medledger_msp::Error> {
        let service = Self::new(Msp::new(config.clone())?, token_url, rules);
        service.reload(config)?;
        Ok(service)
    }

    /// Replaces the MSP and the revoked serials with those of `config` (the MSP folder
    /// reloaded after its `crls/` changed): every later assertion, token use and mutual-TLS
    /// request is checked against them. Nothing changes on an error.
    ///
    /// # Errors
    /// [`medledger_msp::Error`] as [`Self::from_msp_config`], or
    /// [`medledger_msp::Error::InvalidMspConfig`] for another organization's MSP.
    pub fn reload(&self, config: MspConfig) -> Result<(), medledger_msp::Error> {
        let serials = crl_serials(&config.crls)?;
        let msp = Msp::new(config)?;
        if msp.id() != self.inner.msp_id {
            return Err(medledger_msp::Error::InvalidMspConfig {
                msp_id: msp.id().to_owned(),
                reason: "another organization's MSP".into(),
            });
        }
        let poisoned = || medledger_msp::Error::InvalidCrl("lock poisoned".into());
        let mut current = self.inner.msp.write().map_err(|_| poisoned())?;
        let mut revoked = self.inner.revoked_serials.write().map_err(|_| poisoned())?;
        *current = Arc::new(msp);
        *revoked = Arc::new(serials);
        Ok(())
    }

    /// Checks a mutual-TLS client certificate (already chain-verified by rustls against
    /// the verifier's roots) at `now_s`: issued by one of the MSP's TLS roots (`tlscacerts`,
    /// signature checked), valid now, of a client or admin NodeOU (never a peer's, orderer's
    /// or CA server's TLS certificate), its serial on none of the MSP's CRLs (the CA lists
    /// revoked TLS certificates there as Fabric CA does; serials are unique across its
    /// profiles), its CN an enrollment id.
    ///
    /// # Errors
    /// [`FhirError::Expired`] for an expired certificate, [`FhirError::Security`] otherwise.
    pub fn check_tls_certificate(&self, cert: &Certificate, now_s: i64) -> Result<(), FhirError> {
        const NOT: FhirError = FhirError::Security(
            "the client certificate is not a TLS identity of this organization",
        );
        let msp = self.current_msp()?;
        let issued = msp.tls_roots().iter().any(|root| {
            cert.issuer_raw() == root.subject_raw() && cert.verify_signed_by(root).is_ok()
        });
        if !issued {
            return Err(NOT);
        }
        if now_s < cert.not_before() {
            return Err(NOT);
        }
        if now_s > cert.not_after() {
            return Err(FhirError::Expired("the client certificate has expired"));
        }
        let ous = msp.node_ous();
        let role = cert
            .organizational_units()
            .iter()
            .any(|ou| *ou == ous.client_ou || *ou == ous.admin_ou);
        if !role {
            return Err(FhirError::Security(
                "only client and admin TLS certificates may call",
            ));
        }
        let revoked = self
            .inner
            .revoked_serials
            .read()
            .map_err(|_| FhirError::Internal("CRL lock poisoned"))?
            .contains(cert.serial());
        if revoked {
            return Err(FhirError::Security("the client certificate is revoked"));
        }
        if !valid_enrollment_id(cert.common_name()) {
            return Err(NOT);
        }
        Ok(())
    }

    /// The MSP now (replaced whole on a reload).
    fn current_msp(&self) -> Result<Arc<Msp>, FhirError> {
        Ok(self
            .inner
            .msp
            .read()
            .map_err(|_| FhirError::Internal("MSP lock poisoned"))?
            .clone())
    }

    /// Verifies `assertion` at `now_s` (Unix seconds) and the caller it names.
    ///
    /// # Errors
    /// [`FhirError::Security`] (malformed, bad signature, wrong `iss`/`sub`/`aud`, future
    /// `iat`/`nbf`, too long-lived, replayed `jti`, certificate not of the organization or
    /// revoked), [`FhirError::Expired`] (`exp` past, certificate expired),
    /// [`FhirError::Value`] (an unknown `purpose_of_use`).
    pub fn verify_assertion(&self, assertion: &str, now_s: i64) -> Result<Caller, FhirError> {
        let r = &self.inner.rules;
        let skew = i64::try_from(r.clock_skew_s).unwrap_or(i64::MAX);
        let jws = jws::parse(assertion)?;
        let der = jws.leaf_certificate()?;
        let cert = Certificate::from_der(&der)
            .map_err(|_| FhirError::Security("the assertion's certificate does not parse"))?;
        self.check_certificate(&cert, now_s)?;
        jws.verify(cert.public_key())?;
        let claims: Claims = serde_json::from_slice(&jws.payload)
            .map_err(|_| FhirError::Security("the assertion's claims are not JSON"))?;
        let client_id = format!("{}:{}", self.msp_id(), cert.common_name());
        if claims.iss.as_deref() != Some(&client_id) || claims.sub.as_deref() != Some(&client_id) {
            return Err(FhirError::Security(
                "iss and sub must be <MSP id>:<enrollment id> of the x5c certificate",
            ));
        }
        let aud_ok = match &claims.aud {
            Some(serde_json::Value::String(a)) => *a == self.inner.token_url,
            Some(serde_json::Value::Array(a)) => {
                a.iter().any(|v| v.as_str() == Some(&self.inner.token_url))
            }
            _ => false,
        };
        if !aud_ok {
            return Err(FhirError::Security("aud must be the token endpoint's URL"));
        }
        let exp = claims
            .exp
            .ok_or(FhirError::Security("the assertion has no exp"))?;
        if exp.saturating_add(skew) < now_s {
            return Err(FhirError::Expired("the assertion has expired"));
        }
        let longest = i64::try_from(r.assertion_max_lifetime_s).unwrap_or(i64::MAX);
        if exp > now_s.saturating_add(longest).saturating_add(skew) {
            return Err(FhirError::Security("the assertion's exp is too far ahead"));
        }
        for t in [claims.iat, claims.nbf].into_iter().flatten() {
            if t > now_s.saturating_add(skew) {
                return Err(FhirError::Security(
                    "the assertion's iat or nbf is in the future",
                ));
            }
        }
        let purpose = match claims.purpose_of_use.as_deref() {
            None => None,
            Some(code) => {
                Some(purpose_of_v3(code).ok_or(FhirError::Value("unknown purpose_of_use code"))?)
            }
        };
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or(FhirError::Security(
                "the assertion needs a jti of 1-256 characters",
            ))?;
        self.remember_jti(client_id, jti, exp, now_s)?;
        Ok(Caller {
            msp_id: self.msp_id().to_owned(),
            enrollment_id: cert.common_name().to_owned(),
            method: AuthMethod::BearerToken,
            purpose,
        })
    }

    /// Checks `cert` against the organization's MSP at `now_s` and that its CN may name a
    /// wallet folder.
    ///
    /// # Errors
    /// [`FhirError::Expired`] for an expired certificate, [`FhirError::Security`] otherwise.
    pub fn check_certificate(&self, cert: &Certificate, now_s: i64) -> Result<(), FhirError> {
        let msp = self.current_msp()?;
        match msp.validate(cert, now_s) {
            Ok(_) => {}
            Err(medledger_msp::Error::Expired { .. }) => {
                return Err(FhirError::Expired("the certificate has expired"));
            }
            Err(_) => {
                return Err(FhirError::Security(
                    "the certificate is not a valid identity of this organization",
                ));
            }
        }
        if !valid_enrollment_id(cert.common_name()) {
            return Err(FhirError::Security(
                "the certificate's CN is not an enrollment id",
            ));
        }
        Ok(())
    }

    fn remember_jti(
        &self,
        iss: String,
        jti: String,
        exp: i64,
        now_s: i64,
    ) -> Result<(), FhirError> {
        let mut seen = self
            .inner
            .seen
            .lock()
            .map_err(|_| FhirError::Internal("replay cache poisoned"))?;
        let key = (iss, jti);
        if seen.contains(&key) {
            return Err(FhirError::Security("the assertion's jti was used before"));
        }
        if seen.len() == seen.cap().get() {
            // Forget only an entry that can no longer be replayed.
            let skew = i64::try_from(self.inner.rules.clock_skew_s).unwrap_or(i64::MAX);
            match seen.peek_lru() {
                Some((_, e)) if e.saturating_add(skew) < now_s => {
                    seen.pop_lru();
                }
                _ => return Err(FhirError::Unavailable("too many assertions; retry later")),
            }
        }
        seen.put(key, exp);
        Ok(())
    }

    /// Issues a token for `caller` (whose certificate is `certificate`) at `now_s`.
    ///
    /// # Errors
    /// [`FhirError::Internal`] if no random bytes are available.
    pub fn issue(
        &self,
        caller: Caller,
        certificate: Certificate,
        now_s: i64,
    ) -> Result<Granted, FhirError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| FhirError::Internal("no random bytes"))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let lifetime = self.inner.rules.lifetime_s;
        let mut tokens = self
            .inner
            .tokens
            .lock()
            .map_err(|_| FhirError::Internal("token store poisoned"))?;
        tokens.retain(|_, t| t.expires_at_s > now_s);
        if tokens.len() >= self.inner.rules.replay_cache_entries {
            return Err(FhirError::Unavailable("too many tokens; retry later"));
        }
        tokens.insert(
            token.clone(),
            Issued {
                caller: caller.clone(),
                certificate,
                expires_at_s: now_s.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
            },
        );
        Ok(Granted {
            access_token: token,
            expires_in_s: lifetime,
            caller,
        })
    }

    /// Verifies the assertion and issues a token: the token endpoint's work.
    ///
    /// # Errors
    /// As [`Self::verify_assertion`] and [`Self::issue`].
    pub fn exchange(&self, assertion: &str, now_s: i64) -> Result<Granted, FhirError> {
        let caller = self.verify_assertion(assertion, now_s)?;
        // The certificate was parsed and checked above; parse again to keep it.
        let der = jws::parse(assertion)?.leaf_certificate()?;
        let cert = Certificate::from_der(&der)
            .map_err(|_| FhirError::Security("the assertion's certificate does not parse"))?;
        self.issue(caller, cert, now_s)
    }

    /// The caller of bearer token `token` at `now_s`, its certificate checked again.
    ///
    /// # Errors
    /// [`FhirError::Security`] for an unknown token or a certificate revoked since,
    /// [`FhirError::Expired`] for an expired token or certificate.
    pub fn resolve(&self, token: &str, now_s: i64) -> Result<Caller, FhirError> {
        let issued = {
            let tokens = self
                .inner
                .tokens
                .lock()
                .map_err(|_| FhirError::Internal("token store poisoned"))?;
            tokens
                .get(token)
                .cloned()
                .ok_or(FhirError::Security("unknown bearer token"))?
        };
        if issued.expires_at_s <= now_s {
            return Err(FhirError::Expired("the bearer token has expired"));
        }
        self.check_certificate(&issued.certificate, now_s)?;
        Ok(issued.caller)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use medledger_ca::{
        CaConfig, CertificateAuthority, Profile, Registration, RevokeTarget, build_csr,
    };
    use medledger_msp::crypto::SigningKey;
    use medledger_msp::ou::NodeOu;
    use serde_json::json;

    use super::*;

    const URL: &str = "https://h/fhir/auth/token";
    /// Now, Unix seconds (the test CA's certificates are valid from now on).
    fn now() -> i64 {
        medledger_msp::msp::unix_seconds(std::time::SystemTime::now())
    }

    struct Org {
        _dir: tempfile::TempDir,
        ca: CertificateAuthority,
    }

    fn org(msp_id: &str) -> Org {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(
            &dir.path().join("ca"),
            CaConfig::new(format!("ca-{msp_id}"), msp_id, "example.com"),
            "admin",
            "adminpw",
        )
        .unwrap();
        Org { _dir: dir, ca }
    }

    fn enroll(org: &mut Org, name: &str) -> (SigningKey, Certificate) {
        let secret = org
            .ca
            .register("admin", Registration::new(name, NodeOu::Client))
            .unwrap();
        let key = SigningKey::generate().unwrap();
        let csr = build_csr(&key, name, &[]).unwrap();
        let e = org
            .ca
            .enroll(name, &secret, &csr, Profile::Ecert, &[])
            .unwrap();
        (key, Certificate::from_pem(e.cert_pem.as_bytes()).unwrap())
    }

    fn service(org: &Org) -> TokenService {
        TokenService::new(org.ca.msp().unwrap(), URL, Tokens::default())
    }

    fn assertion(key: &SigningKey, cert: &Certificate, claims: serde_json::Value) -> String {
        use base64::engine::general_purpose::STANDARD;
        let header = json!({"alg": "ES256", "typ": "JWT", "x5c": [STANDARD.encode(cert.der())]});
        jws::sign(&header, &claims, &key.to_pkcs8_der().unwrap()).unwrap()
    }

    fn claims(cert: &Certificate, jti: &str) -> serde_json::Value {
        let id = format!("Org1MSP:{}", cert.common_name());
        json!({"iss": id, "sub": id, "aud": URL, "exp": now() + 120, "iat": now(), "jti": jti})
    }

    #[test]
    fn a_good_assertion_gets_a_token_that_resolves() {
        let mut o = org("Org1MSP");
        let (key, cert) = enroll(&mut o, "doctor1");
        let s = service(&o);
        let mut c = claims(&cert, "j1");
        c["purpose_of_use"] = json!("HRESCH");
        let g = s.exchange(&assertion(&key, &cert, c), now()).unwrap();
        assert_eq!(g.caller.enrollment_id, "doctor1");
        assert_eq!(g.caller.purpose, Some(Purpose::Research));
        assert_eq!(g.expires_in_s, 300);
        assert_eq!(s.resolve(&g.access_token, now() + 10).unwrap(), g.caller);
        assert!(matches!(
            s.resolve(&g.access_token, now() + 301),
            Err(FhirError::Expired(_))
        ));
        assert!(matches!(
            s.resolve("nope", now()),
            Err(FhirError::Security(_))
        ));
    }

    #[test]
    fn refused_assertions() {
        let mut o = org("Org1MSP");
        let (key, cert) = enroll(&mut o, "doctor1");
        let (other_key, _) = enroll(&mut o, "doctor2");
        let mut other_org = org("Org2MSP");
        let (o2_key, o2_cert) = enroll(&mut other_org, "doctor1");
        let s = service(&o);
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = claims(&cert, "fresh");
            f(&mut c);
            c
        };
        type Case = (&'static str, String, fn(&FhirError) -> bool);
        let security: fn(&FhirError) -> bool = |e| matches!(e, FhirError::Security(_));
        let expired: fn(&FhirError) -> bool = |e| matches!(e, FhirError::Expired(_));
        let cases: Vec<Case> = vec![
            (
                "expired",
                assertion(&key, &cert, with(&|c| c["exp"] = json!(now() - 61))),
                expired,
            ),
            (
                "future iat",
                assertion(&key, &cert, with(&|c| c["iat"] = json!(now() + 61))),
                security,
            ),
            (
                "future nbf",
                assertion(&key, &cert, with(&|c| c["nbf"] = json!(now() + 61))),
                security,
            ),
            (
                "too long-lived",
                assertion(&key, &cert, with(&|c| c["exp"] = json!(now() + 3600))),
                security,
            ),
            (
                "no exp",
                assertion(&key, &cert, with(&|c| c["exp"] = json!(null))),
                security,
            ),
            (
                "wrong aud",
                assertion(&key, &cert, with(&|c| c["aud"] = json!("https://h/other"))),
                security,
            ),
            (
                "wrong iss",
                assertion(&key, &cert, with(&|c| c["iss"] = json!("Org1MSP:doctor2"))),
                security,
            ),
            (
                "no jti",
                assertion(&key, &cert, with(&|c| c["jti"] = json!(null))),
                security,
            ),
            (
                "signed by another key",
                assertion(&other_key, &cert, claims(&cert, "k")),
                security,
            ),
            (
                "other organization's certificate",
                assertion(&o2_key, &o2_cert, claims(&o2_cert, "o")),
                security,
            ),
        ];
        for (what, token, expect) in cases {
            let e = s.verify_assertion(&token, now()).unwrap_err();
            assert!(expect(&e), "{what}: {e:?}");
        }
        let once = assertion(&key, &cert, claims(&cert, "once"));
        s.verify_assertion(&once, now()).unwrap();
        assert!(
            matches!(
                s.verify_assertion(&once, now()),
                Err(FhirError::Security(_))
            ),
            "replayed jti"
        );
    }

    #[test]
    fn a_revoked_certificate_loses_its_token() {
        let mut o = org("Org1MSP");
        let (key, cert) = enroll(&mut o, "doctor1");
        let s = service(&o);
        let g = s
            .exchange(&assertion(&key, &cert, claims(&cert, "r")), now())
            .unwrap();
        o.ca.revoke(
            "admin",
            RevokeTarget::Identity("doctor1".into()),
            "keyCompromise",
        )
        .unwrap();
        s.set_msp(o.ca.msp().unwrap()).unwrap();
        assert!(matches!(
            s.resolve(&g.access_token, now()),
            Err(FhirError::Security(_))
        ));
        assert!(matches!(
            s.verify_assertion(&assertion(&key, &cert, claims(&cert, "r2")), now()),
            Err(FhirError::Security(_))
        ));
        assert!(s.set_msp(org("Org2MSP").ca.msp().unwrap()).is_err());
    }
}
