//! The client: gathers endorsements as the gateway does, with one rule more, and submits.
//!
//! The gateway asks one peer per organization of a minimal set satisfying the policy and
//! fails on any disagreement. This client asks a peer of every organization (for a
//! custodian-endorsed request: the custodian's only, as the gateway does for transient data)
//! and keeps the responses whose payload equals its **own organization's peer's** (the
//! gateway it trusts, as a Fabric client trusts its organization's gateway peer). It submits
//! when their verified endorsers satisfy the endorsement policy; it reports a refusal when
//! its own peer's chaincode refused; otherwise it retries later (`NoQuorum`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use medledger_channel::tx::assemble_transaction;
use medledger_gateway::proposal::build_proposal;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::policy::{Policy, SignaturePolicy};
use medledger_orderer::sim::CHANNEL;
use medledger_proto::protos::ProposalResponse;
use prost::Message;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::forge::{self, Misbehaviour};
use crate::workload::Request;
use medledger_harness::net::{CHAINCODE, Network, msp_id};

/// How long the client waits for an endorser that does not answer, ms of virtual time.
pub(crate) const ENDORSE_TIMEOUT_MS: u64 = 500;

/// What gathering endorsements gave.
pub(crate) enum Gathered {
    /// A signed transaction to submit after `wait_ms` (the wait for silent endorsers).
    Ready {
        /// The serialized, client-signed envelope.
        envelope: Vec<u8>,
        /// Its tx id.
        tx_id: String,
        /// The normalized chaincode response it carries.
        summary: String,
        /// Virtual ms spent waiting for endorsers.
        wait_ms: u64,
    },
    /// The chaincode on the client's own peer refused the request (its status).
    Refused(i32),
    /// No agreeing set with the own peer satisfies the policy (or the own peer is silent).
    NoQuorum {
        /// Virtual ms spent waiting for endorsers.
        wait_ms: u64,
    },
}

/// Normalized chaincode response: status and the JSON payload without values that differ
/// between runs of the same workload (ids derived from tx ids, times).
pub(crate) fn summarize(status: i32, payload: &[u8]) -> String {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|k, _| {
                    !(k.ends_with("_ms")
                        || k == "tx_id"
                        || (k.ends_with("_id") && k != "patient_id" && k != "record_id"))
                });
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(mut v) => {
            strip(&mut v);
            format!("{status} {v}")
        }
        Err(_) => format!("{status} <{} bytes>", payload.len()),
    }
}

fn status_of(r: &ProposalResponse) -> i32 {
    r.response.as_ref().map_or(0, |r| r.status)
}

/// Gathers endorsements for `request` sent by `identity` (of organization `own`), with the
/// organizations flagged in `byzantine` misbehaving as `misbehaviour` says.
///
/// # Errors
/// [`Error::Signing`] if a proposal, forgery or transaction cannot be built or signed.
pub(crate) fn gather(
    net: &Network,
    byzantine: &[bool],
    request: &Request,
    identity: &SigningIdentity,
    own: usize,
    misbehaviour: Misbehaviour,
) -> Result<Gathered> {
    let transient: BTreeMap<String, Vec<u8>> = request.transient.iter().cloned().collect();
    let built = build_proposal(identity, CHANNEL, CHAINCODE, &request.args, &transient)
        .map_err(|e| Error::Signing(e.to_string()))?;
    let targets: Vec<usize> = if request.custodian_only {
        vec![0]
    } else {
        (0..net.peers.len()).collect()
    };
    let trusted = if targets.contains(&own) {
        own
    } else {
        targets[0]
    };
    let now = SystemTime::now();
    let mut responses: Vec<(usize, ProposalResponse)> = Vec::new();
    let mut silent = false;
    let mut forged: Option<Vec<u8>> = None;
    for &org in &targets {
        let peer = &net.peers[org];
        let honest = net
            .runtime
            .block_on(peer.endorser.process_proposal_at(built.signed.clone(), now));
        if !byzantine[org] {
            responses.push((org, honest));
            continue;
        }
        match misbehaviour {
            Misbehaviour::BlackHole => silent = true,
            Misbehaviour::Forge => {
                let payload = match &forged {
                    Some(p) => p.clone(),
                    None => {
                        let p = forge::forged_payload(&built.signed, &honest)?;
                        forged = Some(p.clone());
                        p
                    }
                };
                responses.push((org, forge::endorse(&payload, &peer.identity)?));
            }
        }
    }
    let wait_ms = if silent { ENDORSE_TIMEOUT_MS } else { 0 };
    let Some((_, mine)) = responses.iter().find(|(o, _)| *o == trusted) else {
        return Ok(Gathered::NoQuorum { wait_ms });
    };
    let status = status_of(mine);
    if !(200..400).contains(&status) || mine.endorsement.is_none() {
        // 4xx: the contract refused (every honest peer would); 500 and others: the peer
        // could not endorse now (e.g. behind the committed state), worth a retry.
        return Ok(if (400..500).contains(&status) {
            Gathered::Refused(status)
        } else {
            Gathered::NoQuorum { wait_ms }
        });
    }
    let config = net.peers[trusted].committer.config();
    let mut agreeing = Vec::new();
    let mut signers = Vec::new();
    for (_, r) in &responses {
        let Some(e) = &r.endorsement else { continue };
        if r.payload != mine.payload || !(200..400).contains(&status_of(r)) {
            continue;
        }
        let signed = [r.payload.as_slice(), e.endorser.as_slice()].concat();
        if let Ok(who) = config
            .msps()
            .verify(&e.endorser, &signed, &e.signature, now)
        {
            signers.push(who.signer());
            agreeing.push(r.clone());
        }
    }
    let policy = if request.custodian_only {
        let custodian = msp_id(0);
        let p = format!("'{custodian}.peer'")
            .parse::<SignaturePolicy>()
            .map_err(|e| Error::Signing(format!("custodian policy: {e}")))?;
        Policy::Signature(p)
    } else {
        match config.policy("Endorsement") {
            Some(p) => p.clone(),
            None => return Ok(Gathered::NoQuorum { wait_ms }),
        }
    };
    if !policy.evaluate(&signers, config.org_policies()) {
        return Ok(Gathered::NoQuorum { wait_ms });
    }
    let mut envelope = assemble_transaction(&built.signed, &agreeing)
        .map_err(|e| Error::Signing(e.to_string()))?;
    envelope.signature = identity
        .sign(&envelope.payload)
        .map_err(|e| Error::Signing(e.to_string()))?;
    let summary = summarize(
        status,
        mine.response
            .as_ref()
            .map_or(&[][..], |r| r.payload.as_slice()),
    );
    Ok(Gathered::Ready {
        envelope: envelope.encode_to_vec(),
        tx_id: built.tx_id,
        summary,
        wait_ms,
    })
}
