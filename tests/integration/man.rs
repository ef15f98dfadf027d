//! The man pages under `man/` are generated from the same clap definitions
//! as `--help`: `loadctl.1`, and `loadctl-NAME.1` for every subcommand
//! (`loadctl-NAME-SUB.1` for a nested one), found by walking the command
//! tree, so a subcommand added later gets its page without a change here.
//! This test fails when a page is stale, missing, or left over from a
//! subcommand that is gone.
//! Regenerate with `LOADCTL_UPDATE_MAN=1 cargo test --test integration man`.

use crate::repo;

const REGENERATE: &str = "LOADCTL_UPDATE_MAN=1 cargo test --test integration man";

/// Every page: the file name without `.1`, and its text.
fn pages() -> Vec<(String, Vec<u8>)> {
    // The package version, not `--version`'s commit, so the pages change
    // only when the command line does.
    let version = env!("CARGO_PKG_VERSION");
    // Building propagates the global flags, the version and each
    // subcommand's full name (`loadctl run`) down the tree. clap's `help`
    // subcommand is `--help` again: no page, and no mention of one.
    let mut top = without_help_subcommand(loadctl::cli::command().version(version));
    top.build();
    let mut pages = Vec::new();
    add_pages(&top, &format!("loadctl {version}"), &mut pages);
    pages
}

fn without_help_subcommand(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let cmd = cmd.disable_help_subcommand(true);
    names.iter().fold(cmd, |cmd, name| {
        cmd.mut_subcommand(name, without_help_subcommand)
    })
}

/// The page of `cmd`, then those of its subcommands.
fn add_pages(cmd: &clap::Command, source: &str, pages: &mut Vec<(String, Vec<u8>)>) {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.clone())
        .source(source.to_string())
        .render(&mut out)
        .unwrap();
    pages.push((name, out));
    for sub in cmd.get_subcommands() {
        add_pages(sub, source, pages);
    }
}

#[test]
fn man_pages_are_up_to_date() {
    let dir = repo().join("man");
    let update = std::env::var_os("LOADCTL_UPDATE_MAN").is_some();
    let pages = pages();
    for (name, text) in &pages {
        let path = dir.join(format!("{name}.1"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            &on_disk == text,
            "{} is stale or missing; run `{REGENERATE}`",
            path.display()
        );
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "1") && !pages.iter().any(|(n, _)| n == stem) {
            if update {
                std::fs::remove_file(&path).unwrap();
            } else {
                panic!(
                    "{} is the page of no subcommand; run `{REGENERATE}`",
                    path.display()
                );
            }
        }
    }
}
