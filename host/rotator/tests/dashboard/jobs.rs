//! The dashboard's views of the recent past and of single jobs, as parts of
//! the operator's session in `dashboard.rs`: the feed replaying what the
//! daemon did before the page opened, a job's own view (opened and closed
//! with the mouse, the keyboard and Back), the filter once there are many
//! jobs, and the overdue mark.

use std::time::Duration;

use serde_json::{Value, json};

use super::cdp::Browser;
use super::dev::http;
use super::{API_TOKEN, Daemon, FAILING, JOB};

/// The steps of one rotation, as the feed lists them (oldest first).
const STEPS: [&str; 7] = ["create", "stage", "set", "test", "promote", "finish", "rotation"];

/// `GET /events?recent=N` over plain HTTP: at most N rotation events, each
/// numbered, then the `backlog` marker with their count; more than the
/// daemon keeps is refused.
pub async fn the_feed_starts_with_a_bounded_recent_past(dev: &Daemon) {
    dev.rotated_once().await;
    let get = |query: &str| http().get(format!("{}/events{query}", dev.api)).bearer_auth(API_TOKEN);
    let resp = get("?recent=201").send().await.unwrap();
    assert_eq!(resp.status(), 400, "more than the backlog keeps");
    assert!(resp.text().await.unwrap().contains("recent: at most 200"));
    let mut resp = get("?recent=3").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = read_until(&mut resp, "event: backlog").await;
    let frames: Vec<&str> = text.split("\n\n").filter(|f| f.contains("event: rotation")).collect();
    assert_eq!(frames.len(), 3, "{text}");
    let seqs: Vec<u64> = frames.iter().map(|f| field(f, "id").parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "consecutive and oldest first: {seqs:?}");
    for f in &frames {
        let event: Value = serde_json::from_str(field(f, "data")).unwrap();
        assert_eq!(event["seq"].as_u64(), field(f, "id").parse().ok(), "{f}");
        assert!(event["at"].as_str().is_some_and(|at| at.ends_with('Z')), "{f}");
    }
    assert!(text.contains("event: backlog\ndata: 3\n"), "{text}");
    // Resuming after the second: only the third (and any newer) comes again.
    let mut resp = get("?recent=200").header("Last-Event-ID", seqs[1].to_string()).send().await.unwrap();
    let text = read_until(&mut resp, "event: backlog").await;
    let first = text.split("\n\n").find(|f| f.contains("event: rotation")).expect("a rotation event");
    assert_eq!(field(first, "id").parse::<u64>().unwrap(), seqs[2], "{text}");
    let resp = get("").header("Last-Event-ID", "yesterday").send().await.unwrap();
    assert_eq!(resp.status(), 400);
}

/// The page opened after `JOB`'s first rotation and the failing job's
/// first failures: its feed shows them, marked as the past, below a line.
pub async fn the_feed_shows_what_happened_before_the_page_opened(page: &mut Browser) {
    let past = format!("#feed li[data-past=\\\"yes\\\"][data-job=\\\"{JOB}\\\"]");
    let done = format!("{past}[data-step=\\\"rotation\\\"][data-outcome=\\\"rotated\\\"]");
    page.wait_for(&format!("document.querySelector(\"{done}\")"), "the rotation from before the page opened").await;
    let steps =
        page.eval(&format!("[...document.querySelectorAll(\"{past}\")].map(e => e.dataset.step).reverse()")).await;
    assert_eq!(steps, json!(STEPS), "the whole first rotation, in order");
    let summary = page.eval(&format!("document.querySelector(\"{done}\").innerText")).await;
    assert!(summary.as_str().unwrap().contains("rotation rotated by scheduler"), "{summary}");
    let failed = format!("#feed li[data-past=\\\"yes\\\"][data-job=\\\"{FAILING}\\\"][data-outcome=\\\"failed\\\"]");
    assert_ne!(page.eval(&format!("document.querySelectorAll(\"{failed}\").length")).await, 0);
    let divider = page.eval("document.querySelector('#feed li[data-kind=\"divider\"]')?.innerText").await;
    assert!(divider.as_str().is_some_and(|d| d.contains("from before this page connected")), "{divider}");
}

/// `JOB` has rotated twice (versions 1 and 2): its view lists both with
/// their versions, follows a third, and closes with Escape; the failing job's view opens
/// with Enter, shows its last error, and closes with Back.
pub async fn an_operator_opens_a_job_and_closes_it_by_mouse_keyboard_and_back(dev: &Daemon, page: &mut Browser) {
    let dialog = "document.getElementById('job-dialog')";
    page.click(&format!("button[data-open=\"{JOB}\"]")).await;
    page.wait_for(&format!("{dialog}.open"), "the job's view").await;
    assert_eq!(page.eval("location.hash").await, format!("#job={JOB}"));
    let rows = "#job-detail table.history tbody tr";
    page.wait_for(&format!("document.querySelectorAll('{rows}').length === 2"), "two rotations in the history").await;
    let cells = |n: usize| format!("[...document.querySelectorAll('{rows}')].map(r => r.cells[{n}].innerText.trim())");
    assert_eq!(page.eval(&cells(1)).await, json!(["rotated", "rotated"]));
    assert_eq!(page.eval(&cells(2)).await, json!(["v2", "v1"]), "versions, newest first");
    assert_eq!(page.eval(&cells(4)).await, json!(["api", "scheduler"]), "who rotated");
    let fact = |name: &str| format!("document.querySelector('[data-fact=\"{name}\"] dd').innerText");
    assert_eq!(page.eval(&fact("Current version")).await, "v2");
    let next = page.eval(&fact("Next rotation")).await;
    assert!(next.as_str().unwrap().starts_with("in "), "{next}");
    assert_eq!(page.eval("document.activeElement.id").await, "job-close", "the focus moved into the view");
    let fits = page
        .eval(&format!(
            "{dialog}.scrollWidth <= {dialog}.clientWidth && {dialog}.getBoundingClientRect().right <= innerWidth"
        ))
        .await;
    assert_eq!(fits, true, "the job's view scrolls sideways or leaves the window");
    // An open view follows the job: rotated meanwhile (here through the
    // API), it shows the third rotation without being opened again.
    let resp = http().post(format!("{}/jobs/{JOB}/rotate", dev.api)).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    page.wait_for(&format!("document.querySelectorAll('{rows}').length === 3"), "the new rotation in the open view")
        .await;
    assert_eq!(page.eval(&cells(2)).await, json!(["v3", "v2", "v1"]));
    assert_eq!(page.eval(&fact("Current version")).await, "v3");
    page.press("Escape").await;
    page.wait_for(&format!("!{dialog}.open && location.hash === ''"), "the view closed by Escape").await;

    // By keyboard alone: the failing job's name is a button; Enter opens it.
    // The focus stays on it when the table is redrawn (every 10 s).
    page.eval(&format!(
        "document.querySelector('button[data-open=\"{FAILING}\"]').focus(); window.redrawn = false; \
         new MutationObserver(() => redrawn = true).observe(document.getElementById('jobs-body'), {{childList: true}})"
    ))
    .await;
    page.wait_for("redrawn", "the table redrawn").await;
    assert_eq!(page.eval("document.activeElement.dataset.open").await, FAILING, "the focus survives a redraw");
    page.press("Enter").await;
    page.wait_for(
        &format!("{dialog}.open && document.querySelector('[data-part=\"last-error\"]')"),
        "the failing job's view",
    )
    .await;
    assert_eq!(page.eval("document.getElementById('job-title').textContent").await, FAILING);
    let error = page.eval("document.querySelector('[data-part=\"last-error\"]').innerText").await;
    assert!(error.as_str().unwrap().starts_with("Last error:"), "{error}");
    assert_eq!(page.eval(&fact("Failures")).await, "1 failed cycle");
    assert_eq!(page.eval(&fact("Current version")).await, "–", "never rotated");
    let text = page.eval("document.getElementById('job-detail').innerText").await;
    assert!(text.as_str().unwrap().contains("Not rotated yet."), "{text}");
    page.eval("history.back()").await;
    page.wait_for(&format!("!{dialog}.open"), "the view closed by Back").await;
    assert_eq!(page.eval("document.activeElement.dataset.open").await, FAILING, "the focus went back to the job");
}

/// A link naming the token and a job (`#token=…&job=…`, as an operator
/// might send one), opened in a new tab (no token in its session storage):
/// it signs in and opens that job; the token leaves the address, the job
/// stays in it.
pub async fn a_link_with_the_token_and_a_job_opens_that_job(dev: &Daemon, page: &mut Browser) {
    page.open(&format!("{}&job={JOB}", dev.dashboard), 1280, 800).await;
    let dialog = "document.getElementById('job-dialog')";
    // `?.`: the new tab may still be on its blank page.
    let title = format!("document.getElementById('job-title')?.textContent === {JOB:?}");
    page.wait_for(&format!("{dialog}?.open && {title}"), "the linked job's view").await;
    assert_eq!(page.eval("location.hash").await, format!("#job={JOB}"));
    page.press("Escape").await;
    page.wait_for(&format!("!{dialog}.open && location.hash === ''"), "the view closed by Escape").await;
}

/// Eleven jobs: the filter appears, narrows by secret and by plugin, and
/// its toggle keeps only the troubled; with the real clock nothing is overdue.
pub async fn with_many_jobs_the_table_filters_and_marks_none_overdue(dev: &Daemon, page: &mut Browser) {
    assert_eq!(page.eval("document.getElementById('jobs-filter').hidden").await, true, "two jobs need no filter");
    for n in 1..=9 {
        let job = json!({ "id": format!("batch-{n:02}"), "plugin": "kv-random", "secret": { "path": format!("batch/{n:02}") },
                          "interval": "1h", "settings": { "field": "password" } });
        let resp = http().post(format!("{}/scheduler/jobs", dev.api)).bearer_auth(API_TOKEN).json(&job).send().await;
        assert_eq!(resp.unwrap().status(), 200);
    }
    let shown = "[...document.querySelectorAll('#jobs-body tr[data-job]')].map(r => r.dataset.job)";
    page.wait_for(&format!("{shown}.length === 11"), "eleven jobs").await;
    page.wait_for("!document.getElementById('jobs-filter').hidden", "the filter").await;
    page.click("#filter-text").await;
    page.type_text("batch/07").await;
    assert_eq!(page.eval(shown).await, json!(["batch-07"]), "by secret path");
    // Redrawn rows show their times at once, not a tick later.
    let next = "/in \\d+ (min|s)/.test(document.querySelector('#jobs-body tr[data-job=\"batch-07\"]').innerText)";
    assert_eq!(page.eval(next).await, true, "the next rotation's time");
    assert_eq!(page.eval("document.getElementById('jobs-summary').innerText").await, "1 of 11 jobs");
    page.eval("document.getElementById('filter-text').select()").await;
    page.type_text("KV-RANDOM").await;
    let kv = page.eval(shown).await;
    assert_eq!(kv.as_array().unwrap().len(), 10, "by plugin, any case: {kv}");
    assert!(!kv.as_array().unwrap().contains(&json!(FAILING)), "{kv}");
    page.eval("document.getElementById('filter-text').select()").await;
    page.press("Backspace").await;
    page.wait_for(&format!("{shown}.length === 11"), "the filter cleared").await;
    page.wait_for(
        "document.querySelectorAll('#jobs-body tr[data-job][data-health=\"ok\"]').length === 10",
        "ten rotated",
    )
    .await;
    assert_eq!(page.eval("document.querySelectorAll('#jobs-body tr[data-overdue=\"yes\"]').length").await, 0);
    page.click("#filter-trouble").await;
    assert_eq!(page.eval(shown).await, json!([FAILING]), "only the failing job");
    page.click("#filter-trouble").await;
    assert_eq!(page.eval(&format!("{shown}.length")).await, 11);
}

/// The page's clock set two hours on, as if the operator looked again
/// after the daemon had stopped rotating: the batch jobs, due within the
/// hour and not running, are marked overdue. (The daemon's view is real;
/// only the page's "now" moves.)
pub async fn hours_later_a_job_not_yet_rotated_is_marked_overdue(dev: &Daemon, page: &mut Browser) {
    const LATER: &str = "(() => { const shift = 2 * 3600 * 1000; const Real = Date; \
        class Later extends Real { constructor(...a) { if (a.length) super(...a); else super(Real.now() + shift); } \
        static now() { return Real.now() + shift; } } globalThis.Date = Later; })();";
    page.open_with(&dev.dashboard, 1280, 800, Some(LATER)).await;
    let row = "document.querySelector('#jobs-body tr[data-job=\"batch-01\"]')";
    page.wait_for(&format!("{row}?.dataset.overdue === 'yes'"), "an overdue job").await;
    assert_eq!(page.eval(&format!("{row}.classList.contains('overdue')")).await, true);
    let text = page.eval(&format!("{row}.innerText")).await;
    assert!(text.as_str().unwrap().contains("overdue") && text.as_str().unwrap().contains(" ago"), "{text}");
    let summary = page.eval("document.getElementById('jobs-summary').innerText").await;
    assert!(summary.as_str().unwrap().contains("overdue"), "{summary}");
}

/// Read a response until `marker` has arrived.
async fn read_until(resp: &mut reqwest::Response, marker: &str) -> String {
    let mut text = String::new();
    while !text.contains(marker) {
        let chunk = tokio::time::timeout(Duration::from_secs(30), resp.chunk()).await.unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk.expect("the stream goes on")));
    }
    text
}

/// A field's value in one SSE frame.
fn field<'a>(frame: &'a str, name: &str) -> &'a str {
    frame.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": "))).unwrap_or("")
}
