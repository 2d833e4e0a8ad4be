//! `apigw-requestid` / `$context.requestId`: AWS-looking ids, unique per process run.

use std::sync::atomic::{AtomicU64, Ordering};

/// 16 characters of base64 (11 bytes): a mixed counter, so ids do not repeat within a run
/// and do not reveal how many requests came before.
pub struct RequestIds {
    seed: u64,
    counter: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        RequestIds {
            seed: splitmix(nanos ^ (u64::from(std::process::id()) << 32)),
            counter: AtomicU64::new(0),
        }
    }

    pub fn next(&self) -> RequestId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mixed = splitmix(self.seed ^ n);
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&mixed.to_be_bytes());
        bytes[8..11].copy_from_slice(&(n as u32).to_be_bytes()[1..]);
        // Standard base64 of the 11 bytes, by hand: the `base64` engine's general path was
        // ~500 instructions per request (callgrind), this is a few dozen. The 12th byte is
        // padding: the last group encodes 2 bytes, so it ends in `=`.
        let mut text = [0u8; 16];
        for (group, out) in bytes.chunks_exact(3).zip(text.chunks_exact_mut(4)) {
            let v = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
            for (i, o) in out.iter_mut().enumerate() {
                *o = BASE64[(v >> (18 - 6 * i) & 63) as usize];
            }
        }
        text[15] = b'=';
        RequestId(text)
    }
}

/// One request's id: 16 base64 characters held inline, so a request allocates nothing for
/// it (a `String` was an allocation and a free per request).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; 16]);

impl RequestId {
    pub fn as_str(&self) -> &str {
        // Always base64 (ASCII); the check is over 16 bytes.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_aws_and_do_not_repeat() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_eq!(a.len(), 16);
        assert!(a.ends_with('='));
        assert_ne!(a, b);
    }

    #[test]
    fn request_ids_are_the_standard_base64_of_their_bytes() {
        use base64::Engine;
        let ids = RequestIds::new();
        for _ in 0..1000 {
            let n = ids.counter.load(Ordering::Relaxed);
            let id = ids.next();
            let mixed = splitmix(ids.seed ^ n);
            let mut bytes = [0u8; 11];
            bytes[..8].copy_from_slice(&mixed.to_be_bytes());
            bytes[8..].copy_from_slice(&(n as u32).to_be_bytes()[1..]);
            assert_eq!(
                id.as_str(),
                base64::engine::general_purpose::STANDARD.encode(bytes)
            );
        }
    }
}
