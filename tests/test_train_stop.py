"""Stopping ``hfpose-train`` by Ctrl+C or SIGTERM: nothing lost, one clear line, a clean exit.

The slow tests run the real CLI in its own process group with a real DataLoader worker and
signal the whole group, as a terminal's Ctrl+C or a scheduler's SIGTERM does.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hfpose.training.run.checkpointing import LATEST
from hfpose.training.run.stop_signals import StopRequested, StopSignals
from tests.helpers import COCO_JSON, REPO, small_options

TRAIN = [sys.executable, "-m", "hfpose.training.run.train_cli"]


def test_a_stop_waits_for_the_atomic_section_and_a_repeat_only_says_so(capfd) -> None:
    chld_handler = signal.getsignal(signal.SIGCHLD)  # a stop quiets SIGCHLD for good
    int_handler = signal.getsignal(signal.SIGINT)  # SIG_IGN where the runner inherited it so
    signals = StopSignals()
    finished = []
    try:
        with signals.installed_for(), pytest.raises(StopRequested) as stopped:
            with signals.atomic():
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)  # impatient: must not cut the section
                finished.append(True)
    finally:
        signal.signal(signal.SIGCHLD, chld_handler)
    assert finished and stopped.value.exit_status == 130
    assert "already stopping" in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is int_handler  # put back


LATE_CTRL_C = """
import os, signal, sys
from hfpose.training.run import train_cli

class LateCtrlC:
    def __del__(self):  # runs as Python tears down __main__, after it reset its signal handlers
        os.kill(os.getpid(), signal.SIGINT)

late_ctrl_c = LateCtrlC()
load_config = train_cli.load_config

def ctrl_c_while_loading(*args):
    signal.raise_signal(signal.SIGINT)
    return load_config(*args)

train_cli.load_config = ctrl_c_while_loading
sys.exit(train_cli.main(["hf_hrnet_18_coco_256x192"]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sigint_ignored", [True, False], ids=["inherited-ignored", "default"])
def test_a_ctrl_c_while_python_shuts_down_after_a_stop_keeps_exit_130(
    sigint_ignored: bool,
) -> None:
    """The second Ctrl+C of the test below lands, on a fast CPU, after the save, while Python
    tears down its modules: placed there on purpose, whatever the CPU."""
    command = [sys.executable, "-c", LATE_CTRL_C]
    if sigint_ignored:
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    stopped = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert "Ctrl+C (SIGINT) while starting: nothing was trained or saved" in stopped.stderr


def _start(work_dir: Path, sigint_ignored: bool) -> subprocess.Popen:
    options = small_options(
        COCO_JSON, total_epochs=1000, cpu_threads=1, **{"data.workers_per_gpu": 1}
    )
    command = [*TRAIN, "hf_hrnet_18_coco_256x192", "--work-dir", str(work_dir), "--no-progress",
               "--cfg-options", *options]  # fmt: skip
    if sigint_ignored:
        # as `nohup hfpose-train ... &` from a script starts it: SIGINT inherited ignored, which
        # Python then never turns into KeyboardInterrupt (the run went on after Ctrl+C)
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip


def _wait_for_steps(process: subprocess.Popen, log: Path, steps: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) > steps:
            return
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail(f"no {steps} training steps: {process.communicate()[1][-2000:]}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop_signal", "sigint_ignored"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-inherited-ignored", "sigterm"],
)
def test_a_signal_to_the_process_group_saves_says_how_to_resume_and_resume_continues(
    tmp_path: Path, stop_signal: signal.Signals, sigint_ignored: bool
) -> None:
    process = _start(tmp_path, sigint_ignored)
    _wait_for_steps(process, tmp_path / "log.csv", 3)
    os.killpg(process.pid, stop_signal)  # the main process and its DataLoader worker
    if stop_signal == signal.SIGINT:
        time.sleep(0.1)
        os.killpg(process.pid, stop_signal)  # an impatient second Ctrl+C
    try:
        stdout, stderr = process.communicate(timeout=60)  # a hang guard, not a timing
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"hfpose-train still running 60 s after {stop_signal.name}")
    assert process.returncode == 128 + stop_signal, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"stopped by {'Ctrl+C (SIGINT)' if sigint_ignored else 'SIGTERM'}")
    assert str(tmp_path / LATEST) in last
    saved = torch.load(tmp_path / LATEST, weights_only=True)["meta"]
    assert saved["iter"] >= 3

    command = shlex.split(last.split("continue with: ", 1)[1])
    assert command[0] == "hfpose-train" and command[-1] == "--resume"
    resumed = subprocess.run(
        [*TRAIN, *command[1:], "--max-steps", "1"], cwd=REPO, capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO)), timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    epoch, step = saved["epoch"], saved["epoch_step"]
    assert f"resumed at epoch {epoch + 1}, step {step} of the epoch" in resumed.stdout
    assert torch.load(tmp_path / LATEST, weights_only=True)["meta"]["iter"] == saved["iter"] + 1
