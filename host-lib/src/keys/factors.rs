//! What the issuer knows about one card that key diversification needs, and the factors built
//! from it (apdu-specs/keys.md §3).
//!
//! * **Purse keys** (PBOC, one level): the 8-byte application serial number, the rightmost 8
//!   bytes of the 10-byte serial in the purse's public-information file `0015` (card-specs §4).
//! * **Social-security keys** (LD/T 32 part 9 §7, three levels, card-specs §1.9):
//!   * L1, province: ASCII of the city code's first 2 digits ‖ `30 30 30 30 73 68` ("0000sh");
//!   * L2, city: ASCII of the 6-digit city code ‖ `73 78` ("sx"); **in Zhejiang** (city codes
//!     starting `33`) ASCII of the first 2 bytes (4 digits) of the card identification code ‖
//!     `30 30 73 78` ("00sx");
//!   * L3, card: the ATR historical bytes T6..TD (card maker, region, serial).

use std::fmt;

use card_os::card::HistoricalBytes;

/// Why card data cannot give a diversification factor.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FactorError {
    /// The city code is not 6 decimal digits.
    #[error("city code {0:?}: must be 6 decimal digits (GB/T 2260), e.g. 330300 for Wenzhou")]
    CityCode(String),
    /// The card identification code is too short or does not start with BCD digits.
    #[error("card identification code {0}: must start with at least 2 bytes of BCD digits (the city code), e.g. 33 03 …")]
    CardId(String),
    /// The card identification code belongs to another province than the city code.
    #[error("card identification code {card_id} does not belong to city code {city_code}: their first 2 digits differ")]
    CardIdRegion {
        /// The card identification code, in hex.
        card_id: String,
        /// The city code.
        city_code: String,
    },
    /// The application serial number has fewer than 8 bytes.
    #[error(
        "application serial number {0}: needs at least 8 bytes (its rightmost 8 are the factor)"
    )]
    ApplicationSerial(String),
}

/// The three social-security diversification factors of one card.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SocialSecurityFactors {
    city_code: [u8; 6],
    card_id_prefix: [u8; 2],
    card: [u8; 8],
}

impl SocialSecurityFactors {
    /// The factors of a card from its 6-digit city code (`"330300"`), its card identification
    /// code (EF05 tag 01, BCD; at least its first 2 bytes are needed, e.g. `33 03 00 D1 56 …`) and
    /// its ATR historical bytes T6..TD ([`HistoricalBytes::diversification_factor`]).
    pub fn new(
        city_code: &str,
        card_id: &[u8],
        historical_t6_td: [u8; 8],
    ) -> Result<Self, FactorError> {
        let city: [u8; 6] = city_code
            .as_bytes()
            .try_into()
            .ok()
            .filter(|c: &[u8; 6]| c.iter().all(u8::is_ascii_digit))
            .ok_or_else(|| FactorError::CityCode(city_code.to_owned()))?;
        let prefix: [u8; 2] = card_id
            .get(..2)
            .and_then(|p| p.try_into().ok())
            .filter(|p: &[u8; 2]| p.iter().all(|&b| b >> 4 <= 9 && b & 0x0F <= 9))
            .ok_or_else(|| FactorError::CardId(hex::encode_upper(card_id)))?;
        let card_province = [b'0' + (prefix[0] >> 4), b'0' + (prefix[0] & 0x0F)];
        if card_province != city[..2] {
            return Err(FactorError::CardIdRegion {
                card_id: hex::encode_upper(card_id),
                city_code: city_code.to_owned(),
            });
        }
        Ok(SocialSecurityFactors {
            city_code: city,
            card_id_prefix: prefix,
            card: historical_t6_td,
        })
    }

    /// [`SocialSecurityFactors::new`] with the L3 factor taken from the card's ATR historical bytes.
    pub fn for_card(
        city_code: &str,
        card_id: &[u8],
        historical: &HistoricalBytes,
    ) -> Result<Self, FactorError> {
        Self::new(city_code, card_id, historical.diversification_factor())
    }

    /// The 6-digit city code.
    pub fn city_code(&self) -> &str {
        // Checked to be ASCII digits on construction.
        std::str::from_utf8(&self.city_code).unwrap_or("??????")
    }

    /// Whether the Zhejiang rule for L2 applies (city codes starting with `33`).
    pub fn zhejiang_rule(&self) -> bool {
        self.city_code.starts_with(b"33")
    }

    /// L1, the province factor: `"<first 2 digits of the city code>0000sh"` in ASCII.
    pub fn province(&self) -> [u8; 8] {
        let [c0, c1, ..] = self.city_code;
        [c0, c1, b'0', b'0', b'0', b'0', b's', b'h']
    }

    /// L2, the city factor: `"<city code>sx"` in ASCII, or in Zhejiang `"<first 4 digits of the
    /// card identification code>00sx"`.
    pub fn city(&self) -> [u8; 8] {
        if self.zhejiang_rule() {
            let [p0, p1] = self.card_id_prefix;
            let digit = |nibble: u8| b'0' + nibble;
            [
                digit(p0 >> 4),
                digit(p0 & 0x0F),
                digit(p1 >> 4),
                digit(p1 & 0x0F),
                b'0',
                b'0',
                b's',
                b'x',
            ]
        } else {
            let [c0, c1, c2, c3, c4, c5] = self.city_code;
            [c0, c1, c2, c3, c4, c5, b's', b'x']
        }
    }

    /// L3, the card factor: ATR historical bytes T6..TD.
    pub fn card(&self) -> [u8; 8] {
        self.card
    }

    /// The three factors in the order they are applied: province, city, card.
    pub fn levels(&self) -> [[u8; 8]; 3] {
        [self.province(), self.city(), self.card()]
    }
}

impl fmt::Debug for SocialSecurityFactors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocialSecurityFactors")
            .field("city_code", &self.city_code())
            .field("L1", &hex::encode_upper(self.province()))
            .field("L2", &hex::encode_upper(self.city()))
            .field("L3", &hex::encode_upper(self.card()))
            .finish()
    }
}

/// The card data a key store may need to diversify a key. Each key's rule in the key set says
/// which part it uses; a part that is missing when a key needs it is an error naming the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardFactors {
    /// PBOC application serial number (8 bytes), for purse keys.
    pub application_serial: Option<[u8; 8]>,
    /// City code, card identification code and ATR, for social-security keys.
    pub social_security: Option<SocialSecurityFactors>,
}

impl CardFactors {
    /// No card data: for keys that are not diversified (e.g. the transport key).
    pub const NONE: CardFactors = CardFactors {
        application_serial: None,
        social_security: None,
    };

    /// These factors with the application serial number `serial` (8 bytes, or the 10-byte serial
    /// of file `0015`, whose rightmost 8 bytes are taken).
    pub fn with_application_serial(mut self, serial: &[u8]) -> Result<Self, FactorError> {
        let start = serial
            .len()
            .checked_sub(8)
            .ok_or_else(|| FactorError::ApplicationSerial(hex::encode_upper(serial)))?;
        let mut factor = [0u8; 8];
        factor.copy_from_slice(&serial[start..]);
        self.application_serial = Some(factor);
        Ok(self)
    }

    /// These factors with the social-security factors `factors`.
    pub fn with_social_security(mut self, factors: SocialSecurityFactors) -> Self {
        self.social_security = Some(factors);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wenzhou_atr() -> HistoricalBytes {
        HistoricalBytes::wenzhou([0, 0, 0, 1])
    }

    #[test]
    fn wenzhou_factors() {
        // City code 330300, card id 330300 D156000005 …, ATR of a card with serial 00000001.
        let card_id = hex::decode("330300D15600000500000001").unwrap();
        let f = SocialSecurityFactors::for_card("330300", &card_id, &wenzhou_atr()).unwrap();
        assert!(f.zhejiang_rule());
        assert_eq!(f.province(), *b"330000sh");
        assert_eq!(hex::encode_upper(f.province()), "3333303030307368");
        assert_eq!(f.city(), *b"330300sx");
        assert_eq!(hex::encode_upper(f.city()), "3333303330307378");
        assert_eq!(hex::encode_upper(f.card()), "0001330300000001");
        assert_eq!(f.levels(), [f.province(), f.city(), f.card()]);
    }

    #[test]
    fn zhejiang_rule_uses_the_card_id_not_the_district() {
        // 330302 (a district of Wenzhou): the general rule would give "330302sx"; in Zhejiang the
        // first 4 digits of the card id and "00sx" are used instead.
        let card_id = [0x33, 0x03, 0x02, 0xD1];
        let f = SocialSecurityFactors::new("330302", &card_id, [0; 8]).unwrap();
        assert_eq!(f.city(), *b"330300sx");
        // Hangzhou card (card-specs §1.9 example 3301 -> 33 33 30 31).
        let f = SocialSecurityFactors::new("330100", &[0x33, 0x01], [0; 8]).unwrap();
        assert_eq!(hex::encode_upper(f.city()), "3333303130307378");
        assert_eq!(f.province(), *b"330000sh");
    }

    #[test]
    fn other_provinces_use_the_city_code() {
        // card-specs §1.9: 650100 -> 36 35 30 31 30 30 ‖ 73 78.
        let f = SocialSecurityFactors::new("650102", &[0x65, 0x01], [0; 8]).unwrap();
        assert!(!f.zhejiang_rule());
        assert_eq!(f.city(), *b"650102sx");
        assert_eq!(f.province(), *b"650000sh");
        let f = SocialSecurityFactors::new("650100", &[0x65, 0x01], [0; 8]).unwrap();
        assert_eq!(hex::encode_upper(f.city()), "3635303130307378");
    }

    #[test]
    fn bad_inputs_are_named() {
        let e = SocialSecurityFactors::new("33030", &[0x33, 0x03], [0; 8]).unwrap_err();
        assert_eq!(e, FactorError::CityCode("33030".into()));
        assert!(e.to_string().contains("city code \"33030\""));
        assert!(SocialSecurityFactors::new("33030A", &[0x33, 0x03], [0; 8]).is_err());
        let e = SocialSecurityFactors::new("330300", &[0x33], [0; 8]).unwrap_err();
        assert!(e.to_string().contains("card identification code 33"), "{e}");
        let e = SocialSecurityFactors::new("330300", &[0x3A, 0x03], [0; 8]).unwrap_err();
        assert_eq!(e, FactorError::CardId("3A03".into()));
        let e = SocialSecurityFactors::new("330300", &[0x11, 0x01], [0; 8]).unwrap_err();
        assert!(matches!(e, FactorError::CardIdRegion { .. }), "{e}");
    }

    #[test]
    fn application_serial_takes_the_rightmost_8_bytes() {
        let ten = hex::decode("31004100000089999985").unwrap();
        let f = CardFactors::NONE.with_application_serial(&ten).unwrap();
        assert_eq!(
            f.application_serial,
            Some(*b"\x41\x00\x00\x00\x89\x99\x99\x85")
        );
        let eight = CardFactors::default()
            .with_application_serial(&[1, 2, 3, 4, 5, 6, 7, 8])
            .unwrap();
        assert_eq!(eight.application_serial, Some([1, 2, 3, 4, 5, 6, 7, 8]));
        let e = CardFactors::NONE
            .with_application_serial(&[1, 2, 3])
            .unwrap_err();
        assert_eq!(e, FactorError::ApplicationSerial("010203".into()));
    }
}
