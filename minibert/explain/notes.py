"""What a model's family does differently, said in sentences, and its parameters counted two ways.

ALBERT shares its layers, so it has fewer unique parameters than the parameters its steps use
(effective: as many as a BERT with one layer per step); it embeds at width E and projects to C.
DistilBERT has no token types and no pooler. RoBERTa counts positions from pad_token_id + 1.
The explain report prints these beside the numbers they change.
"""

from ..quant import is_quantized


def _module_parameters(module) -> int:
    """Parameters of a module and its children (an int8 weight's scales are not parameters)."""
    return sum(
        m.parameter_size(key) for _, m, key in module._param_slots() if key != "weight_scale"
    )


def parameter_summary(model) -> dict:
    """{"unique": stored parameters (a tied array once), "effective": parameters the forward
    uses, a shared layer counted at every step, "by_component": model.parameter_counts(),
    "steps": encoder steps, "unique_layers": layers with their own weights}."""
    counts = model.parameter_counts()
    layers = model.encoder.layers
    used = sum(_module_parameters(layers[i]) for i in model.encoder.schedule)
    return {
        "unique": counts["total"],
        "effective": counts["total"] - counts["encoder"] + used,
        "by_component": counts,
        "steps": len(model.encoder.schedule),
        "unique_layers": len(layers),
    }


def architecture_notes(model, length: int) -> list[str]:
    """Sentences on what this model's family does differently, with its numbers; `length` is
    the number of tokens the report ran."""
    config = model.config
    C, E = config.hidden_size, config.embedding_size or config.hidden_size
    notes = []
    family = config.model_type
    if family == "albert":
        summary = parameter_summary(model)
        notes.append(
            f"ALBERT shares layers: its {summary['steps']} steps run "
            f"{summary['unique_layers']} unique layer(s) (num_hidden_groups "
            f"{config.num_hidden_groups}, inner_group_num {config.inner_group_num}), so it "
            f"stores {summary['unique']:,} parameters but computes with {summary['effective']:,} "
            "(effective: each step's layer counted again, as a BERT of as many layers would "
            "have them)."
        )
        notes.append(
            f"ALBERT embeds at E = {E} and projects to C = {C} (embeddings.projection: "
            f"{E * C + C:,} parameters, {2 * length * E * C + length * C:,} FLOPs here); the "
            f"word table is V x E = {config.vocab_size * E:,} instead of V x C = "
            f"{config.vocab_size * C:,}."
        )
    elif family == "distilbert":
        notes.append(
            "DistilBERT has no token types (no embeddings.token_type): the two texts of a pair "
            "are told apart only by the separator between them."
        )
        notes.append(
            "DistilBERT has no pooler: the 'cls' pooling below is the last hidden state's first "
            "token, with no dense layer and tanh after it."
        )
        if config.sinusoidal_pos_embds:
            notes.append("Its position table is the fixed sinusoid (sinusoidal_pos_embds).")
    elif family == "roberta":
        first = config.position_offset
        notes.append(
            f"RoBERTa counts positions from pad_token_id + 1 = {first}: token i uses position "
            f"row {first} + i, so {config.max_position_embeddings} rows hold "
            f"{config.max_length} tokens; padding keeps position {config.pad_token_id}."
        )
        notes.append(
            f"RoBERTa has type_vocab_size {config.type_vocab_size}: every token, in both texts "
            "of a pair, has token type 0."
        )
    elif family == "bert":
        notes.append(
            f"BERT adds a token-type vector ({config.type_vocab_size} types): the second text "
            "of a pair has type 1."
        )
    if family != "distilbert":
        if hasattr(model, "pooler"):
            notes.append(
                "The pooler (tanh of a dense layer on the first token) gives pooler_output."
            )
        else:
            notes.append(f"This {type(model).__name__} runs no pooler: its task does not read it.")
    if is_quantized(model):
        notes.append(
            "The weights are quantized: the bytes moved count them as stored (int8 or int4 "
            "codes and their float32 scales); activations stay float32."
        )
    return notes
