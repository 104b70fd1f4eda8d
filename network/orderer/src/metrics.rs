//! Orderer metrics (Prometheus text format on `/metrics`). No labels carry transaction
//! contents; block numbers and counts only.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The orderer's metrics, registered in their own registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `orderer_height`: number of blocks in the chain (next block number).
    pub height: Gauge,
    /// `orderer_round`: current consensus round (−1 when idle).
    pub round: Gauge,
    /// `orderer_pending_envelopes`: admitted envelopes waiting for a block.
    pub pending: Gauge,
    /// `orderer_blocks_decided_total`.
    pub blocks_decided: Counter,
    /// `orderer_blocks_synced_total`: blocks fetched from other orderers.
    pub blocks_synced: Counter,
    /// `orderer_proposals_total`: proposals this orderer made.
    pub proposals: Counter,
    /// `orderer_envelopes_ordered_total`.
    pub envelopes_ordered: Counter,
    /// `orderer_broadcast_rejected_total`: envelopes refused on Broadcast.
    pub broadcast_rejected: Counter,
    /// `orderer_pending_bytes`: bytes of admitted envelopes waiting for a block, with the
    /// identities their admissions keep (what `max_pending_bytes` bounds).
    pub pending_bytes: Gauge,
    /// `orderer_buffered_bytes`: bytes of proposals held for a later height or being
    /// assembled.
    pub buffered_bytes: Gauge,
    /// `orderer_future_inputs`: consensus messages held for a later height.
    pub future_inputs: Gauge,
    /// `orderer_cluster_queued_bytes`: bytes queued for the other orderers.
    pub cluster_queued_bytes: Gauge,
    /// `orderer_cluster_dropped_total`: messages for other orderers dropped (queue full).
    pub cluster_dropped: Counter,
    /// `orderer_cluster_stalls_total`: streams to other orderers closed for reading too slowly.
    pub cluster_stalls: Counter,
    /// `orderer_rounds_per_height`: rounds needed per decided block (1 = decided in round 0).
    pub rounds_per_height: Histogram,
    /// `orderer_block_envelopes`: envelopes per decided block.
    pub block_envelopes: Histogram,
    /// `orderer_consensus_latency_seconds`: from starting a height to deciding it.
    pub consensus_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            height: Gauge::default(),
            round: Gauge::default(),
            pending: Gauge::default(),
            blocks_decided: Counter::default(),
            blocks_synced: Counter::default(),
            proposals: Counter::default(),
            envelopes_ordered: Counter::default(),
            broadcast_rejected: Counter::default(),
            pending_bytes: Gauge::default(),
            buffered_bytes: Gauge::default(),
            future_inputs: Gauge::default(),
            cluster_queued_bytes: Gauge::default(),
            cluster_dropped: Counter::default(),
            cluster_stalls: Counter::default(),
            rounds_per_height: Histogram::new([1.0, 2.0, 3.0, 5.0, 10.0]),
            block_envelopes: Histogram::new([1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0]),
            consensus_latency: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            registry: Registry::default(),
        };
        registry.register("orderer_height", "Blocks in the chain", m.height.clone());
        registry.register("orderer_round", "Current consensus round", m.round.clone());
        registry.register(
            "orderer_pending_envelopes",
            "Admitted envelopes waiting for a block",
            m.pending.clone(),
        );
        registry.register(
            "orderer_blocks_decided",
            "Blocks decided by consensus",
            m.blocks_decided.clone(),
        );
        registry.register(
            "orderer_blocks_synced",
            "Blocks fetched from other orderers",
            m.blocks_synced.clone(),
        );
        registry.register(
            "orderer_proposals",
            "Proposals made by this orderer",
            m.proposals.clone(),
        );
        registry.register(
            "orderer_envelopes_ordered",
            "Envelopes in decided blocks",
            m.envelopes_ordered.clone(),
        );
        registry.register(
            "orderer_broadcast_rejected",
            "Envelopes refused on Broadcast",
            m.broadcast_rejected.clone(),
        );
        registry.register(
            "orderer_pending_bytes",
            "Bytes of admitted envelopes waiting for a block, with the identities they keep",
            m.pending_bytes.clone(),
        );
        registry.register(
            "orderer_buffered_bytes",
            "Bytes of proposals held for a later height or being assembled",
            m.buffered_bytes.clone(),
        );
        registry.register(
            "orderer_future_inputs",
            "Consensus messages held for a later height",
            m.future_inputs.clone(),
        );
        registry.register(
            "orderer_cluster_queued_bytes",
            "Bytes queued for the other orderers",
            m.cluster_queued_bytes.clone(),
        );
        registry.register(
            "orderer_cluster_dropped",
            "Messages for other orderers dropped because their queue was full",
            m.cluster_dropped.clone(),
        );
        registry.register(
            "orderer_cluster_stalls",
            "Streams to other orderers closed because the peer read too slowly",
            m.cluster_stalls.clone(),
        );
        registry.register(
            "orderer_rounds_per_height",
            "Consensus rounds per decided block",
            m.rounds_per_height.clone(),
        );
        registry.register(
            "orderer_block_envelopes",
            "Envelopes per decided block",
            m.block_envelopes.clone(),
        );
        registry.register(
            "orderer_consensus_latency_seconds",
            "Seconds from starting a height to deciding it",
            m.consensus_latency.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the cumulative counters to the node's totals (the node is their one source).
    pub fn sync_counters(&self, stats: &crate::node::NodeStats) {
        use std::sync::atomic::Ordering::Relaxed;
        self.blocks_decided
            .inner()
            .store(stats.blocks_decided, Relaxed);
        self.blocks_synced
            .inner()
            .store(stats.blocks_synced, Relaxed);
        self.proposals.inner().store(stats.proposals, Relaxed);
        self.envelopes_ordered
            .inner()
            .store(stats.envelopes_ordered, Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
