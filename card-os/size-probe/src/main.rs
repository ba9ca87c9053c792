//! Size probe: the card OS as firmware would link it. `_start` powers the card up and feeds it
//! APDUs forever. The NVM driver is a stand-in whose reads and writes go through `black_box`, so
//! the optimizer keeps all of the OS and the driver itself adds next to nothing.
//!
//! The `.probe_sizes` section records sizes for the report (it is not part of the firmware): the
//! card's RAM state and the two APDU buffers the I/O layer owns.
#![no_std]
#![no_main]

use card_os::apdu::{COMMAND_BUFFER_SIZE, RESPONSE_BUFFER_SIZE};
use card_os::card::Card;
use card_os::crypto::Rng;
use card_os::nvm::{Nvm, NvmError};
use core::hint::black_box;

struct ProbeNvm;

impl Nvm for ProbeNvm {
    fn capacity(&self) -> usize {
        32 * 1024
    }
    fn page_size(&self) -> usize {
        64
    }
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), NvmError> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = black_box((addr + i) as u8);
        }
        Ok(())
    }
    fn write_page(&mut self, addr: usize, data: &[u8]) -> Result<(), NvmError> {
        black_box((addr, data));
        Ok(())
    }
}

/// A stand-in for the chip's TRNG driver (its state is not part of the OS).
struct ProbeRng;

impl Rng for ProbeRng {
    fn fill(&mut self, out: &mut [u8]) {
        for b in out.iter_mut() {
            *b = black_box(0);
        }
    }
}

#[used]
#[no_mangle]
#[link_section = ".probe_sizes"]
static PROBE_CARD_STATE: [u8; core::mem::size_of::<Card<ProbeNvm, ProbeRng>>()] =
    [0; core::mem::size_of::<Card<ProbeNvm, ProbeRng>>()];

#[used]
#[no_mangle]
#[link_section = ".probe_sizes"]
static PROBE_APDU_BUFFERS: [u8; COMMAND_BUFFER_SIZE + RESPONSE_BUFFER_SIZE] =
    [0; COMMAND_BUFFER_SIZE + RESPONSE_BUFFER_SIZE];

#[no_mangle]
pub extern "C" fn _start() -> ! {
    let mut command = [0u8; COMMAND_BUFFER_SIZE];
    let mut response = [0u8; RESPONSE_BUFFER_SIZE];
    match Card::power_up(ProbeNvm, ProbeRng) {
        Ok(mut card) => loop {
            black_box(&mut command);
            let len = black_box(command.len());
            let n = card.process(command.get(..len).unwrap_or(&[]), &mut response);
            black_box(&response[..n.min(response.len())]);
            if black_box(false) {
                card.reset();
            }
        },
        Err(_) => loop {
            black_box(());
        },
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        black_box(());
    }
}
