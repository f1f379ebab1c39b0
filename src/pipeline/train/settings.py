"""Settings of a training job: the ``train`` config section and one ``archs.<name>``."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.models import arch_hparams

AUGMENT_CHOICES = ("none", "always", "after_first_epoch")
# fp32: full float32 (the paper); tf32: float32 storage, TF32 matmuls and convolutions on
# CUDA (no effect on the CPU); bf16-mixed: bfloat16 autocast of the model's forward
# passes, float32 weights, optimizer and losses
PRECISION_CHOICES = ("fp32", "tf32", "bf16-mixed")
# settings of how a job runs, not of what it computes (contract 6: not rerun triggers)
RUNTIME_KEYS = ("device", "threads", "checkpoint_every_seconds")
# settings that neither change a run's result nor its checkpoint's compatibility
NOT_IN_FINGERPRINT = (*RUNTIME_KEYS, "restart_corrupt_checkpoint")


@dataclass
class TrainSettings:
    """The ``train`` section of the config (see workflow/schemas/config.schema.yaml).

    The paper's training variants are switches here: ``augment`` (random rotations of
    every training sample, section 4.5), ``epochs`` with ``eval_every_steps`` (multi-epoch
    training on a small fraction, evaluated every N optimizer steps), and
    ``symmetry_loss_rotations`` / ``symmetry_loss_weight`` (M and lambda of the symmetry
    loss of eq. 2, section 4.4). Rotations act about each molecule's centre of mass.

    ``precision`` (fp32, tf32, bf16-mixed) and ``compile`` (torch.compile of the model's
    forward, dynamic shapes) change a run's floating-point results, so both are part of
    its fingerprint; benchmarks/bench_train.py measures what compile costs and gains.
    """

    device: str = "auto"
    threads: int = 1
    seed: int = 0
    epochs: int = 1
    augment: str = "none"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    energy_weight: float = 1.0
    force_weight: float = 1.0
    num_evals: int = 16
    first_eval_fraction: float = 0.02
    shared_fraction_run: bool = False
    max_nonfinite_steps: int = 20
    restart_corrupt_checkpoint: bool = False
    checkpoint_every_seconds: float = 600.0
    max_steps: int | None = None
    symmetry_loss_rotations: int = 0
    symmetry_loss_weight: float = 1.0
    eval_every_steps: int | None = None
    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self):
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(
                f"train.precision must be one of {PRECISION_CHOICES}, got {self.precision!r}"
            )
        if self.augment not in AUGMENT_CHOICES:
            raise ValueError(
                f"train.augment must be one of {AUGMENT_CHOICES}, got {self.augment!r}"
            )
        if self.epochs < 1:
            raise ValueError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.symmetry_loss_rotations < 0:
            raise ValueError(
                f"train.symmetry_loss_rotations must be >= 0 (0 = off), got "
                f"{self.symmetry_loss_rotations}"
            )
        if self.eval_every_steps is not None and self.eval_every_steps < 1:
            raise ValueError(
                f"train.eval_every_steps must be >= 1 or null, got {self.eval_every_steps}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"train.max_steps must be >= 1 or null, got {self.max_steps}")

    @property
    def forward_passes_per_step(self) -> int:
        """Forward (and backward) passes over a batch per optimizer step: 1 + M."""
        return 1 + self.symmetry_loss_rotations

    def trajectory(self) -> dict:
        """The settings that determine a run's trajectory (its checkpoint fingerprint)."""
        return {k: v for k, v in vars(self).items() if k not in NOT_IN_FINGERPRINT}

    @classmethod
    def from_config(cls, section: dict) -> TrainSettings:
        known = set(cls.__dataclass_fields__)
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"unknown train settings: {sorted(unknown)}")
        return cls(**section)


@dataclass
class ArchSettings:
    """One ``archs.<name>`` section of the config, without its width ladder."""

    name: str
    base_width: int
    lr: float
    batch_size: int
    hparams: dict = field(default_factory=dict)
    lr_max: float | None = None  # cap on the muP learning rate (small widths)

    @classmethod
    def from_config(cls, name: str, section: dict) -> ArchSettings:
        return cls(
            name=name,
            base_width=section["base_width"],
            lr=section["lr"],
            batch_size=section["batch_size"],
            hparams=arch_hparams(section),  # archs.<name>.model travels as hparams.model
            lr_max=section.get("lr_max"),
        )
