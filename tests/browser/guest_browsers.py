#!/usr/bin/env python3
"""Guest side of the browser passkey tests (entry point: run-browser-e2e.sh).

Runs INSIDE the QEMU guest, in a chroot of the host's root (tools/vm/run
--chroot), with the repo's .venv python.  It starts the relying party
(rp_server.py) on the guest's own http://localhost:PORT, then, for each browser
in turn, attaches that browser's own ferrokey key over USB/IP (ferrokey serves
one key per browser: --keys N), starts the browser headless on the page (from
a copy of the profile browser_e2e.py warmed on the host, if any), and
waits until the page has run every scenario and reported to the RP.  Each
verdict becomes `PASS|FAIL <browser>/<scenario>` in results.jsonl (the
tests/e2e format), with the browser's timings.

  python guest_browsers.py browser.json      (written by browser_e2e.py)
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.dont_write_bytecode = True
from e2e_common import free_port  # noqa: E402
from guest_steps import Fail, attach, detach, report  # noqa: E402
import chromium_ui  # noqa: E402

# Scenario names, in the order the page (page/app.js) runs them.
SCENARIOS = [
    "nonresident-register-signin",
    "discoverable-register-signin",
    "exclude-credentials",
    "attestation-direct",
    "counter-and-flags",
    # The key as a test instrument (ferrokey's control API, driven by the RP):
    "instrument-seeded-signin",
    "instrument-bogus-signature",
    "instrument-bad-up",
    # Other profiles and the lifecycle (the RP adds, clones and migrates keys
    # through the control API; the harness plugs the one the browser is to use):
    "profile-synced-passkey",
    "profile-u2f",
    "lifecycle-clone",
    "lifecycle-migration",
]
# The scenarios that plug other keys while the browser runs: Chromium learns of
# them from udev's netlink events, which only udevd sends (started for them).
PLUGGING = {"profile-synced-passkey", "profile-u2f", "lifecycle-clone", "lifecycle-migration"}
UDEVD = "/lib/systemd/systemd-udevd"
BROWSERS = ["chromium", "firefox"]

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--password-store=basic", "--no-default-browser-check",
    # Under TCG the browser's child processes can take >15 s to connect back.
    "--ipc-connection-timeout=600",
    # Chromium's FIDO log (device_event_log, FIDO_LOG) on stderr -> logs/chromium.log.
    "--enable-logging=stderr", "--vmodule=device_event_log_impl=2",
]
# Chromium policy (read from /etc/chromium/policies/managed): let localhost see
# the key's attestation statement without the "see your security key" prompt,
# which a headless run cannot answer.
CHROMIUM_POLICY = {"SecurityKeyPermitAttestation": ["localhost"]}

# Firefox profile prefs: no first-run pages, telemetry, updates or other
# background traffic; direct attestation without the consent prompt.
FIREFOX_PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "browser.startup.firstrunSkipsHomepage": True,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.firstRunURL": "",
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "",
    "app.update.auto": False,
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "browser.newtabpage.enabled": False,
    "browser.search.update": False,
    "browser.region.network.url": "",
    "services.settings.server": "http://localhost:9/",
    "identity.fxaccounts.enabled": False,
    "extensions.pocket.enabled": False,
    "media.gmp-manager.url": "",
    "browser.sessionstore.resume_from_crash": False,
    "toolkit.startup.max_resumed_crashes": -1,
    # Fewer processes: quicker under TCG.
    "dom.ipc.processCount": 1,
    "fission.autostart": False,
    # Direct attestation without the "extended information" prompt.
    "security.webauthn.always_allow_direct_attestation": True,
}


def log(msg):
    print(f"[guest-browsers] {msg}", flush=True)


def first_existing(*paths):
    for p in paths:
        if p and (Path(p).exists() or shutil.which(p)):
            return shutil.which(p) or p
    return None


def chromium_policy_overlay():
    """Put CHROMIUM_POLICY in /etc/chromium/policies/managed through a tmpfs over
    /etc/chromium (a copy of it): in the guest, /etc is the host's, read-only."""
    etc = Path("/etc/chromium")
    policy_dir = etc / "policies" / "managed"
    want = json.dumps(CHROMIUM_POLICY)
    target = policy_dir / "ferrokey-browser-test.json"
    if target.exists() and target.read_text() == want:
        return "already there"
    if not os.environ.get("VM_WORK_HOSTPATH"):
        return "not in the test guest: left /etc/chromium alone (direct attestation may prompt)"
    keep = tempfile.mkdtemp(prefix="etc-chromium-")
    if etc.is_dir():
        shutil.copytree(etc, keep, dirs_exist_ok=True)
    else:
        etc.mkdir(parents=True)  # fails on the read-only root: then no policy
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(etc)], check=True)
    shutil.copytree(keep, etc, dirs_exist_ok=True)
    policy_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(want)
    return f"{target} (tmpfs over {etc})"


def chromium_command(url, profile: Path):
    exe = first_existing("/usr/lib/chromium/chromium", "chromium", "chromium-browser")
    if not exe:
        raise Fail("chromium is not installed")
    return [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url]


def firefox_command(url, profile: Path):
    exe = first_existing("/usr/lib/firefox-esr/firefox-esr", "firefox-esr", "firefox")
    if not exe:
        raise Fail("firefox-esr is not installed")
    (profile / "user.js").write_text(firefox_user_js())
    return [exe, "--headless", "--no-remote", "--profile", str(profile), url]


def firefox_user_js():
    return "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in FIREFOX_PREFS.items())


COMMANDS = {"chromium": chromium_command, "firefox": firefox_command}

# Chromium's FIDO log lines worth passing to the page (see /api/ui in rp_server.py).
UI_STEP = re.compile(rb"UI step: (\w+)")
CTAP_ERROR = re.compile(rb"CTAP2 error code (0x[0-9a-fA-F]+ \(\w+\))")

# Chromium sheets that wait for a user, answered by the harness through UI
# DevTools (chromium_ui.py) the way a user would, with one click:
# step (Chromium's AuthenticatorRequestDialogModel::Step) -> which button.
# kKeyAlreadyRegistered: the key answered CTAP2_ERR_CREDENTIAL_EXCLUDED; closing
#   the sheet rejects create() with InvalidStateError (README.md, "Browser
#   passkey tests in your CI").
# kSelectAccount (and kSelectSingleAccount, its one-account form in older
#   Chromiums): the account chooser after a get() with an empty allowList;
#   picking the account (the only one on the key for this RP) completes the get().
SHEET_ANSWERS = {
    "kKeyAlreadyRegistered": chromium_ui.by_label("Close", "Cancel", "OK", "Got it"),
    "kSelectAccount": chromium_ui.only_account,
    "kSelectSingleAccount": chromium_ui.only_account,
}


class FidoLogWatch:
    """Follows a browser's log; reports WebAuthn UI steps and CTAP errors to the RP,
    and hands each UI step to on_step."""

    def __init__(self, path: Path, browser, rp, on_step=None):
        self.path, self.browser, self.rp, self.pos, self.rest = path, browser, rp, 0, b""
        self.on_step = on_step

    def pump(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        self.pos += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            m = UI_STEP.search(line)
            if m:
                self.rp.browser_ui(self.browser, "ui-step", m.group(1).decode())
                if self.on_step:
                    self.on_step(m.group(1).decode())
            m = CTAP_ERROR.search(line)
            if m:
                self.rp.browser_ui(self.browser, "ctap-error", m.group(1).decode())


class Run:
    def __init__(self, cfg_path):
        self.cfg = json.loads(Path(cfg_path).read_text())
        self.work = Path(cfg_path).resolve().parent
        self.results = self.work / "results.jsonl"
        self.logs = self.work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.dev = os.environ.get("FERROKEY_HIDRAW", "")
        self.vport = os.environ.get("FERROKEY_VHCI_PORT", "")
        self.browsers = self.cfg.get("browsers") or BROWSERS
        self.only = [s for s in self.cfg.get("only", []) if s]
        self.guest_key = None  # with --transport: ferrokey running in the guest
        self.guest_control = None  # ... and its control API (http://127.0.0.1:PORT/)

    def fail_all(self, browser, why):
        for name in SCENARIOS:
            if not self.only or name in self.only:
                report(self.results, f"{browser}/{name}", False, why, 0)

    def switch_key(self, index):
        """Attach busids[index] (browser number index's own key), detaching the previous one."""
        if self.cfg.get("transport"):
            return self.switch_guest_key(index)
        return self.attach_busid(self.cfg["busids"][index], f"key {index + 1}")

    def attach_busid(self, busid, what):
        """The host's key `busid` attached (USB/IP), the one attached before detached."""
        if self.dev and self.attached_busid == busid:
            return 0.0
        t0 = time.monotonic()
        if self.dev:
            detach(self.vport, self.dev)
            self.dev = ""
        self.dev, self.vport = attach(self.cfg["port"], busid)
        self.attached_busid = busid
        log(f"attached {what} ({busid}) as {self.dev} in {time.monotonic() - t0:.2f}s")
        return round(time.monotonic() - t0, 2)

    def plug(self, index, control):
        """The key of `control` (an instrument.Control; None: browser number
        index's own key) becomes the only key the browser sees (the RP's
        /api/keys/* scenarios). USB/IP: that key attached, the previous one
        detached. In-guest transports: every other key of the in-guest server
        powered off (unplugged), that one powered on."""
        if not self.cfg.get("transport"):
            busid = self.cfg["busids"][index] if control is None else control.describe()["busid"]
            self.attach_busid(busid, "key" if control is None else f"authenticator {control.authenticator}")
            return
        from instrument import Control
        own = Control(self.guest_control, authenticator="1")
        target = control or own
        others = []
        for key in own.call("GET", "/webauthn/authenticators"):
            if key["authenticatorId"] == target.authenticator:
                continue
            others.append(key["serial"])
            if key["powered"]:
                own.other(key["authenticatorId"]).power(False)
        described = target.describe()
        if not described["powered"]:
            target.power(True)
        # A uhid key's description names its hidraw node only while a host
        # holds it open: find the nodes by serial (HID_UNIQ) in sysfs.
        end = time.monotonic() + 60
        while True:
            nodes = hidraw_by_serial()
            node = nodes.get(described["serial"])
            if node and os.path.exists(node) and not any(s in nodes for s in others):
                break
            if time.monotonic() > end:
                raise RuntimeError(f"authenticator {target.authenticator} not the only key after 60s: "
                                   f"hidraw nodes {nodes}")
            time.sleep(0.1)
        self.dev = node
        log(f"plugged authenticator {target.authenticator} as {node}")

    def switch_guest_key(self, index):
        """--transport uhid|attach: ferrokey runs inside the guest; each browser
        gets a fresh key (the host key attached at boot is detached first). The
        key's state starts with the host key's CA, so the RP's trust holds."""
        t0 = time.monotonic()
        if self.dev and self.vport:
            detach(self.vport, self.dev)
            self.vport = ""
        if self.guest_key:
            stop_guest_key(self.guest_key, self.dev)
            self.guest_key = None
        transport = self.cfg["transport"]
        state = Path(tempfile.mkdtemp(prefix=f"ferrokey-{transport}-", dir="/tmp"))
        shutil.copytree(self.cfg["ca_dir"], state / "ca")
        log_path = self.logs / f"ferrokey-{transport}-{index + 1}.log"
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                [self.cfg["ferrokey"], "serve", "--transport", transport, "--uv", "auto",
                 "--state-dir", str(state), "--control", "127.0.0.1:0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
                env=dict(os.environ, RUST_LOG="info"))
        pattern = re.compile(r"key-1 (?:is a uhid device|attached on vhci port \d+): (/dev/hidraw\d+)")
        end = time.monotonic() + 90
        while True:
            m = pattern.search(log_path.read_text())
            if m and os.path.exists(m.group(1)):
                break
            if proc.poll() is not None or time.monotonic() > end:
                proc.kill()
                raise RuntimeError(f"ferrokey --transport {transport}: {log_path.read_text()[-400:]!r}")
            time.sleep(0.05)
        self.guest_key, self.dev = proc, m.group(1)
        control = re.search(r"control API on (http://\S+/)", log_path.read_text())
        self.guest_control = control.group(1) if control else None
        took = round(time.monotonic() - t0, 2)
        log(f"key {index + 1}: ferrokey --transport {transport} in the guest as {self.dev} in {took}s")
        return took

    def answer_sheet(self, browser, rp, ui_port, step):
        """Answer a Chromium sheet listed in SHEET_ANSWERS, as its user would; tell the
        page (ui-action, or ui-action-failed) through the RP."""
        if step not in SHEET_ANSWERS:
            return
        t0 = time.monotonic()
        try:
            what = chromium_ui.press_sheet_button(ui_port, SHEET_ANSWERS[step],
                                                  log=lambda m: log(f"{browser}: {step}: {m}"))
            rp.browser_ui(browser, "ui-action", f"{step}: {what} ({time.monotonic() - t0:.1f}s)")
        except Exception as e:
            rp.browser_ui(browser, "ui-action-failed", f"{step}: {e}")
        log(f"{browser}: {step} sheet: {rp.ui_log(browser)['entries'][-1]['value']}")

    def run_browser(self, index, browser, rp, port):
        timeout = float(self.cfg.get("browser_timeout", 300))
        try:
            attach_s = self.switch_key(index)
        except Exception as e:
            return self.fail_all(browser, f"attach failed: {e}")
        # The key's control API, for the instrument-* scenarios (the RP drives it).
        from instrument import Control  # the venv's cryptography and fido2
        if self.cfg.get("transport") and self.guest_control:
            rp.instruments[browser] = Control(self.guest_control, authenticator="1")
        elif self.cfg.get("control"):
            rp.instruments[browser] = Control(self.cfg["control"], busid=self.cfg["busids"][index])
        profile = Path(tempfile.mkdtemp(prefix=f"{browser}-profile-"))
        warm = (self.cfg.get("warm_profiles") or {}).get(browser)
        if warm and Path(warm).is_dir():  # made on the host by browser_e2e.py (native speed)
            shutil.copytree(warm, profile, dirs_exist_ok=True, symlinks=True)
        query = f"browser={browser}" + (f"&only={','.join(self.only)}" if self.only else "")
        url = f"http://localhost:{port}/?{query}"
        try:
            cmd = COMMANDS[browser](url, profile)
        except Fail as e:
            return self.fail_all(browser, str(e))
        on_step = None
        if browser == "chromium":
            ui_port = free_port()
            cmd[-1:-1] = [f.format(port=ui_port) for f in chromium_ui.UI_DEVTOOLS_FLAGS]
            on_step = lambda step: self.answer_sheet(browser, rp, ui_port, step)  # noqa: E731
        env = dict(os.environ, MOZ_CRASHREPORTER_DISABLE="1", MOZ_DISABLE_AUTO_SAFE_MODE="1",
                   NO_AT_BRIDGE="1", DBUS_SESSION_BUS_ADDRESS="disabled:")
        logf = open(self.logs / f"{browser}.log", "wb")
        log(f"starting {browser}: {' '.join(cmd)}")
        n_events = len(rp.events)
        t_launch = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        watch = FidoLogWatch(self.logs / f"{browser}.log", browser, rp, on_step)
        got = {}       # scenario -> result
        marks = {"attach_s": attach_s}  # event -> seconds (since launch, except attach_s)
        done = False
        try:
            end = t_launch + timeout
            while not done:
                watch.pump()
                with rp.cond:
                    rp.cond.wait(0.3)
                    new = rp.events[n_events:]
                    n_events = len(rp.events)
                for t, b, kind, data in new:
                    if b != browser:
                        continue
                    rel = round(t - t_launch, 2)
                    if kind == "page-load":
                        marks.setdefault("page_load", rel)
                    elif kind == "log":
                        log(f"{browser} +{rel}s: {data.get('msg')}")
                    elif kind in ("ui-step", "ctap-error"):
                        log(f"{browser} +{rel}s: {kind} {data.get('value')}")
                    elif kind == "error":
                        log(f"{browser} +{rel}s: RP error on {data.get('path')}: {data.get('error')}")
                    elif kind == "result":
                        got[data["scenario"]] = data
                        marks.setdefault("first_result", rel)
                        log(f"{browser} +{rel}s: {'PASS' if data['ok'] else 'FAIL'} {data['scenario']}")
                    elif kind == "done":
                        marks["done"] = rel
                        done = True
                if proc.poll() is not None and not done:
                    log(f"{browser} exited with {proc.returncode} before the page finished")
                    break
                if time.monotonic() > end:
                    log(f"{browser}: timeout after {timeout:g}s")
                    break
        finally:
            t_stop = time.monotonic()
            stop(proc)
            marks["stop_s"] = round(time.monotonic() - t_stop, 2)
            logf.close()
            shutil.rmtree(profile, ignore_errors=True)

        start_s = marks.get("page_load")
        why_missing = ("the browser never loaded the page" if start_s is None else
                       "the page did not report this scenario (timeout or browser exit)")
        for name in SCENARIOS:
            if self.only and name not in self.only:
                continue
            r = got.get(name)
            if r is None:
                report(self.results, f"{browser}/{name}", False, why_missing, 0,
                       {"browser_start_s": start_s})
                continue
            t = {k: (v / 1000 if isinstance(v, (int, float)) else [x / 1000 for x in v])
                 for k, v in r["timings"].items() if k != "scenario_ms"}
            t = {k.replace("_ms", "_s"): v for k, v in t.items()}
            if name == SCENARIOS[0] or (self.only and name == self.only[0]):
                t["browser_start_s (launch to page)"] = start_s
            report(self.results, f"{browser}/{name}", r["ok"], r["detail"],
                   r["timings"].get("scenario_ms", 0) / 1000, t)
        log(f"{browser}: launch->page {start_s}s, launch->done {marks.get('done')}s, "
            f"stop {marks['stop_s']}s")
        with open(self.work / "browser-timing.jsonl", "a") as f:
            f.write(json.dumps({"browser": browser, **marks}) + "\n")

    def main(self):
        sys.path.insert(0, str(HERE))
        from rp_server import serve
        self.attached_busid = self.cfg["busids"][0] if self.dev else None
        root_pem = Path(self.cfg["ca_pem"]).read_bytes()
        server, rp = serve(int(self.cfg.get("rp_port", 0)), root_pem, self.work / "rp-events.jsonl")
        rp.plug = lambda browser, control: self.plug(self.browsers.index(browser), control)
        port = server.server_address[1]
        log(f"relying party on http://localhost:{port}")
        udevd = None
        if any(not self.only or s in self.only for s in PLUGGING):
            udevd = start_udevd(self.logs / "udevd.log")
        if "chromium" in self.browsers:
            try:
                log(f"chromium policy: {chromium_policy_overlay()}")
            except Exception as e:
                log(f"chromium policy overlay failed: {e}")
        for i, browser in enumerate(self.browsers):
            self.run_browser(i, browser, rp, port)
        if self.guest_key:
            stop_guest_key(self.guest_key, self.dev)
        if udevd:
            stop(udevd)
        server.shutdown()
        return 0


def hidraw_by_serial():
    """{HID_UNIQ (a ferrokey key's serial): /dev/hidrawN} of the HID devices there are."""
    nodes = {}
    for uevent in Path("/sys/class/hidraw").glob("hidraw*/device/uevent"):
        try:
            fields = dict(line.split("=", 1) for line in uevent.read_text().splitlines() if "=" in line)
        except OSError:
            continue
        if fields.get("HID_UNIQ"):
            nodes[fields["HID_UNIQ"]] = f"/dev/{uevent.parent.parent.name}"
    return nodes


def start_udevd(log_path: Path):
    """systemd-udevd, so that a browser learns of keys plugged after it started
    (the PLUGGING scenarios); None (logged) where it cannot run."""
    if not os.path.exists(UDEVD):
        log(f"{UDEVD} missing (Debian package udev): Chromium will not see keys plugged later")
        return None
    proc = subprocess.Popen([UDEVD], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(log_path, "wb"), start_new_session=True)
    time.sleep(0.5)
    if proc.poll() is not None:
        log(f"udevd exited with {proc.returncode}: {log_path.read_text()[-300:]!r}")
        return None
    log(f"udevd running (pid {proc.pid})")
    return proc


def stop_guest_key(proc, dev):
    """SIGTERM an in-guest ferrokey and wait until its hidraw node is gone."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    end = time.monotonic() + 15
    while dev and os.path.exists(dev) and time.monotonic() < end:
        time.sleep(0.05)


def stop(proc, grace=10):
    """SIGTERM the browser's process group, SIGKILL it after `grace` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


if __name__ == "__main__":
    sys.exit(Run(sys.argv[1]).main())
