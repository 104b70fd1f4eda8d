//! The malicious-node experiment (issue 14, ADR 0032).
//!
//! For each [`Scenario`] (how many of the 4 orderers and of the 4 endorsing organizations
//! are Byzantine, and how), a fresh network runs the same seeded [`Options::requests`]-request
//! EHR workload; every request's outcome is compared with the outcome of the same workload on
//! an all-honest network (the *reference*):
//!
//! - a request is **decided** when every peer committed its transaction with the same
//!   validation code, or when the contract refused it (a 4xx from the client's own peer);
//! - **CDR** (correct decision ratio) = requests whose outcome equals the reference (code and
//!   normalized chaincode response, or refusal status) / requests;
//! - **PLR** (loss ratio) = requests not decided / requests (the client got an error, no
//!   answer, or the request was never issued because an earlier one of its chain was lost);
//! - **black holes** = requests submitted and accepted by the ordering service, never
//!   committed on any peer, with no error to the client;
//! - **falsifications** = requests that some peer committed as valid with an outcome other
//!   than the reference's, or that two peers committed with different codes; **forks** =
//!   block heights where two peers committed different blocks.
//!
//! Byzantine endorsing peers misbehave when endorsing only; every peer validates and commits
//! with the real committer, so outcomes are read on every peer.

use std::time::Instant;

use medledger_orderer::sim::{Byzantine, pb_batch::BatchConfig};
use medledger_proto::protos::TxValidationCode;
use serde::Serialize;

use crate::client::{self, Gathered};
use crate::error::{Error, Result};
use crate::workload::{Clients, Workload};
use medledger_harness::TICK_MS;
use medledger_harness::net::{DeliverFault, Forks, Network, Topology};

/// Application organizations (one endorsing and committing peer each).
pub const ORGS: usize = 4;
/// Orderers (n = 3f + 1, f = 1).
pub const ORDERERS: u32 = 4;
/// A request not answered within this many virtual ms of becoming due is given up.
const DEADLINE_MS: u64 = 30_000;
/// A submitted transaction not committed on the client's peer after this many virtual ms is
/// sent again, to every orderer (the same envelope: the tx id makes it idempotent).
const RESUBMIT_MS: u64 = 3_000;
/// Wait before gathering endorsements again after no quorum, virtual ms.
const RETRY_MS: u64 = 250;
/// Virtual ms between the starts of two patients' chains.
const STAGGER_MS: u64 = 7;
/// Virtual ms given to the peers to catch up once every chain is answered.
const SETTLE_MS: u64 = 8_000;

/// Experiment options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Options {
    /// Requests of the workload, at least (whole patient chains of 5 or 6 requests).
    pub requests: usize,
    /// Seed of the workload, the simulated network and the Byzantine choices.
    pub seed: u64,
}

/// How the Byzantine orderers behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OrdererProfile {
    /// They take part in consensus but attack it and the peers: the k-th Byzantine orderer
    /// (ids 4, 3, 2, 1) equivocates / censors Org2's envelopes / proposes batches with a
    /// forged signature / proposes batches that do not chain, and re-splits / forges /
    /// withholds / re-splits the blocks it delivers to peers; once they are a quorum (3 of
    /// 4) they instead serve peers two forked chains they sign together
    /// ([`DeliverFault::Fork`]).
    Active,
    /// They withhold everything: no proposal, vote, forwarded envelope, block or header, and
    /// they black-hole what clients submit to them.
    Silent,
}

/// One row of the sweep: which series, and how many Byzantine nodes of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Scenario {
    /// The series the row belongs to (one line of the plot).
    pub series: Series,
    /// Byzantine orderers, 0..=4 of 4 (f = 1).
    pub byzantine_orderers: u32,
    /// How they behave.
    pub profile: OrdererProfile,
    /// Byzantine endorsing organizations, 0..=4 of 4 (Org4 first, Org1, the custodian of
    /// every patient and the organization of most clients, last); the policy is MAJORITY.
    pub byzantine_orgs: usize,
}

/// The series of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Series {
    /// Everything honest (compared with the reference run: a determinism check).
    Honest,
    /// Byzantine orderers, [`OrdererProfile::Active`].
    ActiveOrderers,
    /// Byzantine orderers, [`OrdererProfile::Silent`].
    SilentOrderers,
    /// Byzantine endorsing organizations.
    Endorsers,
    /// As many active Byzantine orderers as Byzantine endorsing organizations.
    Both,
}

impl Series {
    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Series::Honest => "honest",
            Series::ActiveOrderers => "orderers (active)",
            Series::SilentOrderers => "orderers (silent)",
            Series::Endorsers => "endorsers",
            Series::Both => "orderers + endorsers",
        }
    }
}

impl Scenario {
    /// Share of the 8 nodes (4 orderers, 4 endorsing peers) that is Byzantine, 0.0..=1.0.
    pub fn malicious_share(&self) -> f64 {
        (self.byzantine_orderers as f64 + self.byzantine_orgs as f64)
            / (ORDERERS as f64 + ORGS as f64)
    }

    /// The full sweep: the honest network, then k = 1..=4 Byzantine nodes for each series.
    pub fn sweep() -> Vec<Scenario> {
        let mut out = vec![Scenario {
            series: Series::Honest,
            byzantine_orderers: 0,
            profile: OrdererProfile::Active,
            byzantine_orgs: 0,
        }];
        for series in [
            Series::ActiveOrderers,
            Series::SilentOrderers,
            Series::Endorsers,
            Series::Both,
        ] {
            for k in 1..=4u32 {
                out.push(Scenario::of(series, k));
            }
        }
        out
    }

    /// `k` Byzantine nodes of each kind the series has.
    pub fn of(series: Series, k: u32) -> Scenario {
        let (orderers, orgs) = match series {
            Series::Honest => (0, 0),
            Series::ActiveOrderers | Series::SilentOrderers => (k, 0),
            Series::Endorsers => (0, k as usize),
            Series::Both => (k, k as usize),
        };
        Scenario {
            series,
            byzantine_orderers: orderers.min(ORDERERS),
            profile: if series == Series::SilentOrderers {
                OrdererProfile::Silent
            } else {
                OrdererProfile::Active
            },
            byzantine_orgs: orgs.min(ORGS),
        }
    }
}

/// What one scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Requests in the workload.
    pub requests: usize,
    /// Requests decided (see the module doc).
    pub decided: usize,
    /// Requests whose outcome equals the reference's.
    pub correct: usize,
    /// Requests committed VALID on every peer (in an honest run: every register, reserve,
    /// create and consent, and the doctor's access requests; the contract refuses the
    /// researcher's).
    pub valid: usize,
    /// Correct decision ratio, correct / requests, 0.0..=1.0.
    pub cdr: f64,
    /// Correct / decided, 0.0..=1.0 (1.0 when nothing was decided).
    pub cdr_decided: f64,
    /// Loss ratio, (requests - decided) / requests, 0.0..=1.0.
    pub plr: f64,
    /// Requests submitted and accepted, never committed anywhere, no error to the client.
    pub black_holes: usize,
    /// Requests committed as valid with a wrong outcome, or with different codes on two peers.
    pub falsifications: usize,
    /// Block heights at which two peers committed different blocks.
    pub forks: usize,
    /// Blocks the peers refused (bad signatures, data hash mismatch, broken chain).
    pub refused_blocks: u64,
    /// Times a peer left its source orderer.
    pub source_switches: u64,
    /// Virtual time the run took, ms.
    pub virtual_ms: u64,
    /// Wall-clock time the run took, ms.
    pub wall_ms: u64,
}

/// One measured scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The scenario.
    pub scenario: Scenario,
    /// Its share of Byzantine nodes, 0.0..=1.0.
    pub malicious_share: f64,
    /// What it measured.
    pub metrics: Metrics,
}

/// The whole experiment's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The options it ran with.
    pub options: Options,
    /// Requests actually in the workload (whole chains).
    pub requests: usize,
    /// One row per scenario, in sweep order.
    pub rows: Vec<Row>,
}

/// A request's outcome as the peers and the client see it once the run is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Committed on every peer with this code; the normalized response it carries.
    Committed {
        /// Validation code (Fabric numbering).
        code: i32,
        /// Normalized chaincode response.
        summary: String,
    },
    /// The contract refused it on the client's peer (status).
    Refused(i32),
    /// Not decided.
    Undecided,
}

/// What the client knows of a request.
#[derive(Debug, Clone)]
enum State {
    /// Waiting for the previous request of its chain.
    Pending,
    /// To endorse at `at` (first due at `since`; `attempt` earlier tries).
    Due { at: u64, since: u64, attempt: u32 },
    /// Endorsed; to submit at `at`.
    Sending {
        at: u64,
        since: u64,
        envelope: Vec<u8>,
        tx_id: String,
        summary: String,
    },
    /// Submitted at `last` (first at `since`).
    Submitted {
        since: u64,
        last: u64,
        envelope: Vec<u8>,
        tx_id: String,
        summary: String,
    },
    /// Answered: committed on the client's peer, refused, or given up.
    Done(Answer),
}

#[derive(Debug, Clone)]
enum Answer {
    Committed {
        tx_id: String,
        summary: String,
    },
    Refused(i32),
    /// An error to the client (no quorum of endorsements, no orderer accepted).
    Failed,
    /// Submitted and accepted, never committed on the client's peer: no answer.
    Silent {
        tx_id: String,
        summary: String,
    },
    /// Never issued: an earlier request of its chain was lost.
    NotIssued,
}

fn batch() -> BatchConfig {
    BatchConfig {
        max_message_count: 50,
        preferred_max_bytes: 0,
        absolute_max_bytes: 0,
        batch_timeout_ms: 100,
    }
}

/// Makes `scenario`'s nodes Byzantine on `net`; returns which organizations are.
fn corrupt(net: &mut Network, scenario: &Scenario) -> Vec<bool> {
    let consensus = [
        Byzantine::Equivocate,
        Byzantine::Censor("Org2MSP".to_owned()),
        Byzantine::BadSignature,
        Byzantine::WrongPreviousHash,
    ];
    let delivery = [
        DeliverFault::Resplit,
        DeliverFault::Forge,
        DeliverFault::Withhold,
        DeliverFault::Resplit,
    ];
    for k in 0..scenario.byzantine_orderers.min(ORDERERS) as usize {
        let id = ORDERERS - k as u32;
        match scenario.profile {
            OrdererProfile::Active => {
                net.sim.byzantine.insert(id, consensus[k].clone());
                net.deliver_faults.insert(id, delivery[k]);
            }
            OrdererProfile::Silent => {
                net.sim.byzantine.insert(id, Byzantine::Silent);
            }
        }
    }
    let quorum = net.sim.config.consenters().quorum();
    if scenario.profile == OrdererProfile::Active && scenario.byzantine_orderers as usize >= quorum
    {
        // A Byzantine quorum signs what it likes: it serves peers two forked chains.
        let ids: Vec<u32> = (0..scenario.byzantine_orderers.min(ORDERERS))
            .map(|k| ORDERERS - k)
            .collect();
        for id in &ids {
            net.deliver_faults
                .insert(*id, DeliverFault::Fork((*id % 2) as u8));
        }
        net.forks = Some(Forks::new(
            ids.iter()
                .map(|id| (*id, net.sim.identities[*id as usize - 1].clone()))
                .collect(),
        ));
    }
    let mut orgs = vec![false; ORGS];
    for k in 0..scenario.byzantine_orgs.min(ORGS) {
        orgs[ORGS - 1 - k] = true;
    }
    orgs
}

/// Whether organization `org`'s peer committed `tx_id` (with any code).
fn committed_at(net: &Network, org: usize, tx_id: &str) -> Result<bool> {
    // A malformed tx id names no transaction a peer committed.
    let Ok(tx_id) = tx_id.parse::<medledger_proto::TxId>() else {
        return Ok(false);
    };
    let peer = &net.peers[org];
    peer.committer
        .ledger()
        .tx_location(&tx_id)
        .map(|l| l.is_some())
        .map_err(|error| {
            medledger_harness::Error::Ledger {
                msp_id: peer.msp_id.clone(),
                error,
            }
            .into()
        })
}

/// Submits `envelope` to f + 1 orderers starting at `start` (another one for each that does
/// not accept), or to all of them; returns how many accepted.
fn submit(net: &mut Network, envelope: &[u8], start: usize, all: bool) -> usize {
    let needed = if all { ORDERERS as usize } else { 2 };
    let mut accepted = 0;
    for k in 0..ORDERERS as usize {
        if accepted >= needed {
            break;
        }
        let id = ((start + k) % ORDERERS as usize) as u32 + 1;
        accepted += net.sim.submit(id, vec![envelope.to_vec()]);
    }
    accepted
}

/// Stores Org1's pseudonym key (ADR 0031) through an honest network, before any node turns
/// Byzantine: setup, not part of what is measured.
///
/// # Errors
/// [`Error::Options`] if it is refused or not committed everywhere in 60 virtual seconds.
fn set_pseudonym_key(net: &mut Network, clients: &Clients) -> Result<()> {
    let request = crate::workload::setup_request();
    let honest = vec![false; net.peers.len()];
    let gathered = client::gather(
        net,
        &honest,
        &request,
        clients.identity(&request),
        0,
        crate::forge::Misbehaviour::Forge,
    )?;
    let Gathered::Ready {
        envelope, tx_id, ..
    } = gathered
    else {
        return Err(Error::Options(
            "the pseudonym key was refused at setup".into(),
        ));
    };
    submit(net, &envelope, 0, true);
    let end = net.sim.time + 60_000;
    while net.sim.time < end {
        net.sim.run_until(TICK_MS, |_| false);
        net.pull_all()?;
        let mut everywhere = true;
        for org in 0..net.peers.len() {
            everywhere &= committed_at(net, org, &tx_id)?;
        }
        if everywhere {
            return Ok(());
        }
    }
    Err(Error::Options(
        "the pseudonym key was not committed at setup".into(),
    ))
}

/// Runs `scenario`: the outcome of every request and the metrics against `reference` (the
/// run's own outcomes when `None`: the reference run itself).
///
/// # Errors
/// [`Error`] when the network cannot be set up or a peer fails (not for misbehaviour).
pub(crate) fn run_scenario(
    options: &Options,
    scenario: &Scenario,
    reference: Option<&[Outcome]>,
) -> Result<(Vec<Outcome>, Metrics)> {
    let started = Instant::now();
    let workload = Workload::new(options.requests, options.seed);
    let mut net = Network::new(
        options.seed,
        batch(),
        Topology {
            orgs: ORGS,
            peers_per_org: 1,
            orderers: ORDERERS,
        },
    )?;
    let clients = Clients::new(&mut net.sim, workload.chains.len());
    set_pseudonym_key(&mut net, &clients)?;
    let byzantine = corrupt(&mut net, scenario);
    let mut states: Vec<State> = vec![State::Pending; workload.requests.len()];
    for (i, chain) in workload.chains.iter().enumerate() {
        if let Some(&first) = chain.first() {
            let at = i as u64 * STAGGER_MS;
            states[first] = State::Due {
                at,
                since: at,
                attempt: 0,
            };
        }
    }
    let mut next_orderer = 0usize;
    let limit = net.sim.time + 7 * DEADLINE_MS + 60_000;
    loop {
        net.pull_all()?;
        let now = net.sim.time;
        for chain in &workload.chains {
            for (pos, &r) in chain.iter().enumerate() {
                let request = &workload.requests[r];
                let own = Clients::org(request.client);
                let state = std::mem::replace(&mut states[r], State::Pending);
                let previous = pos.checked_sub(1).and_then(|p| chain.get(p)).copied();
                let next = match state {
                    State::Pending => {
                        let Some(prev) = previous else {
                            continue;
                        };
                        match &states[prev] {
                            State::Done(Answer::Committed { tx_id, .. }) => {
                                if committed_at(&net, own, tx_id)? {
                                    State::Due {
                                        at: now,
                                        since: now,
                                        attempt: 0,
                                    }
                                } else {
                                    State::Pending
                                }
                            }
                            State::Done(Answer::Refused(_)) => State::Due {
                                at: now,
                                since: now,
                                attempt: 0,
                            },
                            State::Done(_) => State::Done(Answer::NotIssued),
                            _ => State::Pending,
                        }
                    }
                    State::Due { at, since, attempt } if at <= now => {
                        if now.saturating_sub(since) > DEADLINE_MS {
                            State::Done(Answer::Failed)
                        } else {
                            match client::gather(
                                &net,
                                &byzantine,
                                request,
                                clients.identity(request),
                                own,
                                crate::forge::misbehaviour(options.seed, r, attempt),
                            )? {
                                Gathered::Ready {
                                    envelope,
                                    tx_id,
                                    summary,
                                    wait_ms,
                                } => State::Sending {
                                    at: now + wait_ms,
                                    since,
                                    envelope,
                                    tx_id,
                                    summary,
                                },
                                Gathered::Refused(status) => State::Done(Answer::Refused(status)),
                                Gathered::NoQuorum { wait_ms } => State::Due {
                                    at: now + wait_ms + RETRY_MS,
                                    since,
                                    attempt: attempt + 1,
                                },
                            }
                        }
                    }
                    State::Sending {
                        at,
                        since,
                        envelope,
                        tx_id,
                        summary,
                    } if at <= now => {
                        next_orderer += 1;
                        if submit(&mut net, &envelope, next_orderer, false) == 0 {
                            State::Done(Answer::Failed)
                        } else {
                            State::Submitted {
                                since,
                                last: now,
                                envelope,
                                tx_id,
                                summary,
                            }
                        }
                    }
                    State::Submitted {
                        since,
                        mut last,
                        envelope,
                        tx_id,
                        summary,
                    } => {
                        if committed_at(&net, own, &tx_id)? {
                            State::Done(Answer::Committed { tx_id, summary })
                        } else if now.saturating_sub(since) > DEADLINE_MS {
                            State::Done(Answer::Silent { tx_id, summary })
                        } else {
                            if now.saturating_sub(last) > RESUBMIT_MS {
                                next_orderer += 1;
                                submit(&mut net, &envelope, next_orderer, true);
                                last = now;
                            }
                            State::Submitted {
                                since,
                                last,
                                envelope,
                                tx_id,
                                summary,
                            }
                        }
                    }
                    other => other,
                };
                states[r] = next;
            }
        }
        let done = states.iter().all(|s| matches!(s, State::Done(_)));
        if done || net.sim.time > limit {
            break;
        }
        net.sim.run_until(TICK_MS, |_| false);
    }
    let end = net.sim.time + SETTLE_MS;
    while net.sim.time < end {
        net.sim.run_until(TICK_MS * 10, |_| false);
        net.pull_all()?;
    }
    evaluate(&net, &states, reference, started)
}

/// Reads every request's outcome off the peers' ledgers and compares with `reference`.
fn evaluate(
    net: &Network,
    states: &[State],
    reference: Option<&[Outcome]>,
    started: Instant,
) -> Result<(Vec<Outcome>, Metrics)> {
    let valid = TxValidationCode::Valid as i32;
    let codes = |tx_id: &str| -> Result<Vec<Option<i32>>> {
        // A malformed tx id names no transaction a peer committed.
        let Ok(tx_id) = tx_id.parse::<medledger_proto::TxId>() else {
            return Ok(vec![None; net.peers.len()]);
        };
        net.peers
            .iter()
            .map(|p| {
                p.committer
                    .ledger()
                    .tx_location(&tx_id)
                    .map(|l| l.map(|l| l.code as i32))
                    .map_err(|error| {
                        medledger_harness::Error::Ledger {
                            msp_id: p.msp_id.clone(),
                            error,
                        }
                        .into()
                    })
            })
            .collect()
    };
    let mut outcomes = Vec::with_capacity(states.len());
    let mut black_holes = 0;
    let mut committed_codes: Vec<(Vec<Option<i32>>, String)> = Vec::new();
    for state in states {
        let (outcome, seen) = match state {
            State::Done(Answer::Committed { tx_id, summary })
            | State::Done(Answer::Silent { tx_id, summary })
            | State::Submitted { tx_id, summary, .. } => {
                let c = codes(tx_id)?;
                let first = c.first().copied().flatten();
                let outcome = match first {
                    Some(code) if c.iter().all(|x| *x == Some(code)) => Outcome::Committed {
                        code,
                        summary: summary.clone(),
                    },
                    _ => Outcome::Undecided,
                };
                if c.iter().all(Option::is_none)
                    && !matches!(state, State::Done(Answer::Committed { .. }))
                {
                    black_holes += 1;
                }
                (outcome, Some((c, summary.clone())))
            }
            State::Done(Answer::Refused(status)) => (Outcome::Refused(*status), None),
            _ => (Outcome::Undecided, None),
        };
        outcomes.push(outcome);
        committed_codes.push(seen.unwrap_or_default());
    }
    let reference = reference.unwrap_or(&outcomes);
    let mut correct = 0;
    let mut decided = 0;
    let mut falsifications = 0;
    for (i, outcome) in outcomes.iter().enumerate() {
        let expected = reference.get(i);
        if *outcome != Outcome::Undecided {
            decided += 1;
        }
        if Some(outcome) == expected && *outcome != Outcome::Undecided {
            correct += 1;
        }
        let (c, summary) = &committed_codes[i];
        let present: Vec<i32> = c.iter().flatten().copied().collect();
        let disagree = present.windows(2).any(|w| w[0] != w[1]);
        let wrong_valid = present.contains(&valid)
            && expected
                != Some(&Outcome::Committed {
                    code: valid,
                    summary: summary.clone(),
                });
        if disagree || wrong_valid {
            falsifications += 1;
        }
    }
    let forks = forks(net)?;
    let n = outcomes.len().max(1);
    let metrics = Metrics {
        requests: outcomes.len(),
        decided,
        correct,
        valid: outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Committed { code, .. } if *code == valid))
            .count(),
        cdr: correct as f64 / n as f64,
        cdr_decided: if decided == 0 {
            1.0
        } else {
            correct as f64 / decided as f64
        },
        plr: (outcomes.len() - decided) as f64 / n as f64,
        black_holes,
        falsifications,
        forks,
        refused_blocks: net.peers.iter().map(|p| p.refused).sum(),
        source_switches: net.peers.iter().map(|p| p.switches).sum(),
        virtual_ms: net.sim.time,
        wall_ms: started.elapsed().as_millis() as u64,
    };
    Ok((outcomes, metrics))
}

/// Heights at which two peers hold different blocks.
fn forks(net: &Network) -> Result<usize> {
    let min = net
        .peers
        .iter()
        .map(|p| p.committer.ledger().height())
        .min()
        .unwrap_or(0);
    let mut forks = 0;
    for h in 1..min {
        let mut headers = Vec::new();
        for p in &net.peers {
            let block = p.committer.ledger().block(h).map_err(|error| {
                medledger_harness::Error::Ledger {
                    msp_id: p.msp_id.clone(),
                    error,
                }
            })?;
            headers.push(block.and_then(|b| b.header));
        }
        if headers.windows(2).any(|w| w[0] != w[1]) {
            forks += 1;
        }
    }
    Ok(forks)
}

/// Runs the reference (all honest) and then every scenario of `scenarios` with `options`;
/// `progress` is told of each row as it is measured.
///
/// # Errors
/// [`Error::Options`] without requests; any [`Error`] of a run.
pub fn run(
    options: &Options,
    scenarios: &[Scenario],
    mut progress: impl FnMut(&Row),
) -> Result<Report> {
    if options.requests == 0 {
        return Err(Error::Options("at least one request is needed".into()));
    }
    let honest = Scenario::of(Series::Honest, 0);
    let (reference, _) = run_scenario(options, &honest, None)?;
    let mut rows = Vec::with_capacity(scenarios.len());
    for s in scenarios {
        let (_, metrics) = run_scenario(options, s, Some(&reference))?;
        let row = Row {
            scenario: *s,
            malicious_share: s.malicious_share(),
            metrics,
        };
        progress(&row);
        rows.push(row);
    }
    Ok(Report {
        options: *options,
        requests: reference.len(),
        rows,
    })
}

impl Report {
    /// The results as a markdown table: one row per scenario.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| series | Byzantine orderers | Byzantine endorsing orgs | malicious nodes | CDR | CDR of decided | PLR | black holes | falsifications | forks | refused blocks | virtual s |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let m = &r.metrics;
            out.push_str(&format!(
                "| {} | {}/{} | {}/{} | {:.1} % | {:.1} % | {:.1} % | {:.1} % | {} | {} | {} | {} | {:.1} |\n",
                r.scenario.series.name(),
                r.scenario.byzantine_orderers,
                ORDERERS,
                r.scenario.byzantine_orgs,
                ORGS,
                r.malicious_share * 100.0,
                m.cdr * 100.0,
                m.cdr_decided * 100.0,
                m.plr * 100.0,
                m.black_holes,
                m.falsifications,
                m.forks,
                m.refused_blocks,
                m.virtual_ms as f64 / 1000.0,
            ));
        }
        out
    }
}
