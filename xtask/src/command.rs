//! External commands as plain data. Every cluster and image task first builds its plan (a list of
//! [`Step`]s) without side effects, so unit tests assert exactly what would run; only
//! [`run_plan`] executes anything.

use std::fmt;
use std::process::Stdio;

use anyhow::{Context as _, bail};
use xshell::Shell;

/// One external command: program, arguments and extra environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandLine {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
}

impl CommandLine {
    pub(crate) fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub(crate) fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub(crate) fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn to_std(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.program);
        command.args(&self.args);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }
}

/// Shell-quoted, with the extra environment first, so an echoed command can be pasted into a shell.
impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = self
            .env
            .iter()
            .map(|(key, value)| format!("{key}={}", quote(value)))
            .chain(std::iter::once(quote(&self.program)))
            .chain(self.args.iter().map(|arg| quote(arg)));
        let mut first = true;
        for word in words {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(&word)?;
        }
        Ok(())
    }
}

fn quote(word: &str) -> String {
    // Quoting only fails on a NUL byte, which no argument built here contains; show it raw then.
    shlex::try_quote(word).map_or_else(|_| word.to_owned(), |quoted| quoted.into_owned())
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Run a command; a failure stops the plan.
    Run(CommandLine),
    /// `producer | consumer`: the producer's stdout streams into the consumer's stdin (used for
    /// `docker save | ctr images import -`, where the archive can be hundreds of megabytes).
    Pipe {
        producer: CommandLine,
        consumer: CommandLine,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Run(command) => command.fmt(f),
            Step::Pipe { producer, consumer } => write!(f, "{producer} | {consumer}"),
        }
    }
}

/// Runs the steps in order, echoing each one first; stops at the first failure.
pub(crate) fn run_plan(steps: &[Step]) -> anyhow::Result<()> {
    let shell = Shell::new().context("starting a shell")?;
    for step in steps {
        println!("$ {step}");
        match step {
            Step::Run(command) => run(&shell, command)?,
            Step::Pipe { producer, consumer } => run_pipe(producer, consumer)?,
        }
    }
    Ok(())
}

fn run(shell: &Shell, command: &CommandLine) -> anyhow::Result<()> {
    shell
        .cmd(&command.program)
        .args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .quiet()
        .run()
        .with_context(|| format!("`{command}` failed"))
}

/// A query whose output decides the plan (`kind get clusters`); not echoed, stdout returned.
pub(crate) fn read(command: &CommandLine) -> anyhow::Result<String> {
    let shell = Shell::new().context("starting a shell")?;
    shell
        .cmd(&command.program)
        .args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .quiet()
        .read()
        .with_context(|| format!("`{command}` failed"))
}

/// xshell 0.2 has no pipes, so this one step uses std::process directly.
fn run_pipe(producer: &CommandLine, consumer: &CommandLine) -> anyhow::Result<()> {
    let mut producing = producer
        .to_std()
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{producer}`"))?;
    let stream = producing
        .stdout
        .take()
        .with_context(|| format!("`{producer}` has no stdout"))?;
    let consumed = consumer.to_std().stdin(Stdio::from(stream)).status();
    // Wait for the producer even when the consumer could not start, so no child is left behind.
    let produced = producing
        .wait()
        .with_context(|| format!("waiting for `{producer}`"))?;
    let consumed = consumed.with_context(|| format!("starting `{consumer}`"))?;
    if !produced.success() {
        bail!("`{producer}` failed: {produced}");
    }
    if !consumed.success() {
        bail!("`{consumer}` failed: {consumed}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_words_and_puts_env_first() {
        let command = CommandLine::new("kubectl")
            .args(["patch", "service", "gateway-proxy", "-p"])
            .arg(r#"{"spec": {"type": "LoadBalancer"}}"#)
            .env("DOCKER_BUILDKIT", "1");
        assert_eq!(
            command.to_string(),
            r#"DOCKER_BUILDKIT=1 kubectl patch service gateway-proxy -p '{"spec": {"type": "LoadBalancer"}}'"#
        );
    }

    #[test]
    fn pipe_displays_like_a_shell_pipeline() {
        let step = Step::Pipe {
            producer: CommandLine::new("docker").args(["save", "a:latest"]),
            consumer: CommandLine::new("docker").args(["exec", "-i", "k3s", "ctr"]),
        };
        assert_eq!(
            step.to_string(),
            "docker save a:latest | docker exec -i k3s ctr"
        );
    }

    #[test]
    fn run_plan_runs_steps_in_order_and_stops_at_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let log = log.to_str().unwrap();
        let steps = [
            Step::Run(CommandLine::new("sh").args(["-c", &format!("echo one >> {log}")])),
            Step::Run(CommandLine::new("sh").args(["-c", "exit 3"])),
            Step::Run(CommandLine::new("sh").args(["-c", &format!("echo three >> {log}")])),
        ];
        let error = run_plan(&steps).unwrap_err();
        assert!(
            format!("{error:#}").contains("`sh -c 'exit 3'` failed"),
            "{error:#}"
        );
        assert_eq!(std::fs::read_to_string(log).unwrap(), "one\n");
    }

    #[test]
    fn run_passes_the_extra_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("printf %s \"$COLORMESH_TEST_VALUE\" > {}", out.display());
        let steps = [Step::Run(
            CommandLine::new("sh")
                .args(["-c", &script])
                .env("COLORMESH_TEST_VALUE", "from the plan"),
        )];
        run_plan(&steps).unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), "from the plan");
    }

    #[test]
    fn pipe_streams_the_producer_into_the_consumer() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let steps = [Step::Pipe {
            producer: CommandLine::new("sh").args(["-c", "printf 'archive bytes'"]),
            consumer: CommandLine::new("sh").args(["-c", &format!("cat > {}", out.display())]),
        }];
        run_plan(&steps).unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), "archive bytes");
    }

    #[test]
    fn pipe_fails_when_either_side_fails() {
        let failing_producer = [Step::Pipe {
            producer: CommandLine::new("sh").args(["-c", "exit 4"]),
            consumer: CommandLine::new("sh").args(["-c", "cat > /dev/null"]),
        }];
        let error = run_plan(&failing_producer).unwrap_err();
        assert!(
            error.to_string().contains("`sh -c 'exit 4'` failed"),
            "{error}"
        );

        let failing_consumer = [Step::Pipe {
            producer: CommandLine::new("sh").args(["-c", "printf x"]),
            consumer: CommandLine::new("sh").args(["-c", "cat > /dev/null; exit 5"]),
        }];
        let error = run_plan(&failing_consumer).unwrap_err();
        assert!(error.to_string().contains("exit 5"), "{error}");
    }

    #[test]
    fn read_returns_stdout() {
        let listed =
            read(&CommandLine::new("sh").args(["-c", "printf 'kind\\ncolormesh\\n'"])).unwrap();
        assert_eq!(listed, "kind\ncolormesh");
    }
}
