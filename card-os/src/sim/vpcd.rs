//! The vpcd bridge: shows a card to a real `pcscd` through vsmartcard's virtual reader.
//!
//! `pcscd` loads the `vpcd` driver, which listens on TCP (port 35963 for reader slot
//! `Virtual PCD 00 00`, 35964 for slot `00 01`). The card is the TCP *client*: it connects, then
//! answers whatever vpcd sends. Every message in both directions is a big-endian `u16` length
//! followed by that many bytes. From vpcd, a one-byte message is a control code (`00` power off,
//! `01` power on, `02` reset, `04` get ATR) and anything longer is a command APDU. Only get-ATR and
//! APDUs get a reply; power and reset never do.
//!
//! Two details decide whether this is fast or painfully slow:
//!
//! * vpcd sends the length and the payload in two `send()` calls with Nagle's algorithm on. If
//!   the card's kernel delays its ACK of the first segment (Linux does, ~40 ms, when it expects to
//!   piggyback the ACK on a reply), vpcd's second segment waits for it: ~44 ms per exchange.
//!   `TCP_QUICKACK` makes the kernel ACK at once, but Linux clears it again after use, so the
//!   bridge re-arms it before **every** read.
//! * each reply goes out in one `write_all` of length + payload, so it travels as one segment.
//!
//! The bridge reconnects when the connection drops (pcscd restarted or not yet started), with a
//! backoff bounded by [`Config::backoff_max`], and stops when the caller's stop flag is set: the
//! flag is checked between messages and at least every [`Config::poll_interval`], so a CLI can
//! save the card's state on SIGINT/SIGTERM.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::linux::net::TcpStreamExt;
use std::string::String;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use std::vec::Vec;

/// vpcd's TCP port for reader slot 0 (`Virtual PCD 00 00`); slot `n` listens on `35963 + n`.
pub const DEFAULT_PORT: u16 = 35963;

/// How long a frame that has started may take to finish once a stop is requested.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// vpcd control code: power off (no reply).
pub const CTRL_POWER_OFF: u8 = 0x00;
/// vpcd control code: power on (no reply).
pub const CTRL_POWER_ON: u8 = 0x01;
/// vpcd control code: warm reset (no reply).
pub const CTRL_RESET: u8 = 0x02;
/// vpcd control code: send the ATR (reply: the ATR).
pub const CTRL_GET_ATR: u8 = 0x04;

/// A card as vpcd sees it. The simulator's card implements it; so can any test double.
pub trait VirtualCard {
    /// The answer to reset. Called for every presence poll (about every 400 ms), so keep it cheap.
    fn atr(&self) -> Vec<u8>;
    /// Power has been applied to the card.
    fn power_on(&mut self);
    /// Power has been removed (also called when the connection to pcscd is lost: a card taken out
    /// of its reader loses power).
    fn power_off(&mut self);
    /// Warm reset.
    fn reset(&mut self);
    /// Processes one command APDU and returns the response APDU (data followed by `SW1 SW2`).
    fn process(&mut self, apdu: &[u8]) -> Vec<u8>;
    /// Asked after every APDU: `Some(away)` when the card has just left the reader (it was pulled
    /// out during the command). The bridge then sends no answer, closes the connection (pcscd
    /// reports the card removed), powers the card off, waits `away` and connects again (pcscd
    /// sees a card inserted and powers it up). The default never leaves.
    fn take_removal(&mut self) -> Option<Duration> {
        None
    }
}

impl<C: VirtualCard + ?Sized> VirtualCard for &mut C {
    fn atr(&self) -> Vec<u8> {
        (**self).atr()
    }
    fn power_on(&mut self) {
        (**self).power_on()
    }
    fn power_off(&mut self) {
        (**self).power_off()
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        (**self).process(apdu)
    }
    fn take_removal(&mut self) -> Option<Duration> {
        (**self).take_removal()
    }
}

/// The simulated card behind vpcd: power and reset go to the card OS, APDUs to
/// [`SimCard::transmit`](super::card::SimCard::transmit). A card whose power-up fails stays off and
/// answers APDUs with nothing, which pcscd reports as a mute card.
impl VirtualCard for super::card::SimCard {
    fn atr(&self) -> Vec<u8> {
        super::card::SimCard::atr(self).to_vec()
    }
    fn power_on(&mut self) {
        let _ = super::card::SimCard::power_on(self);
    }
    fn power_off(&mut self) {
        super::card::SimCard::power_off(self)
    }
    fn reset(&mut self) {
        super::card::SimCard::reset(self)
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.transmit(apdu)
    }
}

/// Where and how the bridge connects.
#[derive(Clone, Debug)]
pub struct Config {
    /// vpcd's address, `127.0.0.1:35963` by default. vpcd listens on all interfaces; keep the card
    /// on loopback.
    pub addr: String,
    /// First delay before reconnecting after a failed connect or a lost connection.
    pub backoff_min: Duration,
    /// Upper bound of the (doubling) reconnect delay.
    pub backoff_max: Duration,
    /// Longest time a read blocks before the stop flag is checked again.
    pub poll_interval: Duration,
    /// Re-arm `TCP_QUICKACK` before every read. Only turn this off to measure the difference.
    pub quickack: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: std::format!("127.0.0.1:{DEFAULT_PORT}"),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            poll_interval: Duration::from_millis(200),
            quickack: true,
        }
    }
}

impl Config {
    /// The default configuration for vpcd reader slot `slot` (port 35963 + slot) on loopback.
    pub fn slot(slot: u16) -> Self {
        Config {
            addr: std::format!("127.0.0.1:{}", DEFAULT_PORT.saturating_add(slot)),
            ..Config::default()
        }
    }
}

/// Something that happened on the bridge, for logging.
#[derive(Debug)]
pub enum Event<'a> {
    /// Connected to vpcd.
    Connected(&'a str),
    /// Could not connect; retrying after the delay.
    ConnectFailed(&'a io::Error, Duration),
    /// The connection ended (pcscd stopped, or a socket error).
    Disconnected(&'a io::Error),
    /// A control code was received.
    Control(u8),
    /// The card left the reader during a command (see [`VirtualCard::take_removal`]) and comes
    /// back after this long.
    Removed(Duration),
    /// An APDU was processed.
    Apdu {
        /// The command APDU.
        command: &'a [u8],
        /// The response APDU.
        response: &'a [u8],
    },
}

/// Counters of one [`serve`] run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Successful connections to vpcd.
    pub connections: u64,
    /// Command APDUs answered.
    pub apdus: u64,
    /// Get-ATR requests answered (pcscd's presence polls).
    pub atr_requests: u64,
    /// Times the card left the reader during a command.
    pub removals: u64,
}

/// Serves `card` to vpcd until `stop` is set, reconnecting whenever the connection is lost.
///
/// Returns the counters when stopped. Errors while connected end that connection only (the card
/// is powered off and the bridge reconnects); nothing is fatal except a stop request.
pub fn serve<C: VirtualCard>(card: &mut C, config: &Config, stop: &AtomicBool) -> Stats {
    serve_with(card, config, stop, |_| {})
}

/// [`serve`], calling `on_event` for connections, control codes and APDUs.
pub fn serve_with<C: VirtualCard>(
    card: &mut C,
    config: &Config,
    stop: &AtomicBool,
    mut on_event: impl FnMut(Event<'_>),
) -> Stats {
    let mut stats = Stats::default();
    let mut delay = config.backoff_min;
    while !stop.load(Ordering::Relaxed) {
        let stream = match connect(config) {
            Ok(s) => s,
            Err(e) => {
                on_event(Event::ConnectFailed(&e, delay));
                sleep_unless_stopped(delay, stop);
                delay = delay.saturating_mul(2).min(config.backoff_max);
                continue;
            }
        };
        stats.connections = stats.connections.saturating_add(1);
        on_event(Event::Connected(&config.addr));
        let mut conn = Connection {
            stream,
            quickack: config.quickack,
        };
        let ended = conn.run(card, stop, &mut stats, &mut on_event);
        let _ = conn.stream.shutdown(Shutdown::Both);
        // A card whose reader went away has no power.
        card.power_off();
        match ended {
            Ok(Ended::Stopped) => break,
            Ok(Ended::Removed(away)) => {
                stats.removals = stats.removals.saturating_add(1);
                on_event(Event::Removed(away));
                sleep_unless_stopped(away, stop);
                delay = config.backoff_min;
            }
            Err(e) => {
                on_event(Event::Disconnected(&e));
                // The connection worked, so pcscd is probably restarting: retry soon.
                delay = config.backoff_min;
                sleep_unless_stopped(delay, stop);
            }
        }
    }
    stats
}

fn connect(config: &Config) -> io::Result<TcpStream> {
    let mut last = io::Error::new(ErrorKind::InvalidInput, "address resolves to nothing");
    for addr in config.addr.as_str().to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                s.set_read_timeout(Some(config.poll_interval))?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let end = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

struct Connection {
    stream: TcpStream,
    quickack: bool,
}

/// Why a connection ended without an error.
enum Ended {
    /// The stop flag was set.
    Stopped,
    /// The card left the reader; it comes back after this long.
    Removed(Duration),
}

/// How a frame read ended.
enum Frame {
    Message(Vec<u8>),
    Stopped,
}

impl Connection {
    /// Answers vpcd until the stop flag is set or the card leaves (`Ok`), or the connection fails
    /// (`Err`).
    fn run<C: VirtualCard>(
        &mut self,
        card: &mut C,
        stop: &AtomicBool,
        stats: &mut Stats,
        on_event: &mut impl FnMut(Event<'_>),
    ) -> io::Result<Ended> {
        loop {
            let msg = match self.read_frame(stop)? {
                Frame::Message(m) => m,
                Frame::Stopped => return Ok(Ended::Stopped),
            };
            match msg.as_slice() {
                [] => {}
                [code] => {
                    on_event(Event::Control(*code));
                    match *code {
                        CTRL_POWER_OFF => card.power_off(),
                        CTRL_POWER_ON => card.power_on(),
                        CTRL_RESET => card.reset(),
                        CTRL_GET_ATR => {
                            stats.atr_requests = stats.atr_requests.saturating_add(1);
                            self.write_frame(&card.atr())?;
                        }
                        // Unknown control codes get no reply, like the reference card does.
                        _ => {}
                    }
                }
                apdu => {
                    let response = card.process(apdu);
                    stats.apdus = stats.apdus.saturating_add(1);
                    if let Some(away) = card.take_removal() {
                        // Pulled out during the command: no answer.
                        return Ok(Ended::Removed(away));
                    }
                    on_event(Event::Apdu {
                        command: apdu,
                        response: &response,
                    });
                    self.write_frame(&response)?;
                }
            }
        }
    }

    /// Reads one length-prefixed frame; returns `Stopped` if the stop flag is set while no frame
    /// has started.
    fn read_frame(&mut self, stop: &AtomicBool) -> io::Result<Frame> {
        let mut len = [0u8; 2];
        if !self.read_full(&mut len, stop, true)? {
            return Ok(Frame::Stopped);
        }
        let mut msg = std::vec![0u8; usize::from(u16::from_be_bytes(len))];
        // Once a frame has started, finish it even if a stop is requested meanwhile.
        self.read_full(&mut msg, stop, false)?;
        Ok(Frame::Message(msg))
    }

    /// Fills `buf`, tolerating read timeouts. Returns `Ok(false)` when `may_stop` and the stop flag
    /// was seen before the first byte arrived.
    fn read_full(&mut self, buf: &mut [u8], stop: &AtomicBool, may_stop: bool) -> io::Result<bool> {
        let mut filled = 0;
        let mut stop_seen: Option<Instant> = None;
        while filled < buf.len() {
            if may_stop && filled == 0 && stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            if self.quickack {
                // Not sticky on Linux: re-arm before every read (see the module docs).
                let _ = self.stream.set_quickack(true);
            }
            let rest = buf.get_mut(filled..).unwrap_or_default();
            match self.stream.read(rest) {
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "vpcd closed the connection",
                    ))
                }
                Ok(n) => filled += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    // A frame that has started gets a little time to finish after a stop request,
                    // but a stalled peer cannot keep the bridge from stopping.
                    if stop.load(Ordering::Relaxed) {
                        let since = *stop_seen.get_or_insert_with(Instant::now);
                        if since.elapsed() > STOP_GRACE {
                            return Err(io::Error::new(
                                ErrorKind::TimedOut,
                                "stopping: vpcd left a frame unfinished",
                            ));
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Sends one frame with a single write, so length and payload leave in one segment.
    fn write_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = u16::try_from(payload.len()).map_err(|_| {
            io::Error::new(
                ErrorKind::InvalidData,
                "reply longer than a vpcd frame (65535 bytes)",
            )
        })?;
        let mut frame = Vec::with_capacity(payload.len() + 2);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;

    /// Records what vpcd asked for; answers APDUs with their reversed bytes plus 9000.
    #[derive(Default)]
    struct Recorder {
        log: Vec<String>,
    }

    impl VirtualCard for Recorder {
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x80, 0x80, 0x01, 0x01]
        }
        fn power_on(&mut self) {
            self.log.push("on".into());
        }
        fn power_off(&mut self) {
            self.log.push("off".into());
        }
        fn reset(&mut self) {
            self.log.push("reset".into());
        }
        fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
            self.log.push(hex::encode_upper(apdu));
            let mut r: Vec<u8> = apdu.iter().rev().copied().collect();
            r.extend_from_slice(&[0x90, 0x00]);
            r
        }
    }

    fn send(s: &mut TcpStream, payload: &[u8]) {
        // Like vpcd: length and payload in two writes.
        s.write_all(&(payload.len() as u16).to_be_bytes()).unwrap();
        s.write_all(payload).unwrap();
    }

    fn recv(s: &mut TcpStream) -> Vec<u8> {
        let mut len = [0; 2];
        s.read_exact(&mut len).unwrap();
        let mut v = vec![0; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut v).unwrap();
        v
    }

    fn fast_config(port: u16) -> Config {
        Config {
            addr: format!("127.0.0.1:{port}"),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(40),
            poll_interval: Duration::from_millis(20),
            quickack: true,
        }
    }

    #[test]
    fn speaks_the_protocol_reconnects_and_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let card = std::thread::spawn(move || {
            let mut card = Recorder::default();
            let stats = serve(&mut card, &fast_config(port), &stop2);
            (card, stats)
        });

        // First connection: get ATR, power on (no reply), APDU, an unknown control (no reply).
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send(&mut s, &[CTRL_GET_ATR]);
        assert_eq!(recv(&mut s), [0x3B, 0x80, 0x80, 0x01, 0x01]);
        send(&mut s, &[CTRL_POWER_ON]);
        send(&mut s, &[0x7F]);
        send(&mut s, &[0x00, 0xA4, 0x04, 0x00]);
        // The APDU reply is the next frame: power-on and the unknown code were not answered.
        assert_eq!(recv(&mut s), [0x00, 0x04, 0xA4, 0x00, 0x90, 0x00]);
        drop(s); // pcscd "restarts"

        // The bridge reconnects by itself.
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send(&mut s, &[CTRL_RESET]);
        let big: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        send(&mut s, &big);
        let reply = recv(&mut s);
        assert_eq!(reply.len(), 602);
        assert_eq!(
            &reply[..3],
            &[(599u32 as u8), (598u32 as u8), (597u32 as u8)]
        );

        stop.store(true, Ordering::Relaxed);
        let (card, stats) = card.join().unwrap();
        assert_eq!(
            card.log,
            [
                "on",
                "00A40400",
                "off",
                "reset",
                &hex::encode_upper(&big),
                "off"
            ]
        );
        assert_eq!(
            stats,
            Stats {
                connections: 2,
                apdus: 2,
                atr_requests: 1,
                removals: 0
            }
        );
        // After a stop the socket is closed: vpcd sees the card removed.
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).unwrap(), 0);
    }

    /// Leaves the reader when it sees INS `EE`.
    #[derive(Default)]
    struct Leaver {
        inner: Recorder,
        leaving: bool,
    }

    impl VirtualCard for Leaver {
        fn atr(&self) -> Vec<u8> {
            self.inner.atr()
        }
        fn power_on(&mut self) {
            self.inner.power_on()
        }
        fn power_off(&mut self) {
            self.inner.power_off()
        }
        fn reset(&mut self) {
            self.inner.reset()
        }
        fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
            self.leaving = apdu.get(1) == Some(&0xEE);
            self.inner.process(apdu)
        }
        fn take_removal(&mut self) -> Option<Duration> {
            core::mem::take(&mut self.leaving).then_some(Duration::from_millis(150))
        }
    }

    #[test]
    fn a_card_that_leaves_closes_the_connection_unanswered_and_comes_back() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let t = std::thread::spawn(move || {
            let mut events = Vec::new();
            let mut card = Leaver::default();
            let stats = serve_with(&mut card, &fast_config(port), &stop2, |e| {
                if let Event::Removed(d) = e {
                    events.push(d);
                }
            });
            (card, stats, events)
        });
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send(&mut s, &[0x80, 0x01]);
        assert_eq!(recv(&mut s), [0x01, 0x80, 0x90, 0x00]);
        send(&mut s, &[0x80, 0xEE]);
        // No answer: the connection just closes.
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).unwrap(), 0);
        let gone = Instant::now();
        let (mut s, _) = listener.accept().unwrap();
        assert!(
            gone.elapsed() >= Duration::from_millis(140),
            "came back too early"
        );
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send(&mut s, &[CTRL_POWER_ON]);
        send(&mut s, &[0x80, 0x02]);
        assert_eq!(recv(&mut s), [0x02, 0x80, 0x90, 0x00]);
        stop.store(true, Ordering::Relaxed);
        let (card, stats, events) = t.join().unwrap();
        assert_eq!(events, [Duration::from_millis(150)]);
        assert_eq!((stats.connections, stats.apdus, stats.removals), (2, 3, 1));
        assert_eq!(card.inner.log, ["8001", "80EE", "off", "on", "8002", "off"]);
    }

    #[test]
    fn waits_for_vpcd_and_stops_while_waiting() {
        // Reserve a port, then free it, so nothing listens there yet.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let started = Instant::now();
        let t = std::thread::spawn(move || {
            let mut failures = 0u32;
            let mut delays = Vec::new();
            let stats = serve_with(&mut Recorder::default(), &fast_config(port), &stop2, |e| {
                if let Event::ConnectFailed(_, d) = e {
                    failures += 1;
                    delays.push(d);
                }
            });
            (stats, failures, delays)
        });
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let (stats, failures, delays) = t.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "stop was not prompt"
        );
        assert_eq!(stats.connections, 0);
        assert!(failures >= 3, "retried only {failures} times");
        // Doubling, bounded by backoff_max.
        assert_eq!(delays[0], Duration::from_millis(10));
        assert_eq!(delays[1], Duration::from_millis(20));
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(40)));
    }

    #[test]
    fn a_frame_split_across_reads_is_reassembled() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let t =
            std::thread::spawn(move || serve(&mut Recorder::default(), &fast_config(port), &stop2));
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // One byte of the length, a pause longer than the poll interval, then the rest.
        s.write_all(&[0x00]).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        s.write_all(&[0x05, 0x80, 0xCA, 0x00]).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        s.write_all(&[0x00, 0x02]).unwrap();
        assert_eq!(recv(&mut s), [0x02, 0x00, 0x00, 0xCA, 0x80, 0x90, 0x00]);
        stop.store(true, Ordering::Relaxed);
        assert_eq!(t.join().unwrap().apdus, 1);
    }
}
