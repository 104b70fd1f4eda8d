//! Hand-written conveniences on generated messages.

use crate::msp::SerializedIdentity;

impl SerializedIdentity {
    /// Builds the identity of a member of MSP `mspid` whose X.509 certificate
    /// is `pem` (PEM-encoded, as Fabric stores it in `id_bytes`).
    pub fn new(mspid: impl Into<String>, pem: impl Into<Vec<u8>>) -> Self {
        Self {
            mspid: mspid.into(),
            id_bytes: pem.into(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn serialized_identity_new_sets_both_fields() {
        let id = SerializedIdentity::new("Org1MSP", b"pem".to_vec());
        assert_eq!(id.mspid, "Org1MSP");
        assert_eq!(id.id_bytes, b"pem");
        let decoded = SerializedIdentity::decode(id.encode_to_vec().as_slice());
        assert_eq!(decoded.ok(), Some(id));
    }
}
