"""Typed, validated run configuration loaded from ``params.yaml``.

* :mod:`nat2.config.schema`: the sections (frozen dataclasses, every key's doc and range, cross-key checks);
* :mod:`nat2.config.spec`: the validator that walks a YAML tree against them (one-line errors);
* :mod:`nat2.config.files`: reading a file, merging a preset onto the file it extends, dotted overrides.
"""

from nat2.config.files import (
    EXTENDS,
    USED_HEADER,
    extended_file,
    load_params,
    merge_overlay,
    params_from_dict,
    read_params_dict,
    read_yaml,
    used_preset,
)
from nat2.config.schema import (
    BASELINES,
    DATASETS,
    LATENCY_BACKENDS,
    NESTED_CV_SURROGATES,
    OBJECTIVES,
    PHASES,
    POLICIES,
    SURROGATES,
    VARIANTS,
    AdaptConfig,
    AugmentConfig,
    BaselineConfig,
    DataConfig,
    FinetuneConfig,
    LatencyConfig,
    Params,
    PhaseConfig,
    PhasesConfig,
    PostprocessConfig,
    RuntimeConfig,
    SearchConfig,
    SuperNetConfig,
    SyntheticConfig,
    TrainConfig,
    iter_keys,
    min_fittable_archive,
    params_hash,
    to_dict,
)
from nat2.config.spec import Spec

__all__ = [
    "BASELINES", "DATASETS", "EXTENDS", "LATENCY_BACKENDS", "NESTED_CV_SURROGATES", "OBJECTIVES", "PHASES",
    "POLICIES", "SURROGATES", "USED_HEADER", "VARIANTS", "AdaptConfig", "AugmentConfig", "BaselineConfig",
    "DataConfig", "FinetuneConfig", "LatencyConfig", "Params", "PhaseConfig", "PhasesConfig", "PostprocessConfig",
    "RuntimeConfig", "SearchConfig", "Spec", "SuperNetConfig", "SyntheticConfig", "TrainConfig", "iter_keys",
    "load_params", "merge_overlay", "min_fittable_archive", "params_from_dict", "params_hash", "read_params_dict",
    "read_yaml", "to_dict", "used_preset", "extended_file"
]
