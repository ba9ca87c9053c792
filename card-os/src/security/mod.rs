//! Security state and access rights (FMCOS 2.0 §5).
//!
//! The card keeps two security-state registers, each 0..F: one for the MF and one for the current
//! DF. Reset and power-off clear both; selecting a DF clears the current-DF register (§5.1). A
//! successful VERIFY or EXTERNAL AUTHENTICATE raises them to the key's follow-on state (at the MF
//! both registers, elsewhere only the current DF's, §5.3).
//!
//! An access right is one byte `XY` (§5.2):
//! * `0Y` — the MF register must be at least Y;
//! * `XY`, X ≠ 0 — the current-DF register must lie in Y..=X; X < Y means never (`EF`, for instance);
//! * `F0` therefore means always.
//!
//! [`keys`] holds the key records of key files; [`Challenge`] is the card's last GET CHALLENGE
//! random, which only the next command may use (FMCOS 2.0 §7.2).

pub mod keys;

/// The two security-state registers (volatile: cleared by reset and power-off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecurityState {
    /// The MF register.
    pub mf: u8,
    /// The current DF's register.
    pub df: u8,
}

impl SecurityState {
    /// Both registers at 0 (after reset).
    pub const CLEAR: SecurityState = SecurityState { mf: 0, df: 0 };
}

/// The random of the last GET CHALLENGE (4, 8 or 16 bytes). FMCOS 2.0 §7.2: it is valid for the
/// next command only, so the engine takes it out of the volatile state before every command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Challenge {
    bytes: [u8; 16],
    len: u8,
}

impl Challenge {
    /// Lengths GET CHALLENGE gives (LD/T 32 part 5 allows 16 for SM4).
    pub const LENGTHS: [usize; 3] = [4, 8, 16];

    /// Draws a challenge of `len` bytes (one of [`Challenge::LENGTHS`]; others give `None`).
    pub fn draw(rng: &mut dyn crate::crypto::Rng, len: usize) -> Option<Challenge> {
        if !Self::LENGTHS.contains(&len) {
            return None;
        }
        let mut bytes = [0u8; 16];
        rng.fill(bytes.get_mut(..len)?);
        Some(Challenge {
            bytes,
            len: len as u8,
        })
    }

    /// The random bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// An FMCOS access-right byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessRight(pub u8);

impl AccessRight {
    /// `F0`: always allowed.
    pub const ALWAYS: AccessRight = AccessRight(0xF0);
    /// `EF`: never allowed (any `XY` with X < Y).
    pub const NEVER: AccessRight = AccessRight(0xEF);

    /// Whether the right is satisfied in `state` (FMCOS 2.0 §5.2).
    pub fn allows(self, state: &SecurityState) -> bool {
        let (x, y) = (self.0 >> 4, self.0 & 0x0F);
        if x == 0 {
            state.mf >= y
        } else {
            y <= x && (y..=x).contains(&state.df)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(mf: u8, df: u8) -> SecurityState {
        SecurityState { mf, df }
    }

    #[test]
    fn fmcos_access_rights() {
        assert!(AccessRight(0xF0).allows(&st(0, 0)));
        assert!(!AccessRight(0xEF).allows(&st(0xF, 0xF)));
        // 0Y: MF register at least Y.
        assert!(AccessRight(0x05).allows(&st(5, 0)));
        assert!(!AccessRight(0x05).allows(&st(4, 0xF)));
        // XY: current-DF register within Y..=X (FMCOS 2.0 §5.2 example: 53 means 3, 4 or 5).
        for df in 0..=15 {
            assert_eq!(
                AccessRight(0x53).allows(&st(0, df)),
                (3..=5).contains(&df),
                "{df}"
            );
        }
        // X = Y: exactly X.
        assert!(AccessRight(0x11).allows(&st(0, 1)));
        assert!(!AccessRight(0x11).allows(&st(0, 2)));
        // F1: at least 1.
        assert!(AccessRight(0xF1).allows(&st(0, 1)));
        assert!(!AccessRight(0xF1).allows(&st(0, 0)));
    }
}
