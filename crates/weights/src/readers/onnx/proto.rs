//! The subset of `onnx.proto` (onnx 1.x, field numbers as published) this reader needs;
//! every other field is skipped by the decoder.

/// `ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Model {
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<Graph>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OpsetId>,
}

/// `OperatorSetIdProto`: which version of a domain's operators the graph means.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OpsetId {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `GraphProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Graph {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<Node>,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfo>,
}

/// `NodeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Node {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<Attribute>,
    #[prost(string, tag = "7")]
    pub domain: String,
}

/// `AttributeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Attribute {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// A subgraph (a `Loop`'s body), at most [`MAX_SUBGRAPH_DEPTH`] deep.
    #[prost(message, optional, tag = "6")]
    pub g: Option<Graph>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `TensorProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntry>,
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// `StringStringEntryProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntry {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `ValueInfoProto`: a graph input's or output's name, and its type where the graph gives it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `TypeProto` (a tensor's; the other kinds are skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorType>,
}

/// `TypeProto.Tensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorType {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<Shape>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Shape {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dim>,
}

/// `TensorShapeProto.Dimension`: a size or a name (the `oneof`'s two fields).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

impl ValueInfo {
    /// The dimensions the graph fixes (`None` for a named or unknown one); `None` where it
    /// gives no shape.
    pub(crate) fn fixed_dims(&self) -> Option<Vec<Option<usize>>> {
        let shape = self.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?;
        Some(
            shape
                .dim
                .iter()
                .map(|d| d.dim_value.and_then(|v| usize::try_from(v).ok()))
                .collect(),
        )
    }
}

/// What decoding `bytes` as a [`Model`] would hold in memory, estimated from the wire format
/// before anything is decoded: each message the decoder keeps costs its struct's size, each
/// string or byte field its bytes and a `Vec`'s 24, each packed varint 8 bytes. A message of 2
/// bytes on the wire can be a struct of hundreds of bytes once decoded (five million empty
/// attributes are a 10 MB file and 2 GB of `Attribute`s), so the caller bounds this first.
pub(crate) fn decoded_size(bytes: &[u8]) -> Result<u64, String> {
    size_of_message(bytes, Kind::Model, 0)
}

/// Graphs inside graphs (a `Loop` body holding a `Loop`): deeper than exporters write, and a
/// bound on the decoder's recursion.
pub(crate) const MAX_SUBGRAPH_DEPTH: usize = 8;

/// The messages of this subset, for [`decoded_size`].
#[derive(Clone, Copy, Debug)]
enum Kind {
    Model,
    Opset,
    Graph,
    Node,
    Attribute,
    Tensor,
    Entry,
    ValueInfo,
    Type,
    TensorType,
    Shape,
    Dim,
}

impl Kind {
    fn struct_size(self) -> u64 {
        (match self {
            Kind::Model => std::mem::size_of::<Model>(),
            Kind::Opset => std::mem::size_of::<OpsetId>(),
            Kind::Graph => std::mem::size_of::<Graph>(),
            Kind::Node => std::mem::size_of::<Node>(),
            Kind::Attribute => std::mem::size_of::<Attribute>(),
            Kind::Tensor => std::mem::size_of::<TensorProto>(),
            Kind::Entry => std::mem::size_of::<StringStringEntry>(),
            Kind::ValueInfo => std::mem::size_of::<ValueInfo>(),
            Kind::Type => std::mem::size_of::<TypeProto>(),
            Kind::TensorType => std::mem::size_of::<TensorType>(),
            Kind::Shape => std::mem::size_of::<Shape>(),
            Kind::Dim => std::mem::size_of::<Dim>(),
        }) as u64
    }

    /// The message a length-delimited field holds, if the decoder keeps one there.
    fn submessage(self, field: u64) -> Option<Kind> {
        match (self, field) {
            (Kind::Model, 7) => Some(Kind::Graph),
            (Kind::Model, 8) => Some(Kind::Opset),
            (Kind::Graph, 1) => Some(Kind::Node),
            (Kind::Graph, 5) | (Kind::Attribute, 5) => Some(Kind::Tensor),
            (Kind::Attribute, 6) => Some(Kind::Graph),
            (Kind::Graph, 11 | 12) => Some(Kind::ValueInfo),
            (Kind::Node, 5) => Some(Kind::Attribute),
            (Kind::Tensor, 13) => Some(Kind::Entry),
            (Kind::ValueInfo, 2) => Some(Kind::Type),
            (Kind::Type, 1) => Some(Kind::TensorType),
            (Kind::TensorType, 2) => Some(Kind::Shape),
            (Kind::Shape, 1) => Some(Kind::Dim),
            _ => None,
        }
    }

    /// Whether a length-delimited field is a string or bytes the decoder keeps (the others
    /// it skips).
    fn kept_bytes(self, field: u64) -> bool {
        matches!(
            (self, field),
            (Kind::Model, 2 | 3)
                | (Kind::Opset, 1)
                | (Kind::Node, 1 | 2 | 3 | 4 | 7)
                | (Kind::Attribute, 1 | 4 | 7 | 9)
                | (Kind::Tensor, 4 | 8 | 9 | 10)
                | (Kind::Entry, 1 | 2)
                | (Kind::ValueInfo, 1)
                | (Kind::Dim, 2)
        )
    }

    /// Whether a length-delimited field is packed varints the decoder keeps (8 bytes each).
    fn packed_varints(self, field: u64) -> bool {
        matches!(
            (self, field),
            (Kind::Attribute, 8) | (Kind::Tensor, 1 | 5 | 7)
        )
    }
}

fn size_of_message(mut bytes: &[u8], kind: Kind, graphs: usize) -> Result<u64, String> {
    let graphs = graphs + usize::from(matches!(kind, Kind::Graph));
    if graphs > MAX_SUBGRAPH_DEPTH + 1 {
        return Err(format!(
            "graphs nested more than {MAX_SUBGRAPH_DEPTH} deep in attributes"
        ));
    }
    let mut size = kind.struct_size();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let field = key >> 3;
        let cost = match key & 7 {
            0 => {
                varint(&mut bytes)?;
                8
            }
            1 => {
                skip(&mut bytes, 8)?;
                8
            }
            5 => {
                skip(&mut bytes, 4)?;
                4
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).unwrap_or(usize::MAX);
                let body = skip(&mut bytes, len).map_err(|e| {
                    format!("{kind:?}, field {field}: {e} (a truncated file, or not ONNX)")
                })?;
                match kind.submessage(field) {
                    Some(inner) => size_of_message(body, inner, graphs)?,
                    None if kind.packed_varints(field) => {
                        8 * body.iter().filter(|&&b| b < 0x80).count() as u64
                    }
                    None if kind.kept_bytes(field) => 24 + len as u64,
                    None => 0,
                }
            }
            other => return Err(format!("wire type {other}, which ONNX does not use")),
        };
        size = size.saturating_add(cost);
    }
    Ok(size)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or("truncated in a varint")?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(value);
        }
    }
    Err("a varint longer than 10 bytes".into())
}

fn skip<'a>(bytes: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if len > bytes.len() {
        return Err(format!(
            "expected {len} bytes, found {} before the end of its message",
            bytes.len()
        ));
    }
    let (body, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(body)
}
