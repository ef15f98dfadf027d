//! `summary.json`: the [`RunSummary`] as pretty-printed JSON.

use std::io::Write;

use crate::metrics::summary::RunSummary;

pub fn write(summary: &RunSummary, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, summary)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use crate::metrics::summary::RunSummary;
    use crate::report::test_summary;

    #[test]
    fn a_summary_reads_back_equal_and_writes_the_same_bytes() {
        let mut first = Vec::new();
        super::write(&test_summary(), &mut first).unwrap();
        let read: RunSummary = serde_json::from_slice(&first).unwrap();
        assert_eq!(read, test_summary());
        let mut second = Vec::new();
        super::write(&read, &mut second).unwrap();
        assert!(first == second);
    }

    /// `loadctl report` re-renders byte-identical files only if every f64
    /// reads back as the same bits; serde_json guarantees that only with
    /// its `float_roundtrip` feature.
    #[test]
    fn floats_survive_the_json_round_trip_exactly() {
        // A fixed xorshift sequence of bit patterns: repeatable, and wide
        // enough to hit the values a fast approximate parser gets wrong.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut checked = 0;
        while checked < 50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            let text = serde_json::to_string(&v).unwrap();
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{text}");
            checked += 1;
        }
    }
}
