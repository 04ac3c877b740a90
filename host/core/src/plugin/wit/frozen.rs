//! Released WIT folders stay as they were released: a plugin built against
//! one must keep loading, byte for byte the same contract. This test pins
//! the sha256 of every file of each released folder; an edit fails it. The
//! guests (the Rust SDK, the Python and JavaScript examples) must build
//! against the folder of the version the host speaks.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Each released folder under `wit/` and the sha256 of its files (name, a
/// NUL, contents, a NUL; in name order), as [`folder_hash`] computes it.
const RELEASED: &[(&str, &str)] = &[
    ("rotator-plugin@0.1.0", "c1a736b67372d5a4548d8f63bde1336c6f4ae4add123ab6536b20c18e595fabc"),
    ("rotator-plugin@0.2.0", "1bb34487cc2651b6a4b84d2d2f51706b0f990be28bfe2d2e89a2efe25bd4664c"),
];

fn folder_hash(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable folder entry").path())
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    for file in files {
        let name = file.file_name().expect("a file name").to_string_lossy().into_owned();
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())));
        hash.update([0]);
    }
    hex::encode(hash.finalize())
}

#[test]
fn released_wit_folders_are_unchanged() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    for (folder, expected) in RELEASED {
        let actual = folder_hash(&wit.join(folder));
        assert_eq!(
            &actual, expected,
            "wit/{folder} changed, but a released WIT version is frozen: plugins built against it must keep \
             loading. Undo the edit and put the change into a new version folder (see wit/PENDING_CHANGES.md)"
        );
    }
}

#[test]
fn the_hash_covers_names_and_contents() {
    let dir = std::env::temp_dir().join(format!("rotator-wit-frozen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.wit"), "interface a {}").unwrap();
    let before = folder_hash(&dir);
    std::fs::write(dir.join("a.wit"), "interface a { }").unwrap();
    let edited = folder_hash(&dir);
    std::fs::rename(dir.join("a.wit"), dir.join("b.wit")).unwrap();
    let renamed = folder_hash(&dir);
    std::fs::write(dir.join("c.wit"), "").unwrap();
    let added = folder_hash(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(before != edited && edited != renamed && renamed != added);
}

#[test]
fn the_guests_build_against_the_newest_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let folder = format!("wit/rotator-plugin@{}", super::VERSION);
    assert!(RELEASED.iter().any(|(f, _)| folder.ends_with(f)), "{folder} is not pinned in RELEASED");
    for user in ["plugins/sdk/src/lib.rs", "scripts/build-polyglot.sh", "plugins/examples/js-kv/package.json"] {
        let text = std::fs::read_to_string(root.join(user)).unwrap_or_else(|e| panic!("{user}: {e}"));
        assert!(text.contains(&folder), "{user} must build against {folder}, the host's newest WIT version");
    }
}
