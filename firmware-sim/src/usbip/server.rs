//! The USB/IP server: a TCP listener and the table of offered keys.
//!
//! The server's task only accepts connections and answers their opening
//! operation (at most [`MAX_HANDSHAKES`] at once, each within
//! [`super::connection::OPEN_TIMEOUT`]); an imported connection is handed to
//! the key, whose own task serves it. Keys are either added here
//! ([`Server::add_key`], any [`ReportCore`]; the server owns and stops them)
//! or by a [`crate::fleet::Fleet`] sharing the server's [`Exports`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;

use super::connection;
use super::exports::{slot_address, Exported, Exports};
use crate::events::{EventBus, KeyId};
use crate::key::runtimes::{self, KeyRuntimes};
use crate::key::task::{self, KeyHandle, KeyLabel, KeyMsg, KeyShared};
use crate::key::{self, ReportCore, UsbIdentity};

/// The most connections in their opening operation at once; more are
/// closed at once (imports are further limited to one per key).
pub const MAX_HANDSHAKES: usize = 64;

/// A USB/IP server exporting simulated keys.
///
/// Each key gets its own busid (`1-1`, `1-2`, …), runs as a task on the
/// shared key runtimes, and can be imported by one connection at a time.
/// Any number of connections may list devices meanwhile.
///
/// `run` must be awaited inside a tokio runtime with I/O and time enabled
/// (e.g. `#[tokio::main]` or `Builder::new_current_thread().enable_all()`).
///
/// ```no_run
/// # async fn example(core: impl firmware_sim::key::ReportCore + Send + 'static) -> std::io::Result<()> {
/// use std::sync::Arc;
/// use firmware_sim::usbip::{Server, UsbIdentity};
///
/// let mut server = Server::bind("127.0.0.1:3240".parse().unwrap()).await?;
/// let wake = Arc::new(tokio::sync::Notify::new()); // also given to the key's presence
/// let identity = UsbIdentity {
///     vendor_id: 0x1209,
///     product_id: 0xF1D0,
///     device_release: 0x0100,
///     manufacturer: "ferrokey".into(),
///     product: "ferrokey FIDO2 key".into(),
///     serial: "0001".into(),
/// };
/// let busid = server.add_key(identity, core, wake)?; // "1-1"
/// println!("usbip attach -r 127.0.0.1 -b {busid}");
/// server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct Server {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    exports: Arc<Exports>,
    /// Keys added with [`Server::add_key`]: stopped when the server stops.
    owned: Vec<(usize, KeyHandle)>,
    runtimes: Option<KeyRuntimes>,
    bus: EventBus,
}

/// A server running on its own thread (see [`Server::spawn`]). Dropping it stops
/// the server too.
pub struct BackgroundServer {
    local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl BackgroundServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the server and waits until every connection and key is gone.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("USB/IP server thread panicked")),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Err(error) = self.stop_inner() {
            tracing::warn!(%error, "USB/IP server ended with an error");
        }
    }
}

/// The power switch of one key, for a control API (see `crate::control`): it
/// "unplugs" and "replugs" the key while the server runs. It holds no strong
/// reference to the key, so it never keeps a stopped key alive.
#[derive(Clone, Debug)]
pub struct KeySwitch {
    busid: String,
    tx: mpsc::WeakUnboundedSender<KeyMsg>,
    shared: Arc<KeyShared>,
}

impl KeySwitch {
    /// The switch of an exported key.
    pub(crate) fn new(
        busid: String,
        tx: &mpsc::UnboundedSender<KeyMsg>,
        shared: Arc<KeyShared>,
    ) -> Self {
        KeySwitch {
            busid,
            tx: tx.downgrade(),
            shared,
        }
    }

    /// The key's busid (`1-N`).
    pub fn busid(&self) -> &str {
        &self.busid
    }

    /// Whether the key has power.
    pub fn is_powered(&self) -> bool {
        self.shared.is_powered()
    }

    /// Whether a host has imported the key.
    pub fn is_attached(&self) -> bool {
        self.shared.is_attached()
    }

    /// Unplugs (`false`) or replugs (`true`) the key, and returns once the key
    /// has done it. Off: the importing connection is closed, imports are
    /// refused from now on, and the core loses its volatile state. On: the core
    /// powers up from its persistent state and imports are accepted again.
    ///
    /// Returns whether the key has power afterwards (false after a failed
    /// power-up), or `None` if the key has stopped.
    pub async fn set_power(&self, on: bool) -> Option<bool> {
        let tx = self.tx.upgrade()?;
        set_power(&tx, &self.shared, on).await
    }
}

/// Sends the power switch to a key and waits for its answer (see
/// [`KeySwitch::set_power`]).
pub(crate) async fn set_power(
    tx: &mpsc::UnboundedSender<KeyMsg>,
    shared: &KeyShared,
    on: bool,
) -> Option<bool> {
    if !on {
        // Refuse imports before the key even sees the message.
        shared
            .powered
            .store(false, std::sync::atomic::Ordering::Release);
    }
    let (done, result) = tokio::sync::oneshot::channel();
    tx.send(KeyMsg::Power { on, done }).ok()?;
    result.await.ok()
}

impl Server {
    /// Binds the listening socket (`SO_REUSEADDR`, backlog 128). Warns when `addr` is not a loopback address:
    /// anyone who can reach it can use the keys.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_blocking(addr)
    }

    /// [`Server::bind`] without a runtime (binding never blocks for long).
    pub fn bind_blocking(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(addr, Exports::new())
    }

    /// Binds a server offering the keys of `exports` (shared with a fleet).
    pub fn bind_with(addr: SocketAddr, exports: Arc<Exports>) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "USB/IP server listening on a non-loopback address: anyone who can reach it can use the keys"
            );
        }
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        // Lets a restarted server rebind while old connections sit in TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(128)?;
        socket.set_nonblocking(true)?;
        let listener = std::net::TcpListener::from(socket);
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            exports,
            owned: Vec::new(),
            runtimes: None,
            bus: EventBus::new(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The offered keys.
    pub fn exports(&self) -> &Arc<Exports> {
        &self.exports
    }

    /// Adds a key and returns its busid (`"1-1"`, `"1-2"`, … in order).
    ///
    /// `core` is the key's ferrokey core, usually a
    /// `ferrokey::device::Device<A>`; it moves to the key's task. `wake`
    /// wakes the key so it calls `core.tick` (use `notify_one`), e.g. when the
    /// user answers a presence prompt. Fails if a USB string is too long or
    /// the key runtimes cannot start.
    pub fn add_key<C: ReportCore + Send + 'static>(
        &mut self,
        identity: UsbIdentity,
        core: C,
        wake: Arc<Notify>,
    ) -> io::Result<String> {
        let runtimes = match &self.runtimes {
            Some(runtimes) => runtimes.clone(),
            None => {
                let started = KeyRuntimes::new(runtimes::default_threads())?;
                self.runtimes = Some(started.clone());
                started
            }
        };
        let index = self
            .exports
            .reserve(None)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let (busnum, devnum, busid) = slot_address(index);
        let info = key::device_info(&busid, busnum, devnum, &identity);
        let label = KeyLabel {
            id: KeyId(index as u64 + 1),
            name: busid.clone(),
            bus: self.bus.clone(),
        };
        let handle = match task::spawn(
            &runtimes,
            label,
            identity,
            core,
            wake,
            task::KeyTransport::Usb,
        ) {
            Ok(handle) => handle,
            Err(error) => {
                self.exports.withdraw(index);
                return Err(error);
            }
        };
        self.exports.publish(
            index,
            Exported {
                info,
                tx: handle.tx.clone(),
                shared: Arc::clone(&handle.shared),
            },
        );
        self.owned.push((index, handle));
        Ok(busid)
    }

    /// The power switches of the keys offered so far, in busid order.
    pub fn key_switches(&self) -> Vec<KeySwitch> {
        self.exports
            .all()
            .into_iter()
            .map(|k| KeySwitch::new(k.info.busid.clone(), &k.tx, k.shared))
            .collect()
    }

    /// Runs the server on a new thread with its own single-threaded runtime, until
    /// [`BackgroundServer::stop`] or drop. For tests, tools and programs without
    /// a tokio runtime of their own.
    pub fn spawn(self) -> io::Result<BackgroundServer> {
        let local_addr = self.local_addr;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ferrokey-usbip".into())
            .spawn(move || {
                runtime.block_on(self.run(async {
                    // A dropped sender also means stop.
                    let _ = stopped.await;
                }))
            })?;
        Ok(BackgroundServer {
            local_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The busids of the keys offered so far.
    pub fn busids(&self) -> Vec<String> {
        self.exports.infos().into_iter().map(|i| i.busid).collect()
    }

    /// Serves connections until `shutdown` completes, then closes the
    /// listener and the connections in their opening operation, and stops
    /// the keys added with [`Server::add_key`] (their cores are dropped
    /// before this returns). Keys of a fleet are the fleet's to stop.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Server {
            listener,
            local_addr,
            exports,
            owned,
            runtimes,
            bus: _,
        } = self;
        let listener = TcpListener::from_std(listener)?;
        tracing::info!(%local_addr, keys = exports.infos().len(), "USB/IP server running");
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                            tracing::warn!(%peer, "too many USB/IP connections opening at once; closing one");
                            continue;
                        };
                        let exports = Arc::clone(&exports);
                        connections.spawn(async move {
                            connection::serve(stream, peer, &exports).await;
                            drop(permit);
                        });
                    }
                    Err(error) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(error) = joined {
                        if error.is_panic() {
                            tracing::error!("USB/IP connection task panicked");
                        }
                    }
                }
            }
        }
        tracing::info!(%local_addr, "USB/IP server shutting down");
        drop(listener);
        connections.shutdown().await;
        for (index, handle) in owned {
            exports.withdraw(index);
            let _ = handle.tx.send(KeyMsg::Stop);
            drop(handle.tx);
            // Ends when the task has finished and dropped its core.
            let _ = handle.done.await;
        }
        if let Some(runtimes) = runtimes {
            let joined = tokio::task::spawn_blocking(move || runtimes.join()).await;
            if joined.is_err() {
                tracing::error!("the key runtimes did not stop cleanly");
            }
        }
        Ok(())
    }
}
