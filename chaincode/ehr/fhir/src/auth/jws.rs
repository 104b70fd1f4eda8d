//! Compact JWS with ES256 only (RFC 7515, RFC 7518 §3.4: ECDSA P-256 SHA-256, the signature
//! the 64 bytes `R ‖ S`), over aws-lc-rs: what a SMART Backend Services client assertion is
//! (RFC 7523). No JWT crate: the ones at hand link `ring` (ADR 0039).

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;

use crate::outcome::FhirError;

/// The protected header of an assertion.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Header {
    /// `alg`: must be `ES256`.
    pub alg: String,
    /// `typ`: `JWT` if present.
    #[serde(default)]
    pub typ: Option<String>,
    /// `x5c`: the signer's certificate chain, standard base64 DER, end entity first.
    #[serde(default)]
    pub x5c: Vec<String>,
    /// `crit`: extensions the verifier must understand; none are, so any refuses.
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

/// A compact JWS split and decoded, not yet verified.
#[derive(Debug, Clone)]
pub struct Compact {
    /// The decoded header.
    pub header: Header,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    signing_input: String,
    signature: Vec<u8>,
}

/// Longest compact JWS accepted, bytes (an assertion with one certificate is ~1.5 kB).
pub const MAX_JWS_BYTES: usize = 16 * 1024;

/// Splits and decodes `token` (`b64url(header).b64url(payload).b64url(signature)`).
///
/// # Errors
/// [`FhirError::Security`] if it is too long, not three base64url parts, the header not
/// JSON, `alg` not `ES256` (`none`, HS*, RS* … refused), `typ` not `JWT`, or `crit` present.
pub fn parse(token: &str) -> Result<Compact, FhirError> {
    const BAD: FhirError = FhirError::Security("the assertion is not a compact JWS");
    if token.len() > MAX_JWS_BYTES {
        return Err(BAD);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD);
    };
    let header_bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| BAD)?;
    let header: Header = serde_json::from_slice(&header_bytes).map_err(|_| BAD)?;
    if header.alg != "ES256" {
        return Err(FhirError::Security("the assertion's alg must be ES256"));
    }
    if header
        .typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
    {
        return Err(FhirError::Security("the assertion's typ must be JWT"));
    }
    if header.crit.is_some() {
        return Err(FhirError::Security("the assertion has critical extensions"));
    }
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| BAD)?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| BAD)?;
    Ok(Compact {
        header,
        payload,
        signing_input: format!("{h}.{p}"),
        signature,
    })
}

impl Compact {
    /// Verifies the ES256 signature with `public_key` (an uncompressed SEC 1 P-256 point, 65
    /// bytes).
    ///
    /// # Errors
    /// [`FhirError::Security`] if it does not verify.
    pub fn verify(&self, public_key: &[u8]) -> Result<(), FhirError> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| FhirError::Security("the assertion's signature does not verify"))
    }

    /// The DER of `x5c`'s first certificate.
    ///
    /// # Errors
    /// [`FhirError::Security`] without `x5c` or with one that is not base64.
    pub fn leaf_certificate(&self) -> Result<Vec<u8>, FhirError> {
        let first = self
            .header
            .x5c
            .first()
            .ok_or(FhirError::Security("the assertion has no x5c certificate"))?;
        STANDARD
            .decode(first)
            .map_err(|_| FhirError::Security("the assertion's x5c is not base64"))
    }
}

/// Signs a compact JWS with ES256: `header` and `claims` as JSON, the key as PKCS#8 DER
/// (a Medledger enrollment key: `SigningKey::to_pkcs8_der`). For clients (`medledger fhir
/// token`, tests).
///
/// # Errors
/// [`FhirError::Internal`] if the key is not a P-256 PKCS#8 key or signing fails.
pub fn sign(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    pkcs8: &[u8],
) -> Result<String, FhirError> {
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
        .map_err(|_| FhirError::Internal("the key is not a P-256 PKCS#8 key"))?;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let sig = key
        .sign(&rng, input.as_bytes())
        .map_err(|_| FhirError::Internal("signing failed"))?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// RFC 7515 Appendix A.3: an ES256 JWS and the key that signed it.
    const A3_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn a3_key() -> Vec<u8> {
        let mut k = vec![4u8];
        k.extend(URL_SAFE_NO_PAD.decode(A3_X).unwrap());
        k.extend(URL_SAFE_NO_PAD.decode(A3_Y).unwrap());
        k
    }

    #[test]
    fn rfc7515_a3_verifies() {
        let jws = parse(A3_JWS).unwrap();
        jws.verify(&a3_key()).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&jws.payload).unwrap();
        assert_eq!(claims["iss"], "joe");
    }

    #[test]
    fn tampered_payload_or_signature_fails() {
        let (input, sig) = A3_JWS.rsplit_once('.').unwrap();
        let (h, _) = input.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(br#"{"iss":"mallory"}"#);
        let tampered = format!("{h}.{other}.{sig}");
        assert!(parse(&tampered).unwrap().verify(&a3_key()).is_err());
        let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
        bytes[10] ^= 1;
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert!(parse(&flipped).unwrap().verify(&a3_key()).is_err());
    }

    #[test]
    fn other_algorithms_are_refused() {
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"es256"}"#,
            r#"{"alg":"ES256","typ":"JOSE+JSON"}"#,
            r#"{"alg":"ES256","crit":["b64"]}"#,
        ] {
            let token = format!("{}.e30.", URL_SAFE_NO_PAD.encode(header));
            assert!(
                matches!(parse(&token), Err(FhirError::Security(_))),
                "{header}"
            );
        }
        for junk in ["", "a.b", "a.b.c.d", "!!.e30.AA"] {
            assert!(parse(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn sign_then_verify() {
        let key = medledger_msp::crypto::SigningKey::generate().unwrap();
        let token = sign(
            &serde_json::json!({"alg": "ES256", "typ": "JWT"}),
            &serde_json::json!({"iss": "x"}),
            &key.to_pkcs8_der().unwrap(),
        )
        .unwrap();
        parse(&token).unwrap().verify(key.public_key()).unwrap();
    }
}
