//! The engine: [`Card::process`] takes a command APDU and writes the response APDU. It is the only
//! entry point, and it never panics.
//!
//! For every command: parse ([`command::parse`]) → execute → commit the command's NVM transaction
//! if it succeeded, drop it if it failed → shape the response:
//!
//! * response data and no Le (how T=0 readers send a case-4 command): `61xx`, the data waits for
//!   GET RESPONSE (`6100` when 256 bytes wait);
//! * response data and an Le smaller than the data: `6Cxx` with the exact length;
//! * otherwise the data and the status word.
//!
//! Any command other than GET RESPONSE discards data still waiting.
//!
//! A purse transaction opened by INITIALIZE lives in the volatile state until the next command:
//! only its CREDIT/DEBIT (and a composite purchase's UPDATE CAPP DATA CACHE) may use it, GET
//! RESPONSE leaves it alone, any other command ends it. UPDATE CAPP DATA CACHE is the one command
//! that leaves its NVM transaction open: its record is committed by the DEBIT that follows, or
//! dropped (apdu-specs/purse.md).

mod auth;
pub mod command;
mod context;
mod files;
mod life_cycle;
mod pin;
mod purse;
mod secure_messaging;
pub mod system;
mod write_key;

use crate::apdu::{Command, Sw, MAX_RESPONSE_DATA};
use crate::crypto::Rng;
use crate::fs::DfPath;
use crate::nvm::{Nvm, NvmError, Storage};
use crate::purse::Session;
use crate::security::{Challenge, SecurityState};
use command::{Instruction, Reject};
use context::Ctx;
use core::ops::Range;

pub use system::{HistoricalBytes, ATR_LEN};

/// Everything a reset or power-off clears (ISO 7816-3 §6.2.2; FMCOS 2.0 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Volatile {
    /// The directories from the MF to the current DF.
    pub path: DfPath,
    /// The current EF (its header address).
    pub current_ef: Option<usize>,
    /// The current record of the current EF (ISO 7816-4 record pointer).
    pub record_pointer: Option<usize>,
    /// The current DF was entered while it had no key file: FMCOS lets everything happen in it
    /// until it is left (FMCOS 2.0 §4.3).
    pub entered_without_keys: bool,
    /// The two security-state registers.
    pub security: SecurityState,
    /// The random of a GET CHALLENGE, kept for the next command only (FMCOS 2.0 §7.2).
    pub challenge: Option<Challenge>,
    /// The purse transaction INITIALIZE opened, kept for the next command only (FMCOS 2.0 §8.7.2:
    /// CREDIT/DEBIT without it is `6901`).
    pub purse: Option<Session>,
}

impl Volatile {
    fn at_power_up(mf: usize) -> Self {
        Volatile {
            path: DfPath::mf(mf),
            current_ef: None,
            record_pointer: None,
            entered_without_keys: false,
            security: SecurityState::CLEAR,
            challenge: None,
            purse: None,
        }
    }
}

/// Response data of the last command, kept for GET RESPONSE.
struct Reply {
    buf: [u8; MAX_RESPONSE_DATA],
    len: usize,
    /// Bytes already handed out by GET RESPONSE.
    sent: usize,
}

impl Reply {
    const EMPTY: Reply = Reply {
        buf: [0; MAX_RESPONSE_DATA],
        len: 0,
        sent: 0,
    };

    fn clear(&mut self) {
        self.len = 0;
        self.sent = 0;
    }

    fn waiting(&self) -> &[u8] {
        self.buf.get(self.sent..self.len).unwrap_or(&[])
    }
}

/// The response being built by a command handler.
pub struct Response<'r> {
    buf: &'r mut [u8; MAX_RESPONSE_DATA],
    len: &'r mut usize,
}

impl Response<'_> {
    /// Appends `data` to the response data. A handler never produces more than
    /// [`MAX_RESPONSE_DATA`] bytes, so overflow is an internal error (`6F00`).
    pub fn push(&mut self, data: &[u8]) -> Result<(), Sw> {
        let end = self
            .len
            .checked_add(data.len())
            .ok_or(Sw::NO_PRECISE_DIAGNOSIS)?;
        let dst = self
            .buf
            .get_mut(*self.len..end)
            .ok_or(Sw::NO_PRECISE_DIAGNOSIS)?;
        dst.copy_from_slice(data);
        *self.len = end;
        Ok(())
    }

    /// A writable region of `n` bytes at the end of the response data (for handlers that read
    /// straight into the response).
    pub fn extend(&mut self, n: usize) -> Result<&mut [u8], Sw> {
        let start = *self.len;
        let end = start.checked_add(n).ok_or(Sw::NO_PRECISE_DIAGNOSIS)?;
        if end > MAX_RESPONSE_DATA {
            return Err(Sw::NO_PRECISE_DIAGNOSIS);
        }
        *self.len = end;
        self.buf.get_mut(start..end).ok_or(Sw::NO_PRECISE_DIAGNOSIS)
    }

    /// The response buffer as scratch space for a command that answers no data: line-protected
    /// data is decrypted there instead of into a buffer on the stack (the chip's RAM). The data
    /// length stays 0, so none of it can go out; the handler wipes it with [`Response::wipe`]
    /// whatever the outcome. `6F00` when the response already holds data.
    pub(super) fn scratch(
        &mut self,
    ) -> Result<&mut [u8; secure_messaging::MAX_PROTECTED_DATA], Sw> {
        if *self.len != 0 {
            return Err(Sw::NO_PRECISE_DIAGNOSIS);
        }
        self.buf.first_chunk_mut().ok_or(Sw::NO_PRECISE_DIAGNOSIS)
    }

    /// Zeroes the whole buffer and empties the response (after [`Response::scratch`]).
    pub(super) fn wipe(&mut self) {
        self.buf.fill(0);
        *self.len = 0;
    }

    /// Drops bytes after `len` (a handler that read more than it returns).
    pub fn truncate(&mut self, len: usize) {
        *self.len = (*self.len).min(len);
    }

    /// The response data so far.
    pub fn data(&self) -> &[u8] {
        self.buf.get(..*self.len).unwrap_or(&[])
    }

    /// Bytes in the response so far.
    pub fn len(&self) -> usize {
        *self.len
    }

    /// Whether the response is empty.
    pub fn is_empty(&self) -> bool {
        *self.len == 0
    }
}

/// Why a card could not power up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerUpError {
    /// The NVM is not a formatted card image.
    NotFormatted,
    /// The NVM is a card of another layout version (the version found; this OS reads
    /// [`system::LAYOUT_VERSION`]). Layout 1 cards predate the overdraft limit's bytes in the
    /// purse body: personalize them again (apdu-specs/memory.md, "Layout versions").
    LayoutVersion(u8),
    /// The NVM failed (or the power was cut again) during recovery.
    Memory(NvmError),
}

/// The card: persistent storage, volatile state, the random source, and the command engine.
pub struct Card<N: Nvm, R: Rng> {
    storage: Storage<N>,
    system: system::SystemArea,
    ram: Volatile,
    reply: Reply,
    rng: R,
    /// Powered up (false after [`Card::off`], [`Card::power_off`] or a failed power cycle).
    powered: bool,
}

impl<N: Nvm, R: Rng> Card<N, R> {
    /// Formats `nvm` as a factory-fresh card (system area, MF `3F00` named `1PAY.SYS.DDF01`, no key
    /// file) and powers it up with `rng` as its random source.
    pub fn format(nvm: N, historical: &HistoricalBytes, rng: R) -> Result<Self, (N, PowerUpError)> {
        let mut storage = match Storage::open(nvm) {
            Ok(s) => s,
            Err((nvm, NvmError::NotFormatted)) => return Err((nvm, PowerUpError::NotFormatted)),
            Err((nvm, e)) => return Err((nvm, PowerUpError::Memory(e))),
        };
        if system::format(&mut storage, historical).is_err() {
            return Err((
                storage.into_nvm(),
                PowerUpError::Memory(NvmError::OutOfRange),
            ));
        }
        Card::power_up(storage.into_nvm(), rng)
    }

    /// Powers the card up: journal recovery, then the volatile state of a reset (MF selected,
    /// security state cleared). `rng` is the card's random source (a chip's TRNG; the simulator's
    /// seeded or fixed generator).
    pub fn power_up(nvm: N, rng: R) -> Result<Self, (N, PowerUpError)> {
        let mut card = Card::off(nvm, rng);
        match card.power_cycle() {
            Ok(()) => Ok(card),
            Err(e) => Err((card.into_nvm(), e)),
        }
    }

    /// A card that is powered off: its NVM and random source, nothing read yet. It answers no
    /// command (`6F00`) until [`Card::power_cycle`] powers it up.
    pub fn off(nvm: N, rng: R) -> Self {
        Card {
            storage: Storage::closed(nvm),
            system: system::SystemArea {
                historical: HistoricalBytes::from_bytes([0; 13]),
                life_cycle: system::LIFE_CYCLE_OPERATIONAL,
            },
            ram: Volatile::at_power_up(0),
            reply: Reply::EMPTY,
            rng,
            powered: false,
        }
    }

    /// Power-off and power-up in place: journal recovery, the system area read again, the volatile
    /// state of a reset. A chip keeps its one card where it is this way; [`Card::power_up`]
    /// returns a new card by value, which on a chip with a few KiB of RAM costs a card's worth or
    /// two of stack. On failure the card stays off (it answers `6F00`) until a power cycle
    /// succeeds.
    pub fn power_cycle(&mut self) -> Result<(), PowerUpError> {
        self.power_off();
        let failed = |e| match e {
            NvmError::NotFormatted => PowerUpError::NotFormatted,
            e => PowerUpError::Memory(e),
        };
        self.storage.reopen().map_err(failed)?;
        self.system = system::read(&self.storage).map_err(|e| match e {
            system::SystemError::Nvm(e) => failed(e),
            system::SystemError::LayoutVersion(found) => PowerUpError::LayoutVersion(found),
        })?;
        self.powered = true;
        self.reset();
        Ok(())
    }

    /// Powers the card off in place: what a command queued is dropped, the volatile state is gone,
    /// and it answers no command until [`Card::power_cycle`].
    pub fn power_off(&mut self) {
        self.powered = false;
        self.storage.abort();
        self.ram = Volatile::at_power_up(0);
        self.reply.clear();
    }

    /// Warm reset: volatile state back to power-up (MF selected, security state cleared).
    pub fn reset(&mut self) {
        self.ram = Volatile::at_power_up(crate::fs::mf_addr(&self.storage));
        self.ram.entered_without_keys = self.mf_has_no_key_file();
        self.reply.clear();
        self.storage.abort();
    }

    fn mf_has_no_key_file(&self) -> bool {
        crate::fs::file_at(&self.storage, crate::fs::mf_addr(&self.storage))
            .and_then(|mf| crate::fs::find_key_file(&self.storage, &mf))
            .is_ok_and(|k| k.is_none())
    }

    /// The answer to reset.
    pub fn atr(&self) -> [u8; ATR_LEN] {
        system::atr(&self.system.historical)
    }

    /// The factory data (ATR historical bytes).
    pub fn historical_bytes(&self) -> HistoricalBytes {
        self.system.historical
    }

    /// The volatile state (for tests and the simulator's inspection).
    pub fn volatile(&self) -> &Volatile {
        &self.ram
    }

    /// The persistent storage (for the simulator's inspection and tests).
    pub fn storage(&self) -> &Storage<N> {
        &self.storage
    }

    /// The NVM (the simulator arms power cuts and reads counters through it).
    pub fn nvm_mut(&mut self) -> &mut N {
        self.storage.nvm_mut()
    }

    /// Powers the card off and gives its NVM back.
    pub fn into_nvm(self) -> N {
        self.storage.into_nvm()
    }

    /// Powers the card off and gives its NVM and random source back.
    pub fn into_parts(self) -> (N, R) {
        (self.storage.into_nvm(), self.rng)
    }

    /// The random source (the simulator replaces it to fix challenges).
    pub fn rng_mut(&mut self) -> &mut R {
        &mut self.rng
    }

    /// Processes one command APDU and writes the response APDU (data and `SW1 SW2`) into
    /// `response`, returning its length. `response` should hold [`crate::apdu::RESPONSE_BUFFER_SIZE`]
    /// bytes; with less room, data that does not fit waits for GET RESPONSE (`61xx`). Only a
    /// buffer under two bytes gets nothing (0 is returned).
    pub fn process(&mut self, command: &[u8], response: &mut [u8]) -> usize {
        let room = response.len().saturating_sub(2);
        let (sw, data) = self.run(command, room);
        let data = self.reply.buf.get(data).unwrap_or(&[]);
        write_response(response, data, sw)
    }

    /// Processes one command APDU like [`Card::process`], but hands back the response data where
    /// the card keeps it (its reply buffer) and the status word, instead of copying both into a
    /// caller's buffer: a transport that sends the two itself (the chip's UART) then needs no
    /// response buffer of its own. `room` is the most data bytes one response may carry (data
    /// beyond it waits for GET RESPONSE, `61xx`).
    pub fn respond(&mut self, command: &[u8], room: usize) -> (&[u8], Sw) {
        let (sw, data) = self.run(command, room);
        (self.reply.buf.get(data).unwrap_or(&[]), sw)
    }

    /// Runs a command. Returns the status word and the part of the reply buffer to send with it.
    fn run(&mut self, raw: &[u8], room: usize) -> (Sw, Range<usize>) {
        // FMCOS 2.0 §7.2: a challenge is good for the one command after GET CHALLENGE, whatever
        // that command is.
        let challenge = self.ram.challenge.take();
        // PBOC ED/EP (FMCOS 2.0 §8.7–8.9): CREDIT and DEBIT must directly follow their INITIALIZE.
        let purse = self.ram.purse.take();
        if !self.powered {
            return self.fail(Sw::NO_PRECISE_DIAGNOSIS);
        }
        let cmd = match Command::parse(raw) {
            Ok(cmd) => cmd,
            Err(e) => return self.fail(Reject::from(e).status()),
        };
        if self.system.life_cycle == system::LIFE_CYCLE_BLOCKED {
            return self.fail(Sw::FUNCTION_NOT_SUPPORTED);
        }
        let instruction = match command::parse(&cmd) {
            Ok(i) => i,
            Err(reject) => return self.fail(reject.status()),
        };
        if instruction == Instruction::GetResponse {
            // T=0 readers fetch INITIALIZE's answer this way: the transaction stays open.
            let answer = self.get_response(cmd.ne, room);
            if answer.0.is_success() {
                self.ram.purse = purse;
            }
            return answer;
        }
        // Only a composite purchase's next step may see the records UPDATE CAPP DATA CACHE left
        // pending; for every other command they are gone.
        if !matches!(
            instruction,
            Instruction::UpdateCappDataCache { .. } | Instruction::DebitForPurchase { .. }
        ) {
            self.storage.abort();
        }
        self.reply.clear();
        let result = {
            let mut response = Response {
                buf: &mut self.reply.buf,
                len: &mut self.reply.len,
            };
            let mut ctx = Ctx {
                storage: &mut self.storage,
                ram: &mut self.ram,
                rng: &mut self.rng,
                ne: cmd.ne,
                header: [cmd.cla, cmd.ins, cmd.p1, cmd.p2],
                nc: cmd.data.len(),
                challenge,
                card_blocked: false,
                purse,
                keep_open: false,
                sealed_read: false,
            };
            let result = execute(&mut ctx, instruction, &mut response);
            (result, ctx.card_blocked, ctx.keep_open, ctx.sealed_read)
        };
        let (result, card_blocked, keep_open, sealed_read) = result;
        // A line-protected read's Le counted the plain data (the handler held it against it); the
        // answer, MAC included, goes out as for Le = 00.
        let ne = if sealed_read {
            cmd.ne.map(|_| 256)
        } else {
            cmd.ne
        };
        let result = (result, card_blocked, keep_open);
        let result = match result {
            (Ok(()), _, true) => Ok(()),
            (Ok(()), card_blocked, false) => self.storage.commit().map_err(Sw::from).map(|()| {
                // The cached life cycle follows the system area once the block is durable.
                if card_blocked {
                    self.system.life_cycle = system::LIFE_CYCLE_BLOCKED;
                }
            }),
            (Err(sw), _, _) => Err(sw),
        };
        match result {
            Ok(()) => self.shape(ne, room),
            Err(sw) => self.fail(sw),
        }
    }

    /// A refused command: nothing it queued is written, and no purse transaction survives it.
    fn fail(&mut self, sw: Sw) -> (Sw, Range<usize>) {
        self.storage.abort();
        self.ram.purse = None;
        self.reply.clear();
        (sw, 0..0)
    }

    /// Decides how the reply goes out (see the module docs).
    fn shape(&mut self, ne: Option<usize>, room: usize) -> (Sw, Range<usize>) {
        let len = self.reply.len;
        match ne {
            _ if len == 0 => (Sw::SUCCESS, 0..0),
            Some(ne) if ne < len => self.fail(Sw::wrong_le(len)),
            Some(_) if len <= room => {
                self.reply.clear();
                (Sw::SUCCESS, 0..len)
            }
            _ => (Sw::more_data(len), 0..0),
        }
    }

    /// GET RESPONSE (ISO 7816-4 §7.6.1): up to Le bytes of the waiting data; `61xx` while more
    /// waits, `6Cxx` when Le asks for more than waits (a short `Le = 00` asks for up to 256).
    fn get_response(&mut self, ne: Option<usize>, room: usize) -> (Sw, Range<usize>) {
        let waiting = self.reply.waiting().len();
        if waiting == 0 {
            return self.fail(Sw::CONDITIONS_NOT_SATISFIED);
        }
        let asked = ne.unwrap_or(256);
        if asked != 256 && asked > waiting {
            return (Sw::wrong_le(waiting), 0..0);
        }
        let give = asked.min(waiting).min(room);
        let start = self.reply.sent;
        self.reply.sent += give;
        let rest = self.reply.waiting().len();
        if rest == 0 {
            // The bytes stay in the buffer until the next command; only the bookkeeping resets.
            self.reply.len = 0;
            self.reply.sent = 0;
            (Sw::SUCCESS, start..start + give)
        } else {
            (Sw::more_data(rest), start..start + give)
        }
    }
}

/// Runs a parsed command. In a blocked application only the commands that leave it, lift or
/// tighten the block, or ask for a challenge run; the rest answer `6A81` (temporary block) or
/// `9303` (permanent).
// Never inlined: its frame (the dispatch) is on the stack only while a command runs, not under
// everything the card does.
#[inline(never)]
fn execute<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    instruction: Instruction<'_>,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let runs_when_blocked = matches!(
        instruction,
        Instruction::Select { .. }
            | Instruction::GetChallenge { .. }
            | Instruction::ApplicationBlock { .. }
            | Instruction::ApplicationUnblock { .. }
            | Instruction::CardBlock { .. }
    );
    if !runs_when_blocked {
        if let Some(sw) = ctx.application_block()? {
            return Err(sw);
        }
    }
    match instruction {
        Instruction::Select { target, fci } => files::select(ctx, target, fci, response),
        Instruction::ReadBinary { ef, offset, mac } => {
            files::read_binary(ctx, ef, offset, mac, response)
        }
        Instruction::UpdateBinary { ef, offset, write } => {
            files::update_binary(ctx, ef, offset, write, response)
        }
        Instruction::ReadRecord { ef, address, mac } => {
            files::read_record(ctx, ef, address, mac, response)
        }
        Instruction::UpdateRecord { ef, address, write } => {
            files::update_record(ctx, ef, address, write, response)
        }
        Instruction::AppendRecord { ef, write } => files::append_record(ctx, ef, write, response),
        Instruction::CreateFile(spec) => files::create_file(ctx, &spec),
        Instruction::EraseDf => files::erase_df(ctx),
        Instruction::GetResponse => Err(Sw::CONDITIONS_NOT_SATISFIED),
        Instruction::WriteKey {
            target,
            key_id,
            write,
        } => write_key::write_key(ctx, target, key_id, write, response),
        Instruction::GetChallenge { len } => auth::get_challenge(ctx, len, response),
        Instruction::ExternalAuthenticate { key_id, proof } => {
            auth::external_authenticate(ctx, key_id, proof)
        }
        Instruction::InternalAuthenticate {
            operation,
            key_id,
            data,
        } => auth::internal_authenticate(ctx, operation, key_id, data, response),
        Instruction::Verify { pin_id, pin } => pin::verify(ctx, pin_id, pin),
        Instruction::ChangePin { pin_id, old, new } => pin::change_pin(ctx, pin_id, old, new),
        Instruction::ReloadPin { pin_id, pin, mac } => pin::reload_pin(ctx, pin_id, pin, &mac),
        Instruction::PinUnblock { pin_id, write } => pin::pin_unblock(ctx, pin_id, write, response),
        Instruction::ApplicationBlock { permanently, mac } => {
            life_cycle::application_block(ctx, permanently, &mac)
        }
        Instruction::ApplicationUnblock { mac } => life_cycle::application_unblock(ctx, &mac),
        Instruction::CardBlock { mac } => life_cycle::card_block(ctx, &mac),
        Instruction::InitializePurse {
            operation,
            purse,
            key_id,
            amount,
            terminal_id,
        } => purse::initialize(
            ctx,
            &purse::Initialize {
                operation,
                purse,
                key_id,
                amount,
                terminal_id,
            },
            response,
        ),
        Instruction::CreditForLoad { at, mac2 } => {
            purse::credit_for_load(ctx, &at, &mac2, response)
        }
        Instruction::CreditForUnload { at, mac2 } => {
            purse::credit_for_unload(ctx, &at, &mac2, response)
        }
        Instruction::DebitForPurchase {
            terminal_seq,
            at,
            mac1,
        } => purse::debit_for_purchase(ctx, terminal_seq, at, &mac1, response),
        Instruction::UpdateOverdrawLimit {
            new_limit,
            at,
            mac2,
        } => purse::update_overdraw_limit(ctx, new_limit, &at, &mac2, response),
        Instruction::UpdateCappDataCache { ef, address, data } => {
            purse::update_capp_data_cache(ctx, ef, address, data)
        }
        Instruction::GetBalance { purse } => purse::get_balance(ctx, purse, response),
        Instruction::GetTransactionProof { txn_type, counter } => {
            purse::get_transaction_proof(ctx, txn_type, counter, response)
        }
    }
}

/// Writes `data ‖ SW1 SW2` into `out` and returns the length (0 if `out` is under two bytes).
fn write_response(out: &mut [u8], data: &[u8], sw: Sw) -> usize {
    let total = data.len() + 2;
    match out.get_mut(..total) {
        Some(dst) => {
            let (d, s) = dst.split_at_mut(data.len());
            d.copy_from_slice(data);
            s.copy_from_slice(&sw.to_bytes());
            total
        }
        None => match out.get_mut(..2) {
            Some(s) => {
                s.copy_from_slice(&Sw::NO_PRECISE_DIAGNOSIS.to_bytes());
                2
            }
            None => 0,
        },
    }
}
