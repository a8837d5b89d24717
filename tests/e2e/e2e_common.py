"""Host-side helpers shared by the end-to-end runners (tests/e2e/kernel_e2e.py,
tests/browser/browser_e2e.py): free loopback ports, a USB/IP device-list probe,
`ferrokey serve` processes with their own state dirs and logs, and the guest run
(tools/vm/run) with its boot-and-attach check.

Python 3 stdlib only.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

VM_RUN = Path(__file__).resolve().parents[2] / "tools" / "vm" / "run"


def ferrokey_binary() -> str:
    """The `ferrokey` binary the host-side stages test: FERROKEY_BIN, or the
    debug build in CARGO_TARGET_DIR (or the repository's target/). Raises
    FileNotFoundError when it is not there (a stage fails, never skips)."""
    path = os.environ.get("FERROKEY_BIN")
    if not path:
        repo = Path(__file__).resolve().parents[2]
        target = os.environ.get("CARGO_TARGET_DIR", str(repo / "target"))
        path = str(Path(target) / "debug" / "ferrokey")
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"ferrokey binary {path} missing: cargo build -p firmware-sim, or set FERROKEY_BIN")
    return path


def vm_command(key_port, busid, work, timeout, memory, *options):
    """The tools/vm/run command line that attaches busid from 127.0.0.1:key_port
    and runs in a chroot of the host root; options go before the guest command
    (which the caller appends after "--")."""
    return [str(VM_RUN), "--port", str(key_port), "--busid", busid, "--workdir", str(work),
            "--timeout", str(timeout), "--memory", str(memory), "--chroot", *options]


def run_guest(cmd, work, log):
    """Runs tools/vm/run; returns (its exit status, its timing.json as a dict)."""
    log("booting the guest: " + " ".join(cmd))
    vm = subprocess.run(cmd)
    log(f"guest finished with exit status {vm.returncode}")
    try:
        timing = json.loads((Path(work) / ".vm" / "timing.json").read_text())
    except (OSError, ValueError):
        timing = {}
    return vm.returncode, timing


def boot_and_attach_result(returncode, vm_timing):
    """The guest-boot-and-attach check, printed as a PASS/FAIL line: (ok, detail)."""
    attached = vm_timing.get("attach_s") is not None
    detail = (f"boot {vm_timing.get('boot_s')}s, attach {vm_timing.get('attach_s')}s" if attached
              else f"guest/attach failed (tools/vm/run exit {returncode})")
    print(f"{'PASS' if attached else 'FAIL'} guest-boot-and-attach: {detail}", flush=True)
    return attached, detail


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def usbip_devlist(port, timeout=1.0):
    """OP_REQ_DEVLIST against 127.0.0.1:port; returns [(busid, vid, pid)]."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack(">HHI", 0x0111, 0x8005, 0))

        def recv(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("short devlist reply")
                buf += chunk
            return buf

        _ver, code, status, ndev = struct.unpack(">HHII", recv(12))
        if code != 0x0005 or status != 0:
            raise ConnectionError(f"devlist reply code {code:#x} status {status}")
        devs = []
        for _ in range(ndev):
            rec = recv(312)
            busid = rec[256:288].split(b"\0")[0].decode()
            vid, pid = struct.unpack(">HH", rec[300:304])
            nif = rec[311]
            recv(4 * nif)
            devs.append((busid, vid, pid))
        return devs


class Key:
    """One `ferrokey serve` process with its own state dir and log."""

    def __init__(self, binary, name, state_dir, log_dir, presence, keys=1, extra_args=()):
        self.binary, self.name, self.state_dir = binary, name, state_dir
        self.log_dir, self.presence, self.keys = log_dir, presence, keys
        self.extra_args = list(extra_args)  # more `ferrokey serve` options
        self.proc, self.port, self.busid, self.starts = None, None, None, 0
        self.busids = []

    def start(self, port=None, timeout=30):
        self.port = port or free_port()
        self.starts += 1
        logf = open(self.log_dir / f"ferrokey-{self.name}-{self.starts}.log", "wb")
        cmd = [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}",
               "--state-dir", str(self.state_dir), "--keys", str(self.keys), "--presence", self.presence,
               *self.extra_args]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ferrokey {self.name} exited with {self.proc.returncode} "
                                   f"(log: {logf.name})")
            try:
                devs = usbip_devlist(self.port)
                if devs:
                    self.busid = devs[0][0]
                    self.busids = [d[0] for d in devs]  # --keys N: one per key
                    return self
                last = "empty device list"
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"ferrokey {self.name} not ready on port {self.port}: {last}")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
