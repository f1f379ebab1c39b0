"""The training and evaluation step: batches in, one optimizer update or validation out.

:class:`TrainStep` owns the data of a job (the training prefix, its targets, the
validation batches, the per-molecule graph cache) and acts on a
:class:`~pipeline.train.state.TrainState`; it keeps no state of its own that a
resumed run would need.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import Future

import numpy as np
import torch

from pipeline.data.graphs import radius_graph
from pipeline.data.loader import Batch, make_batch, validation_batches
from pipeline.data.stats import referenced_energy
from pipeline.data.store import MoleculeStore
from pipeline.train.augment import (
    centres_of_mass,
    random_rotations,
    replicate_batch,
    rotate_about_centres,
    rotate_per_molecule,
)
from pipeline.train.flops import count_forward_flops
from pipeline.train.loss import combine, loss_terms, validation_metrics
from pipeline.train.optim import evaluation_weights
from pipeline.train.settings import TrainSettings
from pipeline.train.state import TrainState

logger = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """Too many steps with a non-finite loss or gradient."""


def pinned(batch: Batch) -> Batch:
    """The batch in page-locked host memory, so its copy to a GPU can be asynchronous."""
    return Batch(**{name: value.pin_memory() for name, value in vars(batch).items()})


def normalised_energy(store: MoleculeStore, stats: dict) -> np.ndarray:
    """Energy targets e' = (e - sum_i ref[z_i] - mu) / sigma per molecule: float64 [M].

    ``stats`` is the extract stage's stats.json (per-element references, mu and sigma
    in eV); e' is dimensionless.
    """
    referenced = referenced_energy(store.energy, store.atomic_numbers, store.ptr, stats)
    return (referenced - stats["energy_mean_eV"]) / stats["energy_std_eV"]


class TrainStep:
    """Training and evaluation steps of one model on one job's data.

    Parameters
    ----------
    state : TrainState
        Model, optimizer, rotation generator and counters the steps update.
    store, val_store : MoleculeStore
        The training prefix (the largest fraction) and the validation set.
    stats : dict
        stats.json of the extract stage (energy references, mu and sigma in eV).
    settings : TrainSettings
    batch_size : int
        Molecules per validation batch (the training batches come from the schedule).
    device : torch.device
    label : str
        Names the run in errors (e.g. ``"mpnn width 16"``).
    cache_graphs : bool
        Keep each training molecule's radius graph after its first use (molecules
        repeat over several epochs; rotations do not change a graph).

    On CUDA the host only gathers a step's molecules (in the prefetch thread) into
    pinned memory; the copy to the GPU is asynchronous and the radius graph is built
    there (the same pure-torch :func:`radius_graph`, so the same edges), unless graphs
    are cached, which happens on the host. The validation batches stay on the GPU.
    ``settings.precision`` 'bf16-mixed' runs every forward pass under bfloat16 autocast
    and returns float32 energies and forces, so losses and the optimizer stay float32.
    """

    def __init__(
        self,
        state: TrainState,
        *,
        store: MoleculeStore,
        val_store: MoleculeStore,
        stats: dict,
        settings: TrainSettings,
        batch_size: int,
        device: torch.device,
        label: str,
        cache_graphs: bool,
    ):
        self.state, self.store, self.stats, self.settings = state, store, stats, settings
        self.device, self.label = device, label
        self.model = state.model
        self.energy_target = normalised_energy(store, stats)
        self.val_energy_target = normalised_energy(val_store, stats)
        self.val_batches = validation_batches(
            val_store, batch_size, self.model.cutoff, self.model.max_neighbors
        )
        # Not checkpointed (a pure function of the data). int16 local indices: 2 x 2
        # bytes per edge.
        self.graph_cache: dict[int, np.ndarray] | None = {} if cache_graphs else None
        largest = int(store.atoms_per_molecule.max(initial=0))
        self._graph_cache_dtype = np.int16 if largest < 2**15 else np.int32
        cuda = device.type == "cuda"
        self.pin_memory = cuda
        self.graph_on_device = cuda and not cache_graphs
        if cuda:
            self.val_batches = [batch.to(device) for batch in self.val_batches]
        self.autocast = settings.precision == "bf16-mixed"
        # train.compile: every forward (training and evaluation) through torch.compile with
        # dynamic shapes (batches differ in atoms and edges); FLOP counting and
        # model.prepare use the eager module
        self.network = torch.compile(self.model, dynamic=True) if settings.compile else self.model
        # seconds the training thread waited for the prefetch thread's batch (on CUDA,
        # time the GPU idles for the host); not checkpointed
        self.host_wait_seconds = 0.0

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # -- data ---------------------------------------------------------------------------
    @property
    def graph_neighbors(self) -> int:
        """Neighbours per atom of the training graphs: 0 (no graph is built) for a model
        that declares ``uses_edges = False`` (e.g. one with global attention)."""
        return self.model.max_neighbors if getattr(self.model, "uses_edges", True) else 0

    def make_batch(self, indices: np.ndarray) -> Batch:
        """:func:`make_batch` of training molecules, reusing cached per-molecule graphs.

        Deterministic and free of random draws, so building it in a prefetch thread
        cannot change a run. The radius graph depends on a molecule's own (unrotated)
        positions only, and the batched graph is the per-molecule graphs in batch order,
        each shifted by its first atom: the cache gives the same edges (tested).
        """
        cutoff, neighbors, cache = self.model.cutoff, self.graph_neighbors, self.graph_cache
        if cache is None or neighbors == 0:
            return make_batch(self.store, indices, cutoff, neighbors)
        counts = self.store.atoms_per_molecule[indices]
        first_atom = np.cumsum(counts) - counts
        if all(int(m) in cache for m in indices):
            batch = make_batch(self.store, indices, cutoff, 0)  # no graph
            pieces = [cache[int(m)] for m in indices]
            edges = np.concatenate(pieces, axis=1).astype(np.int64)
            edges += np.repeat(first_atom, [piece.shape[1] for piece in pieces])
            batch.edge_index = torch.from_numpy(edges)
            return batch
        batch = make_batch(self.store, indices, cutoff, neighbors)
        edges = batch.edge_index.numpy()
        centre_molecule = batch.batch.numpy()[edges[1]]  # sorted: edges grouped by molecule
        bounds = np.searchsorted(centre_molecule, np.arange(len(indices) + 1))
        for j, m in enumerate(indices):
            local = edges[:, bounds[j] : bounds[j + 1]] - first_atom[j]
            cache[int(m)] = local.astype(self._graph_cache_dtype)
        return batch

    def load(self, indices: np.ndarray) -> Batch:
        """The host's part of a step's batch (run in the prefetch thread): the gathered
        molecules, with their radius graph unless it is built on the device, pinned
        when the device is a GPU."""
        if self.graph_on_device:
            batch = make_batch(self.store, indices, self.model.cutoff, 0)  # no graph
        else:
            batch = self.make_batch(indices)
        return pinned(batch) if self.pin_memory else batch

    def on_device(self, indices: np.ndarray, batch: Batch) -> tuple[Batch, tuple]:
        """The batch on the device and its targets (energy [M], forces [A, 3]), normalised."""
        batch = batch.to(self.device, non_blocking=self.pin_memory)
        neighbors = self.graph_neighbors
        if self.graph_on_device and neighbors and batch.edge_index.shape[1] == 0:
            batch.edge_index = radius_graph(
                batch.positions, batch.batch, self.model.cutoff, neighbors
            )
        dtype = self.dtype
        targets = (
            torch.as_tensor(self.energy_target[indices], dtype=dtype, device=self.device),
            batch.forces.to(dtype) / self.stats["energy_std_eV"],
        )
        return batch, targets

    def forward(self, batch: Batch, positions: torch.Tensor):
        """Energies [M] and forces [A, 3] of the model, in the weights' dtype."""
        args = (batch.atomic_numbers, positions, batch.edge_index, batch.batch, batch.num_molecules)
        if not self.autocast:
            return self.network(*args)
        try:
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                energy, forces = self.network(*args)
        except RuntimeError as error:
            raise RuntimeError(
                f"{self.label}: the model fails under train.precision 'bf16-mixed' "
                f"(bfloat16 autocast): {error}"
            ) from error
        return energy.to(self.dtype), forces.to(self.dtype)

    def inputs(self, epoch: int, indices: np.ndarray, loaded: Future | None = None):
        """Model input and targets of one step: (batch, positions, energy, forces targets).

        With augmentation, each molecule is rotated about its centre of mass by a Haar
        rotation (targets rotated alike). With the symmetry loss, M more copies of the
        batch follow the first, each molecule rotated by its own Haar rotation per copy:
        the returned batch then holds 1 + M copies (copy k's molecules are rows
        k n .. (k+1) n - 1, atoms k A .. (k+1) A - 1). The radius graph of a rotated copy
        is the graph of the unrotated molecule (distances are rotation invariant).
        Rotations come from the state's generator (checkpointed), augmentation first.
        ``loaded`` is the prefetch thread's future of this step's batch (built here if None).
        """
        if loaded is not None:
            start = time.perf_counter()
            host_batch = loaded.result()
            self.host_wait_seconds += time.perf_counter() - start
        else:
            host_batch = self.load(indices)
        batch, (energy_target, forces_target) = self.on_device(indices, host_batch)
        dtype, generator = energy_target.dtype, self.state.generator
        positions = batch.positions.to(dtype)
        n = len(indices)
        augment = self.settings.augment
        rotations_m = self.settings.symmetry_loss_rotations
        rotate = augment == "always" or (augment == "after_first_epoch" and epoch > 0)
        if rotate or rotations_m:
            centres = centres_of_mass(positions, batch.atomic_numbers, batch.batch, n)  # (n, 3)
        if rotate:
            rotations = random_rotations(n, generator, dtype, self.device)
            positions = rotate_about_centres(positions, rotations, centres, batch.batch)
            forces_target = rotate_per_molecule(forces_target, rotations, batch.batch)
        if rotations_m:
            full = replicate_batch(batch, 1 + rotations_m)
            tiled = full.batch[positions.shape[0] :] - n  # molecule among the M n copies
            rotations = random_rotations(rotations_m * n, generator, dtype, self.device)
            positions = torch.cat(
                [
                    positions,
                    rotate_about_centres(
                        positions.repeat(rotations_m, 1),
                        rotations,
                        centres.repeat(rotations_m, 1),
                        tiled,
                    ),
                ]
            )
            forces_target = torch.cat(
                [
                    forces_target,
                    rotate_per_molecule(forces_target.repeat(rotations_m, 1), rotations, tiled),
                ]
            )
            energy_target = energy_target.repeat(1 + rotations_m)
            batch = full
        return batch, positions, energy_target, forces_target

    def prepare_model(self, indices: np.ndarray) -> None:
        """Call the model's ``prepare`` on the first training batch (fresh runs only).

        A model may fit data-dependent constants before training (GemNet-OC's scale
        factors); it keeps them in buffers, so checkpoints and model.pt carry them and
        a resumed or continued run never calls this again.
        """
        prepare = getattr(self.model, "prepare", None)
        if prepare is None:
            return
        batch, _ = self.on_device(indices, self.load(indices))
        prepare(
            batch.atomic_numbers,
            batch.positions.to(self.dtype),
            batch.edge_index,
            batch.batch,
            batch.num_molecules,
        )
        logger.info("%s: model.prepare on the first batch", self.label)

    def forward_flops(self, indices: np.ndarray) -> dict[str, float]:
        """FLOPs of one forward pass per atom on the batch ``indices`` (meta.json keys
        ``forward_flops_per_atom_{counted,uncounted_estimate,total}``)."""
        batch, _ = self.on_device(indices, self.load(indices))
        inputs = (
            batch.atomic_numbers,
            batch.positions.to(self.dtype),
            batch.edge_index,
            batch.batch,
            len(batch.n_atoms),
        )
        flops = count_forward_flops(self.model, inputs)
        atoms = int(batch.atomic_numbers.shape[0])
        return {f"forward_flops_per_atom_{k}": v / atoms for k, v in flops.items()}

    # -- training -------------------------------------------------------------------------
    def train_step(self, epoch: int, indices: np.ndarray, loaded: Future | None = None):
        """One optimizer step.

        Returns
        -------
        (total, symmetry) : tuple of float, or None when the step was skipped
            The objective of the step (eq. 1, plus lambda times eq. 2 when the symmetry
            loss is on) and the unweighted symmetry loss (nan when off).
        """
        state, settings = self.state, self.settings
        start = time.perf_counter()
        batch, positions, energy_target, forces_target = self.inputs(epoch, indices, loaded)
        state.data_seconds += time.perf_counter() - start
        state.optimizer.zero_grad(set_to_none=True)
        energy, forces = self.forward(batch, positions)
        n, atoms = len(indices), int(self.store.atoms_per_molecule[indices].sum())
        terms = loss_terms(
            energy[:n], forces[:atoms], energy_target[:n], forces_target[:atoms], batch.n_atoms[:n]
        )
        loss, _, _ = combine(terms, settings.energy_weight, settings.force_weight)
        symmetry = loss.new_tensor(float("nan"))
        if settings.symmetry_loss_rotations:
            sym_terms = loss_terms(
                energy[n:],
                forces[atoms:],
                energy_target[n:],
                forces_target[atoms:],
                batch.n_atoms[n:],
            )
            # the mean over the M copies of eq. 1: each copy has the same n and atoms
            symmetry, _, _ = combine(sym_terms, settings.energy_weight, settings.force_weight)
            loss = loss + settings.symmetry_loss_weight * symmetry
        loss.backward()
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads)
        # one host synchronisation per step: the loss and gradient checks together
        loss_value, symmetry_value, grad_value = torch.stack(
            [loss.detach(), symmetry.detach(), grad_norm.to(loss.dtype)]
        ).tolist()
        if not math.isfinite(loss_value):
            state.optimizer.zero_grad(set_to_none=True)
            return self._skip(indices, f"loss {loss_value}")
        if not math.isfinite(grad_value):
            state.optimizer.zero_grad(set_to_none=True)
            return self._skip(indices, f"gradient norm {grad_value}")
        state.optimizer.step()
        return loss_value, symmetry_value

    def _skip(self, indices: np.ndarray, what: str) -> None:
        state = self.state
        state.nonfinite.append({"step": state.step, "what": what, "molecules": indices.tolist()})
        logger.warning(
            "step %d skipped: non-finite %s (training molecules %s)",
            state.step,
            what,
            indices.tolist(),
        )
        if len(state.nonfinite) > self.settings.max_nonfinite_steps:
            raise NonFiniteError(
                f"{self.label}: {len(state.nonfinite)} non-finite steps, more than "
                f"train.max_nonfinite_steps={self.settings.max_nonfinite_steps}; last: {what}"
            )

    # -- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation losses of eq. 1 with the schedule-free averaged weights."""
        energy_sum = force_sum = 0.0
        molecules = atoms = 0
        dtype, sigma = self.dtype, self.stats["energy_std_eV"]
        with evaluation_weights(self.model, self.state.optimizer):
            for batch in self.val_batches:
                batch = batch.to(self.device)
                indices = batch.molecule_index.cpu().numpy()
                energy_target = torch.as_tensor(
                    self.val_energy_target[indices], dtype=dtype, device=self.device
                )
                forces_target = batch.forces.to(dtype) / sigma
                energy, forces = self.forward(batch, batch.positions.to(dtype))
                terms = loss_terms(energy, forces, energy_target, forces_target, batch.n_atoms)
                energy_sum += float(terms.energy_sum)
                force_sum += float(terms.force_sum)
                molecules += terms.num_molecules
                atoms += terms.num_atoms
        metrics = validation_metrics(
            energy_sum,
            force_sum,
            molecules,
            atoms,
            self.settings.energy_weight,
            self.settings.force_weight,
            sigma,
        )
        if not math.isfinite(metrics["val_loss"]):
            raise NonFiniteError(f"{self.label}: validation loss is {metrics['val_loss']}")
        return metrics
