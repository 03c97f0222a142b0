"""The pipeline's stages, described once: both Snakemake's rules and the generated ``dvc.yaml`` read this table.

Each :class:`Stage` names its CLI module, its inputs and outputs (path patterns), the arguments of its command,
the exact ``params.yaml`` keys its results depend on, the mapping or list it is repeated over, and what it needs
to run. From it:

* :func:`dvc_yaml` writes ``dvc.yaml`` (``nat2 dvc-yaml --write``; ``--check`` in the tests), and
* ``rules/*.smk`` ask :func:`smk_inputs`, :func:`smk_outputs`, :func:`smk_shell`, ... for each rule's parts,

so a command, a path or a dependency is written in exactly one place and both tools run byte-identical commands.

Path patterns use ``{name}`` placeholders: the repeated stage's key (``{phase}``, ``{i}``) and its item
(``{previous}``), or a dotted ``params.yaml`` key (``{search.final}``). In a command, a bare name refers to one of
the stage's inputs or outputs and stands for its path.

Settings (``params``): a stage lists the keys that can change what it writes, nothing more; the lists live in
:mod:`nat2.stage_settings` (data only), which the in-stage resume hashes read too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nat2.stage_settings import SETTINGS, lookup, stage_settings

__all__ = ["STAGES", "ForEach", "Input", "Report", "Stage", "dvc_command", "dvc_yaml", "smk_inputs", "smk_outputs",
           "smk_outputs_of", "smk_settings", "smk_shell", "smk_wildcards", "stage"]


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")


@dataclass(frozen=True)
class ForEach:
    """A stage repeated over a ``params.yaml`` mapping (``key`` -> ``item``) or list (each element is ``key``)."""

    over: str
    key: str
    item: str | None = None  # the mapping's value (the phase/iteration this one continues from); None for lists


@dataclass(frozen=True)
class Input:
    """An input path pattern, possibly one file per element of a params list or mapping.

    ``each`` expands it for Snakemake; DVC tracks the folder ``dvc`` instead (dvc.yaml cannot expand a list that
    params.yaml may change).
    """

    path: str
    each: tuple[str, str] | None = None  # (placeholder, params key) to expand over, for Snakemake
    dvc: str | None = None  # what DVC depends on instead (a folder that holds the expanded files)


def _pattern(spec: str | Input) -> str:
    return spec.path if isinstance(spec, Input) else spec


@dataclass(frozen=True)
class Report:
    """An output shown in ``snakemake --report`` (``make report``): caption file, category, subcategory.

    ``caption`` names a reStructuredText file in ``rules/report/`` that says what the output shows and from which
    files; ``patterns`` pick the files of a folder output (``{name}.png``).
    """

    caption: str
    category: str
    subcategory: str | None = None
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: ``python -m nat2.stages.<module> --params params.yaml <args> --log <log>``."""

    name: str
    module: str
    args: str
    inputs: Mapping[str, str | Input]
    outputs: Mapping[str, str]
    log: str
    benchmark: str
    foreach: ForEach | None = None
    directories: tuple[str, ...] = ()  # outputs (by name) that are folders
    metrics: tuple[str, ...] = ()  # outputs (by name) that are DVC metrics (small JSON, not cached)
    plots: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # output name -> DVC plot props
    uncached: tuple[str, ...] = ()  # outputs (by name) kept in git rather than DVC's cache
    report: Mapping[str, Report] = field(default_factory=dict)  # output name -> its Snakemake report entry
    parallel: bool = True  # uses runtime.threads (else one thread)
    mem_mb: int = 4000
    gpu: bool = False

    @property
    def settings(self) -> tuple[str, ...]:
        """The params keys this stage's results depend on (:data:`nat2.stage_settings.SETTINGS`)."""
        return SETTINGS[self.name]


# --------------------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------------------

_SPLIT_FILE = "data/split.parquet"
_LUT = "results/latency/lut.parquet"
_SUPERNET = "results/supernet/supernet.pt"
_ITER = "results/search/iter_{i}"
_PREV = "results/search/iter_{previous}"
_FINAL = "results/search/iter_{search.final}"
_ITERATIONS = ForEach("search.iterations", key="i", item="previous")

STAGES: tuple[Stage, ...] = (
    Stage("prepare_data", "prepare_data", "--out {split}",
          inputs={}, outputs={"split": _SPLIT_FILE, "manifest": "data/split.manifest.json"},
          log="results/logs/prepare_data.log", benchmark="results/benchmarks/prepare_data.tsv"),
    Stage("profile_latency", "profile_latency", "--split {split} --out {lut} --subnets {subnets} --stats {stats}",
          inputs={"split": _SPLIT_FILE},
          outputs={"lut": _LUT, "subnets": "results/latency/subnets.csv", "stats": "results/latency/latency.json",
                   "manifest": "results/latency/lut.manifest.json"},
          metrics=("stats",), plots={"subnets": {"template": "scatter", "x": "predicted_ms", "y": "measured_ms",
                                                 "x_label": "predicted latency (ms)",
                                                 "y_label": "measured latency (ms)"}},
          report={"subnets": Report("latency_subnets.rst", "1. Latency", "tables")},
          log="results/logs/profile_latency.log", benchmark="results/benchmarks/profile_latency.tsv", gpu=True),
    Stage("train_full", "train_supernet", "--phase full --split {split} --out {ckpt}",
          inputs={"split": _SPLIT_FILE},
          outputs={"ckpt": "results/supernet/full.pt", "live": "results/supernet/full.live",
                   "manifest": "results/supernet/full.manifest.json"},
          directories=("live",), uncached=("live",),
          log="results/logs/train_supernet/full.log", benchmark="results/benchmarks/train_supernet/full.tsv",
          mem_mb=8000, gpu=True),
    Stage("train_phase", "train_supernet",
          "--phase {phase} --split {split} --init {init} --full {full} --out {ckpt}",
          foreach=ForEach("train.lineage", key="phase", item="previous"),
          inputs={"split": _SPLIT_FILE, "init": "results/supernet/{previous}.pt", "full": "results/supernet/full.pt"},
          outputs={"ckpt": "results/supernet/{phase}.pt", "live": "results/supernet/{phase}.live",
                   "manifest": "results/supernet/{phase}.manifest.json"},
          directories=("live",), uncached=("live",),
          log="results/logs/train_supernet/{phase}.log", benchmark="results/benchmarks/train_supernet/{phase}.tsv",
          mem_mb=8000, gpu=True),
    Stage("assemble_supernet", "assemble_supernet", "--phase-ckpt {ckpt} --out {supernet}",
          inputs={"ckpt": "results/supernet/{train.final}.pt"},
          outputs={"supernet": _SUPERNET, "manifest": "results/supernet/supernet.manifest.json"},
          log="results/logs/assemble_supernet.log", benchmark="results/benchmarks/assemble_supernet.tsv",
          parallel=False),
    Stage("sample_initial", "sample_initial", "--out {design}",
          inputs={}, outputs={"design": "results/search/iter_0/design.parquet",
                              "manifest": "results/search/iter_0/design.manifest.json"},
          log="results/logs/search/sample_initial.log", benchmark="results/benchmarks/search/sample_initial.tsv",
          parallel=False, mem_mb=2000),
    Stage("evaluate_shard", "evaluate",
          "--genomes {genomes} --supernet {supernet} --split {split} --lut {lut} --shard {shard} --out {evals}",
          foreach=ForEach("search.shards", key="shard"),
          inputs={"genomes": "results/search/iter_0/design.parquet", "supernet": _SUPERNET, "split": _SPLIT_FILE,
                  "lut": _LUT},
          outputs={"evals": "results/search/iter_0/evals/shard_{shard}.parquet",
                   "manifest": "results/search/iter_0/evals/shard_{shard}.manifest.json"},
          log="results/logs/search/evaluate_{shard}.log",
          benchmark="results/benchmarks/search/evaluate_{shard}.tsv", gpu=True),
    Stage("init_archive", "init_archive",
          "--evals {evals} --supernet {supernet} --split {split} --lut {lut} --out {archive} "
          "--out-supernet {archive_supernet} --stats {stats}",
          inputs={"evals": Input("results/search/iter_0/evals/shard_{shard}.parquet",
                                 each=("shard", "search.shards"),
                                 dvc="results/search/iter_0/evals"),
                  "supernet": _SUPERNET, "split": _SPLIT_FILE, "lut": _LUT},
          outputs={"archive": "results/search/iter_0/archive.parquet",
                   "archive_supernet": "results/search/iter_0/supernet.pt",
                   "stats": "results/search/iter_0/stats.json",
                   "manifest": "results/search/iter_0/archive.manifest.json"},
          metrics=("stats",),
          log="results/logs/search/init_archive.log", benchmark="results/benchmarks/search/init_archive.tsv"),
    Stage("fit_surrogate", "fit_surrogate", "--iteration {i} --archive {archive} --out {model} --report {report}",
          foreach=_ITERATIONS,
          inputs={"archive": f"{_PREV}/archive.parquet"},
          outputs={"model": f"{_ITER}/surrogate.model.json", "report": f"{_ITER}/surrogate.json",
                   "manifest": f"{_ITER}/surrogate.manifest.json"},
          metrics=("report",),
          log="results/logs/search/fit_surrogate_{i}.log", benchmark="results/benchmarks/search/fit_surrogate_{i}.tsv"),
    Stage("search", "search",
          "--iteration {i} --archive {archive} --surrogate {surrogate} --split {split} --lut {lut} "
          "--out {candidates} --stats {stats}",
          foreach=_ITERATIONS,
          inputs={"archive": f"{_PREV}/archive.parquet", "surrogate": f"{_ITER}/surrogate.model.json",
                  "split": _SPLIT_FILE, "lut": _LUT},
          outputs={"candidates": f"{_ITER}/candidates.parquet", "stats": f"{_ITER}/search.json",
                   "manifest": f"{_ITER}/candidates.manifest.json"},
          metrics=("stats",),
          log="results/logs/search/search_{i}.log", benchmark="results/benchmarks/search/search_{i}.tsv",
          parallel=False),
    Stage("update_archive", "update_archive",
          "--iteration {i} --archive {archive} --candidates {candidates} --supernet {supernet} --split {split} "
          "--lut {lut} --out {updated} --stats {stats}",
          foreach=_ITERATIONS,
          inputs={"archive": f"{_PREV}/archive.parquet", "candidates": f"{_ITER}/candidates.parquet",
                  "supernet": f"{_PREV}/supernet.pt", "split": _SPLIT_FILE, "lut": _LUT},
          outputs={"updated": f"{_ITER}/updated.parquet", "stats": f"{_ITER}/update.json",
                   "manifest": f"{_ITER}/updated.manifest.json"},
          metrics=("stats",),
          log="results/logs/search/update_archive_{i}.log",
          benchmark="results/benchmarks/search/update_archive_{i}.tsv", gpu=True),
    Stage("adapt_supernet", "adapt_supernet",
          "--iteration {i} --archive {updated} --supernet {supernet} --split {split} --lut {lut} --full {full} "
          "--out-supernet {adapted} --out-archive {archive} --stats {stats}",
          foreach=_ITERATIONS,
          inputs={"updated": f"{_ITER}/updated.parquet", "supernet": f"{_PREV}/supernet.pt", "split": _SPLIT_FILE,
                  "lut": _LUT, "full": "results/supernet/full.pt"},
          outputs={"adapted": f"{_ITER}/supernet.pt", "archive": f"{_ITER}/archive.parquet",
                   "stats": f"{_ITER}/adapt.json", "live": f"{_ITER}/adapt.live",
                   "manifest": f"{_ITER}/archive.manifest.json"},
          metrics=("stats",), directories=("live",), uncached=("live",),
          log="results/logs/search/adapt_supernet_{i}.log",
          benchmark="results/benchmarks/search/adapt_supernet_{i}.tsv", mem_mb=8000, gpu=True),
    Stage("extract", "extract",
          "--archive {archive} --supernet {supernet} --split {split} --lut {lut} --out {extract}",
          inputs={"archive": f"{_FINAL}/archive.parquet", "supernet": f"{_FINAL}/supernet.pt", "split": _SPLIT_FILE,
                  "lut": _LUT},
          outputs={"extract": "results/final/extract"},
          directories=("extract",),
          log="results/logs/final/extract.log", benchmark="results/benchmarks/final/extract.tsv", gpu=True),
    Stage("finetune", "finetune",
          "--slot {slot_dir} --supernet {supernet} --split {split} --lut {lut} --out {finetuned}",
          foreach=ForEach("postprocess.slots", key="slot"),
          inputs={"extract": "results/final/extract", "supernet": f"{_FINAL}/supernet.pt", "split": _SPLIT_FILE,
                  "lut": _LUT},
          outputs={"finetuned": "results/final/finetune/slot_{slot}"},
          directories=("finetuned",),
          log="results/logs/final/finetune_{slot}.log", benchmark="results/benchmarks/final/finetune_{slot}.tsv",
          mem_mb=8000, gpu=True),
    Stage("baseline", "baseline", "--model {model} --split {split} --out {trained}",
          foreach=ForEach("baseline.models", key="model"),
          inputs={"split": _SPLIT_FILE},
          outputs={"trained": "results/final/baseline/{model}"},
          directories=("trained",),
          log="results/logs/final/baseline_{model}.log", benchmark="results/benchmarks/final/baseline_{model}.tsv",
          mem_mb=8000, gpu=True),
    Stage("report", "report",
          "--search {search} --supernet-dir {supernet_dir} --finetune {finetune} --baselines {baselines_dir} "
          "--lut {lut} --out {out}",
          inputs={"archives": Input("results/search/iter_{i}/archive.parquet", each=("i", "search.iterations+0"),
                                    dvc="results/search"),
                  "surrogates": Input("results/search/iter_{i}/surrogate.json", each=("i", "search.iterations")),
                  "updates": Input("results/search/iter_{i}/update.json", each=("i", "search.iterations")),
                  "curves": Input("results/supernet/{phase}.live", each=("phase", "train.lineage+full"),
                                  dvc="results/supernet"),
                  "slots": Input("results/final/finetune/slot_{slot}", each=("slot", "postprocess.slots"),
                                 dvc="results/final/finetune"),
                  "baselines": Input("results/final/baseline/{model}", each=("model", "baseline.models"),
                                     dvc="results/final/baseline"),
                  "lut": _LUT},
          outputs={"summary": "results/report/summary.md", "metrics": "results/report/metrics.json",
                   "hv": "results/report/hv.csv", "surrogate": "results/report/surrogate.csv",
                   "archive": "results/report/archive.csv", "front": "results/report/front.csv",
                   "training": "results/report/training.csv", "finetune_curves": "results/report/finetune.csv",
                   "latency": "results/report/latency.csv", "slots": "results/report/slots.csv",
                   "baseline_table": "results/report/baselines.csv",
                   "manifest": "results/report/manifest.json", "figures": "results/report/figures"},
          directories=("figures",), metrics=("metrics",), uncached=("summary", "manifest"),
          plots={name: {} for name in ("hv", "surrogate", "archive", "front", "training", "finetune_curves",
                                       "latency", "slots", "baseline_table")},
          report={"figures": Report("figures.rst", "4. Final subnets", "figures", patterns=("{name}.png",)),
                  "summary": Report("summary.rst", "4. Final subnets", "tables"),
                  "slots": Report("slots.rst", "4. Final subnets", "tables"),
                  "baseline_table": Report("baselines.rst", "4. Final subnets", "tables"),
                  "hv": Report("hv.rst", "3. Search", "tables"),
                  "surrogate": Report("surrogate.rst", "3. Search", "tables"),
                  "training": Report("training.rst", "2. Super-net", "tables")},
          log="results/logs/final/report.log", benchmark="results/benchmarks/final/report.tsv",
          mem_mb=2000, gpu=True),  # times the slots' exported programs on the run's device
)

#: what a bare name in a command stands for, beyond the stage's inputs and outputs (folder arguments)
_ARG_PATHS: Mapping[str, Mapping[str, str]] = {
    "finetune": {"slot_dir": "results/final/extract/slot_{slot}"},
    "report": {"search": "results/search", "supernet_dir": "results/supernet", "finetune": "results/final/finetune",
               "baselines_dir": "results/final/baseline", "out": "results/report"},
}


def stage(name: str) -> Stage:
    """The stage called ``name``."""
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"no pipeline stage {name!r}; the stages are {[s.name for s in STAGES]}")


# --------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------


def _sub(text: str, fn: Callable[[str], str]) -> str:
    return _PLACEHOLDER.sub(lambda m: fn(m.group(1)), text)


def _path_of(s: Stage, name: str) -> str:
    """The path pattern a bare name in ``s``'s command stands for."""
    if name in s.outputs:
        return s.outputs[name]
    if name in s.inputs:
        spec = s.inputs[name]
        return (isinstance(spec, Input) and spec.dvc) or _pattern(spec)
    return _ARG_PATHS[s.name][name]


def _command(s: Stage, render_path: Callable[[str], str]) -> str:
    """``python -m nat2.stages.<module> ...`` with each named path rendered by ``render_path``."""
    names = set(s.inputs) | set(s.outputs) | set(_ARG_PATHS.get(s.name, {}))
    loop = {s.foreach.key, s.foreach.item} if s.foreach else set()

    def arg(name: str) -> str:
        if name in names:
            return render_path(_path_of(s, name))
        if name in loop:
            return render_path("{" + name + "}")
        raise KeyError(f"stage {s.name}: {{{name}}} in its command is neither an input, an output nor its key")

    return (f"python -m nat2.stages.{s.module} --params params.yaml {_sub(s.args, arg)} "
            f"--log {render_path(s.log)}")


def _dvc_path(s: Stage, pattern: str) -> str:
    def one(name: str) -> str:
        if "." in name:
            return "${" + name + "}"
        if s.foreach and name == s.foreach.key:
            return "${key}" if s.foreach.item else "${item}"
        if s.foreach and name == s.foreach.item:
            return "${item}"
        raise KeyError(f"stage {s.name}: {{{name}}} in {pattern} is not its key, its item or a params key")

    return _sub(pattern, one)


def dvc_command(s: Stage) -> str:
    """The stage's command as dvc.yaml writes it (``${key}``/``${item}``/``${params.key}`` left for DVC)."""
    return _command(s, lambda p: _dvc_path(s, p))


def _dvc_body(s: Stage, code: list[str]) -> dict[str, Any]:
    # an expanded input without a folder of its own lies inside a folder another input already tracks
    deps = [_dvc_path(s, (isinstance(spec, Input) and spec.dvc) or _pattern(spec)) for spec in s.inputs.values()
            if not (isinstance(spec, Input) and spec.each and not spec.dvc)]
    body: dict[str, Any] = {"cmd": dvc_command(s), "deps": [*deps, *code],
                            "params": [_dvc_path(s, k) for k in s.settings]}
    outs: list[Any] = []
    metrics: list[Any] = []
    plots: list[Any] = []
    for name, path in s.outputs.items():
        rendered = _dvc_path(s, path)
        if name in s.metrics:
            metrics.append({rendered: {"cache": False}})
        elif name in s.plots:
            plots.append({rendered: {"cache": False, **s.plots[name]}})
        elif name in s.uncached:
            outs.append({rendered: {"cache": False}})
        else:
            outs.append(rendered)
    body["outs"] = outs
    if metrics:
        body["metrics"] = metrics
    if plots:
        body["plots"] = plots
    return body


#: top-level DVC plots (drawn from the report's CSV files; ``dvc plots show`` / ``diff``, ``make plots``)
_DVC_PLOTS = [
    {"hypervolume": {"template": "linear", "x": "iteration", "y": {"results/report/hv.csv": "hv"},
                     "title": "Archive hypervolume per search iteration", "x_label": "search iteration",
                     "y_label": "hypervolume (normalised)"}},
    {"surrogate_tau": {"template": "linear", "x": "iteration",
                       "y": {"results/report/surrogate.csv": ["cv_kendall_tau", "candidates_kendall_tau"]},
                       "title": "Surrogate rank correlation per iteration", "x_label": "search iteration",
                       "y_label": "Kendall tau"}},
    {"final_front": {"template": "scatter", "x": "macs",
                     "y": {"results/report/front.csv": "error", "results/report/slots.csv": "error"},
                     "title": "Final front (super-net weights) and fine-tuned slots", "x_label": "MACs",
                     "y_label": "validation error (fraction)"}},
    {"supernet_training": {"template": "linear", "x": "index", "y": {"results/report/training.csv": "train_top1"},
                           "title": "Super-net training (all phases)", "x_label": "epoch",
                           "y_label": "train top-1 (%)"}},
    {"finetuning": {"template": "linear", "x": "index", "y": {"results/report/finetune.csv": "train_loss"},
                    "title": "Fine-tuning (step 1 then step 2, per slot)", "x_label": "epoch",
                    "y_label": "train loss"}},
    "results/report/figures",
]

_HEADER = """\
# GENERATED from nat2/workflow.py by `nat2 dvc-yaml --write`; do not edit (the tests check it is up to date).
# The same table drives the Snakemake rules in rules/*.smk, so both tools run byte-identical commands.
"""


def dvc_yaml() -> str:
    """The text of ``dvc.yaml`` (stages in pipeline order, code deps from :func:`nat2.deps.stage_code_deps`)."""
    import yaml

    from nat2.deps import stage_code_deps

    stages: dict[str, Any] = {}
    for s in STAGES:
        body = _dvc_body(s, stage_code_deps(s.module))
        stages[s.name] = {"foreach": "${" + s.foreach.over + "}", "do": body} if s.foreach else body
    text = yaml.safe_dump({"stages": stages}, sort_keys=False, width=120, default_flow_style=False)
    plots = yaml.safe_dump({"plots": _DVC_PLOTS}, sort_keys=False, width=120, default_flow_style=False)
    return _HEADER + text + "\n" + plots


# --------------------------------------------------------------------------------------------------------------
# Snakemake: what rules/*.smk read
# --------------------------------------------------------------------------------------------------------------


def _loop_values(config: Mapping[str, Any], over: str) -> list[str]:
    """The keys (mapping) or elements (list) of a params key; ``a+b`` adds ``b``, a literal, in front."""
    spec, _, extra = over.partition("+")
    value = lookup(config, spec)
    keys = [str(k) for k in value]  # a mapping's keys or a list's elements
    return [extra, *keys] if extra else keys


def _smk_path(pattern: str, config: Mapping[str, Any]) -> str:
    """A pattern with params keys filled in; the stage's key stays a wildcard."""
    return _sub(pattern, lambda n: str(lookup(config, n)) if "." in n else "{" + n + "}")


def _item_function(s: Stage, name: str, pattern: str, config: Mapping[str, Any]) -> Callable[[Any], str]:
    """A named input function: the path of the phase/iteration this one continues from."""
    assert s.foreach is not None and s.foreach.item is not None
    mapping = {str(k): str(v) for k, v in lookup(config, s.foreach.over).items()}
    key, item = s.foreach.key, s.foreach.item

    def continued_from(wildcards: Any) -> str:
        return _smk_path(pattern, config).format(**{item: mapping[getattr(wildcards, key)]})

    continued_from.__name__ = f"{s.name}_{name}"
    continued_from.__doc__ = f"{name} of {s.name}: {pattern} with {{{item}}} = the {key} it continues from"
    return continued_from


def smk_inputs(name: str, config: Mapping[str, Any], code: list[str]) -> dict[str, Any]:
    """A rule's named inputs: plain patterns, expanded lists, or named functions of the wildcards."""
    s = stage(name)
    out: dict[str, Any] = {}
    for key, spec in s.inputs.items():
        pattern = _pattern(spec)
        if isinstance(spec, Input) and spec.each:
            placeholder, over = spec.each
            out[key] = [_smk_path(pattern, config).replace("{" + placeholder + "}", v)
                        for v in _loop_values(config, over)]
        elif s.foreach and s.foreach.item and "{" + s.foreach.item + "}" in pattern:
            out[key] = _item_function(s, key, pattern, config)
        else:
            out[key] = _smk_path(pattern, config)
    out["code"] = code
    return out


def smk_outputs(name: str, config: Mapping[str, Any]) -> dict[str, str]:
    """A rule's named outputs (patterns; folders are marked by the Snakefile with ``directory``)."""
    s = stage(name)
    return {key: _smk_path(path, config) for key, path in s.outputs.items()}


def smk_outputs_of(name: str, config: Mapping[str, Any], what: str) -> str:
    """The rule's ``log`` or ``benchmark`` file pattern."""
    s = stage(name)
    return _smk_path(getattr(s, what), config)


def smk_wildcards(name: str, config: Mapping[str, Any]) -> dict[str, str]:
    """Wildcard constraints: the stage's key takes exactly the values params.yaml lists."""
    s = stage(name)
    if s.foreach is None:
        return {}
    return {s.foreach.key: "|".join(re.escape(v) for v in _loop_values(config, s.foreach.over))}


def smk_shell(name: str, config: Mapping[str, Any]) -> str:
    """The rule's shell command: the DVC command with the key as ``{wildcards.<key>}`` and items as inputs."""
    s = stage(name)
    item = s.foreach.item if s.foreach else None

    def render(pattern: str) -> str:
        if item and "{" + item + "}" in pattern:
            key = next(k for k, v in s.inputs.items() if _pattern(v) == pattern)
            return "{input." + key + "}"
        path = _smk_path(pattern, config)
        return _sub(path, lambda n: "{wildcards." + n + "}")

    return _command(s, render)


def smk_settings(name: str, config: Mapping[str, Any]) -> Callable[[Any], dict[str, Any]]:
    """The rule's ``params``: the settings' values (a changed value reruns the job, as in DVC)."""
    s = stage(name)

    def settings(wildcards: Any) -> dict[str, Any]:
        key = {s.foreach.key: getattr(wildcards, s.foreach.key)} if s.foreach else {}
        return stage_settings(s.name, config, **key)

    settings.__name__ = f"{s.name}_settings"
    return settings
