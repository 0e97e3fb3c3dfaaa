"""Data-parallel training on ``torch.distributed`` through Hugging Face ``accelerate``.

``FactVAE(distributed=True)`` trains with :class:`DistributedFactVAENet`, skorch's
:class:`skorch.hf.AccelerateMixin` on :class:`~factvae_sk.train._net.FactVAENet`. Launched with
``torchrun`` or ``accelerate launch``, every process runs the same script on the same data:

- each global batch of ``batch_size`` shuffled cells is split between the processes
  (accelerate's ``split_batches``; the shuffle is broadcast from rank 0), so every process
  trains on its own shard of every batch;
- the main step runs through the DistributedDataParallel wrapper, which all-reduces (averages)
  the gradients of ``optimizer_``'s parameters; the per-cell means of the loss over equal
  shards average to the global batch's mean, so the step is the one-process step;
- the distillation step compares the cell-cell similarity structures of the *gathered* global
  batch: every process gathers the codes of all shards (its own keep their gradient), computes
  the same loss, back-propagates into its own cells, and the ATAC encoder's gradients are
  summed over the processes: exactly the gradient of the one-process loss on the whole batch;
- the logged loss terms are averaged over the processes in one all-reduce per step, so every
  process holds the one-process history (skorch's ``DistributedHistory`` is not needed).
"""

import torch
import torch.distributed as dist
from skorch.hf import AccelerateMixin

from ._net import FactVAENet


def require_accelerate():
    """Import accelerate, or say how to install it."""
    try:
        import accelerate  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "FactVAE(distributed=True) trains through Hugging Face accelerate, which is not "
            "installed: pip install 'factvae_sk[accelerate]'."
        ) from error


def silent(*args, **kwargs):
    """A print that prints nothing (skorch's epoch table below ``verbose=2``)."""


def process_group():
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside a distributed launch."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def make_accelerator(device):
    """An ``Accelerator`` that splits each global batch between the processes.

    Creating it joins the process group of a ``torchrun`` / ``accelerate launch`` launch
    (gloo on CPUs, NCCL on GPUs); in a plain Python process it is a one-process run.
    ``device="cpu"`` keeps training on the CPU even where GPUs are present.
    """
    require_accelerate()
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    return Accelerator(
        cpu=str(device) == "cpu",
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )


def broadcast_from_main(make):
    """``make()`` run on rank 0 only, its result sent to every process (pickled).

    The preprocessing (PCA, LSI) is fitted this way: once, so every process encodes its cells
    with the same fitted transformers, also on nodes whose BLAS would round differently.
    """
    rank, world_size = process_group()
    if world_size == 1:
        return make()
    box = [make() if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_settings(estimator, n_cells, per_cell_inputs=()):
    """Raise ValueError for what data-parallel training does not support (yet).

    ``per_cell_inputs``: the names of the per-cell fit arguments given (``batch``, ...)."""
    _, world_size = process_group()
    if per_cell_inputs:
        # Untested across processes (the distillation's paired-cell mask would give the
        # ranks slices of unequal length), so refused rather than trusted.
        raise ValueError(
            f"FactVAE(distributed=True) does not support {', '.join(per_cell_inputs)} yet: "
            "fit several samples or single-modality cells in one process."
        )
    if estimator.validation_fraction is not None or estimator.early_stopping:
        raise ValueError(
            "FactVAE(distributed=True) does not support validation_fraction or "
            "early_stopping: the held-out cells would be scored per process."
        )
    if estimator.warm_start and hasattr(estimator, "net_"):
        raise ValueError(
            "FactVAE(distributed=True) cannot continue training (warm_start): fit afresh, "
            "or continue a loaded model with distributed=False."
        )
    batch_size = min(estimator.batch_size, n_cells)
    if batch_size % world_size:
        raise ValueError(
            f"FactVAE(distributed=True) splits each batch of {batch_size} cells between "
            f"{world_size} processes: batch_size must be a multiple of the number of processes."
        )


def check_same_data(*matrices):
    """Raise ValueError unless every process was given the same cells and features.

    Compares shapes and totals (a cheap fingerprint), so a launch where processes load
    different files fails before training instead of training on a mix.
    """
    rank, world_size = process_group()
    if world_size == 1:
        return
    fingerprint = [(m.shape, float(m.sum())) for m in matrices if m is not None]
    gathered = [None] * world_size
    dist.all_gather_object(gathered, fingerprint)
    for other, theirs in enumerate(gathered):
        if theirs != gathered[0]:
            raise ValueError(
                "FactVAE(distributed=True) needs the same X_rna and X_atac in every process "
                f"(each trains on its shard of the same cells); rank {other} has "
                f"{theirs}, rank 0 {gathered[0]} (shape and total of each matrix)."
            )


class DistributedFactVAENet(AccelerateMixin, FactVAENet):
    """:class:`~factvae_sk.train._net.FactVAENet` trained data-parallel through ``accelerate``.

    skorch's ``AccelerateMixin`` prepares the module (DistributedDataParallel), both
    optimizers and the data loaders; this class fills FactVAENet's hooks: backward through
    the accelerator, the distillation on the gathered batch with summed gradients, and the
    logged terms averaged over the processes. See the module docstring.

    Parameters
    ----------
    accelerator : accelerate.Accelerator
        See :func:`make_accelerator` (``split_batches=True`` is what makes each process's
        shard a slice of the one-process batch).
    *args, **kwargs
        As for :class:`~factvae_sk.train._net.FactVAENet`.
    """

    def initialize(self):
        super().initialize()
        rank, _ = process_group()
        if rank:
            # The same initial weights everywhere (DDP also broadcasts rank 0's); from here
            # each process draws its own sampling and dropout noise for its own cells. The
            # shuffle is unaffected: accelerate broadcasts rank 0's sampler state.
            torch.manual_seed(torch.initial_seed() + rank)
        return self

    def _initialize_accelerator(self):
        # On CPUs accelerate wraps every prepared module in DistributedDataParallel, which
        # refuses the criterion (it has buffers, no parameters): prepare the module only,
        # and move the criterion's buffers (the prior) to the device by hand.
        criteria, self._criteria = self._criteria, []
        try:
            super()._initialize_accelerator()
        finally:
            self._criteria = criteria
        if self.accelerator.device_placement:
            self.criterion_ = self.criterion_.to(self.accelerator.device)
        return self

    def get_iterator(self, dataset, training=False):
        _, world_size = process_group()
        if not training or world_size == 1:
            return super().get_iterator(dataset, training=training)
        loader = super(AccelerateMixin, self).get_iterator(dataset, training=training)
        # The shuffle gets a generator of its own, seeded every epoch as in one process (see
        # on_epoch_begin); accelerate sends rank 0's to the other ranks at every epoch. The
        # loader's base seed gets one too (unused: no worker processes), so that iterating
        # draws nothing from torch's generator.
        self._shuffle_generator = loader.sampler.generator = torch.Generator()
        loader.generator = torch.Generator()
        return self.accelerator.prepare(loader)

    def on_epoch_begin(self, net, **kwargs):
        super().on_epoch_begin(net, **kwargs)
        shuffle = getattr(self, "_shuffle_generator", None)
        if shuffle is not None:
            # A one-process epoch draws the loader's base seed, then the shuffle's seed, from
            # torch's generator: the same draws, in the same order.
            torch.empty((), dtype=torch.int64).random_()
            shuffle.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))

    @property
    def _core(self):
        return self.accelerator.unwrap_model(self.module_)

    def _backward(self, loss):
        self.accelerator.backward(loss)

    def _distillation_batch(self, teacher, student):
        rank, world_size = process_group()
        if world_size == 1:
            return teacher, student
        teachers = [torch.empty_like(teacher) for _ in range(world_size)]
        students = [torch.empty_like(student) for _ in range(world_size)]
        dist.all_gather(teachers, teacher.contiguous())
        dist.all_gather(students, student.detach().contiguous())
        # The other shards' codes are constants here; their own processes differentiate
        # through them, and the encoder's gradients are summed below.
        students[rank] = student
        return torch.cat(teachers), torch.cat(students)

    def _reduce_distillation_gradients(self):
        _, world_size = process_group()
        if world_size == 1:
            return
        for parameter in self._core.encoder_atac.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad)

    def _synchronized(self, values):
        _, world_size = process_group()
        if world_size == 1:
            return values
        values = values.clone()
        dist.all_reduce(values)
        return values / world_size


def plain_net(net, fresh):
    """The trained modules and optimizers of ``net`` moved into ``fresh``, a plain
    FactVAENet with the same settings: one that pickles (an accelerated net does not) and
    continues training in one process like any other.

    ``fresh`` is initialized here (new callbacks, no accelerator), then given ``net``'s
    unwrapped module, criterion, optimizers and history.
    """
    fresh.initialize()
    fresh.module_ = net.accelerator.unwrap_model(net.module_)
    fresh.criterion_ = net.accelerator.unwrap_model(net.criterion_)
    for name in ("optimizer_", "optimizer_atac_"):
        if hasattr(net, name):
            optimizer = getattr(net, name)
            # accelerate's AcceleratedOptimizer wraps the torch optimizer.
            setattr(fresh, name, getattr(optimizer, "optimizer", optimizer))
    fresh.history = net.history
    return fresh
