"""Verity's nightly run across workers as an Airflow DAG with dynamic task
mapping (Airflow 3; for Airflow 2 import DAG from airflow and BaseOperator
from airflow.models.baseoperator).

Every night, one mapped task per shard and a merge that waits for all of
them (the default trigger rule, all_success):

    shard[i]  verity run --shard i/K --partials PARTIALS --date NIGHT SPECS
              (i = 0..K-1, one mapped task instance each, on any worker)
      >> merge  verity merge --shards K --partials PARTIALS --out RESULTS --date NIGHT SPECS

A shard writes only its partial results (exact sufficient statistics and
counts, under PARTIALS/<experiment>/<night>/); the merge checks all K of
them (a missing, stale, duplicated or altered one is refused, naming the
shard), then releases each experiment: gates, statistics, decisions, DP
noise drawn once, report and manifest, byte for byte what one
`verity run` over the same inputs writes. A shard that fails leaves the
merge "upstream_failed": nothing is released that night until the shard is
cleared and succeeds. PARTIALS, RESULTS and the inputs must be on storage
every worker sees; every worker runs the same verity binary (the merge
refuses partials of another build). Private specs: pass --state-dir in
VERITY_FLAGS to both steps; their partials are restricted material
(exact values, HMAC under a key derived from the noise key).

Exit codes are acted on as in verity_nightly.py (verity_operator.py):
66 (the night has not landed) and 1/75 are retried, 65/70/73/78 fail for
good. Configuration from the workers' environment: VERITY_BIN, VERITY_OUT,
VERITY_PARTIALS, VERITY_SHARDS (K), VERITY_SPECS (space-separated spec files
or folders), VERITY_FLAGS (extra flags for both steps). Checked by
deploy/airflow/test_dag.py (make deploy-check): the mapped commands run on
the sharded fixtures with the real binary, and the merged outputs equal a
single-node run byte for byte.
"""

import datetime as dt
import os
import shlex

from airflow.sdk import DAG

from verity_operator import RETRIES, RETRY_DELAY, VerityOperator

VERITY = os.environ.get("VERITY_BIN", "verity")
RESULTS = os.environ.get("VERITY_OUT", "/srv/verity/results")
PARTIALS = os.environ.get("VERITY_PARTIALS", "/srv/verity/partials")
SHARDS = int(os.environ.get("VERITY_SHARDS", "8"))
SPECS = shlex.split(os.environ.get("VERITY_SPECS", "/srv/verity/specs"))
FLAGS = shlex.split(os.environ.get("VERITY_FLAGS", ""))


def shard_argv(i):
    """The command of shard i of SHARDS ("{night}" is filled in at run time)."""
    return [VERITY, "run", "--log", "json", "--shard", f"{i}/{SHARDS}", "--partials", PARTIALS,
            "--date", "{night}", *FLAGS, *SPECS]


with DAG(
    "verity_sharded_nightly",
    schedule="30 3 * * *",
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY},
    params={"night": ""},
    tags=["verity"],
) as dag:
    shards = VerityOperator.partial(task_id="shard").expand(argv=[shard_argv(i) for i in range(SHARDS)])
    merge = VerityOperator(
        task_id="merge",
        argv=[VERITY, "merge", "--log", "json", "--shards", str(SHARDS), "--partials", PARTIALS,
              "--out", RESULTS, "--date", "{night}", *FLAGS, *SPECS],
    )
    shards >> merge
