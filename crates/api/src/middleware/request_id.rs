//! Request ids and the `X-Response-Time` value, formatted without `core::fmt` (which showed
//! up at ~900 instructions per request in the profile).

use axum::http::HeaderValue;
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A new request id: a random per-process prefix and a counter (`3f9a1c2b-1a2f`), so ids are
/// unique across a fleet and cost a counter increment, not a UUID, per request.
///
/// Each thread formats ids [`BATCH`] at a time into one shared buffer and hands out slices of
/// it: a reference count per id instead of allocating and freeing a small buffer per request
/// (`bench/api/instructions.sh`, `GET /health/live`: 9,852 instructions per request with one
/// id formatted per request, 9,675 batched). Ids from different threads interleave but never
/// repeat: each batch takes its own range of the counter.
pub(crate) fn new_request_id() -> HeaderValue {
    thread_local! {
        static IDS: RefCell<IdBatch> = const { RefCell::new(IdBatch::empty()) };
    }
    IDS.with(|ids| ids.borrow_mut().next())
        .unwrap_or_else(|| HeaderValue::from_static("0"))
}

/// How many ids a thread formats at once.
const BATCH: usize = 64;
/// The most bytes an id takes: 8 prefix digits, `-`, up to 16 counter digits.
const ID_MAX: usize = 8 + 1 + 16;

struct IdBatch {
    buf: Bytes,
    /// Each id's length (slot `i` starts at `i * ID_MAX`).
    lens: [u8; BATCH],
    next: usize,
}

impl IdBatch {
    const fn empty() -> Self {
        Self {
            buf: Bytes::new(),
            lens: [0; BATCH],
            next: BATCH,
        }
    }

    fn next(&mut self) -> Option<HeaderValue> {
        if self.next == BATCH {
            self.refill();
        }
        let i = self.next;
        self.next += 1;
        let start = i * ID_MAX;
        let id = self.buf.slice(start..start + usize::from(self.lens[i]));
        HeaderValue::from_maybe_shared(id).ok()
    }

    fn refill(&mut self) {
        static PREFIX: OnceLock<u32> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(rand_u32);
        let first = COUNTER.fetch_add(BATCH as u64, Ordering::Relaxed);
        let mut buf = BytesMut::zeroed(BATCH * ID_MAX);
        for (i, slot) in buf.chunks_exact_mut(ID_MAX).enumerate() {
            self.lens[i] = format_id(prefix, first + i as u64, slot);
        }
        self.buf = buf.freeze();
        self.next = 0;
    }
}

/// Writes `prefix-n` (hex, the counter without leading zeros) into `out`; returns its length.
fn format_id(prefix: u32, n: u64, out: &mut [u8]) -> u8 {
    for (i, b) in out[..8].iter_mut().enumerate() {
        *b = HEX[((prefix >> (28 - 4 * i)) & 0xf) as usize];
    }
    out[8] = b'-';
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in 0..digits {
        out[9 + i] = HEX[((n >> (4 * (digits - 1 - i))) & 0xf) as usize];
    }
    // At most 25: fits.
    (9 + digits) as u8
}

fn rand_u32() -> u32 {
    // std's RandomState is seeded from the OS: enough entropy for a process id prefix.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    u32::try_from(h.finish() & 0xffff_ffff).unwrap_or(0)
}

/// `X-Response-Time`: milliseconds with two decimals (`1.23ms`).
///
/// Values under 2.56 ms — most answers — come from a table formatted once: a clone of a
/// shared value instead of formatting, checking and allocating a new one per request.
pub(crate) fn response_time(elapsed: Duration) -> HeaderValue {
    const CACHED: u64 = 256;
    static TABLE: OnceLock<Box<[HeaderValue]>> = OnceLock::new();
    let hundredths = u64::try_from(elapsed.as_micros() / 10).unwrap_or(u64::MAX);
    if hundredths < CACHED {
        let table = TABLE.get_or_init(|| (0..CACHED).map(format_hundredths).collect());
        if let Some(v) = usize::try_from(hundredths).ok().and_then(|i| table.get(i)) {
            return v.clone();
        }
    }
    format_hundredths(hundredths)
}

fn format_hundredths(hundredths: u64) -> HeaderValue {
    let (whole, frac) = (hundredths / 100, hundredths % 100);
    let mut buf = [0u8; 24];
    let mut i = buf.len();
    for b in b"sm".iter() {
        i -= 1;
        buf[i] = *b;
    }
    i -= 1;
    buf[i] = b'0' + (frac % 10) as u8;
    i -= 1;
    buf[i] = b'0' + (frac / 10) as u8;
    i -= 1;
    buf[i] = b'.';
    let mut w = whole;
    loop {
        i -= 1;
        buf[i] = b'0' + (w % 10) as u8;
        w /= 10;
        if w == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&buf[i..]).unwrap_or_else(|_| HeaderValue::from_static("0.00ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_times_read_the_same_from_the_table_and_beyond_it() {
        let cases = [
            (0, "0.00ms"),
            (9, "0.00ms"),
            (10, "0.01ms"),
            (1_230, "1.23ms"),
            (2_550, "2.55ms"),
            (2_560, "2.56ms"),
            (12_345, "12.34ms"),
            (1_000_000, "1000.00ms"),
        ];
        for (us, text) in cases {
            assert_eq!(response_time(Duration::from_micros(us)), text, "{us} µs");
        }
    }

    #[test]
    fn ids_stay_unique_across_batches_and_threads() {
        let mut seen = std::collections::HashSet::new();
        let per_thread = 3 * BATCH + 5;
        let ids: Vec<Vec<HeaderValue>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(move || (0..per_thread).map(|_| new_request_id()).collect()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for id in ids.into_iter().flatten() {
            let s = id.to_str().unwrap().to_owned();
            assert!(crate::front::acceptable_id(&id), "{s}");
            assert!(seen.insert(s.clone()), "{s} given twice");
        }
        assert_eq!(seen.len(), 4 * per_thread);
    }

    #[test]
    fn ids_format_the_counter_in_hex_without_leading_zeros() {
        let mut buf = [0u8; ID_MAX];
        let n = format_id(0x3f9a_1c2b, 0x1a2f, &mut buf);
        assert_eq!(&buf[..usize::from(n)], b"3f9a1c2b-1a2f");
        let n = format_id(0, 0, &mut buf);
        assert_eq!(&buf[..usize::from(n)], b"00000000-0");
        let n = format_id(u32::MAX, u64::MAX, &mut buf);
        assert_eq!(&buf[..usize::from(n)], b"ffffffff-ffffffffffffffff");
    }

    #[test]
    fn ids_are_prefix_and_counter() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let s = a.to_str().unwrap();
        let (prefix, n) = s.split_once('-').unwrap();
        assert_eq!(prefix.len(), 8);
        assert!(u64::from_str_radix(n, 16).is_ok());
    }

    #[test]
    fn response_times() {
        assert_eq!(response_time(Duration::from_micros(1234)), "1.23ms");
        assert_eq!(response_time(Duration::from_micros(5)), "0.00ms");
        assert_eq!(response_time(Duration::from_millis(12_345)), "12345.00ms");
        assert_eq!(response_time(Duration::from_micros(90)), "0.09ms");
    }
}
