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
import os

from airflow.sdk import DAG

from verity_operator import RETRIES, RETRY_DELAY, VerityOperator, act_on_exit_code, night_of  # noqa: F401 (the tests call the last two)

VERITY = os.environ.get("VERITY_BIN", "verity")
RESULTS = os.environ.get("VERITY_OUT", "/srv/verity/results")
SPEC_FOLDERS = dict(
    item.split("=", 1)
    for item in os.environ.get("VERITY_SPEC_FOLDERS", "nightly=/srv/verity/specs").split(",")
    if item
)

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
