//! The URB stream of an imported key, served by the key's own task.
//!
//! After an import (over TCP, handed over by the server's acceptor) or an
//! in-process attach (a socket given to the local `vhci_hcd`), the stream
//! carries `CMD_SUBMIT`/`CMD_UNLINK` in and `RET_SUBMIT`/`RET_UNLINK` out.
//! [`UrbLink`] decodes commands from what was read and queues replies,
//! without blocking: the key waits for readiness together with its other
//! events, and stops reading while the host does not take its replies
//! ([`MAX_PENDING_OUT`]), so a host that stops reading cannot make it buffer
//! without bound.

use std::io;

use tokio::net::{TcpStream, UnixStream};
use usb_device::UsbDirection;

use super::proto::{encode_ret_submit, encode_ret_unlink, Command, Direction, ProtoError};
use crate::usb::host::{Completion, Urb};

/// Bytes read per wakeup at most (then other keys of the thread get a turn).
const READ_BUDGET: usize = 64 * 1024;
/// Read chunk size.
const READ_CHUNK: usize = 16 * 1024;
/// Replies waiting for the host beyond which the key stops reading commands.
pub const MAX_PENDING_OUT: usize = 256 * 1024;

/// A connected stream socket.
#[derive(Debug)]
pub enum LinkStream {
    /// A TCP connection (a USB/IP import).
    Tcp(TcpStream),
    /// A Unix stream socket (one end of a socketpair given to `vhci_hcd`).
    Unix(UnixStream),
}

impl LinkStream {
    async fn readable(&self) -> io::Result<()> {
        match self {
            LinkStream::Tcp(s) => s.readable().await,
            LinkStream::Unix(s) => s.readable().await,
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match self {
            LinkStream::Tcp(s) => s.writable().await,
            LinkStream::Unix(s) => s.writable().await,
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            LinkStream::Tcp(s) => s.try_read(buf),
            LinkStream::Unix(s) => s.try_read(buf),
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LinkStream::Tcp(s) => s.try_write(buf),
            LinkStream::Unix(s) => s.try_write(buf),
        }
    }
}

/// A message from the host on the URB stream, checked against the imported device.
#[derive(Debug, PartialEq, Eq)]
pub enum HostCommand {
    /// CMD_SUBMIT.
    Submit(Urb),
    /// CMD_UNLINK `seqnum` of the URB `target`.
    Unlink {
        /// This unlink's seqnum.
        seqnum: u32,
        /// The seqnum of the CMD_SUBMIT to unlink.
        target: u32,
    },
}

/// Why a link ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The host sent something malformed.
    #[error("malformed input: {0}")]
    Protocol(#[from] ProtoError),
    /// The stream ended in the middle of a command.
    #[error("connection closed in the middle of a frame ({0} bytes buffered)")]
    Truncated(usize),
    /// A URB for another device.
    #[error("URB for devid {got:#x}, imported devid is {expected:#x}")]
    WrongDevice {
        /// The imported devid.
        expected: u32,
        /// What the URB named.
        got: u32,
    },
}

impl LinkError {
    /// Peer hang-ups are routine; everything else is worth a warning.
    pub fn is_routine(&self) -> bool {
        matches!(self, LinkError::Io(error) if matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ))
    }
}

/// A host's socket as handed to a key (registered with the key's runtime
/// by [`UrbLink::open`], on the key's thread).
#[derive(Debug)]
pub enum HostSocket {
    /// An imported TCP connection.
    Tcp(std::net::TcpStream),
    /// One end of a socketpair whose other end the local `vhci_hcd` holds.
    Unix(std::os::unix::net::UnixStream),
}

/// One host's URB stream (see the module documentation).
#[derive(Debug)]
pub struct UrbLink {
    stream: LinkStream,
    devid: u32,
    /// Bytes read and not yet decoded.
    input: Vec<u8>,
    /// Where decoding resumes in `input`.
    consumed: usize,
    /// Replies not yet written.
    output: Vec<u8>,
    /// Where writing resumes in `output`.
    written: usize,
    chunk: Box<[u8]>,
    /// The stream reached its end (after `input` is drained, the link is over).
    eof: bool,
}

impl UrbLink {
    /// A link on `socket` for the device `devid`, registered with the
    /// current runtime; `input` holds bytes already read past the import request.
    pub fn open(socket: HostSocket, devid: u32, input: Vec<u8>) -> io::Result<Self> {
        let stream = match socket {
            HostSocket::Tcp(s) => {
                s.set_nonblocking(true)?;
                LinkStream::Tcp(TcpStream::from_std(s)?)
            }
            HostSocket::Unix(s) => {
                s.set_nonblocking(true)?;
                LinkStream::Unix(UnixStream::from_std(s)?)
            }
        };
        Ok(UrbLink::new(stream, devid, input))
    }

    /// A link on `stream` for the device `devid`; `input` holds bytes the
    /// acceptor already read past the import request.
    pub fn new(stream: LinkStream, devid: u32, input: Vec<u8>) -> Self {
        UrbLink {
            stream,
            devid,
            input,
            consumed: 0,
            output: Vec::new(),
            written: 0,
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
            eof: false,
        }
    }

    fn pending_output(&self) -> usize {
        self.output.len() - self.written
    }

    /// Waits until reading makes sense and the stream is readable. Never
    /// completes while replies back up or after the end of the stream.
    pub async fn readable(&self) -> io::Result<()> {
        if self.eof || self.pending_output() > MAX_PENDING_OUT {
            return std::future::pending().await;
        }
        self.stream.readable().await
    }

    /// Waits until replies are pending and the stream is writable.
    pub async fn writable(&self) -> io::Result<()> {
        if self.pending_output() == 0 {
            return std::future::pending().await;
        }
        self.stream.writable().await
    }

    /// Reads what the socket has (up to a budget). Ok(false) when the stream
    /// ended cleanly (a command may still be buffered: drain them first).
    pub fn read_available(&mut self) -> Result<bool, LinkError> {
        let mut total = 0;
        while total < READ_BUDGET && !self.eof {
            match self.stream.try_read(&mut self.chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.input
                        .extend_from_slice(self.chunk.get(..n).unwrap_or_default());
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(!self.eof)
    }

    /// Whether the stream has ended and every whole command was taken.
    pub fn finished(&self) -> Result<bool, LinkError> {
        if !self.eof {
            return Ok(false);
        }
        let left = self.input.len() - self.consumed;
        if left == 0 {
            Ok(true)
        } else if Command::decode(self.input.get(self.consumed..).unwrap_or_default())?.is_some() {
            Ok(false)
        } else {
            Err(LinkError::Truncated(left))
        }
    }

    /// The next whole command read so far, if any.
    pub fn next_command(&mut self) -> Result<Option<HostCommand>, LinkError> {
        let rest = self.input.get(self.consumed..).unwrap_or_default();
        let Some((command, used)) = Command::decode(rest)? else {
            // Compact once everything decoded so far is gone.
            self.input.drain(..self.consumed);
            self.consumed = 0;
            return Ok(None);
        };
        self.consumed += used;
        let devid = self.devid;
        let check = |got: u32| {
            if got == devid {
                Ok(())
            } else {
                Err(LinkError::WrongDevice {
                    expected: devid,
                    got,
                })
            }
        };
        Ok(Some(match command {
            Command::Submit(submit) => {
                check(submit.devid)?;
                HostCommand::Submit(Urb {
                    id: submit.seqnum,
                    endpoint: submit.ep,
                    direction: match submit.direction {
                        Direction::In => UsbDirection::In,
                        Direction::Out => UsbDirection::Out,
                    },
                    setup: submit.setup,
                    buffer_length: submit.transfer_buffer_length as usize,
                    data: submit.data,
                })
            }
            Command::Unlink(unlink) => {
                check(unlink.devid)?;
                HostCommand::Unlink {
                    seqnum: unlink.seqnum,
                    target: unlink.unlink_seqnum,
                }
            }
        }))
    }

    /// Queues RET_SUBMIT for a finished URB.
    pub fn complete(&mut self, completion: &Completion) {
        let actual = u32::try_from(completion.actual_length).unwrap_or(u32::MAX);
        self.output.extend_from_slice(&encode_ret_submit(
            completion.id,
            completion.status,
            actual,
            &completion.data,
        ));
    }

    /// Queues RET_UNLINK.
    pub fn unlinked(&mut self, seqnum: u32, status: i32) {
        self.output
            .extend_from_slice(&encode_ret_unlink(seqnum, status));
    }

    /// Writes queued replies as far as the socket takes them.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.written < self.output.len() {
            let rest = self.output.get(self.written..).unwrap_or_default();
            match self.stream.try_write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
        }
        Ok(())
    }
}
