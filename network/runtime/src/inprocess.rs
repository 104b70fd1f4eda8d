//! Running a chaincode linked into the peer, without a process or the wire protocol: the
//! stub calls go straight to the [`TxSimulator`]. For system chaincode (like Fabric's
//! `_lifecycle`) and for tests; user chaincode runs sandboxed ([`crate::process`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use medledger_chaincode::{
    Chaincode, ChaincodeError, ChaincodeStub, EventSlot, KeyModification, Kv, Page, TxContext,
};
use medledger_ledger_api::{LedgerError, TxSimulator};
use medledger_proto::protos::ChaincodeEvent;

use crate::support::{ExecOutcome, ExecRequest};

struct SimStub<'a> {
    ctx: TxContext,
    sim: Mutex<&'a mut dyn TxSimulator>,
    event: EventSlot,
}

impl SimStub<'_> {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut dyn TxSimulator) -> Result<T, LedgerError>,
    ) -> Result<T, ChaincodeError> {
        let mut guard = self
            .sim
            .lock()
            .map_err(|_| ChaincodeError::Stream("simulator lock poisoned".into()))?;
        f(&mut **guard).map_err(|e| ChaincodeError::Peer {
            request: "simulate",
            message: e.to_string(),
        })
    }
}

impl ChaincodeStub for SimStub<'_> {
    fn context(&self) -> &TxContext {
        &self.ctx
    }
    fn get_state(&self, key: &str) -> Result<Option<Vec<u8>>, ChaincodeError> {
        self.with(|s| s.get_state(key))
    }
    fn put_state(&self, key: &str, value: &[u8]) -> Result<(), ChaincodeError> {
        self.with(|s| s.put_state(key, value.to_vec()))
    }
    fn del_state(&self, key: &str) -> Result<(), ChaincodeError> {
        self.with(|s| s.del_state(key))
    }
    fn get_state_by_range(&self, start: &str, end: &str) -> Result<Vec<Kv>, ChaincodeError> {
        let (rows, _) = self.with(|s| s.range(start, end, "", None))?;
        Ok(rows
            .into_iter()
            .map(|(key, value)| Kv { key, value })
            .collect())
    }
    fn get_state_by_range_with_pagination(
        &self,
        start: &str,
        end: &str,
        page_size: i32,
        bookmark: &str,
    ) -> Result<Page, ChaincodeError> {
        let size = usize::try_from(page_size)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| ChaincodeError::InvalidArgument("page size must be > 0".into()))?;
        let (rows, next) = self.with(|s| s.range(start, end, bookmark, Some(size)))?;
        Ok(Page {
            fetched: i32::try_from(rows.len()).unwrap_or(i32::MAX),
            results: rows
                .into_iter()
                .map(|(key, value)| Kv { key, value })
                .collect(),
            bookmark: next,
        })
    }
    fn get_history_for_key(&self, key: &str) -> Result<Vec<KeyModification>, ChaincodeError> {
        Ok(self
            .with(|s| s.history(key))?
            .into_iter()
            .map(|h| KeyModification {
                tx_id: h.tx_id,
                value: h.value,
                timestamp: h.timestamp,
                is_delete: h.is_delete,
            })
            .collect())
    }
    fn get_private_data(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, ChaincodeError> {
        self.with(|s| s.get_private(collection, key))
    }
    fn put_private_data(
        &self,
        collection: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), ChaincodeError> {
        self.with(|s| s.put_private(collection, key, value.to_vec()))
    }
    fn del_private_data(&self, collection: &str, key: &str) -> Result<(), ChaincodeError> {
        self.with(|s| s.del_private(collection, key))
    }
    fn purge_private_data(&self, collection: &str, key: &str) -> Result<(), ChaincodeError> {
        self.with(|s| s.purge_private(collection, key))
    }
    fn get_private_data_hash(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, ChaincodeError> {
        self.with(|s| s.private_hash(collection, key))
    }
    fn set_validation_parameter(
        &self,
        collection: &str,
        key: &str,
        policy: &[u8],
    ) -> Result<(), ChaincodeError> {
        self.with(|s| {
            s.put_metadata(
                collection,
                key,
                medledger_chaincode::shim::VALIDATION_PARAMETER,
                policy.to_vec(),
            )
        })
    }
    fn get_validation_parameter(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, ChaincodeError> {
        let mut md: BTreeMap<String, Vec<u8>> = self.with(|s| s.get_metadata(collection, key))?;
        Ok(md.remove(medledger_chaincode::shim::VALIDATION_PARAMETER))
    }
    fn set_event(&self, name: &str, payload: &[u8]) -> Result<(), ChaincodeError> {
        self.event.set(name, payload)
    }
}

/// Runs `chaincode` for `req` directly against `sim`.
///
/// # Errors
/// A message if the proposal in `req` does not decode.
pub fn execute(
    chaincode: &dyn Chaincode,
    chaincode_id: &str,
    req: &ExecRequest,
    sim: &mut dyn TxSimulator,
) -> Result<ExecOutcome, ChaincodeError> {
    let ctx = TxContext::from_signed_proposal(
        req.channel_id.clone(),
        req.tx_id.clone(),
        req.input.args.clone(),
        req.proposal.as_ref(),
    )?;
    let stub = SimStub {
        ctx,
        sim: Mutex::new(sim),
        event: EventSlot::default(),
    };
    let response = if req.is_init {
        chaincode.init(&stub)
    } else {
        chaincode.invoke(&stub)
    };
    let event = stub
        .event
        .take()
        .map(|(event_name, payload)| ChaincodeEvent {
            chaincode_id: chaincode_id.to_owned(),
            tx_id: req.tx_id.clone(),
            event_name,
            payload,
        });
    Ok(ExecOutcome { response, event })
}
