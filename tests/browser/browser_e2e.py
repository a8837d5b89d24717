#!/usr/bin/env python3
"""Host side of the browser passkey tests (entry point: run-browser-e2e.sh).

1. Starts `ferrokey serve --keys N` (one key per browser, so each browser starts
   from an empty key) on a free loopback port with a fresh temp state dir, and
   exports its attestation root with `ferrokey ca`.
   Warms one profile per browser on the host (cached: see warm_profile) so
   that first-run work does not run under TCG.
2. Boots ONE QEMU guest with tools/vm/run (2 GiB, 2 vCPUs), attached to the
   first key, which runs tests/browser/guest_browsers.py in a chroot of the host
   root with the repo's .venv python: the relying party (rp_server.py) on the
   guest's http://localhost:PORT, then headless Chromium and headless Firefox ESR
   in turn on the self-driving page (page/app.js).
3. Accounts for the results with tests/lib/accounting.py: one line per
   scenario per browser, a timing table per browser, and last
   `N passed, N failed, N skipped`. Known failures are the committed
   tests/browser/known-failures.txt (BROWSER/SCENARIO  reason): a listed
   scenario that fails is XFAIL (counted as skipped), one that passes again
   fails the run until its line is removed. Exits non-zero if anything failed.

Python 3 stdlib only (the guest side uses the venv).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "lib"))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from e2e_common import Key, boot_and_attach_result, free_port, run_guest, vm_command  # noqa: E402
from guest_browsers import BROWSERS, COMMANDS, SCENARIOS, stop  # noqa: E402  (no venv needed)
from accounting import Results, load_known_failures  # noqa: E402

KNOWN_FAILURES = HERE / "known-failures.txt"

WARM_SECONDS = 15  # how long a browser runs on the host to fill its fresh profile


def log(msg):
    print(f"[browser-e2e] {msg}", flush=True)


def cache_root():
    """FERROKEY_BROWSER_CACHE, else next to FERROKEY_VM_CACHE, else tools/.cache/browser."""
    if os.environ.get("FERROKEY_BROWSER_CACHE"):
        return Path(os.environ["FERROKEY_BROWSER_CACHE"])
    if os.environ.get("FERROKEY_VM_CACHE"):
        return Path(os.environ["FERROKEY_VM_CACHE"]).parent / "browser"
    return REPO / "tools" / ".cache" / "browser"


def warm_profile(browser):
    """A profile that has been through the browser's first start, made once on the
    host (native speed) and cached, so that first-run work (profile databases,
    Firefox's startup cache) does not run again under TCG in every guest.  Keyed
    by the browser binary and its command line.  Returns the cached dir."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{browser}-warming-", dir=root))
    cmd = COMMANDS[browser]("about:blank", tmp)
    exe = Path(cmd[0]).resolve()
    st = exe.stat()
    flags = [a for a in cmd[1:] if str(tmp) not in a]
    extra = (tmp / "user.js").read_text() if (tmp / "user.js").exists() else ""
    key = hashlib.sha256(json.dumps([str(exe), st.st_size, st.st_mtime, flags, extra]).encode())
    done = root / f"{browser}-profile-{key.hexdigest()[:16]}"
    if done.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
        return done
    log(f"warming a {browser} profile on the host ({WARM_SECONDS}s, once): {done}")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env=dict(os.environ, MOZ_CRASHREPORTER_DISABLE="1",
                                     DBUS_SESSION_BUS_ADDRESS="disabled:"))
    time.sleep(WARM_SECONDS)
    stop(proc, grace=20)
    for junk in ("SingletonLock", "SingletonSocket", "SingletonCookie", "lock", ".parentlock"):
        if (tmp / junk).is_symlink() or (tmp / junk).exists():
            (tmp / junk).unlink()
    tmp.rename(done)
    return done


def read_lines(path):
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def fmt_secs(v):
    if isinstance(v, list):
        return ", ".join(f"{x:.2f}" for x in v)
    return f"{v:8.2f}" if isinstance(v, (int, float)) else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ferrokey", default=os.environ.get("FERROKEY_BIN"),
                    help="the ferrokey binary (default: $FERROKEY_BIN)")
    ap.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"),
                    help="python with webauthn 3.0.1, run in the guest's chroot (default: .venv/bin/python)")
    ap.add_argument("--browsers", default=",".join(BROWSERS),
                    help=f"comma-separated, in order (default: {','.join(BROWSERS)})")
    ap.add_argument("--only", default="", help="comma-separated scenarios to run")
    ap.add_argument("--transport", choices=["usbip", "uhid", "attach"], default="usbip",
                    help="usbip: the host's keys, attached in the guest (default); uhid or attach: "
                         "ferrokey runs inside the guest with that transport, one fresh key per browser")
    ap.add_argument("--timeout", type=float, default=900, help="guest timeout in seconds")
    ap.add_argument("--browser-timeout", type=float, default=300,
                    help="seconds per browser, from its start to the page's last report")
    ap.add_argument("--memory", default="2048", help="guest memory in MiB")
    ap.add_argument("--smp", default="2", help="guest vCPUs")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, outputs)")
    ap.add_argument("--known-failures", default=str(KNOWN_FAILURES), metavar="FILE",
                    help=f"known failures, BROWSER/SCENARIO  reason (default: {KNOWN_FAILURES})")
    args = ap.parse_args()
    browsers = [b for b in args.browsers.split(",") if b]
    only = [s for s in args.only.split(",") if s]
    bad = [b for b in browsers if b not in BROWSERS] + [s for s in only if s not in SCENARIOS]
    if bad:
        ap.error(f"unknown browser or scenario: {', '.join(bad)}")

    results = {}   # name -> (ok, detail)
    general = []   # (label, seconds) for the whole run
    per_browser = {b: [] for b in browsers}
    work = Path(tempfile.mkdtemp(prefix="ferrokey-browser-"))
    key = None
    try:
        if not args.ferrokey or not Path(args.ferrokey).is_file():
            raise RuntimeError(f"ferrokey binary not found: {args.ferrokey!r}")
        logs = work / "logs"
        logs.mkdir()
        t0 = time.monotonic()
        # --uv auto: a key with built-in user verification (a fingerprint that
        # always matches), as browsers want for discoverable credentials.
        # --control: the instrument-* scenarios drive the keys through the control
        # API, which the guest reaches at 10.0.2.2 (QEMU's user network).
        control_port = free_port()
        key = Key(args.ferrokey, "browsers", work / "state", logs, "auto", keys=len(browsers),
                  extra_args=["--uv", "auto", "--control", f"127.0.0.1:{control_port}",
                              "--control-allow-host", "10.0.2.2"])
        key.state_dir.mkdir(mode=0o700)
        key.start()
        if len(key.busids) < len(browsers):
            raise RuntimeError(f"ferrokey serves {key.busids}, wanted {len(browsers)} keys")
        log(f"ferrokey (--keys {len(browsers)}, --presence auto, --uv auto) on 127.0.0.1:{key.port}, "
            f"busids {' '.join(key.busids)}")
        general.append(("start ferrokey (host)", time.monotonic() - t0))

        ca = subprocess.run([args.ferrokey, "ca", "--state-dir", str(key.state_dir)],
                            capture_output=True, timeout=30)
        (work / "ca.pem").write_bytes(ca.stdout)
        if ca.returncode != 0 or b"BEGIN CERTIFICATE" not in ca.stdout:
            raise RuntimeError(f"`ferrokey ca` exited {ca.returncode}: "
                               f"{ca.stderr.decode(errors='replace')[-300:]}")

        warm = {}
        for b in browsers:
            t0 = time.monotonic()
            try:
                warm[b] = str(warm_profile(b))
            except (OSError, IndexError, subprocess.SubprocessError) as e:
                log(f"no warm {b} profile ({e}); the guest starts from an empty one")
            general.append((f"warm {b} profile (host, cached)", time.monotonic() - t0))
        cfg = {"port": key.port, "busids": key.busids, "ca_pem": str(work / "ca.pem"),
               "control": f"http://10.0.2.2:{control_port}/",
               "browsers": browsers, "only": only, "browser_timeout": args.browser_timeout,
               "warm_profiles": warm}
        if args.transport != "usbip":
            cfg.update({"transport": args.transport, "ferrokey": str(Path(args.ferrokey).resolve()),
                        "ca_dir": str(key.state_dir / "ca")})
        (work / "browser.json").write_text(json.dumps(cfg, indent=2))
        cmd = vm_command(key.port, key.busids[0], work, args.timeout, args.memory, "--smp", args.smp,
                         # chromium_ui.py: log the WebAuthn dialog's views (debugging)
                         *(["--env", f"FERROKEY_UI_DUMP={os.environ['FERROKEY_UI_DUMP']}"]
                           if os.environ.get("FERROKEY_UI_DUMP") else []))
        cmd += ["--", args.python, str(HERE / "guest_browsers.py"), str(work / "browser.json")]
        returncode, vm_timing = run_guest(cmd, work, log)
        results["guest-boot-and-attach"] = boot_and_attach_result(returncode, vm_timing)
        for name, label in (("boot_s", "guest boot"), ("attach_s", "guest attach (first key)"),
                            ("command_s", "guest command (both browsers)"), ("wall_s", "guest wall")):
            if vm_timing.get(name) is not None:
                general.append((label, vm_timing[name]))
        for line in read_lines(work / "browser-timing.jsonl"):
            b = json.loads(line)
            rows = per_browser.setdefault(b["browser"], [])
            rows.append(("attach its key", b.get("attach_s")))
            rows.append(("browser start (launch -> page served)", b.get("page_load")))
            rows.append(("launch -> last verdict", b.get("done")))
        for line in read_lines(work / "results.jsonl"):
            r = json.loads(line)
            results[r["name"]] = (r["ok"], r["detail"])
            browser, _, scenario = r["name"].partition("/")
            rows = per_browser.setdefault(browser, [])
            rows.append((scenario, r["seconds"]))
            for label, secs in r.get("timings", {}).items():
                if not label.startswith("browser_start"):
                    rows.append((f"  {label.replace('_s', '()').replace('setup_', 'setup ')}", secs))
    except Exception as e:
        log(f"ERROR: {e}")
        results.setdefault("guest-boot-and-attach", (False, str(e)))
        print(f"FAIL guest-boot-and-attach: {e}", flush=True)
    finally:
        if key:
            key.stop()

    expected = ["guest-boot-and-attach"] + [f"{b}/{s}" for b in browsers for s in SCENARIOS
                                            if not only or s in only]
    for title, rows in [("run", general)] + [(b, per_browser.get(b, [])) for b in browsers]:
        if rows:
            print(f"\n== timings: {title} (seconds)")
            for label, secs in rows:
                if secs is not None:
                    print(f"  {label:<44} {fmt_secs(secs)}")
    known = load_known_failures(args.known_failures)
    if only or browsers != BROWSERS:  # a partial run answers only for what it ran
        known = {k: v for k, v in known.items() if k in expected}
    accounting = Results("browsers", expected, known)
    for name, (ok, detail) in results.items():
        accounting.record(name, "pass" if ok else "fail", detail)
    status = accounting.finish()
    if status or args.keep:
        print(f"work dir kept: {work} (logs/, .vm/console.log, results.jsonl, rp-events.jsonl)")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
