//! The `tracing` output of a test binary, captured for scans (no patient data may appear in
//! what the in-process peers, orderers, gateways, clients and servers log).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Everything `tracing` emits in this test binary from the first call on, at debug and
/// above, without ANSI colours. The first call installs the global subscriber.
///
/// # Panics
/// If another global `tracing` subscriber was installed in this test binary first.
pub fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        #[allow(clippy::expect_used)]
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init()
            .expect("no other tracing subscriber in this test binary");
        log
    })
    .clone()
}

/// A `tracing` writer into the shared buffer.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
