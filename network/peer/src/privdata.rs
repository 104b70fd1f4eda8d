//! Private data between member peers (`medledger.privdata.PrivateData`, mutual TLS), and the
//! reconciler that fetches private data a member peer lacks.
//!
//! A peer commits a transaction's public part and the hashes of its private writes whether or
//! not it holds the private data; a member peer that did not receive it records it as missing
//! ([`Ledger::missing_private`]). The [`Reconciler`] asks other member peers — the
//! transaction's endorsers' organizations first — for each missing collection, checks what
//! comes back against the hashes in the committed block, and stores it; what stays missing is
//! retried on the next round. The [`PrivateDataService`] answers such requests only from
//! another *peer*, as Fabric's gossip does: every request is signed by the requesting peer's
//! enrollment identity (validated under the channel's MSPs at the server's clock, CRLs
//! included, and required to carry NodeOU `peer`) and names the SHA-256 of the TLS client
//! certificate it is sent with, which must be the certificate of the connection and issued by
//! the same organization's TLS CA. Only collections whose member organizations include that
//! peer's organization are served, so neither non-members nor a member organization's
//! clients (a patient or a doctor with a TLS certificate) ever receive private data this way.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use medledger_channel::ChannelConfig;
use medledger_ledger::Ledger;
use medledger_ledger_api::MissingPrivate;
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::sha256;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_proto::MspId;
use medledger_proto::medledger::privdata::private_data_client::PrivateDataClient;
use medledger_proto::medledger::privdata::private_data_server::{PrivateData, PrivateDataServer};
use medledger_proto::medledger::privdata::{
    FetchRequest, FetchResponse, PrivateDataDigest, PrivateDataElement, SignedFetchRequest,
};
use prost::Message;
use tonic::transport::{Certificate as TlsCertificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use crate::definitions::ChaincodeDefinitions;
use crate::validator::{tx, verify_private_rwset, verify_private_writes};

/// Largest number of digests answered per request.
pub const MAX_DIGESTS_PER_REQUEST: usize = 1024;

/// Largest accepted difference between a request's timestamp and the server's clock (as the
/// endorser's proposal window).
pub const MAX_REQUEST_SKEW: Duration = Duration::from_secs(15 * 60);

/// Builds the signed request a peer sends: `request` with `creator` = the peer's serialized
/// enrollment identity, `tls_cert_hash` = SHA-256 of `tls_cert_der` (the TLS client
/// certificate the request travels with) and the current time, signed by `signer`.
///
/// # Errors
/// The signer's [`medledger_msp::Error`].
pub fn sign_fetch_request(
    signer: &SigningIdentity,
    tls_cert_der: &[u8],
    channel_id: &str,
    digests: Vec<PrivateDataDigest>,
) -> Result<SignedFetchRequest, medledger_msp::Error> {
    let request = FetchRequest {
        channel_id: channel_id.to_owned(),
        digests,
        creator: signer.serialized().to_vec(),
        tls_cert_hash: sha256(tls_cert_der).to_vec(),
        timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
    }
    .encode_to_vec();
    let signature = signer.sign(&request)?;
    Ok(SignedFetchRequest { request, signature })
}

/// Why the [`PrivateDataService`] refuses a request; [`Status`] from it is the one mapping to
/// gRPC codes. Messages name no request contents (no digests, no key).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// The connection has no TLS client certificate.
    #[error("a TLS client certificate is required")]
    NoTlsCertificate,
    /// The request does not decode.
    #[error("malformed fetch request")]
    Malformed,
    /// More than [`MAX_DIGESTS_PER_REQUEST`] digests.
    #[error("too many digests")]
    TooManyDigests,
    /// This peer does not serve the channel (as the request names it, unchecked).
    #[error("channel not served")]
    UnknownChannel {
        /// The channel id of the request.
        channel: String,
    },
    /// The request names another TLS certificate than the connection's.
    #[error("request not bound to this connection's TLS certificate")]
    NotBound,
    /// The request has no valid timestamp.
    #[error("request without a valid timestamp")]
    NoTimestamp,
    /// The request's timestamp is more than [`MAX_REQUEST_SKEW`] from the server's clock.
    #[error("request timestamp out of window")]
    OutOfWindow,
    /// The creator or its signature does not validate under the channel's MSPs.
    #[error("requester refused: {0}")]
    Requester(medledger_msp::Error),
    /// The creator is not a peer.
    #[error("only peers may fetch private data")]
    NotPeer,
    /// The TLS client certificate does not parse.
    #[error("unreadable TLS client certificate")]
    UnreadableTlsCertificate,
    /// The TLS client certificate is not of the creator's organization.
    #[error("TLS certificate not issued by the requester's organization")]
    WrongTlsOrganization,
    /// Reading the ledger's private data failed.
    #[error("private data lookup failed")]
    Lookup,
}

impl From<Refusal> for Status {
    fn from(r: Refusal) -> Self {
        let message = r.to_string();
        match r {
            Refusal::NoTlsCertificate | Refusal::UnreadableTlsCertificate => {
                Status::unauthenticated(message)
            }
            Refusal::Malformed | Refusal::TooManyDigests | Refusal::NoTimestamp => {
                Status::invalid_argument(message)
            }
            Refusal::UnknownChannel { .. } => Status::not_found(message),
            Refusal::NotBound
            | Refusal::OutOfWindow
            | Refusal::Requester(_)
            | Refusal::NotPeer
            | Refusal::WrongTlsOrganization => Status::permission_denied(message),
            Refusal::Lookup => Status::internal(message),
        }
    }
}

/// The organization of the peer that sent `req` (decoded from `signed.request`) on a
/// connection with TLS client certificate `leaf_der`; otherwise why it is refused.
fn authorize(
    config: &ChannelConfig,
    leaf_der: &[u8],
    req: &FetchRequest,
    signed: &SignedFetchRequest,
    now: SystemTime,
) -> Result<MspId, Refusal> {
    if req.tls_cert_hash.as_slice() != sha256(leaf_der).as_slice() {
        return Err(Refusal::NotBound);
    }
    let at = req
        .timestamp
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or(Refusal::NoTimestamp)?;
    let skew = now.duration_since(at).unwrap_or_else(|e| e.duration());
    if skew > MAX_REQUEST_SKEW {
        return Err(Refusal::OutOfWindow);
    }
    let identity = config
        .msps()
        .verify(&req.creator, &signed.request, &signed.signature, now)
        .map_err(Refusal::Requester)?;
    identity
        .require_ou(NodeOu::Peer)
        .map_err(|_| Refusal::NotPeer)?;
    let leaf = Certificate::from_der(leaf_der).map_err(|_| Refusal::UnreadableTlsCertificate)?;
    if tls_org(config, &leaf).as_deref() != Some(identity.msp_id()) {
        return Err(Refusal::WrongTlsOrganization);
    }
    // Every MSP of the channel was built from an MSP id the channel configuration parsed,
    // so this never refuses.
    MspId::new(identity.msp_id()).map_err(|_| Refusal::WrongTlsOrganization)
}

/// The channel configuration in force (the committer's, which a config block replaces), read
/// on every request so a revocation or a removed organization applies at once.
pub type ConfigSource = Arc<dyn Fn() -> Arc<ChannelConfig> + Send + Sync>;

#[derive(Clone)]
struct ServedChannel {
    ledger: Arc<Ledger>,
    config: ConfigSource,
    definitions: Arc<dyn ChaincodeDefinitions>,
}

/// Serves this peer's private data to member peers of the same collections.
#[derive(Clone, Default)]
pub struct PrivateDataService {
    channels: Arc<RwLock<HashMap<String, ServedChannel>>>,
}

impl std::fmt::Debug for PrivateDataService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateDataService").finish_non_exhaustive()
    }
}

impl PrivateDataService {
    /// A service with no channels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves the private data of `ledger`'s channel, authorizing requesters under the
    /// configuration `config` returns at each request, with `definitions` saying which
    /// organizations are members of which collection.
    pub fn add_channel(
        &self,
        ledger: Arc<Ledger>,
        config: ConfigSource,
        definitions: Arc<dyn ChaincodeDefinitions>,
    ) {
        let channel_id = config().channel_id().to_string();
        let mut channels = self.channels.write().unwrap_or_else(|e| e.into_inner());
        channels.insert(
            channel_id,
            ServedChannel {
                ledger,
                config,
                definitions,
            },
        );
    }

    /// The tonic server.
    pub fn into_server(self) -> PrivateDataServer<Self> {
        PrivateDataServer::new(self)
    }
}

/// The MSP whose TLS root CA issued `leaf`, among the channel's organizations.
pub fn tls_org(config: &ChannelConfig, leaf: &Certificate) -> Option<String> {
    let msps = config.msps();
    msps.msp_ids().into_iter().find_map(|id| {
        let msp = msps.msp(id)?;
        msp.tls_roots()
            .iter()
            .any(|root| leaf.verify_signed_by(root).is_ok())
            .then(|| id.to_owned())
    })
}

#[tonic::async_trait]
impl PrivateData for PrivateDataService {
    async fn fetch(
        &self,
        request: Request<SignedFetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        Ok(Response::new(self.serve(request).await?))
    }
}

impl PrivateDataService {
    async fn serve(&self, request: Request<SignedFetchRequest>) -> Result<FetchResponse, Refusal> {
        let leaf = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()))
            .ok_or(Refusal::NoTlsCertificate)?;
        let signed = request.into_inner();
        let req =
            FetchRequest::decode(signed.request.as_slice()).map_err(|_| Refusal::Malformed)?;
        if req.digests.len() > MAX_DIGESTS_PER_REQUEST {
            return Err(Refusal::TooManyDigests);
        }
        let channel = {
            let channels = self.channels.read().unwrap_or_else(|e| e.into_inner());
            channels.get(&req.channel_id).cloned()
        }
        .ok_or_else(|| Refusal::UnknownChannel {
            channel: req.channel_id.clone(),
        })?;
        let org = authorize(&(channel.config)(), &leaf, &req, &signed, SystemTime::now())
            .inspect_err(|e| {
                warn!(target: "peer::privdata", reason = %e, "private data request refused");
            })?;
        let ledger = channel.ledger.clone();
        let defs = channel.definitions.clone();
        let elements = tokio::task::spawn_blocking(move || {
            req.digests
                .into_iter()
                .filter(|d| {
                    defs.definition(&d.namespace)
                        .and_then(|def| def.collections.get(&d.collection).cloned())
                        .is_some_and(|c| c.is_member(&org))
                })
                .filter_map(|d| {
                    let rwset = ledger
                        .private_rwset(d.block_num, d.tx_num, &d.namespace, &d.collection)
                        .ok()??;
                    Some(PrivateDataElement {
                        digest: Some(d),
                        rwset,
                    })
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| Refusal::Lookup)?;
        debug!(target: "peer::privdata", served = elements.len(), "private data request answered");
        Ok(FetchResponse { elements })
    }
}

/// A peer to ask for private data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEndpoint {
    /// `https://host:port`.
    pub url: String,
    /// Name its TLS server certificate is checked against.
    pub tls_name: String,
}

/// Where the peers of each organization are (discovery; the channel configuration's
/// organization endpoints or a peer's own configuration).
pub trait PeerDirectory: Send + Sync {
    /// Peers of organization `msp_id` to ask, in order of preference.
    fn peers(&self, msp_id: &str) -> Vec<PeerEndpoint>;
}

impl PeerDirectory for HashMap<String, Vec<PeerEndpoint>> {
    fn peers(&self, msp_id: &str) -> Vec<PeerEndpoint> {
        self.get(msp_id).cloned().unwrap_or_default()
    }
}

/// This peer's TLS client identity and the roots it trusts (PEM).
#[derive(Clone)]
pub struct TlsClient {
    /// TLS root certificates of the channel's organizations, PEM.
    pub roots_pem: Vec<u8>,
    /// This peer's TLS certificate, PEM.
    pub cert_pem: Vec<u8>,
    /// Its private key, PEM.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

/// What a reconciliation round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Collections of transactions obtained, verified and stored.
    pub stored: usize,
    /// Still missing after the round.
    pub missing: usize,
}

/// Why asking one peer for private data failed (logged; the reconciler asks the next peer).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// The peer cannot be reached.
    #[error(transparent)]
    Connect(#[from] tonic::transport::Error),
    /// The request cannot be signed.
    #[error(transparent)]
    Sign(#[from] medledger_msp::Error),
    /// The peer answered with this gRPC status.
    #[error("{}", .0.message())]
    Refused(Status),
}

/// Fetches private data this member peer lacks from other member peers.
pub struct Reconciler {
    ledger: Arc<Ledger>,
    config: Arc<ChannelConfig>,
    definitions: Arc<dyn ChaincodeDefinitions>,
    directory: Arc<dyn PeerDirectory>,
    signer: Arc<SigningIdentity>,
    tls: TlsClient,
    tls_cert_der: Vec<u8>,
    timeout: Duration,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A reconciler for `ledger`'s channel that signs its requests with `signer` (this
    /// peer's enrollment identity) and sends them with `tls` (this peer's TLS client
    /// certificate).
    ///
    /// # Errors
    /// [`crate::Error::Config`] if `tls.cert_pem` holds no certificate.
    pub fn new(
        ledger: Arc<Ledger>,
        config: Arc<ChannelConfig>,
        definitions: Arc<dyn ChaincodeDefinitions>,
        directory: Arc<dyn PeerDirectory>,
        signer: Arc<SigningIdentity>,
        tls: TlsClient,
    ) -> crate::Result<Self> {
        let tls_cert_der = Certificate::from_pem(&tls.cert_pem)
            .map_err(|e| crate::Error::Config {
                reason: format!("TLS client certificate: {e}"),
            })?
            .der()
            .to_vec();
        Ok(Reconciler {
            ledger,
            config,
            definitions,
            directory,
            signer,
            tls,
            tls_cert_der,
            timeout: Duration::from_secs(5),
        })
    }

    async fn fetch_from(
        &self,
        peer: &PeerEndpoint,
        digest: PrivateDataDigest,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(TlsCertificate::from_pem(&self.tls.roots_pem))
            .identity(Identity::from_pem(&self.tls.cert_pem, &self.tls.key_pem))
            .domain_name(peer.tls_name.clone());
        let channel = Endpoint::from_shared(peer.url.clone())?
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .tls_config(tls)?
            .connect()
            .await?;
        let request = sign_fetch_request(
            &self.signer,
            &self.tls_cert_der,
            self.config.channel_id().as_ref(),
            vec![digest.clone()],
        )?;
        let resp = PrivateDataClient::new(channel)
            .fetch(request)
            .await
            .map_err(FetchError::Refused)?
            .into_inner();
        Ok(resp
            .elements
            .into_iter()
            .find(|e| e.digest.as_ref() == Some(&digest))
            .map(|e| e.rwset))
    }

    /// One round: for every missing collection of a committed transaction, asks member peers
    /// (the endorsers' organizations first), verifies the answer against the block's hashes
    /// and stores it. Unreachable peers and bad answers are logged and skipped.
    ///
    /// # Errors
    /// Ledger errors only.
    pub async fn reconcile_once(&self) -> crate::Result<ReconcileReport> {
        let ledger = self.ledger.clone();
        let missing = tokio::task::spawn_blocking(move || ledger.missing_private())
            .await
            .map_err(|_| crate::Error::Io {
                what: "reconciler",
                error: std::io::Error::other("task failed"),
            })??;
        let mut report = ReconcileReport::default();
        for m in missing {
            if self.reconcile_one(&m).await? {
                report.stored += 1;
            } else {
                report.missing += 1;
            }
        }
        if report.stored > 0 {
            info!(target: "peer::privdata", stored = report.stored, missing = report.missing, "private data reconciled");
        }
        Ok(report)
    }

    async fn reconcile_one(&self, m: &MissingPrivate) -> crate::Result<bool> {
        let Some(wanted) = locate_missing(&self.ledger, self.definitions.as_ref(), m)? else {
            return Ok(false);
        };
        let digest = PrivateDataDigest {
            block_num: m.block_num,
            tx_num: m.tx_num,
            namespace: m.namespace.clone(),
            collection: m.collection.clone(),
        };
        for org in &wanted.orgs {
            for peer in self.directory.peers(org) {
                match self.fetch_from(&peer, digest.clone()).await {
                    Ok(Some(bytes)) => {
                        if !acceptable_private(&self.ledger, &bytes, &wanted.hashes, m)? {
                            warn!(target: "peer::privdata", peer = %peer.url, block = m.block_num, tx = m.tx_num, "private data does not match the on-chain hash; rejected");
                            continue;
                        }
                        let ledger = self.ledger.clone();
                        let m2 = m.clone();
                        tokio::task::spawn_blocking(move || ledger.reconcile_private(&m2, &bytes))
                            .await
                            .map_err(|_| crate::Error::Io {
                                what: "reconciler",
                                error: std::io::Error::other("task failed"),
                            })??;
                        return Ok(true);
                    }
                    Ok(None) => {
                        debug!(target: "peer::privdata", peer = %peer.url, "peer has no such private data");
                    }
                    Err(e) => {
                        debug!(target: "peer::privdata", peer = %peer.url, error = %e, "private data fetch failed");
                    }
                }
            }
        }
        Ok(false)
    }

    /// Runs [`Reconciler::reconcile_once`] every `interval` until `shutdown` resolves.
    pub async fn run(self, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {
                    if let Err(e) = self.reconcile_once().await {
                        warn!(target: "peer::privdata", error = %e, "reconciliation round failed");
                    }
                }
            }
        }
    }
}

/// Where a member peer finds private data it lacks ([`locate_missing`]).
#[derive(Debug, Clone)]
pub struct MissingSource {
    /// The on-chain hashes of the missing collection's read-write set (what an answer is
    /// checked against, [`acceptable_private`]).
    pub hashes: tx::CollectionRwSet,
    /// The collection's member organizations to ask, in order: the transaction's endorsers'
    /// organizations first (they simulated it), then the other members.
    pub orgs: Vec<String>,
}

/// The on-chain hashes of `m`, private data `ledger` lacks, and the member organizations to
/// ask for it (as Fabric's reconciler: endorsers first). `None` if the block, the
/// transaction or its collection is not found.
///
/// # Errors
/// Ledger errors.
pub fn locate_missing(
    ledger: &Ledger,
    definitions: &dyn ChaincodeDefinitions,
    m: &MissingPrivate,
) -> crate::Result<Option<MissingSource>> {
    let Some(block) = ledger.block(m.block_num)? else {
        return Ok(None);
    };
    let entry = block
        .data
        .as_ref()
        .and_then(|d| d.data.get(m.tx_num as usize));
    let Some((rwsets, endorser_orgs)) = entry.and_then(|e| tx::decode_committed(e)) else {
        return Ok(None);
    };
    let Some(hashes) = rwsets
        .into_iter()
        .find(|n| n.namespace == m.namespace)
        .and_then(|n| n.collections.into_iter().find(|c| c.name == m.collection))
    else {
        return Ok(None);
    };
    let members: Vec<String> = definitions
        .definition(&m.namespace)
        .and_then(|d| d.collections.get(&m.collection).cloned())
        .map(|c| {
            c.member_orgs
                .msp_ids()
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut orgs: Vec<String> = endorser_orgs
        .into_iter()
        .filter(|o| members.contains(o))
        .collect();
    for o in members {
        if !orgs.contains(&o) {
            orgs.push(o);
        }
    }
    Ok(Some(MissingSource { hashes, orgs }))
}

/// Whether `bytes`, another peer's answer for `m`, may be stored in `ledger`
/// ([`Ledger::reconcile_private`]): the exact private read-write set the block's hash
/// (`coll`) commits to, or that set without the writes of keys this ledger has seen purged
/// since (what a member peer serves after a purge: ADR 0016). Every write present must match
/// the block's hashed writes either way.
///
/// # Errors
/// Ledger errors.
pub fn acceptable_private(
    ledger: &Ledger,
    bytes: &[u8],
    coll: &tx::CollectionRwSet,
    m: &MissingPrivate,
) -> crate::Result<bool> {
    if verify_private_rwset(bytes, coll).is_some() {
        return Ok(true);
    }
    let Some(set) = verify_private_writes(bytes, coll) else {
        return Ok(false);
    };
    let version = m.version();
    let present: Vec<[u8; 32]> = set
        .writes
        .iter()
        .map(|w| sha256(w.key.as_bytes()))
        .collect();
    for h in coll.hashed.hashed_writes.iter().filter(|h| !h.is_purge) {
        if present
            .iter()
            .any(|p| p.as_slice() == h.key_hash.as_slice())
        {
            continue;
        }
        let purged = ledger
            .purged_at(&m.namespace, &m.collection, &h.key_hash)?
            .is_some_and(|at| at > version);
        if !purged {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fetch failure prints the MSP's message once in its chain (`{:#}`).
    #[test]
    fn fetch_errors_print_their_cause_once() {
        let e = FetchError::from(medledger_msp::Error::InvalidCrl("expired".into()));
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "invalid CRL: expired"
        );
    }

    /// Every refusal keeps the gRPC code and message it had when built inline.
    #[test]
    fn refusals_keep_their_codes_and_messages() {
        use tonic::Code;
        let cases = [
            (
                Refusal::NoTlsCertificate,
                Code::Unauthenticated,
                "a TLS client certificate is required",
            ),
            (
                Refusal::Malformed,
                Code::InvalidArgument,
                "malformed fetch request",
            ),
            (
                Refusal::TooManyDigests,
                Code::InvalidArgument,
                "too many digests",
            ),
            (
                Refusal::UnknownChannel {
                    channel: "ehr".into(),
                },
                Code::NotFound,
                "channel not served",
            ),
            (
                Refusal::NotBound,
                Code::PermissionDenied,
                "request not bound to this connection's TLS certificate",
            ),
            (
                Refusal::NoTimestamp,
                Code::InvalidArgument,
                "request without a valid timestamp",
            ),
            (
                Refusal::OutOfWindow,
                Code::PermissionDenied,
                "request timestamp out of window",
            ),
            (
                Refusal::Requester(medledger_msp::Error::MalformedSignature),
                Code::PermissionDenied,
                "requester refused: malformed signature: not a DER-encoded ECDSA signature",
            ),
            (
                Refusal::NotPeer,
                Code::PermissionDenied,
                "only peers may fetch private data",
            ),
            (
                Refusal::UnreadableTlsCertificate,
                Code::Unauthenticated,
                "unreadable TLS client certificate",
            ),
            (
                Refusal::WrongTlsOrganization,
                Code::PermissionDenied,
                "TLS certificate not issued by the requester's organization",
            ),
            (
                Refusal::Lookup,
                Code::Internal,
                "private data lookup failed",
            ),
        ];
        for (refusal, code, message) in cases {
            let status = Status::from(refusal);
            assert_eq!((status.code(), status.message()), (code, message));
        }
    }
}
