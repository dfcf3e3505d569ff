//! Custom resources declared in the server's config file (no schema): generation and a
//! `status` subresource, as CRDs with `subresources.status` have.

use super::Strategy;

/// The strategy of a config-file custom resource.
pub struct CustomStrategy;

impl Strategy for CustomStrategy {
    fn has_status(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}
