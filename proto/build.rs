//! Compiles the .proto files under `protos/` with protox (no protoc needed)
//! and generates prost messages plus tonic clients and servers.
//!
//! Also writes the encoded `FileDescriptorSet` (our files plus the
//! well-known types they import, without source info) to
//! `$OUT_DIR/medledger_descriptor.bin`, exposed as `FILE_DESCRIPTOR_SET`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::{env, fs};

use prost::Message as _;

fn collect_protos(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, root, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(
                path.strip_prefix(root)
                    .map_err(std::io::Error::other)?
                    .to_path_buf(),
            );
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let protos_dir = manifest_dir.join("protos");
    println!("cargo:rerun-if-changed={}", protos_dir.display());

    let mut files = Vec::new();
    collect_protos(&protos_dir, &protos_dir, &mut files)?;
    files.sort();

    let mut compiler = protox::Compiler::new([&protos_dir])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;
    let fds = compiler.file_descriptor_set();

    // Descriptor set for runtime use: self-contained, comments stripped.
    let mut runtime_fds = fds.clone();
    for file in &mut runtime_fds.file {
        file.source_code_info = None;
    }
    fs::write(
        out_dir.join("medledger_descriptor.bin"),
        runtime_fds.encode_to_vec(),
    )?;

    // Well-known types stay in the set (prost-build needs their descriptors)
    // but map to prost-types instead of being generated.
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;

    rename_chaincode_connect(&out_dir.join("protos.rs"))?;
    Ok(())
}

/// `protos.Chaincode` has an rpc named `Connect`, whose generated client
/// method `connect(&mut self, ..)` collides with tonic's transport
/// constructor `connect(dst)`. Rename the constructor of that one client to
/// `connect_endpoint`; every other client keeps `connect(dst)`.
fn rename_chaincode_connect(path: &Path) -> Result<(), Box<dyn Error>> {
    const IMPL: &str = "impl ChaincodeClient<tonic::transport::Channel> {";
    const CTOR: &str = "pub async fn connect<D>(dst: D)";
    let code = fs::read_to_string(path)?;
    let start = code
        .find(IMPL)
        .ok_or("generated ChaincodeClient transport impl not found")?;
    let offset = code[start..]
        .find(CTOR)
        .filter(|&o| !code[start..start + o].contains("\n    }\n"))
        .ok_or("generated ChaincodeClient::connect constructor not found")?;
    let at = start + offset;
    let patched = format!(
        "{}/// (Renamed from `connect`, which is the `Connect` rpc here.)\n        \
         pub async fn connect_endpoint<D>(dst: D){}",
        &code[..at],
        &code[at + CTOR.len()..]
    );
    fs::write(path, patched)?;
    Ok(())
}
