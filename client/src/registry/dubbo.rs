//! Dubbo's interface-level layout: `/<root>/<interface>/<category>/<url>`,
//! where `<url>` is the provider's full URL, URL-encoded as Dubbo does, and
//! the typed provider records decoded from it.

use std::collections::BTreeMap;

use crate::url::{encode_component, DubboUrl};

/// The category nodes Dubbo keeps under each interface.
pub const PROVIDERS: &str = "providers";
pub const CONSUMERS: &str = "consumers";
pub const ROUTERS: &str = "routers";
pub const CONFIGURATORS: &str = "configurators";

/// `/dubbo/com.foo.Service` (the interface name encoded, as Dubbo does).
pub fn service_path(root: &str, interface: &str) -> String {
    format!(
        "{}/{}",
        root.trim_end_matches('/'),
        encode_component(interface)
    )
}

/// `/dubbo/com.foo.Service/providers`.
pub fn category_path(root: &str, interface: &str, category: &str) -> String {
    format!("{}/{category}", service_path(root, interface))
}

/// The node a URL registers as: its category path plus the encoded URL.
pub fn url_path(root: &str, url: &DubboUrl) -> String {
    format!(
        "{}/{}",
        category_path(root, url.interface(), url.category()),
        url.to_node_name()
    )
}

/// Whether a URL is registered as an ephemeral node: Dubbo's `dynamic`
/// parameter (default true); `dynamic=false` URLs stay after the process.
pub fn is_dynamic(url: &DubboUrl) -> bool {
    url.param("dynamic") != Some("false")
}

/// A live provider, decoded from its registry node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub protocol: String,
    pub host: String,
    pub port: u16,
    pub interface: String,
    pub version: Option<String>,
    pub group: Option<String>,
    /// Dubbo's `weight` (default 100).
    pub weight: u32,
    /// Dubbo's `warmup` in ms (default ten minutes).
    pub warmup_ms: u64,
    /// When the provider started (`timestamp`), ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// Every parameter of the URL, the ones above included.
    pub params: BTreeMap<String, String>,
    /// The URL itself, for selectors and for calling the provider.
    pub url: DubboUrl,
}

impl Provider {
    pub fn from_url(url: DubboUrl) -> Provider {
        Provider {
            protocol: url.protocol.clone(),
            host: url.host.clone(),
            port: url.port,
            interface: url.interface().to_string(),
            version: url.version().map(str::to_string),
            group: url.group().map(str::to_string),
            weight: url.weight(),
            warmup_ms: url.warmup_ms(),
            timestamp_ms: url.timestamp_ms(),
            params: url.params.clone(),
            url,
        }
    }

    /// `host:port`, ready to connect to.
    pub fn address(&self) -> String {
        self.url.address()
    }
}

/// Decodes the child names of a category node. Names that are not Dubbo
/// URLs, and Dubbo's `empty://` placeholders, are skipped: one bad node must
/// not hide the good ones.
pub fn decode_urls<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<DubboUrl> {
    let mut urls: Vec<DubboUrl> = names
        .into_iter()
        .filter_map(|name| match DubboUrl::from_node_name(name) {
            Ok(url) if url.protocol != "empty" => Some(url),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("skipping registry node {name:?}: {e}");
                None
            }
        })
        .collect();
    // Servers list children in no particular order; a stable order makes
    // snapshots comparable and selectors deterministic.
    urls.sort_by_key(|url| url.to_string());
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_dubbo() {
        let url = DubboUrl::parse(
            "dubbo://10.0.0.1:20880/com.foo.Demo?interface=com.foo.Demo&version=1.0&weight=7",
        )
        .unwrap();
        assert_eq!(
            service_path("/dubbo", "com.foo.Demo"),
            "/dubbo/com.foo.Demo"
        );
        let path = url_path("/dubbo", &url);
        assert!(path.starts_with("/dubbo/com.foo.Demo/providers/dubbo%3A%2F%2F10.0.0.1%3A20880%2F"));
        assert!(!path["/dubbo/com.foo.Demo/providers/".len()..].contains('/'));
        let name = path.rsplit('/').next().unwrap();
        let decoded = decode_urls([name, "garbage%zz", "empty%3A%2F%2F0.0.0.0%2Fx"]);
        assert_eq!(decoded, vec![url.clone()]);
        let provider = Provider::from_url(url);
        assert_eq!(provider.weight, 7);
        assert_eq!(provider.version.as_deref(), Some("1.0"));
        assert_eq!(provider.address(), "10.0.0.1:20880");
        assert!(is_dynamic(&provider.url));
    }
}
