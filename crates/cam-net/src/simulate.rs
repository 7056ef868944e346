//! The `--simulate-*` flags: the seeded link model of `cam_proto::sim` on what this program
//! sends, so a demo shows what the sans-IO tests prove.

use std::time::Duration;

use cam_proto::sim::Impairment;

/// The `--simulate-*` flags both programs take: impair what *this* program sends.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SimulateArgs {
    /// Drop this percentage of outgoing datagrams (seeded, for demos and tests).
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, default_value = "0")]
    pub simulate_loss: f64,
    /// Deliver this percentage of outgoing datagrams twice.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, default_value = "0")]
    pub simulate_dup: f64,
    /// Hold back this percentage of outgoing datagrams behind later ones.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, default_value = "0")]
    pub simulate_reorder: f64,
    /// Flip one random bit in this percentage of outgoing datagrams.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, default_value = "0")]
    pub simulate_corrupt: f64,
    /// Delay every outgoing datagram by this many milliseconds (one way).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub simulate_delay: u64,
    /// Add up to this many milliseconds more, at random per datagram (reorders them).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub simulate_jitter: u64,
    /// Limit the outgoing rate to this many kbit/s, through a drop-tail queue.
    #[arg(long, value_name = "KBPS")]
    pub simulate_rate: Option<u64>,
    /// Depth of that queue in milliseconds at the limited rate.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub simulate_queue_ms: u64,
    /// Seed of the simulation, for repeatable runs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub simulate_seed: u64,
}

impl SimulateArgs {
    pub fn impairment(&self) -> Impairment {
        Impairment {
            loss: self.simulate_loss / 100.0,
            duplicate: self.simulate_dup / 100.0,
            reorder: self.simulate_reorder / 100.0,
            corrupt: self.simulate_corrupt / 100.0,
            delay: Duration::from_millis(self.simulate_delay),
            jitter: Duration::from_millis(self.simulate_jitter),
            rate_bps: self.simulate_rate.map(|k| k.saturating_mul(1000)),
            queue: Duration::from_millis(self.simulate_queue_ms),
            seed: self.simulate_seed,
        }
    }
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number; give a percentage such as 5"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a percentage between 0 and 100"))
    }
}
