//! A delaying, rate-limiting UDP relay for trying camstream over a "remote" link on one
//! machine (this kernel has no `tc netem`). The same code the end-to-end tests use.
//!
//! relay LISTEN_PORT VIEWER_PORT ONE_WAY_MS [RATE_KBPS] [QUEUE_MS] [LOSS_PERCENT]
//! Runs until killed; prints the link's counters on stderr every second.

#![allow(clippy::unwrap_used)] // a developer tool: a bad argument may panic with its message

#[path = "../tests/common/relay.rs"]
mod relay;

use std::time::Duration;

use cam_proto::sim::Impairment;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> Option<T> {
    args.get(i).map(|a| {
        a.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not '{a}'"))
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!(
            "usage: relay LISTEN_PORT VIEWER_PORT ONE_WAY_MS [RATE_KBPS] [QUEUE_MS] [LOSS_PERCENT]"
        );
        std::process::exit(2);
    }
    let listen: u16 = arg(&args, 1, "LISTEN_PORT").unwrap();
    let viewer: u16 = arg(&args, 2, "VIEWER_PORT").unwrap();
    let one_way: u64 = arg(&args, 3, "ONE_WAY_MS").unwrap();
    let rate: Option<u64> = arg(&args, 4, "RATE_KBPS").filter(|r: &u64| *r > 0);
    let queue: u64 = arg(&args, 5, "QUEUE_MS").unwrap_or(100);
    let loss: f64 = arg(&args, 6, "LOSS_PERCENT").unwrap_or(0.0);
    let forward = Impairment {
        delay: Duration::from_millis(one_way),
        rate_bps: rate.map(|k| k * 1000),
        queue: Duration::from_millis(queue),
        loss: loss / 100.0,
        seed: 1,
        ..Impairment::default()
    };
    let back = Impairment {
        delay: Duration::from_millis(one_way),
        loss: loss / 100.0,
        seed: 2,
        ..Impairment::default()
    };
    let relay = relay::Relay::start_on(
        format!("127.0.0.1:{listen}").parse().unwrap(),
        format!("127.0.0.1:{viewer}").parse().unwrap(),
        forward,
        back,
    );
    eprintln!("relay: 127.0.0.1:{listen} -> 127.0.0.1:{viewer}, {one_way} ms each way, rate {rate:?} kbit/s, queue {queue} ms, loss {loss}%");
    loop {
        std::thread::sleep(Duration::from_secs(1));
        eprintln!("relay: forward {:?}", relay.forward_stats());
    }
}
