//! What machine a measurement was taken on: CPU model, instruction-set features the kernels
//! care about, and cache sizes — printed beside every benchmark figure, because absolute
//! times are only comparable on the same host class.
//!
//! The model comes from CPUID's brand string (x86-64), the features from run-time detection
//! (the same detection that selects the kernels), the cache sizes from Linux's sysfs
//! (`/sys/devices/system/cpu/cpu0/cache`). Anything unavailable is left out, never guessed.

use std::fmt;

/// A description of the host CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Host {
    /// CPUID brand string, trimmed (e.g. `AMD EPYC 9R14`); `None` off x86-64.
    pub model: Option<String>,
    /// Detected features among those that matter to the kernels, in a fixed order.
    pub features: Vec<&'static str>,
    /// Data / unified cache sizes per level in bytes: `(level, bytes)`, ascending.
    pub caches: Vec<(u32, u64)>,
    /// Logical CPUs this process may run on.
    pub cpus: usize,
}

impl Host {
    /// Reads the running machine.
    pub fn detect() -> Host {
        Host {
            model: brand(),
            features: features(),
            caches: caches(std::path::Path::new("/sys/devices/system/cpu/cpu0/cache")),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.model.as_deref().unwrap_or("unknown CPU"))?;
        write!(f, ", {} logical CPU(s)", self.cpus)?;
        if !self.features.is_empty() {
            write!(f, ", {}", self.features.join(" "))?;
        }
        for (level, bytes) in &self.caches {
            write!(f, ", L{level} {}", size(*bytes))?;
        }
        Ok(())
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

#[cfg(target_arch = "x86_64")]
fn brand() -> Option<String> {
    use std::arch::x86_64::__cpuid;
    // Leaf 0x8000_0000 reports the highest extended leaf; the brand leaves 0x8000_0002..4
    // are read only when it covers them.
    let max = __cpuid(0x8000_0000).eax;
    if max < 0x8000_0004 {
        return None;
    }
    let mut bytes = Vec::with_capacity(48);
    for leaf in 0x8000_0002u32..=0x8000_0004 {
        let r = __cpuid(leaf);
        for reg in [r.eax, r.ebx, r.ecx, r.edx] {
            bytes.extend_from_slice(&reg.to_le_bytes());
        }
    }
    let s = String::from_utf8_lossy(&bytes)
        .trim_matches(char::from(0))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!s.is_empty()).then_some(s)
}

#[cfg(not(target_arch = "x86_64"))]
fn brand() -> Option<String> {
    None
}

#[cfg(target_arch = "x86_64")]
fn features() -> Vec<&'static str> {
    let mut v = Vec::new();
    macro_rules! probe {
        ($($f:tt),*) => {$(
            if std::arch::is_x86_feature_detected!($f) {
                v.push($f);
            }
        )*};
    }
    probe!("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512bf16", "avx512fp16");
    v
}

#[cfg(not(target_arch = "x86_64"))]
fn features() -> Vec<&'static str> {
    Vec::new()
}

/// Data and unified caches of one CPU from a sysfs `cache` directory (`index*/{level,type,size}`),
/// largest size per level.
fn caches(dir: &std::path::Path) -> Vec<(u32, u64)> {
    let mut out: Vec<(u32, u64)> = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).map(|s| s.trim().to_string());
        let (Ok(level), Ok(kind), Ok(sz)) = (read("level"), read("type"), read("size")) else {
            continue;
        };
        if kind == "Instruction" {
            continue;
        }
        let (Ok(level), Some(bytes)) = (level.parse::<u32>(), parse_size(&sz)) else {
            continue;
        };
        match out.iter_mut().find(|(l, _)| *l == level) {
            Some(slot) => slot.1 = slot.1.max(bytes),
            None => out.push((level, bytes)),
        }
    }
    out.sort();
    out
}

/// `48K`, `1024K`, `32M` or plain bytes.
fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_caches_are_read_by_level_skipping_instruction_caches() {
        let dir = std::env::temp_dir().join(format!("spikerc-host-{}", std::process::id()));
        let write = |idx: usize, level: &str, kind: &str, size: &str| {
            let d = dir.join(format!("index{idx}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
        };
        write(0, "1", "Data", "48K");
        write(1, "1", "Instruction", "32K");
        write(2, "2", "Unified", "1024K");
        write(3, "3", "Unified", "32M");
        std::fs::create_dir_all(dir.join("index9")).unwrap(); // incomplete entry: skipped
        let got = caches(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, vec![(1, 48 << 10), (2, 1 << 20), (3, 32 << 20)]);
        let h = Host {
            model: Some("Some CPU".into()),
            features: vec!["avx2", "fma"],
            caches: got,
            cpus: 2,
        };
        assert_eq!(
            h.to_string(),
            "Some CPU, 2 logical CPU(s), avx2 fma, L1 48 KiB, L2 1 MiB, L3 32 MiB"
        );
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("48K"), Some(49152));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
        assert!(caches(std::path::Path::new("/nonexistent/spikerc")).is_empty());
    }
}
