//! `/v1/services`: the Dubbo registry as it sits in the tree —
//! `/dubbo/<interface>/providers/<URL-encoded URL>` (and `consumers`,
//! `routers`, `configurators`) — decoded into JSON: per interface, its
//! providers and consumers with their protocol, address and parameters.
//! `?root=/other` reads a registry under another root (Dubbo's `group`).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Query, State};
use axum::Json;
use serde::Serialize;

use super::{AdminState, ApiError};
use crate::tree::Tree;

/// One registered URL.
#[derive(Debug, Serialize, PartialEq)]
pub struct Endpoint {
    /// The decoded URL.
    pub url: String,
    pub protocol: String,
    /// `host:port`.
    pub address: String,
    pub path: String,
    pub parameters: BTreeMap<String, String>,
    /// Whether the node is ephemeral (live registrations are).
    pub ephemeral: bool,
}

#[derive(Debug, Serialize)]
pub struct Service {
    pub interface: String,
    pub providers: Vec<Endpoint>,
    pub consumers: Vec<Endpoint>,
    pub routers: Vec<String>,
    pub configurators: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Registry {
    pub root: String,
    pub services: Vec<Service>,
}

/// `GET /v1/services`.
pub async fn view(
    State(state): State<AdminState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Registry>, ApiError> {
    let root = query
        .get("root")
        .cloned()
        .unwrap_or_else(|| "/dubbo".to_string());
    if !root.starts_with('/') {
        return Err(ApiError::bad_request("root must be an absolute path"));
    }
    let core = state.core.lock();
    Ok(Json(registry(&core.tree, &root)))
}

/// Reads the registry under `root` (empty if there is none).
pub fn registry(tree: &Tree, root: &str) -> Registry {
    let root = if root.len() > 1 {
        root.trim_end_matches('/')
    } else {
        root
    };
    let mut services = Vec::new();
    if let Some(node) = tree.get(root) {
        // Sorted, so the view does not depend on creation order.
        let mut interfaces: Vec<&str> = tree.child_names(node).collect();
        interfaces.sort_unstable();
        for interface in interfaces {
            let service_path = join(root, interface);
            let list = |category: &str| -> Vec<(String, bool)> {
                let category_path = join(&service_path, category);
                let mut urls: Vec<(String, bool)> = tree
                    .get(&category_path)
                    .map(|n| {
                        tree.children(n)
                            .map(|child| {
                                let ephemeral = child.stat().ephemeral_owner != 0;
                                (percent_decode(child.name()), ephemeral)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                urls.sort();
                urls
            };
            let endpoints = |category: &str| -> Vec<Endpoint> {
                list(category)
                    .into_iter()
                    .map(|(url, ephemeral)| parse_url(&url, ephemeral))
                    .collect()
            };
            services.push(Service {
                interface: interface.to_string(),
                providers: endpoints("providers"),
                consumers: endpoints("consumers"),
                routers: list("routers").into_iter().map(|(u, _)| u).collect(),
                configurators: list("configurators").into_iter().map(|(u, _)| u).collect(),
            });
        }
    }
    Registry {
        root: root.to_string(),
        services,
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Decodes `%XX` escapes (Dubbo's URL.encode); `+` is a space, as in
/// Java's URLEncoder. Bad escapes are kept as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `protocol://host:port/path?k=v&...` (a node name that is not a URL
/// keeps everything in `url`).
pub fn parse_url(url: &str, ephemeral: bool) -> Endpoint {
    let (protocol, rest) = url.split_once("://").unwrap_or(("", url));
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (address, path) = location.split_once('/').unwrap_or((location, ""));
    let parameters = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key.to_string(), value.to_string())
        })
        .collect();
    Endpoint {
        url: url.to_string(),
        protocol: protocol.to_string(),
        address: address.to_string(),
        path: path.to_string(),
        parameters,
        ephemeral,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_dubbo_node_names() {
        let name = "dubbo%3A%2F%2F10.0.0.5%3A20880%2Fcom.example.Greeter%3Fapplication%3Ddemo%26version%3D1.0.0";
        let url = percent_decode(name);
        assert_eq!(
            url,
            "dubbo://10.0.0.5:20880/com.example.Greeter?application=demo&version=1.0.0"
        );
        let endpoint = parse_url(&url, true);
        assert_eq!(endpoint.protocol, "dubbo");
        assert_eq!(endpoint.address, "10.0.0.5:20880");
        assert_eq!(endpoint.path, "com.example.Greeter");
        assert_eq!(endpoint.parameters["application"], "demo");
        assert_eq!(endpoint.parameters["version"], "1.0.0");
    }

    #[test]
    fn bad_escapes_stay() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%zzb"), "a%zzb");
        assert_eq!(percent_decode("%41"), "A");
    }
}
