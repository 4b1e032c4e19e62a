//! Tidy checks: what humans forget, checked by `cargo test`.
//!
//! Every `.rs` file opens with a `//!` comment, non-test code carries no
//! debugging or placeholder macros, and the files in `units/` and
//! `etc/sysusers.d/` pass systemd's own checkers. The systemd checks run
//! `systemd-analyze` and `systemd-sysusers`, which need no running systemd;
//! when a tool is missing the test fails rather than passing quietly.
//!
//! These checks read the source tree and run local tools only: they start no
//! daemon and touch nothing outside temp dirs.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Macros that must not ship in non-test code. Built with `concat!` so that
/// this file does not contain the needles it looks for.
const FORBIDDEN_MACROS: [&str; 3] = [
    concat!("dbg", "!("),
    concat!("todo", "!("),
    concat!("unimplemented", "!("),
];

/// The worst exposure `systemd-analyze security` may give a unit in `units/`,
/// on its 0–100 scale (20 means 2.0).
const SECURITY_THRESHOLD: u32 = 20;

/// Informational lines that `systemd-sysusers --dry-run` prints on stderr;
/// any other stderr line is a warning.
const SYSUSERS_INFO_PREFIXES: [&str; 3] = ["Creating group ", "Creating user ", "Would write "];

#[test]
fn every_rs_file_opens_with_a_module_doc() {
    let root = repo_root();
    let mut offenders = Vec::new();
    for path in rust_files(&root) {
        let text = read(&root.join(&path));
        let first = text.lines().map(str::trim).find(|line| !line.is_empty());
        if !first.is_some_and(|line| line.starts_with("//!")) {
            offenders.push(path.display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "these files must start with a `//!` comment saying what the module owns:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn no_debugging_or_placeholder_macros_outside_tests() {
    let root = repo_root();
    let mut offenders = Vec::new();
    for path in rust_files(&root) {
        if is_test_file(&path) {
            continue;
        }
        let text = read(&root.join(&path));
        for (index, line) in text.lines().enumerate() {
            if line.trim() == "#[cfg(test)]" {
                break;
            }
            for needle in FORBIDDEN_MACROS {
                if line.contains(needle) {
                    offenders.push(format!("{}:{}: {needle}", path.display(), index + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "remove these from non-test code:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let root = repo_root();
    let units = unit_copies(&root);
    let files = files_in(units.path());
    assert!(!files.is_empty(), "units/ holds no unit files");
    let output = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(&files)
        .current_dir(units.path()));
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "systemd-analyze verify rejected units/ ({}); unknown keys are only warnings there, \
         so any stderr fails this test:\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn services_pass_systemd_analyze_security() {
    let root = repo_root();
    let copies = tempfile::tempdir().expect("create a temp dir");
    let mut checked = 0;
    for source in files_in(&root.join("units")) {
        if source.extension() != Some(OsStr::new("service")) {
            continue;
        }
        let copy = copies
            .path()
            .join(source.file_name().expect("a unit file has a name"));
        fs::copy(&source, &copy)
            .unwrap_or_else(|err| panic!("copy {} to {}: {err}", source.display(), copy.display()));
        let output = run(Command::new("systemd-analyze")
            .arg("security")
            .arg("--offline=true")
            .arg(format!("--threshold={SECURITY_THRESHOLD}"))
            .arg(&copy));
        assert!(
            output.status.success(),
            "{} is more exposed than {SECURITY_THRESHOLD} (i.e. {}.{}) allows ({}):\n{}{}",
            source.display(),
            SECURITY_THRESHOLD / 10,
            SECURITY_THRESHOLD % 10,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        checked += 1;
    }
    assert!(checked > 0, "units/ holds no .service file");
}

#[test]
fn sysusers_file_passes_systemd_sysusers() {
    let root = repo_root();
    let sysroot = tempfile::tempdir().expect("create a temp dir");
    // The path must be absolute: systemd-sysusers silently ignores a relative
    // one and exits 0.
    let conf = root.join("etc/sysusers.d/center.conf");
    assert!(
        conf.is_absolute() && conf.is_file(),
        "{} is missing",
        conf.display()
    );
    let output = run(Command::new("systemd-sysusers")
        .arg("--dry-run")
        .arg(format!("--root={}", sysroot.path().display()))
        .arg(&conf));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| {
            !SYSUSERS_INFO_PREFIXES
                .iter()
                .any(|prefix| line.starts_with(prefix))
        })
        .collect();
    assert!(
        output.status.success() && warnings.is_empty(),
        "systemd-sysusers rejected {} ({}):\n{}",
        conf.display(),
        output.status,
        stderr
    );
}

/// The workspace root: the parent of this package's directory.
fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("the e2e package lives inside the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `root`, relative to it and sorted. Skips `.git`,
/// every directory named `target` (so `target/` and `fuzz/target/` too), and
/// symbolic links.
fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("read directory {}: {err}", dir.display()));
        for entry in entries {
            let entry =
                entry.unwrap_or_else(|err| panic!("read directory {}: {err}", dir.display()));
            let file_type = entry.file_type().expect("read a directory entry's type");
            let path = entry.path();
            let name = entry.file_name();
            if file_type.is_dir() {
                if name != "target" && name != ".git" {
                    pending.push(path);
                }
            } else if file_type.is_file() && path.extension() == Some(OsStr::new("rs")) {
                let relative = path.strip_prefix(root).expect("walked from root");
                found.push(relative.to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// Whether a file (relative to the root) is test code: it lies under a
/// `tests` directory or is named `tests.rs`.
fn is_test_file(path: &Path) -> bool {
    let in_tests_dir = path
        .parent()
        .is_some_and(|dir| dir.components().any(|c| c.as_os_str() == "tests"));
    in_tests_dir || path.file_name() == Some(OsStr::new("tests.rs"))
}

/// Copies every file of `units/` into a temp dir, with each `ExecStart=`
/// binary replaced by the workspace's debug build of the same name, because
/// `systemd-analyze verify` checks that the binary exists.
fn unit_copies(root: &Path) -> tempfile::TempDir {
    let bin_dir = target_dir(root).join("debug");
    let copies = tempfile::tempdir().expect("create a temp dir");
    let mut missing = Vec::new();
    for source in files_in(&root.join("units")) {
        let mut text = String::new();
        for line in read(&source).lines() {
            match line.strip_prefix("ExecStart=") {
                Some(command) => {
                    let (binary, rest) = rewrite_exec_start(command, root, &bin_dir);
                    if !binary.is_file() {
                        missing.push(binary.display().to_string());
                    }
                    text.push_str(&format!("ExecStart={}{rest}\n", binary.display()));
                }
                None => {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        let copy = copies
            .path()
            .join(source.file_name().expect("a unit file has a name"));
        fs::write(&copy, text).unwrap_or_else(|err| panic!("write {}: {err}", copy.display()));
    }
    assert!(
        missing.is_empty(),
        "the units start binaries that are not built; run cargo build --workspace --bins first \
         (missing: {})",
        missing.join(", ")
    );
    copies
}

/// Splits an `ExecStart=` value into the binary at `bin_dir` with the same
/// file name, if the workspace builds it (`crates/NAME/src/main.rs`; others,
/// such as Debian's slapd, stay where the unit says), and the rest of the
/// line (its arguments). Prefixes such as `-` or `+` are dropped: the copy
/// is only checked, never run.
fn rewrite_exec_start(command: &str, root: &Path, bin_dir: &Path) -> (PathBuf, String) {
    let command = command.trim_start_matches(['-', '@', ':', '+', '!']);
    let (program, rest) = match command.find(char::is_whitespace) {
        Some(end) => command.split_at(end),
        None => (command, ""),
    };
    let name = Path::new(program)
        .file_name()
        .unwrap_or_else(|| panic!("ExecStart={command} names no binary"));
    let built = root.join("crates").join(name).join("src/main.rs").is_file();
    let binary = if built {
        bin_dir.join(name)
    } else {
        PathBuf::from(program)
    };
    (binary, rest.to_string())
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (relative to the
/// root if relative), else `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// The regular files directly in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|err| panic!("read directory {}: {err}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap_or_else(|err| panic!("read directory {}: {err}", dir.display())))
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// Runs a checker, failing the test with a clear message when the tool is not
/// installed.
fn run(command: &mut Command) -> Output {
    match command.output() {
        Ok(output) => output,
        Err(err) if err.kind() == io::ErrorKind::NotFound => panic!(
            "{} is not installed; install systemd (scripts/test does) to run the tidy checks",
            command.get_program().to_string_lossy()
        ),
        Err(err) => panic!("run {}: {err}", command.get_program().to_string_lossy()),
    }
}
