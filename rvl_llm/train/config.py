"""TrainConfig: every setting of the train stage, once, checked on construction.

Defaults follow the old ``train.py`` (flag names users know). Two fields default to the preset
(``lr``, ``trainable``): ``None`` means "not given"; :func:`with_preset_defaults` fills them in
once, before anything else reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.config import DEFAULT_CACHE_DIR, DEFAULT_RESPONSE_TEMPLATE, PrepareConfig
from rvl_llm.presets import TRAINABLE_MODES, Preset

SAVE_CHOICES = ("never", "end", "epoch")
REPORT_TO = ("none", "wandb", "tensorboard")
MIXED_PRECISION = ("fp16", "bf16", "auto")
DEFAULT_LR = 1e-4
DEFAULT_TRAINABLE = "qlora"
BARE_FLAG = ""  # --set-pad-token given without a value


@dataclass(frozen=True)
class TrainConfig:
    data_dir: Path  # folder of OCR JSON files (as prepare)
    name: str  # run name: the run lives in log_dir / name
    model: str  # preset name, local folder or hub id
    generative: bool = False  # complete " class name" + EOS instead of a classifier head
    max_len: int = 512  # tokens per document row, specials and completion included
    # None: keep the tokenizer's pad token (or pick one if it has none); BARE_FLAG: pick one
    # (the preset's, else unk, else eos) even if it has one; else that token.
    set_pad_token: str | None = None
    split_model: bool = False  # device_map="auto": layers spread over the visible GPUs
    lr: float | None = None  # None: the preset's learning_rate, else DEFAULT_LR
    batch_size: int = 8  # documents per device and step
    num_epochs: int = 10
    weight_decay: float = 0.1
    lora_rank: int = 4
    lora_alpha: int = 8
    lora_dropout: float = 0.2
    trainable: str | None = None  # classifier | lora | qlora | full; None: the preset's
    mixed_precision: str | None = None  # fp16 | bf16 | auto; None: fp32 training
    save: str = "epoch"  # never: only final/; end: one checkpoint at the end; epoch: each epoch
    unsloth: bool = False
    response_template: str = DEFAULT_RESPONSE_TEMPLATE
    seed: int = 1234
    gradient_accumulation: int = 1  # micro-batches per optimiser step
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory
    resume: bool = False  # continue from the newest checkpoint in log_dir / name
    overwrite: bool = False  # replace a finished run of the same name
    report_to: str = "none"
    cache_dir: Path = DEFAULT_CACHE_DIR
    labels_file: Path | None = None
    log_dir: Path = Path("log")
    trust_remote_code: bool = False
    prefix_train: str = "train_"
    prefix_validation: str = "validation_"
    prefix_test: str = "test_"
    suffix: str = "_aws"

    def __post_init__(self) -> None:
        positive = {
            "--batch-size": self.batch_size,
            "--num-epochs": self.num_epochs,
            "--max-len": self.max_len,
            "--lora-rank": self.lora_rank,
            "--gradient-accumulation": self.gradient_accumulation,
        }
        for option, value in positive.items():
            if value < 1:
                raise RvlError(f"{option} {value}: must be a positive whole number")
        if self.lr is not None and not self.lr > 0:
            raise RvlError(f"--lr {self.lr}: must be a positive number")
        if self.weight_decay < 0:
            raise RvlError(f"--weight-decay {self.weight_decay}: must not be negative")
        if not 0 <= self.lora_dropout < 1:
            raise RvlError(f"--lora-dropout {self.lora_dropout}: must be in [0, 1)")
        if not self.name or Path(self.name).name != self.name or self.name in (".", ".."):
            raise RvlError(f"--name {self.name!r}: must be a plain folder name (no '/')")
        choices = (
            ("--trainable", self.trainable, (None, *TRAINABLE_MODES)),
            ("--mixed-precision", self.mixed_precision, (None, *MIXED_PRECISION)),
            ("--save", self.save, SAVE_CHOICES),
            ("--report-to", self.report_to, REPORT_TO),
        )
        for option, value, allowed in choices:
            if value not in allowed:
                shown = ", ".join(a for a in allowed if a is not None)
                raise RvlError(f"{option} {value}: choose from {shown}")
        if self.trainable == "classifier" and self.generative:
            raise RvlError(
                "--trainable classifier: trains a classification head only and cannot be "
                "combined with --generative (use lora, qlora or full)"
            )
        if self.resume and self.overwrite:
            raise RvlError("--resume and --overwrite: choose one (continue the run or replace it)")
        if self.generative and not self.response_template.strip():
            raise RvlError("--response-template: must not be empty in generative mode")

    @property
    def mode(self) -> str:
        return "generative" if self.generative else "classifier"

    @property
    def run_dir(self) -> Path:
        return self.log_dir / self.name

    def prepare_config(self) -> PrepareConfig:
        """The prepare settings these flags mean; train needs the train and validation splits."""
        return PrepareConfig(
            data_dir=self.data_dir,
            model=self.model,
            max_len=self.max_len,
            generative=self.generative,
            response_template=self.response_template,
            splits=("train", "validation"),
            prefix_train=self.prefix_train,
            prefix_validation=self.prefix_validation,
            prefix_test=self.prefix_test,
            suffix=self.suffix,
            labels_file=self.labels_file,
            cache_dir=self.cache_dir,
            trust_remote_code=self.trust_remote_code,
        )


def with_preset_defaults(cfg: TrainConfig, preset: Preset | None) -> TrainConfig:
    """``cfg`` with the values the user left to the preset filled in (checked again)."""
    lr = cfg.lr
    if lr is None:
        lr = preset.learning_rate if preset and preset.learning_rate else DEFAULT_LR
    trainable = cfg.trainable or (preset.trainable if preset else DEFAULT_TRAINABLE)
    if cfg.trainable is None and trainable == "classifier" and cfg.generative:
        trainable = DEFAULT_TRAINABLE  # a classifier preset says nothing about generative runs
    return replace(cfg, lr=lr, trainable=trainable)
