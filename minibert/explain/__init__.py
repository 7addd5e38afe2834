"""`minibert explain`: what a model does with one text, as a report.

    from minibert.explain import explain, render_text, write_page

    report = explain(model, tokenizer, "The cat sat.", batch=8, length=128)
    print(render_text(report))          # tokens, per-op costs, attention, norms, pooling, memory
    write_page(report, "explain.html")  # the head view and the model view, one offline file

costs.py   FLOPs and bytes moved per op of a forward, and their closed forms
memory.py  the memory estimate of an inference forward, and its measurement
notes.py   what each family does differently (ALBERT's sharing, DistilBERT, RoBERTa)
report.py  the report: one traced forward, read
render.py  the report as text
page.py    the report's attention views as a self-contained HTML page (page.html)
"""

from .costs import OpCost, WeightFormat, forward_bytes, forward_flops, forward_ops
from .memory import MemoryEstimate, measure_forward_peak, memory_estimate
from .page import render_page, write_page
from .render import render_text
from .report import Report, explain, explain_ids

__all__ = [
    "MemoryEstimate",
    "OpCost",
    "Report",
    "WeightFormat",
    "explain",
    "explain_ids",
    "forward_bytes",
    "forward_flops",
    "forward_ops",
    "measure_forward_peak",
    "memory_estimate",
    "render_page",
    "render_text",
    "write_page",
]
