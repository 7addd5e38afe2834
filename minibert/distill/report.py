"""compare()'s results as a reader sees them: tables, target lines and a chart.

An aligned text table, Markdown with the settings and notes, the target lines (parameters /
accuracy / speed of each student against the teacher), and a chart of bars: float32, int8 and
the compressed variants side by side.
"""

from pathlib import Path

import numpy as np

COLUMNS = (
    "model",
    "precision",
    "sizes",
    "parameters",
    "encoder",
    "size on disk",
    "1x16 ms",
    "8x128 ms",
    "speed-up 1x16 / 8x128",
    "peak memory (+ over imports)",
    "mean cosine",
    "top-1 agreement",
    "Lee Spearman",
    "accuracy",
    "% of teacher accuracy",
)


def _cells(row: dict) -> list[str]:
    p = row["parameters"]
    na = "n/a"
    cells = [
        row["name"],
        row["precision"],
        row["sizes"],
        f"{p['total'] / 1e6:.2f}M ({row['parameters_share']:.0%})",
        f"{p['encoder'] / 1e6:.2f}M ({row['encoder_share']:.1%})",
        f"{row['bytes'] / 1e6:.1f} MB",
    ]
    if "latency_ms" in row:
        lat, up, mem = row["latency_ms"], row["speedup"], row["memory_mib"]
        cells += [
            f"{lat['1x16']:.2f}",
            f"{lat['8x128']:.1f}",
            f"{up['1x16']:.2f}x / {up['8x128']:.2f}x",
            f"{mem['peak']:.0f} MiB (+{mem['increase']:.0f})",
        ]
    else:
        cells += ["not timed"] * 4
    cosine = row.get("mean_cosine")
    cells.append(f"{cosine:.4f}" if cosine is not None else na)
    top1 = row.get("top1_agreement")
    cells.append(f"{top1:.1%}" if top1 is not None else na)
    lee = row.get("lee")
    cells.append(f"{lee:.3f}" if lee is not None else na)
    acc = row.get("accuracy")
    cells.append(f"{acc['accuracy']:.2%}" if acc else na)
    share = row.get("accuracy_share")
    cells.append(f"{share:.1%}" if share is not None else na)
    return cells


def _notes(results: dict) -> list[str]:
    """Why a cell says n/a, once per model."""
    notes, seen = [], set()
    for row in results["rows"]:
        if row["name"] in seen:
            continue
        seen.add(row["name"])
        if row.get("cosine_note") and row.get("mean_cosine") is None:
            notes.append(f"{row['name']}: mean cosine n/a: {row['cosine_note']}")
        elif row.get("cosine_note"):
            notes.append(f"{row['name']}: mean cosine {row['cosine_note']}")
        short = {k: v for k, v in row.get("shapes_run", {}).items() if k != v}
        if short:
            ran = ", ".join(f"{k} as {v}" for k, v in short.items())
            notes.append(f"{row['name']}: ran {ran} (its position table is shorter)")
        if row["role"] == "classifier":
            notes.append(f"{row['name']}: a classifier; agreement and Lee are not measured")
    return notes


def table(results: dict) -> str:
    """The rows as an aligned plain-text table (one line per model and precision)."""
    rows = [list(COLUMNS)] + [_cells(r) for r in results["rows"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + _settings_lines(results) + _notes(results))


def markdown(results: dict) -> str:
    """The rows as a Markdown table, the settings and the notes below it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [
        "| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in results["rows"]
    ]
    extra = _settings_lines(results) + _notes(results) + targets(results)
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in extra) + "\n"


def _settings_lines(results: dict) -> list[str]:
    s = results["settings"]
    load = s.get("load_average")
    lines = [
        f"measured {s['date']}: latency = median of {s['repeats']} forward passes after "
        f"{s['warmup']} warm-up, {s['threads']} threads ({', '.join(s['thread_variables'])}), "
        f"a process per row, the rows timed in turns {s.get('pause_s', 0):g} s apart; "
        f"{s['cpus']} CPUs, load average "
        + (" / ".join(f"{x:.2f}" for x in load) if load else "unknown"),
        "peak memory: the process's peak RSS after loading and running both shapes; (+N): "
        "over the interpreter with numpy and minibert imported",
    ]
    if s.get("texts"):
        lines.append(
            f"agreement with the teacher (float32) on {s['texts']} held-out sentences; "
            "encoder = the transformer layers, without embeddings, pooler and heads"
        )
    c = s.get("classification")
    if c:
        lines.append(
            f"accuracy: test split of {c['source']} (80/10/10 by group, seed {c['split_seed']}, "
            f"{c['max_length']} tokens, labels {', '.join(c['labels'])})"
        )
    return lines


def targets(results: dict, share: float = 0.40, keep: float = 0.95, speed: float = 2.0):
    """One line per student row with an accuracy: does it meet 'at most `share` of the
    teacher's encoder parameters, at least `keep` of its accuracy, at least `speed`x faster'
    (speed at 8 x 128 against the teacher in float32)?"""
    lines = []
    for row in results["rows"]:
        if row["role"] == "teacher" or row.get("accuracy_share") is None:
            continue
        checks = [
            (
                f"encoder parameters {row['encoder_share']:.1%} of the teacher's "
                f"(total {row['parameters_share']:.1%})",
                row["encoder_share"] <= share,
            ),
            (
                f"accuracy {row['accuracy_share']:.1%} of the teacher's",
                row["accuracy_share"] >= keep,
            ),
        ]
        if "speedup" in row:
            fast = row["speedup"]["8x128"]
            checks.append((f"{fast:.2f}x faster at 8x128", fast >= speed))
        met = all(ok for _, ok in checks)
        detail = "; ".join(f"{text} ({'yes' if ok else 'no'})" for text, ok in checks)
        lines.append(
            f"target {share:.0%} / {keep:.0%} / {speed:g}x, {row['name']} {row['precision']}: "
            f"{'met' if met else 'not met'}: {detail}"
        )
    return lines


def _short(value: float) -> str:
    """A bar's label: 3 significant digits, no exponent."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def plot(results: dict, file) -> Path:
    """Bar charts, float32, int8 and the variants side by side for each model: size on disk,
    latency at both shapes, peak memory, Lee correlation, accuracy. Needs matplotlib."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "the chart needs matplotlib: pip install matplotlib (or leave out --chart)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    names = list(dict.fromkeys(r["name"] for r in rows))
    panels = [
        ("size on disk (MB)", lambda r: r["bytes"] / 1e6),
        ("latency 1x16 (ms)", lambda r: r.get("latency_ms", {}).get("1x16")),
        ("latency 8x128 (ms)", lambda r: r.get("latency_ms", {}).get("8x128")),
        ("peak memory (MiB)", lambda r: r.get("memory_mib", {}).get("peak")),
        ("Lee Spearman", lambda r: r.get("lee")),
        (
            "test accuracy (%)",
            lambda r: 100 * r["accuracy"]["accuracy"] if "accuracy" in r else None,
        ),
    ]
    panels = [(t, f) for t, f in panels if any(f(r) is not None for r in rows)]
    cols = 3
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    x = np.arange(len(names))
    precisions = list(dict.fromkeys(r["precision"] for r in rows))  # float32, int8, variants
    palette = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#e7ba52", "#d6616b")
    colours = {p: palette[i % len(palette)] for i, p in enumerate(precisions)}
    width = 0.8 / len(precisions)
    labels = []
    for name in names:
        first = next(r for r in rows if r["name"] == name)
        wrapped = name.replace("-", "-\n") if len(name) > 12 else name
        labels.append(f"{wrapped}\n{first['parameters']['total'] / 1e6:.1f}M")
    for ax, (title, value) in zip(axes.flat, panels, strict=False):
        for k, precision in enumerate(precisions):
            heights = []
            for name in names:
                row = next(
                    (r for r in rows if r["name"] == name and r["precision"] == precision), None
                )
                v = value(row) if row is not None else None
                heights.append(np.nan if v is None else v)
            offset = (k - (len(precisions) - 1) / 2) * width
            bars = ax.bar(x + offset, heights, width, label=precision, color=colours[precision])
            texts = ["" if np.isnan(h) else _short(h) for h in heights]
            ax.bar_label(bars, labels=texts, fontsize=7, padding=1)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(x, labels, fontsize=8)
        ax.margins(y=0.15)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    s = results["settings"]
    what = ", ".join(precisions) if len(precisions) <= 2 else "float32, int8 and compressed copies"
    fig.suptitle(f"teacher and students, {what} ({s['threads']} threads, {s['date']})", fontsize=10)
    if len(precisions) <= 2:
        axes.flat[0].legend(fontsize=8)
        fig.tight_layout()
    else:  # the variants' legend below the panels, where it covers no bar
        handles, names_ = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, names_, loc="lower center", ncol=min(4, len(names_)), fontsize=8)
        fig.tight_layout(rect=(0, 0.05 * -(-len(names_) // 4), 1, 1))
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file, dpi=100)
    plt.close(fig)
    return file
