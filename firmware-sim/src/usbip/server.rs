//! The USB/IP server: a TCP listener, the exported keys, and one task per connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

use super::connection;
use super::proto::DeviceInfo;
use crate::key::{self, KeyHandle, KeyMsg, ReportCore, UsbIdentity};

/// The bus number all keys are listed on.
const BUSNUM: u32 = 1;

/// A USB/IP server exporting one or more simulated keys.
///
/// Each key gets its own busid (`1-1`, `1-2`, …), its own thread and USB stack,
/// and can be imported by one connection at a time. Any number of connections
/// may list devices meanwhile.
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
    keys: Vec<KeyHandle>,
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

/// One exported key as the connections see it.
pub(crate) struct KeyEntry {
    /// Device-list record.
    pub info: DeviceInfo,
    /// Messages to the key's thread.
    pub tx: mpsc::UnboundedSender<KeyMsg>,
    /// Whether a live connection has imported the key.
    busy: Arc<AtomicBool>,
    /// Whether the key has power; imports are refused while it has none.
    powered: Arc<AtomicBool>,
}

impl KeyEntry {
    /// Whether the key has power (see [`KeySwitch`]).
    pub fn is_powered(&self) -> bool {
        self.powered.load(Ordering::Acquire)
    }

    /// Claims the key for one connection; `None` if another connection holds it.
    pub fn claim(&self) -> Option<Claim<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Claim {
                entry: self,
                session: None,
            })
    }
}

/// A connection's hold on a key. Dropping it (connection closed, failed or
/// aborted) detaches and resets the key, then frees it for the next import.
pub(crate) struct Claim<'a> {
    entry: &'a KeyEntry,
    session: Option<u64>,
}

impl Claim<'_> {
    /// Attaches the key to a new session whose completions go to `replies`.
    /// False if the key's thread is gone.
    pub fn attach(&mut self, session: u64, replies: mpsc::UnboundedSender<key::Reply>) -> bool {
        self.session = Some(session);
        self.entry
            .tx
            .send(KeyMsg::Attach { session, replies })
            .is_ok()
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session {
            // Sent before the key is freed: the channel is FIFO, so the next
            // import's Attach always finds the key reset.
            let _ = self.entry.tx.send(KeyMsg::Detach { session });
        }
        self.entry.busy.store(false, Ordering::Release);
    }
}

/// The power switch of one key, for a control API (see `crate::control`): it
/// "unplugs" and "replugs" the key while the server runs. It holds no strong
/// reference to the key, so it never keeps a stopped server's keys alive.
#[derive(Clone, Debug)]
pub struct KeySwitch {
    busid: String,
    tx: mpsc::WeakUnboundedSender<KeyMsg>,
    busy: Arc<AtomicBool>,
    powered: Arc<AtomicBool>,
}

impl KeySwitch {
    /// The key's busid (`1-N`).
    pub fn busid(&self) -> &str {
        &self.busid
    }

    /// Whether the key has power.
    pub fn is_powered(&self) -> bool {
        self.powered.load(Ordering::Acquire)
    }

    /// Whether a connection has imported the key.
    pub fn is_attached(&self) -> bool {
        self.busy.load(Ordering::Acquire)
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
        if !on {
            // Refuse imports before the key even sees the message.
            self.powered.store(false, Ordering::Release);
        }
        let (done, result) = tokio::sync::oneshot::channel();
        tx.send(KeyMsg::Power { on, done }).ok()?;
        // Not holding a strong sender while waiting: a stopping server must
        // be able to end the key.
        drop(tx);
        result.await.ok()
    }
}

/// What connections share.
pub(crate) struct Registry {
    pub keys: Vec<KeyEntry>,
    next_session: AtomicU64,
}

impl Registry {
    /// The key exported under `busid`.
    pub fn find(&self, busid: &str) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.info.busid == busid)
    }

    /// Device-list records of all keys.
    pub fn infos(&self) -> Vec<DeviceInfo> {
        self.keys.iter().map(|k| k.info.clone()).collect()
    }

    /// A fresh session id.
    pub fn new_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}

impl Server {
    /// Binds the listening socket (`SO_REUSEADDR`, backlog 128). Warns when `addr` is not a loopback address:
    /// anyone who can reach it can use the keys.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_blocking(addr)
    }

    /// [`Server::bind`] without a runtime (binding never blocks for long).
    pub fn bind_blocking(addr: SocketAddr) -> io::Result<Self> {
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
            keys: Vec::new(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Adds a key and returns its busid (`"1-1"`, `"1-2"`, … in order).
    ///
    /// `core` is the key's ferrokey core, usually a
    /// `ferrokey::device::Device<A>`; it moves to the key's own thread. `wake`
    /// wakes the key so it calls `core.tick` (use `notify_one`), e.g. when the
    /// user answers a presence prompt. Fails if a USB string is too long or the
    /// key's thread cannot start.
    pub fn add_key<C: ReportCore + Send + 'static>(
        &mut self,
        identity: UsbIdentity,
        core: C,
        wake: Arc<Notify>,
    ) -> io::Result<String> {
        let devnum = u32::try_from(self.keys.len() + 1)
            .ok()
            .filter(|&n| n < 128)
            .ok_or_else(|| io::Error::other("too many keys on one server"))?;
        let busid = format!("{BUSNUM}-{devnum}");
        let info = key::device_info(&busid, BUSNUM, devnum, &identity);
        let handle = key::spawn(busid.clone(), info, identity, core, wake)?;
        self.keys.push(handle);
        Ok(busid)
    }

    /// The power switches of the keys added so far, in busid order.
    pub fn key_switches(&self) -> Vec<KeySwitch> {
        self.keys
            .iter()
            .map(|k| KeySwitch {
                busid: k.busid.clone(),
                tx: k.tx.downgrade(),
                busy: Arc::clone(&k.busy),
                powered: Arc::clone(&k.powered),
            })
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

    /// The busids of the keys added so far.
    pub fn busids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.busid.clone()).collect()
    }

    /// Serves connections until `shutdown` completes, then closes every
    /// connection and stops the keys (their cores are dropped on their threads
    /// before this returns).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Server {
            listener,
            local_addr,
            keys,
        } = self;
        let mut threads = Vec::with_capacity(keys.len());
        let mut entries = Vec::with_capacity(keys.len());
        for handle in keys {
            threads.push(handle.thread);
            entries.push(KeyEntry {
                info: handle.info,
                tx: handle.tx,
                busy: handle.busy,
                powered: handle.powered,
            });
        }
        let listener = TcpListener::from_std(listener)?;
        let registry = Arc::new(Registry {
            keys: entries,
            next_session: AtomicU64::new(1),
        });
        tracing::info!(%local_addr, keys = registry.keys.len(), "USB/IP server running");

        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(connection::serve(stream, peer, Arc::clone(&registry)));
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
        // The last senders go with the registry: each key thread then resets its
        // core and exits.
        drop(registry);
        for thread in threads {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("a key thread panicked");
            }
        }
        Ok(())
    }
}
