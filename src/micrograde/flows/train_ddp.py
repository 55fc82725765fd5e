"""Data-parallel fine-tuning, one process per GPU (or CPU process), launched by ``torchrun``.

``micrograde train --nproc N`` (the train flow's ``fine-tune-ddp`` task) runs::

    torchrun --standalone --nproc_per_node N -m micrograde.flows.train_ddp CONTEXT.json CONFIG.json MODEL_ID

``CONTEXT.json`` is the run context (workspace, catalogue URL, command line) in a file readable by
its owner only: a database URL with a password never appears on a command line (``ps``).

Every rank reads the same labelled table and builds the same split and datasets; each trains on
its shard of every epoch (``models.ddp.fit_distributed``: gradients all-reduced, NCCL on GPUs,
gloo on CPUs); rank 0 alone evaluates and saves the model folder. The flow registers the model.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m micrograde.flows.train_ddp", description=__doc__)
    parser.add_argument("context", type=Path, help="RunContext as JSON (mode 0600)")
    parser.add_argument("config", type=Path, help="TrainRunConfig as JSON")
    parser.add_argument("model_id")
    args = parser.parse_args(argv)

    import torch.distributed as dist

    from micrograde.models.training.ddp import fit_distributed, init_distributed
    from micrograde.models.training.run import TrainRunConfig, train_model
    from micrograde.pipeline.catalogue.workspace import Workspace

    from micrograde.flows.context import RunContext
    from micrograde.flows.train import labelled_table

    ctx = RunContext.model_validate_json(args.context.read_text())
    cfg = TrainRunConfig.model_validate_json(args.config.read_text())
    info = init_distributed()
    ws = Workspace.open(ctx.root, ctx.db_url)
    try:
        train_model(
            labelled_table(ws), ws.cache_dir, ws.models_dir / args.model_id, cfg,
            model_id=args.model_id, command_line=ctx.command, progress=info.is_main,
            log=print if info.is_main else (lambda _line: None),
            fit_fn=functools.partial(fit_distributed, info=info), main_process=info.is_main,
        )
        dist.barrier()
    finally:
        ws.close()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
