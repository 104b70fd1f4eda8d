//! `medledger fhir ...`: an organization's FHIR R4 API server (`ehr-fhir`, ADR 0039, docs/fhir.md)
//! and the client commands around it: a bearer token for curl (SMART Backend Services) and a
//! delegate enrollment for the server's wallet.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use ehr_fhir::backend::Wallet;
use ehr_fhir::config::FhirConfig;
use medledger_ca::Profile;
use medledger_devnet::generate::{self, Identities, IdentityEntry, NodeKind};
use medledger_devnet::{self as net, https, process};
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::folder;
use medledger_msp::identity::SigningIdentity;

/// FHIR subcommands.
#[derive(Debug, Subcommand)]
pub enum FhirCommand {
    /// Serve an organization's FHIR R4 API (`fhir.yaml`) until interrupted (Ctrl-C / SIGTERM).
    Serve(ServeArgs),
    /// Print a bearer token of the FHIR API for a demo identity (SMART Backend Services: an
    /// ES256 client assertion signed with the identity's enrollment key), e.g. for curl.
    Token(TokenArgs),
    /// Authorize a FHIR server to act as a demo identity: a new key and a certificate for the
    /// same enrollment id, obtained by a CA reenrollment the identity signs, written into the
    /// server's wallet (ADR 0039).
    Delegate(DelegateArgs),
}

/// `fhir serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The server's configuration (`nodes/fhir.<org>/fhir.yaml` of a network); relative paths
    /// in it are relative to its directory.
    #[arg(long)]
    pub config: PathBuf,
}

/// `fhir token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Demo identity (`medledger identities`).
    #[arg(long = "as")]
    pub name: String,
    /// Network directory (default $MEDLEDGER_HOME, else ./medledger-net).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Scope asked for (SMART v2: `system/*.rs` read-only, `system/*.cruds` all).
    #[arg(long, default_value = "system/*.cruds")]
    pub scope: String,
}

/// `fhir delegate`.
#[derive(Debug, Args)]
pub struct DelegateArgs {
    /// Demo identity whose delegate to create (`medledger identities`); it signs the
    /// reenrollment.
    #[arg(long = "as")]
    pub name: String,
    /// The FHIR server's wallet directory (`nodes/fhir.<org>/wallet`).
    #[arg(long)]
    pub wallet: PathBuf,
    /// Network directory (default $MEDLEDGER_HOME, else ./medledger-net).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The organization's CA service (`medledger ca serve`).
    #[command(flatten)]
    pub ca: crate::ca::ConnArgs,
}

/// Runs a FHIR subcommand.
///
/// # Errors
/// Whatever the subcommand reports, with context.
pub async fn run(cmd: FhirCommand) -> Result<()> {
    match cmd {
        FhirCommand::Serve(a) => serve(&a.config).await,
        FhirCommand::Token(a) => {
            let token = token(&net::default_dir(a.dir), &a.name, &a.scope)?;
            println!("{token}");
            Ok(())
        }
        FhirCommand::Delegate(a) => delegate(a).await,
    }
}

/// `path` relative to `base` unless absolute.
fn resolve(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

/// Reads `fhir.yaml` ([`FhirConfig::from_yaml`]) and resolves its relative paths against the
/// file's directory, as the peer's and orderer's configurations.
///
/// # Errors
/// An unreadable or invalid file.
pub fn load_config(path: &Path) -> Result<FhirConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut cfg =
        FhirConfig::from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let base = std::path::absolute(path)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for p in [
        &mut cfg.tls_cert,
        &mut cfg.tls_key,
        &mut cfg.client_tls_ca,
        &mut cfg.msp_dir,
        &mut cfg.wallet_dir,
    ] {
        resolve(&base, p);
    }
    for p in [
        &mut cfg.gateway.tls_ca,
        &mut cfg.gateway.tls_cert,
        &mut cfg.gateway.tls_key,
    ]
    .into_iter()
    .flatten()
    {
        resolve(&base, p);
    }
    Ok(cfg)
}

async fn serve(config: &Path) -> Result<()> {
    let cfg = load_config(config)?;
    tracing::info!(target: "fhir::serve", listen = %cfg.listen, base_url = %cfg.base_url, "FHIR server starting");
    ehr_fhir::serve(cfg, crate::ca::shutdown_signal())
        .await
        .context("serving the FHIR API")
}

/// The demo identity `name` of the network in `dir` and its signing identity.
fn identity(dir: &Path, name: &str) -> Result<(IdentityEntry, SigningIdentity)> {
    let ids = Identities::load(dir)?;
    let entry = ids.get(name).cloned().with_context(|| {
        let names: Vec<&str> = ids.identities.iter().map(|i| i.name.as_str()).collect();
        format!(
            "no identity {name:?} in {} (known: {})",
            dir.display(),
            names.join(", ")
        )
    })?;
    let msp_dir = dir.join(&entry.msp_dir);
    let signing = folder::load_signing_identity(&msp_dir, &entry.msp_id)
        .with_context(|| format!("loading identity from {}", msp_dir.display()))?;
    Ok((entry, signing))
}

/// A bearer token of `name`'s organization's FHIR server in the network in `dir`, for
/// `scope`: SMART Backend Services' client-credentials grant (RFC 6749 §4.4) with a
/// `private_key_jwt` assertion (RFC 7523): header `{alg: ES256, typ: JWT, x5c: [enrollment
/// certificate]}`, claims `iss` = `sub` = `<MSP id>:<enrollment id>`, `aud` the token URL,
/// `exp` now + 300 s, `iat`, `jti` 128 random bits, signed with the identity's enrollment key.
///
/// # Errors
/// Unknown identity, an organization without a FHIR server, an unreachable server, or its
/// refusal (status and RFC 6749 §5.2 error).
pub fn token(dir: &Path, name: &str, scope: &str) -> Result<String> {
    let (entry, signing) = identity(dir, name)?;
    let (spec, nodes) = net::nodes_of(dir)?;
    let org = spec
        .organizations
        .iter()
        .find(|o| o.msp_id.as_str() == entry.msp_id)
        .with_context(|| format!("{} is not an organization of the network", entry.msp_id))?;
    let base_url = generate::fhir_base_url(org)
        .with_context(|| format!("{} has no FHIR server in network.yaml", entry.msp_id))?;
    let node = nodes
        .iter()
        .find(|n| n.kind == NodeKind::Fhir && n.name == generate::fhir_dir_name(org))
        .context("the FHIR server node")?;
    let token_url = format!("{base_url}/auth/token");
    let client_id = format!("{}:{}", entry.msp_id, signing.certificate().common_name());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let header = serde_json::json!({
        "alg": "ES256",
        "typ": "JWT",
        "x5c": [STANDARD.encode(signing.certificate().der())],
    });
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now + 300,
        "iat": now,
        "jti": hex::encode(rand::random::<[u8; 16]>()),
    });
    let pkcs8 = signing.key().to_pkcs8_der()?;
    let assertion = ehr_fhir::auth::jws::sign(&header, &claims, &pkcs8)
        .map_err(|e| anyhow::anyhow!("signing the client assertion: {e}"))?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", ehr_fhir::auth::tokens::JWT_BEARER)
        .append_pair("client_assertion", &assertion)
        .append_pair("scope", scope)
        .finish();
    let target = process::fhir_target(node)?;
    let answer = https::request(
        &target,
        "POST",
        "/fhir/auth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .with_context(|| format!("asking {token_url} for a token"))?;
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
    if answer.status != 200 {
        bail!(
            "the token endpoint answered {}: {} {}",
            answer.status,
            body["error"].as_str().unwrap_or("-"),
            body["error_description"].as_str().unwrap_or("")
        );
    }
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("the token endpoint's answer has no access_token")
}

/// `fhir delegate`: a new P-256 key for the server, and its certificate from the CA's
/// `reenroll` (Fabric CA's reenroll: same enrollment id and attributes, request signed with
/// the identity's current enrollment key), stored in the wallet (`cert.pem`, `key.pem` 0600 in
/// a 0700 folder; a new wallet directory is made 0700).
async fn delegate(a: DelegateArgs) -> Result<()> {
    let dir = net::default_dir(a.dir);
    let (entry, signing) = identity(&dir, &a.name)?;
    let (mut ca, ca_msp_id) = crate::ca::connect(&a.ca).await?;
    if ca_msp_id != entry.msp_id {
        bail!(
            "the CA at {} is {ca_msp_id}'s, not {}'s",
            a.ca.url,
            entry.msp_id
        );
    }
    let key = SigningKey::generate()?;
    let issued = ca
        .reenroll(&signing, &key, Profile::Ecert, &[])
        .await
        .with_context(|| format!("reenrolling {} for the FHIR server", a.name))?;
    let cert = Certificate::from_pem(issued.cert_pem.as_bytes())?;
    let delegate = SigningIdentity::new(entry.msp_id.clone(), cert, key)?;
    if !a.wallet.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&a.wallet)
            .with_context(|| format!("creating {}", a.wallet.display()))?;
    }
    let folder = Wallet::new(&a.wallet, &entry.msp_id)
        .store(&delegate)
        .map_err(|e| anyhow::anyhow!("writing the delegate into {}: {e}", a.wallet.display()))?;
    println!(
        "delegate enrollment of {} (serial {}) written to {}",
        delegate.certificate().common_name(),
        delegate.certificate().serial_hex(),
        folder.display()
    );
    Ok(())
}
