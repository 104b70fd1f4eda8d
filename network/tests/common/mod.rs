//! What the end-to-end tests that start a network with `medledger network up` share: the
//! network configuration on free loopback ports and a guard that stops the network.

use std::path::PathBuf;
use std::process::Command;

/// The `medledger` executable under test.
pub const MEDLEDGER: &str = env!("CARGO_BIN_EXE_medledger");

/// Stops the network in `dir` (`medledger network down`) even when the test fails.
pub struct Network {
    /// The network directory.
    pub dir: PathBuf,
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new(MEDLEDGER)
            .args(["network", "down", "--dir"])
            .arg(&self.dir)
            .status();
    }
}

/// A network configuration on loopback: channel `ehr`, 4 BFT orderers, one peer in Org1MSP and
/// one in Org2MSP, on `ports` (12: a gRPC and an operations port per node), with the
/// `chaincodes` YAML list entries (one `- { name: ... }` per line).
pub fn spec(ports: &[u16], chaincodes: &[&str]) -> String {
    let node = |name: &str, i: usize| {
        format!(
            "{{ name: {name}, host: 127.0.0.1, port: {}, operations_port: {} }}",
            ports[2 * i],
            ports[2 * i + 1]
        )
    };
    let chaincodes: String = chaincodes.iter().map(|c| format!("  - {c}\n")).collect();
    format!(
        "channel: ehr
batch: {{ max_message_count: 100, batch_timeout_ms: 100 }}
orderer_org:
  name: orderer
  msp_id: OrdererMSP
  domain: orderer.test
  orderers: [{}, {}, {}, {}]
organizations:
  - {{ name: org1, msp_id: Org1MSP, domain: org1.test, peers: [{}] }}
  - {{ name: org2, msp_id: Org2MSP, domain: org2.test, peers: [{}] }}
chaincodes:
{chaincodes}",
        node("orderer1", 0),
        node("orderer2", 1),
        node("orderer3", 2),
        node("orderer4", 3),
        node("peer0", 4),
        node("peer0", 5),
    )
}
