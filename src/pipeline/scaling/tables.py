"""Tables 1 and 7 and the compute-optimal allocation, from the fit JSONs.

Every number an item-6 test calls not identified (see :mod:`pipeline.scaling.identify`)
is printed as ``"not identified (<reason>)"`` in the ``note`` column (Table 1) or the
``<param>_note`` columns (Table 7) and left NaN in the number columns; the fit JSON keeps
the raw values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.scaling.fit import _percentile_ci, optimal_allocation
from pipeline.scaling.fits import _samples

logger = logging.getLogger(__name__)


def read_fits(paths: Iterable[str | Path]) -> dict[str, dict]:
    """Read ``results/fits/*.json`` files (or a folder) -> {label: fit dict}.

    The label is the arch, or ``arch/variant`` for non-base variants.
    """
    fits = {}
    files = []
    for p in [paths] if isinstance(paths, str | Path) else paths:
        p = Path(p)
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    if not files:
        raise ValueError(f"no fit JSON files in {paths}")
    for f in files:
        d = json.loads(Path(f).read_text())
        for key in ("arch", "eq4_flops", "eq7", "eq5_used"):
            if key not in d:
                raise ValueError(f"{f}: missing key {key!r}; not a fit_arch output")
        label = d["arch"] if d.get("variant", "base") == "base" else f"{d['arch']}/{d['variant']}"
        fits[label] = d
    return fits


def _nan(v):
    return float("nan") if v is None else float(v)


def _note(fit: dict, what: str) -> str:
    """ "<what>: not identified (<reason>)" or ""."""
    if fit.get("identified", True):
        return ""
    return f"{what}: not identified ({fit.get('not_identified_reason') or 'no reason recorded'})"


def _used_sum_fit(f: dict) -> dict:
    return f["eq5_free"] if f["eq5_used"] == "free" else f["eq5_e_zero"]


def table1(fits: Mapping[str, dict]) -> pd.DataFrame:
    """Table 1: F_c and gamma_c from the frontier (eq. 4) and from eq. (5) via eq. (7).

    Returns
    -------
    DataFrame
        Columns ``arch, param`` ("F_c" or "gamma_c"), ``eq4, eq4_lo, eq4_hi, eq7,
        eq7_lo, eq7_hi`` (NaN where that law is not identified), ``eq5_fit`` (which
        eq. 5 fit eq. 7 uses), ``note`` ("not identified (<reason>)" per law),
        ``e_mode_note`` (why that eq. 5 fit), ``eq4_identified, eq7_identified``,
        ``seeds``, ``seed_spread_sd_log`` (sd of log final loss between seeds of one
        cell), ``n_runs``, ``bootstrap_unit``, ``compute``. F_c for C in PFLOPs.
    """
    rows = []
    for arch, f in fits.items():
        e4, e7 = f["eq4_flops"], f["eq7"]
        ok4, ok7 = bool(e4.get("identified", True)), bool(e7.get("identified", "error" not in e7))
        notes = [n for n in (_note(e4, "eq. 4"), _note({**e7, "identified": ok7}, "eq. 7")) if n]
        if "error" in e7 and not notes:
            notes.append(f"eq. 7: {e7['error']}")
        for param, k4, k7 in (("F_c", "F", "F_c"), ("gamma_c", "gamma", "gamma_c")):

            def num(fit, key, ok, i=None):
                v = fit[key] if i is None else fit["ci"][key][i]
                return _nan(v) if ok else float("nan")

            rows.append(
                {
                    "arch": arch,
                    "param": param,
                    "eq4": num(e4, k4, ok4),
                    "eq4_lo": num(e4, k4, ok4, 0),
                    "eq4_hi": num(e4, k4, ok4, 1),
                    "eq7": num(e7, k7, ok7),
                    "eq7_lo": num(e7, k7, ok7, 0),
                    "eq7_hi": num(e7, k7, ok7, 1),
                    "eq5_fit": f["eq5_used"],
                    "note": "; ".join(notes),
                    "e_mode_note": f.get("eq5_used_reason", ""),
                    "eq4_identified": ok4,
                    "eq7_identified": ok7,
                    "seeds": " ".join(str(s) for s in f.get("seeds", [0])),
                    "seed_spread_sd_log": _nan((f.get("seed_spread") or {}).get("sd_log")),
                    "n_runs": f.get("n_runs"),
                    "bootstrap_unit": f.get("bootstrap_unit", "point"),
                    "compute": f.get("compute", "kappa"),
                }
            )
    return pd.DataFrame(rows)


# The paper's ordering of gamma_c (Table 1): unconstrained < low-order equivariant <
# high-order equivariant families; eSEN and GemNet-OC are not ordered against each other.
PAPER_GAMMA_ORDER = {"mpnn": 0, "egnn": 1, "esen": 2, "gemnet_oc": 2}


def _with_ci(row: Mapping, col: str) -> str:
    return f"{row[col]:.3g} [{row[col + '_lo']:.3g}, {row[col + '_hi']:.3g}]"


def gamma_ordering(table: pd.DataFrame) -> pd.DataFrame:
    """Order of the families' gamma_c per law, and whether their 95 % intervals separate.

    Parameters
    ----------
    table : DataFrame
        :func:`table1` output (the ``gamma_c`` rows are used).

    Returns
    -------
    DataFrame
        One row per law (``eq. 4``, ``eq. 7``) and pair of identified families:
        ``law, lower, higher`` (families by point estimate), ``lower_gamma_c,
        higher_gamma_c``, ``separated`` (the intervals do not overlap), and
        ``paper_order`` ("agrees", "reversed" or "not ordered by the paper"; only
        for the four families of the paper, otherwise "").
    """
    g = table[table["param"] == "gamma_c"]
    rows = []
    for law, col in (("eq. 4", "eq4"), ("eq. 7", "eq7")):
        ok = g[np.isfinite(g[col].to_numpy(float))].sort_values(col)
        recs = ok.to_dict("records")
        for i, lo in enumerate(recs):
            for hi in recs[i + 1 :]:
                ranks = [PAPER_GAMMA_ORDER.get(str(r["arch"])) for r in (lo, hi)]
                if None in ranks:
                    order = ""
                elif ranks[0] == ranks[1]:
                    order = "not ordered by the paper"
                else:
                    order = "agrees" if ranks[0] < ranks[1] else "reversed"
                rows.append({
                    "law": law,
                    "lower": lo["arch"],
                    "higher": hi["arch"],
                    "lower_gamma_c": _with_ci(lo, col),
                    "higher_gamma_c": _with_ci(hi, col),
                    "separated": bool(lo[col + "_hi"] < hi[col + "_lo"]),
                    "paper_order": order,
                })  # fmt: skip
    cols = ["law", "lower", "higher", "lower_gamma_c", "higher_gamma_c", "separated",
            "paper_order"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def table7(fits: Mapping[str, dict]) -> pd.DataFrame:
    """Table 7: eq. (5) parameters with 95 % intervals (the fit Table 1 uses).

    Returns
    -------
    DataFrame
        ``arch, eq5_fit, log10_A(_lo, _hi), log10_B(..), alpha(..), beta(..), E(..),
        n_boot_failed, identified, note``. When the fit is not identified its
        numbers are NaN and ``note`` says "not identified (<reason>)".
    """
    rows = []
    for arch, f in fits.items():
        used = f["eq5_used"]
        s = _used_sum_fit(f)
        ok = bool(s.get("identified", True))
        row = {"arch": arch, "eq5_fit": used}
        for name, key, tf in (
            ("log10_A", "A", np.log10),
            ("log10_B", "B", np.log10),
            ("alpha", "alpha", float),
            ("beta", "beta", float),
            ("E", "E", float),
        ):
            lo, hi = s["ci"][key]
            for col, v in ((name, s[key]), (f"{name}_lo", lo), (f"{name}_hi", hi)):
                row[col] = float(tf(_nan(v))) if ok else float("nan")
        row["n_boot_failed"] = int(s["n_boot_failed"])
        row["identified"] = ok
        row["note"] = _note(s, "eq. 5")
        rows.append(row)
    return pd.DataFrame(rows)


ALLOCATION_COLUMNS = (
    "arch", "budget_pflops", "n_opt", "n_opt_lo", "n_opt_hi", "d_opt", "d_opt_lo", "d_opt_hi",
    "loss", "loss_lo", "loss_hi", "eq5_fit", "extrapolated", "note",
)  # fmt: skip


def allocation(fits: Mapping[str, dict], budgets_pflops) -> pd.DataFrame:
    """Compute-optimal N, D and loss at given budgets, with 95 % bootstrap intervals.

    Parameters
    ----------
    fits : {label: fit dict}
        :func:`fit_arch` outputs (with eq. 5 bootstrap samples).
    budgets_pflops : float or sequence of float
        Training compute budgets in PFLOPs.

    Returns
    -------
    DataFrame
        One row per (arch, budget): ``arch, budget_pflops, n_opt, n_opt_lo, n_opt_hi,
        d_opt`` (atoms), ``d_opt_lo, d_opt_hi, loss, loss_lo, loss_hi, eq5_fit,
        extrapolated`` (budget outside the observed frontier compute range), ``note``.
        An arch whose eq. 7 is not identified gets rows with NaN numbers and
        ``note`` = "not identified (<reason>)".
    """
    budgets = np.atleast_1d(np.asarray(budgets_pflops, dtype=np.float64))
    if budgets.size == 0 or np.any(~np.isfinite(budgets)) or np.any(budgets <= 0):
        raise ValueError(f"budgets must be finite and > 0 PFLOPs, got {budgets.tolist()}")
    rows = []
    for arch, f in fits.items():
        e7 = f["eq7"]
        if "error" in e7 or not e7.get("identified", True):
            reason = e7.get("not_identified_reason") or e7.get("error")
            logger.warning("%s: no allocation: eq. 7 not identified (%s)", arch, reason)
            for c in budgets:
                rows.append({"arch": arch, "budget_pflops": float(c), "eq5_fit": f["eq5_used"],
                             "note": f"not identified ({reason})"})  # fmt: skip
            continue
        used = f["eq5_used"]
        s = _used_sum_fit(f)
        kappa = f["kappa"]
        pt = optimal_allocation(s["A"], s["B"], s["alpha"], s["beta"], kappa, budgets, E=s["E"])
        smp = _samples(s)
        bs = optimal_allocation(
            smp["A"], smp["B"], smp["alpha"], smp["beta"], kappa, budgets, E=smp["E"]
        )
        lo_c, hi_c = f["eq4_flops"]["x_range"]
        for j, c in enumerate(budgets):
            row = {"arch": arch, "budget_pflops": float(c)}
            for key in ("n_opt", "d_opt", "loss"):
                row[key] = float(np.ravel(pt[key])[j])
                col = bs[key][:, j] if smp["A"].size else np.empty(0)
                row[f"{key}_lo"], row[f"{key}_hi"] = _percentile_ci(col)
            row["eq5_fit"] = used
            row["extrapolated"] = bool(c < lo_c or c > hi_c)
            row["note"] = ""
            rows.append(row)
    return pd.DataFrame(rows, columns=ALLOCATION_COLUMNS)


def write_tables(
    fit_paths: Iterable[str | Path],
    table1_csv: str | Path | None = None,
    table7_csv: str | Path | None = None,
    allocation_csv: str | Path | None = None,
    budgets_pflops=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3),
) -> None:
    """Read fit JSONs; write whichever of table1, table7 and allocation CSVs are given."""
    fits = read_fits(fit_paths)
    for path, fn in (
        (table1_csv, lambda: table1(fits)),
        (table7_csv, lambda: table7(fits)),
        (allocation_csv, lambda: allocation(fits, budgets_pflops)),
    ):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fn().to_csv(path, index=False)
            logger.info("wrote %s", path)
