//! The RTP/JPEG receiver and parsers on arbitrary bytes. Input: records of [control byte,
//! length byte, bytes...]; the control byte picks the address (bit 0), whether to make the
//! datagram look like RTP/JPEG (bit 1: version 2, PT 26, a small SSRC, a plausible type) so
//! the depayloader is reached often, and how far time moves (the other bits, in ms×8).
//! Nothing may panic, buffered bytes stay within the limits, every released frame starts
//! with the rebuilt headers, and RTCP the receiver sends parses.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cam_proto::machine::{FrameReceiver, ReceiveEvent};
use cam_proto::rtp::rtcp::RtcpRepr;
use cam_proto::rtp::wire::{JpegPayloadRepr, RtpPacket, RtpRepr};
use cam_proto::rtp::{classify, RtpReceiver, RtpReceiverConfig};
use libfuzzer_sys::fuzz_target;

const MAX_FRAME_BYTES: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let config = RtpReceiverConfig {
        max_frame_bytes: MAX_FRAME_BYTES,
        max_streams: 3,
        ..RtpReceiverConfig::default()
    };
    let bound = config.max_streams * config.max_frames_assembling * MAX_FRAME_BYTES;
    let mut receiver = RtpReceiver::new(config);
    let addrs: [SocketAddr; 2] = [
        SocketAddr::from(([10, 0, 0, 2], 5004)),
        SocketAddr::from(([10, 6, 6, 6], 666)),
    ];
    let mut now = Instant::now();
    let mut buf = Vec::new();
    let mut rest = data;
    while let [control, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (datagram, tail) = tail.split_at(len);
        rest = tail;
        let mut d = datagram.to_vec();
        if control & 2 != 0 && d.len() >= 20 {
            d[0] = 0x80;
            d[1] = (d[1] & 0x80) | 26;
            d[8..11].fill(0);
            d[16] &= 0x41;
        }
        // The parsers alone.
        let _ = classify(&d);
        let _ = RtcpRepr::parse_compound(&d);
        if let Ok(p) = RtpPacket::new_checked(&d[..]) {
            let _ = (RtpRepr::parse(&p), p.payload().len());
            if let Ok(j) = JpegPayloadRepr::parse(p.payload()) {
                let mut again = vec![0; j.buffer_len()];
                j.emit(&mut again);
                if let Some(q) = j.qtables {
                    let _ = q.decode(2);
                }
            }
        }
        now += Duration::from_millis(u64::from(control >> 2) * 8);
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
        receiver.handle_datagram(now, addrs[usize::from(control & 1)], &d);
        while let Some(event) = receiver.poll_event() {
            if let ReceiveEvent::Frame(frame) = event {
                // Headers rebuilt by the receiver, the scan as it came.
                assert!(frame.data.starts_with(&[0xff, 0xd8, 0xff, 0xdb]));
                assert!(frame.data.len() <= MAX_FRAME_BYTES + 1024);
            }
        }
        while receiver.poll_transmit(now, &mut buf).is_some() {
            assert!(RtcpRepr::parse_compound(&buf).is_ok());
        }
        assert!(receiver.buffered_bytes() <= bound);
    }
});
