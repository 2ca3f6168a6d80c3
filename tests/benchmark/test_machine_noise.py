"""The machine-noise yardstick: its statistics on exact inputs, and one short real run."""

from __future__ import annotations

import pytest

from sparkgrad.benchmark import machine_noise as mn


def test_miss_rate_compares_each_window_with_the_first_one_a_lag_later():
    windows = [(0.0, 1.0), (0.5, 1.3), (1.0, 1.1), (1.6, 0.8), (2.0, 1.4), (2.5, 1.0)]
    # 0.0 -> 1.0 (1.1): 9% in; 0.5 -> 1.6 (0.8): 62% out; 1.0 -> 2.0 (1.4): 21% out;
    # 1.6 -> none a second later: left out, and so are 2.0 and 2.5
    assert mn.miss_rate(windows, lag_s=1.0) == pytest.approx(2 / 3)
    assert mn.miss_rate(windows, lag_s=1.0, tolerance=0.7) == 0.0
    assert mn.miss_rate(windows[:1]) == 0.0


def test_a_pause_before_each_call_is_not_timed():
    import time

    from sparkgrad.simulate.local_calibrate import median_time

    calls = []
    seconds = median_time(lambda: calls.append(1), 3, before=lambda: time.sleep(0.02))
    assert len(calls) == 3 and seconds < 0.01


def test_report_lays_out_every_number():
    numbers = {
        "drift": {
            "engine step": {
                "min": 5e-3,
                "median": 6e-3,
                "max": 8e-3,
                "windows": 10,
                "miss_rate": 0.25,
            }
        },
        "cold": {"Adam step": {"back to back": 1e-3, "after 10 ms asleep": 2e-3}},
    }
    text = mn.report(numbers)
    assert "| engine step | 10 | 5000 | 6000 | 8000 | 25% |" in text
    assert "| call | back to back | after 10 ms asleep |" in text
    assert "| Adam step | 1000 | 2000 |" in text


@pytest.mark.slow
def test_a_short_real_run_prints_both_tables(capsys):
    assert mn.main(["--seconds", "0.2", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    assert "| engine step |" in out and "| matmul 256 |" in out
    assert "| Adam step |" in out and "| forward, 128 rows |" in out


def test_bad_arguments_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        mn.main(["--seconds", "0"])
    assert exc.value.code == 2
    assert "expected --seconds > 0" in capsys.readouterr().err
