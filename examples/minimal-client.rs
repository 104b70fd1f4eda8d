//! A minimal client: signs with an identity from its MSP folder, connects to a peer's Gateway
//! over TLS, submits `put` (endorse, order, wait until committed) and evaluates `get` (one
//! peer, nothing written) on a chaincode, as an application does with Fabric's Gateway client
//! (docs/gateway.md).
//!
//! Against the dev network (`medledger network up` in ./medledger-net, its peers running the
//! minimal chaincode as `minimal`; the gateway address and TLS name of an identity's peer are in
//! `medledger-net/identities.yaml`):
//!
//! ```sh
//! cargo run --release -p medledger-examples --example minimal-client -- \
//!   medledger-net/identities/org1-admin/msp Org1MSP \
//!   127.0.0.1:7051 127.0.0.1 medledger-net/tls-roots.pem \
//!   ehr minimal k v
//! ```

use std::path::PathBuf;

use medledger_gateway::client::Gateway;
use medledger_msp::folder::load_signing_identity;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

const USAGE: &str = "minimal-client MSP_DIR MSP_ID PEER_ADDRESS PEER_TLS_NAME TLS_ROOTS_PEM CHANNEL CHAINCODE KEY VALUE";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [
        msp_dir,
        msp_id,
        peer,
        tls_name,
        roots,
        channel,
        chaincode,
        key,
        value,
    ] = &args[..]
    else {
        return Err(USAGE.into());
    };

    // Who signs: the certificate and key of an MSP folder its organization's CA issued.
    let identity = load_signing_identity(&PathBuf::from(msp_dir), msp_id)?;
    // Where to: the peer's gateway, trusted through the network's TLS roots.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(roots)?))
        .domain_name(tls_name.clone());
    let connection = Endpoint::from_shared(format!("https://{peer}"))?
        .tls_config(tls)?
        .connect()
        .await?;

    let gateway = Gateway::connect(identity, connection);
    let contract = gateway.network(channel).contract(chaincode);
    contract
        .submit_transaction("put", &[key.as_str(), value.as_str()])
        .await?;
    let read = contract
        .evaluate_transaction("get", &[key.as_str()])
        .await?;
    println!("{key} = {}", String::from_utf8_lossy(&read));
    Ok(())
}
