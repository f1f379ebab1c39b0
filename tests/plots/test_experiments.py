"""Experiment figures (4, 7-16): each writes a PDF from small synthetic runs; helpers are exact."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.plots import experiments as ex
from pipeline.scaling import load_curves
from pipeline.scaling.frontier import pareto_frontier
from pipeline.scaling.synthetic import write_synthetic_runs

N_BOOT = 8


def _is_pdf(path):
    data = path.read_bytes()
    return data.startswith(b"%PDF") and len(data) > 2000


def _runs(root, arch, *, alpha=0.3, beta=0.3, A=10**1.4, B=10**2.2, seed=0, n=(1e4, 1e5, 1e6)):
    return write_synthetic_runs(
        root, arch, n_params=n, fractions=(0.2, 1.0), A=A, B=B, alpha=alpha, beta=beta,
        d_max=1e8, n_evals=10, seed=seed,
    )  # fmt: skip


def _with_meta(dirs, **fields):
    """Add training settings (lr, batch_size, hparams) to synthetic meta.json files."""
    for i, rd in enumerate(dirs):
        meta = json.loads((rd / "meta.json").read_text())
        for k, v in fields.items():
            meta[k] = v(i) if callable(v) else v
        (rd / "meta.json").write_text(json.dumps(meta))
    return dirs


@pytest.fixture(scope="module")
def arms(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    slow = load_curves(_runs(root / "a", "mpnn", alpha=0.28, beta=0.31, seed=1))
    fast = load_curves(_runs(root / "b", "esen", alpha=0.8, beta=0.75, A=10**3.7, B=10**5,
                             seed=2))  # fmt: skip
    return {"slow": slow, "fast": fast}


def test_load_runs_with_meta_and_final_losses(tmp_path):
    dirs = _runs(tmp_path, "mpnn")
    hp = {"vector_channels": 2, "radial": "g"}
    _with_meta(dirs, lr=lambda i: 1e-3 * (i + 1), batch_size=lambda i: 16 * (1 + i % 2),
               hparams=lambda i: {"num_layers": 3 + i, **hp})  # fmt: skip
    curves = ex.load_runs_with_meta(dirs)
    assert len(curves) == len(load_curves(dirs))
    last = ex.final_losses(curves)
    assert len(last) == len(dirs)
    for i, rd in enumerate(dirs):
        row = last[last["run"] == str(rd)].iloc[0]
        curve = pd.read_csv(rd / "curve.csv")
        assert row["val_loss"] == pytest.approx(curve["val_loss"].iloc[-1])
        assert row["lr"] == pytest.approx(1e-3 * (i + 1))
        assert row["batch_size"] == 16 * (1 + i % 2)
        assert row["depth"] == 3 + i
        assert row["hp_radial"] == "g"
    assert np.isnan(last["lmax"]).all()


def test_load_runs_with_meta_names_missing_key(tmp_path):
    dirs = _runs(tmp_path, "mpnn", n=(1e4,))
    with pytest.raises(ValueError, match=r"meta.json: missing key\(s\) \['lr', 'batch_size'\]"):
        ex.load_runs_with_meta(dirs)


def test_frontier_fit_recovers_gamma_and_scales_compute(arms):
    c = arms["fast"]
    fr, fit = ex.frontier_fit(c, 10.0, label="fast", n_boot=N_BOOT)
    ref = pareto_frontier(c.assign(variant="x"), 10.0)
    np.testing.assert_allclose(fr["compute_pflops"], ref["compute_pflops"])
    assert fit is not None and 0.2 < fit["gamma"] < 0.8
    fr6, fit6 = ex.frontier_fit(c, 10.0, label="fast", n_boot=0, compute_factor=6.0)
    np.testing.assert_allclose(fr6["compute_pflops"], 6 * fr["compute_pflops"])
    # a rightward shift by 6x leaves gamma unchanged and scales F by 6**gamma
    assert fit6["gamma"] == pytest.approx(fit["gamma"], rel=1e-4)
    assert fit6["F"] == pytest.approx(fit["F"] * 6 ** fit["gamma"], rel=1e-3)


def test_trend_break_finds_the_departure():
    x = np.geomspace(1e-3, 1e3, 25)
    y = 0.9 * x**-0.15
    y[x > 10] *= (x[x > 10] / 10) ** 0.2  # loss stops falling: overfitting
    tb = ex.trend_break(pd.DataFrame({"compute_pflops": x, "val_loss": y,
                                      "epoch": np.arange(25)}))  # fmt: skip
    assert tb["fit"]["gamma"] == pytest.approx(0.15, rel=1e-3)
    assert 10 < tb["break_x"] < 100
    assert tb["break_epoch"] == int(np.flatnonzero(x == tb["break_x"])[0])
    clean = ex.trend_break(pd.DataFrame({"compute_pflops": x, "val_loss": 0.9 * x**-0.15}))
    assert clean["break_x"] is None


def test_estimate_floor_recovers_offset():
    n = np.geomspace(1e4, 1e7, 8)
    groups = [(n, 0.2 + 30 * n**-0.4), (n, 0.2 + 25 * n**-0.4)]
    assert ex.estimate_floor(groups) == pytest.approx(0.2, rel=1e-3)
    assert ex.estimate_floor([(n[:2], 1 + n[:2] ** -0.4)]) == 0.0


def test_fig4_9_12(arms, tmp_path):
    by = {"eSEN lmax=2": arms["slow"], "eSEN lmax=4": arms["fast"]}
    kap = {"eSEN lmax=2": 20.0, "eSEN lmax=4": 40.0}
    assert _is_pdf(ex.plot_fig4(by, kap, tmp_path / "f4.pdf", n_boot=N_BOOT))
    # kappa keyed by arch works too
    by9 = {"MPNN + aug": arms["slow"], "eSEN": arms["fast"]}
    kap9 = {"mpnn": 2.0, "esen": 40.0}
    assert _is_pdf(ex.plot_fig9(by9, kap9, tmp_path / "f9.pdf", n_boot=N_BOOT))
    assert _is_pdf(ex.plot_fig12(by9, kap9, tmp_path / "f12.pdf", n_boot=N_BOOT))
    with pytest.raises(ValueError, match="no kappa for 'eSEN'"):
        ex.plot_fig9(by9, {"mpnn": 2.0}, tmp_path / "x.pdf", n_boot=0)


def test_fig7(arms, tmp_path):
    p = ex.plot_fig7(arms["slow"], arms["fast"], 2.0, tmp_path / "f7.pdf", n_boot=N_BOOT)
    assert _is_pdf(p)


def test_fig8(tmp_path):
    rows = []
    for k, n in enumerate((1e4, 1e5, 1e6)):
        for aug in (False, True):
            epochs = np.arange(1, 41)
            atoms = epochs * 1e6
            loss = 30 * n**-0.3 + 200 * atoms**-0.3
            if not aug:
                loss = loss * np.where(epochs > 8, (epochs / 8) ** 0.15, 1.0)
            rows.append(pd.DataFrame({
                "run": f"{k}{aug}", "arch": "mpnn", "variant": "aug" if aug else "base",
                "width": k, "fraction": 0.01, "n_params": int(n), "step": epochs * 10,
                "epoch": epochs, "atoms_seen": atoms, "val_loss": loss,
                "train_seconds": atoms * 1e-6, "eval_seconds": 1.0,
            }))  # fmt: skip
    c = pd.concat(rows, ignore_index=True)
    c["hours"] = (c["train_seconds"] + c["eval_seconds"]) / 3600
    no_aug, aug = c[c["variant"] == "base"], c[c["variant"] == "aug"]
    assert _is_pdf(ex.plot_fig8(no_aug, aug, 2.0, tmp_path / "f8.pdf", n_boot=N_BOOT))


def test_fig10(tmp_path):
    grid = pd.DataFrame(
        [{"arch": a, "batch_size": b, "lr": lr, "val_loss": 0.1 + (np.log10(lr) + 3) ** 2 / b}
         for a in ("mpnn", "egnn") for b in (32, 64, 128) for lr in (1e-4, 1e-3, 1e-2)]
    )  # fmt: skip
    sweep = pd.DataFrame(
        [{"arch": a, "depth": d, "width": 1000 // d, "n_params": 1e6, "val_loss": 0.2 + d / 100}
         for a in ("mpnn", "egnn") for d in (2, 4, 8)]
    )  # fmt: skip
    assert _is_pdf(ex.plot_fig10(grid, sweep, tmp_path / "f10.pdf"))
    with pytest.raises(ValueError, match=r"fig 10 grid: missing column\(s\) \['lr'\]"):
        ex.plot_fig10(grid.drop(columns="lr"), sweep, tmp_path / "x.pdf")


def test_fig11(tmp_path):
    dirs = _runs(tmp_path, "egnn", n=(1e4, 1e5, 1e6))
    _with_meta(dirs, lr=1e-3, batch_size=16, hparams=lambda i: {"vector_channels": 2 ** (i // 2)})
    curves = ex.load_runs_with_meta(dirs)
    assert _is_pdf(ex.plot_fig11(curves, tmp_path / "f11.pdf"))
    with pytest.raises(ValueError, match="no hparams.vector_channels"):
        ex.plot_fig11(curves.assign(vector_channels=np.nan), tmp_path / "x.pdf")


def test_fig13(tmp_path):
    n = np.array([1e5, 3e5, 1e6, 3e6, 1e7])
    rows = [{"arch": "mpnn", "width": int(w), "n_params": w, "num_rotations": m,
             "val_loss": 0.22 + 30 * w**-0.4 * (1 - 0.05 * (1 - 1 / m))}
            for w in n for m in (1, 2, 4, 8, 16, 32)]  # fmt: skip
    tta = pd.DataFrame(rows)
    assert _is_pdf(ex.plot_fig13(tta, tmp_path / "f13.pdf", n_boot=N_BOOT))
    assert _is_pdf(ex.plot_fig13(tta, tmp_path / "f13b.pdf", L_D=0.2, n_boot=N_BOOT))
    with pytest.raises(ValueError, match="not below every"):
        ex.plot_fig13(tta, tmp_path / "x.pdf", L_D=0.3, n_boot=0)
    with pytest.raises(ValueError, match="num_rotations == 1"):
        ex.plot_fig13(tta[tta["num_rotations"] > 1], tmp_path / "x.pdf", n_boot=0)


def test_fig14_15_16(arms, tmp_path):
    both = pd.concat([arms["slow"], arms["fast"]], ignore_index=True)
    assert _is_pdf(ex.plot_fig14(both, tmp_path / "f14.pdf"))
    assert _is_pdf(ex.plot_fig15(arms["fast"], arms["slow"], tmp_path / "f15.pdf"))
    assert _is_pdf(ex.plot_fig16(arms["slow"], tmp_path / "f16.pdf"))
    with pytest.raises(ValueError, match="fig 14"):
        ex.plot_fig14(both.drop(columns="val_force_loss"), tmp_path / "x.pdf")


def test_load_runs_with_meta_rejects_non_numeric_depth(tmp_path):
    dirs = _with_meta(_runs(tmp_path, "mpnn", n=(1e4,)), lr=1e-3, batch_size=8,
                      hparams={"num_layers": "five"})  # fmt: skip
    with pytest.raises(ValueError, match=r"meta.json: hparams.num_layers must be a number"):
        ex.load_runs_with_meta(dirs)


def test_make_wrappers_read_run_folders_and_kappa_csv(tmp_path):
    a = _with_meta(_runs(tmp_path / "a", "mpnn", n=(1e4, 1e5)), lr=1e-3, batch_size=16,
                   hparams=lambda i: {"num_layers": 2 + i})  # fmt: skip
    b = _with_meta(_runs(tmp_path / "b", "esen", n=(1e4, 1e5), alpha=0.8, beta=0.75, seed=3),
                   lr=1e-3, batch_size=32, hparams={"num_layers": 4})  # fmt: skip
    kappa_csv = tmp_path / "kappa.csv"
    pd.DataFrame({"arch": ["mpnn", "esen"], "kappa": [2.0, 40.0]}).to_csv(kappa_csv, index=False)
    out = tmp_path / "out"
    assert _is_pdf(ex.make_fig4({"A": a, "B": b}, kappa_csv, out / "f4.pdf", n_boot=0))
    assert _is_pdf(ex.make_fig8(a, a, kappa_csv, out / "f8.pdf", n_boot=0))
    assert _is_pdf(ex.make_fig10(a + b, a + b, out / "f10.pdf"))
    assert _is_pdf(ex.make_fig14(a + b, out / "f14.pdf"))
    assert _is_pdf(ex.make_fig16(b, out / "f16.pdf"))
    with pytest.raises(ValueError, match="no kappa for arch 'egnn'"):
        ex.make_fig8(a, a, kappa_csv, out / "x.pdf", arch="egnn")
    tta = pd.DataFrame({"arch": "mpnn", "width": 1, "n_params": [1e5, 1e6, 1e7] * 2,
                        "num_rotations": [1] * 3 + [8] * 3,
                        "val_loss": [0.5, 0.4, 0.35, 0.49, 0.39, 0.34]})  # fmt: skip
    tta.to_csv(tmp_path / "tta.csv", index=False)
    assert _is_pdf(ex.make_fig13([tmp_path / "tta.csv"], out / "f13.pdf", L_D=0.3, n_boot=0))
