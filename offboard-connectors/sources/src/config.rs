//! What every source's configuration shares: `config_setters!` writes the setters of the
//! fields each one has (`name`, `base_url`, `allow_plain_http`).

/// `with_name`, `with_base_url` and `with_allow_plain_http` for a config struct holding
/// `name: String`, `base_url: String` and `allow_plain_http: bool`.
macro_rules! config_setters {
    () => {
        /// Renames the source (the cursor's key), e.g. for a second tenant of the vendor.
        pub fn with_name(mut self, name: impl Into<String>) -> Self {
            self.name = name.into();
            self
        }

        /// Another base URL (a sandbox, a simulator).
        pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
            self.base_url = url.into();
            self
        }

        /// Allows a plain `http` base URL (tests on loopback only).
        pub fn with_allow_plain_http(mut self, allow: bool) -> Self {
            self.allow_plain_http = allow;
            self
        }
    };
}

pub(crate) use config_setters;
