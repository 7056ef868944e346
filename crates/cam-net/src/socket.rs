//! UDP sockets as both programs want them: bigger buffers (asked for, logged, never relied
//! on), clear one-line errors for a busy port or a missing route.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use anyhow::{anyhow, Context, Result};
use socket2::{Domain, Protocol, Socket, Type};

/// A 720p frame is about 200 datagrams: more than Linux's default receive buffer holds.
/// Ask for more; the kernel caps it at `net.core.rmem_max`, and retransmission covers the rest.
const RECEIVE_BUFFER: usize = 8 << 20;
/// The client's socket buffers; the kernel caps them (`net.core.rmem_max`/`wmem_max`).
const CLIENT_BUFFER: usize = 4 << 20;

/// Binds the viewer's port: the address asked for, or dual-stack `[::]`, falling back to
/// `0.0.0.0` where IPv6 is unavailable.
pub fn bind(addr: Option<IpAddr>, port: u16) -> Result<UdpSocket> {
    let socket = match addr {
        Some(ip) => bind_one(SocketAddr::new(ip, port), false)?,
        None => match bind_one(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port), true) {
            Ok(s) => s,
            Err(e) if is_busy(&e) => return Err(e),
            Err(e) => {
                log::debug!("IPv6 unavailable ({e:#}); listening on IPv4 only");
                bind_one(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port), false)?
            }
        },
    };
    Ok(socket)
}

fn is_busy(e: &anyhow::Error) -> bool {
    e.to_string().contains("already in use")
}

fn bind_one(addr: SocketAddr, dual_stack: bool) -> Result<UdpSocket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .context("cannot create a UDP socket")?;
    if dual_stack {
        socket
            .set_only_v6(false)
            .context("cannot accept IPv4 on an IPv6 socket")?;
    }
    if let Err(e) = socket.set_recv_buffer_size(RECEIVE_BUFFER) {
        log::warn!("cannot enlarge the receive buffer: {e}");
    }
    socket.bind(&addr.into()).map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => anyhow!(
            "UDP port {} is already in use (another cam-viewer?); choose another with --port",
            addr.port()
        ),
        ErrorKind::PermissionDenied => anyhow!(
            "not allowed to listen on port {}; use a port above 1023 with --port",
            addr.port()
        ),
        _ => anyhow!("cannot listen on {addr}: {e}"),
    })?;
    let got = socket.recv_buffer_size().unwrap_or(0);
    log::info!(
        "receive buffer {} KiB (asked for {} KiB; the kernel caps it at net.core.rmem_max)",
        got / 1024,
        RECEIVE_BUFFER / 1024
    );
    Ok(socket.into())
}

/// A socket connected to the viewer: the kernel then drops datagrams from anyone else.
pub fn connect(viewer: SocketAddr) -> Result<UdpSocket> {
    let domain = if viewer.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .context("cannot create a UDP socket")?;
    for (what, result) in [
        ("send", socket.set_send_buffer_size(CLIENT_BUFFER)),
        ("receive", socket.set_recv_buffer_size(CLIENT_BUFFER)),
    ] {
        if let Err(e) = result {
            log::warn!("cannot enlarge the {what} buffer: {e}");
        }
    }
    log::info!(
        "socket buffers: send {} KiB, receive {} KiB (asked for {} KiB; the kernel caps them at net.core.wmem_max/rmem_max)",
        socket.send_buffer_size().unwrap_or(0) / 1024,
        socket.recv_buffer_size().unwrap_or(0) / 1024,
        CLIENT_BUFFER / 1024
    );
    let local: SocketAddr = if viewer.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    socket
        .bind(&local.into())
        .context("cannot bind a local UDP port")?;
    socket
        .connect(&viewer.into())
        .with_context(|| format!("cannot reach {viewer} (no route?)"))?;
    Ok(socket.into())
}
