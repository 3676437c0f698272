//! Progress of long commands on stderr: a bar with position, elapsed time and ETA
//! (indicatif) when stderr is a terminal; nothing while working when it is not (logs and
//! pipes get the command's one-line summary at the end instead, printed by the command).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A progress bar over `len` items, or a spinner for one long step (`len` 0); hidden off a
/// terminal.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Whether progress is drawn (stderr is a terminal).
    pub fn visible() -> bool {
        std::io::stderr().is_terminal()
    }

    /// `len` items (images, files, cases); `what` names them in the bar.
    pub fn items(len: u64, what: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(len), Self::target());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{bar:40}} {{pos}}/{{len}} {what} {{elapsed_precise}} eta {{eta}} {{msg}}"
            ))
            .expect("valid template"),
        );
        Progress { bar }
    }

    /// One long step without a count (`msg` says what it is doing): a spinner with the time
    /// spent so far.
    pub fn step(msg: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(None, Self::target());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
        bar.set_message(msg.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar }
    }

    fn target() -> ProgressDrawTarget {
        if Self::visible() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }

    /// Names the item being worked on.
    pub fn message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// One item done.
    pub fn inc(&self) {
        self.bar.inc(1);
    }

    /// A line on stderr above the bar (or plainly, off a terminal).
    pub fn line(&self, s: &str) {
        if Self::visible() {
            self.bar.println(s);
        } else {
            eprintln!("{s}");
        }
    }
}

impl Drop for Progress {
    /// The bar disappears when the work ends (successfully or not).
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
