//! Registry configuration: a small TOML file; every key has a default.
//!
//! ```toml
//! [card]
//! series = "W"               # card-number series letter
//! city = "330300"            # issuing city (GB/T 2260), in the card identification code
//! init_org_region = "330300" # region of the initialising organisation (EF05 item 04)
//! init_org_sequence = 1      # its sequence number, 0-99
//! validity_years = 10        # expiry = issue date + this many years
//!
//! [fees]                     # amounts in cents (分)
//! reissue = 2000             # a new card for someone whose earlier cards are all cancelled
//!
//! [fees.replacement]         # Art. 15 replacement, by reason
//! lost = 2000
//! damaged = 2000
//! unreadable = 0
//! data_changed = 0
//! other = 2000
//! ```
//!
//! The first card is always free (Art. 19) and is not configurable. The other amounts are
//! **placeholders chosen by this project, not figures from the regulation**: a card at cost
//! (20 yuan) when the holder lost or broke it or asks for one without cause, free when the chip
//! failed by itself (unreadable) or the data on the card changed. The issuer sets the real ones.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::RegistryError;
use super::ReplaceReason;
use crate::holder::RegionCode;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Card data.
    pub card: CardConfig,
    /// Fees.
    pub fees: FeeConfig,
}

/// `[card]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CardConfig {
    /// Card-number series letter.
    pub series: char,
    /// Issuing city code.
    pub city: String,
    /// Initialising organisation's region.
    pub init_org_region: String,
    /// Initialising organisation's sequence number.
    pub init_org_sequence: u8,
    /// Validity in years.
    pub validity_years: u8,
}

/// `[fees]`, in cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeeConfig {
    /// A new card after all earlier ones were cancelled.
    pub reissue: u32,
    /// Replacement fees by reason.
    pub replacement: ReplacementFees,
}

/// `[fees.replacement]`, in cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplacementFees {
    /// Replacing a card reported lost.
    pub lost: u32,
    /// Physically damaged by the holder.
    pub damaged: u32,
    /// The chip no longer answers.
    pub unreadable: u32,
    /// The holder's data changed.
    pub data_changed: u32,
    /// Any other reason.
    pub other: u32,
}

impl Default for CardConfig {
    fn default() -> Self {
        CardConfig {
            series: 'W',
            city: "330300".into(),
            init_org_region: "330300".into(),
            init_org_sequence: 1,
            validity_years: 10,
        }
    }
}

impl Default for FeeConfig {
    fn default() -> Self {
        FeeConfig {
            reissue: 2000,
            replacement: ReplacementFees::default(),
        }
    }
}

impl Default for ReplacementFees {
    fn default() -> Self {
        ReplacementFees {
            lost: 2000,
            damaged: 2000,
            unreadable: 0,
            data_changed: 0,
            other: 2000,
        }
    }
}

impl ReplacementFees {
    /// The fee for a reason.
    pub fn for_reason(&self, reason: ReplaceReason) -> u32 {
        match reason {
            ReplaceReason::Lost => self.lost,
            ReplaceReason::Damaged => self.damaged,
            ReplaceReason::Unreadable => self.unreadable,
            ReplaceReason::DataChanged => self.data_changed,
            ReplaceReason::Other => self.other,
        }
    }
}

impl RegistryConfig {
    /// Parses and checks TOML text (`path` only names the file in messages).
    pub fn from_toml(text: &str, path: &Path) -> Result<RegistryConfig, RegistryError> {
        let cfg: RegistryConfig = toml::from_str(text).map_err(|e| RegistryError::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.check().map_err(|message| RegistryError::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<RegistryConfig, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
            path: path.to_owned(),
            source,
        })?;
        RegistryConfig::from_toml(&text, path)
    }

    /// Checks values that types alone do not.
    pub fn check(&self) -> Result<(), String> {
        let c = &self.card;
        if !c.series.is_ascii_uppercase() {
            return Err(format!(
                "card.series: {:?} is not an upper-case ASCII letter",
                c.series
            ));
        }
        RegionCode::parse(&c.city).map_err(|e| format!("card.city: {e}"))?;
        RegionCode::parse(&c.init_org_region).map_err(|e| format!("card.init_org_region: {e}"))?;
        if c.init_org_sequence > 99 {
            return Err("card.init_org_sequence: must be 0-99".into());
        }
        if !(1..=50).contains(&c.validity_years) {
            return Err("card.validity_years: must be 1-50".into());
        }
        Ok(())
    }

    /// The issuing city.
    pub fn city(&self) -> RegionCode {
        RegionCode::parse(&self.card.city).unwrap_or(crate::holder::region::WENZHOU)
    }

    /// The initialising organisation's region.
    pub fn init_org_region(&self) -> RegionCode {
        RegionCode::parse(&self.card.init_org_region).unwrap_or(crate::holder::region::WENZHOU)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_files() {
        let d = RegistryConfig::default();
        assert!(d.check().is_ok());
        assert_eq!(d.city().digits(), "330300");
        let p = Path::new("c.toml");
        let c = RegistryConfig::from_toml("[fees.replacement]\nlost = 1500\n", p).unwrap();
        assert_eq!(c.fees.replacement.for_reason(ReplaceReason::Lost), 1500);
        assert_eq!(c.fees.replacement.damaged, 2000);
        assert_eq!(c.card, CardConfig::default());
        // The documented example parses to the defaults.
        let doc = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(RegistryConfig::from_toml(&doc, p).unwrap(), d);
    }

    #[test]
    fn refusals() {
        let p = Path::new("c.toml");
        for bad in [
            "[card]\nseries = \"w\"",
            "[card]\ncity = \"990000\"",
            "[card]\nvalidity_years = 0",
            "[card]\ninit_org_sequence = 100",
            "[fees]\nreissue = -1",
            "[fees]\nreplacment = 1",
        ] {
            let e = RegistryConfig::from_toml(bad, p).unwrap_err();
            assert!(e.to_string().starts_with("c.toml"), "{bad}: {e}");
        }
    }
}
