//! X.509 certificates as the MSP reads them (RFC 5280), with Fabric CA's attribute extension.

use std::collections::BTreeMap;

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};

/// OID of Fabric CA's attribute extension (`1.2.3.4.5.6.7.8.1`), whose value is the JSON
/// document `{"attrs":{"name":"value",...}}` (fabric-ca `lib/attrmgr`).
pub const ATTRS_EXTENSION_OID: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8, 1];

/// A parsed X.509 certificate: the DER bytes plus the fields the MSP uses.
///
/// Built once per distinct certificate (parsing costs a few µs); the MSP's identity cache
/// keeps these so a repeat signature check does not parse again.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    serial: Vec<u8>,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
    common_name: String,
    organizational_units: Vec<String>,
    not_before: i64,
    not_after: i64,
    public_key: Vec<u8>,
    attributes: BTreeMap<String, String>,
    is_ca: bool,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Attributes may hold patient identifiers: never printed.
        f.debug_struct("Certificate")
            .field("serial", &self.serial_hex())
            .field("is_ca", &self.is_ca)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Parses a DER certificate.
    ///
    /// # Errors
    /// [`Error::MalformedCertificate`] if `der` is not one X.509 certificate, or its attribute
    /// extension is not Fabric CA's JSON.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| Error::MalformedCertificate(format!("DER: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::MalformedCertificate(
                "trailing bytes after certificate".into(),
            ));
        }
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let organizational_units = subject
            .iter_organizational_unit()
            .filter_map(|ou| ou.as_str().ok().map(str::to_owned))
            .collect();
        let mut attributes = BTreeMap::new();
        for ext in cert.extensions() {
            let oid: Option<Vec<u64>> = ext.oid.iter().map(|it| it.collect());
            if oid.as_deref() == Some(ATTRS_EXTENSION_OID) {
                attributes = parse_attrs(ext.value)?;
            }
        }
        Ok(Certificate {
            der: der.to_vec(),
            serial: cert.raw_serial().to_vec(),
            subject_raw: subject.as_raw().to_vec(),
            issuer_raw: cert.issuer().as_raw().to_vec(),
            common_name,
            organizational_units,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            public_key: cert.public_key().subject_public_key.data.to_vec(),
            attributes,
            is_ca: cert.is_ca(),
        })
    }

    /// Parses the first `CERTIFICATE` block of a PEM document.
    ///
    /// # Errors
    /// [`Error::MalformedCertificate`] if there is no PEM certificate or it does not parse.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self> {
        let blocks = Self::all_from_pem(pem_text)?;
        blocks
            .into_iter()
            .next()
            .ok_or_else(|| Error::MalformedCertificate("no PEM CERTIFICATE block".into()))
    }

    /// Parses every `CERTIFICATE` block of a PEM document (a bundle), in order.
    ///
    /// # Errors
    /// [`Error::MalformedCertificate`] if the PEM is malformed or a certificate does not parse.
    pub fn all_from_pem(pem_text: &[u8]) -> Result<Vec<Self>> {
        let blocks = pem::parse_many(pem_text)
            .map_err(|e| Error::MalformedCertificate(format!("PEM: {e}")))?;
        blocks
            .iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| Self::from_der(b.contents()))
            .collect()
    }

    /// DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM encoding (`-----BEGIN CERTIFICATE-----`), as Fabric puts in `SerializedIdentity.id_bytes`.
    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.der.clone()))
    }

    /// Serial number, big-endian bytes as encoded.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// Serial number, lowercase hex without separators.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }

    /// Raw DER of the subject name.
    pub fn subject_raw(&self) -> &[u8] {
        &self.subject_raw
    }

    /// Raw DER of the issuer name.
    pub fn issuer_raw(&self) -> &[u8] {
        &self.issuer_raw
    }

    /// Whether subject and issuer names are equal (a root candidate).
    pub fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// Subject common name (Fabric CA puts the enrollment id there); empty if absent.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// Subject organizational units, in order (NodeOU, then affiliation parts).
    pub fn organizational_units(&self) -> &[String] {
        &self.organizational_units
    }

    /// Start of validity, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// End of validity, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Subject public key bits (for P-256: the 65-byte uncompressed SEC 1 point).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// Fabric CA attributes from extension 1.2.3.4.5.6.7.8.1 (empty if the extension is absent).
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// One attribute's value, e.g. `attribute("ehr.role") == Some("doctor")`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Whether basic constraints mark this a CA certificate.
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }

    /// Verifies that `issuer`'s key signed this certificate.
    ///
    /// # Errors
    /// [`Error::BadCertificateSignature`] if it did not (or the algorithm is unsupported).
    pub fn verify_signed_by(&self, issuer: &Certificate) -> Result<()> {
        let bad = || Error::BadCertificateSignature {
            serial: self.serial_hex(),
        };
        let (_, me) = X509Certificate::from_der(&self.der).map_err(|_| bad())?;
        let (_, parent) = X509Certificate::from_der(&issuer.der).map_err(|_| bad())?;
        me.verify_signature(Some(parent.public_key()))
            .map_err(|_| bad())
    }
}

fn parse_attrs(value: &[u8]) -> Result<BTreeMap<String, String>> {
    #[derive(serde::Deserialize)]
    struct Attrs {
        attrs: BTreeMap<String, String>,
    }
    serde_json::from_slice::<Attrs>(value)
        .map(|a| a.attrs)
        .map_err(|_| {
            Error::MalformedCertificate("attribute extension is not {\"attrs\":{...}} JSON".into())
        })
}

/// Encodes attributes as Fabric CA's extension value: `{"attrs":{...}}`.
pub fn encode_attrs(attrs: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::json!({ "attrs": attrs })
        .to_string()
        .into_bytes()
}
