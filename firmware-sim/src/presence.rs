//! User presence policies: the simulated "touch" of the key.
//!
//! - [`PresenceMode::Auto`]: every request is approved at once (the default: ferrokey
//!   is mostly run by tests and CI, where nobody is there to touch anything).
//! - [`PresenceMode::Deny`]: every request is refused at once.
//! - [`PresenceMode::Touch`]: a request is approved only while the key's
//!   simulated button is held ([`PresenceSwitch::set_touch`], e.g. from the
//!   control API's `/usbN/touch/on`); otherwise it waits for its timeout.
//! - [`PresenceMode::Prompt`]: the request is shown on stderr and answered on stdin
//!   (Enter approves, `n` + Enter denies). One [`PromptHub`] serves all keys of a
//!   process: each line answers the oldest outstanding request.
//! - `--presence-file PATH` ([`Presence::file`]): the answer is read from a file at
//!   every poll, so a test can change it while the key runs: `approve`, `deny`, or
//!   anything else (or no file) to leave the request pending.
//!
//! Every mode also has a runtime [`PresenceSwitch`]: holding
//! its button approves, and its policy override replaces the mode.
//!
//! Built-in user verification (the simulated fingerprint sensor of `--uv`,
//! [`UvMode`]) is answered here too ([`UserPresence::verify_user`]): `auto`
//! verifies, `deny` fails; the switch's UV override replaces the mode.
//!
//! An unanswered request is ended by the core's timeout (it calls
//! [`UserPresence::cancel`]). When an answer arrives from another thread, the key is
//! woken through the `Arc<tokio::sync::Notify>` it was created with, so it polls again.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use ferrokey::platform::{PresenceStatus, UserPresence, UvStatus};
use tokio::sync::Notify;

mod switch;

pub use switch::{Policy, PresenceSwitch};

/// The presence policy chosen on the command line.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PresenceMode {
    /// Approve every request at once.
    Auto,
    /// Refuse every request at once.
    Deny,
    /// Ask on the terminal: Enter approves, `n` + Enter denies.
    Prompt,
    /// Approve only while the simulated button is held (`--control`'s
    /// `/usbN/touch/on`).
    Touch,
}

/// Built-in user verification, chosen on the command line (`--uv`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum UvMode {
    /// No built-in method: PIN-only, like most security keys (getInfo has no
    /// `uv` option).
    #[default]
    Off,
    /// A built-in method (a simulated fingerprint sensor) that verifies the
    /// user at once, every time.
    Auto,
    /// A built-in method that never matches: every attempt fails and spends
    /// one of the key's uvRetries.
    Deny,
}

impl UvMode {
    /// Whether the key has built-in user verification.
    pub fn is_builtin(self) -> bool {
        self != UvMode::Off
    }

    /// The answer of the built-in method in this mode.
    pub fn answer(self) -> UvStatus {
        match self {
            UvMode::Auto => UvStatus::Verified,
            UvMode::Off | UvMode::Deny => UvStatus::Failed,
        }
    }

    /// The mode's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            UvMode::Off => "off",
            UvMode::Auto => "auto",
            UvMode::Deny => "deny",
        }
    }
}

/// A label for a key in prompts (its USB/IP bus id), settable after the key was
/// created, since the bus id is known only once the key is added to the server.
#[derive(Clone, Debug, Default)]
pub struct Label(Arc<Mutex<String>>);

impl Label {
    /// Replaces the label.
    pub fn set(&self, text: &str) {
        *lock(&self.0) = text.to_string();
    }

    /// The current label.
    pub fn get(&self) -> String {
        lock(&self.0).clone()
    }
}

/// Locks a mutex, recovering the data if a thread panicked while holding it (the
/// data here is always left consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One key's user presence; implements the core's [`UserPresence`].
#[derive(Debug)]
pub struct Presence {
    kind: Kind,
    /// A request is outstanding (set by `request`, cleared by an answer or `cancel`).
    pending: bool,
    wake: Arc<Notify>,
    label: Label,
    switch: PresenceSwitch,
    /// How built-in user verification answers without a switch override.
    uv: UvMode,
    /// The last presence request was approved (by a touch): the fingerprint
    /// sensor's next read sees the touching finger.
    touched_for_sensor: bool,
}

#[derive(Debug)]
enum Kind {
    Fixed(PresenceStatus),
    File(PathBuf),
    /// Approved only while the switch's button is held.
    Touch,
    Prompt {
        hub: Arc<PromptHub>,
        slot: Arc<Mutex<Slot>>,
    },
}

impl Presence {
    fn with_kind(kind: Kind, wake: Arc<Notify>, label: Label) -> Self {
        Presence {
            kind,
            pending: false,
            switch: PresenceSwitch::new(wake.clone()),
            wake,
            label,
            uv: UvMode::Off,
            touched_for_sensor: false,
        }
    }

    /// Answers built-in user verification as `mode` says (without it, every
    /// verification fails; the core asks only when it has built-in UV).
    pub fn with_uv(mut self, mode: UvMode) -> Self {
        self.uv = mode;
        self
    }

    /// Approves every request at once.
    pub fn auto(wake: Arc<Notify>) -> Self {
        Presence::with_kind(
            Kind::Fixed(PresenceStatus::Approved),
            wake,
            Label::default(),
        )
    }

    /// Refuses every request at once.
    pub fn deny(wake: Arc<Notify>) -> Self {
        Presence::with_kind(Kind::Fixed(PresenceStatus::Denied), wake, Label::default())
    }

    /// Approves only while the button of [`Presence::switch`] is held.
    pub fn touch(wake: Arc<Notify>) -> Self {
        Presence::with_kind(Kind::Touch, wake, Label::default())
    }

    /// Answers from the contents of `path`, read at every poll.
    pub fn file(path: PathBuf, wake: Arc<Notify>) -> Self {
        Presence::with_kind(Kind::File(path), wake, Label::default())
    }

    /// Asks through `hub` (the terminal).
    pub fn prompt(hub: Arc<PromptHub>, wake: Arc<Notify>) -> Self {
        let slot = Arc::new(Mutex::new(Slot {
            state: SlotState::Idle,
            wake: wake.clone(),
            label: Label::default(),
        }));
        let label = lock(&slot).label.clone();
        Presence::with_kind(Kind::Prompt { hub, slot }, wake, label)
    }

    /// The label shown in prompts; set it to the key's bus id.
    pub fn label(&self) -> Label {
        self.label.clone()
    }

    /// Uses `label` (shared, e.g. with the presence of the key's next
    /// power-up) instead of this presence's own.
    pub fn with_label(mut self, label: Label) -> Self {
        if let Kind::Prompt { slot, .. } = &self.kind {
            lock(slot).label = label.clone();
        }
        self.label = label;
        self
    }

    /// This presence's runtime switch (touch and policy override).
    pub fn switch(&self) -> PresenceSwitch {
        self.switch.clone()
    }

    /// Uses `switch` (shared, e.g. with the control API and with the presence
    /// of the key's next power-up) instead of this presence's own.
    pub fn with_switch(mut self, switch: PresenceSwitch) -> Self {
        self.switch = switch;
        self
    }

    /// The mode's own answer to the outstanding request.
    fn mode_answer(&mut self) -> PresenceStatus {
        match &mut self.kind {
            Kind::Fixed(answer) => *answer,
            Kind::File(path) => read_answer_file(path),
            Kind::Touch => PresenceStatus::Pending,
            Kind::Prompt { slot, .. } => {
                let mut slot = lock(slot);
                match slot.state {
                    SlotState::Answered(answer) => {
                        slot.state = SlotState::Idle;
                        answer
                    }
                    _ => PresenceStatus::Pending,
                }
            }
        }
    }
}

impl UserPresence for Presence {
    fn request(&mut self, _now_ms: u64) {
        self.pending = true;
        self.touched_for_sensor = false;
        match &mut self.kind {
            Kind::Prompt { hub, slot } => hub.request(slot),
            // Let the key poll right away instead of at its next timer tick.
            _ => self.wake.notify_one(),
        }
    }

    fn poll(&mut self, _now_ms: u64) -> PresenceStatus {
        if !self.pending {
            return PresenceStatus::Pending;
        }
        let answer = match self.switch.decide() {
            Some(answer) => {
                if answer != PresenceStatus::Pending {
                    // Decided by the switch: withdraw a terminal prompt.
                    if let Kind::Prompt { hub, slot } = &self.kind {
                        hub.cancel(slot);
                    }
                }
                answer
            }
            None => self.mode_answer(),
        };
        if answer != PresenceStatus::Pending {
            self.pending = false;
        }
        self.touched_for_sensor = answer == PresenceStatus::Approved;
        answer
    }

    fn cancel(&mut self) {
        self.pending = false;
        if let Kind::Prompt { hub, slot } = &self.kind {
            hub.cancel(slot);
        }
    }

    /// The fingerprint sensor: a finger placed through the control API
    /// (`bio/finger`), else the finger that just gave an approved touch (0),
    /// else 0 when the key would approve a touch right now (auto, a held
    /// button, an approve override or presence file), else nothing.
    fn read_finger(&mut self, _now_ms: u64) -> Option<u8> {
        let reading = if let Some(finger) = self.switch.take_finger() {
            Some(finger)
        } else if std::mem::take(&mut self.touched_for_sensor) {
            Some(0)
        } else {
            let would_approve = match self.switch.decide() {
                Some(answer) => answer == PresenceStatus::Approved,
                None => match &self.kind {
                    Kind::Fixed(answer) => *answer == PresenceStatus::Approved,
                    Kind::File(path) => read_answer_file(path) == PresenceStatus::Approved,
                    Kind::Touch | Kind::Prompt { .. } => false,
                },
            };
            would_approve.then_some(0)
        };
        tracing::info!(key = %self.label.get(), finger = ?reading, "fingerprint sensor read");
        reading
    }

    fn verify_user(&mut self, _now_ms: u64) -> UvStatus {
        let answer = self.switch.uv_policy().unwrap_or(self.uv.answer());
        tracing::info!(key = %self.label.get(), verified = answer == UvStatus::Verified,
            "built-in user verification");
        answer
    }
}

/// Reads a presence file: `approve` (or `yes`) approves, `deny` (or `no`) denies,
/// anything else or no file leaves the request pending.
fn read_answer_file(path: &std::path::Path) -> PresenceStatus {
    match fs::read_to_string(path) {
        Ok(text) => match text.trim().to_ascii_lowercase().as_str() {
            "approve" | "approved" | "yes" | "y" => PresenceStatus::Approved,
            "deny" | "denied" | "no" | "n" => PresenceStatus::Denied,
            _ => PresenceStatus::Pending,
        },
        Err(_) => PresenceStatus::Pending,
    }
}

/// The prompt state of one key.
#[derive(Debug)]
struct Slot {
    state: SlotState,
    wake: Arc<Notify>,
    label: Label,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Idle,
    /// Waiting for an answer to request number `.0`.
    Waiting(u64),
    Answered(PresenceStatus),
}

/// The terminal shared by the prompting keys of a process: prompts go to a writer
/// (stderr), answers come line by line from a reader (stdin) on a background thread.
pub struct PromptHub {
    inner: Mutex<HubState>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for PromptHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptHub").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct HubState {
    /// Outstanding requests, oldest first: the slot and the request number it had.
    queue: VecDeque<(Arc<Mutex<Slot>>, u64)>,
    next_seq: u64,
    input_closed: bool,
}

impl PromptHub {
    /// A hub prompting on stderr and reading answers from stdin on a new thread.
    pub fn stdio() -> io::Result<Arc<Self>> {
        let hub = PromptHub::new(Box::new(io::stderr()));
        let reader = hub.clone();
        std::thread::Builder::new()
            .name("presence-stdin".into())
            .spawn(move || reader.read_answers(io::stdin().lock()))?;
        Ok(hub)
    }

    /// A hub writing prompts to `out`; feed it answers with [`PromptHub::answer_line`]
    /// or [`PromptHub::read_answers`].
    pub fn new(out: Box<dyn Write + Send>) -> Arc<Self> {
        Arc::new(PromptHub {
            inner: Mutex::new(HubState::default()),
            out: Mutex::new(out),
        })
    }

    /// Reads answer lines from `input` until it ends.
    pub fn read_answers(&self, input: impl BufRead) {
        for line in input.lines() {
            match line {
                Ok(line) => self.answer_line(&line),
                Err(e) => {
                    tracing::warn!(error = %e, "reading presence answers from stdin failed");
                    break;
                }
            }
        }
        lock(&self.inner).input_closed = true;
        if self.has_pending() {
            self.say("ferrokey: stdin closed; outstanding touch requests will time out");
        }
    }

    fn say(&self, text: &str) {
        let mut out = lock(&self.out);
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn prompt_text(label: &str) -> String {
        format!("ferrokey {label}: touch requested — press Enter to approve, n+Enter to deny")
    }

    fn has_pending(&self) -> bool {
        let mut state = lock(&self.inner);
        state.queue.retain(|(slot, seq)| is_waiting(slot, *seq));
        !state.queue.is_empty()
    }

    fn request(&self, slot: &Arc<Mutex<Slot>>) {
        let (seq, closed) = {
            let mut state = lock(&self.inner);
            let seq = state.next_seq;
            state.next_seq += 1;
            state.queue.retain(|(s, _)| !Arc::ptr_eq(s, slot));
            state.queue.push_back((slot.clone(), seq));
            (seq, state.input_closed)
        };
        let label = {
            let mut s = lock(slot);
            s.state = SlotState::Waiting(seq);
            s.label.get()
        };
        self.say(&PromptHub::prompt_text(&label));
        if closed {
            self.say("ferrokey: stdin is closed; this request will time out");
        }
    }

    fn cancel(&self, slot: &Arc<Mutex<Slot>>) {
        let was_waiting = {
            let mut s = lock(slot);
            let waiting = matches!(s.state, SlotState::Waiting(_));
            s.state = SlotState::Idle;
            waiting
        };
        lock(&self.inner)
            .queue
            .retain(|(s, _)| !Arc::ptr_eq(s, slot));
        if was_waiting {
            let label = lock(slot).label.get();
            self.say(&format!("ferrokey {label}: touch request withdrawn"));
        }
    }

    /// Answers the oldest outstanding request with one line of input: empty, `y` or
    /// `yes` approves; `n` or `no` denies.
    pub fn answer_line(&self, line: &str) {
        let answer = match line.trim().to_ascii_lowercase().as_str() {
            "" | "y" | "yes" => PresenceStatus::Approved,
            "n" | "no" => PresenceStatus::Denied,
            _ => {
                self.say("ferrokey: press Enter to approve, or n then Enter to deny");
                return;
            }
        };
        let (target, next) = {
            let mut state = lock(&self.inner);
            state.queue.retain(|(slot, seq)| is_waiting(slot, *seq));
            let target = state.queue.pop_front();
            let next = state.queue.front().map(|(slot, _)| slot.clone());
            (target, next)
        };
        let Some((slot, _)) = target else {
            self.say("ferrokey: no touch request is pending");
            return;
        };
        let label = {
            let mut s = lock(&slot);
            s.state = SlotState::Answered(answer);
            s.wake.notify_one();
            s.label.get()
        };
        let verb = if answer == PresenceStatus::Approved {
            "approved"
        } else {
            "denied"
        };
        self.say(&format!("ferrokey {label}: {verb}"));
        if let Some(next) = next {
            let label = lock(&next).label.get();
            self.say(&PromptHub::prompt_text(&label));
        }
    }
}

fn is_waiting(slot: &Arc<Mutex<Slot>>, seq: u64) -> bool {
    lock(slot).state == SlotState::Waiting(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn woken(wake: &Notify) -> bool {
        // A stored permit makes `notified()` complete at once.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(1), wake.notified())
                .await
                .is_ok()
        })
    }

    #[test]
    fn auto_approves_once_per_request() {
        let wake = Arc::new(Notify::new());
        let mut p = Presence::auto(wake.clone());
        assert_eq!(p.poll(0), PresenceStatus::Pending);
        p.request(0);
        assert!(woken(&wake));
        assert_eq!(p.poll(1), PresenceStatus::Approved);
        assert_eq!(p.poll(2), PresenceStatus::Pending);
        p.request(3);
        p.cancel();
        assert_eq!(p.poll(4), PresenceStatus::Pending);
    }

    #[test]
    fn built_in_uv_follows_the_mode_and_the_switch_override() {
        let wake = Arc::new(Notify::new());
        let mut off = Presence::auto(wake.clone());
        assert_eq!(off.verify_user(0), UvStatus::Failed);
        let mut auto = Presence::deny(wake.clone()).with_uv(UvMode::Auto);
        assert_eq!(auto.verify_user(0), UvStatus::Verified);
        auto.switch().set_uv_policy(Some(UvStatus::Failed));
        assert_eq!(auto.verify_user(0), UvStatus::Failed);
        auto.switch().set_uv_policy(None);
        assert_eq!(auto.verify_user(0), UvStatus::Verified);
        let mut deny = Presence::auto(wake).with_uv(UvMode::Deny);
        assert_eq!(deny.verify_user(0), UvStatus::Failed);
        deny.switch().set_uv_policy(Some(UvStatus::Verified));
        assert_eq!(deny.verify_user(0), UvStatus::Verified);
        // Verification is not presence: no request is left outstanding.
        assert_eq!(deny.poll(0), PresenceStatus::Pending);
    }

    #[test]
    fn the_fingerprint_sensor_reads_placed_fingers_and_touches() {
        // auto: the touching finger whenever asked.
        let mut auto = Presence::auto(Arc::new(Notify::new()));
        assert_eq!(auto.read_finger(0), Some(0));
        // A placed finger approves the pending request and is read after it.
        auto.switch().place_finger(4);
        auto.request(0);
        assert_eq!(auto.poll(0), PresenceStatus::Approved);
        assert_eq!(auto.read_finger(0), Some(4));
        assert_eq!(auto.read_finger(0), Some(0), "read once");
        // touch: nothing unless the button is held or a finger placed.
        let mut touch = Presence::touch(Arc::new(Notify::new()));
        assert_eq!(touch.read_finger(0), None);
        touch.switch().place_finger(7);
        assert_eq!(
            touch.read_finger(0),
            Some(7),
            "a finger placed without a request"
        );
        touch.request(0);
        assert_eq!(touch.poll(0), PresenceStatus::Pending);
        touch.switch().set_touch(true);
        assert_eq!(touch.poll(0), PresenceStatus::Approved);
        assert_eq!(touch.read_finger(0), Some(0), "the touch that approved");
        // deny: a placed finger still answers the sensor and the request,
        // unless a deny override is in force.
        let mut deny = Presence::deny(Arc::new(Notify::new()));
        assert_eq!(deny.read_finger(0), None);
        deny.switch().place_finger(2);
        deny.request(0);
        assert_eq!(deny.poll(0), PresenceStatus::Approved);
        assert_eq!(deny.read_finger(0), Some(2));
        deny.switch().set_policy(Some(Policy::Deny));
        deny.switch().place_finger(3);
        deny.request(0);
        assert_eq!(deny.poll(0), PresenceStatus::Denied);
    }

    #[test]
    fn deny_refuses() {
        let mut p = Presence::deny(Arc::new(Notify::new()));
        p.request(0);
        assert_eq!(p.poll(0), PresenceStatus::Denied);
        assert_eq!(p.poll(0), PresenceStatus::Pending);
    }

    #[test]
    fn file_answers_at_runtime() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("presence");
        let mut p = Presence::file(path.clone(), Arc::new(Notify::new()));
        p.request(0);
        assert_eq!(p.poll(0), PresenceStatus::Pending); // no file yet
        fs::write(&path, "wait\n").unwrap();
        assert_eq!(p.poll(0), PresenceStatus::Pending);
        fs::write(&path, "approve\n").unwrap();
        assert_eq!(p.poll(0), PresenceStatus::Approved);
        assert_eq!(p.poll(0), PresenceStatus::Pending); // consumed
        p.request(0);
        fs::write(&path, "deny").unwrap();
        assert_eq!(p.poll(0), PresenceStatus::Denied);
        p.request(0);
        p.cancel();
        fs::write(&path, "approve").unwrap();
        assert_eq!(p.poll(0), PresenceStatus::Pending);
    }

    #[test]
    fn prompt_answers_oldest_request_and_wakes_its_key() {
        let out = Buffer::default();
        let hub = PromptHub::new(Box::new(out.clone()));
        let wake1 = Arc::new(Notify::new());
        let wake2 = Arc::new(Notify::new());
        let mut p1 = Presence::prompt(hub.clone(), wake1.clone());
        let mut p2 = Presence::prompt(hub.clone(), wake2.clone());
        p1.label().set("1-1");
        p2.label().set("1-2");

        hub.answer_line("");
        assert!(out.text().contains("no touch request is pending"));

        p1.request(0);
        assert!(out
            .text()
            .contains("ferrokey 1-1: touch requested — press Enter to approve, n+Enter to deny"));
        p2.request(0);
        assert_eq!(p1.poll(0), PresenceStatus::Pending);

        hub.answer_line("maybe");
        assert_eq!(p1.poll(0), PresenceStatus::Pending);

        hub.answer_line("");
        assert!(woken(&wake1));
        assert!(!woken(&wake2));
        assert_eq!(p1.poll(0), PresenceStatus::Approved);
        assert_eq!(p1.poll(0), PresenceStatus::Pending);
        assert_eq!(p2.poll(0), PresenceStatus::Pending);

        hub.answer_line("n");
        assert!(woken(&wake2));
        assert_eq!(p2.poll(0), PresenceStatus::Denied);
        let text = out.text();
        assert!(text.contains("ferrokey 1-1: approved"), "{text}");
        assert!(text.contains("ferrokey 1-2: denied"), "{text}");
    }

    #[test]
    fn prompt_cancel_and_rerequest() {
        let out = Buffer::default();
        let hub = PromptHub::new(Box::new(out.clone()));
        let mut p = Presence::prompt(hub.clone(), Arc::new(Notify::new()));
        p.label().set("1-1");
        p.request(0);
        p.cancel();
        assert!(out.text().contains("withdrawn"));
        hub.answer_line("");
        assert_eq!(p.poll(0), PresenceStatus::Pending);
        assert!(out.text().contains("no touch request is pending"));
        // A new request replaces an outstanding one: one answer suffices.
        p.request(0);
        p.request(0);
        hub.answer_line("y");
        assert_eq!(p.poll(0), PresenceStatus::Approved);
        hub.answer_line("y");
        assert_eq!(p.poll(0), PresenceStatus::Pending);
    }

    #[test]
    fn prompt_reads_lines_until_eof() {
        let out = Buffer::default();
        let hub = PromptHub::new(Box::new(out.clone()));
        let mut p = Presence::prompt(hub.clone(), Arc::new(Notify::new()));
        p.request(0);
        hub.read_answers(io::Cursor::new(b"no\n".to_vec()));
        assert_eq!(p.poll(0), PresenceStatus::Denied);
        p.request(0);
        assert!(out.text().contains("stdin is closed"));
    }

    #[test]
    fn presence_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Presence>();
    }
}
