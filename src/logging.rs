//! Log output: `tracing` as text or JSON lines on stderr, with a filter that
//! can be changed while the server runs (the admin API's `/v1/log/level`, or
//! a SIGHUP reload of the config file).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// Changes the level of the process's logger.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    current: parking_lot::Mutex<String>,
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

/// Installs the process-wide logger. `level` is a filter such as `info` or
/// `canopy=debug,info`; `RUST_LOG`, when set, wins over it.
pub fn init(format: &str, level: &str) -> Result<(), String> {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| level.to_string());
    let filter = EnvFilter::try_new(&spec).map_err(|e| format!("bad log level {spec:?}: {e}"))?;
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (text, json) = if format == "json" {
        let json = fmt::layer()
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr);
        (None, Some(json))
    } else {
        let text = fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
        (Some(text), None)
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    let _ = CONTROL.set(LogControl {
        handle,
        current: parking_lot::Mutex::new(spec),
    });
    Ok(())
}

/// The log control, if this process installed its logger through [`init`]
/// (an embedded server leaves logging to its host).
pub fn control() -> Option<&'static LogControl> {
    CONTROL.get()
}

impl LogControl {
    /// The filter in force.
    pub fn level(&self) -> String {
        self.current.lock().clone()
    }

    /// Replaces the filter; the old one stays if `spec` does not parse.
    pub fn set_level(&self, spec: &str) -> Result<(), String> {
        let spec = spec.trim();
        let filter =
            EnvFilter::try_new(spec).map_err(|e| format!("bad log level {spec:?}: {e}"))?;
        self.handle
            .reload(filter)
            .map_err(|e| format!("cannot change the log level: {e}"))?;
        *self.current.lock() = spec.to_string();
        tracing::info!(level = spec, "log level changed");
        Ok(())
    }
}
