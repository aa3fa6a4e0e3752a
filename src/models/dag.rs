//! The model dependency graph.
//!
//! A [`Dag`] is built from the few facts about each model that graph work
//! needs ([`NodeInfo`]); the caller keeps the real models and maps them to
//! node indices `0..n` (the order of the `Vec` given to [`Dag::new`]).
//!
//! Edges point downstream: `a → b` means `b` reads `a` (`a` is one of `b`'s
//! `deps`). [`Dag::parents`] of a node are the models it reads,
//! [`Dag::children`] the models that read it.
//!
//! Everything here is iterative (no recursion), so graphs of 100,000 nodes
//! or long chains do not overflow the stack, and deterministic: adjacency
//! lists and ties in the topological order are ordered by node id.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::fmt;

/// A node's facts the graph needs (the caller owns the real model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Unique id, `schema.name`.
    pub id: String,
    /// Bare model name (the file name without extension).
    pub name: String,
    /// Path relative to the models folder, `/` separated, e.g.
    /// `features/user_features.sql`.
    pub path: String,
    /// Tags from the model's config.
    pub tags: Vec<String>,
    /// Ids of the upstream nodes this node reads (nodes of the graph only).
    pub deps: Vec<String>,
}

/// Why a graph could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DagError {
    /// Two nodes share an id.
    Duplicate { id: String },
    /// A node lists a dependency that is not a node of the graph.
    UnknownDependency { node: String, dep: String },
    /// The dependencies form a cycle. `path` starts and ends with the same
    /// node and follows data flow: each node reads the one before it. A
    /// self-loop is `[a, a]`.
    Cycle { path: Vec<String> },
}

impl fmt::Display for DagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DagError::Duplicate { id } => write!(f, "two models have the id `{id}`"),
            DagError::UnknownDependency { node, dep } => write!(
                f,
                "model `{node}` depends on `{dep}`, which is not a model of this project"
            ),
            DagError::Cycle { path } => {
                write!(f, "dependency cycle: {}", path.join(" → "))?;
                if path.len() <= 2 {
                    write!(f, " (the model reads itself)")
                } else {
                    write!(f, " (each model reads the one before it)")
                }
            }
        }
    }
}

impl std::error::Error for DagError {}

/// The dependency graph of a project's models.
#[derive(Debug, Clone)]
pub struct Dag {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Upstream neighbours of each node, ordered by id, no duplicates.
    parents: Vec<Vec<usize>>,
    /// Downstream neighbours of each node, ordered by id, no duplicates.
    children: Vec<Vec<usize>>,
    /// The deterministic topological order.
    topo: Vec<usize>,
    /// `topo_pos[i]` is the position of node `i` in `topo`.
    topo_pos: Vec<usize>,
}

impl Dag {
    /// Builds the graph. Fails on a duplicate id, a dependency on an id that
    /// is not a node, or a cycle (reported with one concrete cycle path).
    pub fn new(nodes: Vec<NodeInfo>) -> Result<Dag, DagError> {
        let n = nodes.len();
        let mut index = HashMap::with_capacity(n);
        for (i, node) in nodes.iter().enumerate() {
            if index.insert(node.id.clone(), i).is_some() {
                return Err(DagError::Duplicate {
                    id: node.id.clone(),
                });
            }
        }

        // Rank of each node in id order: the tie-breaker everywhere.
        let mut by_id: Vec<usize> = (0..n).collect();
        by_id.sort_by(|&a, &b| nodes[a].id.cmp(&nodes[b].id));
        let mut rank = vec![0usize; n];
        for (r, &i) in by_id.iter().enumerate() {
            rank[i] = r;
        }

        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, node) in nodes.iter().enumerate() {
            for dep in &node.deps {
                let Some(&p) = index.get(dep.as_str()) else {
                    return Err(DagError::UnknownDependency {
                        node: node.id.clone(),
                        dep: dep.clone(),
                    });
                };
                parents[i].push(p);
            }
            if parents[i].len() > 1 {
                parents[i].sort_by_key(|&p| rank[p]);
                parents[i].dedup();
            }
            for &p in &parents[i] {
                children[p].push(i);
            }
        }
        for list in children.iter_mut().filter(|l| l.len() > 1) {
            list.sort_by_key(|&c| rank[c]);
        }

        if let Some(cycle) = find_cycle(&children, &by_id, &rank) {
            return Err(DagError::Cycle {
                path: cycle.into_iter().map(|i| nodes[i].id.clone()).collect(),
            });
        }

        let topo = kahn(&parents, &children, &rank);
        let mut topo_pos = vec![0usize; n];
        for (pos, &i) in topo.iter().enumerate() {
            topo_pos[i] = pos;
        }

        Ok(Dag {
            nodes,
            index,
            parents,
            children,
            topo,
            topo_pos,
        })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The facts of node `i`. Panics if `i >= len()`, like slice indexing.
    pub fn node(&self, i: usize) -> &NodeInfo {
        &self.nodes[i]
    }

    /// All nodes, indexed `0..len()`.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The index of the node with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The nodes `i` reads, ordered by id.
    pub fn parents(&self, i: usize) -> &[usize] {
        &self.parents[i]
    }

    /// The nodes that read `i`, ordered by id.
    pub fn children(&self, i: usize) -> &[usize] {
        &self.children[i]
    }

    /// Topological order (every node after all of its parents),
    /// deterministic: among nodes that are ready at the same time, the
    /// smallest id comes first.
    pub fn topo_order(&self) -> Vec<usize> {
        self.topo.clone()
    }

    /// Position of node `i` in [`Dag::topo_order`].
    pub fn topo_position(&self, i: usize) -> usize {
        self.topo_pos[i]
    }

    /// All ancestors of `i` (transitively upstream, excluding `i`), at most
    /// `depth` edges away when given (`Some(1)` = parents only).
    pub fn ancestors(&self, i: usize, depth: Option<usize>) -> BTreeSet<usize> {
        self.ancestors_of_all(&[i], depth)
    }

    /// All descendants of `i` (transitively downstream, excluding `i`), at
    /// most `depth` edges away when given (`Some(1)` = children only).
    pub fn descendants(&self, i: usize, depth: Option<usize>) -> BTreeSet<usize> {
        self.descendants_of_all(&[i], depth)
    }

    /// Union of the ancestors of every start node, each within `depth`
    /// edges, in one O(V+E) pass. The start nodes themselves are not
    /// included (even when one is upstream of another).
    pub fn ancestors_of_all(&self, starts: &[usize], depth: Option<usize>) -> BTreeSet<usize> {
        bfs(&self.parents, starts, depth)
    }

    /// Union of the descendants of every start node, each within `depth`
    /// edges, in one O(V+E) pass. The start nodes themselves are not
    /// included (even when one is downstream of another).
    pub fn descendants_of_all(&self, starts: &[usize], depth: Option<usize>) -> BTreeSet<usize> {
        bfs(&self.children, starts, depth)
    }

    /// An indented text tree of what `i` reads (upstream) and what reads it
    /// (downstream), depth-first, the node itself marked `(selected)`. A node
    /// reached a second time in the same tree is printed once more with
    /// `(see above)` and not expanded again.
    pub fn lineage_text(&self, i: usize) -> String {
        let id = &self.nodes[i].id;
        let mut out = String::new();
        out.push_str(&format!("upstream of {id} (models it reads):\n"));
        self.render_tree(i, &self.parents, &mut out);
        out.push_str(&format!("downstream of {id} (models that read it):\n"));
        self.render_tree(i, &self.children, &mut out);
        out
    }

    /// A Graphviz rendering of the lineage of `i`: every edge among `i`, its
    /// ancestors and its descendants, with `i` highlighted.
    pub fn lineage_dot(&self, i: usize) -> String {
        let (_, _, edges) = self.lineage_parts(i);
        let mut out = String::from("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n");
        out.push_str(&format!(
            "  {} [style=\"filled,bold\", fillcolor=\"#ffd54f\"];\n",
            dot_quote(&self.nodes[i].id)
        ));
        for (from, to) in edges {
            out.push_str(&format!(
                "  {} -> {};\n",
                dot_quote(&self.nodes[from].id),
                dot_quote(&self.nodes[to].id)
            ));
        }
        out.push_str("}\n");
        out
    }

    /// A JSON rendering of the lineage of `i`:
    /// `{"model": id, "upstream": [ids], "downstream": [ids], "edges": [[from, to], ...]}`.
    /// Upstream and downstream ids are in topological order; edges (every
    /// edge among the node, its ancestors and descendants) are ordered by
    /// (from, to) id.
    pub fn lineage_json(&self, i: usize) -> String {
        #[derive(serde::Serialize)]
        struct Lineage<'a> {
            model: &'a str,
            upstream: Vec<&'a str>,
            downstream: Vec<&'a str>,
            edges: Vec<[&'a str; 2]>,
        }
        let (up, down, edges) = self.lineage_parts(i);
        let id = |j: usize| self.nodes[j].id.as_str();
        let lineage = Lineage {
            model: id(i),
            upstream: up.iter().map(|&j| id(j)).collect(),
            downstream: down.iter().map(|&j| id(j)).collect(),
            edges: edges.iter().map(|&(a, b)| [id(a), id(b)]).collect(),
        };
        // Strings and lists only: serializing cannot fail.
        serde_json::to_string(&lineage).unwrap_or_default()
    }

    /// Ancestors and descendants of `i` in topological order, and every edge
    /// among them and `i`, ordered by (from id, to id).
    fn lineage_parts(&self, i: usize) -> (Vec<usize>, Vec<usize>, Vec<(usize, usize)>) {
        let mut up: Vec<usize> = self.ancestors(i, None).into_iter().collect();
        let mut down: Vec<usize> = self.descendants(i, None).into_iter().collect();
        up.sort_by_key(|&j| self.topo_pos[j]);
        down.sort_by_key(|&j| self.topo_pos[j]);

        let mut member = vec![false; self.nodes.len()];
        member[i] = true;
        for &j in up.iter().chain(down.iter()) {
            member[j] = true;
        }
        let mut edges = Vec::new();
        for from in std::iter::once(i)
            .chain(up.iter().copied())
            .chain(down.iter().copied())
        {
            for &to in &self.children[from] {
                if member[to] {
                    edges.push((from, to));
                }
            }
        }
        edges.sort_by(|a, b| {
            (&self.nodes[a.0].id, &self.nodes[a.1].id)
                .cmp(&(&self.nodes[b.0].id, &self.nodes[b.1].id))
        });
        (up, down, edges)
    }

    /// Depth-first box-drawing tree from `root` along `next`, iterative.
    fn render_tree(&self, root: usize, next: &[Vec<usize>], out: &mut String) {
        out.push_str("  ");
        out.push_str(&self.nodes[root].id);
        out.push_str(" (selected)\n");
        if next[root].is_empty() {
            out.push_str("  (none)\n");
            return;
        }
        let mut seen = vec![false; self.nodes.len()];
        seen[root] = true;
        // (node, prefix of its line, whether it is the last of its siblings)
        let mut stack: Vec<(usize, String, bool)> = Vec::new();
        push_children(&mut stack, &next[root], "  ");
        while let Some((node, prefix, last)) = stack.pop() {
            out.push_str(&prefix);
            out.push_str(if last { "└── " } else { "├── " });
            out.push_str(&self.nodes[node].id);
            if seen[node] {
                out.push_str(" (see above)\n");
                continue;
            }
            out.push('\n');
            seen[node] = true;
            let child_prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
            push_children(&mut stack, &next[node], &child_prefix);
        }
    }
}

/// Pushes `kids` so that the first one is popped first.
fn push_children(stack: &mut Vec<(usize, String, bool)>, kids: &[usize], prefix: &str) {
    let count = kids.len();
    for (k, &kid) in kids.iter().enumerate().rev() {
        stack.push((kid, prefix.to_string(), k + 1 == count));
    }
}

/// Quotes a node id for Graphviz.
fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Multi-source breadth-first search along `next`, at most `depth` steps.
fn bfs(next: &[Vec<usize>], starts: &[usize], depth: Option<usize>) -> BTreeSet<usize> {
    if depth == Some(0) {
        return BTreeSet::new();
    }
    let mut dist: Vec<Option<usize>> = vec![None; next.len()];
    let mut queue = VecDeque::new();
    for &s in starts {
        if dist[s].is_none() {
            dist[s] = Some(0);
            queue.push_back(s);
        }
    }
    let mut found = Vec::new();
    while let Some(node) = queue.pop_front() {
        let d = dist[node].unwrap_or(0);
        if depth.is_some_and(|max| d >= max) {
            continue;
        }
        for &m in &next[node] {
            if dist[m].is_none() {
                dist[m] = Some(d + 1);
                found.push(m);
                queue.push_back(m);
            }
        }
    }
    // Sorted input lets the set be bulk-built instead of inserted into.
    found.sort_unstable();
    found.into_iter().collect()
}

/// Iterative colour DFS along `children`, roots in id order. Returns one
/// cycle as `[a, b, ..., a]` (each node reads the one before it), rotated
/// to start at its smallest id, or `None` if the graph is acyclic. O(V+E).
fn find_cycle(children: &[Vec<usize>], by_id: &[usize], rank: &[usize]) -> Option<Vec<usize>> {
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let mut colour = vec![WHITE; children.len()];
    // (node, index of the next child to visit)
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for &root in by_id {
        if colour[root] != WHITE {
            continue;
        }
        colour[root] = GREY;
        stack.push((root, 0));
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            if let Some(&child) = children[node].get(next) {
                top.1 += 1;
                match colour[child] {
                    WHITE => {
                        colour[child] = GREY;
                        stack.push((child, 0));
                    }
                    GREY => {
                        // Back edge node → child: the stack from `child` up
                        // to `node` is a path, closed by this edge.
                        let start = stack.iter().position(|&(m, _)| m == child).unwrap_or(0);
                        let mut cycle: Vec<usize> =
                            stack[start..].iter().map(|&(m, _)| m).collect();
                        let min = (0..cycle.len())
                            .min_by_key(|&k| rank[cycle[k]])
                            .unwrap_or(0);
                        cycle.rotate_left(min);
                        cycle.push(cycle[0]);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                colour[node] = BLACK;
                stack.pop();
            }
        }
    }
    None
}

/// Kahn's algorithm with a min-heap on id rank. Assumes no cycle.
fn kahn(parents: &[Vec<usize>], children: &[Vec<usize>], rank: &[usize]) -> Vec<usize> {
    let n = parents.len();
    let mut missing: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut heap: BinaryHeap<Reverse<(usize, usize)>> = (0..n)
        .filter(|&i| missing[i] == 0)
        .map(|i| Reverse((rank[i], i)))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse((_, i))) = heap.pop() {
        order.push(i);
        for &c in &children[i] {
            missing[c] -= 1;
            if missing[c] == 0 {
                heap.push(Reverse((rank[c], c)));
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, deps: &[&str]) -> NodeInfo {
        let name = crate::names::split_table(id)
            .map_or(id, |(_, t)| t)
            .to_string();
        NodeInfo {
            id: id.to_string(),
            name: name.clone(),
            path: format!("{name}.sql"),
            tags: Vec::new(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn ids(dag: &Dag, list: impl IntoIterator<Item = usize>) -> Vec<String> {
        list.into_iter().map(|i| dag.node(i).id.clone()).collect()
    }

    fn idx(dag: &Dag, id: &str) -> usize {
        dag.index_of(id).expect("node exists")
    }

    /// raw.a → s.b, raw.a → s.c, s.b → f.d, s.c → f.d, f.d → m.e
    fn diamond() -> Dag {
        Dag::new(vec![
            node("m.e", &["f.d"]),
            node("f.d", &["s.c", "s.b"]),
            node("s.c", &["raw.a"]),
            node("s.b", &["raw.a"]),
            node("raw.a", &[]),
        ])
        .expect("acyclic")
    }

    #[test]
    fn diamond_adjacency_and_topo() {
        let dag = diamond();
        assert_eq!(dag.len(), 5);
        assert!(!dag.is_empty());
        let d = idx(&dag, "f.d");
        assert_eq!(ids(&dag, dag.parents(d).iter().copied()), ["s.b", "s.c"]);
        assert_eq!(
            ids(&dag, dag.children(idx(&dag, "raw.a")).iter().copied()),
            ["s.b", "s.c"]
        );
        assert_eq!(
            ids(&dag, dag.topo_order()),
            ["raw.a", "s.b", "s.c", "f.d", "m.e"]
        );
    }

    #[test]
    fn topo_order_is_deterministic_regardless_of_input_order() {
        let base = vec![
            node("z.z", &[]),
            node("a.a", &[]),
            node("m.m", &["z.z", "a.a"]),
            node("b.b", &["a.a"]),
            node("y.y", &[]),
        ];
        let first = Dag::new(base.clone()).expect("acyclic");
        let expected = ids(&first, first.topo_order());
        assert_eq!(expected, ["a.a", "b.b", "y.y", "z.z", "m.m"]);
        let mut reversed = base;
        reversed.reverse();
        let second = Dag::new(reversed).expect("acyclic");
        assert_eq!(ids(&second, second.topo_order()), expected);
        for (pos, &i) in second.topo_order().iter().enumerate() {
            assert_eq!(second.topo_position(i), pos);
        }
    }

    #[test]
    fn empty_graph() {
        let dag = Dag::new(Vec::new()).expect("empty is fine");
        assert!(dag.is_empty());
        assert!(dag.topo_order().is_empty());
    }

    #[test]
    fn duplicate_and_unknown_dependency() {
        let err = Dag::new(vec![node("a.x", &[]), node("a.x", &[])]).unwrap_err();
        assert_eq!(err, DagError::Duplicate { id: "a.x".into() });
        assert_eq!(err.to_string(), "two models have the id `a.x`");
        let err = Dag::new(vec![node("a.x", &["a.y"])]).unwrap_err();
        assert_eq!(
            err,
            DagError::UnknownDependency {
                node: "a.x".into(),
                dep: "a.y".into()
            }
        );
    }

    #[test]
    fn duplicate_deps_are_merged() {
        let dag = Dag::new(vec![node("a.a", &[]), node("a.b", &["a.a", "a.a"])]).expect("ok");
        assert_eq!(dag.parents(idx(&dag, "a.b")), &[idx(&dag, "a.a")]);
        assert_eq!(dag.children(idx(&dag, "a.a")).len(), 1);
    }

    #[test]
    fn three_node_cycle_inside_bigger_graph() {
        // x.c reads x.b, x.b reads x.a, x.a reads x.c: x.a → x.b → x.c → x.a
        let err = Dag::new(vec![
            node("r.root", &[]),
            node("x.b", &["x.a"]),
            node("x.c", &["x.b", "r.root"]),
            node("x.a", &["x.c"]),
            node("y.leaf", &["x.c"]),
            node("y.other", &["r.root"]),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            DagError::Cycle {
                path: vec!["x.a".into(), "x.b".into(), "x.c".into(), "x.a".into()]
            }
        );
        assert_eq!(
            err.to_string(),
            "dependency cycle: x.a → x.b → x.c → x.a (each model reads the one before it)"
        );
    }

    #[test]
    fn self_loop() {
        let err = Dag::new(vec![node("s.ok", &[]), node("s.a", &["s.ok", "s.a"])]).unwrap_err();
        assert_eq!(
            err,
            DagError::Cycle {
                path: vec!["s.a".into(), "s.a".into()]
            }
        );
        assert_eq!(
            err.to_string(),
            "dependency cycle: s.a → s.a (the model reads itself)"
        );
    }

    #[test]
    fn long_chain_no_stack_overflow() {
        let n = 100_000;
        let nodes: Vec<NodeInfo> = (0..n)
            .map(|i| {
                let deps = if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("s.n{:06}", i - 1)]
                };
                NodeInfo {
                    id: format!("s.n{i:06}"),
                    name: format!("n{i:06}"),
                    path: format!("n{i:06}.sql"),
                    tags: Vec::new(),
                    deps,
                }
            })
            .collect();
        // No recursion: a chain of 100,000 neither overflows the stack nor
        // takes quadratic time (speed is measured in benches, not here).
        let dag = Dag::new(nodes).expect("acyclic");
        let order = dag.topo_order();
        assert_eq!(order, (0..n).collect::<Vec<_>>());
        assert_eq!(dag.ancestors(n - 1, None).len(), n - 1);
        assert_eq!(dag.descendants(0, None).len(), n - 1);
        assert_eq!(dag.descendants(0, Some(3)), BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn long_cycle_is_found_iteratively() {
        let n = 100_000;
        let nodes: Vec<NodeInfo> = (0..n)
            .map(|i| NodeInfo {
                id: format!("s.n{i:06}"),
                name: format!("n{i:06}"),
                path: String::new(),
                tags: Vec::new(),
                deps: vec![format!("s.n{:06}", (i + n - 1) % n)],
            })
            .collect();
        match Dag::new(nodes) {
            Err(DagError::Cycle { path }) => {
                assert_eq!(path.len(), n + 1);
                assert_eq!(path[0], "s.n000000");
                assert_eq!(path[1], "s.n000001");
                assert_eq!(path[n], "s.n000000");
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    #[test]
    fn ancestors_and_descendants_with_depth() {
        let dag = diamond();
        let e = idx(&dag, "m.e");
        let a = idx(&dag, "raw.a");
        assert_eq!(ids(&dag, dag.ancestors(e, Some(1))), ["f.d"]);
        let mut two = ids(&dag, dag.ancestors(e, Some(2)));
        two.sort();
        assert_eq!(two, ["f.d", "s.b", "s.c"]);
        assert_eq!(dag.ancestors(e, None).len(), 4);
        assert!(dag.ancestors(e, Some(0)).is_empty());
        assert!(!dag.ancestors(e, None).contains(&e));
        assert_eq!(dag.descendants(a, None).len(), 4);
        let mut one = ids(&dag, dag.descendants(a, Some(1)));
        one.sort();
        assert_eq!(one, ["s.b", "s.c"]);
        assert!(dag.descendants(e, None).is_empty());
        // Multi-source: union of balls.
        let b = idx(&dag, "s.b");
        let both = dag.descendants_of_all(&[a, b], Some(1));
        let mut both = ids(&dag, both);
        both.sort();
        assert_eq!(both, ["f.d", "s.c"]);
    }

    #[test]
    fn lineage_text_tree() {
        let dag = diamond();
        let text = dag.lineage_text(idx(&dag, "f.d"));
        let expected = "\
upstream of f.d (models it reads):
  f.d (selected)
  ├── s.b
  │   └── raw.a
  └── s.c
      └── raw.a (see above)
downstream of f.d (models that read it):
  f.d (selected)
  └── m.e
";
        assert_eq!(text, expected);
        let text = dag.lineage_text(idx(&dag, "raw.a"));
        assert!(text
            .starts_with("upstream of raw.a (models it reads):\n  raw.a (selected)\n  (none)\n"));
        assert!(text.contains("      └── m.e\n"));
        assert!(text.contains("(see above)"));
    }

    #[test]
    fn lineage_dot_and_json() {
        let dag = diamond();
        let b = idx(&dag, "s.b");
        let dot = dag.lineage_dot(b);
        assert!(dot.starts_with("digraph lineage {\n"));
        assert!(dot.contains("  \"s.b\" [style=\"filled,bold\""));
        assert!(dot.contains("  \"raw.a\" -> \"s.b\";\n"));
        assert!(dot.contains("  \"s.b\" -> \"f.d\";\n"));
        assert!(dot.contains("  \"f.d\" -> \"m.e\";\n"));
        // s.c is neither upstream nor downstream of s.b.
        assert!(!dot.contains("s.c"));
        assert!(dot.ends_with("}\n"));

        let text = dag.lineage_json(b);
        assert!(text.starts_with("{\"model\":\"s.b\",\"upstream\":"));
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid json");
        assert_eq!(
            json,
            serde_json::json!({
                "model": "s.b",
                "upstream": ["raw.a"],
                "downstream": ["f.d", "m.e"],
                "edges": [["f.d", "m.e"], ["raw.a", "s.b"], ["s.b", "f.d"]],
            })
        );
    }

    #[test]
    fn dot_and_json_escape() {
        assert_eq!(dot_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        let tricky = "q\"\\\n\t\u{1}é";
        let dag = Dag::new(vec![node(tricky, &[])]).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&dag.lineage_json(0)).expect("valid json");
        assert_eq!(back["model"], tricky);
    }
}
