//! The progress bar on stderr: only when asked for and stderr is a terminal,
//! so logs and CI output stay clean.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    /// Some: the bar counts operations; None: it counts elapsed time.
    total_ops: Option<u64>,
    started: Instant,
}

impl Progress {
    /// A bar counting `total_ops` operations, or `duration` of time when the
    /// run is time-bound. `None` when disabled or stderr is not a terminal.
    pub fn start(
        enabled: bool,
        label: &str,
        total_ops: Option<u64>,
        duration: Duration,
    ) -> Option<Progress> {
        if !enabled || !std::io::stderr().is_terminal() {
            return None;
        }
        let (len, template) = match total_ops {
            Some(n) => (
                n,
                "{prefix:>10} [{bar:40}] {pos}/{len} ops {per_sec} {elapsed}",
            ),
            None => (
                duration.as_millis().max(1) as u64,
                "{prefix:>10} [{bar:40}] {elapsed}/{msg}",
            ),
        };
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        bar.set_message(format!("{:.0}s", duration.as_secs_f64()));
        Some(Progress {
            bar,
            total_ops,
            started: Instant::now(),
        })
    }

    pub fn update(&self, completed: u64) {
        match self.total_ops {
            Some(_) => self.bar.set_position(completed),
            None => self
                .bar
                .set_position(self.started.elapsed().as_millis() as u64),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
