//! The parser on arbitrary bytes: `Datagram::parse` runs the checked view (`new_checked`)
//! and then each field's meaning. It must never panic, and whatever it accepts must emit
//! back to exactly the same bytes (one encoding per meaning).

#![no_main]

use cam_proto::wire::{Datagram, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::new_checked(data) {
        // Every accessor is safe once the length is checked.
        let _ = (
            packet.magic(),
            packet.version(),
            packet.kind_raw(),
            packet.flags(),
        );
        let _ = (
            packet.stream_id(),
            packet.packet_number(),
            packet.frame_seq(),
        );
        let _ = packet.body();
    }
    if let Ok(datagram) = Datagram::parse(data) {
        let mut again = Vec::new();
        datagram.emit(&mut again);
        assert_eq!(
            again, data,
            "{datagram:?} does not re-emit to its own bytes"
        );
    }
});
