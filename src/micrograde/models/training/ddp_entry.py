"""Data-parallel fine-tuning of one table of labelled micrographs, one process per GPU (or CPU
process), launched by ``torchrun``.

:func:`run_torchrun` (the grader's fine-tuning candidate with ``nproc`` > 1) writes the table and the
recipe to a private temporary folder and runs::

    torchrun --standalone --nproc_per_node N -m micrograde.models.training.ddp_entry TABLE CACHE OUT CONFIG NAME

Every rank reads the same table and builds the same split and datasets; each trains on its shard of
every epoch (``models.training.ddp.fit_distributed``: gradients all-reduced, NCCL on GPUs, gloo on
CPUs); rank 0 alone evaluates and saves the model folder. Nothing but file paths goes on the command
line (no catalogue URL, no credentials): the ranks never open the catalogue.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["DistributedTrainingError", "run_torchrun", "main"]


class DistributedTrainingError(RuntimeError):
    """A data-parallel (torchrun) fine-tuning failed; its processes printed why."""


def run_torchrun(table, cache_dir: Path, out: Path, cfg, name: str, nproc: int) -> None:
    """Fine-tune on ``table`` (a DataFrame with ``cache_key``, ``label`` and the split column) in
    ``nproc`` processes; raises :class:`DistributedTrainingError` when they fail."""
    with tempfile.TemporaryDirectory(prefix="mg-ddp-") as tmp:
        table_path, cfg_path = Path(tmp) / "table.parquet", Path(tmp) / "config.json"
        table.to_parquet(table_path, index=False)
        cfg_path.write_text(cfg.model_dump_json())
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "micrograde.models.training.ddp_entry", str(table_path), str(cache_dir), str(out),
               str(cfg_path), name]
        done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise DistributedTrainingError(f"distributed fine-tuning failed (torchrun exit code {done.returncode})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m micrograde.models.training.ddp_entry", description=__doc__)
    parser.add_argument("table", type=Path, help="the labelled rows (parquet)")
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("out", type=Path, help="the model folder to write (rank 0)")
    parser.add_argument("config", type=Path, help="TrainRunConfig as JSON")
    parser.add_argument("name", help="the model id")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch.distributed as dist

    from micrograde.models.training.ddp import fit_distributed, init_distributed
    from micrograde.models.training.run import TrainRunConfig, train_model

    cfg = TrainRunConfig.model_validate_json(args.config.read_text())
    info = init_distributed()
    try:
        train_model(pd.read_parquet(args.table), args.cache_dir, args.out, cfg, model_id=args.name,
                    progress=info.is_main, log=print if info.is_main else (lambda _line: None),
                    fit_fn=functools.partial(fit_distributed, info=info), main_process=info.is_main)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
