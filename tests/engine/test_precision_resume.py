"""fp16 loss scaling survives a checkpoint: ``--init-scale``, ``--growth-interval``, resume.

The truth is an uninterrupted run of the same command. ``--init-scale 262144`` overflows
twice early on (two skipped steps, the scale halves) and ``--growth-interval 3`` doubles it
every 3 clean steps, so the scale and the growth tracker change all the time: a resumed run
that restarted its scaler (scale 2¹⁸, tracker 0) would skip, grow and step differently. The
run crashes at step 5 (``--fail-at-step``), resumes from its checkpoint at step 4, and must
end on the same weights, bit for bit, and the same loss scale and skip count.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from sparkgrad.engine.checkpoint_schema import TrainingCheck
from sparkgrad.engine.cli import main, parse_config
from sparkgrad.engine.precision import MixedPrecision
from sparkgrad.errors import CheckpointError, ConfigError
from sparkgrad.export import load_safetensors

ARGS = ["--strategy", "single", "--data", "synthetic:320", "--hidden", "16", "--epochs", "2",
        "--precision", "fp16", "--init-scale", "262144", "--growth-interval", "3",
        "--no-progress"]  # fmt: skip


def _main(capsys, *extra: str) -> tuple[int, list[str], str]:
    code = main([*ARGS, *extra])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def test_a_resumed_fp16_run_ends_with_the_uninterrupted_weights_and_scale(tmp_path, capsys):
    clean = str(tmp_path / "clean.safetensors")
    code, lines, _ = _main(capsys, "--export", clean)
    assert code == 0
    precision_line = next(line for line in lines if line.startswith("precision="))
    assert precision_line == "precision=fp16 loss_scale=262144 skipped_steps=2"

    ck, resumed = str(tmp_path / "ck"), str(tmp_path / "resumed.safetensors")
    code, _, err = _main(capsys, "--checkpoint-dir", ck, "--checkpoint-every", "2",
                         "--fail-at-step", "5")  # fmt: skip
    assert code == 2 and "injected failure at step 5" in err
    meta = json.loads((tmp_path / "ck" / "step-000004" / "checkpoint.json").read_text())
    assert meta["scaler"]["scale"] != 262144.0 and meta["scaler"]["_growth_tracker"] > 0
    code, lines, _ = _main(capsys, "--checkpoint-dir", ck, "--resume", "--export", resumed)
    assert code == 0
    assert precision_line in lines  # the same final scale and skip count
    (want, _), (got, _) = load_safetensors(clean), load_safetensors(resumed)
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_scaler_state_round_trips_and_the_checkpoint_never_changes_the_interval() -> None:
    amp = MixedPrecision("fp16", init_scale=1024.0, growth_interval=10)
    amp.scaler._lazy_init_scale_growth_tracker()
    amp.scaler._scale, amp.scaler._growth_tracker, amp.scaler.skipped_steps = 512.0, 7, 3
    state = amp.state_dict()
    again = MixedPrecision("fp16", growth_interval=5)  # this run says 5
    again.load_state_dict(state)
    assert again.report() == {"precision": "fp16", "loss_scale": 512.0, "skipped_steps": 3}
    assert again.scaler.get_growth_interval() == 5
    assert again.scaler._get_growth_tracker() == 4  # 7 clamped: grow at the next clean step
    fp32 = MixedPrecision("fp32")
    assert fp32.state_dict() == {}
    fp32.load_state_dict(state)  # no scaler to restore: nothing happens
    assert fp32.report()["loss_scale"] == 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--init-scale", "0"], "--init-scale must be in (0, 3.40282e+38], a finite number"),
        (["--init-scale", "inf"], "--init-scale must be in (0, 3.40282e+38]"),
        (["--init-scale", "nan"], "--init-scale must be in (0, 3.40282e+38]"),
        (["--init-scale", "1e39"], "--init-scale must be in (0, 3.40282e+38]"),
        (["--growth-interval", "0"], "--growth-interval must be >= 1, found 0"),
        (["--precision", "bf16", "--device", "cuda"], "CuPy has no bfloat16 arrays"),
        (["--precision", "bf16", "--init-scale", "1024"], "--init-scale set the fp16 loss"),
        (["--precision", "fp32", "--growth-interval", "5"], "--precision fp32 has none"),
    ],
)
def test_bad_scaler_flags_are_config_errors(capsys, args, message) -> None:
    if "--precision" not in args:
        args = ["--precision", "fp16", *args]
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(["--strategy", "single", *args])
    assert main(["--strategy", "single", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_a_non_number_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        parse_config(["--strategy", "single", "--growth-interval", "often"])
    assert stop.value.code == 2
    assert "--growth-interval: invalid int value: 'often'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "scaler, field",
    [
        ({"scale": -1.0, "_growth_tracker": 0, "skipped_steps": 0}, "scaler.scale"),
        ({"scale": float("inf"), "_growth_tracker": 0, "skipped_steps": 0}, "scaler.scale"),
        ({"scale": 8.0, "_growth_tracker": -2, "skipped_steps": 0}, "scaler._growth_tracker"),
        ({"scale": 8.0, "_growth_tracker": 0, "skipped_steps": 99}, "scaler.skipped_steps"),
        ("big", "scaler"),
    ],
)
def test_a_damaged_scaler_state_is_refused(scaler, field) -> None:
    check = TrainingCheck.for_config(parse_config(ARGS))
    with pytest.raises(CheckpointError, match=f"checkpoint.json {field}:"):
        check._scaler(scaler, step=4)
    check._scaler({}, step=4)  # fp32 and bf16 runs save none


@pytest.mark.slow
def test_zero_fp16_on_spark_resumes_after_a_crash_with_the_same_weights_and_scale(
    spark_local, tmp_path
) -> None:
    """ZeRO-2 in the paper's precision on 2 Spark ranks; rank 1 dies at step 10, Spark reruns
    the stage, the ranks resume from step 8: the uninterrupted run's weights (the gathered
    fp32 masters) bit for bit, and its loss scale and skip count."""
    from sparkgrad.engine.config import RunConfig
    from sparkgrad.engine.run import run

    def config(**more) -> RunConfig:
        return RunConfig(
            strategy="zero2", world_size=2, data="synthetic:640", hidden=(32,), epochs=2,
            precision="fp16", init_scale=2.0**18, growth_interval=3, checkpoint_every=4,
            progress=False, **more,
        )  # fmt: skip

    clean = run(config(checkpoint_dir=str(tmp_path / "clean")))
    crashed = run(config(checkpoint_dir=str(tmp_path / "crash"), fail_at_step=10, fail_rank=1))
    assert (clean.attempt, clean.resumed_from) == (0, None)
    assert (crashed.attempt, crashed.resumed_from) == (1, 8)
    assert crashed.precision == clean.precision and clean.precision["skipped_steps"] > 0
    line = f"precision=fp16 loss_scale={clean.precision['loss_scale']:g} skipped_steps="
    assert crashed.precision_line().startswith(line)  # what main.py prints
    assert clean.score > 0.5  # 10 classes: chance is 0.1
    for key, w in clean.state_dict.items():
        assert w.dtype == np.float32
        np.testing.assert_array_equal(crashed.state_dict[key], w, err_msg=key)
