//! Key files on disk: reading `--key-file`, writing `--gen-key`. What a key file may hold,
//! and the stretching of passphrases, are `cam_proto::secure::keyfile`'s (no I/O there).

use std::io::Write;
use std::path::Path;

use cam_proto::secure::keyfile::{new_key_text, KeyFileError, KeyText};
use cam_proto::secure::{AeadChoice, Psk};

/// `--aead`: `cam_proto::secure::AeadChoice` as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AeadArg {
    /// AES-256-GCM where both ends have AES instructions, ChaCha20-Poly1305 otherwise.
    #[default]
    Auto,
    /// Only AES-256-GCM (slow on a CPU without AES instructions).
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
    /// Only ChaCha20-Poly1305.
    #[value(name = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

impl From<AeadArg> for AeadChoice {
    fn from(arg: AeadArg) -> AeadChoice {
        match arg {
            AeadArg::Auto => AeadChoice::Auto,
            AeadArg::Aes256Gcm => AeadChoice::Aes256Gcm,
            AeadArg::ChaCha20Poly1305 => AeadChoice::ChaCha20Poly1305,
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
    #[error("--key-file (or CAMSTREAM_KEY_FILE) works with --protocol camstream only: classic and RTP streams cannot be encrypted")]
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

/// Writes a new random key to `path`: 64 lowercase hex digits and a newline, readable by
/// the owner only, refusing to replace an existing file.
pub fn generate_key_file(path: &Path) -> Result<(), KeyFileError> {
    let text = new_key_text()?;
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
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyFileError::Write {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::*;

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
