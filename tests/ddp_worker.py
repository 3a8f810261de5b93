"""Entry point of one DDP process for tests/test_training.py (spawned, so it lives in a module)."""

from __future__ import annotations

import os


def run(rank: int, world: int, port: int, cfg_kwargs: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch

    torch.set_num_threads(1)
    from lrpose.body import load_body
    from lrpose.training.loop import TrainConfig, train_rscnet

    train_rscnet(TrainConfig(**cfg_kwargs), load_body())
    torch.distributed.destroy_process_group()
