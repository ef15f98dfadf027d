//! What a scenario may read from outside itself: environment variables and
//! files. [`super::compile`] never touches the process environment or the
//! disk directly; it asks the [`Inputs`] its caller passes in.
//!
//! Each front end chooses its inputs:
//!
//! - **The CLI** ([`Inputs::for_cli`]): every environment variable of the
//!   process, and files relative to the scenario's folder, wherever they
//!   lead. `validate` reports a template that reads an unset variable as a
//!   warning; `run` refuses it before sending anything.
//! - **An agent** (the MCP server): only the variables the person starting
//!   the server allowed ([`EnvVars::allowlist`], `--allow-env NAME`), and
//!   only files inside one folder ([`Files::confined`], `--scenario-dir`).
//!   Confinement is checked on canonical paths: an absolute path is
//!   refused, so is a `..` that climbs out of the folder, and so is a path
//!   that a symbolic link leads outside (even when the file it names does
//!   not exist, so a refusal never tells whether a file outside exists).
//!   Reading is capped too: one file at most [`MAX_CONFINED_FILE_BYTES`]
//!   (16 MiB) and all the files of one compile together at most
//!   [`MAX_CONFINED_TOTAL_BYTES`] (64 MiB), counted in a [`ReadBudget`].
//! - **A worker**: the files it received with its assignment, in memory,
//!   keyed by the path exactly as the scenario writes it ([`Files::in_memory`]).
//!
//! Environment values never appear in messages or in `Debug` output; only
//! names do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::diag::Severity;

/// Everything [`super::compile`] may read besides the scenario itself.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The environment variables templates may read (`env.NAME`).
    pub env: EnvVars,
    /// Where data files (`[[data]] file`) and the CA file come from.
    pub files: Files,
    /// How a template reading a variable that is allowed but not set is
    /// judged: a warning (`validate`) or an error (`run`, before any request).
    pub unset_env: Severity,
}

impl Inputs {
    /// The command line's inputs: the whole process environment, and files
    /// relative to the scenario's folder (the working folder without a file).
    pub fn for_cli(scenario_file: Option<&Path>, unset_env: Severity) -> Inputs {
        let folder = scenario_file
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        Inputs {
            env: EnvVars::process(),
            files: Files::relative_to(folder),
            unset_env,
        }
    }

    /// An agent's inputs: only the `allowed_env` variables of this process,
    /// and only files inside `scenario_dir` (none without one).
    pub fn for_agent(
        allowed_env: impl IntoIterator<Item = String>,
        scenario_dir: Option<&Path>,
        unset_env: Severity,
    ) -> std::io::Result<Inputs> {
        Ok(Inputs {
            env: EnvVars::allowlist(allowed_env, EnvVars::process_values()),
            files: match scenario_dir {
                Some(dir) => Files::confined(dir)?,
                None => Files::Nowhere,
            },
            unset_env,
        })
    }

    /// What is wrong with a template reading `env.NAME`, if anything:
    /// outside the allowlist (an error), or not set (as `unset_env` says).
    /// The message names variables, never values, and suggests a close
    /// visible name.
    pub fn env_problem(&self, name: &str) -> Option<(Severity, String)> {
        let (severity, mut message, candidates): (_, _, Vec<&str>) = match self.env.lookup(name) {
            EnvLookup::Set => return None,
            EnvLookup::NotAllowed => {
                let allowed: Vec<&str> = self
                    .env
                    .allowed()
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                let which = match allowed.as_slice() {
                    [] => "no variable is".to_string(),
                    names => format!(
                        "only {} {}",
                        quoted(names),
                        if names.len() == 1 { "is" } else { "are" }
                    ),
                };
                let message = format!(
                    "environment variable `{name}` is not allowed here ({which}; \
                     start the server with `--allow-env {name}` to allow it)"
                );
                (Severity::Error, message, allowed)
            }
            EnvLookup::Unset => {
                let message = match self.unset_env {
                    Severity::Error => format!("environment variable `{name}` is not set"),
                    Severity::Warning => format!(
                        "environment variable `{name}` is not set, so a run would refuse it"
                    ),
                };
                (
                    self.unset_env,
                    message,
                    self.env.values().keys().map(String::as_str).collect(),
                )
            }
        };
        if let Some(close) = crate::diag::did_you_mean(name, &candidates) {
            message.push_str(&format!("; did you mean `env.{close}`?"));
        }
        Some((severity, message))
    }

    /// No environment variable and no file: for text that must stand alone,
    /// such as a preset.
    pub fn sealed() -> Inputs {
        Inputs {
            env: EnvVars::allowlist([], []),
            files: Files::Nowhere,
            unset_env: Severity::Error,
        }
    }
}

/// The environment variables a scenario's templates may see.
#[derive(Clone, Default)]
pub struct EnvVars {
    /// The visible variables that are set, with their values.
    values: BTreeMap<String, String>,
    /// `None`: any name may be read. `Some`: only these.
    allowed: Option<BTreeSet<String>>,
}

/// What a template finds when it reads `env.NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvLookup {
    Set,
    /// Allowed, but not set.
    Unset,
    /// Outside the allowlist.
    NotAllowed,
}

impl EnvVars {
    /// Every variable of this process (those whose name and value are
    /// UTF-8; others cannot be written in a template anyway).
    pub fn process() -> EnvVars {
        EnvVars::all(process_vars())
    }

    /// Every variable given, and any name may be read.
    pub fn all(values: impl IntoIterator<Item = (String, String)>) -> EnvVars {
        EnvVars {
            values: values.into_iter().collect(),
            allowed: None,
        }
    }

    /// Only the `allowed` names may be read; their values come from `values`
    /// (pass [`EnvVars::process_values`] for the process's own), and every
    /// other variable there is dropped, so not even a dynamic lookup such as
    /// `env[name]` reaches it.
    pub fn allowlist(
        allowed: impl IntoIterator<Item = String>,
        values: impl IntoIterator<Item = (String, String)>,
    ) -> EnvVars {
        let allowed: BTreeSet<String> = allowed.into_iter().collect();
        EnvVars {
            values: values
                .into_iter()
                .filter(|(name, _)| allowed.contains(name))
                .collect(),
            allowed: Some(allowed),
        }
    }

    /// This process's variables, for [`EnvVars::allowlist`].
    pub fn process_values() -> impl Iterator<Item = (String, String)> {
        process_vars()
    }

    pub fn lookup(&self, name: &str) -> EnvLookup {
        if self.values.contains_key(name) {
            EnvLookup::Set
        } else if self.allowed.as_ref().is_some_and(|a| !a.contains(name)) {
            EnvLookup::NotAllowed
        } else {
            EnvLookup::Unset
        }
    }

    /// The visible variables that are set, with their values.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The allowlist, or `None` when any name may be read.
    pub fn allowed(&self) -> Option<&BTreeSet<String>> {
        self.allowed.as_ref()
    }
}

fn quoted(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

fn process_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// Names only: values may be secrets.
impl fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvVars")
            .field("set", &self.values.keys().collect::<Vec<_>>())
            .field("allowed", &self.allowed)
            .finish()
    }
}

/// The most bytes of one file a confined resolver reads.
pub const MAX_CONFINED_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The most bytes a confined resolver reads for one compile, all the files
/// a scenario names together.
pub const MAX_CONFINED_TOTAL_BYTES: u64 = 64 * 1024 * 1024;

/// The bytes one compile has read so far, against
/// [`MAX_CONFINED_TOTAL_BYTES`]. Only a confined resolver counts.
#[derive(Debug, Default)]
pub struct ReadBudget {
    used: u64,
}

/// Where the files a scenario names are read from.
#[derive(Clone)]
pub enum Files {
    /// Relative to this folder (the scenario's); absolute paths as written.
    Relative(PathBuf),
    /// Only inside `root`; relative paths start from `base`, a folder
    /// inside it. Both are canonical.
    Confined { root: PathBuf, base: PathBuf },
    /// Given in memory, keyed by the path as the scenario writes it.
    InMemory(BTreeMap<String, Vec<u8>>),
    /// No file at all.
    Nowhere,
}

/// Why a file could not be read, said after the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// Not on disk at this path.
    NotFound(PathBuf),
    /// Not among the files given in memory.
    NotGiven,
    /// The resolver does not allow this path; says why.
    Refused(String),
    /// Anything else, from the operating system.
    Unreadable(String),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::NotFound(path) => write!(f, "not found at {}", path.display()),
            FileError::NotGiven => f.write_str("not found among the files sent with the scenario"),
            FileError::Refused(why) | FileError::Unreadable(why) => f.write_str(why),
        }
    }
}

impl Files {
    pub fn relative_to(folder: impl Into<PathBuf>) -> Files {
        Files::Relative(folder.into())
    }

    /// Only files inside `root`; relative paths start from `root`.
    pub fn confined(root: &Path) -> std::io::Result<Files> {
        Files::confined_from(root, root)
    }

    /// Only files inside `root`; relative paths start from `base`, which
    /// must be inside `root` (the folder of a scenario file found there).
    pub fn confined_from(root: &Path, base: &Path) -> std::io::Result<Files> {
        let root = root.canonicalize()?;
        let base = root.join(base).canonicalize()?;
        if !base.starts_with(&root) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{} is outside {}", base.display(), root.display()),
            ));
        }
        Ok(Files::Confined { root, base })
    }

    pub fn in_memory(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Files {
        Files::InMemory(files.into_iter().collect())
    }

    /// The file's bytes; `written` is the path as the scenario writes it.
    /// A confined resolver reads at most [`MAX_CONFINED_FILE_BYTES`]; see
    /// [`Files::read_counted`] for the cap on a compile's files together.
    pub fn read(&self, written: &str) -> Result<Vec<u8>, FileError> {
        self.read_counted(written, &mut ReadBudget::default())
    }

    /// [`Files::read`], counting what a confined resolver reads in
    /// `budget`: a file that would take the total past
    /// [`MAX_CONFINED_TOTAL_BYTES`] is refused.
    pub fn read_counted(
        &self,
        written: &str,
        budget: &mut ReadBudget,
    ) -> Result<Vec<u8>, FileError> {
        match self {
            Files::InMemory(files) => files.get(written).cloned().ok_or(FileError::NotGiven),
            Files::Nowhere => Err(FileError::Refused(
                "reading files is not allowed here (start the server with `--scenario-dir DIR` to allow a folder)"
                    .into(),
            )),
            Files::Relative(_) => {
                let path = self.resolve(written)?;
                std::fs::read(&path).map_err(|e| unreadable(e, path))
            }
            Files::Confined { .. } => {
                let bytes = read_capped(&self.resolve(written)?, budget)?;
                budget.used += bytes.len() as u64;
                Ok(bytes)
            }
        }
    }

    /// Where on disk `written` leads, refused if the resolver does not allow
    /// it. A front end that takes a scenario's path from an agent checks it
    /// here too, by the same rules as the scenario's own files.
    pub fn resolve(&self, written: &str) -> Result<PathBuf, FileError> {
        match self {
            Files::Relative(folder) => Ok(folder.join(written)),
            Files::Confined { root, base } => confine(root, base, written),
            Files::InMemory(_) | Files::Nowhere => Err(FileError::Refused(
                "files are not read from disk here".into(),
            )),
        }
    }
}

fn unreadable(e: std::io::Error, path: PathBuf) -> FileError {
    match e.kind() {
        std::io::ErrorKind::NotFound => FileError::NotFound(path),
        _ => FileError::Unreadable(e.to_string()),
    }
}

/// Reads `path` if it fits the per-file cap and what is left of `budget`.
/// The size is checked before reading, and the read stops one byte past
/// the cap in case the file grew since.
fn read_capped(path: &Path, budget: &ReadBudget) -> Result<Vec<u8>, FileError> {
    use std::io::Read;
    let io = |e| unreadable(e, path.to_path_buf());
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let left = MAX_CONFINED_TOTAL_BYTES.saturating_sub(budget.used);
    within_caps(size, left)?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_CONFINED_FILE_BYTES.min(left) + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    within_caps(bytes.len() as u64, left)?;
    Ok(bytes)
}

/// Refuses a file of `size` bytes over the per-file cap or over the `left`
/// of the compile's total.
fn within_caps(size: u64, left: u64) -> Result<(), FileError> {
    let mib = |bytes: u64| bytes / (1024 * 1024);
    if size > MAX_CONFINED_FILE_BYTES {
        Err(FileError::Refused(format!(
            "the file is over the limit of {} MiB per file (a limit of `loadctl serve-mcp`)",
            mib(MAX_CONFINED_FILE_BYTES)
        )))
    } else if size > left {
        Err(FileError::Refused(format!(
            "reading it would take the scenario's files past the limit of {} MiB together \
             (a limit of `loadctl serve-mcp`)",
            mib(MAX_CONFINED_TOTAL_BYTES)
        )))
    } else {
        Ok(())
    }
}

/// Names and sizes only, never file contents.
impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Files::Relative(folder) => f.debug_tuple("Relative").field(folder).finish(),
            Files::Confined { root, base } => f
                .debug_struct("Confined")
                .field("root", root)
                .field("base", base)
                .finish(),
            Files::InMemory(files) => f
                .debug_map()
                .entries(files.iter().map(|(name, bytes)| (name, bytes.len())))
                .finish(),
            Files::Nowhere => f.write_str("Nowhere"),
        }
    }
}

/// `written` under `base`, if it stays inside `root` once every `..` and
/// symbolic link is followed.
fn confine(root: &Path, base: &Path, written: &str) -> Result<PathBuf, FileError> {
    let relative = Path::new(written);
    if relative.has_root() || relative.is_absolute() {
        return Err(FileError::Refused(
            "absolute paths are not allowed; name a file inside the scenario folder, relative to the scenario"
                .into(),
        ));
    }
    let Some(lexical) = normalize(&base.join(relative)) else {
        return Err(leaves_by_dots());
    };
    if !lexical.starts_with(root) {
        return Err(leaves_by_dots());
    }
    let leaves_by_link = || {
        FileError::Refused(
            "the path leads outside the scenario folder through a symbolic link".into(),
        )
    };
    match lexical.canonicalize() {
        Ok(canonical) if canonical.starts_with(root) => Ok(canonical),
        Ok(_) => Err(leaves_by_link()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The deepest part that exists must be inside too; otherwise
            // "not found" would tell whether a file outside exists.
            let existing = lexical
                .ancestors()
                .find_map(|a| a.canonicalize().ok())
                .unwrap_or_default();
            if existing.starts_with(root) {
                Err(FileError::NotFound(lexical))
            } else {
                Err(leaves_by_link())
            }
        }
        Err(e) => Err(FileError::Unreadable(e.to_string())),
    }
}

fn leaves_by_dots() -> FileError {
    FileError::Refused("`..` leads outside the scenario folder; name a file inside it".into())
}

/// `path` with `.` and `..` resolved by their names alone (links are not
/// followed); `None` when `..` climbs above the top.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() || out.as_os_str().is_empty() {
                    return None;
                }
            }
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A scenario folder holding `data.csv` and `sub/`, next to a sibling
    /// `outside.csv`.
    fn folders() -> (tempfile::TempDir, PathBuf) {
        let top = tempfile::tempdir().unwrap();
        let folder = top.path().join("scenarios");
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::write(folder.join("data.csv"), "a\n1\n").unwrap();
        std::fs::write(top.path().join("outside.csv"), "secret\nvalue\n").unwrap();
        (top, folder)
    }

    fn refused(r: Result<Vec<u8>, FileError>) -> String {
        match r {
            Err(FileError::Refused(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn confined_files_inside_the_folder_are_read() {
        let (_top, folder) = folders();
        let files = Files::confined(&folder).unwrap();
        assert_eq!(files.read("data.csv").unwrap(), b"a\n1\n");
        assert_eq!(files.read("./sub/../data.csv").unwrap(), b"a\n1\n");
        assert!(matches!(
            files.read("missing.csv"),
            Err(FileError::NotFound(_))
        ));
        let from_sub = Files::confined_from(&folder, Path::new("sub")).unwrap();
        assert_eq!(from_sub.read("../data.csv").unwrap(), b"a\n1\n");
    }

    #[test]
    fn confined_files_refuse_absolute_paths_dots_and_links_out() {
        let (top, folder) = folders();
        let files = Files::confined(&folder).unwrap();
        assert!(refused(files.read("/etc/passwd")).contains("absolute"));
        let outside = top.path().join("outside.csv");
        assert!(refused(files.read(outside.to_str().unwrap())).contains("absolute"));
        assert!(refused(files.read("../outside.csv")).contains("`..`"));
        assert!(refused(files.read("sub/../../outside.csv")).contains("`..`"));
        // A missing file outside is refused the same way, not "not found".
        assert!(refused(files.read("../nothing-here.csv")).contains("`..`"));
        std::os::unix::fs::symlink(&outside, folder.join("link.csv")).unwrap();
        std::os::unix::fs::symlink(top.path(), folder.join("up")).unwrap();
        assert!(refused(files.read("link.csv")).contains("symbolic link"));
        assert!(refused(files.read("up/outside.csv")).contains("symbolic link"));
        assert!(refused(files.read("up/nothing-here.csv")).contains("symbolic link"));
        // The base folder itself must be inside the root.
        assert!(Files::confined_from(&folder, Path::new("..")).is_err());
    }

    #[test]
    fn relative_files_go_anywhere_as_the_cli_always_did() {
        let (top, folder) = folders();
        let files = Files::relative_to(&folder);
        assert_eq!(files.read("../outside.csv").unwrap(), b"secret\nvalue\n");
        let outside = top.path().join("outside.csv");
        assert_eq!(
            files.read(outside.to_str().unwrap()).unwrap(),
            b"secret\nvalue\n"
        );
        assert_eq!(
            files.read("missing.csv"),
            Err(FileError::NotFound(folder.join("missing.csv")))
        );
    }

    #[test]
    fn in_memory_files_are_found_by_the_path_as_written() {
        let files = Files::in_memory([("data/a.csv".to_string(), b"x\n1\n".to_vec())]);
        assert_eq!(files.read("data/a.csv").unwrap(), b"x\n1\n");
        assert_eq!(files.read("a.csv"), Err(FileError::NotGiven));
        assert!(format!("{files:?}").contains("\"data/a.csv\": 4"));
    }

    #[test]
    fn an_agent_reads_only_its_folder_or_no_file_at_all() {
        let (_top, folder) = folders();
        let agent = Inputs::for_agent([], Some(&folder), Severity::Error).unwrap();
        assert!(agent.env.values().is_empty());
        assert_eq!(agent.files.read("data.csv").unwrap(), b"a\n1\n");
        let no_folder = Inputs::for_agent([], None, Severity::Error).unwrap();
        assert!(refused(no_folder.files.read("data.csv")).contains("--scenario-dir"));
        assert!(Inputs::for_agent([], Some(&folder.join("nope")), Severity::Error).is_err());
    }

    #[test]
    fn an_allowlist_drops_every_other_variable() {
        let env = EnvVars::allowlist(
            ["TOKEN".to_string(), "UNSET".to_string()],
            [
                ("TOKEN".to_string(), "t0p-s3cret".to_string()),
                ("HOME".to_string(), "/root".to_string()),
            ],
        );
        assert_eq!(env.lookup("TOKEN"), EnvLookup::Set);
        assert_eq!(env.lookup("UNSET"), EnvLookup::Unset);
        assert_eq!(env.lookup("HOME"), EnvLookup::NotAllowed);
        assert_eq!(env.values().len(), 1);
        let shown = format!("{env:?}");
        assert!(
            shown.contains("TOKEN") && !shown.contains("t0p-s3cret"),
            "{shown}"
        );
        let all = EnvVars::all([("HOME".to_string(), "/root".to_string())]);
        assert_eq!(all.lookup("HOME"), EnvLookup::Set);
        assert_eq!(all.lookup("NOPE"), EnvLookup::Unset);
    }

    /// A scenario whose feeder reads `file` and whose first step's path is
    /// `path`, as TOML.
    fn scenario(file: &str, path: &str) -> String {
        format!(
            "[target]\nbase_url = \"demo\"\n[load]\nusers = 1\nduration = \"1s\"\n\
             [[data]]\nname = \"rows\"\nfile = {file:?}\n\
             [[flow]]\n  [[flow.step]]\n  path = {path:?}\n"
        )
    }

    /// Compiles `text` with `inputs`: the plan, and each problem as
    /// `s.toml:LINE:COLUMN: severity: message`.
    fn compile_with(text: &str, inputs: &Inputs) -> (Option<super::super::Plan>, Vec<String>) {
        let mut diags = crate::diag::Diagnostics::default();
        let parsed = crate::scenario::parse(text, &mut diags).expect("valid TOML");
        let overrides = super::super::Overrides::default();
        let plan = super::super::compile(&parsed, None, &overrides, inputs, &mut diags);
        let source = crate::diag::SourceFile::new("s.toml", text.to_string());
        (
            plan,
            diags.items().iter().map(|d| source.render(d)).collect(),
        )
    }

    /// `s.toml:LINE:COLUMN: error: ` where `needle` starts in `text`.
    fn error_at(text: &str, needle: &str) -> String {
        let source = crate::diag::SourceFile::new("s.toml", text.to_string());
        let at = source.line_col(text.find(needle).expect("the needle is in the text"));
        format!("s.toml:{}:{}: error: ", at.line, at.column)
    }

    fn agent(folder: &Path) -> Inputs {
        Inputs {
            env: EnvVars::allowlist(
                ["API_TOKEN".to_string()],
                [
                    ("API_TOKEN".to_string(), "t0p-s3cret".to_string()),
                    ("HOME".to_string(), "/root".to_string()),
                ],
            ),
            files: Files::confined(folder).unwrap(),
            unset_env: Severity::Error,
        }
    }

    #[test]
    fn an_agent_compile_refuses_a_feeder_outside_its_folder_at_the_file_value() {
        let (top, folder) = folders();
        std::os::unix::fs::symlink(top.path().join("outside.csv"), folder.join("link.csv"))
            .unwrap();
        let outside = top.path().join("outside.csv").display().to_string();
        for (file, why) in [
            ("/etc/passwd", "absolute paths are not allowed"),
            (outside.as_str(), "absolute paths are not allowed"),
            ("../outside.csv", "`..` leads outside the scenario folder"),
            (
                "sub/../../outside.csv",
                "`..` leads outside the scenario folder",
            ),
            (
                "link.csv",
                "the path leads outside the scenario folder through a symbolic link",
            ),
        ] {
            let text = scenario(file, "/");
            let (plan, problems) = compile_with(&text, &agent(&folder));
            assert!(plan.is_none(), "{file} was read");
            let expected = format!(
                "{}data file `{file}`: {why}",
                error_at(&text, &format!("{file:?}"))
            );
            assert_eq!(problems.len(), 1, "{problems:#?}");
            assert!(problems[0].starts_with(&expected), "{file}: {problems:#?}");
            assert!(!problems[0].contains("secret"), "{problems:#?}");
        }
        let (plan, problems) =
            compile_with(&scenario("data.csv", "/{{ rows.a }}"), &agent(&folder));
        assert!(plan.is_some() && problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn an_agent_compile_refuses_a_variable_outside_the_allowlist_at_the_template() {
        let (_top, folder) = folders();
        let text = scenario("data.csv", "/{{ rows.a }}/{{ env.HOME }}");
        let (plan, problems) = compile_with(&text, &agent(&folder));
        assert!(plan.is_none());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let expected = format!(
            "{}path: environment variable `HOME` is not allowed here (only `API_TOKEN` is; start the server with `--allow-env HOME` to allow it)",
            error_at(&text, "\"/{{ rows")
        );
        assert_eq!(problems[0], expected);
        assert!(!problems[0].contains("/root"));

        let (_, problems) = compile_with(
            &scenario("data.csv", "/{{ env.API_TOKN }}"),
            &agent(&folder),
        );
        assert!(
            problems[0].ends_with("; did you mean `env.API_TOKEN`?"),
            "{problems:#?}"
        );

        // An allowed variable compiles, and templates see nothing else.
        let (plan, problems) = compile_with(
            &scenario("data.csv", "/{{ env.API_TOKEN }}"),
            &agent(&folder),
        );
        let plan = plan.unwrap_or_else(|| panic!("{problems:#?}"));
        assert!(plan
            .globals
            .env
            .get_attr("API_TOKEN")
            .is_ok_and(|v| !v.is_undefined()));
        assert!(plan
            .globals
            .env
            .get_attr("HOME")
            .is_ok_and(|v| v.is_undefined()));
    }

    #[test]
    fn an_in_memory_compile_reads_the_feeder_and_ca_file_it_was_given() {
        let files = Files::in_memory([
            ("data/rows.csv".to_string(), b"a\n1\n2\n".to_vec()),
            ("ca.pem".to_string(), b"PEM".to_vec()),
        ]);
        let inputs = Inputs {
            env: EnvVars::all([]),
            files,
            unset_env: Severity::Error,
        };
        let text = scenario("data/rows.csv", "/{{ rows.a }}")
            .replace("\"demo\"", "\"https://127.0.0.1:9\"\nca_file = \"ca.pem\"");
        let (plan, problems) = compile_with(&text, &inputs);
        let plan = plan.unwrap_or_else(|| panic!("{problems:#?}"));
        assert_eq!(plan.feeders[0].rows.len(), 2);
        assert_eq!(
            plan.target.ca_file.as_ref().map(|c| c.pem.as_slice()),
            Some(&b"PEM"[..])
        );

        let text = scenario("rows.csv", "/{{ rows.a }}");
        let (plan, problems) = compile_with(&text, &inputs);
        assert!(plan.is_none());
        assert!(
            problems[0].starts_with(&format!(
                "{}data file `rows.csv`: not found among the files sent with the scenario",
                error_at(&text, "\"rows.csv")
            )),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_cli_compile_reads_relative_files_anywhere_and_the_whole_environment() {
        let (_top, folder) = folders();
        let scenario_file = folder.join("sub").join("s.toml");
        let text = scenario("../../outside.csv", "/{{ rows.secret }}/{{ env.PATH }}");
        let inputs = Inputs::for_cli(Some(&scenario_file), Severity::Error);
        let (plan, problems) = compile_with(&text, &inputs);
        let plan = plan.unwrap_or_else(|| panic!("{problems:#?}"));
        assert!(problems.is_empty(), "{problems:#?}");
        assert_eq!(plan.feeders[0].rows.len(), 1);
        assert!(plan
            .globals
            .env
            .get_attr("PATH")
            .is_ok_and(|v| !v.is_undefined()));

        // An unset variable: a warning for `validate`, an error for `run`,
        // with a close name suggested.
        let text = scenario("../../outside.csv", "/{{ env.PATH_UNSET_FOR_THIS_TEST }}");
        let (plan, problems) = compile_with(&text, &inputs);
        assert!(plan.is_none());
        assert!(
            problems[0].starts_with(&error_at(&text, "\"/{{ env")),
            "{problems:#?}"
        );
        let warn = Inputs::for_cli(Some(&scenario_file), Severity::Warning);
        let (plan, problems) = compile_with(&text, &warn);
        assert!(plan.is_some());
        assert!(problems[0].contains(": warning: path: environment variable `PATH_UNSET_FOR_THIS_TEST` is not set, so a run would refuse it"), "{problems:#?}");
    }

    #[test]
    fn an_agent_compile_refuses_a_file_over_the_cap_at_the_file_value() {
        let (_top, folder) = folders();
        // Sparse: the size is what is checked, before any byte is read.
        let big = std::fs::File::create(folder.join("big.csv")).unwrap();
        big.set_len(MAX_CONFINED_FILE_BYTES + 1).unwrap();
        let text = scenario("big.csv", "/");
        let (plan, problems) = compile_with(&text, &agent(&folder));
        assert!(plan.is_none());
        let expected = format!(
            "{}data file `big.csv`: the file is over the limit of 16 MiB per file",
            error_at(&text, "\"big.csv\"")
        );
        assert!(problems[0].starts_with(&expected), "{problems:#?}");
        // The command line reads it (and finds it is no CSV).
        let cli = Inputs {
            files: Files::relative_to(&folder),
            ..agent(&folder)
        };
        let (_, problems) = compile_with(&text, &cli);
        assert!(!problems[0].contains("limit"), "{problems:#?}");
    }

    #[test]
    fn a_confined_compile_reads_at_most_the_total_cap() {
        let (_top, folder) = folders();
        let files = Files::confined(&folder).unwrap();
        let mut budget = ReadBudget {
            used: MAX_CONFINED_TOTAL_BYTES - 5,
        };
        // `a\n1\n` is 4 bytes: it fits, and then nothing more does.
        assert_eq!(
            files.read_counted("data.csv", &mut budget).unwrap(),
            b"a\n1\n"
        );
        assert_eq!(budget.used, MAX_CONFINED_TOTAL_BYTES - 1);
        let why = refused(files.read_counted("data.csv", &mut budget));
        assert!(why.contains("past the limit of 64 MiB together"), "{why}");
        // Only a confined resolver counts.
        let mut budget = ReadBudget {
            used: MAX_CONFINED_TOTAL_BYTES,
        };
        let relative = Files::relative_to(&folder);
        assert!(relative.read_counted("data.csv", &mut budget).is_ok());
    }

    #[test]
    fn feeders_naming_one_file_share_one_read_of_it() {
        let (_top, folder) = folders();
        let mut text =
            String::from("[target]\nbase_url = \"demo\"\n[load]\nusers = 1\nduration = \"1s\"\n");
        for i in 0..100 {
            text.push_str(&format!(
                "[[data]]\nname = \"rows{i}\"\nfile = \"data.csv\"\n"
            ));
        }
        text.push_str("[[flow]]\n  [[flow.step]]\n  path = \"/{{ rows0.a }}\"\n");
        let (plan, problems) = compile_with(&text, &agent(&folder));
        let plan = plan.unwrap_or_else(|| panic!("{problems:#?}"));
        assert_eq!(plan.feeders.len(), 100);
        let first = &plan.feeders[0].rows;
        assert!(plan.feeders.iter().all(|f| Arc::ptr_eq(&f.rows, first)));
    }
}
