#!/usr/bin/env python3
"""The relying party of the client-package tests (Playwright, Selenium): the
py_webauthn relying party of tests/browser/rp_server.py (every ceremony verified
server-side) behind a page that does nothing by itself. Tests drive it through
`window.fk` in the page:

  await fk.register({user, residentKey, exclude})   -> the RP's verdict
  await fk.signIn({allow})                          -> the RP's verdict ([] = username-less)
  await fk.addAccount({user, userHandle, id, publicKeyCose})   an account whose
      credential was made outside the browser (seeded into the key by the test)

Each verdict is {ok, ...} as rp_server.py answers, or {ok: false, error, name}
when the browser's ceremony failed (name: the DOMException's name).

  .venv/bin/python tests/clients/rp_app.py --port 0 --url-file FILE
"""
import argparse
import base64
import json
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "browser"))
sys.dont_write_bytecode = True
import rp_server  # noqa: E402

PAGE = (HERE / "page.html").read_bytes()


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def add_account(rp, req):
    """Registers an account whose credential the test made and seeded itself."""
    browser = req["browser"]
    record = {
        "id": req["id"], "public_key": unb64u(req["publicKeyCose"]), "sign_count": 0, "history": [0],
        "user": req["user"], "user_id": unb64u(req["userHandle"]), "device_type": "single_device",
        "backed_up": False, "fmt": "seeded",
    }
    with rp.lock:
        rp.creds.setdefault(browser, {})[req["id"]] = record
    rp.event(browser, "account", {"id": req["id"], "user": req["user"]})
    return {"ok": True}


def make_handler(rp):
    base = rp_server.make_handler(rp)

    class Handler(base):
        def do_GET(self):
            if self.path.split("?")[0] in ("/", "/index.html"):
                return self.send(200, PAGE, "text/html; charset=utf-8")
            return super().do_GET()

        def do_POST(self):
            if self.path == "/api/accounts":
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    return self.send_json(add_account(rp, json.loads(self.rfile.read(length))))
                except (KeyError, ValueError) as e:
                    return self.send_json({"ok": False, "error": f"{type(e).__name__}: {e}"}, 400)
            return super().do_POST()

    return Handler


def serve(port=0):
    """Starts the RP on 127.0.0.1:port in a thread; returns (server, rp)."""
    rp = rp_server.RelyingParty(rp_server.bogus_root_pem())
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(rp))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="rp-app").start()
    return server, rp


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--url-file", help="write the page's URL here once serving")
    args = ap.parse_args()
    server, _ = serve(args.port)
    url = f"http://localhost:{server.server_address[1]}/"
    if args.url_file:
        Path(args.url_file).write_text(url + "\n")
    print(f"relying party on {url}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
