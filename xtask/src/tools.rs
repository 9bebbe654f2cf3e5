//! The command-line tools the cluster paths drive, and one up-front check that they are all there,
//! so a run fails before it has created half a cluster rather than in the middle.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use xshell::Shell;

/// A CLI used by `cluster`, `images` or the cluster backends of `e2e`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tool {
    Docker,
    Kind,
    Kubectl,
    Eksctl,
    Helm,
    Glooctl,
    Aws,
}

/// What a tool is called, how to ask it whether it runs, and where to get it.
struct ToolInfo {
    program: &'static str,
    /// Arguments of a probe that needs no cluster, daemon or credentials.
    probe: &'static [&'static str],
    install: &'static str,
}

impl Tool {
    #[cfg(test)]
    const ALL: [Tool; 7] = [
        Tool::Docker,
        Tool::Kind,
        Tool::Kubectl,
        Tool::Eksctl,
        Tool::Helm,
        Tool::Glooctl,
        Tool::Aws,
    ];

    fn info(self) -> ToolInfo {
        match self {
            Tool::Docker => ToolInfo {
                program: "docker",
                probe: &["--version"],
                install: "https://docs.docker.com/engine/install/",
            },
            Tool::Kind => ToolInfo {
                program: "kind",
                probe: &["version"],
                install: "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
            },
            Tool::Kubectl => ToolInfo {
                program: "kubectl",
                probe: &["version", "--client"],
                install: "https://kubernetes.io/docs/tasks/tools/#kubectl",
            },
            Tool::Eksctl => ToolInfo {
                program: "eksctl",
                probe: &["version"],
                install: "https://eksctl.io/installation/",
            },
            Tool::Helm => ToolInfo {
                program: "helm",
                probe: &["version", "--short"],
                install: "https://helm.sh/docs/intro/install/",
            },
            // `glooctl version` also asks the cluster for the server version; `--help` does not.
            Tool::Glooctl => ToolInfo {
                program: "glooctl",
                probe: &["--help"],
                install: "curl -sL https://run.solo.io/gloo/install | sh",
            },
            Tool::Aws => ToolInfo {
                program: "aws",
                probe: &["--version"],
                install: "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
            },
        }
    }

    pub(crate) fn program(self) -> &'static str {
        self.info().program
    }

    pub(crate) fn install_hint(self) -> &'static str {
        self.info().install
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

/// Why one tool cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unusable {
    NotOnPath(Tool),
    ProbeFailed {
        tool: Tool,
        path: PathBuf,
        detail: String,
    },
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::NotOnPath(tool) => write!(f, "{tool} ({})", tool.install_hint()),
            Unusable::ProbeFailed { tool, path, detail } => write!(
                f,
                "{tool} ({} does not run: `{tool} {}` {detail}; reinstall: {})",
                path.display(),
                tool.info().probe.join(" "),
                tool.install_hint()
            ),
        }
    }
}

/// Every tool that is missing or broken, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing tools: {}", .unusable.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
pub(crate) struct MissingTools {
    pub(crate) unusable: Vec<Unusable>,
}

/// Checks that every tool is on `PATH` and answers its probe.
pub(crate) fn require(tools: &[Tool]) -> Result<(), MissingTools> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    require_in(&path, tools)
}

/// [`require`] against an explicit `PATH` value (tests pass a directory of fake tools).
pub(crate) fn require_in(path: &OsStr, tools: &[Tool]) -> Result<(), MissingTools> {
    let mut wanted = tools.to_vec();
    wanted.sort();
    wanted.dedup();
    let unusable: Vec<Unusable> = wanted
        .into_iter()
        .filter_map(|tool| check(path, tool).err())
        .collect();
    if unusable.is_empty() {
        Ok(())
    } else {
        Err(MissingTools { unusable })
    }
}

fn check(path: &OsStr, tool: Tool) -> Result<PathBuf, Unusable> {
    let found = find_executable(path, tool.program()).ok_or(Unusable::NotOnPath(tool))?;
    let probe_failed = |detail: String| Unusable::ProbeFailed {
        tool,
        path: found.clone(),
        detail,
    };
    let shell = Shell::new().map_err(|e| probe_failed(format!("could not start: {e}")))?;
    let output = shell
        .cmd(&found)
        .args(tool.info().probe)
        // The probe sees the same PATH it was found on (wrapper scripts look things up too).
        .env("PATH", path)
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| probe_failed(format!("could not start: {e}")))?;
    if output.status.success() {
        Ok(found)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first_line = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        Err(probe_failed(if first_line.is_empty() {
            format!("exited with {}", output.status)
        } else {
            format!("exited with {}: {}", output.status, first_line.trim())
        }))
    }
}

/// The first executable file named `program` in the directories of `path`.
fn find_executable(path: &OsStr, program: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    /// A directory of fake tools: each prints a version and exits with the given status.
    struct FakeTools {
        dir: tempfile::TempDir,
    }

    impl FakeTools {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn add(&self, program: &str, script: &str) -> &Self {
            let path = self.dir.path().join(program);
            std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            self
        }

        fn working(&self, tool: Tool) -> &Self {
            self.add(tool.program(), "echo fake 1.0")
        }

        fn path(&self) -> OsString {
            self.dir.path().as_os_str().to_owned()
        }
    }

    #[test]
    fn every_tool_has_a_program_probe_and_install_hint() {
        for tool in Tool::ALL {
            let info = tool.info();
            assert!(!info.program.is_empty());
            assert!(!info.probe.is_empty(), "{tool}");
            assert!(
                info.install.contains("https://"),
                "{tool}: install hint {:?}",
                info.install
            );
        }
    }

    #[test]
    fn all_present_and_working_passes() {
        let fakes = FakeTools::new();
        for tool in Tool::ALL {
            fakes.working(tool);
        }
        require_in(&fakes.path(), &Tool::ALL).unwrap();
    }

    #[test]
    fn every_missing_tool_is_named_in_one_error_with_its_install_hint() {
        let fakes = FakeTools::new();
        fakes.working(Tool::Docker).working(Tool::Kubectl);
        let error = require_in(
            &fakes.path(),
            &[Tool::Helm, Tool::Docker, Tool::Kind, Tool::Kubectl],
        )
        .unwrap_err();
        assert_eq!(
            error.unusable,
            [
                Unusable::NotOnPath(Tool::Kind),
                Unusable::NotOnPath(Tool::Helm)
            ]
        );
        assert_eq!(
            error.to_string(),
            "missing tools: kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation), \
             helm (https://helm.sh/docs/intro/install/)"
        );
    }

    #[test]
    fn a_tool_whose_probe_fails_is_reported_with_its_path_and_stderr() {
        let fakes = FakeTools::new();
        fakes.add(
            "kind",
            "echo 'kind: cannot execute binary file' >&2; exit 126",
        );
        let error = require_in(&fakes.path(), &[Tool::Kind]).unwrap_err();
        let [Unusable::ProbeFailed { tool, path, detail }] = error.unusable.as_slice() else {
            panic!("{error:?}");
        };
        assert_eq!(*tool, Tool::Kind);
        assert_eq!(path, &fakes.dir.path().join("kind"));
        assert!(detail.contains("cannot execute binary file"), "{detail}");
        assert!(error.to_string().contains("`kind version`"), "{error}");
    }

    #[test]
    fn the_probe_gets_the_tool_specific_arguments() {
        let fakes = FakeTools::new();
        // Succeeds only for exactly `kubectl version --client`, the probe that needs no cluster.
        fakes.add(
            "kubectl",
            r#"[ "$1 $2" = "version --client" ] || { echo "unexpected: $*" >&2; exit 1; }"#,
        );
        require_in(&fakes.path(), &[Tool::Kubectl]).unwrap();
    }

    #[test]
    fn a_non_executable_file_does_not_count() {
        let fakes = FakeTools::new();
        let path = fakes.dir.path().join("helm");
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = require_in(&fakes.path(), &[Tool::Helm]).unwrap_err();
        assert_eq!(error.unusable, [Unusable::NotOnPath(Tool::Helm)]);
    }

    #[test]
    fn later_path_entries_are_searched_and_duplicates_reported_once() {
        let empty = FakeTools::new();
        let fakes = FakeTools::new();
        fakes.working(Tool::Eksctl);
        let path = std::env::join_paths([empty.dir.path(), fakes.dir.path()]).unwrap();
        require_in(&path, &[Tool::Eksctl, Tool::Eksctl]).unwrap();
        let error = require_in(&path, &[Tool::Aws, Tool::Aws]).unwrap_err();
        assert_eq!(error.unusable, [Unusable::NotOnPath(Tool::Aws)]);
    }
}
