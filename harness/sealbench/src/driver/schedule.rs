//! The open-loop schedule: when each sender's next message is *intended* to go, and how
//! big it is. Deterministic from the scenario's seed.

use crate::scenario::Arrival;

/// SplitMix64: a tiny, well-known, seedable generator. Written out rather than pulled in
/// because the schedule must be reproducible from the seed across versions of sealbench,
/// whatever a random-number crate changes in its algorithms.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` and `stream` (independent streams per sender).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One sender's schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Mean gap between messages, ns.
    mean_gap_ns: f64,
    arrival: Arrival,
    rng: Rng,
}

impl Schedule {
    /// A schedule of `rate` messages per second.
    pub fn new(rate: f64, arrival: Arrival, rng: Rng) -> Self {
        Schedule { mean_gap_ns: 1e9 / rate, arrival, rng }
    }

    /// The first intended send time after `start_ns`: a random phase within one gap, so
    /// that thousands of senders do not all fire on the same instant.
    pub fn first(&mut self, start_ns: u64) -> u64 {
        start_ns + (self.rng.next_f64() * self.mean_gap_ns) as u64
    }

    /// The gap to the next intended send time, ns.
    #[inline]
    pub fn gap(&mut self) -> u64 {
        match self.arrival {
            Arrival::Constant => self.mean_gap_ns as u64,
            // Inverse transform sampling of the exponential distribution.
            Arrival::Poisson => (-(1.0 - self.rng.next_f64()).ln() * self.mean_gap_ns) as u64,
        }
        .max(1)
    }

    /// A message size from the cumulative distribution `sizes`.
    #[inline]
    pub fn size(&mut self, sizes: &[(usize, f64)]) -> usize {
        if sizes.len() == 1 {
            return sizes[0].0;
        }
        let x = self.rng.next_f64();
        sizes.iter().find(|(_, c)| x < *c).unwrap_or(&sizes[sizes.len() - 1]).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_gaps_have_the_requested_mean_and_constant_gaps_are_exact() {
        let mut s = Schedule::new(1000.0, Arrival::Poisson, Rng::new(7, 1));
        let n = 200_000;
        let mean = (0..n).map(|_| s.gap() as f64).sum::<f64>() / n as f64;
        assert!((mean - 1e6).abs() < 1e4, "mean gap {mean}");
        let mut c = Schedule::new(4.0, Arrival::Constant, Rng::new(7, 1));
        assert_eq!(c.gap(), 250_000_000);
    }

    #[test]
    fn sizes_follow_their_weights() {
        let mut s = Schedule::new(1.0, Arrival::Constant, Rng::new(1, 2));
        let cdf = [(64usize, 0.75), (1024, 1.0)];
        let small = (0..40_000).filter(|_| s.size(&cdf) == 64).count();
        assert!((29_000..31_000).contains(&small), "{small}");
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a: Vec<u64> = {
            let mut s = Schedule::new(10.0, Arrival::Poisson, Rng::new(3, 9));
            (0..5).map(|_| s.gap()).collect()
        };
        let b: Vec<u64> = {
            let mut s = Schedule::new(10.0, Arrival::Poisson, Rng::new(3, 9));
            (0..5).map(|_| s.gap()).collect()
        };
        assert_eq!(a, b);
    }
}
