"""The trainer's typed config: the YAML's mmpose keys read once, typos refused with their path."""

from __future__ import annotations

import copy

import pytest

from hfpose.models.config import CONFIG_DIR, ConfigError, load_config
from hfpose.training.run.run_config import TrainConfig


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_reads_into_a_train_config(path) -> None:
    config = TrainConfig.from_config(load_config(path))
    assert config.config_name == path.stem
    assert config.total_epochs > 0 and config.optimizer.lr > 0
    assert list(config.lr.step) == sorted(config.lr.step)


def test_the_shipped_models_recipe_reads_as_its_yaml_says() -> None:
    config = TrainConfig.from_config(load_config("hfpose_hf_hrnet_18_coco_256x192_lspet_mpii"))
    assert (config.optimizer.type, config.optimizer.lr, config.auto_scale_lr) == (
        "Adam",
        1e-3,
        False,
    )
    assert (config.lr.step, config.lr.warmup, config.lr.warmup_iters) == ((53, 63), "linear", 200)
    assert config.lr.warmup_ratio == 0.001 and config.total_epochs == 66
    assert (config.checkpoint.interval, config.checkpoint.max_keep_ckpts) == (8, 3)
    assert config.log.interval == 10
    assert (config.evaluation.interval, config.evaluation.metric) == (2, "PCKh")
    assert config.evaluation.save_best == "PCKh"
    assert (config.loader.samples_per_gpu, config.loader.workers_per_gpu) == (16, 1)
    assert config.loader.has_val and config.cpu_threads == 2 and config.channels_last
    assert (config.step.cumulative_iters, config.step.grad_clip) == (1, None)
    assert config.reference_global_batch == 256 and config.load_from is None
    assert config.test.flip_test and config.test.use_dark  # DARK, as the app decodes


def test_null_and_zero_mean_the_default_as_in_mmpose() -> None:
    cfg = load_config("hf_hrnet_18_coco_256x192")
    cfg["optimizer_config"]["cumulative_iters"] = None
    cfg["checkpoint_config"] = {"interval": 0, "max_keep_ckpts": None}
    cfg["lr_config"]["step"] = 3
    cfg["cpu_threads"] = None
    config = TrainConfig.from_config(cfg)
    assert config.step.cumulative_iters == 1
    assert (config.checkpoint.interval, config.checkpoint.max_keep_ckpts) == (1, -1)
    assert config.lr.step == (3,) and config.cpu_threads == 0


@pytest.mark.parametrize(
    ("section", "key", "where"),
    [
        ("lr_config", "warmup_iter", "lr_config.warmup_iter"),
        ("optimizer_config", "cumulative_iter", "optimizer_config.cumulative_iter"),
        ("checkpoint_config", "max_keep", "checkpoint_config.max_keep"),
        ("evaluation", "savebest", "evaluation.savebest"),
        ("log_config", "hooks", "log_config.hooks"),
        ("optimizer", "momentum", "optimizer.momentum"),
    ],
)
def test_an_unknown_key_of_a_trainer_section_is_refused_with_its_path(section, key, where) -> None:
    cfg = copy.deepcopy(load_config("hf_hrnet_18_coco_256x192"))
    cfg[section][key] = 1
    with pytest.raises(ConfigError, match=rf"unknown config key\(s\) {where}: the trainer reads"):
        TrainConfig.from_config(cfg)


def test_an_unknown_test_cfg_key_names_the_model_section() -> None:
    cfg = load_config("hf_hrnet_18_coco_256x192")
    cfg["model"]["test_cfg"]["flip"] = False
    with pytest.raises(ConfigError, match=r"model\.test_cfg\.flip"):
        TrainConfig.from_config(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"lr_config": {"policy": "cosine"}}, "only 'step' is supported"),
        ({"lr_config": {"warmup": "exp"}}, "not supported"),
        ({"optimizer": {"type": "SGD", "lr": 0.1}}, "supported are Adam, AdamW"),
        ({"optimizer": {"type": "Adam"}}, "no optimizer.lr"),
        ({"evaluation": [1]}, "'evaluation' must be a mapping"),
    ],
)
def test_settings_the_trainer_cannot_honour_are_refused(override, message) -> None:
    cfg = {**load_config("hf_hrnet_18_coco_256x192"), **override}
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_config(cfg)
