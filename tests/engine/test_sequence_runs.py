"""Sequence models trained by ``main.py``: the exported file, the metrics, and Spark.

The truths: the PyTorch twin (the export of a real run loads into the twin built from the
export's own metadata and predicts what sparkgrad predicts from the same file), the
metric's own definition (perplexity = exp(test loss)), and a single-process run (data
parallelism on Spark must end with the same weights, DESIGN.md: same seed, same weights on
every strategy up to reduction order).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from main_cli import main_no_spark
from safetensors.torch import load_file

import sparkgrad as sg
from sparkgrad.benchmark.torch_models import TorchGPT
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.model import MODELS
from sparkgrad.export import load_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- the exported file of a real run ---------------------------------------------------------
def _corpus(tmp_path, chars: int = 3000) -> str:
    rng = np.random.default_rng(0)
    words = ["spark", "grad", "tensor", "attention", "the", "model", "learns", "text,", "é"]
    text = " ".join(rng.choice(words, chars // 4))[:chars] + "\n"
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_gpt_export_loads_into_the_twin_built_from_its_metadata(tmp_path):
    export, metrics = tmp_path / "gpt.safetensors", tmp_path / "metrics.json"
    corpus = _corpus(tmp_path)
    proc = main_no_spark(
        "--strategy", "single", "--model", "gpt", "--epochs", "1", "--d-model", "32",
        "--context", "16", "--data", corpus, "--export", str(export),
        "--metrics-out", str(metrics),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test_perplexity=" in proc.stdout.splitlines()[-1]

    arrays, meta = load_safetensors(export)
    vocab = json.loads(meta["vocab"])
    with open(corpus, encoding="utf-8") as f:
        assert vocab == "".join(sorted(set(f.read())))
    options = {name: json.loads(meta[name]) for name in MODELS["gpt"].options}
    assert options["d_model"] == 32 and options["context"] == 16 and options["layers"] == 2
    assert meta["model"] == "gpt" and meta["architecture"] == "gpt-d32-h4-l2"

    twin = TorchGPT(
        len(vocab),
        options["context"],
        options["d_model"],
        options["heads"],
        options["layers"],
        options["dropout"],
        options["tie_weights"],
    )
    twin.load_state_dict(load_file(str(export)), strict=True)
    twin.eval()
    config = RunConfig(strategy="single", model="gpt", **options).validate()
    ours = MODELS["gpt"].build(config, vocab)
    ours.load_state_dict({k: sg.tensor(v) for k, v in arrays.items()})
    ours.eval()
    ids = np.random.default_rng(5).integers(0, len(vocab), (4, 16))
    with sg.no_grad(), torch.no_grad():
        got, want = ours(sg.tensor(ids)).numpy(), twin(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # the run trained: the weights are not the ones the seed draws
    fresh = MODELS["gpt"].build(config, vocab).state_dict()
    assert not np.allclose(fresh["head.weight"].numpy(), arrays["head.weight"])

    written = json.loads(metrics.read_text())
    perplexity = written["test_perplexity"]
    assert perplexity == pytest.approx(np.exp(written["epochs"][-1]["test_loss"]), rel=1e-9)
    assert 1 < perplexity < len(vocab)  # better than guessing uniformly after one epoch
    assert float(meta["test_perplexity"]) == pytest.approx(perplexity, rel=1e-5)


@pytest.mark.parametrize(
    "model, data, metric",
    [
        ("lstm-lm", "corpus", "test_perplexity"),
        ("vit", "synthetic:256", "test_accuracy"),
    ],
)
def test_the_metrics_file_holds_the_tasks_score(tmp_path, capsys, model, data, metric):
    from sparkgrad.engine.cli import main

    metrics = tmp_path / "metrics.json"
    data = _corpus(tmp_path) if data == "corpus" else data
    rc = main(
        [
            *("--strategy", "single", "--model", model, "--epochs", "1", "--data", data),
            *("--d-model", "16", "--heads", "2", "--layers", "1", "--context", "16"),
            *("--no-progress", "--metrics-out", str(metrics)),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    written = json.loads(metrics.read_text())
    assert written[metric] == written["epochs"][-1][metric]
    assert np.isfinite(written[metric])
    assert f"{metric}=" in capsys.readouterr().out.splitlines()[-1]


def test_seq2seq_trains_on_reversal_and_reports_exact_match(tmp_path, capsys):
    from sparkgrad.engine.cli import main

    metrics = tmp_path / "metrics.json"
    rc = main(
        [
            *("--strategy", "single", "--model", "seq2seq", "--epochs", "1"),
            *("--data", "reverse:500", "--d-model", "16", "--heads", "2", "--layers", "1"),
            *("--no-progress", "--metrics-out", str(metrics)),
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    final = out.out.splitlines()[-1]
    assert final.startswith("done: strategy=single world_size=1 epochs=1 model=seq2seq"), final
    shown = final.split("test_exact_match=")[1].split()[0]
    assert shown.endswith("%"), final  # printed as a percentage
    written = json.loads(metrics.read_text())
    exact = written["test_exact_match"]
    assert 0.0 <= exact <= 1.0 and exact == written["epochs"][-1]["test_exact_match"]
    reported = float(shown[:-1]) / 100
    assert reported == pytest.approx(exact, abs=5e-5)


# ---- on Spark: two ranks, the same weights as one process --------------------------------------
@pytest.mark.slow
def test_gpt_data_parallel_on_spark_equals_a_single_process_run(spark_local, tmp_path):
    """2 Spark tasks with 4 windows each per step == 1 process with 8: the same export.

    One slice is special: the attention's *key* bias. Adding ``b_k`` to every key adds
    ``q·b_k`` to every score of a query's row, which softmax ignores, so its exact gradient
    is zero and what it receives is rounding noise. AdamW divides the gradient by its own
    running size, so that noise moves it by up to ~lr per step, differently under another
    reduction order. It is checked against that bound; everything else must match.
    """
    from sparkgrad.engine.run import run

    corpus = _corpus(tmp_path, chars=3000)
    d, lr = 16, 3e-3
    common = dict(
        model="gpt", data=corpus, d_model=d, heads=4, layers=1, context=16, epochs=1,
        batch_size=8, optimizer="adamw", lr=lr, progress=False,
    )  # fmt: skip
    single = run(RunConfig(strategy="single", export=str(tmp_path / "single.st"), **common))
    data = run(RunConfig(strategy="data", world_size=2, export=str(tmp_path / "data.st"), **common))
    assert data.config.world_size == 2 and data.comms["calls"] > 0  # it did run 2 ranks
    ours, meta = load_safetensors(tmp_path / "data.st")
    truth, _ = load_safetensors(tmp_path / "single.st")
    assert meta["strategy"] == "data" and meta["world_size"] == "2"
    assert sorted(ours) == sorted(truth)

    bias = "blocks.layers.0.self_attn.in_proj_bias"  # [q | k | v], d each
    with open(corpus, encoding="utf-8") as f:
        steps = (int(len(f.read()) * 0.9) - 1) // 16 // 8  # training windows / global batch
    fresh = MODELS["gpt"].build(RunConfig(strategy="single", **common), single.vocab)
    start = {k: v.numpy() for k, v in fresh.state_dict().items()}
    assert not start[bias].any()  # biases start at zero, so lr * steps bounds the key bias
    for w in (ours, truth):
        assert np.abs(w[bias][d : 2 * d]).max() <= 2 * lr * steps
        w[bias] = np.concatenate([w[bias][:d], w[bias][2 * d :]])
    start[bias] = np.concatenate([start[bias][:d], start[bias][2 * d :]])
    for key, w in truth.items():
        np.testing.assert_allclose(ours[key], w, rtol=1e-4, atol=1e-6, err_msg=key)
        assert not np.allclose(start[key], w), key  # it trained, so the match means something
    assert data.history[-1]["test_perplexity"] == pytest.approx(
        single.history[-1]["test_perplexity"], rel=1e-4
    )
