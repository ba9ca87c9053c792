//! A personalized purse to test terminals against, until the profile-based personalization
//! (`host_lib::personalize`) can make one: a small but real purse application, built with the
//! issuer's [`KeyStore`] the way apdu-specs/keys.md §6 loads keys (no secret key ever in clear)
//! and apdu-specs/purse.md lays out the files.
//!
//! On a factory-fresh card (the MF has no key file, so everything is allowed there), in order:
//!
//! 1. `80 E0 3F01` the purse ADF, named [`PurseSetup::aid`], FCI file byte `95` (SELECT answers
//!    the public data `0015` in `9F0C`, so a purchase needs no READ BINARY); it becomes current;
//! 2. its key file, and the public transport key as its master `39 00`, plain (`80 D4`);
//! 3. `DAMK` (`36 00`, line protection of `0015`), `DLK` (`3F`, key index 01), `DPK` (`3E`, 01),
//!    `DTK` (`34 00`, the TAC key), each diversified by the application serial number and written
//!    encrypted and MAC'd under the transport key (`84 D4 01 kid`);
//! 4. `0015` (MAC-protected writes, `A8`) written with a line-protected UPDATE BINARY under `DAMK`:
//!    issuer `33030000FFFFFFFF`, type `02`, version `01`, the serial, valid 2024-01-01 to
//!    2034-12-31;
//! 5. the log `0018` (cyclic, 10 × 23 bytes, readable by anyone, written only by the card), and
//!    with [`PurseSetup::capp_file`] a composite-application file `0017` (variable records of 48
//!    bytes) holding one record tagged `02`;
//! 6. the EP `0002` (TAC key id `00`, log SFI `18`, the maximum balance);
//! 7. last, the master becomes `PURSE_MK` (`84 D4 39 00`, encrypted under the transport key).

use card_os::card::HistoricalBytes;
use card_os::nvm::Geometry;
use card_os::sim::{image, SimCard};

use crate::keys::record::key_type;
use crate::keys::{CardFactors, KeyRecordLayout, KeyRef, KeyStore, SecureMessaging, WriteKey};
use crate::terminal::DEFAULT_AID;
use crate::transport::Transport;

/// What purse to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurseSetup {
    /// The ADF's name.
    pub aid: Vec<u8>,
    /// The application serial number (`0015` bytes 10..20); its last 8 bytes diversify the keys.
    pub serial: [u8; 10],
    /// The EP's maximum balance, in cents.
    pub max_balance: u32,
    /// Also make the composite-application file `0017` with a record tagged `02`.
    pub capp_file: bool,
}

impl Default for PurseSetup {
    fn default() -> Self {
        PurseSetup {
            aid: DEFAULT_AID.to_vec(),
            // keys.md's sample card `wenzhou-1`.
            serial: [0x00, 0x00, 0x33, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01],
            max_balance: 100_000,
            capp_file: true,
        }
    }
}

impl PurseSetup {
    /// The 30 bytes of `0015`.
    pub fn public_data(&self) -> Vec<u8> {
        let mut d = vec![0x33, 0x03, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x01];
        d.extend_from_slice(&self.serial);
        d.extend_from_slice(&[0x20, 0x24, 0x01, 0x01, 0x20, 0x34, 0x12, 0x31, 0x00, 0x00]);
        d
    }

    /// The diversification data of the purse keys.
    pub fn factors(&self) -> CardFactors {
        CardFactors::NONE
            .with_application_serial(&self.serial)
            .unwrap_or_default()
    }
}

/// The composite-application record `0017` starts with (tag `02`, 46 bytes of zeros).
pub fn capp_record(fill: u8) -> Vec<u8> {
    let mut r = vec![0x02, 0x2E];
    r.extend(std::iter::repeat_n(fill, 46));
    r
}

fn send(t: &mut dyn Transport, what: &str, apdu: &[u8]) -> Result<Vec<u8>, String> {
    let r = t.transmit(apdu).map_err(|e| format!("{what}: {e}"))?;
    match r.as_slice() {
        [data @ .., 0x90, 0x00] => Ok(data.to_vec()),
        _ => Err(format!(
            "{what}: {} answered {}",
            hex::encode_upper(apdu),
            hex::encode_upper(&r)
        )),
    }
}

fn apdu(header: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = header.to_vec();
    c.push(data.len() as u8);
    c.extend_from_slice(data);
    c
}

fn challenge(t: &mut dyn Transport) -> Result<Vec<u8>, String> {
    send(t, "GET CHALLENGE", &[0x00, 0x84, 0x00, 0x00, 0x04])
}

/// Personalizes the purse on the factory-fresh card behind `t` (see the module docs). Every step
/// must answer `9000`; the first that does not is the error.
pub fn personalize_purse(
    t: &mut dyn Transport,
    keys: &dyn KeyStore,
    setup: &PurseSetup,
) -> Result<(), String> {
    let factors = setup.factors();
    let key = |name| KeyRef::new(name, &factors);
    let transport_key = KeyRef::plain("TRANSPORT");
    let keys_err = |e: crate::keys::KeyError| e.to_string();

    let mut adf = vec![0x38, 0x04, 0x00, 0xF0, 0xF0, 0x95, 0xFF, 0xFF];
    adf.extend_from_slice(&setup.aid);
    send(t, "CREATE ADF", &apdu([0x80, 0xE0, 0x3F, 0x01], &adf))?;
    send(
        t,
        "CREATE key file",
        &apdu(
            [0x80, 0xE0, 0x00, 0x00],
            &[0x3F, 0x01, 0x00, 0x95, 0xF0, 0xFF, 0xFF],
        ),
    )?;
    // External authentication `39` with both protection bits (`F9`): later keys must come
    // encrypted and MAC'd under it.
    let master = KeyRecordLayout::parse("F9 F0 F0 AA 33 key alg?").map_err(|e| e.to_string())?;
    let plain = keys
        .write_key_plain(&WriteKey {
            header: [0x80, 0xD4, 0x01, 0x00],
            key: transport_key,
            layout: &master,
        })
        .map_err(keys_err)?;
    send(
        t,
        "WRITE KEY transport master",
        &apdu([0x80, 0xD4, 0x01, 0x00], &plain),
    )?;

    let purse_key = |ty| KeyRecordLayout::fmcos_key(ty, 0xF0, 0xF0);
    for (name, kid, layout) in [
        (
            "DAMK",
            0x00,
            KeyRecordLayout::fmcos_counted(key_type::LINE_PROTECTION, 0xF0, 0xF0, 0x33),
        ),
        ("DLK", 0x01, purse_key(key_type::LOAD)),
        ("DPK", 0x01, purse_key(key_type::PURCHASE)),
        ("DTK", 0x00, purse_key(key_type::INTERNAL)),
    ] {
        let c = challenge(t)?;
        let header = [0x84, 0xD4, 0x01, kid];
        let data = keys
            .write_key(
                &WriteKey {
                    header,
                    key: key(name),
                    layout: &layout,
                },
                transport_key,
                SecureMessaging::Fmcos { challenge: &c },
            )
            .map_err(keys_err)?;
        send(t, &format!("WRITE KEY {name}"), &apdu(header, &data))?;
    }

    send(
        t,
        "CREATE 0015",
        &apdu(
            [0x80, 0xE0, 0x00, 0x15],
            &[0xA8, 0x00, 0x1E, 0xF0, 0xF0, 0xFF, 0xFF],
        ),
    )?;
    let c = challenge(t)?;
    let update = [0x04, 0xD6, 0x95, 0x00];
    let data = keys
        .protect_command(
            key("DAMK"),
            None,
            SecureMessaging::Fmcos { challenge: &c },
            update,
            &setup.public_data(),
        )
        .map_err(keys_err)?;
    send(t, "UPDATE BINARY 0015", &apdu(update, &data))?;
    send(
        t,
        "CREATE 0018",
        &apdu(
            [0x80, 0xE0, 0x00, 0x18],
            &[0x2E, 0x0A, 0x17, 0xF0, 0xEF, 0xFF, 0xFF],
        ),
    )?;
    if setup.capp_file {
        send(
            t,
            "CREATE 0017",
            &apdu(
                [0x80, 0xE0, 0x00, 0x17],
                &[0x2C, 0x02, 0x30, 0xF0, 0xF0, 0xFF, 0xFF],
            ),
        )?;
        send(
            t,
            "APPEND RECORD 0017",
            &apdu([0x00, 0xE2, 0x00, 0x17 << 3], &capp_record(0)),
        )?;
    }
    let mut ep = vec![0x2F, 0x02, 0x08, 0xF0, 0x00, 0xFF, 0x18];
    ep.extend_from_slice(&setup.max_balance.to_be_bytes());
    send(t, "CREATE EP 0002", &apdu([0x80, 0xE0, 0x00, 0x02], &ep))?;

    let c = challenge(t)?;
    let replace = [0x84, 0xD4, 0x39, 0x00];
    let data = keys
        .write_key(
            &WriteKey {
                header: replace,
                key: key("PURSE_MK"),
                layout: &master,
            },
            transport_key,
            SecureMessaging::Fmcos { challenge: &c },
        )
        .map_err(keys_err)?;
    send(t, "WRITE KEY PURSE_MK", &apdu(replace, &data))?;
    Ok(())
}

/// A factory-fresh simulated card (ATR serial `serial`) with the purse of `setup`, powered on.
pub fn purse_card(
    keys: &dyn KeyStore,
    setup: &PurseSetup,
    serial: [u8; 4],
) -> Result<SimCard, String> {
    let card = SimCard::blank(Geometry::DEFAULT, &HistoricalBytes::wenzhou(serial))
        .map_err(|e| format!("blank card: {e:?}"))?;
    let mut t = crate::transport::sim::SimTransport::from_card(card, "purse under construction");
    personalize_purse(&mut t, keys, setup)?;
    let mut card = t.into_card();
    card.reset();
    Ok(card)
}

/// [`purse_card`] saved as a card image file (for `--sim` and `sim serve`).
pub fn purse_image(
    path: &std::path::Path,
    keys: &dyn KeyStore,
    setup: &PurseSetup,
    serial: [u8; 4],
) -> Result<(), String> {
    let card = purse_card(keys, setup, serial)?;
    let header =
        image::ImageHeader::new(Geometry::DEFAULT.capacity, Geometry::DEFAULT.page_size, 0);
    image::save(path, &header, card.nvm()).map_err(|e| format!("{}: {e}", path.display()))
}
