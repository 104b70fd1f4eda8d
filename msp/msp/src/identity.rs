//! Identities: `msp.SerializedIdentity` (MSP id + PEM certificate) and signing identities.

use medledger_proto::msp::SerializedIdentity;
use prost::Message;

use crate::cert::Certificate;
use crate::crypto::SigningKey;
use crate::error::{Error, Result};

/// Serializes an identity as Fabric's `msp.SerializedIdentity { mspid = 1, id_bytes = 2 }`
/// with `id_bytes` the PEM certificate: the bytes that go in `SignatureHeader.creator` and from
/// which the tx_id is computed.
pub fn serialize_identity(msp_id: &str, cert: &Certificate) -> Vec<u8> {
    SerializedIdentity {
        mspid: msp_id.to_owned(),
        id_bytes: cert.to_pem().into_bytes(),
    }
    .encode_to_vec()
}

/// Decodes a `msp.SerializedIdentity` and parses its PEM certificate.
///
/// Only one encoding of an identity is accepted, so that one key cannot pass for two signers:
/// the protobuf must re-encode to exactly `bytes` (no unknown, repeated or out-of-order
/// fields), and `id_bytes` must be one PEM `CERTIFICATE` block with nothing but whitespace
/// around it. (PEM line lengths may still differ between encoders; identities are therefore
/// compared by certificate, [`crate::msp::VerifiedIdentity::id`], as Fabric does.)
///
/// # Errors
/// [`Error::MalformedIdentity`] if the protobuf does not decode, is not in canonical form, the
/// MSP id is empty, or `id_bytes` is not exactly one PEM certificate;
/// [`Error::MalformedCertificate`] if the certificate does not parse.
pub fn deserialize_identity(bytes: &[u8]) -> Result<(String, Certificate)> {
    let sid = SerializedIdentity::decode(bytes)
        .map_err(|e| Error::MalformedIdentity(format!("protobuf: {e}")))?;
    if sid.mspid.is_empty() {
        return Err(Error::MalformedIdentity("empty mspid".into()));
    }
    if sid.encode_to_vec() != bytes {
        return Err(Error::MalformedIdentity(
            "not in canonical protobuf form".into(),
        ));
    }
    let text = sid.id_bytes.trim_ascii();
    let single_block = text.starts_with(b"-----BEGIN CERTIFICATE-----")
        && text.ends_with(b"-----END CERTIFICATE-----")
        && pem::parse_many(text).is_ok_and(|blocks| blocks.len() == 1);
    if !single_block {
        return Err(Error::MalformedIdentity(
            "id_bytes must be exactly one PEM certificate".into(),
        ));
    }
    let cert = Certificate::from_pem(text)?;
    Ok((sid.mspid, cert))
}

/// An identity that can sign: its certificate, MSP id and private key.
///
/// Loaded from an MSP folder ([`crate::folder::load_signing_identity`]) or built after an
/// enrollment. Signatures follow Fabric: ECDSA P-256 over SHA-256, DER, low-S.
#[derive(Debug)]
pub struct SigningIdentity {
    msp_id: String,
    cert: Certificate,
    serialized: Vec<u8>,
    key: SigningKey,
}

impl SigningIdentity {
    /// Pairs a certificate with its private key.
    ///
    /// # Errors
    /// [`Error::Key`] if the key's public half is not the certificate's public key.
    pub fn new(msp_id: impl Into<String>, cert: Certificate, key: SigningKey) -> Result<Self> {
        if cert.public_key() != key.public_key() {
            return Err(Error::Key(format!(
                "private key does not match certificate serial {}",
                cert.serial_hex()
            )));
        }
        let msp_id = msp_id.into();
        let serialized = serialize_identity(&msp_id, &cert);
        Ok(SigningIdentity {
            msp_id,
            cert,
            serialized,
            key,
        })
    }

    /// MSP id.
    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// Serialized `msp.SerializedIdentity` bytes (the `creator` of headers Fabric signs).
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }

    /// The private key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs `message` (Fabric: ECDSA P-256 over SHA-256, DER, low-S).
    ///
    /// # Errors
    /// [`Error::Key`] if signing fails.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.key.sign(message)
    }
}
