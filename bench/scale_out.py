"""What PgBouncer and a read replica cost a read: catalog direct, through PgBouncer
(transaction mode), and reading from a streaming hot standby, measured in turns.

    python bench/scale_out.py [--workers 1 2] [--scenarios one page] [--connections 64]
        [--rounds 5] [--seconds 5] [--products 100000]

Starts its own servers (never the shared ones): a PostgreSQL primary and its hot standby
(tests/replication.py) and a PgBouncer in front of the primary (tests/throwaway.py),
seeds the primary, then serves catalog three ways at once, each idle while another is
measured: direct to the primary; through PgBouncer with CATALOG_DATABASE_POOLER=
transaction; and with CATALOG_READ_DATABASE_URL on the standby (public reads there,
routed by the replica monitor). Each round runs the scenario on each in turn; the table
gives median requests/s, median p99, and each one's ratio to direct within its round.

On one 2-core machine the standby shares the CPU with the primary, so a replica cannot
add capacity here: what this measures is the cost of the routing and of the pooler.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import catalog_server, run_wrk
from suite import ensure_wrk, prepare_data, scripts

from tests.replication import ThrowawayReplicatedPostgres
from tests.throwaway import ThrowawayPgBouncer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scenarios", nargs="+", default=["one", "page"])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--products", type=int, default=100_000)
    args = parser.parse_args()
    ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="catalog-scale-out-"))
    with ExitStack() as stack:
        cluster = ThrowawayReplicatedPostgres()
        cluster.start()
        stack.callback(cluster.stop)
        # As the tests configure it: a server pool smaller than the clients' pools.
        bouncer = ThrowawayPgBouncer(cluster.primary_port, pool_size=8, max_client_conn=400)
        bouncer.start()
        stack.callback(bouncer.stop)
        token = asyncio.run(prepare_data(cluster.primary_url, args.products, reuse=False))
        cluster.wait_caught_up()
        paths = scripts(workdir, args.products, token)
        rows = []
        for workers in args.workers:
            ways = {
                "direct": {"CATALOG_DATABASE_URL": cluster.primary_url},
                "PgBouncer": {
                    "CATALOG_DATABASE_URL": bouncer.url_for("postgres"),
                    "CATALOG_DATABASE_POOLER": "transaction",
                    "CATALOG_POOLER_ADMIN_URL": bouncer.admin_url,
                },
                "replica": {
                    "CATALOG_DATABASE_URL": cluster.primary_url,
                    "CATALOG_READ_DATABASE_URL": cluster.standby_url,
                },
            }
            with ExitStack() as servers_stack:
                servers = {
                    name: servers_stack.enter_context(catalog_server(env, workers))
                    for name, env in ways.items()
                }
                for scenario in args.scenarios:
                    script = paths[scenario]
                    for server in servers.values():
                        run_wrk(server.base_url, script, 2, args.connections)
                    rps: dict[str, list[float]] = {name: [] for name in servers}
                    p99: dict[str, list[float]] = {name: [] for name in servers}
                    ratios: dict[str, list[float]] = {name: [] for name in servers}
                    for round_number in range(1, args.rounds + 1):
                        measured = {
                            name: run_wrk(server.base_url, script, args.seconds, args.connections)
                            for name, server in servers.items()
                        }
                        for name, result in measured.items():
                            rps[name].append(result["rps"])
                            p99[name].append(result["p99"])
                            ratios[name].append(result["rps"] / measured["direct"]["rps"])
                        print(
                            f"  {workers}w {scenario} round {round_number}: "
                            + ", ".join(f"{n} {r['rps']:.0f}" for n, r in measured.items()),
                            flush=True,
                        )
                    for name in servers:
                        rows.append(
                            (
                                workers,
                                scenario,
                                name,
                                statistics.median(rps[name]),
                                statistics.median(p99[name]),
                                statistics.median(ratios[name]),
                            )
                        )
    print(
        f"\n{args.connections} connections, {args.rounds} rounds of {args.seconds} s in turns;"
        " ratio: requests/s over direct's, within each round, median\n"
    )
    print("| workers | scenario | catalog | median req/s | median p99 ms | of direct |")
    print("|---:|---|---|---:|---:|---:|")
    for workers, scenario, name, median_rps, median_p99, ratio in rows:
        print(
            f"| {workers} | {scenario} | {name} | {median_rps:.0f} | {median_p99:.1f} |"
            f" {ratio:.2f}x |"
        )


if __name__ == "__main__":
    main()
