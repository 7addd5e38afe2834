"""ALBERT's tokenizer built from a sentencepiece model (spiece.model), as a `tokenizers` Unigram.

spiece.model is a protocol-buffer message: the pieces (token, log-probability score, type), the
trainer's settings (which piece is unknown, Unigram or BPE) and the normaliser's (a compiled
character map, NFKC-like). We read it with the sentencepiece package's message class (the
optional extra `minibert[sentencepiece]`) and build what Hugging Face's AlbertTokenizer builds:

- normaliser: `` and '' become ", accents are stripped (NFKD, then combining marks dropped)
  unless keep_accents, lowercase if do_lower_case, then the model's own character map;
- pre-tokeniser: split on whitespace, then mark each word's start with "▁" (Metaspace), which
  is how sentencepiece writes a space;
- model: Unigram, the most probable split of each word into pieces (Viterbi over the scores);
- post-processor: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` with segment ids 0 and 1.
"""

import tokenizers
from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors

from ..errors import CheckpointError
from .special_tokens import ROLES

# AlbertTokenizer's default special tokens
ALBERT_SPECIAL_TOKENS = {
    "unk": "<unk>",
    "cls": "[CLS]",
    "sep": "[SEP]",
    "pad": "<pad>",
    "mask": "[MASK]",
}
UNIGRAM = 1  # TrainerSpec.model_type: 1 Unigram, 2 BPE, 3 word, 4 char
CONTROL = 3  # SentencePiece.type: 1 normal, 2 unknown, 3 control, 4 user defined, 6 byte


def albert_from_spiece(file, config, given):
    """(backend, {role: token or None}) from spiece.model; `given` names special tokens from the
    config files. Needs the sentencepiece package; a malformed file raises CheckpointError."""
    proto = _read_model(file)
    if proto.trainer_spec.model_type != UNIGRAM:
        raise CheckpointError(
            f"{file} is a sentencepiece model of type {proto.trainer_spec.model_type}; "
            "only Unigram models (type 1, ALBERT's) are supported"
        )
    pieces = [(piece.piece, piece.score) for piece in proto.pieces]
    vocab = {token: index for index, (token, _) in enumerate(pieces)}
    special = {role: given.get(role, ALBERT_SPECIAL_TOKENS[role]) for role in ROLES}
    for role in ("unk", "cls", "sep"):  # the model and the [CLS]/[SEP] frame need these
        if special[role] not in vocab:
            raise CheckpointError(f"{file} has no {special[role]} piece ({role}_token)")
    special = {role: (token if token in vocab else None) for role, token in special.items()}

    backend = tokenizers.Tokenizer(models.Unigram(pieces, unk_id=vocab[special["unk"]]))
    steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if not config.get("keep_accents", False):
        steps += [normalizers.NFKD(), normalizers.StripAccents()]
    if config.get("do_lower_case", True):
        steps.append(normalizers.Lowercase())
    if proto.normalizer_spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap))
    backend.normalizer = normalizers.Sequence(steps)
    prepend = "always" if config.get("add_prefix_space", True) else "never"
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend),
        ]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=prepend)
    cls_token, sep_token = special["cls"], special["sep"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[(cls_token, vocab[cls_token]), (sep_token, vocab[sep_token])],
    )
    # Control pieces (<pad>, [CLS], [SEP]) never come out of the Unigram split: written in a
    # text, they are matched whole before normalisation. load_tokenizer adds the roles' tokens.
    roles = set(special.values())
    controls = [p.piece for p in proto.pieces if p.type == CONTROL and p.piece not in roles]
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in controls])
    return backend, special


def _read_model(file):
    """The ModelProto message in spiece.model."""
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as e:
        raise CheckpointError(
            f"{file} is a sentencepiece model: reading it needs the sentencepiece and protobuf "
            f'packages ({e}); install them with: pip install "minibert[sentencepiece]"'
        ) from None
    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(file.read_bytes())
    except Exception as e:  # protobuf's DecodeError, or OSError
        raise CheckpointError(f"{file} is not a valid sentencepiece model: {e}") from e
    if not proto.pieces:
        raise CheckpointError(f"{file} is not a valid sentencepiece model: it has no pieces")
    return proto
