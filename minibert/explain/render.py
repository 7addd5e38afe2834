"""The explain report as text, for a terminal: one section per part, aligned tables.

print(render_text(report))
"""

import numpy as np

from .report import POOLINGS

PREVIEW = 6  # values of each pooled vector shown


def render_text(report) -> str:
    """The whole report (report.py's Report) as lines of text."""
    sections = [
        _model(report),
        _tokens(report),
        _costs(report),
        _attention(report),
        _norms(report),
        _pooled(report),
        _memory(report),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def human(value: float, unit: str = "") -> str:
    """1234567 -> '1.23 M' + unit, in steps of 1000; bytes ('B') in steps of 1024 (KiB, MiB)."""
    step, prefixes = (1024, ("", "Ki", "Mi", "Gi", "Ti")) if unit == "B" else (1000, " kMGT")
    power = 0
    while abs(value) >= step and power < len(prefixes) - 1:
        value /= step
        power += 1
    return f"{value:.0f} {unit}" if power == 0 else f"{value:.2f} {prefixes[power]}{unit}"


def _table(header, rows) -> list[str]:
    """Rows of cells as aligned columns: text left, numbers right."""
    cells = [list(map(str, header))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def _is_number(text: str) -> bool:
    try:
        float(text.split()[0].replace(",", ""))
    except (ValueError, IndexError):
        return False
    return True


def _weights(config) -> str:
    """int8 (per channel) or the group-wise scheme of a quantized model's config."""
    entry = config.hf_extra.get("quantization") or {}
    if "group_size" not in entry:
        return "int8"
    return f"int{entry['bits']} group-wise ({entry['group_size']} a group)"


def _model(report) -> str:
    c = report.config
    p = report.parameters
    name = (
        f"{report.model_name} ({report.architecture})" if report.model_name else report.architecture
    )
    lines = [
        f"Model: {name}" + (f", {_weights(report.config)} weights" if report.quantized else ""),
        f"  {c.model_type}: L={c.num_hidden_layers} C={c.hidden_size} H={c.num_attention_heads} "
        f"F={c.intermediate_size} V={c.vocab_size} positions={c.max_position_embeddings}"
        + (f" E={c.embedding_size}" if c.embedding_size else "")
        + f", {c.hidden_act}, LayerNorm eps {c.layer_norm_eps:g}",
        f"  parameters: {p['unique']:,} unique, {p['effective']:,} effective "
        f"({p['steps']} encoder steps over {p['unique_layers']} unique layers)",
    ]
    lines += [f"  - {note}" for note in report.notes]
    return "\n".join(lines)


def _tokens(report) -> str:
    lines = [f"Tokens: {len(report.tokens)}"]
    rows = [
        (t.index, t.id, t.text, f"{t.start}:{t.end}" if not t.special else "-",
         "-" if t.word is None else t.word, "-" if t.sequence is None else t.sequence)
        for t in report.tokens
    ]  # fmt: skip
    lines += ["  " + line for line in _table(("#", "id", "token", "chars", "word", "text"), rows)]
    if report.words:
        lines.append("  words -> pieces:")
        for word in report.words:
            pieces = " ".join(report.tokens[i].text for i in word.tokens)
            lines.append(f"    [{word.sequence}.{word.word}] {word.text!r}: {pieces}")
    return "\n".join(lines)


def _costs(report) -> str:
    lines = [
        f"Costs of this forward (batch 1, {len(report.tokens)} tokens): "
        f"{human(report.flops, 'FLOP')}, {human(report.bytes_moved, 'B')} moved"
    ]
    groups = [("embeddings", report.embedding_ops)]
    groups += [(f"step {s.step} (layer {s.layer})", s.ops) for s in report.steps]
    if report.pooler_ops:
        groups.append(("pooler", report.pooler_ops))
    previous, same = None, []  # encoder steps costing what the one before did are not repeated
    for title, ops in groups:
        rows = [
            (op.name.split(".", 3)[-1] if op.name.startswith("encoder.") else op.name,
             "x".join(map(str, op.shape)), f"{op.flops:,}", f"{op.bytes:,}")
            for op in ops
        ]  # fmt: skip
        if title.startswith("step") and rows == previous:
            same.append(title.split()[1])
            continue
        if same:
            lines.append(f"  steps {', '.join(same)}: the same ops and costs as the step before")
            same = []
        previous = rows
        lines.append(f"  {title}: {human(sum(op.flops for op in ops), 'FLOP')}")
        lines += ["    " + line for line in _table(("op", "shape", "FLOPs", "bytes"), rows)]
    if same:
        lines.append(f"  steps {', '.join(same)}: the same ops and costs as the step before")
    return "\n".join(lines)


def _attention(report) -> str:
    """Three grids of steps x heads: entropy, share on the first token, on the separators."""
    cls_name, sep_name = report.special_names
    T = len(report.tokens)
    heads = range(len(report.steps[0].entropy)) if report.steps else range(0)
    lines = [f"Attention per head (rows: steps; columns: heads), over {T} tokens"]
    grids = (
        (f"entropy in nats (all on one token: 0; uniform: {np.log(T):.2f})", "entropy"),
        (f"share of attention on {cls_name}", "cls_share"),
        (f"share of attention on {sep_name}", "sep_share"),
    )
    for title, field in grids:
        lines.append(f"  {title}")
        rows = [(s.step, *(f"{v:.2f}" for v in getattr(s, field))) for s in report.steps]
        lines += ["    " + line for line in _table(("step", *heads), rows)]
    return "\n".join(lines)


def _norms(report) -> str:
    lines = [
        "Residual stream: mean token norm",
        f"  encoder input (embeddings): {report.embedding_norm:.3f}",
    ]
    points = list(report.steps[0].norms) if report.steps else []
    rows = [(s.step, *(f"{s.norms[p]:.3f}" for p in points)) for s in report.steps]
    lines += ["  " + line for line in _table(("step", *points), rows)]
    return "\n".join(lines)


def _pooled(report) -> str:
    lines = ["Sentence vector under each pooling of the last hidden state (first values, norm)"]
    vectors = [(mode, report.pooled[mode]) for mode in POOLINGS]
    if report.pooler_output is not None:
        vectors.append(("pooler", report.pooler_output))
    for mode, vector in vectors:
        preview = " ".join(f"{v:+.3f}" for v in vector[:PREVIEW])
        lines.append(f"  {mode:<7} [{preview} ...]  norm {np.linalg.norm(vector):.3f}")
    return "\n".join(lines)


def _memory(report) -> str:
    m = report.memory
    if m is None:
        return ""
    lines = [
        f"Memory of an inference forward at batch {m.batch} x length {m.length}:",
        f"  weights            {human(m.weights, 'B')}",
        f"  activations (est.) {human(m.activations, 'B')}  (peak of attention "
        f"{human(m.attention_phase, 'B')}, feed-forward {human(m.ffn_phase, 'B')}, inputs "
        f"{human(m.inputs, 'B')})",
        f"  total (est.)       {human(m.total, 'B')}",
    ]
    if report.measured_peak is not None:
        error = m.activations / report.measured_peak - 1 if report.measured_peak else 0.0
        lines.append(
            f"  measured peak      {human(report.measured_peak, 'B')} of activations "
            f"(tracemalloc; the estimate is {error:+.1%} off)"
        )
    return "\n".join(lines)
