//! Medledger protocol buffers.
//!
//! * Messages and gRPC services that are wire-compatible with Hyperledger
//!   Fabric (same protobuf packages, message names, field numbers and service
//!   paths), generated with prost and tonic from our own `.proto` files under
//!   `protos/`. Each protobuf package is a module at the crate root, so
//!   `common.Envelope` is [`common::Envelope`], `protos.SignedProposal` is
//!   [`protos::SignedProposal`], and so on. Every service has a client
//!   (`<service>_client`) and a server (`<service>_server`) module. One
//!   exception to tonic's usual API: `protos.Chaincode` has an rpc named
//!   `Connect`, so that client's transport constructor is
//!   [`protos::chaincode_client::ChaincodeClient::connect_endpoint`].
//! * The Medledger certificate authority API in [`medledger::ca`].
//! * Validated identifier types ([`TxId`], [`ChannelId`], [`MspId`],
//!   [`ChaincodeName`]) in [`types`], parsed where an id arrives and carried
//!   by the crates behind (ADR 0038).
//! * [`invocation`]: the chaincode and canonical function a proposal invokes, resolved one
//!   way for the gateway, the endorser and the contract router.
//! * [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of all of the above, for
//!   gRPC reflection and schema checks.
//!
//! Well-known types (`google.protobuf.Timestamp`, `Empty`) are the ones from
//! [`prost_types`].

mod ext;
pub mod invocation;
pub mod types;

pub use types::{ChaincodeName, ChannelId, IdError, IdKind, MspId, TxId};

/// Encoded `google.protobuf.FileDescriptorSet` of every `.proto` file in this
/// crate, including the well-known types they import (without comments).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/medledger_descriptor.bin"));

macro_rules! generated {
    ($(#[$meta:meta])* $name:ident, $file:literal) => {
        $(#[$meta])*
        #[allow(
            missing_docs,
            clippy::all,
            clippy::pedantic,
            clippy::nursery,
            clippy::unwrap_used,
            clippy::expect_used,
            clippy::panic,
            rustdoc::all
        )]
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), "/", $file, ".rs"));
        }
    };
}

generated!(
    /// Fabric package `common`: envelopes, headers, blocks, policies and
    /// MSP principals.
    common,
    "common"
);
generated!(
    /// Fabric package `msp`: serialized identities.
    msp,
    "msp"
);
generated!(
    /// Fabric package `protos`: proposals, transactions, chaincode, the
    /// chaincode shim protocol, and the Endorser, Deliver, ChaincodeSupport
    /// and Chaincode services.
    protos,
    "protos"
);
generated!(
    /// Fabric package `gateway`: the Gateway service.
    gateway,
    "gateway"
);
generated!(
    /// Fabric package `orderer`: the AtomicBroadcast service and SeekInfo.
    orderer,
    "orderer"
);
generated!(
    /// Fabric package `rwset`: transaction read-write sets.
    rwset,
    "rwset"
);
generated!(
    /// Fabric package `kvrwset`: key-value read-write sets.
    kvrwset,
    "kvrwset"
);
generated!(
    /// Fabric package `queryresult`: state query results.
    queryresult,
    "queryresult"
);

/// Medledger's own protobuf packages.
pub mod medledger {
    generated!(
        /// Package `medledger.ca`: the online certificate authority service.
        ca,
        "medledger.ca"
    );
    generated!(
        /// Package `medledger.channel`: channel configuration (orgs, consenters,
        /// policies, batch parameters) carried by config blocks.
        channel,
        "medledger.channel"
    );
    generated!(
        /// Package `medledger.orderer`: messages between BFT orderers (votes, proposals and
        /// their parts, certificates, forwarded envelopes, block sync), the `Cluster` service,
        /// and the orderer's write-ahead log records.
        orderer,
        "medledger.orderer"
    );
    generated!(
        /// Package `medledger.privdata`: peer-to-peer private data transfer between member
        /// peers of a collection.
        privdata,
        "medledger.privdata"
    );
}
