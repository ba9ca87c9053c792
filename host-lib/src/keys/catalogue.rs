//! The keys a card of this project needs: their names in a key set, how each is diversified and
//! what it is for (apdu-specs/keys.md §2). `citizencard keys init` makes exactly these, and the
//! development key sets in `test-vectors/keys/` hold exactly these.
//!
//! Names follow the social-security card spec (LD/T 32, card-specs §1.5) and PBOC (`DPK`, `DLK`,
//! `DTK`, `DAMK`, `DPUK`, `DRPK`). Where the spec's HSM table gives a key an identifier
//! ("标识", card-specs §1.5), it is listed; whether a card takes it as its key id is the
//! profile's decision.

use super::Diversification;

/// One key of the standard catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandardKey {
    /// The key's name in a key set.
    pub name: &'static str,
    /// How it is diversified for each card.
    pub diversification: Diversification,
    /// The identifier of the LD/T 32 HSM/PSAM key table, where it gives one.
    pub ldt32_id: Option<u8>,
    /// What the key is for.
    pub purpose: &'static str,
}

const fn key(
    name: &'static str,
    diversification: Diversification,
    ldt32_id: Option<u8>,
    purpose: &'static str,
) -> StandardKey {
    StandardKey {
        name,
        diversification,
        ldt32_id,
        purpose,
    }
}

use Diversification::{ApplicationSerial as Purse, None as Plain, SocialSecurity as Ss};

/// Every key a card of this project needs, card level first, then the social-security
/// environment and its DFs, then the purse application.
pub const STANDARD_KEYS: &[StandardKey] = &[
    // Card level (MF).
    key("TRANSPORT", Plain, None, "transport key: the card maker's factory key (FMCOS factory default 16 x FF); authenticates and protects the first personalization steps"),
    key("MF_MK", Ss, None, "card master key: MF key-control / external authentication; replaces the transport key at the end of personalization"),
    // Social-security environment (SSSE DDF).
    key("SSSE_MK", Ss, None, "SSSE master key: key control of the social-security DDF"),
    key("IRK", Ss, Some(0x08), "internal authentication: the terminal authenticates the card"),
    key("STKSSSE", Ss, Some(0x09), "SSSE maintenance: line-protection MACs for application/card block and protected updates"),
    key("RKSSSE", Ss, Some(0x0A), "SSSE read key: external authentication grants reading EF06 (3rd generation), EF07, EF08"),
    key("PUK", Ss, Some(0x10), "PIN unblock key"),
    key("BK", Ss, Some(0x11), "card block control key"),
    key("UKSSSE", Ss, Some(0x12), "SSSE update key: external authentication grants writing EF05..EF08"),
    // DF01 public application information.
    key("DF01_MK", Ss, None, "DF01 master key: key control of DF01"),
    key("STKDF01", Ss, Some(0x20), "DF01 maintenance (line protection)"),
    key("RK1DF01", Ss, Some(0x2E), "DF01 read key"),
    key("UK1DF01", Ss, Some(0x42), "DF01 update key 1"),
    key("UK2DF01", Ss, Some(0x43), "DF01 update key 2"),
    key("UK3DF01", Ss, Some(0x24), "DF01 update key 3"),
    key("UK4DF01", Ss, Some(0x25), "DF01 update key 4"),
    key("UK5DF01", Ss, Some(0x44), "DF01 update key 5"),
    key("UK6DF01", Ss, Some(0x2F), "DF01 update key 6"),
    key("UK7DF01", Ss, Some(0x30), "DF01 update key 7 (reserved file 1)"),
    key("UK8DF01", Ss, Some(0x31), "DF01 update key 8 (reserved file 2)"),
    key("UK9DF01", Ss, Some(0x32), "DF01 update key 9 (reserved file 3)"),
    key("UKADF01", Ss, Some(0x33), "DF01 update key A (reserved file 4)"),
    key("UKBDF01", Ss, Some(0x34), "DF01 update key B (reserved file 5)"),
    // DF02 employment.
    key("DF02_MK", Ss, None, "DF02 master key: key control of DF02"),
    key("STKDF02", Ss, Some(0x21), "DF02 maintenance (line protection)"),
    key("RK1DF02", Ss, Some(0x35), "DF02 read key"),
    key("UK1DF02", Ss, Some(0x26), "DF02 update key 1"),
    key("UK2DF02", Ss, Some(0x45), "DF02 update key 2"),
    key("UK3DF02", Ss, Some(0x46), "DF02 update key 3"),
    key("UK4DF02", Ss, Some(0x27), "DF02 update key 4"),
    key("UK5DF02", Ss, Some(0x28), "DF02 update key 5"),
    key("UK6DF02", Ss, Some(0x36), "DF02 update key 6"),
    // DF03 social insurance 1.
    key("DF03_MK", Ss, None, "DF03 master key: key control of DF03"),
    key("STKDF03", Ss, Some(0x22), "DF03 maintenance (line protection)"),
    key("LKDF03", Ss, Some(0x40), "DF03 application lock control"),
    key("RK1DF03", Ss, Some(0x2B), "DF03 read key 1"),
    key("RK2DF03", Ss, Some(0x2C), "DF03 read key 2"),
    key("UK1DF03", Ss, Some(0x47), "DF03 update key 1"),
    key("UK2DF03", Ss, Some(0x29), "DF03 update key 2"),
    key("UK3DF03", Ss, None, "DF03 update key 3 (no identifier in the spec's HSM table)"),
    key("UK4DF03", Ss, Some(0x37), "DF03 update key 4"),
    key("UK5DF03", Ss, Some(0x38), "DF03 update key 5"),
    key("UK6DF03", Ss, Some(0x39), "DF03 update key 6"),
    key("UK7DF03", Ss, Some(0x3A), "DF03 update key 7"),
    key("UK8DF03", Ss, Some(0x3B), "DF03 update key 8"),
    // DF04 social insurance 2 (medical).
    key("DF04_MK", Ss, None, "DF04 master key: key control of DF04"),
    key("STKDF04", Ss, Some(0x23), "DF04 maintenance (line protection)"),
    key("LKDF04", Ss, Some(0x41), "DF04 application lock control"),
    key("RK1DF04", Ss, Some(0x2D), "DF04 read key"),
    key("UK1DF04", Ss, None, "DF04 update key 1 (no identifier in the spec's HSM table)"),
    key("UK2DF04", Ss, Some(0x2A), "DF04 update key 2"),
    // The public-services application, added to issued cards on demand (Art. 11-12;
    // host-lib/src/apps/public.toml).
    key("PUBSVC_MK", Ss, None, "public-services application master key: key control of its DF (added on demand)"),
    key("STKPUBSVC", Ss, None, "public-services application maintenance: line-protection MACs for its record writes, application block/unblock"),
    // PBOC electronic purse application.
    key("PURSE_MK", Purse, None, "purse application master key: key control of the purse ADF"),
    key("DAMK", Purse, None, "purse application maintenance: line-protection MACs for files 0015/0016, application block/unblock"),
    key("DPK", Purse, None, "purchase key: purchase session keys (MAC1/MAC2), PSAM side"),
    key("DLK", Purse, None, "load key: load session keys (MAC1/MAC2), load host side"),
    key("DTK", Purse, None, "TAC key: transaction authentication codes of loads and purchases"),
    key("DPUK", Purse, None, "purse PIN unblock key"),
    key("DRPK", Purse, None, "purse PIN reload key"),
];

/// The catalogue entry named `name`.
pub fn standard_key(name: &str) -> Option<&'static StandardKey> {
    STANDARD_KEYS.iter().find(|k| k.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_and_ids_are_unique() {
        let names: BTreeSet<_> = STANDARD_KEYS.iter().map(|k| k.name).collect();
        assert_eq!(names.len(), STANDARD_KEYS.len());
        let ids: Vec<u8> = STANDARD_KEYS.iter().filter_map(|k| k.ldt32_id).collect();
        let unique: BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn spec_ids_that_anchor_the_table() {
        // card-specs §1.5: RKSSSE = 0A (corroborated by a real card's EXTERNAL AUTHENTICATE P2),
        // UKSSSE = 12.
        assert_eq!(standard_key("RKSSSE").unwrap().ldt32_id, Some(0x0A));
        assert_eq!(standard_key("UKSSSE").unwrap().ldt32_id, Some(0x12));
        assert_eq!(
            standard_key("DLK").unwrap().diversification,
            Diversification::ApplicationSerial
        );
        assert_eq!(
            standard_key("TRANSPORT").unwrap().diversification,
            Diversification::None
        );
        assert!(standard_key("NOPE").is_none());
    }
}
