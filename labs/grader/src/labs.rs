//! Finding the workspace and its labs, and turning the `<LAB>` argument into lab directories.
//!
//! A lab is a directory `labs/lab*/` of the workspace that holds a `points.toml`; its crate name
//! is its directory name. Users name a lab by its short id (`lab03`, the part before the first
//! `-`) or by its full name (`lab03-total-order`), or grade them all with `all`. Everything is
//! found from the file system, so a new lab needs no change to the grader.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::points::{self, Points};

/// One lab to grade.
#[derive(Debug, Clone)]
pub struct Lab {
    /// `<workspace>/labs/<name>`.
    pub dir: PathBuf,
    /// The directory name, which is also the crate name: `lab03-total-order`.
    pub name: String,
    /// Its validated `points.toml`.
    pub points: Points,
}

impl Lab {
    /// The short id: `lab03` for `lab03-total-order`.
    pub fn short_id(&self) -> &str {
        short_id(&self.name)
    }
}

/// The part of a lab name before its first `-`.
pub fn short_id(name: &str) -> &str {
    name.split_once('-').map_or(name, |(id, _)| id)
}

/// The workspace root: `--workspace` if given, else two levels above this crate's manifest
/// (`<root>/labs/grader`), which is where the grader was built from.
pub fn workspace_root(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    let root = match flag {
        Some(dir) => dir.to_path_buf(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    };
    let root = root
        .canonicalize()
        .with_context(|| format!("workspace {} not found", root.display()))?;
    if !root.join("labs").is_dir() {
        bail!(
            "{} has no labs/ directory (pass the workspace with --workspace DIR)",
            root.display()
        );
    }
    Ok(root)
}

/// Names of the directories `labs/lab*` that hold a `points.toml`, sorted.
pub fn discover(root: &Path) -> anyhow::Result<Vec<String>> {
    Ok(lab_dirs(root)?
        .into_iter()
        .filter(|name| root.join("labs").join(name).join("points.toml").is_file())
        .collect())
}

/// Names of all directories `labs/lab*`, with or without `points.toml`, sorted.
fn lab_dirs(root: &Path) -> anyhow::Result<Vec<String>> {
    let labs = root.join("labs");
    let entries =
        std::fs::read_dir(&labs).with_context(|| format!("cannot list {}", labs.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", labs.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with("lab") && entry.path().is_dir() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Resolves the `<LAB>` argument to labs, loading and checking each `points.toml`. Every error
/// here is a usage error.
pub fn select(root: &Path, arg: &str) -> anyhow::Result<Vec<Lab>> {
    let found = discover(root)?;
    if arg == "all" {
        if found.is_empty() {
            bail!(
                "no lab under {} has a points.toml",
                root.join("labs").display()
            );
        }
        return found.iter().map(|name| load(root, name)).collect();
    }

    // Accept `labs/lab03-x/` as well, as shell completion writes it.
    let wanted = arg.trim_end_matches('/');
    let wanted = wanted.strip_prefix("labs/").unwrap_or(wanted);
    let matches: Vec<String> = lab_dirs(root)?
        .into_iter()
        .filter(|name| name == wanted || short_id(name) == wanted)
        .collect();
    match matches.as_slice() {
        [name] => {
            if !root.join("labs").join(name).join("points.toml").is_file() {
                bail!(
                    "lab {name} has no points.toml yet, so it cannot be graded (labs found: {})",
                    listing(&found)
                );
            }
            Ok(vec![load(root, name)?])
        }
        [] => bail!("unknown lab {arg:?}; labs found: {}", listing(&found)),
        several => bail!(
            "{arg:?} names more than one lab ({}); give the full name",
            several.join(", ")
        ),
    }
}

fn listing(found: &[String]) -> String {
    if found.is_empty() {
        return "none (no labs/lab*/points.toml)".to_owned();
    }
    let mut items: Vec<String> = found
        .iter()
        .map(|name| format!("{} ({name})", short_id(name)))
        .collect();
    items.push("all".to_owned());
    items.join(", ")
}

fn load(root: &Path, name: &str) -> anyhow::Result<Lab> {
    let dir = root.join("labs").join(name);
    let path = dir.join("points.toml");
    let points = points::load(&path)?;
    if points.lab != name {
        bail!(
            "invalid {}: lab = {:?}, but the lab's directory (and crate) is {name:?}",
            path.display(),
            points.lab
        );
    }
    Ok(Lab {
        dir,
        name: name.to_owned(),
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points_toml(lab: &str) -> String {
        format!("lab = \"{lab}\"\ntitle = \"T\"\n[[test]]\nname = \"t1\"\npoints = 5\n")
    }

    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["lab01-log-store", "lab03-total-order", "lab02-draft"] {
            std::fs::create_dir_all(dir.path().join("labs").join(name)).expect("mkdir");
        }
        std::fs::create_dir_all(dir.path().join("labs/grader")).expect("mkdir");
        for name in ["lab01-log-store", "lab03-total-order"] {
            std::fs::write(
                dir.path().join("labs").join(name).join("points.toml"),
                points_toml(name),
            )
            .expect("write");
        }
        dir
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id("lab03-total-order"), "lab03");
        assert_eq!(short_id("lab03"), "lab03");
    }

    #[test]
    fn labs_are_found_by_short_or_full_name_and_all() {
        let ws = workspace();
        let root = ws.path();
        assert_eq!(
            discover(root).expect("discover"),
            ["lab01-log-store", "lab03-total-order"]
        );
        let by_id = select(root, "lab03").expect("lab03");
        assert_eq!(by_id.len(), 1);
        assert_eq!(by_id[0].name, "lab03-total-order");
        assert_eq!(by_id[0].short_id(), "lab03");
        let by_name = select(root, "lab01-log-store").expect("full name");
        assert_eq!(by_name[0].name, "lab01-log-store");
        let by_path = select(root, "labs/lab01-log-store/").expect("path");
        assert_eq!(by_path[0].name, "lab01-log-store");
        let all = select(root, "all").expect("all");
        let names: Vec<_> = all.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lab01-log-store", "lab03-total-order"]);
    }

    #[test]
    fn an_unknown_lab_lists_the_labs_found() {
        let ws = workspace();
        let err = format!("{:#}", select(ws.path(), "lab09").expect_err("unknown"));
        assert!(err.contains("unknown lab \"lab09\""), "{err}");
        assert!(err.contains("lab01 (lab01-log-store)"), "{err}");
        assert!(err.contains("lab03 (lab03-total-order)"), "{err}");
        let err = format!("{:#}", select(ws.path(), "grader").expect_err("not a lab"));
        assert!(err.contains("unknown lab"), "{err}");
        let err = format!("{:#}", select(ws.path(), "lab02").expect_err("no points"));
        assert!(err.contains("no points.toml"), "{err}");
    }

    #[test]
    fn a_points_file_for_another_crate_is_rejected() {
        let ws = workspace();
        std::fs::write(
            ws.path().join("labs/lab01-log-store/points.toml"),
            points_toml("lab01-other"),
        )
        .expect("write");
        let err = format!("{:#}", select(ws.path(), "lab01").expect_err("mismatch"));
        assert!(err.contains("lab01-other"), "{err}");
        // `all` checks every file before anything is built.
        assert!(select(ws.path(), "all").is_err());
    }

    #[test]
    fn the_default_workspace_is_the_one_the_grader_lives_in() {
        let root = workspace_root(None).expect("root");
        assert!(root.join("labs/grader/Cargo.toml").is_file());
    }
}
