//! CTAPHID-level errors (CTAP 2.1 §11.2.9.1.6), sent to the host in an `ERROR` response.

/// An error of the CTAPHID layer. [`HidError::code`] maps it to the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HidError {
    /// The command is unknown or not allowed from the host.
    InvalidCmd,
    /// A parameter of the command is invalid.
    InvalidPar,
    /// The message length (BCNT) is invalid for the command or too large.
    InvalidLen,
    /// A continuation packet arrived out of order, or a new request interrupted one.
    InvalidSeq,
    /// The message was not completed in time.
    MsgTimeout,
    /// Another channel holds the device (a transaction in progress, or a lock).
    ChannelBusy,
    /// The command requires a channel lock.
    LockRequired,
    /// The channel id is reserved or was never allocated.
    InvalidChannel,
    /// Any other error.
    Other,
}

impl HidError {
    /// The error code byte on the wire.
    pub const fn code(self) -> u8 {
        match self {
            HidError::InvalidCmd => 0x01,
            HidError::InvalidPar => 0x02,
            HidError::InvalidLen => 0x03,
            HidError::InvalidSeq => 0x04,
            HidError::MsgTimeout => 0x05,
            HidError::ChannelBusy => 0x06,
            HidError::LockRequired => 0x0A,
            HidError::InvalidChannel => 0x0B,
            HidError::Other => 0x7F,
        }
    }

    /// The error for a wire code, if it is one of ours.
    pub const fn from_code(code: u8) -> Option<HidError> {
        Some(match code {
            0x01 => HidError::InvalidCmd,
            0x02 => HidError::InvalidPar,
            0x03 => HidError::InvalidLen,
            0x04 => HidError::InvalidSeq,
            0x05 => HidError::MsgTimeout,
            0x06 => HidError::ChannelBusy,
            0x0A => HidError::LockRequired,
            0x0B => HidError::InvalidChannel,
            0x7F => HidError::Other,
            _ => return None,
        })
    }
}

impl core::fmt::Display for HidError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = match self {
            HidError::InvalidCmd => "invalid command",
            HidError::InvalidPar => "invalid parameter",
            HidError::InvalidLen => "invalid length",
            HidError::InvalidSeq => "invalid sequence",
            HidError::MsgTimeout => "message timeout",
            HidError::ChannelBusy => "channel busy",
            HidError::LockRequired => "lock required",
            HidError::InvalidChannel => "invalid channel",
            HidError::Other => "other error",
        };
        write!(f, "CTAPHID {} (0x{:02x})", text, self.code())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HidError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_match_the_specification_and_round_trip() {
        let expected = [
            (HidError::InvalidCmd, 0x01),
            (HidError::InvalidPar, 0x02),
            (HidError::InvalidLen, 0x03),
            (HidError::InvalidSeq, 0x04),
            (HidError::MsgTimeout, 0x05),
            (HidError::ChannelBusy, 0x06),
            (HidError::LockRequired, 0x0A),
            (HidError::InvalidChannel, 0x0B),
            (HidError::Other, 0x7F),
        ];
        for (error, code) in expected {
            assert_eq!(error.code(), code);
            assert_eq!(HidError::from_code(code), Some(error));
        }
        assert_eq!(HidError::from_code(0x00), None);
    }

    #[test]
    fn display_names_the_code() {
        let text = std::format!("{}", HidError::ChannelBusy);
        assert_eq!(text, "CTAPHID channel busy (0x06)");
    }
}
