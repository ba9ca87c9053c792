//! T=0 response conventions, handled for the caller (ISO 7816-3 §10.3.5, 7816-4 §5.3.4).
//!
//! * `6Cxx`: the card wants the same command again with `Le = xx` (`6C00` = 256). It is re-sent
//!   once with that Le.
//! * `61xx`: `xx` more bytes wait (`6100` = 256 or more). GET RESPONSE `00 C0 00 00 xx` is sent
//!   until the status is no longer `61xx`; the data of every part is concatenated and the last
//!   status word ends the result. A `6Cxx` answer to a GET RESPONSE re-asks with the exact length.
//!
//! GET RESPONSE always uses `CLA = 00`, as FMCOS, PBOC and LD/T 32 cards expect.
//!
//! Turn this layer off (`--no-auto-get-response`) to see the raw `61xx`/`6Cxx` answers.

use card_os::apdu::{split_response, Command, Sw};

use super::{Error, Transport};

/// Most GET RESPONSE rounds for one command (64 KiB at 256 bytes each): a card that keeps
/// answering `61xx` forever is reported instead of looping.
pub const MAX_GET_RESPONSE_ROUNDS: usize = 256;

/// Middleware that resolves `61xx` and `6Cxx` (see the module docs).
pub struct AutoGetResponse<T> {
    inner: T,
}

impl<T: Transport> AutoGetResponse<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        AutoGetResponse { inner }
    }

    /// The wrapped transport.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

fn sw_of(response: &[u8]) -> Option<Sw> {
    split_response(response).map(|(_, sw)| sw)
}

/// `00 C0 00 00 Le` for `n` bytes (1..=256; 256 is `Le = 00`).
pub fn get_response(n: usize) -> [u8; 5] {
    [0x00, 0xC0, 0x00, 0x00, (n & 0xFF) as u8]
}

impl<T: Transport> Transport for AutoGetResponse<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        let mut response = self.inner.transmit(command)?;
        if let Some(le) = sw_of(&response).and_then(Sw::exact_le) {
            // Re-send with the exact Le; a command that cannot be parsed is left alone.
            if let Ok(cmd) = Command::parse(command) {
                let again = Command {
                    ne: Some(le),
                    ..cmd
                };
                if let Ok(bytes) = again.to_vec() {
                    response = self.inner.transmit(&bytes)?;
                }
            }
        }
        let mut data: Vec<u8> = Vec::new();
        let mut rounds = 0;
        while let Some(n) = sw_of(&response).and_then(Sw::bytes_available) {
            rounds += 1;
            if rounds > MAX_GET_RESPONSE_ROUNDS {
                return Err(Error::Protocol {
                    reader: self.inner.name().into(),
                    detail: format!(
                        "the card still answers 61xx after {MAX_GET_RESPONSE_ROUNDS} GET RESPONSE \
                         commands; rerun with --no-auto-get-response -t to see the exchanges"
                    ),
                });
            }
            data.extend_from_slice(&response[..response.len() - 2]);
            response = self.inner.transmit(&get_response(n))?;
            if let Some(exact) = sw_of(&response).and_then(Sw::exact_le) {
                response = self.inner.transmit(&get_response(exact))?;
            }
        }
        if data.is_empty() {
            Ok(response)
        } else {
            data.extend_from_slice(&response);
            Ok(data)
        }
    }

    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        self.inner.reset()
    }

    fn reconnect(&mut self, wait: std::time::Duration) -> Result<Vec<u8>, Error> {
        self.inner.reconnect(wait)
    }

    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
    fn fix_random(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.inner.fix_random(bytes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A transport that expects exact commands and plays back canned responses.
    pub(crate) struct Scripted {
        pub(crate) exchanges: VecDeque<(Vec<u8>, Vec<u8>)>,
    }

    pub(crate) fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    impl Scripted {
        pub(crate) fn new(pairs: &[(&str, &str)]) -> Self {
            Scripted {
                exchanges: pairs.iter().map(|(c, r)| (h(c), h(r))).collect(),
            }
        }
    }

    impl Transport for Scripted {
        fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
            let (want, response) = self
                .exchanges
                .pop_front()
                .unwrap_or_else(|| panic!("unexpected command {}", hex::encode_upper(command)));
            assert_eq!(
                hex::encode_upper(command),
                hex::encode_upper(&want),
                "wrong command sent"
            );
            Ok(response)
        }
        fn reset(&mut self) -> Result<Vec<u8>, Error> {
            Ok(vec![0x3B, 0x00])
        }
        fn atr(&self) -> &[u8] {
            &[0x3B, 0x00]
        }
        fn name(&self) -> &str {
            "scripted"
        }
    }

    fn run(pairs: &[(&str, &str)], command: &str) -> Vec<u8> {
        let mut t = AutoGetResponse::new(Scripted::new(pairs));
        let r = t.transmit(&h(command)).unwrap();
        assert!(t.inner.exchanges.is_empty(), "not every exchange happened");
        r
    }

    #[test]
    fn passes_plain_responses_through() {
        assert_eq!(run(&[("00A40000", "9000")], "00A40000"), h("9000"));
        assert_eq!(run(&[("00B0000004", "6A82")], "00B0000004"), h("6A82"));
    }

    #[test]
    fn get_response_loop_concatenates() {
        let r = run(
            &[
                ("00A4040002 3F00", "6105"),
                ("00C0000005", "0102030405 6103"),
                ("00C0000003", "060708 9000"),
            ],
            "00A40400023F00",
        );
        assert_eq!(r, h("0102030405060708 9000"));
    }

    #[test]
    fn six_one_hundred_means_256() {
        let big = "AA".repeat(256);
        let r = run(
            &[
                ("80CA010000", "6100"),
                ("00C0000000", &format!("{big}6102")),
                ("00C0000002", "BBCC9000"),
            ],
            "80CA010000",
        );
        assert_eq!(r.len(), 258 + 2);
        assert_eq!(&r[256..], &h("BBCC9000")[..]);
    }

    #[test]
    fn wrong_le_is_resent_with_the_exact_length() {
        // Case 2 with a wrong Le.
        let r = run(
            &[("00B0000010", "6C04"), ("00B0000004", "DEADBEEF9000")],
            "00B0000010",
        );
        assert_eq!(r, h("DEADBEEF9000"));
        // 6C00 means 256.
        let full = "11".repeat(256);
        let r = run(
            &[
                ("00B0000001", "6C00"),
                ("00B0000000", &format!("{full}9000")),
            ],
            "00B0000001",
        );
        assert_eq!(r.len(), 258);
        // Case 1 answered with 6Cxx gains an Le.
        run(
            &[
                ("00840000", "6C08"),
                ("0084000008", "0102030405060708 9000"),
            ],
            "00840000",
        );
        // Re-sent only once, even if the card insists.
        assert_eq!(
            run(
                &[("00B0000010", "6C04"), ("00B0000004", "6C02")],
                "00B0000010"
            ),
            h("6C02")
        );
    }

    #[test]
    fn wrong_le_then_more_data() {
        let r = run(
            &[
                ("00B0000010", "6C04"),
                ("00B0000004", "0102 6102"),
                ("00C0000002", "6C01"),
                ("00C0000001", "03 9000"),
            ],
            "00B0000010",
        );
        assert_eq!(r, h("010203 9000"));
    }

    #[test]
    fn error_after_partial_data_keeps_the_data_and_the_final_status() {
        let r = run(
            &[("8050000000", "6102"), ("00C0000002", "6F00")],
            "8050000000",
        );
        assert_eq!(r, h("6F00"));
        let r = run(
            &[("8050000000", "AB6102"), ("00C0000002", "6F00")],
            "8050000000",
        );
        assert_eq!(r, h("AB6F00"));
    }

    #[test]
    fn unparseable_command_with_6c_is_not_resent() {
        assert_eq!(run(&[("00A4", "6C10")], "00A4"), h("6C10"));
    }

    #[test]
    fn endless_61xx_is_an_error() {
        struct Endless;
        impl Transport for Endless {
            fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, Error> {
                Ok(vec![0x61, 0x01])
            }
            fn reset(&mut self) -> Result<Vec<u8>, Error> {
                Ok(vec![])
            }
            fn atr(&self) -> &[u8] {
                &[]
            }
            fn name(&self) -> &str {
                "endless"
            }
        }
        let err = AutoGetResponse::new(Endless)
            .transmit(&[0, 0xC0, 0, 0, 1])
            .unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
    }
}
