//! The listening socket (shared with the client in `cam_net::socket`) and how the viewer
//! writes the addresses it hears from.

use std::net::SocketAddr;

pub use cam_net::socket::bind;

/// An IPv4 client seen through a dual-stack socket appears as `::ffff:a.b.c.d`; show and
/// compare it as the IPv4 address it is.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}
