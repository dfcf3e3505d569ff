//! apistore-sled: the embedded sled backend (work in progress).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
