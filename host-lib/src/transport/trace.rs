//! APDU tracing: one line per exchange, written as it happens (stderr for `-t/--trace`).
//!
//! ```text
//! trace: > 00 A4 04 00 02 3F 00 [7]  < 61 0E [0+2]  85 µs  610E more data available (GET RESPONSE)
//! trace: > 00 C0 00 00 0E [5]  < 6F 0C 84 ... 90 00 [14+2]  70 µs  9000 success
//! trace: reset  < ATR 3B 88 80 01 ... [13]  1.2 ms
//! ```
//!
//! Placed next to the card (inside [`super::t0::AutoGetResponse`]), it shows every command that
//! really went out, including the internal GET RESPONSE and `6Cxx` re-sends.

use std::io::Write;
use std::time::{Duration, Instant};

use card_os::apdu::split_response;

use super::{Error, Transport};
use crate::hexfmt::spaced;

/// Tracing middleware.
pub struct Trace<T> {
    inner: T,
    out: Box<dyn Write + Send>,
}

impl<T: Transport> Trace<T> {
    /// Traces `inner` to `out`.
    pub fn new(inner: T, out: Box<dyn Write + Send>) -> Self {
        Trace { inner, out }
    }

    /// Traces `inner` to stderr.
    pub fn stderr(inner: T) -> Self {
        Self::new(inner, Box::new(std::io::stderr()))
    }

    fn line(&mut self, text: &str) {
        // A trace that cannot be written must not break the exchange.
        let _ = writeln!(self.out, "trace: {text}");
        let _ = self.out.flush();
    }
}

/// A duration as people read it: `85 µs`, `1.2 ms`, `2.50 s`.
pub fn human_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The trace line of one exchange (without the `trace: ` prefix).
pub fn format_exchange(
    command: &[u8],
    result: &Result<Vec<u8>, Error>,
    elapsed: Duration,
) -> String {
    let sent = match command {
        // WRITE KEY without secure messaging (`80 D4`, FMCOS 2.0 §7.12): its data is a key
        // record in clear — during personalization the transport key, under which every other
        // key then travels. A trace never shows it.
        [cla, 0xD4, p1, p2, lc, data @ ..] if cla & 0x0C == 0 && !data.is_empty() => format!(
            "> {} [{}]  (key record in clear: {} bytes not traced)",
            spaced(&[*cla, 0xD4, *p1, *p2, *lc]),
            command.len(),
            data.len()
        ),
        _ => format!("> {} [{}]", spaced(command), command.len()),
    };
    match result {
        Ok(response) => match split_response(response) {
            Some((data, sw)) => format!(
                "{sent}  < {} [{}+2]  {}  {:04X} {}",
                spaced(response),
                data.len(),
                human_duration(elapsed),
                sw.0,
                sw.meaning()
            ),
            None => format!(
                "{sent}  < {} [{}]  {}  (not a response APDU)",
                spaced(response),
                response.len(),
                human_duration(elapsed)
            ),
        },
        Err(e) => format!("{sent}  ! {}  {e}", human_duration(elapsed)),
    }
}

impl<T: Transport> Transport for Trace<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, Error> {
        let start = Instant::now();
        let result = self.inner.transmit(command);
        let line = format_exchange(command, &result, start.elapsed());
        self.line(&line);
        result
    }

    fn reset(&mut self) -> Result<Vec<u8>, Error> {
        let start = Instant::now();
        let result = self.inner.reset();
        let elapsed = human_duration(start.elapsed());
        let line = match &result {
            Ok(atr) => format!("reset  < ATR {} [{}]  {elapsed}", spaced(atr), atr.len()),
            Err(e) => format!("reset  ! {elapsed}  {e}"),
        };
        self.line(&line);
        result
    }

    fn reconnect(&mut self, wait: Duration) -> Result<Vec<u8>, Error> {
        let start = Instant::now();
        let result = self.inner.reconnect(wait);
        let elapsed = human_duration(start.elapsed());
        let line = match &result {
            Ok(atr) => format!(
                "reconnect  < ATR {} [{}]  {elapsed}",
                spaced(atr),
                atr.len()
            ),
            Err(e) => format!("reconnect  ! {elapsed}  {e}"),
        };
        self.line(&line);
        result
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
mod tests {
    use super::super::t0::tests::{h, Scripted};
    use super::super::t0::AutoGetResponse;
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_line_per_wire_exchange_including_internal_ones() {
        let sink = Shared::default();
        let scripted = Scripted::new(&[("00A40400023F00", "6102"), ("00C0000002", "AABB9000")]);
        let mut t = AutoGetResponse::new(Trace::new(scripted, Box::new(sink.clone())));
        assert_eq!(t.transmit(&h("00A40400023F00")).unwrap(), h("AABB9000"));
        t.reset().unwrap();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("trace: > 00 A4 04 00 02 3F 00 [7]  < 61 02 [0+2]  "),
            "{text}"
        );
        assert!(
            lines[0].ends_with("6102 more data available (GET RESPONSE)"),
            "{text}"
        );
        assert!(lines[1].starts_with("trace: > 00 C0 00 00 02 [5]  < AA BB 90 00 [2+2]  "));
        assert!(lines[1].ends_with("9000 success"), "{text}");
        assert!(
            lines[1].contains(" µs") || lines[1].contains(" ms"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("trace: reset  < ATR 3B 00 [2]"),
            "{text}"
        );
    }

    #[test]
    fn a_key_written_in_clear_is_not_traced() {
        let key = "0102030405060708090A0B0C0D0E0F10";
        let plain = h(&format!("80D4010015F9F0AA0A33{key}"));
        let line = format_exchange(&plain, &Ok(h("9000")), Duration::from_micros(90));
        assert!(
            line.starts_with("> 80 D4 01 00 15 [26]  (key record in clear: 21 bytes not traced)"),
            "{line}"
        );
        assert!(!line.replace(' ', "").contains("0102030405"), "{line}");
        // Under secure messaging the data is a cryptogram: traced as it is.
        let protected = h("84D401001C00112233445566778899AABBCCDDEEFF");
        let line = format_exchange(&protected, &Ok(h("9000")), Duration::from_micros(90));
        assert!(line.contains("00 11 22 33"), "{line}");
    }

    #[test]
    fn errors_and_odd_responses() {
        let err = Err(Error::CardRemoved { reader: "R".into() });
        let line = format_exchange(&[0, 0xB0, 0, 0], &err, Duration::from_micros(1500));
        assert!(
            line.starts_with("> 00 B0 00 00 [4]  ! 1.5 ms  the card was removed"),
            "{line}"
        );
        let line = format_exchange(&[0, 0xB0, 0, 0], &Ok(vec![0x90]), Duration::from_micros(3));
        assert_eq!(
            line,
            "> 00 B0 00 00 [4]  < 90 [1]  3 µs  (not a response APDU)"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_micros(85)), "85 µs");
        assert_eq!(human_duration(Duration::from_micros(1250)), "1.2 ms");
        assert_eq!(human_duration(Duration::from_millis(2500)), "2.50 s");
    }
}
