//! One USB/IP connection's opening operation, on the server's acceptor: a
//! device list is answered here; an import is checked (busid, power, not
//! held by another connection), answered, and the socket handed to the key,
//! whose own task serves the URB stream from then on (see
//! [`crate::usbip::link`]). Anything malformed closes this connection with
//! one warning; other connections and keys are untouched.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::exports::Exports;
use super::link::HostSocket;
use super::proto::{encode_devlist_reply, encode_import_reply, OpRequest, ProtoError};
use crate::key::task::{Attach, KeyMsg};

/// How long a new connection may take to send its opening request.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an import waits for the host holding the key to let it go.
const IMPORT_PATIENCE: Duration = Duration::from_secs(1);
/// Read chunk size.
const READ_CHUNK: usize = 4 * 1024;

/// Why a connection ended abnormally.
#[derive(Debug, Error)]
enum ConnError {
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("malformed input: {0}")]
    Protocol(#[from] ProtoError),
    #[error("connection closed in the middle of a frame ({0} bytes buffered)")]
    Truncated(usize),
    #[error("no request within {0:?}")]
    Timeout(Duration),
    #[error("the key stopped")]
    KeyGone,
}

impl ConnError {
    /// Peer hang-ups are routine; everything else is worth a warning.
    fn is_routine(&self) -> bool {
        matches!(self, ConnError::Io(error) if matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ))
    }
}

/// Serves one accepted connection's opening operation.
pub(crate) async fn serve(mut stream: TcpStream, peer: SocketAddr, exports: &Exports) {
    if let Err(error) = configure(&stream) {
        tracing::debug!(%peer, %error, "could not set socket options");
    }
    let mut buf = Vec::new();
    let opened = tokio::time::timeout(OPEN_TIMEOUT, read_op(&mut stream, &mut buf))
        .await
        .map_err(|_| ConnError::Timeout(OPEN_TIMEOUT))
        .and_then(|read| read);
    let result = match opened {
        Ok(None) => Ok(()),
        Ok(Some(OpRequest::DevList)) => {
            tracing::debug!(%peer, "device list requested");
            stream
                .write_all(&encode_devlist_reply(&exports.infos()))
                .await
                .map_err(ConnError::from)
        }
        Ok(Some(OpRequest::Import { busid })) => import(stream, peer, exports, &busid, buf).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => tracing::debug!(%peer, "USB/IP handshake done"),
        Err(error) if error.is_routine() => {
            tracing::info!(%peer, %error, "USB/IP connection dropped")
        }
        Err(error) => tracing::warn!(%peer, %error, "closing USB/IP connection"),
    }
}

/// TCP_NODELAY (no Nagle stalls on small reports) and keepalives (a vanished
/// client eventually frees its key).
fn configure(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

async fn read_op(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<OpRequest>, ConnError> {
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        if let Some((request, used)) = OpRequest::decode(buf)? {
            buf.drain(..used);
            return Ok(Some(request));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(ConnError::Truncated(buf.len()))
            };
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

async fn import(
    mut stream: TcpStream,
    peer: SocketAddr,
    exports: &Exports,
    busid: &str,
    input: Vec<u8>,
) -> Result<(), ConnError> {
    let Some(key) = exports.find(busid) else {
        tracing::info!(%peer, %busid, "import refused: no such busid");
        return refuse(&mut stream).await;
    };
    if !key.shared.is_powered() {
        tracing::info!(%peer, %busid, "import refused: key powered off");
        return refuse(&mut stream).await;
    }
    if !key.shared.claim_within(IMPORT_PATIENCE).await {
        tracing::info!(%peer, %busid, "import refused: key busy");
        return refuse(&mut stream).await;
    }
    // From here the claim must be released on every failure.
    let handed = async {
        stream
            .write_all(&encode_import_reply(Some(&key.info)))
            .await?;
        let socket = stream.into_std()?;
        let attach = Attach {
            socket: HostSocket::Tcp(socket),
            devid: key.info.devid(),
            input,
            peer: peer.to_string(),
            transport: "usbip",
        };
        key.tx
            .send(KeyMsg::Attach(attach))
            .map_err(|_| ConnError::KeyGone)
    }
    .await;
    match handed {
        Ok(()) => {
            tracing::info!(%peer, %busid, "key imported");
            Ok(())
        }
        Err(error) => {
            key.shared.release();
            Err(error)
        }
    }
}

async fn refuse(stream: &mut TcpStream) -> Result<(), ConnError> {
    stream.write_all(&encode_import_reply(None)).await?;
    Ok(())
}
