//! The committer's `_lifecycle` rules with real signatures: approvals only by the approving
//! organization's peers, definitions only under the lifecycle endorsement policy with a
//! majority of approvals and the next sequence; committed definitions take effect from the
//! next block and survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;

use common::{CHANNEL, Net};
use medledger_ledger::{Ledger, LedgerConfig};
use medledger_msp::identity::SigningIdentity;
use medledger_peer::committer::Committer;
use medledger_peer::definitions::{ChaincodeDefinitions, InMemoryDefinitions, LedgerDefinitions};
use medledger_peer::lifecycle::{self, Definition, NAMESPACE, approval_key, definition_key};
use medledger_peer::testing::{TxSpec, signed_block, write};
use medledger_peer::validator::BlockPrivateData;
use medledger_proto::common::Envelope;
use medledger_proto::kvrwset::{KvWrite, KvrwSet};
use medledger_proto::protos::TxValidationCode as C;

struct Peer {
    committer: Committer,
    definitions: Arc<LedgerDefinitions>,
}

fn open(net: &Net, dir: &std::path::Path) -> Peer {
    let ledger =
        Arc::new(Ledger::open(dir, &CHANNEL.parse().unwrap(), &LedgerConfig::default()).unwrap());
    let fallback = Arc::new(InMemoryDefinitions::new());
    let definitions = Arc::new(LedgerDefinitions::load(&ledger, fallback).unwrap());
    let committer = Committer::new(
        ledger,
        Some(&net.genesis()),
        definitions.clone() as Arc<dyn ChaincodeDefinitions>,
        "Org1MSP".parse().unwrap(),
    )
    .unwrap();
    Peer {
        committer,
        definitions,
    }
}

impl Peer {
    fn commit(&self, net: &Net, envs: &[Envelope]) -> Vec<C> {
        let info = self.committer.ledger().info();
        let b = signed_block(&net.ch, info.height, &info.current_hash, envs, &[1, 2, 3]);
        self.committer
            .commit_block(b, &BlockPrivateData::new())
            .unwrap()
            .codes
    }
}

fn def(sequence: u64, policy: &str) -> Definition {
    Definition {
        name: "kv".parse().unwrap(),
        version: "1.0".into(),
        sequence,
        endorsement_policy: Some(policy.into()),
        collections: Vec::new(),
    }
}

fn lifecycle_tx(chaincode: &str, writes: Vec<KvWrite>) -> TxSpec {
    TxSpec {
        chaincode: chaincode.into(),
        rwsets: vec![medledger_peer::testing::ns(
            NAMESPACE,
            KvrwSet {
                writes,
                ..Default::default()
            },
        )],
        event: None,
    }
}

fn approval(org: &str, d: &Definition) -> KvWrite {
    write(
        &approval_key(&d.name, d.sequence, &org.parse().unwrap()),
        d.hash_hex().unwrap().as_bytes(),
    )
}

fn definition(d: &Definition) -> KvWrite {
    write(&definition_key(&d.name), &d.canonical_bytes().unwrap())
}

fn tx(net: &Net, spec: &TxSpec, endorsers: &[&SigningIdentity]) -> Envelope {
    net.tx_by(spec, endorsers).0
}

fn kv_put(net: &Net, endorsers: &[&SigningIdentity]) -> Envelope {
    let spec = TxSpec::kv(
        "kv",
        KvrwSet {
            writes: vec![write("k", b"v")],
            ..Default::default()
        },
    );
    tx(net, &spec, endorsers)
}

#[test]
fn approvals_only_by_their_organizations_peers() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = open(&net, dir.path());
    let d = def(1, "OR('Org1MSP.peer')");
    let own = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![approval("Org1MSP", &d)]),
        &[&net.peer1],
    );
    // Org1's peer endorsing Org2's approval: an organization approving for another.
    let for_other = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![approval("Org2MSP", &d)]),
        &[&net.peer1],
    );
    // A client of Org2 is not a peer of Org2.
    let by_client = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![approval("Org1MSP", &d)]),
        &[&net.client],
    );
    let outsider_org = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![approval("Org9MSP", &d)]),
        &[&net.outsider],
    );
    // Another chaincode writing `_lifecycle`, a key of no known shape, a delete.
    let other_cc = tx(
        &net,
        &lifecycle_tx("kv", vec![approval("Org1MSP", &d)]),
        &[&net.peer1, &net.peer2],
    );
    let unknown_key = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![write("namespaces/kv", b"x")]),
        &[&net.peer1, &net.peer2],
    );
    let not_hash = tx(
        &net,
        &lifecycle_tx(
            NAMESPACE,
            vec![write(
                &approval_key(&"kv".parse().unwrap(), 1, &"Org1MSP".parse().unwrap()),
                b"yes",
            )],
        ),
        &[&net.peer1],
    );
    let mut del = approval("Org1MSP", &d);
    del.is_delete = true;
    del.value.clear();
    let delete = tx(&net, &lifecycle_tx(NAMESPACE, vec![del]), &[&net.peer1]);
    assert_eq!(
        peer.commit(
            &net,
            &[
                own,
                for_other,
                by_client,
                outsider_org,
                other_cc,
                unknown_key,
                not_hash,
                delete
            ]
        ),
        vec![
            C::Valid,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
        ]
    );
}

#[test]
fn definitions_need_the_policy_a_majority_and_the_next_sequence() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let peer = open(&net, dir.path());
    let both = [&net.peer1, &net.peer2];
    let d1 = def(1, "OR('Org1MSP.peer')");

    // Before any definition: `kv` needs the channel's MAJORITY Endorsement (both orgs).
    assert_eq!(
        peer.commit(&net, &[kv_put(&net, &[&net.peer1])]),
        vec![C::EndorsementPolicyFailure]
    );

    // Only Org1 approved: a minority (1 of 2), refused even endorsed by both.
    let a1 = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![approval("Org1MSP", &d1)]),
        &[&net.peer1],
    );
    let early = tx(&net, &lifecycle_tx(NAMESPACE, vec![definition(&d1)]), &both);
    assert_eq!(
        peer.commit(&net, &[a1, early]),
        vec![C::Valid, C::EndorsementPolicyFailure]
    );
    assert!(peer.definitions.committed("kv").is_none());

    // Org2 approves. A commit endorsed by Org1 alone fails MAJORITY Endorsement; the wrong
    // sequence fails; a commit of a definition nobody approved fails; the right one passes.
    let a2 = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![approval("Org2MSP", &d1)]),
        &[&net.peer2],
    );
    let one_org = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![definition(&d1)]),
        &[&net.peer1],
    );
    let d3 = def(3, "OR('Org1MSP.peer')");
    let a3 = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![approval("Org1MSP", &d3)]),
        &[&net.peer1],
    );
    let a3b = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![approval("Org2MSP", &d3)]),
        &[&net.peer2],
    );
    let skip = tx(&net, &lifecycle_tx(NAMESPACE, vec![definition(&d3)]), &both);
    let other = def(1, "ANY Endorsement");
    let unapproved = tx(
        &net,
        &lifecycle_tx(NAMESPACE, vec![definition(&other)]),
        &both,
    );
    let ok = tx(&net, &lifecycle_tx(NAMESPACE, vec![definition(&d1)]), &both);
    // The same definition again in the block: sequence 1 is no longer next.
    let again = tx(&net, &lifecycle_tx(NAMESPACE, vec![definition(&d1)]), &both);
    // In the same block the new policy is not yet in effect.
    let same_block = kv_put(&net, &[&net.peer1]);
    assert_eq!(
        peer.commit(
            &net,
            &[
                a2, one_org, a3, a3b, skip, unapproved, ok, again, same_block
            ]
        ),
        vec![
            C::Valid,
            C::EndorsementPolicyFailure,
            C::Valid,
            C::Valid,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
            C::Valid,
            C::EndorsementPolicyFailure,
            C::EndorsementPolicyFailure,
        ]
    );

    // From the next block on, Org1 alone endorses `kv`.
    assert_eq!(
        peer.definitions
            .committed("kv")
            .unwrap()
            .endorsement_policy
            .to_string(),
        "OR('Org1MSP.peer')"
    );
    assert_eq!(
        peer.commit(&net, &[kv_put(&net, &[&net.peer1])]),
        vec![C::Valid]
    );

    // A restarted peer reads the committed definition from its ledger.
    drop(peer);
    let peer = open(&net, dir.path());
    assert!(peer.definitions.committed("kv").is_some());
    assert_eq!(
        peer.commit(&net, &[kv_put(&net, &[&net.peer1])]),
        vec![C::Valid]
    );
    assert_eq!(
        lifecycle::lifecycle_policy(&net.ch.config).to_string(),
        "MAJORITY Endorsement"
    );
}
