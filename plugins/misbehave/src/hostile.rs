//! What a hostile plugin tries: to reach past its sandbox (files, the
//! environment, the network) and to write what its pipeline does not allow
//! (other topics, the host's headers, a flood of outputs).

use runnel_plugin_sdk::{Failure, Message, Outputs};

/// Commands that look outside the sandbox, answered with what they found:
/// `ok:...` when they got through, `err:<error>` when refused.
pub fn probe(command: &str) -> Option<String> {
    if command == "env" {
        let variables: Vec<String> = std::env::vars()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        return Some(format!("env:{}:{}", variables.len(), variables.join(",")));
    }
    let (name, argument) = command.split_once(':')?;
    let found = match name {
        "read-file" => std::fs::read_to_string(argument),
        "list-dir" => std::fs::read_dir(argument).map(|entries| entries.count().to_string()),
        "connect" => std::net::TcpStream::connect(argument).map(|_| "connected".to_owned()),
        "resolve" => std::net::ToSocketAddrs::to_socket_addrs(&(argument, 80))
            .map(|addresses| addresses.count().to_string()),
        _ => return None,
    };
    Some(match found {
        Ok(found) => format!("ok:{found}"),
        Err(error) => format!("err:{error}"),
    })
}

/// Commands that write outputs of their own making; `None` for any other.
pub fn write(command: &str, message: &Message, out: &mut Outputs) -> Option<Result<(), Failure>> {
    if command == "forge-headers" {
        out.send(message.value())
            .header("runnel-error", "forged by the plugin")
            .header("Runnel-Plugin-Version", "9.9.9")
            .header("runnel-source-offset", "0")
            .header("trace-id", "kept");
        return Some(Ok(()));
    }
    let (name, argument) = command.split_once(':')?;
    match name {
        "write-to" => {
            out.send(message.value()).topic(argument);
            Some(Ok(()))
        }
        "fan-out" => Some(fan_out(argument, out)),
        _ => None,
    }
}

fn fan_out(count: &str, out: &mut Outputs) -> Result<(), Failure> {
    let count: u32 = count
        .parse()
        .map_err(|_| Failure::permanent(format!("misbehave: bad fan-out count `{count}`")))?;
    for _ in 0..count {
        out.send(b"x");
    }
    Ok(())
}
