#!/usr/bin/env python3
"""Host side of the real-kernel end-to-end tests (entry point: run-kernel-e2e.sh).

1. Starts three ferrokey instances on free loopback ports, each with a fresh
   temp state dir: key A (--presence auto), key B (--presence deny) and key C
   (--presence touch, with a control API the host presses the button through),
   and exports key A's attestation root with `ferrokey ca`.
2. Boots ONE QEMU guest with tools/vm/run, attached to key A, which runs
   tests/e2e/guest_steps.py in a chroot of the host root with the repo's .venv
   python (libfido2 CLI, python-fido2 + py_webauthn, re-attach, kill -9 +
   restart, reset, presence deny).
3. Answers the guest's requests (kill -9 key A, restart it on its state dir,
   hold key C's button).
4. Accounts for the results with tests/lib/accounting.py (every scenario must
   report; known failures come from tests/e2e/known-failures.txt and fail the
   run when they pass again): one line per scenario, a timing table, and last
   `N passed, N failed, N skipped`; exits non-zero if anything failed.

Python 3 stdlib only (the guest side uses the venv).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "lib"))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from guest_steps import SCENARIOS  # noqa: E402  (names only; no fido2 import at module level)
from e2e_common import Key, boot_and_attach_result, free_port, run_guest, vm_command  # noqa: E402
from accounting import Results, load_known_failures  # noqa: E402

KNOWN_FAILURES = HERE / "known-failures.txt"

# Checks made on the host: before the guest's scenarios, and after them.
HOST_FIRST = ["guest-boot-and-attach"]
HOST_LAST = ["py_webauthn-verify"]


def log(msg):
    print(f"[e2e] {msg}", flush=True)


def serve_rpc(work: Path, key_a: Key, control_c: int, stop: threading.Event, answered: list):
    """Answer the guest's requests: rpc/<n>-<action>.req -> rpc/<n>.done (JSON)."""
    rpc = work / "rpc"
    seen = set()
    while not stop.is_set():
        for req in sorted(rpc.glob("*.req")) if rpc.is_dir() else []:
            if req.name in seen:
                continue
            seen.add(req.name)
            n, _, action = req.stem.partition("-")
            t0 = time.monotonic()
            try:
                if action == "kill-a":
                    key_a.kill9()
                    answer = {"ok": True}
                elif action == "restart-a":
                    try:  # same port if it can be bound again, else a new one
                        key_a.start(port=key_a.port)
                    except RuntimeError:
                        key_a.kill9()
                        key_a.start()
                    answer = {"ok": True, "port": key_a.port, "busid": key_a.busid}
                elif action == "touch-c":
                    with urllib.request.urlopen(f"http://127.0.0.1:{control_c}/usb1/touch/on",
                                                timeout=10) as r:
                        answer = {"ok": r.status == 200, "error": f"HTTP {r.status}"}
                else:
                    answer = {"ok": False, "error": f"unknown action {action}"}
            except Exception as e:  # report to the guest, which fails the scenario
                answer = {"ok": False, "error": str(e)}
            answered.append((action, round(time.monotonic() - t0, 3)))
            tmp = rpc / f"{n}.done.tmp"
            tmp.write_text(json.dumps(answer))
            tmp.rename(rpc / f"{n}.done")
        stop.wait(0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ferrokey", default=os.environ.get("FERROKEY_BIN"),
                    help="the ferrokey binary (default: $FERROKEY_BIN)")
    ap.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"),
                    help="python with fido2 + webauthn, run in the guest's chroot "
                         "(default: .venv/bin/python)")
    ap.add_argument("--timeout", type=float, default=420, help="guest timeout in seconds")
    ap.add_argument("--memory", default="1024", help="guest memory in MiB")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, outputs)")
    ap.add_argument("--only", default="", help="comma-separated guest scenarios to run")
    args = ap.parse_args()

    outcomes = {}   # name -> (ok, detail)
    timing_lines = []
    work = Path(tempfile.mkdtemp(prefix="ferrokey-e2e-"))
    keys = []
    stop = threading.Event()
    try:
        if not args.ferrokey or not Path(args.ferrokey).is_file():
            raise RuntimeError(f"ferrokey binary not found: {args.ferrokey!r}")
        logs = work / "logs"
        logs.mkdir()
        t0 = time.monotonic()
        key_a = Key(args.ferrokey, "a", work / "state-a", logs, "auto")
        key_b = Key(args.ferrokey, "b", work / "state-b", logs, "deny")
        control_c = free_port()
        key_c = Key(args.ferrokey, "c", work / "state-c", logs, "touch",
                    extra_args=["--control", f"127.0.0.1:{control_c}"])
        keys += [key_a, key_b, key_c]
        for k in keys:
            k.state_dir.mkdir(mode=0o700)
            k.start()
            log(f"key {k.name} (--presence {k.presence}) on 127.0.0.1:{k.port}, busid {k.busid}")
        # One key per profile for the profile scenarios (tests/e2e/guest_profiles.py),
        # sharing key A's attestation CA (one root for every check).
        profile_keys = {name: Key(args.ferrokey, f"profile-{name}", work / f"state-{name}", logs, "auto",
                                  extra_args=["--profile", name])
                        for name in ("ctap2.0", "u2f", "synced-passkey", "strict")}
        for name, k in profile_keys.items():
            k.state_dir.mkdir(mode=0o700)
            shutil.copytree(key_a.state_dir / "ca", k.state_dir / "ca")
            keys.append(k.start())
            log(f"key {k.name} (--profile {name}) on 127.0.0.1:{k.port}, busid {k.busid}")
        timing_lines.append(("start the keys (host)", time.monotonic() - t0))

        ca = subprocess.run([args.ferrokey, "ca", "--state-dir", str(key_a.state_dir)],
                            capture_output=True, timeout=30)
        (work / "ca.pem").write_bytes(ca.stdout)
        if ca.returncode != 0:
            log(f"`ferrokey ca` exited {ca.returncode}: {ca.stderr.decode(errors='replace')[-300:]}")
        # MDS3 metadata for the host-side check (DER ES256: what python-fido2 verifies).
        mds = subprocess.run([args.ferrokey, "mds", "--state-dir", str(key_a.state_dir), "--out",
                              str(work / "mds"), "--jws-signature", "der"], capture_output=True, timeout=30)
        if mds.returncode != 0:
            log(f"`ferrokey mds` exited {mds.returncode}: {mds.stderr.decode(errors='replace')[-300:]}")

        cfg = {
            "key_a": {"port": key_a.port, "busid": key_a.busid},
            "key_b": {"port": key_b.port, "busid": key_b.busid},
            "key_c": {"port": key_c.port, "busid": key_c.busid},
            "profiles": {name: {"port": k.port, "busid": k.busid} for name, k in profile_keys.items()},
            "ca_pem": str(work / "ca.pem"),
            "product_match": os.environ.get("E2E_PRODUCT_MATCH", "ferrokey"),
            "aaguid": os.environ.get("E2E_AAGUID", ""),
            # For the transports that run ferrokey inside the guest (uhid, attach):
            # the binary, and key A's CA for their state (one root for every check).
            "ferrokey": str(Path(args.ferrokey).resolve()),
            "ca_dir": str(key_a.state_dir / "ca"),
        }
        (work / "e2e.json").write_text(json.dumps(cfg, indent=2))

        answered = []
        rpc_thread = threading.Thread(target=serve_rpc, args=(work, key_a, control_c, stop, answered), daemon=True)
        rpc_thread.start()
        cmd = vm_command(key_a.port, key_a.busid, work, args.timeout, args.memory,
                         *(["--env", f"E2E_ONLY={args.only}"] if args.only else []))
        cmd += ["--", args.python, str(HERE / "guest_steps.py"), str(work / "e2e.json")]
        returncode, vm_timing = run_guest(cmd, work, log)
        stop.set()
        outcomes["guest-boot-and-attach"] = boot_and_attach_result(returncode, vm_timing)
        for name in ("guest_build_s", "boot_s", "attach_s", "command_s", "wall_s"):
            if vm_timing.get(name) is not None:
                timing_lines.append((f"vm {name[:-2]}", vm_timing[name]))

        try:
            for line in (work / "results.jsonl").read_text().splitlines():
                r = json.loads(line)
                outcomes[r["name"]] = (r["ok"], r["detail"])
                timing_lines.append((r["name"], r["seconds"]))
                for label, secs in r.get("timings", {}).items():
                    timing_lines.append((f"  {label}", secs))
        except FileNotFoundError:
            pass
        for action, secs in answered:
            timing_lines.append((f"host rpc {action}", secs))

        # py_webauthn as an independent relying party, on the host (native speed).
        if (work / "webauthn.json").exists():
            t0 = time.monotonic()
            extra = []
            if (work / "u2f.json").exists():
                extra += ["--u2f", str(work / "u2f.json")]
            if (work / "mds" / "blob.jwt").exists():
                extra += ["--mds", str(work / "mds")]
            v = subprocess.run([args.python, str(HERE / "verify_webauthn.py"),
                                str(work / "webauthn.json"), str(work / "ca.pem"), *extra],
                               capture_output=True, text=True, timeout=120)
            detail = (v.stdout.strip() or v.stderr.strip()[-400:])
            outcomes["py_webauthn-verify"] = (v.returncode == 0, detail)
            timing_lines.append(("py_webauthn-verify (host)", time.monotonic() - t0))
            print(f"{'PASS' if v.returncode == 0 else 'FAIL'} py_webauthn-verify: {detail}", flush=True)
    except Exception as e:
        log(f"ERROR: {e}")
        outcomes.setdefault("guest-boot-and-attach", (False, str(e)))
        print(f"FAIL guest-boot-and-attach: {e}", flush=True)
    finally:
        stop.set()
        for k in keys:
            k.stop()

    only = [s for s in args.only.split(",") if s]
    expected = HOST_FIRST + [s for s in SCENARIOS if not only or s in only]
    if not only or "python-fido2-webauthn" in only:
        expected += HOST_LAST

    if timing_lines:
        print("\n== timings (seconds)")
        for label, secs in timing_lines:
            print(f"  {label:<40} {secs:8.2f}")
    known = load_known_failures(KNOWN_FAILURES)
    if only:  # a partial run only answers for the scenarios it ran
        known = {k: v for k, v in known.items() if k in expected}
    results = Results("kernel end-to-end", expected, known)
    for name, (ok, detail) in outcomes.items():
        results.record(name, "pass" if ok else "fail", detail)
    status = results.finish()
    if status or args.keep:
        print(f"work dir kept: {work} (logs/, .vm/console.log, results.jsonl)")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
