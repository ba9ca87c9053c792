//! Parse, then execute: raw command → [`Instruction`] (or a [`Reject`]) → execution.
//!
//! [`COMMANDS`] is the dispatch table: every CLA/INS pair the card handles (looked up by both:
//! `80 DC` UPDATE CAPP DATA CACHE is not `00/04 DC` UPDATE RECORD). `apdu-specs/` documents exactly
//! these (a test compares the two). [`Reject::status`] is the one place where a command that could
//! not be parsed becomes a status word.

use crate::apdu::{Command, ParseError, Sw};
use crate::crypto::purse::HostTime;
use crate::fs::records::Occurrence;
use crate::fs::FileSpec;
use crate::purse::{Operation, PurseKind};
use crate::security::keys::{KeyType, PIN_LEN};
use crate::security::Challenge;

/// One supported instruction: its name, the classes it accepts, its INS byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandInfo {
    /// Name as apdu-specs uses it.
    pub name: &'static str,
    /// Accepted CLA bytes (`x4` = with secure messaging).
    pub cla: &'static [u8],
    /// The INS byte.
    pub ins: u8,
}

/// Every command the card handles.
pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        name: "SELECT",
        cla: &[0x00],
        ins: 0xA4,
    },
    CommandInfo {
        name: "READ BINARY",
        cla: &[0x00, 0x04],
        ins: 0xB0,
    },
    CommandInfo {
        name: "UPDATE BINARY",
        cla: &[0x00, 0x04],
        ins: 0xD6,
    },
    // FMCOS 2.0 §7.7.2 lists INS `D6/D0` for UPDATE BINARY; `D0` is the same update here.
    CommandInfo {
        name: "UPDATE BINARY (D0)",
        cla: &[0x00, 0x04],
        ins: 0xD0,
    },
    CommandInfo {
        name: "READ RECORD",
        cla: &[0x00, 0x04],
        ins: 0xB2,
    },
    CommandInfo {
        name: "UPDATE RECORD",
        cla: &[0x00, 0x04],
        ins: 0xDC,
    },
    CommandInfo {
        name: "APPEND RECORD",
        cla: &[0x00, 0x04],
        ins: 0xE2,
    },
    CommandInfo {
        name: "GET RESPONSE",
        cla: &[0x00],
        ins: 0xC0,
    },
    CommandInfo {
        name: "CREATE FILE",
        cla: &[0x80],
        ins: 0xE0,
    },
    CommandInfo {
        name: "ERASE DF",
        cla: &[0x80],
        ins: 0x0E,
    },
    CommandInfo {
        name: "WRITE KEY",
        cla: &[0x80, 0x84],
        ins: 0xD4,
    },
    CommandInfo {
        name: "GET CHALLENGE",
        cla: &[0x00],
        ins: 0x84,
    },
    CommandInfo {
        name: "EXTERNAL AUTHENTICATE",
        cla: &[0x00],
        ins: 0x82,
    },
    CommandInfo {
        name: "INTERNAL AUTHENTICATE",
        cla: &[0x00],
        ins: 0x88,
    },
    CommandInfo {
        name: "VERIFY",
        cla: &[0x00],
        ins: 0x20,
    },
    // FMCOS 2.0 §8.6 example: CHANGE PIN sent with class 84 and no line protection.
    CommandInfo {
        name: "CHANGE PIN / RELOAD PIN",
        cla: &[0x80, 0x84],
        ins: 0x5E,
    },
    CommandInfo {
        name: "PIN UNBLOCK",
        cla: &[0x84],
        ins: 0x24,
    },
    CommandInfo {
        name: "APPLICATION BLOCK",
        cla: &[0x84],
        ins: 0x1E,
    },
    CommandInfo {
        name: "APPLICATION UNBLOCK",
        cla: &[0x84],
        ins: 0x18,
    },
    CommandInfo {
        name: "CARD BLOCK",
        cla: &[0x84],
        ins: 0x16,
    },
    CommandInfo {
        name: "INITIALIZE FOR LOAD / PURCHASE / CASH WITHDRAW / CAPP PURCHASE / UNLOAD / UPDATE",
        cla: &[0x80],
        ins: 0x50,
    },
    CommandInfo {
        name: "CREDIT FOR LOAD",
        cla: &[0x80],
        ins: 0x52,
    },
    CommandInfo {
        name: "DEBIT FOR PURCHASE / CASH WITHDRAW, CREDIT FOR UNLOAD",
        cla: &[0x80],
        ins: 0x54,
    },
    CommandInfo {
        name: "UPDATE CAPP DATA CACHE",
        cla: &[0x80],
        ins: 0xDC,
    },
    CommandInfo {
        name: "UPDATE OVERDRAW LIMIT",
        cla: &[0x80],
        ins: 0x58,
    },
    CommandInfo {
        name: "GET BALANCE",
        cla: &[0x80],
        ins: 0x5C,
    },
    CommandInfo {
        name: "GET TRANSACTION PROOF",
        cla: &[0x80],
        ins: 0x5A,
    },
];

/// The classes the card knows at all (ISO 7816-4 `00`/`04`, proprietary `80`/`84`).
const KNOWN_CLASSES: [u8; 4] = [0x00, 0x04, 0x80, 0x84];

/// Why a command was refused before execution. [`Reject::status`] maps each to its status word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// The bytes are not a well-formed APDU.
    Malformed(ParseError),
    /// Lc or Le does not fit the command.
    WrongLength,
    /// CLA unknown, or not valid with this INS.
    ClassNotSupported,
    /// INS unknown.
    InstructionNotSupported,
    /// P1-P2 invalid for the command.
    WrongParameters,
    /// P1-P2 give an offset out of range.
    WrongOffset,
    /// A field of the data is invalid.
    WrongData,
    /// A command-specific status word found while parsing the data (e.g. CREATE FILE's 6A80).
    Status(Sw),
}

impl Reject {
    /// The status word the card answers (the one place parse errors become status words).
    pub fn status(self) -> Sw {
        match self {
            Reject::Malformed(_) | Reject::WrongLength => Sw::WRONG_LENGTH,
            Reject::ClassNotSupported => Sw::CLA_NOT_SUPPORTED,
            Reject::InstructionNotSupported => Sw::INS_NOT_SUPPORTED,
            Reject::WrongParameters => Sw::WRONG_P1_P2,
            Reject::WrongOffset => Sw::WRONG_OFFSET,
            Reject::WrongData => Sw::WRONG_DATA,
            Reject::Status(sw) => sw,
        }
    }
}

impl From<ParseError> for Reject {
    fn from(e: ParseError) -> Self {
        Reject::Malformed(e)
    }
}

/// Which EF a command works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EfSelector {
    /// The current EF.
    Current,
    /// The EF with this short identifier in the current DF (it becomes the current EF).
    Sfi(u8),
}

/// What SELECT selects (ISO 7816-4 §7.1.1 P1 coding, FMCOS 2.0 §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectTarget<'a> {
    /// The MF (`P1 00` with `3F00` or no data).
    Mf,
    /// A file by FID: a child of the current DF, the current DF, its parent or a sibling DF.
    Fid(u16),
    /// A child DF of the current DF by FID (`P1 01`).
    ChildDf(u16),
    /// An EF of the current DF by FID (`P1 02`).
    ChildEf(u16),
    /// The parent of the current DF (`P1 03`).
    Parent,
    /// A DF by name (`P1 04`).
    Name(&'a [u8]),
}

/// How a record command addresses its record (ISO 7816-4 §7.3.3, P2 bits 3..1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordAddress {
    /// `100`: record number P1 (`00` = the current record).
    Number(u8),
    /// `000`/`001`/`010`/`011`: a record whose identifier (first byte, the TLV tag) is P1.
    Identifier(u8, Occurrence),
}

/// Data of a write that may carry secure messaging (CLA `x4`): the MAC is the last 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteData<'a> {
    /// The data field without the MAC (still encrypted if the file wants encryption).
    pub data: &'a [u8],
    /// The 4-byte MAC when CLA has the secure-messaging bit.
    pub mac: Option<[u8; 4]>,
}

impl<'a> WriteData<'a> {
    fn parse(cla: u8, data: &'a [u8]) -> Result<Self, Reject> {
        if cla & 0x04 == 0 {
            return Ok(WriteData { data, mac: None });
        }
        match data.len().checked_sub(4).map(|n| data.split_at(n)) {
            Some((data, [m0, m1, m2, m3])) => Ok(WriteData {
                data,
                mac: Some([*m0, *m1, *m2, *m3]),
            }),
            _ => Err(Reject::WrongLength),
        }
    }
}

/// What EXTERNAL AUTHENTICATE proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthProof<'a> {
    /// FMCOS 2.0 §7.1 (Lc 08): `E(K, challenge ‖ 00…)` under a DES-family key.
    Cryptogram(&'a [u8]),
    /// LD/T 32 part 7 §6.5 (Lc 10): authentication data under the session key
    /// `E(K, challenge)`, and the 8-byte original information it was computed over.
    Session {
        /// The authentication data.
        auth: [u8; 8],
        /// The terminal's original information.
        original: [u8; 8],
    },
}

/// What INTERNAL AUTHENTICATE computes (FMCOS 2.0 §7.3, P1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOperation {
    /// `00`: encrypt with a `30` key, or LD/T 32 authentication data with a `34` key.
    Encrypt,
    /// `01`: decrypt with a `31` key.
    Decrypt,
    /// `02`: a MAC with a `32` key.
    Mac,
}

/// Which key WRITE KEY writes (FMCOS 2.0 §7.12, P1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTarget {
    /// `P1 01`: add a key.
    Add,
    /// `P1 = type`: replace the key of this type with id P2.
    Update(KeyType),
}

/// A parsed command, ready to execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instruction<'a> {
    /// SELECT `00 A4`; `fci` is false for `P2 0C` (no response data).
    Select { target: SelectTarget<'a>, fci: bool },
    /// READ BINARY `00/04 B0`; with CLA `04` the data is a line-protection MAC.
    ReadBinary {
        ef: EfSelector,
        offset: usize,
        mac: Option<[u8; 4]>,
    },
    /// UPDATE BINARY `00/04 D6`.
    UpdateBinary {
        ef: EfSelector,
        offset: usize,
        write: WriteData<'a>,
    },
    /// READ RECORD `00/04 B2`; with CLA `04` the data is a line-protection MAC.
    ReadRecord {
        ef: EfSelector,
        address: RecordAddress,
        mac: Option<[u8; 4]>,
    },
    /// UPDATE RECORD `00/04 DC` (on a cyclic file only `P1 00 P2 xxxxx011`, an append).
    UpdateRecord {
        ef: EfSelector,
        address: RecordAddress,
        write: WriteData<'a>,
    },
    /// APPEND RECORD `00/04 E2`.
    AppendRecord {
        ef: EfSelector,
        write: WriteData<'a>,
    },
    /// GET RESPONSE `00 C0`.
    GetResponse,
    /// CREATE FILE `80 E0`.
    CreateFile(FileSpec<'a>),
    /// ERASE DF `80 0E`.
    EraseDf,
    /// WRITE KEY `80/84 D4`. The record stays raw: under `84` it may be encrypted, and only the
    /// key that protects it can turn it into a record.
    WriteKey {
        target: KeyTarget,
        key_id: u8,
        write: WriteData<'a>,
    },
    /// GET CHALLENGE `00 84` with the number of random bytes asked.
    GetChallenge { len: usize },
    /// EXTERNAL AUTHENTICATE `00 82`.
    ExternalAuthenticate { key_id: u8, proof: AuthProof<'a> },
    /// INTERNAL AUTHENTICATE `00 88`.
    InternalAuthenticate {
        operation: KeyOperation,
        key_id: u8,
        data: &'a [u8],
    },
    /// VERIFY `00 20`; an empty PIN asks for the tries left.
    Verify { pin_id: u8, pin: &'a [u8] },
    /// CHANGE PIN `80 5E 01`.
    ChangePin {
        pin_id: u8,
        old: &'a [u8],
        new: &'a [u8],
    },
    /// RELOAD PIN `80 5E 00`.
    ReloadPin {
        pin_id: u8,
        pin: &'a [u8],
        mac: [u8; 4],
    },
    /// PIN UNBLOCK `84 24`: MAC only, or an encrypted new PIN and a MAC.
    PinUnblock { pin_id: u8, write: WriteData<'a> },
    /// APPLICATION BLOCK `84 1E`.
    ApplicationBlock { permanently: bool, mac: [u8; 4] },
    /// APPLICATION UNBLOCK `84 18`.
    ApplicationUnblock { mac: [u8; 4] },
    /// CARD BLOCK `84 16`.
    CardBlock { mac: [u8; 4] },
    /// INITIALIZE FOR LOAD / PURCHASE / CASH WITHDRAW / CAPP PURCHASE / UNLOAD / UPDATE `80 50`
    /// (an overdraft update names no amount: `0`).
    InitializePurse {
        operation: Operation,
        purse: PurseKind,
        key_id: u8,
        amount: u32,
        terminal_id: [u8; 6],
    },
    /// CREDIT FOR LOAD `80 52`.
    CreditForLoad { at: HostTime, mac2: [u8; 4] },
    /// CREDIT FOR UNLOAD `80 54 03` (FMCOS 2.0 §8.10.2; its flow chart calls it DEBIT FOR UNLOAD).
    CreditForUnload { at: HostTime, mac2: [u8; 4] },
    /// DEBIT FOR (CAPP) PURCHASE / CASH WITHDRAW `80 54 01`.
    DebitForPurchase {
        terminal_seq: [u8; 4],
        at: HostTime,
        mac1: [u8; 4],
    },
    /// UPDATE OVERDRAW LIMIT `80 58` (FMCOS 2.0 §8.12.2).
    UpdateOverdrawLimit {
        new_limit: u32,
        at: HostTime,
        mac2: [u8; 4],
    },
    /// UPDATE CAPP DATA CACHE `80 DC`: the record to write with the DEBIT that follows.
    UpdateCappDataCache {
        ef: EfSelector,
        address: RecordAddress,
        data: &'a [u8],
    },
    /// GET BALANCE `80 5C`.
    GetBalance { purse: PurseKind },
    /// GET TRANSACTION PROOF `80 5A`.
    GetTransactionProof { txn_type: u8, counter: u16 },
}

/// Parses a command APDU into an [`Instruction`].
pub fn parse<'a>(cmd: &Command<'a>) -> Result<Instruction<'a>, Reject> {
    if !KNOWN_CLASSES.contains(&cmd.cla) {
        return Err(Reject::ClassNotSupported);
    }
    if !COMMANDS
        .iter()
        .any(|c| c.ins == cmd.ins && c.cla.contains(&cmd.cla))
    {
        return Err(if COMMANDS.iter().any(|c| c.ins == cmd.ins) {
            Reject::ClassNotSupported
        } else {
            Reject::InstructionNotSupported
        });
    }
    let (p1, p2, data) = (cmd.p1, cmd.p2, cmd.data);
    match cmd.ins {
        0x50 | 0x52 | 0x54 | 0x58 | 0x5A | 0x5C => parse_purse(cmd),
        0xDC if cmd.cla == 0x80 => parse_capp_data_cache(p1, p2, data),
        0xA4 => parse_select(p1, p2, data),
        0xB0 => {
            let mac = read_mac(cmd.cla, data)?;
            let (ef, offset) = binary_address(p1, p2)?;
            Ok(Instruction::ReadBinary { ef, offset, mac })
        }
        // FMCOS 2.0 §7.7.2: INS D6 or D0, one command (the MAC covers the INS as sent).
        0xD6 | 0xD0 => {
            let write = WriteData::parse(cmd.cla, data)?;
            if write.data.is_empty() {
                return Err(Reject::WrongLength);
            }
            let (ef, offset) = binary_address(p1, p2)?;
            Ok(Instruction::UpdateBinary { ef, offset, write })
        }
        0xB2 => {
            let mac = read_mac(cmd.cla, data)?;
            let (ef, address) = record_address(p1, p2)?;
            Ok(Instruction::ReadRecord { ef, address, mac })
        }
        0xDC => {
            let write = WriteData::parse(cmd.cla, data)?;
            let (ef, address) = record_address(p1, p2)?;
            Ok(Instruction::UpdateRecord { ef, address, write })
        }
        0xE2 => {
            // ISO 7816-4 §7.3.7: P1 = 00, P2 = SFI << 3 with low bits 000; FMCOS 2.0 §7.9 table
            // 7.6 writes the same P2 with low bits 100 (`0C` = SFI 1, `04` = the current file).
            if p1 != 0 || !matches!(p2 & 0x07, 0b000 | 0b100) {
                return Err(Reject::WrongParameters);
            }
            let write = WriteData::parse(cmd.cla, data)?;
            Ok(Instruction::AppendRecord {
                ef: ef_from_sfi(p2 >> 3),
                write,
            })
        }
        0xC0 => {
            if p1 != 0 || p2 != 0 {
                return Err(Reject::WrongParameters);
            }
            no_data(data)?;
            Ok(Instruction::GetResponse)
        }
        0xE0 => {
            let fid = u16::from_be_bytes([p1, p2]);
            FileSpec::parse(fid, data)
                .map(Instruction::CreateFile)
                .map_err(Reject::Status)
        }
        0x0E => {
            // FMCOS 2.0 §7.11: `80 0E 00 00 00`; the `00` arrives as a case-2 Le.
            if p1 != 0 || p2 != 0 {
                return Err(Reject::WrongParameters);
            }
            no_data(data)?;
            Ok(Instruction::EraseDf)
        }
        0xD4 => {
            // FMCOS 2.0 §7.12: P1 01 adds, P1 = a key type (without protection bits) updates;
            // P2 is the key id, never FF.
            let target = match p1 {
                0x01 => KeyTarget::Add,
                t if t & 0xC0 == 0 => {
                    KeyTarget::Update(KeyType::from_type_byte(t).ok_or(Reject::WrongParameters)?)
                }
                _ => return Err(Reject::WrongParameters),
            };
            if p2 == 0xFF {
                return Err(Reject::WrongParameters);
            }
            Ok(Instruction::WriteKey {
                target,
                key_id: p2,
                write: WriteData::parse(cmd.cla, data)?,
            })
        }
        0x84 => {
            if p1 != 0 || p2 != 0 {
                return Err(Reject::WrongParameters);
            }
            no_data(data)?;
            // FMCOS 2.0 §7.2: 4 or 8 bytes; LD/T 32 part 5 also 16 (SM4).
            match cmd.ne {
                Some(len) if Challenge::LENGTHS.contains(&len) => {
                    Ok(Instruction::GetChallenge { len })
                }
                _ => Err(Reject::WrongLength),
            }
        }
        0x82 => {
            if p1 != 0 {
                return Err(Reject::WrongParameters);
            }
            let proof = match data {
                [_, _, _, _, _, _, _, _] => AuthProof::Cryptogram(data),
                [a0, a1, a2, a3, a4, a5, a6, a7, o0, o1, o2, o3, o4, o5, o6, o7] => {
                    AuthProof::Session {
                        auth: [*a0, *a1, *a2, *a3, *a4, *a5, *a6, *a7],
                        original: [*o0, *o1, *o2, *o3, *o4, *o5, *o6, *o7],
                    }
                }
                _ => return Err(Reject::WrongLength),
            };
            Ok(Instruction::ExternalAuthenticate { key_id: p2, proof })
        }
        0x88 => {
            let operation = match p1 {
                0x00 => KeyOperation::Encrypt,
                0x01 => KeyOperation::Decrypt,
                0x02 => KeyOperation::Mac,
                _ => return Err(Reject::WrongParameters),
            };
            // The answer (data padded to whole blocks) must fit one response.
            if data.is_empty() || data.len() > 255 {
                return Err(Reject::WrongLength);
            }
            Ok(Instruction::InternalAuthenticate {
                operation,
                key_id: p2,
                data,
            })
        }
        0x20 => {
            if p1 != 0 {
                return Err(Reject::WrongParameters);
            }
            // `00 20 00 kid 00` arrives as a case-2 command with no data: the probe.
            if data.len() > 8 {
                return Err(Reject::WrongLength);
            }
            Ok(Instruction::Verify {
                pin_id: p2,
                pin: data,
            })
        }
        0x5E => match p1 {
            // FMCOS 2.0 §8.6: old ‖ FF ‖ new. A PIN's trailing FF bytes may be left out, so the
            // first FF ends the old PIN. Class 80 or 84 (the §8.6 example: "84 5E 01 00 05 00 00 FF
            // 31 32", "不进行线路保护"): the same plain command, which the old PIN authorizes.
            0x01 => {
                let split = data
                    .iter()
                    .position(|&b| b == 0xFF)
                    .ok_or(Reject::WrongData)?;
                let (old, rest) = data.split_at(split);
                let new = rest.get(1..).unwrap_or(&[]);
                if !(1..=8).contains(&old.len()) || !PIN_LEN.contains(&new.len()) {
                    return Err(Reject::WrongLength);
                }
                Ok(Instruction::ChangePin {
                    pin_id: p2,
                    old,
                    new,
                })
            }
            // FMCOS 2.0 §8.5: new PIN ‖ MAC, class 80 only.
            0x00 if cmd.cla == 0x84 => Err(Reject::ClassNotSupported),
            0x00 => match data.len().checked_sub(4).map(|n| data.split_at(n)) {
                Some((pin, [m0, m1, m2, m3])) if PIN_LEN.contains(&pin.len()) => {
                    Ok(Instruction::ReloadPin {
                        pin_id: p2,
                        pin,
                        mac: [*m0, *m1, *m2, *m3],
                    })
                }
                _ => Err(Reject::WrongLength),
            },
            _ => Err(Reject::WrongParameters),
        },
        0x24 => {
            // P1 = the PIN (FMCOS 2.0 §8.4), P2 00/01 as LD/T 32 part 5 codes it; the data length
            // tells a MAC alone from an encrypted PIN and a MAC.
            if p2 > 1 {
                return Err(Reject::WrongParameters);
            }
            Ok(Instruction::PinUnblock {
                pin_id: p1,
                write: WriteData::parse(cmd.cla, data)?,
            })
        }
        0x1E => {
            let permanently = match (p1, p2) {
                (0, 0) => false,
                (0, 1) => true,
                _ => return Err(Reject::WrongParameters),
            };
            Ok(Instruction::ApplicationBlock {
                permanently,
                mac: mac_only(data)?,
            })
        }
        0x18 => {
            if p1 != 0 || p2 != 0 {
                return Err(Reject::WrongParameters);
            }
            Ok(Instruction::ApplicationUnblock {
                mac: mac_only(data)?,
            })
        }
        0x16 => {
            if p1 != 0 || p2 != 0 {
                return Err(Reject::WrongParameters);
            }
            Ok(Instruction::CardBlock {
                mac: mac_only(data)?,
            })
        }
        _ => Err(Reject::InstructionNotSupported),
    }
}

/// The purse commands `80 50`, `80 52`, `80 54`, `80 58`, `80 5A`, `80 5C` (FMCOS 2.0 ch. 8). An Le shorter
/// than the answer is refused here, before anything happens (apdu-specs/purse.md decision 9).
/// (Out of line, like [`parse_capp_data_cache`]: inlined into [`parse`] it cost 500 bytes of flash.)
#[inline(never)]
fn parse_purse<'a>(cmd: &Command<'a>) -> Result<Instruction<'a>, Reject> {
    let (p1, p2, data) = (cmd.p1, cmd.p2, cmd.data);
    let le_fits = |answer: usize| match cmd.ne {
        Some(ne) if ne < answer => Err(Reject::WrongLength),
        _ => Ok(()),
    };
    match cmd.ins {
        0x50 => {
            // FMCOS 2.0 §8.7.1, §8.8.1, §8.9.1, §8.10.1, §8.11.1, §8.12.1.
            let (operation, answer) = match p1 {
                0x00 => (Operation::Load, 16),
                0x01 => (Operation::Purchase, 15),
                0x02 => (Operation::CashWithdraw, 15),
                0x03 => (Operation::CappPurchase, 15),
                0x04 => (Operation::UpdateOverdraft, 19),
                0x05 => (Operation::Unload, 16),
                _ => return Err(Reject::WrongParameters),
            };
            // Composite purchases are EP only (§8.9.1); unloads, cash withdrawals and overdraft
            // updates ED only (§8.10, §8.11: "只有电子存折应用支持"; §8.12.1.2: "仅用于电子存折").
            let purse = match (operation, PurseKind::from_p2(p2)) {
                (Operation::CappPurchase, Some(PurseKind::Ed))
                | (
                    Operation::CashWithdraw | Operation::Unload | Operation::UpdateOverdraft,
                    Some(PurseKind::Ep),
                )
                | (_, None) => return Err(Reject::WrongParameters),
                (_, Some(purse)) => purse,
            };
            if operation == Operation::UpdateOverdraft {
                // §8.12.1.2: Lc 07, key id ‖ terminal id; no amount.
                let [key_id, t0, t1, t2, t3, t4, t5] = fixed(data)?;
                le_fits(answer)?;
                return Ok(Instruction::InitializePurse {
                    operation,
                    purse,
                    key_id,
                    amount: 0,
                    terminal_id: [t0, t1, t2, t3, t4, t5],
                });
            }
            let [key_id, a0, a1, a2, a3, t0, t1, t2, t3, t4, t5] = fixed(data)?;
            le_fits(answer)?;
            Ok(Instruction::InitializePurse {
                operation,
                purse,
                key_id,
                amount: u32::from_be_bytes([a0, a1, a2, a3]),
                terminal_id: [t0, t1, t2, t3, t4, t5],
            })
        }
        0x52 => {
            // FMCOS 2.0 §8.7.2.
            if (p1, p2) != (0, 0) {
                return Err(Reject::WrongParameters);
            }
            let [d0, d1, d2, d3, h0, h1, h2, m0, m1, m2, m3] = fixed(data)?;
            le_fits(4)?;
            Ok(Instruction::CreditForLoad {
                at: HostTime {
                    date: [d0, d1, d2, d3],
                    time: [h0, h1, h2],
                },
                mac2: [m0, m1, m2, m3],
            })
        }
        0x54 => {
            // FMCOS 2.0 §8.8.2, §8.9.3, §8.11.2: P1 01 debits a purchase or cash withdrawal;
            // §8.10.2: P1 03 completes an unload.
            match (p1, p2) {
                (0x01, 0x00) => {}
                (0x03, 0x00) => {
                    let [d0, d1, d2, d3, h0, h1, h2, m0, m1, m2, m3] = fixed(data)?;
                    le_fits(4)?;
                    return Ok(Instruction::CreditForUnload {
                        at: HostTime {
                            date: [d0, d1, d2, d3],
                            time: [h0, h1, h2],
                        },
                        mac2: [m0, m1, m2, m3],
                    });
                }
                _ => return Err(Reject::WrongParameters),
            }
            let [s0, s1, s2, s3, d0, d1, d2, d3, h0, h1, h2, m0, m1, m2, m3] = fixed(data)?;
            le_fits(8)?;
            Ok(Instruction::DebitForPurchase {
                terminal_seq: [s0, s1, s2, s3],
                at: HostTime {
                    date: [d0, d1, d2, d3],
                    time: [h0, h1, h2],
                },
                mac1: [m0, m1, m2, m3],
            })
        }
        0x58 => {
            // FMCOS 2.0 §8.12.2: new limit (3) ‖ host date (4) ‖ host time (3) ‖ MAC2 (4).
            if (p1, p2) != (0, 0) {
                return Err(Reject::WrongParameters);
            }
            let [l0, l1, l2, d0, d1, d2, d3, h0, h1, h2, m0, m1, m2, m3] = fixed(data)?;
            le_fits(4)?;
            Ok(Instruction::UpdateOverdrawLimit {
                new_limit: u32::from_be_bytes([0, l0, l1, l2]),
                at: HostTime {
                    date: [d0, d1, d2, d3],
                    time: [h0, h1, h2],
                },
                mac2: [m0, m1, m2, m3],
            })
        }
        0x5C => {
            // FMCOS 2.0 §8.14.
            let purse = match (p1, PurseKind::from_p2(p2)) {
                (0, Some(purse)) => purse,
                _ => return Err(Reject::WrongParameters),
            };
            no_data(data)?;
            le_fits(4)?;
            Ok(Instruction::GetBalance { purse })
        }
        _ => {
            // GET TRANSACTION PROOF, FMCOS 2.0 §8.13: P2 is one of the PBOC transaction types.
            if p1 != 0 || !matches!(p2, 0x01..=0x07 | 0x09) {
                return Err(Reject::WrongParameters);
            }
            let [c0, c1] = fixed(data)?;
            le_fits(8)?;
            Ok(Instruction::GetTransactionProof {
                txn_type: p2,
                counter: u16::from_be_bytes([c0, c1]),
            })
        }
    }
}

/// UPDATE CAPP DATA CACHE `80 DC` (FMCOS 2.0 §8.9.2 table 8.9): P2 = SFI << 3 with `100` (P1 =
/// record number) or `000` (P1 = identifier, first occurrence).
#[inline(never)]
fn parse_capp_data_cache(p1: u8, p2: u8, data: &[u8]) -> Result<Instruction<'_>, Reject> {
    let address = match p2 & 0x07 {
        0b100 => RecordAddress::Number(p1),
        0b000 => RecordAddress::Identifier(p1, Occurrence::First),
        _ => return Err(Reject::WrongParameters),
    };
    if data.is_empty() {
        return Err(Reject::WrongLength);
    }
    Ok(Instruction::UpdateCappDataCache {
        ef: ef_from_sfi(p2 >> 3),
        address,
        data,
    })
}

/// A data field of exactly `N` bytes (`6700` otherwise).
fn fixed<const N: usize>(data: &[u8]) -> Result<[u8; N], Reject> {
    data.try_into().map_err(|_| Reject::WrongLength)
}

/// The data of a life-cycle command: exactly a 4-byte MAC.
fn mac_only(data: &[u8]) -> Result<[u8; 4], Reject> {
    match data {
        [m0, m1, m2, m3] => Ok([*m0, *m1, *m2, *m3]),
        _ => Err(Reject::WrongLength),
    }
}

/// The data of a read: none with CLA `00`; exactly the 4-byte MAC with CLA `04` (FMCOS 2.0 §7.5.2,
/// §7.6.2, §11.5 case 2: `CLA INS P1 P2 Lc MAC Le`).
fn read_mac(cla: u8, data: &[u8]) -> Result<Option<[u8; 4]>, Reject> {
    if cla & 0x04 == 0 {
        no_data(data).map(|()| None)
    } else {
        mac_only(data).map(Some)
    }
}

fn no_data(data: &[u8]) -> Result<(), Reject> {
    if data.is_empty() {
        Ok(())
    } else {
        Err(Reject::WrongLength)
    }
}

fn ef_from_sfi(sfi: u8) -> EfSelector {
    if sfi == 0 {
        EfSelector::Current
    } else {
        EfSelector::Sfi(sfi)
    }
}

/// READ/UPDATE BINARY P1-P2 (FMCOS 2.0 §4.5): `100xxxxx` → SFI with offset P2, else a 15-bit
/// offset in the current EF.
fn binary_address(p1: u8, p2: u8) -> Result<(EfSelector, usize), Reject> {
    if p1 & 0x80 != 0 {
        if p1 & 0x60 != 0 {
            return Err(Reject::WrongParameters);
        }
        let sfi = p1 & 0x1F;
        if sfi == 0 {
            return Err(Reject::WrongParameters);
        }
        Ok((EfSelector::Sfi(sfi), usize::from(p2)))
    } else {
        Ok((
            EfSelector::Current,
            usize::from(u16::from_be_bytes([p1, p2])),
        ))
    }
}

/// READ/UPDATE RECORD P1-P2 (ISO 7816-4 §7.3.3): P2 = SFI << 3 ‖ mode.
fn record_address(p1: u8, p2: u8) -> Result<(EfSelector, RecordAddress), Reject> {
    let ef = ef_from_sfi(p2 >> 3);
    let address = match p2 & 0x07 {
        0b100 => RecordAddress::Number(p1),
        0b000 => RecordAddress::Identifier(p1, Occurrence::First),
        0b001 => RecordAddress::Identifier(p1, Occurrence::Last),
        0b010 => RecordAddress::Identifier(p1, Occurrence::Next),
        0b011 => RecordAddress::Identifier(p1, Occurrence::Previous),
        // 101/110 (several records at once) are not supported; 111 is RFU.
        _ => return Err(Reject::WrongParameters),
    };
    Ok((ef, address))
}

fn parse_select(p1: u8, p2: u8, data: &[u8]) -> Result<Instruction<'_>, Reject> {
    // FMCOS 2.0 §7.4.2: P2 00; ISO 7816-4's 0C (no answer data) too. Any other P2, ISO's 02
    // (next occurrence) included, is 6A86, as FMCOS answers it.
    let fci = match p2 {
        0x00 => true,
        0x0C => false,
        _ => return Err(Reject::WrongParameters),
    };
    let fid = || match data {
        [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(Reject::WrongLength),
    };
    let target = match p1 {
        0x00 if data.is_empty() => SelectTarget::Mf,
        0x00 => match fid()? {
            crate::fs::MF_FID => SelectTarget::Mf,
            f => SelectTarget::Fid(f),
        },
        0x01 => SelectTarget::ChildDf(fid()?),
        0x02 => SelectTarget::ChildEf(fid()?),
        0x03 if data.is_empty() => SelectTarget::Parent,
        0x03 => return Err(Reject::WrongLength),
        0x04 if (1..=crate::fs::header::MAX_DF_NAME).contains(&data.len()) => {
            SelectTarget::Name(data)
        }
        0x04 => return Err(Reject::WrongLength),
        _ => return Err(Reject::WrongParameters),
    };
    Ok(Instruction::Select { target, fci })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(hex: &str) -> Result<Instruction<'static>, Reject> {
        let raw: &'static [u8] = Box::leak(hex::decode(hex.replace(' ', "")).unwrap().into());
        parse(&Command::parse(raw)?)
    }

    #[test]
    fn class_and_instruction_errors() {
        assert_eq!(p("FFA4000000").unwrap_err().status(), Sw::CLA_NOT_SUPPORTED);
        assert_eq!(p("0099000000").unwrap_err().status(), Sw::INS_NOT_SUPPORTED);
        assert_eq!(p("80A4000000").unwrap_err().status(), Sw::CLA_NOT_SUPPORTED);
        assert_eq!(p("00A400").unwrap_err().status(), Sw::WRONG_LENGTH);
    }

    #[test]
    fn select_forms() {
        assert_eq!(
            p("00A40000").unwrap(),
            Instruction::Select {
                target: SelectTarget::Mf,
                fci: true
            }
        );
        assert_eq!(
            p("00A40000023F00").unwrap(),
            Instruction::Select {
                target: SelectTarget::Mf,
                fci: true
            }
        );
        assert_eq!(
            p("00A4000C02DDF1").unwrap(),
            Instruction::Select {
                target: SelectTarget::Fid(0xDDF1),
                fci: false
            }
        );
        assert!(
            matches!(p("00A4040005A000000003").unwrap(), Instruction::Select { target: SelectTarget::Name(n), .. } if n.len() == 5)
        );
        assert_eq!(p("00A4000001AA").unwrap_err().status(), Sw::WRONG_LENGTH);
        assert_eq!(p("00A4050000").unwrap_err().status(), Sw::WRONG_P1_P2);
    }

    #[test]
    fn record_and_binary_addressing() {
        assert_eq!(
            p("00B2010C00").unwrap(),
            Instruction::ReadRecord {
                ef: EfSelector::Sfi(1),
                address: RecordAddress::Number(1),
                mac: None
            }
        );
        // Social-security readers: READ RECORD by tag, SFI 6, tag 4E.
        assert_eq!(
            p("00B24E3016").unwrap(),
            Instruction::ReadRecord {
                ef: EfSelector::Sfi(6),
                address: RecordAddress::Identifier(0x4E, Occurrence::First),
                mac: None
            }
        );
        assert_eq!(
            p("00B0951000").unwrap(),
            Instruction::ReadBinary {
                ef: EfSelector::Sfi(0x15),
                offset: 0x10,
                mac: None
            }
        );
        assert_eq!(
            p("00B0012300").unwrap(),
            Instruction::ReadBinary {
                ef: EfSelector::Current,
                offset: 0x123,
                mac: None
            }
        );
        // FMCOS 2.0 §7.5 example 2: a line-protected read carries only its MAC.
        assert_eq!(
            p("04B0000004 8226999B").unwrap(),
            Instruction::ReadBinary {
                ef: EfSelector::Current,
                offset: 0,
                mac: Some([0x82, 0x26, 0x99, 0x9B])
            }
        );
        assert!(matches!(
            p("04B2010C04 01020304 00").unwrap(),
            Instruction::ReadRecord { mac: Some(_), .. }
        ));
        assert_eq!(p("04B0000000").unwrap_err().status(), Sw::WRONG_LENGTH);
        assert_eq!(
            p("04B085020C 1CBD1F23F54F8C9A DC8B2D0F")
                .unwrap_err()
                .status(),
            Sw::WRONG_LENGTH
        );
        assert_eq!(p("00B0000001 00").unwrap_err().status(), Sw::WRONG_LENGTH);
        assert_eq!(p("00B2010D00").unwrap_err().status(), Sw::WRONG_P1_P2);
    }

    #[test]
    fn security_commands() {
        assert_eq!(
            p("0084000004").unwrap(),
            Instruction::GetChallenge { len: 4 }
        );
        assert_eq!(
            p("0084000010").unwrap(),
            Instruction::GetChallenge { len: 16 }
        );
        assert_eq!(p("0084000005").unwrap_err().status(), Sw::WRONG_LENGTH);
        assert_eq!(p("00840000").unwrap_err().status(), Sw::WRONG_LENGTH);
        assert_eq!(p("0084010004").unwrap_err().status(), Sw::WRONG_P1_P2);
        // TV-1.
        assert!(matches!(
            p("0082000108 74B0047DD681D96C").unwrap(),
            Instruction::ExternalAuthenticate { key_id: 1, proof: AuthProof::Cryptogram(c) } if c.len() == 8
        ));
        assert!(matches!(
            p("0082000A10 0102030405060708 1112131415161718").unwrap(),
            Instruction::ExternalAuthenticate { key_id: 0x0A, proof: AuthProof::Session { original, .. } } if original[0] == 0x11
        ));
        assert_eq!(
            p("0082000111 00000000000000000000000000000000 01")
                .unwrap_err()
                .status(),
            Sw::WRONG_LENGTH
        );
        // The VERIFY probe is a case-2 command.
        assert_eq!(
            p("0020000000").unwrap(),
            Instruction::Verify {
                pin_id: 0,
                pin: &[]
            }
        );
        assert_eq!(
            p("0020000112 123456789012345678").unwrap_err().status(),
            Sw::WRONG_LENGTH
        );
        assert_eq!(
            p("805E010005 0000FF3132").unwrap(),
            Instruction::ChangePin {
                pin_id: 0,
                old: &[0, 0],
                new: &[0x31, 0x32]
            }
        );
        assert_eq!(
            p("805E010003 0000FF").unwrap_err().status(),
            Sw::WRONG_LENGTH
        );
        assert_eq!(p("805E010003 000000").unwrap_err().status(), Sw::WRONG_DATA);
        assert_eq!(
            p("805E00000A 223344556677 1CE6AA60").unwrap(),
            Instruction::ReloadPin {
                pin_id: 0,
                pin: &[0x22, 0x33, 0x44, 0x55, 0x66, 0x77],
                mac: [0x1C, 0xE6, 0xAA, 0x60]
            }
        );
        assert_eq!(
            p("841E000204 3DE81709").unwrap_err().status(),
            Sw::WRONG_P1_P2
        );
        assert_eq!(
            p("841E000103 3DE817").unwrap_err().status(),
            Sw::WRONG_LENGTH
        );
        assert_eq!(
            p("801E000004 3DE81709").unwrap_err().status(),
            Sw::CLA_NOT_SUPPORTED
        );
        assert!(matches!(
            p("84D4390014 00112233445566778899AABBCCDDEEFF 01020304").unwrap(),
            Instruction::WriteKey { target: KeyTarget::Update(KeyType::ExternalAuth), key_id: 0, write } if write.mac.is_some()
        ));
        assert_eq!(
            p("80D401FF0D 36F0F0FF33 3636363636363636")
                .unwrap_err()
                .status(),
            Sw::WRONG_P1_P2
        );
        assert_eq!(
            p("80D4F9000D 36F0F0FF33 3636363636363636")
                .unwrap_err()
                .status(),
            Sw::WRONG_P1_P2
        );
    }

    #[test]
    fn purse_commands() {
        assert_eq!(
            p("805000020B 01 00001C37 000001000050 10").unwrap(),
            Instruction::InitializePurse {
                operation: Operation::Load,
                purse: PurseKind::Ep,
                key_id: 1,
                amount: 0x1C37,
                terminal_id: [0, 0, 1, 0, 0, 0x50],
            }
        );
        // case 3 (T=0) and Le 00 are fine; an Le shorter than the answer is refused up front
        assert!(p("805000020B 01 00001C37 000001000050").is_ok());
        assert!(p("805000020B 01 00001C37 000001000050 00").is_ok());
        assert_eq!(
            p("805000020B 01 00001C37 000001000050 0F")
                .unwrap_err()
                .status(),
            Sw::WRONG_LENGTH
        );
        assert!(p("805001010B 01 00000001 000001000050 0F").is_ok());
        assert_eq!(
            p("805003010B 01 00000001 000001000050 0F")
                .unwrap_err()
                .status(),
            Sw::WRONG_P1_P2
        );
        assert!(matches!(
            p("805002010B 01 00000001 000001000050 0F").unwrap(),
            Instruction::InitializePurse {
                operation: Operation::CashWithdraw,
                purse: PurseKind::Ed,
                ..
            }
        ));
        assert!(matches!(
            p("805005010B 01 00000001 000001000050 10").unwrap(),
            Instruction::InitializePurse {
                operation: Operation::Unload,
                ..
            }
        ));
        // unload, cash withdrawal and the overdraft update are ED only
        assert_eq!(
            p("805005020B 01 00000001 000001000050 10")
                .unwrap_err()
                .status(),
            Sw::WRONG_P1_P2
        );
        assert_eq!(
            p("805002020B 01 00000001 000001000050 0F")
                .unwrap_err()
                .status(),
            Sw::WRONG_P1_P2
        );
        assert_eq!(
            p("8050040107 01 000001000050 13").unwrap(),
            Instruction::InitializePurse {
                operation: Operation::UpdateOverdraft,
                purse: PurseKind::Ed,
                key_id: 1,
                amount: 0,
                terminal_id: [0, 0, 1, 0, 0, 0x50],
            }
        );
        for (apdu, sw) in [
            ("8050040207 01 000001000050 13", Sw::WRONG_P1_P2),
            ("8050040107 01 000001000050 10", Sw::WRONG_LENGTH),
            ("805004010B 01 00000001 000001000050 13", Sw::WRONG_LENGTH),
            (
                "805800010E 002710 20261204 120000 01020304 04",
                Sw::WRONG_P1_P2,
            ),
            (
                "805800000D 002710 20261204 1200 01020304 04",
                Sw::WRONG_LENGTH,
            ),
            (
                "805800000E 002710 20261204 120000 01020304 02",
                Sw::WRONG_LENGTH,
            ),
        ] {
            assert_eq!(p(apdu).unwrap_err().status(), sw, "{apdu}");
        }
        assert_eq!(
            p("805800000E 002710 20261204 120000 01020304 04").unwrap(),
            Instruction::UpdateOverdrawLimit {
                new_limit: 10_000,
                at: HostTime {
                    date: [0x20, 0x26, 0x12, 0x04],
                    time: [0x12, 0, 0],
                },
                mac2: [1, 2, 3, 4],
            }
        );
        assert_eq!(
            p("805005010B 01 00000001 000001000050 0F")
                .unwrap_err()
                .status(),
            Sw::WRONG_LENGTH
        );
        assert_eq!(
            p("805000030B 01 00000001 000001000050 10")
                .unwrap_err()
                .status(),
            Sw::WRONG_P1_P2
        );
        assert_eq!(
            p("805000020A 01 00000001 0000010000 10")
                .unwrap_err()
                .status(),
            Sw::WRONG_LENGTH
        );
        assert!(matches!(
            p("805200000B 20140825 103100 0641DCD8 04").unwrap(),
            Instruction::CreditForLoad { mac2: [0x06, 0x41, 0xDC, 0xD8], at } if at.time == [0x10, 0x31, 0]
        ));
        assert_eq!(
            p("805200010B 20140825 103100 0641DCD8 04")
                .unwrap_err()
                .status(),
            Sw::WRONG_P1_P2
        );
        assert!(matches!(
            p("805401000F 00000001 20110919 204812 CD573164 08").unwrap(),
            Instruction::DebitForPurchase {
                terminal_seq: [0, 0, 0, 1],
                mac1: [0xCD, 0x57, 0x31, 0x64],
                ..
            }
        ));
        assert!(matches!(
            p("805403000B 20110919 204812 CD573164 04").unwrap(),
            Instruction::CreditForUnload {
                mac2: [0xCD, 0x57, 0x31, 0x64],
                ..
            }
        ));
        assert_eq!(
            p("805403000B 20110919 204812 CD573164 02")
                .unwrap_err()
                .status(),
            Sw::WRONG_LENGTH
        );
        assert_eq!(
            p("805403000F 00000001 20110919 204812 CD573164 04")
                .unwrap_err()
                .status(),
            Sw::WRONG_LENGTH
        );
        assert_eq!(
            p("805401000F 00000001 20110919 204812 CD573164 04")
                .unwrap_err()
                .status(),
            Sw::WRONG_LENGTH
        );
        assert_eq!(
            p("805C000204").unwrap(),
            Instruction::GetBalance {
                purse: PurseKind::Ep
            }
        );
        assert_eq!(p("805C000304").unwrap_err().status(), Sw::WRONG_P1_P2);
        assert_eq!(p("805C000202").unwrap_err().status(), Sw::WRONG_LENGTH);
        assert_eq!(
            p("805A00090200FE08").unwrap(),
            Instruction::GetTransactionProof {
                txn_type: 9,
                counter: 0xFE
            }
        );
        assert_eq!(
            p("805A0008020000 08").unwrap_err().status(),
            Sw::WRONG_P1_P2
        );
        assert_eq!(
            p("805A000203000000 08").unwrap_err().status(),
            Sw::WRONG_LENGTH
        );
    }

    #[test]
    fn capp_cache_and_update_record_share_the_ins() {
        assert!(matches!(
            p("80DC02B803 020100").unwrap(),
            Instruction::UpdateCappDataCache {
                ef: EfSelector::Sfi(0x17),
                address: RecordAddress::Identifier(2, Occurrence::First),
                ..
            }
        ));
        assert!(matches!(
            p("80DC01BC03 020100").unwrap(),
            Instruction::UpdateCappDataCache {
                address: RecordAddress::Number(1),
                ..
            }
        ));
        assert_eq!(
            p("80DC01BB03 020100").unwrap_err().status(),
            Sw::WRONG_P1_P2
        );
        assert!(matches!(
            p("00DC01BC03 020100").unwrap(),
            Instruction::UpdateRecord { .. }
        ));
        // a CLA no DC command takes, and a purse INS with an ISO class
        assert_eq!(
            p("84DC01BC03 020100").unwrap_err().status(),
            Sw::CLA_NOT_SUPPORTED
        );
        assert_eq!(p("005C000204").unwrap_err().status(), Sw::CLA_NOT_SUPPORTED);
    }

    #[test]
    fn update_binary_takes_both_fmcos_instructions() {
        // FMCOS 2.0 §7.7.2: INS D6/D0.
        for apdu in ["00D6850102 1122", "00D0850102 1122"] {
            match p(apdu).unwrap() {
                Instruction::UpdateBinary { ef, offset, write } => {
                    assert_eq!(ef, EfSelector::Sfi(5));
                    assert_eq!(offset, 1);
                    assert_eq!(write.data, &[0x11, 0x22]);
                    assert_eq!(write.mac, None);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(p("00D0850100").unwrap_err().status(), Sw::WRONG_LENGTH);
        assert_eq!(
            p("80D0850102 1122").unwrap_err().status(),
            Sw::CLA_NOT_SUPPORTED
        );
    }

    #[test]
    fn secure_messaging_splits_the_mac() {
        match p("04D6850006 1122 160AC8C5").unwrap() {
            Instruction::UpdateBinary { write, .. } => {
                assert_eq!(write.data, &[0x11, 0x22]);
                assert_eq!(write.mac, Some([0x16, 0x0A, 0xC8, 0xC5]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p("04D6850003 112233").unwrap_err().status(),
            Sw::WRONG_LENGTH
        );
    }
}
