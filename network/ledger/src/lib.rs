//! Medledger's peer ledger (issue 4): one RocksDB per peer per channel holding blocks, the
//! tx index, world state, history, private data and the savepoint.
