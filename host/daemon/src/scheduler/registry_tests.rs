use time::Duration;
use time::macros::datetime;

use super::*;

/// Jobs from `toml`, loaded as the daemon loads configured ones (real
/// built-in plugins).
fn jobs(toml: &str) -> Vec<Job> {
    let config = rotator_core::config::parse("test.toml", toml, std::path::Path::new(".")).unwrap();
    let runtime = crate::setup::runtime(&config).unwrap();
    crate::setup::load_jobs(&config, &runtime).unwrap()
}

fn job(id: &str, schedule: &str) -> String {
    format!(
        "[[jobs]]\nid = \"{id}\"\nplugin = \"kv-random\"\nsecret = {{ mount = \"secret\", path = \"r/{id}\" }}\n\
         settings = {{ field = \"password\" }}\n{schedule}\n"
    )
}

fn registry(toml: &str) -> Registry {
    let registry = Registry::default();
    for job in jobs(toml) {
        assert!(registry.insert(job));
    }
    registry
}

#[test]
fn views_are_by_id_and_show_the_interval_or_the_cron() {
    let toml = job("weekly", "cron = \"0 3 * * sun\"\nwindow = \"1h\"") + &job("hourly", "interval = \"1h\"");
    let registry = registry(&toml);
    let views = registry.views();
    let ids: Vec<&str> = views.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["hourly", "weekly"]);
    assert_eq!((views[0].interval_seconds, views[0].cron.as_deref()), (Some(3600), None));
    assert_eq!((views[1].interval_seconds, views[1].cron.as_deref()), (None, Some("0 3 * * sun")));
    assert_eq!(views[1].schedule, "cron 0 3 * * sun (UTC), window 1h");
    let json = serde_json::to_value(&views[1]).unwrap();
    assert_eq!(json["interval_seconds"], serde_json::Value::Null, "present and null for a cron job: {json}");
    assert!(json.as_object().unwrap().contains_key("interval_seconds"));

    // A second job with a taken id is refused; removal is seen at once.
    assert!(!registry.insert(jobs(&job("hourly", "interval = \"2h\"")).remove(0)));
    assert_eq!(registry.view("hourly").unwrap().interval_seconds, Some(3600), "the first stays");
    assert!(registry.remove("hourly") && !registry.remove("hourly"));
    assert!(!registry.contains("hourly") && registry.view("hourly").is_none());
    assert_eq!(registry.views().len(), 1);
}

#[test]
fn a_claim_is_exclusive_and_not_within_holds_both_ways() {
    let pair = "interval = \"1h\"\nnot_within = { job = \"first\", duration = \"10m\" }";
    let toml = job("first", "interval = \"1h\"") + &job("second", pair) + &job("alone", "interval = \"1h\"");
    let registry = registry(&toml);
    let t0 = datetime!(2026-12-05 12:00 UTC);

    assert_eq!(registry.claim("nope", t0).err(), Some(Unclaimed::Unknown));
    assert!(registry.claim("first", t0).is_ok());
    assert!(registry.view("first").unwrap().running);
    assert_eq!(registry.claim("first", t0).err(), Some(Unclaimed::Busy));
    // `second` names `first`: blocked while it runs, and for 10 minutes
    // after it started; a job with no pair is not.
    let later = t0 + Duration::minutes(3);
    assert_eq!(registry.claim("second", later).err(), Some(Unclaimed::Blocked(later + Duration::minutes(10))));
    assert!(registry.claim("alone", later).is_ok());
    registry.release("first");
    assert!(!registry.view("first").unwrap().running);
    assert_eq!(registry.claim("second", later).err(), Some(Unclaimed::Blocked(t0 + Duration::minutes(10))));
    assert!(registry.claim("second", t0 + Duration::minutes(10)).is_ok());
    // The other way round: `first` waits for `second`, which named it.
    let t1 = t0 + Duration::minutes(11);
    assert_eq!(registry.claim("first", t1).err(), Some(Unclaimed::Blocked(t1 + Duration::minutes(10))));
    registry.release("second");
    assert_eq!(registry.claim("first", t1).err(), Some(Unclaimed::Blocked(t0 + Duration::minutes(20))));
}

#[test]
fn the_booked_record_is_what_the_view_shows() {
    let registry = registry(&job("booked", "interval = \"1h\""));
    let mut state = JobState { rotations: 4, needs_attention: true, ..JobState::default() };
    state.next_due = Some(datetime!(2026-12-06 00:00 UTC));
    registry.set_state("booked", state.clone());
    assert_eq!(registry.state("booked").rotations, 4);
    let view = registry.view("booked").unwrap();
    assert_eq!((view.rotations, view.needs_attention), (4, true));
    assert_eq!(view.next_due, None, "a job that needs attention is not due");
    assert_eq!(registry.state("unknown").rotations, 0);
}
