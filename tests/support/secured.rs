//! A broker started with `broker.sh start --security sasl_ssl`: its clients'
//! listener speaks TLS with a certificate of a CA made for the run, and
//! SASL with SCRAM-SHA-512 or PLAIN users the script created.

use std::collections::HashMap;
use std::path::PathBuf;

use super::kafka::{Cluster, OwnBroker};

/// What `DIR/security.env` says.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The CA that signed the broker's certificate, PEM.
    pub ca_file: PathBuf,
    pub scram_username: String,
    pub scram_password: String,
    pub plain_username: String,
    pub plain_password: String,
}

/// A SASL mechanism the broker offers.
#[derive(Debug, Clone, Copy)]
pub enum Mechanism {
    ScramSha512,
    Plain,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::Plain => "PLAIN",
        }
    }
}

pub struct SecuredBroker {
    pub broker: OwnBroker,
    pub credentials: Credentials,
}

impl SecuredBroker {
    pub fn start() -> Self {
        let broker = OwnBroker::start_with(&["--security", "sasl_ssl"]);
        let text = std::fs::read_to_string(broker.dir().join("security.env"))
            .expect("broker.sh wrote security.env");
        let values: HashMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let value = |name: &str| {
            values
                .get(name)
                .unwrap_or_else(|| panic!("security.env has no {name}"))
                .to_string()
        };
        let credentials = Credentials {
            ca_file: PathBuf::from(value("CA_FILE")),
            scram_username: value("SCRAM_USERNAME"),
            scram_password: value("SCRAM_PASSWORD"),
            plain_username: value("PLAIN_USERNAME"),
            plain_password: value("PLAIN_PASSWORD"),
        };
        Self {
            broker,
            credentials,
        }
    }

    /// The user and password of `mechanism`.
    pub fn user(&self, mechanism: Mechanism) -> (&str, &str) {
        let c = &self.credentials;
        match mechanism {
            Mechanism::ScramSha512 => (&c.scram_username, &c.scram_password),
            Mechanism::Plain => (&c.plain_username, &c.plain_password),
        }
    }

    /// The librdkafka options of a client of `mechanism`'s user, the
    /// password left out.
    pub fn client_options(&self, mechanism: Mechanism) -> Vec<(String, String)> {
        let (username, _) = self.user(mechanism);
        [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", mechanism.name()),
            ("sasl.username", username),
            (
                "ssl.ca.location",
                &self.credentials.ca_file.to_string_lossy(),
            ),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
    }

    /// The broker as a test client of the SCRAM user reaches it.
    pub fn cluster(&self) -> Cluster {
        let mut options = self.client_options(Mechanism::ScramSha512);
        options.push((
            "sasl.password".into(),
            self.credentials.scram_password.clone(),
        ));
        Cluster {
            bootstrap: self.broker.cluster.bootstrap.clone(),
            options,
        }
    }
}
