"""What a Tokenizer call returns: a dict of (B, T) arrays, plus what each row's tokens came from.

The arrays are the model's inputs (input_ids, attention_mask, token_type_ids) and, when asked
for, offset_mapping (B, T, 2), special_tokens_mask (B, T) and overflow_to_sample_mapping (B,).
The methods word_ids, sequence_ids and tokens answer per row, as Hugging Face's BatchEncoding
does, from the `tokenizers.Encoding` of that row (kept in `encodings`).
"""


class Encoding(dict):
    """input_ids, attention_mask, token_type_ids as np.int64 (B, T), and the optional arrays.

    Item access (enc["input_ids"]) and attribute access (enc.input_ids) both work. With
    return_overflowing_tokens=True, B counts windows, not texts: overflow_to_sample_mapping[i]
    is the text that row i came from.
    """

    def __init__(self, arrays=(), encodings=()):
        super().__init__(arrays)
        self.encodings = list(encodings)  # one tokenizers.Encoding per row, padding included

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def _row(self, batch_index):
        if isinstance(batch_index, bool) or not isinstance(batch_index, int):
            raise ValueError(f"batch_index must be an int, got {type(batch_index).__name__}")
        if not self.encodings:
            raise ValueError("this Encoding keeps no rows (it was not made by a Tokenizer call)")
        if not -len(self.encodings) <= batch_index < len(self.encodings):
            raise ValueError(
                f"batch_index {batch_index} is out of range: the batch has "
                f"{len(self.encodings)} rows"
            )
        return self.encodings[batch_index]

    def word_ids(self, batch_index: int = 0) -> list:
        """The word each token of row batch_index belongs to (counted from 0 in each text of a
        pair), None for special and padding tokens."""
        return list(self._row(batch_index).word_ids)

    def sequence_ids(self, batch_index: int = 0) -> list:
        """0 for tokens of the first text, 1 for the second, None for special and padding tokens."""
        return list(self._row(batch_index).sequence_ids)

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The token strings of row batch_index, special and padding tokens included."""
        return list(self._row(batch_index).tokens)
