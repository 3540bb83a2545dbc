//! What a purpose-built map could buy W3: 200k random inserts into imbl's `OrdMap` with
//! `KvState`'s entry shape (a 24-byte entry: key head, key pointer, value pointer)
//! against a minimal copy-on-write B+-tree that keeps each node's key heads in their own
//! array (64 heads = 512 bytes, so a binary search touches ~4 cache lines instead of the
//! ~6 of imbl's 1.5 KiB leaves). Insert-only, checked against the sorted input; a bound
//! for benches/compare/NOTES.md section 2, not a map walstate uses.
//!
//! `cargo run --release --example leaf_layout` (from `benches/compare`).

use std::sync::Arc;
use std::time::Instant;

/// Entries per node, as imbl's.
const NODE: usize = 64;
/// An entry's payload beside its head: key pointer and value pointer stand-ins.
type Entry = [u64; 2];

#[derive(Clone)]
struct Leaf {
    len: usize,
    heads: [u64; NODE],
    entries: [Entry; NODE],
}

#[derive(Clone)]
struct Branch {
    /// Separators: `children[i]` holds heads below `heads[i]`, `children[len]` the rest.
    len: usize,
    heads: [u64; NODE],
    children: Vec<Node>,
}

#[derive(Clone)]
enum Node {
    Leaf(Arc<Leaf>),
    Branch(Arc<Branch>),
}

/// A node split off by an insert, with the first head it holds.
struct Split(u64, Node);

fn empty_leaf() -> Leaf {
    Leaf {
        len: 0,
        heads: [0; NODE],
        entries: [[0; 2]; NODE],
    }
}

fn leaf_insert_at(leaf: &mut Leaf, at: usize, head: u64, entry: Entry) {
    leaf.heads.copy_within(at..leaf.len, at + 1);
    leaf.entries.copy_within(at..leaf.len, at + 1);
    leaf.heads[at] = head;
    leaf.entries[at] = entry;
    leaf.len += 1;
}

fn insert(node: &mut Node, head: u64, entry: Entry) -> Option<Split> {
    match node {
        Node::Leaf(leaf) => {
            let leaf = Arc::make_mut(leaf);
            let at = match leaf.heads[..leaf.len].binary_search(&head) {
                Ok(at) => {
                    leaf.entries[at] = entry;
                    return None;
                }
                Err(at) => at,
            };
            if leaf.len < NODE {
                leaf_insert_at(leaf, at, head, entry);
                return None;
            }
            let half = NODE / 2;
            let mut right = empty_leaf();
            right.heads[..NODE - half].copy_from_slice(&leaf.heads[half..]);
            right.entries[..NODE - half].copy_from_slice(&leaf.entries[half..]);
            right.len = NODE - half;
            leaf.len = half;
            let separator = right.heads[0];
            if at <= half {
                leaf_insert_at(leaf, at, head, entry);
            } else {
                leaf_insert_at(&mut right, at - half, head, entry);
            }
            Some(Split(separator, Node::Leaf(Arc::new(right))))
        }
        Node::Branch(branch) => {
            let branch = Arc::make_mut(branch);
            let child = match branch.heads[..branch.len].binary_search(&head) {
                Ok(at) => at + 1,
                Err(at) => at,
            };
            let Split(separator, new) = insert(&mut branch.children[child], head, entry)?;
            branch.children.insert(child + 1, new);
            if branch.len < NODE {
                branch.heads.copy_within(child..branch.len, child + 1);
                branch.heads[child] = separator;
                branch.len += 1;
                return None;
            }
            let mut heads = branch.heads.to_vec();
            heads.insert(child, separator);
            let half = heads.len() / 2;
            let mut right = Branch {
                len: heads.len() - half - 1,
                heads: [0; NODE],
                children: branch.children.split_off(half + 1),
            };
            right.heads[..right.len].copy_from_slice(&heads[half + 1..]);
            branch.heads[..half].copy_from_slice(&heads[..half]);
            branch.len = half;
            Some(Split(heads[half], Node::Branch(Arc::new(right))))
        }
    }
}

struct HeadsTree {
    root: Node,
}

impl HeadsTree {
    fn new() -> Self {
        HeadsTree {
            root: Node::Leaf(Arc::new(empty_leaf())),
        }
    }

    fn insert(&mut self, head: u64, entry: Entry) {
        if let Some(Split(separator, new)) = insert(&mut self.root, head, entry) {
            let old = std::mem::replace(&mut self.root, Node::Leaf(Arc::new(empty_leaf())));
            let mut heads = [0; NODE];
            heads[0] = separator;
            self.root = Node::Branch(Arc::new(Branch {
                len: 1,
                heads,
                children: vec![old, new],
            }));
        }
    }

    fn heads_in_order(&self, out: &mut Vec<u64>) {
        fn walk(node: &Node, out: &mut Vec<u64>) {
            match node {
                Node::Leaf(leaf) => out.extend_from_slice(&leaf.heads[..leaf.len]),
                Node::Branch(branch) => branch.children.iter().for_each(|c| walk(c, out)),
            }
        }
        walk(&self.root, out);
    }
}

/// splitmix64, as the comparison's data.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    const INSERTS: usize = 200_000;
    const ROUNDS: u64 = 9;
    let (mut imbl_ns, mut heads_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let mut seed = round;
        let heads: Vec<u64> = (0..INSERTS).map(|_| splitmix(&mut seed)).collect();

        // imbl with KvState's entry shape: (head, key pointer) -> value pointer.
        let keys: Vec<Box<u8>> = (0..INSERTS).map(|i| Box::new(i as u8)).collect();
        let mut map: imbl::OrdMap<(u64, Box<u8>), u64> = imbl::OrdMap::new();
        let start = Instant::now();
        for (head, key) in heads.iter().zip(keys) {
            map.insert((*head, key), *head);
        }
        let imbl_time = start.elapsed();

        let mut tree = HeadsTree::new();
        let start = Instant::now();
        for head in &heads {
            tree.insert(*head, [*head, 1]);
        }
        let heads_time = start.elapsed();

        let mut expected = heads.clone();
        expected.sort_unstable();
        expected.dedup();
        let mut got = Vec::with_capacity(expected.len());
        tree.heads_in_order(&mut got);
        assert_eq!(got, expected, "the heads tree lost or misordered keys");
        assert_eq!(map.len(), expected.len());

        let per = |d: std::time::Duration| d.as_nanos() as f64 / INSERTS as f64;
        imbl_ns.push(per(imbl_time));
        heads_ns.push(per(heads_time));
        ratios.push(imbl_time.as_secs_f64() / heads_time.as_secs_f64());
        println!(
            "round {round}: imbl {:.0} ns/insert, heads array {:.0} ns/insert, {:.2}x",
            per(imbl_time),
            per(heads_time),
            ratios.last().unwrap()
        );
    }
    println!(
        "median of {ROUNDS}: imbl {:.0} ns, heads array {:.0} ns, ratio {:.2}x, saved {:.0} ns per insert",
        median(imbl_ns.clone()),
        median(heads_ns.clone()),
        median(ratios),
        median(imbl_ns) - median(heads_ns)
    );
}
