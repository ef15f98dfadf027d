//! Integration tests: the built `loadctl` binary against in-process test
//! servers on 127.0.0.1 (port 0) and the built-in demo target.

mod faults;
mod init;
mod man;
mod patterns;
mod properties;
mod reports;
mod run;
mod server;
mod validate;

use std::path::{Path, PathBuf};

/// The binary, with any `LOADCTL_*` settings of the developer's shell
/// removed so they cannot change what a test means.
pub fn loadctl() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("loadctl").unwrap();
    for (key, _) in std::env::vars() {
        if key.starts_with("LOADCTL_") {
            cmd.env_remove(key);
        }
    }
    cmd.timeout(std::time::Duration::from_secs(60));
    cmd
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json was written");
    serde_json::from_str(&text).unwrap()
}

/// A scenario with one flow against `base_url`; `steps` and `extra` are
/// appended as TOML.
pub fn scenario(base_url: &str, load: &str, steps: &str, extra: &str) -> String {
    format!(
        "name = \"test\"\n[target]\nbase_url = \"{base_url}\"\ntimeout = \"2s\"\n[load]\n{load}\n[[flow]]\nname = \"f\"\n{steps}\n{extra}\n"
    )
}

/// The repository's own folder, for scenarios/.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
