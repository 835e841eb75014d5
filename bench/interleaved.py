"""Headline ratios on a noisy machine: the suite's configurations measured in turns.

    python bench/interleaved.py --configs "catalog PG 1w" "tutorial PG" "raw asyncpg PG" \\
        [--scenario one] [--connections 64] [--rounds 5] [--seconds 5] [--reuse]
        [--before REV [REV ...]]

bench/suite.py measures one configuration after the other over half an hour; when the
machine's speed drifts in that time (a shared host), a ratio compares two different
machines. Here every configuration named (all on one backend) serves at once, each idle
while another is measured, and the scenario runs in rounds: configuration A, B, C, then
A, B, C again. Each round's ratios to the first configuration are taken within the
round, seconds apart, and the table gives their median, with the median requests/s.
"""

import argparse
import asyncio
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

from common import database_url
from suite import CONFIGS, ensure_wrk, measure_in_turns, prepare_data, scripts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", required=True, help="names, as in suite.CONFIGS")
    parser.add_argument("--scenario", default="one")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="keep data already seeded")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--before",
        metavar="REV",
        nargs="+",
        default=[],
        help="also serve the first configuration as of these git revisions (worktrees)",
    )
    args = parser.parse_args()
    ensure_wrk()
    configs = [next(c for c in CONFIGS if c.name == name) for name in args.configs]
    backends = {config.backend for config in configs}
    if len(backends) != 1:
        raise SystemExit("give configurations of one backend")
    backend = backends.pop()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="catalog-interleaved-"))
    workdir.mkdir(parents=True, exist_ok=True)
    base = configs[0]
    for revision in args.before:
        tree = workdir / f"before-{revision}"
        if not tree.exists():
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), revision], check=True)
        configs.append(replace(base, name=f"{base.name} @{revision}", source=tree / "src"))
    url = database_url(backend, workdir)
    token = asyncio.run(prepare_data(url, args.products, args.reuse))
    script = scripts(workdir / backend, args.products, token)[args.scenario]
    turns = measure_in_turns(
        configs, url, script, args.scenario, args.connections, args.rounds, args.seconds
    )
    first = configs[0].name
    print(
        f"\n`{args.scenario}` at {args.connections} connections, {args.rounds} rounds of "
        f"{args.seconds} s; ratio: {first} over each, per round, median\n"
    )
    print(f"| configuration | median req/s | {first} over it |")
    print("|---|---:|---:|")
    for name in turns.rps:
        over = turns.median_ratio(name) if name != first else None
        shown = "" if name == first else (f"{over:.2f}x" if over is not None else "stalled")
        print(f"| {name} | {turns.median_rps(name):.0f} | {shown} |")


if __name__ == "__main__":
    main()
