//! The threads the keys run on: a few single-threaded tokio runtimes, each
//! with a `LocalSet`, shared by all keys.
//!
//! A key is one `!Send` task on one of them (see [`crate::key::task`]): its
//! async block owns the `UsbBusAllocator`, and the USB device and class borrow
//! it across awaits, which `usb-device`'s lifetimes allow inside one future.
//! A key never moves between threads, so it needs no locks, and the socket of
//! the host that imported it is served by the same task: a report costs no
//! thread hand-off. Keys go to the runtime with the fewest keys.
//!
//! An idle runtime parks in `epoll_wait` with no timer armed: no wakeups.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

/// A job: builds the key's future on its runtime thread.
type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    /// Live tasks on this worker.
    load: Arc<AtomicUsize>,
}

/// The shared key runtimes; clones share them. The threads end when every
/// clone is gone and every task on them has finished.
#[derive(Clone)]
pub struct KeyRuntimes {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<Worker>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for KeyRuntimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRuntimes")
            .field("threads", &self.inner.workers.len())
            .finish()
    }
}

/// The default number of key runtimes: one per available core, at most 8.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

impl KeyRuntimes {
    /// Starts `threads` runtimes (at least one).
    pub fn new(threads: usize) -> io::Result<Self> {
        let mut workers = Vec::new();
        let mut handles = Vec::new();
        for index in 0..threads.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
            let load = Arc::new(AtomicUsize::new(0));
            let thread = std::thread::Builder::new()
                .name(format!("ferrokey-keys-{index}"))
                .spawn(move || {
                    let local = tokio::task::LocalSet::new();
                    runtime.block_on(async {
                        local
                            .run_until(async {
                                while let Some(job) = rx.recv().await {
                                    tokio::task::spawn_local(job());
                                }
                            })
                            .await;
                        // No new keys: let the running ones finish.
                        local.await;
                    });
                })?;
            workers.push(Worker { jobs, load });
            handles.push(thread);
        }
        Ok(KeyRuntimes {
            inner: Arc::new(Inner {
                workers,
                threads: Mutex::new(handles),
            }),
        })
    }

    /// The number of runtime threads.
    pub fn threads(&self) -> usize {
        self.inner.workers.len()
    }

    /// Runs the future `make` builds on the least loaded runtime. The
    /// returned receiver completes when the future has finished (or was
    /// dropped because its runtime stopped).
    pub fn spawn<F, Fut>(&self, make: F) -> io::Result<oneshot::Receiver<()>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let worker = self
            .inner
            .workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .ok_or_else(|| io::Error::other("no key runtime"))?;
        let (done_tx, done) = oneshot::channel();
        let load = Arc::clone(&worker.load);
        load.fetch_add(1, Ordering::Relaxed);
        let guard = LoadGuard(Arc::clone(&load));
        let job: Job = Box::new(move || {
            Box::pin(async move {
                let _guard = guard;
                make().await;
                let _ = done_tx.send(());
            })
        });
        worker
            .jobs
            .send(job)
            .map_err(|_| io::Error::other("the key runtime has stopped"))?;
        Ok(done)
    }

    /// Stops accepting keys and waits (blocking) until every runtime thread
    /// has ended, i.e. every key task has finished. Call it after the keys
    /// were told to stop; other clones keep the runtimes alive.
    pub fn join(self) {
        let Ok(inner) = Arc::try_unwrap(self.inner) else {
            return;
        };
        let Inner { workers, threads } = inner;
        drop(workers);
        let threads = threads.into_inner().unwrap_or_else(|p| p.into_inner());
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a key runtime thread panicked");
            }
        }
    }
}

/// Decrements a worker's load when its task ends (or its job is dropped).
struct LoadGuard(Arc<AtomicUsize>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn tasks_spread_over_runtimes_and_may_be_not_send() {
        let runtimes = KeyRuntimes::new(2).unwrap();
        assert_eq!(runtimes.threads(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut done = Vec::new();
        let gates: Vec<_> = (0..4).map(|_| oneshot::channel::<()>()).collect();
        let mut releases = Vec::new();
        for (release, gate) in gates {
            releases.push(release);
            let tx = tx.clone();
            done.push(
                runtimes
                    .spawn(move || async move {
                        // Rc is !Send: the task stays on its thread.
                        let name = Rc::new(std::thread::current().name().map(String::from));
                        let _ = gate.await;
                        tx.send((*name).clone()).unwrap();
                    })
                    .unwrap(),
            );
        }
        drop(releases);
        let mut names: Vec<String> = (0..4).map(|_| rx.recv().unwrap().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names, ["ferrokey-keys-0", "ferrokey-keys-1"]);
        for d in done {
            futures_lite_block_on(d).unwrap();
        }
        runtimes.join();
    }

    fn futures_lite_block_on<T>(rx: oneshot::Receiver<T>) -> Result<T, oneshot::error::RecvError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(rx)
    }
}
