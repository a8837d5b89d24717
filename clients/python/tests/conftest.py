"""Shared fixtures of the package's own tests: the ferrokey binary ($FERROKEY_BIN
or PATH) and a server on USB/IP (this host needs no kernel module for that);
CTAP goes through python-fido2 over USB/IP (tests/attestation/usbip_hid.py)."""
import sys
from pathlib import Path

import pytest

import ferrokey

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "attestation"))

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def ferrokey_bin():
    """The binary under test; a missing one is an error, never a skip."""
    return ferrokey.find_binary()


@pytest.fixture(scope="module")
def usbip_server(ferrokey_bin):
    """One `ferrokey serve --transport usbip` for a test module."""
    with ferrokey.start(ferrokey_bin, transport="usbip") as server:
        yield server


@pytest.fixture
def fresh_key(usbip_server):
    """A fresh key of usbip_server, removed after the test."""
    key = usbip_server.client.add_virtual_authenticator()
    yield key
    try:
        key.remove()
    except ferrokey.NoSuchAuthenticator:
        pass


def open_ctap(server, key):
    """python-fido2's Ctap2 on `key`, imported over USB/IP (no kernel)."""
    from fido2.ctap2 import Ctap2
    from usbip_hid import open_device
    device = open_device(server.usbip_port, key.busid)
    return device, Ctap2(device)


@pytest.fixture
def ctap(usbip_server):
    """open(key) -> Ctap2 over USB/IP; every device opened is closed after the test."""
    opened = []

    def open_(key):
        device, ctap2 = open_ctap(usbip_server, key)
        opened.append(device)
        return ctap2
    yield open_
    for device in opened:
        device.close()

