//! Execution of the purse commands: INITIALIZE FOR LOAD / PURCHASE / CASH WITHDRAW / CAPP
//! PURCHASE / UNLOAD / UPDATE, CREDIT FOR LOAD, CREDIT FOR UNLOAD, UPDATE OVERDRAW LIMIT, UPDATE
//! CAPP DATA CACHE, DEBIT FOR PURCHASE / CASH WITHDRAW, GET BALANCE and GET TRANSACTION PROOF
//! (FMCOS 2.0 ch. 8 as PBOC ED/EP; apdu-specs/purse.md). Layouts: `crate::purse`; MACs and
//! session keys: `crate::crypto::purse`.
//!
//! Every check that can refuse a load or purchase runs before its first write, and its writes
//! (purse state, log record, cached CAPP records) all go into the command's one NVM transaction,
//! which the engine commits on success and drops on refusal: a refused transaction changes
//! nothing, a completed one changes everything at once, also across a power cut.
//!
//! The command functions are `#[inline(never)]`: inlined into the engine's dispatch they made the
//! firmware a few hundred bytes larger (`card-os/size-report.sh`).

use super::command::{EfSelector, RecordAddress};
use super::context::Ctx;
use super::Response;
use crate::apdu::Sw;
use crate::crypto::purse::{self as pboc, HostTime, Load, Purchase};
use crate::crypto::{ct_eq, BlockCipher, CryptoError, Key};
use crate::fs::header::{FileKind, PURSE_BODY_LEN};
use crate::fs::{self, records, FileRef};
use crate::nvm::Nvm;
use crate::purse::{
    offset, Body, LogRecord, Operation, Proof, PurseKind, PurseState, Session, LOG_RECORD_LEN,
    OVERDRAFT_LIMIT_LEN, STATE_LEN,
};
use crate::security::keys::{KeyEntry, KeyType};

/// What INITIALIZE names (`80 50` data).
pub(super) struct Initialize {
    pub operation: Operation,
    pub purse: PurseKind,
    pub key_id: u8,
    pub amount: u32,
    pub terminal_id: [u8; 6],
}

/// The purse file a command uses and its body as stored.
struct OpenPurse {
    file: FileRef,
    body: Body,
}

/// Crypto errors cannot come from terminal input (keys are checked when written): an internal
/// error.
fn internal(_: CryptoError) -> Sw {
    Sw::NO_PRECISE_DIAGNOSIS
}

/// The ED (EF `0001`) or EP (EF `0002`) of the current DF, its use right met (FMCOS 2.0 §8.7 note 2).
fn open<N: Nvm>(ctx: &Ctx<'_, N>, kind: PurseKind) -> Result<OpenPurse, Sw> {
    let df = ctx.current_df()?;
    let file = fs::find_child(ctx.storage, &df, kind.fid())?
        .filter(|f| f.header.kind() == FileKind::Purse)
        .ok_or(Sw::FILE_NOT_FOUND)?;
    ctx.require(file.header.use_right())?;
    let raw = ctx.storage.read_array::<PURSE_BODY_LEN>(file.body())?;
    Ok(OpenPurse {
        file,
        body: Body::decode(&raw),
    })
}

/// The purse's log: the cyclic file of 23-byte records its log SFI names (FMCOS 2.0 appendix A-3).
fn log_file<N: Nvm>(ctx: &Ctx<'_, N>, purse: &FileRef) -> Result<FileRef, Sw> {
    let df = ctx.current_df()?;
    let log = fs::find_by_sfi(ctx.storage, &df, purse.header.purse_log_sfi())?
        .ok_or(Sw::FILE_NOT_FOUND)?;
    if log.header.kind() != FileKind::CyclicRecord || log.header.record_len() != LOG_RECORD_LEN {
        return Err(Sw::INCOMPATIBLE_FILE_STRUCTURE);
    }
    Ok(log)
}

/// A purse key of the current DF; one it does not have is an unsupported key index (`9403`).
fn purse_key<N: Nvm>(ctx: &Ctx<'_, N>, key_type: KeyType, id: u8) -> Result<KeyEntry, Sw> {
    ctx.key(key_type, id).map_err(|sw| match sw {
        Sw::REFERENCED_DATA_NOT_FOUND | Sw::FILE_NOT_FOUND => Sw::KEY_INDEX_NOT_SUPPORTED,
        other => other,
    })
}

/// The key a terminal names by index: the DLK (`3F`) of a load, the unload key (`3D`) of an
/// unload, the overdraft key (`3C`) of an overdraft update (FMCOS 2.0 §8.12.1.4: "修改透支限额密钥"),
/// the DPK (`3E`) of a purchase or cash withdrawal (§8.11.1: "消费密钥").
fn session_master<N: Nvm>(ctx: &Ctx<'_, N>, operation: Operation, id: u8) -> Result<KeyEntry, Sw> {
    let key_type = match operation {
        Operation::Load => KeyType::Load,
        Operation::Unload => KeyType::Unload,
        Operation::UpdateOverdraft => KeyType::Overdraft,
        Operation::Purchase | Operation::CappPurchase | Operation::CashWithdraw => {
            KeyType::Purchase
        }
    };
    let entry = purse_key(ctx, key_type, id)?;
    ctx.require(entry.use_right())?;
    Ok(entry)
}

/// The TAC key: `34` with the purse's TAC key id (FMCOS 2.0 §7.13), as `DTK_L ⊕ DTK_R` for 3DES
/// (§8.7.2).
fn tac_key<N: Nvm>(ctx: &Ctx<'_, N>, purse: &FileRef) -> Result<Key, Sw> {
    let entry = purse_key(ctx, KeyType::Internal, purse.header.purse_tac_key_id())?;
    Ok(pboc::tac_key(&ctx.load_key(&entry)?))
}

/// The balance after crediting `amount`: the holder's own money (balance − overdraft limit) at
/// most the maximum balance (`9401` beyond, ours).
fn credited(body: &Body, amount: u32) -> Result<u32, Sw> {
    body.state
        .balance
        .checked_add(amount)
        .filter(|_| body.funds() + i64::from(amount) <= i64::from(body.max_balance))
        .ok_or(Sw::INSUFFICIENT_FUNDS)
}

/// The balance after debiting `amount` (`9401` when it is short). The balance includes the
/// overdraft limit (FMCOS 2.0 §8.12), so an ED may spend down to `−limit` of its own money.
fn debited(state: &PurseState, amount: u32) -> Result<u32, Sw> {
    state
        .balance
        .checked_sub(amount)
        .ok_or(Sw::INSUFFICIENT_FUNDS)
}

/// INITIALIZE FOR LOAD / PURCHASE / CASH WITHDRAW / CAPP PURCHASE / UNLOAD `80 50` (FMCOS 2.0
/// §8.7.1, §8.8.1, §8.11.1, §8.9.1, §8.10.1). Writes nothing; opens the transaction in RAM. Loads
/// and unloads answer like a load (online counter, MAC1), the others like a purchase.
#[inline(never)]
pub(super) fn initialize<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    init: &Initialize,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let purse = open(ctx, init.purse)?;
    log_file(ctx, &purse.file)?;
    let entry = session_master(ctx, init.operation, init.key_id)?;
    // The TAC key is needed only once the MAC verified; a card without it refuses now.
    tac_key(ctx, &purse.file)?;
    let state = purse.body.state;
    let online = init.operation.is_online();
    let counter = if online {
        state.online_counter
    } else {
        state.offline_counter
    };
    // The counters never wrap: FFFF has no successor (PBOC 9402).
    if counter == u16::MAX {
        return Err(Sw::COUNTER_AT_MAX);
    }
    match init.operation {
        Operation::Load => {
            credited(&purse.body, init.amount)?;
        }
        // An overdraft update names no amount; its new balance is checked with the new limit.
        Operation::UpdateOverdraft => {}
        _ => {
            debited(&state, init.amount)?;
        }
    }
    let mut random = [0u8; 4];
    ctx.rng.fill(&mut random);
    let session = Session {
        operation: init.operation,
        purse: init.purse,
        key_id: init.key_id,
        random,
        amount: init.amount,
        terminal_id: init.terminal_id,
    };
    let update = init.operation == Operation::UpdateOverdraft;
    let limit = purse.body.overdraft_limit;
    response.push(&state.balance.to_be_bytes())?;
    response.push(&counter.to_be_bytes())?;
    if !online || update {
        // The overdraft limit (FMCOS 2.0 tables 8.8, 8.22; the old limit, table 8.27).
        response.push(&limit3(limit))?;
    }
    response.push(&[entry.version(), entry.algorithm_byte()])?;
    response.push(&random)?;
    if online {
        // PBOC ED/EP MAC1: SESLK = E(DLK, random ‖ onlineCounter ‖ 8000) (FMCOS 2.0 §8.7.1.4);
        // an unload's the same with the unload key and type 03 (§8.10.1.4), an overdraft
        // update's with the overdraft key over balance ‖ old limit ‖ 07 ‖ terminal (§8.12.1.4).
        let sesk =
            pboc::load_session_key(&ctx.load_key(&entry)?, &random, counter).map_err(internal)?;
        let mac1 = if update {
            pboc::overdraft_mac1(&sesk, state.balance, limit, &session.terminal_id)
        } else {
            pboc::load_mac1(&sesk, state.balance, &load_fields(&session))
        }
        .map_err(internal)?;
        response.push(&mac1)?;
    }
    ctx.ram.purse = Some(session);
    Ok(())
}

/// The 3 bytes of an overdraft limit (limits are at most `FFFFFF`).
fn limit3(limit: u32) -> [u8; OVERDRAFT_LIMIT_LEN] {
    let [_, l0, l1, l2] = limit.to_be_bytes();
    [l0, l1, l2]
}

fn load_fields(session: &Session) -> Load {
    Load {
        amount: session.amount,
        txn_type: session.txn_type(),
        terminal_id: session.terminal_id,
    }
}

/// Queues what a completed transaction changes: the purse state (the bytes from
/// [`offset::STATE`]: the state, and for an overdraft update the new limit after it) and a new
/// newest log record.
fn record_transaction<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    purse: &FileRef,
    state: &[u8],
    entry: &LogRecord,
) -> Result<(), Sw> {
    let log = log_file(ctx, purse)?;
    ctx.storage.write(purse.body() + offset::STATE, state)?;
    records::append_record(ctx.storage, &log, &entry.encode())?;
    Ok(())
}

/// CREDIT FOR LOAD `80 52` (FMCOS 2.0 §8.7.2): MAC2 checked, then balance, online counter, log
/// record and proof in one transaction; answers the TAC.
#[inline(never)]
pub(super) fn credit_for_load<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    at: &HostTime,
    mac2: &[u8; 4],
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let session = ctx
        .purse
        .filter(|s| s.operation == Operation::Load)
        .ok_or(Sw::INVALID_STATE)?;
    let purse = open(ctx, session.purse)?;
    let state = purse.body.state;
    let fields = load_fields(&session);
    let entry = session_master(ctx, Operation::Load, session.key_id)?;
    let seslk = pboc::load_session_key(
        &ctx.load_key(&entry)?,
        &session.random,
        state.online_counter,
    )
    .map_err(internal)?;
    // PBOC ED/EP MAC2 (FMCOS 2.0 §8.7.2.3), compared in constant time.
    let expected = pboc::load_mac2(&seslk, &fields, at).map_err(internal)?;
    if !ct_eq(&expected, mac2) {
        return Err(Sw::MAC_INVALID);
    }
    let balance = credited(&purse.body, session.amount)?;
    let next = state
        .online_counter
        .checked_add(1)
        .ok_or(Sw::COUNTER_AT_MAX)?;
    // PBOC ED/EP TAC over the new balance and the counter before its increment (§8.7.2.4).
    let tac = pboc::load_tac(
        &tac_key(ctx, &purse.file)?,
        balance,
        state.online_counter,
        &fields,
        at,
    )
    .map_err(internal)?;
    let txn_type = session.txn_type();
    let new_state = PurseState {
        balance,
        online_counter: next,
        offline_counter: state.offline_counter,
        last: Proof {
            txn_type,
            mac: *mac2,
            tac,
        },
    };
    let entry = LogRecord {
        counter: state.online_counter,
        overdraft_limit: purse.body.overdraft_limit,
        amount: session.amount,
        txn_type,
        terminal_id: session.terminal_id,
        at: *at,
    };
    record_transaction(ctx, &purse.file, &new_state.encode(), &entry)?;
    response.push(&tac)
}

/// CREDIT FOR UNLOAD `80 54 03` (FMCOS 2.0 §8.10.2): MAC2 checked under the unload session key,
/// then balance, online counter, log record and proof in one transaction; answers MAC3 (an unload
/// has no TAC). Its proof for GET TRANSACTION PROOF is MAC2 ‖ MAC3 (apdu-specs/purse.md).
#[inline(never)]
pub(super) fn credit_for_unload<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    at: &HostTime,
    mac2: &[u8; 4],
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let session = ctx
        .purse
        .filter(|s| s.operation == Operation::Unload)
        .ok_or(Sw::INVALID_STATE)?;
    let purse = open(ctx, session.purse)?;
    let state = purse.body.state;
    let fields = load_fields(&session);
    let entry = session_master(ctx, Operation::Unload, session.key_id)?;
    // SESULK = E(unload key, random ‖ onlineCounter ‖ 8000) (§8.10.2.3); its schedule serves
    // MAC2 and MAC3.
    let sesulk = BlockCipher::new(
        &pboc::load_session_key(
            &ctx.load_key(&entry)?,
            &session.random,
            state.online_counter,
        )
        .map_err(internal)?,
    );
    let expected = pboc::load_mac2(&sesulk, &fields, at).map_err(internal)?;
    if !ct_eq(&expected, mac2) {
        return Err(Sw::MAC_INVALID);
    }
    let balance = debited(&state, session.amount)?;
    let next = state
        .online_counter
        .checked_add(1)
        .ok_or(Sw::COUNTER_AT_MAX)?;
    // MAC3 over the new balance and the counter before its increment (§8.10.2.4).
    let mac3 =
        pboc::unload_mac3(&sesulk, balance, state.online_counter, &fields, at).map_err(internal)?;
    let txn_type = session.txn_type();
    let new_state = PurseState {
        balance,
        online_counter: next,
        offline_counter: state.offline_counter,
        last: Proof {
            txn_type,
            mac: *mac2,
            tac: mac3,
        },
    };
    let entry = LogRecord {
        counter: state.online_counter,
        overdraft_limit: purse.body.overdraft_limit,
        amount: session.amount,
        txn_type,
        terminal_id: session.terminal_id,
        at: *at,
    };
    record_transaction(ctx, &purse.file, &new_state.encode(), &entry)?;
    response.push(&mac3)
}

/// DEBIT FOR (CAPP) PURCHASE / CASH WITHDRAW `80 54 01` (FMCOS 2.0 §8.8.2, §8.9.3, §8.11.2: a
/// cash withdrawal is an ED purchase of type 04): MAC1 checked, then balance,
/// offline counter, log record, proof (and the cached CAPP records already pending) in one
/// transaction; answers TAC ‖ MAC2.
#[inline(never)]
pub(super) fn debit_for_purchase<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    terminal_seq: [u8; 4],
    at: HostTime,
    mac1: &[u8; 4],
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let session = ctx
        .purse
        .filter(|s| !s.operation.is_online())
        .ok_or(Sw::INVALID_STATE)?;
    let purse = open(ctx, session.purse)?;
    let state = purse.body.state;
    let entry = session_master(ctx, session.operation, session.key_id)?;
    // SESPK = E(DPK, random ‖ offlineCounter ‖ terminalSeq[2..4]) (FMCOS 2.0 §8.8.2.3); its
    // schedule serves MAC1 and MAC2.
    let sespk = BlockCipher::new(
        &pboc::purchase_session_key(
            &ctx.load_key(&entry)?,
            &session.random,
            state.offline_counter,
            &terminal_seq,
        )
        .map_err(internal)?,
    );
    let txn_type = session.txn_type();
    let fields = Purchase {
        amount: session.amount,
        txn_type,
        terminal_id: session.terminal_id,
        terminal_seq,
        at,
    };
    // PBOC ED/EP MAC1, compared in constant time.
    let expected = pboc::purchase_mac1(&sespk, &fields).map_err(internal)?;
    if !ct_eq(&expected, mac1) {
        return Err(Sw::MAC_INVALID);
    }
    let balance = debited(&state, session.amount)?;
    let next = state
        .offline_counter
        .checked_add(1)
        .ok_or(Sw::COUNTER_AT_MAX)?;
    // PBOC ED/EP MAC2 and TAC (FMCOS 2.0 §8.8.2.4).
    let mac2 = pboc::purchase_mac2(&sespk, session.amount).map_err(internal)?;
    let tac = pboc::purchase_tac(&tac_key(ctx, &purse.file)?, &fields).map_err(internal)?;
    let new_state = PurseState {
        balance,
        online_counter: state.online_counter,
        offline_counter: next,
        last: Proof {
            txn_type,
            mac: mac2,
            tac,
        },
    };
    let entry = LogRecord {
        counter: state.offline_counter,
        overdraft_limit: purse.body.overdraft_limit,
        amount: session.amount,
        txn_type,
        terminal_id: session.terminal_id,
        at,
    };
    record_transaction(ctx, &purse.file, &new_state.encode(), &entry)?;
    response.push(&tac)?;
    response.push(&mac2)
}

/// UPDATE OVERDRAW LIMIT `80 58` (FMCOS 2.0 §8.12.2): MAC2 checked under the session key of
/// INITIALIZE FOR UPDATE, then the new limit, the balance moved by the limit's change, the online
/// counter, the log record and the proof in one transaction; answers the TAC (under DTK itself).
#[inline(never)]
pub(super) fn update_overdraw_limit<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    new_limit: u32,
    at: &HostTime,
    mac2: &[u8; 4],
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let session = ctx
        .purse
        .filter(|s| s.operation == Operation::UpdateOverdraft)
        .ok_or(Sw::INVALID_STATE)?;
    let purse = open(ctx, session.purse)?;
    let state = purse.body.state;
    {
        let entry = session_master(ctx, Operation::UpdateOverdraft, session.key_id)?;
        // SESK = E(overdraft key, random ‖ onlineCounter ‖ 8000) (§8.12.2.3).
        let sesk = pboc::load_session_key(
            &ctx.load_key(&entry)?,
            &session.random,
            state.online_counter,
        )
        .map_err(internal)?;
        let expected =
            pboc::overdraft_mac2(&sesk, new_limit, &session.terminal_id, at).map_err(internal)?;
        if !ct_eq(&expected, mac2) {
            return Err(Sw::MAC_INVALID);
        }
    }
    // The balance includes the limit: it moves by the limit's change (§8.12.2.5: "将当前电子存折
    // 余额置为新的电子存折余额"); the holder's own money stays. Overdrawn by more than the new
    // limit, the balance would be negative: 9401 (§8.12.2.5).
    let balance = u32::try_from(purse.body.funds() + i64::from(new_limit))
        .map_err(|_| Sw::INSUFFICIENT_FUNDS)?;
    let next = state
        .online_counter
        .checked_add(1)
        .ok_or(Sw::COUNTER_AT_MAX)?;
    // The TAC with DTK itself, not DTK_L ⊕ DTK_R (§8.12.2.4).
    let dtk_entry = purse_key(ctx, KeyType::Internal, purse.file.header.purse_tac_key_id())?;
    let tac = pboc::overdraft_tac(
        &ctx.load_key(&dtk_entry)?,
        balance,
        state.online_counter,
        new_limit,
        &session.terminal_id,
        at,
    )
    .map_err(internal)?;
    let txn_type = session.txn_type();
    let new_state = PurseState {
        balance,
        online_counter: next,
        offline_counter: state.offline_counter,
        last: Proof {
            txn_type,
            mac: *mac2,
            tac,
        },
    };
    // State and limit are adjacent: one journal entry.
    let mut bytes = [0u8; STATE_LEN + OVERDRAFT_LIMIT_LEN];
    for (dst, src) in bytes
        .iter_mut()
        .zip(new_state.encode().iter().chain(&limit3(new_limit)))
    {
        *dst = *src;
    }
    // Table 8.30: the counter before its increment (the online one, which this transaction
    // advances and its TAC covers), the new limit, no amount.
    let entry = LogRecord {
        counter: state.online_counter,
        overdraft_limit: new_limit,
        amount: 0,
        txn_type,
        terminal_id: session.terminal_id,
        at: *at,
    };
    record_transaction(ctx, &purse.file, &bytes, &entry)?;
    response.push(&tac)
}

/// UPDATE CAPP DATA CACHE `80 DC` (FMCOS 2.0 §8.9.2): the record is checked and queued, and the
/// engine keeps the transaction open, so it is written by the DEBIT that follows or not at all.
#[inline(never)]
pub(super) fn update_capp_data_cache<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    ef: EfSelector,
    address: RecordAddress,
    data: &[u8],
) -> Result<(), Sw> {
    let session = ctx
        .purse
        .filter(|s| s.operation == Operation::CappPurchase)
        .ok_or(Sw::INVALID_STATE)?;
    let file = ctx.ef(ef)?;
    if !matches!(
        file.header.kind(),
        FileKind::FixedRecord | FileKind::VariableRecord
    ) {
        return Err(Sw::INCOMPATIBLE_FILE_STRUCTURE);
    }
    ctx.require(file.header.write_right())?;
    // This command carries no MAC: a file whose writes need one cannot take it.
    if file.header.write_needs_mac() {
        return Err(Sw::SM_MAC_MISSING);
    }
    let number = match address {
        // Record n + 1 by number appends, as UPDATE RECORD does (files.md).
        RecordAddress::Number(n) if n != 0 => usize::from(n),
        _ => super::files::locate(ctx, &file, address)?,
    };
    records::update_record(ctx.storage, &file, number, data)?;
    ctx.ram.record_pointer = Some(number);
    ctx.ram.purse = Some(session);
    ctx.keep_open = true;
    Ok(())
}

/// GET BALANCE `80 5C` (FMCOS 2.0 §8.14).
#[inline(never)]
pub(super) fn get_balance<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    kind: PurseKind,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let purse = open(ctx, kind)?;
    response.push(&purse.body.state.balance.to_be_bytes())
}

/// GET TRANSACTION PROOF `80 5A` (FMCOS 2.0 §8.13): MAC ‖ TAC of the last completed transaction
/// if it has this type and counter, else `9406`.
#[inline(never)]
pub(super) fn get_transaction_proof<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    txn_type: u8,
    counter: u16,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let kind = PurseKind::of_transaction_type(txn_type).ok_or(Sw::MAC_NOT_AVAILABLE)?;
    let purse = open(ctx, kind)?;
    let proof = purse
        .body
        .state
        .proof_of(txn_type, counter)
        .ok_or(Sw::MAC_NOT_AVAILABLE)?;
    response.push(&proof.mac)?;
    response.push(&proof.tac)
}
