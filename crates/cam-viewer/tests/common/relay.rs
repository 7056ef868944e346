//! A userspace UDP relay between the client and the viewer that delays, rate-limits and
//! drops what passes, with the same seeded link model as the protocol's tests. The kernel
//! here has no `tc netem`; this stands in for a remote link.

#![allow(dead_code)] // the tests and the relay example each use part of it

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cam_proto::sim::{Impairment, Link, LinkStats};

pub struct Relay {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    forward: Arc<Mutex<Link>>,
    back: Arc<Mutex<Link>>,
    /// Every datagram the relay received, in order, when recording.
    capture: Arc<Mutex<Option<Vec<Captured>>>>,
    /// The relay's own socket, to send the viewer datagrams as if from the client.
    inject: UdpSocket,
    viewer: SocketAddr,
}

/// One datagram the relay received (before the link model), and which way it was going.
#[derive(Debug, Clone)]
pub struct Captured {
    pub to_viewer: bool,
    pub bytes: Vec<u8>,
}

impl Relay {
    /// Listens on a free loopback port; what arrives from anyone but the viewer goes to the
    /// viewer through `forward`, what comes from the viewer goes back through `back`.
    pub fn start(viewer: SocketAddr, forward: Impairment, back: Impairment) -> Relay {
        Self::start_on("127.0.0.1:0".parse().unwrap(), viewer, forward, back)
    }

    /// Like `start`, recording every datagram that passes either way (see `captured`).
    pub fn start_recording(viewer: SocketAddr, forward: Impairment, back: Impairment) -> Relay {
        let relay = Self::start(viewer, forward, back);
        *relay.capture.lock().unwrap() = Some(Vec::new());
        relay
    }

    /// What the relay recorded so far (empty unless started with `start_recording`).
    pub fn captured(&self) -> Vec<Captured> {
        self.capture.lock().unwrap().clone().unwrap_or_default()
    }

    /// Sends `bytes` to the viewer from the relay's address: to the viewer, from the client
    /// it relays for (an attacker on the path replaying or forging datagrams).
    pub fn inject_to_viewer(&self, bytes: &[u8]) {
        let _ = self.inject.send_to(bytes, self.viewer);
    }

    pub fn start_on(
        listen: SocketAddr,
        viewer: SocketAddr,
        forward: Impairment,
        back: Impairment,
    ) -> Relay {
        let socket = UdpSocket::bind(listen).unwrap();
        // A real router queue is modelled by the link; the socket must not drop first.
        let socket = {
            let s = socket2::Socket::from(socket);
            let _ = s.set_recv_buffer_size(8 << 20);
            UdpSocket::from(s)
        };
        socket
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let inject = socket.try_clone().unwrap();
        let capture: Arc<Mutex<Option<Vec<Captured>>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let forward = Arc::new(Mutex::new(Link::new(forward)));
        let back = Arc::new(Mutex::new(Link::new(back)));
        let thread = {
            let (stop, forward, back) = (stop.clone(), forward.clone(), back.clone());
            let capture = capture.clone();
            std::thread::spawn(move || {
                let mut client: Option<SocketAddr> = None;
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = socket.recv_from(&mut buf) {
                        let now = Instant::now();
                        if let Some(log) = capture.lock().unwrap().as_mut() {
                            log.push(Captured {
                                to_viewer: from != viewer,
                                bytes: buf[..n].to_vec(),
                            });
                        }
                        if from == viewer {
                            back.lock().unwrap().send(now, &buf[..n]);
                        } else {
                            client = Some(from);
                            forward.lock().unwrap().send(now, &buf[..n]);
                        }
                    }
                    let now = Instant::now();
                    while let Some(d) = forward.lock().unwrap().poll_deliver(now) {
                        let _ = socket.send_to(&d, viewer);
                    }
                    if let Some(c) = client {
                        while let Some(d) = back.lock().unwrap().poll_deliver(now) {
                            let _ = socket.send_to(&d, c);
                        }
                    }
                }
            })
        };
        Relay {
            addr,
            stop,
            thread: Some(thread),
            forward,
            back,
            capture,
            inject,
            viewer,
        }
    }

    pub fn set_forward_rate(&self, rate_bps: Option<u64>) {
        self.forward.lock().unwrap().set_rate(rate_bps);
    }

    pub fn forward_stats(&self) -> LinkStats {
        self.forward.lock().unwrap().stats()
    }

    pub fn back_stats(&self) -> LinkStats {
        self.back.lock().unwrap().stats()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
