//! Integration tests of plugins as a whole: the conformance harness against
//! the built-ins and the rule-breaking fixtures, the Python and JavaScript
//! examples (with the REST key service the HTTP ones rotate keys in), and
//! the on-disk compilation cache. One binary per subject
//! because each test binary links wasmtime, cranelift and the dev server
//! (issue 10). `polyglot` installs its own global subscriber, so no test here
//! may call `rotator_tests::logs::capture`.

mod harness;
mod key_service;
mod plugin_cache;
mod polyglot;
mod polyglot_http;
