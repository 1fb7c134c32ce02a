//! Reading a ZooKeeper `zoo.cfg`, so a ZooKeeper user can switch with the
//! file they have: the settings with a Canopy equivalent become
//! [`Overrides`]; the others are reported back as warnings, never silently
//! dropped.

use std::path::{Path, PathBuf};

use crate::config::Overrides;

/// What a `zoo.cfg` said: the settings Canopy takes over, and one warning per
/// line it could not.
#[derive(Debug, Default)]
pub struct ZooCfg {
    pub overrides: Overrides,
    pub warnings: Vec<String>,
}

/// Whether a config file is a zoo.cfg rather than TOML, by its name.
pub fn looks_like_zoo_cfg(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "cfg")
}

pub fn read(path: &Path) -> Result<ZooCfg, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the text of a zoo.cfg (Java properties: `key=value`, `#` comments).
pub fn parse(text: &str) -> Result<ZooCfg, String> {
    let mut cfg = ZooCfg::default();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((key, value)) = line.split_once(['=', ':']) else {
            cfg.warnings.push(format!(
                "line {}: {line:?} is not key=value; ignored",
                number + 1
            ));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        cfg.take(key, value)
            .map_err(|e| format!("line {}: {key}: {e}", number + 1))?;
    }
    Ok(cfg)
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{value:?} is not a valid number"))
}

/// Java's Boolean.parseBoolean plus ZooKeeper's yes/no for forceSync.
fn boolean(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "true" | "yes")
}

impl ZooCfg {
    fn take(&mut self, key: &str, value: &str) -> Result<(), String> {
        let o = &mut self.overrides;
        match key {
            "clientPort" => o.port = Some(number(value)?),
            "clientPortAddress" => {
                o.bind = Some(
                    value
                        .parse()
                        .map_err(|_| format!("{value:?} is not an IP address"))?,
                )
            }
            "dataDir" => o.data_dir = Some(PathBuf::from(value)),
            "dataLogDir" => self.warnings.push(format!(
                "dataLogDir={value}: Canopy keeps its log in the data folder; ignored"
            )),
            "tickTime" => o.tick_time_ms = Some(number(value)?),
            "minSessionTimeout" => o.min_session_timeout_ms = Some(number(value)?),
            "maxSessionTimeout" => o.max_session_timeout_ms = Some(number(value)?),
            "maxClientCnxns" => o.max_client_cnxns = Some(number(value)?),
            "4lw.commands.whitelist" => {
                o.four_letter_words = Some(
                    value
                        .split(',')
                        .map(|w| w.trim().to_string())
                        .filter(|w| !w.is_empty())
                        .collect(),
                )
            }
            "admin.serverPort" => {
                // admin.enableServer=false wins whatever the order of lines.
                if o.admin_port != Some(0) {
                    o.admin_port = Some(number(value)?);
                }
            }
            "admin.enableServer" => {
                if !boolean(value) {
                    o.admin_port = Some(0);
                }
            }
            "admin.serverAddress" => {
                o.admin_bind = Some(
                    value
                        .parse()
                        .map_err(|_| format!("{value:?} is not an IP address"))?,
                )
            }
            "jute.maxbuffer" => o.max_frame_bytes = Some(number(value)?),
            "autopurge.snapRetainCount" => o.snapshots_retained = Some(number(value)?),
            "autopurge.purgeInterval" => self.warnings.push(format!(
                "autopurge.purgeInterval={value}: Canopy purges after every snapshot; ignored"
            )),
            "forceSync" => o.fsync = Some(boolean(value)),
            "snapCount" => o.snapshot_every_txns = Some(number(value)?),
            "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                o.ttl_enabled = Some(boolean(value))
            }
            "znode.container.checkIntervalMs" => {
                o.container_check_interval_ms = Some(number(value)?)
            }
            // Canopy is standalone without reconfig: only the opposite needs a word.
            "standaloneEnabled" => {
                if !boolean(value) {
                    self.warnings
                        .push(format!("{key}={value}: Canopy runs standalone; ignored"))
                }
            }
            "reconfigEnabled" => {
                if boolean(value) {
                    self.warnings
                        .push(format!("{key}={value}: Canopy has no reconfig; ignored"))
                }
            }
            _ if key.starts_with("server.") || key == "initLimit" || key == "syncLimit" => {
                self.warnings.push(format!(
                    "{key}={value}: ensembles are not supported yet, Canopy runs standalone; ignored"
                ))
            }
            _ => self.warnings.push(format!(
                "{key}={value}: no Canopy equivalent; ignored"
            )),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_settings_with_an_equivalent() {
        let cfg = parse(
            "# a comment\n\
             tickTime=200\n\
             dataDir=/var/lib/zk\n\
             clientPort=2999\n\
             clientPortAddress=127.0.0.1\n\
             maxClientCnxns=5\n\
             4lw.commands.whitelist=ruok, srvr ,mntr\n\
             admin.serverPort=9999\n\
             jute.maxbuffer=1048576\n\
             autopurge.snapRetainCount=4\n\
             forceSync=no\n\
             initLimit=10\n\
             preAllocSize=65536\n",
        )
        .unwrap();
        let o = &cfg.overrides;
        assert_eq!(o.tick_time_ms, Some(200));
        assert_eq!(o.data_dir, Some(PathBuf::from("/var/lib/zk")));
        assert_eq!(o.port, Some(2999));
        assert_eq!(o.bind, Some([127, 0, 0, 1].into()));
        assert_eq!(o.max_client_cnxns, Some(5));
        assert_eq!(
            o.four_letter_words,
            Some(vec!["ruok".into(), "srvr".into(), "mntr".into()])
        );
        assert_eq!(o.admin_port, Some(9999));
        assert_eq!(o.max_frame_bytes, Some(1_048_576));
        assert_eq!(o.snapshots_retained, Some(4));
        assert_eq!(o.fsync, Some(false));
        assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
        assert!(cfg.warnings[1].starts_with("preAllocSize=65536"));
    }

    #[test]
    fn disabled_admin_server_wins_over_its_port() {
        let cfg = parse("admin.enableServer=false\nadmin.serverPort=9999\n").unwrap();
        assert_eq!(cfg.overrides.admin_port, Some(0));
    }

    #[test]
    fn bad_numbers_are_errors_with_the_line() {
        let err = parse("tickTime=2000\nclientPort=abc\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("clientPort"),
            "{err}"
        );
    }
}
