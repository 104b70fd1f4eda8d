//! Cross-checks `TxId::compute` and the protobuf encoding of
//! `msp.SerializedIdentity` against independent implementations: Python's
//! hashlib (required) and Node's crypto module (when `node` is installed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use medledger_proto::TxId;
use medledger_proto::msp::SerializedIdentity;
use prost::Message as _;

const NONCE: [u8; 24] = [
    0x5b, 0x1f, 0x00, 0x9a, 0xc3, 0x42, 0x7e, 0xd8, 0x11, 0xff, 0x60, 0x2b, 0x94, 0x3c, 0x07, 0xe5,
    0x80, 0x19, 0xaa, 0x55, 0x0d, 0x6f, 0xb2, 0x38,
];

const PEM: &str = "-----BEGIN CERTIFICATE-----\n\
MIICKzCCAdGgAwIBAgIRAL6ZnM2z4Yq1ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef\n\
ghijklmnopqrstuvwxyz0123456789+/MEDLEDGERTESTVECTORONLYNOTAREALCE\n\
RTIFICATE0123456789abcdefABCDEF==\n\
-----END CERTIFICATE-----\n";

fn creator() -> Vec<u8> {
    SerializedIdentity::new("Org1MSP", PEM.as_bytes()).encode_to_vec()
}

/// Protobuf varint encoding, written out by hand.
fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn serialized_identity_encoding_matches_hand_built_bytes() {
    let mut expected = vec![0x0a]; // field 1 (mspid), wire type 2
    expected.extend(varint("Org1MSP".len()));
    expected.extend(b"Org1MSP");
    expected.push(0x12); // field 2 (id_bytes), wire type 2
    expected.extend(varint(PEM.len()));
    expected.extend(PEM.as_bytes());
    assert!(
        PEM.len() > 127,
        "test vector should exercise a multi-byte length"
    );
    assert_eq!(creator(), expected);
}

fn run(program: &str, args: &[&str]) -> std::io::Result<String> {
    let out = Command::new(program).args(args).output()?;
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

#[test]
fn tx_id_matches_python_hashlib() {
    let ours = TxId::compute(&NONCE, &creator());
    let nonce_hex = hex::encode(NONCE);
    let creator_hex = hex::encode(creator());
    let python = run(
        "python3",
        &[
            "-c",
            "import hashlib, sys\n\
             data = bytes.fromhex(sys.argv[1]) + bytes.fromhex(sys.argv[2])\n\
             print(hashlib.sha256(data).hexdigest())",
            &nonce_hex,
            &creator_hex,
        ],
    )
    .expect("python3 is required for this test but could not be run");
    assert_eq!(ours.as_str(), python);
}

#[test]
fn tx_id_matches_node_crypto_if_available() {
    let ours = TxId::compute(&NONCE, &creator());
    let nonce_hex = hex::encode(NONCE);
    let creator_hex = hex::encode(creator());
    let script = "const [n, c] = process.argv.slice(-2);\n\
                  const h = require('crypto').createHash('sha256');\n\
                  h.update(Buffer.from(n, 'hex'));\n\
                  h.update(Buffer.from(c, 'hex'));\n\
                  console.log(h.digest('hex'));";
    match run("node", &["-e", script, &nonce_hex, &creator_hex]) {
        Ok(node) => assert_eq!(ours.as_str(), node),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED node cross-check: node not found on PATH");
        }
        Err(e) => panic!("running node failed: {e}"),
    }
}
