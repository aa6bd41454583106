//! The real `runnel` binary, run as a user runs it: its exit code and what
//! it printed.

use std::io::Write;
use std::process::{Command, Stdio};

/// What one run of the binary left behind.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// The `error: ...` lines of a text-format run.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| line.starts_with("error: "))
            .collect()
    }
}

/// Runs `runnel ARGS` with `env` set over an environment cleared of the
/// variables the binary reads, and waits for it to exit.
pub fn runnel(args: &[&str], env: &[(&str, &str)]) -> Ran {
    runnel_with_input(args, env, None)
}

/// [`runnel`] with `input` on its stdin (nothing when `None`).
pub fn runnel_with_input(args: &[&str], env: &[(&str, &str)], input: Option<&[u8]>) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runnel"));
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    for variable in [
        "RUNNEL_LOG_FORMAT",
        "RUNNEL_LOG",
        "RUNNEL_CONFIG",
        "RUNNEL_BROKERS",
        "RUNNEL_INSTANCE_ID",
        "RUNNEL_KAFKA_SASL_PASSWORD",
        "RUNNEL_KAFKA_SSL_KEY_PASSWORD",
        "NO_COLOR",
    ] {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("running runnel");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A command that fails before reading its input closes it.
        match stdin.write_all(input) {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                panic!("writing runnel's stdin: {error}")
            }
            _ => {}
        }
    }
    let output = child.wait_with_output().expect("waiting for runnel");
    Ran {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
