//! `medledger org add`: an organization joins a running network's channel.
//!
//! 1. The new organization's CA is created and issues its peers' and demo identities (as
//!    `network up` does for the first organizations).
//! 2. The channel's current configuration is read from an orderer (the newest block's
//!    LAST_CONFIG, then that config block).
//! 3. A configuration update adding the organization's MSP and peers (sequence + 1) is signed
//!    by the chosen admins (Fabric's `ConfigSignature`s) and broadcast to the orderers, who
//!    admit it only if the signatures satisfy the channel's `Admins` policy (`MAJORITY Admins`).
//! 4. Once every peer of the network has committed the config block, the network directory
//!    records the organization (network.yaml, identities.yaml, connection.yaml,
//!    tls-roots.pem), and its peers start, pull the chain from the orderers and catch up.
//!
//! If the update is refused, the material generated in step 1 is removed again and nothing
//! about the network changes.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use medledger_channel::ChannelConfig;
use medledger_channel::update;
use medledger_msp::identity::SigningIdentity;
use medledger_orderer::client::{OrdererClient, seek_envelope};
use medledger_proto::common::{Block, Status};
use medledger_proto::orderer::deliver_response;
use prost::Message;

use super::generate::{self, GeneratedNode, Identities};
use super::process;
use super::spec::{NetworkSpec, OrgSpec};

/// What `org add` did.
#[derive(Debug, Clone)]
pub struct AddReport {
    /// The config block that added the organization.
    pub config_block: u64,
    /// The channel configuration's new sequence.
    pub sequence: u64,
    /// The new organization's peers (started unless `--no-start`).
    pub peers: Vec<GeneratedNode>,
}

/// Loads the signing identity of demo identity `name` of the network in `dir`.
///
/// # Errors
/// Unknown name, unreadable MSP folder.
pub fn signing_identity(
    dir: &Path,
    identities: &Identities,
    name: &str,
) -> Result<SigningIdentity> {
    let entry = identities.get(name).with_context(|| {
        format!("no identity {name} in this network (see `medledger identities`)")
    })?;
    medledger_msp::folder::load_signing_identity(&dir.join(&entry.msp_dir), &entry.msp_id)
        .with_context(|| format!("loading {name}'s MSP folder"))
}

/// The signing identities named in `names`, or by default the `<org>-admin` of each of
/// `default_orgs`; returns the names used and the identities.
///
/// # Errors
/// An unknown name, an unreadable MSP folder.
fn load_signers<'a>(
    dir: &Path,
    identities: &Identities,
    names: &[String],
    default_orgs: impl Iterator<Item = &'a OrgSpec>,
) -> Result<(Vec<String>, Vec<SigningIdentity>)> {
    let names: Vec<String> = if names.is_empty() {
        default_orgs.map(|o| format!("{}-admin", o.name)).collect()
    } else {
        names.to_vec()
    };
    if names.is_empty() {
        bail!("a configuration update needs at least one admin's signature");
    }
    let signing = names
        .iter()
        .map(|n| signing_identity(dir, identities, n))
        .collect::<Result<Vec<_>>>()?;
    Ok((names, signing))
}

/// A connected orderer of the network, with its node entry.
async fn connect_orderer(dir: &Path, spec: &NetworkSpec) -> Result<(OrdererClient, GeneratedNode)> {
    let roots = std::fs::read(dir.join("tls-roots.pem")).context("reading tls-roots.pem")?;
    let nodes = generate::nodes(dir, spec);
    let mut last_err = None;
    for (node, o) in nodes
        .iter()
        .filter(|n| n.kind == generate::NodeKind::Orderer)
        .zip(&spec.orderer_org.orderers)
    {
        match OrdererClient::connect(&o.host, o.port, &roots).await {
            Ok(c) => return Ok((c, node.clone())),
            Err(e) => last_err = Some(format!("{}: {e}", node.name)),
        }
    }
    bail!(
        "no orderer reachable ({})",
        last_err.unwrap_or_else(|| "none configured".into())
    )
}

/// Block `number` of the channel, read from an orderer as `reader`.
async fn fetch_block(
    orderer: &mut OrdererClient,
    reader: &SigningIdentity,
    channel: &str,
    number: u64,
) -> Result<Block> {
    let request = seek_envelope(reader, channel, number, number)?;
    let mut stream = orderer.deliver(request).await?;
    while let Some(msg) = stream.message().await? {
        match msg.r#type {
            Some(deliver_response::Type::Block(b)) => return Ok(b),
            Some(deliver_response::Type::Status(s)) => {
                bail!("the orderer refused to deliver block {number}: status {s}")
            }
            _ => {}
        }
    }
    bail!("the orderer closed the stream before block {number}")
}

/// The channel's current configuration and the number of the block that carries it, read
/// from an orderer: the newest block's LAST_CONFIG, then that block, whose quorum of
/// consenter signatures is verified (or which must be the local genesis block).
///
/// # Errors
/// No orderer reachable, a refused Deliver, an unreadable config block.
pub async fn current_config(
    dir: &Path,
    spec: &NetworkSpec,
    reader: &SigningIdentity,
) -> Result<(ChannelConfig, u64)> {
    let (mut orderer, node) = connect_orderer(dir, spec).await?;
    let height = process::height(&node, &spec.channel)
        .with_context(|| format!("reading {}'s height", node.name))?;
    let newest = fetch_block(
        &mut orderer,
        reader,
        &spec.channel,
        height.saturating_sub(1),
    )
    .await?;
    let index = medledger_channel::block::last_config_index(&newest);
    let block = if index == height.saturating_sub(1) {
        newest
    } else {
        fetch_block(&mut orderer, reader, &spec.channel, index).await?
    };
    // Trust no single orderer: a config block after the genesis block must carry a quorum of
    // the consenters' signatures (the consenter set never changes, ADR 0018), and block 0 must
    // be this network's own genesis block.
    let genesis = Block::decode(
        std::fs::read(dir.join("genesis.block"))
            .context("reading genesis.block")?
            .as_slice(),
    )
    .context("decoding genesis.block")?;
    if index == 0 {
        if block.header != genesis.header {
            bail!(
                "{} served a block 0 that is not this channel's genesis block",
                node.name
            );
        }
    } else {
        let genesis_config = ChannelConfig::from_config_block(&genesis)?;
        medledger_channel::bft::verify_block_signatures(
            &block,
            &spec.channel,
            genesis_config.consenters(),
        )
        .with_context(|| {
            format!(
                "{}'s config block {index} is not signed by a quorum",
                node.name
            )
        })?;
    }
    let config = ChannelConfig::from_config_block(&block)
        .with_context(|| format!("reading the configuration in block {index}"))?;
    Ok((config, index))
}

/// Signs a configuration update to `next` by `signers` and broadcasts it to an orderer,
/// submitted by the first signer.
///
/// # Errors
/// No signer; the orderer's refusal (`FORBIDDEN` when the signatures do not satisfy the
/// policy, `BAD_REQUEST` otherwise) with its reason.
pub async fn submit_update(
    dir: &Path,
    spec: &NetworkSpec,
    next: &medledger_proto::medledger::channel::ChannelConfig,
    signers: &[SigningIdentity],
) -> Result<()> {
    let Some(submitter) = signers.first() else {
        bail!("a configuration update needs at least one admin's signature");
    };
    let bytes = update::update_bytes(next);
    let signatures = signers
        .iter()
        .map(|s| update::sign_update(&bytes, s))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let envelope = update::update_envelope(
        &spec.channel,
        bytes,
        signatures,
        submitter,
        SystemTime::now(),
    )?;
    let (mut orderer, node) = connect_orderer(dir, spec).await?;
    let responses = orderer.broadcast(vec![envelope]).await?;
    let Some(r) = responses.first() else {
        bail!("{} sent no response", node.name);
    };
    if r.status != Status::Success as i32 {
        let status = Status::try_from(r.status)
            .map(|s| s.as_str_name().to_owned())
            .unwrap_or_else(|_| r.status.to_string());
        return Err(Refused(format!(
            "{} refused the configuration update: {status}: {}",
            node.name, r.info
        ))
        .into());
    }
    Ok(())
}

/// An orderer's definite refusal of a configuration update (as opposed to a transport error,
/// after which the update may still be ordered).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// Waits until the orderers' current configuration has `sequence`.
///
/// # Errors
/// `timeout` passed, or the orderers cannot be read.
async fn wait_ordered(
    dir: &Path,
    spec: &NetworkSpec,
    reader: &SigningIdentity,
    sequence: u64,
    timeout: Duration,
) -> Result<(ChannelConfig, u64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let (config, block) = current_config(dir, spec, reader).await?;
        if config.sequence() >= sequence {
            return Ok((config, block));
        }
        if Instant::now() > deadline {
            bail!("the configuration update was not ordered within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every peer in `peers` runs with configuration sequence `sequence` (its
/// `peer_channel_config_sequence` metric: the peer committed the config block and
/// restarted its services with it).
///
/// # Errors
/// `timeout` passed.
pub fn wait_config_sequence(
    peers: &[GeneratedNode],
    channel: &str,
    sequence: u64,
    timeout: Duration,
) -> Result<()> {
    let series = format!("peer_channel_config_sequence{{channel=\"{channel}\"}}");
    let deadline = Instant::now() + timeout;
    for p in peers {
        while process::gauge(p, &series) != Some(sequence) {
            if Instant::now() > deadline {
                bail!(
                    "{} did not apply configuration sequence {sequence} within {timeout:?}",
                    p.name
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// Removes what [`generate::generate_org`] wrote for `org` (after a refused update).
fn remove_org_material(dir: &Path, org: &OrgSpec, identities: &Identities) {
    let _ = std::fs::remove_dir_all(dir.join("ca").join(&org.name));
    for p in &org.peers {
        let _ = std::fs::remove_dir_all(
            dir.join("nodes")
                .join(generate::node_dir_name(Some(org), p)),
        );
    }
    for i in identities
        .identities
        .iter()
        .filter(|i| i.msp_id == org.msp_id)
    {
        if let Some(home) = dir.join(&i.msp_dir).parent() {
            let _ = std::fs::remove_dir_all(home);
        }
    }
}

/// Adds `org` to the network in `dir` (see the module docs): its configuration update is
/// signed by the identities named in `signers` (default: every existing organization's
/// `<org>-admin`). With `start`, its peers are started with `exe` and the call returns once
/// they caught up with the channel.
///
/// # Errors
/// A name, MSP id or port already in the network; an unknown signer; the orderers' refusal;
/// peers that do not apply the update or do not start within `timeout`.
pub async fn add(
    dir: &Path,
    org: OrgSpec,
    signers: &[String],
    exe: &Path,
    start: bool,
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<AddReport> {
    let (spec, nodes) = super::nodes_of(dir)?;
    let mut next_spec = spec.clone();
    next_spec.organizations.push(org.clone());
    next_spec
        .validate()
        .with_context(|| format!("adding {} to the network", org.msp_id))?;
    let mut identities = Identities::load(dir)?;
    let (signer_names, signing) =
        load_signers(dir, &identities, signers, spec.organizations.iter())?;
    let (current, _) = current_config(dir, &spec, &signing[0]).await?;
    progress(&format!(
        "channel {} is at configuration sequence {} with {}",
        spec.channel,
        current.sequence(),
        current
            .application_orgs()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    progress(&format!(
        "creating the CA of {} and issuing its identities",
        org.msp_id
    ));
    let before = identities.identities.len();
    let cleanup = |identities: &Identities| {
        let added = Identities {
            channel: identities.channel.clone(),
            identities: identities.identities[before..].to_vec(),
        };
        remove_org_material(dir, &org, &added);
    };
    let (organization, tls_root) = match generate::generate_org(dir, &org, &[], &mut identities) {
        Ok(generated) => generated,
        Err(e) => {
            cleanup(&identities);
            return Err(e);
        }
    };
    let mut next = current.to_proto().clone();
    next.sequence += 1;
    next.organizations.push(organization);
    progress(&format!(
        "submitting the configuration update (sequence {}) signed by {}",
        next.sequence,
        signer_names.join(", ")
    ));
    match submit_update(dir, &spec, &next, &signing).await {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            cleanup(&identities);
            return Err(e);
        }
        Err(e) => {
            return Err(e.context(format!(
                "the update may still be ordered: {}'s material is kept in {}; check with `medledger network status`",
                org.msp_id,
                dir.join("ca").join(&org.name).display()
            )));
        }
    }
    let (updated, config_block) =
        wait_ordered(dir, &spec, &signing[0], next.sequence, timeout).await?;
    if !updated.application_orgs().any(|m| *m == org.msp_id) {
        cleanup(&identities);
        bail!(
            "another configuration update was ordered first (sequence {}); {} did not join",
            updated.sequence(),
            org.msp_id
        );
    }
    progress(&format!(
        "config block {config_block} ordered: {} joined channel {} (sequence {})",
        org.msp_id,
        spec.channel,
        updated.sequence()
    ));

    // Record the organization in the network directory.
    identities.save(dir)?;
    let mut roots = std::fs::read_to_string(dir.join("tls-roots.pem")).unwrap_or_default();
    roots.push_str(&tls_root);
    std::fs::write(dir.join("tls-roots.pem"), roots)?;
    generate::write_peer_configs(dir, &next_spec, &org)?;
    generate::write_fhir_config(dir, &next_spec, &org)?;
    generate::write_connection_profile(dir, &next_spec)?;
    std::fs::write(
        dir.join("network.yaml"),
        serde_yaml_ng::to_string(&next_spec)?,
    )?;
    // Every existing peer applies it (a peer that is down applies it when it comes back).
    let peers: Vec<GeneratedNode> = nodes
        .iter()
        .filter(|n| n.kind == generate::NodeKind::Peer)
        .cloned()
        .collect();
    wait_config_sequence(&peers, &spec.channel, next.sequence, timeout)
        .context("the organization joined and is recorded; some peers have not applied it yet")?;
    let all = generate::nodes(dir, &next_spec);
    let new_peers: Vec<GeneratedNode> = all
        .iter()
        .filter(|n| n.kind == generate::NodeKind::Peer)
        .filter(|n| !nodes.iter().any(|old| old.name == n.name))
        .cloned()
        .collect();
    if start {
        let mut children = std::collections::HashMap::new();
        for node in &new_peers {
            let child = process::spawn(dir, exe, node)?;
            progress(&format!("started {} (pid {})", node.name, child.id()));
            children.insert(node.name.clone(), child);
        }
        process::wait_healthy(dir, &new_peers, &mut children, timeout, &mut progress)?;
        // Caught up: it committed the config block, and restarted its services with it.
        wait_config_sequence(&new_peers, &spec.channel, next.sequence, timeout)?;
        process::wait_healthy(dir, &new_peers, &mut children, timeout, &mut progress)?;
        for node in &new_peers {
            progress(&format!(
                "{} caught up (height {})",
                node.name,
                process::height(node, &spec.channel).unwrap_or(0)
            ));
        }
    }
    Ok(AddReport {
        config_block,
        sequence: next.sequence,
        peers: new_peers,
    })
}

/// What `org update-crl` did.
#[derive(Debug, Clone)]
pub struct CrlReport {
    /// Serials (hex) revoked now.
    pub revoked: Vec<String>,
    /// The config block that carries the new CRL.
    pub config_block: u64,
    /// The channel configuration's new sequence.
    pub sequence: u64,
}

/// Publishes organization `org_name`'s current CRL on the channel, after revoking the demo
/// identities named in `revoke` at its CA (in the network directory): a configuration update
/// replacing the organization's CRLs, signed by `signers` (default: the organization's
/// `<org>-admin`; the change touches only its own entry, so its own Admins policy suffices,
/// as Fabric's default `mod_policy` of an organization). Returns once every peer applied it:
/// from then on every node refuses the revoked certificates.
///
/// # Errors
/// An unknown organization or identity; the CA's or the orderers' refusal; peers that do
/// not apply the update within `timeout`.
pub async fn update_crl(
    dir: &Path,
    org_name: &str,
    revoke: &[String],
    reason: &str,
    signers: &[String],
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<CrlReport> {
    let (spec, nodes) = super::nodes_of(dir)?;
    let org = spec
        .organizations
        .iter()
        .find(|o| o.name == org_name)
        .with_context(|| format!("no organization {org_name} in this network"))?;
    let identities = Identities::load(dir)?;
    let mut ca = medledger_ca::CertificateAuthority::open(&dir.join("ca").join(&org.name))
        .with_context(|| format!("opening the CA of {}", org.msp_id))?;
    let mut revoked = Vec::new();
    for name in revoke {
        identities
            .get(name)
            .filter(|e| e.msp_id == org.msp_id)
            .with_context(|| format!("{name} is not an identity of {}", org.msp_id))?;
        let serials = ca
            .revoke(
                generate::CA_BOOT_ID,
                medledger_ca::RevokeTarget::Identity(name.replace(':', "-")),
                reason,
            )
            .with_context(|| format!("revoking {name}"))?;
        progress(&format!(
            "revoked {name} at ca-{} ({} certificate(s))",
            org.name,
            serials.len()
        ));
        revoked.extend(serials);
    }
    let crls = ca.msp_config()?.crls;
    let (signer_names, signing) = load_signers(dir, &identities, signers, std::iter::once(org))?;
    let (current, _) = current_config(dir, &spec, &signing[0]).await?;
    let mut next = current.to_proto().clone();
    next.sequence += 1;
    let entry = next
        .organizations
        .iter_mut()
        .find(|o| o.msp_id == org.msp_id)
        .with_context(|| format!("{} is not in the channel configuration", org.msp_id))?;
    if entry.crls == crls {
        bail!("the channel already has {}'s current CRL", org.msp_id);
    }
    entry.crls = crls;
    progress(&format!(
        "submitting {}'s new CRL (configuration sequence {}) signed by {}",
        org.msp_id,
        next.sequence,
        signer_names.join(", ")
    ));
    submit_update(dir, &spec, &next, &signing).await?;
    let peers: Vec<GeneratedNode> = nodes
        .into_iter()
        .filter(|n| n.kind == generate::NodeKind::Peer)
        .collect();
    wait_config_sequence(&peers, &spec.channel, next.sequence, timeout)?;
    let (_, config_block) = current_config(dir, &spec, &signing[0]).await?;
    Ok(CrlReport {
        revoked,
        config_block,
        sequence: next.sequence,
    })
}
