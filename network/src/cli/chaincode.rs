//! `medledger chaincode invoke|query`: call a chaincode through a peer's gateway, as
//! `peer chaincode invoke|query` does in Fabric.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use medledger_gateway::GatewayError;
use medledger_gateway::client::Gateway;
use medledger_msp::folder;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Chaincode subcommands.
#[derive(Debug, Subcommand)]
pub enum ChaincodeCommand {
    /// Submit a transaction (endorse, order, wait for the commit).
    Invoke(CallArgs),
    /// Evaluate a transaction on one peer (nothing is written).
    Query(CallArgs),
}

/// What to call and how to connect.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// Channel, e.g. `ehr`.
    #[arg(short = 'C', long)]
    pub channel: String,
    /// Chaincode name.
    #[arg(short = 'n', long)]
    pub name: String,
    /// Function and arguments as a JSON array of strings, e.g. '["put","k","v"]'.
    #[arg(long, conflicts_with = "ctor")]
    pub args: Option<String>,
    /// Fabric's form: '{"Args":["put","k","v"]}' (or '{"function":"put","Args":["k","v"]}').
    #[arg(short = 'c', long = "ctor")]
    pub ctor: Option<String>,
    /// Transient data as a JSON object of base64 values, e.g. '{"phi":"eyJ..."}'.
    #[arg(long)]
    pub transient: Option<String>,
    /// Gateway peer address, `https://HOST:PORT` (or `http://` without TLS).
    #[arg(long)]
    pub peer: String,
    /// PEM file of the peer's TLS root CA.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Client TLS certificate and key (PEM) for mutual TLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Client TLS key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// MSP folder of the signing identity.
    #[arg(short = 'M', long)]
    pub mspdir: PathBuf,
    /// MSP id of the signing identity.
    #[arg(long)]
    pub mspid: String,
}

fn parse_args(a: &CallArgs) -> Result<Vec<String>> {
    if let Some(json) = &a.args {
        return serde_json::from_str::<Vec<String>>(json)
            .context("--args must be a JSON array of strings");
    }
    if let Some(ctor) = &a.ctor {
        #[derive(serde::Deserialize)]
        struct Ctor {
            #[serde(rename = "Args", alias = "args", default)]
            args: Vec<String>,
            #[serde(rename = "function", default)]
            function: Option<String>,
        }
        let c: Ctor = serde_json::from_str(ctor).context("-c must be {\"Args\":[...]}")?;
        return Ok(c.function.into_iter().chain(c.args).collect());
    }
    bail!("give --args '[\"fn\",\"arg\"]' or -c '{{\"Args\":[...]}}'")
}

fn parse_transient(t: Option<&str>) -> Result<Vec<(String, Vec<u8>)>> {
    let Some(t) = t else { return Ok(Vec::new()) };
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_str(t).context("--transient must be a JSON object of base64 strings")?;
    map.into_iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|_| anyhow!("--transient value of {k:?} is not base64"))?;
            Ok((k, bytes))
        })
        .collect()
}

async fn connect(a: &CallArgs) -> Result<Gateway> {
    connect_gateway(&GatewayAddress {
        peer: &a.peer,
        tls_ca: a.tls_ca.as_deref(),
        tls_cert: a.tls_cert.as_deref(),
        tls_key: a.tls_key.as_deref(),
        mspdir: &a.mspdir,
        mspid: &a.mspid,
    })
    .await
}

/// Where a gateway is and who signs: the connection flags of client commands.
pub(crate) struct GatewayAddress<'a> {
    /// `https://HOST:PORT` (or `http://` without TLS).
    pub peer: &'a str,
    /// PEM file of the peer's TLS root CA.
    pub tls_ca: Option<&'a std::path::Path>,
    /// Client TLS certificate (PEM) for mutual TLS.
    pub tls_cert: Option<&'a std::path::Path>,
    /// Client TLS key (PEM).
    pub tls_key: Option<&'a std::path::Path>,
    /// MSP folder of the signing identity.
    pub mspdir: &'a std::path::Path,
    /// MSP id of the signing identity.
    pub mspid: &'a str,
}

/// Connects to a gateway peer (TLS when `https://`) as the identity of an MSP folder.
pub(crate) async fn connect_gateway(a: &GatewayAddress<'_>) -> Result<Gateway> {
    let identity = folder::load_signing_identity(a.mspdir, a.mspid)
        .with_context(|| format!("loading identity from {}", a.mspdir.display()))?;
    let mut endpoint = Endpoint::from_shared(a.peer.to_owned()).context("bad --peer address")?;
    if a.peer.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = a.tls_ca {
            tls = tls.ca_certificate(Certificate::from_pem(std::fs::read(ca)?));
        }
        if let (Some(cert), Some(key)) = (a.tls_cert, a.tls_key) {
            tls = tls.identity(Identity::from_pem(
                std::fs::read(cert)?,
                std::fs::read(key)?,
            ));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {}", a.peer))?;
    Ok(Gateway::connect(identity, channel))
}

fn explain(e: GatewayError) -> anyhow::Error {
    match e {
        GatewayError::Status {
            code,
            message,
            details,
        } => {
            let mut text = format!("{code:?}: {message}");
            for d in details {
                text.push_str(&format!("\n  {} ({}): {}", d.address, d.msp_id, d.message));
            }
            anyhow!(text)
        }
        other => anyhow!(other),
    }
}

/// Runs a chaincode subcommand; prints the result payload (as text when UTF-8).
///
/// # Errors
/// Connection, endorsement, ordering or commit failures, with per-peer details.
pub async fn run(cmd: ChaincodeCommand) -> Result<()> {
    let (a, submit) = match cmd {
        ChaincodeCommand::Invoke(a) => (a, true),
        ChaincodeCommand::Query(a) => (a, false),
    };
    let args = parse_args(&a)?;
    let (function, rest) = args
        .split_first()
        .ok_or_else(|| anyhow!("no function given"))?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let gateway = connect(&a).await?;
    let contract = gateway.network(&a.channel).contract(&a.name);
    let mut builder = contract.new_proposal(function).args(&rest);
    for (k, v) in parse_transient(a.transient.as_deref())? {
        builder = builder.with_transient(&k, &v);
    }
    let proposal = builder.build().map_err(explain)?;
    let result = if submit {
        let tx = proposal.endorse().await.map_err(explain)?;
        let result = tx.result().to_vec();
        let commit = tx.submit().await.map_err(explain)?;
        let (code, block) = commit.status().await.map_err(explain)?;
        eprintln!(
            "transaction {} committed in block {block} with status {code:?}",
            commit.tx_id
        );
        if code != medledger_proto::protos::TxValidationCode::Valid {
            bail!("transaction invalid: {code:?}");
        }
        result
    } else {
        proposal.evaluate().await.map_err(explain)?
    };
    match String::from_utf8(result) {
        Ok(text) => println!("{text}"),
        Err(e) => println!("{}", hex::encode(e.into_bytes())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(args: Option<&str>, ctor: Option<&str>) -> CallArgs {
        CallArgs {
            channel: "ehr".into(),
            name: "kv".into(),
            args: args.map(str::to_owned),
            ctor: ctor.map(str::to_owned),
            transient: None,
            peer: "http://127.0.0.1:1".into(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            mspdir: PathBuf::new(),
            mspid: "Org1MSP".into(),
        }
    }

    #[test]
    fn argument_forms() {
        assert_eq!(
            parse_args(&call(Some(r#"["put","k","v"]"#), None)).unwrap(),
            ["put", "k", "v"]
        );
        assert_eq!(
            parse_args(&call(None, Some(r#"{"Args":["put","k"]}"#))).unwrap(),
            ["put", "k"]
        );
        assert_eq!(
            parse_args(&call(None, Some(r#"{"function":"put","Args":["k"]}"#))).unwrap(),
            ["put", "k"]
        );
        assert!(parse_args(&call(Some("not json"), None)).is_err());
        assert_eq!(
            parse_transient(Some(r#"{"phi":"aGk="}"#)).unwrap(),
            vec![("phi".to_owned(), b"hi".to_vec())]
        );
        assert!(parse_transient(Some(r#"{"phi":"%%"}"#)).is_err());
    }
}
