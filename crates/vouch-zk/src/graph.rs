//! The float model as vouch-zk sees it: a DAG of a few operator kinds, every tensor flattened
//! to a vector (batch 1, row-major, as ONNX lays it out).
//!
//! Every affine operator (Gemm, MatMul, Conv, AveragePool, BatchNorm, constant Add/Mul) becomes
//! one [`Op::Linear`] with sparse rows, so the circuit needs one gadget for all of them, and a
//! BatchNorm after a Conv folds into it exactly like any per-channel affine map.

/// Sparse rows in CSR form: row `i` is `idx[ptr[i]..ptr[i+1]]` with weights `w[..]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sparse {
    pub ptr: Vec<u32>,
    pub idx: Vec<u32>,
    pub w: Vec<f64>,
}

impl Sparse {
    pub fn rows(&self) -> usize {
        self.ptr.len().saturating_sub(1)
    }

    pub fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.ptr[i] as usize, self.ptr[i + 1] as usize);
        (&self.idx[a..b], &self.w[a..b])
    }

    pub fn nnz(&self) -> usize {
        self.idx.len()
    }

    /// Whether every row has exactly one entry, at its own index: an elementwise affine map.
    pub fn is_diagonal(&self) -> bool {
        (0..self.rows()).all(|i| {
            let (ix, _) = self.row(i);
            ix.len() == 1 && ix[0] as usize == i
        })
    }
}

/// A nonlinearity computed by table lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LutFn {
    Sigmoid,
    Tanh,
}

impl LutFn {
    pub fn apply(self, x: f64) -> f64 {
        match self {
            LutFn::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            LutFn::Tanh => x.tanh(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `out[i] = Σ_j w[i,j]·in[j] + bias[i]`.
    Linear {
        input: usize,
        output: usize,
        rows: Sparse,
        bias: Vec<f64>,
        onnx_op: String,
    },
    /// Elementwise sum of two tensors of the same length.
    Add {
        a: usize,
        b: usize,
        output: usize,
    },
    Relu {
        input: usize,
        output: usize,
    },
    /// `out[i] = max(in[j] for j in window i)`; every window is non-empty.
    MaxPool {
        input: usize,
        output: usize,
        windows: Sparse,
    },
    Lut {
        input: usize,
        output: usize,
        f: LutFn,
    },
}

impl Op {
    pub fn output(&self) -> usize {
        match self {
            Op::Linear { output, .. }
            | Op::Add { output, .. }
            | Op::Relu { output, .. }
            | Op::MaxPool { output, .. }
            | Op::Lut { output, .. } => *output,
        }
    }

    pub fn inputs(&self) -> Vec<usize> {
        match self {
            Op::Linear { input, .. }
            | Op::Relu { input, .. }
            | Op::MaxPool { input, .. }
            | Op::Lut { input, .. } => {
                vec![*input]
            }
            Op::Add { a, b, .. } => vec![*a, *b],
        }
    }
}

/// A named graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct Io {
    pub name: String,
    /// ONNX shape with the batch dimension fixed to 1.
    pub shape: Vec<u64>,
    pub value: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
    /// Length of every value (tensor) by id.
    pub value_len: Vec<usize>,
    /// In evaluation order.
    pub ops: Vec<Op>,
    /// Float parameters stored in the model file (weights, biases, normalisation constants).
    pub params: usize,
}

impl Graph {
    /// Multiply-accumulates of one inference: the native cost the proving cost is compared to.
    pub fn macs(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Linear { rows, .. } => rows.nnz(),
                _ => 0,
            })
            .sum()
    }
}
