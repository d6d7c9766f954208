//! The gate every model file passes before any engine sees it.
//!
//! A model is identified by the SHA-256 of its bytes, so everything it computes with must be in
//! those bytes: an initializer that keeps its data in an external file would make the engine
//! read a file on the node (ONNX Runtime resolves a relative `location` against the working
//! directory — `admin.token`, `node.key`) and would put weights outside the receipt's digest.
//! Such models are refused here, for every engine, at registration and again at every load.
//! The gate also bounds the graph's size before compilation, whose memory grows with it, and
//! decides whether requests for the model may share a batch ([`crate::row_independence`]).

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::Framework;
use vouch_core::ModelSignature;

use crate::engine::ExecError;

/// Limits on what a model may ask of the node before it is compiled.
#[derive(Clone, Debug)]
pub struct ModelLimits {
    /// Most nodes across the graph, its subgraphs and local functions. Compilation memory grows
    /// with the node count (a 10⁶-node graph took 5.7 GB in tract).
    pub max_graph_nodes: usize,
}

impl Default for ModelLimits {
    fn default() -> Self {
        ModelLimits {
            max_graph_nodes: 100_000,
        }
    }
}

/// Model bytes that passed the gate, with what every engine needs from the ONNX graph.
pub struct ModelFile {
    bytes: Vec<u8>,
    proto: pb::ModelProto,
    signature: ModelSignature,
    /// `Ok` when row *i* of every output depends only on row *i* of the inputs, so requests
    /// may share a batch; else why not.
    row_independence: Result<(), String>,
}

impl ModelFile {
    /// Parses and checks `bytes`: a self-contained ONNX model within `limits`.
    pub fn parse(bytes: &[u8], limits: &ModelLimits) -> Result<ModelFile, ExecError> {
        let invalid = |reason: String| ExecError::InvalidModel(reason);
        let scan = scan::ModelProto::decode(bytes)
            .map_err(|e| invalid(format!("not an ONNX protobuf: {e}")))?;
        let mut census = Census::default();
        census.model(&scan);
        if let Some(what) = census.external.first() {
            return Err(invalid(format!(
                "{what} keeps its data in an external file; Vouch accepts only self-contained \
                 models, whose digest covers every weight (re-export with the weights embedded, \
                 e.g. onnx.save(model, path, save_as_external_data=False))"
            )));
        }
        if census.nodes > limits.max_graph_nodes {
            return Err(invalid(format!(
                "the graph has {} nodes; this node compiles at most {}",
                census.nodes, limits.max_graph_nodes
            )));
        }
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| invalid(format!("not an ONNX protobuf: {e}")))?;
        let signature = crate::tract_engine::signature_from_proto(&proto).map_err(invalid)?;
        let row_independence = crate::row_independence::check(&proto, &signature);
        Ok(ModelFile {
            bytes: bytes.to_vec(),
            proto,
            signature,
            row_independence,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn proto(&self) -> &pb::ModelProto {
        &self.proto
    }

    pub fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    /// Whether requests may share a batch, and if not, why.
    pub fn row_independence(&self) -> &Result<(), String> {
        &self.row_independence
    }
}

/// The model's `metadata_props`, ONNX's free key/value strings, read without decoding the
/// graph. Vouch keeps what it needs to serve a model beyond its graph under `vouch.*` keys (an
/// embedding model's tokenizer: `POST /v1/embeddings`), so it stays inside the digest.
pub fn metadata_props(
    bytes: &[u8],
) -> Result<std::collections::BTreeMap<String, String>, ExecError> {
    let m = scan::Metadata::decode(bytes)
        .map_err(|e| ExecError::InvalidModel(format!("not an ONNX protobuf: {e}")))?;
    Ok(m.metadata_props
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect())
}

/// What the scan found: external tensors (described for the error) and the node count.
#[derive(Default)]
struct Census {
    external: Vec<String>,
    nodes: usize,
}

impl Census {
    fn model(&mut self, m: &scan::ModelProto) {
        if let Some(g) = &m.graph {
            self.graph(g, "the graph");
        }
        for f in &m.functions {
            self.nodes(&f.node, &format!("function {:?}", f.name));
        }
        for t in &m.training_info {
            for g in t.initialization.iter().chain(&t.algorithm) {
                self.graph(g, "a training graph");
            }
        }
    }

    fn graph(&mut self, g: &scan::GraphProto, place: &str) {
        for t in &g.initializer {
            self.tensor(t, || format!("initializer {:?} of {place}", t.name));
        }
        for s in &g.sparse_initializer {
            for t in s.values.iter().chain(&s.indices) {
                self.tensor(t, || format!("sparse initializer {:?} of {place}", t.name));
            }
        }
        self.nodes(&g.node, place);
    }

    fn nodes(&mut self, nodes: &[scan::NodeProto], place: &str) {
        self.nodes = self.nodes.saturating_add(nodes.len());
        for n in nodes {
            for a in &n.attribute {
                // Described only when needed: the scan runs on every load of every node.
                let what = || {
                    format!(
                        "attribute {:?} of node {:?} ({}) of {place}",
                        a.name, n.name, n.op_type
                    )
                };
                for t in a.t.iter().chain(&a.tensors) {
                    self.tensor(t, what);
                }
                for s in a.sparse_tensor.iter().chain(&a.sparse_tensors) {
                    for t in s.values.iter().chain(&s.indices) {
                        self.tensor(t, what);
                    }
                }
                for g in a.g.iter().chain(&a.graphs) {
                    self.graph(g, &format!("the subgraph in {}", what()));
                }
            }
        }
    }

    fn tensor(&mut self, t: &scan::TensorProto, what: impl FnOnce() -> String) {
        const EXTERNAL: i32 = 1;
        if t.data_location == EXTERNAL || !t.external_data.is_empty() {
            let location = t
                .external_data
                .iter()
                .find(|e| e.key == "location")
                .map(|e| format!(" (location {:?})", e.value))
                .unwrap_or_default();
            self.external.push(format!("{}{location}", what()));
        }
    }
}

/// Just the ONNX fields the gate reads, with their numbers from `onnx.proto3`. tract's own
/// declarations leave out `external_data` and `data_location`, so they cannot see the danger;
/// prost skips every other field without keeping it.
mod scan {
    /// `ModelProto.metadata_props` alone.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        #[prost(message, repeated, tag = "14")]
        pub metadata_props: Vec<StringStringEntryProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "20")]
        pub training_info: Vec<TrainingInfoProto>,
        #[prost(message, repeated, tag = "25")]
        pub functions: Vec<FunctionProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TrainingInfoProto {
        #[prost(message, optional, tag = "1")]
        pub initialization: Option<GraphProto>,
        #[prost(message, optional, tag = "2")]
        pub algorithm: Option<GraphProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FunctionProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, repeated, tag = "7")]
        pub node: Vec<NodeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "15")]
        pub sparse_initializer: Vec<SparseTensorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        #[prost(message, optional, tag = "6")]
        pub g: Option<GraphProto>,
        #[prost(message, repeated, tag = "10")]
        pub tensors: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub graphs: Vec<GraphProto>,
        #[prost(message, optional, tag = "22")]
        pub sparse_tensor: Option<SparseTensorProto>,
        #[prost(message, repeated, tag = "23")]
        pub sparse_tensors: Vec<SparseTensorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SparseTensorProto {
        #[prost(message, optional, tag = "1")]
        pub values: Option<TensorProto>,
        #[prost(message, optional, tag = "2")]
        pub indices: Option<TensorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(message, repeated, tag = "13")]
        pub external_data: Vec<StringStringEntryProto>,
        #[prost(int32, tag = "14")]
        pub data_location: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntryProto {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // External data is tested on every engine in tests/hostile.rs, with the hostile models.

    #[test]
    fn graphs_over_the_node_limit_are_refused_before_compiling() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/mlp.onnx"
        ))
        .unwrap();
        assert!(ModelFile::parse(&bytes, &ModelLimits::default()).is_ok());
        let err = ModelFile::parse(&bytes, &ModelLimits { max_graph_nodes: 4 })
            .err()
            .unwrap();
        assert!(err.to_string().contains("5 nodes"), "{err}");
    }
}
