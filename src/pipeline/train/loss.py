"""The loss of eq. 1 and its physical-unit counterparts."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossTerms:
    """Sums over a batch, so that batches of any size add up exactly.

    ``energy_sum`` is the sum over molecules of |e_pred - e| / n (normalised units),
    ``force_sum`` the sum over atoms of ||f_pred - f||_2 (normalised units).
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
    """Per-batch sums of the two terms of eq. 1.

    Parameters
    ----------
    energy_pred, energy_target : (M,)
        Referenced, normalised energies e' = (e - sum_i ref[z_i] - mu) / sigma.
    forces_pred, forces_target : (A, 3)
        Forces divided by the same sigma.
    n_atoms : (M,)
        Atoms per molecule.
    """
    energy_per_atom = (energy_pred - energy_target).abs() / n_atoms.to(energy_pred.dtype)  # (M,)
    force_norm = torch.linalg.vector_norm(forces_pred - forces_target, dim=-1)  # (A,)
    return LossTerms(
        energy_sum=energy_per_atom.sum(),
        force_sum=force_norm.sum(),
        num_molecules=int(energy_pred.shape[0]),
        num_atoms=int(forces_pred.shape[0]),
    )


def combine(
    terms: LossTerms, energy_weight: float, force_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 1 over a batch: (loss, energy_loss, force_loss).

    The energy term is the mean over molecules of the per-atom energy error (L1); the
    force term is the mean over atoms of the L2 norm of the force error.
    """
    energy_loss = terms.energy_sum / terms.num_molecules
    force_loss = terms.force_sum / terms.num_atoms
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

    Returns ``val_loss``, ``val_energy_loss``, ``val_force_loss`` (normalised units) and
    ``val_energy_mae_mev_per_atom`` (meV/atom), ``val_force_mae_mev_per_angstrom``
    (meV/Angstrom): the normalised terms times the energy std sigma (eV) in meV.
    """
    energy_loss, force_loss = energy_sum / num_molecules, force_sum / num_atoms
    sigma_mev = energy_std_ev * 1000.0
    return {
        "val_loss": energy_weight * energy_loss + force_weight * force_loss,
        "val_energy_loss": energy_loss,
        "val_force_loss": force_loss,
        "val_energy_mae_mev_per_atom": energy_loss * sigma_mev,
        "val_force_mae_mev_per_angstrom": force_loss * sigma_mev,
    }
