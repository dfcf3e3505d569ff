//! The `Storage` behaviour suite: Kubernetes `storage/testing` ported to apistore.

use super::Behaviour;

/// The behaviours of this suite, named.
pub fn behaviours() -> Vec<(String, Behaviour)> {
    Vec::new()
}
