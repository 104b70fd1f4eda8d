//! State the services and the core share: the channel configuration, the block store, the
//! height, metrics, health, the envelope verifiers and the byte budgets.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use medledger_channel::ChannelConfig;
use medledger_proto::common::Block;
use tokio::sync::{Semaphore, mpsc, watch};

use super::CoreEvent;
use crate::batch::{self, Checked};
use crate::metrics::Metrics;
use crate::store::BlockStore;
use crate::{Error, Result};

/// Decision latencies kept for [`super::RunningOrderer::decision_latencies`].
pub(super) const LATENCY_SAMPLES: usize = 10_000;

/// Checks envelopes ([`batch::Verdicts::check`]) off the core thread, at most `workers`
/// batches at once; answers from the node's [`batch::Verdicts`] (shared by every verifier and
/// the core) what it remembers. An envelope of at most [`batch::VERIFY_ENDORSEMENTS_ABOVE`]
/// bytes is checked on the runtime worker, one between yields (one signature verification,
/// ~50 µs: a thread hand-off per envelope cost more, ADR 0028); a larger one on tokio's
/// blocking pool (`spawn_blocking`), as its check verifies every endorsement besides hashing
/// up to `absolute_max_bytes`, too long for an async worker.
pub(super) struct Verifier {
    workers: Arc<Semaphore>,
    verdicts: batch::Verdicts,
    /// The check of one envelope: [`batch::Verdicts::check`], replaced by tests to make it
    /// fail.
    check_one: CheckFn,
}

/// How [`Verifier`] checks one envelope.
type CheckFn = fn(&batch::Verdicts, &ChannelConfig, Vec<u8>) -> Checked;

impl Verifier {
    pub(super) fn new(workers: usize, verdicts: batch::Verdicts) -> Arc<Self> {
        Self::with_check(workers, verdicts, |verdicts, config, bytes| {
            verdicts.check(config, bytes, std::time::SystemTime::now())
        })
    }

    fn with_check(workers: usize, verdicts: batch::Verdicts, check_one: CheckFn) -> Arc<Self> {
        Arc::new(Verifier {
            workers: Arc::new(Semaphore::new(workers.max(1))),
            verdicts,
            check_one,
        })
    }

    /// Checks `envelopes` under `config`, waiting for a worker: one [`Checked`] per envelope,
    /// in order. An envelope whose check failed inside the orderer (a panic, on the worker or
    /// the blocking pool) is refused with `INTERNAL_SERVER_ERROR`, and logged without its
    /// contents.
    pub(super) async fn check(
        &self,
        config: Arc<ChannelConfig>,
        envelopes: Vec<Vec<u8>>,
    ) -> Vec<Checked> {
        let _permit = self.workers.acquire().await;
        let mut checked = Vec::with_capacity(envelopes.len());
        for (i, bytes) in envelopes.into_iter().enumerate() {
            if i > 0 {
                tokio::task::yield_now().await;
            }
            let (size, sequence, check) = (bytes.len(), config.sequence(), self.check_one);
            let outcome = if size <= batch::VERIFY_ENDORSEMENTS_ABOVE {
                // `Verdicts` holds its lock only to read or write one entry, so a panic in a
                // check leaves it consistent.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    check(&self.verdicts, &config, bytes)
                }))
                .map_err(|_| true)
            } else {
                let (verdicts, config) = (self.verdicts.clone(), config.clone());
                tokio::task::spawn_blocking(move || check(&verdicts, &config, bytes))
                    .await
                    .map_err(|e| e.is_panic())
            };
            match outcome {
                Ok(c) => checked.push(c),
                Err(panicked) => {
                    // The panic's message is not logged: it could quote the envelope.
                    tracing::error!(target: "orderer::broadcast", size, panicked, "checking an envelope failed inside the orderer");
                    checked.push(Checked {
                        bytes: Vec::new(),
                        result: Err(batch::Rejection {
                            status: medledger_proto::common::Status::InternalServerError,
                            reason: "checking the envelope failed inside the orderer".into(),
                        }),
                        sequence,
                    });
                }
            }
        }
        checked
    }
}

/// State shared by the services and the core.
pub(super) struct Shared {
    /// The current channel configuration (replaced when a config block is stored).
    pub(super) config: RwLock<Arc<ChannelConfig>>,
    pub(super) store: RwLock<BlockStore>,
    pub(super) height: watch::Sender<u64>,
    pub(super) metrics: Metrics,
    pub(super) healthy: AtomicBool,
    pub(super) core: mpsc::Sender<CoreEvent>,
    /// Recent decision latencies (height start → decision), newest last, at most
    /// [`LATENCY_SAMPLES`].
    pub(super) latencies: std::sync::Mutex<std::collections::VecDeque<Duration>>,
    /// Checks Broadcast envelopes off the core thread.
    pub(super) verifier: Arc<Verifier>,
    /// Checks envelopes other orderers forward (apart, so a Broadcast flood does not delay
    /// the cluster).
    pub(super) cluster_verifier: Arc<Verifier>,
    /// Bytes of Broadcast envelopes being checked or waiting for the core, in KiB permits.
    pub(super) in_flight: Arc<Semaphore>,
    /// Inbound budgets per other orderer (bytes of its messages waiting for the core):
    /// consensus messages, and forwarded envelopes (apart, so those never hold up votes).
    pub(super) inbound: HashMap<u32, (Arc<Semaphore>, Arc<Semaphore>)>,
    /// Bytes budget of one orderer's inbound and outbound queues.
    pub(super) cluster_queue_bytes: usize,
    /// The pool's usage as the core last published it (at most every
    /// [`USAGE_PUBLISH`]): Broadcast refuses an envelope that cannot fit before checking its
    /// signature.
    pub(super) usage: std::sync::Mutex<PoolUsage>,
}

/// The pending pool's limits and usage, for Broadcast's early refusal.
#[derive(Default)]
pub(super) struct PoolUsage {
    pub(super) limits: batch::PoolLimits,
    pub(super) total: usize,
    pub(super) by_submitter: HashMap<[u8; 32], usize>,
    pub(super) by_org: HashMap<String, usize>,
}

/// How often the core publishes the pool's usage.
pub(super) const USAGE_PUBLISH: Duration = Duration::from_millis(10);

impl PoolUsage {
    /// Whether `size` more bytes from `submitter` of organization `org` would pass a limit.
    pub(super) fn full(&self, submitter: &[u8; 32], org: &str, size: usize) -> bool {
        let mine = self.by_submitter.get(submitter).copied().unwrap_or(0);
        let ours = self.by_org.get(org).copied().unwrap_or(0);
        self.total.saturating_add(size) > self.limits.max_bytes
            || batch::over_share(mine, size, self.limits.max_bytes_per_submitter)
            || batch::over_share(ours, size, self.limits.max_bytes_per_org)
    }
}

impl Shared {
    pub(super) fn config(&self) -> Arc<ChannelConfig> {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn block(&self, number: u64) -> Result<Option<Block>> {
        match self.store.read() {
            Ok(s) => s.get(number),
            Err(_) => Err(Error::Store {
                reason: "block store lock poisoned".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use medledger_channel::testing::TestChannel;

    #[tokio::test]
    async fn a_check_that_fails_inside_the_orderer_is_answered_not_dropped() {
        // Review L3 of issue 14: a panic while checking a large envelope left it out of the
        // results, so Broadcast answered "orderer is not running" and a forwarded envelope
        // vanished without a word.
        let ch = TestChannel::new("ehr", 1, 1);
        let config = Arc::new(ch.config.clone());
        let verifier = Verifier::with_check(1, batch::Verdicts::new(8), |_, _, _| {
            panic!("a check that fails")
        });
        // A large envelope is checked on the blocking pool, a small one on the worker (a
        // panic there ended the Broadcast stream without an answer).
        let large = vec![0u8; batch::VERIFY_ENDORSEMENTS_ABOVE + 1];
        let checked = verifier.check(config, vec![large, vec![1, 2, 3]]).await;
        assert_eq!(checked.len(), 2, "one result per envelope");
        for c in &checked {
            assert_eq!(
                c.result.as_ref().unwrap_err().status,
                medledger_proto::common::Status::InternalServerError
            );
        }
    }
}
