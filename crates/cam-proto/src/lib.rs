//! camstream's wire format and protocol state machines, without sockets, threads or clocks.
//!
//! The caller feeds datagrams and the current time in, and asks what to send and when to
//! wake up next (the *sans-IO* shape of `quinn-proto` and `str0m`). That makes loss,
//! reordering, duplication and timeouts testable deterministically in milliseconds.

//!
//! What the programs drive is `machine`: every protocol (camstream, classic, RTP) behind the
//! same two traits, re-exported here. The modules below it stay public for the programs'
//! configuration types, the tests, benches and fuzz targets; the machinery only the state
//! machines use is crate-private, so code nothing uses shows as dead.

pub mod adapt;
pub mod assembler;
pub mod classic;
pub(crate) mod congestion;
pub mod machine;
pub mod receiver;
pub mod restart;
pub mod rtp;
pub(crate) mod rtt;
pub mod secure;
pub mod sender;
pub(crate) mod seq;
pub mod sim;
pub mod wire;

pub use machine::{
    FrameReceiver, FrameSender, OutgoingFrame, ReceiveEvent, SendError, SendEvent, SendStats,
    Transmit,
};
