//! Linearizability of one key's history: a Wing–Gong search with Lowe's memoisation (the
//! algorithm of porcupine, anishathalye/porcupine), bounded in time.
//!
//! Entries are calls and returns ordered by time; the search repeatedly picks a call that
//! is minimal (no return precedes it in the remaining list), applies it to the model and
//! caches `(set of linearized ops, state)` so no configuration is explored twice. An op with
//! an unknown outcome returns at "infinity": it may take effect at any time after its
//! invocation, or never (linearized last, where nothing observes it).

use std::collections::HashSet;
use std::time::Instant;

/// The state of one key: absent, or a value (interned) at a revision (0 = not known yet,
/// after a write whose outcome is unknown).
pub type KeyState = Option<(u32, u64)>;

/// What one per-key call did and returned (fields as the variant docs name them).
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// create → ok at `rv`.
    CreateOk { value: u32, rv: u64 },
    /// create → already exists.
    CreateExists,
    /// update with precondition `pre` → ok at `rv` (the key existed).
    UpdateOk { value: u32, rv: u64, pre: Option<u64> },
    /// update or get → not found; a latest list that did not contain the key.
    Absent,
    /// delete → ok, it removed `value` at `prev_rv` (0 = not returned) with precondition `pre`.
    DeleteOk { value: u32, prev_rv: u64, pre: Option<u64> },
    /// update or delete with precondition `pre` → precondition failed.
    Conflict { pre: u64 },
    /// get or latest list → the key holds `value` at `rv`.
    Read { value: u32, rv: u64 },
    /// create of `value`, outcome unknown.
    CreateUnknown { value: u32 },
    /// update to `value` with precondition `pre`, outcome unknown.
    UpdateUnknown { value: u32, pre: Option<u64> },
    /// delete with precondition `pre`, outcome unknown.
    DeleteUnknown { pre: Option<u64> },
}

/// Applies `step` to `state`; None when the step is impossible in that state.
pub fn apply(state: KeyState, step: &Step) -> Option<KeyState> {
    let rev_matches = |held: u64, seen: u64| held == 0 || held == seen;
    match (*step).clone() {
        Step::CreateOk { value, rv } => state.is_none().then_some(Some((value, rv))),
        Step::CreateExists => state.is_some().then_some(state),
        Step::UpdateOk { value, rv, pre } => match state {
            Some((_, held)) if (held == 0 || rv > held) && pre.is_none_or(|p| rev_matches(held, p)) => {
                Some(Some((value, rv)))
            }
            _ => None,
        },
        Step::Absent => state.is_none().then_some(None),
        Step::DeleteOk { value, prev_rv, pre } => match state {
            Some((held_value, held)) if held_value == value && (prev_rv == 0 || rev_matches(held, prev_rv)) => {
                let known = if held != 0 { held } else { prev_rv };
                pre.is_none_or(|p| known == 0 || p == known).then_some(None)
            }
            _ => None,
        },
        Step::Conflict { pre } => match state {
            Some((_, held)) if held != pre => Some(state),
            _ => None,
        },
        Step::Read { value, rv } => match state {
            Some((held_value, held)) if held_value == value && rev_matches(held, rv) => Some(Some((value, rv))),
            _ => None,
        },
        Step::CreateUnknown { value } => Some(if state.is_none() { Some((value, 0)) } else { state }),
        Step::UpdateUnknown { value, pre } => Some(match state {
            Some((_, held)) if pre.is_some_and(|p| held != 0 && held != p) => state,
            _ => state.map(|_| (value, 0)),
        }),
        Step::DeleteUnknown { pre } => Some(match state {
            Some((_, held)) if pre.is_some_and(|p| held != 0 && held != p) => state,
            _ => None,
        }),
    }
}

/// One per-key operation: its step and interval (`returned` None = never, "infinity").
#[derive(Clone, Debug)]
pub struct KeyOp {
    /// What it did.
    pub step: Step,
    /// Invocation time.
    pub invoked: u64,
    /// Response time; None = unknown outcome.
    pub returned: Option<u64>,
    /// Index of the originating operation in the history (for reports).
    pub origin: usize,
}

/// The result of a search.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// None exists. `prefix` ops (indices into the input) linearized at best, leaving
    /// `state`; `stuck` are the ops that could have come next and none applies.
    Violation { prefix: Vec<usize>, state: KeyState, stuck: Vec<usize> },
    /// The time budget ran out first.
    Inconclusive,
}

#[derive(Clone, Copy)]
struct Node {
    op: usize,
    is_call: bool,
    /// For a call: its return node.
    partner: usize,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

/// Searches for a linearization of `ops` from `initial`, giving up at `deadline`.
pub fn check(ops: &[KeyOp], initial: KeyState, deadline: Instant) -> Verdict {
    if ops.is_empty() {
        return Verdict::Linearizable;
    }
    // Events: (time, is_return, op). Calls sort before returns at the same time? No: a return
    // at t and a call at t are concurrent only if the call is not after the return; put
    // returns first only when strictly earlier, so ties count as concurrent (calls first).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoked, false, i));
        events.push((op.returned.unwrap_or(u64::MAX), true, i));
    }
    events.sort_by_key(|&(t, is_return, i)| (t, is_return, i));
    // Node 0 is the head sentinel.
    let mut nodes: Vec<Node> = Vec::with_capacity(events.len() + 1);
    nodes.push(Node { op: NIL, is_call: false, partner: NIL, prev: NIL, next: 1 });
    let mut return_node = vec![NIL; ops.len()];
    for (n, &(_, is_return, op)) in events.iter().enumerate() {
        let index = n + 1;
        let next = if n + 1 == events.len() { NIL } else { index + 1 };
        nodes.push(Node { op, is_call: !is_return, partner: NIL, prev: index - 1, next });
        if is_return {
            return_node[op] = index;
        }
    }
    for node in nodes.iter_mut().skip(1) {
        if node.is_call {
            node.partner = return_node[node.op];
        }
    }
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, KeyState)> = HashSet::new();
    let mut calls: Vec<(usize, KeyState)> = Vec::new();
    let mut state = initial;
    let mut best: (Vec<usize>, KeyState, Vec<usize>) = (Vec::new(), initial, Vec::new());
    let mut entry = nodes[0].next;
    let mut steps: u64 = 0;

    fn lift(nodes: &mut [Node], call: usize) {
        let (prev, next) = (nodes[call].prev, nodes[call].next);
        nodes[prev].next = next;
        if next != NIL {
            nodes[next].prev = prev;
        }
        let ret = nodes[call].partner;
        let (prev, next) = (nodes[ret].prev, nodes[ret].next);
        nodes[prev].next = next;
        if next != NIL {
            nodes[next].prev = prev;
        }
    }
    fn unlift(nodes: &mut [Node], call: usize) {
        let ret = nodes[call].partner;
        let (prev, next) = (nodes[ret].prev, nodes[ret].next);
        nodes[prev].next = ret;
        if next != NIL {
            nodes[next].prev = ret;
        }
        let (prev, next) = (nodes[call].prev, nodes[call].next);
        nodes[prev].next = call;
        if next != NIL {
            nodes[next].prev = call;
        }
    }

    while nodes[0].next != NIL {
        steps += 1;
        if steps % 4096 == 0 && Instant::now() > deadline {
            return Verdict::Inconclusive;
        }
        if entry == NIL {
            // Cannot happen (the last node is a return), but stay total.
            return Verdict::Inconclusive;
        }
        let node = nodes[entry];
        if node.is_call {
            let mut advanced = false;
            if let Some(next_state) = apply(state, &ops[node.op].step) {
                let (word, bit) = (node.op / 64, 1u64 << (node.op % 64));
                linearized[word] |= bit;
                if cache.insert((linearized.clone(), next_state)) {
                    calls.push((entry, state));
                    state = next_state;
                    lift(&mut nodes, entry);
                    entry = nodes[0].next;
                    advanced = true;
                } else {
                    linearized[word] &= !bit;
                }
            }
            if !advanced {
                entry = node.next;
            }
        } else {
            // A return whose call is not linearized: remember the deepest point, backtrack.
            if calls.len() >= best.0.len() {
                let prefix: Vec<usize> = calls.iter().map(|&(n, _)| nodes[n].op).collect();
                let mut stuck = Vec::new();
                let mut cursor = nodes[0].next;
                while cursor != NIL {
                    if nodes[cursor].is_call {
                        stuck.push(nodes[cursor].op);
                    } else {
                        break;
                    }
                    cursor = nodes[cursor].next;
                }
                best = (prefix, state, stuck);
            }
            let Some((call, previous)) = calls.pop() else {
                return Verdict::Violation { prefix: best.0, state: best.1, stuck: best.2 };
            };
            state = previous;
            let op = nodes[call].op;
            linearized[op / 64] &= !(1u64 << (op % 64));
            unlift(&mut nodes, call);
            entry = nodes[call].next;
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn op(step: Step, invoked: u64, returned: Option<u64>) -> KeyOp {
        KeyOp { step, invoked, returned, origin: 0 }
    }

    fn verdict(ops: &[KeyOp]) -> Verdict {
        check(ops, None, Instant::now() + Duration::from_secs(5))
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let ops = vec![
            op(Step::CreateOk { value: 1, rv: 2 }, 0, Some(1)),
            op(Step::Read { value: 1, rv: 2 }, 2, Some(3)),
            op(Step::UpdateOk { value: 2, rv: 3, pre: None }, 4, Some(5)),
            op(Step::DeleteOk { value: 2, prev_rv: 3, pre: Some(3) }, 6, Some(7)),
            op(Step::Absent, 8, Some(9)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_a_completed_update_is_a_violation() {
        let ops = vec![
            op(Step::CreateOk { value: 1, rv: 2 }, 0, Some(1)),
            op(Step::UpdateOk { value: 2, rv: 3, pre: None }, 2, Some(3)),
            op(Step::Read { value: 1, rv: 2 }, 4, Some(5)),
        ];
        assert!(matches!(verdict(&ops), Verdict::Violation { .. }));
    }

    #[test]
    fn concurrent_read_may_see_either_value() {
        let ops = vec![
            op(Step::CreateOk { value: 1, rv: 2 }, 0, Some(1)),
            op(Step::UpdateOk { value: 2, rv: 3, pre: None }, 2, Some(10)),
            op(Step::Read { value: 1, rv: 2 }, 3, Some(4)),
            op(Step::Read { value: 2, rv: 3 }, 5, Some(6)),
            op(Step::Read { value: 2, rv: 3 }, 7, Some(8)),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
        // ... but not back again once the new value was seen.
        let mut back = ops.clone();
        back.push(op(Step::Read { value: 1, rv: 2 }, 9, Some(9)));
        assert!(matches!(verdict(&back), Verdict::Violation { .. }));
    }

    #[test]
    fn unknown_write_may_or_may_not_have_happened() {
        let happened =
            vec![op(Step::CreateUnknown { value: 1 }, 0, None), op(Step::Read { value: 1, rv: 2 }, 5, Some(6))];
        assert_eq!(verdict(&happened), Verdict::Linearizable);
        let not_happened = vec![op(Step::CreateUnknown { value: 1 }, 0, None), op(Step::Absent, 5, Some(6))];
        assert_eq!(verdict(&not_happened), Verdict::Linearizable);
        let both = vec![
            op(Step::CreateUnknown { value: 1 }, 0, None),
            op(Step::Read { value: 1, rv: 2 }, 5, Some(6)),
            op(Step::Absent, 7, Some(8)),
        ];
        assert!(matches!(verdict(&both), Verdict::Violation { .. }), "no delete explains the disappearance");
    }

    #[test]
    fn preconditions_follow_the_revision() {
        let ops = vec![op(Step::CreateOk { value: 1, rv: 2 }, 0, Some(1)), op(Step::Conflict { pre: 2 }, 2, Some(3))];
        assert!(matches!(verdict(&ops), Verdict::Violation { .. }), "rv 2 matches, the delete had to succeed");
    }

    #[test]
    fn the_search_is_bounded_in_time() {
        let ops: Vec<KeyOp> = (0..200)
            .map(|i| op(Step::UpdateUnknown { value: i, pre: None }, 0, None))
            .chain([op(Step::Absent, 1, Some(2))])
            .collect();
        // Linearizable (nothing exists; every update is a no-op), found quickly.
        assert_eq!(check(&ops, None, Instant::now() + Duration::from_secs(5)), Verdict::Linearizable);
        assert_eq!(check(&ops, Some((7, 1)), Instant::now()), Verdict::Inconclusive);
    }
}
