//! The holder's photo: a JPEG of at most 4096 bytes, written at offset 0 of EF08 (数字相片,
//! a 0x1000-byte transparent file).
//!
//! A photo must start with the SOI marker (`FF D8`), end with the EOI marker (`FF D9`) and be a
//! JPEG that a real decoder (the `jpeg-decoder` crate) decodes completely, with a bounded output
//! buffer, so that a crafted header cannot make us allocate much.

use std::fmt;

use serde::{Serialize, Serializer};

/// EF08's size, and so the largest photo.
pub const MAX_PHOTO_LEN: usize = 4096;
/// The most decoded pixel bytes we allow (well above what fits in 4 KiB of JPEG for a photo).
const MAX_DECODED_BYTES: usize = 4 * 1024 * 1024;

/// A checked JPEG photo.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Photo {
    bytes: Vec<u8>,
    width: u16,
    height: u16,
}

/// Why a photo was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    /// The file could not be read.
    #[error("cannot read the photo file {path}: {message}")]
    Read {
        /// The path as resolved.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// Larger than EF08.
    #[error("the photo has {len} bytes; the card's photo file holds at most {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Empty.
    #[error("the photo is empty")]
    Empty,
    /// No `FF D8` at the start.
    #[error(
        "the photo is not a JPEG: it does not start with the SOI marker FF D8 (it starts with {0})"
    )]
    NoSoi(String),
    /// No `FF D9` at the end.
    #[error("the photo is not a complete JPEG: it does not end with the EOI marker FF D9")]
    NoEoi,
    /// The JPEG decoder refused it.
    #[error("the photo is not a valid JPEG: {0}")]
    Decode(String),
}

impl Photo {
    /// Checks the bytes of a JPEG file.
    pub fn new(bytes: Vec<u8>) -> Result<Photo, PhotoError> {
        if bytes.is_empty() {
            return Err(PhotoError::Empty);
        }
        if bytes.len() > MAX_PHOTO_LEN {
            return Err(PhotoError::TooLarge {
                len: bytes.len(),
                max: MAX_PHOTO_LEN,
            });
        }
        if !bytes.starts_with(&[0xFF, 0xD8]) {
            let start = &bytes[..bytes.len().min(4)];
            return Err(PhotoError::NoSoi(hex::encode_upper(start)));
        }
        if !bytes.ends_with(&[0xFF, 0xD9]) {
            return Err(PhotoError::NoEoi);
        }
        let mut decoder = jpeg_decoder::Decoder::new(bytes.as_slice());
        decoder.set_max_decoding_buffer_size(MAX_DECODED_BYTES);
        decoder
            .decode()
            .map_err(|e| PhotoError::Decode(e.to_string()))?;
        let info = decoder
            .info()
            .ok_or_else(|| PhotoError::Decode("no frame header".into()))?;
        if info.width == 0 || info.height == 0 {
            return Err(PhotoError::Decode("the image has no pixels".into()));
        }
        Ok(Photo {
            bytes,
            width: info.width,
            height: info.height,
        })
    }

    /// Reads and checks a file.
    pub fn from_file(path: &std::path::Path) -> Result<Photo, PhotoError> {
        let bytes = std::fs::read(path).map_err(|e| PhotoError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Photo::new(bytes)
    }

    /// Recovers the photo from the contents of EF08 as read from a card: the JPEG followed by
    /// unwritten space (`00` or `FF` bytes), which is trimmed before the checks.
    pub fn from_ef08(file: &[u8]) -> Result<Photo, PhotoError> {
        let mut end = file.len();
        // Trailing 00 / FF are padding; the last byte of a JPEG is D9.
        while end > 0 && matches!(file[end - 1], 0x00 | 0xFF) {
            end -= 1;
        }
        Photo::new(file[..end].to_vec())
    }

    /// The JPEG bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Width in pixels.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u16 {
        self.height
    }
}

impl fmt::Debug for Photo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Photo({} bytes, {}x{})",
            self.bytes.len(),
            self.width,
            self.height
        )
    }
}

impl Serialize for Photo {
    /// A summary, not the image: `{"bytes": n, "width": w, "height": h}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Photo", 3)?;
        st.serialize_field("bytes", &self.bytes.len())?;
        st.serialize_field("width", &self.width)?;
        st.serialize_field("height", &self.height)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../test-vectors/applicants/photos/p01.jpg"
        );
        std::fs::read(path).expect("test-vectors photo p01.jpg")
    }

    #[test]
    fn sample_photo_is_accepted() {
        let bytes = sample();
        let p = Photo::new(bytes.clone()).unwrap();
        assert!(p.width() > 0 && p.height() > 0);
        let mut ef08 = bytes;
        ef08.resize(MAX_PHOTO_LEN, 0x00);
        assert_eq!(Photo::from_ef08(&ef08).unwrap(), p);
    }

    #[test]
    fn refusals() {
        assert_eq!(Photo::new(vec![]), Err(PhotoError::Empty));
        let png = b"\x89PNG\r\n\x1a\n".to_vec();
        assert_eq!(Photo::new(png), Err(PhotoError::NoSoi("89504E47".into())));
        let mut truncated = sample();
        truncated.truncate(truncated.len() - 10);
        assert_eq!(Photo::new(truncated), Err(PhotoError::NoEoi));
        let mut big = sample();
        big.resize(MAX_PHOTO_LEN + 1, 0);
        assert!(matches!(
            Photo::new(big),
            Err(PhotoError::TooLarge { len: 4097, .. })
        ));
        // Markers alone are not a JPEG.
        assert!(matches!(
            Photo::new(vec![0xFF, 0xD8, 0xFF, 0xD9]),
            Err(PhotoError::Decode(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn hostile_ef08_never_panics(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut v = vec![0xFF, 0xD8];
            v.extend(body);
            v.extend([0xFF, 0xD9]);
            let _ = Photo::from_ef08(&v);
        }

        #[test]
        fn corrupted_sample_never_panics(pos in 0usize..4096, byte in any::<u8>()) {
            let mut v = sample();
            let i = pos % v.len();
            v[i] = byte;
            let _ = Photo::new(v);
        }
    }
}
