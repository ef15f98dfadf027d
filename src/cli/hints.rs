//! Flags people bring from other load testers. When clap meets one it does
//! not know, the answer names the loadctl flag that does the same, rather
//! than clap's generic tip.

/// `(their flag, where it comes from, what to use in loadctl)`.
const FOREIGN_FLAGS: &[(&str, &str, &str)] = &[
    ("--vus", "k6", "use -u, --users N"),
    ("--rps", "k6", "use -r, --rate R (arrivals per second, the open model)"),
    ("-i", "k6", "use -n, --iterations N"),
    ("-t", "Locust", "use -d, --duration D (e.g. 30s, 5m)"),
    ("--run-time", "Locust", "use -d, --duration D (e.g. 30s, 5m)"),
    (
        "--spawn-rate",
        "Locust",
        "ramp users up with -p ramp and `ramp_up = \"30s\"` under [load] (users are added evenly over ramp_up)",
    ),
    (
        "-f",
        "Locust",
        "give the scenario file as the argument itself: loadctl run FILE.toml",
    ),
    (
        "--headless",
        "Locust",
        "loadctl always runs headless (-q hides the progress line)",
    ),
    ("-c", "oha and hey", "use -u, --users N"),
    ("-z", "oha and hey", "use -d, --duration D"),
    ("--host", "Locust", "use --base-url URL"),
];

/// The message for a flag from another tool, if `arg` is one.
pub fn foreign_flag(arg: &str) -> Option<String> {
    let flag = arg.split_once('=').map_or(arg, |(flag, _)| flag);
    FOREIGN_FLAGS
        .iter()
        .find(|(theirs, _, _)| *theirs == flag)
        .map(|(theirs, tool, ours)| {
            format!(
                "error: loadctl has no {theirs} ({tool}'s flag): {ours}\n\n\
                 For every flag, try 'loadctl run --help'."
            )
        })
}

/// Prints our own message for a clap error about a flag from another tool;
/// false when the error is not one.
pub fn explain(e: &clap::Error) -> bool {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return false;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return false;
    };
    match foreign_flag(arg) {
        Some(message) => {
            eprintln!("{message}");
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_of_other_tools_get_the_loadctl_flag() {
        assert!(foreign_flag("--vus").unwrap().contains("-u, --users"));
        assert!(foreign_flag("--vus=10").unwrap().contains("k6"));
        assert!(foreign_flag("--run-time").unwrap().contains("--duration"));
        assert!(foreign_flag("--nope").is_none());
    }
}
