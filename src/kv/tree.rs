//! A persistent (copy-on-write) B+tree: the ordered map under [`super::KvState`].
//!
//! Entries live in leaves of up to [`LEAF_MAX`] pairs; branches hold up to
//! [`BRANCH_MAX`] children and one separator key between each two (the first key of the
//! right one's subtree). Nodes are reference counted: `clone` of a tree is O(1), and a
//! write copies only the nodes on its path that another tree still shares, so a
//! checkpoint's snapshot costs nothing until the live tree changes under it.
//!
//! Unlike `imbl::OrdMap` it can be built from a sorted stream in one pass
//! ([`TreeBuilder`]): full leaves, no per-key descent, no splits. That is what loads a
//! checkpoint at the speed of reading it, and full leaves are less memory per entry.
//!
//! Invariants (checked by [`Tree::check`] in tests): every leaf is at the same depth;
//! keys strictly increase across the whole tree; in a branch, separator `i` is the first
//! key of child `i + 1`'s subtree; no node is empty and no node is over its maximum;
//! below the root a leaf holds at least [`LEAF_MIN`] entries and a branch at least
//! [`BRANCH_MIN`] children; the root is a leaf (maybe empty) or a branch of at least two
//! children; `len` is the number of entries.

use std::borrow::Borrow;
use std::fmt;
use std::iter::FusedIterator;
use std::ops::Bound;
use std::sync::Arc;

/// Most entries in a leaf.
pub(super) const LEAF_MAX: usize = 64;
/// Most children of a branch.
pub(super) const BRANCH_MAX: usize = 64;
/// Fewest entries in a leaf below the root.
const LEAF_MIN: usize = LEAF_MAX / 4;
/// Fewest children of a branch below the root.
const BRANCH_MIN: usize = BRANCH_MAX / 4;

type Leaf<K, V> = Vec<(K, V)>;

enum Node<K, V> {
    Leaf(Arc<Leaf<K, V>>),
    Branch(Arc<Branch<K, V>>),
}

impl<K, V> Clone for Node<K, V> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(leaf) => Node::Leaf(Arc::clone(leaf)),
            Node::Branch(branch) => Node::Branch(Arc::clone(branch)),
        }
    }
}

#[derive(Clone)]
struct Branch<K, V> {
    /// `keys[i]` is the first key of `children[i + 1]`'s subtree; one fewer than children.
    keys: Vec<K>,
    children: Vec<Node<K, V>>,
}

impl<K, V> Node<K, V> {
    /// Entries of a leaf, children of a branch.
    fn width(&self) -> usize {
        match self {
            Node::Leaf(leaf) => leaf.len(),
            Node::Branch(branch) => branch.children.len(),
        }
    }

    fn is_underfull(&self) -> bool {
        match self {
            Node::Leaf(leaf) => leaf.len() < LEAF_MIN,
            Node::Branch(branch) => branch.children.len() < BRANCH_MIN,
        }
    }
}

/// An ordered map from `K` to `V` with O(1) clones (see the module docs).
pub(super) struct Tree<K, V> {
    root: Node<K, V>,
    len: usize,
}

impl<K, V> Clone for Tree<K, V> {
    fn clone(&self) -> Self {
        Tree {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<K, V> Default for Tree<K, V> {
    fn default() -> Self {
        Tree {
            root: Node::Leaf(Arc::new(Vec::new())),
            len: 0,
        }
    }
}

/// What an insert below a node did.
enum Inserted<K, V> {
    /// A new entry; the node did not split.
    Added,
    /// The key was there: its old entry.
    Replaced((K, V)),
    /// A new entry, and the node split: the new right sibling and its first key.
    Split(K, Node<K, V>),
}

impl<K: Ord + Clone, V: Clone> Tree<K, V> {
    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry under `key`.
    pub(super) fn get<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut node = &self.root;
        loop {
            match node {
                Node::Branch(branch) => node = &branch.children[child_for(&branch.keys, key)],
                Node::Leaf(leaf) => {
                    return leaf
                        .binary_search_by(|(k, _)| k.borrow().cmp(key))
                        .ok()
                        .map(|i| (&leaf[i].0, &leaf[i].1));
                }
            }
        }
    }

    /// Stores `value` under `key`; returns the entry it replaces (key and value: the
    /// stored key is the new one).
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        match insert_into(&mut self.root, key, value) {
            Inserted::Replaced(old) => Some(old),
            Inserted::Added => {
                self.len += 1;
                None
            }
            Inserted::Split(separator, right) => {
                let left = std::mem::replace(&mut self.root, Node::Leaf(Arc::new(Vec::new())));
                self.root = Node::Branch(Arc::new(Branch {
                    keys: vec![separator],
                    children: vec![left, right],
                }));
                self.len += 1;
                None
            }
        }
    }

    /// Removes the entry under `key`; returns it. A miss copies no shared node.
    pub(super) fn remove<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key)?;
        let removed = remove_from(&mut self.root, key);
        debug_assert!(removed.is_some(), "a key found is removed");
        // A root branch left with one child gives way to it.
        while let Node::Branch(branch) = &self.root
            && branch.children.len() == 1
        {
            let child = branch.children[0].clone();
            self.root = child;
        }
        self.len -= usize::from(removed.is_some());
        removed
    }

    /// Entries with keys between `start` and `end`, in order (both ways).
    pub(super) fn range<'a, Q>(&'a self, start: Bound<&Q>, end: Bound<&Q>) -> Range<'a, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        Range::new(&self.root, start, end)
    }

    /// All entries, in order (both ways).
    pub(super) fn iter(&self) -> Range<'_, K, V> {
        Range::new::<K>(&self.root, Bound::Unbounded, Bound::Unbounded)
    }

    /// Checks every invariant of the module docs; panics naming the first broken one.
    #[cfg(test)]
    pub(super) fn check(&self) {
        let mut count = 0;
        let mut last: Option<&K> = None;
        let mut leaf_depth = None;
        check_node(&self.root, 0, true, &mut leaf_depth, &mut last, &mut count);
        assert_eq!(count, self.len, "len counts the entries");
        if let Node::Branch(branch) = &self.root {
            assert!(branch.children.len() >= 2, "a root branch has two children");
        }
    }
}

/// The child of a branch with separators `keys` whose subtree may hold `key`.
fn child_for<K: Borrow<Q>, Q: Ord + ?Sized>(keys: &[K], key: &Q) -> usize {
    keys.partition_point(|separator| separator.borrow() <= key)
}

fn insert_into<K: Ord + Clone, V: Clone>(node: &mut Node<K, V>, key: K, value: V) -> Inserted<K, V> {
    match node {
        Node::Leaf(leaf) => {
            let leaf = Arc::make_mut(leaf);
            match leaf.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(i) => return Inserted::Replaced(std::mem::replace(&mut leaf[i], (key, value))),
                Err(i) => leaf.insert(i, (key, value)),
            }
            if leaf.len() <= LEAF_MAX {
                return Inserted::Added;
            }
            let right = leaf.split_off(leaf.len() / 2);
            Inserted::Split(right[0].0.clone(), Node::Leaf(Arc::new(right)))
        }
        Node::Branch(branch) => {
            let branch = Arc::make_mut(branch);
            let i = child_for(&branch.keys, &key);
            match insert_into(&mut branch.children[i], key, value) {
                Inserted::Split(separator, right) => {
                    branch.keys.insert(i, separator);
                    branch.children.insert(i + 1, right);
                    if branch.children.len() <= BRANCH_MAX {
                        return Inserted::Added;
                    }
                    let (separator, right) = split_branch(branch);
                    Inserted::Split(separator, right)
                }
                done => done,
            }
        }
    }
}

/// Splits `branch` in two halves: returns the separator between them and the right one.
fn split_branch<K, V>(branch: &mut Branch<K, V>) -> (K, Node<K, V>) {
    let mid = branch.children.len() / 2;
    let right_children = branch.children.split_off(mid);
    let right_keys = branch.keys.split_off(mid);
    let separator = branch
        .keys
        .pop()
        .expect("a branch being split has a separator left of its middle"); // ok: 65 children, mid 32
    (
        separator,
        Node::Branch(Arc::new(Branch {
            keys: right_keys,
            children: right_children,
        })),
    )
}

/// Removes `key` below `node` (which holds it), then refills an underfull child.
fn remove_from<K, V: Clone, Q>(node: &mut Node<K, V>, key: &Q) -> Option<(K, V)>
where
    K: Ord + Clone + Borrow<Q>,
    Q: Ord + ?Sized,
{
    match node {
        Node::Leaf(leaf) => {
            let i = leaf.binary_search_by(|(k, _)| k.borrow().cmp(key)).ok()?;
            Some(Arc::make_mut(leaf).remove(i))
        }
        Node::Branch(branch) => {
            let branch = Arc::make_mut(branch);
            let i = child_for(&branch.keys, key);
            let removed = remove_from(&mut branch.children[i], key)?;
            if i > 0 {
                // The child's first key may have been the one removed.
                if let Some(first) = first_key(&branch.children[i]) {
                    branch.keys[i - 1] = first.clone();
                }
            }
            if branch.children[i].is_underfull() && branch.children.len() > 1 {
                refill(branch, i);
            }
            Some(removed)
        }
    }
}

/// The first key of `node`'s subtree.
fn first_key<K, V>(node: &Node<K, V>) -> Option<&K> {
    match node {
        Node::Leaf(leaf) => leaf.first().map(|(k, _)| k),
        Node::Branch(branch) => first_key(branch.children.first()?),
    }
}

/// Child `i` of `branch` is underfull: merges it with a neighbour, or, if the two do not
/// fit in one node, shares their entries (children) evenly between them.
fn refill<K: Clone, V: Clone>(branch: &mut Branch<K, V>, i: usize) {
    let left = if i > 0 { i - 1 } else { i };
    let separator = branch.keys.remove(left);
    let right = branch.children.remove(left + 1);
    let merged = join(&mut branch.children[left], separator, right);
    if let Some((separator, right)) = merged {
        branch.keys.insert(left, separator);
        branch.children.insert(left + 1, right);
    }
}

/// Appends `right` (whose first key is `separator`) to `left`, both at the same depth.
/// If the result is over its maximum it is split evenly: returns the right half and its
/// first key.
fn join<K: Clone, V: Clone>(
    left: &mut Node<K, V>,
    separator: K,
    right: Node<K, V>,
) -> Option<(K, Node<K, V>)> {
    match (left, right) {
        (Node::Leaf(left), Node::Leaf(right)) => {
            let left = Arc::make_mut(left);
            left.extend(owned(right));
            if left.len() <= LEAF_MAX {
                return None;
            }
            let right = left.split_off(left.len() / 2);
            Some((right[0].0.clone(), Node::Leaf(Arc::new(right))))
        }
        (Node::Branch(left), Node::Branch(right)) => {
            let left = Arc::make_mut(left);
            let right = owned(right);
            left.keys.push(separator);
            left.keys.extend(right.keys);
            left.children.extend(right.children);
            if left.children.len() <= BRANCH_MAX {
                return None;
            }
            Some(split_branch(left))
        }
        _ => unreachable!("siblings are at the same depth"),
    }
}

/// The node's content, moved out if no other tree shares it, else copied.
fn owned<T: Clone>(shared: Arc<T>) -> T {
    Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone())
}

#[cfg(test)]
fn check_node<'a, K: Ord, V>(
    node: &'a Node<K, V>,
    depth: usize,
    is_root: bool,
    leaf_depth: &mut Option<usize>,
    last: &mut Option<&'a K>,
    count: &mut usize,
) {
    match node {
        Node::Leaf(leaf) => {
            assert_eq!(*leaf_depth.get_or_insert(depth), depth, "leaves at one depth");
            assert!(leaf.len() <= LEAF_MAX, "leaf over its maximum");
            assert!(is_root || leaf.len() >= LEAF_MIN, "leaf below its minimum");
            for (key, _) in leaf.iter() {
                assert!(last.is_none_or(|last| last < key), "keys strictly increase");
                *last = Some(key);
                *count += 1;
            }
        }
        Node::Branch(branch) => {
            let children = branch.children.len();
            assert!(children <= BRANCH_MAX, "branch over its maximum");
            assert!(is_root || children >= BRANCH_MIN, "branch below its minimum");
            assert_eq!(branch.keys.len() + 1, children, "one separator between children");
            for (i, child) in branch.children.iter().enumerate() {
                if i > 0 {
                    assert!(
                        first_key(child) == Some(&branch.keys[i - 1]),
                        "separator {} is its right child's first key",
                        i - 1
                    );
                }
                check_node(child, depth + 1, false, leaf_depth, last, count);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Iteration

/// A position between entries: the leaf, the index in it, and the path to the leaf.
struct Cursor<'a, K, V> {
    /// Branches from the root down, each with the index of the child taken.
    path: Vec<(&'a Branch<K, V>, usize)>,
    leaf: &'a [(K, V)],
    index: usize,
}

impl<K, V> Clone for Cursor<'_, K, V> {
    fn clone(&self) -> Self {
        Cursor {
            path: self.path.clone(),
            leaf: self.leaf,
            index: self.index,
        }
    }
}

impl<'a, K, V> Cursor<'a, K, V> {
    /// Descends from `node`, choosing at each branch with `pick(branch)` and in the leaf
    /// with `at(leaf)`.
    fn descend(
        mut node: &'a Node<K, V>,
        mut path: Vec<(&'a Branch<K, V>, usize)>,
        pick: impl Fn(&'a Branch<K, V>) -> usize,
        at: impl FnOnce(&'a [(K, V)]) -> usize,
    ) -> Self {
        loop {
            match node {
                Node::Branch(branch) => {
                    let i = pick(branch);
                    path.push((branch, i));
                    node = &branch.children[i];
                }
                Node::Leaf(leaf) => {
                    let index = at(leaf);
                    return Cursor { path, leaf, index };
                }
            }
        }
    }

    /// Moves to the start of the next leaf; false at the end of the tree.
    fn next_leaf(&mut self) -> bool {
        while let Some((branch, i)) = self.path.pop() {
            if i + 1 < branch.children.len() {
                let mut path = std::mem::take(&mut self.path);
                path.push((branch, i + 1));
                let child = &branch.children[i + 1];
                *self = Cursor::descend(child, path, |_| 0, |_| 0);
                return true;
            }
        }
        false
    }

    /// Moves to the end of the previous leaf; false at the start of the tree.
    fn previous_leaf(&mut self) -> bool {
        while let Some((branch, i)) = self.path.pop() {
            if i > 0 {
                let mut path = std::mem::take(&mut self.path);
                path.push((branch, i - 1));
                let child = &branch.children[i - 1];
                *self = Cursor::descend(child, path, |b| b.children.len() - 1, <[_]>::len);
                return true;
            }
        }
        false
    }

    fn same_place(&self, other: &Self) -> bool {
        std::ptr::eq(self.leaf, other.leaf) && self.index == other.index
    }
}

/// Entries of a [`Tree`] between two bounds, in key order, from either end.
pub(super) struct Range<'a, K, V> {
    /// Before the next entry `next` yields (always at an entry while not done).
    front: Option<Cursor<'a, K, V>>,
    /// After the next entry `next_back` yields (never at a leaf's start while not done).
    back: Option<Cursor<'a, K, V>>,
}

impl<'a, K: Ord, V> Range<'a, K, V> {
    fn new<Q>(root: &'a Node<K, V>, start: Bound<&Q>, end: Bound<&Q>) -> Self
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut front = match start {
            Bound::Unbounded => Cursor::descend(root, Vec::new(), |_| 0, |_| 0),
            Bound::Included(key) => Cursor::descend(
                root,
                Vec::new(),
                |b| child_for(&b.keys, key),
                |leaf| leaf.partition_point(|(k, _)| k.borrow() < key),
            ),
            Bound::Excluded(key) => Cursor::descend(
                root,
                Vec::new(),
                |b| child_for(&b.keys, key),
                |leaf| leaf.partition_point(|(k, _)| k.borrow() <= key),
            ),
        };
        let mut back = match end {
            Bound::Unbounded => Cursor::descend(
                root,
                Vec::new(),
                |b| b.children.len() - 1,
                <[_]>::len,
            ),
            Bound::Included(key) => Cursor::descend(
                root,
                Vec::new(),
                |b| child_for(&b.keys, key),
                |leaf| leaf.partition_point(|(k, _)| k.borrow() <= key),
            ),
            Bound::Excluded(key) => Cursor::descend(
                root,
                Vec::new(),
                |b| b.keys.partition_point(|separator| separator.borrow() < key),
                |leaf| leaf.partition_point(|(k, _)| k.borrow() < key),
            ),
        };
        let front_ok = front.index < front.leaf.len() || front.next_leaf();
        let back_ok = back.index > 0 || back.previous_leaf();
        let in_order = front_ok
            && back_ok
            && front.leaf[front.index].0 <= back.leaf[back.index - 1].0;
        if in_order {
            Range {
                front: Some(front),
                back: Some(back),
            }
        } else {
            Range {
                front: None,
                back: None,
            }
        }
    }
}

impl<'a, K, V> Iterator for Range<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        let front = self.front.as_mut()?;
        let (key, value) = &front.leaf[front.index];
        front.index += 1;
        let back = self.back.as_ref().expect("both ends or none"); // ok: set and cleared together
        if front.same_place(back) {
            self.front = None;
            self.back = None;
        } else if front.index == front.leaf.len() {
            let more = front.next_leaf();
            debug_assert!(more, "the back end lies ahead");
        }
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.front {
            None => (0, Some(0)),
            Some(_) => (1, None),
        }
    }
}

impl<K, V> DoubleEndedIterator for Range<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let back = self.back.as_mut()?;
        back.index -= 1;
        let (key, value) = &back.leaf[back.index];
        let front = self.front.as_ref().expect("both ends or none"); // ok: set and cleared together
        if front.same_place(back) {
            self.front = None;
            self.back = None;
        } else if back.index == 0 {
            let more = back.previous_leaf();
            debug_assert!(more, "the front end lies behind");
        }
        Some((key, value))
    }
}

impl<K, V> FusedIterator for Range<'_, K, V> {}

/// Moves the entries out of a tree in order, releasing each node once emptied (a node
/// another tree shares is copied, and then that tree's alone).
pub(super) struct IntoEntries<K, V> {
    /// Children still to visit, per level, from the root down.
    stack: Vec<std::vec::IntoIter<Node<K, V>>>,
    leaf: std::vec::IntoIter<(K, V)>,
}

impl<K: Clone, V: Clone> Iterator for IntoEntries<K, V> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(entry) = self.leaf.next() {
                return Some(entry);
            }
            let node = loop {
                let level = self.stack.last_mut()?;
                match level.next() {
                    Some(node) => break node,
                    None => {
                        self.stack.pop();
                    }
                }
            };
            match node {
                Node::Leaf(leaf) => self.leaf = owned(leaf).into_iter(),
                Node::Branch(branch) => self.stack.push(owned(branch).children.into_iter()),
            }
        }
    }
}

impl<K: Clone, V: Clone> IntoIterator for Tree<K, V> {
    type Item = (K, V);
    type IntoIter = IntoEntries<K, V>;

    fn into_iter(self) -> IntoEntries<K, V> {
        IntoEntries {
            stack: vec![vec![self.root].into_iter()],
            leaf: Vec::new().into_iter(),
        }
    }
}

impl<K: Ord + Clone + PartialEq, V: Clone + PartialEq> PartialEq for Tree<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<K: Ord + Clone + Eq, V: Clone + Eq> Eq for Tree<K, V> {}

impl<K: Ord + Clone + fmt::Debug, V: Clone + fmt::Debug> fmt::Debug for Tree<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

// ---------------------------------------------------------------------------------------
// Building from a sorted stream

/// Builds a [`Tree`] from entries pushed in strictly increasing key order, filling each
/// leaf and branch to its maximum (then evening out the last two of each level).
pub(super) struct TreeBuilder<K, V> {
    /// Finished leaves with their first keys.
    leaves: Vec<(K, Node<K, V>)>,
    current: Vec<(K, V)>,
    len: usize,
}

impl<K, V> Default for TreeBuilder<K, V> {
    fn default() -> Self {
        TreeBuilder {
            leaves: Vec::new(),
            current: Vec::with_capacity(LEAF_MAX),
            len: 0,
        }
    }
}

impl<K: Ord + Clone, V: Clone> TreeBuilder<K, V> {
    /// The last key pushed.
    pub(super) fn last_key(&self) -> Option<&K> {
        self.current.last().map(|(k, _)| k)
    }

    /// Appends an entry; its key must be greater than every key pushed before.
    pub(super) fn push(&mut self, key: K, value: V) {
        debug_assert!(self.last_key().is_none_or(|last| *last < key), "keys pushed in order");
        self.current.push((key, value));
        self.len += 1;
        if self.current.len() == LEAF_MAX {
            self.seal_leaf();
        }
    }

    fn seal_leaf(&mut self) {
        let leaf = std::mem::replace(&mut self.current, Vec::with_capacity(LEAF_MAX));
        if let Some((first, _)) = leaf.first() {
            self.leaves.push((first.clone(), Node::Leaf(Arc::new(leaf))));
        }
    }

    /// The tree of everything pushed.
    pub(super) fn finish(mut self) -> Tree<K, V> {
        self.seal_leaf();
        let mut level = self.leaves;
        even_out_last_two(&mut level);
        while level.len() > 1 {
            let mut parents = Vec::with_capacity(level.len().div_ceil(BRANCH_MAX));
            let mut nodes = level.into_iter().peekable();
            while nodes.peek().is_some() {
                let group: Vec<_> = nodes.by_ref().take(BRANCH_MAX).collect();
                let first = group[0].0.clone();
                let mut keys = Vec::with_capacity(group.len() - 1);
                let mut children = Vec::with_capacity(group.len());
                for (i, (key, child)) in group.into_iter().enumerate() {
                    if i > 0 {
                        keys.push(key);
                    }
                    children.push(child);
                }
                parents.push((first, Node::Branch(Arc::new(Branch { keys, children }))));
            }
            even_out_last_two(&mut parents);
            level = parents;
        }
        let root = level
            .pop()
            .map_or_else(|| Node::Leaf(Arc::new(Vec::new())), |(_, node)| node);
        Tree {
            root,
            len: self.len,
        }
    }
}

/// The last node of a level below its minimum takes from the one before it (both are
/// freshly built, so nothing is shared).
fn even_out_last_two<K: Clone, V: Clone>(level: &mut Vec<(K, Node<K, V>)>) {
    let n = level.len();
    if n < 2 || !level[n - 1].1.is_underfull() {
        return;
    }
    let (separator, last) = level.pop().expect("two nodes"); // ok: n >= 2, checked above
    let before = &mut level.last_mut().expect("two nodes").1; // ok: n >= 2, checked above
    debug_assert!(before.width() + last.width() > LEAF_MIN.max(BRANCH_MIN));
    if let Some(right) = join(before, separator, last) {
        level.push(right);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn built(n: u32) -> Tree<u32, u32> {
        let mut builder = TreeBuilder::default();
        for i in 0..n {
            builder.push(i * 2, i);
        }
        builder.finish()
    }

    #[test]
    fn built_trees_of_every_shape_hold_their_entries_in_order() {
        for n in (0..300).chain([4095, 4096, 4097, 64 * 64 * 3 + 5]) {
            let tree = built(n);
            tree.check();
            assert_eq!(tree.len(), n as usize);
            assert!(tree.iter().map(|(k, _)| *k).eq((0..n).map(|i| i * 2)));
            assert!(tree.iter().rev().map(|(k, _)| *k).eq((0..n).rev().map(|i| i * 2)));
            assert_eq!(tree.get(&(n.saturating_sub(1) * 2)).is_some(), n > 0);
            assert_eq!(tree.get(&1), None);
        }
    }

    #[test]
    fn a_clone_keeps_its_entries_while_the_original_changes() {
        let mut tree = built(5000);
        let snapshot = tree.clone();
        for i in 0..5000 {
            tree.insert(i * 2 + 1, i);
            if i % 3 == 0 {
                tree.remove(&(i * 2));
            }
        }
        tree.check();
        snapshot.check();
        assert!(snapshot.iter().map(|(k, v)| (*k, *v)).eq((0..5000).map(|i| (i * 2, i))));
        let collected: Vec<_> = snapshot.clone().into_iter().collect();
        assert_eq!(collected.len(), 5000);
        assert_eq!(snapshot.len(), 5000, "moving a clone's entries out leaves the others");
    }

    /// Three levels (more than 64 × 64 entries), emptied in a scrambled order down to
    /// a handful and filled again, with a snapshot kept from the start: branch merges,
    /// branch splits and root changes at every depth.
    #[test]
    fn a_deep_tree_emptied_and_refilled_in_scrambled_order_stays_balanced() {
        let n = 20_000u32;
        let mut tree = built(n);
        let snapshot = tree.clone();
        let mut model: BTreeMap<u32, u32> = (0..n).map(|i| (i * 2, i)).collect();
        let scrambled = |i: u32| (i.wrapping_mul(7919)) % n;
        for step in 0..n - 10 {
            let key = scrambled(step) * 2;
            assert_eq!(tree.remove(&key), model.remove_entry(&key));
            if step % 997 == 0 {
                tree.check();
            }
        }
        tree.check();
        assert!(tree.iter().eq(model.iter()));
        for step in 0..n {
            let key = scrambled(step) * 2 + 1;
            assert_eq!(tree.insert(key, step).map(|(_, v)| v), model.insert(key, step));
            if step % 997 == 0 {
                tree.check();
            }
        }
        tree.check();
        assert!(tree.iter().eq(model.iter()));
        assert!(tree.iter().rev().eq(model.iter().rev()));
        snapshot.check();
        assert!(snapshot.iter().map(|(k, v)| (*k, *v)).eq((0..n).map(|i| (i * 2, i))));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u16),
        Remove(u16),
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..2000u16, any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => (0..2000u16).prop_map(Op::Remove),
            1 => Just(Op::Snapshot),
        ]
    }

    fn bound(choice: u8, key: u16) -> Bound<u16> {
        match choice % 3 {
            0 => Bound::Unbounded,
            1 => Bound::Included(key),
            _ => Bound::Excluded(key),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Against BTreeMap: every operation's result, the contents and every invariant
        /// after each step, and snapshots taken along the way never change.
        #[test]
        fn behaves_like_a_btreemap(
            initial in 0..3000u16,
            ops in proptest::collection::vec(op(), 1..600),
            ranges in proptest::collection::vec((any::<u8>(), 0..2100u16, any::<u8>(), 0..2100u16, any::<bool>()), 1..20),
        ) {
            let mut builder = TreeBuilder::default();
            let mut model = BTreeMap::new();
            for k in (0..initial).map(|i| i.wrapping_mul(7) % 2000).collect::<std::collections::BTreeSet<_>>() {
                builder.push(k, k);
                model.insert(k, k);
            }
            let mut tree = builder.finish();
            let mut snapshots: Vec<(Tree<u16, u16>, BTreeMap<u16, u16>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(tree.insert(k, v).map(|(_, v)| v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(tree.remove(&k), model.remove_entry(&k)),
                    Op::Snapshot => snapshots.push((tree.clone(), model.clone())),
                }
                prop_assert_eq!(tree.len(), model.len());
            }
            tree.check();
            prop_assert!(tree.iter().map(|(k, v)| (*k, *v)).eq(model.iter().map(|(k, v)| (*k, *v))));
            prop_assert_eq!(tree.iter().next_back().map(|(k, v)| (*k, *v)), model.last_key_value().map(|(k, v)| (*k, *v)));
            for (a, ka, b, kb, reverse) in ranges {
                let (start, end) = (bound(a, ka), bound(b, kb));
                let valid = match (start, end) {
                    (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) if s > e => false,
                    (Bound::Excluded(s), Bound::Excluded(e)) if s == e => false,
                    _ => true,
                };
                if !valid {
                    continue; // BTreeMap panics on these; KvState answers them before asking
                }
                let ours = tree.range(start.as_ref(), end.as_ref());
                let theirs = model.range((start, end));
                if reverse {
                    prop_assert!(ours.rev().map(|(k, _)| *k).eq(theirs.rev().map(|(k, _)| *k)));
                } else {
                    // Both ends at once: alternate next and next_back.
                    let mut ours = tree.range(start.as_ref(), end.as_ref());
                    let mut theirs = model.range((start, end));
                    loop {
                        let a = ours.next().map(|(k, _)| *k);
                        prop_assert_eq!(a, theirs.next().map(|(k, _)| *k));
                        let b = ours.next_back().map(|(k, _)| *k);
                        prop_assert_eq!(b, theirs.next_back().map(|(k, _)| *k));
                        if a.is_none() && b.is_none() {
                            break;
                        }
                    }
                }
            }
            for (snapshot, model) in snapshots {
                snapshot.check();
                prop_assert!(snapshot.iter().map(|(k, v)| (*k, *v)).eq(model.iter().map(|(k, v)| (*k, *v))));
                let moved: Vec<_> = snapshot.into_iter().collect();
                prop_assert!(moved.into_iter().eq(model.into_iter()));
            }
        }
    }
}
