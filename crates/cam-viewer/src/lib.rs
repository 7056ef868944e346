//! The viewer's library half: everything between "a complete frame arrived" and "pixels on the
//! screen", kept out of `main.rs` so that tests and examples can drive it without a network.

pub mod backlog;
pub mod cli;
pub mod decode;
pub mod display;
pub mod frame;
pub mod frontend;
pub mod grid;
pub mod headless;
pub mod http;
pub mod hub;
pub mod jsonout;
pub mod latency;
pub mod live;
pub mod msgport;
pub mod net;
pub mod osd;
pub mod picture;
pub mod record;
pub mod refusals;
pub mod scale;
pub mod snapshot;
pub mod strips;
pub mod summary;
pub mod worker;
