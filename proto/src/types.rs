//! Validated identifier types.
//!
//! Each identifier is a string newtype that can only hold a value satisfying
//! its rule. All of them implement `FromStr`, `TryFrom<&str>`,
//! `TryFrom<String>`, `Display`, `AsRef<str>` and `Borrow<str>`, and
//! (de)serialize with serde as plain strings, validating on deserialization.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The kind of identifier an [`IdError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A [`TxId`].
    TxId,
    /// A [`ChannelId`].
    ChannelId,
    /// An [`MspId`].
    MspId,
    /// A [`ChaincodeName`].
    ChaincodeName,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TxId => "transaction ID",
            Self::ChannelId => "channel ID",
            Self::MspId => "MSP ID",
            Self::ChaincodeName => "chaincode name",
        })
    }
}

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The string is empty.
    #[error("{kind} illegal, cannot be empty")]
    Empty {
        /// Identifier kind.
        kind: IdKind,
    },
    /// The string is longer than allowed.
    #[error("{kind} illegal, cannot be longer than {max} characters (got {len})")]
    TooLong {
        /// Identifier kind.
        kind: IdKind,
        /// Actual length in bytes.
        len: usize,
        /// Maximum length in bytes.
        max: usize,
    },
    /// The string does not have the one length allowed.
    #[error("{kind} '{value}' must be exactly {expected} characters long (got {len})")]
    WrongLength {
        /// Identifier kind.
        kind: IdKind,
        /// The rejected value.
        value: String,
        /// Actual length in bytes.
        len: usize,
        /// Required length in bytes.
        expected: usize,
    },
    /// The string contains a character outside the allowed set.
    #[error("{kind} '{value}' contains illegal character {ch:?} at byte {index}")]
    IllegalChar {
        /// Identifier kind.
        kind: IdKind,
        /// The rejected value.
        value: String,
        /// The first offending character.
        ch: char,
        /// Its byte offset.
        index: usize,
    },
    /// All characters are allowed but their arrangement is not.
    #[error("{kind} '{value}' is malformed: {reason}")]
    Malformed {
        /// Identifier kind.
        kind: IdKind,
        /// The rejected value.
        value: String,
        /// What rule is broken.
        reason: &'static str,
    },
}

/// Checks length bounds; `max` is inclusive and counted in bytes.
fn check_len(kind: IdKind, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max {
        return Err(IdError::TooLong {
            kind,
            len: s.len(),
            max,
        });
    }
    Ok(())
}

/// Returns an error for the first character of `s` not accepted by `ok`.
fn check_chars(kind: IdKind, s: &str, ok: impl Fn(char) -> bool) -> Result<(), IdError> {
    match s.char_indices().find(|&(_, c)| !ok(c)) {
        Some((index, ch)) => Err(IdError::IllegalChar {
            kind,
            value: s.to_owned(),
            ch,
            index,
        }),
        None => Ok(()),
    }
}

macro_rules! string_id {
    ($name:ident) => {
        impl $name {
            /// Validates `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                Self::validate(&value)?;
                Ok(Self(value))
            }

            /// Checks `value` against the rule without building an identifier (no
            /// allocation when it holds), for a string that is only compared or looked up.
            ///
            /// # Errors
            /// The [`IdError`] that [`Self::new`] would return.
            pub fn check(value: &str) -> Result<(), IdError> {
                Self::validate(value)
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the identifier into its string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Hash, equality and order are the string's, so maps keyed by the id can be looked
        /// up with a `&str` taken from the wire without building an id.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

/// A transaction id: exactly 64 lowercase hexadecimal characters.
///
/// Fabric derives it as `hex(SHA-256(nonce || creator))`, where `nonce` and
/// `creator` (the serialized `msp.SerializedIdentity`) come from the
/// transaction's `SignatureHeader` (`protoutil.ComputeTxID` in
/// hyperledger/fabric); committers reject transactions whose `tx_id` differs
/// (`BAD_PROPOSAL_TXID`). Use [`TxId::compute`] to derive one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TxId(String);

impl TxId {
    /// Length of a transaction id in characters.
    pub const LEN: usize = 64;

    /// `hex(SHA-256(nonce || creator))`, as Fabric's `protoutil.ComputeTxID`.
    /// `creator` is the serialized `msp.SerializedIdentity` of the submitter.
    pub fn compute(nonce: &[u8], creator: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(nonce);
        hasher.update(creator);
        Self(hex::encode(hasher.finalize()))
    }

    fn validate(s: &str) -> Result<(), IdError> {
        let kind = IdKind::TxId;
        if s.is_empty() {
            return Err(IdError::Empty { kind });
        }
        check_chars(kind, s, |c| matches!(c, '0'..='9' | 'a'..='f'))?;
        if s.len() != Self::LEN {
            return Err(IdError::WrongLength {
                kind,
                value: s.to_owned(),
                len: s.len(),
                expected: Self::LEN,
            });
        }
        Ok(())
    }
}
string_id!(TxId);

/// A channel name.
///
/// Fabric's rule (`ValidateChannelID` in hyperledger/fabric
/// `common/configtx/validator.go`): it matches `^[a-z][a-z0-9.-]*$` and is
/// shorter than 250 characters, i.e. 1 to 249 characters, lowercase ASCII
/// letters, digits, `.` and `-`, starting with a letter. (This is the
/// intersection of what Kafka topics and CouchDB database names accept.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelId(String);

impl ChannelId {
    /// Maximum length in characters.
    pub const MAX_LEN: usize = 249;

    fn validate(s: &str) -> Result<(), IdError> {
        let kind = IdKind::ChannelId;
        check_len(kind, s, Self::MAX_LEN)?;
        check_chars(kind, s, |c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '-'))?;
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(IdError::Malformed {
                kind,
                value: s.to_owned(),
                reason: "must start with a lowercase letter",
            });
        }
        Ok(())
    }
}
string_id!(ChannelId);

/// The identifier of a membership service provider (an organisation), as
/// carried in `msp.SerializedIdentity.mspid`, e.g. `Org1MSP`.
///
/// Rule: 1 to 249 characters from ASCII letters, digits, `.`, `-` and `_`,
/// and not `.` or `..`. Fabric's MSP layer itself accepts any non-empty
/// string; the bound here is Fabric's rule for channel configuration element
/// names (`validateConfigID` in hyperledger/fabric
/// `common/configtx/validator.go`: `[a-zA-Z0-9.-]+`, shorter than 250, not
/// `.`/`..`), since an organisation's MSP ID names its group in the channel
/// configuration, widened with `_`, which MSP IDs in the wild use. Keeping it
/// to this set makes MSP IDs safe in file names, URLs and log lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MspId(String);

impl MspId {
    /// Maximum length in characters.
    pub const MAX_LEN: usize = 249;

    fn validate(s: &str) -> Result<(), IdError> {
        let kind = IdKind::MspId;
        check_len(kind, s, Self::MAX_LEN)?;
        check_chars(kind, s, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
        })?;
        if s == "." || s == ".." {
            return Err(IdError::Malformed {
                kind,
                value: s.to_owned(),
                reason: "'.' and '..' are not allowed",
            });
        }
        Ok(())
    }
}
string_id!(MspId);

/// The name of a user chaincode.
///
/// Fabric's lifecycle rule (`ChaincodeNameRegExp` in hyperledger/fabric
/// `core/chaincode/lifecycle/lifecycle.go`): `^[a-zA-Z0-9]+([-_][a-zA-Z0-9]+)*$`,
/// i.e. ASCII alphanumeric runs separated by single `-` or `_`, with no
/// separator at either end. Fabric sets no length limit and neither do we.
/// System chaincode names such as `_lifecycle` deliberately do not match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChaincodeName(String);

impl ChaincodeName {
    fn validate(s: &str) -> Result<(), IdError> {
        let kind = IdKind::ChaincodeName;
        if s.is_empty() {
            return Err(IdError::Empty { kind });
        }
        check_chars(kind, s, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_')
        })?;
        let malformed = |reason| IdError::Malformed {
            kind,
            value: s.to_owned(),
            reason,
        };
        let is_sep = |c: char| c == '-' || c == '_';
        if s.starts_with(is_sep) {
            return Err(malformed("must start with a letter or digit"));
        }
        if s.ends_with(is_sep) {
            return Err(malformed("must end with a letter or digit"));
        }
        if s.as_bytes()
            .windows(2)
            .any(|w| is_sep(char::from(w[0])) && is_sep(char::from(w[1])))
        {
            return Err(malformed("'-' and '_' must separate letters or digits"));
        }
        Ok(())
    }
}
string_id!(ChaincodeName);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn err<T: FromStr<Err = IdError> + fmt::Debug>(s: &str) -> IdError {
        match s.parse::<T>() {
            Ok(v) => panic!("{s:?} unexpectedly valid: {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn tx_id_valid() {
        let s = "a".repeat(64);
        let id: TxId = s.parse().unwrap();
        assert_eq!(id.as_str(), s);
        assert_eq!(id.to_string(), s);
        assert_eq!(TxId::try_from(s.as_str()).unwrap(), id);
        let hex64 = "0123456789abcdef".repeat(4);
        assert!(TxId::new(hex64).is_ok());
    }

    #[test]
    fn tx_id_invalid() {
        assert_eq!(err::<TxId>(""), IdError::Empty { kind: IdKind::TxId });
        assert!(matches!(
            err::<TxId>(&"a".repeat(63)),
            IdError::WrongLength {
                len: 63,
                expected: 64,
                ..
            }
        ));
        assert!(matches!(
            err::<TxId>(&"a".repeat(65)),
            IdError::WrongLength { len: 65, .. }
        ));
        let upper = format!("{}A", "a".repeat(63));
        assert!(matches!(
            err::<TxId>(&upper),
            IdError::IllegalChar {
                ch: 'A',
                index: 63,
                ..
            }
        ));
        assert!(matches!(
            err::<TxId>(&"g".repeat(64)),
            IdError::IllegalChar {
                ch: 'g',
                index: 0,
                ..
            }
        ));
    }

    #[test]
    fn tx_id_compute_known_vector() {
        // SHA-256("abc"), split between nonce and creator.
        let id = TxId::compute(b"a", b"bc");
        assert_eq!(
            id.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(TxId::compute(b"", b"abc"), id);
        assert!(TxId::new(id.as_str()).is_ok());
    }

    #[test]
    fn channel_id_valid() {
        for s in ["mychannel", "a", "my-channel.v2", "c0", &"a".repeat(249)] {
            let c: ChannelId = s.parse().unwrap();
            assert_eq!(c.as_ref(), s);
        }
    }

    #[test]
    fn check_agrees_with_new() {
        for s in [
            "ehr",
            "my_cc-2",
            "",
            "-ehr",
            "ehr_",
            "a--b",
            "a_-b",
            "_lifecycle",
            "é",
        ] {
            assert_eq!(
                ChaincodeName::check(s).err(),
                ChaincodeName::new(s).err(),
                "{s:?}"
            );
        }
        assert!(ChannelId::check("mychannel").is_ok());
        assert!(MspId::check("..").is_err());
        assert!(TxId::check(&"0".repeat(64)).is_ok());
    }

    #[test]
    fn map_keyed_by_id_is_looked_up_by_str() {
        let mut channels = std::collections::HashMap::new();
        channels.insert(ChannelId::new("mychannel").unwrap(), 1);
        assert_eq!(channels.get("mychannel"), Some(&1));
        assert_eq!(channels.get("MyChannel"), None);
        let msps: std::collections::BTreeSet<MspId> = [MspId::new("Org1MSP").unwrap()].into();
        assert!(msps.contains("Org1MSP"));
    }

    #[test]
    fn channel_id_invalid() {
        assert_eq!(
            err::<ChannelId>(""),
            IdError::Empty {
                kind: IdKind::ChannelId
            }
        );
        assert_eq!(
            err::<ChannelId>(&"a".repeat(250)),
            IdError::TooLong {
                kind: IdKind::ChannelId,
                len: 250,
                max: 249
            }
        );
        assert!(matches!(
            err::<ChannelId>("MyChannel"),
            IdError::IllegalChar {
                ch: 'M',
                index: 0,
                ..
            }
        ));
        assert!(matches!(
            err::<ChannelId>("my_channel"),
            IdError::IllegalChar {
                ch: '_',
                index: 2,
                ..
            }
        ));
        for s in ["1channel", "-channel", ".channel"] {
            assert!(
                matches!(err::<ChannelId>(s), IdError::Malformed { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn msp_id_rules() {
        for s in ["Org1MSP", "OrdererMSP", "org-1.example_com", "a"] {
            assert_eq!(MspId::new(s).unwrap(), s);
        }
        assert_eq!(
            err::<MspId>(""),
            IdError::Empty {
                kind: IdKind::MspId
            }
        );
        assert!(matches!(
            err::<MspId>(&"a".repeat(250)),
            IdError::TooLong { .. }
        ));
        assert!(MspId::new("a".repeat(249)).is_ok());
        assert!(matches!(
            err::<MspId>("Org 1"),
            IdError::IllegalChar { ch: ' ', .. }
        ));
        assert!(matches!(
            err::<MspId>("Org/1"),
            IdError::IllegalChar { ch: '/', .. }
        ));
        assert!(matches!(
            err::<MspId>("Orgé"),
            IdError::IllegalChar {
                ch: 'é',
                index: 3,
                ..
            }
        ));
        assert!(matches!(err::<MspId>("."), IdError::Malformed { .. }));
        assert!(matches!(err::<MspId>(".."), IdError::Malformed { .. }));
    }

    #[test]
    fn chaincode_name_rules() {
        for s in ["basic", "asset-transfer", "my_cc2", "A1-b_C", "x"] {
            assert_eq!(ChaincodeName::new(s).unwrap(), s);
        }
        assert_eq!(
            err::<ChaincodeName>(""),
            IdError::Empty {
                kind: IdKind::ChaincodeName
            }
        );
        for s in ["_lifecycle", "-cc", "cc-", "cc_", "a--b", "a_-b"] {
            assert!(
                matches!(err::<ChaincodeName>(s), IdError::Malformed { .. }),
                "{s}"
            );
        }
        for s in ["my.cc", "my cc", "cc$", "cc/1"] {
            assert!(
                matches!(err::<ChaincodeName>(s), IdError::IllegalChar { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn error_messages_are_readable() {
        assert_eq!(
            err::<ChannelId>("").to_string(),
            "channel ID illegal, cannot be empty"
        );
        assert_eq!(
            err::<ChannelId>("Ab").to_string(),
            "channel ID 'Ab' contains illegal character 'A' at byte 0"
        );
        assert_eq!(
            err::<ChaincodeName>("a-").to_string(),
            "chaincode name 'a-' is malformed: must end with a letter or digit"
        );
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let c = ChannelId::new("mychannel").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"mychannel\"");
        assert_eq!(serde_json::from_str::<ChannelId>(&json).unwrap(), c);
        assert!(serde_json::from_str::<ChannelId>("\"Bad Channel\"").is_err());
        assert!(serde_json::from_str::<TxId>("\"abc\"").is_err());
        assert!(serde_json::from_str::<MspId>("\"\"").is_err());
        let cc: ChaincodeName = serde_json::from_str("\"basic\"").unwrap();
        assert_eq!(cc, "basic");
        let e = serde_json::from_str::<ChaincodeName>("\"a__b\"").unwrap_err();
        assert!(e.to_string().contains("malformed"), "{e}");
    }
}
