//! Stacking requests along the leading (batch) dimension and splitting the results back.
//! Row-major storage makes both a matter of appending and slicing contiguous runs.

use std::hash::{DefaultHasher, Hash, Hasher};

use vouch_core::{Tensor, TensorData, TensorMap};

/// Rows along dim 0 if every tensor has the same leading dim, else `None` (not batchable).
pub fn batch_rows(inputs: &TensorMap) -> Option<u64> {
    let mut rows = None;
    for (_, t) in inputs.iter() {
        let r = *t.shape().first()?;
        match rows {
            None => rows = Some(r),
            Some(prev) if prev != r => return None,
            _ => {}
        }
    }
    rows
}

/// Requests can share a batch only if every input agrees on name, dtype and trailing dims.
pub fn compat_key(inputs: &TensorMap) -> u64 {
    let mut h = DefaultHasher::new();
    for (name, t) in inputs.iter() {
        name.hash(&mut h);
        t.dtype().code().hash(&mut h);
        t.shape().get(1..).hash(&mut h);
    }
    h.finish()
}

/// Concatenates compatible request inputs along dim 0.
pub fn concat(parts: &[&TensorMap]) -> Result<TensorMap, String> {
    let first = parts.first().ok_or("nothing to batch")?;
    let mut out = TensorMap::new();
    for (name, t0) in first.iter() {
        let mut rows = 0u64;
        let mut data = empty_like(t0.data());
        for p in parts {
            let t = p
                .get(name)
                .ok_or_else(|| format!("input {name:?} missing from a batched request"))?;
            rows += t.shape().first().copied().unwrap_or(0);
            append(&mut data, t.data())?;
        }
        let mut shape = t0.shape().to_vec();
        if let Some(d0) = shape.first_mut() {
            *d0 = rows;
        }
        out.insert(
            name.clone(),
            Tensor::new(shape, data).map_err(|e| e.to_string())?,
        );
    }
    Ok(out)
}

/// Splits batched outputs back into per-request maps of `rows[i]` rows each.
pub fn split(outputs: &TensorMap, rows: &[u64]) -> Result<Vec<TensorMap>, String> {
    let total: u64 = rows.iter().sum();
    let mut result: Vec<TensorMap> = rows.iter().map(|_| TensorMap::new()).collect();
    for (name, t) in outputs.iter() {
        if t.shape().first() != Some(&total) {
            return Err(format!(
                "output {name:?} has shape {:?}, not {total} batch rows",
                t.shape()
            ));
        }
        let per_row = if total == 0 {
            0
        } else {
            t.len() / total as usize
        };
        let mut offset = 0usize;
        for (i, &r) in rows.iter().enumerate() {
            let n = per_row * r as usize;
            let mut shape = t.shape().to_vec();
            shape[0] = r;
            let data = slice(t.data(), offset, n);
            result[i].insert(
                name.clone(),
                Tensor::new(shape, data).map_err(|e| e.to_string())?,
            );
            offset += n;
        }
    }
    Ok(result)
}

macro_rules! per_variant {
    ($d:expr, $v:ident => $body:expr) => {
        match $d {
            TensorData::Float32($v) => TensorData::Float32($body),
            TensorData::Float64($v) => TensorData::Float64($body),
            TensorData::Int8($v) => TensorData::Int8($body),
            TensorData::Int16($v) => TensorData::Int16($body),
            TensorData::Int32($v) => TensorData::Int32($body),
            TensorData::Int64($v) => TensorData::Int64($body),
            TensorData::Uint8($v) => TensorData::Uint8($body),
            TensorData::Uint16($v) => TensorData::Uint16($body),
            TensorData::Uint32($v) => TensorData::Uint32($body),
            TensorData::Uint64($v) => TensorData::Uint64($body),
            TensorData::Bool($v) => TensorData::Bool($body),
        }
    };
}

fn empty_like(d: &TensorData) -> TensorData {
    per_variant!(d, _v => Vec::new())
}

fn slice(d: &TensorData, offset: usize, n: usize) -> TensorData {
    per_variant!(d, v => v[offset..offset + n].to_vec())
}

fn append(dst: &mut TensorData, src: &TensorData) -> Result<(), String> {
    macro_rules! ext {
        ($($variant:ident),*) => {
            match (dst, src) {
                $((TensorData::$variant(a), TensorData::$variant(b)) => { a.extend_from_slice(b); Ok(()) })*
                (a, b) => Err(format!("cannot batch {} with {}", a.dtype(), b.dtype())),
            }
        };
    }
    ext!(
        Float32, Float64, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Bool
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: Vec<u64>, v: Vec<f32>) -> Tensor {
        Tensor::new(shape, TensorData::Float32(v)).unwrap()
    }

    #[test]
    fn concat_then_split_round_trips() {
        let mut a = TensorMap::new();
        a.insert("x", t(vec![1, 2], vec![1.0, 2.0]));
        let mut b = TensorMap::new();
        b.insert("x", t(vec![2, 2], vec![3.0, 4.0, 5.0, 6.0]));
        assert_eq!(batch_rows(&a), Some(1));
        assert_eq!(compat_key(&a), compat_key(&b));
        let joined = concat(&[&a, &b]).unwrap();
        assert_eq!(joined.get("x").unwrap().shape(), &[3, 2]);
        let parts = split(&joined, &[1, 2]).unwrap();
        assert_eq!(parts, vec![a, b]);
    }

    #[test]
    fn incompatible_shapes_get_different_keys_and_bad_splits_fail() {
        let mut a = TensorMap::new();
        a.insert("x", t(vec![1, 2], vec![1.0, 2.0]));
        let mut b = TensorMap::new();
        b.insert("x", t(vec![1, 1], vec![3.0]));
        assert_ne!(compat_key(&a), compat_key(&b));
        assert!(split(&a, &[2]).is_err());
    }
}
