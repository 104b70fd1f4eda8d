//! Four `medledger orderer start` processes over mutual TLS on loopback: 10,000 envelopes
//! submitted through all of them are ordered into the same chain on every orderer, each
//! envelope exactly once, every block verifiable by the peers' verifier, no empty block.
//! Meanwhile one orderer is killed with SIGKILL while the cluster is voting and restarted from
//! its WAL and block store; the votes the others received from it (their vote audit logs) are
//! checked: every signature valid, never two different votes for one (height, round, type).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medledger_channel::ChannelConfig;
use medledger_channel::bft::{self, VoteKind};
use medledger_devnet::orderers::{self as devnet, DevNetSpec};
use medledger_msp::folder::load_signing_identity;
use medledger_orderer::client::{OrdererClient, seek_envelope, transaction_envelope};
use medledger_orderer::config::{ConsensusSection, OrdererConfig};
use medledger_proto::common::{Block, Envelope, Status};
use medledger_proto::medledger::channel::BatchConfig;
use medledger_proto::orderer::deliver_response;
use prost::Message;

const BIN: &str = env!("CARGO_BIN_EXE_medledger");
const CHANNEL: &str = "ehr";

/// A `medledger orderer start` child, killed when dropped.
struct Orderer {
    child: Child,
}

impl Orderer {
    fn start(config: &Path, log: &Path) -> Orderer {
        let mut child = Command::new(BIN)
            .args(["orderer", "start", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.contains("listening on"),
            "unexpected first line {line:?}"
        );
        Orderer { child }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for Orderer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn envelopes(
    client: &medledger_msp::identity::SigningIdentity,
    from: u64,
    n: u64,
) -> Vec<Envelope> {
    (from..from + n)
        .map(|i| {
            let mut nonce = [0u8; 24];
            nonce[..8].copy_from_slice(&i.to_be_bytes());
            transaction_envelope(client, CHANNEL, &nonce, vec![1u8; 256]).unwrap()
        })
        .collect()
}

async fn submit_all(ports: &[u16], roots: &[u8], batches: Vec<Vec<Envelope>>) {
    let mut tasks = Vec::new();
    for (port, batch) in ports.iter().copied().zip(batches) {
        let roots = roots.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut c = OrdererClient::connect("127.0.0.1", port, &roots)
                .await
                .unwrap();
            let mut ok = 0;
            for chunk in batch.chunks(250) {
                let r = c.broadcast(chunk.to_vec()).await.unwrap();
                assert!(
                    r.iter().all(|x| x.status == Status::Success as i32),
                    "{:?}",
                    r.iter().find(|x| x.status != 200)
                );
                ok += r.len();
            }
            ok
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Reads blocks 1.. from an orderer until they hold `want` envelopes.
async fn read_chain(
    port: u16,
    roots: &[u8],
    reader: &medledger_msp::identity::SigningIdentity,
    want: usize,
) -> Vec<Block> {
    let mut c = OrdererClient::connect("127.0.0.1", port, roots)
        .await
        .unwrap();
    let mut stream = c
        .deliver(seek_envelope(reader, CHANNEL, 1, u64::MAX).unwrap())
        .await
        .unwrap();
    let mut blocks = Vec::new();
    let mut n = 0;
    while n < want {
        let m = tokio::time::timeout(Duration::from_secs(120), stream.message())
            .await
            .expect("no block for 120 s")
            .unwrap()
            .unwrap();
        if let Some(deliver_response::Type::Block(b)) = m.r#type {
            n += b.data.as_ref().unwrap().data.len();
            blocks.push(b);
        }
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_orderer_processes_order_10000_envelopes_and_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let ports = devnet::free_ports("127.0.0.1", 4).unwrap();
    let net = devnet::generate(
        dir.path(),
        &DevNetSpec {
            channel_id: CHANNEL.into(),
            host: "127.0.0.1".into(),
            ports: ports.clone(),
            operations_ports: None,
            batch: BatchConfig {
                max_message_count: 500,
                preferred_max_bytes: 0,
                absolute_max_bytes: 0,
                batch_timeout_ms: 100,
            },
            consensus: ConsensusSection {
                propose_timeout_ms: 1000,
                ..ConsensusSection::default()
            },
        },
    )
    .unwrap();
    // Each orderer records the votes it receives.
    let mut audits: Vec<PathBuf> = Vec::new();
    for (i, p) in net.orderer_configs.iter().enumerate() {
        let mut c = OrdererConfig::load(p).unwrap();
        let home = p.parent().unwrap().to_path_buf();
        let audit = home.join("votes-received.log");
        c.vote_audit_file = Some(audit.clone());
        // load() made paths absolute; keep them so.
        std::fs::write(p, serde_yaml_ng::to_string(&c).unwrap()).unwrap();
        audits.push(audit);
        let _ = i;
    }
    let logs: Vec<PathBuf> = (1..=4)
        .map(|i| dir.path().join(format!("orderer{i}.log")))
        .collect();
    let mut procs: Vec<Orderer> = net
        .orderer_configs
        .iter()
        .zip(&logs)
        .map(|(c, l)| Orderer::start(c, l))
        .collect();
    let roots = std::fs::read(&net.tls_roots).unwrap();
    let client = load_signing_identity(&net.client_msp, &net.client_msp_id).unwrap();

    // Phase 1: 5,000 envelopes through all four orderers.
    let all_envs = envelopes(&client, 0, 10_000);
    let tx_of = |e: &Envelope| {
        medledger_channel::envelope::parse(e)
            .unwrap()
            .tx_id()
            .to_owned()
    };
    let submitted: HashSet<String> = all_envs.iter().map(tx_of).collect();
    let phase1: Vec<Vec<Envelope>> = all_envs[..5000]
        .chunks(1250)
        .map(<[Envelope]>::to_vec)
        .collect();
    let phase2: Vec<Vec<Envelope>> = all_envs[5000..]
        .chunks(1250)
        .map(<[Envelope]>::to_vec)
        .collect();
    submit_all(&ports, &roots, phase1).await;

    // Kill orderer 2 while the cluster is deciding those blocks, restart it from its WAL.
    // "While voting": its WAL for the height in progress holds records (votes, proposals).
    let wal_dir = dir.path().join("orderer2/data/wal");
    let voting = Instant::now();
    let in_height = || {
        std::fs::read_dir(&wal_dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
    };
    while !in_height() && voting.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(in_height(), "orderer 2 never started voting");
    procs[1].kill9();
    tokio::time::sleep(Duration::from_millis(700)).await;
    procs[1] = Orderer::start(&net.orderer_configs[1], &logs[1]);

    // Phase 2: 5,000 more through all four, the restarted one included.
    submit_all(&ports, &roots, phase2).await;

    let started = Instant::now();
    let mut chains = Vec::new();
    for p in &ports {
        chains.push(read_chain(*p, &roots, &client, 10_000).await);
    }
    println!(
        "all 4 orderers delivered 10,000 envelopes ({:?} after the last submission)",
        started.elapsed()
    );

    // Same chain, verifiable blocks, no empty block, each envelope exactly once.
    let genesis = Block::decode(std::fs::read(&net.genesis_block).unwrap().as_slice()).unwrap();
    let config = ChannelConfig::from_config_block(&genesis).unwrap();
    let shortest = chains.iter().map(Vec::len).min().unwrap();
    for n in 0..shortest {
        for c in &chains[1..] {
            assert_eq!(
                c[n].header,
                chains[0][n].header,
                "orderers disagree at block {}",
                n + 1
            );
        }
    }
    let mut ordered = Vec::new();
    for b in &chains[0] {
        bft::verify_block_signatures(b, CHANNEL, config.consenters()).unwrap();
        assert!(!b.data.as_ref().unwrap().data.is_empty(), "empty block");
        ordered.extend(medledger_orderer::node::block_tx_ids(b));
    }
    let set: HashSet<&String> = ordered.iter().collect();
    assert_eq!(set.len(), ordered.len(), "an envelope ordered twice");
    assert_eq!(set, submitted.iter().collect::<HashSet<_>>());

    // The killed orderer never signed two different votes for one (height, round, type).
    let victim = config.consenters().get(2).unwrap();
    let mut votes: HashMap<(u64, i64, i32), HashSet<String>> = HashMap::new();
    let mut checked = 0;
    for (i, audit) in audits.iter().enumerate() {
        if i == 1 {
            continue;
        }
        let text = std::fs::read_to_string(audit).unwrap_or_default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() != 6 || f[0] != "2" {
                continue;
            }
            let (h, r, t): (u64, i64, i32) = (
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            );
            let value =
                (f[4] != "nil").then(|| <[u8; 32]>::try_from(hex::decode(f[4]).unwrap()).unwrap());
            let kind = if t == 1 {
                VoteKind::Prevote
            } else {
                VoteKind::Precommit
            };
            let msg = bft::vote_sign_bytes(CHANNEL, kind, h, r, value.as_ref(), 2);
            medledger_msp::crypto::verify(victim.public_key(), &msg, &hex::decode(f[5]).unwrap())
                .unwrap_or_else(|e| panic!("invalid vote signature from orderer 2: {e}"));
            votes.entry((h, r, t)).or_default().insert(f[4].to_owned());
            checked += 1;
        }
    }
    assert!(checked > 0, "no votes from orderer 2 were audited");
    for ((h, r, t), values) in &votes {
        assert_eq!(
            values.len(),
            1,
            "orderer 2 signed conflicting votes of type {t} at height {h} round {r}: {values:?}"
        );
    }
    println!(
        "checked {checked} votes received from the killed orderer over {} (height, round, type) slots",
        votes.len()
    );
    drop(procs);
}
