//! `--shard K/N`: a deterministic split of a file list into N parts, for spreading `eval`,
//! `run DIR` and `golden check` over the tasks of a job array (SLURM `--array=1-N`).
//!
//! The items are ordered by name (byte order of the file name, as every directory listing of
//! the tool is) and shard K (1-based) takes items K-1, K-1+N, K-1+2N, ... — so the shards are
//! disjoint, together hold every item, differ in size by at most one, and a given file list
//! always splits the same way on every machine. Merging the shards' results in name order
//! gives the same numbers as one run (`spikerc eval merge`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Shard `index` (1-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {s}: expected K/N with 1 <= K <= N (e.g. 2/8)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This shard's items of `items`, ordered by `name` first (stable for equal names).
    pub fn select<T>(&self, mut items: Vec<T>, name: impl Fn(&T) -> String) -> Vec<T> {
        items.sort_by_key(|a| name(a));
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index - 1)
            .map(|(_, t)| t)
            .collect()
    }
}

/// `items` unchanged without a shard, else [`Shard::select`].
pub fn select<T>(shard: Option<Shard>, items: Vec<T>, name: impl Fn(&T) -> String) -> Vec<T> {
    match shard {
        None => items,
        Some(s) => s.select(items, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("2/8".parse::<Shard>(), Ok(Shard { index: 2, count: 8 }));
        for bad in ["0/4", "5/4", "1/0", "x/2", "3", "1/2/3"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert_eq!(e, format!("--shard {bad}: expected K/N with 1 <= K <= N (e.g. 2/8)"));
        }
    }

    #[test]
    fn shards_are_disjoint_balanced_and_cover_everything() {
        let names: Vec<String> = (0..11).rev().map(|i| format!("img{i:02}.png")).collect();
        let mut all = vec![];
        for k in 1..=4 {
            let part = Shard { index: k, count: 4 }.select(names.clone(), |n| n.clone());
            assert!(part.len() == 2 || part.len() == 3, "{part:?}");
            all.extend(part);
        }
        all.sort();
        let mut expected = names.clone();
        expected.sort();
        assert_eq!(all, expected);
        let first = Shard { index: 1, count: 4 }.select(names, |n| n.clone());
        assert_eq!(first, ["img00.png", "img04.png", "img08.png"]);
    }
}
