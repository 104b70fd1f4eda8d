//! Deliver on the orderer: its chain as a [`deliver::BlockSource`], a stream as a
//! [`deliver::BlockSink`], and one SeekInfo request served under the shared Deliver rules.

use std::sync::Arc;

use medledger_channel::{ChannelConfig, deliver};
use medledger_proto::common::{Block, Envelope, Status as FabricStatus};
use medledger_proto::orderer::{DeliverResponse, deliver_response};
use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::Shared;

pub(super) fn deliver_status(s: FabricStatus) -> DeliverResponse {
    DeliverResponse {
        r#type: Some(deliver_response::Type::Status(s as i32)),
    }
}

/// The orderer's chain as the shared Deliver rules read it.
impl deliver::BlockSource for Shared {
    type Error = crate::Error;

    fn config(&self) -> Arc<ChannelConfig> {
        Shared::config(self)
    }

    fn height(&self) -> watch::Receiver<u64> {
        self.height.subscribe()
    }

    async fn block(&self, number: u64) -> crate::Result<Option<Block>> {
        Shared::block(self, number)
    }
}

/// One Deliver stream of the orderer.
struct OrdererSink<'a>(&'a mpsc::Sender<std::result::Result<DeliverResponse, Status>>);

impl deliver::BlockSink for OrdererSink<'_> {
    async fn send(&mut self, block: Block) -> bool {
        let msg = DeliverResponse {
            r#type: Some(deliver_response::Type::Block(block)),
        };
        self.0.send(Ok(msg)).await.is_ok()
    }

    async fn closed(&self) {
        self.0.closed().await;
    }
}

/// Serves one SeekInfo request under the shared Deliver rules ([`deliver`]); `Err(None)` when
/// the client went away.
pub(super) async fn deliver_one(
    shared: &Shared,
    env: &Envelope,
    tx: &mpsc::Sender<std::result::Result<DeliverResponse, Status>>,
) -> std::result::Result<(), Option<FabricStatus>> {
    let refused = |r: deliver::Refusal| {
        tracing::debug!(target: "orderer::deliver", status = ?r.status, reason = r.reason, "deliver request refused");
        Some(r.status)
    };
    let request = deliver::parse(env).map_err(refused)?;
    let authorized = deliver::authorize(
        request,
        env,
        &shared.config(),
        std::time::SystemTime::now(),
        deliver::DEFAULT_TIME_WINDOW,
    )
    .map_err(refused)?;
    match deliver::serve(shared, &authorized, &mut OrdererSink(tx)).await {
        Ok(deliver::Served::Done) => Ok(()),
        Ok(deliver::Served::ClientGone) => Err(None),
        Err(r) => Err(refused(r)),
    }
}
