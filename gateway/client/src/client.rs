//! The Rust client SDK, mirroring Fabric's Gateway client API (`fabric-gateway` for Go/Node):
//! `Gateway` → `Network` → `Contract` → `submit_transaction` / `evaluate_transaction`, or the
//! step by step flow `new_proposal` → `endorse` → `submit` → `status`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use medledger_channel::deliver::block_stream_envelope;
use medledger_msp::identity::SigningIdentity;
use medledger_proto::common::{Block, Envelope, Status as CommonStatus};
use medledger_proto::gateway::gateway_client::GatewayClient;
use medledger_proto::gateway::{
    ChaincodeEventsRequest, CommitStatusRequest, EndorseRequest, EvaluateRequest,
    SignedChaincodeEventsRequest, SignedCommitStatusRequest, SubmitRequest,
};
use medledger_proto::orderer::{SeekNextCommit, SeekPosition, SeekSpecified, seek_position};
use medledger_proto::protos::deliver_client::DeliverClient;
use medledger_proto::protos::{
    ChaincodeEvent, DeliverResponse, SignedProposal, TxValidationCode, deliver_response,
};
use prost::Message;
use tonic::transport::Channel;

use crate::errors::GatewayError;
use crate::proposal::build_proposal;

/// Largest block accepted from `block_events` (bytes), as the peer's gRPC message limit.
const MAX_BLOCK_BYTES: usize = 100 * 1024 * 1024;

/// A connection to a gateway peer as one identity.
#[derive(Clone)]
pub struct Gateway {
    identity: Arc<SigningIdentity>,
    client: GatewayClient<Channel>,
    channel: Channel,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("msp_id", &self.identity.msp_id())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Uses `channel` (connected, TLS configured) to reach the gateway, signing as `identity`.
    pub fn connect(identity: SigningIdentity, channel: Channel) -> Self {
        Gateway {
            identity: Arc::new(identity),
            client: GatewayClient::new(channel.clone()),
            channel,
        }
    }

    /// The identity used.
    pub fn identity(&self) -> &SigningIdentity {
        &self.identity
    }

    /// A channel.
    pub fn network(&self, channel_id: &str) -> Network {
        Network {
            gateway: self.clone(),
            channel_id: channel_id.to_owned(),
        }
    }
}

/// A channel seen through the gateway.
#[derive(Clone, Debug)]
pub struct Network {
    gateway: Gateway,
    channel_id: String,
}

impl Network {
    /// A chaincode on this channel.
    pub fn contract(&self, chaincode: &str) -> Contract {
        Contract {
            network: self.clone(),
            chaincode: chaincode.to_owned(),
        }
    }

    /// The commit of an earlier submitted transaction, to ask for its status (e.g. after a
    /// client restart).
    pub fn commit(&self, tx_id: &str) -> Commit {
        Commit {
            network: self.clone(),
            tx_id: tx_id.to_owned(),
        }
    }

    /// Committed blocks of this channel from block `start` (`None`: from the next commit),
    /// following new commits, from the gateway peer's `protos.Deliver` service (Fabric's
    /// `network.getBlockEvents`). The identity must satisfy the channel's `Readers` policy.
    ///
    /// # Errors
    /// [`GatewayError::Local`] if signing fails, [`GatewayError::Status`] if the call fails;
    /// in the stream, [`GatewayError::Deliver`] if the peer answers with a status instead of
    /// a block (e.g. `FORBIDDEN`, `NOT_FOUND` for an unknown channel).
    pub async fn block_events(
        &self,
        start: Option<u64>,
    ) -> Result<impl Stream<Item = Result<Block, GatewayError>> + use<>, GatewayError> {
        let gw = &self.gateway;
        let envelope = block_stream_envelope(&gw.identity, &self.channel_id, seek_start(start))
            .map_err(|e| GatewayError::Local(e.to_string()))?;
        let stream = DeliverClient::new(gw.channel.clone())
            .max_decoding_message_size(MAX_BLOCK_BYTES)
            .deliver(tokio_stream::once(envelope))
            .await?
            .into_inner();
        Ok(stream.map(|r| match r? {
            DeliverResponse {
                r#type: Some(deliver_response::Type::Block(block)),
            } => Ok(block),
            DeliverResponse {
                r#type: Some(deliver_response::Type::Status(s)),
            } => Err(GatewayError::Deliver {
                status: CommonStatus::try_from(s).unwrap_or(CommonStatus::Unknown),
            }),
            _ => Err(GatewayError::Local(
                "unexpected deliver response (not a block)".into(),
            )),
        }))
    }

    /// Chaincode events of `chaincode` from block `start` (`None`: from the next commit),
    /// after `after_tx_id` within the start block.
    ///
    /// # Errors
    /// [`GatewayError`] if the gateway refuses the request.
    pub async fn chaincode_events(
        &self,
        chaincode: &str,
        start: Option<u64>,
        after_tx_id: Option<&str>,
    ) -> Result<impl Stream<Item = Result<(u64, ChaincodeEvent), GatewayError>>, GatewayError> {
        let gw = &self.gateway;
        let request = ChaincodeEventsRequest {
            channel_id: self.channel_id.clone(),
            chaincode_id: chaincode.to_owned(),
            identity: gw.identity.serialized().to_vec(),
            start_position: Some(seek_start(start)),
            after_transaction_id: after_tx_id.unwrap_or_default().to_owned(),
        }
        .encode_to_vec();
        let signature = gw
            .identity
            .sign(&request)
            .map_err(|e| GatewayError::Local(e.to_string()))?;
        let stream = gw
            .client
            .clone()
            .chaincode_events(SignedChaincodeEventsRequest { request, signature })
            .await?
            .into_inner();
        Ok(stream.flat_map(|r| {
            let items: Vec<Result<(u64, ChaincodeEvent), GatewayError>> = match r {
                Ok(resp) => resp
                    .events
                    .into_iter()
                    .map(|e| Ok((resp.block_number, e)))
                    .collect(),
                Err(s) => vec![Err(GatewayError::from(s))],
            };
            futures::stream::iter(items)
        }))
    }
}

/// Where an event stream starts: block `start`, or the next commit.
fn seek_start(start: Option<u64>) -> SeekPosition {
    let position = match start {
        Some(number) => seek_position::Type::Specified(SeekSpecified { number }),
        None => seek_position::Type::NextCommit(SeekNextCommit {}),
    };
    SeekPosition {
        r#type: Some(position),
    }
}

/// A chaincode.
#[derive(Clone, Debug)]
pub struct Contract {
    network: Network,
    chaincode: String,
}

impl Contract {
    /// The identity that signs this contract's proposals (the gateway's).
    pub fn identity(&self) -> &SigningIdentity {
        self.network.gateway.identity()
    }

    /// Starts a proposal for `function`.
    pub fn new_proposal(&self, function: &str) -> ProposalBuilder {
        ProposalBuilder {
            contract: self.clone(),
            args: vec![function.as_bytes().to_vec()],
            transient: BTreeMap::new(),
            endorsing_orgs: Vec::new(),
        }
    }

    /// Endorses, submits and waits for the commit; returns the chaincode's result.
    ///
    /// # Errors
    /// [`GatewayError::Status`] from endorsement or submission, [`GatewayError::Commit`] if the
    /// transaction committed invalid.
    pub async fn submit_transaction(
        &self,
        function: &str,
        args: &[&str],
    ) -> Result<Vec<u8>, GatewayError> {
        let tx = self
            .new_proposal(function)
            .args(args)
            .build()?
            .endorse()
            .await?;
        let result = tx.result().to_vec();
        let commit = tx.submit().await?;
        let (code, block) = commit.status().await?;
        if code != TxValidationCode::Valid {
            return Err(GatewayError::Commit {
                tx_id: commit.tx_id,
                code,
                block,
            });
        }
        Ok(result)
    }

    /// Evaluates (no ledger update) and returns the chaincode's result.
    ///
    /// # Errors
    /// [`GatewayError`].
    pub async fn evaluate_transaction(
        &self,
        function: &str,
        args: &[&str],
    ) -> Result<Vec<u8>, GatewayError> {
        self.new_proposal(function)
            .args(args)
            .build()?
            .evaluate()
            .await
    }
}

/// Builder of a proposal.
#[derive(Clone, Debug)]
pub struct ProposalBuilder {
    contract: Contract,
    args: Vec<Vec<u8>>,
    transient: BTreeMap<String, Vec<u8>>,
    endorsing_orgs: Vec<String>,
}

impl ProposalBuilder {
    /// Adds string arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_bytes().to_vec()));
        self
    }

    /// Adds a transient (private) entry: sent to endorsers, never written to the ledger.
    pub fn with_transient(mut self, key: &str, value: &[u8]) -> Self {
        self.transient.insert(key.to_owned(), value.to_vec());
        self
    }

    /// Endorse by exactly these organizations instead of letting the gateway plan.
    pub fn with_endorsing_organizations(mut self, orgs: &[&str]) -> Self {
        self.endorsing_orgs = orgs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Signs the proposal.
    ///
    /// # Errors
    /// [`GatewayError::Local`] if signing fails.
    pub fn build(self) -> Result<Proposal, GatewayError> {
        let net = &self.contract.network;
        let built = build_proposal(
            &net.gateway.identity,
            &net.channel_id,
            &self.contract.chaincode,
            &self.args,
            &self.transient,
        )?;
        Ok(Proposal {
            network: net.clone(),
            tx_id: built.tx_id,
            signed: built.signed,
            endorsing_orgs: self.endorsing_orgs,
        })
    }
}

/// A signed proposal.
#[derive(Clone, Debug)]
pub struct Proposal {
    network: Network,
    tx_id: String,
    signed: SignedProposal,
    endorsing_orgs: Vec<String>,
}

impl Proposal {
    /// Transaction id.
    pub fn tx_id(&self) -> &str {
        &self.tx_id
    }

    /// Evaluates on one peer; the chaincode's result.
    ///
    /// # Errors
    /// [`GatewayError`].
    pub async fn evaluate(&self) -> Result<Vec<u8>, GatewayError> {
        let resp = self
            .network
            .gateway
            .client
            .clone()
            .evaluate(EvaluateRequest {
                transaction_id: self.tx_id.clone(),
                channel_id: self.network.channel_id.clone(),
                proposed_transaction: Some(self.signed.clone()),
                target_organizations: self.endorsing_orgs.clone(),
            })
            .await?
            .into_inner();
        let r = resp.result.unwrap_or_default();
        if r.status >= 400 {
            return Err(GatewayError::Chaincode {
                status: r.status,
                message: r.message,
            });
        }
        Ok(r.payload)
    }

    /// Collects endorsements and signs the prepared transaction.
    ///
    /// # Errors
    /// [`GatewayError::Status`] with per-peer details.
    pub async fn endorse(&self) -> Result<Transaction, GatewayError> {
        let resp = self
            .network
            .gateway
            .client
            .clone()
            .endorse(EndorseRequest {
                transaction_id: self.tx_id.clone(),
                channel_id: self.network.channel_id.clone(),
                proposed_transaction: Some(self.signed.clone()),
                endorsing_organizations: self.endorsing_orgs.clone(),
            })
            .await?
            .into_inner();
        let mut envelope = resp.prepared_transaction.ok_or_else(|| {
            GatewayError::Local("gateway returned no prepared transaction".into())
        })?;
        envelope.signature = self
            .network
            .gateway
            .identity
            .sign(&envelope.payload)
            .map_err(|e| GatewayError::Local(e.to_string()))?;
        let result = transaction_result(&envelope).unwrap_or_default();
        Ok(Transaction {
            network: self.network.clone(),
            tx_id: self.tx_id.clone(),
            envelope,
            result,
        })
    }
}

/// The chaincode response payload inside a prepared transaction.
fn transaction_result(envelope: &Envelope) -> Option<Vec<u8>> {
    use medledger_proto::common::Payload;
    use medledger_proto::protos::{
        ChaincodeAction, ChaincodeActionPayload, ProposalResponsePayload, Transaction as PbTx,
    };
    let payload = Payload::decode(envelope.payload.as_slice()).ok()?;
    let tx = PbTx::decode(payload.data.as_slice()).ok()?;
    let cap = ChaincodeActionPayload::decode(tx.actions.first()?.payload.as_slice()).ok()?;
    let prp =
        ProposalResponsePayload::decode(cap.action?.proposal_response_payload.as_slice()).ok()?;
    let action = ChaincodeAction::decode(prp.extension.as_slice()).ok()?;
    Some(action.response?.payload)
}

/// An endorsed, signed transaction ready to submit.
#[derive(Clone, Debug)]
pub struct Transaction {
    network: Network,
    tx_id: String,
    envelope: Envelope,
    result: Vec<u8>,
}

impl Transaction {
    /// The chaincode's result.
    pub fn result(&self) -> &[u8] {
        &self.result
    }

    /// Transaction id.
    pub fn tx_id(&self) -> &str {
        &self.tx_id
    }

    /// The signed envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Sends it to the ordering service.
    ///
    /// # Errors
    /// [`GatewayError::Status`] with per-orderer details.
    pub async fn submit(&self) -> Result<Commit, GatewayError> {
        self.network
            .gateway
            .client
            .clone()
            .submit(SubmitRequest {
                transaction_id: self.tx_id.clone(),
                channel_id: self.network.channel_id.clone(),
                prepared_transaction: Some(self.envelope.clone()),
            })
            .await?;
        Ok(Commit {
            network: self.network.clone(),
            tx_id: self.tx_id.clone(),
        })
    }
}

/// A submitted transaction.
#[derive(Clone, Debug)]
pub struct Commit {
    network: Network,
    /// Transaction id.
    pub tx_id: String,
}

impl Commit {
    /// Waits for the commit: validation code and block number.
    ///
    /// # Errors
    /// [`GatewayError::Status`].
    pub async fn status(&self) -> Result<(TxValidationCode, u64), GatewayError> {
        let gw = &self.network.gateway;
        let request = CommitStatusRequest {
            transaction_id: self.tx_id.clone(),
            channel_id: self.network.channel_id.clone(),
            identity: gw.identity.serialized().to_vec(),
        }
        .encode_to_vec();
        let signature = gw
            .identity
            .sign(&request)
            .map_err(|e| GatewayError::Local(e.to_string()))?;
        let resp = gw
            .client
            .clone()
            .commit_status(SignedCommitStatusRequest { request, signature })
            .await?
            .into_inner();
        let code =
            TxValidationCode::try_from(resp.result).unwrap_or(TxValidationCode::InvalidOtherReason);
        Ok((code, resp.block_number))
    }
}
