//! Build script: the version `loadctl --version` prints.
//!
//! Built from a git checkout of this repository, the version carries the
//! commit it was built from, `0.1.0 (abc1234 2026-11-28)`, so a bug report
//! can say exactly which code it ran. Anywhere else (a crates.io download,
//! a source tarball, a machine without git) it is the plain package
//! version: every failure here falls back silently, since a build must
//! never fail for want of a commit id.
//!
//! Cargo reruns this script when the checkout's `HEAD` or the branch it
//! points at moves, and not otherwise, so ordinary builds stay incremental.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let full = match commit(&manifest_dir) {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo:rustc-env=LOADCTL_BUILD_VERSION={full}");
    println!("cargo:rerun-if-changed=build.rs");
}

/// `abc1234 2026-11-28`: the short hash and commit date of `HEAD`, when
/// `dir` is the top of a git work tree (a package unpacked inside some
/// other repository must not take that repository's commit).
fn commit(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    watch_head(dir);
    git(dir, &["log", "-1", "--format=%h %cs"])
}

/// Asks cargo to rerun the script when `HEAD` changes (another branch
/// checked out) or the branch it names moves (a new commit). Only files
/// that exist are named: cargo reruns the script on every build for a
/// missing one. In a linked work tree `--git-path` finds `HEAD` in the
/// tree's own git folder and the branch in the shared one.
fn watch_head(dir: &Path) {
    let mut watched = vec![git(dir, &["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(dir, &["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(dir, &["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten() {
        let path = dir.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// The trimmed standard output of `git ARGS` run in `dir`; `None` when git
/// is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
