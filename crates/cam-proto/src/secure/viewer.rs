//! The viewer's keyed state: HELLOs answered, a few pending sessions, and the sessions of
//! the stream being served. A pending session becomes the stream's only when a sealed
//! datagram authenticates under it, so a replayed HELLO can never take a stream over.
//! `Receiver` holds one of these when it has a key.

use std::collections::VecDeque;
use std::net::SocketAddr;

use ring::rand::SystemRandom;

use super::{answer_hello, Aead, AeadSet, HelloKey, Psk, SecureError, Session};
use crate::wire::{CommonRepr, HandshakeDatagram, Kind, Packet, SealedRepr, FLAG_SEALED};

/// Handshakes answered but not yet confirmed by a sealed datagram. The oldest is forgotten
/// first; a client whose pending session was pushed out handshakes again.
pub const MAX_PENDING_SESSIONS: usize = 4;
/// Replies waiting to be sent.
const REPLIES_MAX: usize = 8;

/// What an accepted datagram from a client was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerOpened {
    /// A sealed datagram opened into the caller's buffer. `pending`: it authenticated under
    /// a pending session, which `promote` makes the stream's once the stream is accepted.
    Data { pending: Option<usize> },
    /// A HELLO, answered (the reply waits in `poll_reply`).
    Hello,
}

#[derive(Debug)]
struct Pending {
    stream_id: u32,
    remote: SocketAddr,
    session: Session,
}

#[derive(Debug)]
struct Active {
    stream_id: u32,
    remote: SocketAddr,
    current: Session,
    /// The session before a new handshake of the same stream, for datagrams still on
    /// their way.
    previous: Option<Session>,
}

#[derive(Debug)]
pub struct ViewerKeys {
    psk: Psk,
    hello_key: HelloKey,
    accept: AeadSet,
    rng: SystemRandom,
    pending: VecDeque<Pending>,
    active: Option<Active>,
    replies: VecDeque<(SocketAddr, Vec<u8>)>,
    /// HELLOs answered with a new session.
    pub handshakes: u64,
}

impl ViewerKeys {
    /// Keyed state accepting what this machine runs fast.
    pub fn new(psk: Psk) -> ViewerKeys {
        ViewerKeys::with_aeads(psk, AeadSet::fast_here())
    }

    /// Keyed state that chooses among the AEADs in `accept`.
    pub fn with_aeads(psk: Psk, accept: AeadSet) -> ViewerKeys {
        ViewerKeys {
            hello_key: HelloKey::new(&psk),
            accept,
            psk,
            rng: SystemRandom::new(),
            pending: VecDeque::new(),
            active: None,
            replies: VecDeque::new(),
            handshakes: 0,
        }
    }

    /// Authenticates a datagram from `remote`. A sealed one is opened into `out` and its
    /// packet number checked against its session's replay window; a HELLO is answered.
    /// `next_pn` numbers the reply. Anything else is refused, and nothing changes.
    pub fn open(
        &mut self,
        remote: SocketAddr,
        bytes: &[u8],
        out: &mut Vec<u8>,
        next_pn: &mut u64,
    ) -> Result<ViewerOpened, SecureError> {
        let packet = Packet::new_checked(bytes)?;
        if packet.flags() != FLAG_SEALED {
            if packet.kind_raw() == Kind::Hello as u8 {
                return self.handle_hello(remote, bytes, next_pn);
            }
            // Checked for form first, so a malformed datagram is counted as such.
            CommonRepr::parse(&packet)?;
            return Err(SecureError::NotSealed);
        }
        let common = SealedRepr::parse(&packet)?;
        let id = common.stream_id;
        let mut result = Err(SecureError::Unauthenticated);
        if let Some(active) = self
            .active
            .as_mut()
            .filter(|a| a.stream_id == id && a.remote == remote)
        {
            for session in [Some(&mut active.current), active.previous.as_mut()]
                .into_iter()
                .flatten()
            {
                result = try_open(session, bytes, out, None);
                if result != Err(SecureError::Unauthenticated) {
                    return result;
                }
            }
        }
        for (i, p) in self.pending.iter_mut().enumerate() {
            if p.stream_id == id && p.remote == remote {
                result = try_open(&mut p.session, bytes, out, Some(i));
                if result != Err(SecureError::Unauthenticated) {
                    return result;
                }
            }
        }
        result
    }

    fn handle_hello(
        &mut self,
        remote: SocketAddr,
        bytes: &[u8],
        next_pn: &mut u64,
    ) -> Result<ViewerOpened, SecureError> {
        let hello = HandshakeDatagram::parse(bytes)?;
        if !self.hello_key.verify(bytes, &hello) {
            return Err(SecureError::Unauthenticated);
        }
        let id = hello.common.stream_id;
        let public = &hello.hello.public;
        // A HELLO seen before: sent again by its client (our reply was lost), answered the
        // same way; or replayed from elsewhere, refused.
        let known = self
            .active
            .iter()
            .flat_map(|a| {
                [Some(&a.current), a.previous.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(move |s| (a.stream_id, a.remote, s))
            })
            .chain(
                self.pending
                    .iter()
                    .map(|p| (p.stream_id, p.remote, &p.session)),
            )
            .find(|(_, _, s)| s.client_public() == public);
        if let Some((known_id, known_remote, session)) = known {
            if known_id != id || known_remote != remote {
                return Err(SecureError::Replayed);
            }
            let reply = session.reply().to_vec();
            self.queue_reply(remote, reply);
            return Ok(ViewerOpened::Hello);
        }
        let session = answer_hello(&self.psk, &self.rng, &hello, *next_pn, self.accept)?;
        *next_pn += 1;
        self.handshakes += 1;
        log::debug!(
            "answered a handshake from {remote} for stream {id:08x} ({})",
            session.aead()
        );
        self.queue_reply(remote, session.reply().to_vec());
        if self.pending.len() >= MAX_PENDING_SESSIONS {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            stream_id: id,
            remote,
            session,
        });
        Ok(ViewerOpened::Hello)
    }

    fn queue_reply(&mut self, remote: SocketAddr, reply: Vec<u8>) {
        if self.replies.len() >= REPLIES_MAX {
            self.replies.pop_front();
        }
        self.replies.push_back((remote, reply));
    }

    /// Makes pending session `index` (as `open` returned it) the stream's: the first, the
    /// one of a new stream, or a new handshake of the same stream (the old session is kept
    /// for datagrams still on their way).
    pub fn promote(&mut self, index: usize) {
        let Some(p) = self.pending.remove(index) else {
            return;
        };
        match self.active.as_mut() {
            Some(a) if a.stream_id == p.stream_id && a.remote == p.remote => {
                a.previous = Some(std::mem::replace(&mut a.current, p.session));
            }
            _ => {
                self.active = Some(Active {
                    stream_id: p.stream_id,
                    remote: p.remote,
                    current: p.session,
                    previous: None,
                });
            }
        }
    }

    /// The next HELLO_REPLY to send, and where.
    pub fn poll_reply(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.replies.pop_front()
    }

    /// Seals a clear datagram for the stream being served.
    pub fn seal(&mut self, datagram: &mut Vec<u8>) -> Result<(), SecureError> {
        self.active
            .as_mut()
            .ok_or(SecureError::Unauthenticated)?
            .current
            .seal(datagram)
    }

    /// The AEAD of the stream's current session.
    pub fn aead(&self) -> Option<Aead> {
        self.active.as_ref().map(|a| a.current.aead())
    }

    /// Sessions pending now (for tests and counters).
    pub fn pending_sessions(&self) -> usize {
        self.pending.len()
    }
}

fn try_open(
    session: &mut Session,
    bytes: &[u8],
    out: &mut Vec<u8>,
    pending: Option<usize>,
) -> Result<ViewerOpened, SecureError> {
    let common = session.open(bytes, out)?;
    session.accept(common.packet_number)?;
    Ok(ViewerOpened::Data { pending })
}
