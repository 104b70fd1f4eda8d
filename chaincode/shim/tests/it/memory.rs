//! Contracts against the in-memory stub: reads see committed state only, failed transactions
//! change nothing, history and events are kept.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use medledger_chaincode::memory::{MemoryLedger, test_context};
use medledger_chaincode::{ContractError, Router, json_arg};

#[derive(serde::Deserialize)]
struct Asset {
    id: String,
    owner: String,
}

fn contract() -> Router {
    Router::new()
        .add("create", |stub, args| {
            let asset: Asset = json_arg(args, 0)?;
            if stub.get_state(&asset.id)?.is_some() {
                return Err(ContractError::conflict("asset exists"));
            }
            stub.put_state(&asset.id, asset.owner.as_bytes())?;
            // Not visible to this transaction's own reads (Fabric semantics).
            assert_eq!(stub.get_state(&asset.id)?, None);
            stub.set_event("Created", asset.id.as_bytes())?;
            Ok(vec![])
        })
        .add("transfer", |stub, args| {
            let [id, to] = args else {
                return Err(ContractError::bad_request("transfer ID TO"));
            };
            if stub.get_state(id)?.is_none() {
                return Err(ContractError::not_found("no such asset"));
            }
            stub.put_state(id, to.as_bytes())?;
            if to == "nobody" {
                return Err(ContractError::forbidden("cannot transfer to nobody"));
            }
            Ok(vec![])
        })
        .add("history", |stub, args| {
            let h = stub.get_history_for_key(&args[0])?;
            Ok(h.iter()
                .map(|m| m.tx_id.clone())
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes())
        })
}

#[test]
fn memory_ledger_applies_only_successful_transactions() {
    let ledger = MemoryLedger::new();
    let cc = contract();
    let r = ledger.invoke(
        &cc,
        test_context("t1", &["create", r#"{"id":"a1","owner":"alice"}"#]),
    );
    assert_eq!(r.status, 200, "{}", r.message);
    assert_eq!(ledger.state("a1").unwrap(), b"alice");
    let r = ledger.invoke(
        &cc,
        test_context("t2", &["create", r#"{"id":"a1","owner":"bob"}"#]),
    );
    assert_eq!(r.status, 409);
    let r = ledger.invoke(&cc, test_context("t3", &["create", "not json"]));
    assert_eq!(r.status, 400);
    assert!(
        !r.message.contains("not json"),
        "messages never echo parameters"
    );
    let r = ledger.invoke(&cc, test_context("t4", &["transfer", "a1", "nobody"]));
    assert_eq!(r.status, 403);
    assert_eq!(
        ledger.state("a1").unwrap(),
        b"alice",
        "a failed transaction writes nothing"
    );
    assert_eq!(
        ledger
            .invoke(&cc, test_context("t5", &["transfer", "a1", "carol"]))
            .status,
        200
    );
    assert_eq!(ledger.state("a1").unwrap(), b"carol");
    assert_eq!(
        ledger
            .invoke(&cc, test_context("t6", &["history", "a1"]))
            .payload,
        b"t5,t1"
    );
    let events = ledger.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].tx_id.as_str(), events[0].name.as_str()),
        ("t1", "Created")
    );
    assert_eq!(
        ledger
            .invoke(&cc, test_context("t7", &["Contract:transfer", "zz", "x"]))
            .status,
        404
    );
}
