//! An in-memory ledger and stub for unit-testing contracts without a peer.
//!
//! Semantics follow a Fabric peer rather than Fabric's old `MockStub`: a transaction reads
//! the committed state (not its own writes), its writes are buffered and applied only when it
//! succeeds (status < 400), history records every committed change with the tx id, and the
//! last event set by a successful transaction is kept.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use medledger_proto::protos::Response;

use crate::ERROR_THRESHOLD;
use crate::contract::Chaincode;
use crate::error::{ChaincodeError, Result};
use crate::stub::{ChaincodeStub, EventSlot, KeyModification, Kv, Page, TxContext};

/// An event emitted by a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Transaction id.
    pub tx_id: String,
    /// Event name.
    pub name: String,
    /// Payload.
    pub payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct Data {
    state: BTreeMap<String, Vec<u8>>,
    /// (collection, key) → value.
    private: BTreeMap<(String, String), Vec<u8>>,
    /// (collection, key) → SHA-256 of the value; kept by purge.
    private_hashes: BTreeMap<(String, String), Vec<u8>>,
    /// (collection, key) → key-level endorsement policy ("" collection = public).
    validation: BTreeMap<(String, String), Vec<u8>>,
    history: BTreeMap<String, Vec<KeyModification>>,
    events: Vec<Event>,
}

/// A world state held in memory.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    data: Mutex<Data>,
}

#[derive(Debug, Clone)]
enum Write {
    Put(String, Vec<u8>),
    Del(String),
    PutPrivate(String, String, Vec<u8>),
    DelPrivate(String, String),
    PurgePrivate(String, String),
    Validation(String, String, Vec<u8>),
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        MemoryLedger::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one transaction: `chaincode.invoke` on a stub with `ctx`; applies its writes and
    /// event only if the response status is below 400.
    pub fn invoke(&self, chaincode: &dyn Chaincode, ctx: TxContext) -> Response {
        let stub = MemoryStub {
            ledger: self,
            ctx,
            writes: Mutex::new(Vec::new()),
            event: EventSlot::default(),
        };
        let response = chaincode.invoke(&stub);
        if response.status < ERROR_THRESHOLD {
            self.apply(&stub);
        }
        response
    }

    fn apply(&self, stub: &MemoryStub<'_>) {
        let writes = stub.writes.lock().map(|w| w.clone()).unwrap_or_default();
        let event = stub.event.take();
        let timestamp = stub.ctx.timestamp;
        let tx_id = stub.ctx.tx_id.clone();
        let mut d = self.lock();
        for w in writes {
            match w {
                Write::Put(k, v) => {
                    d.history
                        .entry(k.clone())
                        .or_default()
                        .push(KeyModification {
                            tx_id: tx_id.clone(),
                            value: v.clone(),
                            timestamp,
                            is_delete: false,
                        });
                    d.state.insert(k, v);
                }
                Write::Del(k) => {
                    d.history
                        .entry(k.clone())
                        .or_default()
                        .push(KeyModification {
                            tx_id: tx_id.clone(),
                            value: Vec::new(),
                            timestamp,
                            is_delete: true,
                        });
                    d.state.remove(&k);
                }
                Write::PutPrivate(c, k, v) => {
                    d.private_hashes.insert(
                        (c.clone(), k.clone()),
                        medledger_msp::crypto::sha256(&v).to_vec(),
                    );
                    d.private.insert((c, k), v);
                }
                Write::DelPrivate(c, k) => {
                    d.private.remove(&(c.clone(), k.clone()));
                    d.private_hashes.remove(&(c, k));
                }
                Write::PurgePrivate(c, k) => {
                    d.private.remove(&(c, k));
                }
                Write::Validation(c, k, p) => {
                    d.validation.insert((c, k), p);
                }
            }
        }
        if let Some((name, payload)) = event {
            d.events.push(Event {
                tx_id,
                name,
                payload,
            });
        }
    }

    /// Committed public value of `key`.
    pub fn state(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().state.get(key).cloned()
    }

    /// Committed private value.
    pub fn private(&self, collection: &str, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .private
            .get(&(collection.to_owned(), key.to_owned()))
            .cloned()
    }

    /// Hash of a private value (kept after purge).
    pub fn private_hash(&self, collection: &str, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .private_hashes
            .get(&(collection.to_owned(), key.to_owned()))
            .cloned()
    }

    /// Events of committed transactions, in order.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// All public keys and values, in key order.
    pub fn public_state(&self) -> BTreeMap<String, Vec<u8>> {
        self.lock().state.clone()
    }

    /// All private values, by (collection, key).
    pub fn private_state(&self) -> BTreeMap<(String, String), Vec<u8>> {
        self.lock().private.clone()
    }

    /// Committed key-level endorsement policy of `key` ("" collection = public state).
    pub fn validation_parameter(&self, collection: &str, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .validation
            .get(&(collection.to_owned(), key.to_owned()))
            .cloned()
    }
}

/// The stub of one transaction over a [`MemoryLedger`].
#[derive(Debug)]
pub struct MemoryStub<'a> {
    ledger: &'a MemoryLedger,
    ctx: TxContext,
    writes: Mutex<Vec<Write>>,
    event: EventSlot,
}

impl MemoryStub<'_> {
    fn push(&self, w: Write) -> Result<()> {
        self.writes
            .lock()
            .map_err(|_| ChaincodeError::Stream("stub lock poisoned".into()))?
            .push(w);
        Ok(())
    }

    fn range(&self, start: &str, end: &str) -> Vec<Kv> {
        let d = self.ledger.lock();
        d.state
            .range(start.to_owned()..)
            .take_while(|(k, _)| end.is_empty() || k.as_str() < end)
            .map(|(k, v)| Kv {
                key: k.clone(),
                value: v.clone(),
            })
            .collect()
    }
}

fn nonempty(key: &str) -> Result<()> {
    if key.is_empty() {
        Err(ChaincodeError::InvalidArgument(
            "key must not be empty".into(),
        ))
    } else {
        Ok(())
    }
}

impl ChaincodeStub for MemoryStub<'_> {
    fn context(&self) -> &TxContext {
        &self.ctx
    }

    fn get_state(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.ledger.lock().state.get(key).cloned())
    }

    fn put_state(&self, key: &str, value: &[u8]) -> Result<()> {
        nonempty(key)?;
        self.push(Write::Put(key.to_owned(), value.to_vec()))
    }

    fn del_state(&self, key: &str) -> Result<()> {
        nonempty(key)?;
        self.push(Write::Del(key.to_owned()))
    }

    fn get_state_by_range(&self, start: &str, end: &str) -> Result<Vec<Kv>> {
        Ok(self.range(start, end))
    }

    fn get_state_by_range_with_pagination(
        &self,
        start: &str,
        end: &str,
        page_size: i32,
        bookmark: &str,
    ) -> Result<Page> {
        let size = usize::try_from(page_size)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| ChaincodeError::InvalidArgument("page size must be > 0".into()))?;
        let from = if bookmark.is_empty() { start } else { bookmark };
        let all = self.range(from, end);
        let results: Vec<Kv> = all.iter().take(size).cloned().collect();
        let bookmark = all.get(size).map(|kv| kv.key.clone()).unwrap_or_default();
        Ok(Page {
            fetched: i32::try_from(results.len()).unwrap_or(i32::MAX),
            results,
            bookmark,
        })
    }

    fn get_history_for_key(&self, key: &str) -> Result<Vec<KeyModification>> {
        let mut h = self
            .ledger
            .lock()
            .history
            .get(key)
            .cloned()
            .unwrap_or_default();
        h.reverse();
        Ok(h)
    }

    fn get_private_data(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.ledger.private(collection, key))
    }

    fn put_private_data(&self, collection: &str, key: &str, value: &[u8]) -> Result<()> {
        nonempty(key)?;
        self.push(Write::PutPrivate(
            collection.into(),
            key.into(),
            value.to_vec(),
        ))
    }

    fn del_private_data(&self, collection: &str, key: &str) -> Result<()> {
        nonempty(key)?;
        self.push(Write::DelPrivate(collection.into(), key.into()))
    }

    fn purge_private_data(&self, collection: &str, key: &str) -> Result<()> {
        nonempty(key)?;
        self.push(Write::PurgePrivate(collection.into(), key.into()))
    }

    fn get_private_data_hash(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.ledger.private_hash(collection, key))
    }

    fn set_validation_parameter(&self, collection: &str, key: &str, policy: &[u8]) -> Result<()> {
        nonempty(key)?;
        self.push(Write::Validation(
            collection.into(),
            key.into(),
            policy.to_vec(),
        ))
    }

    fn get_validation_parameter(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .ledger
            .lock()
            .validation
            .get(&(collection.to_owned(), key.to_owned()))
            .cloned())
    }

    fn set_event(&self, name: &str, payload: &[u8]) -> Result<()> {
        self.event.set(name, payload)
    }
}

/// A context for a test transaction: `args` as strings, a fresh tx id, now as timestamp.
pub fn test_context(tx_id: &str, args: &[&str]) -> TxContext {
    TxContext {
        channel_id: "test".into(),
        tx_id: tx_id.into(),
        args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        transient: BTreeMap::new(),
        creator: None,
        timestamp: Some(SystemTime::now()),
    }
}
