"""The loss of eq. 1 and its physical-unit counterparts.

Eq. 1 is a per-molecule loss, averaged over molecules::

    L(X) = lambda_e / n |e_pred(X) - e(X)| + lambda_f / n sum_i ||f_pred,i(X) - f_i(X)||_2

for a molecule X of n atoms, so both terms are means over molecules of per-molecule
quantities: the per-atom energy error and the mean over that molecule's atoms of the
force-error norm. A batch (or a validation set) weighs every molecule equally, whatever
its size. (A mean of force norms over all atoms of a batch would weigh a molecule by its
atom count instead.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossTerms:
    """Sums over the molecules of a batch, so that batches of any size add up exactly.

    ``energy_sum`` is the sum over molecules of |e_pred - e| / n and ``force_sum`` the
    sum over molecules of (1/n) sum_i ||f_pred,i - f_i||_2 (both in normalised units);
    dividing either by ``num_molecules`` gives the term of eq. 1. ``num_atoms`` is
    carried for bookkeeping (atoms seen), not used by eq. 1.
    """

    energy_sum: torch.Tensor
    force_sum: torch.Tensor
    num_molecules: int
    num_atoms: int


def loss_terms(
    energy_pred: torch.Tensor,
    forces_pred: torch.Tensor,
    energy_target: torch.Tensor,
    forces_target: torch.Tensor,
    n_atoms: torch.Tensor,
) -> LossTerms:
    """Per-batch sums of the two per-molecule terms of eq. 1.

    Parameters
    ----------
    energy_pred, energy_target : (M,)
        Referenced, normalised energies e' = (e - sum_i ref[z_i] - mu) / sigma.
    forces_pred, forces_target : (A, 3)
        Forces divided by the same sigma; the atoms of each molecule contiguous and in
        molecule order (the loader's layout), so that ``n_atoms`` assigns them.
    n_atoms : (M,)
        Atoms per molecule, each >= 1; ``n_atoms.sum()`` must equal A.
    """
    num_molecules, num_atoms = int(energy_pred.shape[0]), int(forces_pred.shape[0])
    # the atom-count check reads n_atoms on the host: done only where that is free (CPU),
    # so that a GPU step keeps its single host synchronisation
    if n_atoms.shape[0] != num_molecules or (
        n_atoms.device.type == "cpu" and int(n_atoms.sum()) != num_atoms
    ):
        raise ValueError(
            f"loss_terms: n_atoms (M={n_atoms.shape[0]}, sum {int(n_atoms.sum())}) does not "
            f"match the predictions (M={num_molecules}, A={num_atoms})"
        )
    count = n_atoms.to(device=energy_pred.device, dtype=energy_pred.dtype)  # (M,)
    energy_per_atom = (energy_pred - energy_target).abs() / count  # (M,)
    force_norm = torch.linalg.vector_norm(forces_pred - forces_target, dim=-1)  # (A,)
    molecule = torch.repeat_interleave(
        torch.arange(num_molecules, device=force_norm.device),
        n_atoms.to(force_norm.device),
        output_size=num_atoms,
    )  # (A,) molecule of each atom
    per_molecule = force_norm.new_zeros(num_molecules).index_add_(0, molecule, force_norm)
    force_per_molecule = per_molecule / count.to(force_norm.dtype)  # (M,)
    return LossTerms(
        energy_sum=energy_per_atom.sum(),
        force_sum=force_per_molecule.sum(),
        num_molecules=num_molecules,
        num_atoms=num_atoms,
    )


def combine(
    terms: LossTerms, energy_weight: float, force_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 1 over a batch: (loss, energy_loss, force_loss).

    The energy term is the mean over molecules of the per-atom energy error (L1); the
    force term the mean over molecules of the per-molecule mean L2 norm of the force
    error.
    """
    energy_loss = terms.energy_sum / terms.num_molecules
    force_loss = terms.force_sum / terms.num_molecules
    return energy_weight * energy_loss + force_weight * force_loss, energy_loss, force_loss


def validation_metrics(
    energy_sum: float,
    force_sum: float,
    num_molecules: int,
    num_atoms: int,
    energy_weight: float,
    force_weight: float,
    energy_std_ev: float,
) -> dict[str, float]:
    """Eq. 1 over a whole set from accumulated :class:`LossTerms` sums.

    Both sums are over molecules, so both terms are divided by ``num_molecules``;
    ``num_atoms`` (atoms in the set) only checks that the sums are consistent (every
    molecule has at least one atom).

    Returns ``val_loss``, ``val_energy_loss``, ``val_force_loss`` (normalised units) and
    ``val_energy_mae_mev_per_atom`` (meV/atom), ``val_force_mae_mev_per_angstrom``
    (meV/Angstrom, the mean over molecules of the per-molecule mean force-error norm):
    the normalised terms times the energy std sigma (eV) in meV.
    """
    if num_molecules < 1 or num_atoms < num_molecules:
        raise ValueError(
            f"validation_metrics: need 1 <= num_molecules <= num_atoms, got "
            f"{num_molecules} molecules and {num_atoms} atoms"
        )
    energy_loss, force_loss = energy_sum / num_molecules, force_sum / num_molecules
    sigma_mev = energy_std_ev * 1000.0
    return {
        "val_loss": energy_weight * energy_loss + force_weight * force_loss,
        "val_energy_loss": energy_loss,
        "val_force_loss": force_loss,
        "val_energy_mae_mev_per_atom": energy_loss * sigma_mev,
        "val_force_mae_mev_per_angstrom": force_loss * sigma_mev,
    }
