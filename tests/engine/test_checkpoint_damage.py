"""A damaged ``checkpoint.json`` is never trusted: fall back to the checkpoint before, or stop.

A real single-process run writes checkpoints at steps 2 and 4 (5 steps per epoch). Each case
damages step 4 in one way (a missing or mistyped field, an absurd value, JSON nested 10^5
deep, a model file swapped in from another checkpoint with its hash updated, an ``lr`` edited
into the optimizer's state) and resumes with ``--epochs 2``. The truth is an uninterrupted
2-epoch run: a resume that fell back to step 2 lands on exactly its weights, while one that
trusted the damage would not (or would crash). The warning must name the field.

When no checkpoint is sound the run stops with one line naming the file and the field
(``main.py`` in a subprocess, exit 2, no traceback), instead of silently starting afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil

import numpy as np
import pytest
from main_cli import main_no_spark

from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.run import run
from sparkgrad.errors import CheckpointError, ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = dict(strategy="single", data="synthetic:320", hidden=(16,), progress=False)


def _config(**overrides) -> RunConfig:
    return RunConfig(**{**BASE, **overrides})


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Checkpoints at steps 2 and 4 of a 1-epoch run, and the uninterrupted 2-epoch weights."""
    root = tmp_path_factory.mktemp("pristine")
    run(_config(epochs=1, checkpoint_dir=str(root / "ck"), checkpoint_every=2))
    assert sorted(os.listdir(root / "ck")) == ["step-000002", "step-000004"]
    other = root / "other"  # same steps, another model (hidden 8): for a swapped model file
    run(_config(epochs=1, hidden=(8,), checkpoint_dir=str(other), checkpoint_every=2))
    clean = run(_config(epochs=2))
    return root, clean.state_dict


def _edit(path, change) -> None:
    with open(path) as f:
        record = json.load(f)
    change(record)
    with open(path, "w") as f:
        json.dump(record, f)


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(record):
        target = record
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _delete(*keys):
    def change(record):
        target = record
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


def _nested(path) -> None:  # history: [[[[ ... ]]]] 10^5 deep
    with open(path) as f:
        text = f.read()
    deep = "[" * 100_000 + "]" * 100_000
    with open(path, "w") as f:
        f.write(text.replace('"history": []', f'"history": {deep}'))


def _swap_model(source_dir):
    """Copy another checkpoint's model.safetensors in and update the JSON's hash to match."""

    def damage(folder) -> None:
        shutil.copy(source_dir / "model.safetensors", folder / "model.safetensors")
        digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        _edit(folder / "checkpoint.json", _set("files", "model.safetensors", digest))

    return damage


JSON_DAMAGE = {
    "sampler missing": (_delete("sampler"), "checkpoint.json sampler: expected an object"),
    "epoch a string": (_set("epoch", "1"), "checkpoint.json epoch: expected 1"),
    "sampler.epoch a string": (_set("sampler", "epoch", "1"), "sampler.epoch: expected an int"),
    "sampler.batch 1e9": (_set("sampler", "batch", 1e9), "sampler.batch: expected an integer"),
    "sampler.batch -5": (_set("sampler", "batch", -5), "sampler.batch: expected an integer"),
    "sampler.batch 10**9": (_set("sampler", "batch", 10**9), "sampler.batch: expected an int"),
    "sampler.batch off the step": (_set("sampler", "batch", 3), "checkpoint.json step:"),
    "running missing": (_delete("sampler", "running"), "sampler: expected the keys"),
    "running a string": (_set("sampler", "running", "x"), "sampler.running: expected a list"),
    "running samples": (_set("sampler", "running", [5.0, 3]), "sampler.running[1]"),
    "running negative": (_set("sampler", "running", [-1.0, 256]), "sampler.running[0]"),
    "running nan": (_set("sampler", "running", [float("nan"), 256]), "sampler.running[0]"),
    "history missing": (_delete("history"), "history: expected a list"),
    "history a string": (_set("history", "x"), "history: expected a list"),
    "history too long": (_set("history", [{"epoch": 1}]), "history: expected a list of 0"),
    "config missing": (_delete("config"), "config: expected an object"),
    "config.lr a string": (_set("config", "lr", "0.05"), "config.lr: expected int or float"),
    "rng garbage": (_set("rng", {"bit_generator": "PCG64", "state": 3}), "checkpoint.json rng"),
    "step of another folder": (_set("step", 5), "step: expected 4 (the folder's step)"),
    "files missing": (_delete("files"), "files: expected an object"),
    "format": (_set("format", "pickle"), "format: expected 'sparkgrad-checkpoint'"),
    "lr edited in": (
        _set("optimizer", "param_groups", 0, "lr", 1e10),
        "optimizer.param_groups[0].lr: expected 0.05 (--lr 0.05)",
    ),
    "momentum edited in": (
        _set("optimizer", "param_groups", 0, "momentum", 0.5),
        "optimizer.param_groups[0].momentum: expected 0.9",
    ),
    "an unknown hyper-parameter": (
        _set("optimizer", "param_groups", 0, "nesterov_x", True),
        "param_groups[0]: expected the hyper-parameters of --optimizer sgd, found 1 unknown",
    ),
}


def _resume_after(tmp_path, pristine, damage, caplog):
    root, clean = pristine
    ck = tmp_path / "ck"
    shutil.copytree(root / "ck", ck)
    damage(ck / "step-000004")
    with caplog.at_level(logging.WARNING, logger="sparkgrad.engine.job"):
        result = run(_config(epochs=2, checkpoint_dir=str(ck), checkpoint_every=2, resume=True))
    assert result.resumed_from == 2, "did not fall back to the checkpoint before"
    for key, w in clean.items():
        np.testing.assert_array_equal(result.state_dict[key], w, err_msg=key)
    return " ".join(r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("case", list(JSON_DAMAGE))
def test_a_damaged_field_falls_back_to_the_checkpoint_before(tmp_path, pristine, caplog, case):
    change, needle = JSON_DAMAGE[case]
    warned = _resume_after(
        tmp_path, pristine, lambda folder: _edit(folder / "checkpoint.json", change), caplog
    )
    assert "skipping checkpoint step-000004" in warned and needle in warned, warned


def test_json_nested_ten_to_the_five_deep_falls_back(tmp_path, pristine, caplog):
    warned = _resume_after(
        tmp_path, pristine, lambda folder: _nested(folder / "checkpoint.json"), caplog
    )
    assert "checkpoint.json nests lists or objects too deeply" in warned, warned


def test_a_model_file_from_another_checkpoint_is_refused_despite_its_hash(
    tmp_path, pristine, caplog
):
    root, _ = pristine
    warned = _resume_after(tmp_path, pristine, _swap_model(root / "ck" / "step-000002"), caplog)
    assert "model.safetensors: its header says step 2, the checkpoint is step 4" in warned


def test_a_model_file_of_another_shape_is_refused_despite_its_hash(tmp_path, pristine, caplog):
    root, _ = pristine
    warned = _resume_after(tmp_path, pristine, _swap_model(root / "other" / "step-000004"), caplog)
    assert "model.safetensors 0.weight: expected shape (16, 784)" in warned, warned


def test_when_no_checkpoint_is_sound_the_run_stops_naming_each(tmp_path, pristine):
    root, _ = pristine
    ck = tmp_path / "ck"
    shutil.copytree(root / "ck", ck)
    _edit(ck / "step-000004" / "checkpoint.json", _set("sampler", "batch", 1e9))
    _edit(ck / "step-000002" / "checkpoint.json", _set("epoch", "1"))
    with pytest.raises(CheckpointError) as info:
        run(_config(epochs=2, checkpoint_dir=str(ck), resume=True))
    message = str(info.value)
    assert "no sound checkpoint" in message
    assert "step-000004: checkpoint.json sampler.batch: expected an integer in 1..5" in message
    assert "step-000002: checkpoint.json epoch: expected 1 (sampler.epoch), found '1'" in message


def test_a_checkpoint_beyond_the_epochs_asked_for_is_a_config_error(tmp_path):
    ck = str(tmp_path / "ck")
    run(_config(epochs=2, checkpoint_dir=ck, checkpoint_every=7))  # step 7: epoch 2, batch 2
    with pytest.raises(ConfigError, match=r"is in epoch 2, beyond --epochs 1; pass --epochs 2"):
        run(_config(epochs=1, checkpoint_dir=ck, checkpoint_every=7, resume=True))


def test_with_gamma_the_lr_must_be_the_decayed_one(tmp_path, caplog):
    """StepLR: after epoch 1 the lr is 0.05 x 0.5. The checkpoint in epoch 2 resumes (its
    state holds that lr and StepLR's initial_lr); one whose lr was reset to 0.05 is refused."""
    ck = tmp_path / "ck"
    gamma = dict(gamma=0.5, checkpoint_every=3)  # steps 3, 6, 9: epoch 2 holds 6 and 9
    run(_config(epochs=2, checkpoint_dir=str(ck), **gamma))
    clean = run(_config(epochs=3, gamma=0.5))
    _edit(ck / "step-000009" / "checkpoint.json", _set("optimizer", "param_groups", 0, "lr", 0.05))
    with caplog.at_level(logging.WARNING, logger="sparkgrad.engine.job"):
        result = run(_config(epochs=3, checkpoint_dir=str(ck), resume=True, **gamma))
    assert result.resumed_from == 6
    for key, w in clean.state_dict.items():
        np.testing.assert_array_equal(result.state_dict[key], w, err_msg=key)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "optimizer.param_groups[0].lr: expected 0.025 (--lr 0.05 x --gamma 0.5^1)" in warned


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda p: _edit(p, _set("sampler", "batch", -5)), "checkpoint.json sampler.batch"),
        (_nested, "checkpoint.json nests lists or objects too deeply"),
    ],
    ids=["batch -5", "nested 10^5"],
)
def test_main_py_with_only_a_damaged_checkpoint_prints_one_line(tmp_path, damage, needle):
    """The ranks never start: the driver's preflight applies the same checks."""
    ck = str(tmp_path / "ck")
    run(_config(epochs=1, checkpoint_dir=ck, checkpoint_every=4))  # only step 4
    damage(os.path.join(ck, "step-000004", "checkpoint.json"))
    proc = main_no_spark(
        "--strategy", "data", "--data", "synthetic:320", "--hidden", "16", "--epochs", "2",
        "--checkpoint-dir", ck, "--resume",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("main.py: error: no sound checkpoint"), lines
    assert "step-000004" in lines[0] and needle in lines[0], lines[0]
    assert "RecursionError" not in proc.stderr and "Traceback" not in proc.stderr
