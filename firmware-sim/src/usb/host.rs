//! The host-controller half of the simulated bus: turns URBs into packets.
//!
//! A USB/IP client submits URBs (whole transfers); a device only ever sees
//! packets. [`HostController`] keeps the submitted URBs in per-endpoint FIFO
//! queues and, each time [`HostController::service`] runs, moves packets between
//! the head URB of each queue and the endpoint buffers of a [`SimBus`], the way a
//! host controller schedules transactions:
//!
//! - control (endpoint 0): SETUP, then the IN or OUT data stage in packets of
//!   bMaxPacketSize0, then the status stage. A control IN URB completes only after
//!   the device finished its data stage (short packet or wLength reached) and the
//!   status stage went through; its data is never longer than wLength.
//! - interrupt/bulk IN: the URB stays pending while the endpoint NAKs; it completes
//!   on a short packet or when its buffer is full.
//! - interrupt/bulk OUT: the data goes out in max-packet chunks, each waiting until
//!   the endpoint buffer is free.
//!
//! A STALL completes the URB with `-EPIPE`. Nothing here blocks or sleeps: the
//! caller runs the device firmware and `service` alternately until neither makes
//! progress.

use std::collections::VecDeque;

use usb_device::endpoint::{EndpointAddress, EndpointType};
use usb_device::UsbDirection;

use super::bus::{HostIn, HostOut, SimBus};

/// `-EPIPE`: the endpoint stalled.
pub const EPIPE: i32 = -32;
/// `-EOVERFLOW`: the device sent more than the URB buffer holds.
pub const EOVERFLOW: i32 = -75;
/// `-EPROTO`: the device broke the control protocol.
pub const EPROTO: i32 = -71;
/// `-EINVAL`: the URB itself is invalid.
pub const EINVAL: i32 = -22;

/// The number of endpoint numbers per direction.
const NUM_ENDPOINTS: usize = 16;

/// One submitted transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Urb {
    /// The submitter's identifier (USB/IP seqnum).
    pub id: u32,
    /// Endpoint number, 0..=15.
    pub endpoint: u8,
    /// Transfer direction.
    pub direction: UsbDirection,
    /// The setup packet (control transfers only).
    pub setup: [u8; 8],
    /// For IN: the size of the host's buffer. For OUT: ignored (`data.len()` counts).
    pub buffer_length: usize,
    /// For OUT: the data to send.
    pub data: Vec<u8>,
}

/// The result of one URB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The URB's identifier.
    pub id: u32,
    /// 0 or a negative errno.
    pub status: i32,
    /// For IN: the received data (never longer than the URB asked for).
    pub data: Vec<u8>,
    /// Bytes transferred (for IN, `data.len()`).
    pub actual_length: usize,
}

impl Completion {
    /// A completion without data (a failure, or a zero-length success).
    pub fn failed(id: u32, status: i32) -> Self {
        Self {
            id,
            status,
            data: Vec::new(),
            actual_length: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Setup,
    DataIn,
    DataOut,
    StatusIn,
    StatusOut,
}

struct Transfer {
    urb: Urb,
    stage: Stage,
    /// IN: bytes received so far. OUT: unused.
    received: Vec<u8>,
    /// OUT: bytes acknowledged so far (a zero-length OUT URB sends one ZLP).
    sent: usize,
}

impl Transfer {
    fn new(urb: Urb) -> Self {
        Self {
            urb,
            stage: Stage::Setup,
            received: Vec::new(),
            sent: 0,
        }
    }

    fn w_length(&self) -> usize {
        usize::from(u16::from_le_bytes([self.urb.setup[6], self.urb.setup[7]]))
    }
}

/// What one service step of a queue did.
enum Step {
    /// Nothing moved.
    Idle,
    /// A packet moved; the transfer goes on.
    Progress,
    /// The head transfer finished.
    Done(Completion),
}

/// Whether a setup packet is the hub-class SET_FEATURE(PORT_RESET) that USB/IP
/// clients forward to ask for a device reset (bmRequestType 0x23).
pub fn is_port_reset(setup: &[u8; 8]) -> bool {
    setup[0] == 0x23 && setup[1] == 0x03 && u16::from_le_bytes([setup[2], setup[3]]) == 4
}

/// The simulated host controller for one device. See the module documentation.
#[derive(Default)]
pub struct HostController {
    control: VecDeque<Transfer>,
    ins: [VecDeque<Transfer>; NUM_ENDPOINTS],
    outs: [VecDeque<Transfer>; NUM_ENDPOINTS],
}

impl HostController {
    /// A controller with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a URB. An URB that can never be carried out (unknown endpoint, setup
    /// direction not matching the URB's, control OUT data not matching wLength) is
    /// returned at once as a failed completion.
    pub fn submit(&mut self, bus: &SimBus, urb: Urb) -> Result<(), Completion> {
        let index = usize::from(urb.endpoint);
        let addr = match (index < NUM_ENDPOINTS, urb.direction) {
            (true, UsbDirection::In) => EndpointAddress::from_parts(index, UsbDirection::In),
            (true, UsbDirection::Out) => EndpointAddress::from_parts(index, UsbDirection::Out),
            (false, _) => return Err(Completion::failed(urb.id, EPIPE)),
        };
        let Some(info) = bus.endpoint_info(addr) else {
            return Err(Completion::failed(urb.id, EPIPE));
        };
        match info.ep_type {
            EndpointType::Control => {
                let setup_in = urb.setup[0] & 0x80 != 0;
                let transfer = Transfer::new(urb);
                let valid = match transfer.urb.direction {
                    UsbDirection::In => setup_in,
                    UsbDirection::Out => {
                        !setup_in && transfer.urb.data.len() == transfer.w_length()
                    }
                };
                if !valid {
                    return Err(Completion::failed(transfer.urb.id, EINVAL));
                }
                self.control.push_back(transfer);
            }
            EndpointType::Interrupt | EndpointType::Bulk => {
                let queues = match urb.direction {
                    UsbDirection::In => &mut self.ins,
                    UsbDirection::Out => &mut self.outs,
                };
                match queues.get_mut(index) {
                    Some(queue) => queue.push_back(Transfer::new(urb)),
                    None => return Err(Completion::failed(urb.id, EPIPE)),
                }
            }
            EndpointType::Isochronous { .. } => return Err(Completion::failed(urb.id, EINVAL)),
        }
        Ok(())
    }

    /// Removes a pending URB; true if it was still pending (it then never completes).
    pub fn unlink(&mut self, id: u32) -> bool {
        let queues = std::iter::once(&mut self.control)
            .chain(self.ins.iter_mut())
            .chain(self.outs.iter_mut());
        for queue in queues {
            if let Some(position) = queue.iter().position(|t| t.urb.id == id) {
                queue.remove(position);
                return true;
            }
        }
        false
    }

    /// Whether a URB with this id is pending.
    pub fn is_pending(&self, id: u32) -> bool {
        std::iter::once(&self.control)
            .chain(self.ins.iter())
            .chain(self.outs.iter())
            .any(|queue| queue.iter().any(|t| t.urb.id == id))
    }

    /// The number of pending URBs.
    pub fn pending(&self) -> usize {
        std::iter::once(&self.control)
            .chain(self.ins.iter())
            .chain(self.outs.iter())
            .map(VecDeque::len)
            .sum()
    }

    /// Removes every pending URB, calling `f` with each id (oldest queue first).
    pub fn drain_ids(&mut self, mut f: impl FnMut(u32)) {
        let queues = std::iter::once(&mut self.control)
            .chain(self.ins.iter_mut())
            .chain(self.outs.iter_mut());
        for queue in queues {
            for transfer in queue.drain(..) {
                f(transfer.urb.id);
            }
        }
    }

    /// Drops every pending URB (disconnect or reset).
    pub fn clear(&mut self) {
        self.control.clear();
        self.ins.iter_mut().for_each(VecDeque::clear);
        self.outs.iter_mut().for_each(VecDeque::clear);
    }

    /// Moves what packets can move now; appends finished URBs to `done`. Returns
    /// true if anything moved (the device should then run before the next call).
    pub fn service(&mut self, bus: &SimBus, done: &mut Vec<Completion>) -> bool {
        let mut progress = false;
        let mut finish = |queue: &mut VecDeque<Transfer>, step: Step| match step {
            Step::Idle => {}
            Step::Progress => progress = true,
            Step::Done(completion) => {
                queue.pop_front();
                done.push(completion);
                progress = true;
            }
        };
        if let Some(transfer) = self.control.front_mut() {
            let step = control_step(bus, transfer);
            finish(&mut self.control, step);
        }
        for (index, queue) in self.ins.iter_mut().enumerate() {
            if let Some(transfer) = queue.front_mut() {
                let addr = EndpointAddress::from_parts(index, UsbDirection::In);
                let step = in_step(bus, addr, transfer);
                finish(queue, step);
            }
        }
        for (index, queue) in self.outs.iter_mut().enumerate() {
            if let Some(transfer) = queue.front_mut() {
                let addr = EndpointAddress::from_parts(index, UsbDirection::Out);
                let step = out_step(bus, addr, transfer);
                finish(queue, step);
            }
        }
        progress
    }
}

fn max_packet(bus: &SimBus, addr: EndpointAddress) -> usize {
    bus.endpoint_info(addr)
        .map_or(8, |info| usize::from(info.max_packet).max(1))
}

fn control_step(bus: &SimBus, t: &mut Transfer) -> Step {
    let ep_out = EndpointAddress::from(0x00);
    let ep_in = EndpointAddress::from(0x80);
    let mps = max_packet(bus, ep_in);
    let id = t.urb.id;
    match t.stage {
        Stage::Setup => {
            bus.host_setup(&t.urb.setup);
            t.stage = match t.urb.direction {
                UsbDirection::In => Stage::DataIn,
                UsbDirection::Out if t.urb.data.is_empty() => Stage::StatusIn,
                UsbDirection::Out => Stage::DataOut,
            };
            Step::Progress
        }
        Stage::DataIn => {
            let limit = t.w_length().min(t.urb.buffer_length);
            match bus.host_in(ep_in, mps) {
                HostIn::Data(packet) => {
                    let short = packet.len() < mps;
                    t.received.extend_from_slice(&packet);
                    if short || t.received.len() >= limit {
                        // Never hand back more than the host asked for.
                        t.received.truncate(limit);
                        t.stage = Stage::StatusOut;
                    }
                    Step::Progress
                }
                HostIn::Nak => Step::Idle,
                HostIn::Stall => Step::Done(Completion::failed(id, EPIPE)),
                HostIn::Babble => Step::Done(Completion::failed(id, EOVERFLOW)),
            }
        }
        Stage::DataOut => {
            let end = (t.sent + mps).min(t.urb.data.len());
            let chunk = t.urb.data.get(t.sent..end).unwrap_or_default();
            match bus.host_out(ep_out, chunk) {
                HostOut::Ack => {
                    t.sent = end;
                    if t.sent >= t.urb.data.len() {
                        t.stage = Stage::StatusIn;
                    }
                    Step::Progress
                }
                HostOut::Nak => Step::Idle,
                HostOut::Stall => Step::Done(Completion::failed(id, EPIPE)),
            }
        }
        Stage::StatusIn => match bus.host_in(ep_in, 0) {
            HostIn::Data(_) => Step::Done(Completion {
                id,
                status: 0,
                data: Vec::new(),
                actual_length: t.urb.data.len(),
            }),
            HostIn::Nak => Step::Idle,
            HostIn::Stall => Step::Done(Completion::failed(id, EPIPE)),
            HostIn::Babble => Step::Done(Completion::failed(id, EPROTO)),
        },
        Stage::StatusOut => match bus.host_out(ep_out, &[]) {
            HostOut::Ack => {
                let data = std::mem::take(&mut t.received);
                Step::Done(Completion {
                    id,
                    status: 0,
                    actual_length: data.len(),
                    data,
                })
            }
            HostOut::Nak => Step::Idle,
            HostOut::Stall => Step::Done(Completion::failed(id, EPIPE)),
        },
    }
}

fn in_step(bus: &SimBus, addr: EndpointAddress, t: &mut Transfer) -> Step {
    let mps = max_packet(bus, addr);
    let room = t.urb.buffer_length.saturating_sub(t.received.len());
    match bus.host_in(addr, room) {
        HostIn::Data(packet) => {
            let short = packet.len() < mps;
            t.received.extend_from_slice(&packet);
            if short || t.received.len() >= t.urb.buffer_length {
                let data = std::mem::take(&mut t.received);
                Step::Done(Completion {
                    id: t.urb.id,
                    status: 0,
                    actual_length: data.len(),
                    data,
                })
            } else {
                Step::Progress
            }
        }
        HostIn::Nak => Step::Idle,
        HostIn::Stall => Step::Done(Completion::failed(t.urb.id, EPIPE)),
        HostIn::Babble => Step::Done(Completion::failed(t.urb.id, EOVERFLOW)),
    }
}

fn out_step(bus: &SimBus, addr: EndpointAddress, t: &mut Transfer) -> Step {
    let mps = max_packet(bus, addr);
    let end = (t.sent + mps).min(t.urb.data.len());
    let chunk = t.urb.data.get(t.sent..end).unwrap_or_default();
    match bus.host_out(addr, chunk) {
        HostOut::Ack => {
            t.sent = end;
            if t.sent >= t.urb.data.len() {
                Step::Done(Completion {
                    id: t.urb.id,
                    status: 0,
                    data: Vec::new(),
                    actual_length: t.sent,
                })
            } else {
                Step::Progress
            }
        }
        HostOut::Nak => Step::Idle,
        HostOut::Stall => Step::Done(Completion::failed(t.urb.id, EPIPE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usb_device::bus::UsbBus;

    fn bus() -> SimBus {
        let mut bus = SimBus::new();
        bus.alloc_ep(
            UsbDirection::Out,
            Some(EndpointAddress::from(0)),
            EndpointType::Control,
            64,
            0,
        )
        .unwrap();
        bus.alloc_ep(
            UsbDirection::In,
            Some(EndpointAddress::from(0x80)),
            EndpointType::Control,
            64,
            0,
        )
        .unwrap();
        bus.alloc_ep(UsbDirection::In, None, EndpointType::Interrupt, 64, 1)
            .unwrap();
        bus.alloc_ep(UsbDirection::Out, None, EndpointType::Interrupt, 64, 1)
            .unwrap();
        bus.enable();
        bus
    }

    fn in_urb(id: u32, len: usize) -> Urb {
        Urb {
            id,
            endpoint: 1,
            direction: UsbDirection::In,
            setup: [0; 8],
            buffer_length: len,
            data: Vec::new(),
        }
    }

    #[test]
    fn unknown_endpoint_and_bad_control_fail_at_once() {
        let bus = bus();
        let mut hc = HostController::new();
        let mut urb = in_urb(1, 64);
        urb.endpoint = 5;
        assert_eq!(hc.submit(&bus, urb).unwrap_err().status, EPIPE);
        let bad = Urb {
            id: 2,
            endpoint: 0,
            direction: UsbDirection::Out,
            setup: [0x80, 6, 0, 1, 0, 0, 18, 0],
            buffer_length: 0,
            data: Vec::new(),
        };
        assert_eq!(hc.submit(&bus, bad).unwrap_err().status, EINVAL);
        assert_eq!(hc.pending(), 0);
    }

    #[test]
    fn interrupt_in_waits_and_queues_in_order() {
        let bus = bus();
        let mut hc = HostController::new();
        hc.submit(&bus, in_urb(1, 64)).unwrap();
        hc.submit(&bus, in_urb(2, 64)).unwrap();
        let mut done = Vec::new();
        assert!(!hc.service(&bus, &mut done));
        assert!(done.is_empty());
        bus.write(EndpointAddress::from(0x81), &[9; 64]).unwrap();
        assert!(hc.service(&bus, &mut done));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].id, 1);
        assert_eq!(done[0].data, vec![9; 64]);
        assert!(hc.is_pending(2));
        assert!(hc.unlink(2));
        assert!(!hc.unlink(2));
        assert_eq!(hc.pending(), 0);
    }

    #[test]
    fn control_in_is_truncated_to_w_length() {
        let bus = bus();
        let mut hc = HostController::new();
        hc.submit(
            &bus,
            Urb {
                id: 7,
                endpoint: 0,
                direction: UsbDirection::In,
                setup: [0x80, 6, 0, 2, 0, 0, 9, 0],
                buffer_length: 9,
                data: Vec::new(),
            },
        )
        .unwrap();
        let mut done = Vec::new();
        assert!(hc.service(&bus, &mut done)); // SETUP
        assert!(!hc.service(&bus, &mut done)); // device has not answered yet
        let mut setup = [0u8; 8];
        assert_eq!(bus.read(EndpointAddress::from(0), &mut setup), Ok(8));
        // A device that ignores wLength and sends a full packet.
        bus.write(EndpointAddress::from(0x80), &[1; 64]).unwrap();
        assert!(hc.service(&bus, &mut done)); // data stage
        assert!(hc.service(&bus, &mut done)); // status stage
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].data, vec![1; 9]);
    }

    #[test]
    fn port_reset_detection() {
        assert!(is_port_reset(&[0x23, 3, 4, 0, 1, 0, 0, 0]));
        assert!(!is_port_reset(&[0x23, 1, 4, 0, 1, 0, 0, 0]));
    }
}
