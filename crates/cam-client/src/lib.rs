//! Library half of the camstream sender, so that capture, encoding and networking can be tested
//! without starting the binary.

pub mod capture;
pub mod classic;
pub mod cli;
pub mod encode;
pub mod run;
pub mod sendmsg;
pub mod source;
