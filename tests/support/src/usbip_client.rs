//! A USB/IP client (the host side, as `usbip` + `vhci_hcd` would be), for tests.
//!
//! Written independently of `firmware_sim::usbip` (no shared codec) so each side
//! checks the other. Blocking I/O on a `std::net::TcpStream`:
//!
//! - [`list_devices`]: OP_REQ_DEVLIST on its own connection.
//! - [`UsbipClient::import`]: OP_REQ_IMPORT; then URBs on that connection.
//! - [`UsbipClient::enumerate`]: the standard requests the kernel sends after an
//!   attach (device descriptor 8 then 18 bytes, configuration 9 then wTotalLength,
//!   strings, SET_CONFIGURATION, SET_IDLE, HID report descriptor), parsed.
//! - Interrupt transfers with one IN URB kept pending ([`UsbipClient::send_report`],
//!   [`UsbipClient::recv_report`]; also the CTAPHID client's `ReportTransport`),
//!   raw [`UsbipClient::submit_in`] / [`UsbipClient::submit_out`] /
//!   [`UsbipClient::wait`] / [`UsbipClient::unlink`], and [`raw`] frame builders
//!   for negative tests.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Protocol version 1.1.1.
pub const VERSION: u16 = 0x0111;
/// `-EPIPE`.
pub const EPIPE: i32 = -32;
/// `-ECONNRESET`.
pub const ECONNRESET: i32 = -104;

const HEADER: usize = 48;
const RECORD: usize = 312;

/// Frame builders for hand-made (and malformed) traffic.
pub mod raw {
    /// OP_REQ_DEVLIST.
    pub fn op_devlist() -> Vec<u8> {
        let mut v = super::VERSION.to_be_bytes().to_vec();
        v.extend_from_slice(&[0x80, 0x05, 0, 0, 0, 0]);
        v
    }

    /// OP_REQ_IMPORT of `busid`.
    pub fn op_import(busid: &str) -> Vec<u8> {
        let mut v = super::VERSION.to_be_bytes().to_vec();
        v.extend_from_slice(&[0x80, 0x03, 0, 0, 0, 0]);
        let mut field = [0u8; 32];
        let n = busid.len().min(31);
        field[..n].copy_from_slice(&busid.as_bytes()[..n]);
        v.extend_from_slice(&field);
        v
    }

    /// A 48-byte URB header: command, seqnum, devid, direction, ep, then five
    /// more 32-bit words, then the 8-byte setup packet.
    pub fn urb_header(words: [u32; 10], setup: [u8; 8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(super::HEADER);
        for w in words {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend_from_slice(&setup);
        v
    }

    /// CMD_SUBMIT; `data` follows for OUT (direction 0).
    pub fn cmd_submit(
        seqnum: u32,
        devid: u32,
        direction: u32,
        ep: u32,
        length: u32,
        setup: [u8; 8],
        data: &[u8],
    ) -> Vec<u8> {
        let mut v = urb_header([1, seqnum, devid, direction, ep, 0, length, 0, 0, 0], setup);
        v.extend_from_slice(data);
        v
    }

    /// CMD_UNLINK of `target`.
    pub fn cmd_unlink(seqnum: u32, devid: u32, target: u32) -> Vec<u8> {
        urb_header([2, seqnum, devid, 0, 0, target, 0, 0, 0, 0], [0; 8])
    }
}

/// One device of OP_REP_DEVLIST (or the record of OP_REP_IMPORT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedDevice {
    /// The path field.
    pub path: String,
    /// The busid.
    pub busid: String,
    /// busnum.
    pub busnum: u32,
    /// devnum.
    pub devnum: u32,
    /// speed (2 = full).
    pub speed: u32,
    /// idVendor.
    pub vendor_id: u16,
    /// idProduct.
    pub product_id: u16,
    /// bcdDevice.
    pub bcd_device: u16,
    /// bDeviceClass, bDeviceSubClass, bDeviceProtocol.
    pub class: (u8, u8, u8),
    /// bConfigurationValue.
    pub configuration_value: u8,
    /// bNumConfigurations.
    pub num_configurations: u8,
    /// bNumInterfaces.
    pub num_interfaces: u8,
    /// Interface records (class, subclass, protocol, padding); device list only.
    pub interfaces: Vec<[u8; 4]>,
}

impl ExportedDevice {
    /// `busnum << 16 | devnum`.
    pub fn devid(&self) -> u32 {
        (self.busnum << 16) | self.devnum
    }

    fn parse(r: &[u8]) -> io::Result<Self> {
        if r.len() < RECORD {
            return Err(bad("short device record"));
        }
        let cstr = |b: &[u8]| {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        };
        let u32at = |i: usize| u32::from_be_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
        let u16at = |i: usize| u16::from_be_bytes([r[i], r[i + 1]]);
        Ok(Self {
            path: cstr(&r[..256]),
            busid: cstr(&r[256..288]),
            busnum: u32at(288),
            devnum: u32at(292),
            speed: u32at(296),
            vendor_id: u16at(300),
            product_id: u16at(302),
            bcd_device: u16at(304),
            class: (r[306], r[307], r[308]),
            configuration_value: r[309],
            num_configurations: r[310],
            num_interfaces: r[311],
            interfaces: Vec::new(),
        })
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

fn read_op_header(stream: &mut TcpStream, code: u16) -> io::Result<u32> {
    let mut h = [0u8; 8];
    stream.read_exact(&mut h)?;
    if u16::from_be_bytes([h[0], h[1]]) != VERSION || u16::from_be_bytes([h[2], h[3]]) != code {
        return Err(bad("unexpected operation reply header"));
    }
    Ok(u32::from_be_bytes([h[4], h[5], h[6], h[7]]))
}

/// OP_REQ_DEVLIST on a new connection. Also checks that the server then closes.
pub fn list_devices(addr: SocketAddr) -> io::Result<Vec<ExportedDevice>> {
    let mut stream = connect(addr)?;
    stream.write_all(&raw::op_devlist())?;
    let status = read_op_header(&mut stream, 0x0005)?;
    if status != 0 {
        return Err(bad("devlist status not 0"));
    }
    let mut n = [0u8; 4];
    stream.read_exact(&mut n)?;
    let mut devices = Vec::new();
    for _ in 0..u32::from_be_bytes(n) {
        let mut record = vec![0u8; RECORD];
        stream.read_exact(&mut record)?;
        let mut device = ExportedDevice::parse(&record)?;
        for _ in 0..device.num_interfaces {
            let mut i = [0u8; 4];
            stream.read_exact(&mut i)?;
            device.interfaces.push(i);
        }
        devices.push(device);
    }
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest)?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the device list"));
    }
    Ok(devices)
}

/// Why an import failed.
#[derive(Debug)]
pub enum ImportError {
    /// Socket failure.
    Io(io::Error),
    /// The server answered with this nonzero status.
    Refused(u32),
}

impl From<io::Error> for ImportError {
    fn from(e: io::Error) -> Self {
        ImportError::Io(e)
    }
}

/// A finished URB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetSubmit {
    /// 0 or -errno.
    pub status: i32,
    /// actual_length.
    pub actual_length: u32,
    /// IN data.
    pub data: Vec<u8>,
}

/// A parsed device descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceDescriptor {
    /// bcdUSB.
    pub bcd_usb: u16,
    /// bDeviceClass.
    pub class: u8,
    /// bMaxPacketSize0.
    pub max_packet_size0: u8,
    /// idVendor.
    pub vendor_id: u16,
    /// idProduct.
    pub product_id: u16,
    /// bcdDevice.
    pub bcd_device: u16,
    /// iManufacturer, iProduct, iSerialNumber.
    pub string_indexes: [u8; 3],
    /// bNumConfigurations.
    pub num_configurations: u8,
}

/// A parsed endpoint descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointDescriptor {
    /// bEndpointAddress.
    pub address: u8,
    /// bmAttributes.
    pub attributes: u8,
    /// wMaxPacketSize.
    pub max_packet_size: u16,
    /// bInterval.
    pub interval: u8,
}

/// What [`UsbipClient::enumerate`] found.
#[derive(Clone, Debug)]
pub struct Enumeration {
    /// The device descriptor.
    pub device: DeviceDescriptor,
    /// The whole configuration descriptor.
    pub config: Vec<u8>,
    /// bConfigurationValue.
    pub configuration_value: u8,
    /// bNumInterfaces.
    pub num_interfaces: u8,
    /// (bInterfaceNumber, class, subclass, protocol) of the first interface.
    pub interface: (u8, u8, u8, u8),
    /// The HID descriptor's report descriptor length.
    pub report_descriptor_length: u16,
    /// The interface's endpoints.
    pub endpoints: Vec<EndpointDescriptor>,
    /// The language ids.
    pub lang_ids: Vec<u16>,
    /// Manufacturer, product and serial strings.
    pub manufacturer: String,
    /// Product string.
    pub product: String,
    /// Serial string.
    pub serial: String,
    /// The HID report descriptor.
    pub report_descriptor: Vec<u8>,
}

/// An imported device.
pub struct UsbipClient {
    stream: TcpStream,
    device: ExportedDevice,
    next_seq: u32,
    inbuf: Vec<u8>,
    /// seqnum → is IN (the reply header does not say).
    inflight: HashMap<u32, bool>,
    done: HashMap<u32, RetSubmit>,
    unlinked: HashMap<u32, i32>,
    /// IN URBs on the interrupt endpoint kept pending for reports, oldest first.
    report_urbs: VecDeque<u32>,
    ep_in: u8,
    ep_out: u8,
    timeout: Duration,
}

impl UsbipClient {
    /// Imports `busid` from the server at `addr`.
    pub fn import(addr: SocketAddr, busid: &str) -> Result<Self, ImportError> {
        let mut stream = connect(addr)?;
        stream.write_all(&raw::op_import(busid))?;
        let status = read_op_header(&mut stream, 0x0003)?;
        if status != 0 {
            return Err(ImportError::Refused(status));
        }
        let mut record = vec![0u8; RECORD];
        stream.read_exact(&mut record)?;
        let device = ExportedDevice::parse(&record)?;
        Ok(Self {
            stream,
            device,
            next_seq: 1,
            inbuf: Vec::new(),
            inflight: HashMap::new(),
            done: HashMap::new(),
            unlinked: HashMap::new(),
            report_urbs: VecDeque::new(),
            ep_in: 1,
            ep_out: 1,
            timeout: Duration::from_secs(5),
        })
    }

    /// The device record from the import reply.
    pub fn device(&self) -> &ExportedDevice {
        &self.device
    }

    /// The socket, for raw traffic.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes raw bytes on the connection.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    fn seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        s
    }

    /// Submits an IN URB; returns its seqnum.
    pub fn submit_in(&mut self, ep: u8, length: u32, setup: [u8; 8]) -> io::Result<u32> {
        let seq = self.seq();
        let devid = self.device.devid();
        self.inflight.insert(seq, true);
        let frame = raw::cmd_submit(seq, devid, 1, ep.into(), length, setup, &[]);
        self.stream.write_all(&frame)?;
        Ok(seq)
    }

    /// Submits an OUT URB; returns its seqnum.
    pub fn submit_out(&mut self, ep: u8, data: &[u8], setup: [u8; 8]) -> io::Result<u32> {
        let seq = self.seq();
        let devid = self.device.devid();
        self.inflight.insert(seq, false);
        let frame = raw::cmd_submit(seq, devid, 0, ep.into(), data.len() as u32, setup, data);
        self.stream.write_all(&frame)?;
        Ok(seq)
    }

    /// Reads one reply frame if one arrives before `deadline`.
    fn read_frame(&mut self, deadline: Instant) -> io::Result<bool> {
        loop {
            if let Some(used) = self.parse_frame()? {
                self.inbuf.drain(..used);
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Ok(false)
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn parse_frame(&mut self) -> io::Result<Option<usize>> {
        let b = &self.inbuf;
        if b.len() < HEADER {
            return Ok(None);
        }
        let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let (command, seq, status) = (w(0), w(4), w(20) as i32);
        match command {
            3 => {
                let actual = w(24);
                let is_in = *self
                    .inflight
                    .get(&seq)
                    .ok_or_else(|| bad("RET_SUBMIT for an unknown seqnum"))?;
                let payload = if is_in { actual as usize } else { 0 };
                if b.len() < HEADER + payload {
                    return Ok(None);
                }
                let data = b[HEADER..HEADER + payload].to_vec();
                self.inflight.remove(&seq);
                self.done.insert(
                    seq,
                    RetSubmit {
                        status,
                        actual_length: actual,
                        data,
                    },
                );
                Ok(Some(HEADER + payload))
            }
            4 => {
                self.unlinked.insert(seq, status);
                Ok(Some(HEADER))
            }
            other => Err(bad(&format!("unexpected reply command {other}"))),
        }
    }

    /// Waits for URB `seq` to finish; `None` if it did not within `timeout`.
    pub fn wait(&mut self, seq: u32, timeout: Duration) -> io::Result<Option<RetSubmit>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.done.remove(&seq) {
                return Ok(Some(r));
            }
            if !self.read_frame(deadline)? {
                return Ok(self.done.remove(&seq));
            }
        }
    }

    /// Whether URB `seq` finished (reads what has arrived within `within`).
    pub fn poll_done(&mut self, seq: u32, within: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + within;
        while !self.done.contains_key(&seq) && self.read_frame(deadline)? {}
        Ok(self.done.contains_key(&seq))
    }

    /// CMD_UNLINK of `target`; returns the RET_UNLINK status.
    pub fn unlink(&mut self, target: u32) -> io::Result<i32> {
        let seq = self.seq();
        let devid = self.device.devid();
        self.stream
            .write_all(&raw::cmd_unlink(seq, devid, target))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(status) = self.unlinked.remove(&seq) {
                if status == ECONNRESET {
                    self.inflight.remove(&target);
                }
                self.report_urbs.retain(|&s| s != target);
                return Ok(status);
            }
            if !self.read_frame(deadline)? {
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
    }

    /// A control transfer (IN if bit 7 of `request_type`); data for OUT.
    pub fn control(
        &mut self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
        length: u16,
        data: &[u8],
    ) -> io::Result<RetSubmit> {
        let mut setup = [request_type, request, 0, 0, 0, 0, 0, 0];
        setup[2..4].copy_from_slice(&value.to_le_bytes());
        setup[4..6].copy_from_slice(&index.to_le_bytes());
        setup[6..8].copy_from_slice(&length.to_le_bytes());
        let seq = if request_type & 0x80 != 0 {
            self.submit_in(0, length.into(), setup)?
        } else {
            self.submit_out(0, data, setup)?
        };
        let timeout = self.timeout;
        self.wait(seq, timeout)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "control transfer timed out"))
    }

    /// GET_DESCRIPTOR; fails on a stall or a reply longer than `length`.
    pub fn get_descriptor(
        &mut self,
        recipient: u8,
        kind: u8,
        index: u8,
        w_index: u16,
        length: u16,
    ) -> io::Result<Vec<u8>> {
        let r = self.control(
            0x80 | recipient,
            6,
            u16::from(kind) << 8 | u16::from(index),
            w_index,
            length,
            &[],
        )?;
        if r.status != 0 {
            return Err(bad(&format!(
                "GET_DESCRIPTOR {kind:#x} status {}",
                r.status
            )));
        }
        if r.data.len() > usize::from(length) || r.actual_length as usize != r.data.len() {
            return Err(bad("descriptor reply longer than wLength"));
        }
        Ok(r.data)
    }

    fn string(&mut self, index: u8, lang: u16) -> io::Result<String> {
        let d = self.get_descriptor(0, 3, index, lang, 255)?;
        if d.len() < 2 || d[1] != 3 || usize::from(d[0]) != d.len() {
            return Err(bad("malformed string descriptor"));
        }
        let units: Vec<u16> = d[2..]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).map_err(|_| bad("string not UTF-16"))
    }

    /// Enumerates like the kernel and configures the device.
    pub fn enumerate(&mut self) -> io::Result<Enumeration> {
        let head = self.get_descriptor(0, 1, 0, 0, 8)?;
        if head.len() != 8 || head[1] != 1 {
            return Err(bad("short device descriptor head"));
        }
        let d = self.get_descriptor(0, 1, 0, 0, 18)?;
        if d.len() != 18 || d[0] != 18 || d[1] != 1 {
            return Err(bad("bad device descriptor"));
        }
        let le = |a: u8, b: u8| u16::from_le_bytes([a, b]);
        let device = DeviceDescriptor {
            bcd_usb: le(d[2], d[3]),
            class: d[4],
            max_packet_size0: d[7],
            vendor_id: le(d[8], d[9]),
            product_id: le(d[10], d[11]),
            bcd_device: le(d[12], d[13]),
            string_indexes: [d[14], d[15], d[16]],
            num_configurations: d[17],
        };
        let c9 = self.get_descriptor(0, 2, 0, 0, 9)?;
        if c9.len() != 9 || c9[1] != 2 {
            return Err(bad("bad configuration descriptor head"));
        }
        let total = le(c9[2], c9[3]);
        let config = self.get_descriptor(0, 2, 0, 0, total)?;
        if config.len() != usize::from(total) {
            return Err(bad("configuration shorter than wTotalLength"));
        }
        let mut interface = None;
        let mut report_descriptor_length = 0;
        let mut endpoints = Vec::new();
        let mut i = 0;
        while i + 2 <= config.len() {
            let len = usize::from(config[i]);
            if len < 2 || i + len > config.len() {
                return Err(bad("malformed configuration descriptor"));
            }
            let desc = &config[i..i + len];
            match desc[1] {
                4 if len >= 9 => interface = Some((desc[2], desc[5], desc[6], desc[7])),
                0x21 if len >= 9 => report_descriptor_length = le(desc[7], desc[8]),
                5 if len >= 7 => endpoints.push(EndpointDescriptor {
                    address: desc[2],
                    attributes: desc[3],
                    max_packet_size: le(desc[4], desc[5]),
                    interval: desc[6],
                }),
                _ => {}
            }
            i += len;
        }
        let interface = interface.ok_or_else(|| bad("no interface descriptor"))?;
        let langs = self.get_descriptor(0, 3, 0, 0, 255)?;
        let lang_ids: Vec<u16> = langs
            .get(2..)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| le(c[0], c[1]))
            .collect();
        let lang = lang_ids.first().copied().unwrap_or(0x0409);
        let mut strings = Vec::new();
        for index in device.string_indexes {
            strings.push(if index == 0 {
                String::new()
            } else {
                self.string(index, lang)?
            });
        }
        let configuration_value = c9[5];
        let set = self.control(0x00, 9, configuration_value.into(), 0, 0, &[])?;
        if set.status != 0 {
            return Err(bad("SET_CONFIGURATION failed"));
        }
        let idle = self.control(0x21, 0x0A, 0, interface.0.into(), 0, &[])?;
        if idle.status != 0 && idle.status != EPIPE {
            return Err(bad("SET_IDLE failed"));
        }
        let report_descriptor =
            self.get_descriptor(1, 0x22, 0, interface.0.into(), report_descriptor_length)?;
        for ep in &endpoints {
            if ep.attributes & 3 == 3 {
                if ep.address & 0x80 != 0 {
                    self.ep_in = ep.address & 0x0F;
                } else {
                    self.ep_out = ep.address & 0x0F;
                }
            }
        }
        let mut strings = strings.into_iter();
        Ok(Enumeration {
            device,
            configuration_value,
            num_interfaces: c9[4],
            config,
            interface,
            report_descriptor_length,
            endpoints,
            lang_ids,
            manufacturer: strings.next().unwrap_or_default(),
            product: strings.next().unwrap_or_default(),
            serial: strings.next().unwrap_or_default(),
            report_descriptor,
        })
    }

    /// Makes sure one interrupt IN URB is pending (as usbhid keeps one).
    pub fn arm_in(&mut self) -> io::Result<u32> {
        if let Some(&seq) = self.report_urbs.front() {
            return Ok(seq);
        }
        let ep = self.ep_in;
        let seq = self.submit_in(ep, 64, [0; 8])?;
        self.report_urbs.push_back(seq);
        Ok(seq)
    }

    /// Sends one 64-byte output report on the interrupt OUT endpoint.
    pub fn send_report(&mut self, report: &[u8; 64]) -> io::Result<()> {
        self.arm_in()?;
        let ep = self.ep_out;
        let seq = self.submit_out(ep, report, [0; 8])?;
        let timeout = self.timeout;
        match self.wait(seq, timeout)? {
            Some(r) if r.status == 0 && r.actual_length == 64 => Ok(()),
            Some(r) => Err(bad(&format!("interrupt OUT failed: {r:?}"))),
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "interrupt OUT timed out",
            )),
        }
    }

    /// Waits up to `timeout` for one 64-byte input report; the IN URB stays
    /// pending when none came.
    pub fn recv_report(&mut self, timeout: Duration) -> io::Result<Option<[u8; 64]>> {
        let seq = self.arm_in()?;
        match self.wait(seq, timeout)? {
            None => Ok(None),
            Some(r) => {
                self.report_urbs.pop_front();
                self.arm_in()?;
                if r.status != 0 {
                    return Err(bad(&format!("interrupt IN failed: {r:?}")));
                }
                <[u8; 64]>::try_from(r.data.as_slice())
                    .map(Some)
                    .map_err(|_| bad("input report not 64 bytes"))
            }
        }
    }
}

impl crate::ctaphid_client::ReportTransport for UsbipClient {
    fn send_report(&mut self, report: &[u8; 64]) -> io::Result<()> {
        UsbipClient::send_report(self, report)
    }

    fn recv_report(&mut self, timeout: Duration) -> io::Result<Option<[u8; 64]>> {
        UsbipClient::recv_report(self, timeout)
    }
}
