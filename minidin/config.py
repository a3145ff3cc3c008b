"""Every hyperparameter once: its default, its allowed values and its help.

``ModelConfig`` holds the architecture, ``TrainConfig`` the architecture (without
the vocabulary sizes, which come from the data) plus the optimizer and the run.
Both are built from the field specs below, and so are the model constructors'
checks, the checkpoint's ``model_config`` and the ``minidin train`` options
(``add_options``): a default or a choice is written here and nowhere else.

This module imports no Numba kernel, so ``minidin --help`` stays fast.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
from dataclasses import dataclass, field, fields

ACTIVATIONS = ("dice", "prelu", "sigmoid")
REGS = ("none", "l2", "mba")  # embedding regularization (the optimizers take the same names)
# The training settings the built-in synthetic data's protocol recommends (minidin.data.SYNTHETIC_TRAIN), which
# `minidin train` / `minidin tune` use on the synthetic data in place of the defaults (an option given on the
# command line or in --config still wins). The defaults are chosen for real logs (docs/training.md); this data
# set is small and dense (50,000 training samples over 500 goods, each good a candidate ~100 times per epoch),
# and at the defaults' batch 32 it overfits from the third epoch (test GAUC 0.870, against 0.875 with these).
SYNTHETIC_TRAIN = {"batch_size": 256, "lr": 0.2, "lr_decay": 0.7, "lr_warmup": 0, "adagrad_init": 0.1,
                   "reg": "none", "patience": 2, "goods_bias": False}
MAX_ROWS = 2**31 - 1  # a vocabulary larger than this is a mistake, not a table to allocate
MAX_WIDTH = 65536  # the widest embedding or layer accepted


# ---------------------------------------------------------------------------- value checks
def _integer(name, v, lo, hi=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(v).__name__} {v!r}")
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name}: must be in [{lo}, {hi}], got {v}" if hi is not None else
                         f"{name}: must be at least {lo}, got {v}")
    return int(v)


def check_real(name, v, lo=None, hi=None, lo_open=False):
    """A finite real number in [lo, hi] (lo excluded when lo_open), as a float; TypeError or ValueError names
    the field. Every config field and optimizer argument that is a real number is checked by it."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__} {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be a finite number, got {v}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{name}: must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
    if hi is not None and v > hi:
        raise ValueError(f"{name}: must be <= {hi:g}, got {v:g}")
    return v


def _flag(name, v):
    if type(v).__name__ == "bool_":  # numpy's bool
        v = bool(v)
    if not isinstance(v, bool):
        raise TypeError(f"{name}: expected True or False, got {type(v).__name__} {v!r}")
    return v


def _units(name, v):
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise TypeError(f"{name}: expected a sequence of layer sizes like (80, 40), got {v!r}")
    units = tuple(_integer(f"{name}[{i}]", u, 1, MAX_WIDTH) for i, u in enumerate(v))
    if not units:
        raise ValueError(f"{name}: needs at least one layer")
    return units


def _choice(name, v, choices):
    if v not in choices:
        raise ValueError(f"{name}: must be one of {', '.join(map(str, choices))}; got {v!r}")
    return v


_NAME = __import__("re").compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
FIELD_KINDS = ("item", "user", "context")
RESERVED_FIELDS = ("goods", "cate", "item", "user", "label", "time")  # DIN's own inputs and the schema's keys


@dataclass(frozen=True)
class FieldSpec:
    """One categorical feature field of a schema, besides DIN's goods and category ids.

    name:      identifier; its table is ``<name>_emb``
    kind:      item (an attribute of every behaviour and of the candidate, concatenated onto their
               embeddings: D grows by ``dim``), user (the profile, one per sample) or context (per sample)
    vocab:     ids 0 .. vocab-1
    dim:       embedding width
    multi_hot: a set of ids per row (pooled by ``pooling``; an empty set pools to zeros), else exactly one id
    pooling:   sum or mean, for a multi-hot field
    """

    name: str
    kind: str
    vocab: int
    dim: int
    multi_hot: bool = False
    pooling: str = "mean"

    def __post_init__(self):
        where = f"fields[{self.name!r}]"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"fields: a field name must be an identifier (letters, digits, _), got {self.name!r}")
        if self.name in RESERVED_FIELDS:
            raise ValueError(f"{where}: the name is reserved ({', '.join(RESERVED_FIELDS)})")
        _choice(f"{where}.kind", self.kind, FIELD_KINDS)
        object.__setattr__(self, "vocab", _integer(f"{where}.vocab", self.vocab, 1, MAX_ROWS))
        object.__setattr__(self, "dim", _integer(f"{where}.dim", self.dim, 1, MAX_WIDTH))
        object.__setattr__(self, "multi_hot", _flag(f"{where}.multi_hot", self.multi_hot))
        _choice(f"{where}.pooling", self.pooling, ("sum", "mean"))

    @property
    def table(self) -> str:
        return f"{self.name}_emb"


def _fields(name, v):
    """A tuple of FieldSpec (from FieldSpecs or their JSON objects), names unique."""
    if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__iter__"):
        raise TypeError(f"{name}: expected a sequence of FieldSpec, got {type(v).__name__}")
    out = []
    for f in v:
        if isinstance(f, dict):
            unknown = set(f) - {x.name for x in fields(FieldSpec)}
            if unknown:
                raise ValueError(f"{name}: unknown key(s) {', '.join(sorted(unknown))} in {f!r}")
            try:
                f = FieldSpec(**f)
            except TypeError as e:
                raise TypeError(f"{name}: {e}") from None
        if not isinstance(f, FieldSpec):
            raise TypeError(f"{name}: expected FieldSpec entries, got {type(f).__name__}")
        if any(g.name == f.name for g in out):
            raise ValueError(f"{name}: field {f.name!r} is declared twice")
        out.append(f)
    return tuple(out)


def _dtype(name, v):
    return getattr(v, "__name__", None) or str(v)  # np.float32 (a type), np.dtype('float32') or 'float32'



# ---------------------------------------------------------------------------- field specs
def option(default, help, check=None, choices=None, cli="auto", metavar=None, group="model"):
    """A dataclass field carrying its help text, its allowed values (``choices``, or a ``check``: value ->
    normalised value, or a ValueError / TypeError naming the field) and how the CLI spells it (``cli``:
    "auto", None for no option, or for a switch that is on by default the help of its --no-NAME)."""
    if choices is not None:
        check = (lambda n, v, c=tuple(choices), inner=check: _choice(n, v if inner is None else inner(n, v), c))
    return field(default=default, metadata={"help": help, "check": check, "choices": choices, "cli": cli,
                                            "metavar": metavar, "group": group})


def _to_json(cfg) -> dict:
    """A config as a JSON object (layer-size tuples as lists); ModelConfig and TrainConfig alike."""
    d = dataclasses.asdict(cfg)
    d["attention_units"], d["hidden_units"] = list(cfg.attention_units), list(cfg.hidden_units)
    if "fields" in d:
        d["fields"] = [dataclasses.asdict(f) for f in cfg.fields]
    return d


def _check_fields(obj, names=None):
    """Run every field's check (in place on a mutable dataclass, via object.__setattr__ on a frozen one)."""
    for f in fields(obj):
        if names is not None and f.name not in names:
            continue
        check = f.metadata.get("check")
        if check is not None:
            object.__setattr__(obj, f.name, check(f.name, getattr(obj, f.name)))


def _vocab(name, v):
    return _integer(name, v, 1, MAX_ROWS)


def _width(name, v):
    return _integer(name, v, 1, MAX_WIDTH)


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of DIN or the BaseModel; validated once, when it is made.

    ``minidin.DIN(...)`` and ``minidin.BaseModel(...)`` build one from their keyword
    arguments; checkpoints store ``to_json()`` and load it back field for field.
    """

    n_goods: int = option(None, "goods vocabulary size (ids 0 .. n_goods-1; no padding id)", _vocab, cli=None)
    n_cates: int = option(None, "category vocabulary size", _vocab, cli=None)
    model: str = option("din", "din: attention-weighted pooling (paper §4.3); base: the BaseModel's fixed "
                        "pooling (Fig. 2, left)", choices=("din", "base"))
    pooling: str = option("sum", "BaseModel pooling: sum (the paper) or mean (the official code's base model)",
                          choices=("sum", "mean"))
    goods_dim: int = option(64, "goods embedding width", _width)
    cate_dim: int = option(64, "category embedding width; D = goods_dim + cate_dim (+ the item fields' widths)",
                           _width)
    fields: tuple = option((), "feature fields besides goods and category (FieldSpec: item attributes, user "
                           "profile, context); from the data's schema", _fields, cli=None)
    attention_units: tuple = option((80, 40), "hidden sizes of DIN's local activation unit", _units,
                                    metavar="A1,A2,...")
    attention_activation: str | None = option(None, "attention MLP activation (default: same as --activation)",
                                              choices=(None,) + ACTIVATIONS)
    attention_softmax: bool = option(False, "normalise attention scores / sqrt(D) with a softmax per history "
                                     "(the official code; the paper keeps raw weights)", _flag)
    attention_split: bool = option(True, "DIN's first attention layer as q·(Wq+Wd) once per sample plus "
                                   "[k, q⊙k]·[Wk−Wd; Wp] (half the multiply-adds)", _flag,
                                   cli="compute DIN's first attention layer the clear way, on the (N, 4D) input "
                                       "[q, k, q−k, q⊙k] (same function and parameters as the default split "
                                       "path, twice the multiply-adds)")
    hidden_units: tuple = option((200, 80), "hidden sizes of the main MLP", _units, metavar="H1,H2,...")
    activation: str = option("dice", "main MLP activation", choices=ACTIVATIONS)
    dice_momentum: float = option(0.1, "momentum of Dice's running mean and variance, in [0, 1]",
                                  lambda n, v: check_real(n, v, 0.0, 1.0))
    dice_eps: float = option(1e-8, "Dice's epsilon, added to the batch variance (> 0)",
                             lambda n, v: check_real(n, v, 0.0, lo_open=True))
    emb_std: float = option(0.1, "std of the N(0, std²) embedding initialisation, at most 100 (wider overflows "
                            "float32 in the first layers)", lambda n, v: check_real(n, v, 0.0, 100.0))
    goods_bias: bool = option(True, "add a learned per-goods bias to the logit (the official code's item_b)",
                              _flag)
    dtype: str = option("float32", "floating-point type of parameters and arithmetic", _dtype,
                        choices=("float32", "float64"))
    seed: int = option(0, "model initialisation seed (and, in training, the shuffling seed)",
                       lambda n, v: _integer(n, v, 0), group="run")

    def __post_init__(self):
        if self.n_goods is None or self.n_cates is None:
            raise TypeError("ModelConfig: n_goods and n_cates are required")
        _check_fields(self)

    @property
    def uses_attention(self) -> bool:
        return self.model == "din"

    @property
    def att_activation(self) -> str:
        """The attention MLP's activation, resolved (None follows ``activation``)."""
        return self.activation if self.attention_activation is None else self.attention_activation

    @property
    def D(self) -> int:
        """Width of one behaviour / candidate embedding: goods, category and every item field, concatenated."""
        return self.goods_dim + self.cate_dim + sum(f.dim for f in self.fields if f.kind == "item")

    def fields_of(self, kind) -> tuple:
        """The fields of one kind (item / user / context), in schema order."""
        return tuple(f for f in self.fields if f.kind == kind)

    @property
    def mlp_width(self) -> int:
        """Width of the main MLP's input [user fields, v_U, v_A, v_U ⊙ v_A, context fields]."""
        return 3 * self.D + sum(f.dim for f in self.fields if f.kind != "item")

    def to_json(self) -> dict:
        return _to_json(self)

    @classmethod
    def from_json(cls, d: dict) -> "ModelConfig":
        """Field for field; an unknown key is an error (a foreign or tampered checkpoint)."""
        if not isinstance(d, dict):
            raise TypeError(f"model_config: expected a JSON object, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"model_config: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(**d)


MODEL_FIELDS = [f for f in fields(ModelConfig) if f.name not in ("n_goods", "n_cates", "fields")]  # not from data


def _threads(n, v):
    if v is None:
        return None
    import numba

    return _integer(n, v, 1, numba.config.NUMBA_NUM_THREADS)


def _positive(n, v):
    return check_real(n, v, 0.0, lo_open=True)


def _optional(check):
    return lambda n, v: None if v is None else check(n, v)


@dataclass
class _RunOptions:
    """The optimizer and the run (``TrainConfig`` = the model fields above + these)."""

    optimizer: str = option("adagrad", "adagrad (row-sparse embedding updates) or plain sgd",
                            choices=("adagrad", "sgd"), group="optimizer")
    lr: float = option(0.1, "learning rate", _positive, group="optimizer")
    lr_decay: float = option(1.0, "multiply the learning rate by this after every epoch (1: constant)",
                             lambda n, v: check_real(n, v, 0.0, 1.0, lo_open=True), group="optimizer")
    lr_warmup: int = option(1000, "raise the learning rate linearly over the first N training steps, from lr/N to lr "
                            "(0: none). Adagrad's first step on an empty accumulator moves every weight by lr, "
                            "whatever its gradient (docs/training.md)", lambda n, v: _integer(n, v, 0),
                            group="optimizer")
    adagrad_init: float = option(0.0, "Adagrad's initial accumulator value (TensorFlow uses 0.1, PyTorch 0)",
                                 lambda n, v: check_real(n, v, 0.0), group="optimizer")
    clip_norm: float | None = option(None, "clip the global gradient norm at this (the official code: 5; "
                                     "default: no clipping)", _optional(_positive), group="optimizer")
    reg: str = option("mba", "embedding regularization: mini-batch aware (mba), full-table l2, or none",
                      choices=REGS, group="optimizer")
    reg_lambda: float | None = option(None, "regularization strength λ (default, for mba: scaled to the data, "
                                      "λ = S / (20 V) with S training samples and V goods ids, so 1 at 20 samples "
                                      "per goods id, docs/training.md; --reg l2 needs it given)",
                                      _optional(lambda n, v: check_real(n, v, 0.0)), group="optimizer")
    use_fields: str = option("all", "which of the data's schema fields the model takes: all, none (DIN's two "
                             "fields, goods and category), or a comma-separated list of field names",
                             lambda n, v: _use_fields(n, v), metavar="all|none|F1,F2,...")
    field_dim: int = option(16, "embedding width of each schema field (item attributes, user profile, context); "
                            "D = goods_dim + cate_dim + the item fields' widths", _width)
    field_dims: str | None = option(None, "per-field widths overriding --field-dim, as NAME=WIDTH,...",
                                    _optional(lambda n, v: _field_dims(n, v)), metavar="F1=W1,...")
    multi_hot_pooling: str = option("mean", "how a multi-hot field's set of ids pools: mean or sum (an empty set "
                                    "pools to zeros either way)", choices=("mean", "sum"))
    batch_size: int = option(32, "samples per training step", lambda n, v: _integer(n, v, 1), group="run")
    epochs: int = option(8, "maximum epochs (with --resume: the new total, default the checkpoint's)",
                         lambda n, v: _integer(n, v, 1), cli=None, group="run")
    patience: int = option(1, "stop after this many epochs without a better validation GAUC",
                           lambda n, v: _integer(n, v, 0), group="run")
    train_negatives: int | None = option(None, "K negatives per training positive, drawn again every epoch "
                                         "(seeded by --seed and the epoch) from the items the user never "
                                         "interacted with (default: the negatives the data were prepared with)",
                                         _optional(lambda n, v: _integer(n, v, 1, 10000)), group="run")
    train_negative_sampling: str = option("uniform", "how --train-negatives draws: uniform, or pop (by how often an "
                                          "item is a positive training sample)", choices=("uniform", "pop"), group="run")
    select: str = option("gauc", "the validation metric that picks the best epoch and stops early: gauc (the "
                         "paper's), auc, or a ranking metric over --select-negatives (hr@10, ndcg@10, mrr)",
                         choices=("gauc", "auc", "hr@10", "ndcg@10", "mrr"), group="run")
    select_negatives: str = option("99", "negatives per validation positive for a ranking --select: N (uniform), "
                                   "pop, pop:N or all", lambda n, v: _negatives(n, v), metavar="N|pop|pop:N|all",
                                   group="run")
    max_history: int | None = option(None, "keep only the most recent behaviours of each history, for this run "
                                     "(default: the dataset's own window, set by 'minidin prepare --max-history'; "
                                     "none on synthetic data)", _optional(lambda n, v: _integer(n, v, 1)),
                                     group="run")
    threads: int | None = option(None, "Numba threads (default: all cores)", _threads, group="run")


def _negatives(n, v):
    v = str(v).strip().lower()
    ok = v in ("all", "pop") or (v.startswith("pop:") and v[4:].isdigit() and int(v[4:]) > 0) or \
        (v.isdigit() and int(v) > 0)
    if not ok:
        raise ValueError(f"{n}: expected a count (99), pop, pop:N or all, got {v!r}")
    return v


def _use_fields(n, v):
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{n}: expected all, none or a comma-separated list of field names, got {v!r}")
    if v in ("all", "none"):
        return v
    names = [x.strip() for x in v.split(",")]
    for x in names:
        if not _NAME.match(x):
            raise ValueError(f"{n}: {x!r} is not a field name")
    return ",".join(names)


def _field_dims(n, v) -> str:
    if not isinstance(v, str):
        raise TypeError(f"{n}: expected NAME=WIDTH,..., got {type(v).__name__}")
    parse_field_dims(n, v)
    return v


def parse_field_dims(n, v) -> dict:
    """``"genres=8,age=4"`` -> {"genres": 8, "age": 4}; ValueError names the option."""
    out = {}
    for part in v.split(","):
        name, eq, w = part.strip().partition("=")
        if not eq or not _NAME.match(name.strip()) or not w.strip().isdigit():
            raise ValueError(f"{n}: expected NAME=WIDTH,... (e.g. genres=8,age=4), got {part.strip()!r}")
        out[name.strip()] = _width(f"{n}[{name.strip()}]", int(w))
    return out


def _train_fields():
    out = []
    for f in MODEL_FIELDS + list(fields(_RunOptions)):
        out.append((f.name, f.type, field(default=f.default, metadata=f.metadata)))
    return out


def _validate(self):
    """Check every field (NaN and wrong types included); ValueError / TypeError names the field."""
    _check_fields(self)
    if self.reg == "l2" and self.reg_lambda is None:
        raise ValueError("reg_lambda: --reg l2 has no default strength (the data-scaled default is MBA's); give it")
    return self


# λ = S / (LAMBDA_SAMPLES_PER_ID · V): MBA's default strength is 1 at this many training samples per goods id
LAMBDA_SAMPLES_PER_ID = 20


def reg_strength(cfg, n_samples: int, n_goods: int) -> float:
    """The λ a run regularizes with: ``cfg.reg_lambda`` when set; else 0 without regularization, and for MBA
    ``n_samples / (LAMBDA_SAMPLES_PER_ID · n_goods)``, the training samples per goods id over 20.

    Why it scales so: over an epoch MBA shrinks an id's embedding by about λ·w whatever its frequency (λ·w/n_j in
    each of the ≤ n_j batches holding it), while the data's pull on it grows with the samples it appears in; at
    a fixed λ, data with few samples per id are regularized relatively harder (docs/training.md)."""
    if cfg.reg_lambda is not None:
        return float(cfg.reg_lambda)
    if cfg.reg == "none":
        return 0.0
    return float(n_samples) / (LAMBDA_SAMPLES_PER_ID * max(int(n_goods), 1))


@classmethod
def _from_json(cls, d):
    """Known keys only; the field checks turn JSON lists of layer sizes back into tuples."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def _model_config(self, n_goods, n_cates, schema=()) -> ModelConfig:
    """The ``ModelConfig`` of this run for a dataset's vocabulary sizes and schema: ``schema`` lists the data's
    fields as dicts {name, kind, vocab, multi_hot}; ``use_fields``, ``field_dim``, ``field_dims`` and
    ``multi_hot_pooling`` turn them into FieldSpecs. ValueError names the option that does not fit the data."""
    schema = list(schema or ())
    known = [f["name"] for f in schema]
    if self.use_fields == "all":
        chosen = known
    elif self.use_fields == "none":
        chosen = []
    else:
        chosen = self.use_fields.split(",")
        for name in chosen:
            if name not in known:
                raise ValueError(f"use_fields: the data has no field {name!r} (it has: {', '.join(known) or 'none'})")
    dims = parse_field_dims("field_dims", self.field_dims) if self.field_dims else {}
    for name in dims:
        if name not in chosen:
            raise ValueError(f"field_dims: {name!r} is not a field the model takes (it takes: "
                             f"{', '.join(chosen) or 'none'})")
    specs = tuple(FieldSpec(name=f["name"], kind=f["kind"], vocab=f["vocab"], dim=dims.get(f["name"], self.field_dim),
                            multi_hot=f["multi_hot"], pooling=self.multi_hot_pooling)
                  for f in schema if f["name"] in chosen)
    return ModelConfig(n_goods=n_goods, n_cates=n_cates, fields=specs,
                       **{f.name: getattr(self, f.name) for f in MODEL_FIELDS})


# TrainConfig(model="din", activation="dice", reg="mba", reg_lambda=1.0, epochs=2): every model field of
# ModelConfig (same defaults, checks and help) plus the optimizer and run fields of _RunOptions. Mutable, so
# a resumed run can raise ``epochs``; ``validate()`` checks it all.
TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", _train_fields(),
    namespace={"__post_init__": _validate, "validate": _validate, "to_json": _to_json, "from_json": _from_json,
               "model_config": _model_config,
               "__doc__": "Model, optimizer and run settings of one training run (see ``minidin.config``)."})
TrainConfig.__module__ = __name__


def read_config_file(path) -> dict:
    """The TrainConfig settings of a JSON file for ``minidin train --config``: an object of TrainConfig keys
    (any subset), or an object whose ``"train_config"`` holds one (what ``minidin tune`` writes as best.json, and
    a checkpoint's .json). Every key and value is checked here; a ValueError names the file and the key."""
    import json

    where = f"--config {path}"
    try:
        with open(path) as f:
            d = json.load(f)
    except OSError as e:
        raise ValueError(f"{where}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:
        raise ValueError(f"{where}: not valid JSON ({e})") from None
    if isinstance(d, dict) and "train_config" in d:
        d, where = d["train_config"], where + " train_config"
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a JSON object of training settings, got {type(d).__name__}")
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(map(repr, unknown))} (the settings are the long "
                         f"names of minidin train's options, with _ for -)")
    try:
        TrainConfig(**d)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


# ---------------------------------------------------------------------------- the CLI, from the same specs
def choices(name) -> list:
    """The allowed values of a TrainConfig field with a finite set of them (for CLI options elsewhere)."""
    return [c for c in TrainConfig.__dataclass_fields__[name].metadata["choices"] if c is not None]


def default(name):
    return TrainConfig.__dataclass_fields__[name].default


def add_options(parser, positive_int, units, exclude=()):
    """Add one ``--option`` per TrainConfig field (except those marked cli=None, and ``exclude``) to ``parser``,
    in groups model / optimizer / run; names, defaults, choices and help all come from the field specs."""
    groups = {g: parser.add_argument_group(g) for g in ("model", "optimizer", "run")}
    for f in fields(TrainConfig):
        meta = f.metadata
        if meta.get("cli") is None or f.name in exclude:
            continue
        g = meta["group"]
        flag = "--" + f.name.replace("_", "-")
        kw = {"dest": f.name, "help": meta["help"], "default": f.default}
        choices = [c for c in meta["choices"] or () if c is not None]
        if f.type in ("bool", bool):  # a switch: --NAME turns it on, --no-NAME off
            kw["action"] = argparse.BooleanOptionalAction
            off = f"; --no-{f.name.replace('_', '-')}: {meta['cli']}" if f.default and meta["cli"] != "auto" else ""
            kw["help"] += f" (default: {'on' if f.default else 'off'}{off})"
        elif choices:
            kw["choices"] = choices
        elif f.name.endswith("_units"):
            kw.update(type=units, metavar=meta["metavar"])
            kw["help"] += f" (default: {','.join(map(str, f.default))})"
        elif "int" in str(f.type):
            kw["type"] = positive_int if f.name not in ("seed", "patience") else int
        elif "str" in str(f.type):
            kw.update(type=str, metavar=meta["metavar"])
        else:
            kw["type"] = float
        groups[g].add_argument(flag, **kw)
    return groups
