//! The topological order of the units, kept as edges arrive (Pearce and
//! Kelly's dynamic topological sort), and the cycle search it bounds. Apart
//! from the transitions, as cargo keeps its `DependencyQueue` apart.
//! Every unit has an `ord`; every dependency's `ord` is below its
//! dependent's.

use std::collections::{BTreeSet, VecDeque};

use super::{Id, State};

#[cfg(test)]
thread_local! {
    /// Units [`State::region`] visited on this thread: the tests count the
    /// cycle checks' work with it.
    pub(super) static VISITED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Which edges a search follows from a unit.
#[derive(Clone, Copy)]
enum Along {
    /// To the units it depends on.
    Deps,
    /// To the units that depend on it.
    Dependents,
}

impl State {
    /// Whether the new edge `unit -> dep` would close a cycle, that is,
    /// whether `unit` is reachable from `dep` along dependency edges.
    ///
    /// The topological order bounds the search (Pearce and Kelly's dynamic
    /// topological sort): `ord` falls along every path of dependencies, so
    /// if `dep` is already before `unit` there is nothing to search, and
    /// otherwise only units placed between the two need a look. Declaring
    /// dependencies in the usual order costs no search at all.
    pub(super) fn closes_cycle(&self, unit: Id, dep: Id) -> bool {
        let floor = self.units[unit].ord;
        self.units[dep].ord > floor
            && self.region(dep, Along::Deps, &|ord| ord >= floor).contains(&unit)
    }

    /// Restores the order after adding `unit -> dep` (no cycle): if `dep`
    /// came after `unit`, the dependencies of `dep` placed after `unit`
    /// move, in their order, ahead of `unit` and its dependents placed
    /// before `dep`, into the same set of positions.
    pub(super) fn keep_order(&mut self, unit: Id, dep: Id) {
        let (lower, upper) = (self.units[unit].ord, self.units[dep].ord);
        if upper < lower {
            return;
        }
        let by_ord = |ids: Vec<Id>| -> Vec<(i64, Id)> {
            let mut keyed: Vec<(i64, Id)> =
                ids.into_iter().map(|id| (self.units[id].ord, id)).collect();
            keyed.sort_unstable();
            keyed
        };
        let ahead = by_ord(self.region(dep, Along::Deps, &|ord| ord > lower));
        let behind = by_ord(self.region(unit, Along::Dependents, &|ord| ord < upper));
        let slots = by_ord(ahead.iter().chain(&behind).map(|&(_, id)| id).collect());
        for ((_, id), (ord, _)) in ahead.into_iter().chain(behind).zip(slots) {
            self.units[id].ord = ord;
        }
    }

    /// Units reachable from `start` along dependencies (or dependents),
    /// `start` included, never going through a unit whose `ord` fails `keep`.
    /// `keep` is a `dyn`, so that the three callers share one copy
    /// (BENCHMARKS.md, "Footprint").
    fn region(&self, start: Id, along: Along, keep: &dyn Fn(i64) -> bool) -> Vec<Id> {
        let mut seen = BTreeSet::from([start]);
        let mut todo = vec![start];
        let mut found = Vec::new();
        while let Some(n) = todo.pop() {
            #[cfg(test)]
            VISITED.with(|v| v.set(v.get() + 1));
            found.push(n);
            let next: Box<dyn Iterator<Item = &Id>> = match along {
                Along::Deps => Box::new(self.units[n].deps.keys()),
                Along::Dependents => Box::new(self.units[n].dependents.iter()),
            };
            for &m in next {
                if keep(self.units[m].ord) && seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        found
    }

    /// The cycle that the edge `unit -> dep` would close, as names starting
    /// and ending at `unit`. Only called once `closes_cycle(unit, dep)` holds.
    pub(super) fn cycle_path(&self, unit: Id, dep: Id) -> Vec<String> {
        // Indexed by id: an error path, so one slot per unit costs nothing
        // that matters, and the binary holds one hash-map type less.
        let mut parent: Vec<Option<Id>> = vec![None; self.units.len()];
        let mut queue = VecDeque::from([dep]);
        while let Some(n) = queue.pop_front() {
            if n == unit {
                break;
            }
            for &m in self.units[n].deps.keys() {
                if m != dep && parent[m].is_none() {
                    parent[m] = Some(n);
                    queue.push_back(m);
                }
            }
        }
        let mut path = vec![unit];
        let mut n = unit;
        while n != dep {
            // Every node but `dep` on the BFS tree has a parent.
            n = parent[n].expect("closes_cycle() found a path, so BFS does too");
            path.push(n);
        }
        path.push(unit);
        // Built backwards from `unit`: [unit, ..., dep, unit] reversed.
        path.reverse();
        path.into_iter().map(|id| self.units[id].name.clone()).collect()
    }
}
