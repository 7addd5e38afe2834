"""The trainer: it learns, resumes bit for bit, stops cleanly on Ctrl-C and on NaN."""

import numpy as np
import pytest

from minibert import EncoderConfig
from minibert.models import from_config
from minibert.training.trainer import TrainConfig, Trainer, TrainingDiverged

CONFIG = EncoderConfig(
    architecture="BertForMaskedLM",
    vocab_size=50,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=24,
    max_position_embeddings=16,
)


def make_batches(batch_size=4, T=10, n=6):
    """An epoch of MLM batches; the masking draws from the epoch's rng (dynamic per epoch)."""

    def batches(epoch, rng):
        for _ in range(n):
            ids = rng.integers(5, 50, (batch_size, T))
            lengths = rng.integers(4, T + 1, batch_size)
            mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int64)
            ids = np.where(mask == 1, ids, 0)
            chosen = (rng.random((batch_size, T)) < 0.3) & (mask == 1)
            labels = np.where(chosen, ids, -100)
            yield {"input_ids": np.where(chosen, 4, ids), "attention_mask": mask, "labels": labels}

    return batches


def new_model(config=CONFIG):
    return from_config(config, seed=1)


def run(steps, tmp_path=None, resume=None, **overrides):
    config = TrainConfig(max_steps=steps, lr=3e-3, warmup_steps=2, progress=False, **overrides)
    trainer = Trainer(new_model(), make_batches(), config, output_dir=tmp_path)
    if resume is not None:
        trainer.resume(resume)
    return trainer, trainer.train()


def test_loss_falls_on_a_repeated_batch():
    fixed = list(make_batches(n=1)(0, np.random.default_rng(0)))

    config = TrainConfig(max_steps=60, lr=1e-2, progress=False, weight_decay=0.0)
    history = Trainer(new_model(), lambda epoch, rng: iter(fixed), config).train()
    assert history.loss[-1] < 0.5 * history.loss[0]


def test_resume_gives_the_same_losses_to_the_last_bit(tmp_path):
    _, full = run(9, tmp_path / "full")
    first, part = run(9, tmp_path / "part", save_every=4, keep_checkpoints=5)
    checkpoint = tmp_path / "part" / "checkpoint-4"
    assert checkpoint.is_dir()
    resumed, rest = run(9, tmp_path / "resumed", resume=checkpoint)
    assert rest.loss == full.loss  # exact equality: every random draw was restored
    assert part.loss == full.loss
    for (name, a), (_, b) in zip(
        first.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_ctrl_c_saves_and_resumes(tmp_path):
    _, full = run(8, tmp_path / "full")
    config = TrainConfig(max_steps=8, lr=3e-3, warmup_steps=2, progress=False)
    trainer = Trainer(new_model(), None, config, output_dir=tmp_path / "run")
    inner = make_batches()

    def batches(epoch, rng):
        for i, batch in enumerate(inner(epoch, rng)):
            if epoch == 0 and i == 3:
                trainer._request_stop(None, None)  # what Ctrl-C does
            yield batch

    trainer.batches = batches
    with pytest.raises(KeyboardInterrupt, match="stopped at step 4"):
        trainer.train()
    assert trainer.latest_checkpoint().name == "checkpoint-4"
    _, rest = run(8, tmp_path / "again", resume=tmp_path / "run" / "checkpoint-4")
    assert rest.loss == full.loss


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = TrainConfig(max_steps=10, lr=3e-3, progress=False, save_every=2)
    model = new_model()
    inner = make_batches()

    def batches(epoch, rng):
        for i, batch in enumerate(inner(epoch, rng)):
            if i == 5:
                model.embeddings.ln.params["weight"][:] = np.nan
            yield batch

    trainer = Trainer(model, batches, config, output_dir=tmp_path)
    with pytest.raises(TrainingDiverged, match=r"became nan at step 6 .*checkpoint-4"):
        trainer.train()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]


def test_checkpoints_are_complete_and_pruned(tmp_path):
    run(6, tmp_path, save_every=1, keep_checkpoints=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint-5", "checkpoint-6"]  # no temporary folders left behind
    files = sorted(p.name for p in (tmp_path / "checkpoint-6").iterdir())
    assert files == [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]
    import minibert

    minibert.load(tmp_path / "checkpoint-6")  # a checkpoint is also a model folder


def test_gradient_accumulation_of_equal_batches_equals_one_batch():
    batch = next(make_batches(n=1)(0, np.random.default_rng(2)))
    grads = []
    for accum in (1, 2):
        # eps 1e-2: Adam's first step is lr * sign(g) for tiny g, and some gradients are zero
        # up to rounding (key biases), so a large eps keeps the comparison continuous
        config = TrainConfig(
            max_steps=1, lr=1e-3, grad_accum=accum, progress=False, max_grad_norm=None, eps=1e-2
        )
        no_dropout = CONFIG.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        model = new_model(no_dropout)
        trainer = Trainer(model, lambda e, r, n=accum: iter([batch] * n), config)
        trainer.train()
        grads.append({n: p.copy() for n, p in trainer.model.named_parameters()})
    for name in grads[0]:
        np.testing.assert_allclose(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-7)


def test_dropout_is_on_in_training_and_reproducible():
    batch = next(make_batches(n=1)(0, np.random.default_rng(3)))
    model = new_model().train()
    a = float(model(**batch).loss)
    b = float(model(**batch).loss)
    assert a != b  # two dropout masks
    model.seed(0)
    c = float(model(**batch).loss)
    model.seed(0)
    assert float(model(**batch).loss) == c
    model.eval()
    assert float(model(**batch).loss) == float(model(**batch).loss)


def test_training_keeps_freed_memory_mapped_on_glibc():
    """Trainer.train sets glibc's malloc thresholds (training/allocator.py); on another C
    library the call reports that it did nothing instead of failing."""
    import platform

    from minibert.training.allocator import keep_freed_memory

    done = keep_freed_memory()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert done is True
    assert keep_freed_memory() is done  # once per process
