//! The receiver on a sequence of arbitrary datagrams from two addresses, with time passing:
//! it must never panic, never buffer more than its limits allow, and every frame it releases
//! must pass its CRC (the only way a frame's bytes can be vouched for without a key).

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_proto::receiver::{Receiver, ReceiverConfig, ReceiverEvent};
use libfuzzer_sys::fuzz_target;

const MAX_FRAME_BYTES: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let config = ReceiverConfig {
        max_frame_bytes: MAX_FRAME_BYTES,
        ..ReceiverConfig::default()
    };
    let max_in_flight = config.max_in_flight as usize;
    let mut receiver = Receiver::new(config);
    let addrs: [SocketAddr; 2] = [
        SocketAddr::from(([10, 0, 0, 2], 5000)),
        SocketAddr::from(([10, 6, 6, 6], 666)),
    ];
    let mut now = Instant::now();
    let mut buf = Vec::new();
    // Input: records of [control byte, length byte, bytes...]; the control byte picks the
    // address (bit 0) and how far time moves before the datagram (the other bits, in ms×8).
    let mut rest = data;
    while let [control, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (datagram, tail) = tail.split_at(len);
        rest = tail;
        now += Duration::from_millis(u64::from(control >> 1) * 8);
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
        let _ = receiver.handle_datagram(now, addrs[usize::from(control & 1)], datagram);
        while let Some(event) = receiver.poll_event() {
            if let ReceiverEvent::Frame(frame) = event {
                if let Some(header) = frame.header {
                    assert_eq!(header.total_len as usize, frame.data.len());
                    assert_eq!(header.crc32, crc32fast::hash(&frame.data));
                }
            }
        }
        while receiver.poll_transmit(now, &mut buf).is_some() {
            assert!(cam_proto::wire::Datagram::parse(&buf).is_ok());
        }
        assert!(receiver.buffered_bytes() <= max_in_flight * MAX_FRAME_BYTES as usize);
    }
});
