//! The line `rotator plugin test` shows while a component compiles: a
//! Python or JavaScript plugin takes seconds to compile the first time
//! (the compilation cache makes later runs fast), and silence reads as a
//! hang.
//!
//! On a terminal it is one line redrawn in place (a spinner and the time so
//! far), cleared and replaced by "compiled … in X s" when done. Anywhere
//! else (a pipe, a CI log) there is no animation and no control character:
//! one plain line before and one after.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the terminal line is redrawn.
const FRAME: Duration = Duration::from_millis(100);
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// "compiling <what> (N MiB)…": `bytes` of component.
fn started(what: &str, bytes: usize) -> String {
    format!("compiling {what} ({:.1} MiB)…", bytes as f64 / f64::from(1 << 20))
}

/// The terminal line at frame `n`, `elapsed` into the compile.
fn frame(line: &str, n: usize, elapsed: Duration) -> String {
    format!("\r{} {line} {:.1} s", SPINNER[n % SPINNER.len()], elapsed.as_secs_f64())
}

fn finished(what: &str, elapsed: Duration) -> String {
    format!("compiled {what} in {:.1} s", elapsed.as_secs_f64())
}

/// A compile being shown; [`Compiling::done`] ends the line.
pub(super) struct Compiling {
    what: String,
    started: Instant,
    /// On a terminal: the thread redrawing the line, and its stop signal.
    spinner: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Compiling {
    /// Start showing the compile of `what` (`bytes` long) on stderr.
    pub fn start(what: &str, bytes: usize) -> Self {
        Self::start_on(what, bytes, std::io::stderr().is_terminal())
    }

    fn start_on(what: &str, bytes: usize, tty: bool) -> Self {
        let line = started(what, bytes);
        let started = Instant::now();
        let spinner = if tty {
            let (stop, stopped) = mpsc::channel::<()>();
            let redraw = move || {
                let mut n = 0;
                // Redraw until told to stop (or the sender is gone).
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(if n == 0 { Duration::ZERO } else { FRAME })
                {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "{}", frame(&line, n, started.elapsed()));
                    let _ = err.flush();
                    n += 1;
                }
                // Clear the line for what follows.
                let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            };
            std::thread::Builder::new().name("compile-progress".into()).spawn(redraw).ok().map(|h| (stop, h))
        } else {
            eprintln!("{line}");
            None
        };
        Self { what: what.to_owned(), started, spinner }
    }

    /// End the line: "compiled … in X s" if the load succeeded; on a
    /// terminal, only the cleared line otherwise (the error follows).
    pub fn done(self, ok: bool) {
        let elapsed = self.started.elapsed();
        if let Some((stop, handle)) = self.spinner {
            let _ = stop.send(());
            let _ = handle.join();
        }
        if ok {
            eprintln!("{}", finished(&self.what, elapsed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_what_compiles_how_large_and_how_long_it_took() {
        assert_eq!(started("builtin:kv-random", 3 << 19), "compiling builtin:kv-random (1.5 MiB)…");
        assert_eq!(finished("x.wasm", Duration::from_millis(14_260)), "compiled x.wasm in 14.3 s");
        // The terminal form redraws one line: a carriage return, no newline.
        let f = frame("compiling x.wasm (35.4 MiB)…", 11, Duration::from_millis(2_049));
        assert_eq!(f, "\r⠙ compiling x.wasm (35.4 MiB)… 2.0 s");
        assert!(!f.contains('\n'));
    }
}
