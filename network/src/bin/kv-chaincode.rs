//! `kv-chaincode`: a small key-value contract written with Medledger's shim, used by the
//! runtime's tests and as an example. Besides `put`, `get`, `del` and `range`, it has
//! functions that misbehave on purpose (`connect`, `spawn`, `alloc`, `spin`, `write`,
//! `abort`) so tests can show the sandbox stopping them.

use std::sync::Arc;

use medledger_chaincode::{ContractError, Router, shim};

fn param<'a>(args: &'a [String], i: usize, usage: &str) -> Result<&'a str, ContractError> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| ContractError::bad_request(usage.to_owned()))
}

fn contract() -> Router {
    Router::new()
        .add("put", |stub, args| {
            let key = param(args, 0, "put KEY VALUE")?;
            let value = param(args, 1, "put KEY VALUE")?;
            stub.put_state(key, value.as_bytes())?;
            stub.set_event("put", key.as_bytes())?;
            Ok(Vec::new())
        })
        .add("get", |stub, args| {
            let key = param(args, 0, "get KEY")?;
            stub.get_state(key)?
                .ok_or_else(|| ContractError::not_found(format!("no key {key}")))
        })
        .add("del", |stub, args| {
            stub.del_state(param(args, 0, "del KEY")?)?;
            Ok(Vec::new())
        })
        .add("range", |stub, args| {
            let kvs = stub.get_state_by_range(
                param(args, 0, "range START END")?,
                param(args, 1, "range START END")?,
            )?;
            Ok(kvs
                .iter()
                .map(|kv| kv.key.as_str())
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes())
        })
        .add("connect", |_stub, args| {
            let addr = param(args, 0, "connect HOST:PORT")?;
            match std::net::TcpStream::connect(addr) {
                Ok(_) => Ok(b"connected".to_vec()),
                Err(e) => Err(ContractError::internal(format!(
                    "connect refused by sandbox: {e}"
                ))),
            }
        })
        .add("spawn", |_stub, _args| {
            // A fork bomb's first step: every attempt must fail.
            let mut failures = 0;
            for _ in 0..100 {
                if std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg("true")
                    .spawn()
                    .is_err()
                {
                    failures += 1;
                }
            }
            Err(ContractError::internal(format!(
                "spawn failed {failures} of 100 times"
            )))
        })
        .add("alloc", |_stub, _args| {
            let size = std::hint::black_box(10usize << 30);
            let big: Vec<u8> = std::hint::black_box(vec![1u8; size]);
            Ok(vec![big[std::hint::black_box(size / 2)]])
        })
        .add("spin", |_stub, _args| {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        })
        .add("write", |_stub, args| {
            let path = param(args, 0, "write PATH")?;
            match std::fs::write(path, b"escaped") {
                Ok(()) => Ok(b"written".to_vec()),
                Err(e) => Err(ContractError::internal(format!(
                    "write refused by sandbox: {e}"
                ))),
            }
        })
        .add("abort", |_stub, _args| std::process::abort())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match shim::start(Arc::new(contract())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv-chaincode: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
