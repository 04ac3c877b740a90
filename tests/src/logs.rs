//! Everything a test binary logs, captured for assertions: that a denial was
//! logged, that no secret value ever was.
//!
//! The subscriber is global (installed once per test binary), because plugin
//! steps log from the blocking pool's threads, which a thread-local
//! subscriber would miss. It filters as the `rotator` binary does at
//! `--log-level debug`, so what is captured is what an operator would see.
//! Tests in one binary share the buffer: look for lines that name your job.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Start capturing (once per binary; later calls do nothing). Call it before
/// the code under test logs.
pub fn capture() {
    buffer();
}

fn buffer() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let mut filter = tracing_subscriber::EnvFilter::new("debug");
        for directive in rotator_core::secret::QUIET_LOG_TARGETS {
            filter = filter.add_directive(directive.parse().expect("a valid directive"));
        }
        let writer = move || Sink(sink.clone());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(writer).try_init();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything captured so far.
pub fn text() -> String {
    String::from_utf8_lossy(&buffer().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// The captured lines that contain every one of `fragments`.
pub fn lines_with(fragments: &[&str]) -> Vec<String> {
    text().lines().filter(|l| fragments.iter().all(|f| l.contains(f))).map(str::to_owned).collect()
}

/// How many times a refused plugin call of `job` was logged: the warning
/// every denial writes, naming `reason` (`not in the job's grants`, …), the
/// plugin (`name@version`), the operation and the Vault path or SQL
/// connection (`target`, the line's last field).
pub fn denials(job: &str, plugin: &str, reason: &str, operation: &str, target: &str) -> usize {
    let reason = format!("plugin call denied: {reason} ");
    // Displayed fields print bare, string fields quoted.
    let (job, plugin) = (format!("job={job} "), format!("plugin={plugin} "));
    let (operation, target) = (format!("operation=\"{operation}\" "), format!("=\"{target}\""));
    let lines = lines_with(&[" WARN ", &reason, &job, &plugin, &operation]);
    lines.iter().filter(|l| l.ends_with(&target)).count()
}
