//! The `orderer.AtomicBroadcast` service: Broadcast admits envelopes (byte budget, early
//! refusal when the pool has no room, signature check by the [`super::Verifier`]) and hands
//! them to the core; Deliver streams are served by [`super::deliver`].

use std::sync::Arc;

use medledger_proto::common::{Envelope, Status as FabricStatus};
use medledger_proto::orderer::{BroadcastResponse, DeliverResponse, atomic_broadcast_server};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::cluster::MAX_CLUSTER_MESSAGE;
use super::deliver::{deliver_one, deliver_status};
use super::{CoreEvent, Shared};
use crate::batch::Rejection;

pub(super) struct AtomicBroadcastService {
    shared: Arc<Shared>,
}

/// The `orderer.AtomicBroadcast` service, taking envelopes of at most `max_envelope` bytes.
pub(super) fn service(
    shared: Arc<Shared>,
    max_envelope: usize,
) -> atomic_broadcast_server::AtomicBroadcastServer<AtomicBroadcastService> {
    atomic_broadcast_server::AtomicBroadcastServer::new(AtomicBroadcastService { shared })
        .max_decoding_message_size(max_envelope)
        .max_encoding_message_size(MAX_CLUSTER_MESSAGE)
}

fn broadcast_response(r: Option<Result<(), Rejection>>) -> BroadcastResponse {
    match r {
        Some(verdict) => crate::batch::broadcast_response(verdict),
        None => BroadcastResponse {
            status: FabricStatus::ServiceUnavailable as i32,
            info: "orderer is not running".into(),
        },
    }
}

/// The serialized creator a Broadcast envelope claims in its signature header, unless it is
/// a config update (or its headers do not decode): decoded from the headers only.
fn claimed_creator(env: &Envelope) -> Option<Vec<u8>> {
    use medledger_proto::common::HeaderType;
    let (channel_header, signature_header) =
        medledger_channel::envelope::payload_headers(&env.payload)?;
    (channel_header.r#type != HeaderType::ConfigUpdate as i32).then_some(signature_header.creator)
}

/// Admits one Broadcast envelope: within the in-flight byte budget (else
/// `SERVICE_UNAVAILABLE`), checked by the [`super::Verifier`] (a refusal is answered without the
/// core), then handed to the core for the pool. `None` if the core is gone. The envelope is
/// serialized once, for the pool, after the early refusals (the size and the creator's share
/// are read from the decoded envelope and its headers).
async fn broadcast_one(shared: &Shared, env: Envelope) -> Option<Result<(), Rejection>> {
    let config = shared.config();
    let max = config.batch().absolute_max_bytes as usize;
    let size = env.encoded_len();
    if size > max {
        return Some(Err(Rejection {
            status: FabricStatus::RequestEntityTooLarge,
            reason: format!("envelope of {size} bytes exceeds {max}"),
        }));
    }
    let kib = u32::try_from(size / 1024 + 1).unwrap_or(u32::MAX);
    let Ok(_in_flight) = shared.in_flight.clone().try_acquire_many_owned(kib) else {
        shared.metrics.broadcast_rejected.inc();
        return Some(Err(Rejection {
            status: FabricStatus::ServiceUnavailable,
            reason: "too many bytes being admitted; retry later".into(),
        }));
    };
    // Refused early, before its signature is checked, if its claimed creator (a valid
    // identity; cached) has no room in the pool. A false claim gains nothing: the full check
    // follows for what passes. A config update is bounded by the pool's totals only
    // ([`batch::Pool::room`]), so it is left to the full check.
    if let Some(creator) = claimed_creator(&env)
        && let Ok(creator) = config
            .msps()
            .validate(&creator, std::time::SystemTime::now())
        && shared
            .usage
            .lock()
            .is_ok_and(|u| u.full(creator.id(), creator.msp_id(), size))
    {
        shared.metrics.broadcast_rejected.inc();
        return Some(Err(Rejection {
            status: FabricStatus::ServiceUnavailable,
            reason:
                "the pending pool has no room for this submitter or its organization; retry later"
                    .into(),
        }));
    }
    let bytes = env.encode_to_vec();
    drop(env);
    let mut checked = shared.verifier.check(config, vec![bytes]).await;
    let checked = checked.pop()?;
    if let Err(r) = &checked.result {
        shared.metrics.broadcast_rejected.inc();
        return Some(Err(r.clone()));
    }
    let (rtx, rrx) = oneshot::channel();
    shared
        .core
        .send(CoreEvent::Submit(vec![checked], rtx))
        .await
        .ok()?;
    rrx.await.ok().and_then(|mut v| v.pop())
}

#[tonic::async_trait]
impl atomic_broadcast_server::AtomicBroadcast for AtomicBroadcastService {
    type BroadcastStream = ReceiverStream<std::result::Result<BroadcastResponse, Status>>;
    type DeliverStream = ReceiverStream<std::result::Result<DeliverResponse, Status>>;

    async fn broadcast(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> std::result::Result<Response<Self::BroadcastStream>, Status> {
        let mut input = request.into_inner();
        let (tx, rx) = mpsc::channel(256);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            while let Ok(Some(env)) = input.message().await {
                let result = broadcast_one(&shared, env).await;
                if tx.send(Ok(broadcast_response(result))).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> std::result::Result<Response<Self::DeliverStream>, Status> {
        let mut input = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            while let Ok(Some(env)) = input.message().await {
                let status = match deliver_one(&shared, &env, &tx).await {
                    Ok(()) => FabricStatus::Success,
                    Err(None) => return, // client gone
                    Err(Some(s)) => s,
                };
                if tx.send(Ok(deliver_status(status))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use medledger_msp::ou::NodeOu;

    /// Open point 3 of issue 14: Broadcast decoded each envelope, encoded it again, and the
    /// early share check decoded the bytes once more (and its payload): four copies of a
    /// 10 MiB envelope. Now the early check reads the headers only, and the envelope is
    /// encoded once. Prints the microbenchmark (`cargo test --release -p medledger-orderer
    /// --lib -- broadcast::tests --nocapture`).
    #[test]
    fn the_early_check_reads_a_10_mib_envelopes_headers_without_copying_its_data() {
        let mut ch = medledger_channel::testing::TestChannel::new("ehr", 1, 4);
        let client = ch.orgs[0].identity("c", NodeOu::Client, &[]);
        let env = crate::client::transaction_envelope(
            &client,
            "ehr",
            &medledger_channel::testing::rand_nonce(),
            vec![7; 10 * 1024 * 1024],
        )
        .unwrap();
        let creator = client.serialized().to_vec();
        assert_eq!(claimed_creator(&env).as_deref(), Some(creator.as_slice()));
        let update = medledger_channel::testing::signed_envelope(
            &client,
            "ehr",
            medledger_proto::common::HeaderType::ConfigUpdate,
            vec![],
        );
        assert_eq!(claimed_creator(&update), None);
        let runs = 20u32;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            // Before: encode, decode the bytes again, parse the payload.
            let bytes = env.encode_to_vec();
            let again = Envelope::decode(bytes.as_slice()).unwrap();
            let parsed = medledger_channel::envelope::parse(&again).unwrap();
            assert_eq!(parsed.signature_header.creator, creator);
        }
        let before = start.elapsed() / runs;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            // Now: the headers, then one encoding for the pool.
            assert!(claimed_creator(&env).is_some());
            let bytes = env.encode_to_vec();
            assert_eq!(bytes.len(), env.encoded_len());
        }
        let after = start.elapsed() / runs;
        println!(
            "10 MiB envelope, Broadcast's copies and early check: before {before:?}, now {after:?}"
        );
    }
}
