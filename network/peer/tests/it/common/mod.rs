//! Shared test harness: a channel with real CAs, a peer ledger and committer, and helpers to
//! commit orderer-signed blocks of endorsed transactions.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use medledger_channel::testing::{TestChannel, TestOrg};
use medledger_ledger::{Ledger, LedgerConfig};
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_msp::policy::{Policy, SignaturePolicy};
use medledger_peer::committer::{CommitSummary, Committer};
use medledger_peer::definitions::{ChaincodeDefinition, CollectionDefinition};
use medledger_peer::definitions::{ChaincodeDefinitions, InMemoryDefinitions};
use medledger_peer::testing::{TxSpec, endorsed_tx, signed_block};
use medledger_peer::validator::BlockPrivateData;
use medledger_proto::common::{Block, Envelope};

pub(crate) const CHANNEL: &str = "ehr-channel";
pub(crate) const CC: &str = "ehr";

/// The `ehr` chaincode: both orgs endorse; collection `Org1PHI` has Org1 as its only member
/// and lets Org1's peers alone endorse its private writes.
pub(crate) fn phi_definition() -> ChaincodeDefinition {
    let org1: SignaturePolicy = "'Org1MSP.member'".parse().unwrap();
    ChaincodeDefinition {
        name: CC.into(),
        endorsement_policy: Policy::Signature(
            "AND('Org1MSP.peer', 'Org2MSP.peer')".parse().unwrap(),
        ),
        collections: std::collections::BTreeMap::from([(
            "Org1PHI".to_owned(),
            CollectionDefinition {
                name: "Org1PHI".into(),
                member_orgs: org1,
                endorsement_policy: Some(Policy::Signature("'Org1MSP.peer'".parse().unwrap())),
                block_to_live: 0,
            },
        )]),
    }
}

/// Identities of a 2-org channel (default endorsement policy `MAJORITY Endorsement` = both
/// orgs' peers) with 4 consenters (quorum 3).
pub(crate) struct Net {
    pub ch: TestChannel,
    pub client: SigningIdentity,
    pub peer1: SigningIdentity,
    pub peer1b: SigningIdentity,
    pub peer2: SigningIdentity,
    /// A peer of an organization that is not in the channel.
    pub outsider: SigningIdentity,
    pub outsider_org: TestOrg,
}

impl Net {
    pub(crate) fn new() -> Self {
        let mut ch = TestChannel::new(CHANNEL, 2, 4);
        let client = ch.orgs[0].identity("client1", NodeOu::Client, &[]);
        let peer1 = ch.orgs[0].identity("peer0", NodeOu::Peer, &[]);
        let peer1b = ch.orgs[0].identity("peer1", NodeOu::Peer, &[]);
        let peer2 = ch.orgs[1].identity("peer0", NodeOu::Peer, &[]);
        let mut outsider_org = TestOrg::new("Org9MSP", "org9.example.com");
        let outsider = outsider_org.identity("peer0", NodeOu::Peer, &[]);
        Net {
            ch,
            client,
            peer1,
            peer1b,
            peer2,
            outsider,
            outsider_org,
        }
    }

    pub(crate) fn genesis(&self) -> Block {
        self.ch.config.config_block(
            0,
            &[],
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        )
    }

    /// A transaction endorsed by both orgs.
    pub(crate) fn tx(&self, spec: &TxSpec) -> (Envelope, String) {
        endorsed_tx(CHANNEL, &self.client, spec, &[&self.peer1, &self.peer2])
    }

    pub(crate) fn tx_by(
        &self,
        spec: &TxSpec,
        endorsers: &[&SigningIdentity],
    ) -> (Envelope, String) {
        endorsed_tx(CHANNEL, &self.client, spec, endorsers)
    }
}

/// A peer: ledger + committer.
pub(crate) struct Peer {
    pub committer: Arc<Committer>,
    pub defs: Arc<InMemoryDefinitions>,
}

impl Peer {
    pub(crate) fn open(net: &Net, dir: &Path, msp_id: &str) -> Self {
        let defs = Arc::new(InMemoryDefinitions::new());
        let ledger = Arc::new(
            Ledger::open(dir, &CHANNEL.parse().unwrap(), &LedgerConfig::default()).unwrap(),
        );
        let committer = Committer::new(
            ledger,
            Some(&net.genesis()),
            defs.clone() as Arc<dyn ChaincodeDefinitions>,
            msp_id.parse().unwrap(),
        )
        .unwrap();
        Peer {
            committer: Arc::new(committer),
            defs,
        }
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        self.committer.ledger()
    }

    /// The next block with `envs`, signed by consenters 1..=3.
    pub(crate) fn next_block(&self, net: &Net, envs: &[Envelope]) -> Block {
        let info = self.ledger().info();
        signed_block(&net.ch, info.height, &info.current_hash, envs, &[1, 2, 3])
    }

    pub(crate) fn commit(&self, net: &Net, envs: &[Envelope]) -> CommitSummary {
        self.commit_private(net, envs, &BlockPrivateData::new())
    }

    pub(crate) fn commit_private(
        &self,
        net: &Net,
        envs: &[Envelope],
        private: &BlockPrivateData,
    ) -> CommitSummary {
        let b = self.next_block(net, envs);
        self.committer.commit_block(b, private).unwrap()
    }
}
