//! PyTorch `torch.save` files (zip format, the default since PyTorch 1.6) read in pure Rust.
//!
//! A `.pt` zip holds `<name>/data.pkl` (a pickle of the saved object) and one entry
//! `<name>/data/<key>` per tensor storage. The pickle is run on a small stack machine that
//! knows only what `torch.save` of a state_dict (or of a training checkpoint around one)
//! writes: dicts, lists, tuples, scalars, strings, `collections.OrderedDict`, and tensors
//! rebuilt by `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` from storages named by
//! persistent ids. Any other global becomes an opaque value; nothing is ever executed, so a
//! crafted file cannot run code, and every size is checked against the data that exists
//! (no allocation beyond what the archive holds, no panic).
//!
//! Nested dicts are flattened with `.`, so `{"state_dict": {"a.weight": t}}` gives key
//! `state_dict.a.weight` (see [`crate::checkpoint::unwrap_training_keys`]).

use std::collections::BTreeMap;
use std::io::Read;

use crate::checkpoint::RawTensor;

/// Largest pickle accepted (256 MiB) and largest nesting/stack depth.
const MAX_PICKLE: u64 = 256 << 20;
const MAX_DEPTH: usize = 100_000;

/// A pickled value. Scalar payloads that the reader does not use are kept for the `Debug`
/// form in error messages.
#[derive(Clone, Debug)]
#[allow(dead_code)]
enum V {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(usize),
    Tuple(Vec<V>),
    List(Vec<V>),
    Dict(Vec<(V, V)>),
    Global(String, String),
    Storage { dtype: &'static str, key: String, numel: usize },
    Tensor(Box<Tensor>),
    Mark,
    Object(String),
}

#[derive(Clone, Debug)]
struct Tensor {
    dtype: &'static str,
    key: String,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// Element size and our dtype name of a storage class (`torch.FloatStorage`, ...).
fn storage_dtype(name: &str) -> Option<&'static str> {
    Some(match name {
        "FloatStorage" => "f32",
        "DoubleStorage" => "f64",
        "HalfStorage" => "f16",
        "BFloat16Storage" => "bf16",
        "LongStorage" => "i64",
        "IntStorage" => "i32",
        "ShortStorage" => "i16",
        "CharStorage" => "i8",
        "ByteStorage" => "u8",
        "BoolStorage" => "bool",
        _ => return None,
    })
}

fn elem_size(dtype: &str) -> usize {
    match dtype {
        "f64" | "i64" => 8,
        "f32" | "i32" => 4,
        "f16" | "bf16" | "i16" => 2,
        _ => 1,
    }
}

/// Reads a torch.save zip from bytes into state_dict-like tensors (nested keys joined by `.`).
pub fn read(bytes: &[u8]) -> Result<BTreeMap<String, RawTensor>, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("damaged zip archive: {e}"))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let pkl = names
        .iter()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .cloned()
        .ok_or("no data.pkl in the archive (not a torch.save file)")?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let pickle = read_entry(&mut zip, &pkl, MAX_PICKLE)?;
    let root = Machine::default().run(&pickle)?;
    let mut flat = Vec::new();
    flatten(&root, String::new(), &mut flat, 0)?;
    if flat.is_empty() {
        return Err("the pickle holds no tensors (expected a state_dict)".into());
    }
    let mut storages: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (key, t) in flat {
        if !storages.contains_key(&t.key) {
            let entry = format!("{prefix}data/{}", t.key);
            let data = read_entry(&mut zip, &entry, bytes.len() as u64)?;
            storages.insert(t.key.clone(), data);
        }
        let raw = gather(&t, &storages[&t.key]).map_err(|m| format!("tensor `{key}`: {m}"))?;
        out.insert(key, raw);
    }
    Ok(out)
}

fn read_entry(
    zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, String> {
    let entry = zip
        .by_name(name)
        .map_err(|e| format!("zip entry `{name}`: {e}"))?;
    if entry.size() > limit {
        return Err(format!("zip entry `{name}` announces {} bytes (limit {limit})", entry.size()));
    }
    let mut buf = Vec::with_capacity(entry.size() as usize);
    entry
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("zip entry `{name}`: {e}"))?;
    if buf.len() as u64 > limit {
        return Err(format!("zip entry `{name}` is larger than {limit} bytes"));
    }
    Ok(buf)
}

/// Collects the tensors of nested dicts/lists with their dotted keys.
fn flatten(v: &V, key: String, out: &mut Vec<(String, Tensor)>, depth: usize) -> Result<(), String> {
    if depth > 64 {
        return Err("dicts nested more than 64 deep".into());
    }
    let join = |k: &str| if key.is_empty() { k.to_string() } else { format!("{key}.{k}") };
    match v {
        V::Tensor(t) => out.push((key, (**t).clone())),
        V::Dict(items) => {
            for (k, x) in items {
                let k = match k {
                    V::Str(s) => s.clone(),
                    V::Int(i) => i.to_string(),
                    _ => continue,
                };
                flatten(x, join(&k), out, depth + 1)?;
            }
        }
        V::List(items) | V::Tuple(items) => {
            for (i, x) in items.iter().enumerate() {
                flatten(x, join(&i.to_string()), out, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The tensor's elements (row-major) from its storage, as f32 for floating types.
fn gather(t: &Tensor, storage: &[u8]) -> Result<RawTensor, String> {
    if t.shape.len() != t.stride.len() {
        return Err(format!("shape {:?} and stride {:?} differ in rank", t.shape, t.stride));
    }
    let size = elem_size(t.dtype);
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    // Highest element index touched must lie inside the storage.
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |a, (&d, &s)| {
            if d == 0 {
                Some(a)
            } else {
                (d - 1).checked_mul(s).and_then(|x| x.checked_add(a))
            }
        })
        .ok_or("strides overflow")?;
    let avail = storage.len() / size;
    if numel > 0 && last >= avail {
        return Err(format!(
            "shape {:?} with stride {:?} at offset {} reaches element {last}, the storage holds {avail}",
            t.shape, t.stride, t.offset
        ));
    }
    let floating = matches!(t.dtype, "f32" | "f64" | "f16" | "bf16");
    let data = floating.then(|| {
        let mut v = Vec::with_capacity(numel);
        let mut idx = vec![0usize; t.shape.len()];
        for _ in 0..numel {
            let e = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
            let b = &storage[e * size..(e + 1) * size];
            v.push(match t.dtype {
                "f32" => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                "f64" => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
                "f16" => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
                _ => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            });
            for a in (0..idx.len()).rev() {
                idx[a] += 1;
                if idx[a] < t.shape[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
        v
    });
    Ok(RawTensor {
        dtype: t.dtype.to_string(),
        shape: t.shape.clone(),
        data,
    })
}

/// Most value nodes memo reads may copy in one pickle (a guard against "billion laughs"
/// pickles that reference a big value over and over).
const MAX_COPIED: usize = 10_000_000;

/// Number of value nodes in `v`, counting no further than `limit`.
fn weight(v: &V, limit: usize) -> usize {
    let mut n = 1;
    let children: &[V] = match v {
        V::Tuple(x) | V::List(x) => x,
        V::Dict(d) => {
            for (k, x) in d {
                if n > limit {
                    break;
                }
                n += weight(k, limit - n.min(limit)) + weight(x, limit - n.min(limit));
            }
            return n;
        }
        _ => &[],
    };
    for x in children {
        if n > limit {
            break;
        }
        n += weight(x, limit - n);
    }
    n
}

/// The pickle stack machine.
#[derive(Default)]
struct Machine {
    stack: Vec<V>,
    memo: BTreeMap<u32, V>,
    copied: usize,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| {
            format!("pickle ends inside an operand at byte {}", self.pos)
        })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.b[self.pos..];
        let n = rest.iter().position(|&c| c == b'\n').ok_or("unterminated GLOBAL name")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
}

fn as_usize(v: &V, what: &str) -> Result<usize, String> {
    match v {
        V::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(format!("{what}: expected a non-negative integer, found {other:?}")),
    }
}

fn usize_tuple(v: &V, what: &str) -> Result<Vec<usize>, String> {
    match v {
        V::Tuple(xs) | V::List(xs) => xs.iter().map(|x| as_usize(x, what)).collect(),
        other => Err(format!("{what}: expected a tuple, found {other:?}")),
    }
}

impl Machine {
    fn pop(&mut self) -> Result<V, String> {
        self.stack.pop().ok_or_else(|| "pickle pops an empty stack".to_string())
    }

    fn pop_mark(&mut self) -> Result<Vec<V>, String> {
        let m = self
            .stack
            .iter()
            .rposition(|v| matches!(v, V::Mark))
            .ok_or("pickle has no MARK to pop to")?;
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self) -> Result<&mut V, String> {
        self.stack.last_mut().ok_or_else(|| "pickle reads an empty stack".to_string())
    }

    fn push(&mut self, v: V) -> Result<(), String> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!("pickle stack deeper than {MAX_DEPTH}"));
        }
        self.stack.push(v);
        Ok(())
    }

    fn run(mut self, b: &[u8]) -> Result<V, String> {
        let mut c = Cursor { b, pos: 0 };
        loop {
            let at = c.pos;
            let op = c.u8()?;
            match op {
                0x80 => {
                    c.u8()?;
                }
                0x95 => {
                    c.take(8)?;
                }
                b'.' => return self.pop(),
                b'}' => self.push(V::Dict(vec![]))?,
                b']' => self.push(V::List(vec![]))?,
                b')' => self.push(V::Tuple(vec![]))?,
                b'(' => self.push(V::Mark)?,
                b'N' => self.push(V::None)?,
                0x88 => self.push(V::Bool(true))?,
                0x89 => self.push(V::Bool(false))?,
                b'J' => {
                    let v = c.u32()? as i32;
                    self.push(V::Int(v.into()))?
                }
                b'K' => {
                    let v = c.u8()?;
                    self.push(V::Int(v.into()))?
                }
                b'M' => {
                    let x = c.take(2)?;
                    self.push(V::Int(u16::from_le_bytes([x[0], x[1]]).into()))?
                }
                0x8a => {
                    let n = c.u8()? as usize;
                    let x = c.take(n)?;
                    if n > 8 {
                        return Err(format!("integer of {n} bytes at byte {at}"));
                    }
                    let mut buf = [if x.last().is_some_and(|&l| l & 0x80 != 0) { 0xff } else { 0 }; 8];
                    buf[..n].copy_from_slice(x);
                    self.push(V::Int(i64::from_le_bytes(buf)))?
                }
                b'G' => {
                    let x = c.take(8)?;
                    self.push(V::Float(f64::from_be_bytes(x.try_into().expect("8 bytes"))))?
                }
                b'X' | 0x8c => {
                    let n = if op == b'X' { c.u32()? as usize } else { c.u8()? as usize };
                    let s = String::from_utf8_lossy(c.take(n)?).into_owned();
                    self.push(V::Str(s))?
                }
                b'B' | b'C' => {
                    let n = if op == b'B' { c.u32()? as usize } else { c.u8()? as usize };
                    c.take(n)?;
                    self.push(V::Bytes(n))?
                }
                b'c' => {
                    let m = c.line()?;
                    let n = c.line()?;
                    self.push(V::Global(m, n))?
                }
                0x93 => {
                    let n = self.pop()?;
                    let m = self.pop()?;
                    match (m, n) {
                        (V::Str(m), V::Str(n)) => self.push(V::Global(m, n))?,
                        _ => return Err(format!("STACK_GLOBAL without two names at byte {at}")),
                    }
                }
                b'q' | b'r' => {
                    let k = if op == b'q' { c.u8()? as u32 } else { c.u32()? };
                    let v = self.top()?.clone();
                    self.copied += weight(&v, MAX_COPIED);
                    self.memo.insert(k, v);
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                b'h' | b'j' => {
                    let k = if op == b'h' { c.u8()? as u32 } else { c.u32()? };
                    let v = self.memo.get(&k).ok_or(format!("memo {k} read before it is written"))?;
                    self.copied += weight(v, MAX_COPIED);
                    if self.copied > MAX_COPIED {
                        return Err(format!("pickle copies more than {MAX_COPIED} values through its memo"));
                    }
                    let v = v.clone();
                    self.push(v)?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(V::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(format!("TUPLE{n} on a stack of {}", self.stack.len()));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(V::Tuple(items))?
                }
                b'a' => {
                    let v = self.pop()?;
                    if let V::List(l) = self.top()? {
                        l.push(v);
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    if let V::List(l) = self.top()? {
                        l.extend(items);
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    if let V::Dict(d) = self.top()? {
                        d.push((k, v));
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(format!("SETITEMS with an odd number of items at byte {at}"));
                    }
                    if let V::Dict(d) = self.top()? {
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            d.push((k, v));
                        }
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = persistent(pid)?;
                    self.push(v)?
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = reduce(f, args)?;
                    self.push(v)?
                }
                b'b' => {
                    self.pop()?; // state: ignored (tensor attributes, object dicts)
                }
                _ => return Err(format!("unsupported pickle opcode 0x{op:02x} at byte {at}")),
            }
        }
    }
}

/// `('storage', StorageClass, key, location, numel)`.
fn persistent(pid: V) -> Result<V, String> {
    let V::Tuple(t) = pid else {
        return Err(format!("persistent id {pid:?} is not a tuple"));
    };
    match t.as_slice() {
        [V::Str(kind), V::Global(_, class), V::Str(key), _, numel, ..] if kind == "storage" => {
            let dtype = storage_dtype(class).ok_or(format!("unknown storage type {class}"))?;
            Ok(V::Storage {
                dtype,
                key: key.clone(),
                numel: as_usize(numel, "storage size")?,
            })
        }
        other => Err(format!("unsupported persistent id {other:?}")),
    }
}

fn reduce(f: V, args: V) -> Result<V, String> {
    let V::Global(m, n) = &f else {
        return Ok(V::Object("call".into()));
    };
    let args = match args {
        V::Tuple(a) => a,
        _ => vec![],
    };
    Ok(match (m.as_str(), n.as_str()) {
        ("collections", "OrderedDict") => V::Dict(vec![]),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let [V::Storage { dtype, key, numel }, offset, size, stride, ..] = args.as_slice() else {
                return Err(format!("{m}.{n} with unexpected arguments"));
            };
            let t = Tensor {
                dtype,
                key: key.clone(),
                offset: as_usize(offset, "storage offset")?,
                shape: usize_tuple(size, "size")?,
                stride: usize_tuple(stride, "stride")?,
            };
            let _ = numel;
            V::Tensor(Box::new(t))
        }
        ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => {
            match args.into_iter().next() {
                Some(t @ V::Tensor(_)) => t,
                _ => return Err(format!("{m}.{n} without a tensor")),
            }
        }
        _ => V::Object(format!("{m}.{n}")),
    })
}
