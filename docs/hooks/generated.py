"""mkdocs hook: parts of pages generated from the code, so that the docs cannot drift from it.

A page marks a generated block with two HTML comments:

    <!-- generated: weight-names -->
    ... (whatever was generated last time) ...
    <!-- end generated -->

At build time the hook replaces the block with fresh Markdown made by the function registered
under that name in GENERATORS: the package layout and import order of architecture.md, the
config.json field table and the weight-name tables of hf-mapping.md, and the lists of objects
the API reference documents (so a new public name or a new functional file appears without
editing api.md).

The committed pages hold a copy of each table too, for readers on GitHub;
`python docs/hooks/generated.py` refreshes the copies, and tests/test_docs.py fails when one is
out of date. A block opened with `<!-- generated at build time: NAME -->` is committed empty and
filled only on the site (the API lists, which mean nothing on GitHub).
"""

import dataclasses
import re
import sys
from pathlib import Path

FAMILY_ORDER = ("bert", "roberta", "distilbert", "albert")
FAMILY_NAMES = {
    "bert": "BERT",
    "roberta": "RoBERTa",
    "distilbert": "DistilBERT",
    "albert": "ALBERT",
}
BLOCK = re.compile(
    r"(?P<open><!-- generated(?P<when> at build time)?: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- end generated -->)",
    re.DOTALL,
)
# The shape letter of each EncoderConfig field (config.py's legend)
LETTERS = {
    "vocab_size": "V",
    "hidden_size": "C",
    "num_hidden_layers": "L",
    "num_attention_heads": "H",
    "intermediate_size": "F",
    "max_position_embeddings": "P",
    "embedding_size": "E",
}


def _families() -> list[str]:
    from minibert.config import DIALECTS

    return [f for f in FAMILY_ORDER if f in DIALECTS] + sorted(set(DIALECTS) - set(FAMILY_ORDER))


def _code(value) -> str:
    return f"`{value}`"


# --- config.json fields ----------------------------------------------------------------------
def config_fields() -> str:
    """EncoderConfig field -> the config.json key each family reads it from."""
    from minibert.config import DIALECTS, EncoderConfig

    families = _families()
    readers = {}
    for family in families:
        dialect = DIALECTS[family]
        keys = {ours: hf for hf, ours in dialect.keys.items()}
        readers[family] = (keys, dialect.defaults)
    header = ["EncoderConfig field", "default"] + [FAMILY_NAMES.get(f, f) for f in families]
    rows = []
    for field in dataclasses.fields(EncoderConfig):
        if field.name in ("model_type", "architecture", "hf_extra"):
            continue
        name = _code(field.name)
        if field.name in LETTERS:
            name += f" ({LETTERS[field.name]})"
        default = field.default if field.default is not dataclasses.MISSING else None
        row = [name, _code(repr(default))]
        for family in families:
            keys, defaults = readers[family]
            if field.name not in keys:
                row.append("-")
                continue
            cell = "same" if keys[field.name] == field.name else _code(keys[field.name])
            if field.name in defaults and defaults[field.name] != default:
                cell += f", default {_code(repr(defaults[field.name]))}"
            row.append(cell)
        rows.append(row)
    return _table(header, rows)


# --- weight names ----------------------------------------------------------------------------
def _tiny_model(class_name: str):
    """An instance of the class at toy sizes: only its names are wanted."""
    from minibert.config import EncoderConfig
    from minibert.models import MODEL_CLASSES

    cls = MODEL_CLASSES[class_name]
    config = EncoderConfig.from_hf({"model_type": cls.model_type, "architectures": [class_name]})
    config = config.replace(
        vocab_size=16,
        hidden_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=4,
        max_position_embeddings=8,
        embedding_size=2 if config.embedding_size else None,
        num_hidden_groups=1,
        inner_group_num=1,
    )
    return cls(config)


def _has_pooler(cls) -> bool:
    return any(o.startswith("pooler.") for o in _tiny_model(cls.__name__).hf_weight_names())


def _placeholders(ours: str, hf: str) -> tuple[str, str]:
    """Layer 0 of a one-layer model -> {i}; ALBERT's group and inner indices -> {g}, {j}."""
    ours = ours.replace(".0.", ".{i}.", 1)
    count = hf.count(".0.")
    if count == 1:
        hf = hf.replace(".0.", ".{i}.")
    elif count == 2:
        hf = hf.replace(".0.", ".{g}.", 1).replace(".0.", ".{j}.", 1)
    return ours, hf


def weight_names() -> str:
    """Per family: our parameter path -> Hugging Face name, for the body and for each head."""
    from minibert.models import MODEL_CLASSES

    sections = []
    for family in _families():
        classes = [c for c in MODEL_CLASSES.values() if c.model_type == family]
        base = next(c for c in classes if not c.heads)
        model = _tiny_model(base.__name__)
        lines = [f"### {FAMILY_NAMES.get(family, family)}", ""]
        with_pooler = [c.__name__ for c in classes if _has_pooler(c)]
        intro = (
            f"Body, as {_code(base.__name__)} names it; inside head models every name gets the "
            f"prefix {_code(model.prefix + '.')}"
        )
        if with_pooler:
            intro += f". The pooler belongs to {', '.join(map(_code, with_pooler))} only"
        lines.append(intro + ":")
        lines.append("")
        names = _pair_up(model.hf_weight_names())
        rows = [list(map(_code, _placeholders(o, h))) for o, h in names.items()]
        lines += [_table(["our path", "Hugging Face name"], rows), ""]
        body = set(model.hf_weight_names())
        head_rows = []
        for head in base.head_weight_names:
            users = [c.__name__ for c in classes if head in c.heads]
            if not users:
                continue
            tied = _tiny_model(users[0]).tied
            first = True
            for ours, hf in _pair_up(base.head_weight_names[head], keep=set(tied)).items():
                if ours in body:
                    continue
                note = f"tied to {_code(tied[ours])}: saved once" if ours in tied else ""
                classes_cell = ", ".join(map(_code, users)) if first else ""
                head_rows.append([classes_cell, _code(ours), _code(hf), note])
                first = False
        lines.append("Heads (each group of rows belongs to the classes named in its first row):")
        lines.append("")
        lines += [_table(["classes", "our path", "Hugging Face name", "notes"], head_rows), ""]
        if base.weight_aliases:
            aliases = ", ".join(
                f"{_code(a)} for {_code(n)}" for a, n in base.weight_aliases.items()
            )
            lines += [f"Older names accepted on load: {aliases}.", ""]
        sections.append("\n".join(lines).rstrip())
    return "\n\n".join(sections)


def _pair_up(names: dict, keep: set = frozenset()) -> dict:
    """Write x.weight and x.bias as one row x.{weight,bias} where both names pair up."""
    out = {}
    for ours, hf in names.items():
        stem, _, kind = ours.rpartition(".")
        hf_stem = hf.rpartition(".")[0]
        bias = names.get(f"{stem}.bias")
        paired = (
            kind == "weight" and bias == f"{hf_stem}.bias" and not {ours, stem + ".bias"} & keep
        )
        if paired:
            out[f"{stem}.{{weight,bias}}"] = f"{hf_stem}.{{weight,bias}}"
        elif not (kind == "bias" and f"{stem}.{{weight,bias}}" in out):
            out[ours] = hf
    return out


# --- the package's layout (architecture.md) ----------------------------------------------------
def _layers() -> tuple:
    """LAYERS of tests/test_imports.py, the table that test enforces, top to bottom."""
    import importlib.util

    file = Path(__file__).resolve().parents[2] / "tests" / "test_imports.py"
    spec = importlib.util.spec_from_file_location("minibert_layer_table", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LAYERS


def _summary(file: Path) -> str:
    """The first line of a module's docstring."""
    import ast

    doc = ast.get_docstring(ast.parse(file.read_text(encoding="utf-8"))) or ""
    return doc.splitlines()[0] if doc else ""


def import_order() -> str:
    """The layers as one chain: each imports only from the layers after it."""
    layers = [" / ".join(layer) for layer in _layers()]
    return "```text\n" + " -> ".join(layers) + "\n```"


def package_layout() -> str:
    """One row per module of minibert/, layer by layer from the top, with the first line of its
    docstring: the tree, the import order and what each file holds, read from the code."""
    import minibert

    package = Path(minibert.__file__).parent
    rows = [["", "`minibert/__init__.py`", _summary(package / "__init__.py")]]
    for rank, layer in enumerate(_layers(), 1):
        for name in layer:
            if (package / name).is_dir():
                files = [package / name / "__init__.py"]
                files += sorted(f for f in (package / name).glob("*.py") if f.stem != "__init__")
            else:
                files = [package / f"{name}.py"]
            for file in files:
                path = file.relative_to(package.parent).as_posix()
                if file.name == "__init__.py":
                    path = path.removesuffix("__init__.py")
                rows.append([str(rank), f"`{path}`", _summary(file).replace("|", "\\|")])
    return _table(["layer", "module", "what it holds"], rows)


# --- API reference ---------------------------------------------------------------------------
def api_public() -> str:
    """A mkdocstrings directive for every public name of `minibert` except the errors (which
    have their own section) and __version__."""
    import inspect

    import minibert
    import minibert.errors

    functions, classes = [], []
    for name in minibert.__all__:
        value = getattr(minibert, name)
        if name.startswith("_") or getattr(value, "__module__", "") == minibert.errors.__name__:
            continue
        if inspect.isfunction(value):
            functions.append(_directive(f"minibert.{name}"))
        elif inspect.isclass(value):
            classes.append(_directive(f"minibert.{name}"))
    return "\n\n".join(functions + classes)


def api_functional() -> str:
    """One mkdocstrings directive per file of minibert/functional/."""
    import pkgutil

    import minibert.functional

    names = [m.name for m in pkgutil.iter_modules(minibert.functional.__path__)]
    blocks = [_directive(f"minibert.functional.{n}") for n in names if not n.startswith("_")]
    return "\n\n".join(blocks)


def _directive(identifier: str, **options: str) -> str:
    """A mkdocstrings block, its heading one level under the page's "##" sections."""
    lines = [f"::: {identifier}", "    options:", "      heading_level: 3"]
    lines += [f"      {key}: {value}" for key, value in options.items()]
    return "\n".join(lines)


def quant_accuracy() -> str:
    """docs/results/quant.json (scripts/quant_reports.py) as the quantization page's tables."""
    import json

    file = Path(__file__).resolve().parents[1] / "results" / "quant.json"
    result = json.loads(file.read_text(encoding="utf-8"))
    emb = result["embeddings"]
    rows = []
    for label in ("int8", "int8, float32 word embeddings"):
        r = emb[label]
        ret = r["retrieval"]
        rows.append(
            [
                f"minibert {label}",
                f"{r['mean_cosine']:.4f}",
                f"{r['p05_cosine']:.4f}",
                f"{r['min_cosine']:.4f}",
                f"{ret['top1_agreement']:.0%}",
                f"{ret['top10_overlap']:.1%}",
                f"{ret['spearman']:.4f}",
            ]
        )
    header = [
        "all-MiniLM-L6-v2",
        "mean cosine",
        "5th percentile",
        "min",
        "top-1 agreement",
        "top-10 overlap",
        "Spearman",
    ]
    text = f"{emb['sentences']} sentences; retrieval: {ret['queries']} queries against "
    text += f"{ret['documents']} documents.\n\n" + _table(header, rows)
    if "halves" in emb:
        rows = [
            [label, f"{emb[key]['halves']['recall_at_1']:.1%}", f"{emb[key]['halves']['mrr']:.3f}"]
            for key, label in (
                ("float32", "float32"),
                ("int8", "int8"),
                ("int8, float32 word embeddings", "int8, float32 word embeddings"),
            )
        ]
        text += (
            f"\n\nFinding the second half of a sentence from its first half, among "
            f"{emb['halves']} second halves:\n\n"
        )
        text += _table(["all-MiniLM-L6-v2", "recall@1", "mean reciprocal rank"], rows)
    rows = []
    for name, what in (("finetune", "fine-tuned"), ("finetune-qat", "quantization-aware")):
        run = result.get(name)
        if run is None:
            rows.append([what, "not run", "", "", ""])
            continue
        f32, i8 = run["float32"], run["int8"]
        rows.append(
            [
                f"{what} (`{run['checkpoint']}`)",
                f"{f32['accuracy']:.2%}",
                f"{i8['accuracy']:.2%}",
                f"{100 * (i8['accuracy'] - f32['accuracy']):+.2f}",
                f"{f32['f1']:.3f} / {i8['f1']:.3f}",
            ]
        )
    header = ["Rotten Tomatoes classifier", "float32", "int8", "int8 - float32 (points)", "F1"]
    text += f"\n\nTest split: {run_size(result)} reviews of unseen movies.\n\n"
    return text + _table(header, rows)


def run_size(result) -> str:
    sizes = [r["test_size"] for r in (result.get("finetune"), result.get("finetune-qat")) if r]
    return f"{sizes[0]:,}" if sizes else "?"


# --- distillation (docs/distillation.md) -------------------------------------------------------
def _results(name: str):
    import json

    file = Path(__file__).resolve().parents[1] / "results" / name
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None


def distill_results() -> str:
    """docs/results/distill.json (scripts/distill_reports.py): the task-agnostic runs, the
    task-specific pairs and the Lee correlations, whichever have been run."""
    result = _results("distill.json") or {}
    parts = []
    agnostic = result.get("agnostic") or {}
    if agnostic:
        rows = []
        for recipe, r in agnostic.items():
            final = r.get("final", {})
            lee = r.get("lee", {})
            rows.append(
                [
                    recipe,
                    r["student"],
                    f"{r['parameters'] / 1e6:.2f}M "
                    f"({r['parameters'] / r['teacher_parameters']:.1%})",
                    f"{r.get('steps', '?')} x {r.get('batch_size', '?')}, lr {r.get('lr', '?')}",
                    f"{1 - final['held_out_sentence']:.3f}"
                    if "held_out_sentence" in final
                    else "-",
                    f"{lee['student']['spearman']:.3f} (teacher {lee['teacher']['spearman']:.3f})"
                    if lee
                    else "-",
                    f"{r['seconds_this_run'] / 60:.0f} min" if "seconds_this_run" in r else "-",
                    f"`{r['checkpoint']}`",
                ]
            )
        header = [
            "recipe",
            "student",
            "parameters (of MiniLM)",
            "steps x batch",
            "held-out sentence cosine",
            "Lee Spearman",
            "time",
            "checkpoint",
        ]
        parts.append("Task-agnostic, all-MiniLM-L6-v2 as the teacher:\n\n" + _table(header, rows))
    task = result.get("task") or {}
    if task:
        rows = []
        for key, entry in task.items():
            for mode in ("distilled", "no_teacher"):
                r = entry.get(mode)
                if not r:
                    continue
                rows.append(
                    [
                        key,
                        "soft targets + labels" if mode == "distilled" else "labels only",
                        r["student"],
                        f"{r['parameters'] / r['teacher_parameters']:.1%}",
                        f"{r['test']['accuracy']:.2%}",
                        f"{r['teacher_test']['accuracy']:.2%}",
                        f"{r['test']['accuracy'] / r['teacher_test']['accuracy']:.1%}",
                        f"{r.get('test_agreement_with_teacher', float('nan')):.1%}",
                    ]
                )
        header = [
            "student (recipe-init)",
            "trained on",
            "sizes",
            "parameters",
            "test accuracy",
            "teacher",
            "of teacher",
            "same label as teacher",
        ]
        parts.append(
            "Task-specific, the Rotten Tomatoes classifier as the teacher:\n\n"
            + _table(header, rows)
        )
    lee = result.get("lee") or {}
    if lee:
        rows = []
        teacher = lee.get("teacher")
        if teacher:
            rows.append(["teacher (all-MiniLM-L6-v2)", "-", f"{teacher['spearman']:.3f}"])
        for recipe, entry in lee.items():
            if recipe == "teacher":
                continue
            before, after = entry.get("before"), entry.get("after")
            rows.append(
                [
                    recipe,
                    f"{before['spearman']:.3f}" if before else "-",
                    f"{after['spearman']:.3f}" if after else "-",
                ]
            )
        parts.append(
            "Lee document similarity (Spearman), students before distillation (the recipe's "
            "initialisation) and after:\n\n" + _table(["model", "before", "after"], rows)
        )
    if not parts:
        return "No distillation results yet: run scripts/distill_reports.py."
    return "\n\n".join(parts)


def compare_results() -> str:
    """docs/results/compare.json (`minibert compare --json`) as its Markdown table."""
    from minibert.distill.report import markdown

    result = _results("compare.json")
    if result is None:
        return "No comparison yet: run `minibert compare ... --json docs/results/compare.json`."
    return markdown(result).rstrip()


def shipped_card() -> str:
    """docs/results/shipped.json (scripts/build_shipped_model.py): the bundled model's recipe,
    size per file, agreement with its teacher, Lee correlations and latency, for
    docs/model-card.md."""
    import json

    file = Path(__file__).resolve().parents[1] / "results" / "shipped.json"
    if not file.is_file():
        return "No figures yet: run `python scripts/build_shipped_model.py`."
    r = json.loads(file.read_text(encoding="utf-8"))
    recipe, size, name = r["recipe"], r["size"], r["name"]
    ours, theirs = r["parameters"]["shipped"], r["parameters"]["teacher"]
    q = recipe["quantization"]
    old, new = recipe["vocabulary"]
    rows = [
        ["teacher", f"{r['teacher']} ({r['teacher_licence']}), all its layers"],
        [
            "vocabulary",
            f"{old:,} -> {new:,} word pieces: those used at least {recipe['min_count']} times in "
            f"{recipe['sentences']:,} corpus sentences ({recipe['corpus_coverage']:.2%} of their "
            "tokens keep their piece), plus every special and single-character piece",
        ],
        ["positions", f"the first {recipe['max_positions']} rows of the position table"],
        [
            f"int{q['bits']}",
            f"{q['scheme']}; groups of {q['group_size']} input channels; {q['rounding'].upper()} "
            f"rounding of the linear layers from {recipe['calibration_sentences']} calibration "
            f"sentences ({q['calibration_tokens']:,} tokens, damping {q['damping']}); the word "
            f"table int{q['embedding_bits']} per group, rounded to nearest",
        ],
        [
            "parameters",
            f"{ours['total']:,} ({ours['total'] / theirs['total']:.1%} of the teacher's "
            f"{theirs['total']:,}); encoder {ours['encoder']:,}, as the teacher's",
        ],
        [
            "size on disk",
            f"{size['shipped']['total'] / 1e6:.2f} MB in all; the teacher's float32 "
            f"`model.safetensors` is {size['teacher_model_safetensors'] / 1e6:.1f} MB",
        ],
    ]
    parts = [_table(["", name], rows)]
    files = size["shipped"]["files"]
    rows = [[f"`{n}`", f"{b:,}", f"{b / 1e6:.3f}"] for n, b in files.items()]
    rows.append(["all", f"{size['shipped']['total']:,}", f"{size['shipped']['total'] / 1e6:.3f}"])
    parts.append("Files (MB = 10^6 bytes):\n\n" + _table(["file", "bytes", "MB"], rows))
    pairs = {
        "shipped_vs_teacher": f"{name} vs teacher",
        "trimmed_float32_vs_teacher": "trimmed float32 (before int4) vs teacher",
        "shipped_vs_trimmed_float32": f"{name} vs trimmed float32 (what int4 costs)",
        "teacher_int8_vs_teacher": "teacher int8 vs teacher (for scale)",
    }
    texts = {
        "held_out": "held-out corpus sentences",
        "rotten_tomatoes": "Rotten Tomatoes review sentences, text the trimming never saw",
    }
    for where, measured in r["agreement"].items():
        rows = [
            [
                pairs.get(k, k),
                f"{a['mean_cosine']:.4f}",
                f"{a['p5_cosine']:.4f}",
                f"{a['top1_agreement']:.1%}",
                f"{a['reference_top1_in_top5']:.1%}",
            ]
            for k, a in measured.items()
        ]
        n = next(iter(measured.values()))["sentences"]
        parts.append(
            f"Agreement on {n} {texts.get(where, where)} (mean-pooled, unit-length vectors):\n\n"
            + _table(
                [
                    "pair",
                    "mean cosine",
                    "5th percentile",
                    "same nearest neighbour",
                    "reference's nearest in the top 5",
                ],
                rows,
            )
        )
    if "lee" in r:
        lee = r["lee"]
        rows = [
            [who, f"{lee[key]['spearman']:.3f}", f"{lee[key]['pearson']:.3f}"]
            for key, who in (("teacher", "teacher (all-MiniLM-L6-v2, float32)"), ("shipped", name))
        ]
        parts.append(
            "Lee document similarity (correlation of cosine similarity with the human "
            "ratings of 1,225 document pairs):\n\n" + _table(["model", "Spearman", "Pearson"], rows)
        )
    t = r.get("latency_ms")
    if t:
        shapes = [k for k in t if "x" in k and k[0].isdigit()]
        who = {
            "teacher_float32": "teacher, float32",
            "teacher_int8": "teacher, int8",
            "shipped": name,
        }
        rows = [[who.get(m, m)] + [f"{t[s][m]:.2f}" for s in shapes] for m in t[shapes[0]]]
        parts.append(
            f"Latency, median ms of one forward pass over {t['repeats']} calls "
            f"(batch x tokens), {t['machine']}, load average {t['load_average_before']} "
            f"before and {t['load_average_after']} after:\n\n" + _table(["model"] + shapes, rows)
        )
    return "\n\n".join(parts)


GENERATORS = {
    "import-order": import_order,
    "package-layout": package_layout,
    "shipped-card": shipped_card,
    "quant-accuracy": quant_accuracy,
    "distill-results": distill_results,
    "compare-results": compare_results,
    "config-fields": config_fields,
    "weight-names": weight_names,
    "api-public": api_public,
    "api-functional": api_functional,
}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fill(markdown: str, build: bool = True) -> str:
    """The page with its generated blocks replaced by fresh copies: every block when building
    the site, else only those committed with a copy (not the "at build time" ones)."""

    def replace(match):
        name = match.group("name")
        if name not in GENERATORS:
            raise KeyError(f"unknown generated block {name!r}; known: {sorted(GENERATORS)}")
        if match.group("when") and not build:
            return match.group(0)
        return f"{match.group('open')}\n{GENERATORS[name]()}\n\n{match.group('close')}"

    return BLOCK.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files):
    if "<!-- generated" not in markdown:
        return markdown
    return fill(markdown)


if __name__ == "__main__":
    # Refresh the copies in the committed pages: python docs/hooks/generated.py
    docs = Path(__file__).resolve().parents[1]
    for page in sorted(docs.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        fresh = fill(text, build=False)
        if fresh != text:
            page.write_text(fresh, encoding="utf-8")
            print(f"updated {page.relative_to(docs.parent)}", file=sys.stderr)
