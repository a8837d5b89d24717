//! The FIDO HID class (CTAP 2.1 §11.2.8.1): one HID interface with a 64-byte
//! input report on an interrupt IN endpoint and a 64-byte output report on an
//! interrupt OUT endpoint, under usage page 0xF1D0, usage 0x01.
//!
//! Written directly on `usb-device`'s [`UsbClass`] (rather than usbd-hid's
//! generic `HIDClass`) so the class can say whether its IN endpoint is free
//! *before* the firmware takes a report from the core: a report is only taken
//! when it can be put on the wire, so none is ever lost.

use usb_device::class_prelude::{
    ControlIn, ControlOut, DescriptorWriter, EndpointAddress, EndpointIn, EndpointOut,
    EndpointType, InterfaceNumber, UsbBus, UsbBusAllocator, UsbClass,
};
use usb_device::control::{Recipient, Request, RequestType};
use usb_device::UsbError;

/// The size of a CTAPHID report (both directions).
pub const REPORT_SIZE: usize = 64;

/// One HID report.
pub type Report = [u8; REPORT_SIZE];

/// The FIDO report descriptor (34 bytes).
pub const REPORT_DESCRIPTOR: [u8; 34] = [
    0x06, 0xD0, 0xF1, // Usage Page (FIDO Alliance, 0xF1D0)
    0x09, 0x01, // Usage (CTAPHID authenticator device)
    0xA1, 0x01, // Collection (Application)
    0x09, 0x20, //   Usage (Input Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xFF, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x81, 0x02, //   Input (Data, Variable, Absolute)
    0x09, 0x21, //   Usage (Output Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xFF, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x91, 0x02, //   Output (Data, Variable, Absolute)
    0xC0, // End Collection
];

/// USB interface class code for HID.
pub const INTERFACE_CLASS_HID: u8 = 0x03;

const DESC_TYPE_HID: u8 = 0x21;
const DESC_TYPE_REPORT: u8 = 0x22;

const HID_GET_REPORT: u8 = 0x01;
const HID_GET_IDLE: u8 = 0x02;
const HID_SET_IDLE: u8 = 0x0A;

/// The FIDO HID interface.
pub struct FidoHidClass<'a, B: UsbBus> {
    interface: InterfaceNumber,
    ep_in: EndpointIn<'a, B>,
    ep_out: EndpointOut<'a, B>,
    /// An IN report is in the endpoint buffer and the host has not collected it.
    in_busy: bool,
    /// An OUT report read from the endpoint and not yet taken by the firmware.
    received: Option<Report>,
    idle_rate: u8,
}

impl<'a, B: UsbBus> FidoHidClass<'a, B> {
    /// Allocates the interface and its two interrupt endpoints (IN first, so they
    /// become 0x81 and 0x01 on a fresh bus). `interval_ms` is bInterval.
    pub fn new(alloc: &'a UsbBusAllocator<B>, interval_ms: u8) -> usb_device::Result<Self> {
        let interface = alloc.interface();
        let ep_in = alloc.alloc(
            None,
            EndpointType::Interrupt,
            REPORT_SIZE as u16,
            interval_ms,
        )?;
        let ep_out = alloc.alloc(
            None,
            EndpointType::Interrupt,
            REPORT_SIZE as u16,
            interval_ms,
        )?;
        Ok(Self {
            interface,
            ep_in,
            ep_out,
            in_busy: false,
            received: None,
            idle_rate: 0,
        })
    }

    /// The interrupt IN endpoint's address.
    pub fn in_address(&self) -> EndpointAddress {
        self.ep_in.address()
    }

    /// The interrupt OUT endpoint's address.
    pub fn out_address(&self) -> EndpointAddress {
        self.ep_out.address()
    }

    /// Takes the next output report the host sent, if any.
    pub fn take_report(&mut self) -> Option<Report> {
        let report = self.received.take();
        // Make room and pick up a packet the endpoint may still hold.
        self.read_endpoint();
        report
    }

    /// Whether [`Self::write_report`] would be accepted now.
    pub fn can_write(&self) -> bool {
        !self.in_busy
    }

    /// Queues one input report for the host.
    pub fn write_report(&mut self, report: &Report) -> usb_device::Result<()> {
        if self.in_busy {
            return Err(UsbError::WouldBlock);
        }
        self.ep_in.write(report)?;
        self.in_busy = true;
        Ok(())
    }

    fn read_endpoint(&mut self) {
        if self.received.is_some() {
            return;
        }
        let mut buf = [0u8; REPORT_SIZE];
        loop {
            match self.ep_out.read(&mut buf) {
                // A zero-length packet carries no report.
                Ok(0) => continue,
                // A short report is zero-padded, as hidraw does for short writes.
                Ok(_) => {
                    self.received = Some(buf);
                    return;
                }
                Err(UsbError::WouldBlock) => return,
                Err(error) => {
                    tracing::debug!(?error, "HID OUT endpoint read failed; packet dropped");
                    return;
                }
            }
        }
    }

    fn is_ours(&self, request: &Request) -> bool {
        request.recipient == Recipient::Interface
            && request.index == u16::from(u8::from(self.interface))
    }

    fn hid_descriptor() -> [u8; 7] {
        let len = (REPORT_DESCRIPTOR.len() as u16).to_le_bytes();
        [
            0x11,
            0x01, // bcdHID 1.11
            0x00, // bCountryCode
            0x01, // bNumDescriptors
            DESC_TYPE_REPORT,
            len[0],
            len[1],
        ]
    }
}

impl<B: UsbBus> UsbClass<B> for FidoHidClass<'_, B> {
    fn get_configuration_descriptors(
        &self,
        writer: &mut DescriptorWriter,
    ) -> usb_device::Result<()> {
        writer.interface(self.interface, INTERFACE_CLASS_HID, 0, 0)?;
        writer.write(DESC_TYPE_HID, &Self::hid_descriptor())?;
        writer.endpoint(&self.ep_in)?;
        writer.endpoint(&self.ep_out)?;
        Ok(())
    }

    fn reset(&mut self) {
        self.in_busy = false;
        self.received = None;
        self.idle_rate = 0;
    }

    fn endpoint_out(&mut self, addr: EndpointAddress) {
        if addr == self.ep_out.address() {
            self.read_endpoint();
        }
    }

    fn endpoint_in_complete(&mut self, addr: EndpointAddress) {
        if addr == self.ep_in.address() {
            self.in_busy = false;
        }
    }

    fn control_in(&mut self, xfer: ControlIn<B>) {
        let request = *xfer.request();
        if !self.is_ours(&request) {
            return;
        }
        let result = match (request.request_type, request.request) {
            (RequestType::Standard, Request::GET_DESCRIPTOR) => match (request.value >> 8) as u8 {
                DESC_TYPE_REPORT => xfer.accept_with_static(&REPORT_DESCRIPTOR),
                DESC_TYPE_HID => {
                    let body = Self::hid_descriptor();
                    let mut desc = [0u8; 9];
                    desc[0] = 9;
                    desc[1] = DESC_TYPE_HID;
                    desc[2..].copy_from_slice(&body);
                    xfer.accept_with(&desc)
                }
                _ => xfer.reject(),
            },
            (RequestType::Class, HID_GET_IDLE) => xfer.accept_with(&[self.idle_rate]),
            // Reports travel on the interrupt pipes only; GET_REPORT and the boot
            // protocol requests are not supported by this (non-boot) interface.
            (RequestType::Class, HID_GET_REPORT) => xfer.reject(),
            (RequestType::Class, _) => xfer.reject(),
            _ => Ok(()),
        };
        if let Err(error) = result {
            tracing::debug!(?error, "HID control IN failed");
        }
    }

    fn control_out(&mut self, xfer: ControlOut<B>) {
        let request = *xfer.request();
        if !self.is_ours(&request) || request.request_type != RequestType::Class {
            return;
        }
        let result = match request.request {
            HID_SET_IDLE => {
                self.idle_rate = (request.value >> 8) as u8;
                xfer.accept()
            }
            // SET_REPORT, SET_PROTOCOL and anything else: stall.
            _ => xfer.reject(),
        };
        if let Err(error) = result {
            tracing::debug!(?error, "HID control OUT failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_descriptor_shape() {
        assert_eq!(REPORT_DESCRIPTOR.len(), 34);
        assert_eq!(&REPORT_DESCRIPTOR[..3], &[0x06, 0xD0, 0xF1]);
        assert_eq!(REPORT_DESCRIPTOR[33], 0xC0);
    }
}
