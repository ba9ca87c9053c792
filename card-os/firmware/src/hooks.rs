//! Test and measurement hooks (`test-hooks` feature): never in the served card.
//!
//! * Control `20` reports the SysTick ticks of the last `Card::process` and, separately, the ticks
//!   spent waiting for the RNG peripheral inside it. SysTick runs on the core clock (16 MHz in
//!   QEMU); under `-icount shift=N` every instruction advances virtual time by 2^N ns, so the bench
//!   turns ticks into instructions, and the RNG's wait (virtual time, not work) is taken out.
//! * Control `12` makes the card's random source replay given bytes, as the simulator's fixed
//!   generator does, so the public test vectors' challenges and card randoms can be fixed.

use crate::link::{Link, CTRL_BENCH, CTRL_FIX_RANDOM};
use core::cell::RefCell;
use core::convert::Infallible;
use cortex_m::interrupt::{self, Mutex};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;

/// Most bytes a replay holds (the vectors fix at most 8).
const REPLAY_MAX: usize = 32;

struct Replay {
    bytes: [u8; REPLAY_MAX],
    len: usize,
    position: usize,
}

/// `None`: the hardware RNG; `Some`: replay these bytes (all zeros when empty).
static REPLAY: Mutex<RefCell<Option<Replay>>> = Mutex::new(RefCell::new(None));

/// Ticks spent in the hardware RNG since the last `measure` began.
static RNG_TICKS: Mutex<RefCell<u32>> = Mutex::new(RefCell::new(0));

fn now() -> u32 {
    SYST::get_current()
}

/// SysTick counts down and wraps at 2^24.
fn elapsed(start: u32, end: u32) -> u32 {
    start.wrapping_sub(end) & 0x00FF_FFFF
}

/// Fills `out` from the replay when one is set; `false` when the hardware RNG must.
pub fn replay_random(out: &mut [u8]) -> bool {
    interrupt::free(|cs| {
        let mut replay = REPLAY.borrow(cs).borrow_mut();
        let Some(r) = replay.as_mut() else {
            return false;
        };
        for byte in out.iter_mut() {
            if r.position >= r.len {
                r.position = 0;
            }
            *byte = r
                .bytes
                .get(r.position)
                .copied()
                .filter(|_| r.len > 0)
                .unwrap_or(0);
            r.position = r.position.saturating_add(1);
        }
        true
    })
}

/// Runs the hardware RNG's `fill`, counting its ticks apart.
pub fn hardware_random(fill: impl FnOnce()) {
    let start = now();
    fill();
    let spent = elapsed(start, now());
    interrupt::free(|cs| {
        let mut ticks = RNG_TICKS.borrow(cs).borrow_mut();
        *ticks = ticks.saturating_add(spent);
    });
}

pub struct Meter {
    last: u32,
    last_rng: u32,
}

impl Meter {
    pub fn new(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(0x00FF_FFFF);
        syst.clear_current();
        syst.enable_counter();
        Meter {
            last: 0,
            last_rng: 0,
        }
    }

    /// Runs `f` (one `Card::process`), keeping its ticks for control `20`. One command must take
    /// under 2^24 ticks (16.7 M instructions at `-icount shift=6`).
    pub fn measure<T>(&mut self, f: impl FnOnce() -> T) -> T {
        interrupt::free(|cs| *RNG_TICKS.borrow(cs).borrow_mut() = 0);
        let start = now();
        let out = f();
        self.last = elapsed(start, now());
        self.last_rng = interrupt::free(|cs| *RNG_TICKS.borrow(cs).borrow());
        out
    }

    /// The private controls `12` and `20`.
    pub fn control<U>(&mut self, code: u8, link: &mut Link<U>)
    where
        U: embedded_io::Read<Error = Infallible> + embedded_io::Write<Error = Infallible>,
    {
        match code {
            CTRL_BENCH => {
                let mut reply = [0u8; 8];
                let (total, rng) = reply.split_at_mut(4);
                total.copy_from_slice(&self.last.to_be_bytes());
                rng.copy_from_slice(&self.last_rng.to_be_bytes());
                link.send(&reply);
            }
            CTRL_FIX_RANDOM => {
                let len = link.read_len();
                let mut replay = Replay {
                    bytes: [0; REPLAY_MAX],
                    len: len.min(REPLAY_MAX),
                    position: 0,
                };
                link.read_exact(replay.bytes.get_mut(..replay.len).unwrap_or_default());
                link.skip(len.saturating_sub(REPLAY_MAX));
                interrupt::free(|cs| *REPLAY.borrow(cs).borrow_mut() = Some(replay));
                link.send(&[0x00]);
            }
            _ => {}
        }
    }
}
