//! The crate's error type: one enum, structured fields, no patient data.

use crate::ou::NodeOu;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in MSP validation, signing and MSP folders.
///
/// Messages name MSP ids, enrollment ids, serial numbers and file paths, never certificate
/// attributes' values (they may carry patient identifiers).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A signature is not DER-encoded ECDSA (`SEQUENCE { r INTEGER, s INTEGER }`).
    #[error("malformed signature: not a DER-encoded ECDSA signature")]
    MalformedSignature,
    /// A signature's `s` is above n/2; Fabric accepts only low-S signatures.
    #[error("invalid signature: high-S value (Fabric requires low-S ECDSA signatures)")]
    HighS,
    /// The signature does not verify under the identity's public key.
    #[error("signature verification failed")]
    BadSignature,
    /// A key could not be generated, read or used.
    #[error("key error: {0}")]
    Key(String),
    /// Bytes that should hold a certificate (PEM or DER) do not.
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
    /// Bytes that should hold a `msp.SerializedIdentity` do not.
    #[error("malformed serialized identity: {0}")]
    MalformedIdentity(String),
    /// The identity names an MSP this validator does not know.
    #[error("unknown MSP {msp_id:?}")]
    UnknownMsp {
        /// MSP id the identity claimed, as the client sent it, cut to
        /// [`ECHOED_MSP_ID_CHARS`] characters (then `…`): it reaches logs and replies.
        msp_id: String,
    },
    /// No chain from the certificate to one of the MSP's root certificates.
    #[error("certificate (serial {serial}) is not issued by any CA of MSP {msp_id}")]
    UnknownAuthority {
        /// MSP id validated against.
        msp_id: String,
        /// Certificate serial, hex.
        serial: String,
    },
    /// A certificate in the chain does not carry a valid signature from its issuer: it was
    /// altered after issuing, or it names an issuer whose key did not sign it.
    #[error("certificate (serial {serial}) has an invalid signature from its issuer")]
    BadCertificateSignature {
        /// Certificate serial, hex.
        serial: String,
    },
    /// A certificate in the chain is outside its validity period at the time checked.
    #[error("certificate (serial {serial}) has expired (not after {not_after})")]
    Expired {
        /// Certificate serial, hex.
        serial: String,
        /// End of validity, RFC 3339.
        not_after: String,
    },
    /// A certificate in the chain is not valid yet at the time checked.
    #[error("certificate (serial {serial}) is not yet valid (not before {not_before})")]
    NotYetValid {
        /// Certificate serial, hex.
        serial: String,
        /// Start of validity, RFC 3339.
        not_before: String,
    },
    /// A certificate in the chain is on its issuer's CRL.
    #[error("certificate (serial {serial}) has been revoked")]
    Revoked {
        /// Certificate serial, hex.
        serial: String,
    },
    /// With NodeOUs enabled, the identity must carry exactly one known NodeOU.
    #[error("identity (serial {serial}) of MSP {msp_id} has no valid NodeOU: {reason}")]
    InvalidNodeOu {
        /// MSP id validated against.
        msp_id: String,
        /// Certificate serial, hex.
        serial: String,
        /// What is wrong (none, several).
        reason: String,
    },
    /// The identity's NodeOU does not fit the role it acts in.
    #[error("identity of MSP {msp_id} has NodeOU {actual:?}, expected {expected}")]
    WrongNodeOu {
        /// MSP id.
        msp_id: String,
        /// Role required.
        expected: NodeOu,
        /// Role the identity has.
        actual: Option<NodeOu>,
    },
    /// An MSP's configuration is unusable (no root, bad CRL, bad NodeOU file).
    #[error("invalid MSP configuration for {msp_id}: {reason}")]
    InvalidMspConfig {
        /// MSP id.
        msp_id: String,
        /// What is wrong.
        reason: String,
    },
    /// A CRL does not parse or is not signed by a CA of the MSP.
    #[error("invalid CRL: {0}")]
    InvalidCrl(String),
    /// A policy could not be parsed.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// File system error with the path involved. The I/O error is in the message and not
    /// returned as `source()`, so a report of the chain prints it once (ADR 0036).
    #[error("{path}: {error}")]
    Io {
        /// Path read or written.
        path: std::path::PathBuf,
        /// Underlying error (in the message, not a source).
        error: std::io::Error,
    },
}

/// At most this many characters of an MSP id a client sent are echoed in
/// [`Error::UnknownMsp`] (the orderer echoes as much of a channel id it does not serve).
pub const ECHOED_MSP_ID_CHARS: usize = 64;

/// `text` cut to `max_chars` characters, with `…` when cut: for echoing a client's value in an
/// error message.
pub(crate) fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<std::path::PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// The I/O error is printed once in the chain the `medledger` CLI prints (`{:#}`).
    #[test]
    fn file_error_prints_its_cause_once() {
        let e = Error::io("msp/signcerts", std::io::Error::other("permission denied"));
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "msp/signcerts: permission denied"
        );
    }
}
