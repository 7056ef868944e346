//! Shared helpers for the viewer's integration tests. Each test binary uses only part of
//! them, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod procs;
pub mod relay;
pub mod web;
pub mod xwin;
