//! Builds the whole plugins workspace (built-ins, the SDK and every fixture)
//! for this repository's tests and benchmarks, and exports the output folder.

fn main() {
    let repo = rotator_guest_build::Repo::find();
    rotator_guest_build::watch(&repo.plugins);
    rotator_guest_build::watch(&repo.wit);
    let built = repo.build(&[]);
    println!("cargo:rustc-env=ROTATOR_PLUGIN_DIR={}", built.display());
}
