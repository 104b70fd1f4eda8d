//! `medledger chaincode invoke|query`: call a chaincode through a peer's gateway, as
//! `peer chaincode invoke|query` does in Fabric.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use medledger_gateway::client::Gateway;

use medledger_devnet::client::explain;

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
    /// Channel, e.g. `ehr` (default with a network directory: its channel).
    #[arg(short = 'C', long)]
    pub channel: Option<String>,
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
    /// Connection.
    #[command(flatten)]
    pub gateway: super::connect::GatewayArgs,
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

/// The gateway connection and channel (`--channel`, else the network's).
async fn connect(a: &CallArgs) -> Result<(Gateway, String)> {
    let (gateway, network_channel) = a.gateway.connect().await?;
    let channel = a
        .channel
        .clone()
        .or(network_channel)
        .context("--channel is required with --peer")?;
    Ok((gateway, channel))
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
    let (gateway, channel) = connect(&a).await?;
    let contract = gateway.network(&channel).contract(&a.name);
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
            channel: Some("ehr".into()),
            name: "kv".into(),
            args: args.map(str::to_owned),
            ctor: ctor.map(str::to_owned),
            transient: None,
            gateway: Default::default(),
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
