//! Client side of the chaincode lifecycle (`_lifecycle`, docs/network.md): approve a
//! definition for the identity's organization, commit it, query it, check who approved it —
//! through a gateway, as Fabric's `peer lifecycle chaincode approveformyorg|commit|
//! querycommitted|checkcommitreadiness` — and `network up`'s definition of the spec's
//! chaincodes.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use medledger_gateway::client::Gateway;
use medledger_peer_config::lifecycle::{self, Committed, Definition, Readiness};
use medledger_proto::ChaincodeName;
use medledger_proto::protos::TxValidationCode;

use super::client::{connect_as, explain};
use super::generate::chaincode_definition;
use super::spec::NetworkSpec;

/// Attempts of a commit whose endorsement fails (e.g. a peer that has not yet committed the
/// last approval), `RETRY_DELAY` apart.
const COMMIT_ATTEMPTS: usize = 20;
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Whether a commit failed for want of approvals (which a lagging peer may not have
/// committed yet), rather than for good.
fn awaiting_approvals(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("approved by") || text.contains("not agreed to by this org")
}

fn json(def: &Definition) -> Result<String> {
    Ok(serde_json::to_string(def)?)
}

/// Submits a `_lifecycle` transaction endorsed by `orgs`; its block number once committed
/// valid.
async fn submit(
    gateway: &Gateway,
    channel: &str,
    function: &str,
    def: &Definition,
    orgs: &[&str],
) -> Result<u64> {
    let arg = json(def)?;
    let proposal = gateway
        .network(channel)
        .contract(lifecycle::NAMESPACE)
        .new_proposal(function)
        .args(&[&arg])
        .with_endorsing_organizations(orgs)
        .build()
        .map_err(explain)?;
    let tx = proposal.endorse().await.map_err(explain)?;
    let commit = tx.submit().await.map_err(explain)?;
    let (code, block) = commit.status().await.map_err(explain)?;
    if code != TxValidationCode::Valid {
        bail!(
            "transaction {} committed in block {block} with status {code:?}",
            commit.tx_id
        );
    }
    Ok(block)
}

/// Approves `def` for the organization of the gateway's identity (an admin of it), endorsed
/// by that organization's peers only; the block it committed in.
///
/// # Errors
/// Refusal by the peer (not an admin, wrong sequence, bad definition), ordering or commit
/// failures.
pub async fn approve(gateway: &Gateway, channel: &str, def: &Definition) -> Result<u64> {
    let msp = gateway.identity().msp_id().to_owned();
    submit(gateway, channel, lifecycle::APPROVE, def, &[&msp]).await
}

/// Which organizations approved exactly `def`.
///
/// # Errors
/// Gateway failures, an invalid definition.
pub async fn check_commit_readiness(
    gateway: &Gateway,
    channel: &str,
    def: &Definition,
) -> Result<Readiness> {
    let arg = json(def)?;
    let out = gateway
        .network(channel)
        .contract(lifecycle::NAMESPACE)
        .evaluate_transaction(lifecycle::CHECK_COMMIT_READINESS, &[&arg])
        .await
        .map_err(explain)?;
    serde_json::from_slice(&out).context("unexpected CheckCommitReadiness answer")
}

/// The definition of `name` committed on the channel, `None` if there is none.
///
/// # Errors
/// Gateway failures.
pub async fn query_committed(
    gateway: &Gateway,
    channel: &str,
    name: &ChaincodeName,
) -> Result<Option<Committed>> {
    let result = gateway
        .network(channel)
        .contract(lifecycle::NAMESPACE)
        .evaluate_transaction(lifecycle::QUERY_COMMITTED, &[name.as_str()])
        .await;
    match result {
        Ok(out) => Ok(Some(
            serde_json::from_slice(&out).context("unexpected QueryChaincodeDefinition answer")?,
        )),
        Err(e) => {
            // The peers' refusal (status 500) is in the per-peer details.
            let e = explain(e);
            if e.to_string()
                .contains(&format!("namespace {name} is not defined"))
            {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// Commits `def`, endorsed by the organizations that approved it (the lifecycle endorsement
/// policy is a majority of organizations by default, and each endorsing peer checks that its
/// own organization approved, as Fabric). Retries while the endorsement fails, so that peers
/// catch up with the last approvals; the block it committed in.
///
/// # Errors
/// Fewer approvals than a majority (with the readiness), refusal, ordering or commit
/// failures.
pub async fn commit(gateway: &Gateway, channel: &str, def: &Definition) -> Result<u64> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let readiness = check_commit_readiness(gateway, channel, def).await?;
        let approved: Vec<&str> = readiness
            .approvals
            .iter()
            .filter(|(_, a)| **a)
            .map(|(o, _)| o.as_str())
            .collect();
        let result = if approved.len() * 2 > readiness.approvals.len() {
            submit(gateway, channel, lifecycle::COMMIT, def, &approved).await
        } else {
            Err(anyhow::anyhow!(
                "chaincode definition of {} sequence {} approved by {} of {} organizations; a majority is required ({})",
                def.name,
                def.sequence,
                approved.len(),
                readiness.approvals.len(),
                readiness
                    .approvals
                    .iter()
                    .map(|(o, a)| format!("{o}: {a}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        };
        match result {
            Ok(block) => return Ok(block),
            Err(e) if attempt < COMMIT_ATTEMPTS && awaiting_approvals(&e) => {
                tracing::debug!(target: "medledger::lifecycle", error = %e, attempt, "commit not yet possible; retrying");
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `network up`: defines every chaincode of the spec that the channel has no committed
/// definition of yet — each organization's admin (`<org>-admin`) approves the definition
/// sequence 1 ([`chaincode_definition`]) unless it did, then the first organization's admin
/// commits it. Chaincodes already defined (a restart, or a definition changed since with
/// `medledger lifecycle`) are left alone.
///
/// # Errors
/// Unreachable gateways, refused approvals or commits.
pub async fn define_spec_chaincodes(
    dir: &Path,
    spec: &NetworkSpec,
    mut progress: impl FnMut(&str),
) -> Result<()> {
    let mut admins = Vec::new();
    for org in &spec.organizations {
        let name = format!("{}-admin", org.name);
        admins.push(connect_as(dir, Some(&name)).await?);
    }
    let Some(first) = admins.first() else {
        return Ok(());
    };
    for cc in &spec.chaincodes {
        let def = chaincode_definition(spec, cc);
        if let Some(c) = query_committed(&first.gateway, &spec.channel, &cc.name).await? {
            progress(&format!(
                "chaincode {} is defined on channel {} (sequence {})",
                cc.name, spec.channel, c.definition.sequence
            ));
            continue;
        }
        for admin in &admins {
            let readiness = check_commit_readiness(&admin.gateway, &spec.channel, &def).await?;
            if readiness.approvals.get(admin.identity.msp_id.as_str()) == Some(&true) {
                continue;
            }
            approve(&admin.gateway, &spec.channel, &def)
                .await
                .with_context(|| format!("{} approving {}", admin.identity.name, cc.name))?;
            progress(&format!(
                "{} approved chaincode {} sequence 1",
                admin.identity.msp_id, cc.name
            ));
        }
        let block = commit(&first.gateway, &spec.channel, &def)
            .await
            .with_context(|| format!("committing the definition of {}", cc.name))?;
        progress(&format!(
            "committed chaincode {} sequence 1 on channel {} (block {block})",
            cc.name, spec.channel
        ));
    }
    Ok(())
}
