"""compare(): a dump against minibert, op by op, then which known convention explains the gap.

    result = compare(model, "their.npz", mapping="transformers")
    result.baseline.first_jump.name       # "encoder.step.0.ffn.activation"
    result.profile                        # (Flip("hidden_act", "gelu_new", ...),)
    print(result.format())

The search: trace minibert on the dump's inputs and compare every paired op (report.py). If an
op diverges, re-run with each single flip of conventions.py; a flip "closes the gap" when no op
diverges any more. If none does, the flip that moves the first divergence furthest down the
forward is kept and the others are tried on top of it, round after round, so that a dump that
differs in two conventions gets both; the search stops when no flip moves the divergence.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import align, conventions
from .report import DEFAULT_TOLERANCE, Comparison, format_table, op_error


@dataclass
class Trial:
    """One flip tried on top of the profile found so far, and how the comparison came out."""

    flip: conventions.Flip
    on_top_of: tuple
    comparison: Comparison

    @property
    def closes(self) -> bool:
        return self.comparison.agrees


@dataclass
class DiffResult:
    """The baseline comparison, every trial, the profile found and its comparison."""

    baseline: Comparison
    trials: list = field(default_factory=list)
    profile: tuple = ()  # the flips kept, in the order found
    final: Comparison | None = None  # the comparison under `profile` (baseline when empty)
    unused: list = field(default_factory=list)  # dump arrays compared with nothing
    conventions_tried: bool = True

    @property
    def closes(self) -> bool:
        """Whether minibert under `profile` agrees with the dump on every op."""
        return (self.final or self.baseline).agrees

    def verdict(self) -> str:
        base = self.baseline
        if base.agrees:
            return "verdict: no divergence; " + base.summary().split("; ", 1)[-1]
        where = base.first_jump or base.first_divergence
        final = (self.final or base).final
        if self.closes:
            labels = " + ".join(flip.label for flip in self.profile)
            return (
                f"verdict: {labels} closes the gap (first divergence at {where.name}); with it "
                f"every op agrees, final {final.name}: max |diff| {final.max_abs:.1e}"
            )
        if not self.conventions_tried:
            return f"verdict: diverges from {where.name} (conventions not tried)"
        first = (self.final or base).first_divergence
        kept = " + ".join(flip.label for flip in self.profile)
        after = f" after {kept}" if kept else ""
        return (
            f"verdict: no known convention closes the gap{after}: the first divergence is "
            f"{first.name}, whose inputs agree; look at that op"
        )

    def format(self) -> str:
        """The table, the first jump, the conventions tried and the verdict, for the CLI."""
        lines = [format_table(self.baseline), "", self.baseline.summary()]
        if self.unused:
            lines.append(f"not compared ({len(self.unused)} dump arrays): " + _few(self.unused))
        if self.trials:
            lines += ["", "conventions tried (each flip alone, or on top of the ones kept):"]
            for trial in self.trials:
                comp = trial.comparison
                on_top = " + ".join(f.label for f in trial.on_top_of)
                label = trial.flip.label + (f" (on {on_top})" if on_top else "")
                first = comp.first_divergence
                outcome = "closes the gap" if trial.closes else f"diverges at {first.name}"
                final = comp.final
                lines.append(f"  {label:<58} {outcome}; final max |diff| {final.max_abs:.1e}")
        lines += ["", self.verdict()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "baseline": self.baseline.to_dict(),
            "trials": [
                {
                    "flip": {"knob": t.flip.knob, "value": t.flip.value, "label": t.flip.label},
                    "on_top_of": [f.label for f in t.on_top_of],
                    "closes": t.closes,
                    "first_divergence": _name(t.comparison.first_divergence),
                    "final_max_abs": t.comparison.final.max_abs,
                }
                for t in self.trials
            ],
            "profile": [{"knob": f.knob, "value": f.value, "label": f.label} for f in self.profile],
            "closes": self.closes,
            "final": self.final.to_dict() if self.final else None,
            "unused": list(self.unused),
            "verdict": self.verdict(),
        }


def compare(
    model,
    dump,
    *,
    mapping=None,
    inputs: dict | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    conventions_search: bool = True,
) -> DiffResult:
    """Compare another implementation's activations (`dump`: an .npz path or {name: array})
    with minibert's trace of `model` on the same inputs, and search the known conventions.

    mapping: None when the dump uses minibert.trace's names, "transformers", a JSON file's
    path, or a dict (align.py). inputs: {"input_ids", "attention_mask", "token_type_ids"}, or
    None to take them from the dump."""
    if not tolerance > 0:
        raise InputError(f"tolerance must be positive, got {tolerance}")
    arrays = align.read_dump(dump) if isinstance(dump, (str, Path)) else dict(dump)
    mapping = align.load_mapping(mapping)
    inputs = _inputs(arrays, inputs)
    baseline_trace = conventions.run(model, inputs)
    pairs, unused = align.pair_up(arrays, baseline_trace, mapping, model)
    theirs = {
        p.ours: align.aligned(p, arrays[p.theirs], baseline_trace[p.ours].shape) for p in pairs
    }
    final_name = _final_name(pairs, baseline_trace)

    def comparison(t) -> Comparison:
        ops = [op_error(p.ours, p.theirs, t[p.ours], theirs[p.ours], tolerance) for p in pairs]
        return Comparison(ops, tolerance, final_name)

    result = DiffResult(comparison(baseline_trace), unused=unused)
    result.conventions_tried = conventions_search
    if result.baseline.agrees or not conventions_search:
        return result
    profile, current = (), result.baseline
    candidates = conventions.flips_for(model, inputs)
    while True:
        tried = [
            Trial(flip, profile, comparison(conventions.run(model, inputs, (*profile, flip))))
            for flip in candidates
            if flip.knob not in {f.knob for f in profile}
        ]
        result.trials += tried
        closing = [t for t in tried if t.closes]
        if closing:
            best = min(closing, key=lambda t: t.comparison.final.max_abs)
            profile, current = (*profile, best.flip), best.comparison
            break
        further = [t for t in tried if t.comparison.position() > current.position()]
        if not further:
            break
        best = max(further, key=lambda t: t.comparison.position())
        profile, current = (*profile, best.flip), best.comparison
    result.profile, result.final = profile, (current if profile else None)
    return result


def _inputs(arrays: dict, given: dict | None) -> dict:
    """The forward's inputs: `given` (checked against the dump's, where it has them) or the
    dump's own."""
    if given is None:
        if "input_ids" not in arrays:
            raise InputError(
                "the dump has no input_ids: store the inputs in it (input_ids, attention_mask, "
                "token_type_ids) or give them (--text)"
            )
        given = {n: arrays[n] for n in align.INPUT_NAMES if n in arrays}
    elif "input_ids" in arrays and not np.array_equal(arrays["input_ids"], given["input_ids"]):
        raise InputError(
            f"the dump's input_ids {arrays['input_ids'].shape} are not the inputs given "
            f"{np.shape(given['input_ids'])}: it was made from other texts"
        )
    inputs = {}
    for name, value in given.items():
        if value is None:
            continue
        a = np.asarray(value)
        if not np.issubdtype(a.dtype, np.integer):
            raise InputError(f"{name} must hold integers, got dtype {a.dtype}")
        inputs[name] = a.astype(np.int64)
    return inputs


def _final_name(pairs, traced) -> str | None:
    """The op holding the final hidden state, if the dump has it."""
    names = {p.ours for p in pairs}
    last_step = f"encoder.step.{len(traced.steps) - 1}.ln2"
    for name in ("output.last_hidden_state", last_step):
        if name in names:
            return name
    return None


def _name(op) -> str | None:
    return op.name if op is not None else None


def _few(names: list, limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
