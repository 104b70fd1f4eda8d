//! A small `orderer.AtomicBroadcast` client (TLS): what peers, the CLI, tests and the
//! benchmark use to submit envelopes and read blocks.

use std::time::SystemTime;

use medledger_msp::identity::SigningIdentity;
use medledger_proto::common::{
    ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader,
};
use medledger_proto::orderer::{
    BroadcastResponse, DeliverResponse, atomic_broadcast_client::AtomicBroadcastClient,
};
use prost::Message;
use tonic::transport::{Certificate as TlsCertificate, Channel, ClientTlsConfig, Endpoint};

use crate::{Error, Result};

fn transport(e: impl std::fmt::Display) -> Error {
    Error::Transport {
        reason: e.to_string(),
    }
}

/// A connection to one orderer's AtomicBroadcast service.
#[derive(Debug, Clone)]
pub struct OrdererClient {
    inner: AtomicBroadcastClient<Channel>,
}

impl OrdererClient {
    /// Connects to `host:port` over TLS, trusting the PEM roots `tls_roots_pem`.
    ///
    /// # Errors
    /// [`Error::Transport`].
    pub async fn connect(host: &str, port: u16, tls_roots_pem: &[u8]) -> Result<Self> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(TlsCertificate::from_pem(tls_roots_pem))
            .domain_name(host.to_owned());
        let channel = Endpoint::from_shared(format!("https://{host}:{port}"))
            .and_then(|e| e.tls_config(tls))
            .map_err(transport)?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(transport)?;
        Ok(OrdererClient {
            inner: AtomicBroadcastClient::new(channel)
                .max_decoding_message_size(256 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
        })
    }

    /// Broadcasts envelopes on one stream and returns one response per envelope, in order.
    ///
    /// # Errors
    /// [`Error::Transport`] if the stream fails.
    pub async fn broadcast(&mut self, envelopes: Vec<Envelope>) -> Result<Vec<BroadcastResponse>> {
        let n = envelopes.len();
        let mut responses = self
            .inner
            .broadcast(tokio_stream::iter(envelopes))
            .await
            .map_err(transport)?
            .into_inner();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match responses.message().await.map_err(transport)? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(out)
    }

    /// Broadcasts the envelopes of `envelopes` on one stream as it yields them; returns the
    /// responses, in order, once the stream ended.
    ///
    /// # Errors
    /// [`Error::Transport`] if the stream fails.
    pub async fn broadcast_stream<S>(&mut self, envelopes: S) -> Result<Vec<BroadcastResponse>>
    where
        S: tokio_stream::Stream<Item = Envelope> + Send + 'static,
    {
        let mut responses = self
            .inner
            .broadcast(envelopes)
            .await
            .map_err(transport)?
            .into_inner();
        let mut out = Vec::new();
        while let Some(r) = responses.message().await.map_err(transport)? {
            out.push(r);
        }
        Ok(out)
    }

    /// Sends one signed SeekInfo request and returns the response stream (blocks, then a
    /// final status).
    ///
    /// # Errors
    /// [`Error::Transport`].
    pub async fn deliver(
        &mut self,
        request: Envelope,
    ) -> Result<tonic::Streaming<DeliverResponse>> {
        Ok(self
            .inner
            .deliver(tokio_stream::iter([request]))
            .await
            .map_err(transport)?
            .into_inner())
    }
}

/// A signed Deliver request (`DELIVER_SEEK_INFO` envelope) for blocks `start..=stop`; see
/// [`medledger_channel::deliver::seek_envelope`].
///
/// # Errors
/// [`Error::Config`] if signing fails.
pub fn seek_envelope(
    signer: &SigningIdentity,
    channel_id: &str,
    start: u64,
    stop: u64,
) -> Result<Envelope> {
    medledger_channel::deliver::seek_envelope(signer, channel_id, start, stop).map_err(|e| {
        Error::Config {
            reason: format!("signing the envelope: {e}"),
        }
    })
}

/// A signed endorser-transaction envelope from `signer` carrying `data`, endorsed once by
/// `signer` itself (the benchmark's and tests' load; real transactions come from the
/// gateway). It has the shape of Fabric's `protoutil.CreateSignedTx` output, which the
/// orderer's admission checks ([`crate::batch::admit`]): one `TransactionAction` whose header
/// is the envelope's signature header, a `ChaincodeActionPayload` with `data` as the
/// chaincode proposal input, a `ProposalResponsePayload` bound to the headers by its proposal
/// hash, and one endorsement (signature over the response payload ‖ endorser). tx_id =
/// hex(SHA-256(nonce ‖ creator)) as Fabric. A peer would refuse it at commit (a client is no
/// endorsing peer); orderers do not evaluate endorsement policies.
///
/// # Errors
/// [`Error::Config`] if signing fails.
pub fn transaction_envelope(
    signer: &SigningIdentity,
    channel_id: &str,
    nonce: &[u8],
    data: Vec<u8>,
) -> Result<Envelope> {
    endorsed_envelope(signer, channel_id, nonce, data, &[signer])
}

/// As [`transaction_envelope`], endorsed by each of `endorsers` (none: an unendorsed
/// transaction, which orderers refuse with `BAD_REQUEST`).
///
/// # Errors
/// [`Error::Config`] if signing fails.
pub fn endorsed_envelope(
    signer: &SigningIdentity,
    channel_id: &str,
    nonce: &[u8],
    data: Vec<u8>,
    endorsers: &[&SigningIdentity],
) -> Result<Envelope> {
    use medledger_proto::protos::{
        ChaincodeAction, ChaincodeActionPayload, ChaincodeEndorsedAction, ChaincodeId,
        ChaincodeProposalPayload, Endorsement, ProposalResponsePayload, Transaction,
        TransactionAction,
    };
    let sign_err = |e: medledger_msp::Error| Error::Config {
        reason: format!("signing the envelope: {e}"),
    };
    let tx_id = medledger_proto::TxId::compute(nonce, signer.serialized());
    let channel_header = ChannelHeader {
        r#type: HeaderType::EndorserTransaction as i32,
        channel_id: channel_id.to_owned(),
        tx_id: tx_id.to_string(),
        timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
        ..Default::default()
    }
    .encode_to_vec();
    let signature_header = SignatureHeader {
        creator: signer.serialized().to_vec(),
        nonce: nonce.to_vec(),
    }
    .encode_to_vec();
    let proposal_payload = ChaincodeProposalPayload {
        input: data,
        transient_map: Default::default(),
    }
    .encode_to_vec();
    let proposal_hash = medledger_msp::crypto::sha256(
        &[
            channel_header.as_slice(),
            signature_header.as_slice(),
            proposal_payload.as_slice(),
        ]
        .concat(),
    );
    let response_payload = ProposalResponsePayload {
        proposal_hash: proposal_hash.to_vec(),
        extension: ChaincodeAction {
            chaincode_id: Some(ChaincodeId {
                name: "load".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    }
    .encode_to_vec();
    let mut endorsements = Vec::with_capacity(endorsers.len());
    for e in endorsers {
        let msg = [response_payload.as_slice(), e.serialized()].concat();
        endorsements.push(Endorsement {
            endorser: e.serialized().to_vec(),
            signature: e.sign(&msg).map_err(sign_err)?,
        });
    }
    let tx = Transaction {
        actions: vec![TransactionAction {
            header: signature_header.clone(),
            payload: ChaincodeActionPayload {
                chaincode_proposal_payload: proposal_payload,
                action: Some(ChaincodeEndorsedAction {
                    proposal_response_payload: response_payload,
                    endorsements,
                }),
            }
            .encode_to_vec(),
        }],
    };
    let payload = Payload {
        header: Some(Header {
            channel_header,
            signature_header,
        }),
        data: tx.encode_to_vec(),
    }
    .encode_to_vec();
    let signature = signer.sign(&payload).map_err(sign_err)?;
    Ok(Envelope { payload, signature })
}
