"""Memory planning: place every intermediate array of a program in a reusable storage slot.

Walk the steps in execution order (forward, then backward). A value is live from the step that
first writes it to the last step that reads it -- backward reads count, so only what an
operator's backward declares it needs (``bwd_inputs`` / ``bwd_outputs``) is kept alive past the
forward pass. When a value is defined it takes, in order of preference:

1. in place, if the operator allows it (``inplace`` pairs) and the array it would overwrite dies
   at this very step (same byte size, not an output the user sees): an output takes its
   input's slot in forward; in backward an input gradient takes the output gradient's slot
   when it is the step's only gradient written (elementwise operators compute each element of
   it from the same element of the output gradient, so overwriting is safe; with two gradients
   written the second would read a clobbered output gradient);
2. the smallest free slot big enough (best fit), else the largest free slot, grown;
3. a new slot.

After each step the values it read for the last time give their slots back. Executor outputs
are pinned: private slots, never reused, never shared with other executors. The plan says how
many bytes the slots need against the naive one-buffer-per-array total (``debug_str``).
"""
from __future__ import annotations

from .graph import Program

__all__ = ["MemoryPlan", "plan_memory"]


class MemoryPlan:
    """Where each planned value lives: ``slot_of[vid]``; slot byte sizes; statistics."""

    def __init__(self):
        self.slot_of: dict[int, int] = {}
        self.slot_bytes: list[int] = []
        self.private: set[int] = set()       # slots of pinned values (executor outputs)
        self.inplace: list[tuple[int, int]] = []   # (output value, input value) sharing a slot
        self.naive_bytes = 0

    @property
    def planned_bytes(self) -> int:
        return sum(self.slot_bytes)

    @property
    def num_values(self) -> int:
        return len(self.slot_of)

    def summary(self) -> str:
        naive, planned = self.naive_bytes, self.planned_bytes
        ratio = f"{100.0 * planned / naive:.1f}%" if naive else "n/a"
        return (f"{self.num_values} intermediate arrays in {len(self.slot_bytes)} slots "
                f"({len(self.inplace)} in place); planned {planned} bytes vs naive {naive} "
                f"bytes ({ratio})")


def plan_memory(prog: Program) -> MemoryPlan:
    """Assign the planned values of ``prog`` (operator outputs, intermediate gradients) to slots."""
    steps = prog.forward + prog.backward
    values = prog.values
    first, last = {}, {}
    for s, step in enumerate(steps):
        for v in step.writes:
            if values[v].planned:
                first.setdefault(v, s)
                last[v] = s
        for v in step.reads:
            if values[v].planned:
                last[v] = s
    plan = MemoryPlan()
    plan.naive_bytes = sum(values[v].nbytes for v in first)
    users: list[int] = []          # live values per slot
    free: list[int] = []
    pinned = prog.pinned

    def new_slot(nbytes):
        plan.slot_bytes.append(nbytes)
        users.append(0)
        return len(plan.slot_bytes) - 1

    def take_free(nbytes):
        if not free:
            return new_slot(nbytes)
        fitting = [s for s in free if plan.slot_bytes[s] >= nbytes]
        if fitting:
            slot = min(fitting, key=lambda s: plan.slot_bytes[s])
        else:
            slot = max(free, key=lambda s: plan.slot_bytes[s])
            plan.slot_bytes[slot] = nbytes
        free.remove(slot)
        return slot

    for s, step in enumerate(steps):
        donated: set[int] = set()
        for v in step.writes:
            if not values[v].planned or first[v] != s:
                continue
            nbytes = values[v].nbytes
            slot = None
            if v in pinned:
                slot = new_slot(nbytes)
                plan.private.add(slot)
            elif step.kind in ("forward", "backward"):
                slot = _inplace_slot(prog, step, v, s, last, plan, donated, nbytes)
            if slot is None:
                slot = take_free(nbytes)
            plan.slot_of[v] = slot
            users[slot] += 1
        for v in set(step.reads) | set(step.writes):
            if v in last and last[v] == s and v not in pinned:
                slot = plan.slot_of[v]
                users[slot] -= 1
                if users[slot] == 0:
                    free.append(slot)
    return plan


def _inplace_slot(prog, step, v, s, last, plan, donated, nbytes):
    """The slot ``v`` may take over in place (see the module docstring), or None."""
    op = prog.graph.nodes[step.nid].op
    values = prog.values
    if step.kind == "backward":
        written = [g for g in step.in_grads if g is not None]
        if len(written) != 1:
            return None
        pairs = [(step.out_grads, j, step.in_grads, i) for i, j in op.inplace]
    else:
        pairs = [(step.ins, i, step.outs, j) for i, j in op.inplace]
    for sources, si, targets, ti in pairs:
        if ti >= len(targets) or targets[ti] != v or si >= len(sources):
            continue
        src = sources[si]
        if src is None:
            continue
        if (values[src].planned and src not in prog.pinned and src not in donated
                and last.get(src) == s and values[src].nbytes == nbytes
                and plan.slot_of[src] not in plan.private):
            donated.add(src)
            plan.inplace.append((v, src))
            return plan.slot_of[src]
    return None
