//! A card that gets pulled out of the reader in the middle of a command, for people who build
//! terminals: its memory is cut at a chosen (or random) NVM write of a chosen command, the card
//! stops answering, leaves the reader for a while and comes back, and its power-up runs the
//! journal recovery as a real card's does.
//!
//! [`TearingCard`] wraps a [`SimCard`] and is a [`VirtualCard`]: served on vpcd
//! ([`super::vpcd::serve_with`]) it asks the bridge, through [`VirtualCard::take_removal`], to
//! drop the connection without an answer (pcscd reports the card removed), to wait, and to
//! connect again (pcscd sees a card inserted and powers it up).
//!
//! A [`TearSpec`] says which commands to tear (CLA, INS), how many to let through first, how many
//! to tear, and where: at page write `write` of the command after `byte` bytes of it, or at a
//! random point. The random point is drawn among the writes the command **would** make: the
//! card replays the current session (every APDU since its last power-up or reset, from a copy of
//! its memory as it was then and the same random source) on a copy and records the command's
//! writes, then picks one write uniformly and a byte offset in it (0 to its length) uniformly,
//! from a seeded generator so a run can be repeated.

use super::card::{SimCard, SimRng};
use super::nvm::{MemoryNvm, PowerCut};
use super::vpcd::VirtualCard;
use std::format;
use std::string::{String, ToString};
use std::time::Duration;
use std::vec::Vec;

/// Where to cut a torn command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TearAt {
    /// At this page write of the command (0 = its first), after this many bytes of it.
    Cut(PowerCut),
    /// At a random write and byte (see the module docs).
    Random,
}

/// Which commands to tear and where. Text form (for `citizencard sim serve --tear`):
/// comma-separated `ins=HH` (required), `cla=HH`, `write=N` and `byte=B` (default 0) or `random`,
/// `after=N` (default 0), `times=N` or `times=all` (default 1); e.g. `ins=54,write=2,byte=3`,
/// `ins=54,random`, `cla=80,ins=52,random,after=1,times=all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TearSpec {
    /// Only commands with this CLA (any CLA if `None`).
    pub cla: Option<u8>,
    /// Only commands with this INS.
    pub ins: u8,
    /// Where.
    pub at: TearAt,
    /// Matching commands to let through before the first tear.
    pub after: u32,
    /// How many matching commands to tear (`None`: every one after `after`).
    pub times: Option<u32>,
}

fn hex_byte(key: &str, v: &str) -> Result<u8, String> {
    let t = v.trim_start_matches("0x");
    if t.len() > 2 || t.is_empty() {
        return Err(format!("{key}={v}: one byte in hex, e.g. {key}=54"));
    }
    u8::from_str_radix(t, 16).map_err(|_| format!("{key}={v}: one byte in hex, e.g. {key}=54"))
}

fn number<T: core::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{key}={v}: a decimal number is expected"))
}

impl core::str::FromStr for TearSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (mut cla, mut ins, mut write, mut byte, mut random) = (None, None, None, None, false);
        let (mut after, mut times) = (0, Some(1));
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (part, None),
            };
            match (key, value) {
                ("random", None) => random = true,
                ("cla", Some(v)) => cla = Some(hex_byte(key, v)?),
                ("ins", Some(v)) => ins = Some(hex_byte(key, v)?),
                ("write", Some(v)) => write = Some(number::<u64>(key, v)?),
                ("byte", Some(v)) => byte = Some(number::<usize>(key, v)?),
                ("after", Some(v)) => after = number(key, v)?,
                ("times", Some("all")) => times = None,
                ("times", Some(v)) => match number(key, v)? {
                    0 => return Err("times=0 tears nothing; give 1 or more, or all".into()),
                    n => times = Some(n),
                },
                ("random" | "cla" | "ins" | "write" | "byte" | "after" | "times", _) => {
                    return Err(format!(
                        "{part}: `random` takes no value; cla, ins, write, byte, after and times \
                         need one (key=value)"
                    ))
                }
                _ => {
                    return Err(format!(
                        "{part}: unknown; a tear is ins=HH with write=N[,byte=B] or random, and \
                         optionally cla=HH, after=N, times=N|all"
                    ))
                }
            }
        }
        let ins =
            ins.ok_or("which command? ins=HH is required (e.g. ins=54 for DEBIT FOR PURCHASE)")?;
        let at = match (random, write) {
            (true, None) if byte.is_none() => TearAt::Random,
            (true, _) => return Err("random and write=/byte= exclude each other".into()),
            (false, Some(write)) => TearAt::Cut(PowerCut {
                write,
                bytes: byte.unwrap_or(0),
            }),
            (false, None) => {
                return Err("where? give write=N (and byte=B) or random".into());
            }
        };
        Ok(TearSpec {
            cla,
            ins,
            at,
            after,
            times,
        })
    }
}

impl core::fmt::Display for TearSpec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if let Some(cla) = self.cla {
            write!(f, "cla={cla:02X},")?;
        }
        write!(f, "ins={:02X},", self.ins)?;
        match self.at {
            TearAt::Cut(c) => write!(f, "write={},byte={}", c.write, c.bytes)?,
            TearAt::Random => write!(f, "random")?,
        }
        if self.after > 0 {
            write!(f, ",after={}", self.after)?;
        }
        match self.times {
            Some(1) => Ok(()),
            Some(n) => write!(f, ",times={n}"),
            None => write!(f, ",times=all"),
        }
    }
}

/// What the tearing card did with a matching command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TearEvent {
    /// The power was cut: the card did not answer and leaves the reader.
    Torn {
        /// The command.
        command: Vec<u8>,
        /// Where.
        cut: PowerCut,
        /// The page writes the command makes uncut, when known (random mode).
        writes: Option<usize>,
    },
    /// The command ran to its end: the cut was past its last write (or it writes nothing).
    Untorn {
        /// The command.
        command: Vec<u8>,
        /// Why.
        reason: String,
    },
}

/// The most APDUs of one session the card keeps for replays (random mode).
const MAX_SESSION: usize = 100_000;

/// The session since the last power-up or reset: what a replay needs.
struct Session {
    base: MemoryNvm,
    rng: Option<SimRng>,
    apdus: Vec<Vec<u8>>,
    overflowed: bool,
}

/// A [`SimCard`] that tears the commands its [`TearSpec`]s name (see the module docs).
pub struct TearingCard {
    card: SimCard,
    specs: Vec<(TearSpec, u32, u32)>,
    state: u64,
    away: Duration,
    session: Session,
    removal: Option<Duration>,
    events: Vec<TearEvent>,
    observer: Option<Observer>,
}

type Observer = std::boxed::Box<dyn FnMut(&TearEvent) + Send>;

impl TearingCard {
    /// Tears `card`'s commands as `specs` say, drawing random points from `seed`, and stays out
    /// of the reader for `away` after each tear.
    pub fn new(card: SimCard, specs: &[TearSpec], seed: u64, away: Duration) -> Self {
        let mut t = TearingCard {
            session: Session {
                base: card.nvm().snapshot(),
                rng: None,
                apdus: Vec::new(),
                overflowed: false,
            },
            card,
            specs: specs.iter().map(|s| (*s, 0, 0)).collect(),
            state: seed,
            away,
            removal: None,
            events: Vec::new(),
            observer: None,
        };
        t.start_session();
        t
    }

    /// Hands every [`TearEvent`] to `f` as it happens (instead of keeping it for
    /// [`TearingCard::take_events`]), e.g. to log it while the card is served.
    pub fn on_event(mut self, f: impl FnMut(&TearEvent) + Send + 'static) -> Self {
        self.observer = Some(std::boxed::Box::new(f));
        self
    }

    fn event(&mut self, e: TearEvent) {
        match &mut self.observer {
            Some(f) => f(&e),
            None => self.events.push(e),
        }
    }

    /// The card.
    pub fn card(&self) -> &SimCard {
        &self.card
    }

    /// The card, mutably.
    pub fn card_mut(&mut self) -> &mut SimCard {
        &mut self.card
    }

    /// Gives the card back.
    pub fn into_card(self) -> SimCard {
        self.card
    }

    /// What happened since the last call.
    pub fn take_events(&mut self) -> Vec<TearEvent> {
        core::mem::take(&mut self.events)
    }

    /// Commands torn so far.
    pub fn tears(&self) -> u32 {
        self.specs.iter().map(|(_, _, torn)| torn).sum()
    }

    fn start_session(&mut self) {
        self.session.base = self.card.nvm().snapshot();
        self.session.rng = self.card.card().map(|c| c.rng_mut().clone());
        self.session.apdus.clear();
        self.session.overflowed = false;
    }

    /// SplitMix64.
    fn next_random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_random() % n
        }
    }

    /// The lengths of the page writes `command` makes now, from a replay of the session on a copy.
    fn dry_run(&self, command: &[u8]) -> Result<Vec<usize>, String> {
        if self.session.overflowed {
            return Err(format!(
                "more than {MAX_SESSION} APDUs since the card's last reset: too long to replay"
            ));
        }
        let rng = self
            .session
            .rng
            .clone()
            .ok_or("the card was not powered when the session began")?;
        let mut copy = SimCard::from_nvm_with_rng(self.session.base.snapshot(), rng)
            .map_err(|(_, e)| format!("the copy does not power up: {e:?}"))?;
        for apdu in &self.session.apdus {
            copy.transmit(apdu);
        }
        copy.nvm_mut().start_recording();
        copy.transmit(command);
        Ok(copy.nvm_mut().take_recording())
    }

    /// The spec that tears `command` now (its index and where), counting the command as seen.
    fn matching(&mut self, command: &[u8]) -> Option<(usize, TearAt)> {
        let (cla, ins) = (*command.first()?, *command.get(1)?);
        for (index, (spec, seen, torn)) in self.specs.iter_mut().enumerate() {
            if spec.ins != ins || spec.cla.is_some_and(|c| c != cla) {
                continue;
            }
            if spec.times.is_some_and(|t| *torn >= t) {
                continue;
            }
            *seen += 1;
            if *seen <= spec.after {
                return None;
            }
            return Some((index, spec.at));
        }
        None
    }

    fn remember(&mut self, command: &[u8]) {
        if self.session.apdus.len() >= MAX_SESSION {
            self.session.overflowed = true;
        } else {
            self.session.apdus.push(command.to_vec());
        }
    }

    fn tear(&mut self, command: &[u8], spec: usize, at: TearAt) -> Option<Vec<u8>> {
        let (cut, writes) = match at {
            TearAt::Cut(cut) => (cut, None),
            TearAt::Random => {
                let lengths = match self.dry_run(command) {
                    Ok(l) => l,
                    Err(reason) => {
                        self.event(TearEvent::Untorn {
                            command: command.to_vec(),
                            reason,
                        });
                        return None;
                    }
                };
                if lengths.is_empty() {
                    self.event(TearEvent::Untorn {
                        command: command.to_vec(),
                        reason: "the command writes nothing (refused?)".to_string(),
                    });
                    return None;
                }
                let write = self.below(lengths.len() as u64);
                let len = lengths.get(write as usize).copied().unwrap_or(0);
                let bytes = self.below(len as u64 + 1) as usize;
                (PowerCut { write, bytes }, Some(lengths.len()))
            }
        };
        self.card.nvm_mut().arm_cut(cut);
        let response = self.card.transmit(command);
        if self.card.is_on() {
            // The command ended before the write the cut was armed for.
            self.card.nvm_mut().disarm_cut();
            self.event(TearEvent::Untorn {
                command: command.to_vec(),
                reason: format!(
                    "it made fewer than {} page writes, so the cut at write {} never came",
                    cut.write + 1,
                    cut.write
                ),
            });
            self.remember(command);
            return Some(response);
        }
        if let Some((_, _, torn)) = self.specs.get_mut(spec) {
            *torn += 1;
        }
        self.event(TearEvent::Torn {
            command: command.to_vec(),
            cut,
            writes,
        });
        self.removal = Some(self.away);
        Some(Vec::new())
    }
}

impl VirtualCard for TearingCard {
    fn atr(&self) -> Vec<u8> {
        self.card.atr().to_vec()
    }

    fn power_on(&mut self) {
        let _ = self.card.power_on();
        self.start_session();
    }

    fn power_off(&mut self) {
        self.card.power_off();
    }

    fn reset(&mut self) {
        self.card.reset();
        self.start_session();
    }

    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        if self.card.is_on() {
            if let Some((spec, at)) = self.matching(apdu) {
                if let Some(response) = self.tear(apdu, spec, at) {
                    return response;
                }
            }
        }
        self.remember(apdu);
        self.card.transmit(apdu)
    }

    fn take_removal(&mut self) -> Option<Duration> {
        self.removal.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::HistoricalBytes;
    use crate::nvm::Geometry;

    fn spec(s: &str) -> TearSpec {
        s.parse().unwrap()
    }

    #[test]
    fn spec_syntax() {
        assert_eq!(
            spec("ins=54,write=2,byte=3"),
            TearSpec {
                cla: None,
                ins: 0x54,
                at: TearAt::Cut(PowerCut { write: 2, bytes: 3 }),
                after: 0,
                times: Some(1)
            }
        );
        let r = spec(" cla=80 , ins=0x52, random, after=1, times=all ");
        assert_eq!(
            (r.cla, r.ins, r.at, r.after, r.times),
            (Some(0x80), 0x52, TearAt::Random, 1, None)
        );
        assert_eq!(
            spec("ins=54,write=0").at,
            TearAt::Cut(PowerCut { write: 0, bytes: 0 })
        );
        assert_eq!(spec("ins=54,random,times=3").times, Some(3));
        for (text, shown) in [
            ("ins=54,write=2,byte=3", "ins=54,write=2,byte=3"),
            (
                "cla=80,ins=52,random,after=1,times=all",
                "cla=80,ins=52,random,after=1,times=all",
            ),
        ] {
            assert_eq!(spec(text).to_string(), shown);
            assert_eq!(spec(shown), spec(text));
        }
        for (bad, says) in [
            ("write=1", "ins=HH is required"),
            ("ins=54", "write=N"),
            ("ins=54,random,write=1", "exclude"),
            ("ins=5454,random", "one byte in hex"),
            ("ins=zz,random", "one byte in hex"),
            ("ins=54,write=-1", "decimal number"),
            ("ins=54,random=1", "takes no value"),
            ("ins=54,random,times=0", "tears nothing"),
            ("ins=54,random,colour=red", "unknown"),
        ] {
            let e = bad.parse::<TearSpec>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// A card with one binary EF (no keys: everything allowed).
    fn card_with_ef() -> SimCard {
        let mut c =
            SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou([0, 0, 0, 9])).unwrap();
        let r = c.transmit(&hex::decode("80E0000107280010F0F0FFFF").unwrap());
        assert_eq!(r, [0x90, 0x00]);
        c
    }

    fn update(v: u8) -> Vec<u8> {
        let mut c = hex::decode("00D6810004").unwrap();
        c.extend_from_slice(&[v; 4]);
        c
    }

    fn read(card: &mut TearingCard) -> Vec<u8> {
        card.process(&hex::decode("00B0810004").unwrap())
    }

    #[test]
    fn tears_the_chosen_command_once_then_comes_back() {
        let mut t = TearingCard::new(
            card_with_ef(),
            &[spec("ins=D6,write=0,byte=0,after=1")],
            1,
            Duration::from_millis(5),
        );
        assert_eq!(
            t.process(&update(1)),
            [0x90, 0x00],
            "after=1 lets the first through"
        );
        assert_eq!(t.take_removal(), None);
        assert_eq!(t.process(&update(2)), Vec::<u8>::new(), "torn: no answer");
        assert_eq!(t.take_removal(), Some(Duration::from_millis(5)));
        assert_eq!(t.take_removal(), None);
        assert!(!t.card().is_on());
        assert!(matches!(
            t.take_events().as_slice(),
            [TearEvent::Torn { writes: None, .. }]
        ));
        // Back in the reader: power-up recovers, the write did not happen, no more tears.
        t.power_on();
        assert_eq!(read(&mut t), [1, 1, 1, 1, 0x90, 0x00]);
        assert_eq!(t.process(&update(3)), [0x90, 0x00]);
        assert_eq!(read(&mut t), [3, 3, 3, 3, 0x90, 0x00]);
        assert_eq!(t.tears(), 1);
    }

    #[test]
    fn a_cut_past_the_last_write_is_disarmed() {
        let mut t = TearingCard::new(
            card_with_ef(),
            &[spec("ins=D6,write=99")],
            1,
            Duration::ZERO,
        );
        assert_eq!(t.process(&update(4)), [0x90, 0x00]);
        assert!(matches!(
            t.take_events().as_slice(),
            [TearEvent::Untorn { .. }]
        ));
        assert_eq!(t.take_removal(), None);
        // The cut is not left armed for a later command.
        assert_eq!(t.process(&update(5)), [0x90, 0x00]);
        assert_eq!(read(&mut t), [5, 5, 5, 5, 0x90, 0x00]);
    }

    #[test]
    fn random_cuts_fall_inside_the_writes_and_repeat_with_the_seed() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40u64 {
            let run = |seed| {
                let mut t = TearingCard::new(
                    card_with_ef(),
                    &[spec("ins=D6,random,times=all")],
                    seed,
                    Duration::ZERO,
                );
                // A session to replay: a read, then the torn update.
                read(&mut t);
                assert_eq!(t.process(&update(7)), Vec::<u8>::new(), "seed {seed}");
                let ev = t.take_events();
                t.power_on();
                let after = read(&mut t);
                (ev, after)
            };
            let (ev, after) = run(seed);
            assert_eq!(run(seed).0, ev, "same seed, same cut");
            let [TearEvent::Torn {
                cut,
                writes: Some(n),
                ..
            }] = ev.as_slice()
            else {
                panic!("{ev:?}")
            };
            assert!((cut.write as usize) < *n);
            seen.insert((cut.write, cut.bytes));
            // Before or after, never a mix.
            assert!(
                after == [0, 0, 0, 0, 0x90, 0x00] || after == [7, 7, 7, 7, 0x90, 0x00],
                "{after:?}"
            );
        }
        assert!(seen.len() > 3, "random cuts vary: {seen:?}");
    }

    #[test]
    fn a_command_that_writes_nothing_is_not_torn() {
        let mut t = TearingCard::new(card_with_ef(), &[spec("ins=B0,random")], 1, Duration::ZERO);
        assert_eq!(read(&mut t), [0, 0, 0, 0, 0x90, 0x00]);
        assert!(
            matches!(t.take_events().as_slice(), [TearEvent::Untorn { reason, .. }] if reason.contains("writes nothing"))
        );
        assert_eq!(t.tears(), 0);
    }
}
