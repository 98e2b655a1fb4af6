//! The serve listener's connection handling: how long a client may take to send a request
//! head, how long an idle connection stays open, and how many connections are served at
//! once. `axum::serve` sets none of these (hyper's header timeout needs a timer it does not
//! give), so a client that opens connections and sends half a header could hold them forever.
//!
//! - [`HEADER_READ_TIMEOUT`]: a request head must arrive complete within it, counted from
//!   the connection's start or from the end of the previous response. The same clock closes
//!   idle keep-alive connections: hyper's HTTP/1 has one timer for both.
//!   A response being streamed (server-sent events, live logs) is not idle and is never cut.
//! - [`MAX_CONNECTIONS`]: beyond it, new connections wait in the kernel's accept queue
//!   (they are not refused) until a served one closes; stalled ones close within the header
//!   timeout, so a normal client gets through once they are cleaned up.
//! - With TLS, the handshake must also end within [`HEADER_READ_TIMEOUT`]; a failed one
//!   (plain HTTP sent to the TLS port, say) closes that connection and nothing else.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long a client may take to send a complete request head, and how long a keep-alive
/// connection may stay idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections are served at once; further ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// After shutdown is asked, how long open connections get to finish their response before
/// they are closed (a live event stream would otherwise hold the server up forever).
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `stop` completes, with the limits above; with `tls`,
/// every connection is a TLS connection (see [`crate::tls`]). Requests carry the client's
/// address as `ConnectInfo<SocketAddr>` (the audit trail reads it).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl Future<Output = ()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        // A slot first: while every slot is taken, new connections wait in the accept queue.
        let slot = tokio::select! {
            () = &mut stop => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let closing = closing_rx.clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let _slot = slot;
            let Some(acceptor) = acceptor else {
                return serve_connection(stream, remote, app, closing).await;
            };
            // The handshake is bounded by the header timeout too: a client that connects
            // and sends nothing (or half a ClientHello) must not hold a slot forever.
            let handshake = tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(stream)) => serve_connection(stream, remote, app, closing).await,
                // Plain HTTP sent to the TLS port, an unknown CA on the client's side, a
                // scanner: this connection ends, the server goes on.
                Ok(Err(error)) => {
                    tracing::debug!(%error, client = %remote, "TLS handshake failed");
                }
                Err(_) => tracing::debug!(client = %remote, "TLS handshake timed out"),
            }
        });
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_WAIT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = connections.len(),
            "closing the connections still open at shutdown"
        );
        connections.shutdown().await;
    }
}

/// Serves one connection (plain TCP or TLS) until it closes, or, once the server is
/// closing, until its current response is done.
async fn serve_connection<S>(
    stream: S,
    remote: SocketAddr,
    app: Router,
    mut closing: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.oneshot(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, client = %remote, "connection closed");
                }
                break;
            }
            changed = closing.changed() => {
                connection.as_mut().graceful_shutdown();
                if changed.is_err() {
                    // The server is gone; the connection finishes on its own.
                    let _ = connection.as_mut().await;
                    break;
                }
            }
        }
    }
}
