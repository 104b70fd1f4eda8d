//! Fabric's MSP folder layout: writing key material after an enrollment and loading MSPs and
//! signing identities from it.
//!
//! ```text
//! <dir>/msp/cacerts/ca-cert.pem         root CA certificate(s)
//! <dir>/msp/intermediatecerts/          intermediate CA certificates (optional)
//! <dir>/msp/crls/                       CRLs, PEM (optional)
//! <dir>/msp/signcerts/cert.pem          the identity's certificate
//! <dir>/msp/keystore/priv_sk            its private key, PKCS#8 PEM, mode 0600
//! <dir>/msp/tlscacerts/tlsca-cert.pem   TLS root CA certificate(s)
//! <dir>/msp/config.yaml                 NodeOUs (Fabric's format)
//! <dir>/tls/ca.crt, server.crt, server.key   TLS material of a node (key 0600)
//! ```
//! The same layout as `cryptogen` and `fabric-ca-client` produce, so Fabric tooling and the
//! Fabric Gateway client libraries read it unchanged.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cert::Certificate;
use crate::crypto::SigningKey;
use crate::error::{Error, Result};
use crate::fsutil::{self, write_atomic};
use crate::identity::SigningIdentity;
use crate::msp::{MspConfig, NodeOuConfig};

/// File name of the root CA certificate inside `msp/cacerts`.
pub const CA_CERT_FILE: &str = "ca-cert.pem";
/// File name of the TLS CA certificate inside `msp/tlscacerts`.
pub const TLSCA_CERT_FILE: &str = "tlsca-cert.pem";

/// `config.yaml` as Fabric writes it (`NodeOUs` section).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FabricMspConfigYaml {
    #[serde(rename = "NodeOUs")]
    node_ous: Option<NodeOusYaml>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeOusYaml {
    enable: bool,
    #[serde(rename = "ClientOUIdentifier")]
    client: Option<OuIdentifierYaml>,
    #[serde(rename = "PeerOUIdentifier")]
    peer: Option<OuIdentifierYaml>,
    #[serde(rename = "AdminOUIdentifier")]
    admin: Option<OuIdentifierYaml>,
    #[serde(rename = "OrdererOUIdentifier")]
    orderer: Option<OuIdentifierYaml>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OuIdentifierYaml {
    #[serde(
        rename = "Certificate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    certificate: Option<String>,
    #[serde(rename = "OrganizationalUnitIdentifier")]
    ou: String,
}

fn node_ous_yaml(config: &NodeOuConfig) -> String {
    let ident = |ou: &str| {
        Some(OuIdentifierYaml {
            certificate: Some(format!("cacerts/{CA_CERT_FILE}")),
            ou: ou.to_owned(),
        })
    };
    let doc = FabricMspConfigYaml {
        node_ous: Some(NodeOusYaml {
            enable: config.enable,
            client: ident(&config.client_ou),
            peer: ident(&config.peer_ou),
            admin: ident(&config.admin_ou),
            orderer: ident(&config.orderer_ou),
        }),
    };
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

/// Key material to write into an MSP folder.
#[derive(Debug)]
pub struct MspMaterial<'a> {
    /// Root CA certificate, PEM.
    pub ca_cert_pem: &'a str,
    /// TLS root CA certificate, PEM.
    pub tls_ca_cert_pem: &'a str,
    /// The identity's certificate, PEM.
    pub cert_pem: &'a str,
    /// The identity's private key.
    pub key: &'a SigningKey,
}

/// Writes `<dir>/msp/...` for an enrolled identity (keystore mode 0600), with Fabric's
/// `config.yaml` enabling NodeOUs.
///
/// # Errors
/// [`Error::Io`] or [`Error::Key`].
pub fn write_msp(dir: &Path, material: &MspMaterial<'_>) -> Result<PathBuf> {
    let msp = dir.join("msp");
    write_atomic(
        &msp.join("cacerts").join(CA_CERT_FILE),
        material.ca_cert_pem.as_bytes(),
        false,
    )?;
    write_atomic(
        &msp.join("tlscacerts").join(TLSCA_CERT_FILE),
        material.tls_ca_cert_pem.as_bytes(),
        false,
    )?;
    write_atomic(
        &msp.join("signcerts").join("cert.pem"),
        material.cert_pem.as_bytes(),
        false,
    )?;
    write_atomic(
        &msp.join("keystore").join("priv_sk"),
        material.key.to_pkcs8_pem()?.as_bytes(),
        true,
    )?;
    write_atomic(
        &msp.join("config.yaml"),
        node_ous_yaml(&NodeOuConfig::default()).as_bytes(),
        false,
    )?;
    Ok(msp)
}

/// Writes `<dir>/tls/{ca.crt, server.crt, server.key}` (`tls/` mode 0700, key mode 0600).
///
/// # Errors
/// [`Error::Io`] or [`Error::Key`].
pub fn write_tls(
    dir: &Path,
    tls_ca_cert_pem: &str,
    cert_pem: &str,
    key: &SigningKey,
) -> Result<PathBuf> {
    let tls = dir.join("tls");
    fsutil::create_private_dir(&tls)?;
    write_atomic(&tls.join("ca.crt"), tls_ca_cert_pem.as_bytes(), false)?;
    write_atomic(&tls.join("server.crt"), cert_pem.as_bytes(), false)?;
    write_atomic(
        &tls.join("server.key"),
        key.to_pkcs8_pem()?.as_bytes(),
        true,
    )?;
    Ok(tls)
}

fn pem_certs_in(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut ders = Vec::new();
    for file in fsutil::files_in(dir)? {
        for cert in Certificate::all_from_pem(&fsutil::read(&file)?)? {
            ders.push(cert.der().to_vec());
        }
    }
    Ok(ders)
}

/// Loads an MSP definition from an MSP folder (`cacerts`, `intermediatecerts`, `crls`,
/// `tlscacerts`, `config.yaml`). Without `config.yaml`, NodeOUs are disabled, as in Fabric.
///
/// # Errors
/// [`Error::Io`], [`Error::MalformedCertificate`], [`Error::InvalidCrl`],
/// [`Error::InvalidMspConfig`] for a `config.yaml` that does not parse.
pub fn load_msp_config(msp_dir: &Path, msp_id: &str) -> Result<MspConfig> {
    let mut crls = Vec::new();
    for file in fsutil::files_in(&msp_dir.join("crls"))? {
        let bytes = fsutil::read(&file)?;
        let blocks = pem::parse_many(&bytes).map_err(|e| Error::InvalidCrl(format!("PEM: {e}")))?;
        crls.extend(
            blocks
                .into_iter()
                .filter(|b| b.tag() == "X509 CRL")
                .map(|b| b.into_contents()),
        );
    }
    let config_path = msp_dir.join("config.yaml");
    let node_ous = if config_path.exists() {
        let doc: FabricMspConfigYaml = serde_yaml_ng::from_slice(&fsutil::read(&config_path)?)
            .map_err(|e| Error::InvalidMspConfig {
                msp_id: msp_id.to_owned(),
                reason: format!("config.yaml: {e}"),
            })?;
        match doc.node_ous {
            Some(n) => {
                let d = NodeOuConfig::default();
                let pick = |o: Option<OuIdentifierYaml>, default: String| {
                    o.map(|i| i.ou).unwrap_or(default)
                };
                NodeOuConfig {
                    enable: n.enable,
                    client_ou: pick(n.client, d.client_ou),
                    peer_ou: pick(n.peer, d.peer_ou),
                    admin_ou: pick(n.admin, d.admin_ou),
                    orderer_ou: pick(n.orderer, d.orderer_ou),
                }
            }
            None => NodeOuConfig {
                enable: false,
                ..NodeOuConfig::default()
            },
        }
    } else {
        NodeOuConfig {
            enable: false,
            ..NodeOuConfig::default()
        }
    };
    Ok(MspConfig {
        msp_id: msp_id.to_owned(),
        root_certs: pem_certs_in(&msp_dir.join("cacerts"))?,
        intermediate_certs: pem_certs_in(&msp_dir.join("intermediatecerts"))?,
        crls,
        node_ous,
        tls_root_certs: pem_certs_in(&msp_dir.join("tlscacerts"))?,
    })
}

/// Loads the signing identity of an MSP folder: the first certificate in `signcerts` and the
/// key in `keystore` that matches it.
///
/// # Errors
/// [`Error::Io`], [`Error::MalformedCertificate`], [`Error::Key`] if no keystore file matches
/// the certificate.
pub fn load_signing_identity(msp_dir: &Path, msp_id: &str) -> Result<SigningIdentity> {
    let signcerts = fsutil::files_in(&msp_dir.join("signcerts"))?;
    let cert_file = signcerts.first().ok_or_else(|| {
        Error::io(
            msp_dir.join("signcerts"),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no certificate"),
        )
    })?;
    let cert = Certificate::from_pem(&fsutil::read(cert_file)?)?;
    for key_file in fsutil::files_in(&msp_dir.join("keystore"))? {
        if let Ok(key) = SigningKey::from_pem(&fsutil::read(&key_file)?)
            && key.public_key() == cert.public_key()
        {
            return SigningIdentity::new(msp_id, cert, key);
        }
    }
    Err(Error::Key(format!(
        "no key in {} matches certificate serial {}",
        msp_dir.join("keystore").display(),
        cert.serial_hex()
    )))
}
