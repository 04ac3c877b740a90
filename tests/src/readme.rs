//! The README's operator API table against the OpenAPI document the daemon
//! serves: every route in one is in the other, method by method, so the
//! short table in the README cannot fall behind the API.

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    fn repo() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    /// `METHOD /path` pairs from the first column of the README's table
    /// under "## Operator API": a cell lists `` `GET /a`, `/b` `` (the
    /// method carries over) and request bodies in backticks after the path.
    fn readme_routes() -> BTreeSet<String> {
        let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
        let section = readme.split("## Operator API").nth(1).expect("an Operator API section");
        let section = section.split("\n## ").next().unwrap();
        let mut routes = BTreeSet::new();
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let cell = row.split(" | ").next().unwrap();
            let mut method = None;
            for code in cell.split('`').skip(1).step_by(2) {
                let (m, path) = match code.split_once(' ') {
                    Some((m, p)) if m.chars().all(|c| c.is_ascii_uppercase()) => (Some(m), p),
                    _ => (None, code),
                };
                if let Some(m) = m {
                    method = Some(m.to_owned());
                }
                if !path.starts_with('/') {
                    continue; // a request body
                }
                let path = path.split('?').next().unwrap();
                routes.insert(format!("{} {path}", method.as_deref().expect("a method before the first path")));
            }
        }
        routes
    }

    fn openapi_routes() -> BTreeSet<String> {
        let text = std::fs::read_to_string(repo().join("host/daemon/src/api/openapi.json")).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut routes = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                routes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
        routes
    }

    #[test]
    fn the_readme_lists_every_route_the_openapi_document_has() {
        let (readme, openapi) = (readme_routes(), openapi_routes());
        let missing: Vec<_> = openapi.difference(&readme).collect();
        let unknown: Vec<_> = readme.difference(&openapi).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "not in the README: {missing:?}; not in openapi.json: {unknown:?}"
        );
        assert!(readme.len() >= 20, "{readme:?}");
    }
}
