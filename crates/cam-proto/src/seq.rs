//! Serial-number arithmetic for 32-bit frame sequence numbers (RFC 1982), so that a
//! stream that runs long enough to wrap keeps its order.

/// True when `a` comes after `b`.
pub fn seq_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// How far `a` is ahead of `b` (0 when it is not ahead).
pub fn seq_distance(a: u32, b: u32) -> u32 {
    if seq_newer(a, b) {
        a.wrapping_sub(b)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_survives_wrap() {
        assert!(seq_newer(1, 0));
        assert!(!seq_newer(0, 1));
        assert!(!seq_newer(5, 5));
        assert!(seq_newer(0, u32::MAX));
        assert!(seq_newer(3, u32::MAX - 3));
        assert_eq!(seq_distance(3, u32::MAX - 3), 7);
        assert_eq!(seq_distance(u32::MAX - 3, 3), 0);
    }
}
