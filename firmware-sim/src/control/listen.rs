//! Where the control API listens (`--control ADDR:PORT` or `--control
//! unix:PATH`) and the accept loop: hyper's HTTP/1.1 server on each
//! connection, with a limit on concurrent connections, a time limit on request
//! heads (idle keep-alive connections included) and a bounded head size.
//!
//! The Unix socket is created 0600 and, besides, only connections from this
//! process's user (or root) are served, checked with `SO_PEERCRED`: a socket
//! is briefly world-connectable between `bind` and `chmod`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::guard::Arrival;

/// The most connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 32;

/// How long a client may take to send a request head, and how long an idle
/// keep-alive connection stays open.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head (request line and headers), in bytes.
pub const MAX_HEAD: usize = 16 * 1024;

/// The most header fields in one request.
pub const MAX_HEADERS: usize = 64;

/// Where the control API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlListen {
    /// A TCP address (loopback unless told otherwise).
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl FromStr for ControlListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, e.g. unix:/run/user/1000/ferrokey.sock".into());
            }
            return Ok(ControlListen::Unix(PathBuf::from(path)));
        }
        text.parse::<SocketAddr>()
            .map(ControlListen::Tcp)
            .map_err(|_| {
                format!("{text:?} is neither ADDR:PORT (e.g. 127.0.0.1:8765) nor unix:PATH")
            })
    }
}

impl fmt::Display for ControlListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlListen::Tcp(addr) => write!(f, "{addr}"),
            ControlListen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A bound control listener (std sockets, so it can be bound before the
/// async runtime starts and errors are reported at start-up).
#[derive(Debug)]
pub enum Bound {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix listener; the socket file is removed when this is dropped.
    Unix(std::os::unix::net::UnixListener, SocketFile),
}

impl Bound {
    /// Binds `at`. Warns when a TCP address is not loopback.
    pub fn bind(at: &ControlListen) -> io::Result<Bound> {
        match at {
            ControlListen::Tcp(addr) => {
                if !addr.ip().is_loopback() {
                    tracing::warn!(
                        %addr,
                        "control API listening on a non-loopback address: anyone who can reach it can \
                         approve requests, seed credentials and unplug keys (use --control-token-file)"
                    );
                }
                let listener = std::net::TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Ok(Bound::Tcp(listener))
            }
            ControlListen::Unix(path) => {
                clear_stale_socket(path)?;
                let listener = std::os::unix::net::UnixListener::bind(path)?;
                let file = SocketFile(path.clone());
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                listener.set_nonblocking(true)?;
                Ok(Bound::Unix(listener, file))
            }
        }
    }

    /// What a client connects to: `http://ADDR/` or `unix:PATH`.
    pub fn describe(&self) -> io::Result<String> {
        match self {
            Bound::Tcp(listener) => Ok(format!("http://{}/", listener.local_addr()?)),
            Bound::Unix(_, file) => Ok(format!("unix:{}", file.0.display())),
        }
    }

    /// The TCP address, if this is a TCP listener.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Bound::Tcp(listener) => listener.local_addr().ok(),
            Bound::Unix(..) => None,
        }
    }
}

/// A Unix socket file, removed on drop.
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes a socket file that nobody listens on any more; refuses to touch
/// anything else.
fn clear_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another server listens on {}", path.display()),
        )),
        Err(_) => std::fs::remove_file(path),
    }
}

/// The connection limits of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most connections served at once.
    pub max_connections: usize,
    /// How long a request head may take to arrive (idle keep-alive included).
    pub head_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            head_timeout: HEAD_TIMEOUT,
        }
    }
}

/// Serves `app` on `bound` until the returned future is dropped (which also
/// closes every connection it opened).
pub async fn run(bound: Bound, app: Router, limits: Limits) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    match bound {
        Bound::Tcp(listener) => {
            let listener = TcpListener::from_std(listener)?;
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        accept_failed(&error).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().unwrap_or(peer);
                spawn(
                    &mut connections,
                    &permits,
                    stream,
                    Arrival::Tcp(local),
                    &app,
                    limits,
                );
                reap(&mut connections);
            }
        }
        Bound::Unix(listener, _file) => {
            let listener = UnixListener::from_std(listener)?;
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        accept_failed(&error).await;
                        continue;
                    }
                };
                match stream.peer_cred() {
                    Ok(cred) if cred.uid() == me || cred.uid() == 0 => {}
                    Ok(cred) => {
                        tracing::warn!(
                            uid = cred.uid(),
                            "control API: refused a connection from another user"
                        );
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "control API: cannot tell who connected; refused");
                        continue;
                    }
                }
                spawn(
                    &mut connections,
                    &permits,
                    stream,
                    Arrival::Unix,
                    &app,
                    limits,
                );
                reap(&mut connections);
            }
        }
    }
}

async fn accept_failed(error: &io::Error) {
    tracing::warn!(%error, "control API: accept failed");
    // Out of file descriptors and the like: do not spin.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Drops finished connection tasks.
fn reap(connections: &mut JoinSet<()>) {
    while connections.try_join_next().is_some() {}
}

/// Serves one connection, if a permit is free.
fn spawn<S>(
    connections: &mut JoinSet<()>,
    permits: &Arc<Semaphore>,
    stream: S,
    arrival: Arrival,
    app: &Router,
    limits: Limits,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
        tracing::warn!("control API: too many connections; closing one");
        return;
    };
    let service = app.clone().map_request(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(arrival);
        request
    });
    connections.spawn(async move {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.head_timeout)
            .max_buf_size(MAX_HEAD)
            .max_headers(MAX_HEADERS)
            .keep_alive(true);
        let served = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .await;
        if let Err(error) = served {
            tracing::debug!(%error, "control API connection ended with an error");
        }
        drop(permit);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            "127.0.0.1:0".parse::<ControlListen>(),
            Ok(ControlListen::Tcp("127.0.0.1:0".parse().unwrap()))
        );
        assert_eq!(
            "unix:/tmp/x.sock".parse::<ControlListen>(),
            Ok(ControlListen::Unix("/tmp/x.sock".into()))
        );
        assert!("unix:".parse::<ControlListen>().is_err());
        assert!("localhost".parse::<ControlListen>().is_err());
        assert_eq!(ControlListen::Unix("/a".into()).to_string(), "unix:/a");
    }

    #[test]
    fn unix_sockets_are_private_and_stale_ones_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let bound = Bound::bind(&ControlListen::Unix(path.clone())).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            bound.describe().unwrap(),
            format!("unix:{}", path.display())
        );
        // A live socket is not taken over.
        assert!(Bound::bind(&ControlListen::Unix(path.clone())).is_err());
        drop(bound);
        assert!(!path.exists(), "socket file left behind");
        // A stale socket (its server gone without cleaning up) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let again = Bound::bind(&ControlListen::Unix(path.clone())).unwrap();
        drop(again);
        // A regular file is never removed.
        std::fs::write(&path, b"mine").unwrap();
        assert!(Bound::bind(&ControlListen::Unix(path.clone())).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"mine");
    }
}
