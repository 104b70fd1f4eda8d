//! Channel configuration, config blocks, envelope checks and the BFT block verifier.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::SystemTime;

use medledger_channel::bft::{self, BlockVerifyError, CommitSignature, VoteKind};
use medledger_channel::block;
use medledger_channel::config::ChannelConfig;
use medledger_channel::envelope;
use medledger_channel::testing::{TestChannel, signed_envelope};
use medledger_msp::ou::NodeOu;
use medledger_proto::common::{BlockMetadataIndex, HeaderType};
use medledger_proto::protos::TxValidationCode;
use prost::Message;

#[test]
fn config_round_trips_through_the_genesis_block() {
    let ch = TestChannel::new("ehr", 2, 4);
    let genesis = ch.config.config_block(0, &[], SystemTime::now());
    assert_eq!(block::number(&genesis), 0);
    let back = ChannelConfig::from_config_block(&genesis).unwrap();
    assert_eq!(back.to_proto(), ch.config.to_proto());
    assert_eq!(back.consenters().len(), 4);
    assert_eq!(back.consenters().quorum(), 3);
    assert_eq!(back.consenters().max_faulty(), 1);
    assert_eq!(back.batch().max_message_count, 500);
    assert_eq!(
        back.application_orgs().collect::<Vec<_>>(),
        ["Org1MSP", "Org2MSP"]
    );
    // A normal block is not a config block.
    let b = block::new_block(1, &[0; 32], vec![b"x".to_vec()]);
    assert!(ChannelConfig::from_config_block(&b).is_err());
}

#[test]
fn invalid_configs_are_refused_with_the_field_named() {
    let ch = TestChannel::new("ehr", 2, 4);
    let base = ch.config.to_proto().clone();
    let check = |mutate: &dyn Fn(&mut medledger_proto::medledger::channel::ChannelConfig),
                 needle: &str| {
        let mut p = base.clone();
        mutate(&mut p);
        let err = ChannelConfig::from_proto(p).unwrap_err().to_string();
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    };
    check(&|p| p.channel_id = "Bad_Channel".into(), "channel_id");
    check(
        &|p| {
            p.policies.remove("Writers");
        },
        "policy Writers is missing",
    );
    check(
        &|p| {
            p.policies
                .insert("Endorsement".into(), "AND('Org9MSP.peer')".into());
        },
        "unknown organization Org9MSP",
    );
    check(
        &|p| {
            p.policies.insert("Readers".into(), "AND(".into());
        },
        "policy Readers",
    );
    check(
        &|p| {
            let tls = p.organizations[1].tls_root_certs[0].clone();
            p.organizations[0].tls_root_certs.push(tls);
        },
        "organizations Org1MSP and Org2MSP share a root certificate",
    );
    check(&|p| p.consenters[1].id = p.consenters[0].id, "unique");
    check(
        &|p| p.consenters[0].msp_id = "Org1MSP".into(),
        "not an orderer organization",
    );
    check(
        &|p| p.consenters[0].identity = b"junk".to_vec(),
        "consenter 1 identity",
    );
    check(
        &|p| {
            let o = p.organizations[0].clone();
            p.organizations.push(o);
        },
        "appears twice",
    );
    check(&|p| p.organizations[0].root_certs.clear(), "no root CA");
}

#[test]
fn block_signatures_need_a_quorum_of_valid_distinct_consenters() {
    let ch = TestChannel::new("ehr", 1, 4);
    let cs = ch.config.consenters();
    let mut b = block::new_block(7, &[1; 32], vec![b"env1".to_vec(), b"env2".to_vec()]);

    ch.sign_block(&mut b, &[1, 2, 3], 0);
    let ok = bft::verify_block_signatures(&b, "ehr", cs).unwrap();
    assert_eq!(
        (ok.number, ok.round, ok.signers.clone()),
        (7, 0, vec![1, 2, 3])
    );

    ch.sign_block(&mut b, &[1, 2, 3, 4], 2);
    assert_eq!(
        bft::verify_block_signatures(&b, "ehr", cs).unwrap().round,
        2
    );

    ch.sign_block(&mut b, &[2, 4], 0);
    assert_eq!(
        bft::verify_block_signatures(&b, "ehr", cs),
        Err(BlockVerifyError::NoQuorum {
            number: 7,
            got: 2,
            needed: 3
        })
    );

    ch.sign_block(&mut b, &[1, 1, 2], 0);
    assert!(matches!(
        bft::verify_block_signatures(&b, "ehr", cs),
        Err(BlockVerifyError::DuplicateSigner { consenter: 1, .. })
    ));

    // Signatures for another channel, round or vote type do not verify.
    ch.sign_block(&mut b, &[1, 2, 3], 0);
    assert!(matches!(
        bft::verify_block_signatures(&b, "other", cs),
        Err(BlockVerifyError::BadSignature { .. })
    ));
    let with_commit = |edit: &dyn Fn(&mut medledger_proto::medledger::channel::BlockCommit)| {
        let mut meta = block::metadata(&b, BlockMetadataIndex::Signatures).unwrap();
        let mut commit =
            medledger_proto::medledger::channel::BlockCommit::decode(meta.value.as_slice())
                .unwrap();
        edit(&mut commit);
        meta.value = commit.encode_to_vec();
        let mut edited = b.clone();
        block::set_metadata_bytes(
            &mut edited,
            BlockMetadataIndex::Signatures,
            meta.encode_to_vec(),
        );
        edited
    };
    assert!(matches!(
        bft::verify_block_signatures(&with_commit(&|c| c.round = 1), "ehr", cs),
        Err(BlockVerifyError::BadSignature { .. })
    ));
    // The signatures cover the ordering time: another time, or none, does not verify.
    assert!(bft::ordering_time(&b).is_some());
    for time_ms in [0, 1_700_000_000_000] {
        assert!(matches!(
            bft::verify_block_signatures(&with_commit(&|c| c.time_ms = time_ms), "ehr", cs),
            Err(BlockVerifyError::BadSignature { .. })
        ));
    }
    let hash = block::header_hash(b.header.as_ref().unwrap());
    let prevotes: Vec<CommitSignature> = [1u32, 2, 3]
        .iter()
        .map(|id| {
            let ident = &ch.consenters[*id as usize - 1].1;
            let msg = bft::vote_sign_bytes("ehr", VoteKind::Prevote, 7, 0, Some(&hash), *id);
            CommitSignature {
                consenter: *id,
                signature: ident.sign(&msg).unwrap(),
            }
        })
        .collect();
    let mut with_prevotes = b.clone();
    block::set_metadata_bytes(
        &mut with_prevotes,
        BlockMetadataIndex::Signatures,
        bft::signatures_metadata(0, 0, &prevotes),
    );
    assert!(matches!(
        bft::verify_block_signatures(&with_prevotes, "ehr", cs),
        Err(BlockVerifyError::BadSignature { .. })
    ));

    // Tampered data or header.
    let mut tampered = b.clone();
    tampered.data.as_mut().unwrap().data[0] = b"evil".to_vec();
    assert_eq!(
        bft::verify_block_signatures(&tampered, "ehr", cs),
        Err(BlockVerifyError::DataHashMismatch { number: 7 })
    );
    // Issue 14 item 1: the same envelopes joined end to end (a Byzantine orderer's Deliver
    // serving [A‖B] for [A, B]: prost would decode the merged entry as B and A would vanish)
    // or split elsewhere. On 4436d0b both kept the data hash and so the consenters' signatures.
    for entries in [
        vec![b"env1env2".to_vec()],
        vec![b"env1e".to_vec(), b"nv2".to_vec()],
        vec![b"env1".to_vec(), b"env2".to_vec(), Vec::new()],
    ] {
        let mut resplit = b.clone();
        resplit.data.as_mut().unwrap().data = entries;
        assert_eq!(
            bft::verify_block_signatures(&resplit, "ehr", cs),
            Err(BlockVerifyError::DataHashMismatch { number: 7 })
        );
    }
    let mut renumbered = b.clone();
    renumbered.header.as_mut().unwrap().number = 8;
    assert!(matches!(
        bft::verify_block_signatures(&renumbered, "ehr", cs),
        Err(BlockVerifyError::BadSignature { .. })
    ));
    // Unknown consenter and garbage metadata.
    let mut unknown = b.clone();
    let sig = CommitSignature {
        consenter: 9,
        signature: vec![1],
    };
    block::set_metadata_bytes(
        &mut unknown,
        BlockMetadataIndex::Signatures,
        bft::signatures_metadata(0, 0, &[sig]),
    );
    assert!(matches!(
        bft::verify_block_signatures(&unknown, "ehr", cs),
        Err(BlockVerifyError::UnknownConsenter { consenter: 9, .. })
    ));
    let mut garbage = b.clone();
    block::set_metadata_bytes(
        &mut garbage,
        BlockMetadataIndex::Signatures,
        vec![0xff, 0xff],
    );
    assert!(matches!(
        bft::verify_block_signatures(&garbage, "ehr", cs),
        Err(BlockVerifyError::MalformedSignatures { .. })
    ));
}

#[test]
fn envelope_checks_give_fabric_codes() {
    let mut ch = TestChannel::new("ehr", 2, 4);
    let client = ch.orgs[0].identity("app1", NodeOu::Client, &[]);
    let other = ch.orgs[1].identity("app2", NodeOu::Client, &[]);
    let now = SystemTime::now();
    let env = signed_envelope(
        &client,
        "ehr",
        HeaderType::EndorserTransaction,
        b"tx".to_vec(),
    );
    let checked = envelope::check(&env, &ch.config, now).unwrap();
    assert_eq!(checked.creator.msp_id(), "Org1MSP");
    assert_eq!(checked.parsed.tx_id().len(), 64);
    assert!(ch.config.evaluate("Writers", &[checked.creator.signer()]));
    assert!(!ch.config.evaluate("Admins", &[checked.creator.signer()]));

    let code = |e: &medledger_proto::common::Envelope| {
        envelope::check(e, &ch.config, now).unwrap_err().code
    };
    // Wrong channel.
    let wrong = signed_envelope(&client, "other", HeaderType::EndorserTransaction, vec![]);
    assert_eq!(code(&wrong), TxValidationCode::TargetChainNotFound);
    // Signature by someone else.
    let mut forged = env.clone();
    forged.signature = other.sign(&env.payload).unwrap();
    assert_eq!(code(&forged), TxValidationCode::BadCreatorSignature);
    // Tampered payload (signature no longer matches).
    let mut tampered = env.clone();
    let n = tampered.payload.len();
    tampered.payload[n - 1] ^= 1;
    assert_eq!(code(&tampered), TxValidationCode::BadCreatorSignature);
    // Garbage and empty payloads.
    assert_eq!(
        code(&medledger_proto::common::Envelope {
            payload: vec![0xff; 4],
            signature: vec![]
        }),
        TxValidationCode::BadPayload
    );
    assert_eq!(
        code(&medledger_proto::common::Envelope::default()),
        TxValidationCode::NilEnvelope
    );
    // A config envelope cannot be submitted; a wrong tx_id is caught.
    let cfg = signed_envelope(&client, "ehr", HeaderType::Config, vec![]);
    assert_eq!(code(&cfg), TxValidationCode::UnknownTxType);
    let mut p = medledger_proto::common::Payload::decode(env.payload.as_slice()).unwrap();
    let mut chh = medledger_proto::common::ChannelHeader::decode(
        p.header.as_ref().unwrap().channel_header.as_slice(),
    )
    .unwrap();
    chh.tx_id = "00".repeat(32);
    p.header.as_mut().unwrap().channel_header = chh.encode_to_vec();
    let payload = p.encode_to_vec();
    let bad_txid = medledger_proto::common::Envelope {
        signature: client.sign(&payload).unwrap(),
        payload,
    };
    assert_eq!(code(&bad_txid), TxValidationCode::BadProposalTxid);
}

#[test]
fn headers_read_alone_are_the_headers_parse_gives() {
    // The orderer reads tx ids and header types of whole blocks of envelopes of up to
    // `absolute_max_bytes` from the headers alone (no copy of the payload's data).
    let mut ch = TestChannel::new("ehr", 1, 1);
    let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
    for (header_type, data) in [
        (HeaderType::EndorserTransaction, vec![7; 3 << 20]),
        (HeaderType::ConfigUpdate, vec![1; 10]),
    ] {
        let env = signed_envelope(&client, "ehr", header_type, data);
        let parsed = envelope::parse(&env).unwrap();
        let bytes = env.encode_to_vec();
        let (channel_header, signature_header) = envelope::headers_of(&bytes).unwrap();
        assert_eq!(channel_header, parsed.channel_header);
        assert_eq!(signature_header, parsed.signature_header);
        assert_eq!(envelope::header_type_of(&bytes), Some(header_type));
        let (channel_header, signature_header) = envelope::payload_headers(&env.payload).unwrap();
        assert_eq!(channel_header, parsed.channel_header);
        assert_eq!(signature_header, parsed.signature_header);
    }
    // What `parse` refuses, this does not read either.
    assert_eq!(envelope::headers_of(b"not protobuf \xff\xff"), None);
    let no_header = medledger_proto::common::Envelope {
        payload: medledger_proto::common::Payload {
            header: None,
            data: vec![1; 100],
        }
        .encode_to_vec(),
        signature: vec![1],
    };
    assert!(envelope::parse(&no_header).is_err());
    assert_eq!(envelope::headers_of(&no_header.encode_to_vec()), None);
}
