"""python-fido2 over USB/IP, without a kernel: a `CtapHidConnection` that
imports a ferrokey key over its USB/IP port and moves 64-byte HID reports in
interrupt URBs, as vhci_hcd + usbhid would.

  device = open_device(port, "1-1")     # a fido2.hid.CtapHidDevice
  Ctap2(device).get_info()

Only what a FIDO HID device needs: OP_REQ_IMPORT, GET_DESCRIPTOR(device),
SET_CONFIGURATION, then interrupt OUT (endpoint 1) and one pending interrupt IN
(endpoint 0x81). Python 3 stdlib + fido2.
"""
import socket
import struct

from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor

VERSION = 0x0111
HEADER = 48
REPORT = 64
EP = 1


class UsbipError(Exception):
    pass


class UsbipHidConnection(CtapHidConnection):
    """One imported key: reports in and out over USB/IP URBs."""

    def __init__(self, port, busid="1-1", host="127.0.0.1", timeout=30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        busid_field = busid.encode().ljust(32, b"\0")
        self.sock.sendall(struct.pack(">HHI", VERSION, 0x8003, 0) + busid_field)
        _ver, code, status = struct.unpack(">HHI", self._recv(8))
        if code != 0x0003 or status != 0:
            raise UsbipError(f"import of {busid} refused (code {code:#x}, status {status})")
        record = self._recv(312)
        busnum, devnum = struct.unpack(">II", record[288:296])
        self.vid, self.pid = struct.unpack(">HH", record[300:304])
        self.devid = busnum << 16 | devnum
        self.seq = 0
        self.pending_in = None
        self.inflight = {}  # seqnum -> is IN (the reply header does not say)
        self.early = {}  # replies that arrived for another URB than the one awaited
        device = self._control_in(bytes([0x80, 6, 0, 1, 0, 0, 18, 0]), 18)
        if len(device) != 18 or device[1] != 1:
            raise UsbipError("bad device descriptor")
        self._control_out(bytes([0x00, 9, 1, 0, 0, 0, 0, 0]))  # SET_CONFIGURATION 1

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise UsbipError("connection closed")
            buf += chunk
        return buf

    def _urb(self, direction, ep, length, setup=bytes(8), data=b""):
        """Submits a URB; returns (seqnum, direction)."""
        self.seq += 1
        header = struct.pack(">IIIIIIIII", 1, self.seq, self.devid, direction, ep, 0,
                             length, 0, 0) + struct.pack(">I", 0) + setup
        self.inflight[self.seq] = direction == 1
        self.sock.sendall(header + data)
        return self.seq, direction

    def _wait(self, urb):
        """The reply (status, data) of URB `urb` (seqnum, direction)."""
        seq, _ = urb
        while seq not in self.early:
            head = self._recv(HEADER)
            command, rseq = struct.unpack(">II", head[:8])
            status, actual = struct.unpack(">iI", head[20:28])
            if command != 3:
                raise UsbipError(f"unexpected reply command {command}")
            is_in = self.inflight.pop(rseq)
            data = self._recv(actual) if is_in and actual else b""
            self.early[rseq] = (status, data)
        return self.early.pop(seq)

    def _control_in(self, setup, length):
        status, data = self._wait(self._urb(1, 0, length, setup))
        if status != 0:
            raise UsbipError(f"control IN failed: {status}")
        return data

    def _control_out(self, setup):
        status, _ = self._wait(self._urb(0, 0, 0, setup))
        if status != 0:
            raise UsbipError(f"control OUT failed: {status}")

    def _arm_in(self):
        if self.pending_in is None:
            self.pending_in = self._urb(1, EP, REPORT)

    def write_packet(self, data):
        self._arm_in()
        status, _ = self._wait(self._urb(0, EP, len(data), data=bytes(data)))
        if status != 0:
            raise UsbipError(f"interrupt OUT failed: {status}")

    def read_packet(self):
        self._arm_in()
        status, data = self._wait(self.pending_in)
        self.pending_in = None
        self._arm_in()
        if status != 0 or len(data) != REPORT:
            raise UsbipError(f"interrupt IN failed: status {status}, {len(data)} bytes")
        return data

    def close(self):
        self.sock.close()


def open_device(port, busid="1-1", host="127.0.0.1"):
    """A python-fido2 CtapHidDevice for the key `busid` served on host:port."""
    connection = UsbipHidConnection(port, busid, host)
    descriptor = HidDescriptor(f"usbip://{host}:{port}/{busid}", connection.vid, connection.pid,
                               REPORT, REPORT, None, None)
    return CtapHidDevice(descriptor, connection)
