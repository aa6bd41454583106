//! Where every field of `wit/ENCODING.md` lies, written down once: writers put each field at
//! these offsets and readers take it from them, so the two cannot drift apart.

use std::marker::PhantomData;

use crate::buffer::Span;

/// A field of a fixed-size record: its offset in the record, and by its type its size.
#[derive(Clone, Copy)]
pub(crate) struct Field<T> {
    at: usize,
    kind: PhantomData<fn() -> T>,
}

impl<T: FieldType> Field<T> {
    pub const fn at(at: usize) -> Self {
        Self {
            at,
            kind: PhantomData,
        }
    }

    /// Reads the field from `record`, which must be a whole record of its kind.
    pub fn read(self, record: &[u8]) -> T {
        T::read(&record[self.at..self.at + T::LEN])
    }

    pub fn write(self, record: &mut [u8], value: T) {
        value.write(&mut record[self.at..self.at + T::LEN]);
    }

    #[cfg(test)]
    pub fn bytes(self) -> std::ops::Range<usize> {
        self.at..self.at + T::LEN
    }
}

/// What a field can hold: little-endian integers, spans, and the magic number.
pub(crate) trait FieldType: Sized {
    const LEN: usize;
    /// Reads the value from exactly `LEN` bytes.
    fn read(bytes: &[u8]) -> Self;
    /// Writes the value into exactly `LEN` bytes.
    fn write(self, bytes: &mut [u8]);
}

#[inline]
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut array = [0; N];
    array.copy_from_slice(bytes);
    array
}

macro_rules! little_endian {
    ($($int:ty),*) => {$(
        impl FieldType for $int {
            const LEN: usize = size_of::<$int>();

            #[inline]
            fn read(bytes: &[u8]) -> Self {
                Self::from_le_bytes(array(bytes))
            }

            #[inline]
            fn write(self, bytes: &mut [u8]) {
                bytes.copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}

little_endian!(u32, i32, i64);

/// A span is its offset, then its length.
impl FieldType for Span {
    const LEN: usize = 8;

    #[inline]
    fn read(bytes: &[u8]) -> Self {
        Span {
            offset: u32::read(&bytes[..4]),
            length: u32::read(&bytes[4..]),
        }
    }

    #[inline]
    fn write(self, bytes: &mut [u8]) {
        self.offset.write(&mut bytes[..4]);
        self.length.write(&mut bytes[4..]);
    }
}

impl FieldType for [u8; 4] {
    const LEN: usize = 4;

    #[inline]
    fn read(bytes: &[u8]) -> Self {
        array(bytes)
    }

    #[inline]
    fn write(self, bytes: &mut [u8]) {
        bytes.copy_from_slice(&self);
    }
}

/// The header both directions start with: the magic, then the fields of the direction
/// ([`batch_header`], [`answer_header`]).
pub(crate) mod preamble {
    use super::Field;

    pub const LEN: usize = 40;
    /// Names the direction and the version of the encoding.
    pub const MAGIC: Field<[u8; 4]> = Field::at(0);
}

/// The header of a batch (host → plugin).
pub(crate) mod batch_header {
    use super::Field;
    use crate::buffer::Span;

    /// The magic of a batch in version 1 of the encoding.
    pub const MAGIC: [u8; 4] = *b"RNB1";
    /// Messages in the batch.
    pub const COUNT: Field<u32> = Field::at(4);
    pub const TOPIC_COUNT: Field<u32> = Field::at(8);
    /// Header records over all messages.
    pub const HEADER_COUNT: Field<u32> = Field::at(12);
    pub const TOPICS_AT: Field<u32> = Field::at(16);
    pub const MESSAGES_AT: Field<u32> = Field::at(20);
    pub const HEADERS_AT: Field<u32> = Field::at(24);
    pub const DATA_AT: Field<u32> = Field::at(28);
    /// The name of the pipeline input the batch came from.
    pub const SOURCE: Field<Span> = Field::at(32);
}

/// A message of a batch.
pub(crate) mod message {
    use super::Field;
    use crate::buffer::Span;

    pub const LEN: usize = 48;
    /// The Kafka offset, or -1.
    pub const OFFSET: Field<i64> = Field::at(0);
    /// Milliseconds since the Unix epoch, or -1 when unknown.
    pub const TIMESTAMP: Field<i64> = Field::at(8);
    /// The Kafka partition, or -1.
    pub const PARTITION: Field<i32> = Field::at(16);
    /// An index into the batch's topics table.
    pub const TOPIC: Field<u32> = Field::at(20);
    pub const KEY: Field<Span> = Field::at(24);
    pub const VALUE: Field<Span> = Field::at(32);
    /// An index into the header table; the message's headers follow it there.
    pub const FIRST_HEADER: Field<u32> = Field::at(40);
    pub const HEADER_COUNT: Field<u32> = Field::at(44);
}

/// An entry of a topics table, in both directions.
pub(crate) mod topic {
    use super::Field;
    use crate::buffer::Span;

    pub const LEN: usize = 8;
    /// UTF-8.
    pub const NAME: Field<Span> = Field::at(0);
}

/// A header of a message or an output, in both directions.
pub(crate) mod header {
    use super::Field;
    use crate::buffer::Span;

    pub const LEN: usize = 16;
    /// UTF-8.
    pub const NAME: Field<Span> = Field::at(0);
    pub const VALUE: Field<Span> = Field::at(8);
}

/// The header of an answer (plugin → host).
pub(crate) mod answer_header {
    use super::Field;

    /// The magic of an answer in version 1 of the encoding.
    pub const MAGIC: [u8; 4] = *b"RNO1";
    /// Outcomes: one per message of the batch.
    pub const COUNT: Field<u32> = Field::at(4);
    pub const TOPIC_COUNT: Field<u32> = Field::at(8);
    /// Outputs over all messages.
    pub const OUTPUT_COUNT: Field<u32> = Field::at(12);
    pub const HEADER_COUNT: Field<u32> = Field::at(16);
    pub const TOPICS_AT: Field<u32> = Field::at(20);
    pub const OUTCOMES_AT: Field<u32> = Field::at(24);
    pub const OUTPUTS_AT: Field<u32> = Field::at(28);
    pub const HEADERS_AT: Field<u32> = Field::at(32);
    pub const DATA_AT: Field<u32> = Field::at(36);
}

/// What became of one message of the batch.
pub(crate) mod outcome {
    use super::Field;
    use crate::buffer::Span;

    pub const LEN: usize = 16;
    /// Message `i` produced outputs `OUTPUTS_END(i - 1) .. OUTPUTS_END(i)`.
    pub const OUTPUTS_END: Field<u32> = Field::at(0);
    /// [`SUCCEEDED`], [`TRANSIENT`] or [`PERMANENT`].
    pub const KIND: Field<u32> = Field::at(4);
    /// UTF-8; empty when the message succeeded.
    pub const FAILURE_MESSAGE: Field<Span> = Field::at(8);

    pub const SUCCEEDED: u32 = 0;
    pub const TRANSIENT: u32 = 1;
    pub const PERMANENT: u32 = 2;
}

/// An output of a message.
pub(crate) mod output {
    use super::Field;
    use crate::buffer::Span;

    pub const LEN: usize = 32;
    /// 0 for the pipeline's default output topic, `k + 1` for entry `k` of the topics table.
    pub const TOPIC: Field<u32> = Field::at(0);
    pub const KEY: Field<Span> = Field::at(4);
    pub const VALUE: Field<Span> = Field::at(12);
    /// An index into the header table; the output's headers follow it there.
    pub const FIRST_HEADER: Field<u32> = Field::at(20);
    pub const HEADER_COUNT: Field<u32> = Field::at(24);
    /// Always 0.
    pub const RESERVED: Field<u32> = Field::at(28);
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::*;

    /// Asserts that `fields`, in order, cover `start .. len` without gaps or overlaps.
    fn assert_tiles(name: &str, start: usize, len: usize, fields: &[Range<usize>]) {
        let mut next = start;
        for field in fields {
            assert_eq!(
                field.start, next,
                "{name}: a field starts at {}",
                field.start
            );
            next = field.end;
        }
        assert_eq!(next, len, "{name}: the fields end at {next}, not {len}");
    }

    #[test]
    fn both_headers_are_covered_by_their_fields() {
        use batch_header as b;
        assert_tiles(
            "batch header",
            0,
            preamble::LEN,
            &[
                preamble::MAGIC.bytes(),
                b::COUNT.bytes(),
                b::TOPIC_COUNT.bytes(),
                b::HEADER_COUNT.bytes(),
                b::TOPICS_AT.bytes(),
                b::MESSAGES_AT.bytes(),
                b::HEADERS_AT.bytes(),
                b::DATA_AT.bytes(),
                b::SOURCE.bytes(),
            ],
        );
        use answer_header as a;
        assert_tiles(
            "answer header",
            0,
            preamble::LEN,
            &[
                preamble::MAGIC.bytes(),
                a::COUNT.bytes(),
                a::TOPIC_COUNT.bytes(),
                a::OUTPUT_COUNT.bytes(),
                a::HEADER_COUNT.bytes(),
                a::TOPICS_AT.bytes(),
                a::OUTCOMES_AT.bytes(),
                a::OUTPUTS_AT.bytes(),
                a::HEADERS_AT.bytes(),
                a::DATA_AT.bytes(),
            ],
        );
    }

    #[test]
    fn every_record_is_covered_by_its_fields() {
        use message as m;
        assert_tiles(
            "message",
            0,
            m::LEN,
            &[
                m::OFFSET.bytes(),
                m::TIMESTAMP.bytes(),
                m::PARTITION.bytes(),
                m::TOPIC.bytes(),
                m::KEY.bytes(),
                m::VALUE.bytes(),
                m::FIRST_HEADER.bytes(),
                m::HEADER_COUNT.bytes(),
            ],
        );
        assert_tiles("topic", 0, topic::LEN, &[topic::NAME.bytes()]);
        assert_tiles(
            "header",
            0,
            header::LEN,
            &[header::NAME.bytes(), header::VALUE.bytes()],
        );
        use outcome as o;
        assert_tiles(
            "outcome",
            0,
            o::LEN,
            &[
                o::OUTPUTS_END.bytes(),
                o::KIND.bytes(),
                o::FAILURE_MESSAGE.bytes(),
            ],
        );
        use output as out;
        assert_tiles(
            "output",
            0,
            out::LEN,
            &[
                out::TOPIC.bytes(),
                out::KEY.bytes(),
                out::VALUE.bytes(),
                out::FIRST_HEADER.bytes(),
                out::HEADER_COUNT.bytes(),
                out::RESERVED.bytes(),
            ],
        );
    }
}
