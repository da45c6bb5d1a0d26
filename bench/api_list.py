"""The run list: ``GET .../runs?limit=50`` latency with many runs, and the database connections it costs.

Two pipelines in one scratch installation: one with ``--small`` runs (1,000), one with ``--large`` (1,000,000). Each
has one real run made through the API and executed by the workers; the rest are copies of that run's row made
in the database by one ``INSERT ... SELECT`` over ``generate_series`` (every column copied, only the number
changed), then ``ANALYZE``. Then ``--requests`` sequential ``GET``s of the first page (the default order) and of the
last page (``reverse=true``: the newest runs, what a UI asks for) of each pipeline, alternating, over one keep-alive
HTTP session: p50 and p99. The query plan of the page query is printed (``EXPLAIN ANALYZE``), as are the sessions the
server opened (``pg_stat_database.sessions``), which show whether its connections are pooled.

Baseline: the same request against the pipeline with ``--small`` runs, in the same installation. Goals (issue 9):
p99 <= 50 ms with 1,000,000 runs, and <= 2x the p99 with 1,000 runs. PostgreSQL only (``--db postgres``): on
SQLite the copies are made the same way but the goal is not defined.
"""

from __future__ import annotations

import time

import common
import requests


def copy_runs(stack: common.Stack, pipeline_id: str, total: int) -> None:
    """Make ``total`` runs of ``pipeline_id`` out of its one real run, in the database, in one statement."""
    import psycopg

    dsn = common.PG_URL.format(name=stack.pg_name).replace("postgres://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'runs_run' "
                "AND column_name NOT IN ('id', 'number', 'token_id') ORDER BY ordinal_position"
            )
        ]
        names = ", ".join(f'"{c}"' for c in columns)
        template = conn.execute(
            "SELECT r.id FROM runs_run r JOIN pipelines_pipeline p ON p.id = r.pipeline_id WHERE p.slug = %s "
            "AND p.namespace_id = %s",
            (pipeline_id, stack.namespace),
        ).fetchone()[0]
        started = time.monotonic()
        conn.execute(
            f"INSERT INTO runs_run ({names}, number) SELECT {names}, g FROM runs_run, generate_series(2, %s) g "  # noqa: S608 - column names from the catalogue
            "WHERE runs_run.id = %s",
            (total, template),
        )
        conn.execute("ANALYZE runs_run")
        common.log(f"{pipeline_id}: {total:,} runs in the database ({time.monotonic() - started:.1f} s to copy)")


def explain(stack: common.Stack, pipeline_id: str, reverse: bool) -> str:
    import psycopg

    dsn = common.PG_URL.format(name=stack.pg_name).replace("postgres://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        pk = conn.execute(
            "SELECT id FROM pipelines_pipeline WHERE slug = %s AND namespace_id = %s", (pipeline_id, stack.namespace)
        ).fetchone()[0]
        order = "DESC" if reverse else "ASC"
        rows = conn.execute(
            f"EXPLAIN ANALYZE SELECT * FROM runs_run WHERE pipeline_id = %s ORDER BY number {order} LIMIT 50",  # noqa: S608
            (pk,),
        ).fetchall()
    return "\n".join("    " + r[0] for r in rows)


def sessions(stack: common.Stack) -> int:
    import psycopg

    with psycopg.connect(common.PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (stack.pg_name,)).fetchone()[0]


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--small", type=int, default=1000, help="runs of the baseline pipeline")
    p.add_argument("--large", type=int, default=1_000_000, help="runs of the measured pipeline")
    p.add_argument("--requests", type=int, default=300, help="GETs of each kind")
    args = p.parse_args()
    if args.db != "postgres":
        raise SystemExit("api_list.py measures PostgreSQL: use --db postgres")

    with common.Stack(**common.stack_kwargs(args)) as stack:
        for name, total in (("small", args.small), ("large", args.large)):
            stack.register(name, [common.task("noop", stack.image)])
            stack.wait_runs([stack.trigger(name)])
            copy_runs(stack, name, total)
        session = requests.Session()
        session.headers.update(stack.session.headers)
        times: dict[tuple[str, bool], list[float]] = {}
        before = sessions(stack)
        for _ in range(args.requests):
            for name in ("small", "large"):
                for reverse in (False, True):
                    url = f"{stack.url}{stack.pipeline_path(name)}/runs?limit=50" + ("&reverse=true" if reverse else "")
                    started = time.perf_counter()
                    response = session.get(url, timeout=60)
                    times.setdefault((name, reverse), []).append(time.perf_counter() - started)
                    if response.status_code != 200 or len(response.json()["runs"]) != 50:
                        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
        requests_made = 4 * args.requests
        opened = sessions(stack) - before
        for name in ("small", "large"):
            for reverse in (False, True):
                common.log(f"plan, {name}, reverse={reverse}:\n{explain(stack, name, reverse)}")
        context = {"stack": stack.describe(), "machine": common.machine(), "args": vars(args)}

    b = "api_list"
    rows = []
    for reverse in (False, True):
        which = "newest first (reverse=true)" if reverse else "oldest first"
        small, large = times[("small", reverse)], times[("large", reverse)]
        for q in (50, 99):
            row = common.Row(b, f"GET runs?limit=50, {which}, {args.large:,} runs, p{q}", "s",
                             common.percentile(large, q), f"the same with {args.small:,} runs",
                             common.percentile(small, q))  # fmt: skip
            if q == 99:
                common.goal(row, "<= 50 ms and <= 2×", row.gofer <= 0.050 and row.gofer <= 2 * row.baseline)
            rows.append(row)
    rows.append(common.Row(b, f"database sessions the server opened for {requests_made} GETs", "", opened,
                           note="pooled: a handful; unpooled: about one per request"))  # fmt: skip
    common.report(rows, args, context)


if __name__ == "__main__":
    common.main_guard(main)
