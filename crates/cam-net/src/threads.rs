//! How many threads a parallel codec path (strip encode, strip decode) may use.

/// `var`'s value when it is a number (clamped to 1–16, so a typo cannot start a thousand
/// threads), else the cores, at most 4: more than four strips of a 4K frame win little and
/// cost memory.
pub fn wanted(var: &str) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4)
        })
        .clamp(1, 16)
}
