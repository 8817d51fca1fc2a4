//! The messages of Prometheus remote write 1.0 (`prometheus/prompb/remote.proto` and
//! `types.proto`), declared by hand with `prost`'s derive: the few fields a sender fills,
//! with the field numbers of the `.proto` files.
//!
//! Why by hand and not generated: generating needs `protoc` at build time (`prost-build`),
//! one more tool for every build of a harness that sends four small messages; the field
//! numbers below are the protocol, checked by the test against a real Prometheus.

/// A batch of series, the body of one push (before snappy).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series (field 1; field 2 is reserved, 3 is metadata, not sent).
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// One series: its labels (`__name__` included, sorted by name) and its samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name; names unique.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// A label pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Label name (`__name__` for the metric name).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// A value at a time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Unix time in milliseconds.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}
