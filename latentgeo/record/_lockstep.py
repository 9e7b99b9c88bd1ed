"""Recording a model whose forward is a collective: every rank in lockstep, rank 0 writes.

Under FSDP (1 and 2), tensor parallelism or DeepSpeed ZeRO-3 every forward gathers
parameters from all ranks.  A recording forward run by rank 0 alone pairs its all-gathers
with the other ranks' training collectives: gloo aborts on the mismatch, NCCL hangs.  So
for such models every rank runs the same orbit forwards at the same steps, and only rank 0
keeps the latents and writes them.

The recorder must then be constructed on every rank, and :meth:`LatentRecorder.record`
(or ``maybe_record``) called on every rank at the same steps; the construction checks that
the ranks agree (same layers, probe set, batch size, ...) and each recording checks that they
record the same step, so a disagreement is an error on every rank instead of a hang.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Lockstep", "LockstepError"]


class LockstepError(RuntimeError):
    """The ranks of a lockstep recording disagree (settings, step, or rank 0 failed)."""


class Lockstep:
    """The few collectives a lockstep recording needs (on the default process group).

    Parameters
    ----------
    kind : str
        Why the model's forward is a collective (e.g. ``"FSDP2 (fully_shard)"``).
    rank, world_size : int
    """

    def __init__(self, kind: str, rank: int, world_size: int) -> None:
        self.kind = kind
        self.rank = rank
        self.world_size = world_size

    def gather(self, value: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def agree(self, what: str, value: Any) -> None:
        """Raise :class:`LockstepError` on every rank unless all ranks pass an equal ``value``."""
        values = self.gather(value)
        if any(v != values[0] for v in values[1:]):
            diff = {r: v for r, v in enumerate(values) if v != values[0]}
            raise LockstepError(
                f"the ranks of a lockstep recording of a model with {self.kind} disagree on "
                f"{what}: rank 0 has {values[0]!r}, other ranks {diff!r}. Every rank must build "
                "the recorder with the same arguments and record the same steps"
            )

    def from_rank0(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        import torch.distributed as dist

        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
