//! Dubbo 3's application-level layout: one ephemeral node per process,
//! `/services/<app>/<ip:port>`, whose data is the JSON Curator's service
//! discovery writes (Dubbo's `ZookeeperInstance` payload carries the
//! metadata: revision, protocols, ...).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One instance of an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub app: String,
    pub host: String,
    pub port: u16,
    /// Dubbo's instance metadata (`dubbo.metadata.revision`, ...).
    pub metadata: BTreeMap<String, String>,
    /// When the instance registered, ms since the epoch.
    pub registration_time_ms: i64,
}

impl Instance {
    pub fn new(app: impl Into<String>, host: impl Into<String>, port: u16) -> Instance {
        Instance {
            app: app.into(),
            host: host.into(),
            port,
            metadata: BTreeMap::new(),
            registration_time_ms: crate::balance::now_ms(),
        }
    }

    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// `ip:port`, also the instance's node name and id.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The node data, in Curator's `ServiceInstance` JSON shape.
    pub fn to_json(&self) -> Vec<u8> {
        let record = CuratorInstance {
            name: self.app.clone(),
            id: self.address(),
            address: self.host.clone(),
            port: Some(self.port),
            ssl_port: None,
            payload: Some(Payload {
                class: "org.apache.dubbo.registry.zookeeper.ZookeeperInstance".into(),
                id: Some(self.address()),
                name: Some(self.app.clone()),
                metadata: self.metadata.clone(),
            }),
            registration_time_utc: self.registration_time_ms,
            service_type: "DYNAMIC".into(),
            uri_spec: None,
        };
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// Reads node data written by [`Instance::to_json`] or by Dubbo itself.
    pub fn from_json(data: &[u8]) -> Result<Instance, serde_json::Error> {
        let record: CuratorInstance = serde_json::from_slice(data)?;
        Ok(Instance {
            app: record.name,
            host: record.address,
            port: record.port.unwrap_or(0),
            metadata: record.payload.map(|p| p.metadata).unwrap_or_default(),
            registration_time_ms: record.registration_time_utc,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CuratorInstance {
    name: String,
    id: String,
    address: String,
    port: Option<u16>,
    ssl_port: Option<u16>,
    payload: Option<Payload>,
    #[serde(rename = "registrationTimeUTC", default)]
    registration_time_utc: i64,
    #[serde(default)]
    service_type: String,
    uri_spec: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    #[serde(rename = "@class", default)]
    class: String,
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// `/services/<app>`.
pub fn app_path(root: &str, app: &str) -> String {
    format!("{}/{app}", root.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_reads_dubbo_records() {
        let instance = Instance::new("shop", "10.0.0.7", 20880)
            .with_metadata("dubbo.metadata.revision", "abc");
        let back = Instance::from_json(&instance.to_json()).unwrap();
        assert_eq!(back, instance);

        let from_dubbo = br#"{"name":"shop","id":"10.0.0.8:20880","address":"10.0.0.8","port":20880,
            "sslPort":null,"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance",
            "id":"10.0.0.8:20880","name":"shop","metadata":{"dubbo.endpoints":"[]"}},
            "registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null}"#;
        let parsed = Instance::from_json(from_dubbo).unwrap();
        assert_eq!(parsed.address(), "10.0.0.8:20880");
        assert_eq!(parsed.metadata["dubbo.endpoints"], "[]");
        assert_eq!(app_path("/services", "shop"), "/services/shop");
    }
}
