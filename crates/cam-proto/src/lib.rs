//! camstream's wire format and protocol state machines, without sockets, threads or clocks.
//!
//! The caller feeds datagrams and the current time in, and asks what to send and when to
//! wake up next (the *sans-IO* shape of `quinn-proto` and `str0m`). That makes loss,
//! reordering, duplication and timeouts testable deterministically in milliseconds.

pub mod adapt;
pub mod assembler;
pub mod classic;
pub mod congestion;
pub mod machine;
pub mod receiver;
pub mod restart;
pub mod rtt;
pub mod secure;
pub mod sender;
pub mod seq;
pub mod sim;
pub mod wire;
