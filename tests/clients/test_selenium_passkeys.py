"""Passkeys in Chromium through Selenium, with a fresh ferrokey key per test
from the pytest plugin; the relying party (rp_app.py) verifies every ceremony."""
from ferrokey import b64url
from ferrokey.credentials import generate

RUN = "return fk.{}"  # the page's helpers (rp_app.py): execute_script awaits their promise


def start(driver, call):
    """Starts a ceremony that will wait on a Chrome sheet; finish() gets its verdict."""
    driver.execute_script(f"window.pending = fk.{call}")
    return lambda: driver.execute_async_script("window.pending.then(arguments[0])")


def test_register_and_sign_in_username_less_too(driver, rp_url, security_key):
    driver.get(f"{rp_url}/?browser=se-register")
    reg = driver.execute_script(RUN.format("register({user: 'alice', residentKey: 'required'})"))
    assert reg["ok"] and reg["credProps"] == {"rk": True}, reg
    sign_in = driver.execute_script(RUN.format(f"signIn({{allow: ['{reg['id']}']}})"))
    assert sign_in["ok"] and sign_in["id"] == reg["id"], sign_in
    finish = start(driver, "signIn({allow: []})")
    security_key.chrome.select_account("alice")  # Chrome's account chooser
    last = finish()
    assert last["ok"] and last["id"] == reg["id"] and last["userHandleMatches"], last
    assert last["signCount"] > sign_in["signCount"]
    [cred] = security_key.get_credentials()  # the key's own view
    assert (cred["credentialId"], cred["rpId"], cred["signCount"]) == (reg["id"], "localhost", last["signCount"])


def test_an_excluded_credential_sheet_is_closed(driver, rp_url, security_key):
    driver.get(f"{rp_url}/?browser=se-exclude")
    reg = driver.execute_script(RUN.format("register({user: 'bob'})"))
    assert reg["ok"], reg
    finish = start(driver, f"register({{user: 'bob', exclude: ['{reg['id']}']}})")
    security_key.chrome.close_sheet()  # "already registered"
    refused = finish()
    assert refused["ok"] is False and refused["name"] == "InvalidStateError", refused
    assert len(security_key.get_credentials()) == 1


def test_sign_in_with_a_seeded_credential(driver, rp_url, security_key):
    cred = generate("localhost", user_handle=b"dora", user_name="dora", user_display_name="Dora",
                    sign_count=41)
    security_key.add_credential(cred.params)
    driver.get(f"{rp_url}/?browser=se-seeded")
    account = {"user": "dora", "userHandle": cred.params["userHandle"], "id": cred.params["credentialId"],
               "publicKeyCose": b64url(cred.public_key_cose)}
    assert driver.execute_script("return fk.addAccount(arguments[0])", account) == {"ok": True}
    first = driver.execute_script(RUN.format(f"signIn({{allow: ['{account['id']}']}})"))
    assert first["ok"] and first["signCount"] > 41, first
    finish = start(driver, "signIn({allow: []})")
    security_key.chrome.select_account("dora")
    second = finish()
    assert second["ok"] and second["userHandleMatches"] and second["signCount"] > first["signCount"], second
    assert security_key.get_credential(cred.credential_id)["signCount"] == second["signCount"]
