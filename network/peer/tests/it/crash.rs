//! `kill -9` in the middle of committing a run of blocks: a real child process (this test
//! binary, re-run as the ignored `crash_child` test) commits blocks from files and is killed
//! with SIGKILL at different points. After every kill the ledger opens (hash chain and
//! savepoint verified), its height is a whole number of blocks, and its entire content equals
//! a replay of exactly those blocks into a fresh ledger.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::{CC, CHANNEL, Net};
use medledger_channel::block;
use medledger_ledger::{Ledger, LedgerConfig};
use medledger_peer::committer::Committer;
use medledger_peer::definitions::{ChaincodeDefinitions, InMemoryDefinitions};
use medledger_peer::testing::{TxSpec, read, signed_block, write};
use medledger_peer::validator::BlockPrivateData;
use medledger_proto::common::Block;
use medledger_proto::kvrwset::KvrwSet;
use prost::Message;

const BLOCKS: u64 = 60;
const TXS_PER_BLOCK: usize = 20;

fn committer(dir: &Path, genesis: &Block) -> Committer {
    let ledger =
        Arc::new(Ledger::open(dir, &CHANNEL.parse().unwrap(), &LedgerConfig::default()).unwrap());
    let defs: Arc<dyn ChaincodeDefinitions> = Arc::new(InMemoryDefinitions::new());
    Committer::new(ledger, Some(genesis), defs, "Org1MSP".parse().unwrap()).unwrap()
}

fn load(feed: &Path, n: u64) -> Block {
    Block::decode(
        std::fs::read(feed.join(format!("block_{n}.pb")))
            .unwrap()
            .as_slice(),
    )
    .unwrap()
}

/// Child side: commit every block of `FEED_DIR` above the ledger's height, one line per block.
#[test]
#[ignore = "run by crash_recovery as a child process"]
fn crash_child() {
    let (Ok(ledger_dir), Ok(feed)) = (std::env::var("LEDGER_DIR"), std::env::var("FEED_DIR"))
    else {
        return;
    };
    let feed = Path::new(&feed);
    let c = committer(Path::new(&ledger_dir), &load(feed, 0));
    let start = c.ledger().height();
    println!("start {start}");
    for n in start..=BLOCKS {
        c.commit_block(load(feed, n), &BlockPrivateData::new())
            .unwrap();
        println!("committed {n}");
    }
}

/// Runs the child; kills it with SIGKILL a little after it reported `kill_after` more commits
/// (never, if `None`). Returns the last block it reported committed before the kill.
fn run_child(ledger_dir: &Path, feed: &Path, kill_after: Option<usize>) -> Option<u64> {
    // The test's name in this binary: its module path without the crate.
    let name = format!(
        "{}::crash_child",
        module_path!().split_once("::").unwrap().1
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            name.as_str(),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LEDGER_DIR", ledger_dir)
        .env("FEED_DIR", feed)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = 0;
    let mut last = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            last = Some(n.trim().parse::<u64>().unwrap());
            seen += 1;
            if kill_after == Some(seen) {
                // Land the kill at different points of the next block's validation and write.
                std::thread::sleep(std::time::Duration::from_micros(seen as u64 * 1500));
                child.kill().unwrap(); // SIGKILL: no destructor, no flush
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    if kill_after.is_none() {
        assert!(status.success(), "child failed: {status}");
    }
    last
}

#[test]
fn crash_recovery() {
    let net = Net::new();
    let feed = tempfile::tempdir().unwrap();
    let genesis = net.genesis();
    std::fs::write(feed.path().join("block_0.pb"), genesis.encode_to_vec()).unwrap();
    let mut prev = block::header_hash(genesis.header.as_ref().unwrap()).to_vec();
    for n in 1..=BLOCKS {
        let envs: Vec<_> = (0..TXS_PER_BLOCK)
            .map(|i| {
                let k = format!("k{}", (n as usize * 7 + i) % 50);
                // Some reads are stale on purpose: invalid transactions are part of the run.
                let reads = if i % 5 == 0 {
                    vec![read(&k, None)]
                } else {
                    vec![]
                };
                let spec = TxSpec::kv(
                    CC,
                    KvrwSet {
                        reads,
                        writes: vec![write(&k, format!("{n}/{i}").as_bytes())],
                        ..Default::default()
                    },
                );
                net.tx(&spec).0
            })
            .collect();
        let b = signed_block(&net.ch, n, &prev, &envs, &[1, 2, 3]);
        prev = block::header_hash(b.header.as_ref().unwrap()).to_vec();
        std::fs::write(feed.path().join(format!("block_{n}.pb")), b.encode_to_vec()).unwrap();
    }

    let crashed = tempfile::tempdir().unwrap();
    let replay_dir = tempfile::tempdir().unwrap();
    let replay = committer(replay_dir.path(), &genesis);
    for kill_after in [3, 9, 1, 15] {
        let reported = run_child(crashed.path(), feed.path(), Some(kill_after)).unwrap();
        let ledger = Ledger::open(
            crashed.path(),
            &CHANNEL.parse().unwrap(),
            &LedgerConfig::default(),
        )
        .expect("ledger opens after kill -9");
        let height = ledger.height();
        // Every block the child reported committed is durable (it may have committed more
        // while the kill was on its way).
        assert!(
            height > reported && height <= BLOCKS + 1,
            "height {height} after {reported}"
        );
        while replay.ledger().height() < height {
            let n = replay.ledger().height();
            replay
                .commit_block(load(feed.path(), n), &BlockPrivateData::new())
                .unwrap();
        }
        assert_eq!(
            ledger.content_digest().unwrap(),
            replay.ledger().content_digest().unwrap(),
            "ledger after kill -9 at height {height} differs from a replay of its blocks"
        );
        assert_eq!(ledger.info(), replay.ledger().info());
        println!("killed after block {reported}: height {height}, equal to replay");
    }
    // Let it finish the run.
    assert_eq!(run_child(crashed.path(), feed.path(), None), Some(BLOCKS));
    let ledger = Ledger::open(
        crashed.path(),
        &CHANNEL.parse().unwrap(),
        &LedgerConfig::default(),
    )
    .unwrap();
    while replay.ledger().height() <= BLOCKS {
        let n = replay.ledger().height();
        replay
            .commit_block(load(feed.path(), n), &BlockPrivateData::new())
            .unwrap();
    }
    assert_eq!(ledger.height(), BLOCKS + 1);
    assert_eq!(
        ledger.content_digest().unwrap(),
        replay.ledger().content_digest().unwrap()
    );
}
