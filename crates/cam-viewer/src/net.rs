//! The listening socket: shared with the client in `cam_net::socket`.

pub use cam_net::socket::bind;
