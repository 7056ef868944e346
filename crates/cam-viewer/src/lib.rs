//! The viewer's library half: everything between "a complete frame arrived" and "pixels on the
//! screen", kept out of `main.rs` so that tests and examples can drive it without a network.

pub mod cli;
pub mod decode;
pub mod display;
pub mod frame;
pub mod headless;
pub mod net;
pub mod scale;
pub mod summary;
pub mod worker;
