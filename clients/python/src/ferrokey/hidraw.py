"""Finding a key's ``/dev/hidrawN`` (uhid or vhci-attached) by its USB ids and
serial number, as the kernel lists them in ``/sys/class/hidraw/*/device/uevent``
(``HID_ID`` and ``HID_UNIQ``)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

from .errors import HidrawNotFound

HIDRAW_CLASS = Path("/sys/class/hidraw")


def matches(uevent: str, vendor: int, product: int, serial: str) -> bool:
    """Whether a HID device's uevent text names this key."""
    id_ok = uniq_ok = False
    for line in uevent.splitlines():
        if line.startswith("HID_ID="):
            parts = line[len("HID_ID="):].split(":")
            try:
                id_ok = len(parts) == 3 and (int(parts[1], 16), int(parts[2], 16)) == (vendor, product)
            except ValueError:
                id_ok = False
        elif line.startswith("HID_UNIQ="):
            uniq_ok = line[len("HID_UNIQ="):] == serial
    return id_ok and uniq_ok


def find(vendor: int, product: int, serial: str, root: Path = HIDRAW_CLASS) -> Optional[str]:
    """The key's ``/dev/hidrawN``, or None if the kernel has none (yet)."""
    try:
        names = sorted(n for n in os.listdir(root) if n.startswith("hidraw"))
    except OSError:
        return None
    for name in names:
        try:
            uevent = (root / name / "device" / "uevent").read_text()
        except OSError:
            continue
        if matches(uevent, vendor, product, serial):
            return f"/dev/{name}"
    return None


def wait_for(vendor: int, product: int, serial: str, timeout: float = 20.0,
             root: Path = HIDRAW_CLASS) -> str:
    """Waits until the key's hidraw node exists (in sysfs and in /dev)."""
    deadline = time.monotonic() + timeout
    while True:
        node = find(vendor, product, serial, root)
        if node and (root != HIDRAW_CLASS or os.path.exists(node)):
            return node
        if time.monotonic() >= deadline:
            raise HidrawNotFound(
                f"no hidraw node for {vendor:04x}:{product:04x} serial {serial} within {timeout:g} s "
                "(a usbip key needs `usbip attach` first; uhid needs /dev/uhid)")
        time.sleep(0.05)
