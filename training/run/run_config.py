"""The trainer's settings, read once from a loaded config into typed fields.

The YAML keeps mmpose 0.x's key names (``lr_config.warmup_iters``, ``optimizer_config.
cumulative_iters``, ...) so the paper's configs translate one to one; :mod:`hfpose.models.config` loads
and merges them. This module is where each setting the trainer acts on gets its type and its
default, stated once, and where a key of the trainer's own sections that it does not know is
refused with its path, so a typo is an error instead of a setting silently left at its default.
The model (``model``) and the data (``data``, ``data_cfg``, pipelines) keep their dict form:
:func:`hfpose.models.hf_hrnet.build_model` and :func:`hfpose.training.dataset.builder.build_dataset` read them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hfpose.models.config import ConfigError

# The optimisers the trainer supports (``torch.optim`` class names) and the keyword arguments
# they take from the ``optimizer`` section.
OPTIMIZERS = ("Adam", "AdamW")
_OPTIMIZER_OPTIONS = ("betas", "eps", "weight_decay", "amsgrad")


def _section(
    cfg: dict[str, Any], name: str, known: tuple[str, ...], where: str | None = None
) -> dict[str, Any]:
    """``cfg[name]`` (a mapping, or empty when absent/null) with every key checked; ``where``
    is the section's key path in messages (default ``name``)."""
    where = where or name
    values = cfg.get(name) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"config key {where!r} must be a mapping, got {type(values).__name__}")
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(f'{where}.{key}' for key in unknown)}: the "
            f"trainer reads {', '.join(f'{where}.{key}' for key in known)}"
        )
    return values


def _known(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _int(value: Any, default: int) -> int:
    """mmpose configs write ``null`` or ``0`` for "the default" in several places."""
    return int(value) if value else default


@dataclass(frozen=True)
class OptimizerConfig:
    """``optimizer``: Adam or AdamW, its learning rate (before linear scaling) and options."""

    lr: float
    type: str = "Adam"
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> OptimizerConfig:
        values = dict(_section(cfg, "optimizer", ("type", "lr", *_OPTIMIZER_OPTIONS)))
        if "lr" not in values:
            raise ConfigError("config has no optimizer.lr")
        kind = str(values.pop("type", "Adam"))
        if kind not in OPTIMIZERS:
            raise ConfigError(f"optimizer.type {kind!r}: supported are {', '.join(OPTIMIZERS)}")
        return cls(float(values.pop("lr")), kind, values)


@dataclass(frozen=True)
class StepConfig:
    """``optimizer_config``: gradient clipping (``clip_grad_norm_`` arguments) and accumulation."""

    grad_clip: dict[str, Any] | None = None
    cumulative_iters: int = 1

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> StepConfig:
        values = _section(cfg, "optimizer_config", _known(cls))
        return cls(values.get("grad_clip") or None, _int(values.get("cumulative_iters"), 1))


@dataclass(frozen=True)
class LrConfig:
    """``lr_config``: mmcv's ``policy: step`` (x ``gamma`` at each epoch of ``step``) with an
    optional linear warm-up over the first ``warmup_iters`` iterations."""

    policy: str = "step"
    step: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup: str | None = None
    warmup_iters: int = 0
    warmup_ratio: float = 0.1

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> LrConfig:
        values = _section(cfg, "lr_config", _known(cls))
        policy = values.get("policy", "step")
        if policy != "step":
            raise ConfigError(f"lr_config.policy {policy!r}: only 'step' is supported")
        warmup = values.get("warmup")
        if warmup not in (None, "linear"):
            raise ConfigError(f"lr_config.warmup {warmup!r} is not supported (linear or null)")
        steps = values.get("step", [])
        steps = [steps] if isinstance(steps, int) else list(steps)
        return cls(
            policy,
            tuple(sorted(int(s) for s in steps)),
            float(values.get("gamma", 0.1)),
            warmup,
            int(values.get("warmup_iters", 0)) if warmup else 0,
            float(values.get("warmup_ratio", 0.1)),
        )


@dataclass(frozen=True)
class CheckpointConfig:
    """``checkpoint_config``: keep ``epoch_N.pth`` every ``interval`` epochs, the newest
    ``max_keep_ckpts`` of them (-1 keeps all; ``latest.pth``/``best.pth`` are always kept)."""

    interval: int = 1
    max_keep_ckpts: int = -1

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> CheckpointConfig:
        values = _section(cfg, "checkpoint_config", _known(cls))
        return cls(_int(values.get("interval"), 1), _int(values.get("max_keep_ckpts"), -1))


@dataclass(frozen=True)
class LogConfig:
    """``log_config``: a row in ``log.csv`` every ``interval`` steps (and at each epoch's end)."""

    interval: int = 50

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> LogConfig:
        values = _section(cfg, "log_config", _known(cls))
        return cls(_int(values.get("interval"), 50))


@dataclass(frozen=True)
class EvaluationConfig:
    """``evaluation``: validate every ``interval`` epochs (0: never) with ``metric``; keep the
    checkpoint with the highest ``save_best`` value as ``best.pth``."""

    interval: int = 0
    metric: str = "mAP"
    save_best: str | None = None

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> EvaluationConfig:
        values = _section(cfg, "evaluation", _known(cls))
        return cls(
            _int(values.get("interval"), 0),
            str(values.get("metric", "mAP")),
            values.get("save_best") or None,
        )


@dataclass(frozen=True)
class LoaderConfig:
    """What the trainer's data loaders take from ``data`` (the entries are the datasets')."""

    samples_per_gpu: int
    workers_per_gpu: int = 2
    shuffle: bool = True
    val_samples_per_gpu: int = 32
    has_val: bool = False

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> LoaderConfig:
        data = cfg.get("data") or {}
        if "samples_per_gpu" not in data:
            raise ConfigError("config has no data.samples_per_gpu")
        return cls(
            int(data["samples_per_gpu"]),
            int(data.get("workers_per_gpu", 2)),
            bool(data.get("shuffle", True)),
            int((data.get("val_dataloader") or {}).get("samples_per_gpu", 32)),
            "val" in data,
        )


@dataclass(frozen=True)
class TestConfig:
    """``model.test_cfg``: how validation decodes heatmaps (flip test, shift, DARK)."""

    flip_test: bool = True
    shift_heatmap: bool = True
    post_process: str = "default"

    @property
    def use_dark(self) -> bool:
        return self.post_process == "unbiased"

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TestConfig:
        # modulate_kernel: the paper's configs set mmpose's DARK blur kernel; decoding here
        # (hfpose.models.processing.decode_heatmaps) needs none, so it is accepted and not used.
        known = (*_known(cls), "modulate_kernel")
        values = _section(cfg.get("model") or {}, "test_cfg", known, "model.test_cfg")
        return cls(
            bool(values.get("flip_test", True)),
            bool(values.get("shift_heatmap", True)),
            str(values.get("post_process", "default")),
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything the trainer reads from a config, built once by :meth:`from_config`.

    ``raw`` is the loaded config itself: the model and datasets are built from it, and each
    checkpoint records it (``meta.config``) as before.
    """

    raw: dict[str, Any]
    total_epochs: int
    optimizer: OptimizerConfig
    loader: LoaderConfig
    config_name: str | None = None
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    cpu_threads: int = 0
    compile: bool = False
    auto_scale_lr: bool = True
    reference_global_batch: int | None = None
    load_from: str | None = None
    step: StepConfig = StepConfig()
    lr: LrConfig = LrConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    test: TestConfig = TestConfig()

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TrainConfig:
        """Typed settings of a config loaded by :func:`hfpose.models.config.load_config`."""
        if "total_epochs" not in cfg:
            raise ConfigError("config has no total_epochs")
        reference = cfg.get("reference_global_batch")
        return cls(
            raw=cfg,
            total_epochs=int(cfg["total_epochs"]),
            optimizer=OptimizerConfig.from_config(cfg),
            loader=LoaderConfig.from_config(cfg),
            config_name=cfg.get("config_name"),
            seed=int(cfg.get("seed", 0)),
            device=str(cfg.get("device", "auto")),
            amp=str(cfg.get("amp", "auto")),
            channels_last=bool(cfg.get("channels_last", True)),
            cpu_threads=_int(cfg.get("cpu_threads"), 0),
            compile=bool(cfg.get("compile")),
            auto_scale_lr=bool(cfg.get("auto_scale_lr", True)),
            reference_global_batch=int(reference) if reference else None,
            load_from=cfg.get("load_from") or None,
            step=StepConfig.from_config(cfg),
            lr=LrConfig.from_config(cfg),
            checkpoint=CheckpointConfig.from_config(cfg),
            log=LogConfig.from_config(cfg),
            evaluation=EvaluationConfig.from_config(cfg),
            test=TestConfig.from_config(cfg),
        )
