//! The HTTP connection layer under the axum router: accepts connections, caps how many are open,
//! closes the ones that stall, and stops gracefully. `axum::serve` keeps a connection that sends
//! nothing (or half a header block) open forever; about 1,100 of them exhausted a 1,024 file
//! limit and the bot stopped answering DingTalk. Here:
//!
//! - **header-read timeout** (hyper's): a complete request head must arrive within
//!   `header_read_timeout` of the connection opening or of its previous response, else the
//!   connection is closed. It therefore also ends idle keep-alive connections.
//! - **idle timeout** ([`IdleWatch`]): a connection on which no byte moves either way for
//!   `idle_timeout` is closed, whatever it is doing (a client that stops reading our answer, a
//!   body that stopped arriving).
//! - **connection cap**: at `max_connections` open connections, a new one gets an immediate
//!   `503` with `Retry-After` and is closed — a clear answer instead of a bot that goes dark.
//!   Refusals are counted ([`ConnStats`]) and logged at most once per [`SHED_LOG_EVERY`].
//!
//! Connections are owned by the serving future: dropping (aborting) it drops them all, which is
//! what a crash looks like; the shutdown signal instead lets each finish its current response.
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

/// Limits of the connection layer (from `[server]`).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ConnLimits {
    pub fn from_config(c: &crate::config::ServerConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(c.header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(c.idle_timeout_ms.max(1)),
            max_connections: c.max_connections.max(1),
        }
    }
}

/// Counters of the connection layer since start, for operators (and a later `/metrics`).
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections answered `503` (or, past [`MAX_SHEDDING`], closed at once) because
    /// `max_connections` were open.
    pub shed: AtomicU64,
}

/// At most one "connection limit reached" warning per this interval, however many are refused:
/// the log must not become the next thing a flood exhausts.
pub const SHED_LOG_EVERY: Duration = Duration::from_secs(10);

/// Refused connections being answered at once. Each holds its socket for up to
/// [`SHED_LINGER`]; beyond this many, further ones are closed without an answer so that
/// refusing cannot itself use up the file descriptors the cap protects.
const MAX_SHEDDING: usize = 64;

/// How long a refused connection is read from (and the bytes dropped) after its `503`: closing a
/// socket with unread request bytes makes the kernel send a reset, which can destroy the answer
/// in flight before the client reads it.
const SHED_LINGER: Duration = Duration::from_secs(1);

/// After an accept error other than a dropped connection (e.g. out of file descriptors), pause
/// before the next accept instead of spinning on the error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);

const SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 45\r\n\
\r\n\
{\"error\":\"too many connections; retry later\"}";

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the open connections to finish their current response (idle ones close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let shedding = Arc::new(Semaphore::new(MAX_SHEDDING));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut shed_log = ShedLog::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            // Reap finished connections so the set does not grow with the server's uptime.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; pausing before the next accept");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let router = router.clone();
                let stop = stop_rx.clone();
                conns.spawn(async move {
                    connection(stream, router, limits, stop).await;
                    drop(permit);
                });
            }
            Err(_) => {
                stats.shed.fetch_add(1, Ordering::Relaxed);
                shed_log.refused(limits.max_connections);
                match shedding.clone().try_acquire_owned() {
                    Ok(slot) => {
                        conns.spawn(async move {
                            shed(stream).await;
                            drop(slot);
                        });
                    }
                    // Refusals are piling up too: close without a word.
                    Err(_) => drop(stream),
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
}

/// One connection, HTTP/1.1 (DingTalk's callbacks; TLS ends at the proxy in front).
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(IdleWatch::new(stream, limits.idle_timeout));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(io, TowerToHyperService::new(router));
    tokio::pin!(conn);
    let finished = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = stopped(&mut stop) => None,
    };
    let result = match finished {
        Some(r) => r,
        None => {
            // Ends at once when idle, else after the response in progress.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    // Timeouts, resets and malformed requests are the normal end of hostile or broken
    // connections: not worth more than debug.
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// Resolves once the shutdown signal is given (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Answers a connection over the cap with `503` and closes it gently (see [`SHED_LINGER`]).
async fn shed(mut stream: TcpStream) {
    let _ = tokio::time::timeout(SHED_LINGER, async {
        if stream.write_all(SHED_RESPONSE).await.is_ok() && stream.shutdown().await.is_ok() {
            let mut sink = [0u8; 4096];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        }
    })
    .await;
}

/// Errors of one incoming connection (it went away before we took it), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The rate-limited "connection limit reached" warning.
#[derive(Default)]
struct ShedLog {
    last: Option<Instant>,
    since_last: u64,
}

impl ShedLog {
    fn refused(&mut self, max_connections: usize) {
        self.since_last += 1;
        let due = self.last.is_none_or(|t| t.elapsed() >= SHED_LOG_EVERY);
        if due {
            tracing::warn!(
                max_connections,
                refused = self.since_last,
                "connection limit reached (server.max_connections): new connections get 503"
            );
            self.last = Some(Instant::now());
            self.since_last = 0;
        }
    }
}

/// A socket that fails with `TimedOut` once no byte has moved either way for `idle`. The
/// deadline is checked whenever hyper waits on the socket, so a connection stuck on a client
/// that neither sends nor reads is closed; while the router handles a request hyper may not
/// touch the socket at all, and the request deadline bounds that time instead.
pub struct IdleWatch<T> {
    inner: T,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleWatch<T> {
    pub fn new(inner: T, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// On a pending read or write: an error once the deadline has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle longer than server.idle_timeout_ms",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleWatch<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.expired(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleWatch<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.expired(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.expired(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shed_response_is_well_formed() {
        let text = std::str::from_utf8(SHED_RESPONSE).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(v["error"], "too many connections; retry later");
    }

    #[tokio::test]
    async fn idle_watch_fails_a_silent_socket_and_not_a_busy_one() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut watched = IdleWatch::new(a, Duration::from_millis(50));
        // Bytes keep it alive.
        b.write_all(b"x").await.unwrap_or_default();
        let mut one = [0u8; 1];
        assert_eq!(watched.read(&mut one).await.ok(), Some(1));
        // Then silence: the pending read ends in TimedOut (bounded generously).
        let r = tokio::time::timeout(Duration::from_secs(30), watched.read(&mut one)).await;
        let kind = r.ok().and_then(|r| r.err()).map(|e| e.kind());
        assert_eq!(kind, Some(io::ErrorKind::TimedOut));
    }
}
