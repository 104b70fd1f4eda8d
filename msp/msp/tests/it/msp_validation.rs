//! MSP validation: each way an identity can be invalid gets its own error; the identity cache
//! serves repeats; intermediates chain; SerializedIdentity round-trips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use medledger_ca::{CaConfig, CertificateAuthority, Profile, Registration, build_csr};
use medledger_msp::Error;
use medledger_msp::cert::Certificate;
use medledger_msp::crypto::{self, SigningKey};
use medledger_msp::identity::{SigningIdentity, deserialize_identity, serialize_identity};
use medledger_msp::msp::{Msp, MspConfig, MspManager, NodeOuConfig};
use medledger_msp::ou::NodeOu;

fn new_ca(dir: &Path, msp_id: &str, org: &str) -> CertificateAuthority {
    CertificateAuthority::init(
        dir,
        CaConfig::new(format!("ca-{org}"), msp_id, org),
        "admin",
        "adminpw",
    )
    .unwrap()
}

/// Registers and enrolls `id` offline (same code path as the service, minus gRPC).
fn enroll(ca: &mut CertificateAuthority, id: &str, ou: NodeOu) -> SigningIdentity {
    ca.register(
        "admin",
        Registration::new(id, ou)
            .with_secret("pw")
            .with_attribute("ehr.role", "doctor"),
    )
    .unwrap();
    let key = SigningKey::generate().unwrap();
    let csr = build_csr(&key, id, &[]).unwrap();
    let e = ca.enroll(id, "pw", &csr, Profile::Ecert, &[]).unwrap();
    let msp_id = ca.config().msp_id.clone();
    SigningIdentity::new(
        msp_id,
        Certificate::from_pem(e.cert_pem.as_bytes()).unwrap(),
        key,
    )
    .unwrap()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    org1: CertificateAuthority,
    org2: CertificateAuthority,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let org1 = new_ca(&tmp.path().join("org1"), "Org1MSP", "org1.example.com");
    let org2 = new_ca(&tmp.path().join("org2"), "Org2MSP", "org2.example.com");
    Fixture {
        _tmp: tmp,
        org1,
        org2,
    }
}

fn manager(f: &Fixture) -> MspManager {
    MspManager::new([f.org1.msp().unwrap(), f.org2.msp().unwrap()], 64)
}

#[test]
fn valid_identity_is_classified_and_cached() {
    let mut f = fixture();
    let doctor = enroll(&mut f.org1, "doctor1", NodeOu::Client);
    let peer = enroll(&mut f.org2, "peer0", NodeOu::Peer);
    let m = manager(&f);
    let now = SystemTime::now();
    let v = m.validate(doctor.serialized(), now).unwrap();
    assert_eq!((v.msp_id(), v.node_ou()), ("Org1MSP", Some(NodeOu::Client)));
    assert_eq!(v.attribute("ehr.role"), Some("doctor"));
    let p = m.validate(peer.serialized(), now).unwrap();
    assert_eq!((p.msp_id(), p.node_ou()), ("Org2MSP", Some(NodeOu::Peer)));
    assert!(p.require_ou(NodeOu::Peer).is_ok());
    assert!(matches!(
        p.require_ou(NodeOu::Admin),
        Err(Error::WrongNodeOu { .. })
    ));
    assert_eq!(m.cached(), 2);
    // A hit returns the same verified identity.
    let again = m.validate(doctor.serialized(), now).unwrap();
    assert!(std::sync::Arc::ptr_eq(&v, &again));
    assert_eq!(m.cached(), 2);
    // Policy signer derived from it.
    let s = v.signer();
    assert_eq!((s.msp_id.as_str(), s.ou), ("Org1MSP", Some(NodeOu::Client)));
    assert_eq!(&s.id, v.id());
}

#[test]
fn expired_and_not_yet_valid_are_rejected_even_when_cached() {
    let mut f = fixture();
    let doctor = enroll(&mut f.org1, "doctor1", NodeOu::Client);
    let m = manager(&f);
    m.validate(doctor.serialized(), SystemTime::now()).unwrap(); // now cached
    let later = SystemTime::now() + Duration::from_secs(400 * 24 * 3600);
    let err = m.validate(doctor.serialized(), later).unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err}");
    let earlier = SystemTime::now() - Duration::from_secs(24 * 3600);
    let err = m.validate(doctor.serialized(), earlier).unwrap_err();
    assert!(matches!(err, Error::NotYetValid { .. }), "{err}");
}

#[test]
fn certificate_from_another_ca_is_rejected() {
    let mut f = fixture();
    // Org2's CA issues a certificate; it claims to be of Org1MSP.
    let impostor = enroll(&mut f.org2, "mallory", NodeOu::Client);
    let forged = serialize_identity("Org1MSP", impostor.certificate());
    let err = manager(&f)
        .validate(&forged, SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownAuthority { ref msp_id, .. } if msp_id == "Org1MSP"),
        "{err}"
    );
    // An MSP nobody configured.
    let unknown = serialize_identity("Org9MSP", impostor.certificate());
    assert!(matches!(
        manager(&f).validate(&unknown, SystemTime::now()),
        Err(Error::UnknownMsp { .. })
    ));
}

/// A client chooses the MSP id of its identity; an unknown one is echoed in the error (which
/// reaches logs and replies) cut to 64 characters, as the orderer cuts a channel id.
#[test]
fn unknown_msp_echoes_at_most_64_characters_of_the_id() {
    let mut f = fixture();
    let someone = enroll(&mut f.org2, "mallory", NodeOu::Client);
    let long_id = "é".repeat(1 << 20);
    let unknown = serialize_identity(&long_id, someone.certificate());
    let err = manager(&f)
        .validate(&unknown, SystemTime::now())
        .unwrap_err();
    let Error::UnknownMsp { ref msp_id } = err else {
        panic!("expected UnknownMsp, got {err}");
    };
    assert!(
        *msp_id == format!("{}…", "é".repeat(64)),
        "{} characters echoed",
        msp_id.chars().count()
    );
    assert!(
        err.to_string().len() < 200,
        "{} bytes",
        err.to_string().len()
    );
    // A short id is echoed whole.
    let unknown = serialize_identity("Org9MSP", someone.certificate());
    let err = manager(&f)
        .validate(&unknown, SystemTime::now())
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown MSP \"Org9MSP\"");
}

#[test]
fn tampered_certificate_is_rejected() {
    let mut f = fixture();
    let doctor = enroll(&mut f.org1, "doctor1", NodeOu::Client);
    let mut der = doctor.certificate().der().to_vec();
    // Change the role inside the signed attributes: "doctor" -> "dostor" (same length, so the
    // DER still parses, but the CA's signature no longer matches).
    let pos = der
        .windows(b"\"ehr.role\":\"doctor\"".len())
        .position(|w| w == b"\"ehr.role\":\"doctor\"")
        .expect("attribute bytes in the certificate");
    der[pos + 14] = b's';
    let tampered = Certificate::from_der(&der).unwrap();
    assert_eq!(tampered.attribute("ehr.role"), Some("dostor"));
    let bytes = serialize_identity("Org1MSP", &tampered);
    let err = manager(&f).validate(&bytes, SystemTime::now()).unwrap_err();
    assert!(
        matches!(err, Error::BadCertificateSignature { .. }),
        "{err}"
    );
}

#[test]
fn signatures_high_s_malformed_and_wrong_key_are_rejected() {
    let mut f = fixture();
    let doctor = enroll(&mut f.org1, "doctor1", NodeOu::Client);
    let nurse = enroll(&mut f.org1, "nurse1", NodeOu::Client);
    let m = manager(&f);
    let now = SystemTime::now();
    let msg = b"signed proposal bytes";
    let sig = doctor.sign(msg).unwrap();
    m.verify(doctor.serialized(), msg, &sig, now).unwrap();

    // Same (r, s) with s -> n - s: mathematically valid, but high-S.
    let parsed = p256::ecdsa::Signature::from_der(&sig).unwrap();
    let (r, s) = parsed.split_scalars();
    let high = p256::ecdsa::Signature::from_scalars(r, -*s)
        .unwrap()
        .to_der()
        .as_bytes()
        .to_vec();
    assert!(crypto::is_high_s(&high).unwrap());
    assert!(matches!(
        m.verify(doctor.serialized(), msg, &high, now),
        Err(Error::HighS)
    ));

    assert!(matches!(
        m.verify(doctor.serialized(), msg, b"\x30\x02\x01", now),
        Err(Error::MalformedSignature)
    ));
    assert!(matches!(
        m.verify(nurse.serialized(), msg, &sig, now),
        Err(Error::BadSignature)
    ));
    assert!(matches!(
        m.verify(doctor.serialized(), b"other bytes", &sig, now),
        Err(Error::BadSignature)
    ));
}

#[test]
fn serialized_identity_round_trips_and_garbage_is_rejected() {
    let mut f = fixture();
    let doctor = enroll(&mut f.org1, "doctor1", NodeOu::Client);
    let (msp_id, cert) = deserialize_identity(doctor.serialized()).unwrap();
    assert_eq!(msp_id, "Org1MSP");
    assert_eq!(&cert, doctor.certificate());
    assert_eq!(serialize_identity(&msp_id, &cert), doctor.serialized());
    // Hand-built protobuf: field 1 (mspid), field 2 (id_bytes = PEM).
    let pem = cert.to_pem();
    let mut manual = vec![0x0a, 7];
    manual.extend_from_slice(b"Org1MSP");
    manual.push(0x12);
    let mut len = pem.len();
    while len >= 0x80 {
        manual.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    manual.push(len as u8);
    manual.extend_from_slice(pem.as_bytes());
    assert_eq!(manual, doctor.serialized());

    let m = manager(&f);
    for garbage in [&b""[..], b"\xff\xff\xff", b"\x0a\x07Org1MSP\x12\x03abc"] {
        let err = m.validate(garbage, SystemTime::now()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::MalformedIdentity(_) | Error::MalformedCertificate(_)
            ),
            "{err}"
        );
    }
}

#[test]
fn node_ou_rules() {
    let mut f = fixture();
    let doctor = enroll(&mut f.org1, "doctor1", NodeOu::Client);
    // With NodeOUs off the identity is valid but unclassified.
    let mut cfg = f.org1.msp_config().unwrap();
    cfg.node_ous = NodeOuConfig {
        enable: false,
        ..NodeOuConfig::default()
    };
    let m = MspManager::new([Msp::new(cfg.clone()).unwrap()], 4);
    assert_eq!(
        m.validate(doctor.serialized(), SystemTime::now())
            .unwrap()
            .node_ou(),
        None
    );
    // With an OU scheme the certificate does not carry, it is invalid.
    cfg.node_ous = NodeOuConfig {
        enable: true,
        client_ou: "patients-app".into(),
        ..NodeOuConfig::default()
    };
    let m = MspManager::new([Msp::new(cfg).unwrap()], 4);
    let err = m
        .validate(doctor.serialized(), SystemTime::now())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidNodeOu { .. }), "{err}");
}

#[test]
fn intermediate_ca_chains_and_ca_certs_are_not_identities() {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mk_ca = |cn: &str| {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let root_params = mk_ca("root.org3");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, &root_key);
    let inter_key = KeyPair::generate().unwrap();
    let inter_params = mk_ca("intermediate.org3");
    let inter = inter_params.signed_by(&inter_key, &root_issuer).unwrap();
    let inter_issuer = Issuer::new(inter_params, &inter_key);
    let leaf_key = SigningKey::generate().unwrap();
    let mut leaf_params = CertificateParams::default();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "user1");
    leaf_params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "client");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    let leaf = leaf_params
        .signed_by(&medledger_ca::rcgen_key(&leaf_key).unwrap(), &inter_issuer)
        .unwrap();
    let leaf = Certificate::from_der(leaf.der()).unwrap();

    let cfg = |intermediates: Vec<Vec<u8>>| MspConfig {
        msp_id: "Org3MSP".into(),
        root_certs: vec![root.der().to_vec()],
        intermediate_certs: intermediates,
        node_ous: NodeOuConfig::default(),
        ..MspConfig::default()
    };
    let with = Msp::new(cfg(vec![inter.der().to_vec()])).unwrap();
    let now = medledger_msp::msp::unix_seconds(SystemTime::now());
    assert_eq!(with.validate(&leaf, now).unwrap(), Some(NodeOu::Client));
    let without = Msp::new(cfg(vec![])).unwrap();
    assert!(matches!(
        without.validate(&leaf, now),
        Err(Error::UnknownAuthority { .. })
    ));
    let inter_cert = Certificate::from_der(inter.der()).unwrap();
    assert!(matches!(
        with.validate(&inter_cert, now),
        Err(Error::MalformedCertificate(_))
    ));
    // An MSP whose "root" is not self-signed is refused.
    assert!(
        Msp::new(MspConfig {
            root_certs: vec![inter.der().to_vec()],
            ..cfg(vec![])
        })
        .is_err()
    );
}

#[test]
fn crl_from_a_foreign_ca_is_refused() {
    let mut f = fixture();
    let mut cfg = f.org1.msp_config().unwrap();
    let org2_crl = f.org2.gen_crl("admin", None, None).unwrap();
    cfg.crls = vec![pem::parse(org2_crl).unwrap().into_contents()];
    assert!(matches!(Msp::new(cfg), Err(Error::InvalidCrl(_))));
}

/// Issue 13, item 5: one certificate is one identity however its PEM is wrapped, and encodings
/// that smuggle a second form (unknown protobuf fields, extra PEM blocks, text around the
/// block) are refused. On 4436d0b identities were told apart by their serialized bytes, so one
/// key signing under two encodings counted as two signers of an OutOf/AND policy.
#[test]
fn one_certificate_is_one_identity_and_non_canonical_encodings_are_refused() {
    use medledger_proto::msp::SerializedIdentity;
    use prost::Message;

    let mut f = fixture();
    let peer = enroll(&mut f.org1, "peer0", NodeOu::Peer);
    let other = enroll(&mut f.org1, "peer1", NodeOu::Peer);
    let m = manager(&f);
    let now = SystemTime::now();
    let encode = |id_bytes: Vec<u8>| {
        SerializedIdentity {
            mspid: "Org1MSP".into(),
            id_bytes,
        }
        .encode_to_vec()
    };
    // The same certificate with 76-column lines and CRLF line ends (another encoder's PEM).
    let der = peer.certificate().der();
    let rewrapped = pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new()
            .set_line_ending(pem::LineEnding::CRLF)
            .set_line_wrap(76),
    );
    let second = encode(rewrapped.into_bytes());
    assert_ne!(second, peer.serialized());
    let a = m.validate(peer.serialized(), now).unwrap();
    let b = m.validate(&second, now).unwrap();
    assert_eq!(
        a.id(),
        b.id(),
        "two encodings of one certificate are two identities"
    );
    assert_eq!(a.signer(), b.signer());
    let c = m.validate(other.serialized(), now).unwrap();
    assert_ne!(a.id(), c.id());

    // Non-canonical forms: refused.
    let pem = peer.certificate().to_pem();
    let mut unknown_field = peer.serialized().to_vec();
    unknown_field.extend_from_slice(&[0x18, 0x01]);
    let two_blocks = encode(format!("{pem}{}", other.certificate().to_pem()).into_bytes());
    let prefixed = encode(format!("junk\n{pem}").into_bytes());
    for (bytes, what) in [
        (unknown_field, "an unknown protobuf field"),
        (two_blocks, "two PEM blocks"),
        (prefixed, "text before the PEM block"),
    ] {
        assert!(
            matches!(m.validate(&bytes, now), Err(Error::MalformedIdentity(_))),
            "{what} accepted"
        );
    }
}
