//! `ferrokey serve --transcript FILE`: every bus event as a JSON line (the
//! same lines `GET /events` streams), for a CI job to keep as an artifact.
//! The file is created 0600 (it names relying parties and users) and each
//! line is flushed as it is written, so a killed server leaves a complete
//! transcript up to its last event.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tokio::sync::broadcast::error::RecvError;

use super::feed::{Feed, Line};
use crate::events::EventBus;

/// An open transcript file.
#[derive(Debug)]
pub struct Transcript {
    out: BufWriter<File>,
}

impl Transcript {
    /// Creates (or truncates) `path`, mode 0600.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        Ok(Transcript {
            out: BufWriter::new(file),
        })
    }

    /// Writes the events of `bus` until it closes (subscribed at once, so
    /// nothing published after this call is missed); the events published
    /// before [`EventBus::close`] are all written before the future ends.
    pub fn follow(mut self, bus: &EventBus) -> impl std::future::Future<Output = io::Result<()>> {
        let mut receiver = bus.subscribe();
        let bus = bus.clone();
        async move {
            let mut feed = Feed::new();
            loop {
                let received = tokio::select! {
                    biased;
                    received = receiver.recv() => received,
                    () = bus.closed() => return Ok(()),
                };
                match received {
                    Ok(event) => {
                        for line in feed.lines(&event) {
                            self.write(&line)?;
                        }
                    }
                    Err(RecvError::Lagged(missed)) => self.write(&Feed::lagged(missed))?,
                    Err(RecvError::Closed) => return Ok(()),
                }
            }
        }
    }

    fn write(&mut self, line: &Line) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &line.json)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, KeyId};
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn lines_are_written_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let bus = EventBus::new();
        let task = tokio::spawn(Transcript::create(&path).unwrap().follow(&bus));
        bus.publish(
            KeyId(1),
            EventKind::Plugged,
            serde_json::json!({"busid": "1-1"}),
        );
        bus.publish(KeyId(1), EventKind::PowerOff, serde_json::Value::Null);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 2 {
                let first: serde_json::Value =
                    serde_json::from_str(text.lines().next().unwrap()).unwrap();
                assert_eq!(first["event"], "plugged");
                assert_eq!(first["data"]["busid"], "1-1");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{text}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_close_ends_the_transcript_after_every_event_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let bus = EventBus::new();
        let task = tokio::spawn(Transcript::create(&path).unwrap().follow(&bus));
        for n in 1..=50 {
            bus.publish(KeyId(n), EventKind::PowerOff, serde_json::Value::Null);
        }
        bus.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the transcript did not end after the bus closed")
            .unwrap()
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 50, "{text}");
    }
}
