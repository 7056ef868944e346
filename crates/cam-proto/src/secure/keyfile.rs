//! Key files: `cam-client --gen-key FILE` writes 32 random bytes as 64 hex digits and a
//! newline (mode 0600, never over an existing file); `--key-file FILE` reads either that or,
//! on its first line, a passphrase of at least 12 characters, stretched with Argon2id.

use std::io::Write;
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

/// Reads a key file into the pre-shared key.
pub fn read_key_file(path: &Path) -> Result<Psk, KeyFileError> {
    let bytes = std::fs::read(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    KeyText::parse(path, &bytes)?.into_psk()
}

/// Why the keyed-mode options of a program do not go together, or its key cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyOptionsError {
    #[error("--aead chooses the cipher of keyed mode; it needs --key-file FILE (or CAMSTREAM_KEY_FILE) on both sides")]
    AeadWithoutKey,
    #[error("--key-file (or CAMSTREAM_KEY_FILE) works with --protocol camstream only: the classic protocol cannot be encrypted")]
    KeyWithClassic,
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
}

/// The keyed-mode options both programs take (`--key-file`, `--aead`, with `--protocol
/// classic` or not), checked together; the key, read, when there is a key file.
pub fn key_from_options(
    key_file: Option<&Path>,
    aead_given: bool,
    classic: bool,
) -> Result<Option<Psk>, KeyOptionsError> {
    match key_file {
        None if aead_given => Err(KeyOptionsError::AeadWithoutKey),
        None => Ok(None),
        Some(_) if classic => Err(KeyOptionsError::KeyWithClassic),
        Some(path) => {
            log::info!("reading the key from {}", path.display());
            Ok(Some(read_key_file(path)?))
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

/// Writes a new random key to `path`: 64 lowercase hex digits and a newline, readable by
/// the owner only, refusing to replace an existing file.
pub fn generate_key_file(path: &Path) -> Result<(), KeyFileError> {
    let mut key = [0u8; PSK_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| KeyFileError::Random)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists {
                path: path.to_owned(),
            }
        } else {
            KeyFileError::Write {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let mut text = encode_hex(&key);
    text.push('\n');
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyFileError::Write {
            path: path.to_owned(),
            source,
        })
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
    fn keyed_options_go_together_or_say_why_not() {
        assert!(matches!(key_from_options(None, false, false), Ok(None)));
        assert!(matches!(key_from_options(None, false, true), Ok(None)));
        let no_key = key_from_options(None, true, false).unwrap_err();
        assert!(matches!(no_key, KeyOptionsError::AeadWithoutKey));
        assert!(no_key.to_string().contains("needs --key-file"), "{no_key}");
        let classic = key_from_options(Some(Path::new("k")), false, true).unwrap_err();
        assert!(matches!(classic, KeyOptionsError::KeyWithClassic));
        assert!(classic.to_string().contains("--protocol camstream only"));
        let missing = Path::new("/nonexistent/camstream.key");
        let unreadable = key_from_options(Some(missing), true, false).unwrap_err();
        assert!(matches!(
            unreadable,
            KeyOptionsError::KeyFile(KeyFileError::Read { .. })
        ));
        assert!(unreadable.to_string().contains("cannot read key file"));
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

    #[test]
    fn generated_files_are_private_keys_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("camstream-keyfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        generate_key_file(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        assert!(matches!(
            KeyText::parse(&path, text.as_bytes()),
            Ok(KeyText::Raw(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            generate_key_file(&path),
            Err(KeyFileError::Exists { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let other = dir.join("other");
        generate_key_file(&other).unwrap();
        assert_ne!(std::fs::read_to_string(&other).unwrap(), text);
        assert!(matches!(
            read_key_file(&dir.join("missing")),
            Err(KeyFileError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
