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
        Some(Ok(())) => BroadcastResponse {
            status: FabricStatus::Success as i32,
            info: String::new(),
        },
        Some(Err(rej)) => BroadcastResponse {
            status: rej.status as i32,
            info: rej.reason,
        },
        None => BroadcastResponse {
            status: FabricStatus::ServiceUnavailable as i32,
            info: "orderer is not running".into(),
        },
    }
}

/// Admits one Broadcast envelope: within the in-flight byte budget (else
/// `SERVICE_UNAVAILABLE`), checked by the [`super::Verifier`] (a refusal is answered without the
/// core), then handed to the core for the pool. `None` if the core is gone.
async fn broadcast_one(shared: &Shared, bytes: Vec<u8>) -> Option<Result<(), Rejection>> {
    let config = shared.config();
    let max = config.batch().absolute_max_bytes as usize;
    if bytes.len() > max {
        return Some(Err(Rejection {
            status: FabricStatus::RequestEntityTooLarge,
            reason: format!("envelope of {} bytes exceeds {max}", bytes.len()),
        }));
    }
    let kib = u32::try_from(bytes.len() / 1024 + 1).unwrap_or(u32::MAX);
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
    if let Ok(env) = Envelope::decode(bytes.as_slice())
        && let Ok(parsed) = medledger_channel::envelope::parse(&env)
        && parsed.header_type() != Some(medledger_proto::common::HeaderType::ConfigUpdate)
        && let Ok(creator) = config.msps().validate(
            &parsed.signature_header.creator,
            std::time::SystemTime::now(),
        )
        && shared
            .usage
            .lock()
            .is_ok_and(|u| u.full(creator.id(), creator.msp_id(), bytes.len()))
    {
        shared.metrics.broadcast_rejected.inc();
        return Some(Err(Rejection {
            status: FabricStatus::ServiceUnavailable,
            reason:
                "the pending pool has no room for this submitter or its organization; retry later"
                    .into(),
        }));
    }
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
                let result = broadcast_one(&shared, env.encode_to_vec()).await;
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
