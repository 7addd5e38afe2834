"""The per-op error table, the first op where the error jumps, and how they print.

For each compared intermediate, with d = |ours - theirs| elementwise:

    max_abs  = max d
    rel      = max d / max |theirs|          (the table's relative error)
    scaled   = max d / (1 + |theirs|)        (absolute below 1, relative above: the test value)

An op diverges when scaled > tolerance (1e-4 by default, the float32 tolerance minibert meets
against transformers). Float32 rounding alone gives scaled errors near 1e-7 to 1e-6, whatever
the values' size (a masked score of -1e4 rounds to steps of 1e-3, which `scaled` counts as
1e-7). The error *jumps* at the first op that diverges and whose scaled error is at least
JUMP = 100 times the largest of every op before it (never less than float32's epsilon): that op
added the difference, where the ops before only carried rounding. When ops diverge without such
a jump, rounding grew past the tolerance gradually, and the first divergent op is reported.
Equal values (infinities included) count as no error; a NaN on one side as an infinite one.
"""

from dataclasses import dataclass, field

import numpy as np

NOISE = float(np.finfo(np.float32).eps)  # the smallest error a jump is measured from
JUMP = 100.0
DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class OpError:
    """One compared intermediate: our name, the dump's name for it, and the errors."""

    name: str
    source: str
    shape: tuple
    max_abs: float
    rel: float
    scaled: float
    diverges: bool


def op_error(name: str, source: str, ours, theirs, tolerance: float) -> OpError:
    """The errors of our array against theirs (same shape; theirs is the reference)."""
    ours = np.asarray(ours, np.float64)
    theirs = np.asarray(theirs, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.where(ours == theirs, 0.0, np.abs(ours - theirs))
    d = np.where(np.isnan(d), np.inf, d)  # NaN on one side: as far off as can be
    size = np.abs(theirs[np.isfinite(theirs)])
    max_abs = float(d.max(initial=0.0))
    reference = float(size.max(initial=0.0))
    rel = max_abs / reference if reference > 0 else (0.0 if max_abs == 0 else np.inf)
    with np.errstate(invalid="ignore"):
        scaled = float((d / (1.0 + np.abs(theirs))).max(initial=0.0))
    if np.isnan(scaled):  # inf / inf: both sides infinite and different
        scaled = np.inf
    return OpError(name, source, tuple(ours.shape), max_abs, rel, scaled, scaled > tolerance)


@dataclass
class Comparison:
    """Every compared op in forward order, and what they say."""

    ops: list
    tolerance: float = DEFAULT_TOLERANCE
    final_name: str | None = field(default=None)  # the final hidden state's op, when compared

    @property
    def agrees(self) -> bool:
        return not any(op.diverges for op in self.ops)

    @property
    def first_divergence(self) -> OpError | None:
        return next((op for op in self.ops if op.diverges), None)

    @property
    def first_jump(self) -> OpError | None:
        """The first divergent op whose scaled error is JUMP x every earlier op's (or None)."""
        worst_before = NOISE
        for op in self.ops:
            if op.diverges and op.scaled >= JUMP * worst_before:
                return op
            worst_before = max(worst_before, op.scaled)
        return None

    def jump_factor(self, op: OpError) -> float:
        """op's scaled error over the largest before it (NOISE at least)."""
        before = [o.scaled for o in self.ops[: self.ops.index(op)]]
        return op.scaled / max([NOISE, *before])

    @property
    def final(self) -> OpError | None:
        """The final hidden state's errors (or the last compared op's, when it is absent)."""
        by_name = {op.name: op for op in self.ops}
        return by_name.get(self.final_name, self.ops[-1] if self.ops else None)

    def position(self) -> int:
        """Index of the first divergent op (len(ops) when none diverges): later is better."""
        first = self.first_divergence
        return len(self.ops) if first is None else self.ops.index(first)

    def summary(self) -> str:
        """One line: agreement, or where and how much it diverges."""
        final = self.final
        end = f"final {final.name}: max |diff| {final.max_abs:.1e}" if final else ""
        if self.agrees:
            worst = max(self.ops, key=lambda op: op.scaled)
            return f"no divergence (worst scaled error {worst.scaled:.1e} at {worst.name}); {end}"
        jump = self.first_jump
        if jump is not None:
            return (
                f"the error jumps at {jump.name} (max |diff| {jump.max_abs:.1e}, scaled "
                f"{_ratio(self.jump_factor(jump))} the largest before it); {end}"
            )
        first = self.first_divergence
        return (
            f"no single jump: rounding grows past the tolerance from {first.name} "
            f"(scaled error {first.scaled:.1e}); {end}"
        )

    def to_dict(self) -> dict:
        jump, first = self.first_jump, self.first_divergence
        return {
            "tolerance": self.tolerance,
            "agrees": self.agrees,
            "first_jump": jump.name if jump else None,
            "first_divergence": first.name if first else None,
            "final": _op_dict(self.final) if self.final else None,
            "ops": [_op_dict(op) for op in self.ops],
        }


def _op_dict(op: OpError) -> dict:
    return {
        "name": op.name,
        "source": op.source,
        "shape": list(op.shape),
        "max_abs": op.max_abs,
        "rel": op.rel,
        "scaled": op.scaled,
        "diverges": op.diverges,
    }


def _ratio(factor: float) -> str:
    if not np.isfinite(factor):
        return "infinitely above"
    return f"{factor:.0f}x" if factor < 1e6 else f"{factor:.0e}x"


def format_table(comparison: Comparison) -> str:
    """The per-op table: name (and the dump's name where it differs), shape, max |diff|,
    relative error, and a mark on the first jump and on every divergent op."""
    jump = comparison.first_jump
    show_source = any(op.source != op.name for op in comparison.ops)
    width = max([len(op.name) for op in comparison.ops] + [2])
    source_width = max([len(op.source) for op in comparison.ops] + [4]) if show_source else 0
    header = f"{'op':<{width}}  " + (f"{'dump':<{source_width}}  " if show_source else "")
    lines = [header + f"{'shape':<16} {'max|diff|':>9} {'rel':>9}"]
    for op in comparison.ops:
        mark = "  <- first jump" if op is jump else ("  diverges" if op.diverges else "")
        source = f"{op.source:<{source_width}}  " if show_source else ""
        shape = "x".join(map(str, op.shape))
        lines.append(
            f"{op.name:<{width}}  {source}{shape:<16} {op.max_abs:>9.1e} {op.rel:>9.1e}{mark}"
        )
    return "\n".join(lines)
