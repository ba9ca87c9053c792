//! The APDU codec, shared by card and host (ISO/IEC 7816-3 §12.1, 7816-4 §5.1).
//!
//! [`Command::parse`] turns raw bytes into a borrowed command view, or a [`ParseError`] that the card
//! answers with `6700` (see `card::reject`, the one place where errors become status words).
//! [`Command::encode`] writes the shortest valid encoding (short unless Nc > 255 or Ne > 256), or the
//! extended one when asked.
//!
//! Lengths follow ISO: `Ne` (the expected response length) is `None` when the command has no Le
//! field, `Some(256)` for a short `Le = 00`, `Some(65536)` for an extended `Le = 0000`.

mod sw;

pub use sw::Sw;

/// Largest command data field (Nc) the card accepts. Short APDUs carry up to 255 bytes; extended
/// APDUs up to this many, which lets a personalization write a 4 KiB photo in 8 commands.
pub const MAX_COMMAND_DATA: usize = 512;

/// Largest response data the card returns in one response APDU (short-APDU size).
pub const MAX_RESPONSE_DATA: usize = 256;

/// Size of a response buffer that always fits: [`MAX_RESPONSE_DATA`] plus `SW1 SW2`.
pub const RESPONSE_BUFFER_SIZE: usize = MAX_RESPONSE_DATA + 2;

/// Size of a command buffer that always fits: header, extended Lc, [`MAX_COMMAND_DATA`], extended Le.
pub const COMMAND_BUFFER_SIZE: usize = 4 + 3 + MAX_COMMAND_DATA + 2;

/// Why raw bytes are not a well-formed command APDU. The card answers every one with `6700`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer than the four header bytes.
    TooShort,
    /// The length fields do not match the number of bytes received.
    LengthMismatch,
    /// An extended Lc of `0000`, which ISO forbids.
    ZeroExtendedLc,
}

/// Why a command cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// Nc above 65535 or Ne above 65536 (or Ne of 0).
    LengthOutOfRange,
    /// The output buffer is too small.
    BufferTooSmall,
}

/// The four ISO 7816-4 command cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// No data, no response data.
    One,
    /// No data, response data expected (Le present).
    Two,
    /// Data, no Le.
    Three,
    /// Data and Le.
    Four,
}

/// A command APDU: header, data field and expected response length, borrowing its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// Class byte.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// The command data field (Nc = its length).
    pub data: &'a [u8],
    /// Ne, the maximum number of response bytes expected; `None` when there is no Le field.
    pub ne: Option<usize>,
    /// Whether the command was (or must be) encoded with extended length fields.
    pub extended: bool,
}

impl<'a> Command<'a> {
    /// A case 1 command (header only).
    pub const fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Command {
            cla,
            ins,
            p1,
            p2,
            data: &[],
            ne: None,
            extended: false,
        }
    }

    /// The same command with a data field.
    pub const fn with_data(self, data: &'a [u8]) -> Self {
        Command { data, ..self }
    }

    /// The same command with an expected response length `ne` (1..=65536; 256 is short `Le = 00`).
    pub const fn with_ne(self, ne: usize) -> Self {
        Command {
            ne: Some(ne),
            ..self
        }
    }

    /// The same command, encoded with extended length fields even when short ones would do.
    pub const fn force_extended(self) -> Self {
        Command {
            extended: true,
            ..self
        }
    }

    /// The ISO case of this command.
    pub const fn case(&self) -> Case {
        match (self.data.is_empty(), self.ne.is_some()) {
            (true, false) => Case::One,
            (true, true) => Case::Two,
            (false, false) => Case::Three,
            (false, true) => Case::Four,
        }
    }

    /// Nc, the length of the data field.
    pub const fn nc(&self) -> usize {
        self.data.len()
    }

    /// The header `CLA INS P1 P2`.
    pub const fn header(&self) -> [u8; 4] {
        [self.cla, self.ins, self.p1, self.p2]
    }

    /// Parses a command APDU (ISO 7816-3 §12.1.3 decoding of cases 1, 2S/2E, 3S/3E, 4S/4E).
    pub fn parse(raw: &'a [u8]) -> Result<Self, ParseError> {
        let (header, body) = match raw {
            [cla, ins, p1, p2, body @ ..] => ([*cla, *ins, *p1, *p2], body),
            _ => return Err(ParseError::TooShort),
        };
        let [cla, ins, p1, p2] = header;
        let cmd = |data: &'a [u8], ne: Option<usize>, extended: bool| Command {
            cla,
            ins,
            p1,
            p2,
            data,
            ne,
            extended,
        };
        match body {
            // Case 1.
            [] => Ok(cmd(&[], None, false)),
            // Case 2S: Le = 00 means 256.
            [le] => Ok(cmd(&[], Some(short_ne(*le)), false)),
            // Extended: a first byte of 00 followed by at least two more bytes.
            [0, b1, b2, rest @ ..] => {
                let n = usize::from(u16::from_be_bytes([*b1, *b2]));
                if rest.is_empty() {
                    // Case 2E: Le = 0000 means 65536.
                    return Ok(cmd(&[], Some(extended_ne(n)), true));
                }
                if n == 0 {
                    return Err(ParseError::ZeroExtendedLc);
                }
                match rest.len().checked_sub(n) {
                    Some(0) => Ok(cmd(rest, None, true)),
                    Some(2) => {
                        let (data, le) = rest.split_at(n);
                        let ne = match le {
                            [h, l] => extended_ne(usize::from(u16::from_be_bytes([*h, *l]))),
                            _ => return Err(ParseError::LengthMismatch),
                        };
                        Ok(cmd(data, Some(ne), true))
                    }
                    _ => Err(ParseError::LengthMismatch),
                }
            }
            // Short Lc = 00 with data is neither short nor extended.
            [0, ..] => Err(ParseError::LengthMismatch),
            [lc, rest @ ..] => {
                let n = usize::from(*lc);
                match rest.len().checked_sub(n) {
                    Some(0) => Ok(cmd(rest, None, false)),
                    Some(1) => {
                        let (data, le) = rest.split_at(n);
                        let ne = match le {
                            [le] => short_ne(*le),
                            _ => return Err(ParseError::LengthMismatch),
                        };
                        Ok(cmd(data, Some(ne), false))
                    }
                    _ => Err(ParseError::LengthMismatch),
                }
            }
        }
    }

    /// Whether this command needs extended length fields (or was asked to use them).
    pub fn needs_extended(&self) -> bool {
        self.extended || self.data.len() > 255 || self.ne.is_some_and(|ne| ne > 256)
    }

    /// The number of bytes [`Command::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let ext = self.needs_extended();
        let lc = match (self.data.is_empty(), ext) {
            (true, _) => 0,
            (false, false) => 1,
            (false, true) => 3,
        };
        let le = match (self.ne.is_some(), ext, self.data.is_empty()) {
            (false, _, _) => 0,
            (true, false, _) => 1,
            (true, true, true) => 3,
            (true, true, false) => 2,
        };
        4 + lc + self.data.len() + le
    }

    /// Encodes the command into `out`, returning the number of bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        if self.data.len() > 65535 || self.ne.is_some_and(|ne| ne == 0 || ne > 65536) {
            return Err(EncodeError::LengthOutOfRange);
        }
        let len = self.encoded_len();
        let out = out.get_mut(..len).ok_or(EncodeError::BufferTooSmall)?;
        let ext = self.needs_extended();
        let mut w = Writer { out, pos: 0 };
        w.put(&self.header());
        if !self.data.is_empty() {
            if ext {
                w.put(&[0]);
                w.put(&(self.data.len() as u16).to_be_bytes());
            } else {
                w.put(&[self.data.len() as u8]);
            }
            w.put(self.data);
        }
        if let Some(ne) = self.ne {
            if ext {
                if self.data.is_empty() {
                    w.put(&[0]);
                }
                // 65536 is encoded as 0000.
                w.put(&((ne & 0xFFFF) as u16).to_be_bytes());
            } else {
                w.put(&[(ne & 0xFF) as u8]);
            }
        }
        Ok(w.pos)
    }

    /// The encoded command as a vector.
    #[cfg(feature = "std")]
    pub fn to_vec(&self) -> Result<std::vec::Vec<u8>, EncodeError> {
        let mut v = std::vec![0; self.encoded_len()];
        let n = self.encode(&mut v)?;
        v.truncate(n);
        Ok(v)
    }
}

const fn short_ne(le: u8) -> usize {
    if le == 0 {
        256
    } else {
        le as usize
    }
}

const fn extended_ne(le: usize) -> usize {
    if le == 0 {
        65536
    } else {
        le
    }
}

/// A cursor over an output slice whose total length was checked in advance.
struct Writer<'o> {
    out: &'o mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if let Some(dst) = self.out.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
            self.pos = end;
        }
    }
}

/// Splits a response APDU into its data and status word; `None` when it is shorter than two bytes.
pub fn split_response(response: &[u8]) -> Option<(&[u8], Sw)> {
    match response {
        [data @ .., sw1, sw2] => Some((data, Sw::from_bytes(*sw1, *sw2))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_hex(s: &str) -> Result<Command<'static>, ParseError> {
        let v: &'static [u8] =
            Box::leak(hex::decode(s.replace(' ', "")).unwrap().into_boxed_slice());
        Command::parse(v)
    }

    #[test]
    fn all_cases_short_and_extended() {
        let c = parse_hex("00A40000").unwrap();
        assert_eq!((c.case(), c.ne, c.extended), (Case::One, None, false));
        let c = parse_hex("0084000004").unwrap();
        assert_eq!((c.case(), c.ne), (Case::Two, Some(4)));
        let c = parse_hex("00B0000000").unwrap();
        assert_eq!(c.ne, Some(256), "short Le 00 means 256, not 0");
        let c = parse_hex("00A40000023F00").unwrap();
        assert_eq!(
            (c.case(), c.data, c.ne),
            (Case::Three, &[0x3F, 0x00][..], None)
        );
        let c = parse_hex("00A40000023F0000").unwrap();
        assert_eq!((c.case(), c.ne), (Case::Four, Some(256)));
        let c = parse_hex("00B0000000 0000").unwrap();
        assert_eq!((c.case(), c.ne, c.extended), (Case::Two, Some(65536), true));
        let c = parse_hex("00B0000000 0102").unwrap();
        assert_eq!((c.case(), c.ne, c.extended), (Case::Two, Some(0x102), true));
        let c = parse_hex("00D6000000 0002 AABB").unwrap();
        assert_eq!(
            (c.case(), c.data, c.extended),
            (Case::Three, &[0xAA, 0xBB][..], true)
        );
        let c = parse_hex("00D6000000 0002 AABB 0000").unwrap();
        assert_eq!((c.case(), c.ne), (Case::Four, Some(65536)));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_hex(""), Err(ParseError::TooShort));
        assert_eq!(parse_hex("00A400"), Err(ParseError::TooShort));
        assert_eq!(parse_hex("00A4000003AABB"), Err(ParseError::LengthMismatch));
        assert_eq!(
            parse_hex("00A4000002AABBCCDD"),
            Err(ParseError::LengthMismatch)
        );
        assert_eq!(parse_hex("00A4000000AA"), Err(ParseError::LengthMismatch));
        assert_eq!(
            parse_hex("00A4000000 0000 AA"),
            Err(ParseError::ZeroExtendedLc)
        );
        assert_eq!(
            parse_hex("00A4000000 0003 AABB"),
            Err(ParseError::LengthMismatch)
        );
    }

    /// Encodings pinned byte for byte (including the traps users report: extended Le after data is
    /// two bytes, lengths are big-endian, Le 256 is `00`, Le 65536 is `0000`).
    #[test]
    fn encoding_vectors() {
        let enc = |c: Command| hex::encode_upper(c.encode_for_test());
        let data = [0xAAu8; 3];
        assert_eq!(enc(Command::new(0, 0xA4, 0, 0)), "00A40000");
        assert_eq!(enc(Command::new(0, 0xB0, 0, 0).with_ne(256)), "00B0000000");
        assert_eq!(
            enc(Command::new(0, 0xB0, 0, 0).with_ne(257)),
            "00B00000000101"
        );
        assert_eq!(
            enc(Command::new(0, 0xB0, 0, 0).with_ne(65536)),
            "00B00000000000"
        );
        assert_eq!(
            enc(Command::new(0, 0xD6, 0, 0).with_data(&data)),
            "00D6000003AAAAAA"
        );
        assert_eq!(
            enc(Command::new(0, 0xD6, 0, 0)
                .with_data(&data)
                .force_extended()),
            "00D60000000003AAAAAA"
        );
        assert_eq!(
            enc(Command::new(0, 0xD6, 0, 0)
                .with_data(&data)
                .with_ne(65536)
                .force_extended()),
            "00D60000000003AAAAAA0000"
        );
        assert_eq!(
            enc(Command::new(0, 0xD6, 0, 0).with_data(&data).with_ne(2)),
            "00D6000003AAAAAA02"
        );
        let big = [0x11u8; 300];
        let e = Command::new(0, 0xD6, 0, 0)
            .with_data(&big)
            .encode_for_test();
        assert_eq!(&e[..7], &[0, 0xD6, 0, 0, 0, 0x01, 0x2C]);
        assert_eq!(e.len(), 307);
        assert_eq!(
            Command::new(0, 0, 0, 0).with_ne(0).encode(&mut [0; 16]),
            Err(EncodeError::LengthOutOfRange)
        );
        assert_eq!(
            Command::new(0, 0, 0, 0)
                .with_data(&data)
                .encode(&mut [0; 5]),
            Err(EncodeError::BufferTooSmall)
        );
    }

    impl Command<'_> {
        fn encode_for_test(&self) -> Vec<u8> {
            let mut v = vec![0; self.encoded_len()];
            let n = self.encode(&mut v).unwrap();
            assert_eq!(n, v.len());
            v
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Command::parse(&raw);
        }

        #[test]
        fn encode_parse_round_trip(
            header in any::<[u8; 4]>(),
            data in proptest::collection::vec(any::<u8>(), 0..600),
            ne in proptest::option::of(1usize..=65536),
            force in any::<bool>(),
        ) {
            let mut c = Command::new(header[0], header[1], header[2], header[3]).with_data(&data);
            c.ne = ne;
            if force { c = c.force_extended(); }
            let raw = c.encode_for_test();
            let back = Command::parse(&raw).unwrap();
            prop_assert_eq!(back.header(), c.header());
            prop_assert_eq!(back.data, &data[..]);
            prop_assert_eq!(back.ne, ne);
            // A case-1 command has no length fields, so it cannot show that it was extended.
            let has_lengths = !data.is_empty() || ne.is_some();
            prop_assert_eq!(back.extended, c.needs_extended() && has_lengths);
        }
    }
}
