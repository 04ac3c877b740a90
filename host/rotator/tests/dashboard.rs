//! The dashboard as an operator uses it: `rotator dev` serves it, a real
//! headless chromium opens the link the banner prints, the operator clicks
//! "Rotate now", and the rotation shows up in the live feed, in the jobs
//! table and in Vault. The page and its assets are checked over plain HTTP
//! too: public, under a strict Content-Security-Policy, nothing external.
//!
//! Chromium is Debian's package; `scripts/test.sh` installs it. With
//! `UPDATE_SCREENSHOT=1` the browser test saves its 1280×800 screenshot as
//! `docs/dashboard.png`, the picture the README shows.

#[path = "dashboard/cdp.rs"]
mod cdp;
#[path = "support/dev.rs"]
#[allow(dead_code)]
mod dev;
#[path = "dashboard/jobs.rs"]
mod jobs;

use std::path::Path;
use std::time::Duration;

use dev::{Dev, http, vault_get};
use serde_json::Value;

const API_TOKEN: &str = "dashboard-test-api-token-0123456789";
const JOB: &str = "web-app";
const JOBS: &str = r#"
[[jobs]]
id = "web-app"
plugin = "kv-random"
secret = { mount = "secret", path = "web/app" }
interval = "1h"
settings = { field = "password", length = 24 }
"#;
/// A job whose plugin fails every attempt (it calls Vault outside its
/// grants, a permanent failure, so it waits for its next cycle), with an id
/// and a secret path long enough to push a table column.
const FAILING: &str = "payments_eu_west_1_production_billing_api_database_password";

/// The daemon runs as a (lone) replica, so the page shows its replica card.
const REPLICA: &str = "[daemon]\nreplicas = { name = \"dash\", lease_ttl = \"5s\" }\n";

fn jobs() -> String {
    format!(
        "{REPLICA}{JOBS}\n[[jobs]]\nid = \"{FAILING}\"\nplugin = \"{}\"\n\
         secret = {{ path = \"teams/payments/production/eu-west-1/billing-api/database/credentials\" }}\n\
         interval = \"1h\"\nretry = {{ attempts = 100, backoff = \"1s\" }}\n",
        rotator_test_artifacts::build_artifact("fixture_trespass").display()
    )
}

/// `rotator dev` with [`JOBS`] and a known API token, and what its banner
/// said: the dev Vault's address, the API's base URL and the dashboard link.
struct Daemon {
    dev: Dev,
    vault: String,
    api: String,
    dashboard: String,
}

impl Daemon {
    fn start() -> Self {
        let mut dev = Dev::with_jobs(&jobs(), &["--api-token", API_TOKEN]);
        let vault = dev.wait_for("Address:");
        let api = dev.wait_for("rotator API:").trim_end_matches("/healthz").to_owned();
        let dashboard = dev.wait_for("Dashboard:");
        Self { dev, vault, api, dashboard }
    }

    /// How many versions the job's secret has in Vault.
    async fn versions(&self) -> u64 {
        vault_get(&self.vault, "secret/metadata/web/app").await["data"]["current_version"].as_u64().unwrap_or(0)
    }

    async fn job(&self) -> Value {
        let resp = http().get(format!("{}/jobs/{JOB}", self.api)).bearer_auth(API_TOKEN).send().await.unwrap();
        resp.json().await.unwrap()
    }

    /// Wait until the job's first rotation (its secret is new) has ended.
    async fn rotated_once(&self) {
        for _ in 0..600 {
            let job = self.job().await;
            if job["rotations"] == 1 && job["running"] == false {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{JOB} never rotated");
    }

    /// SIGTERM; asserts a clean exit and returns stderr (the logs).
    fn stop(self) -> String {
        self.dev.stop().1
    }
}

/// Width and height of a PNG, from its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_assets_are_public_self_contained_and_under_a_strict_policy() {
    let dev = Daemon::start();
    // The banner's link carries the token in the fragment, which browsers keep to themselves.
    assert_eq!(dev.dashboard, format!("{}/#token={API_TOKEN}", dev.api));
    let files = [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/icon.png", "image/png"),
    ];
    for (path, kind) in files {
        let resp = http().get(format!("{}{path}", dev.api)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path} is served without a token");
        let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        assert!(header("content-type").unwrap().starts_with(kind), "{path}: {:?}", header("content-type"));
        assert_eq!(header("content-security-policy").as_deref(), Some(rotator_daemon::api::CONTENT_SECURITY_POLICY));
        assert!(rotator_daemon::api::CONTENT_SECURITY_POLICY.starts_with("default-src 'self';"));
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
        let body = String::from_utf8_lossy(&resp.bytes().await.unwrap()).into_owned();
        assert!(!body.contains("http://") && !body.contains("https://"), "{path} names an external URL");
        assert!(!body.contains(API_TOKEN), "{path} holds no data");
    }
    // The data the page shows stays behind the token.
    let resp = http().get(format!("{}/scheduler/jobs", dev.api)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    jobs::the_feed_starts_with_a_bounded_recent_past(&dev).await;
    let logs = dev.stop();
    assert!(!logs.contains(API_TOKEN), "the API token is printed on the banner, never logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_rotates_a_job_from_the_dashboard_and_watches_it_in_the_feed() {
    let dev = Daemon::start();
    // The job's secret is new, so it rotates once at start; let that settle
    // so the page's feed holds only what the click causes.
    dev.rotated_once().await;
    assert_eq!(dev.versions().await, 1, "the first rotation wrote version 1");

    let mut page = cdp::Browser::launch().await;
    page.open(&dev.dashboard, 1280, 800).await;
    let button = format!("button[data-rotate=\"{JOB}\"]");
    page.wait_for(&format!("document.querySelector('{button}')"), "the job's Rotate now button").await;
    page.wait_for("document.getElementById('live').dataset.state === 'on'", "a connected live feed").await;
    jobs::the_feed_shows_what_happened_before_the_page_opened(&mut page).await;
    // The token left the address bar for this tab's session storage.
    assert_eq!(page.eval("location.hash").await, "");
    assert_eq!(page.eval("sessionStorage.getItem('rotator.api-token')").await, API_TOKEN);
    let row = format!("#jobs-body tr[data-job=\"{JOB}\"]");
    assert_eq!(page.eval(&format!("document.querySelector('{row} .rotations').textContent")).await, "1");
    let text = page.eval(&format!("document.querySelector('{row}').innerText")).await;
    let text = text.as_str().unwrap();
    assert!(text.contains("kv-random@0.1.0") && text.contains("every 1h"), "{text}");
    // The next run: within the hour, at the job's own point of it.
    let words: Vec<&str> = text.split_whitespace().collect();
    let next =
        words.windows(3).any(|w| w[0] == "in" && w[1].parse::<u32>().is_ok_and(|n| n <= 60) && w[2].starts_with("min"))
            || words.windows(3).any(|w| w[0] == "in" && w[1].parse::<u32>().is_ok() && w[2] == "s");
    assert!(next, "{text}");
    assert!(text.contains("rotated") && !text.contains("NEEDS ATTENTION"), "{text}");
    assert_eq!(page.eval(&format!("document.querySelectorAll('{row} svg.spark rect.ok').length")).await, 1);

    // A job whose retries keep failing reads as failing, with its error,
    // not as its last finished rotation.
    let failing = format!("#jobs-body tr[data-job=\"{FAILING}\"]");
    page.wait_for(&format!("document.querySelector('{failing}')?.dataset.health === 'failing'"), "a failing job").await;
    let text = page.eval(&format!("document.querySelector('{failing}').innerText")).await;
    assert!(text.as_str().unwrap().contains("failing · 1 cycle"), "{text}");
    let note = page.eval(&format!("document.querySelector('{failing}').nextElementSibling.innerText")).await;
    assert!(note.as_str().unwrap().contains("Last error:"), "{note}");
    assert_eq!(page.eval(&format!("document.querySelector('{row}').dataset.health")).await, "ok");
    // At 1280 pixels every Rotate now button is whole inside the window.
    let clipped = page
        .eval(
            "[...document.querySelectorAll('button[data-rotate]')].filter(b => { const r = b.getBoundingClientRect(); \
             return r.width === 0 || r.left < 0 || r.right > document.documentElement.clientWidth; }).length",
        )
        .await;
    assert_eq!(clipped, 0, "a Rotate now button is cut off at 1280 pixels");
    // Nothing scrolls sideways: not the page, not a column, not the table's card.
    let scrolling = page
        .eval(
            "[...document.querySelectorAll('html, body, main, main *')].filter(e => e.scrollWidth > e.clientWidth + 1 \
             && getComputedStyle(e).overflowX !== 'visible' || e === document.documentElement && e.scrollWidth > e.clientWidth) \
             .map(e => e.tagName + '.' + e.className)",
        )
        .await;
    assert_eq!(scrolling, serde_json::json!([]), "parts of the page scroll sideways at 1280 pixels");
    let table = "document.querySelector('table.jobs')";
    let inside = page
        .eval(&format!(
            "{table}.getBoundingClientRect().right <= {table}.closest('.card').getBoundingClientRect().right"
        ))
        .await;
    assert_eq!(inside, true, "the jobs table is wider than its card at 1280 pixels");
    assert_eq!(page.eval("document.querySelectorAll('button[data-rotate]').length").await, 2);
    // A lone replica owns every shard, and says so.
    page.wait_for("!document.getElementById('replica-card').hidden", "the replica card").await;
    assert_eq!(page.eval("document.getElementById('replica-jobs').textContent").await, "2 (64 shards)");
    assert_eq!(page.eval("document.getElementById('replica-state').textContent").await, "holding");
    let member = page.eval("document.querySelector('#replica-members li').innerText").await;
    assert!(
        member.as_str().unwrap().starts_with("dash-") && member.as_str().unwrap().contains("64 shards"),
        "{member}"
    );

    page.click(&button).await;
    // (Rows from the recent past, replayed on load, are marked and left out.)
    let feed = format!("#feed li[data-job=\"{JOB}\"]:not([data-past])");
    let done = format!("{feed}[data-step=\"rotation\"][data-outcome=\"rotated\"]");
    page.wait_for(&format!("document.querySelector('{done}')"), "the rotation in the feed").await;
    let steps =
        page.eval(&format!("[...document.querySelectorAll('{feed}')].map(e => e.dataset.step).reverse()")).await;
    let steps: Vec<&str> = steps.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(steps, ["create", "stage", "set", "test", "promote", "finish", "rotation"]);
    let summary = page.eval(&format!("document.querySelector('{done}').innerText")).await;
    assert!(summary.as_str().unwrap().contains("rotation rotated by api"), "{summary}");
    // The table catches up: two rotations, two marks in the history chart.
    page.wait_for(&format!("document.querySelector('{row} .rotations').textContent === '2'"), "2 rotations").await;
    assert_eq!(page.eval(&format!("document.querySelectorAll('{row} svg.spark rect.ok').length")).await, 2);
    assert_eq!(dev.versions().await, 2, "the click rotated the secret in Vault");
    let job = dev.job().await;
    assert_eq!((job["rotations"].clone(), job["history"][0]["actor"].clone()), (2.into(), "api".into()));
    page.wait_for("document.querySelector('.note-ok')", "the success note").await;

    let png = page.screenshot().await;
    assert_eq!(png_size(&png), (1280, 800));
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png");
        std::fs::write(&path, &png).unwrap();
    }

    jobs::an_operator_opens_a_job_and_closes_it_by_mouse_keyboard_and_back(&dev, &mut page).await;
    jobs::a_link_with_the_token_and_a_job_opens_that_job(&dev, &mut page).await;
    jobs::with_many_jobs_the_table_filters_and_marks_none_overdue(&dev, &mut page).await;

    // A refused rotation is shown with the daemon's reason: the job is
    // removed behind the page's back, then clicked. A watcher records every
    // error note, since the next refresh drops the vanished job's row.
    page.eval(
        "window.notes = []; new MutationObserver(() => document.querySelectorAll('.note-bad') \
         .forEach(n => notes.push(n.textContent))).observe(document.body, {subtree: true, childList: true})",
    )
    .await;
    let resp = http().delete(format!("{}/scheduler/jobs/{JOB}", dev.api)).bearer_auth(API_TOKEN).send().await;
    assert_eq!(resp.unwrap().status(), 200);
    page.click(&button).await;
    let refused = format!("Rotate now refused (404): no job `{JOB}`");
    page.wait_for(&format!("notes.includes({refused:?})"), "the refusal").await;
    page.wait_for(&format!("!document.querySelector('{row}')"), "the job gone after a refresh").await;

    jobs::hours_later_a_job_not_yet_rotated_is_marked_overdue(&dev, &mut page).await;

    let complaints = page.complaints().await;
    // Only the refused rotation's 404, which the browser reports itself.
    let expected = format!("/jobs/{JOB}/rotate");
    assert!(complaints.iter().all(|c| c.contains(&expected)), "the page reported problems: {complaints:#?}");
    page.close().await;
    let logs = dev.stop();
    assert!(!logs.contains(API_TOKEN), "the API token is never logged");
}
