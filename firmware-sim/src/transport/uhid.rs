//! The Linux uhid ABI (`/dev/uhid`, `include/uapi/linux/uhid.h`), the
//! smallest layer a key needs: create a HID device (`UHID_CREATE2`), read the
//! host's output reports (`UHID_OUTPUT`) and open/close events, send input
//! reports (`UHID_INPUT2`), and answer report requests it does not support.
//!
//! Written here rather than taken from the `uhid-virt` crate (0.0.8): that
//! crate is blocking only (its reads wait on the file, with no way to wait
//! together with a key's other events) and builds its bindings with bindgen,
//! which needs libclang on every machine that builds ferrokey. The ABI is a
//! handful of packed structs in native byte order; all of it is plain byte
//! encoding here, and the file is used through `std::fs::File` and tokio's
//! `AsyncFd` with no `unsafe`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tokio::io::unix::AsyncFd;

/// The uhid character device.
pub const UHID_PATH: &str = "/dev/uhid";

const UHID_DESTROY: u32 = 1;
const UHID_START: u32 = 2;
const UHID_STOP: u32 = 3;
const UHID_OPEN: u32 = 4;
const UHID_CLOSE: u32 = 5;
const UHID_OUTPUT: u32 = 6;
const UHID_GET_REPORT: u32 = 9;
const UHID_GET_REPORT_REPLY: u32 = 10;
const UHID_CREATE2: u32 = 11;
const UHID_INPUT2: u32 = 12;
const UHID_SET_REPORT: u32 = 13;
const UHID_SET_REPORT_REPLY: u32 = 14;

/// `UHID_DATA_MAX` (and `HID_MAX_DESCRIPTOR_SIZE`).
const DATA_MAX: usize = 4096;
/// `sizeof(struct uhid_create2_req)`.
const CREATE2_LEN: usize = 128 + 64 + 64 + 2 + 2 + 4 + 4 + 4 + 4 + DATA_MAX;
/// `sizeof(struct uhid_event)`: the type and the largest request (create2).
pub const EVENT_LEN: usize = 4 + CREATE2_LEN;
/// `BUS_USB` from `linux/input.h`.
pub const BUS_USB: u16 = 0x03;
/// `EIO`, the answer to report requests the key does not support.
const EIO: u16 = 5;

/// What a uhid device is created with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateParams {
    /// Device name (at most 127 bytes).
    pub name: String,
    /// Physical path (at most 63 bytes).
    pub phys: String,
    /// Unique id: the serial number (at most 63 bytes).
    pub uniq: String,
    /// Bus type (`BUS_USB`).
    pub bus: u16,
    /// Vendor id.
    pub vendor: u32,
    /// Product id.
    pub product: u32,
    /// Device version (bcdDevice).
    pub version: u32,
    /// The HID report descriptor.
    pub descriptor: Vec<u8>,
}

fn put_text(out: &mut [u8], text: &str, what: &str) -> io::Result<()> {
    // One byte is kept for the terminating NUL.
    let bytes = text.as_bytes();
    if bytes.len() >= out.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "uhid {what} {text:?} is longer than {} bytes or holds a NUL",
                out.len() - 1
            ),
        ));
    }
    if let Some(dst) = out.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    Ok(())
}

/// Encodes `UHID_CREATE2`.
pub fn encode_create2(params: &CreateParams) -> io::Result<Vec<u8>> {
    if params.descriptor.len() > DATA_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "report descriptor too long",
        ));
    }
    let mut event = vec![0u8; EVENT_LEN];
    event[..4].copy_from_slice(&UHID_CREATE2.to_ne_bytes());
    put_text(&mut event[4..132], &params.name, "name")?;
    put_text(&mut event[132..196], &params.phys, "phys")?;
    put_text(&mut event[196..260], &params.uniq, "uniq")?;
    let rd_size = u16::try_from(params.descriptor.len()).unwrap_or(u16::MAX);
    event[260..262].copy_from_slice(&rd_size.to_ne_bytes());
    event[262..264].copy_from_slice(&params.bus.to_ne_bytes());
    event[264..268].copy_from_slice(&params.vendor.to_ne_bytes());
    event[268..272].copy_from_slice(&params.product.to_ne_bytes());
    event[272..276].copy_from_slice(&params.version.to_ne_bytes());
    // country (276..280) stays 0.
    event[280..280 + params.descriptor.len()].copy_from_slice(&params.descriptor);
    Ok(event)
}

/// Encodes `UHID_INPUT2` with one input report.
pub fn encode_input2(report: &[u8]) -> Vec<u8> {
    let len = report.len().min(DATA_MAX);
    let mut event = Vec::with_capacity(6 + len);
    event.extend_from_slice(&UHID_INPUT2.to_ne_bytes());
    event.extend_from_slice(&u16::try_from(len).unwrap_or(0).to_ne_bytes());
    event.extend_from_slice(report.get(..len).unwrap_or_default());
    event
}

fn encode_reply(kind: u32, id: u32) -> Vec<u8> {
    let mut event = Vec::with_capacity(12);
    event.extend_from_slice(&kind.to_ne_bytes());
    event.extend_from_slice(&id.to_ne_bytes());
    event.extend_from_slice(&EIO.to_ne_bytes());
    if kind == UHID_GET_REPORT_REPLY {
        // size: no data.
        event.extend_from_slice(&0u16.to_ne_bytes());
    }
    event
}

/// An event from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UhidEvent {
    /// The HID driver bound the device.
    Start,
    /// The HID driver let it go.
    Stop,
    /// A reader opened the device (e.g. its hidraw node).
    Open,
    /// The last reader closed it.
    Close,
    /// An output report from the host (the report-number byte hidraw adds
    /// for devices without numbered reports is removed).
    Output(Vec<u8>),
    /// A GET_REPORT request to answer (the id to answer with).
    GetReport(u32),
    /// A SET_REPORT request to answer.
    SetReport(u32),
    /// Anything else (ignored).
    Other(u32),
}

fn ne_u16(bytes: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    if let Some(src) = bytes.get(at..at + 2) {
        b.copy_from_slice(src);
    }
    u16::from_ne_bytes(b)
}

fn ne_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    u32::from_ne_bytes(b)
}

/// Decodes one event read from `/dev/uhid`; `report_len` is the size of the
/// device's output report (a leading report number 0 before a report of
/// that size is dropped).
pub fn decode_event(bytes: &[u8], report_len: usize) -> io::Result<UhidEvent> {
    if bytes.len() < 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short uhid event",
        ));
    }
    Ok(match ne_u32(bytes, 0) {
        UHID_START => UhidEvent::Start,
        UHID_STOP => UhidEvent::Stop,
        UHID_OPEN => UhidEvent::Open,
        UHID_CLOSE => UhidEvent::Close,
        UHID_OUTPUT => {
            // struct uhid_output_req { data[4096]; u16 size; u8 rtype; }
            let size = usize::from(ne_u16(bytes, 4 + DATA_MAX)).min(DATA_MAX);
            let data = bytes.get(4..4 + size).unwrap_or_default();
            let data = match data.split_first() {
                Some((0, rest)) if rest.len() == report_len => rest,
                _ => data,
            };
            UhidEvent::Output(data.to_vec())
        }
        UHID_GET_REPORT => UhidEvent::GetReport(ne_u32(bytes, 4)),
        UHID_SET_REPORT => UhidEvent::SetReport(ne_u32(bytes, 4)),
        other => UhidEvent::Other(other),
    })
}

/// A created uhid device; dropping it destroys the device (the host sees an
/// unplug). Must be made inside a tokio runtime (the file is registered
/// with it).
#[derive(Debug)]
pub struct UhidDevice {
    file: AsyncFd<File>,
    report_len: usize,
    buf: Box<[u8]>,
}

impl UhidDevice {
    /// Opens `path` (normally [`UHID_PATH`]) and creates the device.
    pub fn create(path: &Path, params: &CreateParams, report_len: usize) -> io::Result<Self> {
        let event = encode_create2(params)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        file.write_all(&event)?;
        // `AsyncFd::new` is deprecated because a `T: AsRawFd` need not own its
        // descriptor; a `File` does, for as long as the `AsyncFd` holds it.
        #[allow(deprecated)]
        let file = AsyncFd::new(file)?;
        Ok(UhidDevice {
            file,
            report_len,
            buf: vec![0u8; EVENT_LEN].into_boxed_slice(),
        })
    }

    /// Waits until an event can be read.
    pub async fn readable(&self) -> io::Result<()> {
        let mut guard = self.file.readable().await?;
        // Readiness is rechecked by the next read; the guard only waits.
        guard.retain_ready();
        Ok(())
    }

    /// Reads the next event, if one is queued.
    pub fn try_read(&mut self) -> io::Result<Option<UhidEvent>> {
        let n = match self.file.get_mut().read(&mut self.buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.clear_read_ready();
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        decode_event(self.buf.get(..n).unwrap_or_default(), self.report_len).map(Some)
    }

    /// Clears the read readiness after a read found nothing, so the next
    /// [`UhidDevice::readable`] waits for the kernel again.
    fn clear_read_ready(&self) {
        use std::task::{Context, Poll, Wake, Waker};
        struct Noop;
        impl Wake for Noop {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        let waker = Waker::from(std::sync::Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        if let Poll::Ready(Ok(mut guard)) = self.file.poll_read_ready(&mut cx) {
            guard.clear_ready();
        }
    }

    /// Sends one input report.
    pub fn send_report(&mut self, report: &[u8]) -> io::Result<()> {
        self.write_event(&encode_input2(report))
    }

    /// Refuses a GET_REPORT or SET_REPORT request (the FIDO HID interface has
    /// no feature reports), so the kernel does not wait for its timeout.
    pub fn refuse(&mut self, event: &UhidEvent) -> io::Result<()> {
        match event {
            UhidEvent::GetReport(id) => self.write_event(&encode_reply(UHID_GET_REPORT_REPLY, *id)),
            UhidEvent::SetReport(id) => self.write_event(&encode_reply(UHID_SET_REPORT_REPLY, *id)),
            _ => Ok(()),
        }
    }

    fn write_event(&mut self, event: &[u8]) -> io::Result<()> {
        // uhid takes a whole event per write and never blocks on input.
        let n = self.file.get_mut().write(event)?;
        if n != event.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write to /dev/uhid",
            ));
        }
        Ok(())
    }
}

impl Drop for UhidDevice {
    fn drop(&mut self) {
        // Closing the file destroys the device too; saying so first is cleaner.
        let _ = self.file.get_mut().write(&UHID_DESTROY.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> CreateParams {
        CreateParams {
            name: "ferrokey FIDO2 security key".into(),
            phys: "ferrokey/key-1".into(),
            uniq: "ABC123".into(),
            bus: BUS_USB,
            vendor: 0x1209,
            product: 0x000A,
            version: 0x0001,
            descriptor: vec![0x06, 0xD0, 0xF1],
        }
    }

    #[test]
    fn create2_layout_matches_the_packed_struct() {
        let event = encode_create2(&params()).unwrap();
        assert_eq!(event.len(), 4376);
        assert_eq!(&event[..4], &11u32.to_ne_bytes());
        assert_eq!(&event[4..31], b"ferrokey FIDO2 security key");
        assert_eq!(event[31], 0);
        assert_eq!(&event[132..146], b"ferrokey/key-1");
        assert_eq!(&event[196..202], b"ABC123");
        assert_eq!(&event[260..262], &3u16.to_ne_bytes());
        assert_eq!(&event[262..264], &3u16.to_ne_bytes());
        assert_eq!(&event[264..268], &0x1209u32.to_ne_bytes());
        assert_eq!(&event[268..272], &0x000Au32.to_ne_bytes());
        assert_eq!(&event[280..283], &[0x06, 0xD0, 0xF1]);
        let long = CreateParams {
            uniq: "x".repeat(64),
            ..params()
        };
        assert!(encode_create2(&long).is_err());
    }

    #[test]
    fn input2_and_replies() {
        let event = encode_input2(&[7; 64]);
        assert_eq!(event.len(), 70);
        assert_eq!(&event[..4], &12u32.to_ne_bytes());
        assert_eq!(&event[4..6], &64u16.to_ne_bytes());
        let reply = encode_reply(UHID_GET_REPORT_REPLY, 9);
        assert_eq!(reply.len(), 12);
        assert_eq!(&reply[4..8], &9u32.to_ne_bytes());
        assert_eq!(&reply[8..10], &5u16.to_ne_bytes());
        assert_eq!(encode_reply(UHID_SET_REPORT_REPLY, 1).len(), 10);
    }

    #[test]
    fn events_decode() {
        let mut output = vec![0u8; EVENT_LEN];
        output[..4].copy_from_slice(&6u32.to_ne_bytes());
        output[4] = 0; // report number
        output[5..69].copy_from_slice(&[0xAB; 64]);
        output[4 + 4096..4 + 4098].copy_from_slice(&65u16.to_ne_bytes());
        assert_eq!(
            decode_event(&output, 64).unwrap(),
            UhidEvent::Output(vec![0xAB; 64])
        );
        // Without the report number byte, the data is taken as it is.
        output[4 + 4096..4 + 4098].copy_from_slice(&64u16.to_ne_bytes());
        let mut expected = vec![0u8];
        expected.extend_from_slice(&[0xAB; 63]);
        assert_eq!(
            decode_event(&output, 64).unwrap(),
            UhidEvent::Output(expected)
        );
        // A size beyond the buffer is clamped, never trusted.
        output[4 + 4096..4 + 4098].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert!(
            matches!(decode_event(&output, 64).unwrap(), UhidEvent::Output(d) if d.len() == 4096)
        );
        for (kind, event) in [
            (2u32, UhidEvent::Start),
            (3, UhidEvent::Stop),
            (4, UhidEvent::Open),
            (5, UhidEvent::Close),
            (99, UhidEvent::Other(99)),
        ] {
            assert_eq!(decode_event(&kind.to_ne_bytes(), 64).unwrap(), event);
        }
        let mut get = 9u32.to_ne_bytes().to_vec();
        get.extend_from_slice(&42u32.to_ne_bytes());
        assert_eq!(decode_event(&get, 64).unwrap(), UhidEvent::GetReport(42));
        assert!(decode_event(&[1, 2], 64).is_err());
    }
}
