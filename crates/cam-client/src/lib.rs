//! Library half of the camstream sender, so that capture, encoding and networking can be tested
//! without starting the binary.

pub mod capture;
pub mod cli;
pub mod driver;
pub mod encode;
pub mod protocol;
pub mod rtpfit;
pub mod sendmsg;
pub mod source;
pub mod status;
pub mod strip_encode;
pub mod summary;
