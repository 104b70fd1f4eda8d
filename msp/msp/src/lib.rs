//! Medledger's membership service provider, in the manner of Hyperledger Fabric's MSP. The
//! certificate authority is the `medledger-ca` crate.
//!
//! - [`crypto`]: ECDSA P-256 signing and verification as Fabric does it (SHA-256, DER, low-S),
//!   on aws-lc-rs.
//! - [`cert`], [`identity`]: certificates with Fabric CA attributes, `msp.SerializedIdentity`,
//!   signing identities.
//! - [`msp`]: validation of identities under an organization's MSP (chain, validity, CRL,
//!   NodeOUs) with a bounded cache of verified identities.
//! - [`policy`]: Fabric signature policies (`AND`/`OR`/`OutOf`, `MAJORITY Admins`), parsed
//!   from Fabric's syntax and evaluated over verified signers.
//! - [`folder`]: Fabric's MSP folder layout on disk.

pub mod cert;
pub mod crypto;
mod error;
pub mod folder;
pub mod fsutil;
pub mod identity;
pub mod msp;
pub mod ou;
pub mod policy;

pub use error::{ECHOED_MSP_ID_CHARS, Error, Result};
