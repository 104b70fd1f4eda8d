//! `medledger ca ...`: an organization's certificate authority, offline and as a TLS gRPC
//! service, and the client commands against it (in the manner of `fabric-ca-server` and
//! `fabric-ca-client`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use medledger_ca::client::CaClient;
use medledger_ca::{
    Attribute, CaConfig, CertificateAuthority, Profile, Registration, RevokeTarget, server,
};
use medledger_msp::crypto::SigningKey;
use medledger_msp::folder;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;

/// CA subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new CA (root CA + TLS CA keys, certificates and state) in a directory.
    Init(InitArgs),
    /// Serve a CA over gRPC with TLS until interrupted (Ctrl-C / SIGTERM).
    Serve(ServeArgs),
    /// Show a CA's name, MSP id and root certificates.
    Info(ConnArgs),
    /// Enroll: create a key locally, send a CSR, write the MSP folder (or TLS folder).
    Enroll(EnrollArgs),
    /// Reenroll an enrolled identity with a new key.
    Reenroll(ReenrollArgs),
    /// Register a new identity (as a registrar).
    Register(RegisterArgs),
    /// Revoke an identity or one certificate (as a revoker).
    Revoke(RevokeArgs),
    /// Generate the CA's certificate revocation list.
    Gencrl(GencrlArgs),
}

/// `ca init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory for the CA's keys and state (must not hold a CA yet).
    #[arg(long)]
    pub dir: PathBuf,
    /// CA name, e.g. `ca-org1`.
    #[arg(long)]
    pub name: String,
    /// MSP id of the organization, e.g. `Org1MSP`.
    #[arg(long)]
    pub msp_id: String,
    /// Organization name for certificate subjects, e.g. `org1.example.com`.
    #[arg(long)]
    pub organization: String,
    /// Bootstrap registrar, `ID:SECRET` (as `fabric-ca-server init -b`).
    #[arg(short = 'b', long = "boot")]
    pub boot: String,
    /// Host names / IPs for the CA service's TLS certificate (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
    pub hosts: Vec<String>,
    /// Validity of issued certificates, days.
    #[arg(long, default_value_t = 365)]
    pub cert_validity_days: u32,
}

/// `ca serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// CA directory (from `ca init`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7054")]
    pub listen: String,
}

/// Connection to a CA service.
#[derive(Debug, Args, Clone)]
pub struct ConnArgs {
    /// CA URL, `https://HOST:PORT` (`https://ID:SECRET@HOST:PORT` also works for enroll).
    #[arg(short = 'u', long)]
    pub url: String,
    /// PEM file of the CA's TLS root certificate (e.g. `<ca dir>/tls/ca.crt`).
    #[arg(long = "tls-certfiles")]
    pub tls_certfiles: PathBuf,
    /// CA name, if the server hosts several.
    #[arg(long, default_value = "")]
    pub caname: String,
}

/// `ca enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Enrollment id (or put it in the URL).
    #[arg(long)]
    pub id: Option<String>,
    /// Enrollment secret (or put it in the URL).
    #[arg(long)]
    pub secret: Option<String>,
    /// Output directory: writes `<home>/msp` (or `<home>/tls` with `--profile tls`).
    #[arg(long)]
    pub home: PathBuf,
    /// `tls` for a TLS certificate from the TLS CA.
    #[arg(long)]
    pub profile: Option<String>,
    /// SANs for a TLS certificate (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
}

/// `ca reenroll`.
#[derive(Debug, Args)]
pub struct ReenrollArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Directory of the enrolled identity (holds `msp/`); rewritten with the new key.
    #[arg(long)]
    pub home: PathBuf,
}

/// `ca register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// MSP folder of the registrar (e.g. `<home>/msp` of the bootstrap admin).
    #[arg(short = 'M', long)]
    pub mspdir: PathBuf,
    /// Enrollment id of the new identity.
    #[arg(long = "id-name")]
    pub name: String,
    /// Type: client, peer, orderer or admin.
    #[arg(long = "id-type", default_value = "client")]
    pub identity_type: NodeOu,
    /// Secret; generated and printed when omitted.
    #[arg(long = "id-secret")]
    pub secret: Option<String>,
    /// Attributes `name=value[:ecert]`, comma-separated, e.g. `ehr.role=doctor:ecert`
    /// (Fabric CA syntax: only `:ecert` attributes go into enrollment certificates).
    #[arg(long = "id-attrs", value_delimiter = ',')]
    pub attrs: Vec<String>,
    /// Maximum enrollments (0 = CA default, -1 = unlimited).
    #[arg(
        long = "id-maxenrollments",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub max_enrollments: i32,
    /// Affiliation, dot-separated.
    #[arg(long = "id-affiliation", default_value = "")]
    pub affiliation: String,
}

/// `ca revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// MSP folder of the revoker.
    #[arg(short = 'M', long)]
    pub mspdir: PathBuf,
    /// Revoke this identity and all its certificates.
    #[arg(long = "revoke-name", conflicts_with = "serial")]
    pub name: Option<String>,
    /// Revoke one certificate by serial (hex).
    #[arg(long = "revoke-serial")]
    pub serial: Option<String>,
    /// RFC 5280 reason, e.g. keyCompromise.
    #[arg(long = "revoke-reason", default_value = "unspecified")]
    pub reason: String,
    /// Also generate a CRL and write it to this file.
    #[arg(long)]
    pub gencrl: Option<PathBuf>,
}

/// `ca gencrl`.
#[derive(Debug, Args)]
pub struct GencrlArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// MSP folder of the caller (needs `hf.GenCRL`).
    #[arg(short = 'M', long)]
    pub mspdir: PathBuf,
    /// Where to write the CRL (PEM); e.g. `<msp>/crls/crl.pem`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a CA subcommand.
///
/// # Errors
/// What the CA or the file system reports.
pub async fn run(cmd: CaCommand) -> Result<()> {
    match cmd {
        CaCommand::Init(a) => init(a),
        CaCommand::Serve(a) => serve(a).await,
        CaCommand::Info(a) => {
            let (mut client, _) = connect(&a).await?;
            let info = client.info().await?;
            println!("CA name: {}", info.ca_name);
            println!("MSP id:  {}", info.msp_id);
            println!("version: {}", info.version);
            print!("{}", String::from_utf8_lossy(&info.root_cert_pem));
            Ok(())
        }
        CaCommand::Enroll(a) => enroll(a).await,
        CaCommand::Reenroll(a) => reenroll(a).await,
        CaCommand::Register(a) => register(a).await,
        CaCommand::Revoke(a) => revoke(a).await,
        CaCommand::Gencrl(a) => {
            let (mut client, msp_id) = connect(&a.conn).await?;
            let caller = load_identity(&a.mspdir, &msp_id)?;
            let crl = client.gen_crl(&caller).await?;
            medledger_msp::fsutil::write_atomic(&a.out, &crl, false)?;
            println!("CRL written to {}", a.out.display());
            Ok(())
        }
    }
}

fn init(a: InitArgs) -> Result<()> {
    let (id, secret) = a
        .boot
        .split_once(':')
        .ok_or_else(|| anyhow!("--boot must be ID:SECRET"))?;
    let mut config = CaConfig::new(a.name, a.msp_id, a.organization);
    config.hosts = a.hosts;
    config.cert_validity_days = a.cert_validity_days;
    let ca = CertificateAuthority::init(&a.dir, config, id, secret)
        .with_context(|| format!("initialising CA in {}", a.dir.display()))?;
    println!(
        "CA {} initialised in {} (MSP {}); TLS root for clients: {}",
        ca.config().name,
        a.dir.display(),
        ca.config().msp_id,
        ca.server_tls_dir().join("ca.crt").display()
    );
    Ok(())
}

async fn serve(a: ServeArgs) -> Result<()> {
    let ca = CertificateAuthority::open(&a.dir)
        .with_context(|| format!("opening CA in {}", a.dir.display()))?;
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    // Printed so scripts and tests that pass port 0 learn the port.
    println!("listening on {}", listener.local_addr()?);
    server::serve(ca, listener, shutdown_signal()).await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM: when a served process (`ca serve`, `fhir serve`) stops.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Splits `https://id:secret@host:port` into the plain URL and the credentials.
fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    if let Some(rest) = url.strip_prefix("https://")
        && let Some((creds, host)) = rest.rsplit_once('@')
        && let Some((id, secret)) = creds.split_once(':')
    {
        return (
            format!("https://{host}"),
            Some((id.to_owned(), secret.to_owned())),
        );
    }
    (url.to_owned(), None)
}

/// Connects to the CA service of `conn`; the client and the CA's MSP id.
pub(crate) async fn connect(conn: &ConnArgs) -> Result<(CaClient, String)> {
    let (url, _) = split_credentials(&conn.url);
    let tls = std::fs::read(&conn.tls_certfiles)
        .with_context(|| format!("reading {}", conn.tls_certfiles.display()))?;
    let mut client = CaClient::connect(&url, &tls, &conn.caname).await?;
    let msp_id = client.info().await?.msp_id;
    Ok((client, msp_id))
}

fn load_identity(mspdir: &Path, msp_id: &str) -> Result<SigningIdentity> {
    folder::load_signing_identity(mspdir, msp_id)
        .with_context(|| format!("loading identity from {}", mspdir.display()))
}

fn parse_profile(p: Option<&str>) -> Result<Profile> {
    match p {
        None | Some("") => Ok(Profile::Ecert),
        Some("tls") => Ok(Profile::Tls),
        Some(other) => bail!("unknown profile {other:?}: use \"tls\" or leave it out"),
    }
}

async fn enroll(a: EnrollArgs) -> Result<()> {
    let (_, url_creds) = split_credentials(&a.conn.url);
    let (id, secret) = match (a.id, a.secret, url_creds) {
        (Some(id), Some(secret), _) => (id, secret),
        (None, None, Some(creds)) => creds,
        _ => bail!("give --id and --secret, or https://ID:SECRET@HOST:PORT as --url"),
    };
    let profile = parse_profile(a.profile.as_deref())?;
    let (mut client, _) = connect(&a.conn).await?;
    let info = client.info().await?;
    let key = SigningKey::generate()?;
    let enrollment = client.enroll(&id, &secret, &key, profile, &a.hosts).await?;
    write_enrollment(&a.home, profile, &info, &enrollment, &key)?;
    Ok(())
}

fn write_enrollment(
    home: &Path,
    profile: Profile,
    info: &medledger_proto::medledger::ca::CaInfoResponse,
    enrollment: &medledger_ca::Enrollment,
    key: &SigningKey,
) -> Result<()> {
    match profile {
        Profile::Ecert => {
            let msp = folder::write_msp(
                home,
                &folder::MspMaterial {
                    ca_cert_pem: &enrollment.ca_cert_pem,
                    tls_ca_cert_pem: &String::from_utf8_lossy(&info.tls_root_cert_pem),
                    cert_pem: &enrollment.cert_pem,
                    key,
                },
            )?;
            println!("enrolled; MSP {} written to {}", info.msp_id, msp.display());
        }
        Profile::Tls => {
            let tls = folder::write_tls(home, &enrollment.ca_cert_pem, &enrollment.cert_pem, key)?;
            println!("TLS certificate written to {}", tls.display());
        }
    }
    Ok(())
}

async fn reenroll(a: ReenrollArgs) -> Result<()> {
    let (mut client, msp_id) = connect(&a.conn).await?;
    let info = client.info().await?;
    let identity = load_identity(&a.home.join("msp"), &msp_id)?;
    let key = SigningKey::generate()?;
    let enrollment = client
        .reenroll(&identity, &key, Profile::Ecert, &[])
        .await?;
    write_enrollment(&a.home, Profile::Ecert, &info, &enrollment, &key)
}

fn parse_attr(spec: &str) -> Result<Attribute> {
    let (name, rest) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("attribute {spec:?} is not name=value[:ecert]"))?;
    let (value, ecert) = match rest.strip_suffix(":ecert") {
        Some(v) => (v, true),
        None => (rest, false),
    };
    Ok(Attribute {
        name: name.trim().to_owned(),
        value: value.to_owned(),
        ecert,
    })
}

async fn register(a: RegisterArgs) -> Result<()> {
    let (mut client, msp_id) = connect(&a.conn).await?;
    let registrar = load_identity(&a.mspdir, &msp_id)?;
    let registration = Registration {
        enrollment_id: a.name.clone(),
        identity_type: a.identity_type,
        secret: a.secret.unwrap_or_default(),
        max_enrollments: a.max_enrollments,
        attributes: a
            .attrs
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| parse_attr(s))
            .collect::<Result<_>>()?,
        affiliation: a.affiliation,
    };
    let secret = client.register(&registrar, &registration).await?;
    println!("Password: {secret}");
    Ok(())
}

async fn revoke(a: RevokeArgs) -> Result<()> {
    let target = match (a.name, a.serial) {
        (Some(name), None) => RevokeTarget::Identity(name),
        (None, Some(serial)) => RevokeTarget::Serial(serial),
        _ => bail!("give --revoke-name or --revoke-serial"),
    };
    let (mut client, msp_id) = connect(&a.conn).await?;
    let revoker = load_identity(&a.mspdir, &msp_id)?;
    let resp = client
        .revoke(&revoker, &target, &a.reason, a.gencrl.is_some())
        .await?;
    for serial in &resp.revoked_serials {
        println!("revoked certificate {serial}");
    }
    if let Some(out) = a.gencrl {
        medledger_msp::fsutil::write_atomic(&out, &resp.crl_pem, false)?;
        println!("CRL written to {}", out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials() {
        assert_eq!(
            split_credentials("https://admin:adminpw@localhost:7054"),
            (
                "https://localhost:7054".to_owned(),
                Some(("admin".to_owned(), "adminpw".to_owned()))
            )
        );
        assert_eq!(split_credentials("https://localhost:7054").1, None);
    }

    #[test]
    fn attrs() {
        let a = parse_attr("ehr.role=doctor:ecert").unwrap();
        assert_eq!(
            (a.name.as_str(), a.value.as_str(), a.ecert),
            ("ehr.role", "doctor", true)
        );
        let b = parse_attr("dept=icu").unwrap();
        assert!(!b.ecert);
        assert!(parse_attr("noequals").is_err());
    }
}
