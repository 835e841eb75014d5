"""Headline ratios on a noisy machine: the suite's configurations measured in turns.

    python bench/interleaved.py --configs "catalog PG 1w" "tutorial PG" "raw asyncpg PG" \\
        [--scenario one] [--connections 64] [--rounds 5] [--seconds 5] [--reuse]

bench/suite.py measures one configuration after the other over half an hour; when the
machine's speed drifts in that time (a shared host), a ratio compares two different
machines. Here every configuration named (all on one backend) serves at once, each idle
while another is measured, and the scenario runs in rounds: configuration A, B, C, then
A, B, C again. Each round's ratios to the first configuration are taken within the
round, seconds apart, and the table gives their median, with the median requests/s.
"""

import argparse
import asyncio
import contextlib
import statistics
import tempfile
from pathlib import Path

from common import database_url, run_wrk
from suite import CONFIGS, ensure_wrk, prepare_data, scripts, start


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
    args = parser.parse_args()
    ensure_wrk()
    configs = [next(c for c in CONFIGS if c.name == name) for name in args.configs]
    backends = {config.backend for config in configs}
    if len(backends) != 1:
        raise SystemExit("give configurations of one backend")
    backend = backends.pop()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="catalog-interleaved-"))
    url = database_url(backend, workdir)
    token = asyncio.run(prepare_data(url, args.products, args.reuse))
    script = scripts(workdir / backend, args.products, token)[args.scenario]
    rps: dict[str, list[float]] = {config.name: [] for config in configs}
    ratios: dict[str, list[float]] = {config.name: [] for config in configs[1:]}
    with contextlib.ExitStack() as stack:
        servers = {config.name: stack.enter_context(start(config, url)) for config in configs}
        for server in servers.values():  # warm-up: connections, prepared statements
            run_wrk(server.base_url, script, 2, args.connections)
        for round_number in range(1, args.rounds + 1):
            measured = {
                name: run_wrk(server.base_url, script, args.seconds, args.connections)["rps"]
                for name, server in servers.items()
            }
            first = configs[0].name
            for name, value in measured.items():
                rps[name].append(value)
                if name != first and value > 0:
                    ratios[name].append(measured[first] / value)
            print(
                f"round {round_number}: "
                + ", ".join(f"{name} {value:.0f}" for name, value in measured.items()),
                flush=True,
            )
    first = configs[0].name
    print(
        f"\n`{args.scenario}` at {args.connections} connections, {args.rounds} rounds of "
        f"{args.seconds} s; ratio: {first} over each, per round, median\n"
    )
    print(f"| configuration | median req/s | {first} over it |")
    print("|---|---:|---:|")
    for name, values in rps.items():
        ratio = "" if name == first else f"{statistics.median(ratios[name]):.2f}x"
        if name != first and not ratios[name]:
            ratio = "stalled"
        print(f"| {name} | {statistics.median(values):.0f} | {ratio} |")


if __name__ == "__main__":
    main()
