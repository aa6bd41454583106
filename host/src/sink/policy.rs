//! What a pipeline's plugin may write: to which topics, how many outputs
//! and how many bytes per message. Checked on the plugin's answer before
//! anything of the message is sent, so a message whose outputs break the
//! policy sends none of them: it fails as permanent and is dead-lettered
//! with the reason, like any other failure.

use std::fmt;

use crate::runtime::OutputView;

/// The limits one pipeline's outputs are held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPolicy {
    /// Topics an output may name; `None` when outputs go to a Dapr output
    /// binding, where an output's topic means nothing.
    pub allowed_topics: Option<Vec<String>>,
    /// Outputs one message may produce.
    pub max_outputs: usize,
    /// Keys, values and headers of one message's outputs together.
    pub max_bytes: usize,
}

/// Which rule an answer broke: the label of
/// `runnel_outputs_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    Topic,
    Count,
    Bytes,
}

impl Breach {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Topic => "topic",
            Self::Count => "count",
            Self::Bytes => "bytes",
        }
    }
}

/// Why one message's outputs were refused, in words for the dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub breach: Breach,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl OutputPolicy {
    /// Checks one message's outputs, all of them, before any is sent.
    pub fn check<'a>(
        &self,
        outputs: impl ExactSizeIterator<Item = OutputView<'a>>,
    ) -> Result<(), Refusal> {
        let count = outputs.len();
        if count > self.max_outputs {
            return Err(Refusal {
                breach: Breach::Count,
                reason: format!(
                    "the plugin produced {count} outputs for one message; the pipeline allows \
                     {} (`limits.max_outputs_per_message`)",
                    self.max_outputs
                ),
            });
        }
        let mut bytes = 0;
        for (index, output) in outputs.enumerate() {
            if let (Some(topic), Some(allowed)) = (output.topic, &self.allowed_topics)
                && !allowed.iter().any(|name| name == topic)
            {
                return Err(Refusal {
                    breach: Breach::Topic,
                    reason: format!(
                        "output {index} names topic `{topic}`, which this pipeline may not write \
                         to (`allowed_output_topics`: {})",
                        listed(allowed)
                    ),
                });
            }
            bytes += output_bytes(&output);
        }
        if bytes > self.max_bytes {
            return Err(Refusal {
                breach: Breach::Bytes,
                reason: format!(
                    "the plugin's outputs for one message hold {bytes} bytes; the pipeline \
                     allows {} (`limits.max_output_mib_per_message`)",
                    self.max_bytes
                ),
            });
        }
        Ok(())
    }
}

/// What an output puts on the wire, near enough: key, value and headers.
fn output_bytes(output: &OutputView<'_>) -> usize {
    let headers: usize = output
        .headers
        .clone()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    output.key.map_or(0, <[u8]>::len) + output.value.len() + headers
}

fn listed(topics: &[String]) -> String {
    if topics.is_empty() {
        return "none".into();
    }
    topics
        .iter()
        .map(|topic| format!("`{topic}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{EncodedOutcomes, Outcome};
    use runnel_encoding::OutcomesWriter;

    /// One message's answer: outputs of `(topic, value)`, each with one
    /// 4-byte header.
    fn answer(outputs: &[(Option<&str>, &[u8])]) -> EncodedOutcomes {
        let mut writer = OutcomesWriter::with_capacity(1, 64);
        for (topic, value) in outputs {
            writer.send(value);
            writer.add_header("h", b"abc");
            if let Some(topic) = topic {
                writer.set_topic(topic);
            }
        }
        writer.finish_message(None);
        EncodedOutcomes::parse(writer.finish(), 1).expect("a well-formed answer")
    }

    fn check(policy: &OutputPolicy, answer: &EncodedOutcomes) -> Result<(), Refusal> {
        let Outcome::Outputs(outputs) = answer.outcome(0) else {
            panic!("the answer succeeded")
        };
        policy.check(outputs)
    }

    fn policy(allowed: Option<&[&str]>) -> OutputPolicy {
        OutputPolicy {
            allowed_topics: allowed.map(|topics| topics.iter().map(|t| (*t).to_owned()).collect()),
            max_outputs: 3,
            max_bytes: 40,
        }
    }

    #[test]
    fn outputs_to_the_default_or_an_allowed_topic_pass() {
        let answer = answer(&[(None, b"one"), (Some("audit"), b"two")]);
        assert_eq!(check(&policy(Some(&["out", "audit"])), &answer), Ok(()));
    }

    #[test]
    fn an_output_to_another_topic_is_refused_with_the_allowed_ones_named() {
        let answer = answer(&[(None, b"one"), (Some("payments"), b"two")]);
        let refusal = check(&policy(Some(&["out", "dlq"])), &answer).unwrap_err();
        assert_eq!(refusal.breach, Breach::Topic);
        assert_eq!(
            refusal.reason,
            "output 1 names topic `payments`, which this pipeline may not write to \
             (`allowed_output_topics`: `out`, `dlq`)"
        );
    }

    #[test]
    fn without_allowed_topics_any_topic_passes() {
        let answer = answer(&[(Some("anything"), b"one")]);
        assert_eq!(check(&policy(None), &answer), Ok(()));
    }

    #[test]
    fn more_outputs_than_allowed_are_refused() {
        let answer = answer(&[(None, b"1"), (None, b"2"), (None, b"3"), (None, b"4")]);
        let refusal = check(&policy(None), &answer).unwrap_err();
        assert_eq!(refusal.breach, Breach::Count);
        assert!(refusal.reason.contains("4 outputs"), "{refusal}");
    }

    #[test]
    fn bytes_count_keys_values_and_headers() {
        // 3 outputs of 9 value bytes and a 4-byte header: 39 bytes pass.
        let nine: &[u8] = b"123456789";
        let fits = answer(&[(None, nine); 3]);
        assert_eq!(check(&policy(None), &fits), Ok(()));
        let over = answer(&[
            (None, b"1234567890"),
            (None, b"1234567890"),
            (None, b"123456789"),
        ]);
        let refusal = check(&policy(None), &over).unwrap_err();
        assert_eq!(refusal.breach, Breach::Bytes);
        assert!(refusal.reason.contains("41 bytes"), "{refusal}");
    }
}
