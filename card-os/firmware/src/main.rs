//! The citizen card's OS as firmware for an nRF51822 (Cortex-M0, thumbv6m): QEMU's `microbit`
//! machine with 32 KiB of RAM (`-global nrf51-soc.sram-size=32768`, the nRF51822-xxAC).
//!
//! The same card OS as the simulator's ([`card_os::card::Card`]), over the chip's peripherals: the
//! RNG peripheral is the card's random source, the UART carries APDUs in vpcd's framing
//! (`link.rs`), and the NVM image lives in RAM (`ram_nvm.rs`), loaded and saved by the host
//! bridge (`citizencard sim serve --mcu`).
//!
//! With the `test-hooks` feature (tests and `scripts/mcu-bench.sh`, never the served card) the
//! link has two more controls: the cost of the last APDU in SysTick ticks, and random bytes to
//! replay instead of the RNG's (so the public test vectors' challenges can be fixed).
//!
//! No heap, no `unsafe` here: cortex-m-rt starts the chip (and paints the stack, so that
//! `scripts/mcu-bench.sh` can find its high-water mark), nrf51-hal drives the UART and the RNG.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod link;
mod ram_nvm;

use card_os::apdu::{COMMAND_BUFFER_SIZE, MAX_RESPONSE_DATA};
use card_os::card::Card;
use core::cell::RefCell;
use cortex_m::interrupt::{self, Mutex};
use link::Link;
use nrf51_hal::gpio::{p0, Level};
use nrf51_hal::uart::{Baudrate, Parity, Pins, Uart};
use panic_halt as _;
use ram_nvm::{RamNvm, NVM_MAX};
use static_cell::ConstStaticCell;

/// The NVM image's RAM (zeroed at reset; the bridge loads the card image into it).
static NVM: ConstStaticCell<[u8; NVM_MAX]> = ConstStaticCell::new([0; NVM_MAX]);

/// The RNG peripheral, shared by every [`ChipRng`] (a card that fails to power up drops its
/// random source; the peripheral stays here).
static RNG: Mutex<RefCell<Option<nrf51_hal::rng::Rng>>> = Mutex::new(RefCell::new(None));

/// The card's random source: the chip's RNG peripheral (bias correction on).
struct ChipRng;

impl card_os::crypto::Rng for ChipRng {
    fn fill(&mut self, out: &mut [u8]) {
        if hooks::replay_random(out) {
            return;
        }
        hooks::hardware_random(|| {
            interrupt::free(|cs| {
                if let Some(rng) = RNG.borrow(cs).borrow_mut().as_mut() {
                    rng.random(out);
                }
            })
        });
    }
}

type ChipCard = Card<RamNvm, ChipRng>;

/// The card as the reader sees it: one card kept in place in `main`'s frame for the chip's whole
/// life, powered or not. Power changes happen in place ([`Card::power_cycle`]): a card moved by
/// value would put one or two more copies of it (976 bytes each) on the stack.
struct Slot {
    card: ChipCard,
    powered: bool,
}

impl Slot {
    fn power_off(&mut self) {
        if self.powered {
            self.card.power_off();
            self.powered = false;
        }
    }

    /// Power-up with journal recovery; an image that cannot power up leaves the card off (mute).
    fn power_on(&mut self) {
        self.powered = self.card.power_cycle().is_ok();
    }

    /// The card, when it is powered.
    fn card(&mut self) -> Option<&mut ChipCard> {
        self.powered.then_some(&mut self.card)
    }

    /// The NVM, the card powered off first.
    fn nvm(&mut self) -> &mut RamNvm {
        self.power_off();
        self.card.nvm_mut()
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let (Some(p), Some(core)) = (
        nrf51_hal::pac::Peripherals::take(),
        cortex_m::Peripherals::take(),
    ) else {
        halt()
    };
    interrupt::free(|cs| {
        RNG.borrow(cs)
            .replace(Some(nrf51_hal::rng::Rng::new(p.RNG)));
    });
    let pins = p0::Parts::new(p.GPIO);
    // The micro:bit's interface-chip UART: TX on P0.24, RX on P0.25.
    let uart = Uart::new(
        p.UART0,
        Pins {
            txd: pins.p0_24.into_push_pull_output(Level::High).degrade(),
            rxd: pins.p0_25.into_floating_input().degrade(),
            cts: None,
            rts: None,
        },
        Parity::EXCLUDED,
        Baudrate::BAUD115200,
    );
    // nrf51-hal primes the transmitter with a dummy byte before it starts it; QEMU's UART drops a
    // byte written while stopped, and the HAL would then wait forever for "byte sent". Starting
    // it again sends the dummy byte for real: the one `00` the chip sends at boot, which tells
    // the bridge that the chip is up.
    let (uart0, uart_pins) = uart.free();
    let uart = Uart::new(uart0, uart_pins, Parity::EXCLUDED, Baudrate::BAUD115200);
    let mut meter = hooks::Meter::new(core.SYST);
    let mut link = Link::new(uart);
    let mut slot = Slot {
        card: Card::off(RamNvm::new(NVM.take()), ChipRng),
        powered: false,
    };
    // The one APDU buffer: the response goes out straight from the card's reply buffer.
    let mut command = [0u8; COMMAND_BUFFER_SIZE];

    loop {
        let len = link.read_len();
        match len {
            0 => {}
            1 => {
                let mut code = [0u8; 1];
                link.read_exact(&mut code);
                control(code[0], &mut slot, &mut link, &mut meter);
            }
            _ if len <= command.len() => {
                let apdu = command.get_mut(..len).unwrap_or_default();
                link.read_exact(apdu);
                match slot.card() {
                    Some(card) => {
                        let (data, sw) =
                            meter.measure(move || card.respond(apdu, MAX_RESPONSE_DATA));
                        link.send_parts(data, &sw.to_bytes());
                    }
                    None => link.send(&[]),
                }
            }
            _ => {
                // Longer than any APDU the card accepts (ISO 7816-4: wrong length).
                link.skip(len);
                link.send(&[0x67, 0x00]);
            }
        }
    }
}

/// Carries out one control code (see `link.rs`).
fn control<U>(code: u8, slot: &mut Slot, link: &mut Link<U>, meter: &mut hooks::Meter)
where
    U: embedded_io::Read<Error = core::convert::Infallible>
        + embedded_io::Write<Error = core::convert::Infallible>,
{
    match code {
        link::CTRL_POWER_OFF => slot.power_off(),
        link::CTRL_POWER_ON => slot.power_on(),
        link::CTRL_RESET => match slot.card() {
            Some(card) => card.reset(),
            None => slot.power_on(),
        },
        link::CTRL_GET_ATR => match slot.card() {
            Some(card) => link.send(&card.atr()),
            None => link.send(&[]),
        },
        link::CTRL_NVM_READ => link.send(slot.nvm().image()),
        link::CTRL_NVM_WRITE => {
            let len = link.read_len();
            match slot.nvm().load_area(len) {
                Some(area) => {
                    link.read_exact(area);
                    link.send(&[0x00]);
                }
                None => {
                    link.skip(len);
                    link.send(&[0x01]);
                }
            }
        }
        _ => meter.control(code, link),
    }
}

fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

#[cfg(feature = "test-hooks")]
mod hooks;

/// Without the `test-hooks` feature: no measurement, the chip's RNG only, no private controls.
#[cfg(not(feature = "test-hooks"))]
mod hooks {
    pub struct Meter;

    impl Meter {
        pub fn new(_syst: cortex_m::peripheral::SYST) -> Self {
            Meter
        }

        #[inline(always)]
        pub fn measure<T>(&mut self, f: impl FnOnce() -> T) -> T {
            f()
        }

        pub fn control<U>(&mut self, _code: u8, _link: &mut super::Link<U>) {}
    }

    /// Always `false`: the hardware RNG fills every request.
    #[inline(always)]
    pub fn replay_random(_out: &mut [u8]) -> bool {
        false
    }

    #[inline(always)]
    pub fn hardware_random(fill: impl FnOnce()) {
        fill()
    }
}
