"""Merging benchmark results: shards of one matrix run apart (other seeds, other cells) into one report.

A long matrix is often run in pieces — one CI job per backend, a third seed added a day later
(`polyrl bench --first-seed 2 --seeds 1`). `merge_reports` joins such results files into the
report one run would have written: a cell's seeds are pooled, its ratio measurements are
pooled and their medians recomputed, and it is re-judged against today's pass line (today's
cell, with its plugin's tuning, when it still trains alike; else the last piece's). Pieces must
come from the same hardware (CPU model and cores; timings from different hardware are not
comparable) and library versions, agree on every training setting of a cell they share, not
repeat a seed, and agree on stopping at the threshold. RL Zoo3's runs of a cell (`--baseline
zoo`) are pooled like its seeds, when the pieces ran the same Zoo configuration.
"""

from __future__ import annotations

import statistics

from polyrl.errors import ConfigurationError

from polyrl_conformance.bench.cells import BenchCell, declared_cells
from polyrl_conformance.bench.matrix import covering_slice
from polyrl_conformance.bench.records import BenchReport, CellResult, RatioResult, SeedResult, ZooArm
from polyrl_conformance.bench.zoo import compare_zoo


def _same_hardware(reports: list[BenchReport], names: list[str]) -> None:
    """Refuse pieces from other CPUs, core counts or library versions (hosts may differ: CI runners)."""
    first = reports[0].machine
    for report, name in zip(reports[1:], names[1:], strict=True):
        m = report.machine
        if (m.cpu_model, m.cores) != (first.cpu_model, first.cores):
            raise ConfigurationError(
                f"{name} ran on {m.cpu_model} with {m.cores} cores but {names[0]} on {first.cpu_model} "
                f"with {first.cores} cores; timings from different hardware are not comparable, so "
                "merge only results of one machine type"
            )
        changed = sorted(
            package
            for package in first.versions.keys() | m.versions.keys()
            if first.versions.get(package) != m.versions.get(package)
        )
        if changed:
            differences = ", ".join(
                f"{package} {first.versions.get(package)} vs {m.versions.get(package)}" for package in changed
            )
            raise ConfigurationError(
                f"{names[0]} and {name} ran with different versions ({differences}); results of "
                "different library versions are not one benchmark, so rerun the older piece"
            )


def _pooled_ratio(ratios: list[RatioResult | None]) -> RatioResult | None:
    """One ratio from several measurements of the same cell: the runs pooled, medians recomputed."""
    measured = [r for r in ratios if r is not None and r.ratio is not None]
    if not measured:
        return next((r for r in ratios if r is not None), None)
    if len({r.env_steps for r in measured}) > 1:
        # Runs of different lengths cannot share a median; keep the one with the most runs.
        return max(measured, key=lambda r: r.repeats)
    polyrl_seconds = [s for r in measured for s in r.polyrl_seconds]
    direct_seconds = [s for r in measured for s in r.direct_seconds]
    polyrl_median, direct_median = statistics.median(polyrl_seconds), statistics.median(direct_seconds)
    pooled = RatioResult(
        available=True,
        env_steps=measured[0].env_steps,
        repeats=len(polyrl_seconds),
        polyrl_seconds=polyrl_seconds,
        direct_seconds=direct_seconds,
        polyrl_median=polyrl_median,
        direct_median=direct_median,
        ratio=polyrl_median / direct_median,
    )
    if not all(r.polyrl_cpu_seconds and r.direct_cpu_seconds for r in measured):
        return pooled  # a piece measured before CPU time was: no CPU ratio for the pool
    polyrl_cpu = [s for r in measured for s in r.polyrl_cpu_seconds]
    direct_cpu = [s for r in measured for s in r.direct_cpu_seconds]
    polyrl_cpu_median, direct_cpu_median = statistics.median(polyrl_cpu), statistics.median(direct_cpu)
    return pooled.model_copy(
        update={
            "polyrl_cpu_seconds": polyrl_cpu,
            "direct_cpu_seconds": direct_cpu,
            "polyrl_cpu_median": polyrl_cpu_median,
            "direct_cpu_median": direct_cpu_median,
            "cpu_ratio": polyrl_cpu_median / direct_cpu_median if direct_cpu_median > 0 else None,
        }
    )


def _pooled_zoo(key: str, arms: list[ZooArm], names: list[str]) -> ZooArm | None:
    """One RL Zoo3 run of a cell from the pieces' (`--baseline zoo`): their seeds pooled."""
    if not arms:
        return None
    configs = {arm.config.model_dump_json(exclude={"source"}) for arm in arms}
    if len(configs) > 1:
        raise ConfigurationError(
            f"cell {key}: the pieces {', '.join(names)} ran different RL Zoo3 configurations (another "
            "rl-zoo3 version or entry); rerun them with one"
        )
    seeds = sorted((s for arm in arms for s in arm.seeds), key=_seed_number)
    numbers = [s.seed for s in seeds]
    if len(set(numbers)) < len(numbers):
        raise ConfigurationError(f"cell {key}: an RL Zoo3 seed is in more than one of {', '.join(names)}")
    return ZooArm.summarize(arms[-1].config, seeds)


def _judged_by(stored: BenchCell, current: dict[str, BenchCell]) -> BenchCell:
    """Today's cell when it trains like the stored one: its pass line and note."""
    today = current.get(stored.key)
    return today if today is not None and today.trains_like(stored) else stored


def _seed_number(seed: SeedResult) -> int:
    return seed.seed


def merge_reports(reports: list[BenchReport], names: list[str], command: str) -> BenchReport:
    """One report from several results of the same hardware; `names` label them in errors."""
    if not reports:
        raise ConfigurationError("nothing to merge: give at least one results .json file")
    _same_hardware(reports, names)
    if len({r.stop_at_threshold for r in reports}) > 1:
        raise ConfigurationError(
            "some results stopped at the solve threshold and some did not; their returns and "
            "budgets are not comparable, so merge only runs made with the same --stop-at-threshold"
        )
    cells: dict[str, BenchCell] = {}  # the last piece's cell: its pass line and note
    sources: dict[str, str] = {}
    ratios: dict[str, list[RatioResult | None]] = {}
    seeds: dict[str, list[SeedResult]] = {}
    zoos: dict[str, list[tuple[ZooArm, str]]] = {}
    for report, name in zip(reports, names, strict=True):
        for result in report.cells:
            key = result.cell.key
            if key not in cells:
                sources[key], seeds[key], ratios[key], zoos[key] = name, [], [], []
            elif not result.cell.trains_like(cells[key]):
                raise ConfigurationError(
                    f"cell {key} has different settings in {sources[key]} and {name} (budget, spec, "
                    "evaluation or solve threshold changed between the runs); rerun it with one version "
                    "of the cells"
                )
            cells[key] = result.cell
            known = {s.seed for s in seeds[key]}
            repeated = sorted(known & {s.seed for s in result.seeds})
            if repeated:
                raise ConfigurationError(
                    f"cell {key}: seed(s) {repeated} are in {sources[key]} and in {name}; merge runs "
                    "of different seeds (--first-seed) or drop one of the files"
                )
            seeds[key] += result.seeds
            ratios[key].append(result.ratio)
            if result.zoo is not None:
                zoos[key].append((result.zoo, name))
    current = {cell.key: cell for cell in declared_cells()}
    order = {key: index for index, key in enumerate(current)}
    # Today's cell order (backend by backend, matrix order), whatever order the pieces came in.
    cells = dict(sorted(cells.items(), key=lambda item: order.get(item[0], len(order))))
    merged = [
        CellResult.summarize(
            _judged_by(cell, current),
            sorted(seeds[key], key=_seed_number),
            _pooled_ratio(ratios[key]),
            _pooled_zoo(key, [arm for arm, _ in zoos[key]], [name for _, name in zoos[key]]),
        )
        for key, cell in cells.items()
    ]
    newest = max((r.machine for r in reports), key=lambda m: m.date)
    machine = reports[0].machine.model_copy(
        update={
            "date": min(r.machine.date for r in reports),
            "hostname": ", ".join(dict.fromkeys(r.machine.hostname for r in reports)),
            "load_average_end": newest.load_average_end,
        }
    )
    merged_report = BenchReport(
        slice=covering_slice([r.slice for r in reports]),
        command=command,
        merged_commands=[c for r in reports for c in (r.merged_commands or [r.command])],
        seeds=max(len(c.seeds) for c in merged),
        stop_at_threshold=reports[0].stop_at_threshold,
        machine=machine,
        total_seconds=sum(r.total_seconds for r in reports),
        cells=merged,
    ).with_verdict()
    if any(result.zoo is not None for result in merged):
        limits = {r.zoo.max_slowdown for r in reports if r.zoo is not None}
        return compare_zoo(merged_report, limits.pop() if len(limits) == 1 else None)
    return merged_report
