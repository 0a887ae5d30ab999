"""Verity's nightly run as an Airflow DAG (Airflow 3; for Airflow 2 import
DAG from airflow and BaseOperator from airflow.models.baseoperator).

Every night, for each folder of specs in SPEC_FOLDERS, two tasks:

    validate_<folder>  verity validate --date NIGHT FOLDER
                       (specs, keys, inputs and schemas, without running a query)
      >> run_<folder>  verity run --date NIGHT --out RESULTS FOLDER

Folders run in parallel; a folder's specs share one pass over their traces
(which is why a task is a folder, not a spec). NIGHT is the day before the
run's data_interval_end, in UTC, or the DAG param "night" on a manual
trigger (a rerun of a past night; reruns are byte-identical and free).

Each task acts on verity's exit code (docs/PRODUCT.md, deploy/README.md):

    0            success
    1, 75        transient               -> retried (AirflowException)
    66           an input is missing:    -> retried every RETRY_DELAY, RETRIES
                 the night has not landed   times, then failed
    65           blocked by a data-quality -> failed at once, no retry
                 gate or a sample-ratio      (AirflowFailException; outputs are
                 mismatch                    written with verdict "invalid")
    70, 73, 78   mismatch, cannot create  -> failed at once, no retry
                 the output, configuration
    other        (killed, crashed)        -> retried

Alerting hangs on the failure: set on_failure_callback in default_args; the
exception's message starts with "verity exit N:" and says which case it is.

Configuration comes from the environment of the Airflow workers (the
paths as the workers see them): VERITY_BIN, VERITY_OUT, VERITY_STATE_DIR
(private specs), VERITY_SPEC_FOLDERS ("name=path,name=path"). Checked by
deploy/airflow/test_dag.py (make deploy-check) against a stand-in airflow
package, running the tasks' commands on the fixtures with the real binary.
"""

import datetime as dt
import logging
import os
import subprocess

from airflow.exceptions import AirflowException, AirflowFailException
from airflow.sdk import DAG, BaseOperator

VERITY = os.environ.get("VERITY_BIN", "verity")
RESULTS = os.environ.get("VERITY_OUT", "/srv/verity/results")
SPEC_FOLDERS = dict(
    item.split("=", 1)
    for item in os.environ.get("VERITY_SPEC_FOLDERS", "nightly=/srv/verity/specs").split(",")
    if item
)
RETRIES = 6
RETRY_DELAY = dt.timedelta(minutes=20)  # 66 (not landed) is retried for two hours

log = logging.getLogger(__name__)

# What each exit code means and whether a retry can help.
RETRYABLE = {
    1: "transient failure (interrupted, or an input rewritten while it was read)",
    75: "temporary failure",
    66: "an input is missing: the night's data has not landed yet",
}
FINAL = {
    65: "blocked by a data-quality gate or a sample-ratio mismatch (outputs written, verdict invalid): alert the experiment owners",
    70: "replay or golden mismatch",
    73: "cannot create the output",
    78: "configuration or integrity error (spec, key, ledger, budget, --out)",
}


def act_on_exit_code(code, argv):
    """Returns on 0; raises what makes Airflow retry or fail for good."""
    if code == 0:
        return
    cmd = " ".join(argv)
    if code in FINAL:
        raise AirflowFailException(f"verity exit {code}: {FINAL[code]}: {cmd}")
    why = RETRYABLE.get(code, "unexpected exit (killed or crashed)")
    raise AirflowException(f"verity exit {code}: {why}; retrying: {cmd}")


def night_of(context):
    """The nominal date to analyse: the param "night", else the day before
    the end of the run's data interval (UTC)."""
    night = (context.get("params") or {}).get("night")
    if night:
        return str(night)
    end = context["data_interval_end"].astimezone(dt.timezone.utc)
    return (end.date() - dt.timedelta(days=1)).isoformat()


class VerityOperator(BaseOperator):
    """Runs verity with argv, where "{night}" stands for the nominal date,
    and maps its exit code onto Airflow's retry or fail."""

    def __init__(self, *, argv, **kwargs):
        super().__init__(**kwargs)
        self.argv = list(argv)

    def command(self, context):
        night = night_of(context)
        return [a.replace("{night}", night) for a in self.argv]

    def execute(self, context):
        argv = self.command(context)
        log.info("running %s", " ".join(argv))
        code = subprocess.run(argv, check=False).returncode
        act_on_exit_code(code, argv)


with DAG(
    "verity_nightly",
    schedule="30 3 * * *",
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY},
    params={"night": ""},
    tags=["verity"],
) as dag:
    for name, folder in sorted(SPEC_FOLDERS.items()):
        validate = VerityOperator(
            task_id=f"validate_{name}",
            argv=[VERITY, "validate", "--log", "json", "--date", "{night}", folder],
        )
        run = VerityOperator(
            task_id=f"run_{name}",
            argv=[VERITY, "run", "--log", "json", "--date", "{night}", "--out", RESULTS, folder],
        )
        validate >> run
