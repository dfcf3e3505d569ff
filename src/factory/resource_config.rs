//! `ResourceConfig`: which API groups and resources the server serves (Kubernetes
//! `APIResourceConfigSource`, reduced to what storage needs: cohabitation asks
//! "is any resource of this group enabled?").

use std::collections::BTreeSet;

use crate::group_resource::GroupResource;

/// Enabled groups and resources. Everything is enabled unless disabled; an explicitly
/// enabled resource keeps its group "enabled" for cohabitation even when the group is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceConfig {
    disabled_groups: BTreeSet<String>,
    enabled_resources: BTreeSet<GroupResource>,
    disabled_resources: BTreeSet<GroupResource>,
}

impl ResourceConfig {
    /// Everything enabled.
    pub fn all_enabled() -> Self {
        Self::default()
    }

    /// Turns a whole group off (`""` = core).
    pub fn disable_group(&mut self, group: &str) -> &mut Self {
        self.disabled_groups.insert(group.to_owned());
        self.enabled_resources.retain(|gr| gr.group != group);
        self
    }

    /// Turns a whole group back on.
    pub fn enable_group(&mut self, group: &str) -> &mut Self {
        self.disabled_groups.remove(group);
        self.disabled_resources.retain(|gr| gr.group != group);
        self
    }

    /// Turns one resource on (even inside a disabled group).
    pub fn enable_resource(&mut self, gr: &GroupResource) -> &mut Self {
        self.disabled_resources.remove(gr);
        self.enabled_resources.insert(gr.clone());
        self
    }

    /// Turns one resource off.
    pub fn disable_resource(&mut self, gr: &GroupResource) -> &mut Self {
        self.enabled_resources.remove(gr);
        self.disabled_resources.insert(gr.clone());
        self
    }

    /// Kubernetes `ResourceEnabled`.
    pub fn resource_enabled(&self, gr: &GroupResource) -> bool {
        if self.enabled_resources.contains(gr) {
            return true;
        }
        !self.disabled_groups.contains(&gr.group) && !self.disabled_resources.contains(gr)
    }

    /// Kubernetes `AnyResourceForGroupEnabled`: the group is served at all.
    pub fn any_resource_for_group_enabled(&self, group: &str) -> bool {
        !self.disabled_groups.contains(group) || self.enabled_resources.iter().any(|gr| gr.group == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_resources_toggle() {
        let mut config = ResourceConfig::all_enabled();
        let deployments = GroupResource::new("apps", "deployments");
        assert!(config.any_resource_for_group_enabled("apps"));
        config.disable_group("apps");
        assert!(!config.any_resource_for_group_enabled("apps"));
        assert!(!config.resource_enabled(&deployments));
        config.enable_resource(&deployments);
        assert!(config.any_resource_for_group_enabled("apps"));
        assert!(config.resource_enabled(&deployments));
        assert!(!config.resource_enabled(&GroupResource::new("apps", "daemonsets")));
        config.enable_group("apps");
        config.disable_resource(&deployments);
        assert!(!config.resource_enabled(&deployments));
        assert!(config.any_resource_for_group_enabled("apps"));
    }
}
