"""``rvl-llm eval`` under ``accelerate launch`` (the shipped DDP config, two CPU processes with
gloo): each process scores a contiguous share, rank 0 gathers them in input order and alone
writes, and the outputs equal those of one process. Checks that fail early fail on every rank."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from test_eval_cli import build_run, invoke, output_folder  # noqa: E402
from test_eval_faults import snapshot, unchanged  # noqa: E402

from rvl_llm.inference.distributed import concatenate_predictions as _concatenate  # noqa: E402
from rvl_llm.inference.distributed import contiguous_share  # noqa: E402
from rvl_llm.inference.scoring import Predictions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# What differs between two runs of one eval: timing, the process count and the -o given.
VARIES = ("seconds", "docs_per_second", "processes", "config")
# Log-likelihood figures: a share's batches sum in another order, so they agree to float noise.
CLOSE = ("nll", "nll_uncalibrated", "ece", "ece_uncalibrated")


def launch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``accelerate launch --num_processes 2 -m rvl_llm eval ARGS`` as test_train_runs does."""
    with socket.socket() as probe:  # a free port: other test runs may be launching too
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ROOT / "accelerate_configs" / "ddp.yaml"), "--num_processes", "2",
        "--main_process_port", str(port), "-m", "rvl_llm", "eval", *args, "--no-progress",
    ]
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.mark.slow
def test_two_process_eval_equals_one_process(tmp_path: Path) -> None:
    final = build_run(tmp_path)  # 6 test documents: 3 per process
    one = invoke("-c", str(final), "-o", str(tmp_path / "one"), "-b", "2")
    assert one.exit_code == 0, one.output
    done = launch(tmp_path, "-c", str(final), "-o", str(tmp_path / "two"), "-b", "2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    alone, folder = output_folder(one), Path(done.stdout.strip().splitlines()[-1])
    assert folder == tmp_path / "two" / "48-max-len" / alone.name
    # Written once, by rank 0: one folder, no staging left, the summary printed once.
    assert [p.name for p in (tmp_path / "two" / "48-max-len").iterdir()] == [alone.name]
    assert sorted(p.name for p in folder.iterdir()) == [
        "confusion_matrix.csv", "confusion_matrix.png", "metrics.json", "predictions.tsv",
        "reliability_diagram.png"]
    assert done.stdout.count("decode score") == 1 and done.stdout.count(str(folder)) == 3
    assert done.stderr.count("eval: loading") == 1  # the other rank logs nothing

    metrics = json.loads((folder / "metrics.json").read_text())
    expected = json.loads((alone / "metrics.json").read_text())
    assert metrics["processes"] == 2 and expected["processes"] == 1
    assert {k: v for k, v in metrics.items() if k not in VARIES + CLOSE} == {
        k: v for k, v in expected.items() if k not in VARIES + CLOSE}
    assert {k: metrics[k] for k in CLOSE} == pytest.approx({k: expected[k] for k in CLOSE})
    rows, expected_rows = read_tsv(folder / "predictions.tsv"), read_tsv(
        alone / "predictions.tsv")
    assert [r["doc_id"] for r in rows] == [f"test_{i}" for i in range(6)]  # input order
    for row, want in zip(rows, expected_rows, strict=True):
        for key, value in want.items():
            if key == "score" or key.endswith("_prob"):
                assert float(row[key]) == pytest.approx(float(value), abs=1e-5), key
            else:
                assert row[key] == value, key


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["checkpoint", "out-dir"])
def test_early_faults_fail_on_every_rank(tmp_path: Path, fault: str) -> None:
    final = build_run(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args, needle = {
        "checkpoint": (["-c", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")],
                       f"-c {tmp_path / 'nowhere'}: no such checkpoint folder"),
        "out-dir": (["-c", str(final), "-o", str(blocker / "sub")],
                    f"-o {blocker / 'sub'}: cannot write"),
    }[fault]
    before = snapshot(tmp_path)
    done = launch(tmp_path, *args)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 2 and errors[0] == errors[1] and needle in errors[0], done.stderr
    assert "built" not in done.stderr  # nothing was prepared
    unchanged(tmp_path, before)


@pytest.mark.parametrize(("n", "world"), [(6, 2), (7, 3), (2, 4), (0, 2), (5, 1)])
def test_contiguous_shares_cover_the_input_in_order(n: int, world: int) -> None:
    shares = [contiguous_share(n, rank, world) for rank in range(world)]
    assert [i for start, end in shares for i in range(start, end)] == list(range(n))
    sizes = [end - start for start, end in shares]
    assert max(sizes) - min(sizes) <= 1


def test_shares_are_joined_in_rank_order() -> None:
    def share(ids: list[int]) -> Predictions:
        scores = np.array([[-float(i), -1.0] for i in ids], np.float32).reshape(len(ids), 2)
        return Predictions([f"d{i}" for i in ids], np.array(ids, np.int64) % 2,
                           np.zeros(len(ids), np.int64), np.exp(scores), None, 0, scores)

    joined = _concatenate([share([0, 1, 2]), share([3, 4]), share([])])
    assert joined.doc_ids == ["d0", "d1", "d2", "d3", "d4"]
    assert joined.true.tolist() == [0, 1, 0, 1, 0] and joined.scores.shape == (5, 2)
    assert joined.scores[:, 0].tolist() == [0.0, -1.0, -2.0, -3.0, -4.0]
    generated = [Predictions(["a"], np.array([0]), np.array([-1]), None, ["x"], 1),
                 Predictions(["b"], np.array([1]), np.array([1]), None, ["y"], 0)]
    both = _concatenate(generated)
    assert both.generated == ["x", "y"] and both.invalid == 1 and both.probs is None
