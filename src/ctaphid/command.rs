//! CTAPHID command codes (CTAP 2.1 §11.2.9) and KEEPALIVE status codes.

/// A CTAPHID command, as carried (with bit 7 set) in an initialization packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `PING` (0x01): echo the data back.
    Ping,
    /// `MSG` (0x03): a U2F (CTAP1) APDU.
    Msg,
    /// `LOCK` (0x04): reserve the device for one channel for up to 10 seconds.
    Lock,
    /// `INIT` (0x06): allocate a channel (on broadcast) or resynchronize one.
    Init,
    /// `WINK` (0x08): identify the device to the user.
    Wink,
    /// `CBOR` (0x10): a CTAP2 command byte followed by CBOR.
    Cbor,
    /// `CANCEL` (0x11): abort the request waiting for the user on this channel.
    Cancel,
    /// `KEEPALIVE` (0x3B): sent by the device while a request is in progress.
    Keepalive,
    /// `ERROR` (0x3F): sent by the device; the payload is one [`super::HidError`] code.
    Error,
}

impl Command {
    /// The command code without bit 7 (as the specification lists it).
    pub const fn code(self) -> u8 {
        match self {
            Command::Ping => 0x01,
            Command::Msg => 0x03,
            Command::Lock => 0x04,
            Command::Init => 0x06,
            Command::Wink => 0x08,
            Command::Cbor => 0x10,
            Command::Cancel => 0x11,
            Command::Keepalive => 0x3B,
            Command::Error => 0x3F,
        }
    }

    /// The command byte as it appears on the wire (bit 7 set).
    pub const fn wire_byte(self) -> u8 {
        self.code() | 0x80
    }

    /// The command for `code` (with or without bit 7), if it is one we know.
    pub const fn from_code(code: u8) -> Option<Command> {
        Some(match code & 0x7F {
            0x01 => Command::Ping,
            0x03 => Command::Msg,
            0x04 => Command::Lock,
            0x06 => Command::Init,
            0x08 => Command::Wink,
            0x10 => Command::Cbor,
            0x11 => Command::Cancel,
            0x3B => Command::Keepalive,
            0x3F => Command::Error,
            _ => return None,
        })
    }

    /// Whether a host may send this command (KEEPALIVE and ERROR only go to the host).
    pub const fn is_request(self) -> bool {
        !matches!(self, Command::Keepalive | Command::Error)
    }
}

/// The status byte of a KEEPALIVE report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepaliveStatus {
    /// The device is still processing the request.
    Processing,
    /// The device is waiting for the user (a touch).
    UpNeeded,
}

impl KeepaliveStatus {
    /// The status byte on the wire.
    pub const fn code(self) -> u8 {
        match self {
            KeepaliveStatus::Processing => 1,
            KeepaliveStatus::UpNeeded => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Command; 9] = [
        Command::Ping,
        Command::Msg,
        Command::Lock,
        Command::Init,
        Command::Wink,
        Command::Cbor,
        Command::Cancel,
        Command::Keepalive,
        Command::Error,
    ];

    #[test]
    fn codes_match_the_specification() {
        let codes: [u8; 9] = ALL.map(Command::code);
        assert_eq!(
            codes,
            [0x01, 0x03, 0x04, 0x06, 0x08, 0x10, 0x11, 0x3B, 0x3F]
        );
        assert_eq!(Command::Init.wire_byte(), 0x86);
        assert_eq!(KeepaliveStatus::Processing.code(), 1);
        assert_eq!(KeepaliveStatus::UpNeeded.code(), 2);
    }

    #[test]
    fn from_code_round_trips_with_or_without_bit_7() {
        for command in ALL {
            assert_eq!(Command::from_code(command.code()), Some(command));
            assert_eq!(Command::from_code(command.wire_byte()), Some(command));
        }
        assert_eq!(Command::from_code(0x80), None);
        assert_eq!(
            Command::from_code(0xC0),
            None,
            "vendor commands are unknown"
        );
    }

    #[test]
    fn only_keepalive_and_error_are_device_to_host() {
        let requests: usize = ALL.iter().filter(|c| c.is_request()).count();
        assert_eq!(requests, 7);
        assert!(!Command::Keepalive.is_request());
        assert!(!Command::Error.is_request());
    }
}
