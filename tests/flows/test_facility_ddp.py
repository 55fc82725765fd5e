"""Data-parallel training (src/micrograde/models/training/ddp.py): the sharded sampler, and a real
torchrun with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from micrograde.models.training.ddp import ShardedSampler

TESTS = Path(__file__).resolve().parents[1]


def test_sharded_sampler_gives_equal_disjoint_shards_covering_the_epoch():
    shards = [list(ShardedSampler(10, r, 3, seed=1)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set().union(*shards) == set(range(10))  # padding repeats two, loses none
    again = ShardedSampler(10, 0, 3, seed=1)
    again.set_epoch(1)
    assert list(again) != shards[0]
    assert len(ShardedSampler(10, 0, 3, seed=1)) == 4


def test_sharded_sampler_shards_a_balancing_sampler_in_step():
    class Base(torch.utils.data.Sampler):
        def __init__(self):
            self.epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __iter__(self):
            return iter([self.epoch, 1, 1, 2, 2, 2, 0])

        def __len__(self):
            return 7

    samplers = [ShardedSampler(3, r, 2, base=Base()) for r in range(2)]
    for s in samplers:
        s.set_epoch(5)
    a, b = (list(s) for s in samplers)
    assert len(a) == len(b) == len(samplers[0]) == 4
    assert sorted(a + b)[:-1] == sorted([5, 1, 1, 2, 2, 2, 0])
    with pytest.raises(ValueError):
        ShardedSampler(3, 2, 2)


_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.distributed as dist
    sys.path.insert(0, sys.argv[2])
    from helpers_models import concat, micrograph_like
    from micrograde.models.training.ddp import fit_distributed, init_distributed
    from micrograde.models.backbones.registry import create_model
    from micrograde.models.training.recipe import TrainConfig

    out = sys.argv[1]
    info = init_distributed("gloo")
    train = concat(micrograph_like(12, 0, size=48), micrograph_like(12, 1, size=48))
    val = micrograph_like(6, 2, size=48)
    model, _ = create_model("lenet", seed=0)
    cfg = TrainConfig(backbone="lenet", weights="none", epochs_head=2, epochs_finetune=1, batch_size=4,
                      device="cpu", patience=5)
    res = fit_distributed(model, train, val, cfg, info, checkpoint_dir=out, progress=False)
    checksum = torch.tensor([sum(float(v.double().sum()) for v in model.state_dict().values()
                                 if v.is_floating_point())])
    everyone = [torch.zeros(1, dtype=checksum.dtype) for _ in range(info.world_size)]
    dist.all_gather(everyone, checksum)
    with open(f"{out}/rank{info.rank}.json", "w") as fh:
        json.dump({"world": info.world_size, "backend": info.backend, "epochs": len(res.history),
                   "checksums": [float(t) for t in everyone]}, fh)
    dist.barrier()  # as the entry point does: no rank tears gloo down while the other still uses it
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_in_step_and_rank_0_checkpoints(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.fail("torchrun is not installed with torch")
    script = tmp_path / "train_ddp.py"
    script.write_text(_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(out), str(TESTS)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world"] == 2 and r["backend"] == "gloo" and r["epochs"] == 3 for r in ranks)
    a, b = ranks[0]["checksums"]
    assert a == b, "the ranks' weights diverged: gradients were not averaged"
    assert (out / "last.pt").is_file()
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert len(ckpt["history"]) == 3
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "rank0.json", "rank1.json"]
