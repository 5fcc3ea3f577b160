//! The subset of Python's pickle machine that `torch.save` uses (protocol 2, with the opcodes
//! of later protocols that pickle may still emit), run without calling anything: a class is a
//! name, a call is a record of what would be called with what.
//!
//! candle's `candle_core::pickle::Stack` does the same, but allocates whatever length a string
//! opcode claims, clones memoised objects without limit, shifts out of range on `LONG1` of more
//! than 8 bytes (the legacy format's magic number is 10) and indexes tuples without checking
//! their length, so content could panic it or exhaust memory. This one bounds every length by
//! the bytes that remain, the nesting depth and the bytes that memo reads may copy.

/// A value on the pickle machine's stack.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, little-endian two's complement (`LONG1`/`LONG4`).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Node>),
    List(Vec<Node>),
    Dict(Vec<(Node, Node)>),
    /// `module.name`, as `GLOBAL` names it.
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)` (`REDUCE`, `NEWOBJ`).
    Call {
        callable: Box<Node>,
        args: Box<Node>,
    },
    /// `object.__setstate__(state)` (`BUILD`).
    Build {
        object: Box<Node>,
        state: Box<Node>,
    },
    /// What the caller's `persistent_load` would be given (`BINPERSID`).
    Persistent(Box<Node>),
    Mark,
}

/// A value with the depth and size of the tree under it, kept so that neither is recomputed.
/// `size` is in bytes, roughly: [`NODE_BYTES`] per node plus the bytes of its strings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    depth: u32,
    size: u64,
}

/// Deeper trees are refused: dropping and walking them is recursive.
const MAX_DEPTH: u32 = 100;
/// What one node costs in `size`, about what it takes in memory.
const NODE_BYTES: u64 = 64;
/// Bytes that memo reads (`BINGET`, `MEMOIZE`, `DUP`) may copy in all: 64 MiB, plus 64 per
/// byte of pickle. What torch.save writes copies about 4.5 KB per tensor (memoised argument
/// tuples and calls) from 130 to 170 pickle bytes: 30 per byte, 100,000 tensors in 450 MB.
const COPY_BASE: u64 = 64 << 20;

impl Node {
    fn leaf(value: Value) -> Self {
        let payload = match &value {
            Value::Str(s) => s.len(),
            Value::Bytes(b) | Value::BigInt(b) => b.len(),
            Value::Global { module, name } => module.len() + name.len(),
            _ => 0,
        };
        Self {
            value,
            depth: 1,
            size: NODE_BYTES + payload as u64,
        }
    }

    fn new(value: Value) -> Result<Self, String> {
        let mut node = Self::leaf(value);
        let value = std::mem::replace(&mut node.value, Value::None);
        let children: Vec<&Node> = match &value {
            Value::Tuple(v) | Value::List(v) => v.iter().collect(),
            Value::Dict(v) => v.iter().flat_map(|(k, v)| [k, v]).collect(),
            Value::Call { callable, args } => vec![callable, args],
            Value::Build { object, state } => vec![object, state],
            Value::Persistent(v) => vec![v],
            _ => Vec::new(),
        };
        for child in children {
            node.absorb(child)?;
        }
        node.value = value;
        Ok(node)
    }

    fn absorb(&mut self, child: &Node) -> Result<(), String> {
        self.depth = self.depth.max(child.depth + 1);
        self.size = self.size.saturating_add(child.size);
        if self.depth > MAX_DEPTH {
            return Err(format!("objects nested more than {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one that fits in 64 bits.
    pub fn as_int(&self) -> Option<i64> {
        match self.value {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The items, if this is a tuple (or a list).
    pub fn as_tuple(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// `module.name` of a global.
    pub fn global(&self) -> Option<(&str, &str)> {
        match &self.value {
            Value::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    /// Every global named anywhere in the tree.
    pub fn globals(&self, out: &mut Vec<(String, String)>) {
        match &self.value {
            Value::Global { module, name } => out.push((module.clone(), name.clone())),
            Value::Tuple(v) | Value::List(v) => v.iter().for_each(|n| n.globals(out)),
            Value::Dict(v) => v.iter().for_each(|(k, n)| {
                k.globals(out);
                n.globals(out)
            }),
            Value::Call { callable, args } => {
                callable.globals(out);
                args.globals(out)
            }
            Value::Build { object, state } => {
                object.globals(out);
                state.globals(out)
            }
            Value::Persistent(v) => v.globals(out),
            _ => {}
        }
    }

    /// A short description of the value's kind, for messages.
    pub fn kind(&self) -> String {
        match &self.value {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) | Value::BigInt(_) => "an int".into(),
            Value::Float(_) => "a float".into(),
            Value::Str(_) => "a str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Global { module, name } => format!("the class {module}.{name}"),
            Value::Call { callable, .. }
            | Value::Build {
                object: callable, ..
            } => match callable.global() {
                Some((m, n)) => format!("an object of {m}.{n}"),
                None => callable.kind(),
            },
            Value::Persistent(_) => "a persistent reference".into(),
            Value::Mark => "a mark".into(),
        }
    }
}

/// The pickle machine over one byte slice; `pos` is where the next pickle starts.
pub(crate) struct Machine<'a> {
    bytes: &'a [u8],
    pub pos: usize,
    copied: u64,
}

impl<'a> Machine<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            copied: 0,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!(
                "the pickle ends at byte {} where {n} more bytes were expected",
                self.bytes.len()
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len_u32(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.le::<4>()?) as usize)
    }

    fn len_u64(&mut self) -> Result<usize, String> {
        usize::try_from(u64::from_le_bytes(self.le::<8>()?))
            .map_err(|_| "a length beyond the address space".to_string())
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err("a GLOBAL name without its newline".into());
        };
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn text(&mut self, n: usize) -> Result<String, String> {
        let at = self.pos;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| format!("a string at byte {at} that is not UTF-8"))
    }

    /// Runs one pickle, to its `STOP`, and returns the object it builds.
    pub fn load(&mut self) -> Result<Node, String> {
        let mut stack: Vec<Node> = Vec::new();
        let mut memo: std::collections::HashMap<u32, Node> = std::collections::HashMap::new();
        let empty = || "an opcode found the stack empty".to_string();
        loop {
            let at = self.pos;
            let op = self.u8()?;
            let value = match op {
                0x80 => {
                    let protocol = self.u8()?;
                    if protocol > 5 {
                        return Err(format!("pickle protocol {protocol}, above 5"));
                    }
                    continue;
                }
                0x95 => {
                    self.take(8)?;
                    continue;
                }
                b'.' => return stack.pop().ok_or_else(empty),
                b'(' => Value::Mark,
                b')' => Value::Tuple(Vec::new()),
                b']' => Value::List(Vec::new()),
                b'}' => Value::Dict(Vec::new()),
                b'N' => Value::None,
                0x88 => Value::Bool(true),
                0x89 => Value::Bool(false),
                b'K' => Value::Int(i64::from(self.u8()?)),
                b'M' => Value::Int(i64::from(u16::from_le_bytes(self.le::<2>()?))),
                b'J' => Value::Int(i64::from(i32::from_le_bytes(self.le::<4>()?))),
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        usize::from(self.u8()?)
                    } else {
                        self.len_u32()?
                    };
                    let digits = self.take(n)?;
                    if n <= 8 {
                        let fill = if digits.last().is_some_and(|&b| b & 0x80 != 0) {
                            0xff
                        } else {
                            0
                        };
                        let mut le = [fill; 8];
                        le[..n].copy_from_slice(digits);
                        Value::Int(i64::from_le_bytes(le))
                    } else {
                        Value::BigInt(digits.to_vec())
                    }
                }
                b'G' => Value::Float(f64::from_be_bytes(self.le::<8>()?)),
                b'X' => {
                    let n = self.len_u32()?;
                    Value::Str(self.text(n)?)
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    Value::Str(self.text(n)?)
                }
                0x8d => {
                    let n = self.len_u64()?;
                    Value::Str(self.text(n)?)
                }
                b'U' | b'C' => {
                    let n = usize::from(self.u8()?);
                    Value::Bytes(self.take(n)?.to_vec())
                }
                b'T' | b'B' => {
                    let n = self.len_u32()?;
                    Value::Bytes(self.take(n)?.to_vec())
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    Value::Global { module, name }
                }
                0x93 => {
                    let name = stack.pop().ok_or_else(empty)?;
                    let module = stack.pop().ok_or_else(empty)?;
                    match (module.value, name.value) {
                        (Value::Str(module), Value::Str(name)) => Value::Global { module, name },
                        _ => return Err(format!("STACK_GLOBAL at byte {at} without two strings")),
                    }
                }
                b't' | b'l' => {
                    let items = pop_mark(&mut stack)?;
                    if op == b't' {
                        Value::Tuple(items)
                    } else {
                        Value::List(items)
                    }
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let from = stack.len().checked_sub(n).ok_or_else(empty)?;
                    Value::Tuple(stack.split_off(from))
                }
                b'd' => {
                    let items = pop_mark(&mut stack)?;
                    Value::Dict(pairs(items, at)?)
                }
                b'a' | b'e' | b's' | b'u' => {
                    let items = if op == b'a' || op == b's' {
                        let n = if op == b'a' { 1 } else { 2 };
                        let from = stack.len().checked_sub(n).ok_or_else(empty)?;
                        stack.split_off(from)
                    } else {
                        pop_mark(&mut stack)?
                    };
                    let target = stack.last_mut().ok_or_else(empty)?;
                    let mut added = Node::leaf(Value::None);
                    for item in &items {
                        added.absorb(item)?;
                    }
                    match (&mut target.value, op) {
                        (Value::List(list), b'a' | b'e') => list.extend(items),
                        (Value::Dict(dict), b's' | b'u') => dict.extend(pairs(items, at)?),
                        _ => {
                            return Err(format!(
                                "opcode {:?} at byte {at} on {}",
                                op as char,
                                target.kind()
                            ))
                        }
                    }
                    target.absorb(&added)?;
                    continue;
                }
                b'R' | 0x81 => {
                    let args = stack.pop().ok_or_else(empty)?;
                    let callable = stack.pop().ok_or_else(empty)?;
                    // `OrderedDict()`: the state_dict's own type, read as the dict it is.
                    let ordered_dict =
                        matches!(callable.global(), Some(("collections", "OrderedDict")))
                            && args.as_tuple().is_some_and(<[Node]>::is_empty);
                    if ordered_dict {
                        Value::Dict(Vec::new())
                    } else {
                        Value::Call {
                            callable: Box::new(callable),
                            args: Box::new(args),
                        }
                    }
                }
                b'b' => {
                    let state = stack.pop().ok_or_else(empty)?;
                    let object = stack.pop().ok_or_else(empty)?;
                    if matches!(object.value, Value::Dict(_)) {
                        // An OrderedDict's attributes (a state_dict's `_metadata`), not items.
                        stack.push(object);
                        continue;
                    }
                    Value::Build {
                        object: Box::new(object),
                        state: Box::new(state),
                    }
                }
                b'Q' => Value::Persistent(Box::new(stack.pop().ok_or_else(empty)?)),
                b'q' | b'r' | 0x94 => {
                    let id = match op {
                        b'q' => u32::from(self.u8()?),
                        b'r' => u32::from_le_bytes(self.le::<4>()?),
                        _ => u32::try_from(memo.len()).map_err(|_| "too many memo entries")?,
                    };
                    let top = stack.last().ok_or_else(empty)?.clone();
                    self.copy(&top)?;
                    memo.insert(id, top);
                    continue;
                }
                b'h' | b'j' => {
                    let id = if op == b'h' {
                        u32::from(self.u8()?)
                    } else {
                        u32::from_le_bytes(self.le::<4>()?)
                    };
                    let node = memo
                        .get(&id)
                        .ok_or_else(|| format!("memo entry {id} read at byte {at} before written"))?
                        .clone();
                    self.copy(&node)?;
                    stack.push(node);
                    continue;
                }
                b'0' => {
                    stack.pop().ok_or_else(empty)?;
                    continue;
                }
                b'1' => {
                    pop_mark(&mut stack)?;
                    continue;
                }
                b'2' => {
                    let top = stack.last().ok_or_else(empty)?.clone();
                    self.copy(&top)?;
                    stack.push(top);
                    continue;
                }
                other => {
                    return Err(format!(
                        "opcode 0x{other:02x} at byte {at}, which torch.save does not write"
                    ))
                }
            };
            stack.push(Node::new(value)?);
        }
    }

    fn copy(&mut self, node: &Node) -> Result<(), String> {
        self.copied = self.copied.saturating_add(node.size);
        let limit = COPY_BASE.saturating_add(64 * self.bytes.len() as u64);
        if self.copied > limit {
            return Err(format!(
                "memo reads copy more than {limit} bytes (64 MiB plus 64 per byte of pickle): \
                 a pickle built to exhaust memory"
            ));
        }
        Ok(())
    }
}

fn pop_mark(stack: &mut Vec<Node>) -> Result<Vec<Node>, String> {
    let mark = stack
        .iter()
        .rposition(|n| n.value == Value::Mark)
        .ok_or("an opcode looked for a MARK that is not there")?;
    let items = stack.split_off(mark + 1);
    stack.pop();
    Ok(items)
}

fn pairs(items: Vec<Node>, at: usize) -> Result<Vec<(Node, Node)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err(format!("an odd number of dict items at byte {at}"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long1_wider_than_64_bits_is_kept_whole() {
        // The legacy torch.save magic number 0x1950a86a20f9469cfc6c, as LONG1 of 10 bytes.
        let bytes = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
        let node = Machine::new(bytes).load().unwrap();
        assert_eq!(
            node.value,
            Value::BigInt(vec![
                0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19
            ])
        );
    }

    #[test]
    fn lengths_are_bounded_by_the_bytes_left() {
        let bytes = b"\x80\x02X\xff\xff\xff\xff";
        let error = Machine::new(bytes).load().unwrap_err();
        assert!(error.contains("more bytes were expected"), "{error}");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut bytes = b"\x80\x02N".to_vec();
        bytes.extend(std::iter::repeat_n(0x85u8, 1000));
        bytes.push(b'.');
        let error = Machine::new(&bytes).load().unwrap_err();
        assert!(error.contains("nested"), "{error}");
    }

    #[test]
    fn memo_copies_are_bounded() {
        // A list doubled 40 times through the memo.
        let mut bytes = b"\x80\x02]".to_vec();
        for _ in 0..40 {
            bytes.extend(b"q\x00h\x00\x86");
        }
        bytes.push(b'.');
        let error = Machine::new(&bytes).load().unwrap_err();
        assert!(
            error.contains("nested") || error.contains("memo"),
            "{error}"
        );
    }

    #[test]
    fn memo_copies_are_counted_in_bytes() {
        // One 1 MB string memoised and read back 5,000 times: 5 GB of copies from a 1 MB
        // pickle, refused after about 80 of them.
        let mut bytes = b"\x80\x02](X".to_vec();
        bytes.extend((1u32 << 20).to_le_bytes());
        bytes.extend(std::iter::repeat_n(b'a', 1 << 20));
        bytes.extend(b"q\x00");
        for _ in 0..5000 {
            bytes.extend(b"h\x00");
        }
        bytes.extend(b"e.");
        let error = Machine::new(&bytes).load().unwrap_err();
        assert!(error.contains("memo reads copy more than"), "{error}");
    }

    #[test]
    fn empty_stack_and_unknown_opcodes_are_errors() {
        assert!(Machine::new(b".").load().is_err());
        assert!(Machine::new(b"\x80\x02\xff").load().is_err());
        assert!(Machine::new(b"\x80\x02a").load().is_err());
        assert!(Machine::new(b"").load().is_err());
    }
}
