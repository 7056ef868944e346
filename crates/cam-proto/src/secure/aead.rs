//! Which AEAD a session uses. The client offers what it can run fast, the viewer picks:
//! AES-256-GCM when both ends have AES instructions (about three times faster than
//! ChaCha20-Poly1305 there), ChaCha20-Poly1305 otherwise (fast everywhere, constant-time in
//! software, so a Raspberry Pi 4 without AES instructions is not slowed down). Both choices
//! are covered by the handshake MACs, so nobody on the path can change them.

use ring::aead;

/// One AEAD, with its bit in a handshake's AEAD field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aead {
    ChaCha20Poly1305,
    Aes256Gcm,
}

impl Aead {
    /// In the order the viewer prefers them.
    const PREFERENCE: [Aead; 2] = [Aead::Aes256Gcm, Aead::ChaCha20Poly1305];

    pub const fn bit(self) -> u8 {
        match self {
            Aead::ChaCha20Poly1305 => 0x01,
            Aead::Aes256Gcm => 0x02,
        }
    }

    /// The AEAD a reply's field names: exactly one known bit.
    pub fn from_bit(bits: u8) -> Option<Aead> {
        Aead::PREFERENCE.into_iter().find(|a| a.bit() == bits)
    }

    pub fn name(self) -> &'static str {
        match self {
            Aead::ChaCha20Poly1305 => "chacha20-poly1305",
            Aead::Aes256Gcm => "aes-256-gcm",
        }
    }

    /// Datagrams one key may seal: AES-GCM's confidentiality limit for packets of up to
    /// 2¹⁶ bytes is 2²³ (RFC 9001, section 6.6, after Bellare-Tackmann); ChaCha20-Poly1305's
    /// is beyond any packet number (`MAX_PACKET_NUMBER` applies).
    pub fn seal_limit(self) -> u64 {
        match self {
            Aead::ChaCha20Poly1305 => u64::MAX,
            Aead::Aes256Gcm => 1 << 23,
        }
    }

    pub(crate) fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Aead::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
            Aead::Aes256Gcm => &aead::AES_256_GCM,
        }
    }
}

impl std::fmt::Display for Aead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of AEADs: what a client offers, or what a viewer accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeadSet(u8);

impl AeadSet {
    pub const CHACHA20_POLY1305: AeadSet = AeadSet(Aead::ChaCha20Poly1305.bit());
    pub const AES_256_GCM: AeadSet = AeadSet(Aead::Aes256Gcm.bit());
    pub const ALL: AeadSet = AeadSet(Aead::ChaCha20Poly1305.bit() | Aead::Aes256Gcm.bit());

    /// What this machine runs fast: ChaCha20-Poly1305 always, AES-256-GCM too when the CPU
    /// has AES and carry-less multiplication instructions (without them `ring` falls back to
    /// constant-time software AES, several times slower than ChaCha20).
    pub fn fast_here() -> AeadSet {
        if aes_in_hardware() {
            AeadSet::ALL
        } else {
            AeadSet::CHACHA20_POLY1305
        }
    }

    /// The set a handshake field names; bits of AEADs this version does not know are left
    /// out (a later client may offer more).
    pub fn from_bits(bits: u8) -> AeadSet {
        AeadSet(bits & AeadSet::ALL.0)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, aead: Aead) -> bool {
        self.0 & aead.bit() != 0
    }

    /// The viewer's choice for a client offering `offered`: the first of its preference that
    /// both sides have; `None` when they have nothing in common.
    pub fn choose(self, offered: AeadSet) -> Option<Aead> {
        Aead::PREFERENCE
            .into_iter()
            .find(|&a| self.contains(a) && offered.contains(a))
    }
}

/// What `--aead` restricts an end to. `Auto` is what a user wants; the others exist to
/// measure one AEAD, or to check the fallback on a machine that has AES instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AeadChoice {
    /// AES-256-GCM where both ends have AES instructions, ChaCha20-Poly1305 otherwise.
    #[default]
    Auto,
    /// Only AES-256-GCM (slow on a CPU without AES instructions).
    Aes256Gcm,
    /// Only ChaCha20-Poly1305.
    ChaCha20Poly1305,
}

impl AeadChoice {
    /// The AEADs a client offers, or a viewer accepts.
    pub fn set(self) -> AeadSet {
        match self {
            AeadChoice::Auto => AeadSet::fast_here(),
            AeadChoice::Aes256Gcm => AeadSet::AES_256_GCM,
            AeadChoice::ChaCha20Poly1305 => AeadSet::CHACHA20_POLY1305,
        }
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn aes_in_hardware() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn aes_in_hardware() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
fn aes_in_hardware() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_viewer_prefers_aes_only_when_both_sides_have_it() {
        use Aead::*;
        let (all, chacha, aes) = (
            AeadSet::ALL,
            AeadSet::CHACHA20_POLY1305,
            AeadSet::AES_256_GCM,
        );
        assert_eq!(all.choose(all), Some(Aes256Gcm));
        assert_eq!(all.choose(chacha), Some(ChaCha20Poly1305));
        assert_eq!(chacha.choose(all), Some(ChaCha20Poly1305));
        assert_eq!(aes.choose(all), Some(Aes256Gcm));
        assert_eq!(aes.choose(chacha), None);
        assert_eq!(chacha.choose(AeadSet::from_bits(0)), None);
    }

    #[test]
    fn bits_round_trip_and_unknown_bits_are_ignored() {
        for a in Aead::PREFERENCE {
            assert_eq!(Aead::from_bit(a.bit()), Some(a));
        }
        assert_eq!(Aead::from_bit(0), None);
        assert_eq!(Aead::from_bit(0x03), None, "a reply names one AEAD");
        assert_eq!(Aead::from_bit(0x80), None);
        assert_eq!(AeadSet::from_bits(0xff), AeadSet::ALL);
        assert_eq!(AeadSet::from_bits(0x81), AeadSet::CHACHA20_POLY1305);
        assert!(AeadSet::fast_here().contains(Aead::ChaCha20Poly1305));
        assert_eq!(AeadChoice::default().set(), AeadSet::fast_here());
        assert_eq!(AeadChoice::Aes256Gcm.set(), AeadSet::AES_256_GCM);
        assert_eq!(
            AeadChoice::ChaCha20Poly1305.set(),
            AeadSet::CHACHA20_POLY1305
        );
    }
}
