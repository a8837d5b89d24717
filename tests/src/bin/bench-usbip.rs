//! `bench-usbip`: ferrokey over USB/IP, as ratios against a floor measured in
//! the same run (run it through `tools/bench-usbip`, which builds in release).
//!
//! 1. Round trips (the repository's Rust client, CTAPHID over USB/IP on
//!    loopback; `--iterations` each, interleaved so every target sees the same
//!    machine load): makeCredential and getAssertion against a ferrokey key
//!    with its state on disk and on tmpfs, and against a reference device of
//!    this program served by the same server code that answers every request
//!    with a fixed response of the same length (no crypto, no storage): the
//!    client's floor. Prints median and p99 and the ratio ferrokey/floor.
//! 2. Scale: `ferrokey serve --keys N` (a child process) on a fresh state
//!    directory and again on the existing one: time to serving, RSS, threads;
//!    and N keys added at run time to a running fleet (in this process).
//! 3. Throughput: `ferrokey serve --keys N` pinned with `taskset` to 1 core,
//!    then 2: client threads doing getAssertion on every key for a few
//!    seconds; operations per second and the 2-core/1-core ratio.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ferrokey::app::{App, CallContext, Message, Outcome, Protocol};
use ferrokey::device::{Device, DeviceConfig};
use ferrokey::platform::PresenceStatus;
use ferrokey_tests::cbor::{decode, encode};
use ferrokey_tests::ctap2::{GetAssertion, MakeCredential, Registration};
use ferrokey_tests::ctaphid_client::CtapHidClient;
use ferrokey_tests::process::try_connect;
use ferrokey_tests::usbip_client::UsbipClient;
use firmware_sim::fleet::{Fleet, FleetConfig};
use firmware_sim::key::KeyOptions;
use firmware_sim::usbip::{BackgroundServer, Notify, Server, UsbIdentity};

type Client = CtapHidClient<UsbipClient>;

/// The relying party of every request.
const RP: &str = "example.com";
/// The clientDataHash of every makeCredential.
const MAKE_CDH: [u8; 32] = [1; 32];
type Failure = Box<dyn std::error::Error>;

struct Args {
    ferrokey: PathBuf,
    iterations: usize,
    keys: u32,
    disk: PathBuf,
    tmpfs: PathBuf,
    seconds: u64,
    skip_scale: bool,
}

fn parse_args() -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut args = Args {
        ferrokey: exe.with_file_name("ferrokey"),
        iterations: 1000,
        keys: 256,
        disk: std::env::temp_dir(),
        tmpfs: PathBuf::from("/dev/shm"),
        seconds: 5,
        skip_scale: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--ferrokey" => args.ferrokey = value()?.into(),
            "--iterations" => args.iterations = value()?.parse().map_err(|e| format!("{e}"))?,
            "--keys" => args.keys = value()?.parse().map_err(|e| format!("{e}"))?,
            "--disk-dir" => args.disk = value()?.into(),
            "--tmpfs-dir" => args.tmpfs = value()?.into(),
            "--seconds" => args.seconds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--round-trips-only" => args.skip_scale = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.iterations == 0 || args.keys == 0 {
        return Err("--iterations and --keys must be positive".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    // `bench-usbip --runtime-adds N DIR`: the run-time add measurement, in a
    // process of its own so its memory figure is its own.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--runtime-adds") {
        return match runtime_adds(&argv[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench-usbip: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bench-usbip: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-usbip: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "# ferrokey over USB/IP ({} cores online; load average {} before the run)",
        cores(),
        load.join(" ")
    );
    round_trips(args)?;
    if !args.skip_scale {
        scale(args)?;
        throughput(args)?;
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// ---------------------------------------------------------------- requests

/// The makeCredential request every round trip sends (pre-encoded, so the
/// timed loop measures the wire and the key, not the builder).
fn make_credential_request() -> Vec<u8> {
    encode(&MakeCredential::new(RP, &[7; 16]).cdh(MAKE_CDH).build())
}

/// The getAssertion request for `credential_id` (pre-encoded).
fn get_assertion_request(credential_id: &[u8]) -> Vec<u8> {
    encode(
        &GetAssertion::new(RP)
            .cdh([2; 32])
            .allow(credential_id)
            .build(),
    )
}

/// The credential ID of a makeCredential response body, after the shared
/// parser's checks (rpIdHash, attested credential data, COSE key).
fn credential_id(make_credential_response: &[u8]) -> Result<Vec<u8>, Failure> {
    let response = decode(make_credential_response)?;
    Ok(Registration::parse(&response, &MAKE_CDH, RP)?.credential_id)
}

fn connect(addr: SocketAddr, busid: &str) -> Result<Client, Failure> {
    let mut client = try_connect(addr, busid)?;
    client.set_timeout(Duration::from_secs(30));
    Ok(client)
}

fn call(client: &mut Client, command: u8, request: &[u8]) -> Result<Vec<u8>, Failure> {
    let (status, body) = client.cbor(command, request)?;
    if status != 0 {
        return Err(format!("command {command:#04x} failed with status {status:#04x}").into());
    }
    Ok(body)
}

// ------------------------------------------------------- reference device

/// The floor: answers makeCredential and getAssertion with fixed responses
/// of the lengths ferrokey's have, anything else with an empty success.
struct Reference {
    make_credential: Vec<u8>,
    get_assertion: Vec<u8>,
}

impl App for Reference {
    fn handle(
        &mut self,
        _: Protocol,
        request: &[u8],
        _: CallContext,
        response: &mut Message,
    ) -> Outcome {
        response.clear();
        let body = match request.first() {
            Some(0x01) => &self.make_credential,
            Some(0x02) => &self.get_assertion,
            _ => &Vec::new(),
        };
        let _ = response.push(0);
        let _ = response.extend_from_slice(body);
        Outcome::Response
    }
    fn request_presence(&mut self, _: u64) {}
    fn poll_presence(&mut self, _: u64) -> PresenceStatus {
        PresenceStatus::Approved
    }
    fn cancel_presence(&mut self) {}
}

fn reference_server(
    make_credential: usize,
    get_assertion: usize,
) -> Result<BackgroundServer, Failure> {
    let mut server = Server::bind_blocking("127.0.0.1:0".parse()?)?;
    let app = Reference {
        make_credential: vec![0xA5; make_credential],
        get_assertion: vec![0x5A; get_assertion],
    };
    server.add_key(
        UsbIdentity {
            vendor_id: 0x1209,
            product_id: 0x000A,
            device_release: 0x0100,
            manufacturer: "reference".into(),
            product: "fixed responses".into(),
            serial: "REF1".into(),
        },
        Device::new(app, DeviceConfig::default()),
        Arc::new(Notify::new()),
    )?;
    Ok(server.spawn()?)
}

/// A ferrokey key in this process (a fleet of one, served by the same
/// server code `ferrokey serve` uses).
struct InProcess {
    _dir: tempfile::TempDir,
    fleet: Fleet,
    server: BackgroundServer,
    rt: tokio::runtime::Runtime,
}

impl InProcess {
    fn start(parent: &Path) -> Result<InProcess, Failure> {
        let dir = tempfile::Builder::new()
            .prefix("ferrokey-bench-")
            .tempdir_in(parent)?;
        let fleet = Fleet::open(&FleetConfig {
            root: dir.path().to_path_buf(),
            country: "US".into(),
            threads: 2,
            transport: firmware_sim::transport::Transport::Usbip,
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(fleet.add(KeyOptions::default()))?;
        let server = Server::bind_with("127.0.0.1:0".parse()?, fleet.exports())?.spawn()?;
        Ok(InProcess {
            _dir: dir,
            fleet,
            server,
            rt,
        })
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.rt.block_on(self.fleet.shutdown());
    }
}

// ------------------------------------------------------------ round trips

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Target {
    name: &'static str,
    client: Client,
    credential: Vec<u8>,
    make: Vec<Duration>,
    get: Vec<Duration>,
}

/// The floor of the crypto itself, timed in this process beside the round trips:
/// one P-256 signature over an assertion-sized message, and key generation plus
/// one signature (what a registration must do at the least).
struct BareCrypto {
    key: p256::ecdsa::SigningKey,
    message: [u8; 69],
    sign: Vec<Duration>,
    keygen_sign: Vec<Duration>,
}

impl BareCrypto {
    fn new() -> Self {
        BareCrypto {
            key: p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng),
            // authenticatorData (37 bytes) followed by a clientDataHash (32).
            message: [0x5a; 69],
            sign: Vec::new(),
            keygen_sign: Vec::new(),
        }
    }

    fn measure_once(&mut self) {
        use p256::ecdsa::signature::Signer;
        let start = Instant::now();
        let signature: p256::ecdsa::Signature = self.key.sign(&self.message);
        self.sign.push(start.elapsed());
        std::hint::black_box(signature);
        let start = Instant::now();
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let public = *key.verifying_key();
        let signature: p256::ecdsa::Signature = key.sign(&self.message);
        self.keygen_sign.push(start.elapsed());
        std::hint::black_box((public, signature));
    }

    fn medians(&mut self) -> (Duration, Duration) {
        self.sign.sort();
        self.keygen_sign.sort();
        (quantile(&self.sign, 0.5), quantile(&self.keygen_sign, 0.5))
    }
}

fn round_trips(args: &Args) -> Result<(), Failure> {
    let disk = InProcess::start(&args.disk)?;
    let tmpfs = InProcess::start(&args.tmpfs)?;
    let mut disk_client = connect(disk.server.local_addr(), "1-1")?;
    let made = call(&mut disk_client, 0x01, &make_credential_request())?;
    let id = credential_id(&made)?;
    let asserted = call(&mut disk_client, 0x02, &get_assertion_request(&id))?;
    let reference = reference_server(made.len(), asserted.len())?;
    let mut tmpfs_client = connect(tmpfs.server.local_addr(), "1-1")?;
    let tmpfs_id = credential_id(&call(&mut tmpfs_client, 0x01, &make_credential_request())?)?;
    let mut targets = vec![
        Target {
            name: "reference (floor)",
            client: connect(reference.local_addr(), "1-1")?,
            credential: id.clone(),
            make: Vec::new(),
            get: Vec::new(),
        },
        Target {
            name: "ferrokey, state on disk",
            client: disk_client,
            credential: id,
            make: Vec::new(),
            get: Vec::new(),
        },
        Target {
            name: "ferrokey, state on tmpfs",
            client: tmpfs_client,
            credential: tmpfs_id,
            make: Vec::new(),
            get: Vec::new(),
        },
    ];
    let make = make_credential_request();
    let mut bare = BareCrypto::new();
    // Warm-up, then interleaved measurements.
    for target in &mut targets {
        for _ in 0..20 {
            let get = get_assertion_request(&target.credential);
            call(&mut target.client, 0x02, &get)?;
        }
    }
    for _ in 0..args.iterations {
        for target in &mut targets {
            let start = Instant::now();
            call(&mut target.client, 0x01, &make)?;
            target.make.push(start.elapsed());
            let get = get_assertion_request(&target.credential);
            let start = Instant::now();
            call(&mut target.client, 0x02, &get)?;
            target.get.push(start.elapsed());
        }
        bare.measure_once();
    }
    println!();
    println!(
        "## Round trips over USB/IP on loopback, repository client, {} each (ms)",
        args.iterations
    );
    println!("| target | getAssertion median | p99 | ratio to floor | makeCredential median | p99 | ratio to floor |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for target in &mut targets {
        target.make.sort();
        target.get.sort();
    }
    let floor_get = quantile(&targets[0].get, 0.5);
    let floor_make = quantile(&targets[0].make, 0.5);
    for target in &targets {
        let get = quantile(&target.get, 0.5);
        let make = quantile(&target.make, 0.5);
        println!(
            "| {} | {:.3} | {:.3} | {:.2} | {:.3} | {:.3} | {:.2} |",
            target.name,
            ms(get),
            ms(quantile(&target.get, 0.99)),
            get.as_secs_f64() / floor_get.as_secs_f64(),
            ms(make),
            ms(quantile(&target.make, 0.99)),
            make.as_secs_f64() / floor_make.as_secs_f64(),
        );
    }
    let (sign, keygen_sign) = bare.medians();
    println!(
        "- bare P-256 in this process (p256 crate, as the core): one signature {:.3} ms, \
         key generation + signature {:.3} ms (medians of {})",
        ms(sign),
        ms(keygen_sign),
        args.iterations
    );
    for target in targets.iter().skip(1) {
        let beyond_get = quantile(&target.get, 0.5).saturating_sub(floor_get);
        let beyond_make = quantile(&target.make, 0.5).saturating_sub(floor_make);
        println!(
            "- {}: getAssertion costs {:.3} ms beyond the floor ({:.2}x one bare signature), \
             makeCredential {:.3} ms ({:.2}x key generation + signature)",
            target.name,
            ms(beyond_get),
            beyond_get.as_secs_f64() / sign.as_secs_f64(),
            ms(beyond_make),
            beyond_make.as_secs_f64() / keygen_sign.as_secs_f64(),
        );
    }
    Ok(())
}

// ----------------------------------------------------------------- scale

/// A `ferrokey serve` child process with its log lines.
struct Served {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    started: Instant,
}

impl Served {
    fn start(
        ferrokey: &Path,
        state: &Path,
        keys: u32,
        taskset: Option<&str>,
    ) -> Result<Served, Failure> {
        let mut command = match taskset {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(ferrokey);
                c
            }
            None => Command::new(ferrokey),
        };
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--keys",
                &keys.to_string(),
                "--state-dir",
            ])
            .arg(state)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", ferrokey.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Served {
            child,
            lines,
            started,
        })
    }

    /// Waits for a log line containing `needle`: (time since start, line).
    fn wait_for(&mut self, needle: &str) -> Result<(Duration, String), Failure> {
        loop {
            let (at, line) = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .map_err(|_| format!("ferrokey never logged {needle:?}"))?;
            if line.contains(needle) {
                return Ok((at - self.started, line));
            }
        }
    }

    fn status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn listening(line: &str) -> Result<SocketAddr, Failure> {
    Ok(line
        .rsplit("listening on ")
        .next()
        .ok_or("no address")?
        .trim()
        .parse()?)
}

fn process_rss_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn scale(args: &Args) -> Result<(), Failure> {
    println!();
    println!("## {} keys in one process", args.keys);
    println!("| run | state | time to serving | RSS | threads |");
    println!("| --- | --- | --- | --- | --- |");
    for (label, parent) in [("disk", &args.disk), ("tmpfs", &args.tmpfs)] {
        let dir = tempfile::Builder::new()
            .prefix("ferrokey-scale-")
            .tempdir_in(parent)?;
        for run in ["first start", "restart"] {
            let mut served = Served::start(&args.ferrokey, dir.path(), args.keys, None)?;
            let (ready, _) = served.wait_for("USB/IP server running")?;
            // Let the process settle before sampling its memory.
            std::thread::sleep(Duration::from_millis(200));
            println!(
                "| `--keys {}`, {run} | {label} | {:.0} ms | {:.1} MiB | {} |",
                args.keys,
                ms(ready),
                served.status("VmRSS:") as f64 / 1024.0,
                served.status("Threads:"),
            );
            served.stop();
        }
    }
    // Keys added at run time to a running fleet (a child process).
    let dir = tempfile::Builder::new()
        .prefix("ferrokey-scale-")
        .tempdir_in(&args.disk)?;
    let out = Command::new(std::env::current_exe()?)
        .arg("--runtime-adds")
        .arg(args.keys.to_string())
        .arg(dir.path())
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// Adds N keys to a running fleet concurrently (as the control API does);
/// prints the time and this process's RSS before and after.
fn runtime_adds(argv: &[String]) -> Result<(), Failure> {
    let keys: u32 = argv.first().ok_or("--runtime-adds N DIR")?.parse()?;
    let dir = PathBuf::from(argv.get(1).ok_or("--runtime-adds N DIR")?);
    // As `ferrokey serve` runs: 16 threads build keys.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(16)
        .build()?;
    let fleet = Fleet::open(&FleetConfig {
        root: dir,
        country: "US".into(),
        threads: firmware_sim::key::runtimes::default_threads(),
        transport: firmware_sim::transport::Transport::Usbip,
    })?;
    let before = process_rss_kib();
    let start = Instant::now();
    rt.block_on(async {
        let mut adds = tokio::task::JoinSet::new();
        for _ in 0..keys {
            let fleet = fleet.clone();
            adds.spawn(async move { fleet.add(KeyOptions::default()).await });
        }
        while let Some(added) = adds.join_next().await {
            added
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    })?;
    let took = start.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    println!(
        "| {keys} keys added at run time (`Fleet::add`, concurrently) | disk | {:.0} ms | {:.1} MiB ({:.1} MiB before) | |",
        ms(took),
        process_rss_kib() as f64 / 1024.0,
        before as f64 / 1024.0
    );
    rt.block_on(fleet.shutdown());
    Ok(())
}

// ------------------------------------------------------------ throughput

fn throughput(args: &Args) -> Result<(), Failure> {
    let dir = tempfile::Builder::new()
        .prefix("ferrokey-tput-")
        .tempdir_in(&args.tmpfs)?;
    println!();
    println!(
        "## Throughput: getAssertion on all {} keys at once, state on tmpfs, {} s per run",
        args.keys, args.seconds
    );
    println!("| ferrokey pinned to | client threads | getAssertion/s | ferrokey CPU busy | per CPU-second of ferrokey |");
    println!("| --- | --- | --- | --- | --- |");
    let mut results = Vec::new();
    for cpus in ["0", "0,1"] {
        let ncpu = cpus.split(',').count();
        let mut served = Served::start(&args.ferrokey, dir.path(), args.keys, Some(cpus))?;
        let (_, line) = served.wait_for("listening on ")?;
        let addr = listening(&line)?;
        served.wait_for("USB/IP server running")?;
        let threads = 16usize.min(args.keys as usize);
        let pid = served.child.id();
        let (rate, busy) = load(
            addr,
            args.keys,
            threads,
            Duration::from_secs(args.seconds),
            pid,
        )?;
        println!(
            "| {ncpu} core{} (`taskset -c {cpus}`) | {threads} | {rate:.0} | {busy:.2} cores | {:.0} |",
            if ncpu > 1 { "s" } else { "" },
            rate / busy.max(1e-9)
        );
        results.push((rate, busy));
        served.stop();
    }
    if let [(one, _), (two, _)] = results[..] {
        println!("- 2 cores / 1 core: {:.2}x", two / one);
    }
    Ok(())
}

/// CPU time (user + system) process `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field of the line, stime the 15th.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports these in clock ticks of 100 Hz (USER_HZ).
    (ticks(11) + ticks(12)) / 100.0
}

/// `threads` client threads, each with its share of the keys, doing
/// getAssertion round robin for `duration`; returns operations per second
/// and how many cores process `pid` kept busy meanwhile.
fn load(
    addr: SocketAddr,
    keys: u32,
    threads: usize,
    duration: Duration,
    pid: u32,
) -> Result<(f64, f64), Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = Arc::new(std::sync::Mutex::new(go_rx));
    let mut handles = Vec::new();
    for t in 0..threads {
        let busids: Vec<String> = (1..=keys)
            .filter(|k| (*k as usize - 1) % threads == t)
            .map(|k| {
                let i = k as usize - 1;
                format!("{}-{}", 1 + i / 127, 1 + i % 127)
            })
            .collect();
        let (stop, count, ready, go) =
            (stop.clone(), count.clone(), ready_tx.clone(), go_rx.clone());
        handles.push(std::thread::spawn(move || {
            let setup = || -> Result<Vec<(Client, Vec<u8>)>, Failure> {
                let mut clients = Vec::new();
                for busid in &busids {
                    let mut client = connect(addr, busid)?;
                    let id = credential_id(&call(&mut client, 0x01, &make_credential_request())?)?;
                    clients.push((client, get_assertion_request(&id)));
                }
                Ok(clients)
            };
            let mut clients = match setup() {
                Ok(c) => {
                    let _ = ready.send(Ok(()));
                    c
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = go.lock().map(|rx| rx.recv());
            'outer: while !stop.load(Ordering::Relaxed) {
                for (client, request) in &mut clients {
                    if stop.load(Ordering::Relaxed) || call(client, 0x02, request).is_err() {
                        break 'outer;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for _ in 0..threads {
        ready_rx.recv()??;
    }
    count.store(0, Ordering::Relaxed);
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    for _ in 0..threads {
        let _ = go_tx.send(());
    }
    std::thread::sleep(duration);
    let done = count.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    let busy = (cpu_seconds(pid) - cpu_before) / elapsed.as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        let _ = handle.join();
    }
    Ok((done as f64 / elapsed.as_secs_f64(), busy))
}
