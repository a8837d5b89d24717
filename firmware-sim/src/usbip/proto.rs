//! The USB/IP wire format (Linux `Documentation/usb/usbip_protocol.rst`), device side.
//!
//! Everything is big-endian. A connection starts with one operation request
//! (8-byte header: version, code, status): `OP_REQ_DEVLIST`, answered with the
//! device list and the connection closes; or `OP_REQ_IMPORT` with a 32-byte busid,
//! after which the connection carries 48-byte URB headers (`CMD_SUBMIT`,
//! `CMD_UNLINK` in; `RET_SUBMIT`, `RET_UNLINK` out).
//!
//! The decoders take untrusted bytes: they return `Ok(None)` while a frame is
//! incomplete, and an error for anything that is not a well-formed frame this
//! device can carry. They never panic and never allocate more than
//! [`MAX_TRANSFER_LEN`] for one frame.

use thiserror::Error;

/// The protocol version spoken (1.1.1).
pub const USBIP_VERSION: u16 = 0x0111;
/// Request the list of exported devices.
pub const OP_REQ_DEVLIST: u16 = 0x8005;
/// Reply to [`OP_REQ_DEVLIST`].
pub const OP_REP_DEVLIST: u16 = 0x0005;
/// Request to import (attach) a device.
pub const OP_REQ_IMPORT: u16 = 0x8003;
/// Reply to [`OP_REQ_IMPORT`].
pub const OP_REP_IMPORT: u16 = 0x0003;
/// Operation status: success.
pub const ST_OK: u32 = 0;
/// Operation status: failure (unknown busid, device busy, ...).
pub const ST_NA: u32 = 1;

/// URB command: submit.
pub const CMD_SUBMIT: u32 = 1;
/// URB command: unlink.
pub const CMD_UNLINK: u32 = 2;
/// URB reply: submit.
pub const RET_SUBMIT: u32 = 3;
/// URB reply: unlink.
pub const RET_UNLINK: u32 = 4;

/// Length of an operation header.
pub const OP_HEADER_LEN: usize = 8;
/// Length of a busid field.
pub const BUSID_LEN: usize = 32;
/// Length of a path field.
pub const PATH_LEN: usize = 256;
/// Length of an exported-device record (without interface records).
pub const DEVICE_RECORD_LEN: usize = 312;
/// Length of one interface record in the device list.
pub const INTERFACE_RECORD_LEN: usize = 4;
/// Length of a URB header.
pub const URB_HEADER_LEN: usize = 48;
/// The largest transfer_buffer_length accepted in a CMD_SUBMIT.
pub const MAX_TRANSFER_LEN: u32 = 64 * 1024;

/// `USB_SPEED_FULL` from the kernel's `enum usb_device_speed`.
pub const SPEED_FULL: u32 = 2;

/// `number_of_packets` of a non-isochronous URB may be 0 or this value.
const NON_ISO_PACKETS: u32 = 0xFFFF_FFFF;

/// Why bytes from a peer were rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProtoError {
    /// The operation header carried another protocol version.
    #[error("unsupported USB/IP version {0:#06x}")]
    BadVersion(u16),
    /// An operation code this server does not serve.
    #[error("unknown operation code {0:#06x}")]
    UnknownOp(u16),
    /// A URB command code other than CMD_SUBMIT or CMD_UNLINK.
    #[error("unknown URB command {0:#x}")]
    UnknownCommand(u32),
    /// A direction other than 0 (OUT) or 1 (IN).
    #[error("invalid direction {0}")]
    BadDirection(u32),
    /// An endpoint number above 15.
    #[error("invalid endpoint {0}")]
    BadEndpoint(u32),
    /// A transfer_buffer_length above [`MAX_TRANSFER_LEN`] (or negative).
    #[error("transfer length {0} out of range")]
    TransferTooLong(u32),
    /// Isochronous packets (this device has no isochronous endpoint).
    #[error("isochronous URB with {0} packets not supported")]
    Isochronous(u32),
    /// A busid that is not NUL-terminated ASCII.
    #[error("malformed busid")]
    BadBusid,
}

/// Reads a big-endian u16 at `at` (caller guarantees the length).
fn be16(buf: &[u8], at: usize) -> u16 {
    let mut bytes = [0u8; 2];
    if let Some(src) = buf.get(at..at + 2) {
        bytes.copy_from_slice(src);
    }
    u16::from_be_bytes(bytes)
}

/// Reads a big-endian u32 at `at` (caller guarantees the length).
fn be32(buf: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    if let Some(src) = buf.get(at..at + 4) {
        bytes.copy_from_slice(src);
    }
    u32::from_be_bytes(bytes)
}

/// The operation that opens a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpRequest {
    /// OP_REQ_DEVLIST.
    DevList,
    /// OP_REQ_IMPORT of the given busid.
    Import {
        /// The busid, e.g. "1-1".
        busid: String,
    },
}

impl OpRequest {
    /// Decodes the opening request. `Ok(None)`: more bytes needed.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtoError> {
        if buf.len() < OP_HEADER_LEN {
            return Ok(None);
        }
        let version = be16(buf, 0);
        let code = be16(buf, 2);
        if version != USBIP_VERSION {
            return Err(ProtoError::BadVersion(version));
        }
        match code {
            OP_REQ_DEVLIST => Ok(Some((OpRequest::DevList, OP_HEADER_LEN))),
            OP_REQ_IMPORT => {
                let Some(field) = buf.get(OP_HEADER_LEN..OP_HEADER_LEN + BUSID_LEN) else {
                    return Ok(None);
                };
                let busid = parse_cstr(field).ok_or(ProtoError::BadBusid)?;
                Ok(Some((
                    OpRequest::Import { busid },
                    OP_HEADER_LEN + BUSID_LEN,
                )))
            }
            other => Err(ProtoError::UnknownOp(other)),
        }
    }

    /// Encodes the request (used by tests and tools).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(OP_HEADER_LEN + BUSID_LEN);
        out.extend_from_slice(&USBIP_VERSION.to_be_bytes());
        match self {
            OpRequest::DevList => {
                out.extend_from_slice(&OP_REQ_DEVLIST.to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes());
            }
            OpRequest::Import { busid } => {
                out.extend_from_slice(&OP_REQ_IMPORT.to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes());
                put_fixed(&mut out, busid, BUSID_LEN);
            }
        }
        out
    }
}

/// A NUL-terminated printable-ASCII string filling (part of) a fixed field.
fn parse_cstr(field: &[u8]) -> Option<String> {
    let end = field.iter().position(|&b| b == 0)?;
    let text = field.get(..end)?;
    if text.is_empty() || !text.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    String::from_utf8(text.to_vec()).ok()
}

/// Writes `text` into a zero-padded field of `len` bytes (always NUL-terminated).
fn put_fixed(out: &mut Vec<u8>, text: &str, len: usize) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(len.saturating_sub(1));
    out.extend_from_slice(bytes.get(..n).unwrap_or_default());
    out.resize(out.len() + (len - n), 0);
}

/// One interface in the device list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// bInterfaceClass.
    pub class: u8,
    /// bInterfaceSubClass.
    pub subclass: u8,
    /// bInterfaceProtocol.
    pub protocol: u8,
}

/// An exported device, as the device list and the import reply describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// A sysfs-like path (informational).
    pub path: String,
    /// The busid clients import it by, e.g. "1-1".
    pub busid: String,
    /// Bus number.
    pub busnum: u32,
    /// Device number on the bus.
    pub devnum: u32,
    /// `enum usb_device_speed` value.
    pub speed: u32,
    /// idVendor.
    pub vendor_id: u16,
    /// idProduct.
    pub product_id: u16,
    /// bcdDevice.
    pub bcd_device: u16,
    /// bDeviceClass.
    pub class: u8,
    /// bDeviceSubClass.
    pub subclass: u8,
    /// bDeviceProtocol.
    pub protocol: u8,
    /// bConfigurationValue of the current configuration.
    pub configuration_value: u8,
    /// bNumConfigurations.
    pub num_configurations: u8,
    /// The interfaces of the configuration.
    pub interfaces: Vec<InterfaceInfo>,
}

impl DeviceInfo {
    /// The devid URB headers carry for this device: `busnum << 16 | devnum`.
    pub fn devid(&self) -> u32 {
        (self.busnum << 16) | (self.devnum & 0xFFFF)
    }

    /// Appends the 312-byte device record.
    pub fn encode_record(&self, out: &mut Vec<u8>) {
        put_fixed(out, &self.path, PATH_LEN);
        put_fixed(out, &self.busid, BUSID_LEN);
        out.extend_from_slice(&self.busnum.to_be_bytes());
        out.extend_from_slice(&self.devnum.to_be_bytes());
        out.extend_from_slice(&self.speed.to_be_bytes());
        out.extend_from_slice(&self.vendor_id.to_be_bytes());
        out.extend_from_slice(&self.product_id.to_be_bytes());
        out.extend_from_slice(&self.bcd_device.to_be_bytes());
        out.extend_from_slice(&[
            self.class,
            self.subclass,
            self.protocol,
            self.configuration_value,
            self.num_configurations,
            self.interfaces.len().min(usize::from(u8::MAX)) as u8,
        ]);
    }

    /// Appends the 4-byte interface records (class, subclass, protocol, padding).
    pub fn encode_interfaces(&self, out: &mut Vec<u8>) {
        for interface in self.interfaces.iter().take(usize::from(u8::MAX)) {
            out.extend_from_slice(&[interface.class, interface.subclass, interface.protocol, 0]);
        }
    }
}

fn op_header(out: &mut Vec<u8>, code: u16, status: u32) {
    out.extend_from_slice(&USBIP_VERSION.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&status.to_be_bytes());
}

/// OP_REP_DEVLIST for these devices.
pub fn encode_devlist_reply(devices: &[DeviceInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    op_header(&mut out, OP_REP_DEVLIST, ST_OK);
    out.extend_from_slice(&(devices.len() as u32).to_be_bytes());
    for device in devices {
        device.encode_record(&mut out);
        device.encode_interfaces(&mut out);
    }
    out
}

/// OP_REP_IMPORT: the device record on success, status [`ST_NA`] alone otherwise.
pub fn encode_import_reply(device: Option<&DeviceInfo>) -> Vec<u8> {
    let mut out = Vec::new();
    match device {
        Some(device) => {
            op_header(&mut out, OP_REP_IMPORT, ST_OK);
            device.encode_record(&mut out);
        }
        None => op_header(&mut out, OP_REP_IMPORT, ST_NA),
    }
    out
}

/// USB/IP direction field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Host to device (0).
    Out,
    /// Device to host (1).
    In,
}

impl Direction {
    fn decode(raw: u32) -> Result<Self, ProtoError> {
        match raw {
            0 => Ok(Direction::Out),
            1 => Ok(Direction::In),
            other => Err(ProtoError::BadDirection(other)),
        }
    }

    fn raw(self) -> u32 {
        match self {
            Direction::Out => 0,
            Direction::In => 1,
        }
    }
}

/// USBIP_CMD_SUBMIT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdSubmit {
    /// Sequence number chosen by the client.
    pub seqnum: u32,
    /// Target device (`busnum << 16 | devnum`).
    pub devid: u32,
    /// Transfer direction.
    pub direction: Direction,
    /// Endpoint number.
    pub ep: u8,
    /// URB transfer flags (informational).
    pub transfer_flags: u32,
    /// For IN: the client's buffer size; for OUT: `data.len()`.
    pub transfer_buffer_length: u32,
    /// Start frame (isochronous only; informational).
    pub start_frame: u32,
    /// Number of isochronous packets (0 or 0xffffffff here).
    pub number_of_packets: u32,
    /// Polling interval (informational).
    pub interval: u32,
    /// Setup packet (control transfers).
    pub setup: [u8; 8],
    /// OUT data.
    pub data: Vec<u8>,
}

/// USBIP_CMD_UNLINK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdUnlink {
    /// Sequence number of this unlink request.
    pub seqnum: u32,
    /// Target device.
    pub devid: u32,
    /// Direction field (informational).
    pub direction: Direction,
    /// Endpoint field (informational).
    pub ep: u8,
    /// The seqnum of the CMD_SUBMIT to unlink.
    pub unlink_seqnum: u32,
}

/// A command from the client after a successful import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// CMD_SUBMIT.
    Submit(CmdSubmit),
    /// CMD_UNLINK.
    Unlink(CmdUnlink),
}

impl Command {
    /// Decodes one command. `Ok(None)`: more bytes needed.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtoError> {
        if buf.len() < URB_HEADER_LEN {
            return Ok(None);
        }
        let command = be32(buf, 0);
        let seqnum = be32(buf, 4);
        let devid = be32(buf, 8);
        let direction = Direction::decode(be32(buf, 12))?;
        let ep_raw = be32(buf, 16);
        let ep = u8::try_from(ep_raw)
            .ok()
            .filter(|&ep| ep < 16)
            .ok_or(ProtoError::BadEndpoint(ep_raw))?;
        match command {
            CMD_SUBMIT => {
                let transfer_buffer_length = be32(buf, 24);
                if transfer_buffer_length > MAX_TRANSFER_LEN {
                    return Err(ProtoError::TransferTooLong(transfer_buffer_length));
                }
                let number_of_packets = be32(buf, 32);
                if number_of_packets != 0 && number_of_packets != NON_ISO_PACKETS {
                    return Err(ProtoError::Isochronous(number_of_packets));
                }
                let mut setup = [0u8; 8];
                if let Some(src) = buf.get(40..48) {
                    setup.copy_from_slice(src);
                }
                let payload = match direction {
                    Direction::Out => transfer_buffer_length as usize,
                    Direction::In => 0,
                };
                let total = URB_HEADER_LEN + payload;
                let Some(data) = buf.get(URB_HEADER_LEN..total) else {
                    return Ok(None);
                };
                Ok(Some((
                    Command::Submit(CmdSubmit {
                        seqnum,
                        devid,
                        direction,
                        ep,
                        transfer_flags: be32(buf, 20),
                        transfer_buffer_length,
                        start_frame: be32(buf, 28),
                        number_of_packets,
                        interval: be32(buf, 36),
                        setup,
                        data: data.to_vec(),
                    }),
                    total,
                )))
            }
            CMD_UNLINK => Ok(Some((
                Command::Unlink(CmdUnlink {
                    seqnum,
                    devid,
                    direction,
                    ep,
                    unlink_seqnum: be32(buf, 20),
                }),
                URB_HEADER_LEN,
            ))),
            other => Err(ProtoError::UnknownCommand(other)),
        }
    }

    /// Encodes the command (the client side; used by tests and tools).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(URB_HEADER_LEN);
        match self {
            Command::Submit(c) => {
                for word in [
                    CMD_SUBMIT,
                    c.seqnum,
                    c.devid,
                    c.direction.raw(),
                    u32::from(c.ep),
                    c.transfer_flags,
                    c.transfer_buffer_length,
                    c.start_frame,
                    c.number_of_packets,
                    c.interval,
                ] {
                    out.extend_from_slice(&word.to_be_bytes());
                }
                out.extend_from_slice(&c.setup);
                if c.direction == Direction::Out {
                    out.extend_from_slice(&c.data);
                }
            }
            Command::Unlink(c) => {
                for word in [
                    CMD_UNLINK,
                    c.seqnum,
                    c.devid,
                    c.direction.raw(),
                    u32::from(c.ep),
                    c.unlink_seqnum,
                ] {
                    out.extend_from_slice(&word.to_be_bytes());
                }
                out.resize(URB_HEADER_LEN, 0);
            }
        }
        out
    }
}

/// USBIP_RET_SUBMIT. `data` (IN data) must be `actual_length` bytes for an IN
/// URB and empty for an OUT URB.
pub fn encode_ret_submit(seqnum: u32, status: i32, actual_length: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(URB_HEADER_LEN + data.len());
    // devid, direction and ep are 0 in replies; number_of_packets is 0 for non-ISO.
    for word in [RET_SUBMIT, seqnum, 0, 0, 0] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&actual_length.to_be_bytes());
    out.resize(URB_HEADER_LEN, 0);
    out.extend_from_slice(data);
    out
}

/// USBIP_RET_UNLINK.
pub fn encode_ret_unlink(seqnum: u32, status: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(URB_HEADER_LEN);
    for word in [RET_UNLINK, seqnum, 0, 0, 0] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&status.to_be_bytes());
    out.resize(URB_HEADER_LEN, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_device() -> DeviceInfo {
        DeviceInfo {
            path: "/ferrokey/1-1".into(),
            busid: "1-1".into(),
            busnum: 1,
            devnum: 2,
            speed: SPEED_FULL,
            vendor_id: 0x1209,
            product_id: 0xF1D0,
            bcd_device: 0x0100,
            class: 0,
            subclass: 0,
            protocol: 0,
            configuration_value: 1,
            num_configurations: 1,
            interfaces: vec![InterfaceInfo {
                class: 3,
                subclass: 0,
                protocol: 0,
            }],
        }
    }

    #[test]
    fn op_requests_round_trip() {
        for request in [
            OpRequest::DevList,
            OpRequest::Import {
                busid: "1-12".into(),
            },
        ] {
            let bytes = request.encode();
            for cut in 0..bytes.len() {
                assert_eq!(OpRequest::decode(&bytes[..cut]), Ok(None));
            }
            assert_eq!(
                OpRequest::decode(&bytes),
                Ok(Some((request.clone(), bytes.len())))
            );
        }
    }

    #[test]
    fn op_requests_rejected() {
        let mut bytes = OpRequest::DevList.encode();
        bytes[1] = 0x06;
        assert_eq!(
            OpRequest::decode(&bytes),
            Err(ProtoError::BadVersion(0x0106))
        );
        let bytes = [0x01, 0x11, 0x80, 0x99, 0, 0, 0, 0];
        assert_eq!(
            OpRequest::decode(&bytes),
            Err(ProtoError::UnknownOp(0x8099))
        );
        // A busid with no NUL terminator, and an empty one.
        let mut bytes = OpRequest::Import {
            busid: "1-1".into(),
        }
        .encode();
        bytes[8..40].fill(b'a');
        assert_eq!(OpRequest::decode(&bytes), Err(ProtoError::BadBusid));
        bytes[8..40].fill(0);
        assert_eq!(OpRequest::decode(&bytes), Err(ProtoError::BadBusid));
    }

    #[test]
    fn device_record_layout() {
        let device = sample_device();
        let mut record = Vec::new();
        device.encode_record(&mut record);
        assert_eq!(record.len(), DEVICE_RECORD_LEN);
        assert_eq!(&record[..13], b"/ferrokey/1-1");
        assert_eq!(&record[256..260], b"1-1\0");
        assert_eq!(&record[288..292], &1u32.to_be_bytes());
        assert_eq!(&record[292..296], &2u32.to_be_bytes());
        assert_eq!(&record[296..300], &SPEED_FULL.to_be_bytes());
        assert_eq!(&record[300..306], &[0x12, 0x09, 0xF1, 0xD0, 0x01, 0x00]);
        assert_eq!(&record[306..312], &[0, 0, 0, 1, 1, 1]);
        assert_eq!(device.devid(), 0x0001_0002);

        let list = encode_devlist_reply(&[device.clone(), device.clone()]);
        assert_eq!(
            list.len(),
            12 + 2 * (DEVICE_RECORD_LEN + INTERFACE_RECORD_LEN)
        );
        assert_eq!(&list[..8], &[0x01, 0x11, 0x00, 0x05, 0, 0, 0, 0]);
        assert_eq!(&list[8..12], &2u32.to_be_bytes());
        assert_eq!(&list[12 + 312..12 + 316], &[3, 0, 0, 0]);

        let ok = encode_import_reply(Some(&device));
        assert_eq!(ok.len(), 8 + DEVICE_RECORD_LEN);
        assert_eq!(&ok[..8], &[0x01, 0x11, 0x00, 0x03, 0, 0, 0, 0]);
        let busy = encode_import_reply(None);
        assert_eq!(busy, vec![0x01, 0x11, 0x00, 0x03, 0, 0, 0, 1]);
    }

    fn submit(direction: Direction, len: u32) -> CmdSubmit {
        CmdSubmit {
            seqnum: 7,
            devid: 0x0001_0002,
            direction,
            ep: 1,
            transfer_flags: 0x200,
            transfer_buffer_length: len,
            start_frame: 0,
            number_of_packets: 0,
            interval: 5,
            setup: [1, 2, 3, 4, 5, 6, 7, 8],
            data: match direction {
                Direction::Out => (0..len).map(|i| i as u8).collect(),
                Direction::In => Vec::new(),
            },
        }
    }

    #[test]
    fn commands_round_trip_and_need_whole_frames() {
        let commands = [
            Command::Submit(submit(Direction::Out, 64)),
            Command::Submit(submit(Direction::In, 64)),
            Command::Unlink(CmdUnlink {
                seqnum: 9,
                devid: 0x0001_0002,
                direction: Direction::Out,
                ep: 0,
                unlink_seqnum: 7,
            }),
        ];
        for command in commands {
            let bytes = command.encode();
            for cut in 0..bytes.len() {
                assert_eq!(Command::decode(&bytes[..cut]), Ok(None), "cut {cut}");
            }
            let mut two = bytes.clone();
            two.extend_from_slice(&bytes);
            assert_eq!(
                Command::decode(&two),
                Ok(Some((command.clone(), bytes.len())))
            );
        }
    }

    #[test]
    fn hostile_commands_rejected() {
        let good = Command::Submit(submit(Direction::In, 64)).encode();
        let mut bytes = good.clone();
        bytes[3] = 9;
        assert_eq!(Command::decode(&bytes), Err(ProtoError::UnknownCommand(9)));
        let mut bytes = good.clone();
        bytes[15] = 2;
        assert_eq!(Command::decode(&bytes), Err(ProtoError::BadDirection(2)));
        let mut bytes = good.clone();
        bytes[19] = 16;
        assert_eq!(Command::decode(&bytes), Err(ProtoError::BadEndpoint(16)));
        let mut bytes = good.clone();
        bytes[24..28].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        assert_eq!(
            Command::decode(&bytes),
            Err(ProtoError::TransferTooLong(0xFFFF_FFF0))
        );
        let mut bytes = good.clone();
        bytes[24..28].copy_from_slice(&(MAX_TRANSFER_LEN + 1).to_be_bytes());
        assert!(Command::decode(&bytes).is_err());
        let mut bytes = good;
        bytes[32..36].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(Command::decode(&bytes), Err(ProtoError::Isochronous(3)));
    }

    #[test]
    fn replies_layout() {
        let ret = encode_ret_submit(5, -32, 3, &[1, 2, 3]);
        assert_eq!(ret.len(), 51);
        assert_eq!(&ret[..4], &RET_SUBMIT.to_be_bytes());
        assert_eq!(&ret[4..8], &5u32.to_be_bytes());
        assert_eq!(&ret[8..20], &[0; 12]);
        assert_eq!(&ret[20..24], &(-32i32).to_be_bytes());
        assert_eq!(&ret[24..28], &3u32.to_be_bytes());
        assert_eq!(&ret[28..48], &[0; 20]);
        assert_eq!(&ret[48..], &[1, 2, 3]);
        let unlink = encode_ret_unlink(6, -104);
        assert_eq!(unlink.len(), 48);
        assert_eq!(&unlink[..4], &RET_UNLINK.to_be_bytes());
        assert_eq!(&unlink[20..24], &(-104i32).to_be_bytes());
    }
}
