"""What a sentence-transformers folder says: its modules, pooling, token limit and prompts.

modules.json lists the modules that turn a text into a vector, in the order they run. Two layouts
of the same files exist, and both are read here:

    classic  types sentence_transformers.models.Transformer / Pooling / Dense / Normalize,
             1_Pooling/config.json with boolean pooling_mode_cls_token, pooling_mode_mean_tokens,
             ... keys, max_seq_length in sentence_bert_config.json
    modern   (sentence-transformers 6) types such as
             sentence_transformers.base.modules.transformer.Transformer, "pooling_mode": "mean"
             (or a list of modes), the token limit in tokenizer_config.json's model_max_length

config_sentence_transformers.json may name prompts ({"query": "query: ", ...}) and a default
one. A folder without modules.json is a plain Hugging Face folder: mean pooling, unit length.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..functional.pooling import POOLINGS

MODULES_FILE = "modules.json"
TRANSFORMER_CONFIG = "sentence_bert_config.json"
PROMPTS_FILE = "config_sentence_transformers.json"
# The classic boolean keys, in the order sentence-transformers concatenates their vectors.
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# Module kinds we run, by the last part of their type name; Dropout is the identity at inference.
KINDS = ("Transformer", "Pooling", "Dense", "Normalize", "Dropout")
# tokenizer_config.json says "no limit" with a huge number (transformers' VERY_LARGE_INTEGER).
NO_LIMIT = 10**9


@dataclass(frozen=True)
class SentenceFolder:
    """How a folder turns texts into vectors.

    transformer: the folder holding the encoder's config, weights and tokenizer.
    max_seq_length: the folder's token limit, None when it sets none.
    pooling: the pooling modes, concatenated in this order; include_prompt: whether a prompt's
        tokens are pooled with the text's.
    after_pooling: ("dense", folder) and ("normalize", None) steps, in the order they run.
    do_lower_case: lowercase texts before the tokenizer sees them.
    prompts, default_prompt_name: from config_sentence_transformers.json.
    has_modules: False for a plain Hugging Face folder (no modules.json).
    """

    transformer: Path
    max_seq_length: int | None = None
    pooling: tuple = ("mean",)
    include_prompt: bool = True
    after_pooling: tuple = (("normalize", None),)
    do_lower_case: bool = False
    prompts: dict = field(default_factory=dict)
    default_prompt_name: str | None = None
    has_modules: bool = False

    @property
    def normalize(self) -> bool:
        """Whether the folder's vectors end at unit length (a Normalize module last)."""
        return bool(self.after_pooling) and self.after_pooling[-1][0] == "normalize"


def read_sentence_folder(path) -> SentenceFolder:
    """Read modules.json and the module configs it points to; a plain folder gets the defaults."""
    folder = Path(path)
    if not (folder / MODULES_FILE).is_file():
        # today's behaviour for a plain folder: sentence_bert_config.json's limit if it has one
        return SentenceFolder(folder, max_seq_length=_max_seq_length(folder, None))
    modules = _read_modules(folder)
    kinds = [kind for kind, _ in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or kinds.count("Transformer") != 1:
        raise ConfigError(
            f"{folder / MODULES_FILE} lists {kinds}: minibert runs a Transformer, then a Pooling, "
            "then any Dense, Normalize or Dropout modules"
        )
    transformer = modules[0][1]
    pooling, include_prompt = _read_pooling(modules[1][1])
    after = []
    for kind, module_folder in modules[2:]:
        if kind == "Pooling":
            raise ConfigError(f"{folder / MODULES_FILE} lists a second Pooling module")
        if kind == "Dense":
            after.append(("dense", module_folder))
        elif kind == "Normalize":
            _check_normalize(module_folder)
            after.append(("normalize", None))
    transformer_config = read_json(transformer / TRANSFORMER_CONFIG)
    prompts, default_prompt_name = _read_prompts(folder)
    return SentenceFolder(
        transformer=transformer,
        max_seq_length=_max_seq_length(transformer, transformer_config),
        pooling=pooling,
        include_prompt=include_prompt,
        after_pooling=tuple(after),
        do_lower_case=bool(transformer_config.get("do_lower_case", False)),
        prompts=prompts,
        default_prompt_name=default_prompt_name,
        has_modules=True,
    )


def _read_modules(folder: Path) -> list:
    """[(kind, module folder)] from modules.json, checked."""
    file = folder / MODULES_FILE
    entries = read_json(file, kind=list)
    if not entries:
        raise ConfigError(f"{file} should be a non-empty list of modules")
    modules = []
    for index, entry in enumerate(sorted(entries, key=_module_index)):
        module_type = entry.get("type", "")
        kind = module_type.rsplit(".", 1)[-1]
        if not module_type.startswith("sentence_transformers.") or kind not in KINDS:
            raise ConfigError(
                f"{file}: module {index} has type {module_type!r}, which minibert does not run "
                f"(it runs sentence-transformers' {', '.join(KINDS)})"
            )
        if kind != "Dropout":
            modules.append((kind, folder / entry.get("path", "")))
    return modules


def _module_index(entry) -> int:
    if not isinstance(entry, dict) or not isinstance(entry.get("idx", 0), int):
        raise ConfigError(
            f"{MODULES_FILE}: each entry should be an object with an integer idx, got {entry!r}"
        )
    return entry.get("idx", 0)


def _read_pooling(module_folder: Path) -> tuple:
    """(modes, include_prompt) of a Pooling module, in either layout."""
    file = module_folder / "config.json"
    config = read_json(file)
    if not config:
        raise ConfigError(f"the Pooling module has no config: {file} is missing")
    modes = config.get("pooling_mode")
    if modes is None:  # classic: one boolean key per mode; none set means mean
        modes = [mode for key, mode in LEGACY_POOLING_KEYS.items() if config.get(key)] or ["mean"]
    modes = [modes] if isinstance(modes, str) else modes
    if not isinstance(modes, list) or not modes or any(m not in POOLINGS for m in modes):
        raise ConfigError(f"{file}: pooling_mode should be one of {POOLINGS} or a list of them")
    include_prompt = config.get("include_prompt", True)
    if not isinstance(include_prompt, bool):
        raise ConfigError(f"{file}: include_prompt should be true or false, got {include_prompt!r}")
    return tuple(modes), include_prompt


def _check_normalize(module_folder: Path) -> None:
    """A Normalize module may name what it normalises; we run the pooled vector's only."""
    config = read_json(module_folder / "config.json")
    for key in ("module_input_name", "module_output_name"):
        if config.get(key, "sentence_embedding") not in ("sentence_embedding", None):
            raise ConfigError(
                f"{module_folder / 'config.json'}: {key} is {config[key]!r}; minibert "
                "normalises the pooled sentence vector only"
            )


def _max_seq_length(transformer: Path, config: dict | None) -> int | None:
    """sentence_bert_config.json's max_seq_length; in the modern layout (config given, no such
    key) tokenizer_config.json's model_max_length; None when neither sets a limit."""
    if config is None:
        config = read_json(transformer / TRANSFORMER_CONFIG)
        tokenizer_config = {}
    else:
        tokenizer_config = read_json(transformer / "tokenizer_config.json")
    for file, value in (
        (TRANSFORMER_CONFIG, config.get("max_seq_length")),
        ("tokenizer_config.json", tokenizer_config.get("model_max_length")),
    ):
        if value is None or (isinstance(value, (int, float)) and value >= NO_LIMIT):
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(
                f"{transformer / file}: the token limit should be a positive integer, got {value!r}"
            )
        return value
    return None


def _read_prompts(folder: Path) -> tuple:
    """(prompts, default_prompt_name) from config_sentence_transformers.json."""
    file = folder / PROMPTS_FILE
    config = read_json(file)
    prompts = config.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()
    ):
        raise ConfigError(f"{file}: prompts should map names to strings, got {prompts!r}")
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise ConfigError(
            f"{file}: default_prompt_name {default!r} is not one of the prompts {sorted(prompts)}"
        )
    return prompts, default


def read_json(file: Path, kind=dict):
    """The file's JSON object (a list for kind=list), {} when the file is absent; ConfigError
    naming the file when it is not JSON or not of that kind."""
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file} is not valid JSON: {e}") from None
    if not isinstance(data, kind):
        raise ConfigError(f"{file} should hold a JSON {'object' if kind is dict else 'list'}")
    return data
