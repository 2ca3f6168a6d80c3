"""``--model cnn``: PyTorch's MNIST example network trained by ``main.py``, alone and on Spark.

The canonical recipe (Adadelta lr 1.0, StepLR gamma 0.7 per epoch, NLL loss on
log-softmax outputs, inputs standardised with MNIST's mean and std) must reach 96% on the
embedded digits, and the exported weights must load into the example's own ``Net``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from safetensors.torch import load_file
from test_main import _assert_one_line_error, _config, _main

from sparkgrad.dataset import load_mnist
from sparkgrad.engine.run import run
from sparkgrad.export import load_safetensors

pytestmark = pytest.mark.slow  # main.py subprocesses and CNN trainings: the full suite runs it


class Net(torch.nn.Module):
    """The network of PyTorch's examples/mnist, written out as its README shows it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 32, 3, 1)
        self.conv2 = torch.nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = torch.nn.Dropout(0.25)
        self.dropout2 = torch.nn.Dropout(0.5)
        self.fc1 = torch.nn.Linear(9216, 128)
        self.fc2 = torch.nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = TF.relu(self.conv2(TF.relu(self.conv1(x))))
        x = self.dropout1(TF.max_pool2d(x, 2))
        x = self.dropout2(TF.relu(self.fc1(torch.flatten(x, 1))))
        return TF.log_softmax(self.fc2(x), dim=1)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--model", "cnn", "--strategy", "tensor"], "cannot split --model cnn"),
        (["--model", "cnn", "--strategy", "pipeline"], "use --strategy single, data"),
        (["--model", "resnet"], "--model"),
        (["--gamma", "0"], "--gamma must be in (0, 1]"),
        (["--optimizer", "lbfgs"], "--optimizer"),
    ],
)
def test_bad_model_arguments_give_one_line_and_exit_2(args, needle):
    _assert_one_line_error(_main(*args), needle)


@pytest.mark.slow
def test_the_mnist_example_recipe_reaches_96_percent_on_spark_and_loads_into_torch(tmp_path):
    export = tmp_path / "cnn.safetensors"
    proc = _main(
        *("--model", "cnn", "--strategy", "data", "--world-size", "2"),
        *("--optimizer", "adadelta", "--lr", "1.0", "--gamma", "0.7", "--epochs", "3"),
        *("--no-progress", "--export", str(export)),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = proc.stdout.strip().splitlines()[-1]
    reported = float(final.split("test_accuracy=")[1].split("%")[0]) / 100
    assert reported >= 0.96, proc.stdout

    images, labels = load_mnist("mnist-5k", "test", standardize=True)
    net = Net()
    net.load_state_dict(load_file(str(export)))  # strict: the key names are the example's
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(images).reshape(-1, 1, 28, 28))
    torch_accuracy = (logits.argmax(1).numpy() == labels).mean()
    assert abs(torch_accuracy - reported) < 1e-3
    assert load_safetensors(export)[1]["architecture"] == "cnn-mnist"


@pytest.mark.slow
def test_cnn_on_spark_resumes_a_crash_with_exactly_the_weights_of_an_uninterrupted_run(
    spark_local, tmp_path
):
    """A rank dies mid-run; the stage reruns and resumes from the checkpoint: the decayed
    learning rate (StepLR), Adadelta's state and dropout's generator come back with it, so
    the weights are bit for bit those of the run that never crashed. (Dropout draws its masks
    per rank, as under DDP, so the CNN is compared with itself rather than with one process.)"""
    common = dict(
        model="cnn", optimizer="adadelta", lr=1.0, gamma=0.5, data="synthetic:384", epochs=2
    )
    clean = run(_config(checkpoint_dir=str(tmp_path / "clean"), **common))
    crashed = run(
        _config(checkpoint_dir=str(tmp_path / "crash"), fail_at_step=9, fail_rank=1, **common)
    )
    assert (clean.attempt, crashed.attempt, crashed.resumed_from) == (0, 1, 7)
    for key, w in clean.state_dict.items():
        np.testing.assert_array_equal(crashed.state_dict[key], w, err_msg=key)
