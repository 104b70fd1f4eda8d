//! The ledger as the state API's readers ([`QueryExecutor`], [`HistoryQueryExecutor`],
//! [`TxIdIndex`]): what the endorser simulates over and the validator validates against,
//! read live (as Fabric reads its state database). The ledger's [`Error`] and the transient
//! store's [`TransientStoreError`] become a [`LedgerError`] here, once.

use medledger_ledger_api::{
    HistoryEntry, HistoryQueryExecutor, LedgerError, QueryExecutor, StateIter, TxIdIndex,
    VersionedValue,
};
use medledger_proto::TxId;

use crate::error::Error;
use crate::ledger::Ledger;
use crate::transient::TransientStoreError;

type Result<T> = std::result::Result<T, LedgerError>;

impl From<Error> for LedgerError {
    fn from(e: Error) -> Self {
        LedgerError::Storage(Box::new(e))
    }
}

impl From<TransientStoreError> for LedgerError {
    fn from(e: TransientStoreError) -> Self {
        LedgerError::Storage(Box::new(e))
    }
}

impl QueryExecutor for Ledger {
    fn get_state(&self, ns: &str, key: &str) -> Result<Option<VersionedValue>> {
        Ok(Ledger::get_state(self, ns, key)?)
    }

    fn get_state_range<'a>(&'a self, ns: &'a str, start: &str, end: &str) -> Result<StateIter<'a>> {
        Ok(Box::new(
            Ledger::state_range(self, ns, start, end)?.map(|item| Ok(item?)),
        ))
    }

    fn get_private_data(&self, ns: &str, coll: &str, key: &str) -> Result<Option<VersionedValue>> {
        Ok(Ledger::get_private(self, ns, coll, key)?)
    }

    fn get_private_data_hash(
        &self,
        ns: &str,
        coll: &str,
        key_hash: &[u8],
    ) -> Result<Option<VersionedValue>> {
        Ok(Ledger::get_private_hash(self, ns, coll, key_hash)?)
    }
}

impl HistoryQueryExecutor for Ledger {
    fn get_history_for_key(&self, ns: &str, key: &str) -> Result<Vec<HistoryEntry>> {
        Ok(Ledger::history(self, ns, key)?.collect::<crate::Result<_>>()?)
    }
}

impl TxIdIndex for Ledger {
    fn tx_id_exists(&self, tx_id: &TxId) -> Result<bool> {
        Ok(Ledger::tx_exists(self, tx_id)?)
    }
}
