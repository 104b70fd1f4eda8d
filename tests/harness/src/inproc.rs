//! gRPC in process: tonic channels over in-memory byte streams (`tokio::io::duplex`), no
//! TCP port. Tonic's documented pattern (its `mock` example): the client connects through
//! `Endpoint::connect_with_connector_lazy` with a connector that makes a fresh duplex pair
//! per connection and hands the server half to `Router::serve_with_incoming`.

use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::server::Router;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{Error, Result};

/// Bytes buffered each way in a connection.
const BUFFER: usize = 256 * 1024;

/// Serves `router` on `runtime` over in-memory connections; a lazy channel to it, named
/// `http://{authority}` (the authority only labels requests; nothing is resolved). The
/// server stops with `runtime`.
///
/// # Errors
/// [`Error::Transport`] if `authority` is not a valid URI authority.
pub(crate) fn serve(
    runtime: &tokio::runtime::Handle,
    router: Router,
    authority: &str,
) -> Result<Channel> {
    let (connections, incoming) = mpsc::unbounded_channel::<DuplexStream>();
    let incoming = UnboundedReceiverStream::new(incoming).map(Ok::<_, std::io::Error>);
    runtime.spawn(router.serve_with_incoming(incoming));
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| Error::Transport(format!("endpoint {authority}: {e}")))?;
    let _context = runtime.enter();
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let connections = connections.clone();
            async move {
                let (client, server) = tokio::io::duplex(BUFFER);
                connections.send(server).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "the in-process server stopped",
                    )
                })?;
                Ok::<_, std::io::Error>(TokioIo::new(client))
            }
        })),
    )
}
