//! Maintenance mode: a route (or every route) answers 503 with `Retry-After` and a chosen page,
//! while `/robots.txt` is still served from the robots.txt guard.
//!
//! The config says which routes are in maintenance (`[maintenance]`, `[route.maintenance]`);
//! the admin endpoint can switch it on or off at run time. Switches outlive reloads (they live
//! for the process): an operator who put the site in maintenance does not want a config reload
//! to end it. Precedence: a route's switch, then the global switch, then the config.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use gatehouse_config::MaintenanceConfig;

/// Run-time switches over the config.
#[derive(Debug, Default)]
pub struct MaintenanceSwitch {
    /// Whether any switch is set: requests skip the locks when none is (the usual case).
    any: AtomicBool,
    global: RwLock<Option<bool>>,
    routes: RwLock<HashMap<String, bool>>,
}

/// What the admin endpoint reports for one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Scope {
    /// What the config says.
    pub config: bool,
    /// The switch, if set.
    #[serde(rename = "override")]
    pub switch: Option<bool>,
    /// What requests get.
    pub effective: bool,
}

impl MaintenanceSwitch {
    /// Sets (`Some`) or clears (`None`) the switch of `route` (a route label) or, with `None`,
    /// the global one.
    pub fn set(&self, route: Option<&str>, state: Option<bool>) {
        match route {
            None => *self.global.write().unwrap_or_else(PoisonError::into_inner) = state,
            Some(label) => {
                let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
                match state {
                    Some(on) => routes.insert(label.to_owned(), on),
                    None => routes.remove(label),
                };
            }
        }
        let any = self.global_switch().is_some()
            || !self
                .routes
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty();
        self.any.store(any, Ordering::Release);
    }

    fn global_switch(&self) -> Option<bool> {
        *self.global.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn route_switch(&self, label: &str) -> Option<bool> {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(label)
            .copied()
    }

    /// The maintenance settings a request on route `label` gets, when it is in maintenance.
    /// `route` is the route's own table (already merged with `[maintenance]`).
    pub fn applies<'a>(
        &self,
        global: &'a MaintenanceConfig,
        label: &str,
        route: Option<&'a MaintenanceConfig>,
    ) -> Option<&'a MaintenanceConfig> {
        let settings = route.unwrap_or(global);
        let enabled = if self.any.load(Ordering::Acquire) {
            self.route_switch(label)
                .or_else(|| self.global_switch())
                .unwrap_or(settings.enabled)
        } else {
            settings.enabled
        };
        enabled.then_some(settings)
    }

    /// The global scope as the admin endpoint shows it.
    pub fn global_scope(&self, global: &MaintenanceConfig) -> Scope {
        let switch = self.global_switch();
        Scope {
            config: global.enabled,
            switch,
            effective: switch.unwrap_or(global.enabled),
        }
    }

    /// A route's scope as the admin endpoint shows it.
    pub fn route_scope(
        &self,
        global: &MaintenanceConfig,
        label: &str,
        route: Option<&MaintenanceConfig>,
    ) -> Scope {
        let config = route.unwrap_or(global).enabled;
        let switch = self.route_switch(label);
        Scope {
            config,
            switch,
            effective: switch.or_else(|| self.global_switch()).unwrap_or(config),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(enabled: bool) -> MaintenanceConfig {
        MaintenanceConfig {
            enabled,
            retry_after: Duration::from_secs(60),
            page: None,
        }
    }

    #[test]
    fn the_config_decides_until_a_switch_is_set() {
        let switch = MaintenanceSwitch::default();
        let (off, on) = (config(false), config(true));
        assert!(switch.applies(&off, "/", None).is_none());
        assert!(switch.applies(&on, "/", None).is_some());
        assert!(
            switch.applies(&off, "/", Some(&on)).is_some(),
            "the route's own table wins"
        );
    }

    #[test]
    fn a_route_switch_beats_the_global_switch_which_beats_the_config() {
        let switch = MaintenanceSwitch::default();
        let off = config(false);
        switch.set(None, Some(true));
        assert!(switch.applies(&off, "/a", None).is_some());
        switch.set(Some("/a"), Some(false));
        assert!(switch.applies(&off, "/a", None).is_none());
        assert!(switch.applies(&off, "/b", None).is_some());
        switch.set(None, None);
        switch.set(Some("/a"), None);
        assert!(switch.applies(&off, "/a", None).is_none());
        assert!(!switch.any.load(Ordering::Acquire), "no switch left");
        assert_eq!(
            switch.route_scope(&off, "/a", None),
            Scope {
                config: false,
                switch: None,
                effective: false
            }
        );
    }
}
