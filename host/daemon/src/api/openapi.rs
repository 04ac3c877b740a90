//! `GET /openapi.json`: the API described as OpenAPI 3.1.
//!
//! The document is written by hand (`openapi.json`, embedded at build time)
//! so it can say why, not only what. The test below keeps it honest: every
//! operation it lists must be a [`ROUTES`](super::ROUTES) entry with the same
//! access, and every entry must be documented.

use axum::http::header;
use axum::response::IntoResponse;

/// The OpenAPI document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub(super) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::super::{Access, ROUTES};
    use super::DOCUMENT;

    const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

    /// (method, path, public?) of every documented operation.
    fn documented() -> BTreeSet<(String, String, bool)> {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."), "OpenAPI 3.1");
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if !METHODS.contains(&method.as_str()) {
                    continue;
                }
                assert!(op["operationId"].is_string(), "{method} {path} has no operationId");
                assert!(op["responses"].is_object(), "{method} {path} has no responses");
                // `security: []` turns the document-wide bearer scheme off.
                let public = op["security"].as_array().is_some_and(Vec::is_empty);
                ops.insert((method.to_uppercase(), path.clone(), public));
            }
        }
        ops
    }

    fn served() -> BTreeSet<(String, String, bool)> {
        ROUTES
            .iter()
            .flat_map(|r| {
                r.documented_paths().into_iter().map(|p| (r.method.to_string(), p, r.access == Access::Public))
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_is_served() {
        let (documented, served) = (documented(), served());
        let missing: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(missing.is_empty(), "served but not documented (or with other access): {missing:?}");
        assert!(unserved.is_empty(), "documented but not served (or with other access): {unserved:?}");
    }

    #[test]
    fn path_parameters_are_declared() {
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let wanted: BTreeSet<&str> =
                path.split('{').skip(1).filter_map(|s| s.split_once('}').map(|(name, _)| name)).collect();
            for (method, op) in item.as_object().unwrap() {
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert_eq!(declared, wanted, "{method} {path}");
            }
        }
    }
}
