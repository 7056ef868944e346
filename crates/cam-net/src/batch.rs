//! Batched UDP I/O: many datagrams per system call, and per trip through the network stack.
//!
//! A 720p frame is about 170 datagrams of 1,200 bytes. Sent one `send` each, the client's send
//! loop spent about a quarter of the client's CPU in the kernel (perf, bench/ANALYSIS.md); on
//! loopback the receive side of the stack runs in the sender's system call too. With UDP
//! generic segmentation offload (GSO, Linux 4.18) consecutive datagrams of one size go down as
//! one buffer with `UDP_SEGMENT` set, and are cut into datagrams as late as possible (on
//! loopback, not at all for a socket with `UDP_GRO`); with generic receive offload (GRO,
//! Linux 5.0) one `recvmsg` returns up to 64 datagrams laid end to end, with their size in a
//! control message. The bytes on the wire are the same datagrams either way.
//!
//! Where the kernel lacks either (older kernels, other systems, a path that refuses GSO with
//! `EIO`), each side falls back to one datagram per call, for good, and says so once.
//! `CAMSTREAM_BATCH=off` forces that path (for comparison, and for the tests of it).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned,
    MsgFlags, SockaddrStorage,
};

/// Segments in one GSO send: Linux's `UDP_MAX_SEGMENTS` (64 until 6.4, 128 since).
pub const MAX_SEGMENTS: usize = 64;
/// Bytes in one GSO send: one IPv4 UDP datagram's payload at most.
pub const MAX_BATCH_BYTES: usize = 65_507;
/// Environment switch: `off` sends and receives one datagram per system call.
pub const BATCH_ENV: &str = "CAMSTREAM_BATCH";

/// Whether to batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// GSO/GRO where the kernel has them.
    Auto,
    /// One datagram per system call.
    Off,
}

impl Batching {
    /// `Off` when `CAMSTREAM_BATCH=off` (or `0`), `Auto` otherwise.
    pub fn from_env() -> Batching {
        match std::env::var(BATCH_ENV).as_deref().map(str::trim) {
            Ok("off" | "0" | "no") => Batching::Off,
            _ => Batching::Auto,
        }
    }
}

/// Collects datagrams for a connected socket and sends runs of equal size as one GSO buffer.
/// Callers `send` each datagram, then `flush` before they wait: nothing is held across a wait.
#[derive(Debug)]
pub struct BatchSender {
    gso: bool,
    buf: Vec<u8>,
    segment: usize,
    count: usize,
    /// The last datagram was shorter than the segment size: the run is closed.
    closed: bool,
    /// Test hook: the next GSO send fails as a kernel without GSO would.
    #[cfg(test)]
    fail_gso: bool,
}

impl BatchSender {
    pub fn new(socket: &UdpSocket, batching: Batching) -> BatchSender {
        let gso = batching == Batching::Auto && gso_available(socket);
        log::debug!("UDP GSO {}", if gso { "on" } else { "off" });
        BatchSender {
            gso,
            buf: Vec::with_capacity(MAX_BATCH_BYTES),
            segment: 0,
            count: 0,
            closed: false,
            #[cfg(test)]
            fail_gso: false,
        }
    }

    /// True while sends go out in GSO batches.
    pub fn is_batching(&self) -> bool {
        self.gso
    }

    /// Sends `datagram` now, or queues it behind others of its size. An error may belong to
    /// datagrams queued earlier: they are dropped with it, as a full socket buffer would.
    pub fn send(&mut self, socket: &UdpSocket, datagram: &[u8]) -> io::Result<()> {
        if !self.gso {
            return socket.send(datagram).map(drop);
        }
        let fits = self.count > 0
            && !self.closed
            && datagram.len() <= self.segment
            && self.count < MAX_SEGMENTS
            && self.buf.len() + datagram.len() <= MAX_BATCH_BYTES;
        if self.count > 0 && !fits {
            self.flush(socket)?;
        }
        if self.count == 0 {
            self.segment = datagram.len();
        }
        self.buf.extend_from_slice(datagram);
        self.count += 1;
        self.closed = datagram.len() < self.segment;
        Ok(())
    }

    /// Sends whatever is queued.
    pub fn flush(&mut self, socket: &UdpSocket) -> io::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let result = if self.count == 1 {
            socket.send(&self.buf).map(drop)
        } else {
            self.send_gso(socket)
        };
        let result = match result {
            Err(e) if self.count > 1 && gso_refused(&e) => {
                log::info!("UDP GSO refused ({e}); sending one datagram per call from now on");
                self.gso = false;
                self.buf
                    .chunks(self.segment)
                    .try_for_each(|d| socket.send(d).map(drop))
            }
            other => other,
        };
        self.buf.clear();
        self.count = 0;
        self.closed = false;
        result
    }

    fn send_gso(&mut self, socket: &UdpSocket) -> io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_gso) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let segment = u16::try_from(self.segment).unwrap_or(u16::MAX);
        sendmsg::<()>(
            socket.as_raw_fd(),
            &[IoSlice::new(&self.buf)],
            &[ControlMessage::UdpGsoSegments(&segment)],
            MsgFlags::empty(),
            None,
        )
        .map(drop)
        .map_err(io::Error::from)
    }
}

/// Errors that mean "this kernel, device or path does not do GSO" rather than "this datagram
/// could not go".
fn gso_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

fn gso_available(socket: &UdpSocket) -> bool {
    getsockopt(socket, sockopt::UdpGsoSegment).is_ok()
}

/// One receive: `len` bytes in the buffer, from `from`, which are datagrams of `segment`
/// bytes each (the last may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    pub segment: usize,
}

impl Received {
    /// The datagrams of this receive, in order.
    pub fn datagrams<'a>(&self, buf: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        buf[..self.len].chunks(self.segment.max(1))
    }
}

/// Receives with GRO where the kernel has it, so that one call can return many datagrams.
#[derive(Debug)]
pub struct BatchReceiver {
    gro: bool,
    cmsg: Vec<u8>,
}

impl BatchReceiver {
    /// Turns GRO on for `socket` when `batching` allows and the kernel has it. The buffer
    /// passed to `recv_from` must then hold 64 KiB.
    pub fn new(socket: &UdpSocket, batching: Batching) -> BatchReceiver {
        let gro =
            batching == Batching::Auto && setsockopt(socket, sockopt::UdpGroSegment, &true).is_ok();
        log::debug!("UDP GRO {}", if gro { "on" } else { "off" });
        BatchReceiver {
            gro,
            cmsg: nix::cmsg_space!(libc::c_int),
        }
    }

    pub fn is_batching(&self) -> bool {
        self.gro
    }

    /// Like `UdpSocket::recv_from` (and its timeout), but possibly several datagrams at once.
    pub fn recv_from(&mut self, socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
        if !self.gro {
            let (len, from) = socket.recv_from(buf)?;
            return Ok(Received {
                len,
                from,
                segment: len,
            });
        }
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut self.cmsg),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let len = msg.bytes;
        let mut segment = len;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::UdpGroSegments(size) = c {
                    segment = usize::try_from(size).unwrap_or(len);
                }
            }
        }
        let from = msg.address.as_ref().and_then(to_std).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "datagram without a sender")
        })?;
        Ok(Received { len, from, segment })
    }
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What a frame looks like on the wire: full chunks, then a short last one, then a
    /// differently sized datagram (a header, an ack).
    fn datagrams() -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = (0..150u32)
            .map(|i| (0..1200).map(|j| (i * 7 + j) as u8).collect())
            .collect();
        out.push(vec![0xAB; 333]);
        out.push(vec![0xCD; 40]);
        out.extend((0..5u8).map(|i| vec![i; 1200]));
        out
    }

    fn pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (tx, rx)
    }

    /// Sends every datagram through `sender`, receives through `receiver`, and checks that
    /// exactly the same datagrams, in order, came out.
    fn round_trip(
        mut sender: BatchSender,
        mut receiver: BatchReceiver,
        tx: &UdpSocket,
        rx: &UdpSocket,
    ) -> usize {
        let sent = datagrams();
        let mut got = Vec::new();
        let mut receives = 0;
        let mut buf = vec![0u8; 65_536];
        // Groups small enough for a default receive buffer, flushed as the send loop does
        // before it waits, then read back.
        for group in sent.chunks(37) {
            for d in group {
                sender.send(tx, d).unwrap();
            }
            sender.flush(tx).unwrap();
            let want = got.len() + group.len();
            while got.len() < want {
                receives += 1;
                let r = receiver.recv_from(rx, &mut buf).unwrap();
                assert_eq!(r.from, tx.local_addr().unwrap());
                got.extend(r.datagrams(&buf).map(<[u8]>::to_vec));
            }
        }
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "datagrams differ");
        receives
    }

    #[test]
    fn batched_datagrams_arrive_as_sent() {
        let (tx, rx) = pair();
        let sender = BatchSender::new(&tx, Batching::Auto);
        let receiver = BatchReceiver::new(&rx, Batching::Auto);
        let both = sender.is_batching() && receiver.is_batching();
        let receives = round_trip(sender, receiver, &tx, &rx);
        eprintln!(
            "GSO and GRO: {both}; {receives} receives for {} datagrams",
            datagrams().len()
        );
        if both {
            assert!(
                receives < datagrams().len() / 4,
                "{receives} receives: nothing coalesced"
            );
        }
    }

    #[test]
    fn forced_fallback_sends_one_datagram_per_call() {
        let (tx, rx) = pair();
        let sender = BatchSender::new(&tx, Batching::Off);
        let receiver = BatchReceiver::new(&rx, Batching::Off);
        assert!(!sender.is_batching() && !receiver.is_batching());
        assert_eq!(round_trip(sender, receiver, &tx, &rx), datagrams().len());
    }

    /// A kernel that takes UDP_SEGMENT but refuses the send (EIO: no checksum offload on the
    /// route) loses nothing: the batch goes out one datagram at a time, and so does the rest.
    #[test]
    fn refused_gso_falls_back_without_losing_the_batch() {
        let (tx, rx) = pair();
        let mut sender = BatchSender::new(&tx, Batching::Auto);
        if !sender.is_batching() {
            eprintln!("no GSO here: the fallback is the only path, tested above");
            return;
        }
        sender.fail_gso = true;
        let receiver = BatchReceiver::new(&rx, Batching::Auto);
        let sent = datagrams();
        for d in &sent[..10] {
            sender.send(&tx, d).unwrap();
        }
        sender.flush(&tx).unwrap();
        assert!(!sender.is_batching(), "must stay off after a refusal");
        let mut receiver = receiver;
        let mut buf = vec![0u8; 65_536];
        let mut got = Vec::new();
        while got.len() < 10 {
            let r = receiver.recv_from(&rx, &mut buf).unwrap();
            got.extend(r.datagrams(&buf).map(<[u8]>::to_vec));
        }
        assert!(got == sent[..10], "datagrams differ");
    }

    #[test]
    fn only_refusals_switch_gso_off() {
        for (errno, refused) in [
            (libc::EIO, true),
            (libc::EINVAL, true),
            (libc::ENOBUFS, false),
            (libc::ECONNREFUSED, false),
            (libc::EMSGSIZE, false),
        ] {
            assert_eq!(
                gso_refused(&io::Error::from_raw_os_error(errno)),
                refused,
                "errno {errno}"
            );
        }
    }
}
