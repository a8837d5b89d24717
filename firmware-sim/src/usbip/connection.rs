//! One USB/IP connection: the opening operation, then (after an import) the URB
//! stream between the client and the imported key.
//!
//! The task reads with a cancel-safe `read` into a buffer and decodes whole
//! frames from it, so it can wait for client bytes and key completions at the
//! same time. Anything malformed closes this connection with one warning; other
//! connections and keys are untouched. Closing (for any reason) detaches and
//! resets the imported key.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use usb_device::UsbDirection;

use super::proto::{
    encode_devlist_reply, encode_import_reply, encode_ret_submit, encode_ret_unlink, Command,
    Direction, OpRequest, ProtoError,
};
use super::server::{KeyEntry, Registry};
use crate::key::{KeyMsg, Reply};
use crate::usb::host::Urb;

/// How long a new connection may take to send its opening request.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Read chunk size.
const READ_CHUNK: usize = 16 * 1024;

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
    #[error("URB for devid {got:#x}, imported devid is {expected:#x}")]
    WrongDevice { expected: u32, got: u32 },
    #[error("{0}")]
    Fatal(&'static str),
    #[error("the key stopped")]
    KeyGone,
    #[error("the key was powered off (unplugged)")]
    Unplugged,
}

impl ConnError {
    /// Peer hang-ups are routine; everything else is worth a warning.
    fn is_routine(&self) -> bool {
        match self {
            ConnError::Unplugged => true,
            ConnError::Io(error) => matches!(
                error.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            _ => false,
        }
    }
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve(mut stream: TcpStream, peer: SocketAddr, registry: Arc<Registry>) {
    if let Err(error) = configure(&stream) {
        tracing::debug!(%peer, %error, "could not set socket options");
    }
    match session(&mut stream, peer, &registry).await {
        Ok(()) => tracing::debug!(%peer, "USB/IP connection closed"),
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

/// Reads more bytes into `buf`. Ok(false) on a clean end of stream.
async fn fill(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> Result<bool, ConnError> {
    let n = stream.read(chunk).await?;
    if n == 0 {
        return if buf.is_empty() {
            Ok(false)
        } else {
            Err(ConnError::Truncated(buf.len()))
        };
    }
    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    Ok(true)
}

async fn read_op(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> Result<Option<OpRequest>, ConnError> {
    loop {
        if let Some((request, used)) = OpRequest::decode(buf)? {
            buf.drain(..used);
            return Ok(Some(request));
        }
        if !fill(stream, buf, chunk).await? {
            return Ok(None);
        }
    }
}

async fn session(
    stream: &mut TcpStream,
    peer: SocketAddr,
    registry: &Registry,
) -> Result<(), ConnError> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let request = tokio::time::timeout(OPEN_TIMEOUT, read_op(stream, &mut buf, &mut chunk))
        .await
        .map_err(|_| ConnError::Timeout(OPEN_TIMEOUT))??;
    let busid = match request {
        None => return Ok(()),
        Some(OpRequest::DevList) => {
            tracing::debug!(%peer, "device list requested");
            stream
                .write_all(&encode_devlist_reply(&registry.infos()))
                .await?;
            return Ok(());
        }
        Some(OpRequest::Import { busid }) => busid,
    };
    let Some(entry) = registry.find(&busid) else {
        tracing::info!(%peer, %busid, "import refused: no such busid");
        stream.write_all(&encode_import_reply(None)).await?;
        return Ok(());
    };
    if !entry.is_powered() {
        tracing::info!(%peer, %busid, "import refused: key powered off");
        stream.write_all(&encode_import_reply(None)).await?;
        return Ok(());
    }
    let Some(mut claim) = entry.claim() else {
        tracing::info!(%peer, %busid, "import refused: key busy");
        stream.write_all(&encode_import_reply(None)).await?;
        return Ok(());
    };
    let (replies_tx, replies) = mpsc::unbounded_channel();
    let session = registry.new_session();
    if !claim.attach(session, replies_tx) {
        stream.write_all(&encode_import_reply(None)).await?;
        return Err(ConnError::KeyGone);
    }
    stream
        .write_all(&encode_import_reply(Some(&entry.info)))
        .await?;
    tracing::info!(%peer, %busid, session, "key imported");
    // `claim` lives until the URB loop ends; dropping it detaches the key.
    let result = urb_loop(stream, buf, &mut chunk, entry, session, replies).await;
    drop(claim);
    result
}

async fn urb_loop(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    chunk: &mut [u8],
    entry: &KeyEntry,
    session: u64,
    mut replies: mpsc::UnboundedReceiver<Reply>,
) -> Result<(), ConnError> {
    let devid = entry.info.devid();
    let mut out = Vec::new();
    loop {
        while let Some((command, used)) = Command::decode(&buf)? {
            buf.drain(..used);
            let message = to_key_message(command, devid, session)?;
            entry.tx.send(message).map_err(|_| ConnError::KeyGone)?;
        }
        tokio::select! {
            reply = replies.recv() => {
                let reply = reply.ok_or(ConnError::KeyGone)?;
                out.clear();
                encode_reply(reply, &mut out)?;
                while let Ok(more) = replies.try_recv() {
                    encode_reply(more, &mut out)?;
                }
                stream.write_all(&out).await?;
            }
            more = fill(stream, &mut buf, chunk) => {
                if !more? {
                    return Ok(());
                }
            }
        }
    }
}

fn to_key_message(command: Command, devid: u32, session: u64) -> Result<KeyMsg, ConnError> {
    match command {
        Command::Submit(submit) => {
            if submit.devid != devid {
                return Err(ConnError::WrongDevice {
                    expected: devid,
                    got: submit.devid,
                });
            }
            let urb = Urb {
                id: submit.seqnum,
                endpoint: submit.ep,
                direction: match submit.direction {
                    Direction::In => UsbDirection::In,
                    Direction::Out => UsbDirection::Out,
                },
                setup: submit.setup,
                buffer_length: submit.transfer_buffer_length as usize,
                data: submit.data,
            };
            Ok(KeyMsg::Submit { session, urb })
        }
        Command::Unlink(unlink) => {
            if unlink.devid != devid {
                return Err(ConnError::WrongDevice {
                    expected: devid,
                    got: unlink.devid,
                });
            }
            Ok(KeyMsg::Unlink {
                session,
                seqnum: unlink.seqnum,
                target: unlink.unlink_seqnum,
            })
        }
    }
}

fn encode_reply(reply: Reply, out: &mut Vec<u8>) -> Result<(), ConnError> {
    match reply {
        Reply::Submit(completion) => {
            let actual = u32::try_from(completion.actual_length).unwrap_or(u32::MAX);
            out.extend_from_slice(&encode_ret_submit(
                completion.id,
                completion.status,
                actual,
                &completion.data,
            ));
        }
        Reply::Unlink { seqnum, status } => {
            out.extend_from_slice(&encode_ret_unlink(seqnum, status));
        }
        Reply::Fatal(reason) => return Err(ConnError::Fatal(reason)),
        Reply::Unplugged => return Err(ConnError::Unplugged),
    }
    Ok(())
}
