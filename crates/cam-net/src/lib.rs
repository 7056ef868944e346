//! What both programs do with the outside world around `cam-proto`'s state machines: key
//! files, the `--simulate-*` flags, sockets and the driver's wait, and printing to pipes that
//! may close. `cam-proto` stays free of clap, files and sockets; the client and the viewer
//! share this instead of copies.

pub mod batch;
pub mod keys;
pub mod output;
pub mod protocol;
pub mod simulate;
pub mod socket;
pub mod threads;
pub mod wait;
