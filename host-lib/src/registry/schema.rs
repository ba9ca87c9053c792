//! The registry's schema, as one ordered list of migrations for both backends.
//!
//! Each step has its SQLite and its PostgreSQL text (the dialects' types and trigger forms; the
//! same tables, columns, constraints and rules). SQLite keeps the schema version in
//! `PRAGMA user_version`, PostgreSQL in the table `citizencard_schema`. Opening a database
//! applies every later migration in order, each in its own transaction together with the new
//! version (SQLite: exclusive; PostgreSQL: under an advisory lock), so a failed step leaves the
//! database at the previous version. A database whose version is newer than this code knows is
//! refused rather than misread.
//!
//! Append-only tables (`audit_log`, `card_status_history`, `fees`, `purse_ledger`,
//! `card_applications`, `chip_credits`) have triggers
//! that abort any `UPDATE` or `DELETE`. Of `blacklist`, only `lifted_at` may be set, once.
//!
//! From version 4 on, the audit log is a hash chain (`super::chain`), and every migration ends,
//! inside its transaction, with `chain::after_migration`: rows it added or changed are attested
//! by an anchor record, so that `Registry::verify` stays clean after an upgrade.

use super::db::{Begin, Conn, Db, Dialect, OptionalExtension, Tx};

use super::error::RegistryError;

/// One schema step.
pub struct Migration {
    /// The `user_version` after this step.
    pub version: u32,
    /// What it does.
    pub description: &'static str,
    /// The SQL on SQLite.
    pub sqlite: &'static str,
    /// The same step on PostgreSQL (the dialect's types and trigger forms; `pg_` functions are
    /// the PostgreSQL side of the SQLite `RAISE(ABORT, …)` triggers).
    pub postgres: &'static str,
}

/// Every migration, in order. Never edit a released step: add a new one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "people, cards, card status history and the append-only audit log",
        sqlite: r#"
CREATE TABLE people (
    id          INTEGER PRIMARY KEY,
    id_number   TEXT NOT NULL UNIQUE CHECK (length(id_number) = 18),
    name        TEXT NOT NULL CHECK (name <> ''),
    sex         TEXT NOT NULL CHECK (sex IN ('1', '2')),
    ethnicity   TEXT NOT NULL CHECK (length(ethnicity) = 2),
    birthplace  TEXT NOT NULL CHECK (length(birthplace) = 6),
    birth_date  TEXT NOT NULL,
    card_class  TEXT NOT NULL CHECK (card_class IN ('1', '2', '3', '4')),
    eligibility TEXT NOT NULL CHECK (eligibility IN ('household', 'insured', 'none')),
    phone       TEXT,
    address     TEXT,
    photo       BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE cards (
    card_number    TEXT PRIMARY KEY CHECK (length(card_number) = 9),
    serial         INTEGER NOT NULL UNIQUE,
    person_id      INTEGER NOT NULL REFERENCES people(id),
    status         TEXT NOT NULL
                   CHECK (status IN ('personalizing', 'active', 'lost', 'cancelled', 'aborted')),
    card_class     TEXT NOT NULL CHECK (card_class IN ('1', '2', '3', '4')),
    chip_id        TEXT,
    key_set        TEXT,
    issue_date     TEXT NOT NULL,
    expiry_date    TEXT NOT NULL,
    replaces       TEXT REFERENCES cards(card_number),
    replace_reason TEXT,
    replaced_by    TEXT REFERENCES cards(card_number),
    closed_reason  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT;
-- One card in use per person (Art. 13-14); one issuance in progress per person.
CREATE UNIQUE INDEX cards_one_in_use ON cards(person_id) WHERE status IN ('active', 'lost');
CREATE UNIQUE INDEX cards_one_personalizing ON cards(person_id) WHERE status = 'personalizing';
CREATE INDEX cards_by_status ON cards(status);

CREATE TABLE card_status_history (
    id          INTEGER PRIMARY KEY,
    card_number TEXT NOT NULL REFERENCES cards(card_number),
    at          TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT,
    operator    TEXT NOT NULL
) STRICT;
CREATE INDEX history_by_card ON card_status_history(card_number);
CREATE TRIGGER history_no_update BEFORE UPDATE ON card_status_history
BEGIN SELECT RAISE(ABORT, 'card_status_history is append-only: rows cannot be changed'); END;
CREATE TRIGGER history_no_delete BEFORE DELETE ON card_status_history
BEGIN SELECT RAISE(ABORT, 'card_status_history is append-only: rows cannot be deleted'); END;

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    operator    TEXT NOT NULL,
    action      TEXT NOT NULL,
    card_number TEXT,
    id_number   TEXT,
    details     TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_card ON audit_log(card_number);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be changed'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be deleted'); END;
"#,
        postgres: r#"
-- The PostgreSQL side of SQLite's RAISE(ABORT, …) triggers: refuses with the trigger's message.
CREATE FUNCTION cc_refuse() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END $fn$;

CREATE TABLE people (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    id_number   TEXT NOT NULL UNIQUE CHECK (length(id_number) = 18),
    name        TEXT NOT NULL CHECK (name <> ''),
    sex         TEXT NOT NULL CHECK (sex IN ('1', '2')),
    ethnicity   TEXT NOT NULL CHECK (length(ethnicity) = 2),
    birthplace  TEXT NOT NULL CHECK (length(birthplace) = 6),
    birth_date  TEXT NOT NULL,
    card_class  TEXT NOT NULL CHECK (card_class IN ('1', '2', '3', '4')),
    eligibility TEXT NOT NULL CHECK (eligibility IN ('household', 'insured', 'none')),
    phone       TEXT,
    address     TEXT,
    photo       BYTEA,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE cards (
    card_number    TEXT PRIMARY KEY CHECK (length(card_number) = 9),
    serial         BIGINT NOT NULL UNIQUE,
    person_id      BIGINT NOT NULL REFERENCES people(id),
    status         TEXT NOT NULL
                   CHECK (status IN ('personalizing', 'active', 'lost', 'cancelled', 'aborted')),
    card_class     TEXT NOT NULL CHECK (card_class IN ('1', '2', '3', '4')),
    chip_id        TEXT,
    key_set        TEXT,
    issue_date     TEXT NOT NULL,
    expiry_date    TEXT NOT NULL,
    replaces       TEXT REFERENCES cards(card_number),
    replace_reason TEXT,
    replaced_by    TEXT REFERENCES cards(card_number),
    closed_reason  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE UNIQUE INDEX cards_one_in_use ON cards(person_id) WHERE status IN ('active', 'lost');
CREATE UNIQUE INDEX cards_one_personalizing ON cards(person_id) WHERE status = 'personalizing';
CREATE INDEX cards_by_status ON cards(status);
CREATE INDEX cards_by_person ON cards(person_id);

CREATE TABLE card_status_history (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    card_number TEXT NOT NULL REFERENCES cards(card_number),
    at          TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT,
    operator    TEXT NOT NULL
);
CREATE INDEX history_by_card ON card_status_history(card_number);
CREATE TRIGGER history_no_update BEFORE UPDATE ON card_status_history FOR EACH ROW
EXECUTE FUNCTION cc_refuse('card_status_history is append-only: rows cannot be changed');
CREATE TRIGGER history_no_delete BEFORE DELETE ON card_status_history FOR EACH ROW
EXECUTE FUNCTION cc_refuse('card_status_history is append-only: rows cannot be deleted');
CREATE TRIGGER history_no_truncate BEFORE TRUNCATE ON card_status_history
EXECUTE FUNCTION cc_refuse('card_status_history is append-only: rows cannot be deleted');

CREATE TABLE audit_log (
    id          BIGINT PRIMARY KEY,
    at          TEXT NOT NULL,
    operator    TEXT NOT NULL,
    action      TEXT NOT NULL,
    card_number TEXT,
    id_number   TEXT,
    details     TEXT NOT NULL
);
CREATE INDEX audit_by_card ON audit_log(card_number);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log FOR EACH ROW
EXECUTE FUNCTION cc_refuse('audit_log is append-only: rows cannot be changed');
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log FOR EACH ROW
EXECUTE FUNCTION cc_refuse('audit_log is append-only: rows cannot be deleted');
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_log
EXECUTE FUNCTION cc_refuse('audit_log is append-only: rows cannot be deleted');
"#,
    },
    Migration {
        version: 2,
        description: "fees, the purse ledger and the blacklist",
        sqlite: r#"
CREATE TABLE fees (
    id           INTEGER PRIMARY KEY,
    card_number  TEXT NOT NULL REFERENCES cards(card_number),
    kind         TEXT NOT NULL CHECK (kind IN ('first_issue', 'reissue', 'replacement')),
    reason       TEXT,
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    at           TEXT NOT NULL,
    operator     TEXT NOT NULL
) STRICT;
CREATE INDEX fees_by_card ON fees(card_number);
CREATE TRIGGER fees_no_update BEFORE UPDATE ON fees
BEGIN SELECT RAISE(ABORT, 'fees is append-only: rows cannot be changed'); END;
CREATE TRIGGER fees_no_delete BEFORE DELETE ON fees
BEGIN SELECT RAISE(ABORT, 'fees is append-only: rows cannot be deleted'); END;

-- amount_cents is signed: positive into the purse, negative out of it.
CREATE TABLE purse_ledger (
    id           INTEGER PRIMARY KEY,
    card_number  TEXT NOT NULL REFERENCES cards(card_number),
    kind         TEXT NOT NULL
                 CHECK (kind IN ('load', 'purchase', 'refund', 'transfer_out', 'transfer_in')),
    amount_cents INTEGER NOT NULL,
    at           TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    counterpart  TEXT REFERENCES cards(card_number),
    terminal_id  TEXT,
    txn_counter  INTEGER,
    tac          TEXT,
    operator     TEXT NOT NULL,
    CHECK (CASE kind
        WHEN 'load' THEN amount_cents > 0
        WHEN 'transfer_in' THEN amount_cents > 0
        WHEN 'purchase' THEN amount_cents < 0 AND txn_counter IS NOT NULL AND tac IS NOT NULL
        ELSE amount_cents <= 0 END)
) STRICT;
CREATE INDEX ledger_by_card ON purse_ledger(card_number);
-- A purchase is recorded once: the card's offline counter identifies it.
CREATE UNIQUE INDEX ledger_purchase_once ON purse_ledger(card_number, txn_counter)
    WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_load_once ON purse_ledger(card_number, txn_counter)
    WHERE kind = 'load' AND txn_counter IS NOT NULL;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON purse_ledger
BEGIN SELECT RAISE(ABORT, 'purse_ledger is append-only: rows cannot be changed'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON purse_ledger
BEGIN SELECT RAISE(ABORT, 'purse_ledger is append-only: rows cannot be deleted'); END;

CREATE TABLE blacklist (
    id          INTEGER PRIMARY KEY,
    card_number TEXT NOT NULL REFERENCES cards(card_number),
    reason      TEXT NOT NULL CHECK (reason IN ('lost', 'replaced', 'cancelled')),
    from_at     TEXT NOT NULL,
    lifted_at   TEXT,
    operator    TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX blacklist_one_open ON blacklist(card_number) WHERE lifted_at IS NULL;
CREATE TRIGGER blacklist_only_lift BEFORE UPDATE ON blacklist
WHEN OLD.lifted_at IS NOT NULL OR NEW.lifted_at IS NULL
  OR NEW.card_number IS NOT OLD.card_number OR NEW.reason IS NOT OLD.reason
  OR NEW.from_at IS NOT OLD.from_at OR NEW.operator IS NOT OLD.operator OR NEW.id IS NOT OLD.id
BEGIN SELECT RAISE(ABORT, 'blacklist entries can only be lifted, once'); END;
CREATE TRIGGER blacklist_no_delete BEFORE DELETE ON blacklist
BEGIN SELECT RAISE(ABORT, 'blacklist entries cannot be deleted; lift them instead'); END;
"#,
        postgres: r#"
CREATE TABLE fees (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    card_number  TEXT NOT NULL REFERENCES cards(card_number),
    kind         TEXT NOT NULL CHECK (kind IN ('first_issue', 'reissue', 'replacement')),
    reason       TEXT,
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    at           TEXT NOT NULL,
    operator     TEXT NOT NULL
);
CREATE INDEX fees_by_card ON fees(card_number);
CREATE TRIGGER fees_no_update BEFORE UPDATE ON fees FOR EACH ROW
EXECUTE FUNCTION cc_refuse('fees is append-only: rows cannot be changed');
CREATE TRIGGER fees_no_delete BEFORE DELETE ON fees FOR EACH ROW
EXECUTE FUNCTION cc_refuse('fees is append-only: rows cannot be deleted');
CREATE TRIGGER fees_no_truncate BEFORE TRUNCATE ON fees
EXECUTE FUNCTION cc_refuse('fees is append-only: rows cannot be deleted');

CREATE TABLE purse_ledger (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    card_number  TEXT NOT NULL REFERENCES cards(card_number),
    kind         TEXT NOT NULL
                 CHECK (kind IN ('load', 'purchase', 'refund', 'transfer_out', 'transfer_in')),
    amount_cents BIGINT NOT NULL,
    at           TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    counterpart  TEXT REFERENCES cards(card_number),
    terminal_id  TEXT,
    txn_counter  BIGINT,
    tac          TEXT,
    operator     TEXT NOT NULL,
    CHECK (CASE kind
        WHEN 'load' THEN amount_cents > 0
        WHEN 'transfer_in' THEN amount_cents > 0
        WHEN 'purchase' THEN amount_cents < 0 AND txn_counter IS NOT NULL AND tac IS NOT NULL
        ELSE amount_cents <= 0 END)
);
CREATE INDEX ledger_by_card ON purse_ledger(card_number);
CREATE UNIQUE INDEX ledger_purchase_once ON purse_ledger(card_number, txn_counter)
    WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_load_once ON purse_ledger(card_number, txn_counter)
    WHERE kind = 'load' AND txn_counter IS NOT NULL;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON purse_ledger FOR EACH ROW
EXECUTE FUNCTION cc_refuse('purse_ledger is append-only: rows cannot be changed');
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON purse_ledger FOR EACH ROW
EXECUTE FUNCTION cc_refuse('purse_ledger is append-only: rows cannot be deleted');
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON purse_ledger
EXECUTE FUNCTION cc_refuse('purse_ledger is append-only: rows cannot be deleted');

CREATE TABLE blacklist (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    card_number TEXT NOT NULL REFERENCES cards(card_number),
    reason      TEXT NOT NULL CHECK (reason IN ('lost', 'replaced', 'cancelled')),
    from_at     TEXT NOT NULL,
    lifted_at   TEXT,
    operator    TEXT NOT NULL
);
CREATE UNIQUE INDEX blacklist_one_open ON blacklist(card_number) WHERE lifted_at IS NULL;
CREATE TRIGGER blacklist_only_lift BEFORE UPDATE ON blacklist FOR EACH ROW
WHEN (OLD.lifted_at IS NOT NULL OR NEW.lifted_at IS NULL
  OR NEW.card_number IS DISTINCT FROM OLD.card_number OR NEW.reason IS DISTINCT FROM OLD.reason
  OR NEW.from_at IS DISTINCT FROM OLD.from_at OR NEW.operator IS DISTINCT FROM OLD.operator
  OR NEW.id IS DISTINCT FROM OLD.id)
EXECUTE FUNCTION cc_refuse('blacklist entries can only be lifted, once');
CREATE TRIGGER blacklist_no_delete BEFORE DELETE ON blacklist FOR EACH ROW
EXECUTE FUNCTION cc_refuse('blacklist entries cannot be deleted; lift them instead');
CREATE TRIGGER blacklist_no_truncate BEFORE TRUNCATE ON blacklist
EXECUTE FUNCTION cc_refuse('blacklist entries cannot be deleted; lift them instead');
"#,
    },
    Migration {
        version: 3,
        description: "applications on demand and balances carried onto replacement chips",
        sqlite: r#"
-- Every change of an application on a card (Art. 11-12), oldest first; a card's current state
-- of an application is its newest row.
CREATE TABLE card_applications (
    id          INTEGER PRIMARY KEY,
    card_number TEXT NOT NULL REFERENCES cards(card_number),
    name        TEXT NOT NULL CHECK (name <> ''),
    state       TEXT NOT NULL CHECK (state IN ('enabled', 'disabled', 'blocked')),
    at          TEXT NOT NULL,
    operator    TEXT NOT NULL,
    details     TEXT NOT NULL
) STRICT;
CREATE INDEX applications_by_card ON card_applications(card_number, name);
CREATE TRIGGER applications_no_update BEFORE UPDATE ON card_applications
BEGIN SELECT RAISE(ABORT, 'card_applications is append-only: rows cannot be changed'); END;
CREATE TRIGGER applications_no_delete BEFORE DELETE ON card_applications
BEGIN SELECT RAISE(ABORT, 'card_applications is append-only: rows cannot be deleted'); END;

-- A balance moved to a replacement card (ledger transfer_in) is money the registry owes that
-- card's chip until the load host has credited it: one row per credit, with the card's proof.
CREATE TABLE chip_credits (
    id           INTEGER PRIMARY KEY,
    card_number  TEXT NOT NULL REFERENCES cards(card_number),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    txn_counter  INTEGER NOT NULL,
    tac          TEXT NOT NULL,
    at           TEXT NOT NULL,
    operator     TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX chip_credits_once ON chip_credits(card_number, txn_counter);
CREATE TRIGGER chip_credits_no_update BEFORE UPDATE ON chip_credits
BEGIN SELECT RAISE(ABORT, 'chip_credits is append-only: rows cannot be changed'); END;
CREATE TRIGGER chip_credits_no_delete BEFORE DELETE ON chip_credits
BEGIN SELECT RAISE(ABORT, 'chip_credits is append-only: rows cannot be deleted'); END;
"#,
        postgres: r#"
CREATE TABLE card_applications (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    card_number TEXT NOT NULL REFERENCES cards(card_number),
    name        TEXT NOT NULL CHECK (name <> ''),
    state       TEXT NOT NULL CHECK (state IN ('enabled', 'disabled', 'blocked')),
    at          TEXT NOT NULL,
    operator    TEXT NOT NULL,
    details     TEXT NOT NULL
);
CREATE INDEX applications_by_card ON card_applications(card_number, name);
CREATE TRIGGER applications_no_update BEFORE UPDATE ON card_applications FOR EACH ROW
EXECUTE FUNCTION cc_refuse('card_applications is append-only: rows cannot be changed');
CREATE TRIGGER applications_no_delete BEFORE DELETE ON card_applications FOR EACH ROW
EXECUTE FUNCTION cc_refuse('card_applications is append-only: rows cannot be deleted');
CREATE TRIGGER applications_no_truncate BEFORE TRUNCATE ON card_applications
EXECUTE FUNCTION cc_refuse('card_applications is append-only: rows cannot be deleted');

CREATE TABLE chip_credits (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    card_number  TEXT NOT NULL REFERENCES cards(card_number),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    txn_counter  BIGINT NOT NULL,
    tac          TEXT NOT NULL,
    at           TEXT NOT NULL,
    operator     TEXT NOT NULL
);
CREATE UNIQUE INDEX chip_credits_once ON chip_credits(card_number, txn_counter);
CREATE TRIGGER chip_credits_no_update BEFORE UPDATE ON chip_credits FOR EACH ROW
EXECUTE FUNCTION cc_refuse('chip_credits is append-only: rows cannot be changed');
CREATE TRIGGER chip_credits_no_delete BEFORE DELETE ON chip_credits FOR EACH ROW
EXECUTE FUNCTION cc_refuse('chip_credits is append-only: rows cannot be deleted');
CREATE TRIGGER chip_credits_no_truncate BEFORE TRUNCATE ON chip_credits
EXECUTE FUNCTION cc_refuse('chip_credits is append-only: rows cannot be deleted');
"#,
    },
    Migration {
        version: 4,
        description: "the audit log as a hash chain with row images, and its head",
        // The Rust step `chain::after_migration` then chains the existing records in id order,
        // sets the head, puts `audit_no_update` back and anchors the rows as found.
        sqlite: r#"
ALTER TABLE audit_log ADD COLUMN effects TEXT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
-- The newest record of the chain: a tail cut off the chain no longer reaches it.
CREATE TABLE audit_head (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT NOT NULL
) STRICT;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END;
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head WHEN NEW.last_id <= OLD.last_id
BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END;
DROP TRIGGER audit_no_update;
"#,
        postgres: r#"
ALTER TABLE audit_log ADD COLUMN effects TEXT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE TABLE audit_head (
    one       BIGINT PRIMARY KEY CHECK (one = 1),
    last_id   BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head FOR EACH ROW
EXECUTE FUNCTION cc_refuse('audit_head cannot be deleted');
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
EXECUTE FUNCTION cc_refuse('audit_head cannot be deleted');
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head FOR EACH ROW
WHEN (NEW.last_id <= OLD.last_id)
EXECUTE FUNCTION cc_refuse('audit_head only moves forward');
DROP TRIGGER audit_no_update ON audit_log;

-- No change of an audited table without its audit record in the same transaction (the
-- PostgreSQL side of the SQLite connection's hooks, see chain.rs): a change notes its row in the
-- session's cc_audit_touched and marks the transaction unaudited; the next audit record clears
-- the mark; a deferred constraint trigger refuses the commit while the mark is set.
CREATE FUNCTION cc_audit_touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF to_regclass('pg_temp.cc_audit_touched') IS NULL THEN
        CREATE TEMP TABLE cc_audit_touched (tbl TEXT NOT NULL, key TEXT NOT NULL)
            ON COMMIT DELETE ROWS;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO pg_temp.cc_audit_touched VALUES (TG_TABLE_NAME, to_jsonb(OLD) ->> TG_ARGV[0]);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO pg_temp.cc_audit_touched VALUES (TG_TABLE_NAME, to_jsonb(NEW) ->> TG_ARGV[0]);
    END IF;
    PERFORM set_config('citizencard.unaudited', TG_TABLE_NAME, true);
    RETURN NULL;
END $fn$;
CREATE FUNCTION cc_audit_check() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF coalesce(current_setting('citizencard.unaudited', true), '') <> '' THEN
        RAISE EXCEPTION 'a change of % without an audit record after it is refused: every change of an audited table is committed with its audit record',
            current_setting('citizencard.unaudited', true)
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $fn$;
CREATE FUNCTION cc_audit_appended() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM set_config('citizencard.unaudited', '', true);
    RETURN NEW;
END $fn$;
CREATE TRIGGER audit_appended BEFORE INSERT ON audit_log FOR EACH ROW
EXECUTE FUNCTION cc_audit_appended();
"#,
    },
    Migration {
        version: 5,
        description: "issuance leases, carry-over intents, one ledger row per card transaction",
        sqlite: r#"
-- A card being personalized belongs to one live station (issue 9): the station that reserved or
-- resumed it holds its lease until it completes or aborts the issuance, or the lease expires,
-- or (same host) its process is gone.
CREATE TABLE issue_leases (
    card_number TEXT PRIMARY KEY REFERENCES cards(card_number),
    station     TEXT NOT NULL CHECK (station <> ''),
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    taken_at    TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT;

-- A carried-over balance about to be loaded onto a replacement chip: written (with the load
-- host's pending transaction) before CREDIT FOR LOAD is sent, so a re-run asks the card
-- whether that CREDIT happened instead of loading again. outcome is set once.
CREATE TABLE carry_over_intents (
    id           INTEGER PRIMARY KEY,
    card_number  TEXT NOT NULL REFERENCES cards(card_number),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    txn_counter  INTEGER NOT NULL,
    pending      TEXT NOT NULL,
    at           TEXT NOT NULL,
    operator     TEXT NOT NULL,
    outcome      TEXT CHECK (outcome IN ('done', 'not_done')),
    settled_at   TEXT
) STRICT;
-- A counter whose CREDIT did not happen is used again by the next INITIALIZE FOR LOAD.
CREATE UNIQUE INDEX carry_over_once ON carry_over_intents(card_number, txn_counter)
    WHERE outcome IS NULL OR outcome = 'done';
CREATE UNIQUE INDEX carry_over_one_open ON carry_over_intents(card_number) WHERE outcome IS NULL;
CREATE TRIGGER carry_over_settle_once BEFORE UPDATE ON carry_over_intents
WHEN OLD.outcome IS NOT NULL OR NEW.outcome IS NULL OR NEW.settled_at IS NULL
  OR NEW.card_number IS NOT OLD.card_number OR NEW.amount_cents IS NOT OLD.amount_cents
  OR NEW.txn_counter IS NOT OLD.txn_counter OR NEW.pending IS NOT OLD.pending
  OR NEW.at IS NOT OLD.at OR NEW.operator IS NOT OLD.operator OR NEW.id IS NOT OLD.id
BEGIN SELECT RAISE(ABORT, 'a carry-over intent is settled once and never changed'); END;
CREATE TRIGGER carry_over_no_delete BEFORE DELETE ON carry_over_intents
BEGIN SELECT RAISE(ABORT, 'carry_over_intents is append-only: rows cannot be deleted'); END;

-- A card's online counter counts loads and carried-over credits alike: one of the two, once.
CREATE TRIGGER ledger_load_not_a_credit BEFORE INSERT ON purse_ledger
WHEN NEW.kind = 'load' AND NEW.txn_counter IS NOT NULL AND EXISTS (SELECT 1 FROM chip_credits
    WHERE card_number = NEW.card_number AND txn_counter = NEW.txn_counter)
BEGIN SELECT RAISE(ABORT, 'this load counter is recorded as a carried-over credit'); END;
CREATE TRIGGER credit_not_a_load BEFORE INSERT ON chip_credits
WHEN EXISTS (SELECT 1 FROM purse_ledger WHERE card_number = NEW.card_number AND kind = 'load'
    AND txn_counter = NEW.txn_counter)
BEGIN SELECT RAISE(ABORT, 'this load counter is recorded as a load'); END;
"#,
        postgres: r#"
CREATE TABLE issue_leases (
    card_number TEXT PRIMARY KEY REFERENCES cards(card_number),
    station     TEXT NOT NULL CHECK (station <> ''),
    host        TEXT NOT NULL,
    pid         BIGINT NOT NULL,
    taken_at    TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

CREATE TABLE carry_over_intents (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    card_number  TEXT NOT NULL REFERENCES cards(card_number),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    txn_counter  BIGINT NOT NULL,
    pending      TEXT NOT NULL,
    at           TEXT NOT NULL,
    operator     TEXT NOT NULL,
    outcome      TEXT CHECK (outcome IN ('done', 'not_done')),
    settled_at   TEXT
);
CREATE UNIQUE INDEX carry_over_once ON carry_over_intents(card_number, txn_counter)
    WHERE outcome IS NULL OR outcome = 'done';
CREATE UNIQUE INDEX carry_over_one_open ON carry_over_intents(card_number) WHERE outcome IS NULL;
CREATE TRIGGER carry_over_settle_once BEFORE UPDATE ON carry_over_intents FOR EACH ROW
WHEN (OLD.outcome IS NOT NULL OR NEW.outcome IS NULL OR NEW.settled_at IS NULL
  OR NEW.card_number IS DISTINCT FROM OLD.card_number
  OR NEW.amount_cents IS DISTINCT FROM OLD.amount_cents
  OR NEW.txn_counter IS DISTINCT FROM OLD.txn_counter OR NEW.pending IS DISTINCT FROM OLD.pending
  OR NEW.at IS DISTINCT FROM OLD.at OR NEW.operator IS DISTINCT FROM OLD.operator
  OR NEW.id IS DISTINCT FROM OLD.id)
EXECUTE FUNCTION cc_refuse('a carry-over intent is settled once and never changed');
CREATE TRIGGER carry_over_no_delete BEFORE DELETE ON carry_over_intents FOR EACH ROW
EXECUTE FUNCTION cc_refuse('carry_over_intents is append-only: rows cannot be deleted');
CREATE TRIGGER carry_over_no_truncate BEFORE TRUNCATE ON carry_over_intents
EXECUTE FUNCTION cc_refuse('carry_over_intents is append-only: rows cannot be deleted');

CREATE FUNCTION cc_load_not_a_credit() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.kind = 'load' AND NEW.txn_counter IS NOT NULL AND EXISTS (SELECT 1 FROM chip_credits
        WHERE card_number = NEW.card_number AND txn_counter = NEW.txn_counter) THEN
        RAISE EXCEPTION 'this load counter is recorded as a carried-over credit';
    END IF;
    RETURN NEW;
END $fn$;
CREATE TRIGGER ledger_load_not_a_credit BEFORE INSERT ON purse_ledger FOR EACH ROW
EXECUTE FUNCTION cc_load_not_a_credit();
CREATE FUNCTION cc_credit_not_a_load() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM purse_ledger WHERE card_number = NEW.card_number AND kind = 'load'
        AND txn_counter = NEW.txn_counter) THEN
        RAISE EXCEPTION 'this load counter is recorded as a load';
    END IF;
    RETURN NEW;
END $fn$;
CREATE TRIGGER credit_not_a_load BEFORE INSERT ON chip_credits FOR EACH ROW
EXECUTE FUNCTION cc_credit_not_a_load();
"#,
    },
    Migration {
        version: 6,
        description: "counter console operators (argon2 password hashes, roles)",
        sqlite: r#"
-- The people who log in to the counter console (`citizencard console`). The password is stored
-- only as an argon2 PHC string; the role decides what the console lets them do.
CREATE TABLE operators (
    login         TEXT PRIMARY KEY CHECK (login <> '' AND login = trim(login)),
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('operator', 'supervisor')),
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2%'),
    created_at    TEXT NOT NULL,
    disabled_at   TEXT
) STRICT;
"#,
        postgres: r#"
CREATE TABLE operators (
    login         TEXT PRIMARY KEY CHECK (login <> '' AND login = trim(login)),
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('operator', 'supervisor')),
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2%'),
    created_at    TEXT NOT NULL,
    disabled_at   TEXT
);
"#,
    },
    Migration {
        version: 7,
        description:
            "station identity in the audit chain; card serials from a sequence (PostgreSQL)",
        sqlite: r#"
-- The station (service point process) that made each change, next to its operator; covered by
-- the record's hash from this version on (chain.rs, HASH_PREFIX_STATION).
ALTER TABLE audit_log ADD COLUMN station TEXT;
"#,
        postgres: r#"
ALTER TABLE audit_log ADD COLUMN station TEXT;
-- Card serials come from a sequence: two stations never draw the same one, whatever their
-- transactions do (a serial drawn by a transaction that rolls back is not reused).
CREATE SEQUENCE card_serial AS BIGINT MINVALUE 1;
SELECT setval('card_serial', COALESCE((SELECT MAX(serial) FROM cards), 0) + 1, false);
"#,
    },
];

/// The schema version this code writes.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The name of the table that holds the schema version on PostgreSQL (SQLite keeps it in
/// `PRAGMA user_version`).
pub const PG_VERSION_TABLE: &str = "citizencard_schema";

/// The database's schema version (0: empty).
pub fn version(conn: &Conn<'_>) -> Result<u32, RegistryError> {
    let v: i64 = match conn.dialect() {
        Dialect::Sqlite => conn.query_row("PRAGMA user_version", [], |r| r.get(0))?,
        Dialect::Postgres => {
            // pg_tables, read with the statement's snapshot, not to_regclass: the latter looks in
            // the backend's catalog cache, which a wait on the migration's advisory lock does not
            // refresh, so a station that waited while another created the schema would still see
            // no table and run the first migration again.
            let tables: i64 = conn.query_row(
                &format!(
                    "SELECT count(*) FROM pg_catalog.pg_tables \
                     WHERE schemaname = current_schema() AND tablename = '{PG_VERSION_TABLE}'"
                ),
                [],
                |r| r.get(0),
            )?;
            if tables == 0 {
                0
            } else {
                conn.query_row(
                    &format!("SELECT version FROM {PG_VERSION_TABLE} WHERE one = 1"),
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0)
            }
        }
    };
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

fn set_version(conn: &Conn<'_>, v: u32) -> Result<(), RegistryError> {
    match conn.dialect() {
        Dialect::Sqlite => conn.execute_batch(&format!("PRAGMA user_version = {v}"))?,
        Dialect::Postgres => {
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {PG_VERSION_TABLE} \
                 (one BIGINT PRIMARY KEY CHECK (one = 1), version BIGINT NOT NULL)"
            ))?;
            conn.execute(
                &format!(
                    "INSERT INTO {PG_VERSION_TABLE} (one, version) VALUES (1, ?1) \
                     ON CONFLICT (one) DO UPDATE SET version = excluded.version"
                ),
                [v],
            )?;
        }
    }
    Ok(())
}

/// Brings the database up to `target` (at most [`latest_version`]); returns the versions applied.
/// Each step runs in one transaction with the new version, the same steps on both backends.
pub fn migrate_to(db: &Db, target: u32) -> Result<Vec<u32>, RegistryError> {
    let found = version(&db.conn()?)?;
    let latest = latest_version();
    if found > latest {
        return Err(RegistryError::SchemaTooNew {
            found,
            supported: latest,
        });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > found && m.version <= target)
    {
        let tx = Tx::begin(db.conn()?, Begin::Migration, None)?;
        // Another process may have migrated between our read and this lock.
        if version(&tx)? >= m.version {
            continue;
        }
        let failed = |e: &dyn std::fmt::Display| RegistryError::Migration {
            version: m.version,
            message: e.to_string(),
        };
        let sql = match tx.dialect() {
            Dialect::Sqlite => m.sqlite,
            Dialect::Postgres => m.postgres,
        };
        tx.execute_batch(sql).map_err(|e| failed(&e))?;
        if tx.dialect() == Dialect::Postgres {
            super::chain::pg_enforce(&tx, m.version).map_err(|e| failed(&e))?;
        }
        if m.version >= super::chain::CHAIN_VERSION {
            let at = super::clock::format_instant(time::OffsetDateTime::now_utc());
            super::chain::after_migration(&tx, m.version, &at).map_err(|e| failed(&e))?;
        }
        set_version(&tx, m.version)?;
        tx.commit()?;
        applied.push(m.version);
    }
    Ok(applied)
}

/// Brings the database up to date.
pub fn migrate(db: &Db) -> Result<Vec<u32>, RegistryError> {
    migrate_to(db, latest_version())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.description);
        }
    }

    fn sqlite() -> Db {
        Db::Sqlite(rusqlite::Connection::open_in_memory().unwrap())
    }

    #[test]
    fn fresh_database_gets_every_step_once() {
        let db = sqlite();
        assert_eq!(
            migrate(&db).unwrap(),
            (1..=latest_version()).collect::<Vec<_>>()
        );
        assert_eq!(version(&db.conn().unwrap()).unwrap(), latest_version());
        assert!(migrate(&db).unwrap().is_empty());
    }

    #[test]
    fn failed_step_leaves_previous_version() {
        let db = sqlite();
        migrate_to(&db, 1).unwrap();
        let c = db.conn().unwrap();
        // Sabotage step 2: a table it creates already exists.
        c.execute_batch("CREATE TABLE fees (x INTEGER)").unwrap();
        let e = migrate(&db).unwrap_err();
        assert!(
            matches!(e, RegistryError::Migration { version: 2, .. }),
            "{e}"
        );
        assert_eq!(version(&c).unwrap(), 1);
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'purse_ledger'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "nothing of step 2 remains");
    }

    /// A fresh PostgreSQL database (kept alive by the guard).
    fn postgres(what: &str) -> Option<(crate::registry::testing::PgTestDb, Db)> {
        if !crate::registry::testing::pg_enabled(what) {
            return None;
        }
        let guard = crate::registry::testing::PgTestDb::create();
        let db = Db::connect_postgres(guard.url(), 2).unwrap();
        Some((guard, db))
    }

    #[test]
    fn postgres_gets_the_same_steps_once() {
        let Some((_guard, db)) = postgres("postgres_gets_the_same_steps_once") else {
            return;
        };
        assert_eq!(version(&db.conn().unwrap()).unwrap(), 0);
        assert_eq!(
            migrate(&db).unwrap(),
            (1..=latest_version()).collect::<Vec<_>>()
        );
        assert_eq!(version(&db.conn().unwrap()).unwrap(), latest_version());
        assert!(migrate(&db).unwrap().is_empty());
    }

    #[test]
    fn a_failed_postgres_step_leaves_the_previous_version() {
        let Some((_guard, db)) = postgres("a_failed_postgres_step_leaves_the_previous_version")
        else {
            return;
        };
        migrate_to(&db, 1).unwrap();
        let c = db.conn().unwrap();
        c.execute_batch("CREATE TABLE fees (x BIGINT)").unwrap();
        let e = migrate(&db).unwrap_err();
        assert!(
            matches!(e, RegistryError::Migration { version: 2, .. }),
            "{e}"
        );
        assert_eq!(version(&c).unwrap(), 1);
        let gone: Option<String> = c
            .query_row("SELECT to_regclass('purse_ledger')::text", [], |r| r.get(0))
            .unwrap();
        assert_eq!(gone, None, "nothing of step 2 remains");
    }

    #[test]
    fn newer_database_is_refused() {
        let db = sqlite();
        db.conn()
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let e = migrate(&db).unwrap_err();
        assert!(matches!(
            e,
            RegistryError::SchemaTooNew {
                found: 99,
                supported
            } if supported == latest_version()
        ));
        assert!(e.to_string().contains("newer"), "{e}");
    }
}
