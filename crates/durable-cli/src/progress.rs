//! Progress bars on long work: drawn on standard error when it is a terminal (and the
//! output is not JSON), silent otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar.
pub(crate) struct Progress(ProgressBar);

impl Progress {
    fn new(show: bool, label: &str, total: u64, template: &str) -> Self {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_owned());
        Self(bar)
    }

    /// A bar counting bytes.
    pub(crate) fn bytes(show: bool, label: &str, total: u64) -> Self {
        Self::new(
            show,
            label,
            total,
            "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
    }

    /// A bar counting items.
    pub(crate) fn items(show: bool, label: &str, total: u64) -> Self {
        Self::new(
            show,
            label,
            total,
            "{prefix:>8} [{bar:30}] {pos}/{len} {eta}",
        )
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.inc(n);
    }

    pub(crate) fn finish(self) {
        self.0.finish_and_clear();
    }
}
