//! Name (kind 7, client → viewer): what `cam-client --name` calls the stream, so a viewer
//! with several cameras can label each. Sent after the first frame's header and then every
//! couple of seconds, since any datagram may be lost. Like everything else, sealed in keyed
//! mode and forgeable without a key (a label, never an identity).

use super::{Result, WireError};

/// Longest name in bytes: a label, not a description.
pub const MAX_NAME_LEN: usize = 64;

/// The body is the name's UTF-8 bytes, 1 to `MAX_NAME_LEN` of them, without control
/// characters (a name ends up in logs, window titles and a web page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRepr<'a> {
    pub name: &'a str,
}

impl<'a> NameRepr<'a> {
    pub fn parse(body: &'a [u8]) -> Result<NameRepr<'a>> {
        if body.is_empty() || body.len() > MAX_NAME_LEN {
            return Err(WireError::BadLength);
        }
        let name = std::str::from_utf8(body).map_err(|_| WireError::BadName)?;
        if !is_valid_name(name) {
            return Err(WireError::BadName);
        }
        Ok(NameRepr { name })
    }

    pub fn buffer_len(&self) -> usize {
        self.name.len()
    }

    pub fn emit(&self, body: &mut [u8]) {
        body.copy_from_slice(self.name.as_bytes());
    }
}

/// What a name may be: what `parse` takes, so a sender can refuse a bad `--name` up front.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
mod tests {
    use super::super::{Body, CommonRepr, Datagram, Kind};
    use super::*;

    const NAME_BYTES: [u8; 33] = [
        b'C', b'S', 2, 7, 0, 0, 0, 0, // magic, version, kind=name, flags, reserved
        0xde, 0xad, 0xbe, 0xef, // stream id
        0, 0, 0, 0, 0, 0, 0, 9, // packet number
        0, 0, 0, 3, // frame seq
        b'd', b'o', b'o', b'r', b'!', // the name
        0, 0, 0, 0, // CRC-32C, filled in by the test
    ];

    fn golden() -> Vec<u8> {
        let mut bytes = NAME_BYTES.to_vec();
        super::super::rewrite_check(&mut bytes);
        bytes
    }

    fn name() -> Datagram<'static> {
        Datagram {
            common: CommonRepr {
                kind: Kind::Name,
                stream_id: 0xdead_beef,
                packet_number: 9,
                frame_seq: 3,
            },
            body: Body::Name(NameRepr { name: "door!" }),
        }
    }

    #[test]
    fn parse_and_emit_name() {
        let bytes = golden();
        assert_eq!(Datagram::parse(&bytes).unwrap(), name());
        let mut buf = Vec::new();
        name().emit(&mut buf);
        assert_eq!(buf, bytes);
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(NameRepr::parse(b""), Err(WireError::BadLength));
        assert_eq!(NameRepr::parse(&[b'a'; 65]), Err(WireError::BadLength));
        assert!(NameRepr::parse(&[b'a'; 64]).is_ok());
        assert_eq!(NameRepr::parse(&[0xff, 0xfe]), Err(WireError::BadName));
        assert_eq!(NameRepr::parse(b"a\nb"), Err(WireError::BadName));
        assert_eq!(
            NameRepr::parse("caméra 2".as_bytes()).unwrap().name,
            "caméra 2"
        );
        assert!(!is_valid_name("\u{1b}[31m"));
    }
}
