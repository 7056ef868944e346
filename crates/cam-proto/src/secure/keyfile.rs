//! Key files' contents (the programs read and write the files): `cam-client --gen-key FILE` writes 32 random bytes as 64 hex digits and a
//! newline (mode 0600, never over an existing file); `--key-file FILE` reads either that or,
//! on its first line, a passphrase of at least 12 characters, stretched with Argon2id.

use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use super::{Psk, PSK_LEN};

/// Shortest passphrase taken: Argon2id slows guessing, it cannot make a short one strong.
pub const PASSPHRASE_MIN_CHARS: usize = 12;
/// Argon2id's salt. Fixed, because both ends must derive the same key without talking; the
/// application name keeps precomputed tables for other programs useless here.
pub const PASSPHRASE_SALT: &[u8] = b"camstream-v1-passphrase";
/// Argon2id cost: 64 MiB of memory, 3 passes, 1 lane (RFC 9106's second recommended
/// option); a fraction of a second once per program start.
pub const ARGON2_M_KIB: u32 = 64 * 1024;
pub const ARGON2_T: u32 = 3;
pub const ARGON2_P: u32 = 1;

/// What can go wrong with a key file; each says the file and what to do, on one line.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {} is empty: put a key in it with cam-client --gen-key FILE, or a passphrase of at least {PASSPHRASE_MIN_CHARS} characters on its first line", path.display())]
    Empty { path: PathBuf },
    #[error("key file {} is not text: it should hold 64 hex digits (cam-client --gen-key FILE) or a passphrase line", path.display())]
    NotText { path: PathBuf },
    #[error("the passphrase in key file {} has {chars} characters; use at least {PASSPHRASE_MIN_CHARS}, or a random key from cam-client --gen-key FILE", path.display())]
    ShortPassphrase { path: PathBuf, chars: usize },
    #[error("key file {} already exists; refusing to overwrite it (remove it first, or choose another name)", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write key file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the system's random number generator failed")]
    Random,
    #[error("stretching the passphrase failed: {0}")]
    Kdf(String),
}

/// What a key file holds, before any stretching.
#[derive(PartialEq, Eq)]
pub enum KeyText {
    Raw(Psk),
    Passphrase(String),
}

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyText::Raw(_) => "KeyText::Raw(<secret>)",
            KeyText::Passphrase(_) => "KeyText::Passphrase(<secret>)",
        })
    }
}

impl KeyText {
    /// A key file's contents: exactly 64 hex digits (surrounding white space aside) is a raw
    /// key; otherwise the first line, without its line ending, is a passphrase.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<KeyText, KeyFileError> {
        let text = std::str::from_utf8(bytes).map_err(|_| KeyFileError::NotText {
            path: path.to_owned(),
        })?;
        if text.trim().is_empty() {
            return Err(KeyFileError::Empty {
                path: path.to_owned(),
            });
        }
        if let Some(key) = decode_hex_key(text.trim()) {
            return Ok(KeyText::Raw(Psk::from_bytes(key)));
        }
        let line = text.lines().next().unwrap_or_default();
        let chars = line.chars().count();
        if chars < PASSPHRASE_MIN_CHARS {
            return Err(KeyFileError::ShortPassphrase {
                path: path.to_owned(),
                chars,
            });
        }
        Ok(KeyText::Passphrase(line.to_owned()))
    }

    /// The pre-shared key: the raw key, or the passphrase through Argon2id.
    pub fn into_psk(self) -> Result<Psk, KeyFileError> {
        match self {
            KeyText::Raw(psk) => Ok(psk),
            KeyText::Passphrase(phrase) => stretch_passphrase(&phrase),
        }
    }
}

/// Argon2id(passphrase, fixed application salt) → 32 bytes.
pub fn stretch_passphrase(phrase: &str) -> Result<Psk, KeyFileError> {
    use argon2::{Algorithm, Argon2, Params, Version};
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(PSK_LEN))
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    let mut key = [0u8; PSK_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(phrase.as_bytes(), PASSPHRASE_SALT, &mut key)
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    Ok(Psk::from_bytes(key))
}

/// A new random key as a key file holds it: 64 lowercase hex digits and a newline.
pub fn new_key_text() -> Result<String, KeyFileError> {
    let mut key = [0u8; PSK_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| KeyFileError::Random)?;
    let mut text = encode_hex(&key);
    text.push('\n');
    Ok(text)
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn decode_hex_key(text: &str) -> Option<[u8; PSK_LEN]> {
    let digits = text.as_bytes();
    if digits.len() != PSK_LEN * 2 {
        return None;
    }
    let mut key = [0u8; PSK_LEN];
    for (k, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *k = (hi * 16 + lo) as u8;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KeyText, KeyFileError> {
        KeyText::parse(Path::new("k"), text.as_bytes())
    }

    #[test]
    fn raw_keys_in_either_case_with_or_without_newline() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let mut expected = [0u8; 32];
        for (i, b) in expected.iter_mut().enumerate() {
            *b = ((i % 16) * 0x11) as u8;
        }
        for text in [hex.to_owned(), format!("{hex}\n"), format!("{hex}\r\n")] {
            assert_eq!(
                parse(&text).unwrap(),
                KeyText::Raw(Psk::from_bytes(expected))
            );
        }
        assert_eq!(decode_hex_key(&encode_hex(&expected)), Some(expected));
    }

    #[test]
    fn anything_else_is_a_passphrase_line() {
        assert_eq!(
            parse("correct horse battery\nsecond line").unwrap(),
            KeyText::Passphrase("correct horse battery".into())
        );
        // 63 hex digits are not a key but a (long enough) passphrase.
        let almost = "0".repeat(63);
        assert_eq!(parse(&almost).unwrap(), KeyText::Passphrase(almost.clone()));
        assert!(matches!(
            parse("short pass\n"),
            Err(KeyFileError::ShortPassphrase { chars: 10, .. })
        ));
        assert!(matches!(parse(""), Err(KeyFileError::Empty { .. })));
        assert!(matches!(parse(" \n\n"), Err(KeyFileError::Empty { .. })));
        assert!(matches!(
            KeyText::parse(Path::new("k"), &[0xff, 0xfe, 0x00]),
            Err(KeyFileError::NotText { .. })
        ));
        // Every error is one line that names the file.
        let e = parse("short").unwrap_err().to_string();
        assert!(!e.contains('\n') && e.contains("key file k"), "{e}");
    }

    #[test]
    fn passphrases_stretch_deterministically_and_apart() {
        let a = stretch_passphrase("correct horse battery").unwrap();
        assert_eq!(a, stretch_passphrase("correct horse battery").unwrap());
        assert_ne!(a, stretch_passphrase("correct horse batterz").unwrap());
    }
}
