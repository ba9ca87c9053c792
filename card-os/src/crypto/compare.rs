//! Constant-time comparison for secrets and authenticators (PINs, MACs, cryptograms), so the time
//! a failed check takes says nothing about how many leading bytes were right. Built on `subtle`.

use subtle::ConstantTimeEq;

/// `a == b` in time that depends only on the lengths (which are public: they come from the APDU
/// and the key record), never on the contents. Slices of different lengths are unequal.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_and_unequal() {
        assert!(ct_eq(&[], &[]));
        assert!(ct_eq(&[1, 2, 3, 4], &[1, 2, 3, 4]));
        assert!(!ct_eq(&[1, 2, 3, 4], &[1, 2, 3, 5]));
        assert!(!ct_eq(&[0, 2, 3, 4], &[1, 2, 3, 4]));
        assert!(!ct_eq(&[1, 2, 3], &[1, 2, 3, 4]));
        assert!(!ct_eq(&[1, 2, 3, 4], &[]));
    }
}
