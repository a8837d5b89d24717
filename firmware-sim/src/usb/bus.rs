//! A `usb_device::bus::UsbBus` whose "wire" is driven by software.
//!
//! On a microcontroller the USB peripheral holds one packet buffer per endpoint and
//! raises events when the host sends a SETUP or OUT packet or has collected an IN
//! packet. [`SimBus`] models exactly that: the device side (the `usb-device` stack and
//! its classes) uses the ordinary [`UsbBus`] methods, and the host side (the
//! simulated host controller in [`crate::usb::host`], fed by USB/IP URBs) uses the
//! `host_*` methods to put packets into OUT buffers, take packets from IN buffers,
//! and signal a bus reset.
//!
//! All endpoints are full speed: at most 64 bytes per packet.
//!
//! The state sits behind a `Mutex` only because `UsbBus` must be `Sync`; a bus is
//! used from one thread (its key's thread), so the lock is never contended.

use std::sync::{Mutex, MutexGuard};

use usb_device::bus::{PollResult, UsbBus};
use usb_device::endpoint::{EndpointAddress, EndpointType};
use usb_device::{UsbDirection, UsbError};

/// The largest packet of a full-speed control, bulk or interrupt endpoint.
pub const MAX_PACKET: usize = 64;

/// The number of endpoint numbers per direction.
const NUM_ENDPOINTS: usize = 16;

/// One packet in an endpoint buffer.
#[derive(Clone, Copy)]
struct Packet {
    data: [u8; MAX_PACKET],
    len: usize,
}

impl Packet {
    fn new(bytes: &[u8]) -> Option<Self> {
        let mut data = [0u8; MAX_PACKET];
        data.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(Self {
            data,
            len: bytes.len(),
        })
    }

    fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

/// The state of one allocated endpoint (one direction).
#[derive(Clone, Copy)]
struct Endpoint {
    ep_type: EndpointType,
    max_packet: u16,
    /// The packet in the endpoint buffer: for OUT, received from the host and not yet
    /// read by the device; for IN, written by the device and not yet taken by the host.
    packet: Option<Packet>,
    /// For endpoint 0 OUT: the buffered packet is a SETUP packet.
    setup: bool,
    stalled: bool,
    /// For IN: the host took a packet and the device has not yet been told.
    in_complete: bool,
}

impl Endpoint {
    fn new(ep_type: EndpointType, max_packet: u16) -> Self {
        Self {
            ep_type,
            max_packet,
            packet: None,
            setup: false,
            stalled: false,
            in_complete: false,
        }
    }

    fn clear(&mut self) {
        self.packet = None;
        self.setup = false;
        self.stalled = false;
        self.in_complete = false;
    }
}

#[derive(Default)]
struct State {
    out_eps: [Option<Endpoint>; NUM_ENDPOINTS],
    in_eps: [Option<Endpoint>; NUM_ENDPOINTS],
    enabled: bool,
    reset_pending: bool,
    address: u8,
}

impl State {
    fn ep_mut(&mut self, addr: EndpointAddress) -> Option<&mut Endpoint> {
        let table = match addr.direction() {
            UsbDirection::Out => &mut self.out_eps,
            UsbDirection::In => &mut self.in_eps,
        };
        table.get_mut(addr.index())?.as_mut()
    }

    fn ep(&self, addr: EndpointAddress) -> Option<&Endpoint> {
        let table = match addr.direction() {
            UsbDirection::Out => &self.out_eps,
            UsbDirection::In => &self.in_eps,
        };
        table.get(addr.index())?.as_ref()
    }

    fn clear_all(&mut self) {
        for ep in self
            .out_eps
            .iter_mut()
            .chain(self.in_eps.iter_mut())
            .flatten()
        {
            ep.clear();
        }
    }
}

/// What the host got when it asked an IN endpoint for a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostIn {
    /// A packet (possibly zero-length). The device is told the IN transfer completed.
    Data(Vec<u8>),
    /// No packet is ready yet.
    Nak,
    /// The endpoint is halted.
    Stall,
    /// The waiting packet is longer than the host's buffer; it stays in the endpoint.
    Babble,
}

/// What happened when the host sent a packet to an OUT endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOut {
    /// The endpoint buffer took the packet.
    Ack,
    /// The endpoint buffer is still full; try again later.
    Nak,
    /// The endpoint is halted.
    Stall,
}

/// Description of an allocated endpoint, for the host side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The transfer type.
    pub ep_type: EndpointType,
    /// wMaxPacketSize.
    pub max_packet: u16,
}

/// The simulated USB peripheral. See the module documentation.
#[derive(Default)]
pub struct SimBus {
    state: Mutex<State>,
}

impl SimBus {
    /// A bus with no endpoints allocated.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere on this thread; the state is
        // plain data and still consistent enough to continue.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Host side: the endpoint at `addr`, if allocated.
    pub fn endpoint_info(&self, addr: EndpointAddress) -> Option<EndpointInfo> {
        self.lock().ep(addr).map(|ep| EndpointInfo {
            ep_type: ep.ep_type,
            max_packet: ep.max_packet,
        })
    }

    /// Host side: signals a USB bus reset. Every endpoint buffer is emptied at once
    /// (no stale data crosses a reset) and the device sees `PollResult::Reset`.
    pub fn host_reset(&self) {
        let mut state = self.lock();
        state.clear_all();
        state.reset_pending = true;
        state.address = 0;
    }

    /// Host side: sends a SETUP packet to endpoint 0. Like real hardware this aborts
    /// whatever control transfer was in progress: both endpoint-0 buffers are
    /// emptied and the endpoint-0 halt is cleared.
    pub fn host_setup(&self, setup: &[u8; 8]) {
        let mut state = self.lock();
        for addr in [0x00u8, 0x80] {
            if let Some(ep) = state.ep_mut(EndpointAddress::from(addr)) {
                ep.clear();
            }
        }
        if let Some(ep) = state.ep_mut(EndpointAddress::from(0x00)) {
            ep.packet = Packet::new(setup);
            ep.setup = true;
        }
    }

    /// Host side: sends one OUT packet (at most the endpoint's max packet size).
    pub fn host_out(&self, addr: EndpointAddress, data: &[u8]) -> HostOut {
        let mut state = self.lock();
        let Some(ep) = state.ep_mut(addr) else {
            return HostOut::Stall;
        };
        if ep.stalled {
            return HostOut::Stall;
        }
        if data.len() > usize::from(ep.max_packet) {
            // Babble: the host controller never sends more than wMaxPacketSize.
            return HostOut::Stall;
        }
        if ep.packet.is_some() {
            return HostOut::Nak;
        }
        match Packet::new(data) {
            Some(packet) => {
                ep.packet = Some(packet);
                ep.setup = false;
                HostOut::Ack
            }
            None => HostOut::Stall,
        }
    }

    /// Host side: asks an IN endpoint for one packet of at most `max_len` bytes.
    pub fn host_in(&self, addr: EndpointAddress, max_len: usize) -> HostIn {
        let mut state = self.lock();
        let Some(ep) = state.ep_mut(addr) else {
            return HostIn::Stall;
        };
        if ep.stalled {
            return HostIn::Stall;
        }
        match ep.packet {
            None => HostIn::Nak,
            Some(packet) if packet.len > max_len => HostIn::Babble,
            Some(packet) => {
                ep.packet = None;
                ep.in_complete = true;
                HostIn::Data(packet.bytes().to_vec())
            }
        }
    }

    /// Whether the device has events to process (what an interrupt line would show).
    pub fn has_events(&self) -> bool {
        let state = self.lock();
        state.reset_pending
            || state.out_eps.iter().flatten().any(|ep| ep.packet.is_some())
            || state.in_eps.iter().flatten().any(|ep| ep.in_complete)
    }

    /// The address the device set with SET_ADDRESS (0 until then).
    pub fn address(&self) -> u8 {
        self.lock().address
    }
}

impl UsbBus for SimBus {
    fn alloc_ep(
        &mut self,
        ep_dir: UsbDirection,
        ep_addr: Option<EndpointAddress>,
        ep_type: EndpointType,
        max_packet_size: u16,
        _interval: u8,
    ) -> usb_device::Result<EndpointAddress> {
        if usize::from(max_packet_size) > MAX_PACKET {
            return Err(UsbError::EndpointMemoryOverflow);
        }
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.enabled {
            return Err(UsbError::InvalidState);
        }
        let table = match ep_dir {
            UsbDirection::Out => &mut state.out_eps,
            UsbDirection::In => &mut state.in_eps,
        };
        let index = match ep_addr {
            Some(addr) => {
                if addr.direction() != ep_dir {
                    return Err(UsbError::InvalidEndpoint);
                }
                let index = addr.index();
                match table.get(index) {
                    Some(None) => index,
                    _ => return Err(UsbError::InvalidEndpoint),
                }
            }
            None => {
                // Endpoint 0 is only ever allocated explicitly (for control).
                let free = table
                    .iter()
                    .enumerate()
                    .skip(1)
                    .find(|(_, slot)| slot.is_none());
                match free {
                    Some((index, _)) => index,
                    None => return Err(UsbError::EndpointOverflow),
                }
            }
        };
        if let Some(slot) = table.get_mut(index) {
            *slot = Some(Endpoint::new(ep_type, max_packet_size));
        }
        Ok(EndpointAddress::from_parts(index, ep_dir))
    }

    fn enable(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.enabled = true;
    }

    fn reset(&self) {
        let mut state = self.lock();
        state.clear_all();
        state.address = 0;
    }

    fn set_device_address(&self, addr: u8) {
        self.lock().address = addr;
    }

    fn write(&self, ep_addr: EndpointAddress, buf: &[u8]) -> usb_device::Result<usize> {
        let mut state = self.lock();
        let ep = state
            .ep_mut(ep_addr)
            .filter(|_| ep_addr.is_in())
            .ok_or(UsbError::InvalidEndpoint)?;
        if buf.len() > usize::from(ep.max_packet) {
            return Err(UsbError::BufferOverflow);
        }
        if ep.packet.is_some() {
            return Err(UsbError::WouldBlock);
        }
        ep.packet = Packet::new(buf);
        Ok(buf.len())
    }

    fn read(&self, ep_addr: EndpointAddress, buf: &mut [u8]) -> usb_device::Result<usize> {
        let mut state = self.lock();
        let ep = state
            .ep_mut(ep_addr)
            .filter(|_| ep_addr.is_out())
            .ok_or(UsbError::InvalidEndpoint)?;
        let packet = ep.packet.ok_or(UsbError::WouldBlock)?;
        // Hardware drops the packet whether or not it fits the caller's buffer.
        ep.packet = None;
        ep.setup = false;
        let dest = buf.get_mut(..packet.len).ok_or(UsbError::BufferOverflow)?;
        dest.copy_from_slice(packet.bytes());
        Ok(packet.len)
    }

    fn set_stalled(&self, ep_addr: EndpointAddress, stalled: bool) {
        let mut state = self.lock();
        // A halted IN endpoint keeps its buffered packet: it goes out once the halt
        // is cleared, so no report is lost to a SET_FEATURE/CLEAR_FEATURE(HALT).
        if let Some(ep) = state.ep_mut(ep_addr) {
            ep.stalled = stalled;
        }
    }

    fn is_stalled(&self, ep_addr: EndpointAddress) -> bool {
        self.lock().ep(ep_addr).is_some_and(|ep| ep.stalled)
    }

    fn suspend(&self) {}

    fn resume(&self) {}

    fn poll(&self) -> PollResult {
        let mut state = self.lock();
        if state.reset_pending {
            state.reset_pending = false;
            return PollResult::Reset;
        }
        let mut ep_out = 0u16;
        let mut ep_setup = 0u16;
        let mut ep_in_complete = 0u16;
        for (index, ep) in state.out_eps.iter().enumerate() {
            if let Some(ep) = ep {
                if ep.packet.is_some() {
                    if ep.setup {
                        ep_setup |= 1 << index;
                    } else {
                        ep_out |= 1 << index;
                    }
                }
            }
        }
        for (index, ep) in state.in_eps.iter_mut().enumerate() {
            if let Some(ep) = ep {
                if ep.in_complete {
                    ep.in_complete = false;
                    ep_in_complete |= 1 << index;
                }
            }
        }
        if ep_out | ep_setup | ep_in_complete == 0 {
            PollResult::None
        } else {
            PollResult::Data {
                ep_out,
                ep_in_complete,
                ep_setup,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus_with_eps() -> SimBus {
        let mut bus = SimBus::new();
        for (dir, addr) in [
            (UsbDirection::Out, Some(EndpointAddress::from(0x00))),
            (UsbDirection::In, Some(EndpointAddress::from(0x80))),
        ] {
            bus.alloc_ep(dir, addr, EndpointType::Control, 64, 0)
                .unwrap();
        }
        let ep = bus
            .alloc_ep(UsbDirection::In, None, EndpointType::Interrupt, 64, 5)
            .unwrap();
        assert_eq!(u8::from(ep), 0x81);
        let ep = bus
            .alloc_ep(UsbDirection::Out, None, EndpointType::Interrupt, 64, 5)
            .unwrap();
        assert_eq!(u8::from(ep), 0x01);
        bus.enable();
        bus
    }

    #[test]
    fn allocation_rules() {
        let mut bus = SimBus::new();
        assert!(bus
            .alloc_ep(UsbDirection::In, None, EndpointType::Interrupt, 65, 1)
            .is_err());
        bus.alloc_ep(
            UsbDirection::In,
            Some(EndpointAddress::from(0x82)),
            EndpointType::Interrupt,
            64,
            1,
        )
        .unwrap();
        assert!(bus
            .alloc_ep(
                UsbDirection::In,
                Some(EndpointAddress::from(0x82)),
                EndpointType::Interrupt,
                64,
                1
            )
            .is_err());
        bus.enable();
        assert!(bus
            .alloc_ep(UsbDirection::In, None, EndpointType::Interrupt, 64, 1)
            .is_err());
    }

    #[test]
    fn out_packet_is_held_until_read() {
        let bus = bus_with_eps();
        let ep = EndpointAddress::from(0x01);
        assert_eq!(bus.host_out(ep, &[1, 2, 3]), HostOut::Ack);
        assert_eq!(bus.host_out(ep, &[4]), HostOut::Nak);
        assert!(matches!(bus.poll(), PollResult::Data { ep_out: 2, .. }));
        let mut buf = [0u8; 64];
        assert_eq!(bus.read(ep, &mut buf), Ok(3));
        assert_eq!(&buf[..3], &[1, 2, 3]);
        assert_eq!(bus.read(ep, &mut buf), Err(UsbError::WouldBlock));
        assert!(matches!(bus.poll(), PollResult::None));
    }

    #[test]
    fn in_packet_and_completion() {
        let bus = bus_with_eps();
        let ep = EndpointAddress::from(0x81);
        assert_eq!(bus.host_in(ep, 64), HostIn::Nak);
        assert_eq!(bus.write(ep, &[7; 64]), Ok(64));
        assert_eq!(bus.write(ep, &[7; 64]), Err(UsbError::WouldBlock));
        assert_eq!(bus.host_in(ep, 8), HostIn::Babble);
        assert_eq!(bus.host_in(ep, 64), HostIn::Data(vec![7; 64]));
        assert!(matches!(
            bus.poll(),
            PollResult::Data {
                ep_in_complete: 2,
                ..
            }
        ));
        assert!(matches!(bus.poll(), PollResult::None));
    }

    #[test]
    fn setup_clears_endpoint_zero_and_reset_clears_all() {
        let bus = bus_with_eps();
        bus.set_stalled(EndpointAddress::from(0x80), true);
        assert_eq!(bus.host_in(EndpointAddress::from(0x80), 64), HostIn::Stall);
        bus.host_setup(&[0x80, 6, 0, 1, 0, 0, 18, 0]);
        assert!(!bus.is_stalled(EndpointAddress::from(0x80)));
        assert!(matches!(bus.poll(), PollResult::Data { ep_setup: 1, .. }));
        bus.write(EndpointAddress::from(0x81), &[1]).unwrap();
        bus.host_reset();
        assert!(matches!(bus.poll(), PollResult::Reset));
        assert_eq!(bus.host_in(EndpointAddress::from(0x81), 64), HostIn::Nak);
        assert!(!bus.has_events());
    }
}
