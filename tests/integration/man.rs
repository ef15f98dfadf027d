//! The man pages under `man/` are generated from the same clap definitions
//! as `--help`; this test fails when they are stale.
//! Regenerate with `LOADCTL_UPDATE_MAN=1 cargo test --test integration man`.

use crate::repo;

fn pages() -> Vec<(String, Vec<u8>)> {
    let top = loadctl::cli::command();
    let mut pages = Vec::new();
    let mut render = |name: String, cmd: clap::Command| {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out).unwrap();
        pages.push((name, out));
    };
    for sub in top.get_subcommands() {
        let name = format!("loadctl-{}", sub.get_name());
        let cmd = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("loadctl {}", sub.get_name()));
        render(name.clone(), cmd);
    }
    render("loadctl".to_string(), top);
    pages
}

#[test]
fn man_pages_are_up_to_date() {
    let dir = repo().join("man");
    let update = std::env::var_os("LOADCTL_UPDATE_MAN").is_some();
    for (name, text) in pages() {
        let path = dir.join(format!("{name}.1"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "{} is stale; run `LOADCTL_UPDATE_MAN=1 cargo test --test integration man`",
            path.display()
        );
    }
}
