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

    pub fn next(&self) -> String {
        use base64::Engine;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mixed = splitmix(self.seed ^ n);
        let mut bytes = [0u8; 11];
        bytes[..8].copy_from_slice(&mixed.to_be_bytes());
        bytes[8..].copy_from_slice(&(n as u32).to_be_bytes()[1..]);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

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
}
