//! The block-local view of state during validation: committed state (a [`LedgerReader`]) with
//! the writes of the block's earlier valid transactions on top.

use std::collections::{BTreeMap, HashSet};

use medledger_ledger_api::{HashedKey, LedgerReader, Result, StateKey, Version, VersionedValue};
use medledger_proto::TxId;

/// Committed state plus the block's valid writes so far. Its maps are the block's final
/// updates once every transaction is processed.
pub struct Overlay<'a> {
    state: &'a dyn LedgerReader,
    /// Final public values written so far (`None` = deleted).
    pub public: BTreeMap<StateKey, Option<VersionedValue>>,
    /// Final hashed private values written so far.
    pub hashed: BTreeMap<HashedKey, Option<VersionedValue>>,
    /// Keys whose metadata an earlier valid transaction of this block rewrote:
    /// (namespace, collection or "", key bytes or key hash).
    pub metadata_touched: HashSet<(String, String, Vec<u8>)>,
}

impl<'a> Overlay<'a> {
    /// An empty overlay over `state`.
    pub fn new(state: &'a dyn LedgerReader) -> Self {
        Overlay {
            state,
            public: BTreeMap::new(),
            hashed: BTreeMap::new(),
            metadata_touched: HashSet::new(),
        }
    }

    /// Current value of a public key.
    pub fn get(&self, ns: &str, key: &str) -> Result<Option<VersionedValue>> {
        match self.public.get(&(ns.to_owned(), key.to_owned())) {
            Some(v) => Ok(v.clone()),
            None => self.state.get_state(ns, key),
        }
    }

    /// Current hashed value of a collection key.
    pub fn get_hashed(
        &self,
        ns: &str,
        coll: &str,
        key_hash: &[u8],
    ) -> Result<Option<VersionedValue>> {
        match self
            .hashed
            .get(&(ns.to_owned(), coll.to_owned(), key_hash.to_vec()))
        {
            Some(v) => Ok(v.clone()),
            None => self.state.get_private_data_hash(ns, coll, key_hash),
        }
    }

    /// Whether `tx_id` is on the ledger.
    pub fn tx_exists(&self, tx_id: &TxId) -> Result<bool> {
        self.state.tx_id_exists(tx_id)
    }

    /// The keys and versions of `ns` in `[start, end)` (or `[start, end]` when
    /// `end_inclusive`) as they stand now, at most `limit` of them (more cannot match a
    /// recorded result of `limit - 1` reads).
    pub fn range_versions(
        &self,
        ns: &str,
        start: &str,
        end: &str,
        end_inclusive: bool,
        limit: usize,
    ) -> Result<Vec<(String, Version)>> {
        let in_range = |k: &str| {
            k >= start
                && (if end_inclusive {
                    k <= end
                } else {
                    end.is_empty() || k < end
                })
        };
        // Overlay entries of this namespace within the range.
        let lo = (ns.to_owned(), start.to_owned());
        let overlay: Vec<(&String, &Option<VersionedValue>)> = self
            .public
            .range(lo..)
            .take_while(|((n, _), _)| n == ns)
            .filter(|((_, k), _)| in_range(k))
            .map(|((_, k), v)| (k, v))
            .collect();
        let deletes = overlay.iter().filter(|(_, v)| v.is_none()).count();
        let upper = if end_inclusive {
            format!("{end}\u{0}")
        } else {
            end.to_owned()
        };
        let mut merged: BTreeMap<String, Version> = BTreeMap::new();
        for item in self
            .state
            .get_state_range(ns, start, &upper)?
            .take(limit.saturating_add(deletes))
        {
            let (k, v) = item?;
            merged.insert(k, v.version);
        }
        for (k, v) in overlay {
            match v {
                Some(v) => merged.insert(k.clone(), v.version),
                None => merged.remove(k.as_str()),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use medledger_ledger_api::{MemoryLedger, Version, VersionedValue};

    use super::Overlay;

    fn vv(block: u64) -> VersionedValue {
        VersionedValue {
            value: vec![1],
            version: Version::new(block, 0),
            metadata: Default::default(),
        }
    }

    #[test]
    fn range_merges_block_writes_and_deletes_over_committed_state() {
        let mut m = MemoryLedger::default();
        for k in ["a", "b", "c", "d"] {
            m.public.insert(("cc".into(), k.into()), vv(1));
        }
        m.public.insert(("other".into(), "b2".into()), vv(1));
        let mut o = Overlay::new(&m);
        o.public.insert(("cc".into(), "b".into()), None);
        o.public.insert(("cc".into(), "b1".into()), Some(vv(2)));
        let keys = |v: Vec<(String, Version)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(o.range_versions("cc", "a", "d", false, 10).unwrap()),
            ["a", "b1", "c"]
        );
        assert_eq!(
            keys(o.range_versions("cc", "a", "c", true, 10).unwrap()),
            ["a", "b1", "c"]
        );
        assert_eq!(
            keys(o.range_versions("cc", "b", "", false, 10).unwrap()),
            ["b1", "c", "d"]
        );
        // The limit bounds the answer, and deletes do not make it return too few.
        assert_eq!(
            keys(o.range_versions("cc", "a", "", false, 2).unwrap()),
            ["a", "b1"]
        );
        assert_eq!(o.get("cc", "b").unwrap(), None);
        assert_eq!(
            o.get("cc", "b1").unwrap().map(|v| v.version),
            Some(Version::new(2, 0))
        );
    }
}
