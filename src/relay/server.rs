//! The relay's listener: accepting ffmpeg's connections on 127.0.0.1 and routing `/m/<token>` requests.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use super::config::RelayConfig;
use super::http::{self, error_response, Method, MAX_HEAD_BYTES};
use super::registry::{Counters, Entry, Registration, Registry, RelayTotals};
use super::transfer::{self, Outcome};

/// Kernel send buffer for connections to ffmpeg (Linux doubles it). Small, because when ffmpeg has what
/// it needs and hangs up, whatever sits unread in socket buffers was fetched upstream for nothing: with
/// 128 KiB the test clip cost ~42% of its file, with 32 KiB ~30%. Throughput relies on the sliced
/// writes in `transfer.rs`.
const DOWNSTREAM_SEND_BUFFER: u32 = 32 * 1024;
/// Connections served at once; more wait in the listen backlog. Bounds memory and upstream sockets.
const MAX_CONNECTIONS: usize = 512;
/// Requests on one kept-alive connection before we close it, so no connection lives forever.
const MAX_REQUESTS_PER_CONNECTION: usize = 100;

/// A local HTTP relay that serves registered upstream media URLs to ffmpeg, fetching them upstream in
/// bounded ranges. Clones share one listener, which stops when the last clone is dropped (or on
/// [`Relay::shutdown`]).
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    base_url: String,
    registry: Arc<Registry>,
    totals: Arc<Counters>,
    accept_task: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl Relay {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    pub async fn start(config: RelayConfig) -> io::Result<Relay> {
        let socket = TcpSocket::new_v4()?;
        // Accepted sockets inherit the listener's buffer size.
        socket.set_send_buffer_size(DOWNSTREAM_SEND_BUFFER)?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let listener = socket.listen(1024)?;
        let addr = listener.local_addr()?;
        let config = RelayConfig { request_size: config.request_size.max(1), ..config };
        let registry = Arc::new(Registry::default());
        let accept_task = tokio::spawn(accept_loop(listener, registry.clone(), Arc::new(config))).abort_handle();
        tracing::debug!(%addr, "relay: listening");
        Ok(Relay {
            inner: Arc::new(Inner {
                addr,
                base_url: format!("http://{addr}"),
                registry,
                totals: Arc::new(Counters::default()),
                accept_task,
            }),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Makes `upstream_url` reachable at [`Registration::url`]. `headers` (User-Agent, Cookie...) go with
    /// every upstream request, minus hop-by-hop ones; `client` decides egress (source address, proxy).
    pub fn register(&self, upstream_url: &str, headers: &[(String, String)], client: reqwest::Client) -> Registration {
        let entry = Entry::new(upstream_url, headers, client, self.inner.totals.clone());
        Registration::new(self.inner.registry.clone(), entry, &self.inner.base_url)
    }

    /// As [`Relay::register`], with every upstream request paced by the egress's `gate` (its learned rate)
    /// and held while the egress is banned.
    pub fn register_paced(
        &self,
        upstream_url: &str,
        headers: &[(String, String)],
        client: reqwest::Client,
        gate: crate::governor::Gate,
    ) -> Registration {
        let mut entry = Entry::new(upstream_url, headers, client, self.inner.totals.clone());
        entry.gate = Some(gate);
        Registration::new(self.inner.registry.clone(), entry, &self.inner.base_url)
    }

    /// Responses being served right now (ffmpeg's requests not yet answered in full or given up on).
    pub fn responses_in_flight(&self) -> usize {
        self.inner.registry.responses_in_flight()
    }

    /// Sums over all registrations since the relay started.
    pub fn totals(&self) -> RelayTotals {
        self.inner.totals.snapshot()
    }

    /// Stops accepting and aborts the transfers in flight, for every clone of this relay.
    pub fn shutdown(&self) {
        self.inner.accept_task.abort();
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("addr", &self.inner.addr).finish()
    }
}

/// Owns every connection task, so aborting this task (shutdown, drop) ends them too.
async fn accept_loop(listener: TcpListener, registry: Arc<Registry>, config: Arc<RelayConfig>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            connections.join_next().await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(serve_connection(stream, registry.clone(), config.clone()));
            }
            Err(error) => {
                // Typically EMFILE: pause instead of spinning, then keep serving.
                tracing::debug!(%error, "relay: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(mut stream: TcpStream, registry: Arc<Registry>, config: Arc<RelayConfig>) {
    // Without this, Nagle may hold the short last segment of a response until ffmpeg's delayed ACK.
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let head = match read_head(&mut stream, &mut buf, config.read_timeout).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(HeadTooLarge) => {
                let response = error_response(431, "request head too large");
                let _ = stream.write_all(&response).await;
                return;
            }
        };
        let request = match http::parse_head(&head) {
            Ok(request) => request,
            Err(error) => {
                let _ = stream.write_all(&error_response(400, &error.to_string())).await;
                return;
            }
        };
        let outcome = match (&request.method, request.path.strip_prefix("/m/").and_then(|t| registry.get(t))) {
            (Method::Other(_), _) => send_error(&mut stream, 405, "only GET and HEAD are served").await,
            (_, None) => send_error(&mut stream, 404, "no such registration").await,
            (method, Some(entry)) => {
                let _serving = registry.serving();
                let serve = transfer::serve(&entry, &config, *method == Method::Head, request.range, &mut stream);
                crate::cpu::Metered::new(serve, &entry.cpu_ns).await
            }
        };
        match outcome {
            Outcome::Complete if request.keep_alive => continue,
            Outcome::Complete => {
                let _ = stream.shutdown().await;
                return;
            }
            Outcome::ClientGone => return,
            Outcome::Abort => {
                // A reset, not a FIN: ffmpeg must not mistake the cut for the end of the file.
                let _ = stream.set_zero_linger();
                return;
            }
        }
    }
}

async fn send_error(stream: &mut TcpStream, status: u16, detail: &str) -> Outcome {
    match stream.write_all(&error_response(status, detail)).await {
        Ok(()) => Outcome::Complete,
        Err(_) => Outcome::ClientGone,
    }
}

struct HeadTooLarge;

/// Reads one request head, keeping any bytes after it in `buf` for the next request. `Ok(None)` when
/// the client closed, broke, or stayed silent for `idle`.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>, idle: Duration) -> Result<Option<Vec<u8>>, HeadTooLarge> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = http::head_end(buf) {
            let rest = buf.split_off(end);
            return Ok(Some(std::mem::replace(buf, rest)));
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(HeadTooLarge);
        }
        // Each pass reads at least one byte or returns, and buf is capped, so the loop is bounded.
        match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return Ok(None),
        }
    }
}

// Workers hold these across tasks and threads; keep that a compile error to break.
const _: fn() = || {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Relay>();
    send_sync::<Registration>();
};
