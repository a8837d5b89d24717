"""The pytest plugin, run by pytester against a real ferrokey: a fresh key per
test removed after it, options from the marker, the event transcript in a
failed test's report, and the session server started and stopped."""
import os
import time

PASSING_AND_FAILING = '''
import pytest

def test_ok(security_key):
    assert security_key.info()["powered"]

@pytest.mark.security_key(vendor={"exportable": False}, has_user_verification=False)
def test_marker(security_key):
    options = security_key.info()["options"]
    assert options["exportable"] is False and options["uv"] == "off"

def test_fails(security_key):
    security_key.power(False)
    security_key.power(True)
    assert False, "on purpose"
'''


def test_keys_are_fresh_removed_and_failures_get_the_transcript(pytester, usbip_server):
    before = [k.authenticator_id for k in usbip_server.keys]
    pytester.makepyfile(PASSING_AND_FAILING)
    result = pytester.runpytest("--ferrokey-url", usbip_server.url, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    text = result.stdout.str()
    section = text[text.index("ferrokey events (authenticator"):]
    assert section.index('"event": "powerOff"') < section.index('"event": "powerOn"')
    assert text.count("ferrokey events (authenticator") == 1  # the failed test only
    assert [k.authenticator_id for k in usbip_server.keys] == before  # all three removed


def test_a_profile_the_server_lacks_is_a_clear_setup_error(pytester, usbip_server):
    pytester.makepyfile('''
import pytest

@pytest.mark.security_key(profile="no-such-profile")
def test_profiled(security_key):
    pass
''')
    result = pytester.runpytest("--ferrokey-url", usbip_server.url, "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*InvalidArgument*profile*"])


def test_the_session_server_is_started_and_stopped(pytester, ferrokey_bin, tmp_path):
    pid_file = tmp_path / "pid"
    pytester.makepyfile(f'''
def test_server(ferrokey_server, security_key):
    assert ferrokey_server.transport == "usbip"
    assert security_key.busid != ferrokey_server.busid
    open({str(pid_file)!r}, "w").write(str(ferrokey_server.process.pid))
''')
    result = pytester.runpytest_subprocess("--ferrokey-bin", ferrokey_bin, "--ferrokey-transport",
                                           "usbip", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), "ferrokey still runs after the session"
