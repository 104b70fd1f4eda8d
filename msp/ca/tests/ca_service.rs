//! The certificate authority end to end over its gRPC service (TLS on 127.0.0.1:0):
//! init → register → enroll by CSR → validate under the org MSP; revoke → CRL → rejected;
//! restart keeps identities, serials and revocations; max enrollments enforced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use medledger_ca::client::{CaClient, CaClientError};
use medledger_ca::{CaConfig, CertificateAuthority, Profile, Registration, RevokeTarget, server};
use medledger_msp::Error;
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::SigningKey;
use medledger_msp::folder;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::msp::{Msp, MspManager};
use medledger_msp::ou::NodeOu;
use tokio::sync::oneshot;

/// A CA service running in this process; stopped when dropped or by `stop()`.
struct RunningCa {
    url: String,
    tls_ca: Vec<u8>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningCa {
    async fn start(dir: &Path) -> Self {
        let ca = CertificateAuthority::open(dir).unwrap();
        let tls_ca = std::fs::read(ca.server_tls_dir().join("ca.crt")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server::serve(ca, listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        RunningCa {
            url,
            tls_ca,
            stop: Some(tx),
            task,
        }
    }

    async fn client(&self) -> CaClient {
        CaClient::connect(&self.url, &self.tls_ca, "ca-org1")
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("CA service did not stop")
            .unwrap();
    }
}

impl Drop for RunningCa {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn init_ca(dir: &Path) {
    CertificateAuthority::init(
        dir,
        CaConfig::new("ca-org1", "Org1MSP", "org1.example.com"),
        "admin",
        "adminpw",
    )
    .unwrap();
}

async fn enroll_identity(client: &mut CaClient, id: &str, secret: &str) -> SigningIdentity {
    let key = SigningKey::generate().unwrap();
    let e = client
        .enroll(id, secret, &key, Profile::Ecert, &[])
        .await
        .unwrap();
    SigningIdentity::new(
        "Org1MSP",
        Certificate::from_pem(e.cert_pem.as_bytes()).unwrap(),
        key,
    )
    .unwrap()
}

fn org1_msp(dir: &Path) -> Msp {
    CertificateAuthority::open(dir).unwrap().msp().unwrap()
}

fn refused(r: Result<impl std::fmt::Debug, CaClientError>) -> (tonic::Code, String) {
    match r {
        Err(CaClientError::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn register_enroll_validate_revoke_over_grpc() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    init_ca(&ca_dir);
    let ca = RunningCa::start(&ca_dir).await;
    let mut client = ca.client().await;

    let info = client.info().await.unwrap();
    assert_eq!(info.msp_id, "Org1MSP");
    assert_eq!(info.ca_name, "ca-org1");

    let admin = enroll_identity(&mut client, "admin", "adminpw").await;
    let doctor = Registration::new("doctor1", NodeOu::Client)
        .with_secret("doctorpw")
        .with_attribute("ehr.role", "doctor")
        .with_max_enrollments(2);
    assert_eq!(client.register(&admin, &doctor).await.unwrap(), "doctorpw");

    // Enroll by CSR: the private key is generated here and never sent.
    let key = SigningKey::generate().unwrap();
    let enrollment = client
        .enroll("doctor1", "doctorpw", &key, Profile::Ecert, &[])
        .await
        .unwrap();
    let cert = Certificate::from_pem(enrollment.cert_pem.as_bytes()).unwrap();
    assert_eq!(cert.public_key(), key.public_key());

    // Written as Fabric's MSP folder, read back, validated under the org MSP.
    let home = tmp.path().join("doctor1");
    folder::write_msp(
        &home,
        &folder::MspMaterial {
            ca_cert_pem: &enrollment.ca_cert_pem,
            tls_ca_cert_pem: &String::from_utf8_lossy(&info.tls_root_cert_pem),
            cert_pem: &enrollment.cert_pem,
            key: &key,
        },
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("msp/keystore/priv_sk"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "private key file must be 0600");
    }
    let signer = folder::load_signing_identity(&home.join("msp"), "Org1MSP").unwrap();
    let msp = Msp::new(folder::load_msp_config(&home.join("msp"), "Org1MSP").unwrap()).unwrap();
    let manager = MspManager::new([msp], 16);
    let now = SystemTime::now();
    let verified = manager.validate(signer.serialized(), now).unwrap();
    assert_eq!(verified.node_ou(), Some(NodeOu::Client));
    assert_eq!(verified.attribute("ehr.role"), Some("doctor"));
    assert_eq!(verified.attribute("hf.EnrollmentID"), Some("doctor1"));
    let sig = signer.sign(b"proposal").unwrap();
    manager
        .verify(signer.serialized(), b"proposal", &sig, now)
        .unwrap();

    // Revoke the doctor, fetch the CRL, and validation says "revoked".
    let resp = client
        .revoke(
            &admin,
            &RevokeTarget::Identity("doctor1".into()),
            "keyCompromise",
            true,
        )
        .await
        .unwrap();
    assert_eq!(resp.revoked_serials, vec![cert.serial_hex()]);
    let crl_dir = home.join("msp/crls");
    std::fs::create_dir_all(&crl_dir).unwrap();
    std::fs::write(crl_dir.join("crl.pem"), &resp.crl_pem).unwrap();
    let msp = Msp::new(folder::load_msp_config(&home.join("msp"), "Org1MSP").unwrap()).unwrap();
    let manager = MspManager::new([msp], 16);
    let err = manager.validate(signer.serialized(), now).unwrap_err();
    assert!(matches!(err, Error::Revoked { .. }), "{err}");
    assert!(err.to_string().contains("revoked"));

    // A revoked identity can neither enroll nor act as a caller.
    let (code, _) = refused(
        client
            .enroll(
                "doctor1",
                "doctorpw",
                &SigningKey::generate().unwrap(),
                Profile::Ecert,
                &[],
            )
            .await,
    );
    assert_eq!(code, tonic::Code::PermissionDenied);
    let (code, _) = refused(client.gen_crl(&signer).await);
    assert_eq!(code, tonic::Code::PermissionDenied);

    ca.stop().await;
}

#[tokio::test]
async fn registrar_permissions_and_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path());
    let ca = RunningCa::start(tmp.path()).await;
    let mut client = ca.client().await;
    let admin = enroll_identity(&mut client, "admin", "adminpw").await;

    // Wrong secret and unknown id look the same.
    for (id, secret) in [("admin", "wrong"), ("nobody", "x")] {
        let (code, msg) = refused(
            client
                .enroll(
                    id,
                    secret,
                    &SigningKey::generate().unwrap(),
                    Profile::Ecert,
                    &[],
                )
                .await,
        );
        assert_eq!(code, tonic::Code::Unauthenticated);
        assert!(msg.contains("authentication failure"), "{msg}");
    }

    // A plain client is no registrar.
    client
        .register(
            &admin,
            &Registration::new("nurse1", NodeOu::Client).with_secret("pw"),
        )
        .await
        .unwrap();
    let nurse = enroll_identity(&mut client, "nurse1", "pw").await;
    let (code, msg) = refused(
        client
            .register(&nurse, &Registration::new("x", NodeOu::Client))
            .await,
    );
    assert_eq!(code, tonic::Code::PermissionDenied);
    assert!(msg.contains("may not register"), "{msg}");
    let (code, _) = refused(
        client
            .revoke(&nurse, &RevokeTarget::Identity("admin".into()), "", false)
            .await,
    );
    assert_eq!(code, tonic::Code::PermissionDenied);

    // Duplicate registration.
    let (code, _) = refused(
        client
            .register(&admin, &Registration::new("nurse1", NodeOu::Client))
            .await,
    );
    assert_eq!(code, tonic::Code::AlreadyExists);

    // A registrar limited to clients and ehr.* attributes.
    let registrar = Registration {
        attributes: vec![
            medledger_ca::Attribute {
                name: "hf.Registrar.Roles".into(),
                value: "client".into(),
                ecert: false,
            },
            medledger_ca::Attribute {
                name: "hf.Registrar.Attributes".into(),
                value: "ehr.*".into(),
                ecert: false,
            },
        ],
        ..Registration::new("registrar1", NodeOu::Client).with_secret("rpw")
    };
    client.register(&admin, &registrar).await.unwrap();
    let registrar = enroll_identity(&mut client, "registrar1", "rpw").await;
    client
        .register(
            &registrar,
            &Registration::new("patient1", NodeOu::Client).with_attribute("ehr.role", "patient"),
        )
        .await
        .unwrap();
    let (code, _) = refused(
        client
            .register(&registrar, &Registration::new("peer9", NodeOu::Peer))
            .await,
    );
    assert_eq!(code, tonic::Code::PermissionDenied);
    let (code, _) = refused(
        client
            .register(
                &registrar,
                &Registration::new("sneaky", NodeOu::Client).with_attribute("hf.Revoker", "true"),
            )
            .await,
    );
    assert_eq!(code, tonic::Code::PermissionDenied);

    // A garbage CSR is refused before anything is recorded.
    client
        .register(
            &admin,
            &Registration::new("lab1", NodeOu::Client)
                .with_secret("labpw")
                .with_max_enrollments(1),
        )
        .await
        .unwrap();
    let mut raw = medledger_proto::medledger::ca::certificate_authority_client::CertificateAuthorityClient::new(
        tonic::transport::Channel::builder(ca.url.parse().unwrap())
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&ca.tls_ca))
                    .domain_name("127.0.0.1"),
            )
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let status = raw
        .enroll(medledger_proto::medledger::ca::EnrollRequest {
            enrollment_id: "lab1".into(),
            secret: "labpw".into(),
            csr_pem:
                b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
                    .to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // The failed attempt did not use up lab1's single enrollment.
    enroll_identity(&mut client, "lab1", "labpw").await;

    // A request signed for one operation cannot be replayed as another: forge a revoke whose
    // header says "register".
    use prost::Message;
    let inner = medledger_proto::medledger::ca::RevokeRequest {
        header: Some(medledger_proto::medledger::ca::RequestHeader {
            ca_name: "ca-org1".into(),
            operation: "register".into(),
            timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
            nonce: vec![1, 2, 3],
        }),
        enrollment_id: "nurse1".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let signed = medledger_proto::medledger::ca::SignedCaRequest {
        signature: admin.sign(&inner).unwrap(),
        request: inner.clone(),
        creator: admin.serialized().to_vec(),
    };
    let status = raw.revoke(signed.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // And a signature by someone else's key over the request is refused.
    let forged = medledger_proto::medledger::ca::SignedCaRequest {
        signature: nurse.sign(&inner).unwrap(),
        ..signed
    };
    let status = raw.revoke(forged).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    ca.stop().await;
}

#[tokio::test]
async fn restart_keeps_identities_serials_and_revocations() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path());
    let ca = RunningCa::start(tmp.path()).await;
    let mut client = ca.client().await;
    let admin = enroll_identity(&mut client, "admin", "adminpw").await;
    client
        .register(
            &admin,
            &Registration::new("tech1", NodeOu::Client)
                .with_secret("pw")
                .with_max_enrollments(1),
        )
        .await
        .unwrap();
    client
        .register(
            &admin,
            &Registration::new("tech2", NodeOu::Client).with_secret("pw"),
        )
        .await
        .unwrap();
    let tech1 = enroll_identity(&mut client, "tech1", "pw").await;
    let tech2 = enroll_identity(&mut client, "tech2", "pw").await;
    client
        .revoke(
            &admin,
            &RevokeTarget::Serial(tech2.certificate().serial_hex()),
            "superseded",
            false,
        )
        .await
        .unwrap();
    ca.stop().await;

    // A new service over the same directory.
    let ca = RunningCa::start(tmp.path()).await;
    let mut client = ca.client().await;
    let state = CertificateAuthority::open(tmp.path())
        .unwrap()
        .state()
        .clone();
    assert!(state.identities.contains_key("tech1"));
    let record = &state.certificates[&tech1.certificate().serial_hex()];
    assert_eq!(record.enrollment_id, "tech1");
    assert!(record.revoked.is_none());
    assert!(
        state.certificates[&tech2.certificate().serial_hex()]
            .revoked
            .is_some()
    );

    // tech1 had one enrollment: a second is refused, also after the restart.
    let (code, msg) = refused(
        client
            .enroll(
                "tech1",
                "pw",
                &SigningKey::generate().unwrap(),
                Profile::Ecert,
                &[],
            )
            .await,
    );
    assert_eq!(code, tonic::Code::FailedPrecondition);
    assert!(msg.contains("maximum"), "{msg}");

    // The revocation survived: the MSP with the current CRL rejects tech2, accepts tech1.
    let manager = MspManager::new([org1_msp(tmp.path())], 16);
    let now = SystemTime::now();
    manager.validate(tech1.serialized(), now).unwrap();
    assert!(matches!(
        manager.validate(tech2.serialized(), now),
        Err(Error::Revoked { .. })
    ));
    // Reenroll gives tech1 a new certificate without using an enrollment.
    let new_key = SigningKey::generate().unwrap();
    let renewed = client
        .reenroll(&tech1, &new_key, Profile::Ecert, &[])
        .await
        .unwrap();
    let renewed = Certificate::from_pem(renewed.cert_pem.as_bytes()).unwrap();
    assert_eq!(renewed.public_key(), new_key.public_key());
    assert_ne!(renewed.serial(), tech1.certificate().serial());
    ca.stop().await;
}

#[tokio::test]
async fn tls_profile_issues_from_tls_ca() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path());
    let ca = RunningCa::start(tmp.path()).await;
    let mut client = ca.client().await;
    let admin = enroll_identity(&mut client, "admin", "adminpw").await;
    client
        .register(
            &admin,
            &Registration::new("peer0", NodeOu::Peer).with_secret("pw"),
        )
        .await
        .unwrap();
    let key = SigningKey::generate().unwrap();
    let hosts = vec!["peer0.org1.example.com".to_owned(), "127.0.0.1".to_owned()];
    let e = client
        .enroll("peer0", "pw", &key, Profile::Tls, &hosts)
        .await
        .unwrap();
    let cert = Certificate::from_pem(e.cert_pem.as_bytes()).unwrap();
    let tls_root = Certificate::from_pem(e.ca_cert_pem.as_bytes()).unwrap();
    cert.verify_signed_by(&tls_root).unwrap();
    // A TLS certificate is not an identity of the signing MSP.
    let root = CertificateAuthority::open(tmp.path())
        .unwrap()
        .root_cert()
        .clone();
    assert!(cert.verify_signed_by(&root).is_err());
    ca.stop().await;
}

/// Issue 13 (private-data pull): peers trust TLS certificates of their organizations' TLS CAs
/// on node-to-node links, so the CA issues them to peer and orderer identities only, or to an
/// identity registered with `medledger.tls=true`. Failed on 4436d0b: a patient obtained one by
/// enrolling or reenrolling with `--profile tls` and any hosts.
#[tokio::test]
async fn tls_certificates_only_for_nodes_or_registered_attribute() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path());
    let ca = RunningCa::start(tmp.path()).await;
    let mut client = ca.client().await;
    let admin = enroll_identity(&mut client, "admin", "adminpw").await;
    let patient_reg = Registration::new("patient1", NodeOu::Client)
        .with_secret("pw")
        .with_attribute("ehr.role", "patient")
        .with_max_enrollments(-1);
    client.register(&admin, &patient_reg).await.unwrap();
    let hosts = vec!["peer0.org1.example.com".to_owned(), "127.0.0.1".to_owned()];

    // Enrolling with the TLS profile: refused, as is reenrolling with the ecert in hand.
    let key = SigningKey::generate().unwrap();
    let (code, message) = refused(
        client
            .enroll("patient1", "pw", &key, Profile::Tls, &hosts)
            .await,
    );
    assert_eq!(code, tonic::Code::PermissionDenied, "{message}");
    assert!(message.contains("TLS certificates"), "{message}");
    let patient = enroll_identity(&mut client, "patient1", "pw").await;
    let (code, _) = refused(
        client
            .reenroll(
                &patient,
                &SigningKey::generate().unwrap(),
                Profile::Tls,
                &hosts,
            )
            .await,
    );
    assert_eq!(code, tonic::Code::PermissionDenied);

    // A client application registered with the explicit attribute may have one.
    client
        .register(
            &admin,
            &Registration::new("app1", NodeOu::Client)
                .with_secret("pw")
                .with_attribute("medledger.tls", "true"),
        )
        .await
        .unwrap();
    client
        .enroll(
            "app1",
            "pw",
            &SigningKey::generate().unwrap(),
            Profile::Tls,
            &hosts,
        )
        .await
        .unwrap();
    ca.stop().await;
}

/// Issue 13 item 9: unauthenticated enrollments are checked (PBKDF2) outside the CA's lock and
/// at most a few at once; a flood of wrong secrets is refused (UNAUTHENTICATED, or
/// RESOURCE_EXHAUSTED beyond the limit) and the CA still serves a real enrollment after it.
/// On 4436d0b every attempt hashed under the one lock every CA operation takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_floods_are_bounded_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path());
    let ca = RunningCa::start(tmp.path()).await;
    let mut client = ca.client().await;
    let admin = enroll_identity(&mut client, "admin", "adminpw").await;
    client
        .register(
            &admin,
            &Registration::new("nurse1", NodeOu::Client).with_secret("right"),
        )
        .await
        .unwrap();
    let attempts: Vec<_> = (0..24)
        .map(|i| {
            let url = ca.url.clone();
            let tls = ca.tls_ca.clone();
            tokio::spawn(async move {
                let mut c = CaClient::connect(&url, &tls, "ca-org1").await.unwrap();
                let key = SigningKey::generate().unwrap();
                c.enroll("nurse1", &format!("wrong{i}"), &key, Profile::Ecert, &[])
                    .await
            })
        })
        .collect();
    let mut codes = Vec::new();
    for a in attempts {
        codes.push(refused(a.await.unwrap()).0);
    }
    assert!(
        codes.iter().all(|c| matches!(
            c,
            tonic::Code::Unauthenticated | tonic::Code::ResourceExhausted
        )),
        "{codes:?}"
    );
    enroll_identity(&mut client, "nurse1", "right").await;
    ca.stop().await;
}
