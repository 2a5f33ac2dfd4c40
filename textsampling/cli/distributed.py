r"""Many processes, one result: ``textsampling generate`` under ``torchrun``.

``torchrun --nproc_per_node=N -m textsampling.cli generate ...`` starts ``N`` copies of the command;
each learns its place from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``), joins one process group (gloo on the CPU, NCCL on GPUs, where
process ``r`` of a node uses ``cuda:LOCAL_RANK``) and runs a contiguous block of the chains
(:func:`shard`): chains :math:`[\lfloor rC/N \rfloor, \lfloor (r+1)C/N \rfloor)` of :math:`C`.
Because chain :math:`c` at step :math:`t` uses the uniforms :math:`\mathrm{Philox}(\text{seed}, c, t)`
and nothing else (:mod:`textsampling.torch.randomness`), a chain draws the same sentences whichever
process runs it and whichever chains run beside it. Each process writes its chains to a shard file of
its own (:func:`shard_path`, ``samples.chains-A-B.jsonl``) and, after a barrier, process 0 merges the
shards into the one ``samples.jsonl`` (:func:`merge_sorted`) in the order a single process writes
(kept step by kept step, chains in index order within a step): the merged file is byte for byte the
single-process one, for any ``N`` — provided the model's score of a row does not depend on the rest of
its batch. The bigram oracle's does not; a Hugging Face model's can, in the last bits, with the batch's
shape (padding, kernel choice), and a decision within that of its threshold then differs: the run is
an equally valid run of the sampler, no longer the same bytes.

Without torchrun's variables nothing here starts a process group: :func:`from_environment` gives the
single-process :class:`Processes` and every collective below returns at once.

Everything here is generic (process groups, shard ranges, file names, a merge of sorted line files);
what a line of ``samples.jsonl`` holds, and the order of its records, is :mod:`textsampling.cli.generate`'s.
"""

from __future__ import annotations

import contextlib
import datetime
import heapq
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

__all__ = [
    "Processes", "current", "from_environment", "process_device", "backend_for", "process_group", "shard", "barrier",
    "broadcast", "gather", "shard_path", "find_shards", "merge_sorted", "TORCHRUN_VARIABLES",
    "COLLECTIVE_TIMEOUT",
]

#: The variables torchrun sets in every process it starts, and that say "run as one of several".
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
#: How long a process waits for the others at a barrier: the fastest block may finish long before the
#: slowest (torchrun ends every process as soon as one fails, so a crash is no reason to wait less).
COLLECTIVE_TIMEOUT = datetime.timedelta(days=1)
#: ``samples.chains-A-B.jsonl``: the records of chains A..B-1 written by one process.
SHARD_PATTERN = re.compile(r"^samples\.chains-(\d+)-(\d+)\.jsonl$")


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of one run.

    Attributes
    ----------
    rank : int
        Index of this process, ``0 .. world_size - 1``; process 0 writes every file but the shards.
    world_size : int
        Number of processes (all nodes together).
    local_rank : int
        Index of this process on its node: the GPU it uses (``cuda:local_rank``).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        """More than one process: the chains are sharded and the shards merged."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Process 0: the one that writes ``run.json``, merges the shards and reports."""
        return self.rank == 0


def from_environment(environ=None) -> Processes:
    """The :class:`Processes` torchrun's variables describe, or the single process when none is set.

    Raises ``ValueError`` when only some of ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` are set, or when
    they are not integers with ``0 <= RANK < WORLD_SIZE`` and ``LOCAL_RANK >= 0``.
    """
    environ = os.environ if environ is None else environ
    present = [name for name in TORCHRUN_VARIABLES if environ.get(name, "") != ""]
    if not present:
        return Processes()
    if len(present) < len(TORCHRUN_VARIABLES):
        missing = [name for name in TORCHRUN_VARIABLES if name not in present]
        raise ValueError(f"the environment sets {', '.join(present)} but not {', '.join(missing)}: start several "
                         "processes with torchrun, which sets all three, or unset them for one process")
    try:
        rank, world_size, local_rank = (int(environ[name]) for name in TORCHRUN_VARIABLES)
    except ValueError:
        values = ", ".join(f"{name}={environ[name]!r}" for name in TORCHRUN_VARIABLES)
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers, got {values}") from None
    if not (world_size >= 1 and 0 <= rank < world_size and local_rank >= 0):
        raise ValueError(f"need WORLD_SIZE >= 1, 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0, got RANK={rank}, "
                         f"WORLD_SIZE={world_size}, LOCAL_RANK={local_rank}")
    return Processes(rank=rank, world_size=world_size, local_rank=local_rank)


def current(environ=None) -> Processes:
    """This process's place: from the process group when one is started (a caller of the Python API may
    have started it with any launcher), else from torchrun's variables (:func:`from_environment`)."""
    import sys

    environ = os.environ if environ is None else environ
    dist = sys.modules.get("torch.distributed")  # imported only if the caller uses it: never import torch here
    if dist is not None and dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        return Processes(rank=rank, world_size=dist.get_world_size(),
                         local_rank=int(environ.get("LOCAL_RANK", "") or rank))
    return from_environment(environ)


def process_device(device: str, processes: Processes) -> str:
    """The device this process runs on: ``cuda`` becomes ``cuda:LOCAL_RANK`` among several processes.

    One GPU per process: an explicit ``cuda:N`` would put every process of a node on the same GPU,
    so it is refused when there are several processes (``--device cuda`` lets each take its own).
    """
    if not processes.is_distributed or not str(device).startswith("cuda"):
        return device
    if str(device) != "cuda":
        raise ValueError(f"--device {device}: under torchrun each process uses the GPU cuda:LOCAL_RANK of its "
                         "node; pass --device cuda")
    return f"cuda:{processes.local_rank}"


def backend_for(device: str) -> str:
    """``"nccl"`` for CUDA devices, ``"gloo"`` for the CPU (and anything else)."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


@contextlib.contextmanager
def process_group(processes: Processes, device: str):
    """Join the process group of a several-process run for the ``with`` block; yields ``processes``.

    Reads ``MASTER_ADDR``/``MASTER_PORT`` from the environment (``init_method="env://"``, as torchrun
    sets them). A group already started (by a caller of the Python API) is used as it is and left
    open, after checking that it has this process's rank and size. One process: nothing to join.
    """
    if not processes.is_distributed:
        yield processes
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        if (dist.get_rank(), dist.get_world_size()) != (processes.rank, processes.world_size):
            raise ValueError(f"the process group already started has rank {dist.get_rank()} of "
                             f"{dist.get_world_size()}, but RANK={processes.rank}, WORLD_SIZE={processes.world_size}")
        yield processes
        return
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device))  # collectives of objects go through this GPU
    dist.init_process_group(backend=backend, init_method="env://", rank=processes.rank,
                            world_size=processes.world_size, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield processes
    finally:
        dist.destroy_process_group()


def shard(num_items: int, processes: Processes) -> range:
    r"""The items of process ``rank``: :math:`[\lfloor r n / N \rfloor, \lfloor (r+1) n / N \rfloor)`.

    Contiguous blocks whose sizes differ by at most one, in rank order, covering ``0 .. n-1`` once.
    With fewer items than processes some blocks are empty.
    """
    start = processes.rank * num_items // processes.world_size
    stop = (processes.rank + 1) * num_items // processes.world_size
    return range(start, stop)


def barrier(processes: Processes) -> None:
    """Wait until every process gets here (one process: return at once)."""
    if processes.is_distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast(value, processes: Processes):
    """Process 0's ``value`` in every process (any picklable object)."""
    if not processes.is_distributed:
        return value
    import torch.distributed as dist

    box = [value if processes.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value, processes: Processes) -> list:
    """Every process's ``value``, in rank order, in every process (any picklable object)."""
    if not processes.is_distributed:
        return [value]
    import torch.distributed as dist

    values = [None] * processes.world_size
    dist.all_gather_object(values, value)
    return values


def shard_path(folder, chains: range) -> Path:
    """``folder/samples.chains-A-B.jsonl``: where the process running chains ``A..B-1`` writes them."""
    return Path(folder) / f"samples.chains-{chains.start}-{chains.stop}.jsonl"


def find_shards(folder) -> list:
    """The shard files in ``folder``, as ``(chains, path)`` pairs sorted by their first chain."""
    found = []
    folder = Path(folder)
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        match = SHARD_PATTERN.match(path.name)
        if match and path.is_file():
            found.append((range(int(match.group(1)), int(match.group(2))), path))
    return sorted(found, key=lambda item: (item[0].start, item[0].stop))


def merge_sorted(sources: Iterable, destination, key: Callable) -> int:
    """Merge line files, each sorted by ``key(line)``, into ``destination``; returns the number of lines.

    A streaming k-way merge (:func:`heapq.merge`): one line of each source in memory at a time. The
    lines are copied byte for byte, so merging the shards of a run gives exactly the lines that one
    process would have written. ``destination`` is written beside itself and then renamed over, so a
    reader never sees half a merge; it may be one of the sources.
    """
    destination = Path(destination)
    temporary = destination.with_name(destination.name + ".merging")
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(path, encoding="utf-8", newline="")) for path in sources]
        count = 0
        with open(temporary, "w", encoding="utf-8", newline="") as output:
            for line in heapq.merge(*files, key=key):
                output.write(line)
                count += 1
    temporary.replace(destination)
    return count
